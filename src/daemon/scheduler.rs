//! The scheduler: one thread that tells when a job is due and hands it to
//! the processor ([`Work::Job`]), which runs and records it.
//!
//! In: the schedules (`[jobs]`, handed again by the processor after a
//! SIGHUP, once it has taken them up), the one clock, and a read
//! connection to the state (what has run, since when each schedule is
//! followed). Out: at most one occurrence per job at a time — the latest
//! due one, when it has no run ([`crate::jobs::schedule::owed`]). At start
//! that is the catch-up of an occurrence missed while the daemon was
//! stopped, once, and the log says so.
//!
//! It looks at the clock when the next occurrence is due, and at least
//! every minute (a clock set forward, a machine resumed from sleep). With
//! the clock frozen by `PPAS_GATEWAY_NOW` the time never comes: only what
//! is due at start (the catch-up) runs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use super::Work;
use crate::clock::Clock;
use crate::jobs::runs::{self, Cause};
use crate::jobs::schedule::{owed, Occurrence};
use crate::jobs::{Job, Schedules};

/// An occurrence handed to the processor, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub occurrence: Occurrence,
    pub cause: Cause,
}

/// What the scheduler is told.
pub enum Ctl {
    /// New schedules, already taken up in the state by the processor.
    Schedules(Schedules),
    /// SIGTERM: no new job.
    Stop,
}

/// The longest the scheduler sleeps without looking at the clock.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Starts the scheduler thread.
pub fn spawn(
    database: PathBuf,
    schedules: Schedules,
    clock: Clock,
    work: mpsc::Sender<Work>,
    ctl: mpsc::Receiver<Ctl>,
) -> Result<JoinHandle<()>> {
    let conn = crate::store::open_existing(&database)?;
    std::thread::Builder::new()
        .name("scheduler".into())
        .spawn(move || Scheduler::new(schedules, clock, conn).run(work, ctl))
        .context("cannot start the scheduler")
}

struct Scheduler {
    schedules: Schedules,
    clock: Clock,
    conn: rusqlite::Connection,
    /// The first look at the clock: an occurrence due before it was missed
    /// while the daemon was stopped.
    started: DateTime<Utc>,
    /// The latest occurrence handed per job (the processor may not have
    /// recorded it yet).
    handed: HashMap<Job, Occurrence>,
}

impl Scheduler {
    fn new(schedules: Schedules, clock: Clock, conn: rusqlite::Connection) -> Scheduler {
        Scheduler {
            schedules,
            started: clock.now(),
            clock,
            conn,
            handed: HashMap::new(),
        }
    }

    fn run(mut self, work: mpsc::Sender<Work>, ctl: mpsc::Receiver<Ctl>) {
        let frozen = matches!(self.clock, Clock::Fixed(_));
        let names: Vec<String> = self
            .schedules
            .iter()
            .map(|s| format!("{} \"{}\"", s.job, s.expr()))
            .collect();
        tracing::info!(
            jobs = names.join(", "),
            clock_frozen = frozen,
            "scheduler started (Europe/Paris wall-clock time)"
        );
        if frozen {
            tracing::info!("the clock is frozen (PPAS_GATEWAY_NOW): only the occurrences due at start are run");
        }
        let mut first = true;
        loop {
            let due = self.due();
            if first {
                tracing::info!(
                    due = due.len(),
                    "scheduler: job occurrences due at start handed to the processor"
                );
                first = false;
            }
            for (job, due) in due {
                if work.send(Work::Job(job, due)).is_err() {
                    return;
                }
                self.handed.insert(job, due.occurrence);
            }
            let wait = self.wait();
            match ctl.recv_timeout(wait) {
                Ok(Ctl::Schedules(s)) => {
                    tracing::info!("scheduler: new schedules");
                    self.schedules = s;
                }
                Ok(Ctl::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        tracing::info!("scheduler stopped");
    }

    /// The occurrences to hand now.
    fn due(&self) -> Vec<(Job, Due)> {
        let now = self.clock.now();
        let mut out = Vec::new();
        for s in self.schedules.iter() {
            let job = s.job;
            let since = match runs::since(&self.conn, job) {
                Ok(Some(t)) => t,
                // Not taken up yet (the processor is on it): next look.
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(
                        job = job.as_str(),
                        error = format!("{e:#}"),
                        "scheduler cannot read the state"
                    );
                    continue;
                }
            };
            let handed = self.handed.get(&job);
            let has_run = |o: &Occurrence| {
                handed.is_some_and(|h| h >= o)
                    || runs::has_run(&self.conn, job, o).unwrap_or_else(|e| {
                        tracing::error!(
                            job = job.as_str(),
                            error = format!("{e:#}"),
                            "scheduler cannot read the state"
                        );
                        true
                    })
            };
            let Some(o) = owed(s, since, now, has_run) else {
                continue;
            };
            let cause = if o.instant() <= self.started {
                tracing::info!(
                    job = job.as_str(),
                    occurrence = o.key(),
                    "missed while the daemon was stopped: caught up once now (not once per missed occurrence)"
                );
                Cause::CatchUp
            } else {
                Cause::Schedule
            };
            out.push((job, Due { occurrence: o, cause }));
        }
        out
    }

    /// How long to sleep: until the next occurrence, at most a minute.
    fn wait(&self) -> Duration {
        let now = self.clock.now();
        match self.schedules.next_instant(now) {
            Some(next) => (next - now)
                .to_std()
                .map(|d| d + Duration::from_millis(5))
                .unwrap_or(Duration::ZERO)
                .min(MAX_SLEEP),
            None => MAX_SLEEP,
        }
    }
}
