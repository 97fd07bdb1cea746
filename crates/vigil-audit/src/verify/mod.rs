//! `vigil audit verify`: walks the chain across one or more segments and names the first
//! record that was changed, removed or reordered, checks checkpoint signatures, and notices
//! a tail cut off after a signed checkpoint or an exported anchor.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use ed25519_dalek::VerifyingKey;

use crate::chain::{link, ChainHash, Envelope, StoredEvent, Tail};
use crate::checkpoint::{write_anchor, Anchor, CheckpointKind};
use crate::error::{AuditError, Result};
use crate::event::IndexFields;
use crate::store::Store;

/// Records read per store query while walking.
const PAGE: usize = 1000;
/// Problems kept in a report; the first one is what matters.
const MAX_PROBLEMS: usize = 1000;

/// Something wrong with the log. Every problem names a record by seq.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The record's text, hash or index columns were edited.
    Modified { seq: u64, detail: String },
    /// The record was rewritten with a recomputed hash: the next record (`next`) was
    /// chained to a different hash.
    Rewritten { seq: u64, next: u64 },
    /// Records from `seq` on are missing; the next one present is `next`.
    Missing { seq: u64, next: u64 },
    /// The position `seq` holds the record that was sealed as `holds`.
    Reordered { seq: u64, holds: u64 },
    /// A checkpoint's (or the anchor's) signature does not verify.
    BadSignature { seq: u64, what: &'static str },
    /// A signed checkpoint (or the anchor) at `at` vouches for a different hash: some
    /// record from `from` (just after the last checkpoint that still matches) to `at` was
    /// rewritten, with every later hash recomputed.
    Rewound {
        from: u64,
        at: u64,
        what: &'static str,
    },
    /// The chain ends before `seq`, but a checkpoint (or the anchor) vouches for `vouched`.
    Truncated {
        seq: u64,
        vouched: u64,
        what: &'static str,
    },
    /// A segment does not begin where it should (head removed, or segments out of order).
    BadStart { seq: u64, detail: String },
}

impl Problem {
    /// The record this problem is about (the first missing one for gaps and cuts).
    pub fn seq(&self) -> u64 {
        match self {
            Problem::Modified { seq, .. }
            | Problem::Rewritten { seq, .. }
            | Problem::Missing { seq, .. }
            | Problem::Reordered { seq, .. }
            | Problem::BadSignature { seq, .. }
            | Problem::Rewound { from: seq, .. }
            | Problem::Truncated { seq, .. }
            | Problem::BadStart { seq, .. } => *seq,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Modified { seq, detail } => write!(f, "record {seq} was modified: {detail}"),
            Problem::Rewritten { seq, next } => write!(
                f,
                "record {seq} was rewritten: record {next} was chained to a different hash"
            ),
            Problem::Missing { seq, next } if *next == seq + 1 => {
                write!(f, "record {seq} was removed")
            }
            Problem::Missing { seq, next } => {
                write!(f, "records {seq} to {} were removed", next - 1)
            }
            Problem::Reordered { seq, holds } => write!(
                f,
                "record {seq} is out of order: its position holds record {holds}"
            ),
            Problem::BadSignature { seq, what } => {
                write!(f, "the {what} at record {seq} has an invalid signature")
            }
            Problem::Rewound { from, at, what } => write!(
                f,
                "the {what} at record {at} does not match the chain: records {from} to {at} were rewritten"
            ),
            Problem::Truncated { seq, vouched, what } => write!(
                f,
                "records from {seq} on were cut off: the {what} vouches for record {vouched}"
            ),
            Problem::BadStart { seq, detail } => write!(f, "segment starting at record {seq}: {detail}"),
        }
    }
}

/// What `verify` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records walked, over all segments.
    pub records: u64,
    pub first_seq: Option<u64>,
    /// The last record of the last segment.
    pub last: Option<Tail>,
    /// Checkpoints whose signature (when a key was given) and hash both check out.
    pub checkpoints_verified: u64,
    /// Highest seq vouched for by a valid checkpoint or the anchor.
    pub last_signed_seq: Option<u64>,
    /// Records after `last_signed_seq`: protected by the chain only, not by a signature.
    pub unsigned_tail: u64,
    /// Problems in walk order; empty means the log verified.
    pub problems: Vec<Problem>,
    /// Limits of what could be checked (no key, segment not vouched for, …).
    pub notes: Vec<String>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The lowest seq named by any problem: where the log stops being trustworthy.
    pub fn first_bad_seq(&self) -> Option<u64> {
        self.problems.iter().map(Problem::seq).min()
    }

    fn problem(&mut self, p: Problem) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(p);
        }
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.first_bad_seq(), self.first_seq, self.last) {
            (Some(bad), ..) => writeln!(f, "FAILED: first bad record is seq {bad}")?,
            (None, Some(first), Some(last)) => writeln!(
                f,
                "OK: {} records (seq {first} to {}), {} checkpoints verified",
                self.records, last.seq, self.checkpoints_verified
            )?,
            (None, ..) => writeln!(f, "OK: no records")?,
        }
        for p in &self.problems {
            writeln!(f, "  problem: {p}")?;
        }
        if self.unsigned_tail > 0 {
            writeln!(
                f,
                "  note: {} records after the last signed checkpoint are protected by the hash chain only",
                self.unsigned_tail
            )?;
        }
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        Ok(())
    }
}

