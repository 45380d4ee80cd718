//! Queries on the caisse reference data (providers, conventions, sites,
//! plans): the database in, typed values out, for the billing and
//! attestation controls.
//!
//! Money and hours are stored as INTEGER hundredths and come out as
//! [`Decimal`]; dates are stored as `YYYY-MM-DD` and come out as
//! [`NaiveDate`]. A site belongs to one provider (the import guarantees it),
//! so "whose site is this" has one answer.

use anyhow::{Context, Result};
use chrono::NaiveDate;
use rusqlite::{params, Connection, OptionalExtension, Row};
use rust_decimal::Decimal;

/// Hundredths of a decimal (`12.5` -> 1250); `None` if it has more than two
/// decimals or does not fit.
pub fn to_hundredths(d: Decimal) -> Option<i64> {
    let h = d.checked_mul(Decimal::ONE_HUNDRED)?;
    if h.fract() != Decimal::ZERO {
        return None;
    }
    i64::try_from(h).ok()
}

/// The decimal of a hundredths integer (1250 -> `12.50`).
pub fn from_hundredths(h: i64) -> Decimal {
    Decimal::new(h, 2)
}

/// A provider as the caisse registered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub provider: String,
    pub raison_sociale: String,
    pub siret: String,
    pub email: String,
    pub telephone: String,
    /// `saad` or `ergo`.
    pub kind: String,
}

/// A convention of a provider with a caisse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Convention {
    pub provider: String,
    pub id_cram: String,
    pub code_convention: String,
    pub id_site: String,
    pub validated: bool,
}

/// Who owns a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteOwner {
    pub provider: String,
    /// Whether at least one convention of this site is validated.
    pub validated: bool,
}

/// A beneficiary's plan of help hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub id: i64,
    pub id_cram: String,
    pub id_site: String,
    pub nir_per: String,
    pub nom_per: String,
    pub pn_per: String,
    pub rf_prstpap: String,
    pub dt_debut: NaiveDate,
    pub dt_fin: NaiveDate,
    pub mt_total: Decimal,
    pub mt_consomme: Decimal,
}

pub fn provider(conn: &Connection, name: &str) -> Result<Option<Provider>> {
    conn.query_row(
        "SELECT provider, raison_sociale, siret, email, telephone, type FROM providers WHERE provider = ?1",
        [name],
        |r| {
            Ok(Provider {
                provider: r.get(0)?,
                raison_sociale: r.get(1)?,
                siret: r.get(2)?,
                email: r.get(3)?,
                telephone: r.get(4)?,
                kind: r.get(5)?,
            })
        },
    )
    .optional()
    .with_context(|| format!("reading provider {name}"))
}

/// Every provider name, sorted (one inbound/outbound folder each).
pub fn provider_names(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT provider FROM providers ORDER BY provider")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect::<rusqlite::Result<_>>().context("listing providers")
}

/// The provider a site belongs to (F05, F12), `None` for an unknown site.
pub fn site_owner(conn: &Connection, id_site: &str) -> Result<Option<SiteOwner>> {
    conn.query_row(
        "SELECT provider, MAX(validated) FROM conventions WHERE id_site = ?1 GROUP BY provider LIMIT 1",
        [id_site],
        |r| {
            Ok(SiteOwner {
                provider: r.get(0)?,
                validated: r.get::<_, i64>(1)? != 0,
            })
        },
    )
    .optional()
    .with_context(|| format!("reading owner of site {id_site}"))
}

/// Whether `id_site` is a validated site of `provider` (L11).
pub fn is_site_of(conn: &Connection, provider: &str, id_site: &str) -> Result<bool> {
    let found = conn
        .query_row(
            "SELECT 1 FROM conventions WHERE provider = ?1 AND id_site = ?2 AND validated = 1 LIMIT 1",
            params![provider, id_site],
            |_| Ok(()),
        )
        .optional()
        .with_context(|| format!("reading sites of provider {provider}"))?;
    Ok(found.is_some())
}

