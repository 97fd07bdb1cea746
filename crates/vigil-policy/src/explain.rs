//! `vigil policy explain`: the analysis, the rules that matched and the
//! decision, for a person reading a terminal.

use std::fmt;
use std::sync::Arc;

use vigil_sql::{Analysis, SettingValue};

use crate::{Action, Decision, Rule, SearchPath, SessionPolicy};

pub struct Explanation<'a> {
    pub analysis: &'a Analysis,
    pub statements: Vec<StatementExplanation>,
    pub decision: Decision,
    pub default: Action,
}

pub struct StatementExplanation {
    pub matched: Vec<Arc<Rule>>,
    pub decision: Decision,
}

impl SessionPolicy {
    pub fn explain<'a>(&self, analysis: &'a Analysis) -> Explanation<'a> {
        let path = SearchPath::default();
        let statements = analysis
            .statements
            .iter()
            .enumerate()
            .map(|(i, s)| StatementExplanation {
                matched: self.matching(s, &path),
                decision: self.decide_statement(i, s, &path),
            })
            .collect();
        Explanation {
            analysis,
            statements,
            decision: self.decide(analysis),
            default: self.default_action(),
        }
    }
}

fn list(items: impl IntoIterator<Item = String>) -> String {
    let items: Vec<String> = items.into_iter().collect();
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

impl fmt::Display for Explanation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.analysis.statements.len();
        for (i, (statement, explained)) in self
            .analysis
            .statements
            .iter()
            .zip(&self.statements)
            .enumerate()
        {
            writeln!(
                f,
                "statement {} of {count}: {}",
                i + 1,
                statement.text.trim()
            )?;
            let mut kinds = statement.kind.to_string();
            if !statement.inner_kinds.is_empty() {
                kinds += &format!(
                    " (runs: {})",
                    list(statement.inner_kinds.iter().map(|k| k.to_string()))
                );
            }
            writeln!(f, "  kind:        {kinds}")?;
            writeln!(f, "  class:       {}", statement.class)?;
            writeln!(
                f,
                "  relations:   {}",
                list(statement.relations.iter().map(|r| format!(
                    "{r} ({})",
                    match r.access {
                        vigil_sql::Access::Read => "read",
                        vigil_sql::Access::Write => "write",
                    }
                )))
            )?;
            writeln!(
                f,
                "  columns:     {}",
                list(statement.columns.iter().map(|c| match &c.relation {
                    Some(r) => format!("{r}.{}", c.column),
                    None => c.column.clone(),
                }))
            )?;
            writeln!(
                f,
                "  functions:   {}",
                list(statement.functions.iter().cloned())
            )?;
            let p = &statement.properties;
            let mut props = Vec::new();
            match p.has_where {
                Some(false) => props.push("no WHERE".to_owned()),
                Some(true) => props.push("has WHERE".to_owned()),
                None => {}
            }
            if p.data_modifying_cte {
                props.push("data-modifying CTE".into());
            }
            if p.select_into {
                props.push("SELECT INTO".into());
            }
            if let Some(copy) = p.copy {
                let direction = match copy.direction {
                    vigil_sql::CopyDirection::From => "from",
                    vigil_sql::CopyDirection::To => "to",
                };
                let place = if copy.program {
                    "program"
                } else if copy.stdio {
                    "client"
                } else {
                    "server file"
                };
                props.push(format!("COPY {direction} {place}"));
            }
            if p.explain_analyze {
                props.push("EXPLAIN ANALYZE".into());
            }
            for change in &p.settings {
                let value = match &change.value {
                    SettingValue::Default => "DEFAULT".to_owned(),
                    SettingValue::Value(v) => format!("{v:?}"),
                    SettingValue::Unknown => "?".to_owned(),
                };
                props.push(format!(
                    "sets {} = {value}",
                    change.name.as_deref().unwrap_or("?")
                ));
            }
            writeln!(f, "  properties:  {}", list(props))?;
            writeln!(f, "  fingerprint: {}", statement.fingerprint)?;
            if explained.matched.is_empty() {
                writeln!(
                    f,
                    "  rules:       none matched; database default is {}",
                    self.default
                )?;
            } else {
                writeln!(f, "  rules:")?;
                for rule in &explained.matched {
                    writeln!(
                        f,
                        "    {} {} ({}): {}",
                        rule.action, rule.id, rule.origin, rule.message
                    )?;
                }
            }
            writeln!(f, "  decision:    {}", explained.decision.action)?;
        }
        if !self.analysis.tags.is_empty() {
            writeln!(
                f,
                "tags: {}",
                list(self.analysis.tags.iter().map(|(k, v)| format!("{k}={v:?}")))
            )?;
        }
        write!(
            f,
            "decision: {}",
            self.decision.action.as_str().to_uppercase()
        )?;
        match &self.decision.rule {
            Some(rule) => {
                write!(f, " by rule {}", rule.id)?;
                if let Some(i) = self.decision.statement.filter(|_| count > 1) {
                    write!(f, " (statement {})", i + 1)?;
                }
                writeln!(f)?;
                if self.decision.action != Action::Allow {
                    writeln!(f, "  message: {}", rule.message)?;
                    if let Some(hint) = &rule.hint {
                        writeln!(f, "  hint:    {hint}")?;
                    }
                }
                Ok(())
            }
            None => writeln!(f, " (database default)"),
        }
    }
}
