//! `payments` import: the payments the payment chain made, which become
//! payment statements ("bordereaux de paiement", spec §6).
//!
//! In: `rf-paiement;dt-paiement;id-cram;code-convention;rf-facture;nir-per;
//! nom-per;pn-per;rf-prstpap;dtd-interv;dtf-interv;nb-quant;mt-paye`. Out:
//! `payments` rows keyed on rf-paiement + rf-facture + nir-per +
//! dtd-interv, each in the statement of its convention and payment
//! reference (`statements`, one per id-cram + code-convention +
//! rf-paiement), one history entry. The statements are published by the
//! `bordereaux` job ([`crate::bordereaux::run`]) 48 hours after their
//! payment date.
//!
//! Rules of a row: a known caisse, a validated convention of that caisse
//! (its holder is the statement's provider, whatever its type), a payment
//! reference (one line of text, at most 30 characters; its file names keep
//! only its letters, digits, `-` and `_`), a payment date (one still to come is
//! taken too: its statement waits for that date + 48 hours), an
//! `rf-facture` (the billing file's `rf-borfact` or the invoice reference:
//! only required, since the invoice references are not the gateway's), a
//! NIR of the billing form, a period whose start is not after its end,
//! a quantity and an amount as decimals (`.` or `,`, two decimals at most).
//! Beyond a row:
//!
//! - one payment line per key in a file;
//! - one payment date per statement (in the file, and against a statement
//!   already published: a published statement's date never changes; an
//!   unpublished one may be corrected);
//! - a payment line already imported stays in its convention's statement.
//!
//! Upsert: an existing line takes the file's quantity, amount, person,
//! prestation and period end. Each statement that gains or changes a line
//! gets a new revision; one already published is published again, as a
//! new edition, by the next run of the job. A row identical to the stored
//! line changes nothing. Messages never repeat a NIR or a name (spec §9).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDate;
use rusqlite::{params, Connection, OptionalExtension};

use super::fields;
use super::table::{self, Row, RowError};
use super::{application_of, single, Ctx, ImportError, ImportSummary, Scope};
use crate::store::reference::to_hundredths;

const COLUMNS: &[&str] = &[
    "rf-paiement",
    "dt-paiement",
    "id-cram",
    "code-convention",
    "rf-facture",
    "nir-per",
    "nom-per",
    "pn-per",
    "rf-prstpap",
    "dtd-interv",
    "dtf-interv",
    "nb-quant",
    "mt-paye",
];

/// Longest payment reference (it names the statement's files).
pub const RF_PAIEMENT_MAX: usize = 30;
/// Longest invoice reference (a `rf-borfact` has 25 characters at most).
pub const RF_FACTURE_MAX: usize = 50;
/// Field lengths of the billing schema (`nom-per` 54, `pn-per` 20).
const NOM_MAX: usize = 54;
const PN_MAX: usize = 20;
/// Convention codes, as in the providers file.
const CONVENTION_MAX: usize = 20;
/// Prestation codes (`PPP100`).
const PRESTATION_MAX: usize = 10;

/// (id-cram, code-convention, rf-paiement): one statement.
type StatementKey = (String, String, String);
/// (rf-paiement, rf-facture, nir-per, dtd-interv): one payment line.
type PaymentKey = (String, String, String, NaiveDate);
/// (id-cram, code-convention) of a validated convention -> (holder, its type).
type Holders = HashMap<(String, String), (String, String)>;

#[derive(Debug, Clone)]
struct Rec {
    line: u64,
    rf_paiement: String,
    dt_paiement: NaiveDate,
    id_cram: String,
    code: String,
    provider: String,
    provider_type: String,
    rf_facture: String,
    nir: String,
    nom: String,
    pn: String,
    prestation: String,
    dtd: NaiveDate,
    dtf: NaiveDate,
    nb_quant: i64,
    mt_paye: i64,
}

impl Rec {
    fn statement_key(&self) -> StatementKey {
        (self.id_cram.clone(), self.code.clone(), self.rf_paiement.clone())
    }

    fn key(&self) -> PaymentKey {
        (
            self.rf_paiement.clone(),
            self.rf_facture.clone(),
            self.nir.clone(),
            self.dtd,
        )
    }
}

/// A statement already in the database.
struct Stored {
    id: i64,
    dt_paiement: String,
    published: bool,
}

