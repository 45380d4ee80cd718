//! The processor: one OS thread, the only writer of billing state.
//!
//! In: [`Work`] from the watcher, the SFTP server and the signal handler.
//! Out: files taken and finished through the pipeline. It recovers first,
//! then loops: every dropped file is looked at when an event names it, at
//! every rescan and whenever a file still being written is due for another
//! look ([`Settle`], [`Recheck`]); SFTP uploads, which the gateway's own
//! server completed, are taken at once. Nothing that happens to one file —
//! an error, a panic — stops the loop: the pipeline counts it (and
//! quarantines a file that keeps failing), and this loop catches what is
//! left around the pipeline.
//!
//! Jobs come as work too ([`Work::Job`], from the scheduler): run through
//! [`crate::jobs::runs::execute`] (recorded, a failure or a panic is its
//! outcome and never the loop's), then the outbound folders are published.
//! A reloaded configuration's schedules are taken up here, then handed to
//! the scheduler.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::scheduler::{Ctl, Due};
use super::{arriving_key, Arriving, JobsState, Work};
use crate::intake::{self, Readiness, Recheck, Settle};
use crate::jobs::{runs, Job, RunKey};
use crate::pipeline::{Channel, Pipeline};

pub struct Processor {
    p: Pipeline,
    rx: mpsc::Receiver<Work>,
    arriving: Arriving,
    settle: Settle,
    later: Recheck,
    /// When the caisse folders are due for another look (a file there was
    /// still being written).
    caisse_due: Option<Instant>,
    last_scan: Option<Instant>,
    /// Files were finished since the outbound folders were last published:
    /// published as soon as no work is waiting.
    outbound_due: bool,
    /// The scheduler, told the schedules after a reload.
    scheduler: mpsc::Sender<Ctl>,
    jobs: Arc<JobsState>,
}

impl Processor {
    pub fn new(
        p: Pipeline,
        rx: mpsc::Receiver<Work>,
        arriving: Arriving,
        scheduler: mpsc::Sender<Ctl>,
        jobs: Arc<JobsState>,
    ) -> Processor {
        let settle = Settle::new(p.settle_period());
        Processor {
            p,
            rx,
            arriving,
            settle,
            later: Recheck::default(),
            caisse_due: None,
            last_scan: None,
            outbound_due: true,
            scheduler,
            jobs,
        }
    }

    fn rescan_every(&self) -> Duration {
        Duration::from_secs(self.p.cfg.intake.rescan_secs)
    }

