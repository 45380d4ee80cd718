//! The sections of the scheduled jobs and of operations: `[retention]`
//! (what the purge keeps), `[jobs]` (when each job runs) and `[metrics]`
//! (the monitoring endpoint). In: TOML through serde; out: typed values,
//! each validated by [`super::Config`]'s checks.

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// How long the `purge` job keeps things (spec §6), in months; `0` keeps
/// them for ever. A period runs in whole days of Europe/Paris: what dates
/// from day D goes on the first day after D + the period.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Files in `outbound/<provider>/` (reports, bordereaux, documents),
    /// from their publication. The listings are rewritten, never removed.
    pub outbound_months: u32,
    /// Exchange-history entries.
    pub history_months: u32,
    /// Originals of received files kept under `archive/`, from the day they
    /// were done, and the caisse's files kept under `archive/caisse/`.
    pub archive_months: u32,
    /// Delivered e-mails in the queue, from their sending (unsent ones are
    /// never removed).
    pub mail_months: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            outbound_months: 12,
            history_months: 6,
            archive_months: 12,
            mail_months: 6,
        }
    }
}

impl Retention {
    /// Longest period accepted (50 years): beyond it, say 0 (for ever).
    pub const MAX_MONTHS: u32 = 600;
}

/// When the scheduled jobs run (spec §6): one cron expression per job
/// (`minute hour day-of-month month day-of-week`), in Europe/Paris wall-clock
/// time; an empty string disables the job. See [`crate::jobs::schedule`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Jobs {
    /// The hourly check: a convention with 50 due invoice lines or more.
    pub invoice_threshold: String,
    /// The weekly invoicing of every due line.
    pub invoice_weekly: String,
    /// Orders without attestation 60 days after their date.
    pub relances: String,
    /// Payment statements due for publication.
    pub bordereaux: String,
    /// Retention: what is past its keeping period.
    pub purge: String,
}

impl Default for Jobs {
    fn default() -> Self {
        Jobs {
            invoice_threshold: "0 * * * *".into(),
            invoice_weekly: "0 6 * * 1".into(),
            relances: "0 7 * * *".into(),
            bordereaux: "15 * * * *".into(),
            purge: "30 3 * * *".into(),
        }
    }
}

impl Jobs {
    /// The expression of `job` (`None` for `mail`, which `[mail] poll_secs`
    /// paces); an empty one means disabled.
    pub fn expr(&self, job: crate::jobs::Job) -> Option<&str> {
        use crate::jobs::Job;
        Some(match job {
            Job::InvoiceThreshold => &self.invoice_threshold,
            Job::InvoiceWeekly => &self.invoice_weekly,
            Job::Relances => &self.relances,
            Job::Bordereaux => &self.bordereaux,
            Job::Purge => &self.purge,
            Job::Mail => return None,
        })
    }
}

/// The Prometheus `/metrics` and `/healthz` endpoint of `serve`
/// ([`crate::metrics`]). Off unless `listen` is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    /// Address:port the HTTP endpoint listens on (`127.0.0.1:9187`); absent:
    /// no endpoint.
    pub listen: Option<String>,
    /// Allow a `listen` address other than loopback. The endpoint has no
    /// authentication and tells the state of the exchanges (volumes, error
    /// rates, queue depths): exposing it beyond the host is a decision.
    pub allow_remote: bool,
}

impl Metrics {
    /// The address to listen on, when the endpoint is on; an address that
    /// is not loopback is refused unless `allow_remote`.
    pub fn address(&self) -> Result<Option<SocketAddr>> {
        let Some(listen) = &self.listen else {
            return Ok(None);
        };
        let addr = listen
            .parse::<SocketAddr>()
            .with_context(|| format!("[metrics] listen: {listen:?} is not an address:port"))?;
        if !addr.ip().is_loopback() && !self.allow_remote {
            bail!(
                "[metrics] listen: {listen} is not a loopback address; the endpoint has no authentication \
                 and tells the state of the exchanges: set allow_remote = true to expose it anyway"
            );
        }
        Ok(Some(addr))
    }
}
