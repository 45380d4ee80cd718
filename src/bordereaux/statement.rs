//! One payment statement as published: read from the database
//! ([`Statement::load`]) and rendered in three forms ([`Statement::render`]):
//! XML for the provider's software (`schema/bordereau.xsd`), CSV for a
//! French spreadsheet, PDF to read and print. Layout:
//! `docs/formats/bordereaux.md`.
//!
//! Pure rendering: the same statement and edition always give the same
//! bytes (the PDF's creation date is the import that made the revision,
//! never the clock), so files written again after a crash are identical.
//!
//! Numbers as their readers expect them: in the XML a `.` and two decimals
//! (`1234.50`); in the CSV grouped thousands and a decimal comma
//! (`1 234,50`, a number to French Excel); in the PDF the same with the
//! euro sign (`1 234,50 €`, kept on one line).

use std::fmt::Write as _;

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension};

use crate::config::Config;
use crate::report::sheet::{render_sheet, Align, Column, Sheet};
use crate::report::{sheet_csv, xml_text};

/// Version of the layout, in the XML root's `version` attribute.
pub const FORMAT_VERSION: &str = "1";

/// The CSV header of the table of paid lines.
pub const CSV_HEADER: [&str; 9] = [
    "Référence facture",
    "NIR",
    "Nom",
    "Prénom",
    "Prestation",
    "Début de période",
    "Fin de période",
    "Quantité",
    "Montant payé",
];

/// One paid line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub rf_facture: String,
    pub nir: String,
    pub nom: String,
    pub pn: String,
    pub prestation: String,
    pub dtd: NaiveDate,
    pub dtf: NaiveDate,
    /// Hundredths.
    pub nb_quant: i64,
    /// Hundredths of euro.
    pub mt_paye: i64,
}

/// A statement and the edition about to be published.
#[derive(Debug, Clone)]
pub struct Statement {
    pub id: i64,
    pub id_cram: String,
    pub caisse_name: Option<String>,
    pub code_convention: String,
    pub rf_paiement: String,
    pub dt_paiement: NaiveDate,
    pub provider: String,
    pub raison_sociale: String,
    /// `saad` or `ergo`.
    pub provider_type: String,
    /// The revision this edition shows.
    pub revision: i64,
    /// When the import that made this revision ran.
    pub changed_at: DateTime<Utc>,
    /// 1 for the first publication, then 2, 3, …
    pub edition: i64,
    /// `bordereau-<code>-<rf-paiement>`, the stem of edition 1.
    pub base: String,
    /// The stem of this edition's files: `base`, or `base.N` for edition N > 1.
    pub stem: String,
    /// By rf-facture, NIR, period start.
    pub lines: Vec<Line>,
}

/// The three forms of one edition.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub pdf: Vec<u8>,
    pub xml: Vec<u8>,
    pub csv: Vec<u8>,
}

