//! The configuration as written in TOML. Unknown keys are errors everywhere.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use vigil_audit::AuditConfig;
use vigil_auth::Verifier;
use vigil_policy::{Action, Policy, PolicySettings, RuleConfig};

use crate::{Admin, Approvals, Masking, Secret};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: Server,
    #[serde(default)]
    pub auth: Auth,
    #[serde(default)]
    pub databases: Vec<Database>,
    #[serde(default)]
    pub identities: Vec<IdentityConfig>,
    #[serde(default)]
    pub policy: PolicySettings,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Where and how statement events are recorded. Absent: strict mode into
    /// `vigil-audit.db` beside the config file. Relative paths in it are
    /// resolved against the config file's folder when the config loads.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Dynamic data masking. Absent: nothing is masked.
    #[serde(default)]
    pub masking: Masking,
    /// Approval requests, webhooks and just-in-time grants.
    #[serde(default)]
    pub approvals: Approvals,
    /// Who may use the admin API.
    #[serde(default)]
    pub admin: Admin,
    /// The checked policy: these rules, those of the included files and the
    /// guardrail pack when it is on.
    #[serde(skip)]
    pub compiled_policy: Arc<Policy>,
}

impl Config {
    pub fn database(&self, name: &str) -> Option<&Database> {
        self.databases.iter().find(|db| db.name == name)
    }

    pub fn identity(&self, name: &str) -> Option<&IdentityConfig> {
        self.identities.iter().find(|id| id.name == name)
    }

