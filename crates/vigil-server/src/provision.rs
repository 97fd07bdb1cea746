//! `vigil roles provision`, and `provision_roles = true` at start: the
//! upstream roles a database maps identities to are created if missing
//! (`NOLOGIN`, no superuser, no other attribute) and given the grants the
//! config names, and nothing else. The service role is made a member when
//! it needs to be, so it can switch to them.

use vigil_config::{Config, Database};

use crate::upstream::{self, Upstream};

/// Why provisioning stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("database {database:?}: {reason}")]
    Connect { database: String, reason: String },
    #[error("database {database:?}: {sql}: {reason}")]
    Statement {
        database: String,
        sql: String,
        reason: String,
    },
    #[error("database {database:?}: role {role:?} exists and is a superuser; Vigil maps identities only to roles that are not")]
    Superuser { database: String, role: String },
}

/// Provisions the roles of every database that maps identities to roles
/// (`only`: of that one database); with `apply` false, only says what it
/// would do. Returns what it did, one line each.
pub async fn provision_roles(
    config: &Config,
    only: Option<&str>,
    apply: bool,
) -> Result<Vec<String>, ProvisionError> {
    let mut done = Vec::new();
    for db in &config.databases {
        if db.roles.is_empty() || only.is_some_and(|name| name != db.name) {
            continue;
        }
        provision_database(db, apply, &mut done).await?;
    }
    Ok(done)
}

async fn provision_database(
    db: &Database,
    apply: bool,
    done: &mut Vec<String>,
) -> Result<(), ProvisionError> {
    let connect_failed = |reason: String| ProvisionError::Connect {
        database: db.name.clone(),
        reason,
    };
    let connector = crate::tls::connector(&db.tls).map_err(|e| connect_failed(e.to_string()))?;
    let tls = upstream::tls_target(db, connector.as_ref());
    let mut upstream = upstream::connect(db, tls.as_ref(), &[])
        .await
        .map_err(|e| connect_failed(e.to_string()))?;
    let mut run = Runner {
        upstream: &mut upstream,
        db,
        apply,
        done,
    };
    let service_is_superuser = run
        .ask("SELECT rolsuper::text FROM pg_catalog.pg_roles WHERE rolname = current_user")
        .await?
        .as_deref()
        == Some("true");
    let mut seen: Vec<&str> = Vec::new();
    for mapped in &db.roles {
        let role = mapped.role.as_str();
        if !seen.contains(&role) {
            seen.push(role);
            // Role names are letters, digits and `_` (validated), so they
            // can be written into the text as they are.
            let exists = run
                .ask(&format!(
                    "SELECT rolsuper::text FROM pg_catalog.pg_roles WHERE rolname = '{role}'"
                ))
                .await?;
            match exists.as_deref() {
                Some("true") => {
                    return Err(ProvisionError::Superuser {
                        database: db.name.clone(),
                        role: role.to_owned(),
                    })
                }
                Some(_) => run.say(format!("role {role} exists")),
                None => {
                    run.exec(
                        &format!("CREATE ROLE \"{role}\" NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"),
                        format!("created role {role} (NOLOGIN)"),
                    )
                    .await?
                }
            }
            // A superuser may switch to any role.
            let member = match (service_is_superuser, exists.is_some() || apply) {
                (true, _) => true,
                (false, true) => {
                    run.ask(&format!(
                        "SELECT pg_catalog.pg_has_role(current_user, '{role}', 'MEMBER')::text"
                    ))
                    .await?
                    .as_deref()
                        == Some("true")
                }
                (false, false) => false,
            };
            if !member {
                run.exec(
                    &format!("GRANT \"{role}\" TO \"{}\"", db.user),
                    format!("made the service role {} a member of {role}", db.user),
                )
                .await?;
            }
        }
        for grant in &mapped.grants {
            let sql = vigil_config::grant_statement(grant, role).map_err(|reason| {
                ProvisionError::Statement {
                    database: db.name.clone(),
                    sql: grant.clone(),
                    reason,
                }
            })?;
            run.exec(&sql, format!("granted {grant} to {role}")).await?;
        }
    }
    Ok(())
}

/// Runs provisioning statements on one database and notes what they did.
struct Runner<'a> {
    upstream: &'a mut Upstream,
    db: &'a Database,
    apply: bool,
    done: &'a mut Vec<String>,
}

impl Runner<'_> {
    /// The first column of the first row `sql` returns.
    async fn ask(&mut self, sql: &str) -> Result<Option<String>, ProvisionError> {
        let rows = upstream::simple_query(self.upstream, sql)
            .await
            .map_err(|e| self.failed(sql, e))?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|row| row.into_iter().next())
            .flatten())
    }

    /// Runs `sql` (when applying) and notes `what` it did.
    async fn exec(&mut self, sql: &str, what: String) -> Result<(), ProvisionError> {
        if self.apply {
            upstream::simple_query(self.upstream, sql)
                .await
                .map_err(|e| self.failed(sql, e))?;
            self.say(what);
        } else {
            self.say(format!("would run: {sql}"));
        }
        Ok(())
    }

    fn say(&mut self, what: String) {
        self.done.push(format!("{}: {what}", self.db.name));
    }

    fn failed(&self, sql: &str, error: upstream::UpstreamError) -> ProvisionError {
        ProvisionError::Statement {
            database: self.db.name.clone(),
            sql: sql.to_owned(),
            reason: error.to_string(),
        }
    }
}
