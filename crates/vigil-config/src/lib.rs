//! Vigil's configuration: the TOML model, strict parsing, and validation that
//! names the file, the key and the reason for every problem.
//!
//! A [`Config`] that loaded is valid: addresses parse, names are unique, verifiers
//! are real SCRAM verifiers and every upstream secret could be read. Serving code
//! never re-checks any of that.

mod approvals;
mod error;
mod masking;
mod model;
mod policy;
mod secret;
mod validate;

use std::path::Path;

pub use approvals::*;
pub use error::{ConfigError, Problem};
pub use masking::*;
pub use model::*;
pub use secret::Secret;
pub use validate::grant_statement;

impl Config {
    /// Reads, parses and validates the file at `path`, resolving its secrets.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.display().to_string(),
            source,
        })?;
        Config::from_toml(&text, path)
    }

    /// Parses and validates `text` as if read from `path`; relative file names
    /// inside it are taken relative to `path`'s folder.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let mut config: Config =
            toml::from_str(text).map_err(|e| ConfigError::parse(&file, text, &e))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut problems = validate::validate(&mut config, base);
        policy::build(&mut config, &file, base, &mut problems)?;
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid { file, problems })
        }
    }
}
