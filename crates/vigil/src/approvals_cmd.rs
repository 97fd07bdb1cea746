//! `vigil approvals …`, `vigil grants …` and `vigil token`: the admin API's
//! approval requests and just-in-time grants as commands, tables and sentences.
//! The decisions are the server's; this module sends them and says what came back.

use std::fmt::Write as _;
use std::io::{self, Write};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::admin_client::{encode, AdminClient, AdminError, Auth, BaseUrl};

/// Where the admin API listens when neither --url nor VIGIL_ADMIN_URL says.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9187";
/// How much of a statement a list row shows.
const SQL_PREVIEW: usize = 60;
/// What `vigil token` puts before the hex, so a leaked token is recognisable.
const TOKEN_PREFIX: &str = "vgl_";

/// The admin API's address and token, shared by every `approvals` and `grants` command.
#[derive(Args)]
pub struct Endpoint {
    /// The admin API [default: $VIGIL_ADMIN_URL, else http://127.0.0.1:9187].
    #[arg(long, global = true, value_name = "URL")]
    url: Option<String>,
    /// An [[admin.tokens]] token [default: $VIGIL_ADMIN_TOKEN]. Prefer the variable:
    /// other users can see command lines.
    #[arg(long, global = true, value_name = "TOKEN")]
    token: Option<String>,
}

#[derive(Subcommand)]
pub enum ApprovalsCommand {
    /// The approval requests in one state, newest first.
    List {
        #[arg(long, default_value = "pending", value_parser = [
            "pending", "approved", "denied", "expired", "withdrawn", "executed", "all",
        ])]
        state: String,
        /// The API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Everything about one request: the statement in full, its parameters, who approved.
    Show {
        /// The request id, as in the client's notice and in `list`.
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Approve a request (one of the approvals it needs).
    Approve {
        id: String,
        /// Why; recorded with the approval.
        #[arg(long, value_parser = non_empty)]
        reason: Option<String>,
    },
    /// Deny a request; one denial ends it.
    Deny {
        id: String,
        /// Why; recorded, and told to the client that asked.
        #[arg(long, value_parser = non_empty)]
        reason: String,
    },
}

#[derive(Subcommand)]
pub enum GrantsCommand {
    /// Ask to join a group on a database for a while; approvers decide.
    ///
    /// With --user, or without a token, this authenticates as the identity with
    /// its Vigil password ($PGPASSWORD, else a prompt); otherwise with the token.
    Request {
        /// The group to join (one of [[approvals.grants]]).
        #[arg(long)]
        group: String,
        /// The database, as clients name it.
        #[arg(long)]
        database: String,
        /// How long: 90s, 15m, 1h, 2h30m, 1d, or plain seconds.
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
        duration_secs: u64,
        /// Why; the approvers see it.
        #[arg(long, value_parser = non_empty)]
        reason: Option<String>,
        /// The identity asking [default: $PGUSER, else $USER].
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
    },
    /// The grants in force.
    List {
        #[arg(long)]
        json: bool,
    },
}

pub fn approvals(endpoint: Endpoint, command: ApprovalsCommand) -> anyhow::Result<()> {
    let client = endpoint.client(None)?;
    match command {
        ApprovalsCommand::List { state, json } => {
            let path = format!("/api/v1/approvals?state={}", encode(&state));
            let (_, answer) = block_on(client.get(&path))?;
            if json {
                return emit_json(&answer);
            }
            let requests = list(&answer, "requests")?;
            if requests.is_empty() {
                return emit(&match state.as_str() {
                    "all" => "no approval requests\n".to_owned(),
                    state => format!("no {state} approval requests\n"),
                });
            }
            emit(&requests_table(requests, now()))
        }
        ApprovalsCommand::Show { id, json } => {
            let (_, request) = block_on(client.get(&request_path(&id, "")))?;
            if json {
                return emit_json(&request);
            }
            emit(&describe(&request, now()))
        }
        ApprovalsCommand::Approve { id, reason } => {
            let body = match reason {
                Some(reason) => json!({ "reason": reason }),
                None => json!({}),
            };
            let (_, request) = block_on(client.post(&request_path(&id, "/approve"), &body))?;
            emit(&format!("{}\n", outcome(&request)))
        }
        ApprovalsCommand::Deny { id, reason } => {
            let body = json!({ "reason": reason });
            let (_, request) = block_on(client.post(&request_path(&id, "/deny"), &body))?;
            emit(&format!("{}\n", outcome(&request)))
        }
    }
}

