//! Time of one policy decision on an already analyzed text: an agent on a
//! production-labelled database with the guardrail pack on, without and with
//! a few ordinary rules of the user's.
//!
//!   cargo bench -p vigil-policy --bench decide -- --warm-up-time 1 --measurement-time 3

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use vigil_policy::{Action, Policy, PolicySettings, RuleFile, RuleSource, Subject, Target};

#[path = "../../vigil-sql/benches/statements/mod.rs"]
mod statements;

/// Ordinary user rules, as a config file would have them.
const USER_RULES: &str = r#"
[[rules]]
id = "no-secrets"
when = { relations = ["secret.*"] }
action = "deny"
message = "The secret schema is off limits."

[[rules]]
id = "agents-review-writes"
when = { identity_kinds = ["agent"], classes = ["write", "ddl"] }
action = "review"

[[rules]]
id = "reads"
when = { classes = ["read"] }
action = "allow"
"#;

fn policy(user_rules: bool) -> Policy {
    let settings = PolicySettings {
        guardrails: true,
        ..PolicySettings::default()
    };
    let mut sources = Vec::new();
    if user_rules {
        let file: RuleFile = toml::from_str(USER_RULES).expect("the user rules parse");
        sources.push(RuleSource {
            origin: "bench.toml".into(),
            rules: file.rules,
        });
    }
    Policy::new(&settings, sources).expect("the policy builds")
}

fn decide(c: &mut Criterion) {
    let texts = [
        ("short", statements::SHORT.to_owned()),
        ("medium", statements::MEDIUM.to_owned()),
        ("long_insert", statements::long_insert()),
        ("long_report", statements::long_report()),
    ];
    let analyses: Vec<_> = texts
        .iter()
        .map(|(name, sql)| (*name, vigil_sql::analyze_uncached(sql).expect("analyzes")))
        .collect();
    let labels = BTreeMap::from([("environment".to_owned(), "production".to_owned())]);
    let subject = Subject {
        name: "agent",
        groups: &[],
        kind: "agent",
    };
    let target = Target {
        name: "prod",
        labels: &labels,
        default: Action::Allow,
    };

    for (group_name, user_rules) in [("guardrails", false), ("guardrails_and_rules", true)] {
        let policy = policy(user_rules);
        let session = policy.for_session(&subject, &target);
        assert!(!session.rules().is_empty(), "the guardrails apply");
        let mut group = c.benchmark_group(group_name);
        for (name, analysis) in &analyses {
            let expected = if user_rules && name.starts_with("long_insert") {
                Action::Review
            } else {
                Action::Allow
            };
            assert_eq!(
                session.decide(analysis).action,
                expected,
                "{group_name}/{name}"
            );
            group.bench_function(*name, |b| b.iter(|| session.decide(black_box(analysis))));
        }
        group.finish();
    }
}

criterion_group!(benches, decide);
criterion_main!(benches);
