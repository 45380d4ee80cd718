//! The payment chain's file: a `factbord` holding the accepted lines of one
//! received file, footer recomputed, valid against `FactficTrans.xsd`.
//!
//! In: the database (the received file's header and its `accepted_lines`).
//! Out: bytes streamed to a writer. Rendering reads only committed state,
//! so writing it again after a crash gives the same file.

use std::io::Write;

use anyhow::{Context, Result};
use rusqlite::{params, Connection};

use crate::store::reference::from_hundredths;

/// Escapes text for element content.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['&', '<', '>']) {
        return s.into();
    }
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").into()
}

fn num(hundredths: i64) -> String {
    from_hundredths(hundredths).normalize().to_string()
}

/// Writes the outbox `factbord` of received file `file_id`.
pub fn render(conn: &Connection, file_id: i64, out: &mut impl Write) -> Result<()> {
    #[allow(clippy::type_complexity)]
    let (rf_borfact, log_fact, id_cram, id_site, rf_prstpap, from, to): (String, String, String, String, String, i64, i64) = conn
        .query_row(
            "SELECT rf_borfact, COALESCE(log_fact, ''), id_cram, id_site, rf_prstpap,
                    COALESCE(lines_from, 0), COALESCE(lines_to, -1)
             FROM received_files WHERE id = ?1",
            [file_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
        )
        .with_context(|| format!("received file {file_id}"))?;
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(out, "<factbord>")?;
    writeln!(out, " <rf-borfact>{}</rf-borfact>", escape(&rf_borfact))?;
    writeln!(out, " <log-fact>{}</log-fact>", escape(&log_fact))?;
    writeln!(out, " <id-cram>{}</id-cram>", escape(&id_cram))?;
    writeln!(out, " <id-site>{}</id-site>", escape(&id_site))?;
    writeln!(out, " <rf-prstpap>{}</rf-prstpap>", escape(&rf_prstpap))?;
    let mut st = conn.prepare(
        "SELECT nir_per, nom_per, pn_per, rf_prstpap, id_prest, dtd, dtf, nb_quant, mt_tu, mt_total, bo_regul
         FROM accepted_lines WHERE id BETWEEN ?1 AND ?2 AND file_id = ?3 ORDER BY id",
    )?;
    let mut rows = st.query(params![from, to, file_id])?;
    let (mut n, mut hours, mut total) = (0u64, 0i64, 0i64);
    while let Some(r) = rows.next()? {
        // Borrowed text: no allocation per field.
        let s = |i: usize| -> rusqlite::Result<&str> {
            r.get_ref(i).map(|v| v.as_str().unwrap_or_default())
        };
        let (q, tu, mt): (i64, i64, i64) = (r.get(7)?, r.get(8)?, r.get(9)?);
        n += 1;
        hours += q;
        total += mt;
        write!(
            out,
            " <factprest>\n  <nir-per>{}</nir-per>\n  <nom-per>{}</nom-per>\n  <pn-per>{}</pn-per>\n  <rf-prstpap>{}</rf-prstpap>\n  <id-prest>{}</id-prest>\n  <dtd-interv>{}</dtd-interv>\n  <dtf-interv>{}</dtf-interv>\n  <nb-quant>{}</nb-quant>\n  <mt-tu>{}</mt-tu>\n  <mt-total>{}</mt-total>\n  <bo-regul>{}</bo-regul>\n </factprest>\n",
            escape(s(0)?),
            escape(s(1)?),
            escape(s(2)?),
            escape(s(3)?),
            escape(s(4)?),
            s(5)?,
            s(6)?,
            num(q),
            num(tu),
            num(mt),
            escape(s(10)?)
        )?;
    }
    writeln!(out, " <nb-ligbor>{n}</nb-ligbor>")?;
    writeln!(out, " <mt-totamd>{}</mt-totamd>", num(hours))?;
    writeln!(out, " <mt-totprest>{}</mt-totprest>", num(total))?;
    writeln!(out, "</factbord>")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape("a<b&c>"), "a&lt;b&amp;c&gt;");
        assert_eq!(escape("Lefèvre"), "Lefèvre");
    }
}
