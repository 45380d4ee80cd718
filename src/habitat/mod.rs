//! The ergothérapeute ("habitat") side of the caisse: intervention orders,
//! their state, and the listings owed to providers.
//!
//! In: rows of `orders`, `attestations`, `documents`, `listings` (migration
//! 0009). Out: typed values and the few writes every part of the flow
//! shares (an order's state, a listing marked as owed), so that the
//! imports, the attestation pipeline and the jobs change them one way.
//!
//! An order's state, as the order listing shows it:
//!
//! | state | when |
//! |---|---|
//! | `a_faire` (à faire) | imported, no transmitted attestation |
//! | `relance` | flagged 60 days after its date, still no attestation |
//! | `transmise` | a T attestation was accepted (the visit is done) |
//! | `sans_suite` | an S attestation was accepted: the case is closed |
//! | `clos` | the aid decision was imported: the case is closed |

pub mod relances;

use anyhow::{Context, Result};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension};

/// The state of an intervention order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum OrderState {
    AFaire,
    Relance,
    Transmise,
    SansSuite,
    Clos,
}

impl OrderState {
    pub const ALL: [OrderState; 5] = [
        OrderState::AFaire,
        OrderState::Relance,
        OrderState::Transmise,
        OrderState::SansSuite,
        OrderState::Clos,
    ];

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::AFaire => "a_faire",
            OrderState::Relance => "relance",
            OrderState::Transmise => "transmise",
            OrderState::SansSuite => "sans_suite",
            OrderState::Clos => "clos",
        }
    }

    pub fn parse(s: &str) -> Option<OrderState> {
        OrderState::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// As the provider reads it (listings, reports).
    pub fn label_fr(self) -> &'static str {
        match self {
            OrderState::AFaire => "à faire",
            OrderState::Relance => "relance",
            OrderState::Transmise => "transmise",
            OrderState::SansSuite => "sans suite",
            OrderState::Clos => "clos",
        }
    }

    /// A closed case accepts no attestation (A08).
    pub fn is_closed(self) -> bool {
        matches!(self, OrderState::SansSuite | OrderState::Clos)
    }

    /// Whether an attestation was transmitted for the order.
    pub fn has_attestation(self) -> bool {
        matches!(self, OrderState::Transmise | OrderState::SansSuite)
    }
}

impl ToSql for OrderState {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for OrderState {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = v.as_str()?;
        OrderState::parse(s).ok_or_else(|| FromSqlError::Other(format!("unknown order state {s:?}").into()))
    }
}

/// One intervention order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub rf_commande: String,
    pub id_cram: String,
    pub code_convention: String,
    pub provider: String,
    pub nir_per: String,
    pub nom_per: String,
    pub pn_per: String,
    pub adresse: String,
    pub telephone: String,
    pub ressources: String,
    /// YYYY-MM-DD.
    pub dt_commande: String,
    pub state: OrderState,
    pub relance_at: Option<String>,
    pub transmitted_at: Option<String>,
    pub closed_at: Option<String>,
}

/// The columns [`Order::from_row`] reads, in its order.
pub const ORDER_COLUMNS: &str = "rf_commande, id_cram, code_convention, provider, nir_per, nom_per, pn_per, adresse,
    telephone, ressources, dt_commande, state, relance_at, transmitted_at, closed_at";

impl Order {
    pub fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Order> {
        Ok(Order {
            rf_commande: r.get(0)?,
            id_cram: r.get(1)?,
            code_convention: r.get(2)?,
            provider: r.get(3)?,
            nir_per: r.get(4)?,
            nom_per: r.get(5)?,
            pn_per: r.get(6)?,
            adresse: r.get(7)?,
            telephone: r.get(8)?,
            ressources: r.get(9)?,
            dt_commande: r.get(10)?,
            state: r.get(11)?,
            relance_at: r.get(12)?,
            transmitted_at: r.get(13)?,
            closed_at: r.get(14)?,
        })
    }

    /// The order `rf_commande`, if imported.
    pub fn load(conn: &Connection, rf_commande: &str) -> Result<Option<Order>> {
        conn.prepare_cached(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE rf_commande = ?1"))?
            .query_row([rf_commande], Order::from_row)
            .optional()
            .with_context(|| format!("reading order {rf_commande}"))
    }

    /// The orders of a provider, by reference.
    pub fn of_provider(conn: &Connection, provider: &str) -> Result<Vec<Order>> {
        conn.prepare_cached(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE provider = ?1 ORDER BY rf_commande"
        ))?
        .query_map([provider], Order::from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .with_context(|| format!("reading the orders of {provider}"))
    }
}

/// One invoice line (an accepted T attestation), as invoicing reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceLine {
    pub id: i64,
    pub attestation_id: i64,
    pub rf_commande: String,
    pub id_cram: String,
    pub code_convention: String,
    pub provider: String,
    pub nir_per: String,
    /// Hundredths of euro.
    pub amount: i64,
    /// RFC 3339 UTC: the transmission, and 48 hours after it.
    pub created_at: String,
    pub due_at: String,
}

