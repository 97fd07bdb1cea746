//! Dynamic data masking through the proxy, attacked: every way a client can
//! get a masked column's value back (expressions, views, RETURNING, cursors,
//! COPY, error messages, statistics, functions Vigil cannot see into) over
//! psql, tokio-postgres and psycopg, in text and in binary. `agent` must
//! never see a customer's clear personal data; `alice`, a DBA, is exempt.
//!
//! "Clear" is checked against every customer, not only the one queried: each
//! output is scanned for anything shaped like an SSN, a card number, a phone
//! number, an email address or a birth date, and the shapes found are looked
//! up among the database's real values.

mod bypass;
mod clients;
mod generated;
mod guards;
mod reads;
mod strategies;
mod transfer;
mod writes;

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::harness::*;

/// Customer 1's SSN, the value most attacks go after.
const SSN: &str = "101-02-0002";

/// The quickstart's column masks.
const COLUMNS: &str = r#"
[[masking.columns]]
column = "shop.customers.ssn"
strategy = "keep_last"
keep = 4

[[masking.columns]]
column = "shop.customers.email"
strategy = "email_domain"

[[masking.columns]]
column = "shop.customers.phone"
strategy = "keep_last"
keep = 2

[[masking.columns]]
column = "shop.customers.card_number"
strategy = "keep_last"
keep = 4

[[masking.columns]]
column = "shop.customers.birth_date"
strategy = "redact"
"#;

const DETECTORS: &str = r#"
[[masking.detectors]]
kind = "email"
strategy = "email_domain"

[[masking.detectors]]
kind = "us_ssn"
strategy = "redact"

[[masking.detectors]]
kind = "payment_card"
strategy = "redact"
"#;

/// A `[masking]` section: `head` holds more of its own keys
/// (`unknown_lineage`, `key_env`), `columns` its column masks.
fn masking(head: &str, columns: &str) -> String {
    format!(
        "[masking]\nexempt = {{ groups = [\"dba\"] }}\ninference_guard = true\n{head}\n{columns}\n{DETECTORS}"
    )
}

/// The demo shop, loaded straight into a fresh database, with `setup` run
/// after it; and every personal value in it, to look for in outputs.
struct Shop {
    db: TestDb,
    secrets: HashSet<String>,
}

impl Shop {
    fn create(tag: &str, setup: &str) -> Shop {
        let db = TestDb::create(tag);
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo.sql");
        let out = Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", PG_HOST])
            .args(["-U", "postgres", "-d", &db.name, "-f"])
            .arg(&demo)
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "demo.sql: {}", stderr(&out));
        if !setup.is_empty() {
            db.direct_sql(setup);
        }
        let secrets = db
            .direct_sql(
                "SELECT ssn FROM shop.customers UNION ALL SELECT email FROM shop.customers
                 UNION ALL SELECT phone FROM shop.customers
                 UNION ALL SELECT card_number FROM shop.customers
                 UNION ALL SELECT birth_date::text FROM shop.customers",
            )
            .lines()
            .map(str::to_owned)
            .collect();
        Shop { db, secrets }
    }

    /// A proxy with the quickstart's masking and `head` in `[masking]`.
    fn proxy(&self, head: &str) -> Proxy {
        Proxy::start(&config_toml(&self.db.name, "", &masking(head, COLUMNS)))
    }

    /// Fails if `seen` holds any customer's clear personal data.
    #[track_caller]
    fn assert_hidden(&self, what: &str, seen: &str) {
        let leaked: Vec<&str> = shapes(seen)
            .into_iter()
            .filter(|s| self.secrets.contains(*s))
            .collect();
        assert!(
            leaked.is_empty() && !seen.contains(SSN),
            "{what}: agent saw clear values {leaked:?} in:\n{seen}"
        );
    }
}

