//! COPY rewriter tests: bytes as PostgreSQL 18 sends them, and round trips
//! over random values.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use proptest::prelude::{any, prop, prop_assert_eq, proptest};

use super::*;
use crate::detect::{DetectorKind, DetectorSpec};
use crate::row::ColumnMask;
use crate::strategy::Strategy;
use crate::value::oid;

fn key() -> Arc<MaskKey> {
    Arc::new(MaskKey::new(&[5; 32]).unwrap())
}

fn detectors() -> Arc<Detectors> {
    Arc::new(
        Detectors::new(vec![DetectorSpec::builtin(
            DetectorKind::Email,
            Strategy::EmailDomain,
        )])
        .unwrap(),
    )
}

fn copy_data(body: &[u8]) -> Vec<u8> {
    let mut frame = vec![b'd'];
    frame.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

fn mask(strategy: Strategy, type_oid: u32) -> ColumnPlan {
    ColumnPlan::Mask(ColumnMask {
        strategy,
        type_oid,
        binary: false,
    })
}

/// The columns of the psql captures below:
/// id int, t text, n text (NULL), q text, e text (''), email text, ssn text.
fn columns() -> Vec<ColumnPlan> {
    vec![
        mask(Strategy::Redact, oid::INT4),
        mask(Strategy::KeepLast(2), oid::TEXT),
        mask(Strategy::Redact, oid::TEXT),
        mask(Strategy::Hash, oid::TEXT),
        ColumnPlan::Clear,
        ColumnPlan::Scan {
            type_oid: oid::TEXT,
            binary: false,
        },
        mask(Strategy::KeepLast(4), oid::TEXT),
    ]
}

fn rewrite(plan: &mut CopyPlan, body: &[u8]) -> (Vec<u8>, usize) {
    let mut out = BytesMut::new();
    let frame = copy_data(body);
    let n = plan.rewrite(&frame, &mut out).unwrap();
    assert_eq!(
        u32::from_be_bytes(out[1..5].try_into().unwrap()) as usize,
        out.len() - 1
    );
    (out[5..].to_vec(), n)
}

#[test]
fn text_format_as_postgres_sends_it() {
    // COPY (SELECT 1, E'a\tb\\c\nd', NULL::text, 'x,"y"', '', 'jane@example.com', '123-45-6789') TO STDOUT
    let row = b"1\ta\\tb\\\\c\\nd\t\\N\tx,\"y\"\t\tjane@example.com\t123-45-6789\n";
    let mut plan = CopyPlan::new(CopyFormat::text(), columns(), key(), detectors());
    let (body, n) = rewrite(&mut plan, row);
    assert_eq!(n, 5);
    let fields: Vec<&[u8]> = body[..body.len() - 1].split(|&b| b == b'\t').collect();
    assert_eq!(fields[0], b"0");
    // "a\tb\\c\nd" is 7 characters: 5 hidden, "\nd" kept and re-escaped.
    assert_eq!(fields[1], b"*****\\nd");
    assert_eq!(fields[2], b"\\N");
    assert_eq!(fields[3].len(), 32);
    assert_eq!(fields[4], b"");
    assert_eq!(fields[5], b"****@example.com");
    assert_eq!(fields[6], b"*******6789");
    assert_eq!(plan.counts(), &[1, 1, 0, 1, 0, 1, 1]);
}

#[test]
fn csv_format_as_postgres_sends_it() {
    // … TO STDOUT WITH (FORMAT csv, HEADER)
    let header = b"id,t,n,q,e,email,ssn\n";
    let row = b"1,\"a\tb\\c\nd\",,\"x,\"\"y\"\"\",\"\",jane@example.com,123-45-6789\n";
    let mut plan = CopyPlan::new(CopyFormat::csv(true), columns(), key(), detectors());
    let mut out = BytesMut::new();
    assert_eq!(plan.rewrite(&copy_data(header), &mut out).unwrap(), 0);
    assert_eq!(&out[..], &copy_data(header)[..]);
    let (body, n) = rewrite(&mut plan, row);
    assert_eq!(n, 5);
    let text = String::from_utf8(body).unwrap();
    let hash = &text[text.find(",,").unwrap() + 2..][..32];
    assert_eq!(
        text,
        format!("0,\"*****\nd\",,{hash},\"\",****@example.com,*******6789\n")
    );
}

#[test]
fn csv_quotes_masked_values_that_need_it() {
    let mut plan = CopyPlan::new(
        CopyFormat::csv(false),
        vec![mask(Strategy::EmailDomain, oid::TEXT)],
        key(),
        detectors(),
    );
    let (body, _) = rewrite(&mut plan, b"\"a@b,c.com\"\n");
    assert_eq!(body, b"\"****@b,c.com\"\n");
}

#[test]
fn unchanged_messages_are_byte_identical() {
    let mut plan = CopyPlan::new(
        CopyFormat::text(),
        vec![ColumnPlan::Scan {
            type_oid: oid::TEXT,
            binary: false,
        }],
        key(),
        detectors(),
    );
    let frame = copy_data(b"no personal data here\n");
    let mut out = BytesMut::new();
    assert_eq!(plan.rewrite(&frame, &mut out).unwrap(), 0);
    assert_eq!(&out[..], &frame[..]);
}

#[test]
fn binary_format_as_postgres_sends_it() {
    // COPY (SELECT 42::int4, 'jane'::text, NULL::text) TO STDOUT WITH (FORMAT binary)
    let mut first = SIGNATURE_BYTES.to_vec();
    first.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
    first.extend_from_slice(&[0, 3, 0, 0, 0, 4, 0, 0, 0, 0x2a, 0, 0, 0, 4]);
    first.extend_from_slice(b"jane");
    first.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    let trailer = [0xff, 0xff];
    let mut plan = CopyPlan::new(
        CopyFormat::Binary,
        vec![
            mask(Strategy::Hash, oid::INT4),
            mask(Strategy::KeepLast(1), oid::TEXT),
            mask(Strategy::Redact, oid::TEXT),
        ],
        key(),
        detectors(),
    );
    let (body, n) = rewrite(&mut plan, &first);
    assert_eq!(n, 2);
    assert_eq!(&body[..19], &first[..19]);
    assert_eq!(&body[19..25], &[0, 3, 0, 0, 0, 4]);
    assert!(i32::from_be_bytes(body[25..29].try_into().unwrap()) >= 0);
    assert_eq!(&body[29..], b"\0\0\0\x04***e\xff\xff\xff\xff");
    let (body, n) = rewrite(&mut plan, &trailer);
    assert_eq!((body.as_slice(), n), (&trailer[..], 0));
    // Nothing may follow the trailer.
    assert!(plan
        .rewrite(&copy_data(&[0, 3]), &mut BytesMut::new())
        .is_err());
}

const SIGNATURE_BYTES: &[u8] = binary::SIGNATURE;

#[test]
fn malformed_copy_data_is_an_error() {
    let mut out = BytesMut::new();
    let mut text = CopyPlan::new(CopyFormat::text(), columns(), key(), detectors());
    for bad in [
        &b"1\t2\n"[..],
        b"1\t2\t3\t4\t5\t6\t7",
        b"1\t2\t3\t4\t5\t6\t7\\",
    ] {
        assert!(text.rewrite(&copy_data(bad), &mut out).is_err(), "{bad:?}");
    }
    let mut csv = CopyPlan::new(CopyFormat::csv(false), columns(), key(), detectors());
    assert!(csv
        .rewrite(&copy_data(b"1,\"open,,,,,\n"), &mut out)
        .is_err());
    let mut binary = CopyPlan::new(CopyFormat::Binary, columns(), key(), detectors());
    assert!(binary.rewrite(&copy_data(b"PGCOPY\n"), &mut out).is_err());
    assert!(out.is_empty());
}

fn encode_text_row(values: &[Option<Vec<u8>>]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.put_u8(b'\t');
        }
        match v {
            Some(v) => text::encode(v, b'\t', &mut out),
            None => out.extend_from_slice(b"\\N"),
        }
    }
    out.put_u8(b'\n');
    out.to_vec()
}

