//! The scheduled jobs of spec §6, by name: what `ppas-gateway run JOB` and
//! the daemon's scheduler run.
//!
//! In: a job and the state. Out: what the run did, in one line for the log,
//! the history and the command line. Every job is idempotent: a second run
//! at the same instant finds nothing more to do (a line is invoiced once, an
//! order flagged once, a statement published once).
//!
//! - [`cron`]: cron expressions, evaluated on wall-clock times;
//! - [`schedule`]: occurrences in Europe/Paris, what a job owes at an
//!   instant (the daylight-saving changes, the catch-up rule);
//! - [`runs`]: the record of every run (`job_runs`), exactly once per
//!   occurrence, and the one path every run takes, scheduled or by hand.

use std::fmt;

use anyhow::Result;
use rusqlite::Connection;

use crate::clock::Clock;
use crate::config::Config;

pub mod cron;
pub mod runs;
pub mod schedule;

pub use runs::{Cause, RunKey, RunRecord};
pub use schedule::{Occurrence, Schedule, Schedules};

/// A scheduled job (spec §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Job {
    /// The hourly check: a convention with 50 due invoice lines or more gets
    /// its global invoice.
    InvoiceThreshold,
    /// The weekly run: every due invoice line is invoiced.
    InvoiceWeekly,
    /// Orders 60 days old without an attestation are flagged and mailed.
    Relances,
    /// Payment statements published 48 hours after the payment date.
    Bordereaux,
    /// Retention: what is past its keeping period is removed.
    Purge,
    /// One pass over the mail queue.
    Mail,
}

impl Job {
    pub const ALL: [Job; 6] = [
        Job::InvoiceThreshold,
        Job::InvoiceWeekly,
        Job::Relances,
        Job::Bordereaux,
        Job::Purge,
        Job::Mail,
    ];

    /// The name `run JOB` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Job::InvoiceThreshold => "invoice-threshold",
            Job::InvoiceWeekly => "invoice-weekly",
            Job::Relances => "relances",
            Job::Bordereaux => "bordereaux",
            Job::Purge => "purge",
            Job::Mail => "mail",
        }
    }

    pub fn parse(s: &str) -> Option<Job> {
        Job::ALL.into_iter().find(|j| j.as_str() == s)
    }

    /// The names, for messages.
    pub fn names() -> String {
        Job::ALL.map(Job::as_str).join(", ")
    }

    /// Its key in `[jobs]` (`mail` has none: the mail worker runs every
    /// `[mail] poll_secs`).
    pub fn config_key(self) -> &'static str {
        match self {
            Job::InvoiceThreshold => "invoice_threshold",
            Job::InvoiceWeekly => "invoice_weekly",
            Job::Relances => "relances",
            Job::Bordereaux => "bordereaux",
            Job::Purge => "purge",
            Job::Mail => "mail",
        }
    }

    /// The application its history entries belong to: the ergothérapeute
    /// side's invoicing, statements and relances are `habitat`; the purge
    /// and the mail queue serve both sides and go under `aide-a-domicile`.
    pub fn application(self) -> &'static str {
        match self {
            Job::InvoiceThreshold | Job::InvoiceWeekly | Job::Relances | Job::Bordereaux => "habitat",
            Job::Purge | Job::Mail => "aide-a-domicile",
        }
    }
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Runs `job` once on `conn` (the caller holds the spool lock, or is the
/// daemon's processor) and says what it did, in one line that does not
/// name the job. Callers go through [`runs::execute`], which records the
/// run.
pub fn run(conn: &mut Connection, cfg: &Config, clock: &Clock, job: Job) -> Result<String> {
    Ok(match job {
        Job::InvoiceThreshold => {
            crate::invoicing::run(conn, cfg, clock, crate::invoicing::Mode::Threshold)?.to_string()
        }
        Job::InvoiceWeekly => crate::invoicing::run(conn, cfg, clock, crate::invoicing::Mode::Weekly)?.to_string(),
        Job::Relances => {
            let s = crate::habitat::relances::run(conn, cfg, clock)?;
            format!(
                "{} commande(s) signalée(s) en relance ({} prestataire(s)), {} e-mail(s) mis en file ; \
                 publié : {} document(s), {} liste(s)",
                s.flagged, s.providers, s.mails, s.published.documents, s.published.listings
            )
        }
        Job::Bordereaux => crate::bordereaux::run(conn, cfg, clock)?.to_string(),
        Job::Purge => crate::retention::purge(conn, cfg, clock)?.to_string(),
        Job::Mail => {
            let s = crate::mail::deliver::run_once(conn, cfg, clock)?;
            format!(
                "{} envoyé(s), {} à réessayer, {} en échec, {} différé(s)",
                s.sent, s.retried, s.failed, s.deferred
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for j in Job::ALL {
            assert_eq!(Job::parse(j.as_str()), Some(j));
        }
        assert_eq!(Job::parse("invoice"), None);
        assert!(Job::names().contains("invoice-threshold"));
    }
}