/// A payment line already in the database.
struct StoredLine {
    id: i64,
    id_cram: String,
    code: String,
    nom: String,
    pn: String,
    prestation: String,
    dtf: String,
    nb_quant: i64,
    mt_paye: i64,
}

pub(super) fn import(tx: &Connection, ctx: &Ctx<'_>) -> Result<ImportSummary, ImportError> {
    let t = table::read(ctx.bytes, COLUMNS);
    let mut errors = t.errors;
    let holders = holders(tx)?;
    let mut recs: Vec<Rec> = Vec::with_capacity(t.rows.len());
    let mut keys: HashMap<PaymentKey, u64> = HashMap::new();
    let mut dates: HashMap<StatementKey, (NaiveDate, u64)> = HashMap::new();
    for row in &t.rows {
        let Some(r) = check_row(row, ctx, &holders, &mut errors) else {
            continue;
        };
        let first = *keys.entry(r.key()).or_insert(r.line);
        if first != r.line {
            errors.push(RowError::row(
                r.line,
                format!("same rf-paiement, rf-facture, nir-per and dtd-interv as line {first}"),
            ));
            continue;
        }
        let (date, first) = *dates.entry(r.statement_key()).or_insert((r.dt_paiement, r.line));
        if date != r.dt_paiement {
            errors.push(RowError::cell(
                r.line,
                "dt-paiement",
                format!(
                    "{} differs from the date of payment {} of convention {} at line {first} ({date}): one payment has one date",
                    r.dt_paiement, r.rf_paiement, r.code
                ),
            ));
            continue;
        }
        recs.push(r);
    }

    // Against the database: published dates, lines that would move.
    let mut stored: HashMap<StatementKey, Stored> = HashMap::new();
    let mut lines: HashMap<PaymentKey, StoredLine> = HashMap::new();
    let mut date_checked: HashSet<StatementKey> = HashSet::new();
    for r in &recs {
        let sk = r.statement_key();
        if !stored.contains_key(&sk) {
            if let Some(s) = load_statement(tx, &sk)? {
                stored.insert(sk.clone(), s);
            }
        }
        if let Some(s) = stored.get(&sk) {
            let iso = r.dt_paiement.format("%Y-%m-%d").to_string();
            if s.published && s.dt_paiement != iso && date_checked.insert(sk.clone()) {
                errors.push(RowError::cell(
                    r.line,
                    "dt-paiement",
                    format!(
                        "payment {} of convention {} was published dated {}: its date cannot change",
                        r.rf_paiement, r.code, s.dt_paiement
                    ),
                ));
            }
        }
        if let Some(l) = load_line(tx, &r.key())? {
            if l.id_cram != r.id_cram || l.code != r.code {
                errors.push(RowError::cell(
                    r.line,
                    "code-convention",
                    format!(
                        "this payment line (rf-paiement {}, rf-facture {}, period starting {}) was imported under convention {} of caisse {}: it cannot move to another convention",
                        r.rf_paiement, r.rf_facture, r.dtd, l.code, l.id_cram
                    ),
                ));
            }
            lines.insert(r.key(), l);
        }
    }
    if !errors.is_empty() {
        return Err(ctx.invalid(errors));
    }
    apply(tx, ctx, &recs, &stored, &lines)
}

/// (id_cram, code_convention) of every validated convention -> (holder, type).
fn holders(tx: &Connection) -> Result<Holders, ImportError> {
    let mut stmt = tx.prepare(
        "SELECT c.id_cram, c.code_convention, c.provider, p.type
         FROM conventions c JOIN providers p ON p.provider = c.provider
         WHERE c.validated = 1",
    )?;
    let rows = stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), (r.get(2)?, r.get(3)?))))?;
    let mut m = HashMap::new();
    for row in rows {
        let (k, v) = row?;
        m.insert(k, v);
    }
    Ok(m)
}

