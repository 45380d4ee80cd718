//! `beneficiaries` import: the beneficiaries' plans of help hours.
//!
//! In: `id-cram;id-site;nir-per;nom-per;pn-per;rf-prstpap;dt-debut;dt-fin;
//! mt-total;mt-consomme`. Out: `plans` rows keyed on id-cram + id-site +
//! nir-per + rf-prstpap + dt-debut, amounts in hundredths.
//!
//! A plan names the site of the provider that delivers it: that site must be
//! registered (validated convention) for the same caisse, so that the
//! billing controls can find the plan from the provider that bills it.
//! Messages never repeat a NIR or a name (spec §9).

use std::collections::{HashMap, HashSet};

use rusqlite::{params, Connection, OptionalExtension};

use super::fields;
use super::table::{self, Row, RowError};
use super::{single, Ctx, ImportError, ImportSummary, Scope};
use crate::store::reference::to_hundredths;

const COLUMNS: &[&str] = &[
    "id-cram",
    "id-site",
    "nir-per",
    "nom-per",
    "pn-per",
    "rf-prstpap",
    "dt-debut",
    "dt-fin",
    "mt-total",
    "mt-consomme",
];

/// Field lengths of the billing schema (`nom-per` 54, `pn-per` 20).
const NOM_MAX: usize = 54;
const PN_MAX: usize = 20;

#[derive(Debug, Clone)]
struct Rec {
    line: u64,
    id_cram: String,
    site: String,
    nir: String,
    nom: String,
    pn: String,
    prestation: String,
    debut: chrono::NaiveDate,
    fin: chrono::NaiveDate,
    total: i64,
    consomme: i64,
}

pub(super) fn import(tx: &Connection, ctx: &Ctx<'_>) -> Result<ImportSummary, ImportError> {
    let t = table::read(ctx.bytes, COLUMNS);
    let mut errors = t.errors;
    let sites = registered_sites(tx)?;
    let mut recs = Vec::with_capacity(t.rows.len());
    let mut keys: HashMap<(String, String, String, String, chrono::NaiveDate), u64> = HashMap::new();
    for row in &t.rows {
        let Some(r) = check_row(row, ctx, &sites, &mut errors) else {
            continue;
        };
        let first = *keys
            .entry((
                r.id_cram.clone(),
                r.site.clone(),
                r.nir.clone(),
                r.prestation.clone(),
                r.debut,
            ))
            .or_insert(r.line);
        if first != r.line {
            errors.push(RowError::row(
                r.line,
                format!("same id-cram, id-site, nir-per, rf-prstpap and dt-debut as line {first}"),
            ));
            continue;
        }
        recs.push(r);
    }
    if !errors.is_empty() {
        return Err(ctx.invalid(errors));
    }
    // Upserted in the order of the plans' unique key: a caisse file lists
    // beneficiaries in an order unrelated to it, and scattered inserts
    // into the key's index (and plans_preload) outgrow SQLite's page cache
    // on a large file (180 000 plans: 5.4 s scattered, 1.6 s sorted).
    recs.sort_by(|a, b| {
        (&a.id_cram, &a.site, &a.nir, &a.prestation, a.debut).cmp(&(
            &b.id_cram,
            &b.site,
            &b.nir,
            &b.prestation,
            b.debut,
        ))
    });
    apply(tx, ctx, &recs, &sites)
}

/// (id_cram, id_site) of every validated convention -> its provider.
fn registered_sites(tx: &Connection) -> Result<HashMap<(String, String), String>, ImportError> {
    let mut stmt = tx.prepare("SELECT id_cram, id_site, provider FROM conventions WHERE validated = 1")?;
    let rows = stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?;
    let mut m = HashMap::new();
    for row in rows {
        let (k, v) = row?;
        m.insert(k, v);
    }
    Ok(m)
}

