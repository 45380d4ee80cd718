//! `report-anomalies` import: lines the payment chain rejected after
//! receipt ("anomalies de report", spec §6), routed to the provider that
//! sent them as a report.
//!
//! In: `rf-facture;nir-per;dtd-interv;dtf-interv;code;motif`. Each row
//! names a line of a billing file the gateway transmitted: `rf-facture` is
//! the file's `rf-borfact` (or its name, `<rf-borfact>.xml`), `nir-per` and `dtd-interv` the line's NIR and
//! period start. Out: `report_anomalies` rows keyed on rf-facture +
//! nir-per + dtd-interv, each resolved to the received file, the accepted
//! line (its `factprest` index) and the provider that delivered the file;
//! one report owed per billing file concerned (`anomaly_reports`), written
//! into `outbound/<provider>/reports/` as
//! `<rf-borfact>.anomalies-report.<n>.{xml,csv,pdf}` by the outbound
//! publisher ([`crate::outbound::publish_due`], which also mails the
//! provider); one history entry.
//!
//! A row must name a line the payment chain received: a billing file of
//! that `rf-borfact` with transmitted lines, and among them one of that
//! NIR starting on `dtd-interv` and ending on `dtf-interv`. Anything else is
//! a bad row (the caisse's file is refused whole). `code` and `motif` are
//! the payment chain's, kept as given (one line of text each).
//!
//! Upsert: a row already imported with the same period end, code and motif
//! changes nothing and is not reported again; one whose code or motif
//! changed is updated and reported in the new report. Messages never
//! repeat a NIR or a name (spec §9).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDate;
use rusqlite::{params, Connection, OptionalExtension};

use super::fields;
use super::table::{self, Row, RowError};
use super::{single, Ctx, ImportError, ImportSummary, Scope};
use crate::store::dates::to_int;

const COLUMNS: &[&str] = &["rf-facture", "nir-per", "dtd-interv", "dtf-interv", "code", "motif"];

/// A `rf-borfact` has 25 characters at most; a little room.
const RF_FACTURE_MAX: usize = 50;
/// The payment chain's codes are short.
const CODE_MAX: usize = 20;
const MOTIF_MAX: usize = 500;

#[derive(Debug, Clone)]
struct Rec {
    line: u64,
    rf: String,
    nir: String,
    dtd: NaiveDate,
    dtf: NaiveDate,
    code: String,
    motif: String,
    /// Resolved: the received file, the accepted line and its index.
    file_id: i64,
    line_id: i64,
    line_no: i64,
}

/// A received billing file with transmitted lines.
#[derive(Debug, Clone)]
struct File {
    id: i64,
    provider: String,
    rf_borfact: String,
    id_cram: Option<String>,
    from: i64,
    to: i64,
}

/// The transmitted lines of a file: (NIR, start) -> (line id, index, end).
type Lines = HashMap<(String, i64), (i64, i64, i64)>;

pub(super) fn import(tx: &Connection, ctx: &Ctx<'_>) -> Result<ImportSummary, ImportError> {
    let t = table::read(ctx.bytes, COLUMNS);
    let mut errors = t.errors;
    let mut files: HashMap<String, Vec<File>> = HashMap::new();
    let mut lines: HashMap<i64, Lines> = HashMap::new();
    let mut keys: HashMap<(String, String, NaiveDate), u64> = HashMap::new();
    let mut recs = Vec::with_capacity(t.rows.len());
    for row in &t.rows {
        let Some(mut r) = check_row(row, &mut errors) else {
            continue;
        };
        let first = *keys.entry((r.rf.clone(), r.nir.clone(), r.dtd)).or_insert(r.line);
        if first != r.line {
            errors.push(RowError::row(
                r.line,
                format!("same rf-facture, nir-per and dtd-interv as line {first}"),
            ));
            continue;
        }
        let candidates = match files.entry(r.rf.clone()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(files_of(tx, &r.rf)?),
        };
        if candidates.is_empty() {
            errors.push(RowError::cell(
                r.line,
                "rf-facture",
                format!(
                    "no billing file {} with lines transmitted to the payment chain was received",
                    r.rf
                ),
            ));
            continue;
        }
        let mut found = None;
        for f in candidates {
            let of_file = match lines.entry(f.id) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(lines_of(tx, f)?),
            };
            if let Some(&l) = of_file.get(&(r.nir.clone(), to_int(r.dtd))) {
                found = Some((f.id, l));
                break;
            }
        }
        let Some((file_id, (line_id, line_no, dtf))) = found else {
            errors.push(RowError::row(
                r.line,
                format!(
                    "billing file {} has no transmitted line for this nir-per starting on {}",
                    r.rf, r.dtd
                ),
            ));
            continue;
        };
        if dtf != to_int(r.dtf) {
            let mut end = Vec::new();
            crate::store::dates::put_text(&mut end, dtf);
            errors.push(RowError::cell(
                r.line,
                "dtf-interv",
                format!(
                    "line {line_no} of billing file {} (this nir-per, from {}) ends on {}, not {}",
                    r.rf,
                    r.dtd,
                    String::from_utf8_lossy(&end),
                    r.dtf
                ),
            ));
            continue;
        }
        (r.file_id, r.line_id, r.line_no) = (file_id, line_id, line_no);
        recs.push(r);
    }
    if !errors.is_empty() {
        return Err(ctx.invalid(errors));
    }
    let by_id: HashMap<i64, &File> = files.values().flatten().map(|f| (f.id, f)).collect();
    apply(tx, ctx, &recs, &by_id)
}

