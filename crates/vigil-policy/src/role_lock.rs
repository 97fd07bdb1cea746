//! The check that keeps a session in the upstream role Vigil put it in.
//!
//! A database entry can map identities to an upstream role (its `roles`):
//! the service role logs in and Vigil switches the session to the mapped
//! role before the client says a word. The switch can be undone by SQL, so
//! in such a session every statement that could undo it is refused: `SET
//! [SESSION|LOCAL] ROLE`, `RESET ROLE`, `SET SESSION AUTHORIZATION` and its
//! `RESET`, `set_config('role'|'session_authorization', …)` anywhere in a
//! statement, a `SET role` carried by a definition (`CREATE FUNCTION … SET
//! role`, `ALTER ROLE … SET role`), and `DISCARD ALL`, which resets the
//! session authorization.

use std::sync::{Arc, OnceLock};

use vigil_sql::{Kind, Statement};

use crate::Rule;

pub const RULE_ID: &str = "vigil.role-lock";

/// The role-lock rule, when `statement` could change the session's role.
pub(crate) fn check(statement: &Statement) -> Option<Arc<Rule>> {
    let switches = |kind: &Kind| matches!(kind, Kind::SetRole | Kind::SetSessionAuthorization);
    let names_role = statement.properties.settings.iter().any(|change| {
        change
            .name
            .as_deref()
            .is_none_or(|name| matches!(name, "role" | "session_authorization"))
    });
    if statement.properties.discards_all {
        return Some(rule(1));
    }
    (switches(&statement.kind) || statement.inner_kinds.iter().any(switches) || names_role)
        .then(|| rule(0))
}

/// The rule that refuses `ROLLBACK TO SAVEPOINT` in a failed transaction
/// in which code Vigil cannot see into ran before Vigil could confirm the
/// session's role: the savepoint may hold a role that code switched to.
pub fn unconfirmed_savepoint() -> Arc<Rule> {
    rule(2)
}

fn rule(index: usize) -> Arc<Rule> {
    static RULES: OnceLock<[Arc<Rule>; 3]> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        let make = |message: &str, hint: &str| Rule::built_in_deny(RULE_ID, message, hint);
        [
            make(
                "this session runs upstream in the role Vigil maps its identity to, and the role cannot be changed from inside the session (SET ROLE, RESET ROLE, SET SESSION AUTHORIZATION, set_config('role', …))",
                "Connect as an identity mapped to the role you need; the mapping is the database's `roles` in Vigil's config.",
            ),
            make(
                "DISCARD ALL would also reset the session's role, which Vigil fixes for this identity",
                "Use what DISCARD ALL does except that: CLOSE ALL; RESET ALL; DEALLOCATE ALL; UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD PLANS; DISCARD TEMP; DISCARD SEQUENCES.",
            ),
            make(
                "code Vigil cannot see into ran in this transaction before it failed, and Vigil could not yet confirm the session's role: a savepoint taken since could restore a role that code switched to",
                "Roll back the whole transaction (ROLLBACK), then run it again.",
            ),
        ]
    });
    Arc::clone(&rules[index])
}