pub fn grants(endpoint: Endpoint, command: GrantsCommand) -> anyhow::Result<()> {
    match command {
        GrantsCommand::Request {
            group,
            database,
            duration_secs,
            reason,
            user,
        } => {
            let client = endpoint.client(Some(user))?;
            let mut body = json!({
                "group": group,
                "database": database,
                "duration_secs": duration_secs,
            });
            if let Some(reason) = reason {
                body["reason"] = Value::String(reason);
            }
            let (_, request) = block_on(client.post("/api/v1/grants", &body))?;
            let id = field(&request, "id");
            emit(&format!(
                "requested grant {id}: {} in group {group} on {database} for {}\n\
                 waiting for approval ({}); follow it with `vigil approvals show {id}`\n",
                field(&request, "requester"),
                exact_duration(duration_secs),
                approvers(&request["approvers"]),
            ))
        }
        GrantsCommand::List { json } => {
            let client = endpoint.client(None)?;
            let (_, answer) = block_on(client.get("/api/v1/grants"))?;
            if json {
                return emit_json(&answer);
            }
            let grants = list(&answer, "grants")?;
            if grants.is_empty() {
                return emit("no grants in force\n");
            }
            emit(&grants_table(grants, now()))
        }
    }
}

/// Prints a new admin token and the `sha256 = "…"` line for its `[[admin.tokens]]` entry.
///
/// The token is `vgl_` and 64 lowercase hex digits (32 random bytes); the hash is the
/// SHA-256 of that whole string, as the server compares it.
pub fn token() -> anyhow::Result<()> {
    let mut secret = [0u8; 32];
    rand::fill(&mut secret);
    let token = format!("{TOKEN_PREFIX}{}", hex(&secret));
    let sha = hex(&Sha256::digest(token.as_bytes()));
    emit(&format!("{token}\nsha256 = \"{sha}\"\n"))?;
    eprintln!(
        "Keep the token secret and give it to the CLI as VIGIL_ADMIN_TOKEN; \
         paste the sha256 line into its [[admin.tokens]] entry."
    );
    Ok(())
}

impl Endpoint {
    /// A client with the token; `basic_user` is `Some` for commands that may instead
    /// use an identity's password (then `Some(Some(name))` means --user was given).
    fn client(self, basic_user: Option<Option<String>>) -> anyhow::Result<AdminClient> {
        let url = self
            .url
            .or_else(|| env("VIGIL_ADMIN_URL"))
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        let base = BaseUrl::parse(&url)?;
        let token = self.token.or_else(|| env("VIGIL_ADMIN_TOKEN"));
        let auth = match (basic_user, token) {
            // An explicit --user asks as that identity, whatever token is around.
            (Some(Some(identity)), _) => basic(identity)?,
            (_, Some(token)) => Auth::Bearer(token),
            (Some(None), None) => {
                let identity = env("PGUSER").or_else(|| env("USER")).context(
                    "no admin token and no identity: set VIGIL_ADMIN_TOKEN, or name the identity with --user",
                )?;
                basic(identity)?
            }
            (None, None) => anyhow::bail!(
                "no admin token: set VIGIL_ADMIN_TOKEN or pass --token (`vigil token` makes one)"
            ),
        };
        Ok(AdminClient::new(base, auth))
    }
}

fn basic(identity: String) -> anyhow::Result<Auth> {
    let password = match env("PGPASSWORD") {
        Some(password) => password,
        None => crate::read_password(&format!("Vigil password for {identity}: "))?,
    };
    anyhow::ensure!(!password.is_empty(), "empty password");
    Ok(Auth::Basic { identity, password })
}

/// A variable's value; set but empty counts as unset.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Runs one admin API request to its answer.
fn block_on<T>(
    request: impl std::future::Future<Output = Result<T, AdminError>>,
) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    Ok(runtime.block_on(request)?)
}

fn request_path(id: &str, action: &str) -> String {
    format!("/api/v1/approvals/{}{action}", encode(id))
}

