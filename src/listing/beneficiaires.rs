//! The `beneficiaires` listing of one home-care provider (see the module
//! header of [`crate::listing`]): every plan of its beneficiaries with the
//! hours left, what a provider checks before billing. Layout:
//! `docs/formats/listings.md`, schema `schema/beneficiaires.xsd`.
//!
//! In: the state database and a provider account. Out: both forms, CSV for
//! a French spreadsheet and XML for the provider's software, written
//! together in one pass over the plans ([`write`] streams them; [`render`]
//! collects them), read in order from the plans' index with their accepted
//! lines joined: SQLite sorts nothing and nothing is held but one plan per
//! site (BENCHMARKS.md, `beneficiaires listing`).
//!
//! Which plans: those the billing controls find for this provider, i.e.
//! whose (caisse, site) is one of its validated conventions — the plans L04
//! can match a line to. The consumption of a plan is what L07 counts
//! (`crate::pipeline::rules`): the caisse's `mt_consomme` plus every accepted
//! line of the plan (`accepted_periods.amount_e4`, ten-thousandths of an
//! hour, whoever sent it); rejected lines are never accepted, so
//! they consume nothing. The hours left are the plan's total minus that,
//! shown as they are when negative (a later import may lower a total below
//! what was already billed).
//!
//! The same state gives the same bytes: the order is total (caisse, NIR,
//! prestation, start date, then site, which the plan's key makes unique) and
//! nothing depends on the moment of rendering.

use std::io::Write;

use anyhow::{bail, Context, Result};
use rusqlite::fallible_streaming_iterator::FallibleStreamingIterator;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row, Rows, Statement};

use super::Rendered;
use crate::report::{csv_text_cell, xml_text};

/// Version of the XML layout, in the root's `version` attribute.
pub const FORMAT_VERSION: &str = "1";

/// Header row of the CSV form.
pub const CSV_HEADER: [&str; 11] = [
    "Caisse (id-cram)",
    "Site (id-site)",
    "NIR",
    "Nom",
    "Prénom",
    "Prestation (rf-prstpap)",
    "Début du plan",
    "Fin du plan",
    "Heures du plan",
    "Heures consommées",
    "Heures restantes",
];

/// The provider's validated (caisse, site) pairs, in the listing's order.
const SITES_SQL: &str = "SELECT DISTINCT id_cram, id_site FROM conventions
 WHERE provider = ?1 AND validated = 1 ORDER BY id_cram, id_site";

/// The plans of one (caisse, site) by NIR, prestation and start date — the
/// order of the plans' unique key (id_cram, id_site, nir_per, rf_prstpap,
/// dt_debut), so SQLite reads its index in order and sorts nothing — each
/// with its accepted lines' periods (`accepted_periods`, keyed by NIR and
/// prestation, where L07's preload reads the same amounts), one row a line
/// (one row with a NULL amount for a plan without any): the lines of a
/// plan are adjacent and [`Stream`] adds them up. A join rather than a
/// correlated `SUM` subquery a plan, which costs SQLite a sub-program run
/// per plan.
const PLANS_SQL: &str = "SELECT p.id, p.nir_per, p.rf_prstpap, p.dt_debut, p.nom_per, p.pn_per, p.dt_fin,
        p.mt_total, p.mt_consomme, a.amount_e4
 FROM plans p LEFT JOIN accepted_periods a
   ON a.nir_per = p.nir_per AND a.rf_prstpap = p.rf_prstpap AND a.plan_id = p.id
 WHERE p.id_cram = ?1 AND p.id_site = ?2
 ORDER BY p.nir_per, p.rf_prstpap, p.dt_debut";

/// How many plans the listing of `provider` has (an index-only count).
const COUNT_SQL: &str = "SELECT COUNT(*)
 FROM (SELECT DISTINCT id_cram, id_site FROM conventions WHERE provider = ?1 AND validated = 1) s
 JOIN plans p ON p.id_cram = s.id_cram AND p.id_site = s.id_site";

/// Room reserved per plan in each form: more than a plan takes with the
/// longest names (a reserve never written costs no memory), so that the
/// buffers are not copied as they grow.
const CSV_PER_PLAN: usize = 256;
const XML_PER_PLAN: usize = 640;

/// Renders the `beneficiaires` listing of `provider`.
pub fn render(conn: &Connection, provider: &str) -> Result<Rendered> {
    let plans: i64 = conn.query_row(COUNT_SQL, [provider], |r| r.get(0))?;
    let plans = usize::try_from(plans).unwrap_or(0);
    let (mut csv, mut xml) = (
        Vec::with_capacity(1024 + plans * CSV_PER_PLAN),
        Vec::with_capacity(1024 + plans * XML_PER_PLAN),
    );
    write(conn, provider, &mut csv, &mut xml)?;
    Ok(Rendered { csv, xml })
}

