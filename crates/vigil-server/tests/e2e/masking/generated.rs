//! Masking against queries nobody wrote by hand: Debian's `sqlsmith` writes
//! random queries over the demo shop (joins, subqueries, window functions,
//! casts, built-ins of every kind), each runs through Vigil as `agent`, and
//! nothing that comes back (rows, errors, notices) may hold a customer's
//! clear personal data. Refusals are counted, not failures: a refused query
//! shows nothing. A cluster of the test's own keeps random statements off
//! the machine's server.
//!
//! `VIGIL_SMITH_QUERIES` (default 200) and `VIGIL_SMITH_SEED` (default 1)
//! set the run; the counts are printed.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::BytesMut;

use super::*;
use crate::cluster::Cluster;

/// What the generated queries came to.
#[derive(Debug, Default)]
struct Tally {
    queries: usize,
    answered: usize,
    refused_by_vigil: usize,
    failed_at_server: usize,
    sessions_closed: usize,
    leaks: Vec<String>,
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// sqlsmith's queries for the database at `conninfo`, printed not run.
fn generated(conninfo: &str, seed: u64, count: u64) -> Vec<String> {
    let out = Command::new("sqlsmith")
        .arg(format!("--target={conninfo}"))
        .args(["--dry-run", "--exclude-catalog"])
        .arg(format!("--seed={seed}"))
        .arg(format!("--max-queries={count}"))
        .output()
        .expect("sqlsmith runs (Debian package sqlsmith; scripts/test installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(";\n")
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_owned)
        .collect()
}

fn agent(proxy: &Proxy) -> RawClient {
    let mut client = RawClient::login(proxy.port, "agent", AGENT_PASSWORD);
    client
        .stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let set = client.query("SET statement_timeout = '2s'");
    assert!(set.iter().all(|(tag, _)| *tag != b'E'), "{set:?}");
    client
}

#[test]
fn generated_queries_never_show_a_masked_value() {
    let count = env_number("VIGIL_SMITH_QUERIES", 200);
    let seed = env_number("VIGIL_SMITH_SEED", 1);
    let mut cluster = Cluster::init("masking-generated");
    cluster.start();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo.sql");
    cluster.sql_file("postgres", &demo);
    let secrets: HashSet<String> = cluster
        .admin_sql(
            "SELECT ssn FROM shop.customers UNION ALL SELECT email FROM shop.customers
             UNION ALL SELECT phone FROM shop.customers
             UNION ALL SELECT card_number FROM shop.customers
             UNION ALL SELECT birth_date::text FROM shop.customers",
        )
        .lines()
        .map(str::to_owned)
        .collect();
    let queries = generated(&cluster.conninfo("postgres"), seed, count);
    assert!(
        queries.len() as u64 >= count / 2,
        "sqlsmith wrote {} queries",
        queries.len()
    );

    let toml = config_toml_with_db(
        "postgres",
        r#"labels = { environment = "production" }"#,
        "",
        &format!(
            "[policy]\nguardrails = true\nguardrails_exempt = {{ groups = [\"dba\"] }}\n\n{}",
            masking("unknown_lineage = \"mask\"", COLUMNS)
        ),
    )
    .replace(
        &format!("upstream = \"{PG_HOST}:{PG_PORT}\""),
        &format!("upstream = \"127.0.0.1:{}\"", cluster.port),
    );
    let proxy = Proxy::start(&toml);
    let mut tally = Tally::default();
    let mut client = agent(&proxy);
    for sql in &queries {
        tally.queries += 1;
        let mut out = BytesMut::new();
        postgres_protocol::message::frontend::query(sql, &mut out).unwrap();
        if client.send(&out).is_err() {
            tally.sessions_closed += 1;
            client = agent(&proxy);
            continue;
        }
        let mut seen = String::new();
        let mut refused = false;
        let mut failed = false;
        let mut closed = true;
        while let Some((tag, body)) = read_message(&mut client.stream) {
            seen.push_str(&String::from_utf8_lossy(&body));
            seen.push('\n');
            if tag == b'E' {
                match field(&body, b'M').starts_with("Vigil refused") {
                    true => refused = true,
                    false => failed = true,
                }
            }
            if tag == b'Z' {
                closed = false;
                break;
            }
        }
        let leaked: Vec<&str> = shapes(&seen)
            .into_iter()
            .filter(|s| secrets.contains(*s))
            .collect();
        if !leaked.is_empty() {
            tally
                .leaks
                .push(format!("{leaked:?} from:\n{sql}\nanswer:\n{seen}"));
        }
        match (refused, failed) {
            (true, _) => tally.refused_by_vigil += 1,
            (_, true) => tally.failed_at_server += 1,
            _ => tally.answered += 1,
        }
        if closed {
            tally.sessions_closed += 1;
            client = agent(&proxy);
        }
    }
    eprintln!(
        "sqlsmith seed {seed}: {} queries, {} answered, {} refused by Vigil, {} failed at the server, {} sessions closed, {} leaks",
        tally.queries,
        tally.answered,
        tally.refused_by_vigil,
        tally.failed_at_server,
        tally.sessions_closed,
        tally.leaks.len()
    );
    assert!(
        tally.leaks.is_empty(),
        "clear values reached agent:\n{}",
        tally.leaks.join("\n----\n")
    );
    assert!(
        tally.answered > 0,
        "no generated query was answered: the test saw nothing ({tally:?})"
    );
}
