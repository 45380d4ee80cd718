//! A received file as the pipeline reads it back: its row of
//! `received_files` as one [`ReceivedFile`], the stage it reached
//! ([`FileState`]) and the outputs it owes ([`Output`], [`OutputKind`]).
//!
//! In: rows of the state database. Out: typed values, so that the steps
//! never compare strings: a state or kind the database holds but this
//! binary does not know is an error naming the file, not a silent default.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row};

use super::Channel;
pub use crate::anomaly::FileKind;
use crate::billing::Verdict;

/// The last step a received file has completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileState {
    /// Taken and recorded with its hash; no verdict yet.
    Received,
    /// Verdict and owed outputs committed; outputs not all written.
    Decided,
    /// Every output written, the original archived.
    Done,
}

impl FileState {
    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Received => "received",
            FileState::Decided => "decided",
            FileState::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<FileState> {
        [FileState::Received, FileState::Decided, FileState::Done]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// What an owed output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputKind {
    /// The payment chain's `factbord` in `outbox/<id-cram>/`: delivered
    /// once, recorded in its own commit right after its rename.
    Outbox,
    ReportXml,
    ReportCsv,
    ReportPdf,
}

impl OutputKind {
    pub const REPORTS: [OutputKind; 3] = [OutputKind::ReportXml, OutputKind::ReportCsv, OutputKind::ReportPdf];

    pub fn as_str(self) -> &'static str {
        match self {
            OutputKind::Outbox => "outbox",
            OutputKind::ReportXml => "report-xml",
            OutputKind::ReportCsv => "report-csv",
            OutputKind::ReportPdf => "report-pdf",
        }
    }

    pub fn parse(s: &str) -> Option<OutputKind> {
        [
            OutputKind::Outbox,
            OutputKind::ReportXml,
            OutputKind::ReportCsv,
            OutputKind::ReportPdf,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    pub fn is_report(self) -> bool {
        self != OutputKind::Outbox
    }
}

/// Stores and reads an enum as its `as_str` text.
macro_rules! sql_text_enum {
    ($t:ty) => {
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }
        impl FromSql for $t {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                let s = v.as_str()?;
                <$t>::parse(s).ok_or_else(|| FromSqlError::Other(format!("unknown {} {s:?}", stringify!($t)).into()))
            }
        }
    };
}

sql_text_enum!(FileState);
sql_text_enum!(FileKind);
sql_text_enum!(OutputKind);
sql_text_enum!(Channel);

/// An instant stored as RFC 3339 text.
fn instant(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let Some(s) = r.get::<_, Option<String>>(i)? else {
        return Ok(None);
    };
    DateTime::parse_from_rfc3339(&s)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
}

/// One row of `received_files`, as the pipeline's steps need it.
#[derive(Debug, Clone)]
pub struct ReceivedFile {
    pub id: i64,
    /// Billing until decided; then what its root element said.
    pub kind: FileKind,
    /// The provider folder or SFTP account that delivered it.
    pub provider: String,
    /// The file name as delivered.
    pub name: String,
    pub channel: Channel,
    pub sha256: String,
    pub size: u64,
    /// The durable record of reception (the "day of receipt" of L03).
    pub received_at: DateTime<Utc>,
    /// Spool-relative path of its copy while in flight (`work/…`, or
    /// `quarantine/…` while quarantined).
    pub work_path: String,
    pub state: FileState,
    pub verdict: Option<Verdict>,
    pub lines: Option<i64>,
    pub decided_at: Option<DateTime<Utc>>,
    pub done_at: Option<DateTime<Utc>>,
    pub archive_path: Option<String>,
    /// `<name>.report` or `<name>.<n>.report`: the stem of its reports.
    pub report_stem: Option<String>,
    pub rf_borfact: Option<String>,
    pub id_cram: Option<String>,
    pub id_site: Option<String>,
    /// Attempts that failed or were cut short (a crash, an error, a panic).
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Set while the file is quarantined: no longer retried until `retry`.
    pub quarantined_at: Option<DateTime<Utc>>,
}

/// The columns [`ReceivedFile::from_row`] reads, in its order.
pub const COLUMNS: &str = "id, provider, name, channel, sha256, size, received_at, work_path, state, verdict, lines,
    decided_at, done_at, archive_path, report_stem, rf_borfact, id_cram, id_site, attempts, last_error, quarantined_at, kind";

