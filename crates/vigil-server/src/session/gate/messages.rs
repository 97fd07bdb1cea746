//! The gate's entry points, one per client message that runs or names
//! something (Query, Parse, Bind, Execute, Close, FunctionCall), and what
//! the server's answers tell it.
//!
//! Every name a message uses is looked up as the server holds it for that
//! message (`defined`): unsettled, the message waits; unknown, it is refused.
//! Every name a message defines counts only once the server confirms it.

use std::sync::Arc;

use vigil_audit::AuditEvent;
use vigil_policy::Action;
use vigil_sql::{Analysis, Class, Kind, Statement};

use super::{opaque, Checked, Decided, Gate, Gated, Place, Verdict};
use crate::approvals::bind_parameters;
use crate::masking::{parse_bind, Masker, Prepared as MaskedStatement};
use crate::session::defined::{
    with_prepared, Cursor, Found, Portal, Prepared, Reference, Resolved,
};
use crate::session::names::{At, Change, Lookup};
use crate::session::owed::Event;
use crate::session::refusal::integrity_refusal;
use crate::session::relay::End;
use crate::session::review::{self, Asking, Reviewed};

/// Whether running `analysis` runs code Vigil cannot see into: a function
/// it does not know, a DO block, a CALL.
fn runs_unseen(analysis: &Analysis) -> bool {
    analysis.statements.iter().any(statement_runs_unseen)
}

/// Whether `statement` runs code Vigil cannot see into.
pub(super) fn statement_runs_unseen(statement: &Statement) -> bool {
    statement.class == Class::Unknown || !statement.properties.opaque_functions.is_empty()
}

/// The rule id of refusals of names Vigil cannot vouch for.
const SESSION_STATE: &str = "vigil.session-state";

/// A text whose names are resolved: what to decide on, and what to ask
/// approvers about.
struct Effective {
    analysis: Arc<Analysis>,
    resolved: Resolved,
    /// What the `PREPARE`s and `DECLARE`s of the text define, by statement.
    defines: Vec<Option<Arc<Prepared>>>,
    declares: Vec<Option<Portal>>,
    /// The text, with the prepared statements it executes spelled out;
    /// `None` when it executes none.
    asked: Option<String>,
}

impl Gate {
    /// A simple-protocol Query's text.
    pub(crate) fn query(
        &mut self,
        sql: &[u8],
        place: Place,
        events: &mut Vec<AuditEvent>,
    ) -> Gated {
        let (text, analysis) = match self.analyze(sql, place, events) {
            Ok(read) => read,
            Err(gated) => return gated,
        };
        match self.decide_as_named_now(&analysis, &text, None, place, events) {
            Ok((checked, effective)) => {
                if let Verdict::Forward = checked.verdict {
                    self.ran(&effective, place);
                }
                checked.into()
            }
            Err(gated) => gated,
        }
    }

    /// Decides `analysis` (read from `text`) with the names it runs as
    /// they are now, asking approvers about what it really runs; what it
    /// defines is staged if it may go. Returns the decision and the
    /// analysis decided on.
    fn decide_as_named_now(
        &mut self,
        analysis: &Arc<Analysis>,
        text: &str,
        parameters: Option<&crate::approvals::BindParameters>,
        place: Place,
        events: &mut Vec<AuditEvent>,
    ) -> Result<(Checked, Arc<Analysis>), Gated> {
        let effective = self.effective(analysis, place, text, events)?;
        let asking = Asking {
            sql: effective.asked.as_deref().unwrap_or(text),
            parameters,
        };
        let (checked, _) = self.decide(
            &effective.analysis,
            Some(events),
            Some(asking),
            Some(&effective.resolved),
        );
        if let Verdict::Forward = checked.verdict {
            self.stage_all(&effective, place);
        }
        Ok((checked, effective.analysis))
    }

    /// A message at `place` that runs `analysis` is being forwarded.
    fn ran(&mut self, analysis: &Analysis, place: Place) {
        self.reading.runs(place.stamp.request);
        if runs_unseen(analysis) {
            self.ran_unseen(place.stamp.epoch);
        }
    }

