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
//! - the **scheduler** ([`scheduler`]): tells when a job's occurrence is
//!   due (`[jobs]`, Europe/Paris) and hands it to the processor, which runs
//!   and records it like any other work (at start: the catch-up of what was
//!   missed while stopped, and the runs a stop interrupted, once);
//! - the **watchdog** ([`watchdog`]): WATCHDOG pings to systemd while the
//!   processor is idle or making progress, so a long backlog never gets the
//!   daemon killed and a stuck processor does;
//! - the **status line** ([`status_line`]): the queue in systemd's
//!   `STATUS=`, when it changes, at most once a second;
//! - the **metrics endpoint** ([`crate::metrics::server`]), when `[metrics]
//!   listen` is set: `/metrics` and `/healthz`, whose processor check is
//!   the watchdog's.
//!
//! READY is sent once every phase is through (the recovery is under way in
//! the processor by then: a long backlog is work, fed to the watchdog).
//!
//! SIGTERM/SIGINT stop it cleanly: no new file is taken, the file in hand is
//! finished (a file in flight is never left half-decided: see
//! [`crate::pipeline`]), no new job starts and a job in hand gets
//! [`JOB_EXIT_DEADLINE`] to finish (past it, its run stays recorded as
//! started and is run again at the next start), workers get an exit
//! deadline. SIGHUP reloads the
//! configuration ([`reload`]): billing rules, limits, intake, mail, SFTP
//! limits and the log level apply at once; the keys that need a restart
//! are named in the log.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, SignalKind};

use crate::clock::Clock;
use crate::config::Config;
use crate::intake;
use crate::pipeline::{Channel, Pipeline, SpoolLock};

mod processor;
pub mod reload;
pub mod scheduler;
mod sftp_glue;
pub mod status_line;
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
    /// A job's occurrence is due (from the scheduler, or a run to take
    /// again at start).
    Job(crate::jobs::Job, scheduler::Due),
    Shutdown,
}

/// What the daemon and its processor share about jobs: SIGTERM sets
/// `stopping` (no new job starts), the processor names the job in hand
/// (the daemon then waits for it longer).
#[derive(Default)]
pub struct JobsState {
    pub stopping: AtomicBool,
    pub in_hand: Mutex<Option<crate::jobs::Job>>,
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

/// How long a job in hand at SIGTERM gets to finish: within the unit's
/// `TimeoutStopSec=15`. A job still running then is left to the next start,
/// which runs its occurrence again (once).
pub const JOB_EXIT_DEADLINE: Duration = Duration::from_secs(12);

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

async fn run(config_path: Option<PathBuf>, cfg: Config, clock: Clock, mut pipeline: Pipeline) -> Result<()> {
    let (work_tx, work_rx) = mpsc::channel::<Work>();
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let (sched_tx, sched_rx) = mpsc::channel::<scheduler::Ctl>();
    let jobs = Arc::new(JobsState::default());

    tracing::info!("phase 2/4: recovery and processor");
    // The schedules taken up, and the job runs a stop interrupted settled,
    // before anything runs: those to run again go first.
    let schedules = crate::jobs::Schedules::from_config(&cfg.jobs)?;
    for (job, occurrence) in crate::jobs::runs::take_up(&mut pipeline.conn, &clock, &schedules)? {
        let due = scheduler::Due {
            occurrence,
            cause: crate::jobs::Cause::Schedule,
        };
        let _ = work_tx.send(Work::Job(job, due));
    }
    // Fed from now on: the recovery of a long backlog is work, not a hang.
    let watchdog = watchdog::spawn(pipeline.progress.clone(), shutdown_rx.clone());
    let progress = pipeline.progress.clone();
    let arriving: Arriving = Arc::default();
    let processor = std::thread::Builder::new()
        .name("processor".into())
        .spawn({
            let arriving = arriving.clone();
            let sched_tx = sched_tx.clone();
            let jobs = jobs.clone();
            move || processor::Processor::new(pipeline, work_rx, arriving, sched_tx, jobs).run()
        })
        .context("cannot start the processor")?;

    tracing::info!("phase 3/4: drop-folder watch, mail, SFTP, scheduler, metrics");
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
    let scheduler = scheduler::spawn(cfg.paths.database.clone(), schedules, clock, work_tx.clone(), sched_rx)?;
    let metrics = match cfg.metrics.address()? {
        Some(addr) => {
            let server = crate::metrics::server::Server::bind(addr).await?;
            // The watchdog's rule: a busy processor without progress that long is stuck.
            let stall = watchdog::stall_limit(sd_notify::watchdog_enabled().unwrap_or_default());
            let health = crate::metrics::server::Health::new(progress, stall, cfg.paths.database.clone());
            tracing::info!(
                stall_secs = stall.as_secs(),
                "metrics endpoint listening on {} (GET /metrics, GET /healthz)",
                server.local_addr()
            );
            Some(tokio::spawn(server.run(
                crate::metrics::global(),
                health,
                mail_cfg_tx.subscribe(),
                shutdown_rx.clone(),
            )))
        }
        None => None,
    };
    let status_cfg = mail_cfg_tx.subscribe();
    let mut reloaders = reload::Reloaders {
        running: cfg.clone(),
        processor: work_tx.clone(),
        mail: mail_cfg_tx,
        sftp: sftp_reload,
    };

    tracing::info!("phase 4/4: ready");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("prêt")]);
    // From now on the status line tells the queue.
    let status_line = status_line::spawn(status_cfg, shutdown_rx.clone());

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
    // No new job from here on; the one in hand (if any) finishes.
    jobs.stopping.store(true, Ordering::SeqCst);
    let _ = sched_tx.send(scheduler::Ctl::Stop);
    let _ = shutdown_tx.send(true);
    let _ = work_tx.send(Work::Shutdown);
    let in_hand = jobs.in_hand.lock().map(|j| *j).unwrap_or(None);
    let processor_deadline = match in_hand {
        Some(job) => {
            tracing::info!(
                job = job.as_str(),
                deadline_secs = JOB_EXIT_DEADLINE.as_secs(),
                "a job is in hand: waiting for it to finish"
            );
            JOB_EXIT_DEADLINE
        }
        None => EXIT_DEADLINE,
    };
    let deadline = Instant::now() + processor_deadline;
    let joined = tokio::task::spawn_blocking(move || processor.join());
    match tokio::time::timeout(processor_deadline, joined).await {
        Ok(Ok(Ok(()))) => tracing::info!("processor stopped"),
        _ => {
            tracing::warn!("processor did not stop in time; the file or job in hand will be taken again at next start")
        }
    }
    // It is waiting on its channel, or about to hand work nobody takes.
    let _ = tokio::task::spawn_blocking(move || scheduler.join()).await;
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
    for task in [watchdog, metrics, status_line].into_iter().flatten() {
        task.abort();
    }
    Ok(())
}
