//! Masking results as they stream to the client. Every server message is
//! matched to the client request it answers (through the ids the relay's
//! protocol model gives requests); a RowDescription, or a CopyOutResponse,
//! turns that request's [`StatementMasks`] into a plan, and each DataRow or
//! CopyData of the result is rewritten by it, one message at a time.
//!
//! The extended protocol splits what a plan needs over several messages: a
//! Describe of the prepared statement or of the portal gives the columns'
//! sources and types, the Bind the formats, the Execute the rows. So the
//! descriptions are kept by statement and portal name. Rows of an Execute
//! whose columns were never described are not guessed at: every value is
//! masked to NULL.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use bytes::BytesMut;
use vigil_mask::copy::{CopyFormat, CopyPlan};
use vigil_mask::{ColumnMask, ColumnPlan, MaskError, RowPlan, Strategy};
use vigil_sql::{CopyOptions, Statement};
use vigil_wire::tags::backend as b;

use super::messages::{column_count, format_of, parse_copy_out, parse_row_description, Field};
use super::{SessionMasks, StatementMasks};

/// A forwarded client request whose answer may carry values.
pub(crate) enum Source {
    /// A simple Query: its statements' masks and how a COPY of each reads
    /// (`None`: nothing is known of them, so nothing is trusted).
    Query(Option<Vec<Prepared>>),
    /// Describe of a prepared statement (`S`) or portal (`P`).
    Describe { kind: u8, name: Vec<u8> },
    /// An Execute of `portal`; `masks`, when the statement was decided at
    /// the Execute (it runs or fetches from other names), is what masking
    /// made of it then, in place of what was known at its Parse.
    Execute {
        portal: Vec<u8>,
        masks: Option<Box<Prepared>>,
    },
}

/// One statement as masking sees it: its verdict and, for `COPY … TO
/// STDOUT`, how the data is laid out.
#[derive(Clone, Default)]
pub(crate) struct Prepared {
    pub(crate) masks: StatementMasks,
    copy: Option<CopyLayout>,
}

#[derive(Clone)]
struct CopyLayout {
    options: CopyOptions,
    /// For `COPY table TO`: the columns' strategies and types, in order.
    columns: Option<Vec<(Option<Strategy>, u32)>>,
}

impl Prepared {
    /// A statement nothing is known of: every value it returns is masked.
    pub(crate) fn unknown() -> Prepared {
        Prepared {
            masks: StatementMasks::unknown(),
            copy: None,
        }
    }

    pub(crate) fn new(session: &SessionMasks, statement: &Statement) -> Prepared {
        let masks = session.statement(statement);
        let copy = statement
            .properties
            .copy_options
            .clone()
            .map(|options| CopyLayout {
                options,
                columns: copy_columns(session, statement),
            });
        Prepared { masks, copy }
    }
}

/// The strategy and type of each column a `COPY … TO` writes, when every
/// one of them is a table's column (`COPY t`, `COPY t (a, b)`, `COPY
/// (SELECT * FROM t)`): a star expands to the table's columns.
fn copy_columns(
    session: &SessionMasks,
    statement: &Statement,
) -> Option<Vec<(Option<Strategy>, u32)>> {
    let mut columns = Vec::new();
    for output in statement.outputs.as_ref()? {
        let [source] = output.sources.as_slice() else {
            return None;
        };
        let relation = source.relation.as_deref()?;
        let named = session.catalog.named(relation);
        let [(oid, table)] = named.as_slice() else {
            return None;
        };
        let strategy = |attnum: i16| session.source(*oid, attnum).ok().flatten();
        if output.star && source.column == "*" {
            columns.extend(
                table
                    .columns
                    .iter()
                    .map(|(attnum, _, ty)| (strategy(*attnum), *ty)),
            );
        } else if !output.star && output.name.as_deref() == Some(source.column.as_str()) {
            let (attnum, _, ty) = table.columns.iter().find(|c| c.1 == source.column)?;
            columns.push((strategy(*attnum), *ty));
        } else {
            return None;
        }
    }
    Some(columns)
}