fn convention_row(r: &Row<'_>) -> rusqlite::Result<Convention> {
    Ok(Convention {
        provider: r.get(0)?,
        id_cram: r.get(1)?,
        code_convention: r.get(2)?,
        id_site: r.get(3)?,
        validated: r.get::<_, i64>(4)? != 0,
    })
}

/// The provider's validated conventions with a caisse (F06).
pub fn conventions(conn: &Connection, provider: &str, id_cram: &str) -> Result<Vec<Convention>> {
    let mut stmt = conn.prepare_cached(
        "SELECT provider, id_cram, code_convention, id_site, validated FROM conventions
         WHERE provider = ?1 AND id_cram = ?2 AND validated = 1 ORDER BY code_convention",
    )?;
    let rows = stmt.query_map(params![provider, id_cram], convention_row)?;
    rows.collect::<rusqlite::Result<_>>()
        .with_context(|| format!("reading conventions of provider {provider} with caisse {id_cram}"))
}

/// The validated convention `code` of a caisse, whoever holds it (orders and
/// attestations name a convention, not a provider).
pub fn convention(conn: &Connection, id_cram: &str, code: &str) -> Result<Option<Convention>> {
    conn.query_row(
        "SELECT provider, id_cram, code_convention, id_site, validated FROM conventions
         WHERE id_cram = ?1 AND code_convention = ?2 AND validated = 1 LIMIT 1",
        params![id_cram, code],
        convention_row,
    )
    .optional()
    .with_context(|| format!("reading convention {code} of caisse {id_cram}"))
}

fn date_col(r: &Row<'_>, i: usize) -> rusqlite::Result<NaiveDate> {
    let s: String = r.get(i)?;
    NaiveDate::parse_from_str(&s, "%Y-%m-%d")
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
}

fn plan_row(r: &Row<'_>) -> rusqlite::Result<Plan> {
    Ok(Plan {
        id: r.get(0)?,
        id_cram: r.get(1)?,
        id_site: r.get(2)?,
        nir_per: r.get(3)?,
        nom_per: r.get(4)?,
        pn_per: r.get(5)?,
        rf_prstpap: r.get(6)?,
        dt_debut: date_col(r, 7)?,
        dt_fin: date_col(r, 8)?,
        mt_total: from_hundredths(r.get(9)?),
        mt_consomme: from_hundredths(r.get(10)?),
    })
}

const PLAN_COLUMNS: &str = "p.id, p.id_cram, p.id_site, p.nir_per, p.nom_per, p.pn_per, p.rf_prstpap,
     p.dt_debut, p.dt_fin, p.mt_total, p.mt_consomme";

/// The plans of a beneficiary for a prestation with a caisse, delivered by
/// one of `provider`'s validated sites for that caisse (L04, L05, L07),
/// oldest first. Several plans may follow one another in time.
pub fn plans(conn: &Connection, nir: &str, prestation: &str, id_cram: &str, provider: &str) -> Result<Vec<Plan>> {
    let sql = format!(
        "SELECT {PLAN_COLUMNS} FROM plans p
         WHERE p.nir_per = ?1 AND p.rf_prstpap = ?2 AND p.id_cram = ?3
           AND EXISTS (SELECT 1 FROM conventions c WHERE c.id_site = p.id_site AND c.id_cram = p.id_cram
                       AND c.provider = ?4 AND c.validated = 1)
         ORDER BY p.dt_debut, p.id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![nir, prestation, id_cram, provider], plan_row)?;
    rows.collect::<rusqlite::Result<_>>()
        .with_context(|| format!("reading plans of provider {provider} with caisse {id_cram}"))
}

