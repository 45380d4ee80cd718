//! The `commandes` listing of one ergothérapeute (see the module header of
//! [`crate::listing`]; layout in `docs/formats/listings.md`, XML schema
//! `schema/commandes.xsd`).
//!
//! In: the provider's orders, the accepted attestation of each (its file
//! and `attvisite` index) and the documents routed with it. Out: one row
//! (CSV) or one `commande` element (XML) per order, by reference, with its
//! state as the provider reads it. Nothing depends on the moment of
//! rendering: the same state gives the same bytes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::Connection;

use super::Rendered;
use crate::habitat::OrderState;

/// Version of the layout, in the XML root's `version` attribute.
pub const FORMAT_VERSION: &str = "1";

/// The CSV header, one cell per column.
pub const CSV_HEADER: [&str; 19] = [
    "Référence commande",
    "Caisse",
    "Convention",
    "NIR",
    "Nom",
    "Prénom",
    "Adresse",
    "Téléphone",
    "Ressources",
    "Date de commande",
    "État",
    "Date de relance",
    "Date de transmission",
    "Attestation (fichier)",
    "Attestation (n° dans le fichier)",
    "Motif sans suite",
    "Date de clôture",
    "Évaluation",
    "Décision",
];

/// One order as listed.
#[derive(Debug, Clone)]
struct Line {
    rf: String,
    id_cram: String,
    convention: String,
    nir: String,
    nom: String,
    pn: String,
    adresse: String,
    telephone: String,
    ressources: String,
    dt_commande: Option<NaiveDate>,
    state: OrderState,
    relance: Option<NaiveDate>,
    transmission: Option<NaiveDate>,
    closed: Option<NaiveDate>,
    /// Received file name and `attvisite` index of the accepted attestation.
    attestation: Option<(String, i64)>,
    statut: Option<String>,
    motif: Option<String>,
    /// `documents/<file>` as the provider sees them under `/out`, oldest first.
    evaluations: Vec<String>,
    decisions: Vec<String>,
}

/// Renders the `commandes` listing of `provider`.
pub fn render(conn: &Connection, provider: &str) -> Result<Rendered> {
    let lines = load(conn, provider).with_context(|| format!("reading the orders of {provider}"))?;
    Ok(Rendered {
        csv: csv(&lines),
        xml: xml(provider, &lines),
    })
}

fn load(conn: &Connection, provider: &str) -> Result<Vec<Line>> {
    let mut docs: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT d.rf_commande, d.kind, d.path FROM documents d
         JOIN orders o ON o.rf_commande = d.rf_commande
         WHERE o.provider = ?1 ORDER BY d.id",
    )?;
    let rows = stmt.query_map([provider], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
    })?;
    for row in rows {
        let (rf, kind, path) = row?;
        let e = docs.entry(rf).or_default();
        let name = crate::import::documents::published_name(&path);
        if kind == "decision" {
            e.1.push(name);
        } else {
            e.0.push(name);
        }
    }

    let mut stmt = conn.prepare_cached(
        "SELECT o.rf_commande, o.id_cram, o.code_convention, o.nir_per, o.nom_per, o.pn_per, o.adresse,
                o.telephone, o.ressources, o.dt_commande, o.state, o.relance_at,
                COALESCE(o.transmitted_at, a.transmitted_at), o.closed_at,
                f.name, a.item, a.statut, a.motif
         FROM orders o
         LEFT JOIN attestations a ON a.rf_commande = o.rf_commande
         LEFT JOIN received_files f ON f.id = a.file_id
         WHERE o.provider = ?1
         ORDER BY o.rf_commande",
    )?;
    let rows = stmt.query_map([provider], |r| {
        let rf: String = r.get(0)?;
        let file: Option<String> = r.get(14)?;
        let item: Option<i64> = r.get(15)?;
        Ok(Line {
            id_cram: r.get(1)?,
            convention: r.get(2)?,
            nir: r.get(3)?,
            nom: r.get(4)?,
            pn: r.get(5)?,
            adresse: r.get(6)?,
            telephone: r.get(7)?,
            ressources: r.get(8)?,
            dt_commande: day(r.get::<_, Option<String>>(9)?.as_deref()),
            state: r.get(10)?,
            relance: day(r.get::<_, Option<String>>(11)?.as_deref()),
            transmission: day(r.get::<_, Option<String>>(12)?.as_deref()),
            closed: day(r.get::<_, Option<String>>(13)?.as_deref()),
            attestation: file.zip(item),
            statut: r.get(16)?,
            motif: r.get::<_, Option<String>>(17)?.filter(|m| !m.is_empty()),
            evaluations: Vec::new(),
            decisions: Vec::new(),
            rf,
        })
    })?;
    let mut lines = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    for l in &mut lines {
        if let Some((e, d)) = docs.remove(&l.rf) {
            l.evaluations = e;
            l.decisions = d;
        }
    }
    Ok(lines)
}

/// The business day of a stored date (`YYYY-MM-DD`) or instant (RFC 3339,
/// taken in Europe/Paris).
fn day(v: Option<&str>) -> Option<NaiveDate> {
    let v = v?.trim();
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Some(d);
    }
    DateTime::parse_from_rfc3339(v)
        .ok()
        .map(|t| crate::clock::paris_day(t.with_timezone(&Utc)))
}

