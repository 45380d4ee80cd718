//! The service's `STATUS=` line (what `systemctl status` shows under the
//! unit): the queue in one French line, e.g. `en attente : 3 fichier(s),
//! 1 e-mail(s) ; quarantaine : 0`.
//!
//! In: the configuration in force and the queue read from the database
//! and the drop folders ([`crate::metrics::queue`], on a read-only
//! connection of its own). Out: `STATUS=` notifications, sent when the
//! line changes and at most once per [`EVERY`]. Runs only under systemd
//! (`NOTIFY_SOCKET` set): elsewhere nobody reads it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::Config;

/// How often the queue is read (and so the most often the line changes).
pub const EVERY: Duration = Duration::from_secs(1);

/// Starts the task when systemd listens for notifications.
pub fn spawn(
    cfg: watch::Receiver<Arc<Config>>,
    mut shutdown: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    std::env::var_os("NOTIFY_SOCKET")?;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = String::new();
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                    continue;
                }
            }
            let c = cfg.borrow().clone();
            // One read at a time: the next tick waits for this one.
            let read = tokio::task::spawn_blocking(move || crate::metrics::queue::read(&c)).await;
            let line = match read {
                Ok(Ok(q)) => {
                    failing = false;
                    q.status_line()
                }
                Ok(Err(e)) => {
                    if !failing {
                        tracing::warn!(error = format!("{e:#}"), "service status: the queue cannot be read");
                        failing = true;
                    }
                    "file d'attente illisible : base de données inaccessible".to_string()
                }
                Err(_) => continue,
            };
            if line != last {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&line)]);
                last = line;
            }
        }
    }))
}
