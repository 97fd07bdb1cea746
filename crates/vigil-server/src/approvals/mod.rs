//! Approval requests and just-in-time grants: the registry every session and
//! the admin API share.
//!
//! A statement the policy sends to `review` becomes a request. In `hold`
//! mode its session waits on a channel the registry answers when approvers
//! decide, the request expires, or the client withdraws it; in `refuse` mode
//! the statement is refused and a later byte-identical run by the same
//! identity claims the approval, once. A grant request, once approved, puts
//! its identity in a group on a database until it expires.
//!
//! Every step is an `approval.<action>` audit event (docs/approvals.md) and
//! goes to the webhooks. Nothing a webhook answers reaches back here.
//! Requests live in memory: a restart withdraws what was pending (the
//! sessions that waited are gone too) and ends grants early.

mod binding;
mod wait;
pub(crate) mod webhook;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::oneshot;
use vigil_audit::clock::{self, Micros};
use vigil_audit::{Approval as ApprovalEvent, AuditEvent, AuditLog};
use vigil_config::{Approvals as ApprovalSettings, Webhook};
use vigil_policy::{ApprovalMode, Approvers};

pub(crate) use binding::{bind_parameters, binding, hex, statements, BindParameters};
pub(crate) use wait::{CancelSignal, Wait};
use webhook::Notifier;

/// Decided requests kept for the API after they are done.
const KEEP_DECIDED: usize = 10_000;
/// How often expiries are looked for.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// How a held statement's request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Approved,
    Denied {
        by: String,
        reason: String,
    },
    Expired {
        after_secs: u64,
    },
    /// Cancelled or disconnected (or the registry went away).
    Withdrawn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestState {
    Pending,
    Approved,
    Denied,
    Expired,
    Withdrawn,
    Executed,
}

impl RequestState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Approved => "approved",
            RequestState::Denied => "denied",
            RequestState::Expired => "expired",
            RequestState::Withdrawn => "withdrawn",
            RequestState::Executed => "executed",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Option<RequestState>> {
        Some(Some(match text {
            "pending" => RequestState::Pending,
            "approved" => RequestState::Approved,
            "denied" => RequestState::Denied,
            "expired" => RequestState::Expired,
            "withdrawn" => RequestState::Withdrawn,
            "executed" => RequestState::Executed,
            "all" => return Some(None),
            _ => return None,
        }))
    }
}

/// What a statement request asks to run.
pub(crate) struct StatementAsk {
    pub(crate) session_id: u64,
    pub(crate) mode: ApprovalMode,
    pub(crate) sql: String,
    /// Text values, `\x<hex>` for binary ones, `None` for NULL.
    pub(crate) parameters: Vec<Option<String>>,
    pub(crate) binding: String,
    pub(crate) statements: Value,
}

/// The group a grant request asks to join.
#[derive(Debug, Clone)]
pub(crate) struct GrantAsk {
    pub(crate) group: String,
    pub(crate) duration_secs: u64,
}

enum Ask {
    Statement(StatementAsk),
    Grant(GrantAsk),
}

/// A new request: who asks, where, under which rules, approved by whom.
pub(crate) struct NewRequest {
    pub(crate) requester: String,
    pub(crate) database: String,
    pub(crate) rules: Vec<String>,
    pub(crate) approvers: Approvers,
    pub(crate) timeout: Duration,
    pub(crate) reason: Option<String>,
}

struct Vote {
    by: String,
    reason: String,
    at: Micros,
}

struct Request {
    id: String,
    ask: Ask,
    new: NewRequest,
    state: RequestState,
    approvals: Vec<Vote>,
    denial: Option<Vote>,
    created_at: Micros,
    expires_at: Micros,
    decided_at: Option<Micros>,
    /// Refuse mode, approved: the run must come before this.
    run_until: Option<Micros>,
    /// Hold mode: the waiting session.
    waiter: Option<oneshot::Sender<Outcome>>,
    /// A grant request, approved: when the membership ends.
    grant_ends: Option<Micros>,
}

