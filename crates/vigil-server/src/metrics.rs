//! What the proxy counts while it runs: statements by database, class and
//! decision, latency histograms, masked values, failed logins and upstream
//! errors, plus the last two minutes of decisions per second and the busiest
//! identities and fingerprints for the console. Rendered as Prometheus text
//! on `/metrics`; nothing here holds result data or secrets.
//!
//! Counters are atomics; the labelled ones share one short lock per
//! statement. Everything is bounded: label sets come from configuration and
//! the analyzer's small vocabularies, and the top-N tables stop taking new
//! names once full.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vigil_policy::Action;

use crate::limits::Refused;

/// Seconds of per-second decision counts kept for the console's chart.
pub(crate) const RATE_WINDOW: usize = 120;
/// Distinct identities and fingerprints counted for the top tables.
const TOP_CAPACITY: usize = 2_000;
/// Distinct databases counted: more are folded into database `other`
/// (databases come from the configuration, so this is a guard, not a limit
/// anyone should meet).
const DATABASE_CAPACITY: usize = 1_024;

/// Histogram bucket bounds, in seconds.
const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// A latency histogram with fixed buckets.
#[derive(Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub(crate) fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count();
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// One statement as the counters see it.
pub(crate) struct Counted<'a> {
    pub(crate) database: &'a str,
    pub(crate) identity: &'a str,
    pub(crate) class: &'static str,
    pub(crate) action: Action,
    pub(crate) fingerprint: &'a str,
    /// The statement's text, kept as the example of a new fingerprint.
    pub(crate) text: &'a str,
}

/// One second of decisions.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Second {
    pub(crate) unix: u64,
    pub(crate) allow: u64,
    pub(crate) deny: u64,
    pub(crate) review: u64,
}

/// A fingerprint's count and an example of its text.
pub(crate) struct Shape {
    pub(crate) statements: u64,
    pub(crate) text: Arc<str>,
}

/// Counts by class and decision.
type ByClass = HashMap<(&'static str, &'static str), u64>;

#[derive(Default)]
struct Tallies {
    /// By database, then class and decision: looked up by `&str`, so a
    /// statement allocates nothing once its database has a series.
    series: HashMap<Arc<str>, ByClass>,
    rate: Vec<Second>,
    identities: HashMap<Arc<str>, u64>,
    fingerprints: HashMap<Arc<str>, Shape>,
}

/// The proxy's counters, shared through [`State`](crate::State).
pub struct Metrics {
    started: Instant,
    tallies: Mutex<Tallies>,
    pub(crate) masked_values: AtomicU64,
    pub(crate) auth_failures: AtomicU64,
    pub(crate) upstream_errors: AtomicU64,
    pub(crate) sessions_total: AtomicU64,
    /// Connections refused by a limit, by [`Refused`] reason.
    refused: [AtomicU64; Refused::ALL.len()],
    /// From reading a client message to passing it on (analysis, policy and
    /// the audit commit), for messages not held for approval.
    pub(crate) added: Histogram,
    /// From forwarding a statement to the server's answer.
    pub(crate) upstream: Histogram,
    /// How long sessions waited for their statements' audit commit.
    pub(crate) audit_wait: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            tallies: Mutex::default(),
            masked_values: AtomicU64::new(0),
            auth_failures: AtomicU64::new(0),
            upstream_errors: AtomicU64::new(0),
            sessions_total: AtomicU64::new(0),
            refused: Default::default(),
            added: Histogram::default(),
            upstream: Histogram::default(),
            audit_wait: Histogram::default(),
        }
    }
}

impl Metrics {
    /// A connection was refused by a limit.
    pub(crate) fn refused(&self, reason: Refused) {
        self.refused[reason as usize].fetch_add(1, Ordering::Relaxed);
    }
}

