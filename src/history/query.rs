//! Reading the exchange history back: a period and filters in, entries out.
//!
//! The period is a range of calendar days in Europe/Paris (what a caisse
//! employee means by "du 1er au 30 novembre"), both ends included. It becomes a
//! half-open range of UTC instants `[from 00:00 Paris, day after to 00:00
//! Paris)`, compared as text with the fixed-width `at` column so that SQLite
//! walks an index instead of the whole table.
//!
//! Exact filters (provider, convention, interface) are pushed into SQL; the
//! comment filter is a case-insensitive substring match done here, because
//! SQLite's `LIKE`/`lower()` only fold ASCII and comments are French
//! ("Échec" must match "échec").
//!
//! Rows are handed to a callback one at a time: a six-month export does not
//! have to fit in memory.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
use chrono_tz::{Europe::Paris, Tz};
use rusqlite::{Connection, OpenFlags};

/// Ascending (oldest first) or descending (newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

impl std::str::FromStr for Order {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Order> {
        match s {
            "asc" => Ok(Order::Asc),
            "desc" => Ok(Order::Desc),
            _ => bail!("order {s:?} must be asc or desc"),
        }
    }
}

/// What to read: a period (required) and optional filters.
#[derive(Debug, Clone)]
pub struct Filter {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub provider: Option<String>,
    pub convention: Option<String>,
    pub interface: Option<String>,
    /// Case-insensitive substring of the comment.
    pub comment: Option<String>,
    pub order: Order,
}

impl Filter {
    /// A filter on the period `from..=to` (days in Europe/Paris).
    pub fn period(from: NaiveDate, to: NaiveDate) -> Result<Filter> {
        if to < from {
            bail!(
                "the period ends before it starts: --to {} is before --from {}",
                to.format("%d/%m/%Y"),
                from.format("%d/%m/%Y")
            );
        }
        Ok(Filter {
            from,
            to,
            provider: None,
            convention: None,
            interface: None,
            comment: None,
            order: Order::Desc,
        })
    }

    /// The period as UTC instants: `[start, end)`.
    pub fn utc_bounds(&self) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
        let end_day = self
            .to
            .succ_opt()
            .with_context(|| format!("the period end {} is out of range", self.to))?;
        Ok((paris_midnight(self.from)?, paris_midnight(end_day)?))
    }
}

/// A day as written on the command line: `YYYY-MM-DD` or `JJ/MM/AAAA`.
pub fn parse_day(option: &str, value: &str) -> Result<NaiveDate> {
    crate::import::fields::date(value.trim()).map_err(|reason| anyhow::anyhow!("{option}: {reason}"))
}

/// Midnight starting `day` in Paris, as a UTC instant. Paris changes its
/// offset at 02:00/03:00, so midnight always exists and is never doubled;
/// `earliest()` keeps this total anyway.
fn paris_midnight(day: NaiveDate) -> Result<DateTime<Utc>> {
    let midnight = day
        .and_hms_opt(0, 0, 0)
        .with_context(|| format!("no midnight on {day}"))?;
    let local = Paris
        .from_local_datetime(&midnight)
        .earliest()
        .with_context(|| format!("no midnight in Europe/Paris on {day}"))?;
    Ok(local.with_timezone(&Utc))
}

/// The stored form of an instant (see [`super::record`]).
fn stored(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// One history entry as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub kind: String,
    /// As recorded, or derived from `id_cram` when the entry had none.
    pub regime: Option<String>,
    pub id_cram: Option<String>,
    pub application: String,
    pub interface: String,
    pub provider: Option<String>,
    pub convention: Option<String>,
    pub comment: String,
}

impl Row {
    /// The timestamp in Europe/Paris.
    pub fn local(&self) -> DateTime<Tz> {
        self.at.with_timezone(&Paris)
    }

    /// The month of the exchange in Paris ("2026-11"): the "période".
    pub fn period(&self) -> String {
        self.local().format("%Y-%m").to_string()
    }
}

