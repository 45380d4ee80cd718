//! `serve`: the daemon. Start-up as logged phases, then workers until
//! SIGTERM:
//!
//! - the **processor** ([`processor`]; one OS thread, the only writer of
//!   billing state): recovery first, then every file the intake hands it,
//!   and a full rescan of the drop folders every `[intake] rescan_secs`;
//! - the **watcher** (`notify`): close-after-write and rename-in events
//!   become work for the processor at once (events are hints; the rescan
//!   catches what they miss, and [`crate::intake::Settle`] decides when a
//!   file is complete);
//! - the **mail** worker: a pass over the queue every `[mail] poll_secs`;
//! - the **SFTP** server, when enabled;
//! - the **watchdog** ([`watchdog`]): WATCHDOG pings to systemd while the
//!   processor is idle or making progress, so a long backlog never gets the
//!   daemon killed and a stuck processor does.
//!
//! SIGTERM/SIGINT stop it cleanly: no new file is taken, the file in hand is
//! finished (a file in flight is never left half-decided: see
//! [`crate::pipeline`]), workers get an exit deadline. SIGHUP reloads the
//! configuration ([`reload`]): billing rules, limits, intake, mail, SFTP
//! limits and the log level apply at once; the keys that need a restart
//! are named in the log.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, SignalKind};

use crate::clock::Clock;
use crate::config::Config;
use crate::intake;
use crate::pipeline::{Channel, Pipeline, SpoolLock};

mod processor;
pub mod reload;
mod sftp_glue;
pub mod watchdog;

/// Work for the processor thread.
pub enum Work {
    /// A file the SFTP server completed, or that the watcher saw closed
    /// after writing (taken once quiet: the writer may open it again).
    File(PathBuf, Channel),
    /// A file renamed into a drop folder: complete (spec §2), taken at once
    /// unless someone still holds it open for writing.
    Renamed(PathBuf),
    /// A folder just created or renamed in: its files arrived before its
    /// watch, so they are listed.
    Folder(PathBuf),
    /// Look at every folder now.
    Rescan,
    /// Something changed in the caisse's drop folders.
    Caisse,
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
    // Fed from now on: the recovery of a long backlog is work, not a hang.
    let watchdog = watchdog::spawn(pipeline.progress.clone(), shutdown_rx.clone());
    let arriving: Arriving = Arc::default();
    let processor = std::thread::Builder::new()
        .name("processor".into())
        .spawn({
            let arriving = arriving.clone();
            move || processor::Processor::new(pipeline, work_rx, arriving).run()
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
                let renamed = intake::renamed_in(&ev.kind);
                for p in intake::ready_paths(&ev) {
                    let _ = tx.send(if p.starts_with(&caisse) {
                        Work::Caisse
                    } else if renamed {
                        Work::Renamed(p)
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
    // The mail worker reads the latest configuration at each pass.
    let (mail_cfg_tx, mail_cfg_rx) = tokio::sync::watch::channel(Arc::new(cfg.clone()));
    let mail = tokio::spawn(crate::mail::deliver::worker(mail_cfg_rx, clock, shutdown_rx.clone()));
    let sftp = if cfg.sftp.enabled {
        Some(sftp_glue::start(&cfg, clock, work_tx.clone(), arriving.clone(), shutdown_rx.clone()).await?)
    } else {
        None
    };
    let (sftp, sftp_reload) = sftp.unzip();
    let mut reloaders = reload::Reloaders {
        running: cfg.clone(),
        processor: work_tx.clone(),
        mail: mail_cfg_tx,
        sftp: sftp_reload,
    };

    tracing::info!("phase 4/4: ready");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("prêt")]);

    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
            _ = hup.recv() => reloaders.reload(config_path.as_deref()),
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
    if let Some(w) = watchdog {
        w.abort();
    }
    Ok(())
}
