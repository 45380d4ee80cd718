//! The systemd watchdog, fed from the processor's progress.
//!
//! In: the processor's [`Progress`] and `WATCHDOG_USEC` (set by systemd
//! from `WatchdogSec=`). Out: `WATCHDOG=1` notifications. Pinging from the
//! processor loop itself would starve the watchdog whenever the processor
//! is busy for long (a start-up backlog, a 100 000-line file), and systemd
//! would kill a daemon that is working. This task pings on its own clock
//! instead, as long as the processor is idle or shows progress; when a busy
//! processor has not shown any for [`stall_limit`], it stops pinging (and
//! says so once), and systemd restarts the daemon.

use std::time::Duration;

use tokio::sync::watch;

use crate::pipeline::Progress;

/// How long a busy processor may go without progress before it is taken
/// as stuck: twice the watchdog period, and never less than a minute (no
/// single step of a file takes that long; a bug that loops does).
pub fn stall_limit(period: Duration) -> Duration {
    (period * 2).max(Duration::from_secs(60))
}

/// Starts the pinging task when systemd asked for a watchdog.
pub fn spawn(progress: Progress, mut shutdown: watch::Receiver<bool>) -> Option<tokio::task::JoinHandle<()>> {
    let period = sd_notify::watchdog_enabled()?;
    let limit = stall_limit(period);
    // Four pings a period: one late wake-up never misses it.
    let every = (period / 4).max(Duration::from_millis(50));
    tracing::info!(
        period_ms = period.as_millis() as u64,
        stall_secs = limit.as_secs(),
        "systemd watchdog enabled"
    );
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reported = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if progress.stuck(limit) {
                        if !reported {
                            tracing::error!(
                                since_secs = progress.since_beat().as_secs(),
                                "processor shows no progress: watchdog no longer fed, systemd will restart the service"
                            );
                            reported = true;
                        }
                    } else {
                        reported = false;
                        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                    }
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stall_limit_is_generous() {
        assert_eq!(stall_limit(Duration::from_secs(30)), Duration::from_secs(60));
        assert_eq!(stall_limit(Duration::from_secs(1)), Duration::from_secs(60));
        assert_eq!(stall_limit(Duration::from_secs(300)), Duration::from_secs(600));
    }
}