/// Streams the listing of `provider` to `csv` and `xml` in one pass;
/// returns the number of plans. Memory does not grow with the number of
/// plans beyond what the writers keep.
///
/// Every statement reads inside one savepoint, so the listing is one
/// snapshot of the state even when it takes several statements (several
/// sites); inside the caller's transaction, it reads what that sees.
pub fn write(conn: &Connection, provider: &str, csv: &mut impl Write, xml: &mut impl Write) -> Result<u64> {
    conn.execute_batch("SAVEPOINT listing_beneficiaires")?;
    let written = write_snapshot(conn, provider, csv, xml);
    // Nothing was written to the database: releasing is all there is to do.
    let released = conn.execute_batch("RELEASE listing_beneficiaires");
    let n = written.with_context(|| format!("listing the beneficiaries of {provider}"))?;
    released?;
    Ok(n)
}

fn write_snapshot(conn: &Connection, provider: &str, csv: &mut impl Write, xml: &mut impl Write) -> Result<u64> {
    let mut out = Out::start(csv, xml, provider)?;
    let sites: Vec<(String, String)> = conn
        .prepare(SITES_SQL)?
        .query_map([provider], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut n = 0;
    // Per caisse, the plans of its sites merged by NIR, prestation and
    // start date (a tie between sites goes to the first site in order).
    for caisse in sites.chunk_by(|a, b| a.0 == b.0) {
        let mut statements = caisse
            .iter()
            .map(|_| conn.prepare(PLANS_SQL))
            .collect::<rusqlite::Result<Vec<Statement<'_>>>>()?;
        let mut streams = statements
            .iter_mut()
            .zip(caisse)
            .map(|(st, (id_cram, site))| Stream::open(st, id_cram, site))
            .collect::<Result<Vec<_>>>()?;
        loop {
            let mut next: Option<usize> = None;
            for (i, s) in streams.iter().enumerate() {
                if s.has_plan && next.is_none_or(|j| s.plan.key() < streams[j].plan.key()) {
                    next = Some(i);
                }
            }
            let Some(i) = next else { break };
            let (id_cram, site) = &caisse[i];
            out.plan(id_cram, site, &streams[i].plan)?;
            n += 1;
            streams[i].advance()?;
        }
    }
    out.finish()?;
    Ok(n)
}

/// The plans of one (caisse, site), each read whole: its row, then the
/// rows of its other accepted lines.
struct Stream<'s> {
    rows: Rows<'s>,
    /// The plan read, when `has_plan`; the current row is the next plan's first.
    plan: Plan,
    has_plan: bool,
}

impl<'s> Stream<'s> {
    fn open(st: &'s mut Statement<'_>, id_cram: &str, site: &str) -> Result<Stream<'s>> {
        let mut rows = st.query([id_cram, site])?;
        rows.advance()?;
        let mut s = Stream {
            rows,
            plan: Plan::default(),
            has_plan: false,
        };
        s.advance()?;
        Ok(s)
    }

    /// Reads the plan whose first row is the current one, adding up its lines.
    fn advance(&mut self) -> Result<()> {
        let Some(r) = self.rows.get() else {
            self.has_plan = false;
            return Ok(());
        };
        self.plan.read(r)?;
        self.has_plan = true;
        loop {
            self.rows.advance()?;
            match self.rows.get() {
                Some(r) if r.get_ref(0)?.as_i64()? == self.plan.id => self.plan.consumed += amount(r)?,
                _ => return Ok(()),
            }
        }
    }
}

/// What an accepted-line row adds to its plan's consumption (NULL: the
/// plan has no accepted line).
fn amount(r: &Row<'_>) -> Result<i128> {
    Ok(match r.get_ref(9)? {
        ValueRef::Null => 0,
        v => i128::from(v.as_i64()?),
    })
}

/// One plan, copied out of its row into buffers reused from plan to plan.
#[derive(Default)]
struct Plan {
    id: i64,
    /// NIR, prestation, start, name, first name, end, one after the other
    /// (`raw` as read, `text` once checked as UTF-8: one check a plan).
    raw: Vec<u8>,
    text: String,
    ends: [usize; 6],
    /// Hours in ten-thousandths (the unit of `amount_e4`).
    total: i128,
    consumed: i128,
}