/// Substrings of `text` shaped like the demo's personal data: SSNs, 16-digit
/// card numbers, `+1-555-…` phones, emails and ISO dates.
fn shapes(text: &str) -> Vec<&str> {
    let b = text.as_bytes();
    let fits = |at: usize, shape: &str| {
        b.len() >= at + shape.len()
            && shape.bytes().zip(&b[at..]).all(|(s, &c)| match s {
                b'd' => c.is_ascii_digit(),
                s => s == c,
            })
    };
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let mut found = Vec::new();
    for at in 0..b.len() {
        if !text.is_char_boundary(at) {
            continue;
        }
        for shape in ["ddd-dd-dddd", "+1-555-ddd-dddd", "dddd-dd-dd"] {
            if fits(at, shape) {
                found.push(&text[at..at + shape.len()]);
            }
        }
        if (at == 0 || !digit(at - 1)) && (0..16).all(|k| digit(at + k)) && !digit(at + 16) {
            found.push(&text[at..at + 16]);
        }
        if b[at] == b'@' {
            let local = |c: &u8| c.is_ascii_alphanumeric() || b"._%+-".contains(c);
            let start = b[..at].iter().rposition(|c| !local(c)).map_or(0, |p| p + 1);
            let end = b[at + 1..]
                .iter()
                .position(|c| !(c.is_ascii_alphanumeric() || b".-".contains(c)))
                .map_or(b.len(), |p| at + 1 + p);
            found.push(&text[start..end]);
        }
    }
    found
}

pub fn password(user: &str) -> &'static str {
    match user {
        "alice" => ALICE_PASSWORD,
        "agent" => AGENT_PASSWORD,
        other => panic!("no password for {other}"),
    }
}

/// A result's rows, every value as text.
type Rows = Vec<Vec<Option<String>>>;

/// An error a client got back: its SQLSTATE and everything it said.
#[derive(Debug)]
struct Failure {
    code: String,
    text: String,
}

impl From<tokio_postgres::Error> for Failure {
    fn from(error: tokio_postgres::Error) -> Failure {
        match error.as_db_error() {
            Some(db) => Failure {
                code: db.code().code().to_owned(),
                text: format!(
                    "{} | detail: {:?} | hint: {:?} | where: {:?}",
                    db.message(),
                    db.detail(),
                    db.hint(),
                    db.where_()
                ),
            },
            None => Failure {
                code: String::new(),
                text: error.to_string(),
            },
        }
    }
}

/// The ways a statement reaches the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// psql: the simple protocol, text results.
    Psql,
    /// tokio-postgres `query`: Parse/Bind/Execute, every result column binary.
    Binary,
    /// tokio-postgres `simple_query`: text.
    Simple,
}

const EVERY_CLIENT: [Via; 3] = [Via::Psql, Via::Binary, Via::Simple];

/// What one client got for one statement, and everything it showed
/// (psql's notices and errors included).
#[derive(Debug)]
struct Seen {
    via: Via,
    result: Result<Rows, Failure>,
    shown: String,
}

impl Seen {
    #[track_caller]
    fn rows(&self) -> &Rows {
        match &self.result {
            Ok(rows) => rows,
            Err(e) => panic!("{:?} failed: {e:?}", self.via),
        }
    }

    /// The only value of a one-row, one-column result.
    #[track_caller]
    fn value(&self) -> Option<&str> {
        let rows = self.rows();
        assert!(
            rows.len() == 1 && rows[0].len() == 1,
            "{:?}: {rows:?}",
            self.via
        );
        rows[0][0].as_deref()
    }

    fn refused_by(&self, rule: &str) -> bool {
        matches!(&self.result, Err(f) if f.code == "42501" && f.text.contains(rule))
    }
}

/// `sql` as `user` through `via`; `client` is that user's tokio-postgres session.
async fn run(proxy: &Proxy, client: &Client, user: &str, via: Via, sql: &str) -> Seen {
    let result = match via {
        Via::Psql => return psql(proxy, user, &[sql]),
        Via::Binary => binary(client, sql).await,
        Via::Simple => simple(client, sql).await,
    };
    let shown = format!("{result:?}");
    Seen { via, result, shown }
}

/// `sql` as `user` through every client.
async fn every_client(proxy: &Proxy, client: &Client, user: &str, sql: &str) -> Vec<Seen> {
    let mut seen = Vec::new();
    for via in EVERY_CLIENT {
        seen.push(run(proxy, client, user, via, sql).await);
    }
    seen
}

/// `sql` as agent through every client: nothing clear in any of them, and
/// each either answered or refused it (42501), never failed otherwise.
async fn agent_sees(shop: &Shop, proxy: &Proxy, agent: &Client, sql: &str) -> Vec<Seen> {
    let seen = every_client(proxy, agent, "agent", sql).await;
    for s in &seen {
        shop.assert_hidden(&format!("{sql} via {:?}", s.via), &s.shown);
        if let Err(f) = &s.result {
            assert_eq!(f.code, "42501", "{sql} via {:?}: {f:?}", s.via);
        }
    }
    seen
}

