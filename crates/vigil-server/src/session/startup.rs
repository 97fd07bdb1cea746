//! Which startup parameters a client may send, and which reach the upstream.
//!
//! Identity never comes from here: `user` only names who is trying to log in.
//! Settings that could change privileges upstream (`role`,
//! `session_authorization`, `-c role=…` in `options`) are refused rather than
//! silently dropped, so a client knows it did not get what it asked for.

use crate::SessionError;

/// Run-time settings a client may choose at startup; compared case-insensitively,
/// as PostgreSQL does. Each changes only how this session formats or limits
/// its own work.
const FORWARDED: &[&str] = &[
    "application_name",
    "bytea_output",
    "client_encoding",
    "datestyle",
    "extra_float_digits",
    "idle_in_transaction_session_timeout",
    "intervalstyle",
    "lc_monetary",
    "lc_numeric",
    "lc_time",
    "lock_timeout",
    "search_path",
    "statement_timeout",
    "timezone",
];

pub(crate) struct Startup<'a> {
    pub(crate) user: &'a str,
    pub(crate) database: &'a str,
    pub(crate) application_name: Option<&'a str>,
    /// What goes upstream, besides the service user and database.
    pub(crate) forwarded: Vec<(&'a str, &'a str)>,
    minor: u16,
    protocol_options: Vec<&'a str>,
}

impl<'a> Startup<'a> {
    pub(crate) fn check(
        minor: u16,
        params: &'a [(String, String)],
    ) -> Result<Startup<'a>, SessionError> {
        let mut user = None;
        let mut database = None;
        let mut application_name = None;
        let mut forwarded = Vec::new();
        let mut protocol_options = Vec::new();
        for (name, value) in params {
            match name.as_str() {
                "user" => user = Some(value.as_str()),
                "database" => database = Some(value.as_str()),
                "replication" => {
                    if !matches!(
                        value.to_ascii_lowercase().as_str(),
                        "false" | "off" | "no" | "0"
                    ) {
                        return Err(SessionError::Replication);
                    }
                }
                "options" => {
                    for setting in option_names(value) {
                        if !allowed(setting) {
                            return Err(SessionError::ParameterRefused(setting.to_owned()));
                        }
                    }
                    forwarded.push((name.as_str(), value.as_str()));
                }
                option if option.starts_with("_pq_.") => protocol_options.push(option),
                other if allowed(other) => {
                    if other.eq_ignore_ascii_case("application_name") {
                        application_name = Some(value.as_str());
                    }
                    forwarded.push((name.as_str(), value.as_str()));
                }
                other => return Err(SessionError::ParameterRefused(other.to_owned())),
            }
        }
        let user = user.filter(|u| !u.is_empty()).ok_or(SessionError::NoUser)?;
        Ok(Startup {
            user,
            database: database.filter(|d| !d.is_empty()).unwrap_or(user),
            application_name,
            forwarded,
            minor,
            protocol_options,
        })
    }

    /// The options to name in a NegotiateProtocolVersion, when one is due.
    pub(crate) fn negotiation(&self) -> Option<Vec<&'a str>> {
        (self.minor > 0 || !self.protocol_options.is_empty()).then(|| self.protocol_options.clone())
    }
}

fn allowed(name: &str) -> bool {
    FORWARDED
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(name))
}

/// The setting names in an `options` string: `-c name=value`, `-cname=value`
/// and `--name=value`, with PostgreSQL's backslash escapes. Anything else
/// (other command-line switches) yields its raw text so it is refused.
fn option_names(options: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut words = split_words(options).into_iter();
    while let Some(word) = words.next() {
        let setting = if word == "-c" {
            words.next().unwrap_or("-c")
        } else if let Some(rest) = word.strip_prefix("--") {
            rest
        } else if let Some(rest) = word.strip_prefix("-c") {
            rest
        } else {
            names.push(word);
            continue;
        };
        names.push(setting.split('=').next().unwrap_or(setting));
    }
    names
}

/// Splits on unescaped whitespace; escapes stay in the words, which is enough
/// to read the names (a backslash in a name makes it unknown, so refused).
fn split_words(text: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut start = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                start.get_or_insert(i);
            }
            c if c.is_whitespace() => {
                if let Some(s) = start.take() {
                    words.push(&text[s..i]);
                }
            }
            _ => {
                start.get_or_insert(i);
            }
        }
    }
    if let Some(s) = start {
        words.push(&text[s..]);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ordinary_client_settings_pass() {
        let p = params(&[
            ("user", "alice"),
            ("database", "demo"),
            ("application_name", "psql"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO"),
            ("options", "-c statement_timeout=5s --search_path=app"),
        ]);
        let s = Startup::check(0, &p).unwrap();
        assert_eq!((s.user, s.database), ("alice", "demo"));
        assert_eq!(s.application_name, Some("psql"));
        assert_eq!(s.forwarded.len(), 4);
        assert!(s.negotiation().is_none());
    }

    #[test]
    fn privilege_changing_settings_are_refused() {
        for (name, value) in [
            ("role", "postgres"),
            ("session_authorization", "postgres"),
            ("options", "-c role=postgres"),
            ("options", "-crole=postgres"),
            ("options", "--session_authorization=postgres"),
            ("options", "-c default_transaction_read_only=off"),
            ("options", "-D /tmp"),
        ] {
            let p = params(&[("user", "alice"), (name, value)]);
            assert!(
                matches!(
                    Startup::check(0, &p),
                    Err(SessionError::ParameterRefused(_))
                ),
                "{name}={value}"
            );
        }
    }

    #[test]
    fn replication_is_refused_unless_off() {
        let on = params(&[("user", "a"), ("replication", "database")]);
        assert!(matches!(
            Startup::check(0, &on),
            Err(SessionError::Replication)
        ));
        let off = params(&[("user", "a"), ("replication", "false")]);
        assert!(Startup::check(0, &off).is_ok());
    }

    #[test]
    fn database_defaults_to_user_and_user_is_required() {
        let p = params(&[("user", "alice")]);
        assert_eq!(Startup::check(0, &p).unwrap().database, "alice");
        assert!(matches!(Startup::check(0, &[]), Err(SessionError::NoUser)));
    }

    #[test]
    fn newer_protocol_requests_are_negotiated_down() {
        let p = params(&[("user", "a"), ("_pq_.compression", "on")]);
        assert_eq!(
            Startup::check(2, &p).unwrap().negotiation(),
            Some(vec!["_pq_.compression"])
        );
    }
}
