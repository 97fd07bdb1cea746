//! What the statements of a session refer to by name, and what they define:
//! prepared statements (protocol Parse, SQL `PREPARE`) and portals (protocol
//! Bind, SQL `DECLARE … CURSOR`), kept as the server confirms them
//! ([`Names`]).
//!
//! A statement that runs one of them by name (`EXECUTE`, `FETCH`, protocol
//! Bind and Execute) is decided as what the name holds for the server at
//! that point. A name Vigil cannot vouch for is refused; one whose change
//! the server has not answered yet makes the statement wait.

use std::sync::Arc;

use vigil_policy::Rule;
use vigil_sql::{Analysis, Class, Kind, Statement};

use super::names::{At, Change, Lookup, Names, Stamp};
use crate::approvals::BindParameters;
use crate::masking::{Masker, Prepared as MaskedStatement, StatementMasks};

/// A prepared statement as Vigil knows it.
pub(crate) struct Prepared {
    /// The one statement it runs.
    pub(crate) analysis: Arc<Analysis>,
    pub(crate) rule: Option<Arc<str>>,
    /// The masked columns it reads.
    pub(crate) masked: Vec<Vec<String>>,
    /// Sent to review (by this rule, or the database default when `None`):
    /// each execution is an approval request of its own.
    pub(crate) review: Option<Option<Arc<Rule>>>,
    /// Its text, as approvers see it and approvals bind to.
    pub(crate) sql: Arc<str>,
    /// The text the server keeps for it (`pg_prepared_statements`): the
    /// Parse's text, or the whole text that ran the `PREPARE`.
    pub(crate) source: Arc<str>,
    /// What masking makes of it, in a session that masks.
    pub(crate) masks: Option<Arc<MaskedStatement>>,
    /// It runs other names (`EXECUTE`, `FETCH`): decided at each Execute.
    pub(crate) refers: bool,
    /// A `set_config` in it takes its setting or value from a bind
    /// parameter: decided at each Bind, with the values bound.
    pub(crate) bound_settings: bool,
}

/// A portal: bound from a prepared statement, or a cursor declared in SQL.
#[derive(Clone)]
pub(crate) enum Portal {
    Bound {
        prepared: Arc<Prepared>,
        /// For a reviewed statement, what it was bound with.
        parameters: Option<Arc<BindParameters>>,
        /// The statement's name and the result formats, for masking.
        statement: Vec<u8>,
        formats: Vec<i16>,
        /// Decided at its Bind (see [`Prepared::bound_settings`]): masking
        /// takes this portal's masks, not its statement's.
        rebound: bool,
    },
    Cursor(Arc<Cursor>),
}

/// A cursor declared with SQL `DECLARE`.
pub(crate) struct Cursor {
    /// The `DECLARE` statement (its outputs are the query's).
    pub(crate) declared: Statement,
    /// What masking makes of its rows, in a session that masks.
    pub(crate) masks: Option<StatementMasks>,
    /// `WITH HOLD`: it outlives its transaction.
    pub(crate) hold: bool,
    /// The text the server keeps for it (`pg_cursors`): the whole text that
    /// declared it.
    pub(crate) source: Arc<str>,
}

impl Portal {
    /// Whether the portal outlives the transaction it was made in.
    fn holds(&self) -> bool {
        matches!(self, Portal::Cursor(cursor) if cursor.hold)
    }

    /// The text the server shows for it in `pg_cursors`.
    fn source(&self) -> &str {
        match self {
            Portal::Bound { prepared, .. } => &prepared.source,
            Portal::Cursor(cursor) => &cursor.source,
        }
    }

    /// What masking makes of the rows it returns.
    pub(crate) fn masks(&self) -> Option<StatementMasks> {
        match self {
            Portal::Bound { prepared, .. } => prepared.masks.as_ref().map(|m| m.masks.clone()),
            Portal::Cursor(cursor) => cursor.masks.clone(),
        }
    }
}

/// The session's prepared statements and portals.
#[derive(Default)]
pub(crate) struct Defined {
    pub(crate) statements: Names<Arc<Prepared>>,
    pub(crate) portals: Names<Portal>,
    /// Code Vigil cannot see into ran, and may have redefined any name.
    taint: Option<Taint>,
}

/// Since code Vigil cannot see into ran: its epoch (the earliest not yet
/// verified), and whether a message of that same epoch, which the server
/// runs before Vigil can ask, used a name regardless.
#[derive(Debug, Clone, Copy)]
struct Taint {
    epoch: u64,
    used: bool,
}