fn check_row(row: &Row, errors: &mut Vec<RowError>) -> Option<Rec> {
    let before = errors.len();
    let line = row.line;
    let mut push = |i: usize, reason: String| errors.push(RowError::cell(line, COLUMNS[i], reason));
    // The file's name (`<rf-borfact>.xml`) names it as well as its rf-borfact.
    let rf = fields::text(row.get(0), RF_FACTURE_MAX)
        .map_err(|e| push(0, e))
        .ok()
        .map(|v| match v.len().checked_sub(4) {
            Some(n) if v.is_char_boundary(n) && v[n..].eq_ignore_ascii_case(".xml") => v[..n].to_string(),
            _ => v,
        });
    let nir = fields::nir(row.get(1)).map_err(|e| push(1, e)).ok();
    let dtd = fields::date(row.get(2)).map_err(|e| push(2, e)).ok();
    let dtf = fields::date(row.get(3)).map_err(|e| push(3, e)).ok();
    if let (Some(d), Some(f)) = (dtd, dtf) {
        if d > f {
            push(3, format!("{f} is before the start of the period ({d})"));
        }
    }
    let code = fields::text(row.get(4), CODE_MAX).map_err(|e| push(4, e)).ok();
    let motif = fields::text(row.get(5), MOTIF_MAX).map_err(|e| push(5, e)).ok();
    if errors.len() > before {
        return None;
    }
    Some(Rec {
        line,
        rf: rf?,
        nir: nir?,
        dtd: dtd?,
        dtf: dtf?,
        code: code?,
        motif: motif?,
        file_id: 0,
        line_id: 0,
        line_no: 0,
    })
}

