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
    if switches(&statement.kind) || statement.inner_kinds.iter().any(switches) || names_role {
        return Some(rule(0));
    }
    (defines_code(&statement.kind)
        || statement.inner_kinds.iter().any(defines_code)
        || stores_unseen_code(statement))
    .then(|| rule(3))
}

/// Whether a statement of this kind defines code that later statements
/// run without naming it: a function or procedure body (any language can
/// `SET ROLE`), and the triggers, rules, casts, operators and aggregates
/// that call functions implicitly.
fn defines_code(kind: &Kind) -> bool {
    use vigil_sql::ObjectType as O;
    match kind {
        Kind::Create(object) | Kind::Alter(object) => matches!(
            object,
            O::Function
                | O::Procedure
                | O::Aggregate
                | O::Trigger
                | O::EventTrigger
                | O::Rule
                | O::Cast
                | O::Operator
                | O::Language
                | O::Transform
        ),
        _ => false,
    }
}

/// Whether a definition stores an expression that calls code Vigil cannot
/// see into (a column default, a check, a view, an index expression, a
/// policy): statements that later use the object run that code without
/// naming it.
fn stores_unseen_code(statement: &Statement) -> bool {
    matches!(statement.kind, Kind::Create(_) | Kind::Alter(_))
        && (statement.class == vigil_sql::Class::Unknown
            || !statement.properties.opaque_functions.is_empty())
}

/// The rule that refuses `ROLLBACK TO SAVEPOINT` in a failed transaction
/// in which code Vigil cannot see into ran before Vigil could confirm the
/// session's role: the savepoint may hold a role that code switched to.
pub fn unconfirmed_savepoint() -> Arc<Rule> {
    rule(2)
}

/// The rule that refuses a statement that would run after code Vigil
/// cannot see into, in the same Query or batch, before the role is
/// confirmed.
pub fn after_unseen_code() -> Arc<Rule> {
    rule(4)
}

fn rule(index: usize) -> Arc<Rule> {
    static RULES: OnceLock<[Arc<Rule>; 5]> = OnceLock::new();
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
            make(
                "this session runs upstream in a role Vigil locks, and code it defines (a function, procedure, trigger, rule, cast, operator, or an expression calling a function Vigil cannot see into) would run later without being named, where Vigil could not see it change the role",
                "Define functions, triggers and the objects that call them in a migration, as an identity that keeps the service role.",
            ),
            make(
                "this session runs upstream in a role Vigil locks, and a statement after code Vigil cannot see into would run before Vigil could confirm the role",
                "Send the call of that code in a Query (or a batch up to Sync) of its own, as the last statement.",
            ),
        ]
    });
    Arc::clone(&rules[index])
}
