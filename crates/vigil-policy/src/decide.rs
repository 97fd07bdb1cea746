//! The decision for one text, from the rules one session can meet.

use std::sync::Arc;

use vigil_sql::{Analysis, Statement};

use crate::{integrity, role_lock};
use crate::{Action, Rule, SearchPath};

/// The rules that apply to one identity on one database.
#[derive(Debug, Clone)]
pub struct SessionPolicy {
    rules: Vec<Arc<Rule>>,
    default: Action,
    /// The session runs in an upstream role Vigil chose: nothing may
    /// change it ([`role_lock`]).
    role_locked: bool,
}

/// What happens to a text, and why.
#[derive(Debug, Clone)]
pub struct Decision {
    pub action: Action,
    /// The rule that decided; `None` when the database default did.
    pub rule: Option<Arc<Rule>>,
    /// The statement (index in the analysis) the deciding rule matched.
    pub statement: Option<usize>,
}

impl Decision {
    pub fn allow() -> Decision {
        Decision {
            action: Action::Allow,
            rule: None,
            statement: None,
        }
    }

    pub fn rule_id(&self) -> Option<&str> {
        self.rule.as_ref().map(|r| &*r.id)
    }
}

impl SessionPolicy {
    pub(crate) fn new(rules: Vec<Arc<Rule>>, default: Action) -> SessionPolicy {
        SessionPolicy {
            rules,
            default,
            role_locked: false,
        }
    }

    /// The same policy for a session whose upstream role is locked.
    pub fn with_role_lock(mut self) -> SessionPolicy {
        self.role_locked = true;
        self
    }

    /// The rule built into Vigil that refuses `statement` in this session,
    /// whatever the configured rules say.
    fn built_in(&self, statement: &Statement) -> Option<Arc<Rule>> {
        integrity::check(statement).or_else(|| {
            self.role_locked
                .then(|| role_lock::check(statement))
                .flatten()
        })
    }

    pub fn rules(&self) -> &[Arc<Rule>] {
        &self.rules
    }

    pub fn default_action(&self) -> Action {
        self.default
    }

    /// The strongest decision over the text's statements; the first statement
    /// with that decision names the rule. A text without statements is allowed.
    pub fn decide(&self, analysis: &Analysis) -> Decision {
        self.decide_on_path(analysis, &SearchPath::default())
    }

    /// [`decide`](Self::decide) for a session whose `search_path` may hold
    /// the schemas in `path`.
    pub fn decide_on_path(&self, analysis: &Analysis, path: &SearchPath) -> Decision {
        let mut best: Option<Decision> = None;
        // A SET search_path earlier in the text holds for the rest of it.
        let mut path = std::borrow::Cow::Borrowed(path);
        for (index, statement) in analysis.statements.iter().enumerate() {
            let decision = self.decide_statement(index, statement, &path);
            if !statement.properties.settings.is_empty() {
                path.to_mut().note(statement);
            }
            if best.as_ref().is_none_or(|b| decision.action > b.action) {
                best = Some(decision);
            }
            if best.as_ref().is_some_and(|b| b.action == Action::Deny) {
                break;
            }
        }
        best.unwrap_or_else(Decision::allow)
    }

    /// One statement: the strongest matching rule, or the default.
    pub fn decide_statement(
        &self,
        index: usize,
        statement: &Statement,
        path: &SearchPath,
    ) -> Decision {
        if let Some(rule) = self.built_in(statement) {
            return Decision {
                action: rule.action,
                rule: Some(rule),
                statement: Some(index),
            };
        }
        let mut best: Option<&Arc<Rule>> = None;
        for rule in &self.rules {
            if best.is_some_and(|b| b.action >= rule.action) {
                continue;
            }
            if rule.matches(statement, path) {
                best = Some(rule);
                if rule.action == Action::Deny {
                    break;
                }
            }
        }
        match best {
            Some(rule) => Decision {
                action: rule.action,
                rule: Some(rule.clone()),
                statement: Some(index),
            },
            None => Decision {
                action: self.default,
                rule: None,
                statement: Some(index),
            },
        }
    }

    /// Every rule that matches the statement, in the order written.
    pub fn matching(&self, statement: &Statement, path: &SearchPath) -> Vec<Arc<Rule>> {
        self.built_in(statement)
            .into_iter()
            .chain(
                self.rules
                    .iter()
                    .filter(|r| r.matches(statement, path))
                    .cloned(),
            )
            .collect()
    }
}