/// The billing files of `rf_borfact` whose lines were transmitted, oldest
/// first (F09 leaves at most one; several are searched in turn).
fn files_of(tx: &Connection, rf_borfact: &str) -> Result<Vec<File>, ImportError> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, provider, rf_borfact, id_cram, lines_from, lines_to FROM received_files
         WHERE rf_borfact = ?1 AND kind = 'billing' AND state IN ('decided', 'done')
           AND accepted_lines > 0 AND lines_from IS NOT NULL
         ORDER BY id",
    )?;
    let rows = stmt.query_map([rf_borfact], |r| {
        Ok(File {
            id: r.get(0)?,
            provider: r.get(1)?,
            rf_borfact: r.get(2)?,
            id_cram: r.get(3)?,
            from: r.get(4)?,
            to: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The transmitted lines of `f` (its rowid range of `accepted_lines`).
fn lines_of(tx: &Connection, f: &File) -> Result<Lines, ImportError> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, line_no, nir_per, dtd, dtf FROM accepted_lines WHERE id BETWEEN ?1 AND ?2 AND file_id = ?3",
    )?;
    let rows = stmt.query_map(params![f.from, f.to, f.id], |r| {
        Ok((
            (r.get::<_, String>(2)?, r.get::<_, i64>(3)?),
            (r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(4)?),
        ))
    })?;
    let mut m = HashMap::new();
    for row in rows {
        let (k, v) = row?;
        // Two lines of one NIR and start cannot both be accepted (L08);
        // the first is kept all the same.
        m.entry(k).or_insert(v);
    }
    Ok(m)
}

fn iso(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn apply(
    tx: &Connection,
    ctx: &Ctx<'_>,
    recs: &[Rec],
    files: &HashMap<i64, &File>,
) -> Result<ImportSummary, ImportError> {
    let at = ctx.stamp();
    let (mut new, mut updated, mut unchanged) = (0, 0, 0);
    // Per received file, what its report says: (anomaly id, rec).
    let mut reported: BTreeMap<i64, Vec<(i64, &Rec)>> = BTreeMap::new();
    for r in recs {
        let existing: Option<(i64, String, String, String)> = tx
            .prepare_cached(
                "SELECT id, dtf_interv, code, motif FROM report_anomalies
                 WHERE rf_facture = ?1 AND nir_per = ?2 AND dtd_interv = ?3",
            )?
            .query_row(params![r.rf, r.nir, iso(r.dtd)], |x| {
                Ok((x.get(0)?, x.get(1)?, x.get(2)?, x.get(3)?))
            })
            .optional()?;
        let id =
            match existing {
                Some((id, dtf, code, motif)) => {
                    updated += 1;
                    if dtf == iso(r.dtf) && code == r.code && motif == r.motif {
                        unchanged += 1;
                        continue;
                    }
                    tx.execute(
                    "UPDATE report_anomalies SET dtf_interv = ?2, code = ?3, motif = ?4, file_id = ?5, line_id = ?6,
                                                 line_no = ?7, updated_at = ?8
                     WHERE id = ?1",
                    params![id, iso(r.dtf), r.code, r.motif, r.file_id, r.line_id, r.line_no, at],
                )?;
                    id
                }
                None => {
                    tx.execute(
                    "INSERT INTO report_anomalies (rf_facture, nir_per, dtd_interv, dtf_interv, code, motif, file_id,
                                                   line_id, line_no, imported_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
                    params![r.rf, r.nir, iso(r.dtd), iso(r.dtf), r.code, r.motif, r.file_id, r.line_id, r.line_no, at],
                )?;
                    new += 1;
                    tx.last_insert_rowid()
                }
            };
        reported.entry(r.file_id).or_default().push((id, r));
    }

    let mut stems: Vec<String> = Vec::new();
    for (file_id, mut items) in reported {
        let f = files[&file_id];
        items.sort_by_key(|(_, r)| (r.line_no, r.line));
        let stem = report_stem(tx, f)?;
        let occurrence: i64 = stem.rsplit('.').next().and_then(|n| n.parse().ok()).unwrap_or(1);
        tx.execute(
            "INSERT INTO anomaly_reports (file_id, provider, rf_borfact, occurrence, stem, source, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![f.id, f.provider, f.rf_borfact, occurrence, stem, ctx.name, at],
        )?;
        let report_id = tx.last_insert_rowid();
        let mut ins = tx.prepare_cached(
            "INSERT INTO anomaly_report_lines (report_id, seq, anomaly_id, line_id, line_no, code, motif)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for (seq, (id, r)) in items.iter().enumerate() {
            ins.execute(params![
                report_id,
                seq as i64 + 1,
                id,
                r.line_id,
                r.line_no,
                r.code,
                r.motif
            ])?;
        }
        stems.push(format!("{}/{stem}", f.provider));
    }

    let note = match stems.len() {
        0 => "nothing new to report".to_string(),
        n if unchanged > 0 => format!(
            "{n} report{} owed ({}), {unchanged} row(s) without change",
            if n == 1 { "" } else { "s" },
            stems.join(", ")
        ),
        n => format!(
            "{n} report{} owed ({})",
            if n == 1 { "" } else { "s" },
            stems.join(", ")
        ),
    };
    let summary = ImportSummary {
        kind: ctx.kind,
        rows: recs.len(),
        new,
        updated,
        note: Some(note),
    };
    let used: HashSet<i64> = recs.iter().map(|r| r.file_id).collect();
    let used: Vec<&File> = files.values().copied().filter(|f| used.contains(&f.id)).collect();
    let scope = Scope {
        id_cram: single(used.iter().filter_map(|f| f.id_cram.as_deref())),
        provider: single(used.iter().map(|f| f.provider.as_str())),
        convention: None,
    };
    ctx.record(tx, &summary, "aide-a-domicile", "anomalies-de-report", scope)?;
    Ok(summary)
}

/// `<rf-borfact>.anomalies-report.<n>` with the first `n` free for the
/// provider (counting its earlier reports of that file).
fn report_stem(tx: &Connection, f: &File) -> Result<String, ImportError> {
    let base = if crate::spool::is_safe_component(&f.rf_borfact) {
        f.rf_borfact.clone()
    } else {
        format!("fichier-{}", f.id)
    };
    let mut n: i64 = tx.query_row(
        "SELECT COUNT(*) FROM anomaly_reports WHERE provider = ?1 AND rf_borfact = ?2",
        params![f.provider, f.rf_borfact],
        |r| r.get(0),
    )?;
    loop {
        n += 1;
        let stem = format!("{base}.anomalies-report.{n}");
        let taken: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM anomaly_reports WHERE provider = ?1 AND stem = ?2)",
            params![f.provider, stem],
            |r| r.get(0),
        )?;
        if !taken {
            return Ok(stem);
        }
    }
}

#[cfg(test)]
mod tests;