/// What Vigil asks the server once code it cannot see into has run: every
/// prepared statement and cursor the session holds, with its text,
/// and the role it runs in now (`R`, `current_user`, `session_user`).
pub(crate) const VERIFY_SQL: &str = "SELECT 'S', name, statement FROM pg_catalog.pg_prepared_statements UNION ALL SELECT 'P', name, statement FROM pg_catalog.pg_cursors UNION ALL SELECT 'R', pg_catalog.current_user()::text, pg_catalog.session_user()::text";

/// One row of [`VERIFY_SQL`]: `S` or `P`, the name, the text.
pub(crate) type HeldName = (u8, Vec<u8>, String);

/// What one statement of a text refers to or changes by name.
pub(crate) enum Reference {
    None,
    /// `EXECUTE name`, also inside `EXPLAIN ANALYZE` or `CREATE TABLE AS`.
    Runs(String),
    /// `FETCH`/`MOVE` from a cursor.
    Fetches(String),
    /// `PREPARE name AS …`.
    Prepares(String),
    /// `DEALLOCATE name`; `None`: `DEALLOCATE ALL`.
    Deallocates(Option<String>),
    /// `DECLARE name CURSOR …`.
    Declares(String),
    /// `CLOSE name`; `None`: `CLOSE ALL`.
    Closes(Option<String>),
    /// `DISCARD ALL`.
    DiscardsAll,
}

impl Reference {
    pub(crate) fn of(statement: &Statement) -> Reference {
        let p = &statement.properties;
        let runs =
            statement.kind == Kind::Execute || statement.inner_kinds.contains(&Kind::Execute);
        match (statement.kind, &p.prepared_name, &p.cursor) {
            (_, Some(name), _) if runs => Reference::Runs(name.clone()),
            (Kind::Prepare, Some(name), _) => Reference::Prepares(name.clone()),
            (Kind::Deallocate, name, _) => Reference::Deallocates(name.clone()),
            (Kind::DeclareCursor, _, Some(name)) => Reference::Declares(name.clone()),
            (Kind::Fetch, _, Some(name)) => Reference::Fetches(name.clone()),
            (Kind::ClosePortal, _, Some(name)) if name.is_empty() => Reference::Closes(None),
            (Kind::ClosePortal, _, Some(name)) => Reference::Closes(Some(name.clone())),
            (Kind::Discard, ..) if p.discards_all => Reference::DiscardsAll,
            _ => Reference::None,
        }
    }

    /// Whether `statement` refers to or changes any name at all (cheaper
    /// than [`of`](Self::of)).
    pub(crate) fn names_anything(statement: &Statement) -> bool {
        matches!(
            statement.kind,
            Kind::Execute
                | Kind::Prepare
                | Kind::Deallocate
                | Kind::DeclareCursor
                | Kind::Fetch
                | Kind::ClosePortal
                | Kind::Discard
        ) || statement.inner_kinds.contains(&Kind::Execute)
    }

    /// Whether a text of statements like this one must be decided at the
    /// time it runs.
    pub(crate) fn late(statement: &Statement) -> bool {
        matches!(
            Reference::of(statement),
            Reference::Runs(_) | Reference::Fetches(_)
        )
    }
}

/// How one statement reads a name, as the message asking sees it.
pub(crate) enum Found {
    Statement(Arc<Prepared>),
    Portal(Portal),
    /// Not defined, or not one Vigil can vouch for.
    Unknown,
}

/// The statements of one text, resolved: per statement what its name
/// reference found (`None`: it makes none).
pub(crate) struct Resolved {
    pub(crate) found: Vec<Option<Found>>,
}

