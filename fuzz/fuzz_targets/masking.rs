//! The masking rewriters read what the server sends: DataRow, CopyData,
//! ErrorResponse and NoticeResponse. Whatever the bytes, they must answer
//! with a rewritten message or an error, never panic or read out of bounds.
//!
//! What does not depend on the input (the key, the compiled detector sets,
//! the tables plans are picked from) is built once per process; each input
//! only builds its plans and runs the rewriters.
//!
//! Input layout:
//! - byte 0: number of columns (`% 8`), and bits choosing the scrub rule;
//! - byte 1: the detector set, the text and csv COPY dialects, csv header;
//! - two bytes per column: its plan (clear, mask, scan), format, NULL
//!   concealment, strategy and type;
//! - the rest: a stream of messages, cut where each one's own length says
//!   (a short or bad length leaves everything left as the last message).
//!   Every message goes through the same row plan, the same COPY plans (so
//!   the csv header, the binary file header and trailer are tracked across
//!   messages, as on a real stream) and the report scrubber.
//!
//! Beyond not panicking, the rewriters keep their documented contracts: on
//! success they append exactly one message with the input's tag and a length
//! that covers it (the input itself when nothing was masked); on error they
//! append nothing; a rewritten DataRow is still a well-formed DataRow of the
//! same column count; a scrubbed report is still a well-formed report.
#![no_main]

use std::sync::{Arc, OnceLock};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use vigil_mask::copy::{CopyFormat, CopyPlan};
use vigil_mask::{
    ColumnMask, ColumnPlan, DetectorKind, DetectorPattern, DetectorSpec, Detectors, MaskKey,
    RowPlan, Strategy,
};

const STRATEGIES: [Strategy; 8] = [
    Strategy::Redact,
    Strategy::KeepLast(0),
    Strategy::KeepLast(4),
    Strategy::EmailDomain,
    Strategy::Hash,
    Strategy::Null,
    Strategy::Preserve,
    Strategy::KeepLast(255),
];

/// Text-like types, every type `mask_value` handles specially, a few it
/// does not (bool, inet, cidr) and the unknown OID 0.
const TYPES: [u32; 24] = [
    25, 1043, 1042, 19, 705, 23, 20, 21, 1700, 700, 701, 1082, 1114, 1184, 2950, 114, 3802, 17,
    869, 650, 16, 0, 1000, 3614,
];

/// Everything that does not depend on the input.
struct Fixed {
    key: Arc<MaskKey>,
    /// Detector sets to pick from: all built-ins under each strategy, a mix
    /// of strategies with custom patterns, and none.
    detectors: Vec<Arc<Detectors>>,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let mut detectors: Vec<Arc<Detectors>> = STRATEGIES
            .iter()
            .map(|&strategy| Arc::new(Detectors::all_builtin(strategy)))
            .collect();
        let mut mixed: Vec<DetectorSpec> = DetectorKind::ALL
            .iter()
            .zip(STRATEGIES.iter().cycle())
            .map(|(&kind, &strategy)| DetectorSpec::builtin(kind, strategy))
            .collect();
        for (name, pattern, strategy) in [
            ("employee_id", r"EMP-[0-9]{4,8}", Strategy::Hash),
            ("anything_quoted", r#""[^"]*""#, Strategy::Preserve),
            ("can_be_empty", r"x*", Strategy::Redact),
        ] {
            mixed.push(DetectorSpec {
                pattern: DetectorPattern::Regex {
                    name: name.to_owned(),
                    pattern: pattern.to_owned(),
                },
                strategy,
            });
        }
        detectors.push(Arc::new(
            Detectors::new(mixed).expect("the fuzz target's custom patterns compile"),
        ));
        detectors.push(Arc::new(Detectors::none()));
        Fixed {
            key: Arc::new(MaskKey::new(&[7u8; 32]).expect("a long enough key")),
            detectors,
        }
    })
}

fn column(plan: u8, kind: u8) -> (ColumnPlan, bool) {
    let binary = plan & 0b100 != 0;
    let conceal = plan & 0b1000 != 0;
    let type_oid = TYPES[usize::from(kind) % TYPES.len()];
    let column = match plan & 0b11 {
        0 => ColumnPlan::Clear,
        1 | 2 => ColumnPlan::Mask(ColumnMask {
            strategy: match STRATEGIES[usize::from(plan >> 4) % STRATEGIES.len()] {
                Strategy::KeepLast(_) if plan >> 4 >= 8 => Strategy::KeepLast(kind),
                strategy => strategy,
            },
            type_oid,
            binary,
        }),
        _ => ColumnPlan::Scan { type_oid, binary },
    };
    (column, conceal)
}