    /// A Parse: decided now, recorded when an Execute runs it; `name`
    /// holds it once the server says ParseComplete.
    pub(crate) fn parse(
        &mut self,
        name: &[u8],
        sql: &[u8],
        place: Place,
        events: &mut Vec<AuditEvent>,
    ) -> Gated {
        let (text, analysis) = match self.analyze(sql, place, events) {
            Ok(read) => read,
            Err(gated) => return gated,
        };
        if analysis
            .statements
            .iter()
            .any(|s| s.properties.bound_settings)
        {
            // Preparing runs nothing; what it would change is judged at
            // each Bind, where the values are known.
            let sql: Arc<str> = Arc::from(text.as_ref());
            let prepared = Arc::new(Prepared {
                analysis,
                rule: None,
                masked: Vec::new(),
                review: None,
                source: Arc::clone(&sql),
                sql,
                masks: self
                    .masks
                    .as_ref()
                    .map(|_| Arc::new(MaskedStatement::unknown())),
                refers: false,
                bound_settings: true,
            });
            self.defined.statements.stage(
                At::message(place.stamp.request),
                place.stamp.epoch,
                Change::Define(name.to_vec(), prepared),
            );
            return Checked::forward(None).into();
        }
        let (mut checked, decision) = self.decide(&analysis, None, None, None);
        let rule = decision.rule;
        if let Verdict::Forward = checked.verdict {
            // Preparing runs nothing: a reviewed statement is asked about
            // at each Execute, with its parameters.
            let review = (decision.action == Action::Review).then_some(decision.source);
            let masked = super::masked_names(checked.masks.as_deref());
            let refers = analysis.statements.iter().any(Reference::late);
            let masks = checked
                .masks
                .take()
                .and_then(|m| m.into_iter().next())
                // Decided again, and masked as decided, at each Execute.
                .map(|m| {
                    if refers {
                        MaskedStatement::unknown()
                    } else {
                        m
                    }
                })
                .map(Arc::new);
            let sql: Arc<str> = Arc::from(text.as_ref());
            let prepared = Arc::new(Prepared {
                analysis,
                rule,
                masked,
                review,
                source: Arc::clone(&sql),
                sql,
                masks,
                refers,
                bound_settings: false,
            });
            self.defined.statements.stage(
                At::message(place.stamp.request),
                place.stamp.epoch,
                Change::Define(name.to_vec(), prepared),
            );
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
        checked.into()
    }

    /// A Bind (`body`) of `statement` into `portal`.
    pub(crate) fn bind(
        &mut self,
        portal: &[u8],
        statement: &[u8],
        body: &[u8],
        place: Place,
        events: &mut Vec<AuditEvent>,
    ) -> Gated {
        let prepared = match self
            .defined
            .statement(statement, place.stamp.epoch, place.fresh)
        {
            Lookup::Known(prepared) => Arc::clone(prepared),
            Lookup::Unsettled if !place.skipped => return Gated::Wait,
            Lookup::Unknown | Lookup::Unsettled => {
                let what = format!(
                    "prepared statement {:?}",
                    String::from_utf8_lossy(statement)
                );
                return self.unknown_name("26000", &what, "<bind>", events).into();
            }
        };
        let rebound = prepared.bound_settings;
        let prepared = match rebound {
            false => prepared,
            true => match self.decide_bound(&prepared, body, events) {
                Ok(bound) => bound,
                Err(refused) => return refused.into(),
            },
        };
        let parameters = match prepared.review {
            Some(_) => bind_parameters(body).map(Arc::new),
            None => None,
        };
        let formats = match (&self.masks, parse_bind(body)) {
            (Some(_), Some((_, _, formats))) => formats,
            _ => Vec::new(),
        };
        let bound = Portal::Bound {
            prepared,
            parameters,
            statement: statement.to_vec(),
            formats,
            rebound,
        };
        self.defined.portals.stage(
            At::message(place.stamp.request),
            place.stamp.epoch,
            Change::Define(portal.to_vec(), bound),
        );
        // Binding converts parameters with their types' input functions.
        self.reading.runs(place.stamp.request);
        Checked::forward(None).into()
    }

    /// `prepared`, whose `set_config` takes bind parameters, decided with
    /// the values of this Bind (`body`) in place of the parameters: as a
    /// Parse of that text would be. The refusal when it would be refused.
    fn decide_bound(
        &mut self,
        prepared: &Prepared,
        body: &[u8],
        events: &mut Vec<AuditEvent>,
    ) -> Result<Arc<Prepared>, Checked> {
        let text = bind_parameters(body)
            .and_then(|parameters| parameters.texts)
            .and_then(|texts| {
                let values: Vec<Option<&str>> = texts.iter().map(|v| v.as_deref()).collect();
                vigil_sql::with_parameters(&prepared.sql, &values)
            });
        let Some(text) = text else {
            self.refused += 1;
            return Err(Checked::refuse(integrity_refusal(
                "42501",
                vigil_policy::integrity::RULE_ID,
                "a set_config here takes its setting or value from a bind parameter Vigil cannot read as text",
                "Bind the setting's name and value as text.",
            )));
        };
        let analysis = match self.state.analyzer.analyze(&text) {
            Ok(analysis) => self.unshadow(analysis),
            Err(error) => return Err(Checked::refuse(self.refuse_analysis(&error))),
        };
        let (mut checked, decision) = self.decide(&analysis, None, None, None);
        if let Verdict::Refuse(_) = checked.verdict {
            let decided = Decided {
                action: decision.action,
                rule: decision.rule.as_deref(),
                masked: &[],
                approval: None,
            };
            self.record(&analysis, &decided, events);
            return Err(checked);
        }
        let review = (decision.action == Action::Review).then_some(decision.source);
        let masked = super::masked_names(checked.masks.as_deref());
        let masks = checked
            .masks
            .take()
            .and_then(|m| m.into_iter().next())
            .map(Arc::new);
        Ok(Arc::new(Prepared {
            refers: analysis.statements.iter().any(Reference::late),
            analysis,
            rule: decision.rule,
            masked,
            review,
            sql: Arc::clone(&prepared.sql),
            source: Arc::clone(&prepared.source),
            masks,
            bound_settings: false,
        }))
    }

    /// An Execute of `portal`: the audited statement it runs, held or
    /// refused when it needs approval.
    pub(crate) fn execute(
        &mut self,
        portal: &[u8],
        place: Place,
        events: &mut Vec<AuditEvent>,
    ) -> Gated {
        let found = match self.defined.portal(portal, place.stamp.epoch, place.fresh) {
            Lookup::Known(found) => found.clone(),
            Lookup::Unsettled if !place.skipped => return Gated::Wait,
            Lookup::Unknown | Lookup::Unsettled => {
                let what = format!("portal {:?}", String::from_utf8_lossy(portal));
                return self
                    .unknown_name("34000", &what, "<execute>", events)
                    .into();
            }
        };
        let (gated, runs) = match found {
            Portal::Cursor(cursor) => (self.execute_cursor(portal, &cursor, events), None),
            Portal::Bound {
                prepared,
                parameters,
                rebound,
                ..
            } => {
                let mut gated = self.execute_bound(&prepared, parameters.as_deref(), place, events);
                if let (true, Gated::Checked(checked), Some(masks)) =
                    (rebound, &mut gated, &prepared.masks)
                {
                    checked.masks = Some(vec![(**masks).clone()]);
                }
                (gated, Some(prepared))
            }
        };
        if let Gated::Checked(Checked {
            verdict: Verdict::Forward,
            ..
        }) = &gated
        {
            self.reading.runs(place.stamp.request);
            if runs.is_some_and(|p| runs_unseen(&p.analysis)) {
                self.ran_unseen(place.stamp.epoch);
            }
        }
        gated
    }

    fn execute_bound(
        &mut self,
        prepared: &Arc<Prepared>,
        parameters: Option<&crate::approvals::BindParameters>,
        place: Place,
        events: &mut Vec<AuditEvent>,
    ) -> Gated {
        // It runs other names (EXECUTE, FETCH): decided now, as they are now.
        if prepared.refers {
            return match self.decide_as_named_now(
                &prepared.analysis,
                &prepared.sql,
                parameters,
                place,
                events,
            ) {
                Ok((checked, _)) => checked.into(),
                Err(gated) => gated,
            };
        }
        let checked = match &prepared.review {
            Some(rule) => {
                let asking = Asking {
                    sql: &prepared.sql,
                    parameters,
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
                Checked::reviewed(reviewed, runs)
            }
            None => {
                let decided = Decided {
                    action: Action::Allow,
                    rule: prepared.rule.as_deref(),
                    masked: &prepared.masked,
                    approval: None,
                };
                Checked::forward(self.record(&prepared.analysis, &decided, events))
            }
        };
        if let Verdict::Forward = checked.verdict {
            // What a prepared PREPARE, DECLARE, DEALLOCATE … defines.
            let effective = self.definitions(&prepared.analysis, &prepared.source);
            for (i, statement) in prepared.analysis.statements.iter().enumerate() {
                let defines = effective.0.get(i).cloned().flatten();
                let declares = effective.1.get(i).cloned().flatten();
                self.defined
                    .stage(statement, place.stamp, i as u32, defines, declares);
            }
        }
        checked.into()
    }

    /// An Execute of a cursor declared in SQL: a fetch from it.
    fn execute_cursor(
        &mut self,
        portal: &[u8],
        cursor: &Cursor,
        events: &mut Vec<AuditEvent>,
    ) -> Gated {
        let text = format!("<execute of cursor {:?}>", String::from_utf8_lossy(portal));
        let mut fetch = opaque(text.clone()).statements.remove(0);
        fetch.kind = Kind::Fetch;
        fetch.class = Class::Read;
        fetch.relations = cursor.declared.relations.clone();
        fetch.properties.cursor = Some(String::from_utf8_lossy(portal).into_owned());
        let analysis = Arc::new(Analysis {
            statements: vec![fetch],
            tags: Default::default(),
        });
        let asking = Asking {
            sql: &text,
            parameters: None,
        };
        let resolved = Resolved {
            found: vec![Some(Found::Portal(Portal::Cursor(Arc::new(Cursor {
                declared: cursor.declared.clone(),
                masks: cursor.masks.clone(),
                hold: cursor.hold,
                source: Arc::clone(&cursor.source),
            }))))],
        };
        self.decide(&analysis, Some(events), Some(asking), Some(&resolved))
            .0
            .into()
    }

    /// A Close of a statement (`kind` S) or a portal (P): gone once the
    /// server says CloseComplete.
    pub(crate) fn close(&mut self, kind: u8, name: &[u8], place: Place) -> Gated {
        let at = At::message(place.stamp.request);
        let epoch = place.stamp.epoch;
        match kind {
            b'S' => self
                .defined
                .statements
                .stage(at, epoch, Change::Remove(name.to_vec())),
            _ => self
                .defined
                .portals
                .stage(at, epoch, Change::Remove(name.to_vec())),
        }
        Checked::forward(None).into()
    }

    /// A fast-path FunctionCall: which function it runs is an OID the
    /// analyzer cannot see, so it counts as a statement of unknown class.
    pub(crate) fn function_call(&mut self, place: Place, events: &mut Vec<AuditEvent>) -> Gated {
        let analysis = Arc::new(opaque("<fast-path function call>".into()));
        // A function called by OID may return anything: fail closed.
        if self.masks.as_ref().is_some_and(|m| m.masks_columns()) {
            let decided = Decided {
                action: Action::Deny,
                rule: Some("vigil.masking.unknown-lineage"),
                masked: &[],
                approval: None,
            };
            self.record(&analysis, &decided, events);
            self.refused += 1;
            return Checked::refuse(crate::session::refusal::masking_refusal(
                "vigil.masking.unknown-lineage",
                "fast-path function calls may return masked values",
            ))
            .into();
        }
        let asking = Asking {
            sql: "<fast-path function call>",
            parameters: None,
        };
        let checked = self.decide(&analysis, Some(events), Some(asking), None).0;
        if let Verdict::Forward = checked.verdict {
            self.ran(&analysis, place);
        }
        checked.into()
    }

    /// What the server's answer to the requests tells: a change made or
    /// not, the server ready again (`status`: its transaction status).
    pub(crate) fn heard(&mut self, event: Event, status: u8, masker: Option<&mut Masker>) {
        match event {
            Event::Done(at) => self.defined.confirm(at, masker),
            Event::Failed { at, epoch, to_sync } => self.defined.fail(at, epoch, to_sync),
            Event::Ready { through } => {
                self.status = status;
                self.defined.ready(through, status == b'I');
                self.reading.ready(through);
            }
        }
    }

    /// Whether Vigil must ask the server which names it holds now
    /// (`waiting`: a message waits for that).
    pub(crate) fn wants_verification(&self, waiting: bool) -> bool {
        self.defined.wants_verification(waiting) || self.role_wants_confirmation()
    }

    /// The server's answer to the question about names (`None`: it could
    /// not be asked). Returns why the session cannot go on, if it cannot.
    pub(crate) fn verified(
        &mut self,
        held: Option<&[crate::session::defined::HeldName]>,
    ) -> Option<End> {
        self.defined
            .verified(held)
            .err()
            .map(End::Unsafe)
            .or_else(|| self.role_confirmed(held).map(End::RoleChanged))
    }

    /// The server reported a parameter. Returns why the session can no
    /// longer be followed, if it cannot.
    pub(crate) fn parameter_status(&mut self, name: &str, value: &str) -> Option<End> {
        if name != "client_encoding" {
            return self.role_reported(name, value).map(End::RoleChanged);
        }
        if !self.reading.encoding_changed(value) {
            return Some(End::Unsafe(format!("client_encoding is {value}")));
        }
        let encoding = self.reading.encoding();
        self.audit
            .set_client_encoding((!encoding.is_utf8()).then(|| encoding.name().to_owned()));
        None
    }

    /// `analysis` with the names its statements run resolved, as a message
    /// at `place` sees them; `text` is what it was read from. Waits while a
    /// name is unsettled; refuses a name Vigil cannot vouch for.
    fn effective(
        &mut self,
        analysis: &Arc<Analysis>,
        place: Place,
        text: &str,
        events: &mut Vec<AuditEvent>,
    ) -> Result<Effective, Gated> {
        if !analysis.statements.iter().any(Reference::names_anything) {
            return Ok(Effective {
                analysis: Arc::clone(analysis),
                resolved: Resolved { found: Vec::new() },
                defines: Vec::new(),
                declares: Vec::new(),
                asked: None,
            });
        }
        let (defines, declares) = self.definitions(analysis, text);
        let resolved = match self.defined.resolve(
            analysis,
            place.stamp.epoch,
            place.fresh,
            &defines,
            &declares,
        ) {
            Some(resolved) => resolved,
            None if !place.skipped => return Err(Gated::Wait),
            // Discarded by the server anyway: refused rather than waited for.
            None => Resolved {
                found: analysis
                    .statements
                    .iter()
                    .map(|s| Reference::late(s).then_some(Found::Unknown))
                    .collect(),
            },
        };
        let mut asked = None;
        let mut statements = None;
        for (i, found) in resolved.found.iter().enumerate() {
            let statement = &analysis.statements[i];
            let Reference::Runs(name) = Reference::of(statement) else {
                continue;
            };
            match found {
                Some(Found::Statement(prepared)) => {
                    let Some(run) = prepared.analysis.statements.first() else {
                        continue;
                    };
                    asked
                        .get_or_insert_with(|| text.to_owned())
                        .push_str(&format!("\n-- {name}: {}", prepared.sql));
                    statements.get_or_insert_with(|| analysis.statements.clone())[i] =
                        with_prepared(statement, run);
                }
                _ => {
                    let what = format!("prepared statement {name:?}");
                    return Err(self
                        .unknown_name("26000", &what, &statement.text, events)
                        .into());
                }
            }
        }
        let analysis = match statements {
            Some(statements) => Arc::new(Analysis {
                statements,
                tags: analysis.tags.clone(),
            }),
            None => Arc::clone(analysis),
        };
        Ok(Effective {
            analysis,
            resolved,
            defines,
            declares,
            asked,
        })
    }

    /// By statement of `analysis` (read from the message text `source`):
    /// what a `PREPARE` among them defines, and what a `DECLARE` declares.
    fn definitions(
        &mut self,
        analysis: &Analysis,
        source: &str,
    ) -> (Vec<Option<Arc<Prepared>>>, Vec<Option<Portal>>) {
        let mut defines = Vec::new();
        let mut declares = Vec::new();
        for statement in &analysis.statements {
            match Reference::of(statement) {
                Reference::Prepares(_) => {
                    let prepared = self.prepared_by(statement, source);
                    defines.push(prepared);
                    declares.push(None);
                }
                Reference::Declares(_) => {
                    let masks = self
                        .masks
                        .as_ref()
                        .map(|m| MaskedStatement::new(m, statement).masks);
                    defines.push(None);
                    declares.push(Some(Portal::Cursor(Arc::new(Cursor {
                        declared: statement.clone(),
                        masks,
                        hold: statement.properties.hold,
                        source: Arc::from(source),
                    }))));
                }
                _ => {
                    defines.push(None);
                    declares.push(None);
                }
            }
        }
        (defines, declares)
    }

    /// The statement a SQL `PREPARE` defines, decided as a Parse of it
    /// would be; `None` when Vigil cannot read it (the name then holds
    /// something Vigil cannot vouch for).
    fn prepared_by(&mut self, prepare: &Statement, source: &str) -> Option<Arc<Prepared>> {
        let sql = vigil_sql::prepared_statement_text(&prepare.text)?;
        let analysis = self.state.analyzer.analyze(sql).ok()?;
        let analysis = self.unshadow(analysis);
        let decision = self.policy.decide_on_path(&analysis, &self.search_path);
        let review = match decision.action {
            Action::Deny => return None,
            Action::Review => Some(decision.rule.clone()),
            Action::Allow => None,
        };
        let masks = self.masks.as_ref().and_then(|m| {
            analysis
                .statements
                .first()
                .map(|s| Arc::new(MaskedStatement::new(m, s)))
        });
        let masked = masks
            .as_ref()
            .map(|m| vec![m.masks.masked.clone()])
            .unwrap_or_default();
        Some(Arc::new(Prepared {
            refers: analysis.statements.iter().any(Reference::late),
            rule: decision.rule.as_ref().map(|r| Arc::clone(&r.id)),
            analysis,
            masked,
            review,
            sql: Arc::from(sql),
            source: Arc::from(source),
            masks,
            bound_settings: false,
        }))
    }

    /// Stages what the statements of a text that is being forwarded define.
    fn stage_all(&mut self, effective: &Effective, place: Place) {
        for (i, statement) in effective.analysis.statements.iter().enumerate() {
            let defines = effective.defines.get(i).cloned().flatten();
            let declares = effective.declares.get(i).cloned().flatten();
            self.defined
                .stage(statement, place.stamp, i as u32, defines, declares);
        }
    }

    /// The refusal of a message that uses `what`, a name Vigil cannot vouch
    /// for: never defined in its sight, or defined by code it could not
    /// see into. `code` is the SQLSTATE the server gives a missing one.
    fn unknown_name(
        &mut self,
        code: &str,
        what: &str,
        text: &str,
        events: &mut Vec<AuditEvent>,
    ) -> Checked {
        self.refused += 1;
        let analysis = Arc::new(opaque(text.to_owned()));
        let decided = Decided {
            action: Action::Deny,
            rule: Some(SESSION_STATE),
            masked: &[],
            approval: None,
        };
        self.record(&analysis, &decided, events);
        let reason =
            format!("{what} was not defined in this session where Vigil could see what it holds");
        Checked::refuse(integrity_refusal(
            code,
            SESSION_STATE,
            &reason,
            "Prepare statements and declare cursors with Parse, PREPARE or DECLARE in this session; what functions define cannot be run by name.",
        ))
    }
}
