//! The gate every statement passes before it is forwarded: the text is
//! read as the server will read it, analyzed with PostgreSQL's parser, its
//! names resolved as the server holds them, and the session's policy
//! decides. A text that cannot be read or analyzed is never forwarded.
//!
//! The gate answers with the ErrorResponse the client should get for a
//! refusal; the relay arranges for it to arrive where the server's answer to
//! that message would have. The entry points, one per client message, are
//! in `messages`.

mod messages;
mod role;

use std::borrow::Cow;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tracing::{info, warn};
use vigil_audit::AuditEvent;
use vigil_policy::{Action, Rule, SearchPath, SessionPolicy, Subject, Target};
use vigil_sql::{Analysis, AnalyzeError, Class, Kind, Properties, Statement};
use vigil_wire::backend::{self, Report, Severity};

use super::audit::{Decided, SessionAudit};
use super::defined::{Defined, Found, Resolved};
use super::names::Stamp;
use super::reading::{NotNow, Reading};
use super::refusal::{integrity_refusal, masking_refusal, refusal};
use super::review::{self, Asker, Asking, Reviewed};
use crate::approvals::{CancelSignal, Wait};
use crate::encoding::{ClientEncoding, Unreadable};
use crate::live::Registration;
use crate::masking::{Prepared as MaskedStatement, SessionMasks, StatementMasks};
use crate::metrics::Counted;
use crate::{Identity, State};

/// The gate's answer to one client message: checked, or to be checked
/// again once the server has answered what came before it.
pub(crate) enum Gated {
    Checked(Checked),
    Wait,
    /// To be checked again once the catalog is read again: the message
    /// names a relation Vigil's copy of it does not know.
    Reload,
}

impl From<Checked> for Gated {
    fn from(checked: Checked) -> Gated {
        Gated::Checked(checked)
    }
}

/// Where a message stands, as the gate needs to know it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place {
    pub(crate) stamp: Stamp,
    /// The newest request checked before this one that the server answers
    /// with a ReadyForQuery (a Sync, Query or FunctionCall).
    pub(crate) closed_through: u64,
    /// It starts its batch: nothing before it in it waits for an answer.
    pub(crate) fresh: bool,
    /// The server discards this message unread (an extended-protocol error
    /// came before it, and no Sync since): nothing it needs is waited for.
    pub(crate) skipped: bool,
}

/// What to do with one client message.
pub(crate) enum Verdict {
    Forward,
    /// Refused; the client hears this ErrorResponse instead.
    Refuse(Bytes),
}

/// A gated message: the verdict, the audited statements it runs when
/// forwarded (a Query's, an Execute's, a FunctionCall's), and, in a session
/// that masks, what masking makes of its statements (a Query's, a Parse's).
pub(crate) struct Checked {
    pub(crate) verdict: Verdict,
    /// Refused because the analyzer could not read the text: the server is
    /// asked to parse it (a Parse, which never runs anything) and its own
    /// error, with its SQLSTATE and position, reaches the client.
    pub(crate) unreadable: bool,
    pub(crate) runs: Option<Vec<u64>>,
    pub(crate) masks: Option<Vec<MaskedStatement>>,
    /// Forwarded only once approved (hold mode). Boxed: rare, and large.
    pub(crate) hold: Option<Box<Hold>>,
}

/// A statement held for approval: the wait, and the notice that tells the
/// client so at once.
pub(crate) struct Hold {
    pub(crate) wait: Wait,
    pub(crate) notice: Bytes,
}

impl Checked {
    pub(crate) fn forward(runs: Option<Vec<u64>>) -> Checked {
        Checked {
            verdict: Verdict::Forward,
            unreadable: false,
            runs,
            masks: None,
            hold: None,
        }
    }

    fn refuse(error: Bytes) -> Checked {
        Checked {
            verdict: Verdict::Refuse(error),
            unreadable: false,
            runs: None,
            masks: None,
            hold: None,
        }
    }

