//! DataRow rewriter tests: exact bytes for known plans, and properties over
//! random rows and plans.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use proptest::prelude::{any, prop, prop_assert, prop_assert_eq, prop_oneof, proptest, Just};
use proptest::strategy::Strategy as Gen;

use super::*;
use crate::detect::{DetectorKind, DetectorSpec};
use crate::value::oid;

fn key() -> Arc<MaskKey> {
    Arc::new(MaskKey::new(&[9; 32]).unwrap())
}

pub(crate) fn data_row(values: &[Option<&[u8]>]) -> Vec<u8> {
    let mut body = BytesMut::new();
    body.put_i16(values.len() as i16);
    for v in values {
        match v {
            Some(v) => {
                body.put_i32(v.len() as i32);
                body.extend_from_slice(v);
            }
            None => body.put_i32(-1),
        }
    }
    let mut frame = vec![b'D'];
    frame.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// Parses a DataRow back, checking every length.
pub(crate) fn parse_row(frame: &[u8]) -> Vec<Option<Vec<u8>>> {
    assert_eq!(frame[0], b'D');
    assert_eq!(read_i32(frame, 1) as usize, frame.len() - 1);
    let n = read_i16(frame, 5) as usize;
    let mut at = 7;
    let mut values = Vec::new();
    for _ in 0..n {
        let len = read_i32(frame, at);
        at += 4;
        if len == -1 {
            values.push(None);
        } else {
            values.push(Some(frame[at..at + len as usize].to_vec()));
            at += len as usize;
        }
    }
    assert_eq!(at, frame.len());
    values
}

fn text_mask(strategy: Strategy) -> ColumnPlan {
    ColumnPlan::Mask(ColumnMask {
        strategy,
        type_oid: oid::TEXT,
        binary: false,
    })
}

fn plan(columns: Vec<ColumnPlan>) -> RowPlan {
    let detectors = Detectors::new(vec![
        DetectorSpec::builtin(DetectorKind::Email, Strategy::EmailDomain),
        DetectorSpec::builtin(DetectorKind::UsSsn, Strategy::KeepLast(4)),
    ])
    .unwrap();
    RowPlan::new(columns, key(), Arc::new(detectors))
}

#[test]
fn masks_one_column_and_reframes() {
    let mut plan = plan(vec![
        ColumnPlan::Clear,
        text_mask(Strategy::KeepLast(4)),
        ColumnPlan::Clear,
    ]);
    assert!(!plan.is_clear());
    let frame = data_row(&[Some(b"1"), Some(b"123-45-6789"), None]);
    let mut out = BytesMut::new();
    assert_eq!(plan.rewrite(&frame, &mut out).unwrap(), 1);
    let values = parse_row(&out);
    assert_eq!(values[0].as_deref(), Some(&b"1"[..]));
    assert_eq!(values[1].as_deref(), Some(&b"*******6789"[..]));
    assert_eq!(values[2], None);
    assert_eq!(plan.counts(), &[0, 1, 0]);
}

#[test]
fn nulls_stay_null_and_are_not_counted() {
    let mut plan = plan(vec![text_mask(Strategy::Redact)]);
    let frame = data_row(&[None]);
    let mut out = BytesMut::new();
    assert_eq!(plan.rewrite(&frame, &mut out).unwrap(), 0);
    assert_eq!(&out[..], &frame[..]);
    assert_eq!(plan.counts(), &[0]);
}

#[test]
fn concealed_nulls_look_like_every_other_masked_value() {
    let mut plan = plan(vec![
        text_mask(Strategy::Redact),
        ColumnPlan::Mask(ColumnMask {
            strategy: Strategy::Redact,
            type_oid: oid::INT4,
            binary: true,
        }),
        text_mask(Strategy::Redact),
    ])
    .concealing_nulls(vec![true, true, false]);
    let nulls = data_row(&[None, None, None]);
    let values = data_row(&[Some(b"yes"), Some(&7i32.to_be_bytes()), None]);
    let mut a = BytesMut::new();
    let mut b = BytesMut::new();
    assert_eq!(plan.rewrite(&nulls, &mut a).unwrap(), 2);
    assert_eq!(plan.rewrite(&values, &mut b).unwrap(), 2);
    assert_eq!(a, b, "NULL and a value are indistinguishable");
    assert_eq!(
        parse_row(&a),
        vec![
            Some(b"****".to_vec()),
            Some(0i32.to_be_bytes().to_vec()),
            None
        ]
    );
}

#[test]
fn null_strategy_writes_minus_one() {
    let mut plan = plan(vec![text_mask(Strategy::Null), ColumnPlan::Clear]);
    let frame = data_row(&[Some(b"secret"), Some(b"x")]);
    let mut out = BytesMut::new();
    assert_eq!(plan.rewrite(&frame, &mut out).unwrap(), 1);
    assert_eq!(parse_row(&out), vec![None, Some(b"x".to_vec())]);
}

#[test]
fn typed_binary_columns() {
    let mut plan = plan(vec![
        ColumnPlan::Mask(ColumnMask {
            strategy: Strategy::Redact,
            type_oid: oid::INT4,
            binary: true,
        }),
        ColumnPlan::Mask(ColumnMask {
            strategy: Strategy::Hash,
            type_oid: oid::UUID,
            binary: true,
        }),
        ColumnPlan::Mask(ColumnMask {
            strategy: Strategy::Redact,
            type_oid: oid::BOOL,
            binary: true,
        }),
    ]);
    let frame = data_row(&[Some(&42i32.to_be_bytes()), Some(&[0xab; 16]), Some(&[1])]);
    let mut out = BytesMut::new();
    assert_eq!(plan.rewrite(&frame, &mut out).unwrap(), 3);
    let values = parse_row(&out);
    assert_eq!(values[0].as_deref(), Some(&[0u8, 0, 0, 0][..]));
    assert_eq!(values[1].as_ref().map(Vec::len), Some(16));
    assert_eq!(values[2], None);
}

#[test]
fn scan_masks_detected_spans_only() {
    let mut plan = plan(vec![ColumnPlan::Scan {
        type_oid: oid::TEXT,
        binary: false,
    }]);
    let frame = data_row(&[Some(b"mail bob@example.com ssn 123-45-6789")]);
    let mut out = BytesMut::new();
    assert_eq!(plan.rewrite(&frame, &mut out).unwrap(), 1);
    assert_eq!(
        parse_row(&out)[0].as_deref(),
        Some(&b"mail ****@example.com ssn *******6789"[..])
    );
    let clean = data_row(&[Some(b"nothing to see, order 123456789")]);
    out.clear();
    assert_eq!(plan.rewrite(&clean, &mut out).unwrap(), 0);
    assert_eq!(&out[..], &clean[..]);
    // Scans of non-text types pass through.
    let plan = RowPlan::new(
        vec![ColumnPlan::Scan {
            type_oid: oid::INT4,
            binary: false,
        }],
        key(),
        Arc::new(Detectors::all_builtin(Strategy::Redact)),
    );
    assert!(plan.is_clear());
}

#[test]
fn malformed_rows_are_errors() {
    let mut plan = plan(vec![text_mask(Strategy::Redact), ColumnPlan::Clear]);
    let mut out = BytesMut::new();
    let good = data_row(&[Some(b"ab"), Some(b"cd")]);
    // Wrong column count.
    let short = data_row(&[Some(b"ab")]);
    assert!(matches!(
        plan.rewrite(&short, &mut out),
        Err(MaskError::ColumnCount {
            expected: 2,
            got: 1
        })
    ));
    // Truncated frame, bad tag, value past the end, negative length.
    assert!(plan.rewrite(&good[..good.len() - 1], &mut out).is_err());
    let mut tag = good.clone();
    tag[0] = b'T';
    assert!(plan.rewrite(&tag, &mut out).is_err());
    let mut past = good.clone();
    past[7..11].copy_from_slice(&100i32.to_be_bytes());
    assert!(plan.rewrite(&past, &mut out).is_err());
    let mut negative = good.clone();
    negative[7..11].copy_from_slice(&(-2i32).to_be_bytes());
    assert!(plan.rewrite(&negative, &mut out).is_err());
    // Trailing bytes inside the declared length.
    let mut trailing = data_row(&[Some(b"ab"), Some(b"cd")]);
    trailing.push(0);
    let len = trailing.len() as u32 - 1;
    trailing[1..5].copy_from_slice(&len.to_be_bytes());
    assert!(matches!(
        plan.rewrite(&trailing, &mut out),
        Err(MaskError::TrailingBytes { extra: 1 })
    ));
    assert!(out.is_empty(), "errors leave nothing behind");
}

fn column_plan() -> impl Gen<Value = ColumnPlan> {
    use crate::strategy::Strategy as S;
    let strategy = prop_oneof![
        Just(S::Redact),
        (0u8..8).prop_map(S::KeepLast),
        Just(S::EmailDomain),
        Just(S::Hash),
        Just(S::Null),
        Just(S::Preserve),
    ];
    let type_oid = prop::sample::select(vec![
        oid::TEXT,
        oid::INT2,
        oid::INT4,
        oid::INT8,
        oid::NUMERIC,
        oid::FLOAT8,
        oid::UUID,
        oid::JSONB,
        oid::BYTEA,
        oid::DATE,
        oid::TIMESTAMPTZ,
        oid::INET,
        oid::BOOL,
        99_999,
    ]);
    prop_oneof![
        Just(ColumnPlan::Clear),
        (strategy, type_oid.clone(), any::<bool>()).prop_map(|(strategy, type_oid, binary)| {
            ColumnPlan::Mask(ColumnMask {
                strategy,
                type_oid,
                binary,
            })
        }),
        (type_oid, any::<bool>())
            .prop_map(|(type_oid, binary)| ColumnPlan::Scan { type_oid, binary }),
    ]
}

proptest! {
    #[test]
    fn random_rows_reframe_correctly(
        plans in prop::collection::vec(column_plan(), 0..6),
        values in prop::collection::vec(prop::option::of(prop::collection::vec(any::<u8>(), 0..40)), 6),
    ) {
        let values: Vec<Option<&[u8]>> = values[..plans.len()].iter().map(|v| v.as_deref()).collect();
        let frame = data_row(&values);
        let clear = plans.iter().all(|p| *p == ColumnPlan::Clear);
        let mut plan = plan(plans);
        let mut out = BytesMut::new();
        let masked = plan.rewrite(&frame, &mut out).unwrap();
        let parsed = parse_row(&out);
        prop_assert_eq!(parsed.len(), values.len());
        if clear || masked == 0 {
            prop_assert_eq!(&out[..], &frame[..]);
        }
        for (got, original) in parsed.iter().zip(&values) {
            if original.is_none() {
                prop_assert!(got.is_none());
            }
        }
    }

    #[test]
    fn garbage_never_panics(mut bytes in prop::collection::vec(any::<u8>(), 0..64), n in 0usize..4) {
        if let Some(first) = bytes.first_mut() {
            *first = b'D';
        }
        let mut plan = plan(vec![text_mask(Strategy::Hash); n]);
        let mut out = BytesMut::new();
        let _ = plan.rewrite(&bytes, &mut out);
    }
}
