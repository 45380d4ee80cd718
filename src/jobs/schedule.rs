//! When a job is due: its cron expression (`[jobs]` in the configuration)
//! read in Europe/Paris wall-clock time.
//!
//! An **occurrence** is a wall-clock minute the expression names
//! (`2026-10-25T02:30`), not an instant: on the fall-back Sunday the two
//! instants that read 02:30 are one occurrence, run at the first of them;
//! on the spring-forward Sunday a time that does not exist (02:30) is run
//! at the first instant after the gap (03:00 local). Occurrences that fall
//! at the same instant (an hourly job's 02:00 and 03:00 on the
//! spring-forward Sunday) are one run, the later one's: at any instant a job
//! owes at most its latest due occurrence.
//!
//! The rule of what is owed ([`owed`]) is pure: the schedule, since when the
//! daemon follows it, the instant, and whether an occurrence has a run.

use anyhow::{anyhow, Result};
use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Europe::Paris;

use super::cron::Cron;
use super::Job;

/// A wall-clock minute of Europe/Paris that a schedule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Occurrence(NaiveDateTime);

/// How an occurrence is written in `job_runs` and shown: `2026-10-25T02:30`.
const KEY_FORMAT: &str = "%Y-%m-%dT%H:%M";

impl Occurrence {
    pub fn new(local: NaiveDateTime) -> Occurrence {
        Occurrence(local)
    }

    /// Reads a key written by [`Occurrence::key`].
    pub fn parse(key: &str) -> Option<Occurrence> {
        NaiveDateTime::parse_from_str(key, KEY_FORMAT).ok().map(Occurrence)
    }

    /// The Paris wall-clock time.
    pub fn local(&self) -> NaiveDateTime {
        self.0
    }

    /// The key of the occurrence in `job_runs`.
    pub fn key(&self) -> String {
        self.0.format(KEY_FORMAT).to_string()
    }

    /// The instant it is due: see [`instant_of`].
    pub fn instant(&self) -> DateTime<Utc> {
        instant_of(self.0)
    }
}

impl std::fmt::Display for Occurrence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

/// The instant a Paris wall-clock time stands for: itself when it exists
/// once; the earlier of the two in the autumn fold; the end of the gap
/// (the first instant after it: 03:00 local) for a time the spring change
/// skips.
pub fn instant_of(local: NaiveDateTime) -> DateTime<Utc> {
    if let Some(t) = Paris.from_local_datetime(&local).earliest() {
        return t.with_timezone(&Utc);
    }
    // In the gap: the first wall-clock minute after it that exists is the
    // instant the clocks jumped to (Paris's gaps are whole hours; a day of
    // margin is more than any zone needs).
    let mut t = local;
    for _ in 0..24 * 60 {
        t += Duration::minutes(1);
        if let Some(i) = Paris.from_local_datetime(&t).earliest() {
            return i.with_timezone(&Utc);
        }
    }
    // Unreachable for Europe/Paris; reading the time as UTC+1 keeps a value.
    Utc.from_utc_datetime(&(local - Duration::hours(1)))
}

/// The Paris wall-clock time of an instant.
pub fn local_of(t: DateTime<Utc>) -> NaiveDateTime {
    t.with_timezone(&Paris).naive_local()
}

/// How far ahead of the wall clock an occurrence can already be due: in the
/// autumn fold the wall clock reads 02:10 a second time while 02:40 ran in
/// the first pass (the fold is one hour in Paris; three are allowed).
const FOLD_MARGIN: i64 = 3;

/// One job's schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub job: Job,
    cron: Cron,
}

impl Schedule {
    pub fn new(job: Job, cron: Cron) -> Schedule {
        Schedule { job, cron }
    }

    /// The cron expression as configured.
    pub fn expr(&self) -> &str {
        self.cron.as_str()
    }

    /// The latest occurrence due at `now` (its instant at or before `now`).
    pub fn latest_due(&self, now: DateTime<Utc>) -> Option<Occurrence> {
        // Instants never go backwards as wall-clock times go forward, so
        // the first one found walking back from the margin is the latest.
        let mut at = local_of(now) + Duration::hours(FOLD_MARGIN);
        loop {
            let local = self.cron.latest_at_or_before(at)?;
            if instant_of(local) <= now {
                return Some(Occurrence(local));
            }
            at = local - Duration::minutes(1);
        }
    }

    /// The first occurrence due after `now` (its instant strictly later).
    pub fn next_due(&self, now: DateTime<Utc>) -> Option<Occurrence> {
        // Every wall-clock time up to now's is due already; in the fold,
        // so are some after it: those are skipped.
        let mut at = local_of(now);
        loop {
            let local = self.cron.next_after(at)?;
            if instant_of(local) > now {
                return Some(Occurrence(local));
            }
            at = local;
        }
    }

    /// Occurrences whose instant is in `(from, to]`, in wall-clock order,
    /// at most `max` (those sharing an instant, in the spring gap, each
    /// listed): for tests, and to count what a catch-up covers.
    pub fn between(&self, from: DateTime<Utc>, to: DateTime<Utc>, max: usize) -> Vec<Occurrence> {
        // A wall-clock time up to from's is due at or before `from`; one up
        // to the margin after to's may be due by `to` (the fold).
        let end = local_of(to) + Duration::hours(FOLD_MARGIN);
        let mut local = local_of(from);
        let mut out = Vec::new();
        while out.len() < max {
            let Some(n) = self.cron.next_after(local) else { break };
            if n > end {
                break;
            }
            let i = instant_of(n);
            if i > from && i <= to {
                out.push(Occurrence(n));
            }
            local = n;
        }
        out
    }
}

/// Every job's schedule (`None`: not scheduled — disabled, or `mail`, which
/// the mail worker runs every `[mail] poll_secs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedules(Vec<(Job, Option<Schedule>)>);

impl Schedules {
    /// Reads `[jobs]`; an expression that does not parse names its key.
    pub fn from_config(cfg: &crate::config::Jobs) -> Result<Schedules> {
        let mut out = Vec::new();
        for job in Job::ALL {
            let schedule = match cfg.expr(job) {
                None => None,
                Some(e) if e.trim().is_empty() => None,
                Some(e) => {
                    let cron = e
                        .parse::<Cron>()
                        .map_err(|why| anyhow!("[jobs] {}: {e:?} is not a cron expression: {why}", job.config_key()))?;
                    Some(Schedule::new(job, cron))
                }
            };
            out.push((job, schedule));
        }
        Ok(Schedules(out))
    }

    pub fn get(&self, job: Job) -> Option<&Schedule> {
        self.0.iter().find(|(j, _)| *j == job).and_then(|(_, s)| s.as_ref())
    }

    /// The scheduled jobs.
    pub fn iter(&self) -> impl Iterator<Item = &Schedule> {
        self.0.iter().filter_map(|(_, s)| s.as_ref())
    }

    /// The first instant after `now` at which some job is due.
    pub fn next_instant(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.iter().filter_map(|s| s.next_due(now)).map(|o| o.instant()).min()
    }
}

/// What a job owes at `now`: its latest due occurrence, when the daemon
/// followed this schedule at that instant (strictly after `since`, the
/// instant it started following it) and the occurrence has no run. Never
/// more than one: occurrences missed while the daemon was stopped are
/// caught up once, by the latest.
pub fn owed(
    schedule: &Schedule,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    has_run: impl FnOnce(&Occurrence) -> bool,
) -> Option<Occurrence> {
    let o = schedule.latest_due(now)?;
    (o.instant() > since && !has_run(&o)).then_some(o)
}

#[cfg(test)]
mod tests;