fn check_row(row: &Row, ctx: &Ctx<'_>, holders: &Holders, errors: &mut Vec<RowError>) -> Option<Rec> {
    let before = errors.len();
    let line = row.line;
    let mut push = |i: usize, reason: String| errors.push(RowError::cell(line, COLUMNS[i], reason));
    let rf_paiement = fields::text(row.get(0), RF_PAIEMENT_MAX).map_err(|e| push(0, e)).ok();
    let dt_paiement = fields::date(row.get(1)).map_err(|e| push(1, e)).ok();
    let id_cram = fields::known(row.get(2), &ctx.cfg.billing.caisses, "caisse id-cram")
        .map_err(|e| push(2, e))
        .ok();
    let code = fields::code(row.get(3), CONVENTION_MAX).map_err(|e| push(3, e)).ok();
    let rf_facture = fields::text(row.get(4), RF_FACTURE_MAX).map_err(|e| push(4, e)).ok();
    let nir = fields::nir(row.get(5)).map_err(|e| push(5, e)).ok();
    let nom = fields::text(row.get(6), NOM_MAX).map_err(|e| push(6, e)).ok();
    let pn = fields::text(row.get(7), PN_MAX).map_err(|e| push(7, e)).ok();
    let prestation = fields::code(row.get(8), PRESTATION_MAX).map_err(|e| push(8, e)).ok();
    let dtd = fields::date(row.get(9)).map_err(|e| push(9, e)).ok();
    let dtf = fields::date(row.get(10)).map_err(|e| push(10, e)).ok();
    if let (Some(d), Some(f)) = (dtd, dtf) {
        if d > f {
            push(10, format!("{f} is before the start of the period ({d})"));
        }
    }
    let nb_quant = fields::decimal(row.get(11))
        .map_err(|e| push(11, e))
        .ok()
        .and_then(to_hundredths);
    let mt_paye = fields::decimal(row.get(12))
        .map_err(|e| push(12, e))
        .ok()
        .and_then(to_hundredths);
    let mut holder = None;
    if let (Some(c), Some(k)) = (&id_cram, &code) {
        match holders.get(&(c.clone(), k.clone())) {
            None => push(
                3,
                format!("{k} is not a validated convention of caisse {c} (import its provider with the providers file first)"),
            ),
            Some(h) => holder = Some(h.clone()),
        }
    }
    if errors.len() > before {
        return None;
    }
    let (provider, provider_type) = holder?;
    Some(Rec {
        line,
        rf_paiement: rf_paiement?,
        dt_paiement: dt_paiement?,
        id_cram: id_cram?,
        code: code?,
        provider,
        provider_type,
        rf_facture: rf_facture?,
        nir: nir?,
        nom: nom?,
        pn: pn?,
        prestation: prestation?,
        dtd: dtd?,
        dtf: dtf?,
        nb_quant: nb_quant?,
        mt_paye: mt_paye?,
    })
}

fn load_statement(tx: &Connection, k: &StatementKey) -> Result<Option<Stored>, ImportError> {
    Ok(tx
        .prepare_cached(
            "SELECT id, dt_paiement, published_revision > 0 FROM statements
             WHERE id_cram = ?1 AND code_convention = ?2 AND rf_paiement = ?3",
        )?
        .query_row(params![k.0, k.1, k.2], |r| {
            Ok(Stored {
                id: r.get(0)?,
                dt_paiement: r.get(1)?,
                published: r.get(2)?,
            })
        })
        .optional()?)
}

fn load_line(tx: &Connection, k: &PaymentKey) -> Result<Option<StoredLine>, ImportError> {
    Ok(tx
        .prepare_cached(
            "SELECT p.id, s.id_cram, s.code_convention, p.nom_per, p.pn_per, p.rf_prstpap, p.dtf_interv,
                    p.nb_quant, p.mt_paye
             FROM payments p JOIN statements s ON s.id = p.statement_id
             WHERE p.rf_paiement = ?1 AND p.rf_facture = ?2 AND p.nir_per = ?3 AND p.dtd_interv = ?4",
        )?
        .query_row(params![k.0, k.1, k.2, iso(k.3)], |r| {
            Ok(StoredLine {
                id: r.get(0)?,
                id_cram: r.get(1)?,
                code: r.get(2)?,
                nom: r.get(3)?,
                pn: r.get(4)?,
                prestation: r.get(5)?,
                dtf: r.get(6)?,
                nb_quant: r.get(7)?,
                mt_paye: r.get(8)?,
            })
        })
        .optional()?)
}