/// A bound portal.
struct Portal {
    statement: Vec<u8>,
    /// Result format codes from the Bind: none (all text), one (for all) or
    /// one per column.
    formats: Vec<i16>,
    /// From a Describe of the portal itself.
    described: Option<Vec<Field>>,
    plan: Option<Plan>,
}

/// What a server message answers.
enum Context {
    /// The current statement of a Query (`None`: unknown).
    Query(Option<Prepared>),
    DescribeStatement(Vec<u8>),
    DescribePortal(Vec<u8>),
    Execute(Vec<u8>, Option<Box<Prepared>>),
    None,
}

/// The plan of the result streaming now.
struct Plan {
    rows: RowPlan,
    /// Names of the masked columns, by position.
    names: Vec<Option<String>>,
}

enum Current {
    Rows(Plan),
    Copy(CopyPlan, Vec<Option<String>>),
}

pub(crate) struct Masker {
    sources: VecDeque<(u64, Source)>,
    /// The Query statement being answered, by position.
    query_index: usize,
    /// Prepared statements' masks (from Parse) and descriptions (from Describe).
    prepared: HashMap<Vec<u8>, Arc<Prepared>>,
    described: HashMap<Vec<u8>, Vec<Field>>,
    portals: HashMap<Vec<u8>, Portal>,
    current: Option<Current>,
    /// Values masked per column in the statement just completed.
    finished: BTreeMap<String, u64>,
    /// A RowDescription named a table OID the catalog does not know.
    pub(crate) missed_oid: bool,
}

/// What the relay does with one server message.
pub(crate) enum Handling {
    Pass,
    Rewrite,
}

impl Masker {
    pub(crate) fn new() -> Masker {
        Masker {
            sources: VecDeque::new(),
            query_index: 0,
            prepared: HashMap::new(),
            described: HashMap::new(),
            portals: HashMap::new(),
            current: None,
            finished: BTreeMap::new(),
            missed_oid: false,
        }
    }

    /// The request with protocol id `id` was forwarded.
    pub(crate) fn expect(&mut self, id: u64, source: Source) {
        self.sources.push_back((id, source));
    }

    /// The server confirmed `name` as a prepared statement that masking
    /// makes `prepared` of (`None`: nothing known of it).
    pub(crate) fn parse(&mut self, name: &[u8], prepared: Option<Arc<Prepared>>) {
        self.described.remove(name);
        match prepared {
            Some(prepared) => self.prepared.insert(name.to_vec(), prepared),
            None => self.prepared.remove(name),
        };
    }

    /// The server confirmed `portal`, bound from `statement` with result
    /// `formats`.
    pub(crate) fn bind(&mut self, portal: &[u8], statement: &[u8], formats: &[i16]) {
        self.portals.insert(
            portal.to_vec(),
            Portal {
                statement: statement.to_vec(),
                formats: formats.to_vec(),
                described: None,
                plan: None,
            },
        );
    }

    /// The server confirmed a statement (`S`) or portal (`P`) gone.
    pub(crate) fn close(&mut self, kind: u8, name: &[u8]) {
        if kind == b'S' {
            self.prepared.remove(name);
            self.described.remove(name);
        } else {
            self.portals.remove(name);
        }
    }

    /// Every statement (`S`) or portal (`P`) is gone.
    pub(crate) fn clear(&mut self, kind: u8) {
        if kind == b'S' {
            self.prepared.clear();
            self.described.clear();
        } else {
            self.portals.clear();
        }
    }

    /// Whether a server message of type `tag` starting now must be read
    /// whole to be masked.
    pub(crate) fn needs_whole(&self, tag: u8) -> bool {
        match tag {
            b::DATA_ROW => {
                !matches!(&self.current, Some(Current::Rows(plan)) if plan.rows.is_clear())
            }
            b::COPY_DATA => matches!(self.current, Some(Current::Copy(..))),
            b::ERROR_RESPONSE | b::NOTICE_RESPONSE => true,
            _ => false,
        }
    }