/// Verifies one store. `key` checks checkpoint signatures; `anchor` is a checkpoint kept
/// elsewhere that the chain must still contain.
pub fn verify(
    store: &dyn Store,
    key: Option<&VerifyingKey>,
    anchor: Option<&Anchor>,
) -> Result<VerifyReport> {
    verify_segments(&[store], key, anchor)
}

/// Verifies segments in chain order (oldest first): each must start where the previous
/// one ends.
pub fn verify_segments(
    segments: &[&dyn Store],
    key: Option<&VerifyingKey>,
    anchor: Option<&Anchor>,
) -> Result<VerifyReport> {
    let mut walk = Walk {
        key,
        report: VerifyReport::default(),
        anchor,
        anchor_found: false,
    };
    if key.is_none() {
        walk.report.notes.push(
            "no public key given: signatures were not checked, so a rewritten chain or a cut tail may go unnoticed"
                .into(),
        );
    }
    if let Some(a) = anchor {
        if key.is_some_and(|k| !a.verify(k)) {
            walk.report.problem(Problem::BadSignature {
                seq: a.seq,
                what: "anchor",
            });
        }
    }
    let mut previous_end: Option<Tail> = None;
    for store in segments {
        previous_end = Some(walk.segment(*store, previous_end)?);
    }
    if let Some(a) = anchor {
        let end = walk.report.last.map_or(0, |t| t.seq);
        if !walk.anchor_found && a.seq > end {
            walk.report.problem(Problem::Truncated {
                seq: end + 1,
                vouched: a.seq,
                what: "anchor",
            });
        } else if !walk.anchor_found {
            walk.report.notes.push(format!(
                "the anchor's record {} is not among the records checked",
                a.seq
            ));
        }
    }
    let mut report = walk.report;
    let signed = report.last_signed_seq.unwrap_or(0);
    report.unsigned_tail = report.last.map_or(0, |t| t.seq.saturating_sub(signed));
    report.problems.sort_by_key(Problem::seq);
    Ok(report)
}

/// Writes the newest checkpoint in `store` to `path` as an anchor, for safekeeping
/// somewhere the store's owner cannot reach.
pub fn export_anchor(store: &dyn Store, path: &Path) -> Result<Anchor> {
    let newest = store
        .checkpoints()?
        .into_iter()
        .rfind(|c| c.kind == CheckpointKind::Checkpoint)
        .ok_or_else(|| AuditError::KeyFile {
            path: path.to_owned(),
            reason: format!(
                "{} has no signed checkpoint yet (configure a signing key)",
                store.location()
            ),
        })?;
    write_anchor(path, &newest)?;
    Ok(newest)
}

struct Walk<'a> {
    key: Option<&'a VerifyingKey>,
    report: VerifyReport,
    anchor: Option<&'a Anchor>,
    anchor_found: bool,
}