    /// Forwarded as `reviewed` says: at once, once approved, or refused.
    fn reviewed(reviewed: Reviewed, runs: Option<Vec<u64>>) -> Checked {
        match reviewed {
            Reviewed::Hold { wait, notice } => Checked {
                hold: Some(Box::new(Hold { wait, notice })),
                ..Checked::forward(runs)
            },
            Reviewed::Run { .. } => Checked::forward(runs),
            Reviewed::Refused { error, .. } => Checked::refuse(error),
        }
    }
}

/// What the gate decided for a text.
struct Ruling {
    action: Action,
    rule: Option<Arc<str>>,
    /// The rule itself (a reviewing rule names approvers).
    source: Option<Arc<Rule>>,
}

/// The parameters whose change tells that the session's role changed.
const ROLE_REPORTS: [&str; 2] = ["is_superuser", "session_authorization"];

pub(crate) struct Gate {
    state: Arc<State>,
    identity: Arc<Identity>,
    database: String,
    policy: SessionPolicy,
    /// The state generation `policy` was built from.
    generation: u64,
    /// Where unqualified names may resolve in this session.
    search_path: SearchPath,
    pub(crate) refused: u64,
    pub(crate) audit: SessionAudit,
    /// Prepared statements and portals, as the server holds them.
    defined: Defined,
    /// How the server will read the next text.
    reading: Reading,
    /// What this session's identity sees masked; `None`: everything clear.
    pub(crate) masks: Option<Arc<SessionMasks>>,
    /// When the catalog was last asked to be read again.
    catalog_asked: Option<std::time::Instant>,
    /// Masking applies since a reload, and the catalog is still being read.
    masks_pending: bool,
    /// The database's catalog as last read, and its version: which
    /// built-in names the database's users overloaded.
    catalog: Option<(Arc<crate::masking::Catalog>, u64)>,
    /// A CancelRequest for this session withdraws a held statement.
    pub(crate) cancel: Arc<CancelSignal>,
    /// The grants `policy` was built with: their version, and when the
    /// first of them ends.
    grants_version: u64,
    grants_end: vigil_audit::clock::Micros,
    /// The session as the admin API lists it.
    pub(crate) live: Registration,
    /// The upstream role the session is locked in, when its identity maps
    /// to one.
    role: Option<RoleLock>,
    /// The server's transaction status at its last ReadyForQuery.
    status: u8,
}

/// The upstream role a session is locked in, and what confirms it.
struct RoleLock {
    role: Arc<str>,
    /// `is_superuser` and `session_authorization` as the server reported
    /// them once the role was set: a change means the role changed.
    reported: Vec<(String, String)>,
    /// The batch (epoch) of the first message that ran code Vigil cannot
    /// see into since the role was last confirmed: such code can switch
    /// roles. Later batches wait until the server confirms the role.
    unconfirmed: Option<u64>,
}

impl Gate {
    pub(crate) fn new(
        state: Arc<State>,
        identity: Arc<Identity>,
        database: String,
        audit: SessionAudit,
        masks: Option<Arc<SessionMasks>>,
        live: Registration,
        encoding: ClientEncoding,
    ) -> Gate {
        let generation = state.generation();
        let grants_version = state.approvals.grants_version();
        let (policy, grants_end) = session_policy(&state, &identity, &database);
        let policy = policy.unwrap_or_else(deny_all);
        Gate {
            state,
            identity,
            database,
            policy,
            generation,
            search_path: SearchPath::default(),
            refused: 0,
            audit,
            defined: Defined::default(),
            reading: Reading::new(encoding),
            masks,
            catalog_asked: None,
            masks_pending: false,
            catalog: None,
            cancel: Arc::default(),
            grants_version,
            grants_end,
            live,
            role: None,
            status: b'I',
        }
    }

