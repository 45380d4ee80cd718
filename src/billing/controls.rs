//! The stateless controls of spec §3: F07, F08, F10, F13 on the file and
//! L01, L02, L03, L06, L09, L10, L12 on each line.
//!
//! In: values already read and typed by [`super::parse`]. Out: anomalies
//! appended to a vector. Pure functions of the file and the rules (the
//! prestation table and the day of receipt): no state, no I/O.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::parse::{LineFacts, Parsed, LINE_SEQ};
use super::{Header, Line};
use crate::anomaly::{Anomaly, Code};

/// The rules the stateless controls depend on.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Prestation code → monthly maximum of `nb-quant`.
    pub prestations: BTreeMap<String, Decimal>,
    /// The day of receipt (Europe/Paris).
    pub today: NaiveDate,
}

/// Running totals of the lines, for F08.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub lines: u32,
    pub nb_quant: Decimal,
    pub mt_total: Decimal,
    /// Some line's `nb-quant` could not be read: its sum is unknown.
    pub nb_quant_unknown: bool,
    pub mt_total_unknown: bool,
}

impl Totals {
    pub fn add(&mut self, line: &Line) {
        self.lines += 1;
        match line.nb_quant {
            Some(q) => self.nb_quant += q,
            None => self.nb_quant_unknown = true,
        }
        match line.mt_total {
            Some(t) => self.mt_total += t,
            None => self.mt_total_unknown = true,
        }
    }
}

const HEADER_FIELDS: [(usize, &str); 4] = [(0, "rf-borfact"), (2, "id-cram"), (3, "id-site"), (4, "rf-prstpap")];
const FOOTER_FIELDS: [(usize, &str); 3] = [(6, "nb-ligbor"), (7, "mt-totamd"), (8, "mt-totprest")];

/// F07 and F13.
pub fn header(p: &Parsed, rules: &Rules, out: &mut Vec<Anomaly>) {
    for (i, name) in HEADER_FIELDS.iter().chain(FOOTER_FIELDS.iter()) {
        if p.root_blank & (1 << i) != 0 {
            out.push(Anomaly::file(
                Code::F13,
                p.root_field_line(*i),
                Some(name),
                format!("le champ <{name}> est vide : seul log-fact peut l'être"),
            ));
        }
    }
    if p.root_present & (1 << 4) != 0 && !rules.prestations.contains_key(&p.header.rf_prstpap) {
        let known: Vec<&str> = rules.prestations.keys().map(String::as_str).collect();
        out.push(Anomaly::file(
            Code::F07,
            p.root_field_line(4),
            Some("rf-prstpap"),
            format!(
                "prestation « {} » inconnue (attendu : {})",
                p.header.rf_prstpap,
                known.join(", ")
            ),
        ));
    }
}

/// F08 and F10.
pub fn footer(p: &Parsed, totals: &Totals, out: &mut Vec<Anomaly>) {
    if p.lines == 0 {
        out.push(Anomaly::file(
            Code::F10,
            None,
            Some("factprest"),
            "le fichier ne contient aucune ligne <factprest>",
        ));
    }
    if let Some(n) = p.footer.nb_ligbor {
        if n != Decimal::from(p.lines) {
            out.push(Anomaly::file(
                Code::F08,
                p.root_field_line(6),
                Some("nb-ligbor"),
                format!(
                    "nb-ligbor vaut {n} mais le fichier contient {} ligne(s) <factprest>",
                    p.lines
                ),
            ));
        }
    }
    if let (Some(t), false) = (p.footer.mt_totamd, totals.nb_quant_unknown) {
        if t != totals.nb_quant {
            out.push(Anomaly::file(
                Code::F08,
                p.root_field_line(7),
                Some("mt-totamd"),
                format!(
                    "mt-totamd vaut {t} mais la somme des nb-quant est {}",
                    totals.nb_quant.normalize()
                ),
            ));
        }
    }
    if let (Some(t), false) = (p.footer.mt_totprest, totals.mt_total_unknown) {
        if t != totals.mt_total {
            out.push(Anomaly::file(
                Code::F08,
                p.root_field_line(8),
                Some("mt-totprest"),
                format!(
                    "mt-totprest vaut {t} mais la somme des mt-total est {}",
                    totals.mt_total.normalize()
                ),
            ));
        }
    }
}

/// NIR without its key: 13 characters, digits, or the Corsica form with
/// `2A`/`2B` as department (positions 6–7).
pub fn valid_nir(nir: &str) -> bool {
    let b = nir.as_bytes();
    b.len() == 13
        && b.iter()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || (i == 6 && matches!(c, b'A' | b'B') && b[5] == b'2'))
}

