//! The processor's heartbeat: what the systemd watchdog (and later the
//! health check) reads to tell a daemon that works from one that is stuck.
//!
//! The processor marks itself busy while it handles work and beats at every
//! step that shows progress (a file taken, a step of a file finished, every
//! few thousand lines of a long file). The watchdog task pings systemd while
//! the processor is idle or beat recently, and stops pinging when a busy
//! processor has not beaten for the watchdog period: systemd then restarts
//! a daemon that is really stuck, never one that is working through a
//! backlog.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Milliseconds since the first use in this process.
fn ms_now() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

#[derive(Debug, Default)]
struct Inner {
    beat_ms: AtomicU64,
    busy: AtomicBool,
}

/// Shared between the processor (writes) and the watchdog (reads).
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<Inner>);

impl Progress {
    pub fn new() -> Progress {
        let p = Progress::default();
        p.beat();
        p
    }

    /// Some progress was made just now.
    pub fn beat(&self) {
        self.0.beat_ms.store(ms_now(), Ordering::Relaxed);
    }

    /// The processor starts (true) or ends (false) a piece of work.
    pub fn set_busy(&self, busy: bool) {
        self.beat();
        self.0.busy.store(busy, Ordering::Relaxed);
    }

    pub fn is_busy(&self) -> bool {
        self.0.busy.load(Ordering::Relaxed)
    }

    /// Time since the last beat.
    pub fn since_beat(&self) -> Duration {
        Duration::from_millis(ms_now().saturating_sub(self.0.beat_ms.load(Ordering::Relaxed)))
    }

    /// Whether the processor is stuck: busy without a beat for `limit`.
    pub fn stuck(&self, limit: Duration) -> bool {
        self.is_busy() && self.since_beat() >= limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_without_beats_is_stuck_idle_never() {
        let p = Progress::new();
        assert!(!p.stuck(Duration::ZERO), "idle is never stuck");
        p.set_busy(true);
        assert!(p.stuck(Duration::ZERO));
        assert!(!p.stuck(Duration::from_secs(3600)), "a fresh beat");
        p.set_busy(false);
        assert!(!p.stuck(Duration::ZERO));
    }
}