    /// Locks the session in upstream `role`, which the server has just
    /// confirmed (reporting `parameters`).
    pub(crate) fn lock_role(&mut self, role: &str, parameters: &[(String, String)]) {
        let reported = parameters
            .iter()
            .filter(|(name, _)| ROLE_REPORTS.contains(&name.as_str()))
            .cloned()
            .collect();
        self.role = Some(RoleLock {
            role: Arc::from(role),
            reported,
            unconfirmed: None,
        });
        self.policy = self.policy.clone().with_role_lock();
    }

    pub(crate) fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// A result named a table the catalog does not know, or DDL ran: have
    /// the catalog read again (at most once a second).
    pub(crate) fn catalog_changed(&mut self) {
        if self
            .catalog_asked
            .is_some_and(|at| at.elapsed() < std::time::Duration::from_secs(1))
        {
            return;
        }
        self.catalog_asked = Some(std::time::Instant::now());
        self.state.catalogs.invalidate(&self.database);
        self.state.refresh_catalog(&self.database);
    }

    /// `analysis`, with every statement that calls a built-in function or
    /// operator by a name the database's users also defined made opaque:
    /// PostgreSQL picks the best match of all the overloads the search path
    /// shows, so the user's may be the one that runs.
    fn unshadow(&mut self, analysis: Arc<Analysis>) -> Arc<Analysis> {
        let version = self.state.catalogs.version(&self.database);
        if self.catalog.as_ref().is_none_or(|(_, v)| *v != version) {
            self.catalog = self.state.catalogs.latest(&self.database);
        }
        let Some((catalog, _)) = &self.catalog else {
            return analysis;
        };
        if catalog.user_functions.is_empty() && catalog.user_operators.is_empty() {
            return analysis;
        }
        let shadowed = |s: &Statement| -> Vec<String> {
            let functions = s.functions.iter().filter(|f| {
                !f.contains('.')
                    && vigil_sql::is_allowlisted(f)
                    && catalog.user_functions.contains(*f)
            });
            let operators = s
                .properties
                .operators
                .iter()
                .filter(|o| !o.contains('.') && catalog.user_operators.contains(*o));
            functions.chain(operators).cloned().collect()
        };
        if analysis.statements.iter().all(|s| shadowed(s).is_empty()) {
            return analysis;
        }
        let mut opened = (*analysis).clone();
        for statement in &mut opened.statements {
            let names = shadowed(statement);
            if !names.is_empty() {
                statement.class = Class::Unknown;
                statement.properties.opaque_functions.extend(names);
            }
        }
        Arc::new(opened)
    }

    /// Whether `analysis` reads or writes a relation the catalog does not
    /// know (created since it was read, by another session or outside
    /// Vigil), and the catalog may be read again for it now. Unknown, such
    /// a relation's columns could be masked ones Vigil cannot tell apart.
    fn names_unknown_relation(&mut self, analysis: &Analysis) -> bool {
        use vigil_sql::Kind;
        let version = self.state.catalogs.version(&self.database);
        if self.catalog.as_ref().is_none_or(|(_, v)| *v != version) {
            self.catalog = self.state.catalogs.latest(&self.database);
        }
        let Some((catalog, _)) = &self.catalog else {
            return false;
        };
        let unknown = analysis.statements.iter().any(|s| {
            let uses_relations = matches!(
                s.kind,
                Kind::Select
                    | Kind::Insert
                    | Kind::Update
                    | Kind::Delete
                    | Kind::Merge
                    | Kind::Copy
                    | Kind::DeclareCursor
                    | Kind::Explain
            );
            uses_relations
                && s.relations.iter().any(|r| {
                    let system = r.name.starts_with("pg_")
                        || matches!(
                            r.schema.as_deref(),
                            Some("pg_catalog" | "information_schema")
                        );
                    !system && catalog.named(&r.qualified_name()).is_empty()
                })
        });
        unknown && self.state.catalogs.force(&self.database)
    }

    /// The catalog read again: what a [`Gated::Reload`] waits for.
    pub(crate) fn reload_catalog(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        self.state.reload_catalog(&self.database)
    }

