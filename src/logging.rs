//! Tracing set-up: human-readable logs on stderr by default, one JSON object
//! per line with `[log] format = "json"` or `--log-json`. Logs go to stderr so
//! that the machine-readable output of `check --json` stays alone on stdout.
//!
//! The level filter can be changed while the daemon runs ([`set_level`], on
//! SIGHUP); the format cannot (it needs a restart).

use std::sync::OnceLock;

use anyhow::{anyhow, Result};
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

type Reloader = Box<dyn Fn(EnvFilter) -> Result<()> + Send + Sync>;

/// Changes the filter of the installed subscriber.
static RELOAD: OnceLock<Reloader> = OnceLock::new();

/// Whether `RUST_LOG` set the filter (it then wins over `[log] level`,
/// reloads included).
static FROM_ENV: OnceLock<bool> = OnceLock::new();

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `[log] level`.
pub fn init(cfg: &Config, force_json: bool) {
    let from_env = EnvFilter::try_from_default_env().ok();
    let _ = FROM_ENV.set(from_env.is_some());
    let filter = from_env
        .or_else(|| EnvFilter::try_new(&cfg.log.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let json = force_json || cfg.log.format == LogFormat::Json;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) is harmless: try_init only fails if one exists.
    if json {
        let b = builder.json().flatten_event(true).with_filter_reloading();
        let handle = b.reload_handle();
        if b.try_init().is_ok() {
            let _ = RELOAD.set(Box::new(move |f| handle.reload(f).map_err(|e| anyhow!("{e}"))));
        }
    } else {
        let b = builder.with_target(false).with_filter_reloading();
        let handle = b.reload_handle();
        if b.try_init().is_ok() {
            let _ = RELOAD.set(Box::new(move |f| handle.reload(f).map_err(|e| anyhow!("{e}"))));
        }
    }
}

/// Applies a new `[log] level` to the running process. `Ok(false)` when
/// `RUST_LOG` is set (it keeps winning) or no subscriber of ours is installed.
pub fn set_level(level: &str) -> Result<bool> {
    if FROM_ENV.get().copied().unwrap_or(false) {
        return Ok(false);
    }
    let filter = EnvFilter::try_new(level).map_err(|e| anyhow!("[log] level {level:?}: {e}"))?;
    match RELOAD.get() {
        Some(reload) => reload(filter).map(|()| true),
        None => Ok(false),
    }
}

/// Masks a NIR for the logs: a NIR is never written in clear (spec §9).
pub fn mask_nir(nir: &str) -> String {
    let n = nir.chars().count();
    if n <= 4 {
        return "*".repeat(n);
    }
    let head: String = nir.chars().take(1).collect();
    format!("{head}{}", "*".repeat(n - 1))
}
