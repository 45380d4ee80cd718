//! `serve`: the daemon. Start-up as logged phases, then workers until
//! SIGTERM:
//!
//! - the **processor** (one OS thread, the only writer of billing state):
//!   recovery first, then every file the intake hands it, and a full rescan
//!   of the drop folders every `[intake] rescan_secs`;
//! - the **watcher** (`notify`): close-after-write and rename-in events
//!   become work for the processor at once (events are hints; the rescan
//!   catches what they miss);
//! - the **mail** worker: a pass over the queue every `[mail] poll_secs`;
//! - the **SFTP** server, when enabled;
//! - systemd integration: READY once started, WATCHDOG pings from the
//!   processor loop (a stuck processor stops them), STOPPING on exit.
//!
//! SIGTERM/SIGINT stop it cleanly: no new file is taken, the file in hand is
//! finished (a file in flight is never left half-decided: see
//! [`crate::pipeline`]), workers get an exit deadline. SIGHUP reloads the
//! configuration: billing rules, limits and mail settings apply to the next
//! file; paths and the SFTP address need a restart (logged).

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, SignalKind};

use crate::clock::Clock;
use crate::config::Config;
use crate::intake::{self, Settle};
use crate::pipeline::{Channel, Pipeline, SpoolLock};

mod sftp_glue;

/// Work for the processor thread.
pub enum Work {
    /// A file the watcher or the SFTP server says is complete.
    File(PathBuf, Channel),
    /// A folder just created or renamed in: its files arrived before its
    /// watch, so they are listed.
    Folder(PathBuf),
    /// Look at every folder now.
    Rescan,
    /// A reloaded configuration.
    Reload(Box<Config>),
    Shutdown,
}

/// Paths of SFTP uploads about to be renamed into an inbound folder: a file
/// taken from there is recorded as received by SFTP, whichever signal (the
/// watcher's or the SFTP server's) reaches the processor first.
pub type Arriving = Arc<std::sync::Mutex<std::collections::HashSet<String>>>;

/// `<provider>/<name>` of an inbound path: the same key whatever the form
/// (relative or absolute) the spool path was written in.
pub fn arriving_key(path: &std::path::Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let provider = path
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    format!("{provider}/{name}")
}

/// How long workers get to stop after SIGTERM.
const EXIT_DEADLINE: Duration = Duration::from_secs(8);
/// A file seen only by a rescan is taken once unchanged for this long.
const SETTLE: Duration = Duration::from_secs(2);

pub fn serve(config_path: Option<PathBuf>, cfg: Config, clock: Clock) -> Result<()> {
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "ppas-gateway starting");
    tracing::info!(spool = %cfg.paths.spool.display(), database = %cfg.paths.database.display(), "phase 1/4: spool and state");
    let lock = SpoolLock::acquire(&cfg)?;
    let pipeline = Pipeline::open(cfg.clone(), clock)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("ppas-io")
        .build()
        .context("cannot start the async runtime")?;
    let result = rt.block_on(run(config_path, cfg, clock, pipeline));
    rt.shutdown_timeout(Duration::from_secs(1));
    drop(lock);
    tracing::info!("ppas-gateway stopped");
    result
}

async fn run(config_path: Option<PathBuf>, cfg: Config, clock: Clock, pipeline: Pipeline) -> Result<()> {
    let (work_tx, work_rx) = mpsc::channel::<Work>();
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);

    tracing::info!("phase 2/4: recovery and processor");
    let arriving: Arriving = Arc::default();
    let rescan = Duration::from_secs(cfg.intake.rescan_secs);
    let processor = std::thread::Builder::new()
        .name("processor".into())
        .spawn({
            let arriving = arriving.clone();
            move || processor(pipeline, work_rx, rescan, arriving)
        })
        .context("cannot start the processor")?;

    tracing::info!("phase 3/4: drop-folder watch, mail, SFTP");
    let spool = crate::spool::Spool::new(&cfg.paths.spool);
    let _watcher = if cfg.intake.watch {
        let tx = work_tx.clone();
        let caisse = spool.root().join("caisse/inbound");
        match intake::watch(&[spool.inbound(), caisse.clone()], move |ev| match ev {
            Ok(ev) => {
                if ev.need_rescan() {
                    let _ = tx.send(Work::Rescan);
                }
                for p in intake::ready_paths(&ev) {
                    let _ = tx.send(if p.starts_with(&caisse) {
                        Work::Rescan
                    } else {
                        Work::File(p, Channel::Depot)
                    });
                }
                for dir in intake::new_folders(&ev) {
                    if !dir.starts_with(&caisse) {
                        let _ = tx.send(Work::Folder(dir));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "watch error: rescanning");
                let _ = tx.send(Work::Rescan);
            }
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "drop folders cannot be watched: periodic rescan only");
                None
            }
        }
    } else {
        None
    };
    let shared_cfg = Arc::new(cfg.clone());
    let mail = tokio::spawn(crate::mail::deliver::worker(
        shared_cfg.clone(),
        clock,
        Duration::from_secs(cfg.mail.poll_secs),
        shutdown_rx.clone(),
    ));
    let sftp = if cfg.sftp.enabled {
        Some(sftp_glue::start(&cfg, clock, work_tx.clone(), arriving.clone(), shutdown_rx.clone()).await?)
    } else {
        None
    };
    let (sftp, _sftp_reload) = sftp.unzip();

    tracing::info!("phase 4/4: ready");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("prêt")]);

    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
            _ = hup.recv() => reload(config_path.as_deref(), &cfg, &work_tx),
        }
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    let _ = shutdown_tx.send(true);
    let _ = work_tx.send(Work::Shutdown);
    let deadline = Instant::now() + EXIT_DEADLINE;
    let joined = tokio::task::spawn_blocking(move || processor.join());
    match tokio::time::timeout(EXIT_DEADLINE, joined).await {
        Ok(Ok(Ok(()))) => tracing::info!("processor stopped"),
        _ => tracing::warn!("processor did not stop in time; the file in hand will be finished at next start"),
    }
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(200));
    if tokio::time::timeout(left, mail).await.is_err() {
        tracing::warn!("mail worker did not stop in time");
    }
    if let Some(s) = sftp {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(200));
        if tokio::time::timeout(left, s).await.is_err() {
            tracing::warn!("SFTP server did not stop in time");
        }
    }
    Ok(())
}

