//! Checks that go beyond the shape of the file, and the resolution of secrets.

use std::collections::HashSet;
use std::path::Path;

use vigil_audit::{load_signing_key, AuditConfig, Durability, StoreLocation};

use crate::{ColumnName, Config, Masking, Problem, Secret, UpstreamTlsMode};

/// Resolves the audit section's files against the config's folder and checks
/// that the store location is one Vigil can open and the signing key loads.
fn validate_audit(audit: &mut AuditConfig, base: &Path, problem: &mut impl FnMut(String, String)) {
    match StoreLocation::parse(&audit.store) {
        Ok(StoreLocation::Sqlite(path)) => {
            audit.store = format!("sqlite://{}", base.join(path).display());
        }
        Ok(StoreLocation::Postgres(_)) if audit.mode != Durability::Off => problem(
            "audit.store".into(),
            "the shared PostgreSQL audit store is not available yet; use sqlite://<path>".into(),
        ),
        Ok(StoreLocation::Postgres(_)) => {}
        Err(e) => problem("audit.store".into(), e.to_string()),
    }
    if let Some(key) = &mut audit.signing_key {
        *key = base.join(&*key);
        if let Err(e) = load_signing_key(key) {
            problem("audit.signing_key".into(), e.to_string());
        }
    }
    if audit.queue_capacity == 0 {
        problem("audit.queue_capacity".into(), "must be at least 1".into());
    }
    if audit.max_batch == 0 {
        problem("audit.max_batch".into(), "must be at least 1".into());
    }
}

/// Parses the column names, reads the key and checks that every strategy
/// and detector has what it needs.
fn validate_masking(masking: &mut Masking, base: &Path, problem: &mut impl FnMut(String, String)) {
    match (&masking.key_env, &masking.key_file) {
        (Some(_), Some(_)) => problem(
            "masking.key_env".into(),
            "set key_env or key_file, not both".into(),
        ),
        (Some(var), None) => match std::env::var(var) {
            Ok(value) => masking.key = Some(Secret::new(value)),
            Err(_) => problem(
                "masking.key_env".into(),
                format!("environment variable {var} is not set"),
            ),
        },
        (None, Some(file)) => {
            let file = base.join(file);
            match std::fs::read_to_string(&file) {
                Ok(value) => {
                    masking.key = Some(Secret::new(value.trim_end_matches(['\n', '\r']).into()))
                }
                Err(e) => problem(
                    "masking.key_file".into(),
                    format!("cannot read {}: {e}", file.display()),
                ),
            }
        }
        (None, None) => {}
    }
    if masking.key.as_ref().is_some_and(|k| k.expose().len() < 32) {
        problem(
            "masking.key_env".into(),
            "the masking key must be at least 32 bytes (`openssl rand -hex 32` makes one)".into(),
        );
    }
    let keyless = masking.key.is_none();
    let mut seen = HashSet::new();
    for (i, column) in masking.columns.iter_mut().enumerate() {
        let key = |k: &str| format!("masking.columns[{i}].{k}");
        match ColumnName::parse(&column.column) {
            Some(name) => {
                if !seen.insert((name.clone(), column.databases.clone())) {
                    problem(key("column"), format!("{} is masked twice", column.column));
                }
                column.name = Some(name);
            }
            None => problem(
                key("column"),
                format!("{:?} is not schema.table.column", column.column),
            ),
        }
        if column.strategy.needs_key() && keyless {
            problem(
                key("strategy"),
                "this strategy needs masking.key_env or masking.key_file".into(),
            );
        }
    }
    for (i, detector) in masking.detectors.iter_mut().enumerate() {
        let key = |k: &str| format!("masking.detectors[{i}].{k}");
        let builtin = vigil_mask::DetectorKind::ALL
            .into_iter()
            .find(|k| k.name() == detector.kind);
        detector.builtin = builtin;
        match (
            builtin,
            detector.kind.as_str(),
            &detector.pattern,
            &detector.name,
        ) {
            (None, "regex", None, _) => {
                problem(key("pattern"), "a regex detector needs a pattern".into())
            }
            (None, "regex", Some(_), None) => {
                problem(key("name"), "a regex detector needs a name".into())
            }
            (None, "regex", Some(pattern), Some(name)) => {
                let spec = vigil_mask::DetectorSpec {
                    pattern: vigil_mask::DetectorPattern::Regex {
                        name: name.clone(),
                        pattern: pattern.clone(),
                    },
                    strategy: vigil_mask::Strategy::Redact,
                };
                if let Err(e) = vigil_mask::Detectors::new(vec![spec]) {
                    problem(key("pattern"), e.to_string());
                }
            }
            (None, kind, _, _) => {
                let known: Vec<&str> = vigil_mask::DetectorKind::ALL
                    .iter()
                    .map(|k| k.name())
                    .collect();
                problem(
                    key("kind"),
                    format!(
                        "unknown detector {kind:?}; one of {}, or regex",
                        known.join(", ")
                    ),
                );
            }
            (Some(_), _, Some(_), _) => {
                problem(key("pattern"), "only regex detectors take a pattern".into())
            }
            (Some(_), _, None, _) => {}
        }
        if detector.strategy.needs_key() && keyless {
            problem(
                key("strategy"),
                "this strategy needs masking.key_env or masking.key_file".into(),
            );
        }
    }
}

