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

use crate::config::Config;

/// Keys a running daemon cannot change: they name what it has opened or
/// bound at start (folders, the database, the listening socket, the host
/// key, the watcher, the log format).
pub const RESTART_KEYS: &[&str] = &[
    "paths.spool",
    "paths.database",
    "sftp.enabled",
    "sftp.listen",
    "sftp.host_key",
    "intake.watch",
    "log.format",
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
