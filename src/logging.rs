//! Tracing set-up: human-readable logs on stderr by default, one JSON object
//! per line with `[log] format = "json"` or `--log-json`. Logs go to stderr so
//! that the machine-readable output of `check --json` stays alone on stdout.

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `[log] level`.
pub fn init(cfg: &Config, force_json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = force_json || cfg.log.format == LogFormat::Json;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) is harmless: try_init only fails if one exists.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.with_target(false).try_init()
    };
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