    /// Runs until [`Work::Shutdown`] (or every sender is gone).
    pub fn run(mut self) {
        self.guarded("recovery", |me| {
            match me.p.recover(true) {
                Ok((n, failed)) if n + failed > 0 => {
                    tracing::info!(files = n, failed, "recovery: files in flight finished")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "recovery failed; will retry at next rescan");
                    me.p.note_error("processor", &format!("recovery: {e:#}"));
                }
            }
            // The files present at start are listed by the first rescan, now.
        });
        loop {
            let rescan = self.rescan_every();
            if self.last_scan.is_none_or(|t| t.elapsed() >= rescan) {
                self.last_scan = Some(Instant::now());
                self.guarded("rescan", Processor::rescan);
                continue;
            }
            for path in self.later.take_due() {
                self.consider(path);
            }
            if self.caisse_due.is_some_and(|t| t <= Instant::now()) {
                self.guarded("caisse drops", Processor::caisse);
            }
            let until_scan = rescan.saturating_sub(self.last_scan.map_or(Duration::ZERO, |t| t.elapsed()));
            let timeout = [
                Some(until_scan),
                self.later.next_in(),
                self.caisse_due.map(|t| t.saturating_duration_since(Instant::now())),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(until_scan);
            let work = if self.outbound_due {
                // What the finished files changed in the listings, once the
                // burst is over (no work waiting).
                match self.rx.try_recv() {
                    Ok(w) => w,
                    Err(mpsc::TryRecvError::Empty) => {
                        self.outbound_due = false;
                        self.guarded("outbound", |me| me.p.publish_outbound());
                        continue;
                    }
                    Err(mpsc::TryRecvError::Disconnected) => break,
                }
            } else {
                match self.rx.recv_timeout(timeout) {
                    Ok(w) => w,
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            };
            match work {
                Work::Shutdown => break,
                Work::Reload(cfg) => {
                    self.settle.set_quiet(Duration::from_millis(cfg.intake.settle_ms));
                    let jobs_changed = cfg.jobs != self.p.cfg.jobs;
                    self.p.cfg = *cfg;
                    if jobs_changed {
                        self.guarded("schedules", Processor::take_up_schedules);
                    }
                }
                Work::Job(job, due) => {
                    if self.jobs.stopping.load(Ordering::SeqCst) {
                        tracing::info!(
                            job = job.as_str(),
                            occurrence = due.occurrence.key(),
                            "stopping: job not started (its occurrence is owed at the next start)"
                        );
                    } else {
                        self.job(job, due);
                    }
                }
                Work::File(path, Channel::Sftp) => self.take(&path, Channel::Sftp),
                Work::File(path, Channel::Depot) => self.consider(path),
                Work::Renamed(path) => {
                    if crate::pipeline::open_for_writing(&path) {
                        self.consider(path);
                    } else {
                        self.take(&path, Channel::Depot);
                    }
                }
                Work::Folder(dir) => {
                    for path in intake::files_in(&dir) {
                        self.consider(path);
                    }
                }
                Work::Caisse => self.guarded("caisse drops", Processor::caisse),
                Work::Rescan => self.last_scan = None,
            }
        }
        tracing::info!("processor: stopping");
    }

    /// Runs one piece of work, marking the processor busy; a panic around
    /// the pipeline is logged and noted, never fatal to the loop.
    fn guarded(&mut self, what: &str, f: impl FnOnce(&mut Processor)) {
        self.p.progress.set_busy(true);
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| f(self))) {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(what, error = msg, "internal error (panic); the processor goes on");
            self.p
                .note_error("processor", &format!("{what}: internal error (panic): {msg}"));
        }
        self.p.progress.set_busy(false);
    }

    /// A job's occurrence: run and recorded (once: an occurrence already
    /// run is skipped), then what it changed published.
    fn job(&mut self, job: Job, due: Due) {
        if let Ok(mut h) = self.jobs.in_hand.lock() {
            *h = Some(job);
        }
        self.guarded("job", |me| {
            let p = &mut me.p;
            let key = RunKey::Occurrence(due.occurrence);
            match runs::execute(&mut p.conn, &p.cfg, &p.clock, job, key, due.cause, Some(&p.progress)) {
                Ok(Some(_)) => {}
                Ok(None) => tracing::debug!(
                    job = job.as_str(),
                    occurrence = due.occurrence.key(),
                    "occurrence already run"
                ),
                Err(e) => {
                    tracing::error!(job = job.as_str(), error = format!("{e:#}"), "job run not recorded");
                    p.note_error("jobs", &format!("{job} ({}): {e:#}", due.occurrence));
                }
            }
            p.publish_outbound();
        });
        if let Ok(mut h) = self.jobs.in_hand.lock() {
            *h = None;
        }
    }

    /// A reload changed `[jobs]`: the new schedules are followed from now
    /// on, then handed to the scheduler.
    fn take_up_schedules(&mut self) {
        let schedules = match crate::jobs::Schedules::from_config(&self.p.cfg.jobs) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "schedules not applied");
                return;
            }
        };
        match runs::follow(&self.p.conn, &schedules, self.p.clock.now()) {
            Ok(changed) => {
                for (job, expr) in changed {
                    tracing::info!(
                        job = job.as_str(),
                        schedule = expr.as_deref().unwrap_or("(disabled)"),
                        "job schedule changed: runs from its next occurrence"
                    );
                }
                let _ = self.scheduler.send(Ctl::Schedules(schedules));
            }
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "schedules not applied");
                self.p.note_error("jobs", &format!("schedules not applied: {e:#}"));
            }
        }
    }

    /// Recovery, what is owed to outbound folders, the caisse drops, then
    /// every dropped file.
    fn rescan(&mut self) {
        if let Err(e) = self.p.recover(false) {
            tracing::error!(error = format!("{e:#}"), "rescan: recovery failed");
            self.p.note_error("processor", &format!("rescan: {e:#}"));
        }
        // What failed to publish earlier is tried again.
        self.outbound_due = true;
        self.caisse();
        match self.p.waiting() {
            Ok(files) => {
                self.settle.retain(&files);
                for path in files {
                    self.consider(path);
                }
            }
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "rescan failed");
                self.p.note_error("processor", &format!("rescan: {e:#}"));
            }
        }
    }

    /// The caisse's reference-data drops that are complete.
    fn caisse(&mut self) {
        self.caisse_due = None;
        let mut summary = crate::pipeline::Summary::default();
        match crate::pipeline::import_caisse_drops(&mut self.p, &mut self.settle, &mut summary) {
            Ok(wait) => self.caisse_due = wait.map(|w| Instant::now() + w),
            Err(e) => {
                tracing::error!(
                    error = format!("{e:#}"),
                    "caisse drops not imported; retried at next rescan"
                );
                self.p.note_error("processor", &format!("caisse drops: {e:#}"));
            }
        }
    }

    /// A dropped file: taken when complete, looked at again later when not.
    /// A file the SFTP server is renaming in is complete by construction.
    fn consider(&mut self, path: PathBuf) {
        let by_sftp = self
            .arriving
            .lock()
            .map(|s| s.contains(&arriving_key(&path)))
            .unwrap_or(false);
        if by_sftp {
            self.take(&path, Channel::Sftp);
            return;
        }
        match self.settle.check(&path) {
            Readiness::Ready => self.take(&path, Channel::Depot),
            Readiness::Wait(w) => self.later.after(path, w),
            Readiness::Gone => {}
        }
    }

    /// Takes and finishes one file; an error taking it is logged and noted
    /// (the file stays where it is, and the next rescan sees it again).
    fn take(&mut self, path: &Path, channel: Channel) {
        let by_sftp = self
            .arriving
            .lock()
            .map(|mut s| s.remove(&arriving_key(path)))
            .unwrap_or(false);
        let channel = if by_sftp { Channel::Sftp } else { channel };
        self.settle.forget(path);
        tracing::debug!(file = %path.display(), channel = channel.as_str(), "file complete: taking it");
        let mut failed = None;
        self.outbound_due = true;
        self.guarded("file", |me| {
            if let Err(e) = me.p.process_file(path, channel) {
                failed = Some(format!("{e:#}"));
            }
        });
        if let Some(msg) = failed {
            tracing::error!(file = %path.display(), error = msg, "file not taken; retried at next rescan");
            self.p.note_error("processor", &format!("{}: {msg}", path.display()));
        }
    }
}
