//! The sessions open right now, for the admin API and the console: who,
//! where from, since when, what they are running. A session registers once
//! it is established and leaves the registry when its [`Registration`] is
//! dropped, however it ends.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};

use vigil_audit::clock::Micros;
use vigil_sql::Analysis;

use crate::Identity;

/// What a session is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Activity {
    /// Waiting for the client.
    Idle = 0,
    /// A statement was forwarded and the server has not answered all of it.
    Active = 1,
    /// A statement is held until an approver decides.
    WaitingApproval = 2,
}

impl Activity {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Activity::Idle => "idle",
            Activity::Active => "active",
            Activity::WaitingApproval => "waiting_approval",
        }
    }

    fn from_u8(value: u8) -> Activity {
        match value {
            1 => Activity::Active,
            2 => Activity::WaitingApproval,
            _ => Activity::Idle,
        }
    }
}

/// One open session as others may see it.
pub(crate) struct LiveSession {
    pub(crate) id: u64,
    pub(crate) identity: Arc<Identity>,
    pub(crate) database: String,
    pub(crate) started_at: Micros,
    statements: AtomicU64,
    refused: AtomicU64,
    activity: AtomicU8,
    /// The last statement the session ran or tried; its text is the
    /// statement as the client sent it (what the audit trail records).
    current: Mutex<Option<Arc<Analysis>>>,
}

impl LiveSession {
    pub(crate) fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub(crate) fn activity(&self) -> Activity {
        Activity::from_u8(self.activity.load(Ordering::Relaxed))
    }

    pub(crate) fn set_activity(&self, activity: Activity) {
        self.activity.store(activity as u8, Ordering::Relaxed);
    }

    /// A text's statements were decided: `refused` when they will not run.
    pub(crate) fn ran(&self, analysis: &Arc<Analysis>, refused: bool) {
        let n = analysis.statements.len() as u64;
        self.statements.fetch_add(n, Ordering::Relaxed);
        if refused {
            self.refused.fetch_add(n, Ordering::Relaxed);
        }
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(analysis));
    }

    /// The text of the statement it ran last.
    pub(crate) fn current_statement(&self) -> Option<String> {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let analysis = current.as_ref()?;
        let texts: Vec<&str> = analysis
            .statements
            .iter()
            .map(|s| s.text.as_str())
            .collect();
        Some(texts.join("; "))
    }
}

/// Every open session, by id.
#[derive(Default)]
pub(crate) struct LiveSessions {
    open: Mutex<BTreeMap<u64, Weak<LiveSession>>>,
}

/// Keeps a session in the registry while it lives.
pub(crate) struct Registration {
    session: Arc<LiveSession>,
    registry: Weak<LiveSessions>,
}

impl Registration {
    pub(crate) fn session(&self) -> &Arc<LiveSession> {
        &self.session
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.lock().remove(&self.session.id);
        }
    }
}

impl LiveSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Weak<LiveSession>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a session; it stays listed until the registration is dropped.
    pub(crate) fn register(
        self: &Arc<Self>,
        id: u64,
        identity: Arc<Identity>,
        database: &str,
    ) -> Registration {
        let session = Arc::new(LiveSession {
            id,
            identity,
            database: database.to_owned(),
            started_at: vigil_audit::clock::now_micros(),
            statements: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            activity: AtomicU8::new(Activity::Idle as u8),
            current: Mutex::new(None),
        });
        self.lock().insert(id, Arc::downgrade(&session));
        Registration {
            session,
            registry: Arc::downgrade(self),
        }
    }

    /// The open sessions, oldest first.
    pub(crate) fn list(&self) -> Vec<Arc<LiveSession>> {
        self.lock().values().filter_map(Weak::upgrade).collect()
    }

    pub(crate) fn get(&self, id: u64) -> Option<Arc<LiveSession>> {
        self.lock().get(&id).and_then(Weak::upgrade)
    }

    pub(crate) fn count(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(name: &str) -> Arc<Identity> {
        Arc::new(Identity {
            name: name.into(),
            kind: vigil_config::IdentityKind::Person,
            groups: vec!["dba".into()],
            auth_method: crate::AuthMethodUsed::ScramSha256,
            client_addr: "127.0.0.1:5000".parse().unwrap(),
            tls: false,
            application_name: None,
        })
    }

    #[test]
    fn sessions_are_listed_while_registered() {
        let registry = Arc::new(LiveSessions::default());
        let a = registry.register(1, identity("alice"), "prod");
        let b = registry.register(2, identity("agent"), "demo");
        assert_eq!(registry.count(), 2);
        let ids: Vec<u64> = registry.list().iter().map(|s| s.id).collect();
        assert_eq!(ids, vec![1, 2]);
        drop(a);
        assert_eq!(registry.count(), 1);
        assert!(registry.get(1).is_none());
        assert_eq!(
            registry.get(2).map(|s| s.database.clone()),
            Some("demo".into())
        );
        drop(b);
        assert!(registry.list().is_empty());
    }

    #[test]
    fn a_session_shows_its_last_statement_and_counts() {
        let registry = Arc::new(LiveSessions::default());
        let held = registry.register(7, identity("alice"), "prod");
        let session = held.session();
        let analyzer = vigil_sql::Analyzer::new(10);
        let analysis = analyzer.analyze("SELECT 1; SELECT 2").unwrap();
        session.ran(&analysis, false);
        session.ran(&analysis, true);
        session.set_activity(Activity::WaitingApproval);
        assert_eq!(session.statements(), 4);
        assert_eq!(session.refused(), 2);
        assert_eq!(session.activity().as_str(), "waiting_approval");
        assert_eq!(
            session.current_statement().as_deref(),
            Some("SELECT 1; SELECT 2")
        );
    }
}
