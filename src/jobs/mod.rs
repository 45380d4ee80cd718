//! The scheduled jobs of spec §6, by name: what `ppas-gateway run JOB` and
//! the daemon's scheduler run.
//!
//! In: a job and the state. Out: what the run did, in one line for the log,
//! the history and the command line. Every job is idempotent: a second run
//! at the same instant finds nothing more to do (a line is invoiced once, an
//! order flagged once, a statement published once).

use std::fmt;

use anyhow::Result;
use rusqlite::Connection;

use crate::clock::Clock;
use crate::config::Config;

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
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Runs `job` once on `conn` (the caller holds the spool lock, or is the
/// daemon's processor) and says what it did.
pub fn run(conn: &mut Connection, cfg: &Config, clock: &Clock, job: Job) -> Result<String> {
    Ok(match job {
        Job::InvoiceThreshold => {
            crate::invoicing::run(conn, cfg, clock, crate::invoicing::Mode::Threshold)?.to_string()
        }
        Job::InvoiceWeekly => crate::invoicing::run(conn, cfg, clock, crate::invoicing::Mode::Weekly)?.to_string(),
        Job::Relances => {
            let s = crate::habitat::relances::run(conn, cfg, clock)?;
            format!(
                "{} commande(s) signalée(s) en relance, {} e-mail(s) en file",
                s.flagged, s.mails
            )
        }
        Job::Bordereaux => crate::bordereaux::run(conn, cfg, clock)?.to_string(),
        Job::Purge => crate::retention::purge(conn, cfg, clock)?.to_string(),
        Job::Mail => {
            let s = crate::mail::deliver::run_once(conn, cfg, clock)?;
            format!(
                "e-mails : {} envoyé(s), {} à réessayer, {} en échec, {} différé(s)",
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
