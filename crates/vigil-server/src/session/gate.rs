//! The gate every statement passes before it is forwarded: the text is
//! analyzed with PostgreSQL's parser and the session's policy decides. A text
//! that cannot be read or analyzed is never forwarded.
//!
//! The gate answers with the ErrorResponse the client should get for a
//! refusal; the relay arranges for it to arrive where the server's answer to
//! that message would have.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tracing::{info, warn};
use vigil_audit::AuditEvent;
use vigil_policy::{Action, Rule, SearchPath, SessionPolicy, Subject, Target};
use vigil_sql::{Analysis, AnalyzeError, Class, Kind, Properties, Statement};
use vigil_wire::backend::{self, Report, Severity};

use super::audit::{Decided, SessionAudit};
use super::refusal::{masking_refusal, refusal};
use super::review::{self, Asker, Asking, Reviewed};
use crate::approvals::{BindParameters, CancelSignal, Wait};
use crate::live::Registration;
use crate::masking::{Prepared as MaskedStatement, SessionMasks};
use crate::metrics::Counted;
use crate::{Identity, State};

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
            runs,
            masks: None,
            hold: None,
        }
    }

    fn refuse(error: Bytes) -> Checked {
        Checked {
            verdict: Verdict::Refuse(error),
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

/// A statement prepared with Parse, as Execute will run it.
struct Prepared {
    analysis: Arc<Analysis>,
    rule: Option<Arc<str>>,
    /// The masked columns it reads.
    masked: Vec<Vec<String>>,
    /// Sent to review (by this rule, or the database default when `None`):
    /// each Execute is an approval request.
    review: Option<Option<Arc<Rule>>>,
    /// Its text, for approvers; kept only when it is reviewed.
    sql: Option<Arc<str>>,
}

/// A bound portal: the statement, and for a reviewed one the parameters.
#[derive(Clone)]
struct Portal {
    prepared: Arc<Prepared>,
    parameters: Option<Arc<BindParameters>>,
}

/// What the gate decided for a text.
struct Ruling {
    action: Action,
    rule: Option<Arc<str>>,
    /// The rule itself (a reviewing rule names approvers).
    source: Option<Arc<Rule>>,
}

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
    /// With audit on: prepared statements and bound portals by name, so an
    /// Execute is recorded as the statement it runs.
    prepared: HashMap<Vec<u8>, Arc<Prepared>>,
    portals: HashMap<Vec<u8>, Portal>,
    /// What this session's identity sees masked; `None`: everything clear.
    pub(crate) masks: Option<Arc<SessionMasks>>,
    /// When the catalog was last asked to be read again.
    catalog_asked: Option<std::time::Instant>,
    /// Masking applies since a reload, and the catalog is still being read.
    masks_pending: bool,
    /// In a masked session: what masking made of each declared cursor's query.
    cursors: HashMap<String, crate::masking::StatementMasks>,
    /// A CancelRequest for this session withdraws a held statement.
    pub(crate) cancel: Arc<CancelSignal>,
    /// The grants `policy` was built with: their version, and when the
    /// first of them ends.
    grants_version: u64,
    grants_end: vigil_audit::clock::Micros,
    /// The session as the admin API lists it.
    pub(crate) live: Registration,
}

impl Gate {
    pub(crate) fn new(
        state: Arc<State>,
        identity: Arc<Identity>,
        database: String,
        audit: SessionAudit,
        masks: Option<Arc<SessionMasks>>,
        live: Registration,
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
            prepared: HashMap::new(),
            portals: HashMap::new(),
            masks,
            catalog_asked: None,
            masks_pending: false,
            cursors: HashMap::new(),
            cancel: Arc::default(),
            grants_version,
            grants_end,
            live,
        }
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

    /// A simple-protocol Query's text.
    pub(crate) fn query(&mut self, sql: &[u8], events: &mut Vec<AuditEvent>) -> Checked {
        match self.analyze(sql, events) {
            Ok(analysis) => {
                // Analyzed, so UTF-8.
                let text = std::str::from_utf8(sql).unwrap_or_default();
                let asking = Asking {
                    sql: text,
                    parameters: None,
                };
                self.decide(&analysis, Some(events), Some(asking)).0
            }
            Err(refused) => refused,
        }
    }

    /// A Parse: decided now, recorded when an Execute runs it.
    pub(crate) fn parse(
        &mut self,
        name: &[u8],
        sql: &[u8],
        events: &mut Vec<AuditEvent>,
    ) -> Checked {
        self.prepared.remove(name);
        let analysis = match self.analyze(sql, events) {
            Ok(analysis) => analysis,
            Err(refused) => return refused,
        };
        let (checked, decision) = self.decide(&analysis, None, None);
        let rule = decision.rule;
        if let Verdict::Forward = checked.verdict {
            // Preparing runs nothing: a reviewed statement is asked about
            // at each Execute, with its parameters.
            let review = (decision.action == Action::Review).then_some(decision.source);
            // Kept even with audit off: each Execute is counted as the
            // statement it runs.
            {
                let masked = masked_names(checked.masks.as_deref());
                let sql = review
                    .is_some()
                    .then(|| Arc::from(String::from_utf8_lossy(sql).as_ref()));
                let prepared = Arc::new(Prepared {
                    analysis,
                    rule,
                    masked,
                    review,
                    sql,
                });
                self.prepared.insert(name.to_vec(), prepared);
            }
        } else {
            // Recorded now: no Execute will run it.
            let decided = Decided {
                action: decision.action,
                rule: rule.as_deref(),
                masked: &[],
                approval: None,
            };
            self.record(&analysis, &decided, events);
        }
        checked
    }

    /// A Bind (`body`) of `statement` into `portal`.
    pub(crate) fn bind(&mut self, portal: &[u8], statement: &[u8], body: &[u8]) {
        match self.prepared.get(statement) {
            Some(prepared) => {
                let parameters = match prepared.review {
                    Some(_) => crate::approvals::bind_parameters(body).map(Arc::new),
                    None => None,
                };
                let portal_entry = Portal {
                    prepared: Arc::clone(prepared),
                    parameters,
                };
                self.portals.insert(portal.to_vec(), portal_entry);
            }
            None => {
                self.portals.remove(portal);
            }
        }
    }

    /// An Execute of `portal`: the audited statement it runs, held or
    /// refused when it needs approval.
    pub(crate) fn execute(&mut self, portal: &[u8], events: &mut Vec<AuditEvent>) -> Checked {
        let bound = self.portals.get(portal).cloned();
        if let Some(Portal {
            prepared,
            parameters,
        }) = &bound
        {
            if let Some(rule) = &prepared.review {
                let asking = Asking {
                    sql: prepared.sql.as_deref().unwrap_or_default(),
                    parameters: parameters.as_deref(),
                };
                let reviewed =
                    review::review(&self.asker(), rule.as_ref(), &prepared.analysis, &asking);
                let decided = Decided {
                    action: Action::Review,
                    rule: prepared.rule.as_deref(),
                    masked: &prepared.masked,
                    approval: reviewed.id(),
                };
                let runs = self.record(&prepared.analysis, &decided, events);
                if let Reviewed::Refused { .. } = reviewed {
                    self.refused += 1;
                }
                return Checked::reviewed(reviewed, runs);
            }
        }
        let prepared = match bound {
            Some(portal) => portal.prepared,
            // A portal Vigil did not see bound (a cursor declared in SQL):
            // still recorded, as what Vigil knows of it.
            None => Arc::new(Prepared {
                analysis: Arc::new(opaque(format!(
                    "<execute of portal {:?}>",
                    String::from_utf8_lossy(portal)
                ))),
                rule: None,
                masked: Vec::new(),
                review: None,
                sql: None,
            }),
        };
        let decided = Decided {
            action: Action::Allow,
            rule: prepared.rule.as_deref(),
            masked: &prepared.masked,
            approval: None,
        };
        Checked::forward(self.record(&prepared.analysis, &decided, events))
    }

    fn asker(&self) -> Asker<'_> {
        Asker {
            state: &self.state,
            identity: &self.identity.name,
            database: &self.database,
            session_id: self.audit.session_id(),
        }
    }

    /// A Close of a statement (`kind` S) or a portal (P).
    pub(crate) fn close(&mut self, kind: u8, name: &[u8]) {
        match kind {
            b'S' => drop(self.prepared.remove(name)),
            _ => drop(self.portals.remove(name)),
        }
    }

    /// A fast-path FunctionCall: which function it runs is an OID the
    /// analyzer cannot see, so it counts as a statement of unknown class.
    pub(crate) fn function_call(&mut self, events: &mut Vec<AuditEvent>) -> Checked {
        // A function called by OID may return anything: fail closed.
        if self.masks.as_ref().is_some_and(|m| m.masks_columns()) {
            let analysis = Arc::new(opaque("<fast-path function call>".into()));
            let decided = Decided {
                action: Action::Deny,
                rule: Some("vigil.masking.unknown-lineage"),
                masked: &[],
                approval: None,
            };
            self.record(&analysis, &decided, events);
            self.refused += 1;
            return Checked::refuse(masking_refusal(
                "vigil.masking.unknown-lineage",
                "fast-path function calls may return masked values",
            ));
        }
        let analysis = Arc::new(opaque("<fast-path function call>".into()));
        let asking = Asking {
            sql: "<fast-path function call>",
            parameters: None,
        };
        self.decide(&analysis, Some(events), Some(asking)).0
    }

    /// The analysis of `sql`, or the refusal of a text that has none.
    fn analyze(
        &mut self,
        sql: &[u8],
        events: &mut Vec<AuditEvent>,
    ) -> Result<Arc<Analysis>, Checked> {
        let mut refused = |gate: &mut Gate, error: Bytes| {
            // Recorded as what Vigil knows of it: the bytes, read
            // leniently, kept out of the record when literals are.
            let mut analysis = opaque(String::from_utf8_lossy(sql).into_owned());
            analysis.statements[0].normalized = "<not analyzable>".into();
            let decided = Decided {
                action: Action::Deny,
                rule: Some("vigil.unreadable"),
                masked: &[],
                approval: None,
            };
            gate.record(&Arc::new(analysis), &decided, events);
            Err(Checked::refuse(error))
        };
        let Ok(text) = std::str::from_utf8(sql) else {
            let error = self.refuse_unreadable(
                "22021",
                "statement text is not valid UTF-8",
                None,
                Some("Vigil reads SQL as UTF-8: connect with client_encoding=UTF8."),
            );
            return refused(self, error);
        };
        match self.state.analyzer.analyze(text) {
            Ok(analysis) => Ok(analysis),
            Err(error) => {
                let error = self.refuse_analysis(&error);
                refused(self, error)
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
    ) -> (Checked, Ruling) {
        self.refresh();
        let decision = self.policy.decide_on_path(analysis, &self.search_path);
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
            for statement in &analysis.statements {
                let mut prepared = MaskedStatement::new(&masks, statement);
                self.cursor(statement, &mut prepared);
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

    /// A cursor's rows are the rows of the query it was declared for: a
    /// FETCH is masked as that query, and as a source Vigil cannot know
    /// when the cursor was not declared in this session's sight.
    fn cursor(&mut self, statement: &Statement, prepared: &mut MaskedStatement) {
        // SQL EXECUTE runs a statement PREPAREd in SQL, which Vigil does
        // not follow: its results' sources are unknown.
        if statement.kind == Kind::Execute {
            prepared.masks = crate::masking::StatementMasks::unknown();
            return;
        }
        let Some(name) = &statement.properties.cursor else {
            return;
        };
        match statement.kind {
            // PostgreSQL refuses to declare a name that is open: the open
            // cursor's rows then come under the masks of neither.
            Kind::DeclareCursor if self.cursors.contains_key(name) => {
                self.cursors
                    .insert(name.clone(), crate::masking::StatementMasks::unknown());
            }
            Kind::DeclareCursor => {
                self.cursors.insert(name.clone(), prepared.masks.clone());
            }
            Kind::Fetch => {
                prepared.masks = self
                    .cursors
                    .get(name)
                    .cloned()
                    .unwrap_or_else(crate::masking::StatementMasks::unknown);
            }
            Kind::ClosePortal if name.is_empty() => self.cursors.clear(),
            Kind::ClosePortal => {
                self.cursors.remove(name);
            }
            _ => {}
        }
    }

    /// The session is idle outside a transaction: cursors declared without
    /// HOLD are gone. A held one fetched later counts as unknown.
    pub(crate) fn transaction_ended(&mut self) {
        self.cursors.clear();
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
                self.policy = policy;
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