impl Statement {
    /// Statement `id` with its next edition, if it is owed one (its latest
    /// revision not published); `None` otherwise. Read in the caller's
    /// transaction, which makes it one snapshot.
    pub fn load(conn: &Connection, cfg: &Config, id: i64) -> Result<Option<Statement>> {
        let row = conn
            .query_row(
                "SELECT s.id_cram, s.code_convention, s.rf_paiement, s.dt_paiement, s.provider,
                        COALESCE(p.raison_sociale, ''), COALESCE(p.type, ''), s.revision, s.changed_at, s.name,
                        (SELECT COUNT(*) FROM statement_editions e WHERE e.statement_id = s.id)
                 FROM statements s LEFT JOIN providers p ON p.provider = s.provider
                 WHERE s.id = ?1 AND s.published_revision < s.revision",
                [id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                        r.get::<_, i64>(7)?,
                        r.get::<_, String>(8)?,
                        r.get::<_, Option<String>>(9)?,
                        r.get::<_, i64>(10)?,
                    ))
                },
            )
            .optional()
            .with_context(|| format!("reading payment statement {id}"))?;
        let Some((id_cram, code, rf, dt, provider, raison, typ, revision, changed_at, name, editions)) = row else {
            return Ok(None);
        };
        let base = super::base_stem(conn, id, &provider, &id_cram, &code, &rf, name)?;
        let edition = editions + 1;
        let stem = if edition == 1 {
            base.clone()
        } else {
            format!("{base}.{edition}")
        };
        let mut stmt = conn.prepare_cached(
            "SELECT rf_facture, nir_per, nom_per, pn_per, rf_prstpap, dtd_interv, dtf_interv, nb_quant, mt_paye
             FROM payments WHERE statement_id = ?1 ORDER BY rf_facture, nir_per, dtd_interv",
        )?;
        let lines = stmt
            .query_map([id], |r| {
                Ok(Line {
                    rf_facture: r.get(0)?,
                    nir: r.get(1)?,
                    nom: r.get(2)?,
                    pn: r.get(3)?,
                    prestation: r.get(4)?,
                    dtd: date(r, 5)?,
                    dtf: date(r, 6)?,
                    nb_quant: r.get(7)?,
                    mt_paye: r.get(8)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
            .with_context(|| format!("reading the lines of payment statement {id}"))?;
        Ok(Some(Statement {
            id,
            caisse_name: cfg.billing.caisses.get(&id_cram).cloned(),
            id_cram,
            code_convention: code,
            rf_paiement: rf,
            dt_paiement: NaiveDate::parse_from_str(&dt, "%Y-%m-%d")
                .with_context(|| format!("payment statement {id}: date {dt:?}"))?,
            provider,
            raison_sociale: raison,
            provider_type: typ,
            revision,
            changed_at: DateTime::parse_from_rfc3339(&changed_at)
                .map(|t| t.with_timezone(&Utc))
                .with_context(|| format!("payment statement {id}: time {changed_at:?}"))?,
            edition,
            base,
            stem,
            lines,
        }))
    }

    /// The history's application: `habitat` for an ergothérapeute.
    pub fn application(&self) -> &'static str {
        if self.provider_type == "ergo" {
            "habitat"
        } else {
            "aide-a-domicile"
        }
    }

    /// Sum of the amounts paid, hundredths of euro.
    pub fn total_paid(&self) -> i64 {
        self.lines.iter().map(|l| l.mt_paye).sum()
    }

    /// Sum of the quantities, hundredths.
    pub fn total_quantity(&self) -> i64 {
        self.lines.iter().map(|l| l.nb_quant).sum()
    }

    /// `04 — Carsat Nord-Picardie`.
    fn caisse_label(&self) -> String {
        match &self.caisse_name {
            Some(n) => format!("{} — {n}", self.id_cram),
            None => self.id_cram.clone(),
        }
    }

    fn provider_label(&self) -> String {
        if self.raison_sociale.is_empty() {
            self.provider.clone()
        } else {
            format!("{} — {}", self.provider, self.raison_sociale)
        }
    }

    /// What a later edition says about the earlier ones.
    fn edition_note(&self) -> Option<String> {
        (self.edition > 1).then(|| {
            format!(
                "Édition {} : ce bordereau reprend toutes les lignes du paiement, celles des éditions précédentes comprises ; l'édition {} reste disponible.",
                self.edition,
                self.edition - 1
            )
        })
    }

    pub fn render(&self) -> Result<Rendered> {
        Ok(Rendered {
            pdf: self.pdf()?,
            xml: self.xml(),
            csv: self.csv(),
        })
    }

    /// XML (UTF-8, LF, two-space indent), `schema/bordereau.xsd`.
    pub fn xml(&self) -> Vec<u8> {
        let mut o = String::with_capacity(1024 + self.lines.len() * 480);
        o.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            o,
            "<bordereau-paiement version=\"{FORMAT_VERSION}\" edition=\"{}\">",
            self.edition
        );
        elem(&mut o, 2, "rf-paiement", &self.rf_paiement);
        elem(&mut o, 2, "dt-paiement", &iso(self.dt_paiement));
        elem(&mut o, 2, "code-convention", &self.code_convention);
        o.push_str("  <caisse>\n");
        elem(&mut o, 4, "id-cram", &self.id_cram);
        if let Some(n) = &self.caisse_name {
            elem(&mut o, 4, "nom", n);
        }
        o.push_str("  </caisse>\n");
        o.push_str("  <prestataire>\n");
        elem(&mut o, 4, "compte", &self.provider);
        if !self.raison_sociale.is_empty() {
            elem(&mut o, 4, "raison-sociale", &self.raison_sociale);
        }
        o.push_str("  </prestataire>\n");
        let _ = writeln!(o, "  <paiements nombre=\"{}\">", self.lines.len());
        for l in &self.lines {
            o.push_str("    <paiement>\n");
            elem(&mut o, 6, "rf-facture", &l.rf_facture);
            elem(&mut o, 6, "nir-per", &l.nir);
            elem(&mut o, 6, "nom-per", &l.nom);
            elem(&mut o, 6, "pn-per", &l.pn);
            elem(&mut o, 6, "rf-prstpap", &l.prestation);
            elem(&mut o, 6, "dtd-interv", &iso(l.dtd));
            elem(&mut o, 6, "dtf-interv", &iso(l.dtf));
            elem(&mut o, 6, "nb-quant", &dot(l.nb_quant));
            elem(&mut o, 6, "mt-paye", &dot(l.mt_paye));
            o.push_str("    </paiement>\n");
        }
        o.push_str("  </paiements>\n");
        o.push_str("  <totaux>\n");
        let _ = writeln!(o, "    <lignes>{}</lignes>", self.lines.len());
        elem(&mut o, 4, "nb-quant", &dot(self.total_quantity()));
        elem(&mut o, 4, "mt-paye", &dot(self.total_paid()));
        o.push_str("  </totaux>\n");
        o.push_str("</bordereau-paiement>\n");
        o.into_bytes()
    }

    /// CSV for a French spreadsheet: a summary block (`Rubrique;Valeur`),
    /// an empty row, then the table of paid lines; every row has
    /// [`CSV_HEADER`]`.len()` cells.
    pub fn csv(&self) -> Vec<u8> {
        let mut rows: Vec<Vec<String>> = vec![
            vec!["Rubrique".into(), "Valeur".into()],
            vec!["Bordereau de paiement".into(), self.stem.clone()],
            vec!["Prestataire".into(), self.provider_label()],
            vec!["Caisse".into(), self.caisse_label()],
            vec!["Code convention".into(), self.code_convention.clone()],
            vec!["Date du paiement".into(), fr(self.dt_paiement)],
            vec!["Référence du paiement".into(), self.rf_paiement.clone()],
            vec!["Édition".into(), self.edition.to_string()],
            vec!["Lignes payées".into(), self.lines.len().to_string()],
            vec!["Quantité totale".into(), comma(self.total_quantity())],
            vec!["Montant total payé (euros)".into(), comma(self.total_paid())],
            vec![],
            CSV_HEADER.iter().map(|s| s.to_string()).collect(),
        ];
        for l in &self.lines {
            rows.push(vec![
                l.rf_facture.clone(),
                l.nir.clone(),
                l.nom.clone(),
                l.pn.clone(),
                l.prestation.clone(),
                fr(l.dtd),
                fr(l.dtf),
                comma(l.nb_quant),
                comma(l.mt_paye),
            ]);
        }
        sheet_csv(&rows, CSV_HEADER.len())
    }

    /// A4 PDF: the summary, the table of paid lines, the totals.
    pub fn pdf(&self) -> Result<Vec<u8>> {
        let col = |title, weight, align, max_lines| Column {
            title,
            weight,
            align,
            max_lines,
        };
        let n = self.lines.len();
        let mut summary = vec![
            ("Prestataire".to_string(), self.provider_label()),
            ("Caisse".to_string(), self.caisse_label()),
            ("Code convention".to_string(), self.code_convention.clone()),
            ("Date du paiement".to_string(), fr(self.dt_paiement)),
            ("Référence du paiement".to_string(), self.rf_paiement.clone()),
        ];
        if self.edition > 1 {
            summary.push(("Édition".to_string(), self.edition.to_string()));
        }
        summary.extend([
            ("Lignes payées".to_string(), n.to_string()),
            ("Montant total payé".to_string(), euros(self.total_paid())),
        ]);
        let mut notes = Vec::new();
        notes.extend(self.edition_note());
        notes.push(format!(
            "Total : {n} ligne{} payée{}, quantité {}, montant payé {}.",
            if n > 1 { "s" } else { "" },
            if n > 1 { "s" } else { "" },
            grouped(self.total_quantity()),
            euros(self.total_paid())
        ));
        let sheet = Sheet {
            title: "Bordereau de paiement".into(),
            subtitle: format!(
                "Paiement {} du {} — convention {}",
                self.rf_paiement,
                fr(self.dt_paiement),
                self.code_convention
            ),
            summary,
            heading: format!("Lignes payées ({n})"),
            columns: vec![
                // Wide enough for a rf-borfact (22 characters) on one line.
                col("Facture", 23.0, Align::Left, 2),
                col("NIR", 14.5, Align::Left, 1),
                col("Bénéficiaire", 17.5, Align::Left, 2),
                col("Prest.", 7.5, Align::Left, 1),
                col("Période", 14.0, Align::Left, 2),
                col("Quantité", 9.0, Align::Right, 1),
                col("Montant payé", 14.5, Align::Right, 1),
            ],
            rows: self
                .lines
                .iter()
                .map(|l| {
                    vec![
                        l.rf_facture.clone(),
                        l.nir.clone(),
                        format!("{} {}", l.nom, l.pn),
                        l.prestation.clone(),
                        format!("du {}\nau {}", fr(l.dtd), fr(l.dtf)),
                        grouped(l.nb_quant),
                        euros(l.mt_paye),
                    ]
                })
                .collect(),
            totals: Some(vec![
                "Total".into(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                grouped(self.total_quantity()),
                euros(self.total_paid()),
            ]),
            empty: "Aucune ligne payée.".into(),
            notes,
            footer: format!(
                "Bordereau de paiement {} — convention {}",
                self.rf_paiement, self.code_convention
            ),
            doc_title: format!(
                "Bordereau de paiement {} — convention {}",
                self.rf_paiement, self.code_convention
            ),
            created: self.changed_at,
        };
        render_sheet(&sheet)
    }

    /// The e-mail to the provider's users (no person in it: references,
    /// counts and the total).
    pub fn mail(&self) -> crate::mail::Message {
        let n = self.lines.len();
        let mut body = format!(
            "Bonjour,\n\nLe bordereau de paiement {rf} du {date} (caisse {caisse}, convention {conv}) est disponible : \
             {n} ligne{s} payée{s}, {total}.\n\n",
            rf = self.rf_paiement,
            date = fr(self.dt_paiement),
            caisse = self.caisse_label(),
            conv = self.code_convention,
            s = if n > 1 { "s" } else { "" },
            total = euros(self.total_paid()).replace('\u{a0}', " "),
        );
        if let Some(note) = self.edition_note() {
            body.push_str(&note);
            body.push_str("\n\n");
        }
        body.push_str(&format!(
            "Il est disponible par SFTP dans le dossier /out/bordereaux/ :\n  \
             {stem}.pdf (à lire et imprimer)\n  {stem}.csv (tableur)\n  {stem}.xml (données)\n\n\
             Ce message est envoyé automatiquement, merci de ne pas y répondre.\n",
            stem = self.stem
        ));
        crate::mail::Message {
            dedup_key: format!("bordereau:{}:{}", self.id, self.edition),
            recipients: Vec::new(),
            subject: format!(
                "PPAS : bordereau de paiement {} du {}",
                self.rf_paiement,
                fr(self.dt_paiement)
            ),
            body,
            secret: false,
        }
    }
}

fn date(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<NaiveDate> {
    let s: String = r.get(i)?;
    NaiveDate::parse_from_str(&s, "%Y-%m-%d")
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
}

/// `<name>escaped value</name>` on its own line.
fn elem(o: &mut String, indent: usize, name: &str, value: &str) {
    let _ = writeln!(o, "{:indent$}<{name}>{}</{name}>", "", xml_text(value));
}

pub(crate) fn iso(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

pub(crate) fn fr(d: NaiveDate) -> String {
    d.format("%d/%m/%Y").to_string()
}

/// Hundredths as a decimal with a dot and two decimals: `1234.50` (XML).
pub fn dot(h: i64) -> String {
    let sign = if h < 0 { "-" } else { "" };
    let a = h.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

/// Hundredths as the CSV writes them: thousands grouped by a plain space,
/// decimal comma (`1 234,50`), which a French spreadsheet reads as the
/// number 1234.5 and a reader reads at a glance.
pub fn comma(h: i64) -> String {
    grouped(h).replace('\u{a0}', " ")
}

/// Hundredths as a French reader writes them: thousands grouped by a
/// no-break space, decimal comma (`1 234,50`).
pub fn grouped(h: i64) -> String {
    let sign = if h < 0 { "-" } else { "" };
    let a = h.unsigned_abs();
    let int = (a / 100).to_string();
    let mut g = String::with_capacity(int.len() + int.len() / 3 * 2);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            g.push('\u{a0}');
        }
        g.push(c);
    }
    format!("{sign}{g},{:02}", a % 100)
}

/// An amount in euros as a French reader writes it: `1 234,50 €` (no-break
/// spaces).
pub fn euros(h: i64) -> String {
    format!("{}\u{a0}€", grouped(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_for_each_reader() {
        assert_eq!(dot(123450), "1234.50");
        assert_eq!(dot(5), "0.05");
        assert_eq!(dot(-1250), "-12.50");
        assert_eq!(comma(123450), "1 234,50");
        assert_eq!(comma(99), "0,99");
        assert_eq!(grouped(123450), "1\u{a0}234,50");
        assert_eq!(grouped(99), "0,99");
        assert_eq!(grouped(100000000), "1\u{a0}000\u{a0}000,00");
        assert_eq!(grouped(12345600), "123\u{a0}456,00");
        assert_eq!(euros(123450), "1\u{a0}234,50\u{a0}€");
    }
}
