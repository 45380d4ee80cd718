//! Invoicing (spec §6): invoice lines due 48 hours after their attestation's
//! transmission become global invoices per convention, written to
//! `outbox/<id-cram>/invoices/` and delivered once.

use std::fmt;

use anyhow::Result;
use rusqlite::Connection;

use crate::clock::Clock;
use crate::config::Config;

/// Which run: the hourly 50-line check, or the weekly run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Threshold,
    Weekly,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvoiceSummary {
    pub invoices: usize,
    pub lines: usize,
}

impl fmt::Display for InvoiceSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} facture(s), {} ligne(s) facturée(s)", self.invoices, self.lines)
    }
}

/// Runs invoicing in `mode`.
pub fn run(_conn: &mut Connection, _cfg: &Config, _clock: &Clock, mode: Mode) -> Result<InvoiceSummary> {
    anyhow::bail!("invoicing ({mode:?}) is not available in this build")
}
