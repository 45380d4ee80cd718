//! Attestation files for the tests, built from the spec's example.
//!
//! In: a few edits over the example of PRODUCT.md §4. Out: the file text
//! (or its bytes in another encoding) and the verdict of the library.
//! Tests state only what differs from the example, so each one reads as
//! "this value in this field gives this code".

#![allow(dead_code)]

use chrono::NaiveDate;
use ppas_gateway::attestation::{check_bytes, AttestationVerdict, Options};

/// The clock every attestation test runs at.
pub const NOW: &str = "2026-11-25T10:00:00+01:00";

/// The day of receipt that goes with [`NOW`].
pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 25).expect("a real date")
}

pub fn opts() -> Options {
    Options {
        max_file_size: 256 << 20,
        today: today(),
    }
}

pub const FIELDS: [&str; 8] = [
    "rf-commande",
    "id-cram",
    "code-convention",
    "nir-per",
    "statut",
    "dt-visite",
    "motif",
    "commentaire",
];

/// One `attvisite`: raw XML text per field, `None` for a field left out.
#[derive(Debug, Clone)]
pub struct Att {
    pub fields: Vec<(String, Option<String>)>,
}

impl Att {
    /// A visit done (statut T), as in the spec's example.
    pub fn t() -> Att {
        let v = [
            "C04-2026-000123",
            "04",
            "62739900",
            "1541299999000",
            "T",
            "2026-10-02",
            "",
            "",
        ];
        Att {
            fields: FIELDS
                .iter()
                .zip(v)
                .map(|(n, v)| (n.to_string(), Some(v.to_string())))
                .collect(),
        }
    }

    /// A sans-suite attestation (statut S) with this motif, no date.
    pub fn s(motif: &str) -> Att {
        Att::t().set("statut", "S").set("motif", motif).without("dt-visite")
    }

    pub fn set(mut self, name: &str, raw: &str) -> Att {
        let f = self.fields.iter_mut().find(|(n, _)| n == name).expect("a field");
        f.1 = Some(raw.to_string());
        self
    }

    pub fn without(mut self, name: &str) -> Att {
        let f = self.fields.iter_mut().find(|(n, _)| n == name).expect("a field");
        f.1 = None;
        self
    }

    pub fn render(&self, eol: &str) -> String {
        let mut s = format!("  <attvisite>{eol}");
        for (n, v) in &self.fields {
            if let Some(v) = v {
                s.push_str(&format!("    <{n}>{v}</{n}>{eol}"));
            }
        }
        s.push_str(&format!("  </attvisite>{eol}"));
        s
    }
}

/// A whole file: declaration, root, items.
pub fn doc(items: &[Att]) -> String {
    doc_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>", items, "\n")
}

pub fn doc_with(decl: &str, items: &[Att], eol: &str) -> String {
    let mut s = format!("{decl}{eol}<attvisites>{eol}");
    for it in items {
        s.push_str(&it.render(eol));
    }
    s.push_str(&format!("</attvisites>{eol}"));
    s
}

/// Text in a single-byte encoding (`crate::check_support::{latin1, cp1252,
/// latin9}`); a character the encoding lacks becomes a reference.
pub fn encode(text: &str, table: fn(char) -> Option<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match table(c) {
            Some(b) => out.push(b),
            None => out.extend_from_slice(format!("&#x{:X};", u32::from(c)).as_bytes()),
        }
    }
    out
}

pub fn check(bytes: &[u8]) -> AttestationVerdict {
    check_bytes("attvisites.xml", bytes, &opts())
}

pub fn codes(v: &AttestationVerdict) -> Vec<&'static str> {
    v.anomalies.iter().map(|a| a.code.as_str()).collect()
}

pub fn dump(v: &AttestationVerdict) -> String {
    let mut s = format!(
        "{}: {} items={} accepted={}\n",
        v.file,
        v.verdict.as_str(),
        v.items,
        v.accepted
    );
    for a in &v.anomalies {
        s.push_str(&format!(
            "  {} line={:?} xml_line={:?} field={:?} {}\n",
            a.code, a.line, a.xml_line, a.field, a.message
        ));
    }
    s
}