    /// Masked value counts of the statement that just completed.
    pub(crate) fn take_finished(&mut self) -> BTreeMap<String, u64> {
        std::mem::take(&mut self.finished)
    }

    /// Looks at one whole server message answering request `id` (the
    /// protocol model's front request). `Rewrite` means the caller must pass
    /// it through [`rewrite`](Self::rewrite) instead of forwarding it.
    pub(crate) fn observe(
        &mut self,
        session: &SessionMasks,
        id: Option<u64>,
        tag: u8,
        body: &[u8],
    ) -> Handling {
        // Requests older than the one being answered are done.
        while self.sources.front().is_some_and(|(i, _)| Some(*i) < id) {
            self.sources.pop_front();
            self.query_index = 0;
        }
        match tag {
            b::DATA_ROW => {
                if self.current.is_none() {
                    if let Context::Execute(portal, masks) = self.context(id) {
                        self.current = self
                            .portal_plan(session, &portal, masks, body)
                            .map(Current::Rows);
                    }
                }
                match &self.current {
                    Some(Current::Rows(plan)) if !plan.rows.is_clear() => Handling::Rewrite,
                    Some(_) => Handling::Pass,
                    // Rows nothing described: every value masked.
                    None => {
                        self.current = Some(Current::Rows(null_plan(session, body)));
                        Handling::Rewrite
                    }
                }
            }
            b::COPY_DATA => match &self.current {
                Some(Current::Copy(..)) => Handling::Rewrite,
                _ => Handling::Pass,
            },
            b::ROW_DESCRIPTION => {
                let Some(fields) = parse_row_description(body) else {
                    return Handling::Pass;
                };
                self.finish_current();
                match self.context(id) {
                    Context::Query(prepared) => {
                        let masks = prepared.map_or_else(unknown, |p| p.masks);
                        let plan = self.plan(session, &fields, &masks);
                        self.current = Some(Current::Rows(plan));
                    }
                    Context::DescribeStatement(name) => {
                        self.described.insert(name, fields);
                    }
                    Context::DescribePortal(name) => {
                        if let Some(portal) = self.portals.get_mut(&name) {
                            portal.described = Some(fields);
                            portal.plan = None;
                        }
                    }
                    // A description of something Vigil did not see asked
                    // for: nothing is known of its sources.
                    Context::Execute(..) | Context::None => {
                        let plan = self.plan(session, &fields, &unknown());
                        self.current = Some(Current::Rows(plan));
                    }
                }
                Handling::Pass
            }
            b::COPY_OUT_RESPONSE => {
                self.finish_current();
                let prepared = match self.context(id) {
                    Context::Query(prepared) => prepared,
                    Context::Execute(_, Some(masks)) => Some(*masks),
                    Context::Execute(portal, None) => self
                        .portals
                        .get(&portal)
                        .and_then(|p| self.prepared.get(&p.statement))
                        .map(|p| (**p).clone()),
                    _ => None,
                };
                self.current = copy_plan(session, prepared.as_ref(), body);
                Handling::Pass
            }
            b::COMMAND_COMPLETE | b::EMPTY_QUERY_RESPONSE => {
                self.finish_current();
                if self.answering_query(id) {
                    self.query_index += 1;
                }
                Handling::Pass
            }
            b::PORTAL_SUSPENDED => {
                // The portal's plan is made again at the next Execute.
                self.finish_current();
                Handling::Pass
            }
            b::COPY_DONE => {
                self.finish_current();
                Handling::Pass
            }
            b::ERROR_RESPONSE | b::NOTICE_RESPONSE => {
                if tag == b::ERROR_RESPONSE {
                    self.finish_current();
                }
                Handling::Rewrite
            }
            // Another session's NOTIFY: its payload is scanned like any
            // value of unknown source.
            b::NOTIFICATION_RESPONSE if session.scan => Handling::Rewrite,
            b::READY_FOR_QUERY => {
                self.finish_current();
                self.query_index = 0;
                Handling::Pass
            }
            _ => Handling::Pass,
        }
    }

