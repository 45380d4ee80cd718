//! The failed-login throttle: per source address, failures in, a delay and
//! a lock out.
//!
//! Each refused login is answered after a delay that doubles with every
//! recent failure from the same address (base, 2×, 4×, … capped at 16×
//! `[sftp] failure_delay_ms`). After `lockout_after_failures` failures within
//! `failure_window_secs` the address is locked for `lockout_secs`: its new
//! connections are dropped at accept, and logins on connections already
//! open are refused, even with the right key or password.
//!
//! This is a security throttle, not a business rule, so it runs on
//! `std::time::Instant` (monotonic, immune to clock changes) rather than the
//! business clock; tests make it fast with short configured values.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// Settings, from `[sftp]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub lock_after: u32,
    pub window: Duration,
    pub lockout: Duration,
    pub base_delay: Duration,
}

impl Policy {
    pub fn from_config(c: &crate::config::Sftp) -> Policy {
        Policy {
            lock_after: c.lockout_after_failures,
            window: Duration::from_secs(c.failure_window_secs),
            lockout: Duration::from_secs(c.lockout_secs),
            base_delay: Duration::from_millis(c.failure_delay_ms),
        }
    }
}

#[derive(Debug, Default)]
struct Source {
    /// When each recent failure happened, with its id (see [`Defender::forgive`]).
    failures: VecDeque<(Instant, u64)>,
    locked_until: Option<Instant>,
}

/// What [`Defender::record_failure`] reports.
#[derive(Debug, Clone, Copy)]
pub struct Recorded {
    /// This failure locked the address.
    pub locked: bool,
    /// To withdraw this very failure later.
    pub id: u64,
}

/// Above this many tracked addresses, stale entries are pruned.
const PRUNE_ABOVE: usize = 4096;

#[derive(Debug)]
pub struct Defender {
    policy: RwLock<Policy>,
    sources: Mutex<HashMap<IpAddr, Source>>,
    next_id: AtomicU64,
}

impl Defender {
    pub fn new(policy: Policy) -> Defender {
        Defender {
            policy: RwLock::new(policy),
            sources: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        }
    }

