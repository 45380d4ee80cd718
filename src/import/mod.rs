//! Caisse reference data (spec §5): a CSV file of one kind in, rows upserted
//! in the database out, with one history entry; or, for `evaluations` and
//! `decisions`, one PDF document of an order, kept under
//! `archive/caisse/<kind>/` and owed to the ergothérapeute's outbound folder.
//!
//! All or nothing: the whole file is checked first, inside the same
//! IMMEDIATE transaction that applies it (so the checks against the
//! database see exactly the state the rows are applied to). If any row is
//! bad, the error lists every bad row and nothing is applied. The same
//! entry point serves `ppas-gateway import KIND FILE` and the
//! `caisse/inbound/KIND/` drop folder.
//!
//! What an import makes owed to providers (an order listing, a document, a
//! report of anomalies returned by the payment chain) is recorded in the
//! same transaction ([`crate::habitat::mark_listing`],
//! `documents.done_at IS NULL`, `anomaly_reports.done_at IS NULL`); the
//! caller then writes it with [`crate::outbound::publish_due`]. Payments
//! wait for the `bordereaux` job ([`crate::bordereaux::run`]), which
//! publishes each statement 48 hours after its payment date.

use std::fmt;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior};

use crate::config::Config;

mod beneficiaries;
pub mod documents;
pub mod fields;
mod orders;
mod payments;
mod providers;
mod report_anomalies;
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
    /// What else the caller should say (orders: rows without change; a
    /// document: where it goes, or that it was already imported).
    pub note: Option<String>,
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (true, Some(note)) = (self.kind.is_document(), &self.note) {
            return write!(f, "{}: {note}", self.kind);
        }
        write!(
            f,
            "{}: {} row{} applied ({} new, {} updated)",
            self.kind,
            self.rows,
            if self.rows == 1 { "" } else { "s" },
            self.new,
            self.updated
        )?;
        match &self.note {
            Some(note) => write!(f, "; {note}"),
            None => Ok(()),
        }
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
    /// A document (evaluation, decision) refused as a whole: every problem
    /// is listed, nothing was applied.
    #[error("{}", refused_text(.kind, .name, .problems))]
    Refused {
        kind: Kind,
        name: String,
        problems: Vec<String>,
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

fn refused_text(kind: &Kind, name: &str, problems: &[String]) -> String {
    let mut s = format!(
        "{kind} file {name}: refused, nothing applied ({} problem{})",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        s.push_str("\n  ");
        s.push_str(p);
    }
    s
}

/// Checks and applies one reference-data file.
///
/// `name` is the file's name (for messages and the history entry; a
/// document's name is `<rf-commande>.pdf`); `now` stamps the rows and the
/// history entry. On `Err`, the database is unchanged. A document's bytes
/// are kept under the spool of `cfg` (`archive/caisse/<kind>/`) before the
/// commit; the listing and documents it makes owed are written by
/// [`crate::outbound::publish_due`], which the caller runs afterwards.
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
        spool: crate::spool::Spool::new(&cfg.paths.spool),
        kind,
        name,
        bytes,
        now,
    };
    let summary = match kind {
        Kind::Providers => providers::import(&tx, &ctx)?,
        Kind::Beneficiaries => beneficiaries::import(&tx, &ctx)?,
        Kind::Orders => orders::import(&tx, &ctx)?,
        Kind::Payments => payments::import(&tx, &ctx)?,
        Kind::ReportAnomalies => report_anomalies::import(&tx, &ctx)?,
        Kind::Evaluations | Kind::Decisions => documents::import(&tx, &ctx)?,
    };
    tx.commit()?;
    Ok(summary)
}

/// What each kind's importer gets.
struct Ctx<'a> {
    cfg: &'a Config,
    spool: crate::spool::Spool,
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

    /// The day of the import in Europe/Paris (dates "not after today").
    fn today(&self) -> chrono::NaiveDate {
        crate::clock::paris_day(self.now)
    }

    /// SHA-256 of the file, lowercase hexadecimal.
    fn sha256(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(self.bytes))
    }

    fn stamp(&self) -> String {
        self.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    /// History comment: what was applied from which file (content digest
    /// included, so a caisse can tell two files of the same name apart).
    fn comment(&self, s: &ImportSummary) -> String {
        let digest = self.sha256();
        format!("import {} {}: {s}, sha256 {}", self.kind, self.name, &digest[..16])
    }

    /// The history entry of an applied file, in its transaction; `scope` is
    /// what every row shares (see [`single`]).
    fn record(
        &self,
        tx: &Connection,
        summary: &ImportSummary,
        application: &str,
        interface: &str,
        scope: Scope<'_>,
    ) -> Result<(), ImportError> {
        crate::history::record(
            tx,
            self.now,
            &crate::history::Entry {
                kind: "import",
                application,
                interface,
                id_cram: scope.id_cram,
                provider: scope.provider,
                convention: scope.convention,
                comment: self.comment(summary),
                ..Default::default()
            },
        )?;
        Ok(())
    }
}

/// What the rows of an applied file share, for its history entry.
#[derive(Debug, Default, Clone, Copy)]
struct Scope<'a> {
    id_cram: Option<&'a str>,
    provider: Option<&'a str>,
    convention: Option<&'a str>,
}

/// A file whose rows are all ergothérapeutes' belongs to the "habitat"
/// application of the history; any home-care provider's makes it
/// "aide-a-domicile".
fn application_of(all_ergo: bool) -> &'static str {
    if all_ergo {
        "habitat"
    } else {
        "aide-a-domicile"
    }
}

/// The one value shared by every row, if they all agree.
fn single<'a>(mut values: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let first = values.next()?;
    values.all(|v| v == first).then_some(first)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) mod testkit;