fn check_row(
    row: &Row,
    ctx: &Ctx<'_>,
    sites: &HashMap<(String, String), String>,
    errors: &mut Vec<RowError>,
) -> Option<Rec> {
    let before = errors.len();
    let line = row.line;
    let mut push = |i: usize, reason: String| errors.push(RowError::cell(line, COLUMNS[i], reason));
    let id_cram = fields::known(row.get(0), &ctx.cfg.billing.caisses, "caisse id-cram")
        .map_err(|e| push(0, e))
        .ok();
    let site = fields::code(row.get(1), super::providers::SITE_MAX)
        .map_err(|e| push(1, e))
        .ok();
    let nir = fields::nir(row.get(2)).map_err(|e| push(2, e)).ok();
    let nom = fields::text(row.get(3), NOM_MAX).map_err(|e| push(3, e)).ok();
    let pn = fields::text(row.get(4), PN_MAX).map_err(|e| push(4, e)).ok();
    let prestation = fields::known(row.get(5), &ctx.cfg.billing.prestations, "prestation")
        .map_err(|e| push(5, e))
        .ok();
    let debut = fields::date(row.get(6)).map_err(|e| push(6, e)).ok();
    let fin = fields::date(row.get(7)).map_err(|e| push(7, e)).ok();
    let total = fields::decimal(row.get(8)).map_err(|e| push(8, e)).ok();
    let consomme = fields::decimal(row.get(9)).map_err(|e| push(9, e)).ok();
    if let (Some(d), Some(f)) = (debut, fin) {
        if d > f {
            push(7, format!("{f} is before dt-debut {d}"));
        }
    }
    if let (Some(t), Some(c)) = (total, consomme) {
        if c > t {
            push(9, format!("{c} is more than mt-total {t}"));
        }
    }
    if let (Some(c), Some(s)) = (&id_cram, &site) {
        if !sites.contains_key(&(c.clone(), s.clone())) {
            push(
                1,
                format!("site {s} has no validated convention with caisse {c} (import the provider first)"),
            );
        }
    }
    if errors.len() > before {
        return None;
    }
    Some(Rec {
        line,
        id_cram: id_cram?,
        site: site?,
        nir: nir?,
        nom: nom?,
        pn: pn?,
        prestation: prestation?,
        debut: debut?,
        fin: fin?,
        total: to_hundredths(total?)?,
        consomme: to_hundredths(consomme?)?,
    })
}

fn apply(
    tx: &Connection,
    ctx: &Ctx<'_>,
    recs: &[Rec],
    sites: &HashMap<(String, String), String>,
) -> Result<ImportSummary, ImportError> {
    let at = ctx.stamp();
    let (mut new, mut updated) = (0, 0);
    let mut exists = tx.prepare(
        "SELECT 1 FROM plans WHERE id_cram = ?1 AND id_site = ?2 AND nir_per = ?3 AND rf_prstpap = ?4 AND dt_debut = ?5",
    )?;
    let mut upsert = tx.prepare(
        "INSERT INTO plans (id_cram, id_site, nir_per, nom_per, pn_per, rf_prstpap, dt_debut, dt_fin,
                            mt_total, mt_consomme, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT(id_cram, id_site, nir_per, rf_prstpap, dt_debut) DO UPDATE SET
           nom_per = excluded.nom_per, pn_per = excluded.pn_per, dt_fin = excluded.dt_fin,
           mt_total = excluded.mt_total, mt_consomme = excluded.mt_consomme,
           updated_at = excluded.updated_at",
    )?;
    for r in recs {
        let debut = r.debut.format("%Y-%m-%d").to_string();
        let found = exists
            .query_row(params![r.id_cram, r.site, r.nir, r.prestation, debut], |_| Ok(()))
            .optional()?
            .is_some();
        upsert.execute(params![
            r.id_cram,
            r.site,
            r.nir,
            r.nom,
            r.pn,
            r.prestation,
            debut,
            r.fin.format("%Y-%m-%d").to_string(),
            r.total,
            r.consomme,
            at
        ])?;
        if found {
            updated += 1;
        } else {
            new += 1;
        }
    }
    let summary = ImportSummary {
        kind: ctx.kind,
        rows: recs.len(),
        new,
        updated,
        note: None,
    };
    let providers: HashSet<&str> = recs
        .iter()
        .filter_map(|r| sites.get(&(r.id_cram.clone(), r.site.clone())).map(String::as_str))
        .collect();
    // What each provider checks before billing changed.
    let mut listed: Vec<&str> = providers.iter().copied().collect();
    listed.sort_unstable();
    for p in listed {
        crate::habitat::mark_listing(tx, p, crate::habitat::Listing::Beneficiaires)?;
    }
    let scope = Scope {
        id_cram: single(recs.iter().map(|r| r.id_cram.as_str())),
        provider: single(providers.into_iter()),
        convention: None,
    };
    ctx.record(tx, &summary, "aide-a-domicile", "referentiel", scope)?;
    Ok(summary)
}
