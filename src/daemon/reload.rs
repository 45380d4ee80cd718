//! SIGHUP: the configuration read again and applied where it can be.
//!
//! In: the file named by `--config` (or the default path) and the running
//! configuration. Out: the new configuration handed to every worker that
//! applies it at once (processor: billing rules, limits, intake; mail
//! worker: relay, sender, attempts; SFTP server: limits; logs: level), and
//! one log line naming exactly which keys changed, which were applied and
//! which need a restart. A file that does not load or validate changes
//! nothing: the running configuration stays.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{mpsc, Arc};

use super::Work;
use crate::config::Config;

/// Every worker a new configuration is handed to.
pub struct Reloaders {
    /// The configuration in force.
    pub running: Config,
    pub processor: mpsc::Sender<Work>,
    pub mail: tokio::sync::watch::Sender<Arc<Config>>,
    /// The SFTP server's limits (when it runs).
    pub sftp: Option<crate::sftp::Reload>,
}

impl Reloaders {
    /// SIGHUP: reads the configuration again and hands it to every worker.
    pub fn reload(&mut self, path: Option<&Path>) {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
        match Config::load(path) {
            Ok(new) => self.apply(new),
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                "SIGHUP: configuration refused, keeping the running one"
            ),
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    }

    fn apply(&mut self, new: Config) {
        let changed = changed_keys(&self.running, &new);
        let (applied, restart) = classify(&changed);
        if new.log.level != self.running.log.level {
            match crate::logging::set_level(&new.log.level) {
                Ok(true) => {}
                Ok(false) => tracing::warn!("SIGHUP: [log] level not applied: RUST_LOG is set and wins"),
                Err(e) => tracing::warn!(error = format!("{e:#}"), "SIGHUP: [log] level not applied"),
            }
        }
        let _ = self.processor.send(Work::Reload(Box::new(new.clone())));
        let _ = self.mail.send(Arc::new(new.clone()));
        if let Some(sftp) = &self.sftp {
            // The keys it reports needing a restart are in `restart` already.
            let _ = sftp.apply(&new);
        }
        if restart.is_empty() {
            tracing::info!(applied = applied.join(", "), "SIGHUP: configuration reloaded");
        } else {
            tracing::warn!(
                applied = applied.join(", "),
                restart_needed = restart.join(", "),
                "SIGHUP: configuration reloaded; some changed keys need a restart of the service"
            );
        }
        self.running = new;
    }
}

/// Keys a running daemon cannot change: they name what it has opened or
/// bound at start (folders, the database, the listening socket, the host
/// key, the watcher, the log format, the metrics endpoint).
pub const RESTART_KEYS: &[&str] = &[
    "paths.spool",
    "paths.database",
    "sftp.enabled",
    "sftp.listen",
    "sftp.host_key",
    "intake.watch",
    "log.format",
    "metrics.listen",
    "metrics.allow_remote",
];

/// The keys whose values differ between two configurations, as
/// `section.key` (tables such as `billing.prestations` as one key).
pub fn changed_keys(old: &Config, new: &Config) -> Vec<String> {
    let (a, b) = (flatten(old), flatten(new));
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    keys.sort();
    keys
}

fn flatten(cfg: &Config) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    if let Ok(serde_json::Value::Object(sections)) = serde_json::to_value(cfg) {
        for (section, v) in sections {
            match v {
                serde_json::Value::Object(keys) => {
                    for (k, v) in keys {
                        out.insert(format!("{section}.{k}"), v);
                    }
                }
                v => {
                    out.insert(section, v);
                }
            }
        }
    }
    out
}

/// The changed keys split into (applied now, need a restart).
pub fn classify(changed: &[String]) -> (Vec<String>, Vec<String>) {
    changed
        .iter()
        .cloned()
        .partition(|k| !RESTART_KEYS.contains(&k.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_are_named_and_classified() {
        let old = Config::default();
        let mut new = Config::default();
        assert!(changed_keys(&old, &new).is_empty());
        new.log.level = "debug".into();
        new.sftp.max_sessions = 3;
        new.sftp.listen = "127.0.0.1:2223".into();
        new.mail.from = "x@example.org".into();
        new.billing.prestations.insert("PPP200".into(), 10.into());
        let changed = changed_keys(&old, &new);
        assert_eq!(
            changed,
            [
                "billing.prestations",
                "log.level",
                "mail.from",
                "sftp.listen",
                "sftp.max_sessions"
            ]
        );
        let (applied, restart) = classify(&changed);
        assert_eq!(restart, ["sftp.listen"]);
        assert_eq!(applied.len(), 4);
    }
}