fn validate_approvals(config: &Config, problem: &mut impl FnMut(String, String)) {
    let approvals = &config.approvals;
    if approvals.timeout_secs == 0 {
        problem("approvals.timeout_secs".into(), "must be at least 1".into());
    }
    if approvals.window_secs == 0 {
        problem("approvals.window_secs".into(), "must be at least 1".into());
    }
    if approvals.approvers.count == 0 {
        problem(
            "approvals.approvers.count".into(),
            "at least one approval is needed".into(),
        );
    }
    for (i, hook) in approvals.webhooks.iter().enumerate() {
        if let Err(reason) = crate::approvals::check_url(&hook.url) {
            problem(format!("approvals.webhooks[{i}].url"), reason);
        }
        if hook.attempts == 0 {
            problem(
                format!("approvals.webhooks[{i}].attempts"),
                "must be at least 1".into(),
            );
        }
    }
    for (i, grant) in approvals.grants.iter().enumerate() {
        let key = |k: &str| format!("approvals.grants[{i}].{k}");
        if grant.group.trim().is_empty() {
            problem(key("group"), "must not be empty".into());
        }
        if grant.databases.is_empty() {
            problem(
                key("databases"),
                "name at least one database (globs allowed)".into(),
            );
        }
        if grant.max_secs == 0 {
            problem(key("max_secs"), "must be at least 1".into());
        }
        if grant.approvers.count == 0 {
            problem(
                key("approvers.count"),
                "at least one approval is needed".into(),
            );
        }
    }
    let mut names = HashSet::new();
    let mut hashes = HashSet::new();
    for (i, token) in config.admin.tokens.iter().enumerate() {
        let key = |k: &str| format!("admin.tokens[{i}].{k}");
        if !names.insert(token.name.as_str()) {
            problem(
                key("name"),
                format!("token name {:?} is used twice", token.name),
            );
        }
        if config.identity(&token.identity).is_none() {
            problem(
                key("identity"),
                format!("{:?} is not one of [[identities]]", token.identity),
            );
        }
        let hex = token.sha256.len() == 64 && token.sha256.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex {
            problem(
                key("sha256"),
                "must be the token's SHA-256 in hex (64 characters); `vigil token` makes a token and its hash".into(),
            );
        } else if !hashes.insert(token.sha256.to_ascii_lowercase()) {
            problem(key("sha256"), "the same token is configured twice".into());
        }
    }
}

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
    validate_audit(&mut config.audit, base, &mut problem);
    validate_masking(&mut config.masking, base, &mut problem);
    validate_approvals(config, &mut problem);
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
        for (r, role) in db.roles.iter().enumerate() {
            let key = |field: &str| format!("databases[{i}].roles[{r}].{field}");
            if !is_plain_role(&role.role) {
                problem(
                    key("role"),
                    format!(
                        "{:?} is not a role name (letters, digits and _ only)",
                        role.role
                    ),
                );
            }
            for kind in &role.identity_kinds {
                if !matches!(kind.as_str(), "person" | "agent" | "service") {
                    problem(
                        key("identity_kinds"),
                        format!("{kind:?} is not an identity kind (person, agent, service)"),
                    );
                }
            }
            for grant in &role.grants {
                if let Err(reason) = grant_statement(grant, &role.role) {
                    problem(key("grants"), format!("{grant:?}: {reason}"));
                }
            }
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

        // Whoever answers at the upstream address picks the method, so the
        // operator's list is all Vigil will answer (libpq's `require_auth`).
        // Whether a password is configured, not whether it could be read:
        // an unreadable one is reported above and should not cascade.
        let has_password = db.password_env.is_some() || db.password_file.is_some();
        let default = if has_password {
            "scram-sha-256"
        } else {
            "trust"
        };
        let written = match &db.auth_methods_text {
            Some(list) => list.clone(),
            None => vec![default.to_owned()],
        };
        if written.is_empty() {
            problem(
                key("auth_methods"),
                "must list at least one method; the choices are \
                 \"scram-sha-256\", \"md5\", \"password\" and \"trust\""
                    .into(),
            );
        }
        let unverified = match db.tls.mode {
            UpstreamTlsMode::VerifyFull => None,
            UpstreamTlsMode::Require => Some("require"),
            UpstreamTlsMode::Disable => Some("disable"),
        };
        db.auth_methods.clear();
        for method in written {
            let gives_away = match method.as_str() {
                "scram-sha-256" | "trust" => None,
                "md5" => Some(("a hash of the service password", "crack it offline")),
                "password" => Some(("the service password itself", "read it")),
                _ => {
                    problem(
                        key("auth_methods"),
                        format!(
                            "{method:?} is not an upstream authentication method; \
                             the choices are \"scram-sha-256\", \"md5\", \"password\" and \"trust\""
                        ),
                    );
                    continue;
                }
            };
            if method != "trust" && !has_password {
                problem(
                    key("auth_methods"),
                    format!(
                        "{method:?} needs a service password; set password_env or password_file"
                    ),
                );
            }
            if let (Some((what, then)), Some(mode), false) =
                (gives_away, unverified, db.allow_insecure_auth)
            {
                problem(
                    key("auth_methods"),
                    format!(
                        "{method:?} would send {what} to a server whose identity is not \
                         checked (tls.mode = {mode:?}), and an impostor at the upstream address \
                         could {then}; use tls.mode = \"verify-full\", or \"scram-sha-256\", \
                         or set allow_insecure_auth = true to accept the risk"
                    ),
                );
            }
            if !db.auth_methods.contains(&method) {
                db.auth_methods.push(method);
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

/// Whether `role` can be written as an identifier without surprises.
fn is_plain_role(role: &str) -> bool {
    !role.is_empty()
        && role.len() <= 63
        && role.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !role.starts_with(|c: char| c.is_ascii_digit())
}

/// The statement that grants `grant` (what stands between GRANT and TO) to
/// `role`, checked to be exactly one GRANT: a grant cannot smuggle in
/// anything else.
pub fn grant_statement(grant: &str, role: &str) -> Result<String, String> {
    let sql = format!("GRANT {grant} TO \"{role}\"");
    vigil_sql::analyze_uncached(&sql).map_err(|e| e.to_string())?;
    if vigil_sql::is_privilege_grant(&sql, role) {
        Ok(sql)
    } else {
        Err(format!(
            "not one GRANT of privileges on objects to {role} (role membership and WITH GRANT OPTION are not provisioned)"
        ))
    }
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

    /// A `[[databases]]` entry whose password comes from a variable this
    /// test process sets, plus `more` keys.
    fn database(password: bool, more: &str) -> String {
        const VAR: &str = "VIGIL_TEST_VALIDATE_SERVICE_PASSWORD";
        std::env::set_var(VAR, "svc-Secret-1f3a");
        let password = if password {
            format!("password_env = '{VAR}'\n")
        } else {
            String::new()
        };
        minimal(&format!(
            "[[databases]]\nname='d'\nupstream='127.0.0.1:5432'\ndatabase='x'\nuser='u'\n{password}{more}"
        ))
    }

    #[test]
    fn auth_methods_default_to_scram_with_a_password_and_trust_without() {
        let config = load(&database(true, "")).unwrap();
        assert_eq!(config.databases[0].auth_methods, ["scram-sha-256"]);
        let config = load(&database(false, "")).unwrap();
        assert_eq!(config.databases[0].auth_methods, ["trust"]);
    }

    #[test]
    fn auth_methods_keep_what_was_written_once_each() {
        let config = load(&database(
            true,
            "auth_methods = ['scram-sha-256', 'trust', 'scram-sha-256']\n",
        ))
        .unwrap();
        assert_eq!(config.databases[0].auth_methods, ["scram-sha-256", "trust"]);
    }

    fn auth_problem(text: &str) -> String {
        let err = load(text).unwrap_err().to_string();
        assert!(!err.contains("svc-Secret-1f3a"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        err
    }

    #[test]
    fn unknown_and_missing_auth_methods_are_refused() {
        let err = auth_problem(&database(true, "auth_methods = ['scram-sha-256', 'gss']\n"));
        assert!(
            err.contains(
                "databases[0].auth_methods: \"gss\" is not an upstream authentication method"
            ),
            "{err}"
        );
        let err = auth_problem(&database(true, "auth_methods = []\n"));
        assert!(
            err.contains("databases[0].auth_methods: must list at least one method"),
            "{err}"
        );
    }

    #[test]
    fn password_methods_need_a_password() {
        for method in ["scram-sha-256", "md5", "password"] {
            let err = auth_problem(&database(
                false,
                &format!("auth_methods = ['{method}']\nallow_insecure_auth = true\n"),
            ));
            assert!(
                err.contains(&format!(
                    "databases[0].auth_methods: \"{method}\" needs a service password; set password_env or password_file"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn md5_and_password_need_verify_full_or_consent() {
        for (method, tls) in [
            ("md5", ""),
            ("password", ""),
            ("md5", "tls = { mode = 'require' }\n"),
            ("password", "tls = { mode = 'require' }\n"),
        ] {
            let stanza = format!("auth_methods = ['scram-sha-256', '{method}']\n{tls}");
            let err = auth_problem(&database(true, &stanza));
            assert!(
                err.contains(&format!(
                    "databases[0].auth_methods: \"{method}\" would send "
                )),
                "{err}"
            );
            for hint in [
                "to a server whose identity is not checked",
                "use tls.mode = \"verify-full\"",
                "set allow_insecure_auth = true",
            ] {
                assert!(err.contains(hint), "missing {hint:?} in {err}");
            }

            let consented = format!("{stanza}allow_insecure_auth = true\n");
            let config = load(&database(true, &consented)).unwrap();
            assert_eq!(config.databases[0].auth_methods, ["scram-sha-256", method]);
        }
    }

    #[test]
    fn md5_and_password_are_fine_over_verify_full() {
        // Any readable file does as a CA here: only its presence is checked.
        let ca = std::env::current_exe().unwrap();
        let stanza = format!(
            "auth_methods = ['md5', 'password']\ntls = {{ mode = 'verify-full', ca_file = '{}' }}\n",
            ca.display()
        );
        let config = load(&database(true, &stanza)).unwrap();
        assert_eq!(config.databases[0].auth_methods, ["md5", "password"]);
        assert!(!config.databases[0].allow_insecure_auth);
    }

    #[test]
    fn parse_errors_never_echo_a_value() {
        let err = load(&minimal("pasword = \"hunter2\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("pasword = …"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = load(&minimal("[auth]\nmethod = hunter2\n"))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn wrong_value_types_are_parse_errors() {
        let err = load(&minimal("max_message_bytes = \"big\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(":3:"), "{err}");
    }

    fn masking_problems(masking: &str) -> String {
        match load(&minimal(masking)) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn masking_is_checked_where_it_is_written() {
        let err = masking_problems(
            "[masking]\n\
             [[masking.columns]]\ncolumn = 'customers.ssn'\n\
             [[masking.columns]]\ncolumn = 's.t.c'\nstrategy = 'hash'\n\
             [[masking.detectors]]\nkind = 'passport'\n\
             [[masking.detectors]]\nkind = 'regex'\nname = 'ticket'\npattern = '(unclosed'\n\
             [[masking.detectors]]\nkind = 'email'\npattern = 'x'\n",
        );
        for expected in [
            "masking.columns[0].column: \"customers.ssn\" is not schema.table.column",
            "masking.columns[1].strategy: this strategy needs masking.key_env or masking.key_file",
            "masking.detectors[0].kind: unknown detector \"passport\"",
            "masking.detectors[1].pattern:",
            "masking.detectors[2].pattern: only regex detectors take a pattern",
        ] {
            assert!(err.contains(expected), "{expected:?} not in:\n{err}");
        }
        let fine = masking_problems(
            "[masking]\n[[masking.columns]]\ncolumn = 's.t.c'\nstrategy = 'keep_last'\nkeep = 4\n\
             [[masking.detectors]]\nkind = 'us_ssn'\n\
             [[masking.detectors]]\nkind = 'regex'\nname = 'ticket'\npattern = 'T-[0-9]+'\n",
        );
        assert_eq!(fine, "");
    }

    #[test]
    fn role_grants_are_privileges_on_objects_to_that_role_only() {
        use super::grant_statement;
        for fine in [
            "USAGE ON SCHEMA shop",
            "SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA shop",
            "USAGE, SELECT ON ALL SEQUENCES IN SCHEMA shop",
            "SELECT (id, status) ON shop.orders",
        ] {
            assert_eq!(
                grant_statement(fine, "agent_role").unwrap(),
                format!("GRANT {fine} TO \"agent_role\"")
            );
        }
        for wrong in [
            "postgres",                                          // role membership
            "pg_read_all_data",                                  // role membership
            "SELECT ON shop.orders TO PUBLIC --",                // to someone else
            "SELECT ON shop.orders TO other,",                   // and to someone else
            "SELECT ON t TO agent_role WITH GRANT OPTION --",    // grant option
            "SELECT ON t TO x; DROP TABLE t; GRANT SELECT ON t", // more than one
            "SELECT ON",                                         // not SQL
        ] {
            assert!(
                grant_statement(wrong, "agent_role").is_err(),
                "{wrong:?} was taken"
            );
        }
    }
}
