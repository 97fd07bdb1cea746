//! Time per statement text of `vigil_sql` analysis: from the cache, without
//! it, and with a fresh literal every time (pgbench -S over the simple
//! protocol, where no two texts are equal: the analyzer serves them by
//! shape), or a fresh table name every time (a true miss).
//!
//!   cargo bench -p vigil-sql --bench analysis -- --warm-up-time 1 --measurement-time 3

use std::hint::black_box;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use vigil_sql::{analyze_uncached, Analyzer};

mod statements;

/// The proxy's cache size (vigil-server's `ANALYSIS_CACHE`).
const CACHE: usize = 10_000;

/// pgbench -S's statement with another literal: what the simple protocol
/// sends, a different text for every transaction.
fn short_with(aid: u64) -> String {
    format!("SELECT abalance FROM pgbench_accounts WHERE aid = {aid};")
}

/// A statement of a shape not seen before: nothing cached can answer it.
fn new_shape(n: u64) -> String {
    format!("SELECT abalance FROM pgbench_accounts_{n} WHERE aid = 1;")
}

fn texts() -> Vec<(&'static str, String)> {
    vec![
        ("short", statements::SHORT.to_owned()),
        ("medium", statements::MEDIUM.to_owned()),
        ("long_insert", statements::long_insert()),
        ("long_report", statements::long_report()),
    ]
}

fn by_text(c: &mut Criterion) {
    let texts = texts();
    for (name, sql) in &texts {
        assert!(analyze_uncached(sql).is_ok(), "{name} does not analyze");
        if name.starts_with("long") {
            assert!(
                (3_800..=4_400).contains(&sql.len()),
                "{name}: {} bytes",
                sql.len()
            );
        }
    }
    let analyzer = Analyzer::new(CACHE);

    let mut group = c.benchmark_group("cached");
    for (name, sql) in &texts {
        analyzer.analyze(sql).unwrap();
        group.bench_function(*name, |b| {
            b.iter(|| analyzer.analyze(black_box(sql)).unwrap())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("uncached");
    for (name, sql) in &texts {
        group.bench_function(*name, |b| {
            b.iter(|| analyze_uncached(black_box(sql)).unwrap())
        });
    }
    group.finish();
}

/// A thread with the default 2 MiB stack, as tokio's workers have by
/// default: analysis there needs more than is left, so `stacker` switches to
/// a fresh stack for every parse. Runs `iters` new-shape analyses per request
/// and answers with the time they took.
fn small_stack_worker(analyzer: &'static Analyzer) -> mpsc::Sender<(u64, mpsc::Sender<Duration>)> {
    let (requests, incoming) = mpsc::channel::<(u64, mpsc::Sender<Duration>)>();
    thread::Builder::new()
        .name("bench-2mib".into())
        .stack_size(2 << 20)
        .spawn(move || {
            let mut aid = 1u64 << 32; // apart from the main thread's literals
            for (iters, reply) in incoming {
                let texts: Vec<String> = (0..iters)
                    .map(|_| {
                        aid += 1;
                        new_shape(aid)
                    })
                    .collect();
                let start = Instant::now();
                for sql in &texts {
                    black_box(analyzer.analyze(black_box(sql)).unwrap());
                }
                let _ = reply.send(start.elapsed());
            }
        })
        .expect("spawn the 2 MiB thread");
    requests
}

fn fresh_literal(c: &mut Criterion) {
    let mut group = c.benchmark_group("fresh_literal");
    let mut aid = 0u64;
    let mut next = || {
        aid += 1;
        short_with(aid)
    };
    group.bench_function("uncached", |b| {
        b.iter_batched(
            &mut next,
            |sql| analyze_uncached(&sql).unwrap(),
            BatchSize::SmallInput,
        )
    });
    // What the proxy does: the first text parses, the rest share its shape.
    let analyzer = Analyzer::new(CACHE);
    group.bench_function("analyzer_same_shape", |b| {
        b.iter_batched(
            &mut next,
            |sql| analyzer.analyze(&sql).unwrap(),
            BatchSize::SmallInput,
        )
    });
    // A miss, then inserts (by text and by shape) that evict once full.
    let mut n = 0u64;
    group.bench_function("analyzer_new_shape", |b| {
        b.iter_batched(
            || {
                n += 1;
                new_shape(n)
            },
            |sql| analyzer.analyze(&sql).unwrap(),
            BatchSize::SmallInput,
        )
    });
    let shared: &'static Analyzer = Box::leak(Box::new(Analyzer::new(CACHE)));
    let worker = small_stack_worker(shared);
    group.bench_function("analyzer_new_shape_2mib_stack", |b| {
        b.iter_custom(|iters| {
            let (reply, answer) = mpsc::channel();
            worker.send((iters, reply)).unwrap();
            answer.recv().unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, by_text, fresh_literal);
criterion_main!(benches);
