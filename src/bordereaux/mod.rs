//! Payment statements ("bordereaux de paiement", spec §6): imported payments
//! grouped per convention and payment reference, published 48 hours after
//! the payment date in `outbound/<provider>/bordereaux/`.

use std::fmt;

use anyhow::Result;
use rusqlite::Connection;

use crate::clock::Clock;
use crate::config::Config;

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BordereauxSummary {
    pub published: usize,
}

impl fmt::Display for BordereauxSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bordereau(x) publié(s)", self.published)
    }
}

/// Publishes the statements that are due.
pub fn run(_conn: &mut Connection, _cfg: &Config, _clock: &Clock) -> Result<BordereauxSummary> {
    anyhow::bail!("payment statements are not available in this build")
}