fn fr(d: Option<NaiveDate>) -> String {
    d.map(|d| d.format("%d/%m/%Y").to_string()).unwrap_or_default()
}

fn iso(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// CSV for a French spreadsheet: UTF-8 with BOM, `;`, CRLF, dates
/// JJ/MM/AAAA, every cell guarded against formulas.
fn csv(lines: &[Line]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + lines.len() * 256);
    out.extend_from_slice("\u{FEFF}".as_bytes());
    let mut w = csv::WriterBuilder::new()
        .delimiter(b';')
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(out);
    let result = (|| -> csv::Result<()> {
        row(&mut w, &CSV_HEADER)?;
        for l in lines {
            let (file, item) = match &l.attestation {
                Some((f, i)) => (f.clone(), i.to_string()),
                None => (String::new(), String::new()),
            };
            row(
                &mut w,
                &[
                    &l.rf,
                    &l.id_cram,
                    &l.convention,
                    &l.nir,
                    &l.nom,
                    &l.pn,
                    &l.adresse,
                    &l.telephone,
                    &l.ressources,
                    &fr(l.dt_commande),
                    l.state.label_fr(),
                    &fr(l.relance),
                    &fr(l.transmission),
                    &file,
                    &item,
                    l.motif.as_deref().unwrap_or(""),
                    &fr(l.closed),
                    &l.evaluations.join(", "),
                    &l.decisions.join(", "),
                ],
            )?;
        }
        w.flush()?;
        Ok(())
    })();
    match (result, w.into_inner()) {
        (Ok(()), Ok(bytes)) => bytes,
        _ => "\u{FEFF}".as_bytes().to_vec(),
    }
}

fn row<W: std::io::Write>(w: &mut csv::Writer<W>, cells: &[&str]) -> csv::Result<()> {
    w.write_record(cells.iter().map(|c| guard(&one_line(c)).into_owned()))
}

/// Prefixes a cell a spreadsheet would read as a formula with `'`.
fn guard(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => std::borrow::Cow::Owned(format!("'{cell}")),
        _ => std::borrow::Cow::Borrowed(cell),
    }
}

/// One visual row per order: line breaks and controls become spaces.
fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(char::is_control) {
        std::borrow::Cow::Owned(s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// XML (UTF-8, LF, two-space indent), `schema/commandes.xsd`.
fn xml(provider: &str, lines: &[Line]) -> Vec<u8> {
    let mut o = String::with_capacity(256 + lines.len() * 900);
    o.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        o,
        "<commandes version=\"{FORMAT_VERSION}\" prestataire=\"{}\" nombre=\"{}\">",
        text(provider),
        lines.len()
    );
    for l in lines {
        o.push_str("  <commande>\n");
        elem(&mut o, "rf-commande", &l.rf);
        elem(&mut o, "id-cram", &l.id_cram);
        elem(&mut o, "code-convention", &l.convention);
        elem(&mut o, "nir-per", &l.nir);
        elem(&mut o, "nom-per", &l.nom);
        elem(&mut o, "pn-per", &l.pn);
        elem(&mut o, "adresse", &l.adresse);
        elem(&mut o, "telephone", &l.telephone);
        elem(&mut o, "ressources", &l.ressources);
        elem(&mut o, "dt-commande", &l.dt_commande.map(iso).unwrap_or_default());
        let _ = writeln!(
            o,
            "    <etat code=\"{}\">{}</etat>",
            l.state.as_str(),
            text(l.state.label_fr())
        );
        if let Some(d) = l.relance {
            elem(&mut o, "dt-relance", &iso(d));
        }
        if let Some(d) = l.transmission {
            elem(&mut o, "dt-transmission", &iso(d));
        }
        if let Some((file, item)) = &l.attestation {
            o.push_str("    <attestation>\n");
            let _ = writeln!(o, "      <fichier>{}</fichier>", text(file));
            let _ = writeln!(o, "      <numero>{item}</numero>");
            if let Some(s) = &l.statut {
                let _ = writeln!(o, "      <statut>{}</statut>", text(s));
            }
            if let Some(m) = &l.motif {
                let _ = writeln!(o, "      <motif>{}</motif>", text(m));
            }
            o.push_str("    </attestation>\n");
        }
        if let Some(d) = l.closed {
            elem(&mut o, "dt-cloture", &iso(d));
        }
        for e in &l.evaluations {
            elem(&mut o, "evaluation", e);
        }
        for d in &l.decisions {
            elem(&mut o, "decision", d);
        }
        o.push_str("  </commande>\n");
    }
    o.push_str("</commandes>\n");
    o.into_bytes()
}

/// `    <name>escaped value</name>` on its own line.
fn elem(o: &mut String, name: &str, value: &str) {
    let _ = writeln!(o, "    <{name}>{}</{name}>", text(value));
}

/// Escapes `s` for element content or a double-quoted attribute; what XML
/// 1.0 cannot carry at all becomes U+FFFD.
fn text(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\t' | '\n' | '\r' => {
                let _ = write!(o, "&#{};", c as u32);
            }
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests;
