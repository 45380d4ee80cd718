//! The payment chain's file: a `factbord` holding the accepted lines of one
//! received file, footer recomputed, valid against `FactficTrans.xsd`.
//!
//! In: the database (the received file's header and its `accepted_lines`).
//! Out: bytes streamed to a writer. Rendering reads only committed state,
//! so writing it again after a crash gives the same file.

use std::io::Write;

pub mod deliver;

use anyhow::{Context, Result};
use rusqlite::Connection;

use crate::store::raw::{Prepared, Value};

/// Indentation of the header and footer fields, and of a line's fields.
const TOP: usize = 1;
const FIELD: usize = 2;

/// Appends the text of a hundredths integer as `Decimal::normalize` writes
/// it (1250 -> `12.5`, 100 -> `1`, -5 -> `-0.05`), without allocating.
fn put_num(buf: &mut Vec<u8>, hundredths: i64) {
    let v = hundredths.unsigned_abs();
    if hundredths < 0 {
        buf.push(b'-');
    }
    put_uint(buf, v / 100);
    let cents = v % 100;
    if cents != 0 {
        buf.push(b'.');
        buf.push(b'0' + (cents / 10) as u8);
        if cents % 10 != 0 {
            buf.push(b'0' + (cents % 10) as u8);
        }
    }
}