fn read_i32(bytes: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The next message of a stream: as long as its length field says, or all
/// that is left when that cannot be.
fn next_message(stream: &[u8]) -> (&[u8], &[u8]) {
    let len = if stream.len() >= 5 {
        usize::try_from(read_i32(stream, 1))
            .ok()
            .filter(|&len| len >= 4)
            .map_or(stream.len(), |len| (len + 1).min(stream.len()))
    } else {
        stream.len()
    };
    stream.split_at(len)
}

/// What a rewriter appended to `out` (from `start`) keeps its contract.
fn check_output(
    result: &Result<usize, vigil_mask::MaskError>,
    frame: &[u8],
    out: &BytesMut,
    start: usize,
    what: &str,
) {
    let appended = &out[start..];
    match result {
        Err(_) => assert!(appended.is_empty(), "{what}: an error appended bytes"),
        Ok(0) => assert_eq!(
            appended, frame,
            "{what}: nothing masked, yet the message changed"
        ),
        Ok(_) => {
            assert!(
                appended.len() >= 5,
                "{what}: a rewritten message shorter than its header"
            );
            assert_eq!(appended[0], frame[0], "{what}: the tag changed");
            let len = read_i32(appended, 1);
            assert_eq!(
                usize::try_from(len).ok(),
                Some(appended.len() - 1),
                "{what}: the length field does not cover the message"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [shape, options, rest @ ..] = data else {
        return;
    };
    let fixed = fixed();
    let count = usize::from(shape % 8);
    if rest.len() < 2 * count {
        return;
    }
    let (plans, stream) = rest.split_at(2 * count);
    let (columns, conceal): (Vec<ColumnPlan>, Vec<bool>) =
        plans.chunks_exact(2).map(|p| column(p[0], p[1])).unzip();
    let detectors = &fixed.detectors[usize::from(options & 0x0f) % fixed.detectors.len()];
    let key = &fixed.key;

    let mut rows = RowPlan::new(columns.clone(), key.clone(), detectors.clone())
        .concealing_nulls(conceal.clone());
    // Rewritten rows must still read as DataRows of as many columns.
    let mut reread = RowPlan::new(
        vec![ColumnPlan::Clear; count],
        key.clone(),
        detectors.clone(),
    );
    let text = match (options >> 4) & 0b11 {
        0 => CopyFormat::text(),
        1 => CopyFormat::Text {
            delimiter: b',',
            null: Vec::new(),
        },
        2 => CopyFormat::Text {
            delimiter: b'|',
            null: b"NULL".to_vec(),
        },
        _ => CopyFormat::Text {
            delimiter: b';',
            null: b"".to_vec(),
        },
    };
    let csv = match (options >> 6) & 0b1 {
        0 => CopyFormat::csv(options & 0x80 != 0),
        _ => CopyFormat::Csv {
            delimiter: b';',
            quote: b'\'',
            escape: b'\\',
            null: b"\\N".to_vec(),
            header: options & 0x80 != 0,
        },
    };
    let mut copies: Vec<CopyPlan> = [text, csv, CopyFormat::Binary]
        .into_iter()
        .map(|format| {
            CopyPlan::new(format, columns.clone(), key.clone(), detectors.clone())
                .concealing_nulls(conceal.clone())
        })
        .collect();
    let masked = |schema: Option<&str>, table: Option<&str>, column: &str| match shape >> 3 & 0b11 {
        0 => column.len() % 2 == 0,
        1 => true,
        2 => false,
        _ => schema.is_some() || table.is_some_and(|t| t.len() == column.len()),
    };

    let mut out = BytesMut::new();
    let mut again = BytesMut::new();
    let mut stream = stream;
    loop {
        let (frame, remaining) = next_message(stream);
        stream = remaining;

        out.clear();
        let result = rows.rewrite(frame, &mut out);
        check_output(&result, frame, &out, 0, "DataRow");
        if result.is_ok() {
            again.clear();
            assert!(
                reread.rewrite(&out, &mut again).is_ok(),
                "a rewritten DataRow no longer parses: {:?}",
                &out[..]
            );
        }

        for copy in &mut copies {
            // Appended after earlier output, as the proxy does.
            out.clear();
            out.extend_from_slice(b"prefix");
            let result = copy.rewrite(frame, &mut out);
            check_output(&result, frame, &out, 6, "CopyData");
        }

        out.clear();
        let result = vigil_mask::scrub::scrub_report(frame, &masked, detectors, key, &mut out);
        check_output(&result, frame, &out, 0, "report");
        if result.is_ok() {
            again.clear();
            assert!(
                vigil_mask::scrub::scrub_report(&out, &masked, detectors, key, &mut again).is_ok(),
                "a scrubbed report no longer parses: {:?}",
                &out[..]
            );
        }

        if stream.is_empty() {
            break;
        }
    }
});