    fn asker(&self) -> Asker<'_> {
        Asker {
            state: &self.state,
            identity: &self.identity.name,
            database: &self.database,
            session_id: self.audit.session_id(),
        }
    }

    /// The text of `sql` as the server will read it, and its analysis; or
    /// why not now: it must wait, or it is refused (and recorded so).
    fn analyze<'a>(
        &mut self,
        sql: &'a [u8],
        place: Place,
        events: &mut Vec<AuditEvent>,
    ) -> Result<(Cow<'a, str>, Arc<Analysis>), Gated> {
        let refused =
            |gate: &mut Gate, rule: &'static str, error: Bytes, events: &mut Vec<AuditEvent>| {
                // Recorded as what Vigil knows of it: the bytes, read
                // leniently, kept out of the record when literals are.
                let mut analysis = opaque(String::from_utf8_lossy(sql).into_owned());
                analysis.statements[0].normalized = "<not analyzable>".into();
                let decided = Decided {
                    action: Action::Deny,
                    rule: Some(rule),
                    masked: &[],
                    approval: None,
                };
                gate.record(&Arc::new(analysis), &decided, events);
                Err(Gated::Checked(Checked::refuse(error)))
            };
        let text = match self.reading.read(sql, place.closed_through) {
            Ok(text) => text,
            Err(NotNow::Wait) if !place.skipped => return Err(Gated::Wait),
            Err(NotNow::Wait | NotNow::Uncertain) => {
                self.refused += 1;
                let error = integrity_refusal(
                    "42501",
                    vigil_policy::integrity::RULE_ID,
                    "this text would read differently if something earlier in the same batch changed standard_conforming_strings or client_encoding, and the server reports such a change only at the end of the batch",
                    "Send it after a Sync (in its own batch), or write it with ASCII only and E'…' strings for backslashes.",
                );
                return refused(self, vigil_policy::integrity::RULE_ID, error, events);
            }
            Err(NotNow::Unreadable(unreadable)) => {
                let (message, hint) = match unreadable {
                    Unreadable::Invalid { encoding } => (
                        format!("statement text is not valid in the client encoding {encoding}"),
                        "Send text in the session's client_encoding.".to_owned(),
                    ),
                    Unreadable::Undecoded { encoding } => (
                        format!("Vigil does not decode non-ASCII text in the client encoding {encoding}"),
                        "Use client_encoding UTF8, or keep statement texts to ASCII.".to_owned(),
                    ),
                };
                let error = self.refuse_unreadable("22021", &message, None, Some(&hint));
                return refused(self, "vigil.unreadable", error, events);
            }
        };
        match self.state.analyzer.analyze(&text) {
            Ok(analysis) if self.names_unknown_relation(&analysis) => Err(Gated::Reload),
            Ok(analysis) => Ok((text, self.unshadow(analysis))),
            Err(error) => {
                let error = self.refuse_analysis(&error);
                let refused = refused(self, "vigil.unreadable", error, events);
                refused.map_err(|gated| match gated {
                    Gated::Checked(mut checked) => {
                        checked.unreadable = true;
                        Gated::Checked(checked)
                    }
                    other => other,
                })
            }
        }
    }

    /// Decides `analysis`; with audit on and `events` given, its
    /// statements' events go there. A text sent to review is asked about
    /// now when `asking` says what runs (a Query); a Parse's is asked
    /// about at each Execute.
    fn decide(
        &mut self,
        analysis: &Arc<Analysis>,
        events: Option<&mut Vec<AuditEvent>>,
        asking: Option<Asking<'_>>,
        resolved: Option<&Resolved>,
    ) -> (Checked, Ruling) {
        self.refresh();
        let mut decision = self.policy.decide_on_path(analysis, &self.search_path);
        if let Some(index) = self.rolls_back_to_unconfirmed_role(analysis) {
            decision = vigil_policy::Decision {
                action: Action::Deny,
                rule: Some(vigil_policy::role_lock::unconfirmed_savepoint()),
                statement: Some(index),
            };
        } else if let Some(index) = self.runs_after_unseen_code(analysis) {
            decision = vigil_policy::Decision {
                action: Action::Deny,
                rule: Some(vigil_policy::role_lock::after_unseen_code()),
                statement: Some(index),
            };
        }
        // Preparing runs nothing: each execution is reviewed on its own.
        let prepares_only = analysis
            .statements
            .iter()
            .all(|s| matches!(s.kind, Kind::Prepare | Kind::Deallocate));
        if decision.action == Action::Review && prepares_only && asking.is_some() {
            decision.action = Action::Allow;
        }
        // What may run (now, or once approved) is masked.
        let may_run = matches!(decision.action, Action::Allow | Action::Review);
        let mut masked = None;
        let mut masking_refused = None;
        if self.masks_pending && may_run {
            masking_refused = Some((
                "vigil.masking.pending",
                "masking now applies to this session and Vigil is still reading the catalog; retry in a moment".to_owned(),
            ));
        }
        if let (true, Some(masks), None) = (may_run, self.masks.clone(), &masking_refused) {
            let mut statements = Vec::with_capacity(analysis.statements.len());
            for (i, statement) in analysis.statements.iter().enumerate() {
                let mut prepared = MaskedStatement::new(&masks, statement);
                if let Some(fetched) = fetched_masks(resolved, i) {
                    prepared.masks = fetched;
                }
                if let Some(refusal) = masks.refusal(statement, &prepared.masks) {
                    masking_refused = Some(refusal);
                    break;
                }
                statements.push(prepared);
            }
            masked = Some(statements);
        }
        let decided = match &masking_refused {
            Some((rule, _)) => Ruling {
                action: Action::Deny,
                rule: Some(Arc::from(*rule)),
                source: None,
            },
            None => Ruling {
                action: decision.action,
                rule: decision.rule.as_ref().map(|r| Arc::clone(&r.id)),
                source: decision.rule.clone(),
            },
        };
        let reviewed = match (decided.action, asking) {
            (Action::Review, Some(asking)) => Some(review::review(
                &self.asker(),
                decision.rule.as_ref(),
                analysis,
                &asking,
            )),
            _ => None,
        };
        let names = masked_names(masked.as_deref());
        let runs = events.and_then(|events| {
            let recorded = Decided {
                action: decided.action,
                rule: decided.rule.as_deref(),
                masked: &names,
                approval: reviewed.as_ref().and_then(Reviewed::id),
            };
            self.record(analysis, &recorded, events)
        });
        if let Some((rule, reason)) = masking_refused {
            self.refused += 1;
            warn!(rule, "statement refused by masking");
            return (Checked::refuse(masking_refusal(rule, &reason)), decided);
        }
        let runs_now = match (&reviewed, decision.action) {
            (Some(Reviewed::Refused { .. }), _) => false,
            (Some(_), _) | (None, Action::Allow) => true,
            // A Parse: nothing runs until an Execute is approved.
            (None, Action::Review) => true,
            (None, Action::Deny) => false,
        };
        if runs_now {
            for statement in &analysis.statements {
                self.search_path.note(statement);
            }
            if analysis.statements.iter().any(|s| s.class == Class::Ddl) && self.masks.is_some() {
                self.catalog_changed();
            }
            let mut checked = match reviewed {
                Some(reviewed) => Checked::reviewed(reviewed, runs),
                None => Checked::forward(runs),
            };
            checked.masks = masked;
            return (checked, decided);
        }
        self.refused += 1;
        let error = match reviewed {
            Some(Reviewed::Refused { error, .. }) => error,
            _ => refusal(&decision, analysis),
        };
        (Checked::refuse(error), decided)
    }

    /// Counts `analysis`'s statements; with audit on, their events and
    /// their numbers.
    fn record(
        &mut self,
        analysis: &Arc<Analysis>,
        decided: &Decided<'_>,
        events: &mut Vec<AuditEvent>,
    ) -> Option<Vec<u64>> {
        self.tally(analysis, decided.action);
        self.audit
            .enabled()
            .then(|| self.audit.statements(analysis, decided, events))
    }

    /// The server answered a statement: its latency and masked values are
    /// counted, and its completion recorded.
    pub(crate) fn completed(&self, done: super::owed::Completion) {
        let metrics = &self.state.metrics;
        metrics.upstream.observe(done.started.elapsed());
        let masked: u64 = done.masked.values().sum();
        if masked > 0 {
            metrics
                .masked_values
                .fetch_add(masked, std::sync::atomic::Ordering::Relaxed);
        }
        self.audit.completed(done);
    }

    /// Counts `analysis`'s statements for the metrics and the live session
    /// list, decided as `action`.
    fn tally(&self, analysis: &Arc<Analysis>, action: Action) {
        let metrics = &self.state.metrics;
        for statement in &analysis.statements {
            metrics.statement(&Counted {
                database: &self.database,
                identity: &self.identity.name,
                class: statement.class.as_str(),
                action,
                fingerprint: &statement.fingerprint,
                text: &statement.normalized,
            });
        }
        self.live.session().ran(analysis, action == Action::Deny);
    }

    /// Picks up a reloaded policy, a grant that started or ended, and a
    /// newly read catalog.
    fn refresh(&mut self) {
        let generation = self.state.generation();
        let grants_version = self.state.approvals.grants_version();
        let grant_ended = self.grants_end != vigil_audit::clock::Micros::MAX
            && vigil_audit::clock::now_micros() >= self.grants_end;
        let reloaded =
            generation != self.generation || grants_version != self.grants_version || grant_ended;
        if reloaded {
            self.generation = generation;
            self.grants_version = grants_version;
            let (policy, grants_end) = session_policy(&self.state, &self.identity, &self.database);
            self.grants_end = grants_end;
            if let Some(policy) = policy {
                self.policy = match self.role {
                    Some(_) => policy.with_role_lock(),
                    None => policy,
                };
            }
        }
        // Only a masked session asks about the catalog (a shared lock).
        let stale = self
            .masks
            .as_ref()
            .is_some_and(|m| m.catalog_version != self.state.catalogs.version(&self.database));
        if !reloaded && !stale && !self.masks_pending {
            return;
        }
        let snapshot = self.state.snapshot();
        let (groups, _) = session_groups(&self.state, &snapshot, &self.identity, &self.database);
        let subject = Subject {
            name: &self.identity.name,
            groups: &groups,
            kind: self.identity.kind.as_str(),
        };
        // A reload can exempt a running session, or start masking for one
        // that saw everything clear: it takes effect at its next statement.
        if !SessionMasks::applies(&snapshot.config, &subject, &self.database) {
            self.masks = None;
            self.masks_pending = false;
            return;
        }
        match self.state.catalogs.latest(&self.database) {
            Some((latest, version)) => {
                self.masks = SessionMasks::new(
                    &snapshot.config,
                    Arc::clone(&snapshot.masking),
                    &subject,
                    &self.database,
                    latest,
                    version,
                    &self.state.analyzer,
                )
                .map(Arc::new);
                self.masks_pending = false;
            }
            // Statements wait (refused) until the catalog is read.
            None => {
                self.masks_pending = true;
                self.state.refresh_catalog(&self.database);
            }
        }
    }

    fn refuse_analysis(&mut self, error: &AnalyzeError) -> Bytes {
        let position = match error {
            AnalyzeError::Syntax { position, .. } => *position,
            _ => None,
        };
        // A syntax error reads exactly as PostgreSQL's own would.
        let hint = match error {
            AnalyzeError::Syntax { .. } => None,
            AnalyzeError::TooDeep => {
                Some("Simplify the statement: Vigil does not forward what it cannot analyze.")
            }
            _ => Some("Vigil does not forward what it cannot analyze."),
        };
        let message = error.to_string();
        self.refuse_unreadable(error.sqlstate(), &message, position, hint)
    }

    fn refuse_unreadable(
        &mut self,
        code: &str,
        message: &str,
        position: Option<usize>,
        hint: Option<&str>,
    ) -> Bytes {
        self.refused += 1;
        info!(sqlstate = code, "statement not analyzable; refused");
        let mut report = Report::new(Severity::Error, code, message);
        report.hint = hint;
        if let Some(position) = position {
            report = report.position(position);
        }
        let mut out = BytesMut::new();
        backend::error_response(&mut out, &report);
        out.freeze()
    }
}

