//! What an approval is bound to: the statement's text and its Bind's
//! parameters as sent, and how a request shows them.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use vigil_sql::Analysis;

/// The binding of a statement: what an approval is for. SHA-256 over the
/// text and, for a prepared statement, the Bind's parameters as sent.
pub(crate) fn binding(sql: &str, parameters: Option<&[u8]>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(sql.as_bytes());
    if let Some(parameters) = parameters {
        hasher.update([0]);
        hasher.update(parameters);
    }
    hex(&hasher.finalize())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The statements of `analysis`, as a request shows them.
pub(crate) fn statements(analysis: &Analysis) -> Value {
    Value::Array(
        analysis
            .statements
            .iter()
            .map(|s| {
                json!({
                    "kind": s.kind.to_string(),
                    "class": s.class.to_string(),
                    "relations": s.relations.iter().map(|r| r.qualified_name()).collect::<Vec<_>>(),
                    "fingerprint": s.fingerprint,
                })
            })
            .collect(),
    )
}

/// A Bind's parameters: the bytes that decide what runs (format codes and
/// values, as sent), and the values as a request shows them.
pub(crate) struct BindParameters {
    pub(crate) raw: Vec<u8>,
    pub(crate) shown: Vec<Option<String>>,
    /// The values as the server reads a text parameter (binary or text
    /// format alike: a text value's binary form is its bytes); `None` when
    /// some value is not UTF-8.
    pub(crate) texts: Option<Vec<Option<String>>>,
}

/// Reads the parameters of a Bind body; `None` when it is malformed (the
/// server then rejects it anyway).
pub(crate) fn bind_parameters(body: &[u8]) -> Option<BindParameters> {
    let mut rest = body;
    for _ in 0..2 {
        let end = rest.iter().position(|&b| b == 0)?;
        rest = &rest[end + 1..];
    }
    let start = body.len() - rest.len();
    let take = |rest: &mut &[u8], n: usize| -> Option<Vec<u8>> {
        (rest.len() >= n).then(|| {
            let (head, tail) = rest.split_at(n);
            *rest = tail;
            head.to_vec()
        })
    };
    let count = |bytes: Vec<u8>| i16::from_be_bytes([bytes[0], bytes[1]]).max(0) as usize;
    let formats = count(take(&mut rest, 2)?);
    let mut codes = Vec::with_capacity(formats);
    for _ in 0..formats {
        let code = take(&mut rest, 2)?;
        codes.push(i16::from_be_bytes([code[0], code[1]]));
    }
    let params = count(take(&mut rest, 2)?);
    let mut shown = Vec::with_capacity(params);
    let mut texts = Some(Vec::with_capacity(params));
    for i in 0..params {
        let len = take(&mut rest, 4)?;
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        if len < 0 {
            shown.push(None);
            if let Some(texts) = &mut texts {
                texts.push(None);
            }
            continue;
        }
        let value = take(&mut rest, len as usize)?;
        let binary = match codes.len() {
            0 => false,
            1 => codes[0] == 1,
            _ => codes.get(i) == Some(&1),
        };
        let value = String::from_utf8(value);
        match (&mut texts, &value) {
            (Some(texts), Ok(text)) => texts.push(Some(text.clone())),
            (texts, _) => *texts = None,
        }
        shown.push(Some(match (binary, value) {
            (false, Ok(value)) => value,
            (_, Ok(value)) => format!("\\x{}", hex(value.as_bytes())),
            (_, Err(e)) => format!("\\x{}", hex(e.as_bytes())),
        }));
    }
    let raw = body[start..body.len() - rest.len()].to_vec();
    Some(BindParameters { raw, shown, texts })
}
