//! Rate limiting of logins per client address: failures within a window lock
//! the address out, and only a few authentications may be in flight from one
//! address at a time, so guesses cannot be fired in parallel past the limit.
//! IPv6 addresses count by /64, the block one host usually controls.

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
    in_flight: Mutex<HashMap<IpAddr, u32>>,
}

struct Record {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

/// Past this many tracked addresses, stale records are swept on insert.
const SWEEP_ABOVE: usize = 10_000;
/// Never track more than this; past it, addresses that are not locked out
/// are forgotten first.
const MAX_TRACKED: usize = 100_000;

/// The unit an address is counted in.
fn source(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & (u128::MAX << 64)).into()),
        },
    }
}

/// An authentication in flight from one address; counted until dropped.
pub(crate) struct Attempt<'a> {
    throttle: &'a Throttle,
    source: IpAddr,
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let mut in_flight = self
            .throttle
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = in_flight.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                in_flight.remove(&self.source);
            }
        }
    }
}

impl Throttle {
    pub(crate) fn new(auth: &Auth) -> Throttle {
        Throttle {
            max_failures: auth.max_failures,
            window: Duration::from_secs(auth.failure_window_secs),
            lockout: Duration::from_secs(auth.lockout_secs),
            failure_delay: Duration::from_millis(auth.failure_delay_ms),
            records: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// Starts an authentication from `addr`, or `None` when as many are
    /// already in flight from there as failures it may make.
    pub(crate) fn begin(&self, addr: IpAddr) -> Option<Attempt<'_>> {
        let source = source(addr);
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let count = in_flight.entry(source).or_insert(0);
        if *count >= self.max_failures {
            return None;
        }
        *count += 1;
        Some(Attempt {
            throttle: self,
            source,
        })
    }

    /// `Some(seconds)` while `addr` is locked out.
    pub(crate) fn locked(&self, addr: IpAddr, now: Instant) -> Option<u64> {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let until = records.get(&source(addr))?.locked_until?;
        (until > now).then(|| (until - now).as_secs().max(1))
    }

    pub(crate) fn record_failure(&self, addr: IpAddr, now: Instant) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if records.len() > SWEEP_ABOVE {
            records.retain(|_, r| {
                now.duration_since(r.window_start) < self.window
                    || r.locked_until.is_some_and(|until| until > now)
            });
            if records.len() > MAX_TRACKED {
                records.retain(|_, r| r.locked_until.is_some_and(|until| until > now));
            }
        }
        let record = records.entry(source(addr)).or_insert(Record {
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
    fn only_a_few_attempts_may_be_in_flight_per_address() {
        let t = throttle();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let attempts: Vec<_> = (0..3).map(|_| t.begin(a).expect("under the cap")).collect();
        assert!(t.begin(a).is_none());
        assert!(t.begin("127.0.0.2".parse().unwrap()).is_some());
        drop(attempts);
        assert!(t.begin(a).is_some());
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_bit_prefix() {
        let t = throttle();
        let now = Instant::now();
        for host in ["2001:db8::1", "2001:db8::2", "2001:db8::3"] {
            t.record_failure(host.parse().unwrap(), now);
        }
        assert!(t.locked("2001:db8::ffff".parse().unwrap(), now).is_some());
        assert!(t.locked("2001:db8:0:1::1".parse().unwrap(), now).is_none());
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