impl Walk<'_> {
    /// Walks one segment; returns where it ends.
    fn segment(&mut self, store: &dyn Store, previous_end: Option<Tail>) -> Result<Tail> {
        let start = store.start()?;
        let checkpoints = store.checkpoints()?;
        let mut vouched: BTreeMap<u64, ChainHash> = BTreeMap::new();
        let mut start_vouched = false;
        for cp in &checkpoints {
            if self.key.is_some_and(|k| !cp.verify(k)) {
                let what = match cp.kind {
                    CheckpointKind::Checkpoint => "checkpoint",
                    CheckpointKind::SegmentStart => "segment start",
                };
                self.report
                    .problem(Problem::BadSignature { seq: cp.seq, what });
                continue;
            }
            match cp.kind {
                CheckpointKind::Checkpoint => {
                    vouched.insert(cp.seq, cp.hash);
                }
                CheckpointKind::SegmentStart => {
                    start_vouched |= cp.seq == start.seq && cp.hash == start.hash;
                }
            }
        }
        self.check_start(store, start, previous_end, start_vouched);

        let mut prev = start;
        let mut matched_checkpoint = start.seq;
        let mut from = 0;
        loop {
            let page = store.scan(from, PAGE)?;
            let Some(last) = page.last() else { break };
            from = last.seq + 1;
            for row in &page {
                if row.seq <= start.seq {
                    self.report.problem(Problem::BadStart {
                        seq: row.seq,
                        detail: format!("record precedes the segment start (seq {})", start.seq),
                    });
                    continue;
                }
                self.row(row, &prev);
                prev = Tail {
                    seq: row.seq,
                    hash: row.hash,
                };
                if let Some(hash) = vouched.get(&row.seq) {
                    self.vouch(
                        row.seq,
                        *hash == row.hash,
                        &mut matched_checkpoint,
                        "checkpoint",
                    );
                }
                if let Some(a) = self.anchor.filter(|a| a.seq == row.seq) {
                    self.anchor_found = true;
                    let ok = a.hash == row.hash;
                    self.vouch(row.seq, ok, &mut matched_checkpoint, "anchor");
                }
            }
            if page.len() < PAGE {
                break;
            }
        }
        if let Some((&seq, _)) = vouched.range(prev.seq + 1..).next_back() {
            self.report.problem(Problem::Truncated {
                seq: prev.seq + 1,
                vouched: seq,
                what: "checkpoint",
            });
        }
        if prev.seq > start.seq {
            self.report.last = Some(prev);
        }
        Ok(prev)
    }

    fn check_start(
        &mut self,
        store: &dyn Store,
        start: Tail,
        previous_end: Option<Tail>,
        vouched: bool,
    ) {
        let first = start.seq + 1;
        match previous_end {
            Some(end) if end != start => self.report.problem(Problem::BadStart {
                seq: first,
                detail: format!(
                    "{} does not continue the previous segment, which ends at record {}",
                    store.location(),
                    end.seq
                ),
            }),
            Some(_) => {}
            None if start == Tail::GENESIS => {}
            None if vouched && self.key.is_some() => self.report.notes.push(format!(
                "{} continues an earlier segment (records up to {} are not in this check)",
                store.location(),
                start.seq
            )),
            None if self.key.is_some() => self.report.problem(Problem::BadStart {
                seq: first,
                detail: format!(
                    "{} claims to start after record {} but no signed segment start vouches for it; \
                     earlier records may have been removed (pass the earlier segments too)",
                    store.location(),
                    start.seq
                ),
            }),
            None => self.report.notes.push(format!(
                "{} starts after record {}; that start could not be checked without a key",
                store.location(),
                start.seq
            )),
        }
    }

    fn vouch(&mut self, seq: u64, ok: bool, matched: &mut u64, what: &'static str) {
        if ok {
            if what == "checkpoint" {
                self.report.checkpoints_verified += 1;
            }
            *matched = seq;
            let best = self.report.last_signed_seq.map_or(seq, |s| s.max(seq));
            self.report.last_signed_seq = Some(best);
        } else {
            self.report.problem(Problem::Rewound {
                from: *matched + 1,
                at: seq,
                what,
            });
        }
    }

    /// Checks one record against its own hash, its position and its predecessor.
    fn row(&mut self, row: &StoredEvent, prev: &Tail) {
        if self.report.first_seq.is_none() {
            self.report.first_seq = Some(row.seq);
        }
        self.report.records += 1;
        let expected = prev.seq + 1;
        let gap = row.seq > expected;
        if gap {
            self.report.problem(Problem::Missing {
                seq: expected,
                next: row.seq,
            });
        }
        let env = match Envelope::parse(&row.canonical) {
            Ok(env) => env,
            Err(e) => {
                self.report.problem(Problem::Modified {
                    seq: row.seq,
                    detail: format!("record text is not a valid record ({e})"),
                });
                return;
            }
        };
        let mut changed = Vec::new();
        if link(&env.prev_hash, &row.canonical) != row.hash {
            changed.push("its content does not match its hash".to_owned());
        }
        changed.extend(column_mismatches(row, &env));
        if !changed.is_empty() {
            self.report.problem(Problem::Modified {
                seq: row.seq,
                detail: changed.join("; "),
            });
        }
        if env.seq != row.seq {
            self.report.problem(Problem::Reordered {
                seq: row.seq,
                holds: env.seq,
            });
        } else if !gap && env.prev_hash != prev.hash {
            // This record is intact and in place, so what it was chained to changed.
            self.report.problem(Problem::Rewritten {
                seq: prev.seq,
                next: row.seq,
            });
        }
    }
}

/// Store columns that no longer agree with the hashed text.
fn column_mismatches(row: &StoredEvent, env: &Envelope) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |name: &str, same: bool| {
        if !same {
            out.push(format!("column {name} differs from the hashed record"));
        }
    };
    check("time", row.time == env.time);
    check("kind", row.kind == env.kind);
    check("prev_hash", row.prev_hash == env.prev_hash);
    let index = IndexFields::from_body(&env.body);
    check("session_id", row.index.session_id == index.session_id);
    check("identity", row.index.identity == index.identity);
    check("database", row.index.database == index.database);
    check("decision", row.index.decision == index.decision);
    check("fingerprint", row.index.fingerprint == index.fingerprint);
    check("relations", row.index.relations == index.relations);
    out
}

#[cfg(test)]
mod tests;
