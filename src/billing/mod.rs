//! Billing files (`factbord`, spec §3): the data model and the verdict.
//!
//! Bytes come in through [`parse`] (a streaming reader that checks the XML
//! and the schema as it goes); each line and the header/footer go through
//! the stateless controls of [`controls`]; the result is a [`FileVerdict`]
//! listing every anomaly found. Stateful controls (F05, F06, F09, F12, L04,
//! L05, L07, L08, L11) are applied on top by the pipeline with a read-only
//! view of the state.

pub mod check;
pub mod controls;
pub mod facets;
pub mod name;
pub mod parse;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

pub use crate::anomaly::{Anomaly, Code, Level};

/// The header fields of a billing file, as written (strings are not trimmed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Header {
    pub rf_borfact: String,
    pub log_fact: String,
    pub id_cram: String,
    pub id_site: String,
    pub rf_prstpap: String,
}

/// The footer totals; `None` where the field is missing or not a decimal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Footer {
    pub nb_ligbor: Option<Decimal>,
    pub mt_totamd: Option<Decimal>,
    pub mt_totprest: Option<Decimal>,
}

/// One `factprest` line. Typed fields are `None` when missing or invalid
/// (the schema anomaly is reported separately).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Line {
    /// 1-based index of the `factprest` element in the file.
    pub index: u32,
    /// Line of the file where the `factprest` element starts.
    pub xml_line: u64,
    pub nir_per: String,
    pub nom_per: String,
    pub pn_per: String,
    pub rf_prstpap: String,
    pub id_prest: String,
    pub dtd_interv: Option<NaiveDate>,
    pub dtf_interv: Option<NaiveDate>,
    pub nb_quant: Option<Decimal>,
    pub mt_tu: Option<Decimal>,
    pub mt_total: Option<Decimal>,
    pub bo_regul: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Accepted,
    Partial,
    Rejected,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::Partial => "partial",
            Verdict::Rejected => "rejected",
        }
    }

    /// The verdict of its [`Verdict::as_str`] form.
    pub fn parse(s: &str) -> Option<Verdict> {
        [Verdict::Accepted, Verdict::Partial, Verdict::Rejected]
            .into_iter()
            .find(|v| v.as_str() == s)
    }

    /// French wording for reports.
    pub fn label_fr(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepté",
            Verdict::Partial => "partiellement accepté",
            Verdict::Rejected => "rejeté",
        }
    }
}

/// The outcome of the controls on one file: what `check --json` prints and
/// what the processing report is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileVerdict {
    /// File name as received (no folder).
    pub file: String,
    pub verdict: Verdict,
    /// Number of `factprest` elements found.
    pub lines: u32,
    /// Lines transmitted (0 when the file is rejected).
    pub accepted_lines: u32,
    /// Sum of `nb-quant` over the accepted lines (hours).
    pub accepted_hours: Decimal,
    /// Header as read (fields empty when missing).
    pub header: Header,
    pub footer: Footer,
    /// Every anomaly, file anomalies first, then by line.
    pub anomalies: Vec<Anomaly>,
}

impl FileVerdict {
    pub fn has_file_anomaly(&self) -> bool {
        self.anomalies.iter().any(|a| a.code.level() == Level::File)
    }

    /// The JSON line of spec §8 (`check --json`, `validate --json`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "file": self.file,
            "verdict": self.verdict.as_str(),
            "lines": self.lines,
            "accepted_lines": self.accepted_lines,
            "anomalies": self.anomalies.iter().map(Anomaly::to_json).collect::<Vec<_>>(),
        })
    }
}

/// Decides the verdict from the anomalies and the set of rejected lines
/// (spec §8: rejected when any file anomaly or no accepted line).
pub fn decide(lines: u32, rejected_lines: u32, any_file_anomaly: bool) -> (Verdict, u32) {
    let accepted = lines.saturating_sub(rejected_lines);
    if any_file_anomaly || accepted == 0 {
        (Verdict::Rejected, 0)
    } else if rejected_lines > 0 {
        (Verdict::Partial, accepted)
    } else {
        (Verdict::Accepted, accepted)
    }
}