/// Opens the database for reading only: a history query never writes, not
/// even a migration. The connection is opened read-write but without CREATE,
/// with `PRAGMA query_only` so SQLite itself refuses any write statement:
/// unlike a read-only open, this lets the last connection tidy the WAL side
/// files on close instead of leaving them behind, and SQLite still falls back
/// to read-only for an operator who may only read the file.
///
/// A missing database is an error rather than an empty answer: it usually
/// means `--config` or `[paths] database` points at the wrong place.
pub fn open_read_only(path: &Path) -> Result<Connection> {
    if !path.exists() {
        bail!(
            "database {} does not exist: nothing was recorded there yet (check --config and [paths] database)",
            path.display()
        );
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open database {} for reading", path.display()))?;
    conn.pragma_update(None, "query_only", true)
        .with_context(|| format!("database {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(30))?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .with_context(|| format!("cannot read database {}", path.display()))?;
    if version < 1 {
        bail!("{} is not a ppas-gateway database (schema version 0)", path.display());
    }
    if version > crate::store::SCHEMA_VERSION {
        bail!(
            "database {} has schema version {version}, newer than this binary knows ({}): upgrade the gateway",
            path.display(),
            crate::store::SCHEMA_VERSION
        );
    }
    Ok(conn)
}

/// Calls `each` for every entry of the period that passes the filters, in
/// the requested order (by timestamp, then by recording order). Returns the
/// number of entries passed. An error from `each` stops the walk.
pub fn for_each(conn: &Connection, f: &Filter, mut each: impl FnMut(Row) -> Result<()>) -> Result<usize> {
    let (sql, args) = select(f)?;
    let needle = f.comment.as_deref().map(str::to_lowercase).filter(|n| !n.is_empty());

    let mut stmt = conn.prepare(&sql).context("cannot query the history")?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
    let mut n = 0;
    while let Some(r) = rows.next().context("cannot read the history")? {
        let id: i64 = r.get(0)?;
        let at_text: String = r.get(1)?;
        let at = DateTime::parse_from_rfc3339(&at_text)
            .with_context(|| format!("history entry {id}: timestamp {at_text:?} is not RFC 3339"))?
            .with_timezone(&Utc);
        let comment: String = r.get(9)?;
        if let Some(needle) = &needle {
            if !comment.to_lowercase().contains(needle.as_str()) {
                continue;
            }
        }
        let id_cram: Option<String> = r.get(4)?;
        let regime: Option<String> = r
            .get::<_, Option<String>>(3)?
            .filter(|s| !s.trim().is_empty())
            .or_else(|| id_cram.as_deref().and_then(super::regime_of).map(str::to_string));
        each(Row {
            id,
            at,
            kind: r.get(2)?,
            regime,
            id_cram,
            application: r.get(5)?,
            interface: r.get(6)?,
            provider: r.get(7)?,
            convention: r.get(8)?,
            comment,
        })?;
        n += 1;
    }
    Ok(n)
}

/// The SELECT of a filter and its arguments (the comment is matched apart).
fn select(f: &Filter) -> Result<(String, Vec<String>)> {
    let (start, end) = f.utc_bounds()?;
    let mut sql = String::from(
        "SELECT id, at, kind, regime, id_cram, application, interface, provider, convention, comment
         FROM history WHERE at >= ?1 AND at < ?2",
    );
    let mut args: Vec<String> = vec![stored(start), stored(end)];
    for (column, value) in [
        ("provider", &f.provider),
        ("convention", &f.convention),
        ("interface", &f.interface),
    ] {
        if let Some(v) = value {
            args.push(v.clone());
            sql.push_str(&format!(" AND {column} = ?{}", args.len()));
        }
    }
    sql.push_str(match f.order {
        Order::Asc => " ORDER BY at ASC, id ASC",
        Order::Desc => " ORDER BY at DESC, id DESC",
    });
    Ok((sql, args))
}

/// Every matching entry, collected (for the table, which needs column widths).
pub fn collect(conn: &Connection, f: &Filter) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for_each(conn, f, |r| {
        out.push(r);
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::{record, Entry};
    use super::*;

    fn day(s: &str) -> NaiveDate {
        parse_day("--from", s).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn add(c: &Connection, t: &str, provider: &str, interface: &str, comment: &str) {
        record(
            c,
            at(t),
            &Entry {
                kind: "processed",
                id_cram: Some("04"),
                application: "aide-a-domicile",
                interface,
                provider: Some(provider),
                convention: Some("62739900"),
                comment: comment.into(),
                ..Default::default()
            },
        )
        .unwrap();
    }

    #[test]
    fn days_in_both_forms_and_bad_ones() {
        assert_eq!(day("2026-11-02"), day("02/11/2026"));
        for bad in ["2026-02-30", "2/11/2026", "2026/11/02", "", "hier"] {
            let e = parse_day("--to", bad).unwrap_err();
            assert!(format!("{e:#}").starts_with("--to: "), "{e:#}");
        }
    }

    #[test]
    fn a_reversed_period_is_refused() {
        let e = Filter::period(day("2026-11-02"), day("2026-11-01")).unwrap_err();
        assert!(
            format!("{e}").contains("--to 01/11/2026 is before --from 02/11/2026"),
            "{e}"
        );
        assert!(Filter::period(day("2026-11-02"), day("2026-11-02")).is_ok());
    }

    #[test]
    fn paris_days_become_utc_bounds_across_dst() {
        // Winter (UTC+1) and summer (UTC+2), and a period spanning the change.
        let f = Filter::period(day("2026-11-02"), day("2026-11-02")).unwrap();
        assert_eq!(
            f.utc_bounds().unwrap(),
            (at("2026-11-01T23:00:00Z"), at("2026-11-02T23:00:00Z"))
        );
        let f = Filter::period(day("2026-07-14"), day("2026-07-14")).unwrap();
        assert_eq!(
            f.utc_bounds().unwrap(),
            (at("2026-07-13T22:00:00Z"), at("2026-07-14T22:00:00Z"))
        );
        let f = Filter::period(day("2026-10-25"), day("2026-10-25")).unwrap();
        let (s, e) = f.utc_bounds().unwrap();
        assert_eq!((e - s).num_hours(), 25, "the autumn change day lasts 25 hours");
        let f = Filter::period(day("2026-03-29"), day("2026-03-29")).unwrap();
        let (s, e) = f.utc_bounds().unwrap();
        assert_eq!((e - s).num_hours(), 23, "the spring change day lasts 23 hours");
    }

    #[test]
    fn period_is_inclusive_in_paris_time_and_filters_combine() {
        let c = crate::store::open_in_memory().unwrap();
        add(
            &c,
            "2026-10-31T22:59:59Z",
            "saad21",
            "facturation",
            "before: 31/10 23:59:59 Paris",
        );
        add(
            &c,
            "2026-10-31T23:00:00Z",
            "saad21",
            "facturation",
            "first second of 01/11 Paris",
        );
        add(
            &c,
            "2026-11-15T10:00:00Z",
            "ergo62",
            "attestations",
            "Dépôt ÉCHEC réseau",
        );
        add(
            &c,
            "2026-11-30T22:59:59Z",
            "saad21",
            "sftp",
            "last second of 30/11 Paris",
        );
        add(
            &c,
            "2026-11-30T23:00:00Z",
            "saad21",
            "facturation",
            "after: 01/12 Paris",
        );

        let mut f = Filter::period(day("01/11/2026"), day("2026-11-30")).unwrap();
        f.order = Order::Asc;
        let rows = collect(&c, &f).unwrap();
        let comments: Vec<_> = rows.iter().map(|r| r.comment.as_str()).collect();
        assert_eq!(
            comments,
            [
                "first second of 01/11 Paris",
                "Dépôt ÉCHEC réseau",
                "last second of 30/11 Paris"
            ]
        );
        assert_eq!(rows[0].period(), "2026-11");
        assert_eq!(
            rows[0].local().format("%Y-%m-%d %H:%M:%S").to_string(),
            "2026-11-01 00:00:00"
        );
        assert_eq!(
            rows[0].regime.as_deref(),
            Some("Régime général"),
            "derived from id-cram 04"
        );

        f.order = Order::Desc;
        let desc: Vec<_> = collect(&c, &f).unwrap().into_iter().map(|r| r.id).collect();
        let mut asc: Vec<_> = rows.iter().map(|r| r.id).collect();
        asc.reverse();
        assert_eq!(desc, asc);

        f.comment = Some("échec".into());
        let hit = collect(&c, &f).unwrap();
        assert_eq!(hit.len(), 1, "case-insensitive beyond ASCII");
        assert_eq!(hit[0].provider.as_deref(), Some("ergo62"));

        f.comment = None;
        f.provider = Some("saad21".into());
        f.interface = Some("sftp".into());
        let hit = collect(&c, &f).unwrap();
        assert_eq!(hit.len(), 1);
        assert_eq!(hit[0].comment, "last second of 30/11 Paris");
        f.interface = Some("SFTP".into());
        assert!(collect(&c, &f).unwrap().is_empty(), "interface is an exact match");
        f.interface = None;
        f.convention = Some("6273990".into());
        assert!(collect(&c, &f).unwrap().is_empty(), "convention is an exact match");
    }

    #[test]
    fn a_recorded_regime_wins_over_the_derived_one() {
        let c = crate::store::open_in_memory().unwrap();
        record(
            &c,
            at("2026-11-02T09:00:00Z"),
            &Entry {
                kind: "job",
                regime: Some("Régime agricole"),
                id_cram: Some("04"),
                application: "habitat",
                interface: "jobs",
                ..Default::default()
            },
        )
        .unwrap();
        record(
            &c,
            at("2026-11-02T09:00:00Z"),
            &Entry {
                kind: "job",
                application: "habitat",
                interface: "jobs",
                ..Default::default()
            },
        )
        .unwrap();
        let f = Filter::period(day("2026-11-02"), day("2026-11-02")).unwrap();
        let rows = collect(&c, &f).unwrap();
        assert_eq!(rows[0].regime, None, "no régime, no caisse: nothing to derive");
        assert_eq!(rows[1].regime.as_deref(), Some("Régime agricole"));
    }

    /// The query plan SQLite picks for a filter, as one text.
    fn plan(c: &Connection, f: &Filter) -> String {
        let (sql, args) = select(f).unwrap();
        let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), |r| r.get::<_, String>(3))
            .unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn every_filter_walks_an_index_without_sorting() {
        let c = crate::store::open_in_memory().unwrap();
        let mut f = Filter::period(day("2026-05-01"), day("2026-10-31")).unwrap();
        assert!(plan(&c, &f).contains("USING INDEX history_at"), "{}", plan(&c, &f));
        f.provider = Some("saad21".into());
        assert!(
            plan(&c, &f).contains("USING INDEX history_provider_at"),
            "{}",
            plan(&c, &f)
        );
        f.provider = None;
        f.convention = Some("62739900".into());
        f.order = Order::Asc;
        assert!(
            plan(&c, &f).contains("USING INDEX history_convention_at"),
            "{}",
            plan(&c, &f)
        );
        assert!(!plan(&c, &f).contains("TEMP B-TREE"), "{}", plan(&c, &f));
    }

    #[test]
    fn the_reading_connection_refuses_writes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("g.db");
        let e = open_read_only(&p).unwrap_err();
        assert!(format!("{e}").contains("does not exist"), "{e}");
        assert!(!p.exists(), "a query does not create the database");
        drop(crate::store::open(&p).unwrap());
        let c = open_read_only(&p).unwrap();
        let e = c.execute("DELETE FROM history", []).unwrap_err();
        assert!(e.to_string().contains("readonly"), "{e}");
        drop(c);
        std::fs::write(&p, b"").unwrap();
        let e = open_read_only(&p).unwrap_err();
        assert!(format!("{e}").contains("not a ppas-gateway database"), "{e}");
    }

    #[test]
    fn a_damaged_timestamp_is_an_error_naming_the_entry() {
        let c = crate::store::open_in_memory().unwrap();
        c.execute(
            "INSERT INTO history (id, at, kind, application, interface) VALUES (7, '2026-11-02T10:00:00Zjunk', 'x', 'habitat', 'x')",
            [],
        )
        .unwrap();
        let f = Filter::period(day("2026-11-02"), day("2026-11-02")).unwrap();
        let e = collect(&c, &f).unwrap_err();
        assert!(format!("{e:#}").contains("history entry 7"), "{e:#}");
    }
}
