//! `orders` import: the caisse's intervention orders for its
//! ergothérapeutes ("commandes d'intervention").
//!
//! In: `rf-commande;id-cram;code-convention;nir-per;nom-per;pn-per;adresse;
//! telephone;ressources;dt-commande`. Out: `orders` rows keyed on
//! rf-commande, the `commandes` listing of every provider whose orders
//! changed marked as owed, one e-mail per provider listing its new orders,
//! one history entry.
//!
//! The order's provider is the ergothérapeute (type `ergo`) holding the
//! validated convention `code-convention` of caisse `id-cram`.
//!
//! Upsert: a new order is `a_faire`. An existing order keeps its state, its
//! attestation, its relance and its documents; the file may correct its
//! person, address, telephone and resources at any time, but:
//! - its convention may change only while no attestation was transmitted
//!   and the case is open (`a_faire`, `relance`), and not to another
//!   provider once documents were routed to the first one;
//! - its NIR and date may not change once an attestation was transmitted
//!   (the attestation was checked against them).
//!
//! A row identical to the stored order changes nothing (no listing, no
//! mail). Messages never repeat a NIR or a name (spec §9).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use rusqlite::{params, Connection, OptionalExtension};

use super::fields;
use super::table::{self, Row, RowError};
use super::{single, Ctx, ImportError, ImportSummary, Scope};
use crate::habitat::{self, Listing, Order, OrderState};

const COLUMNS: &[&str] = &[
    "rf-commande",
    "id-cram",
    "code-convention",
    "nir-per",
    "nom-per",
    "pn-per",
    "adresse",
    "telephone",
    "ressources",
    "dt-commande",
];

/// Field lengths: names as in the billing schema, a postal address on one
/// line generously.
const NOM_MAX: usize = 54;
const PN_MAX: usize = 20;
const ADRESSE_MAX: usize = 250;
/// Convention codes, as in the providers file.
const CONVENTION_MAX: usize = 20;
/// New orders named in one e-mail (the rest are counted).
const MAIL_LIST_MAX: usize = 100;

#[derive(Debug, Clone)]
struct Rec {
    line: u64,
    rf: String,
    id_cram: String,
    code: String,
    provider: String,
    nir: String,
    nom: String,
    pn: String,
    adresse: String,
    telephone: String,
    ressources: &'static str,
    dt: NaiveDate,
}

impl Rec {
    fn dt_iso(&self) -> String {
        self.dt.format("%Y-%m-%d").to_string()
    }

    /// Whether the stored order already holds exactly these values.
    fn same_as(&self, o: &Order) -> bool {
        self.id_cram == o.id_cram
            && self.code == o.code_convention
            && self.provider == o.provider
            && self.nir == o.nir_per
            && self.nom == o.nom_per
            && self.pn == o.pn_per
            && self.adresse == o.adresse
            && self.telephone == o.telephone
            && self.ressources == o.ressources
            && self.dt_iso() == o.dt_commande
    }
}

/// A validated convention: its holder and the holder's type.
struct Holder {
    provider: String,
    typ: String,
}

pub(super) fn import(tx: &Connection, ctx: &Ctx<'_>) -> Result<ImportSummary, ImportError> {
    let t = table::read(ctx.bytes, COLUMNS);
    let mut errors = t.errors;
    let holders = holders(tx)?;
    let mut recs = Vec::with_capacity(t.rows.len());
    let mut keys: HashMap<String, u64> = HashMap::new();
    for row in &t.rows {
        let Some(r) = check_row(row, ctx, &holders, &mut errors) else {
            continue;
        };
        let first = *keys.entry(r.rf.clone()).or_insert(r.line);
        if first != r.line {
            errors.push(RowError::row(r.line, format!("same rf-commande as line {first}")));
            continue;
        }
        recs.push(r);
    }
    // Against the stored orders: what an existing order may not change.
    let mut existing: HashMap<String, Order> = HashMap::new();
    for r in &recs {
        if let Some(o) = Order::load(tx, &r.rf)? {
            check_against(tx, r, &o, &mut errors)?;
            existing.insert(r.rf.clone(), o);
        }
    }
    if !errors.is_empty() {
        return Err(ctx.invalid(errors));
    }
    apply(tx, ctx, &recs, &existing)
}