    /// The request being answered, if it is the one with id `id`.
    fn source(&self, id: Option<u64>) -> Option<&Source> {
        match (id, self.sources.front()) {
            (Some(id), Some((i, source))) if *i == id => Some(source),
            _ => None,
        }
    }

    fn answering_query(&self, id: Option<u64>) -> bool {
        matches!(self.source(id), Some(Source::Query(_)))
    }

    /// What the request being answered is, owned.
    fn context(&self, id: Option<u64>) -> Context {
        match self.source(id) {
            Some(Source::Query(statements)) => Context::Query(
                statements
                    .as_ref()
                    .and_then(|s| s.get(self.query_index))
                    .cloned(),
            ),
            Some(Source::Describe { kind: b'S', name }) => Context::DescribeStatement(name.clone()),
            Some(Source::Describe { name, .. }) => Context::DescribePortal(name.clone()),
            Some(Source::Execute { portal, masks }) => {
                Context::Execute(portal.clone(), masks.clone())
            }
            None => Context::None,
        }
    }

    /// Rewrites one message [`observe`](Self::observe) asked for, appending
    /// the result to `out`.
    pub(crate) fn rewrite(
        &mut self,
        session: &SessionMasks,
        tag: u8,
        frame: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), MaskError> {
        match (tag, &mut self.current) {
            (b::DATA_ROW, Some(Current::Rows(plan))) => {
                plan.rows.rewrite(frame, out)?;
            }
            (b::COPY_DATA, Some(Current::Copy(plan, _))) => {
                plan.rewrite(frame, out)?;
            }
            (b::ERROR_RESPONSE | b::NOTICE_RESPONSE, _) => {
                let masked = |schema: Option<&str>, table: Option<&str>, column: &str| {
                    if column == "*" {
                        table.is_some_and(|t| session.table_masked(schema, t))
                    } else {
                        session.column_masked(schema, table, column)
                    }
                };
                vigil_mask::scrub::scrub_report(
                    frame,
                    &masked,
                    &session.setup.detectors,
                    &session.setup.key,
                    out,
                )?;
            }
            (b::NOTIFICATION_RESPONSE, _) => scan_notification(session, frame, out),
            _ => out.extend_from_slice(frame),
        }
        Ok(())
    }

    /// Ends the plan of the result that was streaming, keeping its counts.
    fn finish_current(&mut self) {
        let (counts, names) = match self.current.take() {
            Some(Current::Rows(plan)) => (plan.rows.counts().to_vec(), plan.names),
            Some(Current::Copy(plan, names)) => (plan.counts().to_vec(), names),
            None => return,
        };
        for (count, name) in counts.iter().zip(names) {
            if let (true, Some(name)) = (*count > 0, name) {
                *self.finished.entry(name).or_default() += count;
            }
        }
    }

    /// The plan for the rows of an Execute of `portal` (`decided`: the
    /// masks it was decided with at the Execute, if it was).
    fn portal_plan(
        &mut self,
        session: &SessionMasks,
        portal: &[u8],
        decided: Option<Box<Prepared>>,
        row: &[u8],
    ) -> Option<Plan> {
        let entry = self.portals.get(portal)?;
        let fields = match &entry.described {
            Some(fields) => fields.clone(),
            None => {
                let mut fields = self.described.get(&entry.statement)?.clone();
                for (i, field) in fields.iter_mut().enumerate() {
                    field.binary = format_of(&entry.formats, i);
                }
                fields
            }
        };
        if column_count(row) != Some(fields.len()) {
            return Some(null_plan(session, row));
        }
        let masks = match decided {
            Some(decided) => decided.masks,
            None => self
                .prepared
                .get(&entry.statement)
                .map(|p| p.masks.clone())
                .unwrap_or_else(unknown),
        };
        Some(self.plan(session, &fields, &masks))
    }

