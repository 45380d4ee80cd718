//! Caisse reference data (spec §5): a CSV file of one kind in, rows upserted
//! in the database out, with one history entry.
//!
//! All or nothing: the whole file is checked first, inside the same
//! IMMEDIATE transaction that applies it (so the checks against the
//! database see exactly the state the rows are applied to). If any row is
//! bad, the error lists every bad row and nothing is applied. The same
//! entry point serves `ppas-gateway import KIND FILE` and the
//! `caisse/inbound/KIND/` drop folder.

use std::fmt;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior};

use crate::config::Config;

mod beneficiaries;
pub mod fields;
mod providers;
pub mod table;

pub use table::RowError;

/// The kinds of reference data (spec §5), also the drop-folder names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Providers,
    Beneficiaries,
    Orders,
    Payments,
    ReportAnomalies,
    Evaluations,
    Decisions,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Providers,
        Kind::Beneficiaries,
        Kind::Orders,
        Kind::Payments,
        Kind::ReportAnomalies,
        Kind::Evaluations,
        Kind::Decisions,
    ];

    /// The kind named `s` (`providers`, `report-anomalies`, …).
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Providers => "providers",
            Kind::Beneficiaries => "beneficiaries",
            Kind::Orders => "orders",
            Kind::Payments => "payments",
            Kind::ReportAnomalies => "report-anomalies",
            Kind::Evaluations => "evaluations",
            Kind::Decisions => "decisions",
        }
    }

    /// Whether files of this kind are PDF documents rather than CSV.
    pub fn is_document(self) -> bool {
        matches!(self, Kind::Evaluations | Kind::Decisions)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Kind {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Kind> {
        Kind::parse(s).ok_or_else(|| {
            let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            anyhow::anyhow!("unknown import kind {s:?} (expected one of {})", names.join(", "))
        })
    }
}

/// What an applied import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub kind: Kind,
    /// Rows applied (data rows of the file).
    pub rows: usize,
    /// Rows whose key was not in the database.
    pub new: usize,
    /// Rows whose key was already there (overwritten with the file's values).
    pub updated: usize,
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} row{} applied ({} new, {} updated)",
            self.kind,
            self.rows,
            if self.rows == 1 { "" } else { "s" },
            self.new,
            self.updated
        )
    }
}

/// Why an import applied nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file has bad rows: every one is listed, nothing was applied.
    #[error("{}", invalid_text(.kind, .name, .errors))]
    Invalid {
        kind: Kind,
        name: String,
        errors: Vec<RowError>,
    },
    /// This kind cannot be imported by this version.
    #[error("{0}: importing this kind is not supported yet")]
    Unsupported(Kind),
    /// Database or other failure (nothing was applied either).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<rusqlite::Error> for ImportError {
    fn from(e: rusqlite::Error) -> Self {
        ImportError::Other(anyhow::Error::new(e).context("database"))
    }
}

fn invalid_text(kind: &Kind, name: &str, errors: &[RowError]) -> String {
    let mut s = format!(
        "{kind} file {name}: {} problem{} found, nothing applied",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    for e in errors {
        s.push_str("\n  ");
        s.push_str(&e.to_string());
    }
    s
}

/// Checks and applies one reference-data file.
///
/// `name` is the file's name (for messages and the history entry); `now`
/// stamps the rows and the history entry. On `Err`, the database is
/// unchanged.
pub fn import_file(
    conn: &mut Connection,
    cfg: &Config,
    kind: Kind,
    name: &str,
    bytes: &[u8],
    now: DateTime<Utc>,
) -> Result<ImportSummary, ImportError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let ctx = Ctx {
        cfg,
        kind,
        name,
        bytes,
        now,
    };
    let summary = match kind {
        Kind::Providers => providers::import(&tx, &ctx)?,
        Kind::Beneficiaries => beneficiaries::import(&tx, &ctx)?,
        other => return Err(ImportError::Unsupported(other)),
    };
    tx.commit()?;
    Ok(summary)
}

/// What each kind's importer gets.
struct Ctx<'a> {
    cfg: &'a Config,
    kind: Kind,
    name: &'a str,
    bytes: &'a [u8],
    now: DateTime<Utc>,
}

impl Ctx<'_> {
    fn invalid(&self, mut errors: Vec<RowError>) -> ImportError {
        errors.sort_by_key(|e| e.line);
        ImportError::Invalid {
            kind: self.kind,
            name: self.name.to_string(),
            errors,
        }
    }

    fn stamp(&self) -> String {
        self.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    /// History comment: what was applied from which file (content digest
    /// included, so a caisse can tell two files of the same name apart).
    fn comment(&self, s: &ImportSummary) -> String {
        use sha2::Digest;
        let digest = hex::encode(sha2::Sha256::digest(self.bytes));
        format!("import {} {}: {s}, sha256 {}", self.kind, self.name, &digest[..16])
    }
}

/// The one value shared by every row, if they all agree.
fn single<'a>(mut values: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let first = values.next()?;
    values.all(|v| v == first).then_some(first)
}

#[cfg(test)]
mod tests;
