//! `providers` import: one row per convention of a provider with a caisse.
//!
//! In: `provider;raison-sociale;siret;email;telephone;type;id-cram;
//! code-convention;id-site`. Out: the `providers` row of each provider and
//! its `conventions` rows (validated: the caisse's import is its
//! validation), keyed on provider + id-cram + code-convention.
//!
//! Beyond each cell's rule, the file must be coherent with itself and with
//! the database once applied: one provider's rows agree on its company
//! fields; a site (`id-site`) belongs to exactly one provider; a convention
//! code of a caisse belongs to one provider (orders and attestations find
//! their provider through it). Ownership is checked on the merged state —
//! database rows overridden by the file's — so a file that moves a site from
//! one convention to another of the same provider is accepted.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rusqlite::{params, Connection, OptionalExtension};

use super::fields;
use super::table::{self, Row, RowError};
use super::{application_of, single, Ctx, ImportError, ImportSummary, Scope};

const COLUMNS: &[&str] = &[
    "provider",
    "raison-sociale",
    "siret",
    "email",
    "telephone",
    "type",
    "id-cram",
    "code-convention",
    "id-site",
];

/// Longest company name kept (the seed gives none; generous).
const RAISON_MAX: usize = 200;
/// `id-site` is a `string` of 15 in the billing schema.
pub const SITE_MAX: usize = 15;
/// Convention codes are short (the seed's example: `62739900`).
const CONVENTION_MAX: usize = 20;

#[derive(Debug, Clone)]
struct Rec {
    line: u64,
    provider: String,
    raison: String,
    siret: String,
    email: String,
    telephone: String,
    typ: &'static str,
    id_cram: String,
    code: String,
    site: String,
}

pub(super) fn import(tx: &Connection, ctx: &Ctx<'_>) -> Result<ImportSummary, ImportError> {
    let t = table::read(ctx.bytes, COLUMNS);
    let mut errors = t.errors;
    let mut recs = Vec::with_capacity(t.rows.len());
    for row in &t.rows {
        if let Some(r) = check_row(row, ctx, &mut errors) {
            recs.push(r);
        }
    }
    check_file(&recs, &mut errors);
    check_ownership(tx, &recs, &mut errors)?;
    if !errors.is_empty() {
        return Err(ctx.invalid(errors));
    }
    let summary = apply(tx, ctx, &recs)?;
    Ok(summary)
}

/// Every cell rule of one row; `None` (with its errors pushed) when bad.
fn check_row(row: &Row, ctx: &Ctx<'_>, errors: &mut Vec<RowError>) -> Option<Rec> {
    let before = errors.len();
    let line = row.line;
    let mut cell = |i: usize, r: Result<String, String>| -> String {
        r.unwrap_or_else(|reason| {
            errors.push(RowError::cell(line, COLUMNS[i], reason));
            String::new()
        })
    };
    let provider = cell(0, fields::login(row.get(0)));
    let raison = cell(1, fields::text(row.get(1), RAISON_MAX));
    let siret = cell(2, fields::siret(row.get(2)));
    let email = cell(3, fields::email(row.get(3)));
    let telephone = cell(4, fields::telephone(row.get(4)));
    let typ = cell(5, fields::provider_type(row.get(5)).map(str::to_string));
    let id_cram = cell(6, fields::known(row.get(6), &ctx.cfg.billing.caisses, "caisse id-cram"));
    let code = cell(7, fields::code(row.get(7), CONVENTION_MAX));
    let site = cell(8, fields::code(row.get(8), SITE_MAX));
    if errors.len() > before {
        return None;
    }
    Some(Rec {
        line,
        provider,
        raison,
        siret,
        email,
        telephone,
        typ: if typ == "ergo" { "ergo" } else { "saad" },
        id_cram,
        code,
        site,
    })
}

/// Coherence inside the file: no key twice, one provider's rows agree.
fn check_file(recs: &[Rec], errors: &mut Vec<RowError>) {
    let mut keys: HashMap<(&str, &str, &str), u64> = HashMap::new();
    let mut firsts: HashMap<&str, &Rec> = HashMap::new();
    for r in recs {
        let first = *keys.entry((&r.provider, &r.id_cram, &r.code)).or_insert(r.line);
        if first != r.line {
            errors.push(RowError::row(
                r.line,
                format!("same provider, id-cram and code-convention as line {first}"),
            ));
            continue;
        }
        let Some(f) = firsts.get(r.provider.as_str()) else {
            firsts.insert(&r.provider, r);
            continue;
        };
        let pairs = [
            ("raison-sociale", &f.raison, &r.raison),
            ("siret", &f.siret, &r.siret),
            ("email", &f.email, &r.email),
            ("telephone", &f.telephone, &r.telephone),
        ];
        for (col, a, b) in pairs {
            if a != b {
                errors.push(RowError::cell(
                    r.line,
                    col,
                    format!("differs from line {} for provider {}", f.line, r.provider),
                ));
            }
        }
        if f.typ != r.typ {
            errors.push(RowError::cell(
                r.line,
                "type",
                format!("differs from line {} for provider {}", f.line, r.provider),
            ));
        }
    }
}

/// Where a convention of the merged state comes from.
#[derive(Clone, Copy)]
enum Origin {
    Database,
    Line(u64),
}