fn put_uint(buf: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// Appends text escaped for element content. A carriage return is written
/// as `&#13;`: a raw one would reach the payment chain as a line feed (XML
/// parsers normalise line ends), changing the value.
fn put_text(buf: &mut Vec<u8>, mut s: &[u8]) {
    while let Some(i) = s.iter().position(|&b| matches!(b, b'&' | b'<' | b'>' | b'\r')) {
        buf.extend_from_slice(&s[..i]);
        buf.extend_from_slice(match s[i] {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            _ => b"&#13;",
        });
        s = &s[i + 1..];
    }
    buf.extend_from_slice(s);
}

/// Appends `<tag>…</tag>` on its own line, indented by `indent` spaces,
/// `content` writing the element's text.
fn put_tagged(buf: &mut Vec<u8>, indent: usize, tag: &str, content: impl FnOnce(&mut Vec<u8>)) {
    buf.resize(buf.len() + indent, b' ');
    buf.push(b'<');
    buf.extend_from_slice(tag.as_bytes());
    buf.push(b'>');
    content(buf);
    buf.extend_from_slice(b"</");
    buf.extend_from_slice(tag.as_bytes());
    buf.extend_from_slice(b">\n");
}

/// Appends `<tag>escaped text</tag>`.
fn put_elem(buf: &mut Vec<u8>, indent: usize, tag: &str, text: &[u8]) {
    put_tagged(buf, indent, tag, |b| put_text(b, text));
}

/// Appends `<tag>number</tag>` (an amount in hundredths).
fn put_num_elem(buf: &mut Vec<u8>, indent: usize, tag: &str, hundredths: i64) {
    put_tagged(buf, indent, tag, |b| put_num(b, hundredths));
}

/// An element holding a date of `accepted_lines` (stored yyyymmdd).
fn put_date_elem(buf: &mut Vec<u8>, tag: &str, yyyymmdd: i64) {
    put_tagged(buf, FIELD, tag, |b| crate::store::dates::put_text(b, yyyymmdd));
}

/// Writes the outbox `factbord` of received file `file_id`.
pub fn render(conn: &Connection, file_id: i64, out: &mut impl Write) -> Result<()> {
    #[allow(clippy::type_complexity)]
    let (rf_borfact, log_fact, id_cram, id_site, rf_prstpap, from, to): (
        String,
        String,
        String,
        String,
        String,
        i64,
        i64,
    ) = conn
        .query_row(
            "SELECT rf_borfact, COALESCE(log_fact, ''), id_cram, id_site, rf_prstpap,
                    COALESCE(lines_from, 0), COALESCE(lines_to, -1)
             FROM received_files WHERE id = ?1",
            [file_id],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )
        .with_context(|| format!("received file {file_id}"))?;
    // One reused buffer for the header, each line and the footer.
    let mut buf: Vec<u8> = Vec::with_capacity(512);
    buf.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<factbord>\n");
    for (tag, v) in [
        ("rf-borfact", &rf_borfact),
        ("log-fact", &log_fact),
        ("id-cram", &id_cram),
        ("id-site", &id_site),
        ("rf-prstpap", &rf_prstpap),
    ] {
        put_elem(&mut buf, TOP, tag, v.as_bytes());
    }
    out.write_all(&buf)?;
    // Read column by column (store::raw): rusqlite's checks per value cost
    // more than the reading itself on a large file.
    let mut st = Prepared::prepare(
        conn,
        "SELECT nir_per, nom_per, pn_per, rf_prstpap, id_prest, dtd, dtf, nb_quant, mt_tu, mt_total, bo_regul
         FROM accepted_lines WHERE id BETWEEN ?1 AND ?2 AND file_id = ?3 ORDER BY id",
    )?;
    let (mut n, mut hours, mut total) = (0u64, 0i64, 0i64);
    // Text borrowed from SQLite: no allocation per row.
    st.for_each_row(&[Value::Int(from), Value::Int(to), Value::Int(file_id)], |r| {
        // Text as stored (UTF-8 written by this program): copied as bytes.
        let s = |i| r.bytes(i);
        let (q, tu, mt) = (r.int(7)?, r.int(8)?, r.int(9)?);
        n += 1;
        hours += q;
        total += mt;
        buf.clear();
        buf.extend_from_slice(b" <factprest>\n");
        for (tag, i) in [
            ("nir-per", 0),
            ("nom-per", 1),
            ("pn-per", 2),
            ("rf-prstpap", 3),
            ("id-prest", 4),
        ] {
            put_elem(&mut buf, FIELD, tag, s(i)?);
        }
        put_date_elem(&mut buf, "dtd-interv", r.int(5)?);
        put_date_elem(&mut buf, "dtf-interv", r.int(6)?);
        put_num_elem(&mut buf, FIELD, "nb-quant", q);
        put_num_elem(&mut buf, FIELD, "mt-tu", tu);
        put_num_elem(&mut buf, FIELD, "mt-total", mt);
        put_elem(&mut buf, FIELD, "bo-regul", s(10)?);
        buf.extend_from_slice(b" </factprest>\n");
        out.write_all(&buf)?;
        Ok(())
    })?;
    buf.clear();
    put_tagged(&mut buf, TOP, "nb-ligbor", |b| put_uint(b, n));
    put_num_elem(&mut buf, TOP, "mt-totamd", hours);
    put_num_elem(&mut buf, TOP, "mt-totprest", total);
    buf.extend_from_slice(b"</factbord>\n");
    out.write_all(&buf)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::reference::from_hundredths;

    fn text(s: &str) -> String {
        let mut b = Vec::new();
        put_text(&mut b, s.as_bytes());
        String::from_utf8(b).unwrap()
    }

    fn num(hundredths: i64) -> String {
        let mut b = Vec::new();
        put_num(&mut b, hundredths);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn escaping() {
        assert_eq!(text("a<b&c>"), "a&lt;b&amp;c&gt;");
        assert_eq!(text("Lefèvre"), "Lefèvre");
        let mut b = Vec::new();
        put_text(&mut b, "a<b&c> Lefèvre".as_bytes());
        assert_eq!(b, "a&lt;b&amp;c&gt; Lefèvre".as_bytes());
        b.clear();
        put_text(&mut b, b"&&<");
        assert_eq!(b, b"&amp;&amp;&lt;");
        assert_eq!(
            text("Du\r\npont\r"),
            "Du&#13;\npont&#13;",
            "a carriage return survives the parser"
        );
    }

    #[test]
    fn numbers_are_written_as_normalized_decimals() {
        for h in [
            0,
            1,
            5,
            10,
            99,
            100,
            101,
            110,
            1250,
            2999,
            -1,
            -5,
            -1250,
            -100,
            i64::MAX,
            i64::MIN + 1,
        ] {
            assert_eq!(num(h), from_hundredths(h).normalize().to_string(), "{h}");
        }
    }
}