impl Defined {
    /// What statement `name` means to a message of `epoch`; `fresh`: the
    /// message starts its batch (nothing unanswered before it in it).
    pub(crate) fn statement(
        &mut self,
        name: &[u8],
        epoch: u64,
        fresh: bool,
    ) -> Lookup<'_, Arc<Prepared>> {
        let own = self.statements.staged_in(name, epoch);
        match self.trust(own, epoch, fresh) {
            Some(lookup) => lookup,
            None => self.statements.lookup(name, epoch),
        }
    }

    /// What portal `name` means to a message of `epoch` (see `statement`).
    pub(crate) fn portal(&mut self, name: &[u8], epoch: u64, fresh: bool) -> Lookup<'_, Portal> {
        let own = self.portals.staged_in(name, epoch);
        match self.trust(own, epoch, fresh) {
            Some(lookup) => lookup,
            None => self.portals.lookup(name, epoch),
        }
    }

    /// Whether a name may be looked up for a message of `epoch` while code
    /// Vigil cannot see into may have redefined it (`own`: the message's
    /// own batch defined it since, so it is as Vigil saw it). `None`: look
    /// it up. A message of the tainting batch itself runs before Vigil
    /// could ask, so it goes on and the check afterwards decides whether
    /// that was sound; a later one waits for the check, which can be made
    /// only between batches: one with unanswered messages before it in its
    /// own batch is refused instead.
    fn trust<T>(&mut self, own: bool, epoch: u64, fresh: bool) -> Option<Lookup<'static, T>> {
        let taint = self.taint.as_mut()?;
        if own {
            return None;
        }
        if epoch <= taint.epoch {
            taint.used = true;
            return None;
        }
        Some(match fresh {
            true => Lookup::Unsettled,
            false => Lookup::Unknown,
        })
    }

    /// A message of `epoch` that runs code Vigil cannot see into is being
    /// forwarded.
    pub(crate) fn tainted(&mut self, epoch: u64) {
        let earliest = self.taint.map_or(epoch, |t| t.epoch.min(epoch));
        let used = self.taint.is_some_and(|t| t.used);
        self.taint = Some(Taint {
            epoch: earliest,
            used,
        });
    }

    /// Whether the names must be checked now: a message waits for them
    /// (`waiting`), or one already trusted them.
    pub(crate) fn wants_verification(&self, waiting: bool) -> bool {
        self.taint.is_some_and(|t| waiting || t.used)
    }

    /// The server's answer to [`VERIFY_SQL`] (`None`: it could not be
    /// asked): names it holds other than as Vigil knows them are forgotten.
    /// Returns the names changed if a message already ran trusting them.
    pub(crate) fn verified(&mut self, held: Option<&[HeldName]>) -> Result<(), String> {
        let Some(taint) = self.taint.take() else {
            return Ok(());
        };
        let server = |kind: u8, name: &[u8]| {
            held?
                .iter()
                .find(|(k, n, _)| *k == kind && n.as_slice() == name)
                .map(|(_, _, text)| text.as_str())
        };
        let mut changed = Vec::new();
        for (name, prepared) in self.statements.confirmed() {
            if server(b'S', name) != Some(&*prepared.source) {
                changed.push(String::from_utf8_lossy(name).into_owned());
            }
        }
        for name in &changed {
            self.statements.forget(name.as_bytes());
        }
        let mut gone = Vec::new();
        for (name, portal) in self.portals.confirmed() {
            if server(b'P', name) != Some(portal.source()) {
                gone.push(name.clone());
            }
        }
        for name in &gone {
            self.portals.forget(name);
        }
        let hijacked: Vec<&String> = changed
            .iter()
            .filter(|name| held.is_none() || server(b'S', name.as_bytes()).is_some())
            .collect();
        match (taint.used, hijacked.is_empty()) {
            (true, false) => Err(format!(
                "code this session ran redefined prepared statements {hijacked:?}, and statements pipelined with it used them before Vigil could tell"
            )),
            _ => Ok(()),
        }
    }

    /// Resolves the names the statements of `analysis` run or fetch from,
    /// as a message of `epoch` sees them, counting the definitions the
    /// text's own earlier statements make (they run first): `defines` and
    /// `declares` hold, by statement, what its `PREPARE` or `DECLARE`
    /// defines. `None`: a name is unsettled, so the text must wait.
    pub(crate) fn resolve(
        &mut self,
        analysis: &Analysis,
        epoch: u64,
        fresh: bool,
        defines: &[Option<Arc<Prepared>>],
        declares: &[Option<Portal>],
    ) -> Option<Resolved> {
        // Names the text itself (re)defines, newest last: statements, portals.
        let mut own_statements: Vec<(String, Option<Arc<Prepared>>)> = Vec::new();
        let mut own_portals: Vec<(String, Option<Portal>)> = Vec::new();
        let mut cleared_statements = false;
        let mut cleared_portals = false;
        let mut found = Vec::with_capacity(analysis.statements.len());
        for (i, statement) in analysis.statements.iter().enumerate() {
            let mut this = None;
            match Reference::of(statement) {
                Reference::None => {}
                Reference::Runs(name) => {
                    let own = own_statements.iter().rev().find(|(n, _)| *n == name);
                    this = Some(match (own, cleared_statements) {
                        (Some((_, Some(p))), _) => Found::Statement(Arc::clone(p)),
                        (Some((_, None)), _) | (None, true) => Found::Unknown,
                        (None, false) => match self.statement(name.as_bytes(), epoch, fresh) {
                            Lookup::Known(p) => Found::Statement(Arc::clone(p)),
                            Lookup::Unknown => Found::Unknown,
                            Lookup::Unsettled => return None,
                        },
                    });
                }
                Reference::Fetches(name) => {
                    let own = own_portals.iter().rev().find(|(n, _)| *n == name);
                    this = Some(match (own, cleared_portals) {
                        (Some((_, Some(p))), _) => Found::Portal(p.clone()),
                        (Some((_, None)), _) | (None, true) => Found::Unknown,
                        (None, false) => match self.portal(name.as_bytes(), epoch, fresh) {
                            Lookup::Known(p) => Found::Portal(p.clone()),
                            Lookup::Unknown => Found::Unknown,
                            Lookup::Unsettled => return None,
                        },
                    });
                }
                Reference::Prepares(name) => {
                    own_statements.push((name, defines.get(i).cloned().flatten()))
                }
                Reference::Deallocates(Some(name)) => own_statements.push((name, None)),
                Reference::Deallocates(None) => {
                    own_statements.clear();
                    cleared_statements = true;
                }
                Reference::Declares(name) => {
                    own_portals.push((name, declares.get(i).cloned().flatten()))
                }
                Reference::Closes(Some(name)) => own_portals.push((name, None)),
                Reference::Closes(None) => {
                    own_portals.clear();
                    cleared_portals = true;
                }
                Reference::DiscardsAll => {
                    own_statements.clear();
                    own_portals.clear();
                    cleared_statements = true;
                    cleared_portals = true;
                }
            }
            found.push(this);
        }
        Some(Resolved { found })
    }

    /// Stages what `statement`, the `index`th of the request `stamp`, defines
    /// or removes when it runs. `prepared` is a `PREPARE`'s statement,
    /// `cursor` a `DECLARE`'s portal.
    pub(crate) fn stage(
        &mut self,
        statement: &Statement,
        stamp: Stamp,
        index: u32,
        prepared: Option<Arc<Prepared>>,
        cursor: Option<Portal>,
    ) {
        let at = At {
            request: stamp.request,
            statement: index,
        };
        let epoch = stamp.epoch;
        match Reference::of(statement) {
            Reference::Prepares(name) => {
                let change = match prepared {
                    Some(p) => Change::Define(name.into_bytes(), p),
                    // Defined on the server, but not as anything Vigil knows.
                    None => Change::Remove(name.into_bytes()),
                };
                self.statements.stage(at, epoch, change);
            }
            Reference::Deallocates(Some(name)) => {
                self.statements
                    .stage(at, epoch, Change::Remove(name.into_bytes()))
            }
            Reference::Deallocates(None) => self.statements.stage(at, epoch, Change::Clear),
            Reference::Declares(name) => {
                let change = match cursor {
                    Some(c) => Change::Define(name.into_bytes(), c),
                    None => Change::Remove(name.into_bytes()),
                };
                self.portals.stage(at, epoch, change);
            }
            Reference::Closes(Some(name)) => {
                self.portals
                    .stage(at, epoch, Change::Remove(name.into_bytes()))
            }
            Reference::Closes(None) => self.portals.stage(at, epoch, Change::Clear),
            Reference::DiscardsAll => {
                self.statements.stage(at, epoch, Change::Clear);
                self.portals.stage(at, epoch, Change::Clear);
            }
            Reference::None | Reference::Runs(_) | Reference::Fetches(_) => {}
        }
    }

    /// The server confirmed `at`: its changes take effect, and masking
    /// learns of them.
    pub(crate) fn confirm(&mut self, at: At, masker: Option<&mut Masker>) {
        match masker {
            None => {
                self.statements.confirm(at, |_| {});
                self.portals.confirm(at, |_| {});
            }
            Some(masker) => {
                self.statements.confirm(at, |change| match change {
                    Change::Define(name, prepared) => masker.parse(name, prepared.masks.clone()),
                    Change::Remove(name) => masker.close(b'S', name),
                    Change::Clear => masker.clear(b'S'),
                });
                self.portals.confirm(at, |change| match change {
                    Change::Define(
                        name,
                        Portal::Bound {
                            statement, formats, ..
                        },
                    ) => masker.bind(name, statement, formats),
                    Change::Define(name, Portal::Cursor(_)) | Change::Remove(name) => {
                        masker.close(b'P', name)
                    }
                    Change::Clear => masker.clear(b'P'),
                });
            }
        }
    }

    /// The server failed `at` in `epoch`.
    pub(crate) fn fail(&mut self, at: At, epoch: u64, to_sync: bool) {
        self.statements.fail(at, epoch, to_sync);
        self.portals.fail(at, epoch, to_sync);
    }

    /// The server is ready again after answering up to `through`; `idle`:
    /// outside a transaction block, so portals that do not hold are gone.
    pub(crate) fn ready(&mut self, through: u64, idle: bool) {
        self.statements.settle(through);
        self.portals.settle(through);
        if idle {
            self.portals.retain(Portal::holds);
        }
    }
}

