//! How many connections may hold what at once: sessions per identity and per
//! database (`max_sessions`), and connections per client address that have
//! not finished startup. Each count is held by a slot that gives it back when
//! dropped, however the connection ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counters by key, each bounded by the caller's limit.
#[derive(Default)]
struct Counts {
    by_key: Mutex<HashMap<String, usize>>,
}

impl Counts {
    /// Takes one of `limit` places under `key`; `None` when all are taken.
    fn take(self: &Arc<Counts>, key: &str, limit: Option<usize>) -> Option<Slot> {
        let mut counts = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(key.to_owned()).or_default();
        if limit.is_some_and(|limit| *count >= limit) {
            return None;
        }
        *count += 1;
        Some(Slot {
            counts: Arc::clone(self),
            key: key.to_owned(),
        })
    }
}

/// One place taken; given back on drop.
pub(crate) struct Slot {
    counts: Arc<Counts>,
    key: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.by_key.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// Why a connection was refused, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `max_client_connections` reached.
    Connections,
    /// `max_startups_per_address` reached for the client's address.
    Startups,
    /// The client sent nothing within `first_message_secs`.
    Silent,
    /// An identity's `max_sessions`.
    IdentitySessions,
    /// A database's `max_sessions`.
    DatabaseSessions,
}

impl Refused {
    pub(crate) const ALL: [Refused; 5] = [
        Refused::Connections,
        Refused::Startups,
        Refused::Silent,
        Refused::IdentitySessions,
        Refused::DatabaseSessions,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refused::Connections => "max_client_connections",
            Refused::Startups => "max_startups_per_address",
            Refused::Silent => "first_message_timeout",
            Refused::IdentitySessions => "identity_max_sessions",
            Refused::DatabaseSessions => "database_max_sessions",
        }
    }
}

#[derive(Default)]
pub(crate) struct Limits {
    startups: Arc<Counts>,
    identities: Arc<Counts>,
    databases: Arc<Counts>,
}

/// The places a session holds while it lives.
pub(crate) struct Sessions {
    _identity: Slot,
    _database: Slot,
}

impl Limits {
    /// A connection from `address` starts its startup; `None` when that
    /// address already has `limit` connections doing so.
    pub(crate) fn startup(&self, address: IpAddr, limit: usize) -> Option<Slot> {
        self.startups.take(&address_key(address), Some(limit))
    }

    /// A session of `identity` on `database` starts; the limit it would pass
    /// when it may not.
    pub(crate) fn session(
        &self,
        identity: &str,
        identity_limit: Option<usize>,
        database: &str,
        database_limit: Option<usize>,
    ) -> Result<Sessions, Refused> {
        let identity = self
            .identities
            .take(identity, identity_limit)
            .ok_or(Refused::IdentitySessions)?;
        let database = self
            .databases
            .take(database, database_limit)
            .ok_or(Refused::DatabaseSessions)?;
        Ok(Sessions {
            _identity: identity,
            _database: database,
        })
    }
}

/// The key an address counts under: itself, or for IPv6 its /64 (one host
/// holds a whole /64).
fn address_key(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_bounded_and_given_back() {
        let limits = Limits::default();
        let one = limits.session("agent", Some(2), "demo", None).unwrap();
        let two = limits.session("agent", Some(2), "demo", None).unwrap();
        assert_eq!(
            limits.session("agent", Some(2), "demo", None).err(),
            Some(Refused::IdentitySessions)
        );
        let alice = limits.session("alice", Some(2), "demo", Some(3)).unwrap();
        drop(one);
        let three = limits.session("agent", Some(2), "demo", Some(3)).unwrap();
        assert_eq!(
            limits.session("bob", None, "demo", Some(3)).err(),
            Some(Refused::DatabaseSessions),
            "demo holds three"
        );
        drop((two, three, alice));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let v6_same: IpAddr = "2001:db8::ffff".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| limits.startup(a, 3).unwrap()).collect();
        assert!(limits.startup(a, 3).is_none());
        assert!(limits.startup("10.0.0.2".parse().unwrap(), 3).is_some());
        let _v6 = limits.startup(v6, 1).unwrap();
        assert!(limits.startup(v6_same, 1).is_none(), "one /64");
        drop(held);
        assert!(limits.startup(a, 3).is_some());
    }
}
