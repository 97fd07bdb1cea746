//! Checks that go beyond the shape of the file, and the resolution of secrets.

use std::collections::HashSet;
use std::path::Path;

use crate::{Config, Problem, Secret, UpstreamTlsMode};

/// Validates `config` in place, filling in the derived fields, and returns
/// every problem found (empty when the config is good).
pub(crate) fn validate(config: &mut Config, base: &Path) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut problem = |key: String, reason: String| problems.push(Problem::new(key, reason));

    match config.server.listen.parse() {
        Ok(addr) => config.server.listen_addr = Some(addr),
        Err(_) => problem(
            "server.listen".into(),
            format!(
                "{:?} is not an address like 127.0.0.1:6432",
                config.server.listen
            ),
        ),
    }
    if let Some(admin) = &config.server.admin_listen {
        if admin.parse::<std::net::SocketAddr>().is_err() {
            problem(
                "server.admin_listen".into(),
                format!("{admin:?} is not an address like 127.0.0.1:9187"),
            );
        }
    }
    if config.server.max_message_bytes < 1024 {
        problem(
            "server.max_message_bytes".into(),
            "must be at least 1024".into(),
        );
    }
    if let Some(tls) = &mut config.server.tls {
        for (key, file) in [
            ("cert_file", &mut tls.cert_file),
            ("key_file", &mut tls.key_file),
        ] {
            *file = base.join(&*file);
            if !file.is_file() {
                problem(
                    format!("server.tls.{key}"),
                    format!("{} is not a readable file", file.display()),
                );
            }
        }
    }
    if config.auth.max_failures == 0 {
        problem("auth.max_failures".into(), "must be at least 1".into());
    }
    if config.auth.timeout_secs == 0 {
        problem("auth.timeout_secs".into(), "must be at least 1".into());
    }

    let mut names = HashSet::new();
    for (i, db) in config.databases.iter_mut().enumerate() {
        let key = |field: &str| format!("databases[{i}].{field}");
        if db.name.is_empty() {
            problem(key("name"), "must not be empty".into());
        } else if !names.insert(db.name.clone()) {
            problem(
                key("name"),
                format!("database {:?} is defined twice", db.name),
            );
        }
        if !is_host_port(&db.upstream) {
            problem(
                key("upstream"),
                format!("{:?} is not host:port, e.g. 127.0.0.1:5432", db.upstream),
            );
        }
        if db.inline_password.is_some() {
            problem(
                key("password"),
                "upstream passwords are never written in the config; use password_env or password_file"
                    .into(),
            );
        }
        match (&db.password_env, &db.password_file) {
            (Some(_), Some(_)) => problem(
                key("password_env"),
                "set password_env or password_file, not both".into(),
            ),
            (Some(var), None) => match std::env::var(var) {
                Ok(value) => db.password = Some(Secret::new(value)),
                Err(_) => problem(
                    key("password_env"),
                    format!("environment variable {var} is not set"),
                ),
            },
            (None, Some(file)) => {
                let file = base.join(file);
                match std::fs::read_to_string(&file) {
                    Ok(value) => {
                        db.password = Some(Secret::new(value.trim_end_matches(['\n', '\r']).into()))
                    }
                    Err(e) => problem(
                        key("password_file"),
                        format!("cannot read {}: {e}", file.display()),
                    ),
                }
            }
            (None, None) => {}
        }
        match db.tls.mode {
            UpstreamTlsMode::VerifyFull if db.tls.ca_file.is_none() => problem(
                key("tls.ca_file"),
                "verify-full needs the CA certificate that signed the server's".into(),
            ),
            _ => {}
        }
        if let Some(ca) = &mut db.tls.ca_file {
            *ca = base.join(&*ca);
            if !ca.is_file() {
                problem(
                    key("tls.ca_file"),
                    format!("{} is not a readable file", ca.display()),
                );
            }
        }
    }

    let mut identities = HashSet::new();
    for (i, identity) in config.identities.iter_mut().enumerate() {
        let key = |field: &str| format!("identities[{i}].{field}");
        if identity.name.is_empty() {
            problem(key("name"), "must not be empty".into());
        } else if !identities.insert(identity.name.clone()) {
            problem(
                key("name"),
                format!("identity {:?} is defined twice", identity.name),
            );
        }
        match identity.password_text.parse() {
            Ok(verifier) => identity.verifier = Some(verifier),
            Err(e) => problem(
                key("password"),
                format!("{e}; make one with `vigil passwd`"),
            ),
        }
    }
    problems
}

fn is_host_port(text: &str) -> bool {
    match text.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, ConfigError};
    use std::path::Path;

    const VERIFIER: &str = "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$\
        iX6MDuUL5a1wn5dRuV6Ubfz1Qv6JL2EJ4w0NLQUJ5J0=:QyKgGlb4cIXvPqy0S+33xsTZ7dvHkXMz1CiaSLGJ3Ms=";

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("/etc/vigil/test.toml"))
    }

    fn minimal(extra: &str) -> String {
        format!("[server]\nlisten = \"127.0.0.1:6432\"\n{extra}")
    }

    #[test]
    fn a_minimal_config_loads_with_defaults() {
        let config = load(&minimal("")).unwrap();
        assert_eq!(config.server.listen_addr().port(), 6432);
        assert_eq!(config.server.max_message_bytes, 16 << 20);
        assert_eq!(config.auth.max_failures, 5);
    }

    #[test]
    fn unknown_keys_name_the_line_and_key() {
        let err = load(&minimal("lisen = \"x\"\n")).unwrap_err().to_string();
        assert!(err.starts_with("/etc/vigil/test.toml:3:1: "), "{err}");
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn inline_upstream_passwords_are_refused() {
        let err = load(&minimal(
            "[[databases]]\nname='d'\nupstream='127.0.0.1:5432'\ndatabase='x'\nuser='u'\npassword='hunter2'\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("databases[0].password: upstream passwords are never written"),
            "{err}"
        );
        assert!(!err.contains("hunter2"));
    }

    #[test]
    fn every_problem_is_listed_with_its_key() {
        let err = load(&format!(
            "[server]\nlisten='nowhere'\n\
             [[databases]]\nname='d'\nupstream='localhost'\ndatabase='x'\nuser='u'\npassword_env='VIGIL_TEST_UNSET_VARIABLE'\n\
             [[databases]]\nname='d'\nupstream='h:1'\ndatabase='x'\nuser='u'\n\
             [[identities]]\nname='alice'\npassword='alice-demo'\n\
             [[identities]]\nname='bob'\npassword='{VERIFIER}'\n"
        ))
        .unwrap_err()
        .to_string();
        for expected in [
            "test.toml: server.listen: ",
            "test.toml: databases[0].upstream: ",
            "test.toml: databases[0].password_env: environment variable VIGIL_TEST_UNSET_VARIABLE is not set",
            "test.toml: databases[1].name: database \"d\" is defined twice",
            "test.toml: identities[0].password: not a SCRAM-SHA-256 verifier",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
        }
        assert!(!err.contains("identities[1]"), "{err}");
    }

    #[test]
    fn wrong_value_types_are_parse_errors() {
        let err = load(&minimal("max_message_bytes = \"big\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(":3:"), "{err}");
    }
}
