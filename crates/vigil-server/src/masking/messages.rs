//! What masking reads of protocol messages: a RowDescription's columns, a
//! Bind's result formats, a CopyOutResponse's layout, a DataRow's width.
//! Every read is bounds-checked; a malformed message gives `None`.

use bytes::Buf;

/// One column of a RowDescription.
#[derive(Clone, Debug)]
pub(super) struct Field {
    pub(super) name: String,
    pub(super) table: u32,
    pub(super) attnum: i16,
    pub(super) type_oid: u32,
    pub(super) binary: bool,
}

pub(super) fn format_of(formats: &[i16], i: usize) -> bool {
    match formats {
        [] => false,
        [one] => *one == 1,
        many => many.get(i).is_some_and(|f| *f == 1),
    }
}

/// The column count of a DataRow, from its body.
pub(super) fn column_count(body: &[u8]) -> Option<usize> {
    let count = body.get(..2)?;
    Some(i16::from_be_bytes([count[0], count[1]]).max(0) as usize)
}

fn cstring(body: &mut &[u8]) -> Option<Vec<u8>> {
    let end = body.iter().position(|&b| b == 0)?;
    let value = body[..end].to_vec();
    body.advance(end + 1);
    Some(value)
}

pub(super) fn parse_row_description(mut body: &[u8]) -> Option<Vec<Field>> {
    if body.remaining() < 2 {
        return None;
    }
    let count = body.get_i16();
    let mut fields = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count {
        let name = cstring(&mut body)?;
        if body.remaining() < 18 {
            return None;
        }
        let table = body.get_u32();
        let attnum = body.get_i16();
        let type_oid = body.get_u32();
        let _typlen = body.get_i16();
        let _typmod = body.get_i32();
        let format = body.get_i16();
        fields.push(Field {
            name: String::from_utf8_lossy(&name).into_owned(),
            table,
            attnum,
            type_oid,
            binary: format == 1,
        });
    }
    Some(fields)
}

/// Portal, statement and result format codes of a Bind.
pub(crate) fn parse_bind(mut body: &[u8]) -> Option<(Vec<u8>, Vec<u8>, Vec<i16>)> {
    let portal = cstring(&mut body)?;
    let statement = cstring(&mut body)?;
    if body.remaining() < 2 {
        return None;
    }
    let formats = body.get_i16().max(0) as usize;
    if body.remaining() < formats * 2 + 2 {
        return None;
    }
    body.advance(formats * 2);
    let params = body.get_i16().max(0);
    for _ in 0..params {
        if body.remaining() < 4 {
            return None;
        }
        let len = body.get_i32();
        if len > 0 {
            if body.remaining() < len as usize {
                return None;
            }
            body.advance(len as usize);
        }
    }
    if body.remaining() < 2 {
        return None;
    }
    let results = body.get_i16().max(0) as usize;
    if body.remaining() < results * 2 {
        return None;
    }
    let formats = (0..results).map(|_| body.get_i16()).collect();
    Some((portal, statement, formats))
}

/// Overall format and column count of a CopyOutResponse.
pub(super) fn parse_copy_out(mut body: &[u8]) -> Option<(u8, usize)> {
    if body.remaining() < 3 {
        return None;
    }
    let overall = body.get_u8();
    let count = body.get_i16().max(0) as usize;
    Some((overall, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use bytes::BytesMut;

    fn bind(portal: &str, statement: &str, params: &[Option<&[u8]>], results: &[i16]) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_slice(portal.as_bytes());
        b.put_u8(0);
        b.put_slice(statement.as_bytes());
        b.put_u8(0);
        b.put_i16(1);
        b.put_i16(1);
        b.put_i16(params.len() as i16);
        for param in params {
            match param {
                Some(value) => {
                    b.put_i32(value.len() as i32);
                    b.put_slice(value);
                }
                None => b.put_i32(-1),
            }
        }
        b.put_i16(results.len() as i16);
        for format in results {
            b.put_i16(*format);
        }
        b.to_vec()
    }

    #[test]
    fn bind_gives_names_and_result_formats_past_the_parameters() {
        let body = bind("p", "s1", &[Some(b"42"), None, Some(b"")], &[0, 1]);
        assert_eq!(
            parse_bind(&body),
            Some((b"p".to_vec(), b"s1".to_vec(), vec![0, 1]))
        );
        // Truncated anywhere: no answer, no panic.
        for end in 0..body.len() {
            let _ = parse_bind(&body[..end]);
        }
        // A parameter length past the end.
        let mut lying = bind("", "", &[Some(b"1234")], &[]);
        let at = lying.len() - 2 - 4 - 4;
        lying[at..at + 4].copy_from_slice(&1000i32.to_be_bytes());
        assert_eq!(parse_bind(&lying), None);
    }

    #[test]
    fn result_formats_follow_the_protocol_rule() {
        assert!(!format_of(&[], 3));
        assert!(format_of(&[1], 3));
        assert!(format_of(&[0, 1], 1));
        assert!(!format_of(&[0, 1], 0));
        assert!(!format_of(&[0, 1], 5));
    }

    #[test]
    fn row_descriptions_parse_and_truncations_do_not() {
        let mut b = BytesMut::new();
        b.put_i16(2);
        for (name, table, attnum, ty, format) in
            [("ssn", 16500u32, 5i16, 25u32, 0i16), ("n", 0, 0, 23, 1)]
        {
            b.put_slice(name.as_bytes());
            b.put_u8(0);
            b.put_u32(table);
            b.put_i16(attnum);
            b.put_u32(ty);
            b.put_i16(-1);
            b.put_i32(-1);
            b.put_i16(format);
        }
        let fields = parse_row_description(&b).expect("parses");
        assert_eq!(fields.len(), 2);
        assert_eq!(
            (fields[0].table, fields[0].attnum, fields[0].type_oid),
            (16500, 5, 25)
        );
        assert!(!fields[0].binary && fields[1].binary);
        for end in 0..b.len() {
            assert!(parse_row_description(&b[..end]).is_none() || end == 0);
        }
    }
}
