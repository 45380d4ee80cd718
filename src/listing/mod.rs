//! Listings at the root of a provider's outbound folder (spec §2, §6):
//! `commandes.csv`/`.xml` (an ergothérapeute's orders and their state) and
//! `beneficiaires.csv`/`.xml` (a home-care provider's plans with their
//! remaining hours).
//!
//! In: the state database. Out: the bytes of both forms of one provider's
//! listing, rendered from committed state only, so that writing them again
//! after a crash gives the same files. Which listings are owed is recorded
//! by [`crate::habitat::mark_listing`] in the transaction that changes what
//! they list; the outbound publisher writes them.

pub mod beneficiaires;
pub mod commandes;
pub mod historique;

/// Both forms of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// For a French spreadsheet: UTF-8 with BOM, `;`-separated.
    pub csv: Vec<u8>,
    /// Documented under `schema/`.
    pub xml: Vec<u8>,
}