fn iso(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn apply(
    tx: &Connection,
    ctx: &Ctx<'_>,
    recs: &[Rec],
    stored: &HashMap<StatementKey, Stored>,
    lines: &HashMap<PaymentKey, StoredLine>,
) -> Result<ImportSummary, ImportError> {
    let at = ctx.stamp();
    // Statements in the order of their first line; (id, changed).
    let mut statements: BTreeMap<StatementKey, (i64, bool)> = BTreeMap::new();
    let mut created = 0usize;
    for r in recs {
        let sk = r.statement_key();
        if statements.contains_key(&sk) {
            continue;
        }
        let date = iso(r.dt_paiement);
        let due = crate::bordereaux::due_at(r.dt_paiement).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let entry = match stored.get(&sk) {
            Some(s) if s.dt_paiement != date => {
                // Not published (checked): the date is corrected.
                tx.execute(
                    "UPDATE statements SET dt_paiement = ?2, due_at = ?3 WHERE id = ?1",
                    params![s.id, date, due],
                )?;
                (s.id, true)
            }
            Some(s) => (s.id, false),
            None => {
                tx.execute(
                    "INSERT INTO statements (id_cram, code_convention, rf_paiement, provider, dt_paiement, due_at,
                                             revision, changed_at, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?7)",
                    params![r.id_cram, r.code, r.rf_paiement, r.provider, date, due, at],
                )?;
                created += 1;
                (tx.last_insert_rowid(), false)
            }
        };
        statements.insert(sk, entry);
    }

    let (mut new, mut updated, mut unchanged) = (0, 0, 0);
    let mut insert = tx.prepare(
        "INSERT INTO payments (statement_id, rf_paiement, rf_facture, nir_per, dtd_interv, dtf_interv, nom_per,
                               pn_per, rf_prstpap, nb_quant, mt_paye, imported_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
    )?;
    let mut update = tx.prepare(
        "UPDATE payments SET dtf_interv = ?2, nom_per = ?3, pn_per = ?4, rf_prstpap = ?5, nb_quant = ?6,
                             mt_paye = ?7, updated_at = ?8
         WHERE id = ?1",
    )?;
    for r in recs {
        let entry = statements
            .get_mut(&r.statement_key())
            .expect("every statement is set above");
        match lines.get(&r.key()) {
            None => {
                insert.execute(params![
                    entry.0,
                    r.rf_paiement,
                    r.rf_facture,
                    r.nir,
                    iso(r.dtd),
                    iso(r.dtf),
                    r.nom,
                    r.pn,
                    r.prestation,
                    r.nb_quant,
                    r.mt_paye,
                    at
                ])?;
                new += 1;
                entry.1 = true;
            }
            Some(l) => {
                updated += 1;
                let same = l.dtf == iso(r.dtf)
                    && l.nom == r.nom
                    && l.pn == r.pn
                    && l.prestation == r.prestation
                    && l.nb_quant == r.nb_quant
                    && l.mt_paye == r.mt_paye;
                if same {
                    unchanged += 1;
                    continue;
                }
                update.execute(params![
                    l.id,
                    iso(r.dtf),
                    r.nom,
                    r.pn,
                    r.prestation,
                    r.nb_quant,
                    r.mt_paye,
                    at
                ])?;
                entry.1 = true;
            }
        }
    }
    // A statement that existed and changed gets a new revision (a new one
    // starts at 1): the job publishes it (again) when due.
    let mut changed = 0usize;
    for (sk, (id, did_change)) in &statements {
        if *did_change && stored.contains_key(sk) {
            tx.execute(
                "UPDATE statements SET revision = revision + 1, changed_at = ?2 WHERE id = ?1",
                params![id, at],
            )?;
            changed += 1;
        }
    }
    let mut note = format!(
        "{} statement{}: {created} new, {changed} changed",
        statements.len(),
        if statements.len() == 1 { "" } else { "s" }
    );
    if unchanged > 0 {
        note.push_str(&format!(", {unchanged} row(s) without change"));
    }
    let summary = ImportSummary {
        kind: ctx.kind,
        rows: recs.len(),
        new,
        updated,
        note: Some(note),
    };
    let all_ergo = !recs.is_empty() && recs.iter().all(|r| r.provider_type == "ergo");
    let scope = Scope {
        id_cram: single(recs.iter().map(|r| r.id_cram.as_str())),
        provider: single(recs.iter().map(|r| r.provider.as_str())),
        convention: single(recs.iter().map(|r| r.code.as_str())),
    };
    ctx.record(tx, &summary, application_of(all_ergo), "paiements", scope)?;
    Ok(summary)
}

#[cfg(test)]
mod tests;