    fn plan(&mut self, session: &SessionMasks, fields: &[Field], masks: &StatementMasks) -> Plan {
        let n = fields.len();
        let mut names = Vec::with_capacity(n);
        // Values computed from masked columns hide their NULLs too.
        let mut conceal = Vec::with_capacity(n);
        let columns = fields
            .iter()
            .enumerate()
            .map(|(i, field)| {
                let source = session.source(field.table, field.attnum);
                conceal.push(
                    !matches!(source, Ok(Some(_))) || session.conceals(field.table, field.attnum),
                );
                let verdict = match source {
                    Ok(Some(strategy)) => Some(Verdict::Mask(strategy)),
                    // The text says it computes from a masked column even if
                    // the catalog (possibly stale) says the source is clear.
                    Ok(None) => masks.output(i, n).map(Verdict::Mask),
                    Err(()) => {
                        if field.table != 0 {
                            self.missed_oid = true;
                        }
                        masks.untraced(i, n, session.scan)
                    }
                };
                let plan = match verdict {
                    Some(Verdict::Mask(strategy)) => ColumnPlan::Mask(ColumnMask {
                        strategy,
                        type_oid: field.type_oid,
                        binary: field.binary,
                    }),
                    Some(Verdict::Scan) => ColumnPlan::Scan {
                        type_oid: field.type_oid,
                        binary: field.binary,
                    },
                    None => ColumnPlan::Clear,
                };
                names.push((!matches!(plan, ColumnPlan::Clear)).then(|| field.name.clone()));
                plan
            })
            .collect();
        Plan {
            rows: RowPlan::new(
                columns,
                Arc::clone(&session.setup.key),
                Arc::clone(&session.setup.detectors),
            )
            .concealing_nulls(conceal),
            names,
        }
    }
}

/// A NotificationResponse with its payload's detected spans masked;
/// unchanged (or malformed) ones go out as they came.
fn scan_notification(session: &SessionMasks, frame: &[u8], out: &mut BytesMut) {
    let Some((channel_end, payload)) = notification_payload(frame) else {
        return out.extend_from_slice(frame);
    };
    let spans = std::str::from_utf8(payload)
        .map(|text| session.setup.detectors.find(text))
        .unwrap_or_default();
    if spans.is_empty() {
        return out.extend_from_slice(frame);
    }
    let start = out.len();
    out.extend_from_slice(&frame[..channel_end]);
    session
        .setup
        .detectors
        .mask_spans(payload, &spans, &session.setup.key, out);
    out.extend_from_slice(&[0]);
    let len = (out.len() - start - 1) as u32;
    out[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
}

/// Where a NotificationResponse's channel name ends (past its NUL) and its
/// payload (without its NUL).
fn notification_payload(frame: &[u8]) -> Option<(usize, &[u8])> {
    // Tag, length, process id.
    let body = frame.get(9..)?;
    let channel = body.iter().position(|&b| b == 0)?;
    let payload = &body[channel + 1..];
    let payload = payload.strip_suffix(&[0])?;
    (!payload.contains(&0)).then_some((9 + channel + 1, payload))
}

/// How a column whose source is not a known table column is treated.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Verdict {
    Mask(Strategy),
    Scan,
}

fn unknown() -> StatementMasks {
    StatementMasks::unknown()
}

/// Every value of every column to NULL: for rows whose columns Vigil has no
/// description of.
fn null_plan(session: &SessionMasks, row: &[u8]) -> Plan {
    let n = column_count(row).unwrap_or(0);
    let columns = (0..n)
        .map(|_| {
            ColumnPlan::Mask(ColumnMask {
                strategy: Strategy::Null,
                type_oid: 0,
                binary: true,
            })
        })
        .collect();
    Plan {
        rows: RowPlan::new(
            columns,
            Arc::clone(&session.setup.key),
            Arc::clone(&session.setup.detectors),
        ),
        names: (0..n).map(|i| Some(format!("column {}", i + 1))).collect(),
    }
}

