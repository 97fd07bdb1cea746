//! Vigil's runtime policy: the rules users write, the built-in guardrail pack,
//! and the decision for each statement an identity sends to a database.
//!
//! A policy is built once from the configuration ([`Policy::new`]), narrowed
//! once per session to the rules that can apply to its identity and database
//! ([`Policy::for_session`]), and asked per text ([`SessionPolicy::decide`]).
//!
//! Precedence: every rule that matches a statement counts, and deny beats
//! review beats allow. A statement no rule matches gets the database's
//! default action. A text (a simple-protocol Query with several statements)
//! takes the strongest decision of its statements, so one denied statement
//! stops all of them.
//!
//! Before any rule, a built-in check refuses statements that would change how
//! the server reads SQL text (`standard_conforming_strings`,
//! `client_encoding`): after such a change, the analyzer and the server
//! could read the same bytes as different statements.
//!
//! ```
//! use std::collections::BTreeMap;
//! use vigil_policy::{Action, Policy, PolicySettings, Subject, Target};
//!
//! let settings = PolicySettings { guardrails: true, ..PolicySettings::default() };
//! let policy = Policy::new(&settings, Vec::new()).unwrap();
//! let labels = BTreeMap::from([("environment".into(), "production".into())]);
//! let session = policy.for_session(
//!     &Subject { name: "agent", groups: &[], kind: "agent" },
//!     &Target { name: "prod", labels: &labels, default: Action::Allow },
//! );
//! let analysis = vigil_sql::analyze_uncached("SELECT 1; DROP TABLE users").unwrap();
//! let decision = session.decide(&analysis);
//! assert_eq!(decision.action, Action::Deny);
//! assert_eq!(&*decision.rule.unwrap().id, "guardrail.drop");
//! ```
#![deny(unsafe_code)]

mod cases;
mod decide;
mod explain;
mod glob;
pub mod integrity;
mod model;
pub mod role_lock;
mod rule;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

pub use cases::{Case, CaseFile};
pub use decide::{Decision, SessionPolicy};
pub use explain::{Explanation, StatementExplanation};
pub use glob::{Glob, SearchPath};
pub use model::{
    Action, ApprovalMode, Approvers, ClassName, CopyDirectionName, IdentityKindName, KindName,
    PolicySettings, PropertyMatch, RuleConfig, RuleFile, Subjects, When,
};
pub use rule::Rule;

/// Who is asking: the authenticated identity.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub name: &'a str,
    pub groups: &'a [String],
    /// `person`, `service` or `agent`.
    pub kind: &'a str,
}

/// Where the statement goes: the database as configured.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    /// What a statement no rule matches gets.
    pub default: Action,
}

/// A problem found while building a policy: the rule's key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    /// Where the rule came from (a file name).
    pub origin: String,
    /// Dotted key, e.g. `rules[2].id`.
    pub key: String,
    pub reason: String,
}

/// Rules from one source, with the name of that source for messages.
pub struct RuleSource {
    pub origin: String,
    pub rules: Vec<RuleConfig>,
}

/// All rules, checked, in the order they were written (built-in pack last).
#[derive(Debug, Default)]
pub struct Policy {
    rules: Vec<Arc<Rule>>,
}

const GUARDRAILS: &str = include_str!("guardrails.toml");

impl Policy {
    /// Checks and builds the policy from the `[policy]` settings and the
    /// rules of the config file and its includes.
    pub fn new(
        settings: &PolicySettings,
        sources: Vec<RuleSource>,
    ) -> Result<Policy, Vec<PolicyProblem>> {
        let mut problems = Vec::new();
        let mut ids = HashSet::new();
        let mut rules = Vec::new();
        for source in sources {
            for (i, config) in source.rules.into_iter().enumerate() {
                let problem = |key: &str, reason: String| PolicyProblem {
                    origin: source.origin.clone(),
                    key: format!("rules[{i}].{key}"),
                    reason,
                };
                if config.id.trim().is_empty() {
                    problems.push(problem("id", "must not be empty".into()));
                } else if config.id.starts_with("guardrail.") || config.id.starts_with("vigil.") {
                    problems.push(problem(
                        "id",
                        format!(
                            "{:?}: ids starting with \"guardrail.\" or \"vigil.\" are Vigil's own",
                            config.id
                        ),
                    ));
                } else if !ids.insert(config.id.clone()) {
                    problems.push(problem(
                        "id",
                        format!("rule id {:?} is used twice", config.id),
                    ));
                }
                if !config.mask.is_empty()
                    && (config.action != Action::Allow || config.when.about_statements())
                {
                    problems.push(problem(
                        "mask",
                        "a rule that masks must have action = \"allow\" and a `when` about who and where only (identities, groups, identity_kinds, databases, labels): masks apply to whole sessions".into(),
                    ));
                }
                if let Some(column) = config.mask.iter().find(|c| c.split('.').count() != 3) {
                    problems.push(problem(
                        "mask",
                        format!("{column:?} is not schema.table.column"),
                    ));
                }
                if config.approvers.is_some() && config.action != Action::Review {
                    problems.push(problem(
                        "approvers",
                        "only a rule with action = \"review\" has approvers".into(),
                    ));
                }
                if config.approval.is_some() && config.action != Action::Review {
                    problems.push(problem(
                        "approval",
                        "only a rule with action = \"review\" has an approval mode".into(),
                    ));
                }
                if config.approvers.as_ref().is_some_and(|a| a.count == 0) {
                    problems.push(problem(
                        "approvers.count",
                        "at least one approval is needed".into(),
                    ));
                }
                rules.push(Arc::new(build(config, &source.origin, None)));
            }
        }
        if settings.guardrails {
            let pack: RuleFile =
                toml::from_str(GUARDRAILS).expect("the built-in guardrail pack parses");
            for config in pack.rules {
                rules.push(Arc::new(build(
                    config,
                    "built-in guardrail pack",
                    Some(settings),
                )));
            }
        }
        if problems.is_empty() {
            Ok(Policy { rules })
        } else {
            Err(problems)
        }
    }

    pub fn rules(&self) -> &[Arc<Rule>] {
        &self.rules
    }

    /// The columns rules mask for `subject` on `target`.
    pub fn masks_for(&self, subject: &Subject<'_>, target: &Target<'_>) -> Vec<&str> {
        self.rules
            .iter()
            .filter(|rule| !rule.mask.is_empty() && rule.applies_to(subject, target))
            .flat_map(|rule| rule.mask.iter().map(String::as_str))
            .collect()
    }

    /// The rules that can apply to `subject` on `target`, for one session.
    pub fn for_session(&self, subject: &Subject<'_>, target: &Target<'_>) -> SessionPolicy {
        let rules = self
            .rules
            .iter()
            .filter(|rule| rule.applies_to(subject, target))
            .cloned()
            .collect();
        SessionPolicy::new(rules, target.default)
    }
}

fn build(config: RuleConfig, origin: &str, pack: Option<&PolicySettings>) -> Rule {
    let mut when = config.when;
    let mut unless = config.unless;
    if let Some(settings) = pack {
        when.labels.extend(settings.guardrail_labels.clone());
        unless = settings.guardrails_exempt.clone();
    }
    let message = config.message.unwrap_or_else(|| match config.action {
        Action::Review => "requires approval".to_owned(),
        _ => format!("denied by rule {}", config.id),
    });
    Rule {
        id: config.id.into(),
        action: config.action,
        message,
        hint: config.hint,
        description: config.description,
        origin: origin.to_owned(),
        when,
        unless,
        mask: config.mask,
        approvers: config.approvers,
        approval: config.approval,
    }
}