fn list<'a>(answer: &'a Value, key: &str) -> anyhow::Result<&'a [Value]> {
    answer[key]
        .as_array()
        .map(Vec::as_slice)
        .with_context(|| format!("the admin API's answer has no {key:?} list"))
}

/// Writes to standard output; a closed pipe (`… | head`) is not an error.
fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e).context("writing the output"),
        _ => Ok(()),
    }
}

fn emit_json(value: &Value) -> anyhow::Result<()> {
    emit(&format!("{}\n", serde_json::to_string_pretty(value)?))
}

/// One line per request: ID STATE REQUESTER DATABASE MODE AGE RULES WHAT.
fn requests_table(requests: &[Value], now: i64) -> String {
    let mut rows = vec![[
        "ID",
        "STATE",
        "REQUESTER",
        "DATABASE",
        "MODE",
        "AGE",
        "RULES",
        "WHAT",
    ]
    .map(String::from)];
    for request in requests {
        rows.push([
            field(request, "id"),
            field(request, "state"),
            field(request, "requester"),
            field(request, "database"),
            field(request, "mode"),
            since(&request["created_at"], now).unwrap_or_else(|| "-".into()),
            field(request, "rules"),
            what(request),
        ]);
    }
    table(&rows)
}

fn grants_table(grants: &[Value], now: i64) -> String {
    let mut rows = vec![["IDENTITY", "GROUP", "DATABASE", "EXPIRES", "APPROVAL"].map(String::from)];
    for grant in grants {
        rows.push([
            field(grant, "identity"),
            field(grant, "group"),
            field(grant, "database"),
            relative(&grant["expires_at"], now),
            field(grant, "approval_id"),
        ]);
    }
    table(&rows)
}

/// Left-aligned columns two spaces apart; the last column is not padded.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// What a request is about, in one short line: its statement, or the grant.
fn what(request: &Value) -> String {
    if let Some(grant) = request["grant"].as_object() {
        let duration = grant
            .get("duration_secs")
            .and_then(Value::as_u64)
            .map_or_else(|| "-".into(), exact_duration);
        return format!(
            "grant {} on {} for {duration}",
            field(&request["grant"], "group"),
            field(&request["grant"], "database"),
        );
    }
    let sql = request["sql"].as_str().unwrap_or("");
    preview(sql, SQL_PREVIEW)
}

/// The text on one line, whitespace runs folded, cut to `max` characters.
fn preview(text: &str, max: usize) -> String {
    let folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match folded.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &folded[..cut]),
        None => folded,
    }
}

/// Every field of a request, one per line, the statement and its parameters in full.
fn describe(request: &Value, now: i64) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "{label:<12}{value}");
    };
    line("id", field(request, "id"));
    line("kind", field(request, "kind"));
    line("state", field(request, "state"));
    line("requester", field(request, "requester"));
    line("database", field(request, "database"));
    if !request["session_id"].is_null() {
        line("session", field(request, "session_id"));
    }
    if !request["mode"].is_null() {
        line("mode", field(request, "mode"));
    }
    if !request["rules"].is_null() {
        line("rules", field(request, "rules"));
    }
    line("approvers", approvers(&request["approvers"]));
    if let Some(grant) = request["grant"].as_object() {
        let duration = grant
            .get("duration_secs")
            .and_then(Value::as_u64)
            .map_or_else(|| "-".into(), exact_duration);
        line(
            "grant",
            format!(
                "group {} on {} for {duration}",
                field(&request["grant"], "group"),
                field(&request["grant"], "database"),
            ),
        );
    }
    line("created", stamp(&request["created_at"], now));
    line("expires", stamp(&request["expires_at"], now));
    for (label, key) in [("decided", "decided_at"), ("run until", "run_until")] {
        if !request[key].is_null() {
            line(label, stamp(&request[key], now));
        }
    }
    if !request["binding"].is_null() {
        line("binding", field(request, "binding"));
    }

    let approvals = request["approvals"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if approvals.is_empty() {
        line("approvals", "none yet".into());
    } else {
        let needed = request["approvers"]["count"].as_u64().unwrap_or(1);
        line("approvals", format!("{} of {needed}", approvals.len()));
        for approval in approvals {
            let _ = writeln!(out, "  {}", decision(approval));
        }
    }
    match &request["denial"] {
        Value::Null => {}
        denial @ Value::Object(_) => {
            let _ = writeln!(out, "{:<12}{}", "denied", decision(denial));
        }
        // The shape is not pinned down; show whatever it is.
        other => {
            let _ = writeln!(out, "{:<12}{}", "denied", scalar(other));
        }
    }

    if let Some(statements) = request["statements"].as_array() {
        if !statements.is_empty() {
            let _ = writeln!(out, "statements");
            for statement in statements {
                let _ = writeln!(
                    out,
                    "  {} ({}) on {}",
                    field(statement, "kind"),
                    field(statement, "class"),
                    field(statement, "relations"),
                );
            }
        }
    }
    if let Some(sql) = request["sql"].as_str() {
        let _ = writeln!(out, "sql");
        for text in sql.lines() {
            let _ = writeln!(out, "  {text}");
        }
    }
    if let Some(parameters) = request["parameters"].as_array() {
        if !parameters.is_empty() {
            let _ = writeln!(out, "parameters");
            for (i, value) in parameters.iter().enumerate() {
                let _ = writeln!(out, "  ${}  {}", i + 1, literal(value));
            }
        }
    }
    out
}