/// (id_cram, code_convention) of every validated convention -> its holder.
fn holders(tx: &Connection) -> Result<HashMap<(String, String), Holder>, ImportError> {
    let mut stmt = tx.prepare(
        "SELECT c.id_cram, c.code_convention, c.provider, p.type
         FROM conventions c JOIN providers p ON p.provider = c.provider
         WHERE c.validated = 1",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            (r.get(0)?, r.get(1)?),
            Holder {
                provider: r.get(2)?,
                typ: r.get(3)?,
            },
        ))
    })?;
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
    holders: &HashMap<(String, String), Holder>,
    errors: &mut Vec<RowError>,
) -> Option<Rec> {
    let before = errors.len();
    let line = row.line;
    let mut push = |i: usize, reason: String| errors.push(RowError::cell(line, COLUMNS[i], reason));
    let rf = fields::rf_commande(row.get(0)).map_err(|e| push(0, e)).ok();
    let id_cram = fields::known(row.get(1), &ctx.cfg.billing.caisses, "caisse id-cram")
        .map_err(|e| push(1, e))
        .ok();
    let code = fields::code(row.get(2), CONVENTION_MAX).map_err(|e| push(2, e)).ok();
    let nir = fields::nir(row.get(3)).map_err(|e| push(3, e)).ok();
    let nom = fields::text(row.get(4), NOM_MAX).map_err(|e| push(4, e)).ok();
    let pn = fields::text(row.get(5), PN_MAX).map_err(|e| push(5, e)).ok();
    let adresse = fields::text(row.get(6), ADRESSE_MAX).map_err(|e| push(6, e)).ok();
    let telephone = fields::telephone(row.get(7)).map_err(|e| push(7, e)).ok();
    let ressources = fields::ressources(row.get(8)).map_err(|e| push(8, e)).ok();
    let dt = fields::date(row.get(9)).map_err(|e| push(9, e)).ok();
    let today = ctx.today();
    if let Some(d) = dt.filter(|d| *d > today) {
        push(
            9,
            format!("{d} is after today ({today}): an order cannot be dated in the future"),
        );
    }
    let mut provider = None;
    if let (Some(c), Some(k)) = (&id_cram, &code) {
        match holders.get(&(c.clone(), k.clone())) {
            None => push(
                2,
                format!(
                    "{k} is not a validated convention of caisse {c} (import the ergothérapeute with the providers file first)"
                ),
            ),
            Some(h) if h.typ != "ergo" => push(
                2,
                format!(
                    "convention {k} of caisse {c} is held by {}, a home-care provider (type {}): orders go to ergothérapeutes (type ergo)",
                    h.provider, h.typ
                ),
            ),
            Some(h) => provider = Some(h.provider.clone()),
        }
    }
    if errors.len() > before {
        return None;
    }
    Some(Rec {
        line,
        rf: rf?,
        id_cram: id_cram?,
        code: code?,
        provider: provider?,
        nir: nir?,
        nom: nom?,
        pn: pn?,
        adresse: adresse?,
        telephone: telephone?,
        ressources: ressources?,
        dt: dt?,
    })
}

