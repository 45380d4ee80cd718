//! Tracing set-up. In: the `[log]` section (and `--log-json`, `RUST_LOG`).
//! Out: the global subscriber, writing
//! - `human` (default): one readable line per event on stderr;
//! - `json`: one JSON object per line on stderr, the event's fields at the
//!   top level next to `timestamp`, `level`, `target` and `message`;
//! - `journald`: each event as a journal entry (`tracing-journald`), its
//!   fields as journal fields (`F_EVENT`, `F_FILE`, …); when the journal
//!   socket cannot be reached, `human` on stderr after one warning.
//!
//! Logs go to stderr so that the machine-readable output of `check --json`
//! stays alone on stdout. The typed events (`event = "file.received"`, …)
//! and their stable fields are listed in `docs/logging.md`; a NIR is never
//! a field of any event ([`mask_nir`] where one must be named).
//!
//! The level filter can be changed while the daemon runs ([`set_level`], on
//! SIGHUP); the format cannot (it needs a restart).

use std::sync::OnceLock;

use anyhow::{anyhow, Result};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Layer, Registry};

use crate::config::{Config, LogFormat};

type Reloader = Box<dyn Fn(EnvFilter) -> Result<()> + Send + Sync>;

/// Changes the filter of the installed subscriber.
static RELOAD: OnceLock<Reloader> = OnceLock::new();

/// Whether `RUST_LOG` set the filter (it then wins over `[log] level`,
/// reloads included).
static FROM_ENV: OnceLock<bool> = OnceLock::new();

/// The identifier of the journal entries (`SYSLOG_IDENTIFIER`, what
/// `journalctl -t` selects).
pub const SYSLOG_IDENTIFIER: &str = "ppas-gateway";

/// The subscriber below the output layer: the registry and the reloadable filter.
type Filtered = tracing_subscriber::layer::Layered<reload::Layer<EnvFilter, Registry>, Registry>;
type Output = Box<dyn Layer<Filtered> + Send + Sync>;

fn human() -> Output {
    fmt::layer().with_target(false).with_writer(std::io::stderr).boxed()
}

/// The output layer of `format`, and why it is not the one asked for.
fn output(format: LogFormat) -> (Output, Option<std::io::Error>) {
    match format {
        LogFormat::Human => (human(), None),
        LogFormat::Json => (
            fmt::layer()
                .json()
                .flatten_event(true)
                .with_writer(std::io::stderr)
                .boxed(),
            None,
        ),
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(l) => (l.with_syslog_identifier(SYSLOG_IDENTIFIER.into()).boxed(), None),
            Err(e) => (human(), Some(e)),
        },
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `[log] level`.
pub fn init(cfg: &Config, force_json: bool) {
    let from_env = EnvFilter::try_from_default_env().ok();
    let _ = FROM_ENV.set(from_env.is_some());
    let filter = from_env
        .or_else(|| EnvFilter::try_new(&cfg.log.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let format = if force_json { LogFormat::Json } else { cfg.log.format };
    let (filter, handle) = reload::Layer::new(filter);
    let (out, fallback) = output(format);
    // A second init (tests) is harmless: try_init only fails if one exists.
    if tracing_subscriber::registry().with(filter).with(out).try_init().is_ok() {
        let _ = RELOAD.set(Box::new(move |f| handle.reload(f).map_err(|e| anyhow!("{e}"))));
        if let Some(e) = fallback {
            tracing::warn!(
                error = %e,
                "[log] format = \"journald\" but the journal cannot be reached: logging to stderr instead"
            );
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