/// `alice at 2026-…: ticket 42` (an approval, or the denial).
fn decision(entry: &Value) -> String {
    let mut text = format!("{} at {}", field(entry, "by"), field(entry, "at"));
    if let Some(reason) = entry["reason"].as_str().filter(|r| !r.is_empty()) {
        let _ = write!(text, ": {reason}");
    }
    text
}

/// `1 of groups dba, identities carol`.
fn approvers(approvers: &Value) -> String {
    let count = approvers["count"].as_u64().unwrap_or(1);
    let mut who = Vec::new();
    for key in ["groups", "identities"] {
        if let Some(names) = approvers[key].as_array().filter(|n| !n.is_empty()) {
            who.push(format!("{key} {}", strings(names)));
        }
    }
    if who.is_empty() {
        format!("{count} of any approver")
    } else {
        format!("{count} of {}", who.join(", "))
    }
}

/// A parameter as SQL would read it: `'text'`, `NULL`.
fn literal(value: &Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::String(text) => format!("'{}'", text.replace('\'', "''")),
        other => other.to_string(),
    }
}

/// What approving or denying came to.
fn outcome(request: &Value) -> String {
    let id = field(request, "id");
    let given = request["approvals"].as_array().map_or(0, Vec::len);
    let needed = request["approvers"]["count"].as_u64().unwrap_or(1);
    match request["state"].as_str().unwrap_or("") {
        "pending" => format!("approval recorded for {id} ({given} of {needed})"),
        state @ ("approved" | "executed") => {
            let head = format!("approved {id} ({given} of {needed} approvals)");
            if request["kind"] == "grant" || request["grant"].is_object() {
                let duration = request["grant"]["duration_secs"]
                    .as_u64()
                    .map_or_else(|| "a while".into(), exact_duration);
                format!(
                    "{head}: {} is in group {} on {} for {duration}",
                    field(request, "requester"),
                    field(&request["grant"], "group"),
                    field(&request["grant"], "database"),
                )
            } else if state == "executed" {
                format!("{head}: it ran")
            } else if request["mode"] == "refuse" {
                format!(
                    "{head}: {} may run it once, until {}",
                    field(request, "requester"),
                    field(request, "run_until"),
                )
            } else {
                format!("{head}: it runs now")
            }
        }
        "denied" => format!("denied {id}"),
        state => format!("{id} is {state}"),
    }
}

/// A field for a table or a line: text as is, lists comma-joined, absent as `-`.
fn field(value: &Value, key: &str) -> String {
    scalar(&value[key])
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(text) if text.is_empty() => "-".into(),
        Value::String(text) => text.clone(),
        Value::Array(items) if items.is_empty() => "-".into(),
        Value::Array(items) => strings(items),
        other => other.to_string(),
    }
}

