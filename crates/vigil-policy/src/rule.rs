//! A checked rule and the questions it asks: does it apply to this session
//! (identity and database), and does it match this statement.

use std::sync::Arc;

use vigil_sql::{CopyDirection, Statement};

use crate::model::{CopyDirectionName, PropertyMatch, Subjects, When};
use crate::{Action, SearchPath, Subject, Target};

/// A rule ready to be evaluated.
#[derive(Debug)]
pub struct Rule {
    pub id: Arc<str>,
    pub action: Action,
    pub message: String,
    pub hint: Option<String>,
    pub description: Option<String>,
    /// Where it was written: a file name, or `built-in`.
    pub origin: String,
    pub(crate) when: When,
    pub(crate) unless: Subjects,
    /// Columns masked in the sessions it applies to.
    pub mask: Vec<String>,
    /// A `review` rule's approvers and client experience, where it names them.
    pub approvers: Option<crate::Approvers>,
    pub approval: Option<crate::ApprovalMode>,
}

impl Rule {
    /// A deny rule of Vigil's own (`origin` `built-in`) that applies to
    /// every session it is checked in.
    pub(crate) fn built_in_deny(id: &str, message: &str, hint: &str) -> Arc<Rule> {
        Arc::new(Rule {
            id: id.into(),
            action: Action::Deny,
            message: message.into(),
            hint: Some(hint.into()),
            description: None,
            origin: "built-in".into(),
            when: When::default(),
            unless: Subjects::default(),
            mask: Vec::new(),
            approvers: None,
            approval: None,
        })
    }

    /// Whether the rule applies to sessions of `subject` on `target`; decided
    /// once per session, not per statement.
    pub(crate) fn applies_to(&self, subject: &Subject<'_>, target: &Target<'_>) -> bool {
        let when = &self.when;
        let identity_ok =
            when.identities.is_empty() || when.identities.iter().any(|g| g.matches(subject.name));
        let groups_ok = when.groups.is_empty()
            || when
                .groups
                .iter()
                .any(|g| subject.groups.iter().any(|group| g.matches(group)));
        let kind_ok = when.identity_kinds.is_empty()
            || when
                .identity_kinds
                .iter()
                .any(|k| k.as_str() == subject.kind);
        let database_ok =
            when.databases.is_empty() || when.databases.iter().any(|g| g.matches(target.name));
        let labels_ok = when
            .labels
            .iter()
            .all(|(key, value)| target.labels.get(key) == Some(value));
        identity_ok
            && groups_ok
            && kind_ok
            && database_ok
            && labels_ok
            && !exempts(&self.unless, subject)
    }

    /// Whether the statement is one the rule is about. Object names are
    /// matched in the rule's favour of caution: a deny or review rule applies
    /// when a name may be the one it names; an allow rule only when it surely is.
    pub(crate) fn matches(&self, statement: &Statement, path: &SearchPath) -> bool {
        let when = &self.when;
        let surely = self.action == Action::Allow;
        let object = |glob: &crate::Glob, name: &str| match surely {
            true => glob.surely_matches_object(name, path),
            false => glob.may_match_object(name, path),
        };
        // Unqualified function names resolve through pg_catalog first, so a
        // rule naming pg_catalog.f meets a call of f whatever the path.
        let function = |glob: &crate::Glob, name: &str| match surely {
            true => glob.surely_matches_object(name, &SearchPath::any()) || glob.matches(name),
            false => glob.may_match_object(name, &SearchPath::any()),
        };
        let class_ok =
            when.classes.is_empty() || when.classes.iter().any(|c| c.0 == statement.class);
        let kind_ok = when.kinds.is_empty()
            || when.kinds.iter().any(|k| {
                statement.kind.answers_to(&k.0)
                    || statement
                        .inner_kinds
                        .iter()
                        .any(|inner| inner.answers_to(&k.0))
            });
        let relations_ok = when.relations.is_empty()
            || when.relations.iter().any(|g| {
                statement
                    .relations
                    .iter()
                    .any(|r| object(g, &r.qualified_name()))
            });
        let functions_ok = when.functions.is_empty()
            || when
                .functions
                .iter()
                .any(|g| statement.functions.iter().any(|f| function(g, f)));
        class_ok
            && kind_ok
            && relations_ok
            && functions_ok
            && properties_match(&when.properties, statement)
    }
}

