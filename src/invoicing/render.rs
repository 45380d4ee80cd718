//! The invoice file (`schema/facture.xsd`, `docs/formats/invoices.md`),
//! rendered from the database alone: the invoice row, its lines and their
//! attestations, none of which changes once the invoice is committed. The
//! same invoice always gives the same bytes (a delivery interrupted before
//! its temporary name was committed writes it again identically).

use std::io::Write;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::Connection;

use super::{amount_dot, Invoice};
use crate::report::xml_text as text;

/// Version of the layout, in the root's `version` attribute.
pub const FORMAT_VERSION: &str = "1";

/// One line as the file shows it.
struct Line {
    rf_commande: String,
    nir_per: String,
    dt_visite: Option<String>,
    transmitted_at: String,
    amount: i64,
}

/// Writes invoice `id` as XML (UTF-8, LF, two-space indent) to `w`.
pub fn render(conn: &Connection, id: i64, w: &mut impl Write) -> Result<()> {
    let inv = Invoice::load(conn, id)?.with_context(|| format!("no invoice {id}"))?;
    let lines = conn
        .prepare_cached(
            "SELECT l.rf_commande, l.nir_per, a.dt_visite, a.transmitted_at, l.amount
             FROM invoice_lines l JOIN attestations a ON a.id = l.attestation_id
             WHERE l.invoice_id = ?1 ORDER BY l.id",
        )?
        .query_map([id], |r| {
            Ok(Line {
                rf_commande: r.get(0)?,
                nir_per: r.get(1)?,
                dt_visite: r.get(2)?,
                transmitted_at: r.get(3)?,
                amount: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()
        .with_context(|| format!("reading the lines of invoice {}", inv.reference))?;
    let total: i64 = lines.iter().map(|l| l.amount).sum();
    if lines.len() as i64 != inv.lines || total != inv.amount {
        bail!(
            "invoice {}: {} line(s) for {} found, {} recorded for {}",
            inv.reference,
            lines.len(),
            amount_dot(total),
            inv.lines,
            amount_dot(inv.amount)
        );
    }
    let mut o = String::with_capacity(512 + lines.len() * 260);
    o.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    o.push_str(&format!("<facture version=\"{FORMAT_VERSION}\">\n"));
    o.push_str("  <entete>\n");
    elem(&mut o, 4, "rf-facture", &inv.reference);
    elem(&mut o, 4, "id-cram", &inv.id_cram);
    elem(&mut o, 4, "code-convention", &inv.code_convention);
    elem(&mut o, 4, "prestataire", &inv.provider);
    elem(&mut o, 4, "dt-facture", &paris_day(&inv.created_at, &inv.reference)?);
    elem(&mut o, 4, "mode", inv.mode.code_fr());
    elem(&mut o, 4, "nb-lignes", &inv.lines.to_string());
    elem(&mut o, 4, "mt-total", &amount_dot(inv.amount));
    o.push_str("  </entete>\n");
    for (i, l) in lines.iter().enumerate() {
        o.push_str(&format!("  <ligne numero=\"{}\">\n", i + 1));
        elem(&mut o, 4, "rf-commande", &l.rf_commande);
        elem(&mut o, 4, "nir-per", &l.nir_per);
        let visit = l
            .dt_visite
            .as_deref()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .with_context(|| {
                format!(
                    "invoice {}: the attestation of order {} has no visit date",
                    inv.reference, l.rf_commande
                )
            })?;
        elem(&mut o, 4, "dt-visite", &visit.format("%Y-%m-%d").to_string());
        elem(
            &mut o,
            4,
            "dt-transmission",
            &paris_day(&l.transmitted_at, &inv.reference)?,
        );
        elem(&mut o, 4, "mt-ligne", &amount_dot(l.amount));
        o.push_str("  </ligne>\n");
    }
    o.push_str("</facture>\n");
    w.write_all(o.as_bytes())
        .with_context(|| format!("writing invoice {}", inv.reference))?;
    Ok(())
}

/// The Europe/Paris day (`YYYY-MM-DD`) of a stored instant.
fn paris_day(at: &str, reference: &str) -> Result<String> {
    let t =
        DateTime::parse_from_rfc3339(at).with_context(|| format!("invoice {reference}: unreadable instant {at:?}"))?;
    Ok(crate::clock::paris_day(t.with_timezone(&Utc))
        .format("%Y-%m-%d")
        .to_string())
}

/// `<name>escaped value</name>` on its own line.
fn elem(o: &mut String, indent: usize, name: &str, value: &str) {
    for _ in 0..indent {
        o.push(' ');
    }
    o.push('<');
    o.push_str(name);
    o.push('>');
    o.push_str(&text(value));
    o.push_str("</");
    o.push_str(name);
    o.push_str(">\n");
}