fn reload(path: Option<&std::path::Path>, running: &Config, work: &mpsc::Sender<Work>) {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
    match Config::load(path) {
        Ok(new) => {
            if new.paths.spool != running.paths.spool || new.paths.database != running.paths.database {
                tracing::warn!("SIGHUP: [paths] changed: restart the service to apply them");
            }
            if new.sftp.listen != running.sftp.listen || new.sftp.host_key != running.sftp.host_key {
                tracing::warn!("SIGHUP: [sftp] listen/host_key changed: restart the service to apply them");
            }
            let _ = work.send(Work::Reload(Box::new(new)));
            tracing::info!("SIGHUP: configuration reloaded");
        }
        Err(e) => tracing::error!(
            error = format!("{e:#}"),
            "SIGHUP: configuration refused, keeping the running one"
        ),
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
}

/// The processor loop: the only place billing files are decided.
fn processor(mut p: Pipeline, rx: mpsc::Receiver<Work>, rescan: Duration, arriving: Arriving) {
    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
    let tick = watchdog.map_or(rescan, |w| w.min(rescan));
    let pet = || {
        if watchdog.is_some() {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
        }
    };
    match p.recover() {
        Ok((n, _)) if n > 0 => tracing::info!(files = n, "recovery: files in flight finished"),
        Ok(_) => {}
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "recovery failed; will retry at next rescan");
            p.note_error("processor", &format!("recovery: {e:#}"));
        }
    }
    let mut settle = Settle::default();
    let mut last_scan: Option<Instant> = None;
    loop {
        pet();
        let due = last_scan.is_none_or(|t| t.elapsed() >= rescan);
        let work = if due {
            Work::Rescan
        } else {
            match rx.recv_timeout(tick) {
                Ok(w) => w,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        };
        match work {
            Work::Shutdown => break,
            Work::Reload(cfg) => {
                p.cfg = *cfg;
            }
            Work::File(path, channel) => {
                settle.forget(&path);
                process_guarded(&mut p, &path, channel, &arriving);
            }
            Work::Folder(dir) => {
                for path in intake::files_in(&dir) {
                    // Still being written: its close is now watched.
                    if crate::pipeline::open_for_writing(&path) {
                        continue;
                    }
                    settle.forget(&path);
                    process_guarded(&mut p, &path, Channel::Depot, &arriving);
                }
            }
            Work::Rescan => {
                last_scan = Some(Instant::now());
                if let Err(e) = rescan_once(&mut p, &mut settle, &arriving) {
                    tracing::error!(error = format!("{e:#}"), "rescan failed");
                    p.note_error("processor", &format!("rescan: {e:#}"));
                }
            }
        }
    }
    tracing::info!("processor: stopping");
}

fn rescan_once(p: &mut Pipeline, settle: &mut Settle, arriving: &Arriving) -> Result<()> {
    p.recover()?;
    crate::pipeline::import_caisse_drops(p)?;
    for path in settle.settled(p.waiting()?, SETTLE) {
        // Unchanged for a while yet still open: a writer that stalled. Its
        // close will come as an event (or the next rescan sees it again).
        if crate::pipeline::open_for_writing(&path) {
            settle.forget(&path);
            continue;
        }
        process_guarded(p, &path, Channel::Depot, arriving);
    }
    Ok(())
}

/// Processes one file; an error or even a bug in the pipeline is logged and
/// counted, never fatal to the daemon (the file is retried at next rescan).
fn process_guarded(p: &mut Pipeline, path: &std::path::Path, channel: Channel, arriving: &Arriving) {
    let by_sftp = arriving
        .lock()
        .map(|mut s| s.remove(&arriving_key(path)))
        .unwrap_or(false);
    let channel = if by_sftp { Channel::Sftp } else { channel };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.process_file(path, channel)));
    let msg = match r {
        Ok(Ok(_)) => return,
        Ok(Err(e)) => format!("{e:#}"),
        Err(_) => "internal error (panic) while processing".to_string(),
    };
    tracing::error!(file = %path.display(), error = msg, "file not processed; retried at next rescan");
    p.note_error("processor", &format!("{}: {msg}", path.display()));
}
