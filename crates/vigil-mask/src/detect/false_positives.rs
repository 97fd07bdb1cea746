//! False-positive measurement: 100k seeded, ordinary values (ids, order
//! numbers, timestamps, dates, decimals, UUIDs, versions, prices, durations)
//! must produce no detections from any built-in detector.
//!
//! Known ambiguities left out on purpose: an unprefixed four-part version
//! with multi-digit parts (`10.2.30.4`) is a valid IPv4 address, and a
//! Luhn-valid 16-digit id with a card prefix is a card number by shape.

use super::{DetectorKind, Detectors, Strategy};

/// SplitMix64: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn ordinary(rng: &mut Rng, shape: u64) -> String {
    match shape {
        0 => format!("{}", 100_000_000 + rng.below(900_000_000)),
        1 => format!("{:010}", rng.below(10_000_000_000)),
        2 => format!("ORD-{}-{:06}", 2000 + rng.below(30), rng.below(1_000_000)),
        3 => format!(
            "{}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}+00",
            2000 + rng.below(30),
            1 + rng.below(12),
            1 + rng.below(28),
            rng.below(24),
            rng.below(60),
            rng.below(60),
            rng.below(1000)
        ),
        4 => format!(
            "{}-{:02}-{:02}",
            1950 + rng.below(80),
            1 + rng.below(12),
            1 + rng.below(28)
        ),
        5 => format!("{}.{:02}", rng.below(1_000_000), rng.below(100)),
        6 => {
            let a = rng.next();
            let b = rng.next();
            format!(
                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xffff,
                b >> 48,
                b & 0xffff_ffff_ffff
            )
        }
        7 if rng.below(2) == 0 => format!(
            "{}.{}.{}.{}",
            rng.below(10),
            rng.below(10),
            rng.below(10),
            rng.below(10)
        ),
        7 => format!(
            "v{}.{}.{}.{}",
            rng.below(20),
            rng.below(50),
            rng.below(100),
            rng.below(1000)
        ),
        8 => format!(
            "{}.{}.{}.{}.{}",
            rng.below(20),
            rng.below(50),
            rng.below(100),
            rng.below(1000),
            rng.below(10)
        ),
        9 => format!(
            "{}.{}.{}-rc{}",
            rng.below(20),
            rng.below(50),
            rng.below(100),
            rng.below(5)
        ),
        10 => format!("INV/{}/{:05}", 2000 + rng.below(30), rng.below(100_000)),
        11 => format!(
            "{:02}:{:02}:{:02}",
            rng.below(24),
            rng.below(60),
            rng.below(60)
        ),
        12 => format!("{}", rng.below(u64::MAX / 2)),
        13 => format!("-{}.{}e{}", rng.below(1000), rng.below(1000), rng.below(30)),
        14 => format!(
            "SKU-{:04}-{:04}-{:04}",
            rng.below(10_000),
            rng.below(10_000),
            rng.below(10_000)
        ),
        _ => format!(
            "order {} shipped {}-{:02}-{:02} total {}.{:02} EUR",
            rng.below(10_000_000_000),
            2000 + rng.below(30),
            1 + rng.below(12),
            1 + rng.below(28),
            rng.below(10_000),
            rng.below(100)
        ),
    }
}

#[test]
fn ordinary_values_are_not_detected() {
    let detectors = Detectors::all_builtin(Strategy::Redact);
    let mut rng = Rng(0x5eed_cafe);
    let mut counts = [0usize; DetectorKind::ALL.len()];
    let mut examples = Vec::new();
    let total = 100_000;
    for i in 0..total {
        let value = ordinary(&mut rng, i % 16);
        for span in detectors.find(&value) {
            counts[span.detector] += 1;
            if examples.len() < 10 {
                examples.push(format!("{}: {value}", detectors.name(span.detector)));
            }
        }
    }
    for (kind, count) in DetectorKind::ALL.iter().zip(counts) {
        eprintln!(
            "false positives over {total} ordinary values: {:>14} {count}",
            kind.name()
        );
    }
    assert_eq!(counts.iter().sum::<usize>(), 0, "examples: {examples:#?}");
}