const NIR: usize = 0;
const PRST: usize = 3;
const DTD: usize = 5;
const DTF: usize = 6;
const NBQ: usize = 7;
const MTTU: usize = 8;
const MTTOTAL: usize = 9;
const REGUL: usize = 10;

/// L01, L02, L03, L06, L09, L10, L12 on one line.
pub fn line(h: &Header, l: &Line, f: &LineFacts, rules: &Rules, out: &mut Vec<Anomaly>) {
    let at = |i: usize| {
        if f.field_lines[i] > 0 {
            f.field_lines[i]
        } else {
            l.xml_line
        }
    };
    let present = |i: usize| f.present & (1 << i) != 0;
    let mut push = |code: Code, i: usize, msg: String| out.push(Anomaly::line(code, l.index, at(i), LINE_SEQ[i], msg));

    for (i, name) in LINE_SEQ.iter().enumerate() {
        if f.blank & (1 << i) != 0 {
            push(Code::L12, i, format!("le champ <{name}> est vide"));
        }
    }
    if present(PRST) && l.rf_prstpap != h.rf_prstpap {
        push(
            Code::L01,
            PRST,
            format!(
                "prestation « {} » différente de celle de l'en-tête « {} »",
                l.rf_prstpap, h.rf_prstpap
            ),
        );
    }
    if present(NIR) && !valid_nir(&l.nir_per) {
        push(
            Code::L02,
            NIR,
            "le NIR doit compter 13 caractères : des chiffres (2A ou 2B en 6e-7e position pour la Corse)".into(),
        );
    }
    for (i, d, name) in [(DTD, f.dtd, "dtd-interv"), (DTF, f.dtf, "dtf-interv")] {
        if present(i) && !d.is_some_and(|d| d.plain && d.date.is_some()) {
            push(
                Code::L03,
                i,
                format!("<{name}> doit être une date réelle au format AAAA-MM-JJ, sans fuseau horaire"),
            );
        }
    }
    let plain = |d: Option<super::facets::XsDate>| d.filter(|d| d.plain).and_then(|d| d.date);
    if let (Some(dtd), Some(dtf)) = (plain(f.dtd), plain(f.dtf)) {
        if dtd > dtf {
            push(Code::L03, DTD, format!("début d'intervention {dtd} après la fin {dtf}"));
        }
    }
    if let Some(dtf) = plain(f.dtf) {
        if dtf > rules.today {
            push(
                Code::L03,
                DTF,
                format!(
                    "fin d'intervention {dtf} postérieure au jour de réception {}",
                    rules.today
                ),
            );
        }
    }
    if let Some(q) = l.nb_quant {
        let max = rules
            .prestations
            .get(&l.rf_prstpap)
            .or_else(|| rules.prestations.get(&h.rf_prstpap));
        if q <= Decimal::ZERO {
            push(Code::L06, NBQ, format!("quantité {q} : elle doit être positive"));
        } else if let Some(max) = max.filter(|m| q > **m) {
            push(
                Code::L06,
                NBQ,
                format!("quantité {q} supérieure au maximum mensuel de {max} heures"),
            );
        }
    }
    if l.mt_tu.is_some_and(|v| v != Decimal::ONE) {
        push(
            Code::L09,
            MTTU,
            format!(
                "tarif unitaire {} : indiquer 1 pour des heures",
                l.mt_tu.unwrap_or_default()
            ),
        );
    }
    if l.mt_total.is_some_and(|v| !v.is_zero()) {
        push(
            Code::L09,
            MTTOTAL,
            format!(
                "montant {} : indiquer 0 pour des heures",
                l.mt_total.unwrap_or_default()
            ),
        );
    }
    if present(REGUL) && matches!(l.bo_regul.as_str(), "V" | "v") {
        push(
            Code::L10,
            REGUL,
            "les régularisations (bo-regul V) ne sont pas acceptées".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nir_forms() {
        assert!(valid_nir("1541299999000"));
        assert!(valid_nir("154122A999000"));
        assert!(valid_nir("154122B999000"));
        assert!(!valid_nir("15412A2999000"));
        assert!(!valid_nir("15412 2B99900"));
        assert!(!valid_nir("154129999900"));
        assert!(!valid_nir("15412999990001"));
        assert!(!valid_nir("15412999990é0"));
        assert!(!valid_nir("15412zB999000"));
    }
}