impl ReceivedFile {
    /// Reads a row selected with [`COLUMNS`].
    pub fn from_row(r: &Row<'_>) -> rusqlite::Result<ReceivedFile> {
        let verdict: Option<String> = r.get(9)?;
        Ok(ReceivedFile {
            id: r.get(0)?,
            provider: r.get(1)?,
            name: r.get(2)?,
            channel: r.get(3)?,
            sha256: r.get(4)?,
            size: r.get::<_, i64>(5)?.max(0) as u64,
            received_at: instant(r, 6)?.unwrap_or_default(),
            work_path: r.get(7)?,
            state: r.get(8)?,
            verdict: match verdict {
                None => None,
                Some(v) => Some(Verdict::parse(&v).ok_or_else(|| {
                    rusqlite::Error::FromSqlConversionFailure(
                        9,
                        rusqlite::types::Type::Text,
                        format!("verdict {v:?}").into(),
                    )
                })?),
            },
            lines: r.get(10)?,
            decided_at: instant(r, 11)?,
            done_at: instant(r, 12)?,
            archive_path: r.get(13)?,
            report_stem: r.get(14)?,
            rf_borfact: r.get(15)?,
            id_cram: r.get::<_, Option<String>>(16)?.filter(|s| !s.is_empty()),
            id_site: r.get::<_, Option<String>>(17)?.filter(|s| !s.is_empty()),
            attempts: r.get::<_, i64>(18)?.clamp(0, u32::MAX as i64) as u32,
            last_error: r.get(19)?,
            quarantined_at: instant(r, 20)?,
            kind: r.get(21)?,
        })
    }

    /// Received file `id`, if it exists.
    pub fn load(conn: &Connection, id: i64) -> Result<Option<ReceivedFile>> {
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM received_files WHERE id = ?1"))?
            .query_row([id], ReceivedFile::from_row)
            .optional()
            .with_context(|| format!("reading received file {id}"))
    }

    /// Received file `id`, which must exist.
    pub fn get(conn: &Connection, id: i64) -> Result<ReceivedFile> {
        ReceivedFile::load(conn, id)?.with_context(|| format!("received file {id} does not exist"))
    }

    /// Every file matching a `WHERE` clause (no parameters), by id.
    pub fn select(conn: &Connection, filter: &str) -> Result<Vec<ReceivedFile>> {
        conn.prepare(&format!(
            "SELECT {COLUMNS} FROM received_files WHERE {filter} ORDER BY id"
        ))?
        .query_map([], ReceivedFile::from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .context("reading received files")
    }

    pub fn quarantined(&self) -> bool {
        self.quarantined_at.is_some()
    }
}

/// One output a decided file owes.
#[derive(Debug, Clone)]
pub struct Output {
    pub id: i64,
    pub kind: OutputKind,
    /// Spool-relative destination.
    pub path: String,
    /// For the outbox: its flushed temporary file, recorded before the rename.
    pub staged_path: Option<String>,
}

/// The outputs file `file_id` still owes (not yet recorded as written), in
/// the order they were owed.
pub fn pending_outputs(conn: &Connection, file_id: i64) -> Result<Vec<Output>> {
    conn.prepare_cached(
        "SELECT id, kind, path, staged_path FROM outputs WHERE file_id = ?1 AND done_at IS NULL ORDER BY id",
    )?
    .query_map([file_id], |r| {
        Ok(Output {
            id: r.get(0)?,
            kind: r.get(1)?,
            path: r.get(2)?,
            staged_path: r.get(3)?,
        })
    })?
    .collect::<rusqlite::Result<Vec<_>>>()
    .with_context(|| format!("reading the outputs of received file {file_id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_their_text() {
        for s in [FileState::Received, FileState::Decided, FileState::Done] {
            assert_eq!(FileState::parse(s.as_str()), Some(s));
        }
        for k in [
            OutputKind::Outbox,
            OutputKind::ReportXml,
            OutputKind::ReportCsv,
            OutputKind::ReportPdf,
        ] {
            assert_eq!(OutputKind::parse(k.as_str()), Some(k));
            assert_eq!(k.is_report(), k != OutputKind::Outbox);
        }
        assert_eq!(FileState::parse("quarantined"), None);
    }

    #[test]
    fn a_row_reads_into_one_struct_and_unknown_states_are_errors() {
        let c = crate::store::open_in_memory().unwrap();
        c.execute_batch(
            "INSERT INTO received_files (id, provider, name, channel, sha256, size, received_at, work_path, state, verdict)
             VALUES (3, 'saad1', 'a.xml', 'sftp', 'ab', 10, '2026-11-02T08:00:00Z', 'work/saad1/x-a.xml', 'decided', 'partial');
             INSERT INTO outputs (file_id, kind, path) VALUES (3, 'outbox', 'outbox/03/a.xml'), (3, 'report-pdf', 'r.pdf');",
        )
        .unwrap();
        let f = ReceivedFile::get(&c, 3).unwrap();
        assert_eq!(
            (f.state, f.channel, f.verdict, f.attempts),
            (FileState::Decided, Channel::Sftp, Some(Verdict::Partial), 0)
        );
        assert_eq!(f.received_at.to_rfc3339(), "2026-11-02T08:00:00+00:00");
        assert!(!f.quarantined());
        let kinds: Vec<OutputKind> = pending_outputs(&c, 3).unwrap().into_iter().map(|o| o.kind).collect();
        assert_eq!(kinds, [OutputKind::Outbox, OutputKind::ReportPdf]);
        assert!(ReceivedFile::load(&c, 4).unwrap().is_none());
        c.execute("UPDATE outputs SET kind = 'fax' WHERE kind = 'outbox'", [])
            .unwrap();
        let e = pending_outputs(&c, 3).unwrap_err();
        assert!(format!("{e:#}").contains("fax"), "{e:#}");
    }
}
