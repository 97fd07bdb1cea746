//! Configuration errors, worded for the person editing the file.

use std::fmt;

/// One thing wrong with a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path to the key, e.g. `databases[1].password_env`.
    pub key: String,
    pub reason: String,
}

impl Problem {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Problem {
        Problem {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a key or value has the wrong shape.
    #[error("{file}:{line}:{column}: {message}\n    | {text}")]
    Parse {
        file: String,
        line: usize,
        column: usize,
        message: String,
        /// The offending line, so the error reads without opening the file.
        text: String,
    },
    #[error("{}", Listing { file, problems })]
    Invalid {
        file: String,
        problems: Vec<Problem>,
    },
}

struct Listing<'a> {
    file: &'a str,
    problems: &'a [Problem],
}

impl fmt::Display for Listing<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {}: {}", self.file, problem.key, problem.reason)?;
        }
        Ok(())
    }
}

impl ConfigError {
    pub(crate) fn parse(file: &str, text: &str, error: &toml::de::Error) -> ConfigError {
        let offset = error.span().map_or(0, |span| span.start).min(text.len());
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        let line_text = text[line_start..].lines().next().unwrap_or("");
        // The offending line may hold a secret (a mistyped password key, an
        // unquoted value): show its key, never its value.
        let line_text = match line_text.split_once('=') {
            Some((key, _)) => format!("{} = …", key.trim_end()),
            None => line_text.to_owned(),
        };
        ConfigError::Parse {
            file: file.to_owned(),
            line,
            column,
            message: error.message().trim().to_owned(),
            text: line_text,
        }
    }
}