fn decode_text_row(row: &[u8]) -> Vec<Option<Vec<u8>>> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < row.len() - 1 {
        match row[i] {
            b'\\' => i += 2,
            b'\t' => {
                fields.push(&row[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    fields.push(&row[start..row.len() - 1]);
    fields
        .into_iter()
        .map(|f| {
            (f != b"\\N").then(|| {
                let mut out = BytesMut::new();
                text::decode(f, &mut out).unwrap();
                out.to_vec()
            })
        })
        .collect()
}

fn encode_csv_row(values: &[Option<Vec<u8>>]) -> Vec<u8> {
    let dialect = csv::Dialect {
        delimiter: b',',
        quote: b'"',
        escape: b'"',
        null: b"",
    };
    let mut out = BytesMut::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        if let Some(v) = v {
            csv::encode(v, &dialect, &mut out);
        }
    }
    out.put_u8(b'\n');
    out.to_vec()
}

fn encode_binary_tuple(values: &[Option<Vec<u8>>]) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_i16(values.len() as i16);
    for v in values {
        match v {
            Some(v) => {
                out.put_i32(v.len() as i32);
                out.extend_from_slice(v);
            }
            None => out.put_i32(-1),
        }
    }
    out.to_vec()
}

fn binary_header() -> Vec<u8> {
    let mut header = SIGNATURE_BYTES.to_vec();
    header.extend_from_slice(&[0; 8]);
    header
}

proptest! {
    #[test]
    fn binary_round_trips(values in prop::collection::vec(prop::option::of(prop::collection::vec(any::<u8>(), 0..20)), 1..5)) {
        let n = values.len();
        let mut first = binary_header();
        first.extend_from_slice(&encode_binary_tuple(&values));
        let second = encode_binary_tuple(&values);
        let trailer = [0xff, 0xff];
        let mut clear = CopyPlan::new(CopyFormat::Binary, vec![ColumnPlan::Clear; n], key(), detectors());
        for message in [&first[..], &second, &trailer] {
            prop_assert_eq!(rewrite(&mut clear, message), (message.to_vec(), 0));
        }
        // bytea kept to its last byte, in binary format.
        let plan = ColumnPlan::Mask(ColumnMask { strategy: Strategy::KeepLast(1), type_oid: oid::BYTEA, binary: true });
        let mut masked = CopyPlan::new(CopyFormat::Binary, vec![plan; n], key(), detectors());
        let expected: Vec<Option<Vec<u8>>> = values.iter().map(|v| v.as_ref().map(|v| {
            let mut m = vec![0; v.len().saturating_sub(1)];
            m.extend_from_slice(&v[v.len().saturating_sub(1)..]);
            m
        })).collect();
        let (body, count) = rewrite(&mut masked, &first);
        prop_assert_eq!(count, values.iter().filter(|v| v.is_some()).count());
        prop_assert_eq!(&body[..19], &first[..19]);
        prop_assert_eq!(&body[19..], &encode_binary_tuple(&expected)[..]);
        prop_assert_eq!(rewrite(&mut masked, &second).0, encode_binary_tuple(&expected));
        prop_assert_eq!(rewrite(&mut masked, &trailer), (trailer.to_vec(), 0));
    }

    #[test]
    fn text_round_trips(values in prop::collection::vec(prop::option::of(prop::collection::vec(any::<u8>(), 0..20)), 1..5)) {
        let row = encode_text_row(&values);
        prop_assert_eq!(decode_text_row(&row), values.clone());
        let n = values.len();
        let mut clear = CopyPlan::new(CopyFormat::text(), vec![ColumnPlan::Clear; n], key(), detectors());
        prop_assert_eq!(rewrite(&mut clear, &row), (row.clone(), 0));
        let mut masked = CopyPlan::new(CopyFormat::text(), vec![mask(Strategy::KeepLast(3), oid::TEXT); n], key(), detectors());
        let (body, _) = rewrite(&mut masked, &row);
        let expected: Vec<Option<Vec<u8>>> = values.iter().map(|v| v.as_ref().map(|v| {
            let mut out = BytesMut::new();
            crate::strategy::mask_text(Strategy::KeepLast(3), &key(), v, &mut out);
            out.to_vec()
        })).collect();
        prop_assert_eq!(decode_text_row(&body), expected);
    }

    #[test]
    fn csv_clear_plans_are_identical(values in prop::collection::vec(prop::option::of(prop::collection::vec(any::<u8>(), 0..20)), 1..5)) {
        let row = encode_csv_row(&values);
        let n = values.len();
        let mut clear = CopyPlan::new(CopyFormat::csv(false), vec![ColumnPlan::Clear; n], key(), detectors());
        prop_assert_eq!(rewrite(&mut clear, &row), (row.clone(), 0));
        // Redacting every column: non-NULL values become ****, NULLs stay empty.
        let mut masked = CopyPlan::new(CopyFormat::csv(false), vec![mask(Strategy::Redact, oid::TEXT); n], key(), detectors());
        let expected: Vec<Option<Vec<u8>>> = values.iter().map(|v| v.as_ref().map(|_| b"****".to_vec())).collect();
        prop_assert_eq!(rewrite(&mut masked, &row).0, encode_csv_row(&expected));
    }

    #[test]
    fn garbage_never_panics(body in prop::collection::vec(any::<u8>(), 0..64), which in 0u8..3) {
        let format = match which { 0 => CopyFormat::text(), 1 => CopyFormat::csv(false), _ => CopyFormat::Binary };
        let mut plan = CopyPlan::new(format, columns(), key(), detectors());
        let _ = plan.rewrite(&copy_data(&body), &mut BytesMut::new());
    }
}

#[test]
fn concealed_nulls_are_masked_in_every_format() {
    let columns = || {
        vec![
            mask(Strategy::Redact, oid::TEXT),
            mask(Strategy::Redact, oid::TEXT),
        ]
    };
    let conceal = || vec![true, false];
    let mut text = CopyPlan::new(CopyFormat::text(), columns(), key(), detectors())
        .concealing_nulls(conceal());
    assert_eq!(
        rewrite(&mut text, b"\\N\t\\N\n".as_slice()).0,
        b"****\t\\N\n"
    );
    let mut csv = CopyPlan::new(CopyFormat::csv(false), columns(), key(), detectors())
        .concealing_nulls(conceal());
    assert_eq!(rewrite(&mut csv, b",\n").0, b"****,\n");
    let mut binary = CopyPlan::new(CopyFormat::Binary, columns(), key(), detectors())
        .concealing_nulls(conceal());
    let mut tuple = b"PGCOPY\n\xff\r\n\0".to_vec();
    tuple.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
    tuple.extend_from_slice(&2i16.to_be_bytes());
    tuple.extend_from_slice(&(-1i32).to_be_bytes());
    tuple.extend_from_slice(&(-1i32).to_be_bytes());
    let (out, n) = rewrite(&mut binary, &tuple);
    assert_eq!(n, 1);
    let mut expected = tuple[..21].to_vec();
    expected.extend_from_slice(&4i32.to_be_bytes());
    expected.extend_from_slice(b"****");
    expected.extend_from_slice(&(-1i32).to_be_bytes());
    assert_eq!(out, expected);
}