/// Membership of a group on a database, until it expires.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub(crate) identity: String,
    pub(crate) group: String,
    pub(crate) database: String,
    pub(crate) approval_id: String,
    pub(crate) expires_at: Micros,
}

/// Someone deciding on a request, as their token says.
pub(crate) struct Approver<'a> {
    pub(crate) name: &'a str,
    pub(crate) groups: &'a [String],
}

/// Why the registry refused an API call; the status code is the admin API's.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) message: String,
}

fn refusal(status: u16, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

/// What a refuse-mode statement gets.
pub(crate) enum Claim {
    /// An approval for exactly this statement: it runs now, under this id.
    Run(String),
    /// Refused; the request (new, or the one still pending) has this id.
    Refused(String),
}

#[derive(Default)]
struct Inner {
    requests: HashMap<String, Request>,
    /// Ids in creation order, for listing and pruning.
    order: Vec<String>,
    grants: Vec<Grant>,
}

pub(crate) struct Approvals {
    inner: Mutex<Inner>,
    /// Changes whenever grants do: sessions then look at their groups again.
    grants_version: AtomicU64,
    audit: AuditLog,
    notifier: Notifier,
}

impl Approvals {
    /// The registry, with a thread of its own that expires requests and grants.
    pub(crate) fn start(audit: AuditLog, hooks: &[Webhook]) -> Arc<Approvals> {
        let approvals = Arc::new(Approvals {
            inner: Mutex::new(Inner::default()),
            grants_version: AtomicU64::new(0),
            audit,
            notifier: Notifier::start(hooks),
        });
        let weak = Arc::downgrade(&approvals);
        let _ = std::thread::Builder::new()
            .name("vigil-approvals".into())
            .spawn(move || sweep_while_alive(weak));
        approvals
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A hold-mode request: its id, and the channel its outcome comes on.
    pub(crate) fn hold(
        &self,
        new: NewRequest,
        ask: StatementAsk,
        max_pending: usize,
    ) -> Result<(String, oneshot::Receiver<Outcome>), Refusal> {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.lock();
        check_room(&inner, max_pending)?;
        let id = self.insert(&mut inner, new, Ask::Statement(ask), Some(tx));
        Ok((id, rx))
    }

    /// A refuse-mode statement: runs under an approval for exactly it, or
    /// is refused under a request (the pending one for it, or a new one).
    pub(crate) fn claim(
        &self,
        new: NewRequest,
        ask: StatementAsk,
        max_pending: usize,
    ) -> Result<Claim, Refusal> {
        let now = clock::now_micros();
        let mut inner = self.lock();
        let same = |r: &Request| {
            r.new.requester == new.requester
                && r.new.database == new.database
                && matches!(&r.ask, Ask::Statement(s) if s.binding == ask.binding && s.mode == ApprovalMode::Refuse)
        };
        let approved = inner.requests.values().find(|r| {
            same(r) && r.state == RequestState::Approved && r.run_until.is_some_and(|t| t > now)
        });
        if let Some(request) = approved {
            let id = request.id.clone();
            self.finish(&mut inner, &id, RequestState::Executed);
            self.event(&id, "executed", [("session_id", json!(ask.session_id))]);
            return Ok(Claim::Run(id));
        }
        if let Some(pending) = inner
            .requests
            .values()
            .find(|r| same(r) && r.state == RequestState::Pending)
        {
            return Ok(Claim::Refused(pending.id.clone()));
        }
        check_room(&inner, max_pending)?;
        Ok(Claim::Refused(self.insert(
            &mut inner,
            new,
            Ask::Statement(ask),
            None,
        )))
    }

    /// A grant request, checked against the configured grants.
    pub(crate) fn request_grant(
        &self,
        requester: &vigil_policy::Subject<'_>,
        database: &str,
        ask: GrantAsk,
        reason: Option<String>,
        settings: &ApprovalSettings,
    ) -> Result<Value, Refusal> {
        let rule = settings
            .grants
            .iter()
            .find(|r| r.group == ask.group && r.databases.iter().any(|g| g.matches(database)))
            .ok_or_else(|| {
                refusal(
                    403,
                    format!(
                        "no [[approvals.grants]] entry offers group {:?} on database {database:?}",
                        ask.group
                    ),
                )
            })?;
        if !rule.requesters.is_empty() && !rule.requesters.includes(requester) {
            return Err(refusal(
                403,
                format!("{} may not ask for group {:?}", requester.name, ask.group),
            ));
        }
        if ask.duration_secs == 0 || ask.duration_secs > rule.max_secs {
            return Err(refusal(
                400,
                format!(
                    "duration_secs must be between 1 and {} for group {:?}",
                    rule.max_secs, ask.group
                ),
            ));
        }
        let new = NewRequest {
            requester: requester.name.to_owned(),
            database: database.to_owned(),
            rules: vec![format!("grant:{}", ask.group)],
            approvers: rule.approvers.clone(),
            timeout: Duration::from_secs(settings.timeout_secs),
            reason,
        };
        let mut inner = self.lock();
        check_room(&inner, settings.max_pending)?;
        let id = self.insert(&mut inner, new, Ask::Grant(ask), None);
        Ok(render(&inner.requests[&id]))
    }

    fn insert(
        &self,
        inner: &mut Inner,
        new: NewRequest,
        ask: Ask,
        waiter: Option<oneshot::Sender<Outcome>>,
    ) -> String {
        let id = loop {
            let id = format!("{:012x}", rand::random::<u64>() >> 16);
            if !inner.requests.contains_key(&id) {
                break id;
            }
        };
        let now = clock::now_micros();
        let timeout = i64::try_from(new.timeout.as_micros()).unwrap_or(i64::MAX);
        let request = Request {
            id: id.clone(),
            ask,
            new,
            state: RequestState::Pending,
            approvals: Vec::new(),
            denial: None,
            created_at: now,
            expires_at: now.saturating_add(timeout),
            decided_at: None,
            run_until: None,
            waiter,
            grant_ends: None,
        };
        let mut fields = vec![
            ("requester", json!(request.new.requester)),
            ("database", json!(request.new.database)),
            ("rules", json!(request.new.rules)),
            ("expires_at", json!(clock::format(request.expires_at))),
        ];
        match &request.ask {
            Ask::Statement(s) => {
                fields.push(("kind", json!("statement")));
                fields.push(("session_id", json!(s.session_id)));
                fields.push(("mode", json!(s.mode.as_str())));
                fields.push(("binding", json!(s.binding)));
                fields.push(("sql", json!(s.sql)));
            }
            Ask::Grant(g) => {
                fields.push(("kind", json!("grant")));
                fields.push(("group", json!(g.group)));
                fields.push(("duration_secs", json!(g.duration_secs)));
            }
        }
        if let Some(reason) = &request.new.reason {
            fields.push(("reason", json!(reason)));
        }
        self.event(&id, "requested", fields);
        self.notify("approval.requested", &request);
        inner.requests.insert(id.clone(), request);
        inner.order.push(id.clone());
        id
    }

    /// One approver says yes; with enough approvals the request is approved.
    pub(crate) fn approve(
        &self,
        id: &str,
        approver: &Approver<'_>,
        reason: Option<String>,
        window: Duration,
    ) -> Result<Value, Refusal> {
        let mut inner = self.lock();
        let request = decidable(&mut inner, id, approver)?;
        let now = clock::now_micros();
        let reason = reason.unwrap_or_default();
        request.approvals.push(Vote {
            by: approver.name.to_owned(),
            reason: reason.clone(),
            at: now,
        });
        self.event(
            id,
            "approved",
            [("by", json!(approver.name)), ("reason", json!(reason))],
        );
        let needed = request.new.approvers.count.max(1) as usize;
        if request.approvals.len() < needed {
            return Ok(render(request));
        }
        request.state = RequestState::Approved;
        request.decided_at = Some(now);
        let mut fields = Vec::new();
        let mut grant = None;
        match &request.ask {
            Ask::Statement(s) if s.mode == ApprovalMode::Refuse => {
                let window = i64::try_from(window.as_micros()).unwrap_or(i64::MAX);
                let until = now.saturating_add(window);
                request.run_until = Some(until);
                fields.push(("run_until", json!(clock::format(until))));
            }
            Ask::Statement(_) => {}
            Ask::Grant(g) => {
                let secs = i64::try_from(g.duration_secs).unwrap_or(i64::MAX / 1_000_000);
                let expires_at = now.saturating_add(secs.saturating_mul(1_000_000));
                fields.push(("grant_expires_at", json!(clock::format(expires_at))));
                grant = Some(Grant {
                    identity: request.new.requester.clone(),
                    group: g.group.clone(),
                    database: request.new.database.clone(),
                    approval_id: id.to_owned(),
                    expires_at,
                });
            }
        }
        request.grant_ends = grant.as_ref().map(|g| g.expires_at);
        if let Some(waiter) = request.waiter.take() {
            let _ = waiter.send(Outcome::Approved);
        }
        self.event(id, "granted", fields);
        self.notify("approval.granted", request);
        let shown = render(request);
        if let Some(grant) = grant {
            inner.grants.push(grant);
            self.grants_version.fetch_add(1, Ordering::Release);
        }
        Ok(shown)
    }

    /// One approver says no: the request is denied.
    pub(crate) fn deny(
        &self,
        id: &str,
        approver: &Approver<'_>,
        reason: String,
    ) -> Result<Value, Refusal> {
        let mut inner = self.lock();
        let request = decidable(&mut inner, id, approver)?;
        let now = clock::now_micros();
        request.denial = Some(Vote {
            by: approver.name.to_owned(),
            reason: reason.clone(),
            at: now,
        });
        request.state = RequestState::Denied;
        request.decided_at = Some(now);
        if let Some(waiter) = request.waiter.take() {
            let _ = waiter.send(Outcome::Denied {
                by: approver.name.to_owned(),
                reason: reason.clone(),
            });
        }
        self.event(
            id,
            "denied",
            [("by", json!(approver.name)), ("reason", json!(reason))],
        );
        self.notify("approval.denied", request);
        let shown = render(request);
        prune(&mut inner);
        Ok(shown)
    }

    /// The client withdrew a pending request (cancelled, disconnected).
    /// False when it was no longer pending.
    pub(crate) fn withdraw(&self, id: &str, why: &str) -> bool {
        let mut inner = self.lock();
        let Some(request) = inner.requests.get_mut(id) else {
            return false;
        };
        if request.state != RequestState::Pending {
            return false;
        }
        request.state = RequestState::Withdrawn;
        request.decided_at = Some(clock::now_micros());
        request.waiter = None;
        self.event(id, "withdrawn", [("why", json!(why))]);
        self.notify("approval.withdrawn", request);
        true
    }

    /// A held statement, approved, was forwarded.
    pub(crate) fn executed(&self, id: &str, session_id: u64) {
        let mut inner = self.lock();
        self.finish(&mut inner, id, RequestState::Executed);
        self.event(id, "executed", [("session_id", json!(session_id))]);
    }

    fn finish(&self, inner: &mut Inner, id: &str, state: RequestState) {
        if let Some(request) = inner.requests.get_mut(id) {
            request.state = state;
        }
    }

    pub(crate) fn list(&self, state: Option<RequestState>) -> Vec<Value> {
        let inner = self.lock();
        inner
            .order
            .iter()
            .rev()
            .filter_map(|id| inner.requests.get(id))
            .filter(|r| state.is_none_or(|s| r.state == s))
            .map(render)
            .collect()
    }

    pub(crate) fn get(&self, id: &str) -> Option<Value> {
        self.lock().requests.get(id).map(render)
    }

    /// The grants in force.
    pub(crate) fn grants(&self) -> Vec<Grant> {
        let now = clock::now_micros();
        self.lock()
            .grants
            .iter()
            .filter(|g| g.expires_at > now)
            .cloned()
            .collect()
    }

    /// The groups `identity` holds on `database` by grant now, and when the
    /// first of them ends.
    pub(crate) fn granted_groups(&self, identity: &str, database: &str) -> (Vec<String>, Micros) {
        let now = clock::now_micros();
        let inner = self.lock();
        let mut groups = Vec::new();
        let mut ends = Micros::MAX;
        for grant in &inner.grants {
            if grant.identity == identity && grant.database == database && grant.expires_at > now {
                groups.push(grant.group.clone());
                ends = ends.min(grant.expires_at);
            }
        }
        (groups, ends)
    }

    /// Changes whenever a grant starts or ends.
    pub(crate) fn grants_version(&self) -> u64 {
        self.grants_version.load(Ordering::Acquire)
    }

    /// Expires what is due: undecided requests, unused run windows, grants.
    fn sweep(&self) {
        let now = clock::now_micros();
        let mut inner = self.lock();
        let mut expired = Vec::new();
        for request in inner.requests.values_mut() {
            let what = match request.state {
                RequestState::Pending if request.expires_at <= now => "request",
                RequestState::Approved if request.run_until.is_some_and(|t| t <= now) => {
                    "run window"
                }
                _ => continue,
            };
            request.state = RequestState::Expired;
            request.decided_at.get_or_insert(now);
            if let Some(waiter) = request.waiter.take() {
                let secs = (request.expires_at - request.created_at) / 1_000_000;
                let _ = waiter.send(Outcome::Expired {
                    after_secs: secs.max(0) as u64,
                });
            }
            expired.push((request.id.clone(), what));
            self.notify("approval.expired", request);
        }
        for (id, what) in expired {
            self.event(&id, "expired", [("what", json!(what))]);
        }
        let before = inner.grants.len();
        let mut ended = Vec::new();
        inner.grants.retain(|g| {
            let live = g.expires_at > now;
            if !live {
                ended.push(g.approval_id.clone());
            }
            live
        });
        if inner.grants.len() != before {
            self.grants_version.fetch_add(1, Ordering::Release);
        }
        for id in ended {
            self.event(&id, "expired", [("what", json!("grant"))]);
        }
        prune(&mut inner);
    }

    fn event<'a>(
        &self,
        id: &str,
        action: &str,
        fields: impl IntoIterator<Item = (&'a str, Value)>,
    ) {
        let fields: BTreeMap<String, Value> =
            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let event = AuditEvent::Approval(ApprovalEvent {
            action: action.to_owned(),
            approval_id: id.to_owned(),
            fields,
        });
        if self.audit.durability() == vigil_audit::Durability::Off {
            return;
        }
        if let Err(error) = self.audit.record(event) {
            tracing::warn!(%error, approval = id, action, "approval event not recorded in the audit trail");
        }
    }

    fn notify(&self, event: &str, request: &Request) {
        let summary = summary(event, request);
        tracing::info!(approval = %request.id, event, "{summary}");
        self.notifier.send(event, &render(request), &summary);
    }

    /// Waits until the webhooks delivered (or gave up on) what was sent.
    pub(crate) fn flush_webhooks(&self, deadline: Duration) -> bool {
        self.notifier.flush(deadline)
    }
}

fn sweep_while_alive(approvals: Weak<Approvals>) {
    loop {
        std::thread::sleep(SWEEP_EVERY);
        match approvals.upgrade() {
            Some(approvals) => approvals.sweep(),
            None => return,
        }
    }
}

fn check_room(inner: &Inner, max_pending: usize) -> Result<(), Refusal> {
    let pending = inner
        .requests
        .values()
        .filter(|r| r.state == RequestState::Pending)
        .count();
    if pending >= max_pending {
        return Err(refusal(
            503,
            format!("{pending} approval requests are already pending (approvals.max_pending)"),
        ));
    }
    Ok(())
}

/// The pending request `id`, if `approver` may decide on it.
fn decidable<'a>(
    inner: &'a mut Inner,
    id: &str,
    approver: &Approver<'_>,
) -> Result<&'a mut Request, Refusal> {
    let request = inner
        .requests
        .get_mut(id)
        .ok_or_else(|| refusal(404, format!("no approval request {id:?}")))?;
    if request.state != RequestState::Pending {
        return Err(refusal(
            409,
            format!("request {id} is {}, not pending", request.state.as_str()),
        ));
    }
    if request.new.requester == approver.name {
        return Err(refusal(403, "no one approves or denies their own request"));
    }
    if !request.new.approvers.admits(approver.name, approver.groups) {
        return Err(refusal(
            403,
            format!("{} is not among this request's approvers", approver.name),
        ));
    }
    if request.approvals.iter().any(|v| v.by == approver.name) {
        return Err(refusal(
            409,
            format!("{} has already approved this request", approver.name),
        ));
    }
    Ok(request)
}