impl Plan {
    fn read(&mut self, r: &Row<'_>) -> Result<()> {
        self.id = r.get_ref(0)?.as_i64()?;
        self.raw.clear();
        for (k, end) in self.ends.iter_mut().enumerate() {
            self.raw.extend_from_slice(r.get_ref(k + 1)?.as_bytes()?);
            *end = self.raw.len();
        }
        self.text.clear();
        match std::str::from_utf8(&self.raw) {
            Ok(s) => self.text.push_str(s),
            // Text as stored is UTF-8 (written by this program); anything
            // else is shown with U+FFFD rather than failing the listing.
            Err(_) => {
                let mut from = 0;
                for end in self.ends.iter_mut() {
                    self.text.push_str(&String::from_utf8_lossy(&self.raw[from..*end]));
                    from = *end;
                    *end = self.text.len();
                }
            }
        }
        if !is_iso_date(self.start().as_bytes()) || !is_iso_date(self.end().as_bytes()) {
            // The plan's id, never its NIR (spec §9: no NIR in logs).
            bail!("plan {} has a date that is not YYYY-MM-DD", self.id);
        }
        self.total = i128::from(r.get_ref(7)?.as_i64()?) * 100;
        self.consumed = i128::from(r.get_ref(8)?.as_i64()?) * 100 + amount(r)?;
        Ok(())
    }

    fn field(&self, k: usize) -> &str {
        let from = if k == 0 { 0 } else { self.ends[k - 1] };
        &self.text[from..self.ends[k]]
    }

    fn nir(&self) -> &str {
        self.field(0)
    }
    fn prestation(&self) -> &str {
        self.field(1)
    }
    fn start(&self) -> &str {
        self.field(2)
    }
    fn nom(&self) -> &str {
        self.field(3)
    }
    fn prenom(&self) -> &str {
        self.field(4)
    }
    fn end(&self) -> &str {
        self.field(5)
    }

    /// The listing's order within a caisse (the site breaks a tie).
    fn key(&self) -> (&str, &str, &str) {
        (self.nir(), self.prestation(), self.start())
    }

    fn remaining(&self) -> i128 {
        self.total - self.consumed
    }
}

/// `YYYY-MM-DD` with digits where digits go (what the import stores).
fn is_iso_date(d: &[u8]) -> bool {
    d.len() == 10
        && d.iter().enumerate().all(|(i, &b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
}

/// Appends hours given in ten-thousandths as a decimal with `sep`: two
/// decimals always, up to four when the value has them (`120.00`, `14.25`,
/// `0.1234`, `-2.50`). Exact: no rounding, no float.
fn put_hours(buf: &mut Vec<u8>, e4: i128, sep: u8) {
    // u64 arithmetic when it fits (always, in practice): u128 division is slow.
    let Ok(v) = u64::try_from(e4.unsigned_abs()) else {
        let d = e4.unsigned_abs();
        let frac = format!("{:04}", d % 10_000);
        let frac = frac.trim_end_matches('0');
        let sign = if e4 < 0 { "-" } else { "" };
        let s = format!("{sign}{}{}{frac:0<2}", d / 10_000, char::from(sep));
        buf.extend_from_slice(s.as_bytes());
        return;
    };
    // Written right to left: up to four decimals (two at least), the
    // separator, the integer part, the sign.
    let mut t = [0u8; 26];
    let mut i = t.len();
    let mut frac = v % 10_000;
    let mut keep = 4;
    while keep > 2 && frac % 10 == 0 {
        frac /= 10;
        keep -= 1;
    }
    for _ in 0..keep {
        i -= 1;
        t[i] = b'0' + (frac % 10) as u8;
        frac /= 10;
    }
    i -= 1;
    t[i] = sep;
    let mut int = v / 10_000;
    loop {
        i -= 1;
        t[i] = b'0' + (int % 10) as u8;
        int /= 10;
        if int == 0 {
            break;
        }
    }
    if e4 < 0 {
        i -= 1;
        t[i] = b'-';
    }
    buf.extend_from_slice(&t[i..]);
}

/// Both forms, written a plan at a time through one reused buffer.
///
/// CSV: UTF-8 with a BOM, `;`, CRLF, dates `JJ/MM/AAAA`, decimal comma;
/// text cells on one line and guarded against formulas as in the
/// processing reports, quoted when they hold `;` or `"`. XML
/// (`schema/beneficiaires.xsd`): UTF-8, LF, the billing files' element
/// names for the plan's fields.
struct Out<C: Write, X: Write> {
    csv: C,
    xml: X,
    buf: Vec<u8>,
}

impl<C: Write, X: Write> Out<C, X> {
    fn start(mut csv: C, mut xml: X, provider: &str) -> Result<Out<C, X>> {
        let mut buf = Vec::with_capacity(1024);
        buf.extend_from_slice("\u{FEFF}".as_bytes());
        for (i, h) in CSV_HEADER.iter().enumerate() {
            if i > 0 {
                buf.push(b';');
            }
            csv_cell(&mut buf, h);
        }
        buf.extend_from_slice(b"\r\n");
        csv.write_all(&buf)?;
        buf.clear();
        buf.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<beneficiaires version=\"");
        buf.extend_from_slice(FORMAT_VERSION.as_bytes());
        buf.extend_from_slice(b"\" prestataire=\"");
        put_text(&mut buf, provider);
        buf.extend_from_slice(b"\">\n");
        xml.write_all(&buf)?;
        Ok(Out { csv, xml, buf })
    }

    fn plan(&mut self, id_cram: &str, site: &str, p: &Plan) -> Result<()> {
        let b = &mut self.buf;
        b.clear();
        for t in [id_cram, site, p.nir(), p.nom(), p.prenom(), p.prestation()] {
            csv_cell(b, t);
            b.push(b';');
        }
        for d in [p.start().as_bytes(), p.end().as_bytes()] {
            b.extend_from_slice(&[d[8], d[9], b'/', d[5], d[6], b'/', d[0], d[1], d[2], d[3], b';']);
        }
        // Numbers are written as numbers: a negative one is not a formula.
        put_hours(b, p.total, b',');
        b.push(b';');
        put_hours(b, p.consumed, b',');
        b.push(b';');
        put_hours(b, p.remaining(), b',');
        b.extend_from_slice(b"\r\n");
        self.csv.write_all(b)?;

        b.clear();
        b.extend_from_slice(b" <plan>\n");
        for (tag, t) in [
            ("id-cram", id_cram),
            ("id-site", site),
            ("nir-per", p.nir()),
            ("nom-per", p.nom()),
            ("pn-per", p.prenom()),
            ("rf-prstpap", p.prestation()),
            ("dt-debut", p.start()),
            ("dt-fin", p.end()),
        ] {
            elem(b, tag, |b| put_text(b, t));
        }
        elem(b, "heures-plan", |b| put_hours(b, p.total, b'.'));
        elem(b, "heures-consommees", |b| put_hours(b, p.consumed, b'.'));
        elem(b, "heures-restantes", |b| put_hours(b, p.remaining(), b'.'));
        b.extend_from_slice(b" </plan>\n");
        self.xml.write_all(b)?;
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        self.xml.write_all(b"</beneficiaires>\n")?;
        self.csv.flush()?;
        self.xml.flush()?;
        Ok(())
    }
}

/// Appends a CSV text cell: one line, formula-guarded
/// ([`crate::report::csv_text_cell`]), quoted when it holds a separator,
/// a quote or a line break (RFC 4180, as the `csv` crate writes it).
fn csv_cell(b: &mut Vec<u8>, s: &str) {
    // The common case, copied as it is: a cell starting with a letter or a
    // digit (never guarded) without a control character (U+0000–U+001F,
    // U+007F, and U+0080–U+009F whose lead byte is 0xC2), `;` or `"`.
    let plain =
        s.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric) && s.bytes().all(|c| CSV_PLAIN[usize::from(c)]);
    if plain {
        b.extend_from_slice(s.as_bytes());
        return;
    }
    let cell = csv_text_cell(s);
    if cell.bytes().any(|c| matches!(c, b';' | b'"' | b'\n' | b'\r')) {
        b.push(b'"');
        for c in cell.bytes() {
            if c == b'"' {
                b.push(b'"');
            }
            b.push(c);
        }
        b.push(b'"');
    } else {
        b.extend_from_slice(cell.as_bytes());
    }
}