    /// The policy a session of `identity` on `database` would get, with the
    /// groups the configuration gives it (no grants): what `explain` shows.
    pub fn session_policy(
        &self,
        identity: &IdentityConfig,
        database: &Database,
    ) -> vigil_policy::SessionPolicy {
        self.compiled_policy.for_session(
            &vigil_policy::Subject {
                name: &identity.name,
                groups: &identity.groups,
                kind: identity.kind.as_str(),
            },
            &vigil_policy::Target {
                name: &database.name,
                labels: &database.labels,
                default: database.default_action,
            },
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub listen: String,
    /// The admin HTTP API's address (approvals, grants); not served when absent.
    pub admin_listen: Option<String>,
    /// Largest client message held whole in memory (Query, Parse, Bind …).
    /// COPY data streams through and is not bounded by this.
    #[serde(default = "defaults::max_message_bytes")]
    pub max_message_bytes: usize,
    /// How long sessions may run on after SIGTERM before they are cancelled.
    #[serde(default = "defaults::drain_timeout_secs")]
    pub drain_timeout_secs: u64,
    /// Threads serving sessions, each a single-threaded runtime; 0 means one
    /// per CPU core.
    #[serde(default)]
    pub workers: usize,
    /// Client connections served at once; more are refused with 53300.
    #[serde(default = "defaults::max_client_connections")]
    pub max_client_connections: usize,
    /// Connections from one client address (IPv6: one /64) that have not
    /// finished startup and authentication; more are closed at once, so a
    /// flood of idle sockets from one address cannot hold every slot.
    #[serde(default = "defaults::max_startups_per_address")]
    pub max_startups_per_address: usize,
    /// Present: clients may negotiate TLS. Absent: SSLRequest is answered 'N'.
    pub tls: Option<ServerTls>,
    #[serde(skip)]
    pub listen_addr: Option<SocketAddr>,
}

impl Server {
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
            .expect("validated config has a listen address")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Refuse clients that do not encrypt (PostgreSQL's `hostssl`).
    #[serde(default)]
    pub require: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum AuthMethod {
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// Cleartext password, checked against the SCRAM verifier. Needs TLS unless
    /// `allow_cleartext_without_tls` says otherwise.
    #[serde(rename = "password")]
    Password,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    #[serde(default = "defaults::auth_method")]
    pub method: AuthMethod,
    #[serde(default)]
    pub allow_cleartext_without_tls: bool,
    /// Pause before a failed login is answered.
    #[serde(default = "defaults::failure_delay_ms")]
    pub failure_delay_ms: u64,
    /// This many failures from one client address within `failure_window_secs`
    /// lock that address out for `lockout_secs`.
    #[serde(default = "defaults::max_failures")]
    pub max_failures: u32,
    #[serde(default = "defaults::failure_window_secs")]
    pub failure_window_secs: u64,
    #[serde(default = "defaults::lockout_secs")]
    pub lockout_secs: u64,
    /// A client must finish startup and authentication within this time.
    #[serde(default = "defaults::timeout_secs")]
    pub timeout_secs: u64,
    /// A client must send its first message (startup packet, SSLRequest …)
    /// within this time of connecting.
    #[serde(default = "defaults::first_message_secs")]
    pub first_message_secs: u64,
}

impl Default for Auth {
    fn default() -> Auth {
        toml::from_str("").expect("every auth key has a default")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    /// The name clients ask for in `dbname`.
    pub name: String,
    /// `host:port` of the PostgreSQL server.
    pub upstream: String,
    /// The database on the upstream server.
    pub database: String,
    /// The service role Vigil logs in as.
    pub user: String,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Only here to refuse it with a clear message: secrets are never inline.
    #[serde(default, rename = "password")]
    pub inline_password: Option<toml::Value>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// What a statement no rule matches gets: allow, review or deny.
    #[serde(default = "defaults::default_action")]
    pub default_action: Action,
    #[serde(default)]
    pub tls: UpstreamTls,
    #[serde(default = "defaults::connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// The upstream authentication methods Vigil will answer, as written.
    /// Like libpq's `require_auth`: a server at the upstream address cannot
    /// talk Vigil into a weaker method than the operator chose.
    #[serde(default, rename = "auth_methods")]
    pub auth_methods_text: Option<Vec<String>>,
    /// Lets `md5` or `password` go to a server whose certificate is not
    /// verified, where an impostor could collect the password.
    #[serde(default)]
    pub allow_insecure_auth: bool,
    /// Sessions on this database at once; more are refused with 53300.
    pub max_sessions: Option<usize>,
    /// Upstream roles by identity: a session runs under the first role whose
    /// entry names its identity (by name, group or kind), else under the
    /// service role.
    #[serde(default)]
    pub roles: Vec<UpstreamRole>,
    /// `vigil serve` creates the roles that are missing, with their grants,
    /// before it listens (as `vigil roles provision` does).
    #[serde(default)]
    pub provision_roles: bool,
    /// The resolved service password, if one is configured.
    #[serde(skip)]
    pub password: Option<Secret>,
    /// The checked `auth_methods` (each one of "scram-sha-256", "md5",
    /// "password", "trust"), or the default: `scram-sha-256` with a password
    /// configured, `trust` without.
    #[serde(skip)]
    pub auth_methods: Vec<String>,
}

/// An upstream role some identities run under on a database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamRole {
    /// The role: the service role switches to it when the session starts,
    /// and every way for the client to switch back is refused.
    pub role: String,
    #[serde(default)]
    pub identities: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub identity_kinds: Vec<String>,
    /// What `vigil roles provision` grants the role, each the part of a
    /// GRANT between `GRANT` and `TO` (`SELECT, INSERT ON ALL TABLES IN
    /// SCHEMA shop`, `USAGE ON SCHEMA shop`).
    #[serde(default)]
    pub grants: Vec<String>,
}

impl UpstreamRole {
    /// Whether this entry names an identity with these name, groups and kind.
    pub fn names(&self, name: &str, groups: &[String], kind: &str) -> bool {
        self.identities.iter().any(|n| n == name)
            || self.groups.iter().any(|g| groups.contains(g))
            || self.identity_kinds.iter().any(|k| k == kind)
    }
}

impl Database {
    /// The role an identity runs under on this database (`None`: the
    /// service role).
    pub fn role_for(&self, name: &str, groups: &[String], kind: &str) -> Option<&UpstreamRole> {
        self.roles.iter().find(|r| r.names(name, groups, kind))
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum UpstreamTlsMode {
    #[default]
    #[serde(rename = "disable")]
    Disable,
    /// Encrypt, without checking who the server is.
    #[serde(rename = "require")]
    Require,
    /// Encrypt and check the certificate chain against `ca_file` and the name.
    #[serde(rename = "verify-full")]
    VerifyFull,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    #[serde(default)]
    pub mode: UpstreamTlsMode,
    pub ca_file: Option<PathBuf>,
    /// Name to check in the certificate; defaults to the upstream host.
    pub server_name: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityKind {
    #[default]
    Person,
    Service,
    Agent,
}

impl IdentityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::Person => "person",
            IdentityKind::Service => "service",
            IdentityKind::Agent => "agent",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    pub name: String,
    #[serde(default)]
    pub kind: IdentityKind,
    #[serde(default)]
    pub groups: Vec<String>,
    /// A SCRAM-SHA-256 verifier made by `vigil passwd`.
    #[serde(rename = "password")]
    pub password_text: String,
    /// Sessions of this identity at once, on every database; more are
    /// refused with 53300.
    pub max_sessions: Option<usize>,
    #[serde(skip)]
    pub verifier: Option<Verifier>,
}

mod defaults {
    use super::{Action, AuthMethod};

    pub fn default_action() -> Action {
        Action::Allow
    }
    pub fn max_message_bytes() -> usize {
        16 << 20
    }
    pub fn drain_timeout_secs() -> u64 {
        30
    }
    pub fn max_client_connections() -> usize {
        1_000
    }
    pub fn auth_method() -> AuthMethod {
        AuthMethod::ScramSha256
    }
    pub fn failure_delay_ms() -> u64 {
        500
    }
    pub fn max_failures() -> u32 {
        5
    }
    pub fn failure_window_secs() -> u64 {
        60
    }
    pub fn lockout_secs() -> u64 {
        60
    }
    pub fn timeout_secs() -> u64 {
        30
    }
    pub fn first_message_secs() -> u64 {
        5
    }
    pub fn max_startups_per_address() -> usize {
        32
    }
    pub fn connect_timeout_ms() -> u64 {
        5_000
    }
}