/// `statement` (an `EXECUTE`, or a statement around one) as what it runs:
/// the prepared statement's findings are added to its own, and its class is
/// the worst of the two (the analyzer, not knowing the name, said unknown).
pub(crate) fn with_prepared(statement: &Statement, prepared: &Statement) -> Statement {
    let own = match statement.kind {
        Kind::Execute => Class::Txn,
        Kind::Explain => Class::Read,
        Kind::Create(_) => Class::Ddl,
        _ => Class::Unknown,
    };
    let mut resolved = statement.clone();
    resolved.class = own.worse(prepared.class);
    resolved.inner_kinds.push(prepared.kind);
    resolved
        .inner_kinds
        .extend(prepared.inner_kinds.iter().copied());
    resolved.inner_kinds.sort();
    resolved.inner_kinds.dedup();
    resolved.inner_kinds.retain(|k| *k != statement.kind);
    for relation in &prepared.relations {
        if !resolved.relations.contains(relation) {
            resolved.relations.push(relation.clone());
        }
    }
    resolved.columns.extend(prepared.columns.iter().cloned());
    resolved
        .functions
        .extend(prepared.functions.iter().cloned());
    resolved.filters.extend(prepared.filters.iter().cloned());
    resolved.computed.extend(prepared.computed.iter().cloned());
    resolved
        .written_from
        .extend(prepared.written_from.iter().cloned());
    let (mine, theirs) = (&mut resolved.properties, &prepared.properties);
    mine.has_where = match (mine.has_where, theirs.has_where) {
        (Some(a), Some(b)) => Some(a && b),
        (a, b) => a.or(b),
    };
    mine.data_modifying_cte |= theirs.data_modifying_cte;
    mine.select_into |= theirs.select_into;
    mine.explain_analyze |= theirs.explain_analyze;
    mine.copy = mine.copy.or(theirs.copy);
    mine.opaque_functions
        .extend(theirs.opaque_functions.iter().cloned());
    mine.settings.extend(theirs.settings.iter().cloned());
    if statement.kind == Kind::Execute {
        resolved.outputs = prepared.outputs.clone();
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analysis(sql: &str) -> Analysis {
        vigil_sql::analyze_uncached(sql).unwrap()
    }

    #[test]
    fn references_by_statement() {
        let a = analysis(
            "PREPARE s AS SELECT 1; EXECUTE s; EXPLAIN ANALYZE EXECUTE s; DEALLOCATE s; DEALLOCATE ALL;
             DECLARE c CURSOR WITH HOLD FOR SELECT 1; FETCH 2 FROM c; MOVE c; CLOSE c; CLOSE ALL;
             DISCARD ALL; DISCARD PLANS; CREATE TABLE t AS EXECUTE s",
        );
        let got: Vec<String> = a
            .statements
            .iter()
            .map(|s| match Reference::of(s) {
                Reference::None => "none".into(),
                Reference::Runs(n) => format!("runs {n}"),
                Reference::Fetches(n) => format!("fetches {n}"),
                Reference::Prepares(n) => format!("prepares {n}"),
                Reference::Deallocates(n) => format!("deallocates {n:?}"),
                Reference::Declares(n) => format!("declares {n}"),
                Reference::Closes(n) => format!("closes {n:?}"),
                Reference::DiscardsAll => "discards all".into(),
            })
            .collect();
        assert_eq!(
            got,
            [
                "prepares s",
                "runs s",
                "runs s",
                "deallocates Some(\"s\")",
                "deallocates None",
                "declares c",
                "fetches c",
                "fetches c",
                "closes Some(\"c\")",
                "closes None",
                "discards all",
                "none",
                "runs s"
            ]
        );
        assert!(a.statements[5].properties.hold);
    }

    #[test]
    fn an_execute_takes_on_what_it_runs() {
        let prepared = analysis("UPDATE t SET a = 1");
        let execute = analysis("EXECUTE s(1); EXPLAIN ANALYZE EXECUTE s");
        let run = with_prepared(&execute.statements[0], &prepared.statements[0]);
        assert_eq!(run.class, Class::Write);
        assert!(run.inner_kinds.contains(&Kind::Update));
        assert_eq!(run.properties.has_where, Some(false));
        assert_eq!(run.relations[0].name, "t");
        let explained = with_prepared(&execute.statements[1], &prepared.statements[0]);
        assert_eq!(explained.class, Class::Write);
    }
}