/// Every client's rows for `sql` as agent are `expected`.
#[track_caller]
fn assert_rows(sql: &str, seen: &[Seen], expected: &[&[Option<&str>]]) {
    for s in seen {
        let rows: Vec<Vec<Option<&str>>> = s
            .rows()
            .iter()
            .map(|r| r.iter().map(Option::as_deref).collect())
            .collect();
        assert_eq!(rows, expected, "{sql} via {:?}", s.via);
    }
}

/// Runs `commands` in one psql session (each a `-c`), errors verbose so the
/// SQLSTATE shows. Rows are read from unaligned, tuples-only output.
fn psql(proxy: &Proxy, user: &str, commands: &[&str]) -> Seen {
    const NULL: &str = "\u{2400}";
    const SEP: &str = "\u{1f}";
    let null = format!("null={NULL}");
    // Quiet: no command tags ("UPDATE 1") among the rows.
    let mut args = vec![
        "-q",
        "-A",
        "-t",
        "-F",
        SEP,
        "-P",
        null.as_str(),
        "-v",
        "VERBOSITY=verbose",
    ];
    for command in commands {
        args.extend(["-c", command]);
    }
    let out = proxy.psql(user, password(user), &args);
    let (stdout, stderr) = (stdout(&out), stderr(&out));
    let shown = format!("{stdout}{stderr}");
    let result = match stderr.find("ERROR:  ") {
        Some(at) => Err(Failure {
            code: stderr[at + 8..].chars().take(5).collect(),
            text: stderr.clone(),
        }),
        None if !out.status.success() => Err(Failure {
            code: String::new(),
            text: stderr.clone(),
        }),
        None => Ok(stdout
            .lines()
            .filter(|l| !l.is_empty())
            .map(|line| {
                line.split(SEP)
                    .map(|v| (v != NULL).then(|| v.to_owned()))
                    .collect()
            })
            .collect()),
    };
    Seen {
        via: Via::Psql,
        result,
        shown,
    }
}

async fn binary(client: &Client, sql: &str) -> Result<Rows, Failure> {
    let rows = client.query(sql, &[]).await?;
    Ok(rows
        .iter()
        .map(|row| {
            (0..row.len())
                .map(|i| row.get::<_, Option<Binary>>(i).map(|b| b.0))
                .collect()
        })
        .collect())
}

async fn simple(client: &Client, sql: &str) -> Result<Rows, Failure> {
    let messages = client.simple_query(sql).await?;
    Ok(messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}

/// A binary result value shown as psql would show the common types; any
/// other type as its bytes read as UTF-8, which keeps whatever text is inside
/// (arrays, jsonb, records) visible to the leak scan.
struct Binary(String);

impl<'a> FromSql<'a> for Binary {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Binary, Box<dyn std::error::Error + Sync + Send>> {
        let text = if *ty == Type::INT4 {
            i32::from_sql(ty, raw)?.to_string()
        } else if *ty == Type::INT8 {
            i64::from_sql(ty, raw)?.to_string()
        } else if *ty == Type::INT2 {
            i16::from_sql(ty, raw)?.to_string()
        } else if *ty == Type::BOOL {
            String::from(if bool::from_sql(ty, raw)? { "t" } else { "f" })
        } else if *ty == Type::DATE {
            iso_date(i32::from_be_bytes(raw.try_into()?))
        } else {
            String::from_utf8_lossy(raw).into_owned()
        };
        Ok(Binary(text))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// PostgreSQL's binary date (days since 2000-01-01) as `YYYY-MM-DD`.
fn iso_date(days_since_2000: i32) -> String {
    // Days from civil, inverted (H. Hinnant's algorithm), from 1970-01-01.
    let z = i64::from(days_since_2000) + 10_957 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[test]
fn the_leak_scan_finds_every_shape_and_the_binary_dates_decode() {
    let text = "x101-02-0002,a.b1@example.com|+1-555-100-0037 4000000000079196;1950-01-18";
    assert_eq!(
        shapes(text),
        [
            "101-02-0002",
            "a.b1@example.com",
            "+1-555-100-0037",
            "4000000000079196",
            "1950-01-18"
        ]
    );
    assert!(shapes("*******0002 ****@example.com ************9196").len() == 1);
    assert_eq!(iso_date(0), "2000-01-01");
    assert_eq!(iso_date(-18245), "1950-01-18");
}
