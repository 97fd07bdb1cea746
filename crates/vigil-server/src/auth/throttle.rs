//! Rate limiting of failed logins per client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use vigil_config::Auth;

pub(crate) struct Throttle {
    max_failures: u32,
    window: Duration,
    lockout: Duration,
    pub(crate) failure_delay: Duration,
    records: Mutex<HashMap<IpAddr, Record>>,
}

struct Record {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

/// Past this many tracked addresses, stale records are swept on insert.
const SWEEP_ABOVE: usize = 10_000;

impl Throttle {
    pub(crate) fn new(auth: &Auth) -> Throttle {
        Throttle {
            max_failures: auth.max_failures,
            window: Duration::from_secs(auth.failure_window_secs),
            lockout: Duration::from_secs(auth.lockout_secs),
            failure_delay: Duration::from_millis(auth.failure_delay_ms),
            records: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(seconds)` while `addr` is locked out.
    pub(crate) fn locked(&self, addr: IpAddr, now: Instant) -> Option<u64> {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let until = records.get(&addr)?.locked_until?;
        (until > now).then(|| (until - now).as_secs().max(1))
    }

    pub(crate) fn record_failure(&self, addr: IpAddr, now: Instant) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if records.len() > SWEEP_ABOVE {
            records.retain(|_, r| {
                now.duration_since(r.window_start) < self.window
                    || r.locked_until.is_some_and(|until| until > now)
            });
        }
        let record = records.entry(addr).or_insert(Record {
            window_start: now,
            failures: 0,
            locked_until: None,
        });
        if now.duration_since(record.window_start) >= self.window {
            record.window_start = now;
            record.failures = 0;
        }
        record.failures += 1;
        if record.failures >= self.max_failures {
            record.locked_until = Some(now + self.lockout);
            record.failures = 0;
            record.window_start = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        Throttle::new(&Auth {
            max_failures: 3,
            failure_window_secs: 10,
            lockout_secs: 30,
            ..Auth::default()
        })
    }

    #[test]
    fn repeated_failures_lock_one_address_only() {
        let t = throttle();
        let now = Instant::now();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        t.record_failure(a, now);
        t.record_failure(a, now);
        assert_eq!(t.locked(a, now), None);
        t.record_failure(a, now);
        assert_eq!(t.locked(a, now), Some(30));
        assert_eq!(t.locked(b, now), None);
        assert_eq!(t.locked(a, now + Duration::from_secs(31)), None);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let t = throttle();
        let now = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        t.record_failure(a, now);
        t.record_failure(a, now);
        t.record_failure(a, now + Duration::from_secs(11));
        assert_eq!(t.locked(a, now + Duration::from_secs(11)), None);
    }
}
