//! Visit-attestation files (`attvisites`, spec §4): the data model, the
//! stateless controls and the verdict.
//!
//! Bytes come in through [`parse`] (a streaming reader over
//! [`crate::xml`] that checks well-formedness and `schema/attvisites.xsd`
//! as it goes: A01); each `attvisite` is handed on as an [`Item`] as soon as
//! its end tag is read, goes through the stateless controls of
//! [`controls`] (A04, A05, A06), then through the caller's [`ItemRules`]
//! hook (the stateful codes: A02, A03, A07, A08, and A04's order date). The
//! result is an [`AttestationVerdict`] listing every anomaly found. Memory
//! does not grow with the number of attestations.
//!
//! The format for providers' software is described in
//! `docs/formats/attestations.md`.

pub mod check;
pub mod controls;
pub mod parse;

#[cfg(test)]
mod tests;

use chrono::NaiveDate;

pub use self::check::{check_bytes, check_file, check_reader};
use crate::anomaly::{Anomaly, Level};
use crate::billing::Verdict;
use crate::config::Config;

/// The motifs of a sans-suite (`S`) attestation.
pub const MOTIFS: [&str; 6] = [
    "REFUS",
    "INJOIGNABLE",
    "DECES",
    "ETABLISSEMENT",
    "DEMENAGEMENT",
    "AUTRE",
];

/// The motif that needs a comment.
pub const MOTIF_AUTRE: &str = "AUTRE";

/// Longest comment, in characters.
pub const MAX_COMMENT: usize = 500;

/// One `attvisite`, as read. Strings are as written, except `motif`
/// (surrounding blanks removed: it is a code); a field that is absent is
/// empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Item {
    /// 1-based index of the `attvisite` element in the file.
    pub index: u32,
    /// Line of the file where the `attvisite` element starts.
    pub xml_line: u64,
    pub rf_commande: String,
    pub id_cram: String,
    pub code_convention: String,
    pub nir_per: String,
    /// `T` (visit done) or `S` (sans suite) in a structurally valid item.
    pub statut: String,
    /// The visit date, when `dt-visite` is a real date in either form
    /// (`AAAA-MM-JJ` or `JJ/MM/AAAA`, surrounding blanks ignored).
    pub dt_visite: Option<NaiveDate>,
    /// `dt-visite` as written.
    pub dt_visite_raw: String,
    pub motif: String,
    /// The comment as written (line ends normalised to `\n`); cut after
    /// 64 KiB, when the item is rejected anyway (A06).
    pub commentaire: String,
}

/// Stateful rules applied to each structurally valid item after the
/// stateless ones (the pipeline's view of the state). `out` already holds
/// the item's stateless anomalies: a hook that records the item must do so
/// only when `out` ends with no item anomaly. The hook may see items of a
/// file that ends up rejected (an A01 after them): what it records stands
/// only if the verdict accepts the item.
pub trait ItemRules {
    fn item(&mut self, item: &Item, out: &mut Vec<Anomaly>);
}

/// No state: the `check` command.
pub struct Stateless;

impl ItemRules for Stateless {
    fn item(&mut self, _: &Item, _: &mut Vec<Anomaly>) {}
}

/// What the stateless check needs to know.
#[derive(Debug, Clone)]
pub struct Options {
    /// Larger files are refused unread (A01).
    pub max_file_size: u64,
    /// The day of receipt (Europe/Paris): a visit after it is in the future.
    pub today: NaiveDate,
}

impl Options {
    pub fn new(cfg: &Config, today: NaiveDate) -> Options {
        Options {
            max_file_size: cfg.limits.max_file_size,
            today,
        }
    }
}

/// The outcome of the controls on one attestation file: what `check --json`
/// prints and what the processing report is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationVerdict {
    /// File name as received (no folder).
    pub file: String,
    pub verdict: Verdict,
    /// Number of `attvisite` elements found.
    pub items: u32,
    /// Attestations accepted (0 when the file is rejected).
    pub accepted: u32,
    /// Every anomaly, file anomalies (A01) first, then by item.
    pub anomalies: Vec<Anomaly>,
}

impl AttestationVerdict {
    pub fn has_file_anomaly(&self) -> bool {
        self.anomalies.iter().any(|a| a.code.level() == Level::File)
    }

    /// The JSON line of spec §8, with `"kind":"attestations"`: `lines`
    /// counts the `attvisite` elements, `accepted_lines` the accepted ones.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "file": self.file,
            "kind": "attestations",
            "verdict": self.verdict.as_str(),
            "lines": self.items,
            "accepted_lines": self.accepted,
            "anomalies": self.anomalies.iter().map(Anomaly::to_json).collect::<Vec<_>>(),
        })
    }
}