/// One statement of unknown class that Vigil cannot see into; `text` is
/// Vigil's own description of it, so it is its normalized form too.
fn opaque(text: String) -> Analysis {
    Analysis {
        statements: vec![Statement {
            normalized: text.clone(),
            text,
            kind: Kind::Other,
            class: Class::Unknown,
            inner_kinds: Vec::new(),
            relations: Vec::new(),
            columns: Vec::new(),
            functions: Vec::new(),
            properties: Properties::default(),
            outputs: None,
            filters: Vec::new(),
            written_from: Vec::new(),
            computed: Vec::new(),
            fingerprint: String::new(),
        }],
        tags: Default::default(),
    }
}

/// For the `i`th statement of a resolved text that fetches from a cursor:
/// what masking makes of the cursor's rows (unknown for a cursor Vigil
/// cannot vouch for).
fn fetched_masks(resolved: Option<&Resolved>, i: usize) -> Option<StatementMasks> {
    match resolved?.found.get(i)?.as_ref()? {
        Found::Portal(portal) => Some(portal.masks().unwrap_or_else(StatementMasks::unknown)),
        Found::Unknown => Some(StatementMasks::unknown()),
        Found::Statement(_) => None,
    }
}

/// Per statement, the masked columns it reads.
fn masked_names(masks: Option<&[MaskedStatement]>) -> Vec<Vec<String>> {
    masks
        .unwrap_or_default()
        .iter()
        .map(|m| m.masks.masked.clone())
        .collect()
}