    fn policy(&self) -> Policy {
        self.policy.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the settings (a configuration reload). Failures already
    /// counted stay, judged by the new window and threshold from the next
    /// failure on; a lock already set runs to its end. Returns the `[sftp]`
    /// keys whose value changed (`sftp.lockout_secs`, …).
    pub fn set_policy(&self, new: Policy) -> Vec<String> {
        let mut p = self.policy.write().unwrap_or_else(|p| p.into_inner());
        let changed = [
            ("lockout_after_failures", p.lock_after != new.lock_after),
            ("failure_window_secs", p.window != new.window),
            ("lockout_secs", p.lockout != new.lockout),
            ("failure_delay_ms", p.base_delay != new.base_delay),
        ]
        .into_iter()
        .filter(|(_, differs)| *differs)
        .map(|(name, _)| format!("sftp.{name}"))
        .collect();
        *p = new;
        changed
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<IpAddr, Source>) -> R) -> R {
        // A poisoned lock only means another thread panicked mid-update of
        // plain counters: the data is still usable.
        let mut g = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// Whether logins from `ip` are refused right now.
    pub fn is_locked(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        self.with(|m| m.get(&ip).and_then(|s| s.locked_until).is_some_and(|until| until > now))
    }

    /// How long to wait before answering a refused login from `ip`.
    pub fn delay(&self, ip: IpAddr) -> Duration {
        let now = Instant::now();
        let policy = self.policy();
        let recent = self.with(|m| {
            m.get(&ip).map_or(0, |s| {
                if s.locked_until.is_some_and(|u| u > now) {
                    // Locked: every attempt gets the longest delay.
                    return usize::MAX;
                }
                s.failures
                    .iter()
                    .filter(|(t, _)| now.duration_since(*t) < policy.window)
                    .count()
            })
        });
        policy.base_delay * (1u32 << recent.min(4))
    }

    /// How long a lock lasts now, in seconds (for the lockout event).
    pub fn lockout_secs(&self) -> u64 {
        self.policy().lockout.as_secs()
    }

    /// Records one failure.
    pub fn record_failure(&self, ip: IpAddr) -> Recorded {
        let now = Instant::now();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let p = &self.policy();
        self.with(|m| {
            if m.len() > PRUNE_ABOVE {
                m.retain(|_, s| {
                    s.locked_until.is_some_and(|u| u > now)
                        || s.failures
                            .back()
                            .is_some_and(|(t, _)| now.duration_since(*t) < p.window)
                });
            }
            let s = m.entry(ip).or_default();
            while s
                .failures
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) >= p.window)
            {
                s.failures.pop_front();
            }
            s.failures.push_back((now, id));
            let already = s.locked_until.is_some_and(|u| u > now);
            let locked = !already && s.failures.len() >= p.lock_after as usize;
            if locked {
                s.locked_until = Some(now + p.lockout);
                s.failures.clear();
            }
            Recorded { locked, id }
        })
    }

    /// Withdraws one recorded failure (if it still counts): a connection
    /// that tried other keys of an agent before the right one is not held
    /// against its address once it gets in. Only that connection's own
    /// failure is withdrawn, never another one's.
    pub fn forgive(&self, ip: IpAddr, id: u64) {
        self.with(|m| {
            if let Some(s) = m.get_mut(&ip) {
                s.failures.retain(|(_, i)| *i != id);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(lockout_ms: u64) -> Policy {
        Policy {
            lock_after: 3,
            window: Duration::from_secs(60),
            lockout: Duration::from_millis(lockout_ms),
            base_delay: Duration::from_millis(10),
        }
    }

    #[test]
    fn delay_grows_then_the_source_is_locked() {
        let d = Defender::new(policy(60_000));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(d.delay(ip), Duration::from_millis(10));
        assert!(!d.record_failure(ip).locked);
        assert_eq!(d.delay(ip), Duration::from_millis(20));
        assert!(!d.record_failure(ip).locked);
        assert_eq!(d.delay(ip), Duration::from_millis(40));
        assert!(!d.is_locked(ip));
        assert!(d.record_failure(ip).locked, "third failure locks");
        assert_eq!(d.delay(ip), Duration::from_millis(160), "locked: longest delay");
        assert!(d.is_locked(ip));
        assert!(!d.is_locked(other), "other sources are not affected");
    }

    #[test]
    fn lock_expires() {
        let d = Defender::new(policy(0));
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        for _ in 0..3 {
            d.record_failure(ip);
        }
        assert!(!d.is_locked(ip), "a zero-length lock is already over");
    }

    #[test]
    fn forgiven_failures_do_not_count() {
        let d = Defender::new(policy(60_000));
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        for _ in 0..5 {
            let r = d.record_failure(ip);
            d.forgive(ip, r.id);
        }
        assert!(!d.is_locked(ip));
        assert_eq!(d.delay(ip), Duration::from_millis(10));
        // Forgiving one failure leaves the others.
        let a = d.record_failure(ip);
        d.record_failure(ip);
        d.forgive(ip, a.id);
        assert_eq!(d.delay(ip), Duration::from_millis(20));
    }

    #[test]
    fn delay_is_capped() {
        let d = Defender::new(Policy {
            lock_after: 100,
            ..policy(1)
        });
        let ip: IpAddr = "192.0.2.3".parse().unwrap();
        for _ in 0..20 {
            d.record_failure(ip);
        }
        assert_eq!(d.delay(ip), Duration::from_millis(160));
    }

    #[test]
    fn a_new_policy_applies_to_the_next_failures() {
        let d = Defender::new(policy(60_000));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        d.record_failure(ip);
        assert_eq!(d.set_policy(policy(60_000)), Vec::<String>::new(), "nothing changed");
        let changed = d.set_policy(Policy {
            lock_after: 2,
            base_delay: Duration::from_millis(100),
            ..policy(60_000)
        });
        assert_eq!(changed, ["sftp.lockout_after_failures", "sftp.failure_delay_ms"]);
        assert_eq!(
            d.delay(ip),
            Duration::from_millis(200),
            "the new base delay, doubled once"
        );
        assert!(
            d.record_failure(ip).locked,
            "the second failure locks under the new threshold"
        );
    }
}