/// One plan by id.
pub fn plan(conn: &Connection, id: i64) -> Result<Option<Plan>> {
    let sql = format!("SELECT {PLAN_COLUMNS} FROM plans p WHERE p.id = ?1");
    conn.query_row(&sql, [id], plan_row)
        .optional()
        .with_context(|| format!("reading plan {id}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::import::{import_file, Kind};
    use chrono::{TimeZone, Utc};

    fn load() -> Connection {
        let mut c = crate::store::open_in_memory().unwrap();
        let cfg = Config::default();
        let now = Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap();
        let providers = "provider;raison-sociale;siret;email;telephone;type;id-cram;code-convention;id-site\n\
            saad1;SAAD Un;73282932000074;a@saad1.example;03 21 00 00 01;saad;03;C1;21999000\n\
            saad1;SAAD Un;73282932000074;a@saad1.example;03 21 00 00 01;saad;04;C2;21999000\n\
            saad2;SAAD Deux;44306184100047;b@saad2.example;03 21 00 00 02;saad;03;C3;21888000\n";
        import_file(&mut c, &cfg, Kind::Providers, "p.csv", providers.as_bytes(), now).unwrap();
        let plans = "id-cram;id-site;nir-per;nom-per;pn-per;rf-prstpap;dt-debut;dt-fin;mt-total;mt-consomme\n\
            03;21999000;1541299999000;DUPONT;JEAN;PPP100;2026-01-01;2026-06-30;120,50;10\n\
            03;21999000;1541299999000;DUPONT;JEAN;PPP100;01/07/2026;31/12/2026;100;0\n\
            03;21888000;1541299999000;DUPONT;JEAN;PPP100;2026-01-01;2026-12-31;50;0\n";
        import_file(&mut c, &cfg, Kind::Beneficiaries, "b.csv", plans.as_bytes(), now).unwrap();
        c
    }

    #[test]
    fn hundredths_round_trip() {
        assert_eq!(to_hundredths(Decimal::new(1250, 2)), Some(1250));
        assert_eq!(to_hundredths(Decimal::new(125, 1)), Some(1250));
        assert_eq!(to_hundredths(Decimal::new(1251, 3)), None);
        assert_eq!(from_hundredths(1250).to_string(), "12.50");
    }

    #[test]
    fn sites_conventions_and_plans() {
        let c = load();
        let o = site_owner(&c, "21999000").unwrap().unwrap();
        assert_eq!(
            o,
            SiteOwner {
                provider: "saad1".into(),
                validated: true
            }
        );
        assert_eq!(site_owner(&c, "nope").unwrap(), None);
        assert!(is_site_of(&c, "saad1", "21999000").unwrap());
        assert!(!is_site_of(&c, "saad2", "21999000").unwrap());
        let cs = conventions(&c, "saad1", "04").unwrap();
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].code_convention, "C2");
        assert!(conventions(&c, "saad2", "04").unwrap().is_empty());
        assert_eq!(convention(&c, "03", "C3").unwrap().unwrap().provider, "saad2");
        assert_eq!(provider(&c, "saad2").unwrap().unwrap().kind, "saad");
        assert_eq!(provider_names(&c).unwrap(), vec!["saad1", "saad2"]);

        let ps = plans(&c, "1541299999000", "PPP100", "03", "saad1").unwrap();
        assert_eq!(ps.len(), 2, "only saad1's site");
        assert_eq!(ps[0].mt_total, Decimal::new(12050, 2));
        assert_eq!(ps[0].mt_consomme, Decimal::new(1000, 2));
        assert_eq!(ps[1].dt_debut, NaiveDate::from_ymd_opt(2026, 7, 1).unwrap());
        assert_eq!(plan(&c, ps[1].id).unwrap().unwrap(), ps[1]);
        assert_eq!(plans(&c, "1541299999000", "PPP100", "03", "saad2").unwrap().len(), 1);
        assert!(plans(&c, "1541299999000", "PPP119", "03", "saad1").unwrap().is_empty());
        assert!(plans(&c, "1541299999000", "PPP100", "04", "saad1").unwrap().is_empty());
    }
}
