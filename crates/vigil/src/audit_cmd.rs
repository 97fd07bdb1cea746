//! `vigil audit …`: make the checkpoint signing key, and read, search, verify, anchor
//! and export an existing audit store. The work is vigil-audit's; this module turns
//! flags into its calls and records into lines.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use vigil_audit::keyfile::key_id;
use vigil_audit::store::DEFAULT_SEARCH_LIMIT;
use vigil_audit::{
    export_anchor, generate_key, load_verifying_key, open_existing_store, open_segments,
    public_key_path, read_anchor, verify_segments, write_records, AuditEvent, ExportFormat,
    SearchFilter, SessionInfo, Store, StoreLocation, StoredEvent,
};

/// How often `tail -f` asks the store for new records.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);
/// Most records `tail -f` reads per poll.
const FOLLOW_PAGE: usize = 1000;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Make an Ed25519 key for signing checkpoints (PATH, mode 0600) and its public half (PATH.pub).
    Keygen { path: PathBuf },
    /// Print the newest events, oldest first; with -f, keep printing new ones.
    Tail {
        #[command(flatten)]
        source: Source,
        /// How many events.
        #[arg(short = 'n', long = "lines", default_value_t = 20)]
        count: usize,
        /// Keep polling and print events as they are committed, until interrupted.
        #[arg(short, long)]
        follow: bool,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Find events by identity, database, table, decision, fingerprint, kind or time.
    Search {
        #[command(flatten)]
        source: Source,
        #[command(flatten)]
        filter: Filter,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Check the hash chain, the checkpoint signatures and, if given, an anchor.
    /// Exits 1 when the log was tampered with, 2 when it could not be checked.
    Verify {
        #[command(flatten)]
        source: Source,
        /// Public key (PATH.pub from keygen). Default with --config: its signing_key's .pub.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// An anchor exported earlier: the chain must still contain it.
        #[arg(long, value_name = "FILE")]
        anchor: Option<PathBuf>,
        /// An older, rotated segment file; repeat for several, oldest first.
        #[arg(long = "segment", value_name = "FILE")]
        segments: Vec<PathBuf>,
    },
    /// Write the newest signed checkpoint to FILE, to keep where the store's owner cannot reach it.
    Anchor {
        #[command(flatten)]
        source: Source,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Write every record from --from-seq on, as hashed JSON lines or OCSF events.
    Export {
        #[command(flatten)]
        source: Source,
        #[arg(long, value_enum, default_value_t = ExportAs::Jsonl)]
        format: ExportAs,
        #[arg(long, default_value_t = 0)]
        from_seq: u64,
        /// Write here instead of standard output (replacing the file).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// Which store to read: the one a config file names, or one given directly.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct Source {
    /// A config file: its [audit] store (and, for verify, its signing key's public half).
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The store: sqlite://PATH or a bare PATH. Never created.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
}

#[derive(Args)]
pub struct Filter {
    /// The identity (also the user of auth.failure and the actor of admin.action).
    #[arg(long)]
    identity: Option<String>,
    /// The database, as clients name it.
    #[arg(long)]
    database: Option<String>,
    /// A relation: schema.table exactly, or a table name in any schema.
    #[arg(long)]
    table: Option<String>,
    /// The policy decision recorded for a statement.
    #[arg(long, value_parser = ["allow", "deny", "review"])]
    decision: Option<String>,
    /// The statement fingerprint (the same for a statement whatever its literals).
    #[arg(long)]
    fingerprint: Option<String>,
    /// An event kind: statement, statement.completed, session.start, auth.failure, …
    #[arg(long)]
    kind: Option<String>,
    /// The session id (as in session.start and every statement of the session).
    #[arg(long = "session", value_name = "ID")]
    session_id: Option<u64>,
    /// From this time on (inclusive): RFC 3339, or a date meaning UTC midnight.
    #[arg(long)]
    since: Option<String>,
    /// Before this time (exclusive): RFC 3339, or a date meaning UTC midnight.
    #[arg(long)]
    until: Option<String>,
    /// At most this many events: the most recent matches, printed oldest first.
    #[arg(long, default_value_t = DEFAULT_SEARCH_LIMIT)]
    limit: usize,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// One readable line per event.
    Text,
    /// The records as hashed, with their hash: what `export --format jsonl` writes.
    Jsonl,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportAs {
    Jsonl,
    Ocsf,
}

/// How a command that ran to the end came out.
enum Outcome {
    Done,
    /// `verify` found problems in the log.
    ProblemsFound,
}

/// Runs one `vigil audit` command. Exit codes: 0 done, 1 the log failed verification,
/// 2 the command could not run (no such store, unreadable key, …), as for usage errors.
pub fn run(command: AuditCommand) -> ExitCode {
    match execute(command) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::ProblemsFound) => ExitCode::from(1),
        // `vigil audit export | head` is not a failure.
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil: {}", sentence(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes in one line, each said once: several library errors
/// already include their source in their own message.
fn sentence(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

fn execute(command: AuditCommand) -> anyhow::Result<Outcome> {
    match command {
        AuditCommand::Keygen { path } => keygen(&path)?,
        AuditCommand::Tail {
            source,
            count,
            follow,
            format,
        } => tail(source.open()?.store.as_ref(), count, follow, format)?,
        AuditCommand::Search {
            source,
            filter,
            format,
        } => search(source.open()?.store.as_ref(), filter, format)?,
        AuditCommand::Verify {
            source,
            key,
            anchor,
            segments,
        } => return verify(source.open()?, key, anchor.as_deref(), &segments),
        AuditCommand::Anchor { source, out } => anchor(source.open()?.store.as_ref(), &out)?,
        AuditCommand::Export {
            source,
            format,
            from_seq,
            out,
        } => export(
            source.open()?.store.as_ref(),
            format,
            from_seq,
            out.as_deref(),
        )?,
    }
    Ok(Outcome::Done)
}

/// An open store and the verification key its config implies.
struct Opened {
    store: Box<dyn Store>,
    config_key: Option<PathBuf>,
}

impl Source {
    fn open(self) -> anyhow::Result<Opened> {
        let (url, config_key) = match (self.config, self.store) {
            (Some(path), _) => {
                let config = crate::load(&path)?;
                let key = config
                    .audit
                    .effective_signing_key()
                    .map(|k| public_key_path(&k))
                    .filter(|k| config.audit.signing_key.is_some() || k.exists());
                (config.audit.store, key)
            }
            // The key Vigil made beside the store, when it is there.
            (None, Some(url)) => {
                let beside = vigil_audit::AuditConfig {
                    store: url.clone(),
                    ..Default::default()
                }
                .effective_signing_key()
                .map(|k| public_key_path(&k))
                .filter(|k| k.exists());
                (url, beside)
            }
            (None, None) => anyhow::bail!("name the audit store with --config FILE or --store URL"),
        };
        if let Ok(StoreLocation::Sqlite(path)) = StoreLocation::parse(&url) {
            must_exist(&path)?;
        }
        // Library errors name the store without credentials; the URL itself may carry them.
        let store = open_existing_store(&url)?;
        Ok(Opened { store, config_key })
    }
}

/// Opening a missing SQLite file would create it; reading commands must not.
fn must_exist(path: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        path.exists(),
        "no audit store at {}: the file does not exist",
        path.display()
    );
    Ok(())
}

fn keygen(path: &Path) -> anyhow::Result<()> {
    let public_path = public_key_path(path);
    for existing in [path, public_path.as_path()] {
        anyhow::ensure!(
            !existing.exists(),
            "{} already exists; refusing to overwrite a key",
            existing.display()
        );
    }
    let public = generate_key(path)?;
    writeln!(io::stdout(), "key id      {}", key_id(&public))?;
    writeln!(
        io::stdout(),
        "secret key  {}  (mode 0600; point [audit] signing_key at it)",
        path.display()
    )?;
    writeln!(
        io::stdout(),
        "public key  {}  (for vigil audit verify --key; keep a copy elsewhere)",
        public_path.display()
    )?;
    Ok(())
}

fn tail(store: &dyn Store, count: usize, follow: bool, format: Format) -> anyhow::Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    // The tail first: if records arrive before `last` runs, `last` includes them.
    let tail = store.tail()?;
    let records = store.last(count)?;
    print_records(&records, format, &mut out)?;
    out.flush()?;
    if !follow {
        return Ok(());
    }
    let mut next = records.last().map_or(tail.seq, |r| r.seq) + 1;
    loop {
        let page = store.scan(next, FOLLOW_PAGE)?;
        if let Some(last) = page.last() {
            next = last.seq + 1;
            print_records(&page, format, &mut out)?;
            out.flush()?;
        }
        if page.len() < FOLLOW_PAGE {
            std::thread::sleep(FOLLOW_INTERVAL);
        }
    }
}

fn search(store: &dyn Store, filter: Filter, format: Format) -> anyhow::Result<()> {
    let mut query = SearchFilter {
        identity: filter.identity,
        database: filter.database,
        table: filter.table,
        decision: filter.decision,
        fingerprint: filter.fingerprint,
        kind: filter.kind,
        session_id: filter.session_id,
        limit: filter.limit,
        ..SearchFilter::default()
    };
    if let Some(since) = &filter.since {
        query = query.since(since).context("--since")?;
    }
    if let Some(until) = &filter.until {
        query = query.until(until).context("--until")?;
    }
    let records = store.search(&query)?;
    if records.is_empty() && matches!(format, Format::Text) {
        eprintln!("no events match");
    }
    let mut out = BufWriter::new(io::stdout().lock());
    print_records(&records, format, &mut out)?;
    out.flush()?;
    Ok(())
}

fn verify(
    opened: Opened,
    key: Option<PathBuf>,
    anchor: Option<&Path>,
    segments: &[PathBuf],
) -> anyhow::Result<Outcome> {
    // Printed at the end, so that a closed stdout cannot hide the verdict.
    let mut text = String::new();
    let key = match key.or(opened.config_key) {
        Some(path) => {
            let key = load_verifying_key(&path).context("loading the verification key")?;
            let _ = writeln!(text, "key: {} (key id {})", path.display(), key_id(&key));
            Some(key)
        }
        None => {
            text.push_str("key: none (pass --key FILE.pub): checkpoint signatures were NOT checked, only the hash chain\n");
            None
        }
    };
    let anchor = match anchor {
        Some(path) => {
            let anchor = read_anchor(path)?;
            let _ = writeln!(text, "anchor: {} (record {})", path.display(), anchor.seq);
            Some(anchor)
        }
        None => None,
    };
    for path in segments {
        must_exist(path)?;
    }
    let older = open_segments(&segments.iter().map(PathBuf::as_path).collect::<Vec<_>>())?;
    let mut chain: Vec<&dyn Store> = older.iter().map(|s| s as &dyn Store).collect();
    chain.push(opened.store.as_ref());
    let report = verify_segments(&chain, key.as_ref(), anchor.as_ref())?;
    let _ = write!(text, "{report}");
    let shown = io::stdout().write_all(text.as_bytes());
    match report.first_bad_seq() {
        None => shown.map(|()| Outcome::Done).map_err(Into::into),
        Some(seq) => {
            let count = report.problems.len();
            let s = if count == 1 { "" } else { "s" };
            eprintln!(
                "vigil: the audit log failed verification ({count} problem{s}); the first bad record is seq {seq}"
            );
            Ok(Outcome::ProblemsFound)
        }
    }
}

fn anchor(store: &dyn Store, out: &Path) -> anyhow::Result<()> {
    let anchor = export_anchor(store, out)?;
    writeln!(
        io::stdout(),
        "anchor: record {} hash {} (key id {}, signed {}) written to {}",
        anchor.seq,
        anchor.hash,
        anchor.key_id,
        anchor.time,
        out.display()
    )?;
    Ok(())
}

fn export(
    store: &dyn Store,
    format: ExportAs,
    from_seq: u64,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let format = match format {
        ExportAs::Jsonl => ExportFormat::JsonLines,
        ExportAs::Ocsf => ExportFormat::Ocsf,
    };
    match out {
        None => {
            vigil_audit::export(store, from_seq, format, &mut io::stdout().lock())?;
        }
        Some(path) => {
            let file =
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            let written = vigil_audit::export(store, from_seq, format, &mut BufWriter::new(file))
                .with_context(|| format!("writing {}", path.display()))?;
            writeln!(
                io::stdout(),
                "{written} records written to {}",
                path.display()
            )?;
        }
    }
    Ok(())
}

fn print_records(
    records: &[StoredEvent],
    format: Format,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match format {
        Format::Jsonl => {
            write_records(records, ExportFormat::JsonLines, out)?;
        }
        Format::Text => {
            for record in records {
                writeln!(out, "{}", text_line(record))?;
            }
        }
    }
    Ok(())
}

/// `seq time kind` and the fields that matter for the kind, as `key=value`.
fn text_line(record: &StoredEvent) -> String {
    let mut line = Line(format!("{} {} {}", record.seq, record.time, record.kind));
    match record.decode() {
        Ok(decoded) => line.event(&decoded.event),
        // Verify names what is wrong; tail and search still show the record is there.
        Err(e) => {
            let _ = write!(line.0, " (cannot decode: {e})");
        }
    }
    line.0
}

/// A text line being built, one `key=value` at a time.
struct Line(String);

impl Line {
    fn field(&mut self, key: &str, value: impl std::fmt::Display) {
        let value = value.to_string();
        // Plain when it reads unambiguously after `key=`, else quoted and escaped.
        let plain = !value.is_empty()
            && !value
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\');
        let _ = if plain {
            write!(self.0, " {key}={value}")
        } else {
            write!(self.0, " {key}={value:?}")
        };
    }

    fn list(&mut self, key: &str, items: &[String]) {
        if !items.is_empty() {
            self.field(key, items.join(","));
        }
    }

    fn some(&mut self, key: &str, value: Option<impl std::fmt::Display>) {
        if let Some(value) = value {
            self.field(key, value);
        }
    }

    fn event(&mut self, event: &AuditEvent) {
        match event {
            AuditEvent::SessionStart(s) => {
                self.session(s);
                self.field("client", &s.client_addr);
                self.field("auth", &s.auth_method);
                self.field("tls", s.tls);
                self.some("app", s.application_name.as_ref());
            }
            AuditEvent::SessionEnd(e) => {
                self.session(&e.session);
                self.field("statements", e.statements);
                self.field("duration", duration(e.duration_us));
                self.field("bytes_in", e.bytes_in);
                self.field("bytes_out", e.bytes_out);
            }
            AuditEvent::Statement(s) => {
                self.field("session", s.session_id);
                self.field("statement", s.statement_seq);
                self.field("identity", &s.identity);
                self.field("database", &s.database);
                self.field("decision", s.decision.as_str());
                self.list("rules", &s.rule_ids);
                self.field("class", &s.class);
                self.list("relations", &s.relations);
                self.list("masked", &s.masked_columns);
                self.some("approval", s.approval_id.as_ref());
                for (tag, value) in &s.intent {
                    self.field(&format!("intent.{tag}"), value);
                }
                self.field("fingerprint", &s.fingerprint);
                self.field("text", &s.text);
            }
            AuditEvent::StatementCompleted(c) => {
                self.field("session", c.session_id);
                self.field("statement", c.statement_seq);
                self.some("rows", c.rows);
                self.some("sqlstate", c.sqlstate.as_ref());
                self.field("duration", duration(c.duration_us));
                self.field("bytes", c.bytes);
            }
            AuditEvent::AuthFailure(a) => {
                self.field("user", &a.user);
                self.field("client", &a.client_addr);
                self.some("database", a.database.as_ref());
                self.field("reason", &a.reason);
            }
            AuditEvent::Approval(a) => {
                self.field("approval", &a.approval_id);
                for (key, value) in &a.fields {
                    match value.as_str() {
                        Some(text) => self.field(key, text),
                        None => self.field(key, value),
                    }
                }
            }
            AuditEvent::ConfigReload(r) => {
                self.field("ok", r.ok);
                self.field("message", &r.message);
            }
            AuditEvent::AdminAction(a) => {
                self.field("actor", &a.actor);
                self.field("action", &a.action);
                self.some("target", a.target.as_ref());
                for (key, value) in &a.detail {
                    self.field(&format!("detail.{key}"), value);
                }
            }
        }
    }

    fn session(&mut self, s: &SessionInfo) {
        self.field("session", s.session_id);
        self.field("identity", &s.identity);
        self.field("database", &s.database);
    }
}

fn duration(us: u64) -> String {
    match us {
        0..1_000 => format!("{us}us"),
        1_000..1_000_000 => format!("{:.1}ms", us as f64 / 1e3),
        _ => format!("{:.2}s", us as f64 / 1e6),
    }
}

fn broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