/// The plan for a COPY … TO STDOUT whose CopyOutResponse is `body`.
fn copy_plan(session: &SessionMasks, prepared: Option<&Prepared>, body: &[u8]) -> Option<Current> {
    let (overall, count) = parse_copy_out(body)?;
    let layout = prepared.and_then(|p| p.copy.as_ref());
    let masks = prepared.map(|p| p.masks.clone()).unwrap_or_else(unknown);
    let format = match (overall, layout.map(|l| &l.options)) {
        (1, _) => CopyFormat::Binary,
        (_, Some(options)) if options.format == vigil_sql::CopyFormat::Csv => CopyFormat::Csv {
            delimiter: single_byte(options.delimiter.as_deref(), b','),
            quote: single_byte(options.quote.as_deref(), b'"'),
            escape: single_byte(options.escape.as_deref().or(options.quote.as_deref()), b'"'),
            null: null_marker(options.null.as_deref(), ""),
            header: options.header,
        },
        (_, options) => CopyFormat::Text {
            delimiter: single_byte(options.and_then(|o| o.delimiter.as_deref()), b'\t'),
            null: null_marker(options.and_then(|o| o.null.as_deref()), "\\N"),
        },
    };
    let binary = overall == 1;
    let mut names = Vec::with_capacity(count);
    let table = layout
        .and_then(|l| l.columns.as_ref())
        .filter(|columns| columns.len() == count);
    let columns = (0..count)
        .map(|i| {
            let (verdict, type_oid) = match table {
                Some(columns) => (columns[i].0.map(Verdict::Mask), columns[i].1),
                // Text and csv carry every value as text.
                None => (
                    masks.untraced(i, count, session.scan),
                    if binary { 0 } else { TEXT_OID },
                ),
            };
            let plan = match verdict {
                Some(Verdict::Mask(strategy)) => ColumnPlan::Mask(ColumnMask {
                    strategy,
                    type_oid,
                    binary,
                }),
                Some(Verdict::Scan) => ColumnPlan::Scan { type_oid, binary },
                None => ColumnPlan::Clear,
            };
            names.push(
                (!matches!(plan, ColumnPlan::Clear)).then(|| format!("copy column {}", i + 1)),
            );
            plan
        })
        .collect();
    // Values computed from masked columns hide their NULLs too.
    let conceal = vec![table.is_none(); count];
    let plan = CopyPlan::new(
        format,
        columns,
        Arc::clone(&session.setup.key),
        Arc::clone(&session.setup.detectors),
    )
    .concealing_nulls(conceal);
    Some(Current::Copy(plan, names))
}

/// The NULL marker the COPY rewriter looks for. A marker of the client's
/// own choosing could equal a value (`NULL '101-02-0002'`), which would then
/// pass as a NULL: so with one, nothing is taken for NULL (no value holds a
/// zero byte) and every field of a masked column is masked, NULLs included.
fn null_marker(chosen: Option<&str>, default: &str) -> Vec<u8> {
    match chosen {
        Some(marker) if marker != default => vec![0],
        _ => default.as_bytes().to_vec(),
    }
}

/// PostgreSQL's `text` type.
const TEXT_OID: u32 = 25;

fn single_byte(text: Option<&str>, default: u8) -> u8 {
    match text.map(str::as_bytes) {
        Some([byte]) => *byte,
        _ => default,
    }
}

#[cfg(test)]
mod tests {
    use super::null_marker;

    #[test]
    fn a_null_marker_of_the_clients_own_matches_nothing() {
        assert_eq!(null_marker(None, "\\N"), b"\\N");
        assert_eq!(null_marker(Some("\\N"), "\\N"), b"\\N");
        assert_eq!(null_marker(Some("101-02-0002"), "\\N"), vec![0]);
        assert_eq!(null_marker(Some(""), ""), b"");
        assert_eq!(null_marker(Some("NULL"), ""), vec![0]);
    }
}