/// The invoice lines not yet invoiced whose due time (48 hours after the
/// transmission of their attestation) has come at `now`, by convention,
/// then in the order they were created.
pub fn due_invoice_lines(conn: &Connection, now: chrono::DateTime<chrono::Utc>) -> Result<Vec<InvoiceLine>> {
    let now = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    conn.prepare_cached(
        "SELECT id, attestation_id, rf_commande, id_cram, code_convention, provider, nir_per, amount, created_at, due_at
         FROM invoice_lines WHERE invoice_id IS NULL AND due_at <= ?1 ORDER BY code_convention, id",
    )?
    .query_map([now], |r| {
        Ok(InvoiceLine {
            id: r.get(0)?,
            attestation_id: r.get(1)?,
            rf_commande: r.get(2)?,
            id_cram: r.get(3)?,
            code_convention: r.get(4)?,
            provider: r.get(5)?,
            nir_per: r.get(6)?,
            amount: r.get(7)?,
            created_at: r.get(8)?,
            due_at: r.get(9)?,
        })
    })?
    .collect::<rusqlite::Result<Vec<_>>>()
    .context("reading the invoice lines due")
}

/// What a provider finds at the root of its outbound folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listing {
    /// `commandes.csv` and `.xml`: an ergothérapeute's orders.
    Commandes,
    /// `beneficiaires.csv` and `.xml`: a home-care provider's plans.
    Beneficiaires,
    /// `historique.csv` (no XML): every provider's own exchanges of the
    /// last 6 months, marked whenever an entry of the provider is recorded
    /// and by the daily purge (entries age out).
    Historique,
}

impl Listing {
    pub const ALL: [Listing; 3] = [Listing::Commandes, Listing::Beneficiaires, Listing::Historique];

    pub fn as_str(self) -> &'static str {
        match self {
            Listing::Commandes => "commandes",
            Listing::Beneficiaires => "beneficiaires",
            Listing::Historique => "historique",
        }
    }

    pub fn parse(s: &str) -> Option<Listing> {
        Listing::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The files it is written as, at the root of the outbound folder.
    pub fn file_names(self) -> &'static [&'static str] {
        match self {
            Listing::Commandes => &["commandes.csv", "commandes.xml"],
            Listing::Beneficiaires => &["beneficiaires.csv", "beneficiaires.xml"],
            Listing::Historique => &["historique.csv"],
        }
    }
}

/// Marks a provider's listing as owed, in the caller's transaction (the one
/// that changes what it lists): the publisher writes it from the database.
pub fn mark_listing(conn: &Connection, provider: &str, listing: Listing) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO listings (provider, kind, wanted) VALUES (?1, ?2, 1)
         ON CONFLICT (provider, kind) DO UPDATE SET wanted = wanted + 1",
    )?
    .execute(params![provider, listing.as_str()])
    .with_context(|| format!("marking the {} listing of {provider}", listing.as_str()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_say_what_they_allow() {
        for s in OrderState::ALL {
            assert_eq!(OrderState::parse(s.as_str()), Some(s));
        }
        assert!(OrderState::SansSuite.is_closed() && OrderState::Clos.is_closed());
        assert!(!OrderState::Relance.is_closed() && !OrderState::Relance.has_attestation());
        assert_eq!(OrderState::AFaire.label_fr(), "à faire");
    }

    #[test]
    fn an_invoice_line_is_due_48_hours_after_its_transmission_not_a_second_before() {
        let c = crate::store::open_in_memory().unwrap();
        c.execute_batch(
            "INSERT INTO providers VALUES ('ergo1', 'E', '44306184100047', 'e@x.example', '03 21 00 00 01', 'ergo', 'x');
             INSERT INTO orders (rf_commande, id_cram, code_convention, provider, nir_per, nom_per, pn_per, adresse,
                 telephone, ressources, dt_commande, state, imported_at, updated_at)
               VALUES ('C1', '04', '62739900', 'ergo1', '1541299999000', 'N', 'P', 'A', '03 21 00 00 01', 'PS',
                 '2026-09-01', 'transmise', 'x', 'x');
             INSERT INTO received_files (id, provider, name, channel, sha256, size, received_at, work_path, state, kind)
               VALUES (1, 'ergo1', 'a.xml', 'sftp', 'ab', 1, '2026-11-20T09:00:00Z', 'w', 'done', 'attestations');
             INSERT INTO attestations (id, file_id, item, rf_commande, statut, dt_visite, transmitted_at)
               VALUES (1, 1, 1, 'C1', 'T', '2026-10-02', '2026-11-20T09:00:00Z');
             INSERT INTO invoice_lines (attestation_id, rf_commande, id_cram, code_convention, provider, nir_per, amount,
                 created_at, due_at)
               VALUES (1, 'C1', '04', '62739900', 'ergo1', '1541299999000', 15000, '2026-11-20T09:00:00Z',
                 '2026-11-22T09:00:00Z');",
        )
        .unwrap();
        let at = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        assert!(due_invoice_lines(&c, at("2026-11-22T09:59:59+01:00"))
            .unwrap()
            .is_empty());
        let due = due_invoice_lines(&c, at("2026-11-22T10:00:00+01:00")).unwrap();
        assert_eq!((due.len(), due[0].amount), (1, 15000));
        c.execute("UPDATE invoice_lines SET invoice_id = 7", []).unwrap();
        assert!(
            due_invoice_lines(&c, at("2027-01-01T00:00:00Z")).unwrap().is_empty(),
            "invoiced once"
        );
    }

    #[test]
    fn a_listing_mark_counts_up() {
        let c = crate::store::open_in_memory().unwrap();
        mark_listing(&c, "ergo1", Listing::Commandes).unwrap();
        mark_listing(&c, "ergo1", Listing::Commandes).unwrap();
        let wanted: i64 = c
            .query_row(
                "SELECT wanted FROM listings WHERE provider = 'ergo1' AND kind = 'commandes'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(wanted, 2);
    }
}