fn strings(items: &[Value]) -> String {
    items
        .iter()
        .map(|item| match item {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn now() -> i64 {
    vigil_audit::clock::now_micros()
}

fn seconds_until(time: &Value, now: i64) -> Option<i64> {
    let at = vigil_audit::clock::parse(time.as_str()?).ok()?;
    Some((at - now).div_euclid(1_000_000))
}

/// How long ago `time` was, roughly: `12s`, `5m`, `2h`, `3d`.
fn since(time: &Value, now: i64) -> Option<String> {
    seconds_until(time, now).map(|s| rough_duration(s.unsigned_abs()))
}

/// `in 12m` or `3m ago`.
fn relative(time: &Value, now: i64) -> String {
    match seconds_until(time, now) {
        Some(s) if s >= 0 => format!("in {}", rough_duration(s.unsigned_abs())),
        Some(s) => format!("{} ago", rough_duration(s.unsigned_abs())),
        None => scalar(time),
    }
}

/// `2026-11-25T10:15:00.000000Z (in 12m)`.
fn stamp(time: &Value, now: i64) -> String {
    match seconds_until(time, now) {
        Some(_) => format!("{} ({})", scalar(time), relative(time, now)),
        None => scalar(time),
    }
}

fn rough_duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// `1h`, `2h30m`, `90s` → `1m30s`: what --for accepts.
fn exact_duration(secs: u64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = secs;
    for (unit, size) in [('d', 86_400), ('h', 3600), ('m', 60), ('s', 1)] {
        if rest >= size {
            let _ = write!(out, "{}{unit}", rest / size);
            rest %= size;
        }
    }
    out
}

/// Parses `90s`, `15m`, `1h`, `2h30m`, `1d` or plain seconds into seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let bad = || format!("{text:?} is not a duration; say 90s, 15m, 1h, 2h30m or plain seconds");
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let secs = text.parse::<u64>().map_err(|_| bad())?;
        return if secs == 0 {
            Err("the duration must be more than 0".into())
        } else {
            Ok(secs)
        };
    }
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    // Units largest first, each at most once: `2h30m`, not `30m2h` or `1h1h`.
    let mut smallest_yet = u64::MAX;
    for c in text.chars() {
        if let Some(digit) = c.to_digit(10) {
            let n = number.unwrap_or(0);
            number = Some(
                n.checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(digit)))
                    .ok_or_else(bad)?,
            );
            continue;
        }
        let size = match c.to_ascii_lowercase() {
            'd' => 86_400,
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        if size >= smallest_yet {
            return Err(bad());
        }
        smallest_yet = size;
        let n = number.take().ok_or_else(bad)?;
        total = n
            .checked_mul(size)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(bad)?;
    }
    if number.is_some() || smallest_yet == u64::MAX {
        return Err(bad());
    }
    if total == 0 {
        return Err("the duration must be more than 0".into());
    }
    Ok(total)
}

