//! Which startup parameters a client may send, and which reach the upstream.
//!
//! Identity never comes from here: `user` only names who is trying to log in.
//! A client may set at startup any setting it may `SET` itself, with the same
//! exceptions: settings that switch identity (`role`,
//! `session_authorization`), those that govern the server's own logging or
//! that only superusers may touch (`log_statement`,
//! `session_replication_role` …), and values that would make the server read
//! SQL differently from Vigil (`standard_conforming_strings=off`, a
//! client-only `client_encoding`, a `search_path` that puts `pg_catalog`
//! after another schema). Those are refused rather than silently dropped, so
//! a client knows it did not get what it asked for.

use crate::SessionError;

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
                    for (setting, value) in option_settings(value) {
                        if !allowed(setting, value) {
                            return Err(SessionError::ParameterRefused(setting.to_owned()));
                        }
                    }
                    forwarded.push((name.as_str(), value.as_str()));
                }
                option if option.starts_with("_pq_.") => protocol_options.push(option),
                other if allowed(other, Some(value)) => {
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

/// Whether a client may set `name` (to `value`, when known) at startup: as
/// it may with SET, less what the integrity and least-privilege rules name.
/// Names are matched as PostgreSQL matches them, case-insensitively.
fn allowed(name: &str, value: Option<&str>) -> bool {
    use vigil_policy::integrity::{encoding_is_safe, is_on, pg_catalog_first};
    let name = name.to_ascii_lowercase();
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if !plain || vigil_sql::is_admin_setting(&name) {
        return false;
    }
    match name.as_str() {
        // Identity switches; protocol-level parameters with meanings of their own.
        "role" | "session_authorization" | "is_superuser" => false,
        "client_encoding" => value.is_some_and(encoding_is_safe),
        "standard_conforming_strings" => value.is_some_and(is_on),
        "search_path" => value.is_some_and(pg_catalog_first),
        _ => true,
    }
}

/// The settings in an `options` string: `-c name=value`, `-cname=value` and
/// `--name=value`, with PostgreSQL's backslash escapes. Anything else (other
/// command-line switches) yields its raw text and no value, so it is refused.
fn option_settings(options: &str) -> Vec<(&str, Option<&str>)> {
    let mut settings = Vec::new();
    let mut words = split_words(options).into_iter();
    while let Some(word) = words.next() {
        let setting = if word == "-c" {
            words.next().unwrap_or("-c")
        } else if let Some(rest) = word.strip_prefix("--") {
            rest
        } else if let Some(rest) = word.strip_prefix("-c") {
            rest
        } else {
            settings.push((word, None));
            continue;
        };
        match setting.split_once('=') {
            Some((name, value)) => settings.push((name, Some(value))),
            None => settings.push((setting, None)),
        }
    }
    settings
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
            ("options", "-c log_statement=none"),
            ("options", "-c session_replication_role=replica"),
            ("log_min_duration_statement", "-1"),
            ("standard_conforming_strings", "off"),
            ("client_encoding", "SJIS"),
            ("search_path", "evil, pg_catalog"),
            ("options", "-c search_path=evil,pg_catalog"),
            ("options", "-c standard_conforming_strings=off"),
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
    fn what_a_session_may_set_itself_is_taken() {
        let p = params(&[
            ("user", "alice"),
            ("default_transaction_isolation", "serializable"),
            ("client_min_messages", "warning"),
            (
                "options",
                "-c default_transaction_read_only=off -c work_mem=64MB",
            ),
            ("search_path", "pg_catalog, app"),
            ("standard_conforming_strings", "on"),
            ("client_encoding", "LATIN1"),
            ("myapp.tenant", "42"),
        ]);
        assert_eq!(Startup::check(0, &p).unwrap().forwarded.len(), 7);
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