/// Any one match exempts.
fn exempts(unless: &Subjects, subject: &Subject<'_>) -> bool {
    unless.includes(subject)
}

fn properties_match(want: &PropertyMatch, statement: &Statement) -> bool {
    let p = &statement.properties;
    let is = |want: Option<bool>, have: bool| want.is_none_or(|w| w == have);
    let copy = p.copy;
    is(want.has_where, p.has_where != Some(false))
        // `has_where = false` means "an UPDATE or DELETE without WHERE runs";
        // `has_where = true` asks that one runs and every one has a WHERE.
        && (want.has_where != Some(true) || p.has_where == Some(true))
        && is(want.data_modifying_cte, p.data_modifying_cte)
        && is(want.select_into, p.select_into)
        && is(want.copy_program, copy.is_some_and(|c| c.program))
        && is(want.copy_server_file, copy.is_some_and(|c| !c.program && !c.stdio))
        && want.copy_direction.is_none_or(|d| {
            copy.is_some_and(|c| match d {
                CopyDirectionName::From => c.direction == CopyDirection::From,
                CopyDirectionName::To => c.direction == CopyDirection::To,
            })
        })
        && is(want.explain_analyze, p.explain_analyze)
}

impl Rule {
    /// What the rule asks, for people reading it (the admin API, the
    /// console): each condition that is set, as `name` and its values in
    /// the config's own words. `unless.*` entries are the exemptions.
    pub fn conditions(&self) -> Vec<(&'static str, String)> {
        fn join<T: ToString>(items: &[T]) -> String {
            items
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
        let w = &self.when;
        let mut out = Vec::new();
        let mut add = |name: &'static str, value: String| {
            if !value.is_empty() {
                out.push((name, value));
            }
        };
        add("identities", join(&w.identities));
        add("groups", join(&w.groups));
        let kinds: Vec<&str> = w.identity_kinds.iter().map(|k| k.as_str()).collect();
        add("identity_kinds", kinds.join(", "));
        add("databases", join(&w.databases));
        let labels: Vec<String> = w.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        add("labels", labels.join(", "));
        let classes: Vec<&str> = w.classes.iter().map(|c| c.0.as_str()).collect();
        add("classes", classes.join(", "));
        let statement_kinds: Vec<&str> = w.kinds.iter().map(|k| k.0.as_str()).collect();
        add("kinds", statement_kinds.join(", "));
        add("relations", join(&w.relations));
        add("functions", join(&w.functions));
        let p = &w.properties;
        let flags = [
            ("has_where", p.has_where),
            ("data_modifying_cte", p.data_modifying_cte),
            ("select_into", p.select_into),
            ("copy_program", p.copy_program),
            ("copy_server_file", p.copy_server_file),
            ("explain_analyze", p.explain_analyze),
        ];
        let mut properties: Vec<String> = flags
            .iter()
            .filter_map(|(name, value)| value.map(|v| format!("{name}={v}")))
            .collect();
        if let Some(direction) = &p.copy_direction {
            properties.push(format!("copy_direction={}", direction.as_str()));
        }
        add("properties", properties.join(", "));
        let u = &self.unless;
        add("unless.identities", join(&u.identities));
        add("unless.groups", join(&u.groups));
        let kinds: Vec<&str> = u.identity_kinds.iter().map(|k| k.as_str()).collect();
        add("unless.identity_kinds", kinds.join(", "));
        add("mask", self.mask.join(", "));
        out
    }
}