/// A reason must say something.
fn non_empty(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(text.to_owned())
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        for (text, secs) in [
            ("90s", 90),
            ("15m", 900),
            ("1h", 3600),
            ("2h30m", 9000),
            ("3600", 3600),
            ("1d", 86_400),
            ("1h0m5s", 3605),
            (" 2H ", 7200),
        ] {
            assert_eq!(parse_duration(text), Ok(secs), "{text}");
        }
        for text in [
            "",
            "0",
            "0s",
            "h",
            "1x",
            "1h30",
            "30m2h",
            "1h1h",
            "-5",
            "1.5h",
            "1 h",
            "99999999999999999999",
            "999999999999999999d",
        ] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
    }

    #[test]
    fn formats_durations() {
        assert_eq!(exact_duration(3600), "1h");
        assert_eq!(exact_duration(9000), "2h30m");
        assert_eq!(exact_duration(90), "1m30s");
        assert_eq!(exact_duration(90_061), "1d1h1m1s");
        for secs in [1, 59, 61, 3599, 86_401, 123_456] {
            assert_eq!(parse_duration(&exact_duration(secs)), Ok(secs));
        }
        assert_eq!(rough_duration(12), "12s");
        assert_eq!(rough_duration(300), "5m");
        assert_eq!(rough_duration(7300), "2h");
        assert_eq!(rough_duration(3 * 86_400 + 5), "3d");
    }

    #[test]
    fn previews_fold_and_cut() {
        assert_eq!(preview("SELECT\n  1", 60), "SELECT 1");
        let long = format!("UPDATE t SET x = '{}'", "a".repeat(100));
        let cut = preview(&long, 60);
        assert_eq!(cut.chars().count(), 61);
        assert!(cut.ends_with('…'));
        assert_eq!(preview("é".repeat(61).as_str(), 60).chars().count(), 61);
    }

    fn request() -> Value {
        json!({
            "id": "7f3a9c2e41d0", "kind": "statement", "state": "pending",
            "requester": "agent", "database": "demo", "session_id": 12, "mode": "hold",
            "sql": "UPDATE shop.orders SET status = $1 WHERE id = $2",
            "parameters": ["it's", null], "binding": "9c1d",
            "statements": [{"kind": "update", "class": "write", "relations": ["shop.orders"]}],
            "rules": ["agents-writes-need-approval"],
            "approvers": {"identities": [], "groups": ["dba"], "count": 2},
            "approvals": [{"by": "alice", "reason": "ticket 42", "at": "2026-11-25T10:00:01.000000Z"}],
            "denial": null, "grant": null,
            "created_at": "2026-11-25T10:00:00.000000Z",
            "expires_at": "2026-11-25T10:15:00.000000Z",
            "decided_at": null, "run_until": null
        })
    }

    fn at(time: &str) -> i64 {
        vigil_audit::clock::parse(time).unwrap()
    }

    #[test]
    fn describes_a_request() {
        let text = describe(&request(), at("2026-11-25T10:03:00Z"));
        for expected in [
            "id          7f3a9c2e41d0\n",
            "session     12\n",
            "approvers   2 of groups dba\n",
            "created     2026-11-25T10:00:00.000000Z (3m ago)\n",
            "expires     2026-11-25T10:15:00.000000Z (in 12m)\n",
            "approvals   1 of 2\n  alice at 2026-11-25T10:00:01.000000Z: ticket 42\n",
            "statements\n  update (write) on shop.orders\n",
            "sql\n  UPDATE shop.orders SET status = $1 WHERE id = $2\n",
            "parameters\n  $1  'it''s'\n  $2  NULL\n",
        ] {
            assert!(text.contains(expected), "{expected:?} in\n{text}");
        }
        assert!(!text.contains("decided"), "{text}");
    }

    #[test]
    fn says_what_a_decision_came_to() {
        let mut r = request();
        assert_eq!(outcome(&r), "approval recorded for 7f3a9c2e41d0 (1 of 2)");
        r["approvers"]["count"] = json!(1);
        r["state"] = json!("approved");
        assert_eq!(
            outcome(&r),
            "approved 7f3a9c2e41d0 (1 of 1 approvals): it runs now"
        );
        r["mode"] = json!("refuse");
        r["run_until"] = json!("2026-11-25T10:10:00.000000Z");
        assert_eq!(
            outcome(&r),
            "approved 7f3a9c2e41d0 (1 of 1 approvals): agent may run it once, until 2026-11-25T10:10:00.000000Z"
        );
        r["kind"] = json!("grant");
        r["grant"] = json!({"group": "writers", "database": "prod", "duration_secs": 3600});
        assert_eq!(
            outcome(&r),
            "approved 7f3a9c2e41d0 (1 of 1 approvals): agent is in group writers on prod for 1h"
        );
        r["state"] = json!("denied");
        assert_eq!(outcome(&r), "denied 7f3a9c2e41d0");
    }

    #[test]
    fn tables_align_and_show_grants() {
        let mut grant = request();
        grant["id"] = json!("aa");
        grant["kind"] = json!("grant");
        grant["mode"] = Value::Null;
        grant["rules"] = json!([]);
        grant["sql"] = Value::Null;
        grant["grant"] = json!({"group": "writers", "database": "prod", "duration_secs": 5400});
        let text = requests_table(&[request(), grant], at("2026-11-25T10:00:30Z"));
        assert_eq!(
            text,
            "ID            STATE    REQUESTER  DATABASE  MODE  AGE  RULES                        WHAT\n\
             7f3a9c2e41d0  pending  agent      demo      hold  30s  agents-writes-need-approval  UPDATE shop.orders SET status = $1 WHERE id = $2\n\
             aa            pending  agent      demo      -     30s  -                            grant writers on prod for 1h30m\n"
        );
    }
}
