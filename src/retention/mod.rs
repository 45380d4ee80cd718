//! Retention (spec §6, `purge`): what is past its keeping period is removed,
//! never what is still owed.

use std::fmt;

use anyhow::Result;
use rusqlite::Connection;

use crate::clock::Clock;
use crate::config::Config;

/// What a run removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeSummary {
    pub files: usize,
    pub history: usize,
}

impl fmt::Display for PurgeSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} fichier(s) et {} entrée(s) d'historique supprimés",
            self.files, self.history
        )
    }
}

/// Removes what is past its keeping period.
pub fn purge(_conn: &mut Connection, _cfg: &Config, _clock: &Clock) -> Result<PurgeSummary> {
    anyhow::bail!("retention is not available in this build")
}