/// Bytes of a cell [`csv_cell`] may copy as they are (see there).
const CSV_PLAIN: [bool; 256] = {
    let mut t = [true; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = false;
        c += 1;
    }
    t[0x7F] = false;
    t[0xC2] = false;
    t[b';' as usize] = false;
    t[b'"' as usize] = false;
    t
};

/// `  <tag>…</tag>` on its own line, `content` writing the text.
fn elem(b: &mut Vec<u8>, tag: &str, content: impl FnOnce(&mut Vec<u8>)) {
    b.extend_from_slice(b"  <");
    b.extend_from_slice(tag.as_bytes());
    b.push(b'>');
    content(b);
    b.extend_from_slice(b"</");
    b.extend_from_slice(tag.as_bytes());
    b.extend_from_slice(b">\n");
}

/// Appends `s` escaped as the processing reports escape text (one
/// function, [`crate::report::xml_text`]); text with nothing to escape or
/// replace, the common case, is copied as it is without allocating.
fn put_text(b: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|c| XML_PLAIN[usize::from(c)]) {
        b.extend_from_slice(s.as_bytes());
    } else {
        b.extend_from_slice(xml_text(s).as_bytes());
    }
}

/// Bytes that never need [`xml_text`]: not markup, not a control, not the
/// lead byte of U+F000–U+FFFF (U+FFFE and U+FFFF are not XML characters).
const XML_PLAIN: [bool; 256] = {
    let mut t = [true; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = false;
        c += 1;
    }
    t[b'&' as usize] = false;
    t[b'<' as usize] = false;
    t[b'>' as usize] = false;
    t[b'"' as usize] = false;
    t[0xEF] = false;
    t
};

#[cfg(test)]
mod tests;