/// Forgets the oldest decided requests beyond what is kept.
fn prune(inner: &mut Inner) {
    if inner.order.len() <= KEEP_DECIDED * 2 {
        return;
    }
    let mut excess = inner.order.len() - KEEP_DECIDED;
    let requests = &mut inner.requests;
    inner.order.retain(|id| {
        if excess == 0 {
            return true;
        }
        let done = requests
            .get(id)
            .is_none_or(|r| !matches!(r.state, RequestState::Pending | RequestState::Approved));
        if done {
            requests.remove(id);
            excess -= 1;
        }
        !done
    });
}

/// A request as the admin API and the webhooks show it.
fn render(request: &Request) -> Value {
    let vote = |v: &Vote| json!({"by": v.by, "reason": v.reason, "at": clock::format(v.at)});
    let (kind, session_id, mode, sql, parameters, binding, statements, grant) = match &request.ask {
        Ask::Statement(s) => (
            "statement",
            json!(s.session_id),
            json!(s.mode.as_str()),
            json!(s.sql),
            json!(s.parameters),
            json!(s.binding),
            s.statements.clone(),
            Value::Null,
        ),
        Ask::Grant(g) => (
            "grant",
            Value::Null,
            Value::Null,
            Value::Null,
            json!([]),
            Value::Null,
            json!([]),
            json!({
                "group": g.group,
                "database": request.new.database,
                "duration_secs": g.duration_secs,
                "expires_at": request.grant_ends.map(clock::format),
            }),
        ),
    };
    let approvers = &request.new.approvers;
    json!({
        "id": request.id,
        "kind": kind,
        "state": request.state.as_str(),
        "requester": request.new.requester,
        "database": request.new.database,
        "session_id": session_id,
        "mode": mode,
        "sql": sql,
        "parameters": parameters,
        "binding": binding,
        "statements": statements,
        "rules": request.new.rules,
        "reason": request.new.reason,
        "approvers": {"identities": approvers.identities, "groups": approvers.groups, "count": approvers.count},
        "approvals": request.approvals.iter().map(vote).collect::<Vec<_>>(),
        "denial": request.denial.as_ref().map(vote),
        "grant": grant,
        "created_at": clock::format(request.created_at),
        "expires_at": clock::format(request.expires_at),
        "decided_at": request.decided_at.map(clock::format),
        "run_until": request.run_until.map(clock::format),
    })
}

/// One line for people: Slack's text, the log.
fn summary(event: &str, request: &Request) -> String {
    let what = match &request.ask {
        Ask::Statement(s) => {
            let mut sql: String = s.sql.chars().take(200).collect();
            if sql.len() < s.sql.len() {
                sql.push('…');
            }
            format!("`{sql}`")
        }
        Ask::Grant(g) => format!("membership of {} for {} s", g.group, g.duration_secs),
    };
    let verb = match event {
        "approval.requested" => "asks to run",
        "approval.granted" => "was approved for",
        "approval.denied" => "was denied",
        "approval.expired" => "saw expire",
        "approval.withdrawn" => "withdrew",
        _ => "",
    };
    format!(
        "[vigil] {} {verb} {what} on {} (request {}, {})",
        request.new.requester,
        request.new.database,
        request.id,
        request.state.as_str()
    )
}

#[cfg(test)]
mod tests;