/// What a row may change of the stored order `o` (see the module header).
fn check_against(tx: &Connection, r: &Rec, o: &Order, errors: &mut Vec<RowError>) -> Result<(), ImportError> {
    let attested = o.state.has_attestation()
        || tx
            .prepare_cached("SELECT 1 FROM attestations WHERE rf_commande = ?1")?
            .query_row([&r.rf], |_| Ok(()))
            .optional()?
            .is_some();
    let moved = r.id_cram != o.id_cram || r.code != o.code_convention;
    if moved {
        let column = if r.code != o.code_convention {
            "code-convention"
        } else {
            "id-cram"
        };
        let reason = if attested {
            Some(format!(
                "an attestation was transmitted for order {} under convention {} of caisse {}: the order cannot move to another convention",
                r.rf, o.code_convention, o.id_cram
            ))
        } else if o.state.is_closed() {
            Some(format!(
                "order {} is closed ({}): it stays with convention {} of caisse {}",
                r.rf,
                o.state.label_fr(),
                o.code_convention,
                o.id_cram
            ))
        } else if r.provider != o.provider && documents_of(tx, &r.rf)? > 0 {
            Some(format!(
                "documents of order {} were already routed to {}: the order cannot move to another provider's convention",
                r.rf, o.provider
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            errors.push(RowError::cell(r.line, column, reason));
        }
    }
    if attested && r.nir != o.nir_per {
        errors.push(RowError::cell(
            r.line,
            "nir-per",
            format!(
                "differs from the NIR of order {}, whose transmitted attestation carries it: it cannot change",
                r.rf
            ),
        ));
    }
    if attested && r.dt_iso() != o.dt_commande {
        errors.push(RowError::cell(
            r.line,
            "dt-commande",
            format!(
                "order {} has a transmitted attestation: its date ({}) cannot change",
                r.rf, o.dt_commande
            ),
        ));
    }
    Ok(())
}

fn documents_of(tx: &Connection, rf: &str) -> Result<i64, ImportError> {
    Ok(tx
        .prepare_cached("SELECT COUNT(*) FROM documents WHERE rf_commande = ?1")?
        .query_row([rf], |r| r.get(0))?)
}

fn apply(
    tx: &Connection,
    ctx: &Ctx<'_>,
    recs: &[Rec],
    existing: &HashMap<String, Order>,
) -> Result<ImportSummary, ImportError> {
    let at = ctx.stamp();
    let (mut new, mut updated, mut unchanged) = (0, 0, 0);
    // Providers whose listing changes; orders new to each provider.
    let mut touched: BTreeSet<&str> = BTreeSet::new();
    let mut arrived: BTreeMap<&str, Vec<&Rec>> = BTreeMap::new();
    let mut insert = tx.prepare(
        "INSERT INTO orders (rf_commande, id_cram, code_convention, provider, nir_per, nom_per, pn_per,
                             adresse, telephone, ressources, dt_commande, state, imported_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)",
    )?;
    let mut update = tx.prepare(
        "UPDATE orders SET id_cram = ?2, code_convention = ?3, provider = ?4, nir_per = ?5, nom_per = ?6,
                           pn_per = ?7, adresse = ?8, telephone = ?9, ressources = ?10, dt_commande = ?11,
                           updated_at = ?12
         WHERE rf_commande = ?1",
    )?;
    for r in recs {
        match existing.get(&r.rf) {
            None => {
                insert.execute(params![
                    r.rf,
                    r.id_cram,
                    r.code,
                    r.provider,
                    r.nir,
                    r.nom,
                    r.pn,
                    r.adresse,
                    r.telephone,
                    r.ressources,
                    r.dt_iso(),
                    OrderState::AFaire,
                    at
                ])?;
                new += 1;
                touched.insert(&r.provider);
                arrived.entry(&r.provider).or_default().push(r);
            }
            Some(o) => {
                updated += 1;
                if r.same_as(o) {
                    unchanged += 1;
                    continue;
                }
                update.execute(params![
                    r.rf,
                    r.id_cram,
                    r.code,
                    r.provider,
                    r.nir,
                    r.nom,
                    r.pn,
                    r.adresse,
                    r.telephone,
                    r.ressources,
                    r.dt_iso(),
                    at
                ])?;
                touched.insert(&r.provider);
                if o.provider != r.provider {
                    touched.insert(&o.provider);
                    arrived.entry(&r.provider).or_default().push(r);
                }
            }
        }
    }
    for provider in &touched {
        habitat::mark_listing(tx, provider, Listing::Commandes)?;
    }
    let digest = ctx.sha256();
    for (provider, orders) in &arrived {
        let mut m = new_orders_mail(provider, orders, &digest);
        m.recipients = crate::accounts::recipients(tx, provider)?;
        crate::mail::enqueue(tx, ctx.now, &m)?;
    }
    let summary = ImportSummary {
        kind: ctx.kind,
        rows: recs.len(),
        new,
        updated,
        note: (unchanged > 0).then(|| format!("{unchanged} without change")),
    };
    let scope = Scope {
        id_cram: single(recs.iter().map(|r| r.id_cram.as_str())),
        provider: single(recs.iter().map(|r| r.provider.as_str())),
        convention: single(recs.iter().map(|r| r.code.as_str())),
    };
    ctx.record(tx, &summary, "habitat", "referentiel", scope)?;
    Ok(summary)
}

/// The e-mail telling `provider` of its new orders (references, dates and
/// conventions only: the persons are in the listing, not in the mail).
/// Its key names the file and the orders, so one import mails a provider
/// once.
fn new_orders_mail(provider: &str, orders: &[&Rec], file_digest: &str) -> crate::mail::Message {
    use sha2::Digest;
    let n = orders.len();
    let mut refs = sha2::Sha256::new();
    let mut body = format!(
        "Bonjour,\n\nVotre caisse de retraite vous adresse {n} nouvelle{s} commande{s} d'intervention :\n\n",
        s = if n == 1 { "" } else { "s" }
    );
    for r in orders {
        refs.update(r.rf.as_bytes());
        refs.update(b"\n");
    }
    for r in orders.iter().take(MAIL_LIST_MAX) {
        body.push_str(&format!(
            "  - {} du {} (caisse {}, convention {})\n",
            r.rf,
            r.dt.format("%d/%m/%Y"),
            r.id_cram,
            r.code
        ));
    }
    if n > MAIL_LIST_MAX {
        body.push_str(&format!("  - … et {} autre(s)\n", n - MAIL_LIST_MAX));
    }
    body.push_str(
        "\nLe détail de chaque commande (personne, adresse, téléphone, ressources) figure dans la \
         liste des commandes, disponible par SFTP :\n  /out/commandes.csv (tableur) et /out/commandes.xml\n\n\
         Les attestations de visite sont à déposer dans le dossier /in.\n\n\
         Ce message est envoyé automatiquement, merci de ne pas y répondre.\n",
    );
    let refs = hex::encode(refs.finalize());
    crate::mail::Message {
        dedup_key: format!("orders:{provider}:{}:{}", &file_digest[..16], &refs[..16]),
        recipients: Vec::new(),
        subject: if n == 1 {
            format!("PPAS : nouvelle commande d'intervention {}", orders[0].rf)
        } else {
            format!("PPAS : {n} nouvelles commandes d'intervention")
        },
        body,
        secret: false,
    }
}

#[cfg(test)]
mod tests;
