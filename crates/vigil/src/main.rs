//! The `vigil` command: run the proxy, check a config, explain and test the
//! policy, make password verifiers and admin tokens, read and verify the audit
//! trail, decide approval requests. Logic lives in the library crates and the
//! admin API; this file only wires them to a CLI.

mod admin_client;
mod approvals_cmd;
mod audit_cmd;
mod policy_cmd;
mod reload;

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vigil_config::Config;

#[derive(Parser)]
#[command(name = "vigil", version, about = "Identity-aware PostgreSQL proxy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Serve {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file (and the files and secrets it names), then exit.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Explain or test the policy of a config file.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Print a SCRAM-SHA-256 verifier for a password read from standard input.
    Passwd {
        #[arg(long, default_value_t = vigil_auth::DEFAULT_ITERATIONS)]
        iterations: u32,
    },
    /// Read, search, verify and export the audit trail; make its signing key.
    Audit {
        #[command(subcommand)]
        command: audit_cmd::AuditCommand,
    },
    /// List, show, approve and deny approval requests (through the admin API).
    Approvals {
        #[command(flatten)]
        endpoint: approvals_cmd::Endpoint,
        #[command(subcommand)]
        command: approvals_cmd::ApprovalsCommand,
    },
    /// Ask for a just-in-time grant; list the grants in force (through the admin API).
    Grants {
        #[command(flatten)]
        endpoint: approvals_cmd::Endpoint,
        #[command(subcommand)]
        command: approvals_cmd::GrantsCommand,
    },
    /// Print a new admin API token and the sha256 line for its [[admin.tokens]] entry.
    Token,
    /// Manage the upstream roles databases map identities to.
    Roles {
        #[command(subcommand)]
        command: RolesCommand,
    },
}