/// A site, and a caisse's convention code, belong to one provider once the
/// file is applied.
fn check_ownership(tx: &Connection, recs: &[Rec], errors: &mut Vec<RowError>) -> Result<(), ImportError> {
    // Merged state: (provider, id_cram, code) -> (site, origin).
    let mut merged: BTreeMap<(String, String, String), (String, Origin)> = BTreeMap::new();
    let mut stmt = tx.prepare("SELECT provider, id_cram, code_convention, id_site FROM conventions")?;
    let rows = stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get::<_, String>(3)?)))?;
    for row in rows {
        let (k, site) = row?;
        merged.insert(k, (site, Origin::Database));
    }
    for r in recs {
        merged.insert(
            (r.provider.clone(), r.id_cram.clone(), r.code.clone()),
            (r.site.clone(), Origin::Line(r.line)),
        );
    }
    // site -> provider -> origins; (id_cram, code) -> provider -> origins.
    let mut sites: HashMap<&str, BTreeMap<&str, Vec<Origin>>> = HashMap::new();
    let mut codes: HashMap<(&str, &str), BTreeMap<&str, Vec<Origin>>> = HashMap::new();
    for ((provider, id_cram, code), (site, origin)) in &merged {
        sites
            .entry(site)
            .or_default()
            .entry(provider)
            .or_default()
            .push(*origin);
        codes
            .entry((id_cram, code))
            .or_default()
            .entry(provider)
            .or_default()
            .push(*origin);
    }
    let mut reported: BTreeSet<(u64, &str)> = BTreeSet::new();
    for r in recs {
        if let Some(owners) = sites.get(r.site.as_str()).filter(|o| o.len() > 1) {
            if reported.insert((r.line, "id-site")) {
                errors.push(RowError::cell(
                    r.line,
                    "id-site",
                    format!(
                        "site {} is also given to {}: a site belongs to one provider",
                        r.site,
                        others(owners, &r.provider)
                    ),
                ));
            }
        }
        if let Some(owners) = codes
            .get(&(r.id_cram.as_str(), r.code.as_str()))
            .filter(|o| o.len() > 1)
        {
            if reported.insert((r.line, "code-convention")) {
                errors.push(RowError::cell(
                    r.line,
                    "code-convention",
                    format!(
                        "convention {} of caisse {} is also given to {}: a convention belongs to one provider",
                        r.code,
                        r.id_cram,
                        others(owners, &r.provider)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// "provider B (line 7)", "provider C (already registered)", joined.
fn others(owners: &BTreeMap<&str, Vec<Origin>>, me: &str) -> String {
    let mut parts = Vec::new();
    for (p, origins) in owners.iter().filter(|(p, _)| **p != me) {
        let where_: Vec<String> = origins
            .iter()
            .map(|o| match o {
                Origin::Database => "already registered".to_string(),
                Origin::Line(l) => format!("line {l}"),
            })
            .collect();
        parts.push(format!("provider {p} ({})", where_.join(", ")));
    }
    parts.join(" and ")
}

fn apply(tx: &Connection, ctx: &Ctx<'_>, recs: &[Rec]) -> Result<ImportSummary, ImportError> {
    let at = ctx.stamp();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let (mut new, mut updated) = (0, 0);
    for r in recs {
        if done.insert(&r.provider) {
            tx.execute(
                "INSERT INTO providers (provider, raison_sociale, siret, email, telephone, type, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(provider) DO UPDATE SET raison_sociale = excluded.raison_sociale,
                   siret = excluded.siret, email = excluded.email, telephone = excluded.telephone,
                   type = excluded.type, updated_at = excluded.updated_at",
                params![r.provider, r.raison, r.siret, r.email, r.telephone, r.typ, at],
            )?;
        }
        let exists = tx
            .query_row(
                "SELECT 1 FROM conventions WHERE provider = ?1 AND id_cram = ?2 AND code_convention = ?3",
                params![r.provider, r.id_cram, r.code],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        tx.execute(
            "INSERT INTO conventions (provider, id_cram, code_convention, id_site, validated, updated_at)
             VALUES (?1, ?2, ?3, ?4, 1, ?5)
             ON CONFLICT(provider, id_cram, code_convention) DO UPDATE SET id_site = excluded.id_site,
               validated = 1, updated_at = excluded.updated_at",
            params![r.provider, r.id_cram, r.code, r.site, at],
        )?;
        if exists {
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
    // Which plans a home-care provider's listing shows follows its
    // conventions: listed again.
    let mut saad: Vec<&str> = recs
        .iter()
        .filter(|r| r.typ == "saad")
        .map(|r| r.provider.as_str())
        .collect();
    saad.sort_unstable();
    saad.dedup();
    for p in saad {
        crate::habitat::mark_listing(tx, p, crate::habitat::Listing::Beneficiaires)?;
    }
    let all_ergo = !recs.is_empty() && recs.iter().all(|r| r.typ == "ergo");
    let scope = Scope {
        id_cram: single(recs.iter().map(|r| r.id_cram.as_str())),
        provider: single(recs.iter().map(|r| r.provider.as_str())),
        convention: single(recs.iter().map(|r| r.code.as_str())),
    };
    ctx.record(tx, &summary, application_of(all_ergo), "referentiel", scope)?;
    Ok(summary)
}