/// The session's policy (`None` when its database left the configuration),
/// and when the first grant it was built with ends.
fn session_policy(
    state: &State,
    identity: &Identity,
    database: &str,
) -> (Option<SessionPolicy>, vigil_audit::clock::Micros) {
    let snapshot = state.snapshot();
    let (groups, grants_end) = session_groups(state, &snapshot, identity, database);
    let Some(db) = snapshot.config.database(database) else {
        return (None, grants_end);
    };
    let subject = Subject {
        name: &identity.name,
        groups: &groups,
        kind: identity.kind.as_str(),
    };
    let target = Target {
        name: &db.name,
        labels: &db.labels,
        default: db.default_action,
    };
    let policy = snapshot
        .config
        .compiled_policy
        .for_session(&subject, &target);
    (Some(policy), grants_end)
}

/// The identity's groups on `database` now: as configured (a reload that
/// moves someone out of a group takes effect in running sessions too), plus
/// those granted for a while; and when the first grant ends.
fn session_groups(
    state: &State,
    snapshot: &crate::state::Snapshot,
    identity: &Identity,
    database: &str,
) -> (Vec<String>, vigil_audit::clock::Micros) {
    let configured = snapshot.config.identity(&identity.name);
    let mut groups = configured.map_or(&identity.groups, |c| &c.groups).clone();
    let (granted, ends) = state.approvals.granted_groups(&identity.name, database);
    for group in granted {
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    (groups, ends)
}

/// For a session whose database vanished from the configuration.
fn deny_all() -> SessionPolicy {
    vigil_policy::Policy::default().for_session(
        &Subject {
            name: "",
            groups: &[],
            kind: "",
        },
        &Target {
            name: "",
            labels: &Default::default(),
            default: Action::Deny,
        },
    )
}