#[derive(Subcommand)]
enum RolesCommand {
    /// Create the mapped roles that are missing (NOLOGIN, not superuser),
    /// grant them what the config names, and print what was done.
    Provision {
        #[arg(long, short)]
        config: PathBuf,
        /// Only this database (as clients name it).
        #[arg(long)]
        db: Option<String>,
        /// Print the statements instead of running them.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Print what Vigil sees in a statement, which rules match, and the decision.
    Explain {
        #[arg(long, short)]
        config: PathBuf,
        /// The identity sending the statement.
        #[arg(long = "as")]
        identity: String,
        /// The database (as clients name it).
        #[arg(long)]
        db: String,
        sql: String,
    },
    /// Run a TOML file of [[cases]] (sql, identity, database, expect, rule).
    Test {
        #[arg(long, short)]
        config: PathBuf,
        cases: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve(&config),
        Command::Check { config } => check(&config),
        Command::Policy {
            command:
                PolicyCommand::Explain {
                    config,
                    identity,
                    db,
                    sql,
                },
        } => load(&config).and_then(|c| policy_cmd::explain(&c, &identity, &db, &sql)),
        Command::Policy {
            command: PolicyCommand::Test { config, cases },
        } => load(&config).and_then(|c| policy_cmd::test(&c, &cases)),
        Command::Passwd { iterations } => passwd(iterations),
        // Verify tells a tampered log (1) from one it could not check (2).
        Command::Audit { command } => return audit_cmd::run(command),
        Command::Approvals { endpoint, command } => approvals_cmd::approvals(endpoint, command),
        Command::Grants { endpoint, command } => approvals_cmd::grants(endpoint, command),
        Command::Token => approvals_cmd::token(),
        Command::Roles {
            command:
                RolesCommand::Provision {
                    config,
                    db,
                    dry_run,
                },
        } => load(&config).and_then(|c| provision(&c, db.as_deref(), dry_run)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("vigil: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: &Path) -> anyhow::Result<Config> {
    // The config error already names the file, key and reason.
    Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}

fn check(path: &Path) -> anyhow::Result<()> {
    let config = load(path)?;
    let summary = format!(
        "{}: ok ({} databases, {} identities)",
        path.display(),
        config.databases.len(),
        config.identities.len()
    );
    // Loads the TLS material; the audit store is opened by `serve` only.
    let mut config = config;
    config.audit.mode = vigil_audit::Durability::Off;
    vigil_server::State::new(config)?;
    println!("{summary}");
    Ok(())
}

fn provision(config: &Config, db: Option<&str>, dry_run: bool) -> anyhow::Result<()> {
    if let Some(name) = db {
        anyhow::ensure!(
            config.database(name).is_some(),
            "no database {name:?} in the config"
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let done = runtime.block_on(vigil_server::provision_roles(config, db, !dry_run))?;
    if done.is_empty() {
        println!("no database maps identities to roles");
    }
    for line in done {
        println!("{line}");
    }
    Ok(())
}

fn serve(path: &Path) -> anyhow::Result<()> {
    let filter = std::env::var("VIGIL_LOG").unwrap_or_else(|_| "info".into());
    let filter: tracing_subscriber::filter::Targets = filter.parse().context("VIGIL_LOG")?;
    use tracing_subscriber::prelude::*;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .with(filter)
        .init();

    let config = load(path)?;
    let listen = config.server.listen_addr();
    let worker_count = config.server.workers;
    // The acceptor and signal handling get a small runtime of their own.
    let main = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    // The roles sessions switch to exist before the first session.
    for db in config.databases.iter().filter(|db| db.provision_roles) {
        match main.block_on(vigil_server::provision_roles(&config, Some(&db.name), true)) {
            Ok(done) => done
                .iter()
                .for_each(|line| tracing::info!("provisioned {line}")),
            Err(error) => tracing::error!(
                %error,
                "provisioning roles failed; sessions mapped to a missing role are refused"
            ),
        }
    }
    let state = vigil_server::State::new(config)?;
    let workers = Workers::start(worker_count)?;
    let served = main.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        tokio::spawn(reload::watch(state.clone(), path.to_owned()));
        let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        let admin = match state.admin_listen() {
            Some(address) => {
                let admin = tokio::net::TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on {address} (server.admin_listen)"))?;
                let stopped = async {
                    let _ = admin_stopped.await;
                };
                Some(tokio::spawn(vigil_server::admin::serve(admin, state.clone(), stopped)))
            }
            None => None,
        };
        tracing::info!(%listen, workers = workers.handles.len(), version = env!("CARGO_PKG_VERSION"), "vigil listening");
        vigil_server::serve_on(listener, state.clone(), shutdown_signal(), &workers.handles).await;
        let _ = admin_stop.send(());
        if let Some(admin) = admin {
            let _ = admin.await;
        }
        anyhow::Ok(())
    });
    workers.stop();
    if !state.flush_webhooks(std::time::Duration::from_secs(5)) {
        tracing::warn!("some approval webhooks were still being retried at exit");
    }
    // Commits what is queued and signs a final checkpoint.
    if let Err(error) = main.block_on(state.audit().shutdown()) {
        tracing::error!(%error, "audit log did not shut down cleanly");
    }
    let audit = state.audit().stats();
    tracing::info!(
        events = audit.events,
        commits = audit.commits,
        failed_events = audit.failed_events,
        checkpoints = audit.checkpoints,
        "audit log closed"
    );
    served
}

/// Stack of each session thread: the analyzer's need plus room for the rest.
const WORKER_STACK: usize = vigil_sql::STACK_NEEDED * 2;

/// One single-threaded runtime per worker thread; sessions are spread over them.
struct Workers {
    handles: Vec<tokio::runtime::Handle>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    fn start(count: usize) -> anyhow::Result<Workers> {
        let count = match count {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let mut workers = Workers {
            handles: Vec::new(),
            stops: Vec::new(),
            threads: Vec::new(),
        };
        for i in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting a worker runtime")?;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            workers.handles.push(runtime.handle().clone());
            workers.stops.push(stop);
            workers.threads.push(
                std::thread::Builder::new()
                    .name(format!("vigil-worker-{i}"))
                    // The SQL parser recurses; with this much stack an
                    // analysis never has to switch to a temporary one.
                    .stack_size(WORKER_STACK)
                    .spawn(move || {
                        runtime.block_on(async {
                            let _ = stopped.await;
                        })
                    })
                    .context("starting a worker thread")?,
            );
        }
        Ok(workers)
    }

    fn stop(self) {
        drop(self.stops);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// Completes on SIGTERM or SIGINT. (SIGHUP reloads; see `reload`.)
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

fn passwd(iterations: u32) -> anyhow::Result<()> {
    let password = read_password("Password: ")?;
    let password = password.as_str();
    anyhow::ensure!(!password.is_empty(), "empty password");
    if iterations > 100_000 {
        // tokio-postgres (and so many Rust services) refuse servers asking for more.
        eprintln!("vigil: warning: some clients refuse more than 100000 iterations");
    }
    println!("{}", vigil_auth::Verifier::generate(password, iterations));
    Ok(())
}

/// One line from standard input: after `prompt`, with echo off, on a terminal.
fn read_password(prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    if interactive {
        eprint!("{prompt}");
        std::io::stderr().flush()?;
        set_echo(false);
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if interactive {
        set_echo(true);
        eprintln!();
    }
    read.context("reading the password")?;
    line.truncate(line.trim_end_matches(['\n', '\r']).len());
    Ok(line)
}

/// Turns terminal echo off while a password is typed; best effort.
fn set_echo(on: bool) {
    let _ = std::process::Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(std::process::Stdio::inherit())
        .status();
}
