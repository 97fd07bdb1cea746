//! `vigil policy explain` and `vigil policy test`: the policy of a config
//! file applied to statements, without a running proxy.

use std::path::Path;

use anyhow::Context;
use vigil_config::Config;
use vigil_policy::{CaseFile, Decision, Explanation, SessionPolicy};

/// The session policy `identity` would get on `database`.
fn session(config: &Config, identity: &str, database: &str) -> anyhow::Result<SessionPolicy> {
    let who = config.identity(identity).with_context(|| {
        format!(
            "no identity {identity:?} in the config (configured: {})",
            names(config.identities.iter().map(|i| i.name.as_str()))
        )
    })?;
    let db = config.database(database).with_context(|| {
        format!(
            "no database {database:?} in the config (configured: {})",
            names(config.databases.iter().map(|d| d.name.as_str()))
        )
    })?;
    Ok(config.session_policy(who, db))
}

fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Prints the analysis, the matching rules and the decision. Exits non-zero
/// for SQL that does not parse, as the proxy would refuse it.
pub fn explain(config: &Config, identity: &str, database: &str, sql: &str) -> anyhow::Result<()> {
    let session = session(config, identity, database)?;
    let analysis = vigil_sql::analyze_uncached(sql).map_err(|e| {
        anyhow::anyhow!(
            "{e} (SQLSTATE {}); Vigil refuses it without forwarding",
            e.sqlstate()
        )
    })?;
    println!("identity {identity} on database {database}");
    let explanation: Explanation = session.explain(&analysis);
    print!("{explanation}");
    Ok(())
}

/// Runs every case in `cases`; fails when any decision differs from the one
/// expected.
pub fn test(config: &Config, cases: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(cases)
        .with_context(|| format!("cannot read {}", cases.display()))?;
    let file: CaseFile =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", cases.display()))?;
    let mut failed = 0;
    for (i, case) in file.cases.iter().enumerate() {
        let name = case.name.clone().unwrap_or_else(|| case.sql.clone());
        let outcome = session(config, &case.identity, &case.database).map(|session| {
            match vigil_sql::analyze_uncached(&case.sql) {
                Ok(analysis) => summary(&session.decide(&analysis)),
                // The proxy refuses what does not parse; that counts as deny.
                Err(e) => (vigil_policy::Action::Deny, Some(format!("syntax: {e}"))),
            }
        });
        match outcome {
            Ok((action, rule)) => {
                let rule_ok = case.rule.is_none() || case.rule == rule;
                if action == case.expect && rule_ok {
                    println!("ok   {name}");
                } else {
                    failed += 1;
                    let want_rule = case
                        .rule
                        .as_deref()
                        .map(|r| format!(" by {r}"))
                        .unwrap_or_default();
                    let got_rule = rule
                        .map(|r| format!(" by {r}"))
                        .unwrap_or_else(|| " by the database default".into());
                    println!(
                        "FAIL {name}\n     cases[{i}]: {} as {} on {}: expected {}{want_rule}, got {action}{got_rule}",
                        case.sql, case.identity, case.database, case.expect
                    );
                }
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {name}\n     cases[{i}]: {e:#}");
            }
        }
    }
    let total = file.cases.len();
    println!("{} passed, {failed} failed", total - failed);
    anyhow::ensure!(failed == 0, "{failed} of {total} policy cases failed");
    Ok(())
}

fn summary(decision: &Decision) -> (vigil_policy::Action, Option<String>) {
    (decision.action, decision.rule_id().map(str::to_owned))
}
