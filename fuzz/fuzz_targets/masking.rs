//! The masking rewriters read what the server sends: DataRow, CopyData,
//! ErrorResponse and NoticeResponse. Whatever the bytes, they must answer
//! with a rewritten message or an error, never panic or read out of bounds.
#![no_main]

use std::sync::Arc;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use vigil_mask::copy::{CopyFormat, CopyPlan};
use vigil_mask::{ColumnMask, ColumnPlan, DetectorKind, DetectorSpec, Detectors, MaskKey, RowPlan, Strategy};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    let key = Arc::new(MaskKey::new(&[7u8; 32]).expect("a long enough key"));
    let detectors = Arc::new(
        Detectors::new(
            DetectorKind::ALL
                .iter()
                .map(|&kind| DetectorSpec::builtin(kind, Strategy::Redact))
                .collect(),
        )
        .expect("built-in detectors compile"),
    );
    let strategies = [
        Strategy::Redact,
        Strategy::KeepLast(4),
        Strategy::EmailDomain,
        Strategy::Hash,
        Strategy::Null,
        Strategy::Preserve,
    ];
    let types = [25, 23, 20, 21, 1700, 1082, 1184, 2950, 3802, 17, 869, 16, 0];
    // One plan per column, chosen by the selector byte's bits.
    let columns: Vec<ColumnPlan> = (0..(selector % 7) as usize)
        .map(|i| {
            let pick = (selector as usize).wrapping_mul(31).wrapping_add(i * 17);
            match pick % 3 {
                0 => ColumnPlan::Clear,
                1 => ColumnPlan::Mask(ColumnMask {
                    strategy: strategies[pick % strategies.len()],
                    type_oid: types[pick % types.len()],
                    binary: pick % 2 == 0,
                }),
                _ => ColumnPlan::Scan {
                    type_oid: 25,
                    binary: pick % 2 == 1,
                },
            }
        })
        .collect();
    let mut out = BytesMut::new();
    let mut rows = RowPlan::new(columns.clone(), key.clone(), detectors.clone());
    let _ = rows.rewrite(frame, &mut out);
    for format in [
        CopyFormat::text(),
        CopyFormat::csv(selector & 1 == 1),
        CopyFormat::Binary,
    ] {
        let mut copy = CopyPlan::new(format, columns.clone(), key.clone(), detectors.clone());
        out.clear();
        let _ = copy.rewrite(frame, &mut out);
    }
    out.clear();
    let masked = |_: Option<&str>, _: Option<&str>, column: &str| column.len() % 2 == 0;
    let _ = vigil_mask::scrub::scrub_report(frame, &masked, &detectors, &key, &mut out);
});
