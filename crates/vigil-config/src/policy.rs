//! The policy part of the configuration: the rules of the file itself and of
//! the files it includes, checked and built into one [`Policy`].

use std::path::Path;
use std::sync::Arc;

use vigil_policy::{Policy, RuleFile, RuleSource};

use crate::{Config, ConfigError, Problem};

/// Reads the included rule files and builds the policy. A file that does not
/// parse is an error of its own (with its line); other problems join the list.
pub(crate) fn build(
    config: &mut Config,
    file: &str,
    base: &Path,
    problems: &mut Vec<Problem>,
) -> Result<(), ConfigError> {
    let mut sources = vec![RuleSource {
        origin: file.to_owned(),
        rules: std::mem::take(&mut config.rules),
    }];
    for (i, include) in config.policy.include.iter().enumerate() {
        let path = base.join(include);
        let name = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                problems.push(Problem::new(
                    format!("policy.include[{i}]"),
                    format!("cannot read {name}: {e}"),
                ));
                continue;
            }
        };
        let rules: RuleFile =
            toml::from_str(&text).map_err(|e| ConfigError::parse(&name, &text, &e))?;
        sources.push(RuleSource {
            origin: name,
            rules: rules.rules,
        });
    }
    let kept: Vec<_> = sources[0].rules.clone();
    match Policy::new(&config.policy, sources) {
        Ok(policy) => config.compiled_policy = Arc::new(policy),
        Err(found) => problems.extend(found.into_iter().map(|p| {
            let key = if p.origin == file {
                p.key
            } else {
                format!("{} (in {})", p.key, p.origin)
            };
            Problem::new(key, p.reason)
        })),
    }
    config.rules = kept;
    Ok(())
}