pub(crate) fn action_name(action: Action) -> &'static str {
    match action {
        Action::Allow => "allow",
        Action::Deny => "deny",
        Action::Review => "review",
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Metrics {
    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Counts one statement the gate decided.
    pub(crate) fn statement(&self, s: &Counted<'_>) {
        self.statement_at(s, unix_now());
    }

    fn statement_at(&self, s: &Counted<'_>, unix: u64) {
        let decision = action_name(s.action);
        let mut t = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let database = match t.series.contains_key(s.database) {
            true => s.database,
            false if t.series.len() < DATABASE_CAPACITY => {
                t.series.insert(Arc::from(s.database), ByClass::new());
                s.database
            }
            false => {
                t.series.entry(Arc::from("other")).or_default();
                "other"
            }
        };
        if let Some(by_class) = t.series.get_mut(database) {
            *by_class.entry((s.class, decision)).or_default() += 1;
        }

        let slot = (unix % RATE_WINDOW as u64) as usize;
        if t.rate.len() < RATE_WINDOW {
            t.rate.resize(RATE_WINDOW, Second::default());
        }
        let second = &mut t.rate[slot];
        if second.unix != unix {
            *second = Second {
                unix,
                ..Second::default()
            };
        }
        match s.action {
            Action::Allow => second.allow += 1,
            Action::Deny => second.deny += 1,
            Action::Review => second.review += 1,
        }

        if let Some(n) = t.identities.get_mut(s.identity) {
            *n += 1;
        } else if t.identities.len() < TOP_CAPACITY {
            t.identities.insert(Arc::from(s.identity), 1);
        }
        if let Some(shape) = t.fingerprints.get_mut(s.fingerprint) {
            shape.statements += 1;
        } else if t.fingerprints.len() < TOP_CAPACITY {
            let shape = Shape {
                statements: 1,
                text: Arc::from(s.text),
            };
            t.fingerprints.insert(Arc::from(s.fingerprint), shape);
        }
    }

    /// Statements counted so far, by decision: allow, deny, review.
    pub(crate) fn by_decision(&self) -> [u64; 3] {
        let t = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let mut totals = [0; 3];
        for ((_, decision), n) in t.series.values().flatten() {
            let i = match *decision {
                "allow" => 0,
                "deny" => 1,
                _ => 2,
            };
            totals[i] += n;
        }
        totals
    }

    /// The last `seconds` seconds of decisions, oldest first, one entry per
    /// second (zeros where nothing happened), ending with the current one.
    pub(crate) fn rate(&self, seconds: usize) -> Vec<Second> {
        self.rate_at(seconds, unix_now())
    }

    fn rate_at(&self, seconds: usize, now: u64) -> Vec<Second> {
        let seconds = seconds.min(RATE_WINDOW) as u64;
        let t = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        (now + 1 - seconds.min(now + 1)..=now)
            .map(|unix| {
                t.rate
                    .get((unix % RATE_WINDOW as u64) as usize)
                    .filter(|s| s.unix == unix)
                    .copied()
                    .unwrap_or(Second {
                        unix,
                        ..Second::default()
                    })
            })
            .collect()
    }

    /// The `n` identities with the most statements.
    pub(crate) fn top_identities(&self, n: usize) -> Vec<(String, u64)> {
        let t = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<(String, u64)> = t
            .identities
            .iter()
            .map(|(name, count)| (name.to_string(), *count))
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }

    /// The `n` fingerprints with the most statements, with an example text.
    pub(crate) fn top_fingerprints(&self, n: usize) -> Vec<(String, Arc<str>, u64)> {
        let t = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<(String, Arc<str>, u64)> = t
            .fingerprints
            .iter()
            .map(|(fp, shape)| (fp.to_string(), Arc::clone(&shape.text), shape.statements))
            .collect();
        all.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }

    /// The statement counters as Prometheus series.
    fn render_statements(&self, out: &mut String) {
        let t = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let mut series: Vec<(&str, &str, &str, u64)> = t
            .series
            .iter()
            .flat_map(|(db, by_class)| {
                by_class
                    .iter()
                    .map(move |((class, decision), n)| (&**db, *class, *decision, *n))
            })
            .collect();
        series.sort_unstable();
        let _ = writeln!(
            out,
            "# HELP vigil_statements_total Statements decided, by database, class and decision.\n# TYPE vigil_statements_total counter"
        );
        for (database, class, decision, n) in series {
            let _ = writeln!(
                out,
                "vigil_statements_total{{database=\"{}\",class=\"{class}\",decision=\"{decision}\"}} {n}",
                label(database)
            );
        }
    }
}

/// Gauges read from the rest of the proxy when `/metrics` is scraped.
pub(crate) struct Gauges {
    pub(crate) sessions: u64,
    pub(crate) approvals_pending: u64,
    pub(crate) audit: vigil_audit::AuditStats,
    /// Audit events appended and not yet committed.
    pub(crate) audit_queued: u64,
    pub(crate) audit_healthy: bool,
    pub(crate) audit_enabled: bool,
}

impl Metrics {
    /// Everything, in the Prometheus text exposition format.
    pub(crate) fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(8 * 1024);
        self.render_statements(&mut out);
        self.added.render(
            &mut out,
            "vigil_added_latency_seconds",
            "Time Vigil adds before forwarding a client message (analysis, policy, audit commit); held approvals excluded.",
        );
        self.upstream.render(
            &mut out,
            "vigil_upstream_latency_seconds",
            "From forwarding a statement to the server's answer (recorded while audit is on).",
        );
        self.audit_wait.render(
            &mut out,
            "vigil_audit_commit_seconds",
            "How long sessions waited for their statements' audit events to be committed.",
        );
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let counters: [(&str, &str, u64); 9] = [
            (
                "vigil_masked_values_total",
                "Values masked in results.",
                load(&self.masked_values),
            ),
            (
                "vigil_auth_failures_total",
                "Failed logins (proxy and admin API).",
                load(&self.auth_failures),
            ),
            (
                "vigil_upstream_connection_errors_total",
                "Upstream connections that could not be opened.",
                load(&self.upstream_errors),
            ),
            (
                "vigil_sessions_total",
                "Sessions that got through authentication.",
                load(&self.sessions_total),
            ),
            (
                "vigil_audit_events_total",
                "Audit events committed.",
                gauges.audit.events,
            ),
            (
                "vigil_audit_commits_total",
                "Audit store transactions that carried events.",
                gauges.audit.commits,
            ),
            (
                "vigil_audit_failed_batches_total",
                "Audit commits that failed.",
                gauges.audit.failed_batches,
            ),
            (
                "vigil_audit_failed_events_total",
                "Audit events refused or dropped because the store was failing.",
                gauges.audit.failed_events,
            ),
            (
                "vigil_audit_checkpoints_total",
                "Signed checkpoints committed.",
                gauges.audit.checkpoints,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP vigil_connections_refused_total Client connections refused by a limit, by the limit.\n# TYPE vigil_connections_refused_total counter"
        );
        for reason in Refused::ALL {
            let _ = writeln!(
                out,
                "vigil_connections_refused_total{{reason=\"{}\"}} {}",
                reason.as_str(),
                load(&self.refused[reason as usize])
            );
        }
        let gauge_values: [(&str, &str, u64); 5] = [
            ("vigil_sessions", "Sessions open now.", gauges.sessions),
            (
                "vigil_approvals_pending",
                "Approval requests waiting for a decision.",
                gauges.approvals_pending,
            ),
            (
                "vigil_audit_queue_depth",
                "Audit events appended but not yet committed.",
                gauges.audit_queued,
            ),
            (
                "vigil_audit_healthy",
                "1 while the audit store accepts commits (or audit is off).",
                u64::from(gauges.audit_healthy || !gauges.audit_enabled),
            ),
            (
                "vigil_uptime_seconds",
                "Seconds since Vigil started.",
                self.uptime().as_secs(),
            ),
        ];
        for (name, help, value) in gauge_values {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

/// A label value, escaped as the exposition format wants.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted<'a>(database: &'a str, identity: &'a str, action: Action) -> Counted<'a> {
        Counted {
            database,
            identity,
            class: "read",
            action,
            fingerprint: "f1",
            text: "SELECT 1",
        }
    }

    #[test]
    fn statements_are_counted_by_database_class_and_decision() {
        let m = Metrics::default();
        m.statement_at(&counted("prod", "alice", Action::Allow), 100);
        m.statement_at(&counted("prod", "alice", Action::Allow), 100);
        m.statement_at(&counted("prod", "agent", Action::Deny), 101);
        m.statement_at(&counted("dev", "agent", Action::Review), 101);
        assert_eq!(m.by_decision(), [2, 1, 1]);
        let mut out = String::new();
        m.render_statements(&mut out);
        assert!(out.contains(
            "vigil_statements_total{database=\"prod\",class=\"read\",decision=\"allow\"} 2"
        ));
        assert!(out.contains(
            "vigil_statements_total{database=\"dev\",class=\"read\",decision=\"review\"} 1"
        ));
        assert_eq!(
            m.top_identities(5),
            vec![("agent".to_owned(), 2), ("alice".to_owned(), 2)]
        );
        let top = m.top_fingerprints(1);
        assert_eq!(
            (top[0].0.as_str(), &*top[0].1, top[0].2),
            ("f1", "SELECT 1", 4)
        );
    }

    #[test]
    fn the_rate_has_one_entry_per_second_and_forgets_old_seconds() {
        let m = Metrics::default();
        m.statement_at(&counted("prod", "a", Action::Allow), 1_000);
        m.statement_at(&counted("prod", "a", Action::Deny), 1_002);
        let rate = m.rate_at(3, 1_002);
        assert_eq!(rate.len(), 3);
        assert_eq!((rate[0].unix, rate[0].allow), (1_000, 1));
        assert_eq!((rate[1].unix, rate[1].allow, rate[1].deny), (1_001, 0, 0));
        assert_eq!((rate[2].unix, rate[2].deny), (1_002, 1));
        // Two windows later the same slots hold nothing of those seconds.
        let later = 1_000 + 2 * RATE_WINDOW as u64;
        m.statement_at(&counted("prod", "a", Action::Review), later);
        let rate = m.rate_at(RATE_WINDOW, later);
        assert_eq!(rate.iter().map(|s| s.allow + s.deny).sum::<u64>(), 0);
        assert_eq!(rate.last().map(|s| s.review), Some(1));
    }

    #[test]
    fn histograms_render_cumulative_buckets() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let mut out = String::new();
        h.render(&mut out, "x_seconds", "help");
        assert!(out.contains("x_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(out.contains("x_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(out.contains("x_seconds_bucket{le=\"10\"} 2\n"));
        assert!(out.contains("x_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(out.contains("x_seconds_count 3\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
