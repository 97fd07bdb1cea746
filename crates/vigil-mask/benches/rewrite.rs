//! DataRow rewrite throughput: 150-byte rows of five text columns with one
//! column masked (or scanned), reported as rows per second.

use std::hint::black_box;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vigil_mask::value::oid;
use vigil_mask::{ColumnMask, ColumnPlan, Detectors, MaskKey, RowPlan, Strategy};

fn data_row(values: &[&[u8]]) -> Vec<u8> {
    let mut body = BytesMut::new();
    body.put_i16(values.len() as i16);
    for v in values {
        body.put_i32(v.len() as i32);
        body.extend_from_slice(v);
    }
    let mut frame = vec![b'D'];
    frame.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

fn rewrite(c: &mut Criterion) {
    let row = data_row(&[
        b"customer-000000000123",
        b"Jane Alexandra Doe-Smith",
        b"4111 1111 1111 1111 (visa)",
        b"221B Baker Street, London",
        b"note: call back on tuesday pls",
    ]);
    let key = Arc::new(MaskKey::new(&[42; 32]).unwrap());
    let detectors = Arc::new(Detectors::all_builtin(Strategy::KeepLast(4)));
    let masked = |strategy| {
        let mut columns = vec![ColumnPlan::Clear; 5];
        columns[2] = ColumnPlan::Mask(ColumnMask {
            strategy,
            type_oid: oid::TEXT,
            binary: false,
        });
        columns
    };
    let mut scan = vec![ColumnPlan::Clear; 5];
    scan[2] = ColumnPlan::Scan {
        type_oid: oid::TEXT,
        binary: false,
    };
    let mut scan_clean = vec![ColumnPlan::Clear; 5];
    scan_clean[4] = ColumnPlan::Scan {
        type_oid: oid::TEXT,
        binary: false,
    };
    let cases = [
        ("clear", vec![ColumnPlan::Clear; 5]),
        ("keep_last_4", masked(Strategy::KeepLast(4))),
        ("redact", masked(Strategy::Redact)),
        ("hash", masked(Strategy::Hash)),
        ("preserve", masked(Strategy::Preserve)),
        ("scan_card", scan),
        ("scan_clean", scan_clean),
    ];
    let mut group = c.benchmark_group(format!("datarow_{}b_5text", row.len()));
    group.throughput(Throughput::Elements(1));
    for (name, columns) in cases {
        let mut plan = RowPlan::new(columns, key.clone(), detectors.clone());
        let mut out = BytesMut::with_capacity(4096);
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                plan.rewrite(black_box(&row), &mut out).unwrap();
                black_box(&out);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, rewrite);
criterion_main!(benches);
