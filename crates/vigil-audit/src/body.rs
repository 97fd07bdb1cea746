//! Canonical bodies and search fields of the two events every statement records
//! (`statement` and `statement.completed`), written straight from the typed event.
//!
//! The generic path (`AuditEvent::body` → `serde_json::Value` → [`canonical::encode`])
//! allocates a map, a key and a value per field and sorts the keys for every event; on
//! the proxy's hot path that was a good part of what auditing cost per statement. The
//! output here must be byte for byte what the generic path yields, so keys are written in
//! canonical (byte) order by hand and the tests compare both paths on varied events.
//!
//! [`canonical::encode`]: crate::canonical::encode

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::canonical::write_str;
use crate::event::{relation_name, IndexFields, Redaction, Statement, StatementCompleted};

/// An object being written: keys must come in canonical order.
struct Object<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Object<'a> {
    fn new(out: &'a mut String) -> Self {
        out.push('{');
        Object { out, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        write_str(key, self.out);
        self.out.push(':');
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        write_str(value, self.out);
    }

    fn u64(&mut self, key: &str, value: u64) {
        self.key(key);
        // Writing to a String cannot fail.
        let _ = write!(self.out, "{value}");
    }

    fn list(&mut self, key: &str, items: &[String]) {
        self.key(key);
        self.out.push('[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            write_str(item, self.out);
        }
        self.out.push(']');
    }

    /// A map of strings: a `BTreeMap<String, _>` iterates in byte order, the canonical one.
    fn strings(&mut self, key: &str, map: &BTreeMap<String, String>) {
        self.key(key);
        let mut inner = Object::new(self.out);
        for (k, v) in map {
            inner.str(k, v);
        }
        inner.end();
    }

    fn counts(&mut self, key: &str, map: &BTreeMap<String, u64>) {
        self.key(key);
        let mut inner = Object::new(self.out);
        for (k, v) in map {
            inner.u64(k, *v);
        }
        inner.end();
    }

    fn end(self) {
        self.out.push('}');
    }
}

/// The canonical body of a `statement` event.
pub(crate) fn statement(s: &Statement) -> String {
    let mut out = String::with_capacity(320 + s.text.len());
    let mut o = Object::new(&mut out);
    if let Some(id) = &s.approval_id {
        o.str("approval_id", id);
    }
    o.str("class", &s.class);
    if let Some(encoding) = &s.client_encoding {
        o.str("client_encoding", encoding);
    }
    o.str("database", &s.database);
    o.str("decision", s.decision.as_str());
    o.str("fingerprint", &s.fingerprint);
    o.str("identity", &s.identity);
    o.strings("intent", &s.intent);
    o.list("kinds", &s.kinds);
    o.list("masked_columns", &s.masked_columns);
    o.str(
        "redaction",
        match s.redaction {
            Redaction::Keep => "keep",
            Redaction::Normalize => "normalize",
        },
    );
    o.list("relations", &s.relations);
    o.list("rule_ids", &s.rule_ids);
    o.u64("session_id", s.session_id);
    o.u64("statement_seq", s.statement_seq);
    o.str("text", &s.text);
    o.end();
    out
}

/// What [`IndexFields::from_body`] finds in a `statement` body.
pub(crate) fn statement_index(s: &Statement) -> IndexFields {
    let mut relations: Vec<String> = s
        .relations
        .iter()
        .map(|r| relation_name(r).to_owned())
        .collect();
    relations.sort();
    relations.dedup();
    IndexFields {
        session_id: Some(s.session_id),
        identity: Some(s.identity.clone()),
        database: Some(s.database.clone()),
        decision: Some(s.decision.as_str().to_owned()),
        fingerprint: Some(s.fingerprint.clone()),
        relations,
    }
}

/// The canonical body of a `statement.completed` event.
pub(crate) fn completed(c: &StatementCompleted) -> String {
    let mut out = String::with_capacity(160);
    let mut o = Object::new(&mut out);
    o.u64("bytes", c.bytes);
    o.u64("duration_us", c.duration_us);
    if !c.executed {
        o.key("executed");
        o.out.push_str("false");
    }
    if !c.masked_values.is_empty() {
        o.counts("masked_values", &c.masked_values);
    }
    if let Some(rows) = c.rows {
        o.u64("rows", rows);
    }
    o.u64("session_id", c.session_id);
    if let Some(state) = &c.sqlstate {
        o.str("sqlstate", state);
    }
    o.u64("statement_seq", c.statement_seq);
    o.end();
    out
}

/// What [`IndexFields::from_body`] finds in a `statement.completed` body.
pub(crate) fn completed_index(c: &StatementCompleted) -> IndexFields {
    IndexFields {
        session_id: Some(c.session_id),
        ..IndexFields::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical;
    use crate::event::{samples, AuditEvent, Decision};

    fn check(event: &AuditEvent) {
        let value = event.body().unwrap();
        let (fast, index) = match event {
            AuditEvent::Statement(s) => (statement(s), statement_index(s)),
            AuditEvent::StatementCompleted(c) => (completed(c), completed_index(c)),
            _ => unreachable!(),
        };
        assert_eq!(fast, canonical::encode(&value).unwrap());
        assert_eq!(index, IndexFields::from_body(&value));
    }

    #[test]
    fn statement_bodies_equal_the_generic_encoding() {
        let AuditEvent::Statement(base) = samples::statement(7, 3) else {
            unreachable!()
        };
        check(&AuditEvent::Statement(base.clone()));
        let odd = "tab\t \"quoted\" back\\slash \u{1}\u{7f} é 😀 \n";
        let mut s = base.clone();
        s.text = format!("SELECT '{odd}'");
        s.identity = odd.into();
        s.database = String::new();
        s.fingerprint = "0".into();
        s.kinds = vec!["select".into(), "insert".into()];
        s.class = "read".into();
        s.relations = vec![
            "public.b:read".into(),
            "public.a:write".into(),
            "public.b:write".into(),
            "no_access_suffix".into(),
        ];
        s.decision = Decision::Review;
        s.rule_ids = vec!["r1".into(), odd.into()];
        s.masked_columns = vec!["public.a.ssn".into()];
        s.approval_id = Some("ap-1".into());
        s.client_encoding = Some("LATIN1".into());
        s.redaction = Redaction::Normalize;
        s.intent = [
            ("traceparent", "00-abc"),
            ("Z", "upper"),
            ("application_name", "psql"),
            ("é", odd),
            ("", "empty"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        s.session_id = u64::MAX;
        s.statement_seq = 0;
        check(&AuditEvent::Statement(s.clone()));
        s.relations.clear();
        s.intent.clear();
        s.kinds.clear();
        s.rule_ids.clear();
        s.decision = Decision::Deny;
        check(&AuditEvent::Statement(s));
    }

    #[test]
    fn completion_bodies_equal_the_generic_encoding() {
        let mut c = StatementCompleted {
            session_id: 1,
            statement_seq: 2,
            rows: None,
            duration_us: 0,
            sqlstate: None,
            bytes: 0,
            masked_values: BTreeMap::new(),
            executed: true,
        };
        check(&AuditEvent::StatementCompleted(c.clone()));
        c.executed = false;
        check(&AuditEvent::StatementCompleted(c.clone()));
        c.executed = true;
        c.rows = Some(u64::MAX);
        c.sqlstate = Some("23505".into());
        c.bytes = 12_345;
        c.duration_us = 987;
        c.masked_values = [("ssn".to_owned(), 3), ("Email \"x\"".to_owned(), 1)].into();
        check(&AuditEvent::StatementCompleted(c));
    }
}
