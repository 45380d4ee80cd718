//! Billing files for the `check` tests, built from the specification.
//!
//! In: a few edits over the spec's chapter 7 example. Out: the file text,
//! the name it must carry, and the line of any element in it. Tests state
//! only what differs from the example, so each one reads as "this value in
//! this field gives this code"; the footer is recomputed from the lines
//! unless a test sets it, so a test breaks one rule at a time.

#![allow(dead_code)]

use std::str::FromStr;

use chrono::NaiveDate;
use ppas_gateway::billing::check::{check_bytes, CheckOptions};
use ppas_gateway::billing::FileVerdict;
use ppas_gateway::config::Config;
use rust_decimal::Decimal;

/// The clock every `check` test runs at: the day the example file was
/// named after (15 May 2021), mid-morning in Paris.
pub const NOW: &str = "2021-05-15T10:00:00+02:00";

/// The day of receipt that goes with [`NOW`].
pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2021, 5, 15).expect("a real date")
}

pub const DECL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
pub const ROOT_OPEN: &str = r#"<factbord xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="FactficTrans.xsd">"#;

pub const HEADER_FIELDS: [&str; 5] = ["rf-borfact", "log-fact", "id-cram", "id-site", "rf-prstpap"];
pub const LINE_FIELDS: [&str; 11] = [
    "nir-per",
    "nom-per",
    "pn-per",
    "rf-prstpap",
    "id-prest",
    "dtd-interv",
    "dtf-interv",
    "nb-quant",
    "mt-tu",
    "mt-total",
    "bo-regul",
];
pub const FOOTER_FIELDS: [&str; 3] = ["nb-ligbor", "mt-totamd", "mt-totprest"];

/// A billing file as a list of (element, raw XML text) per part. Raw text
/// is written as is: a test may put entity references, CDATA or comments in
/// a value.
#[derive(Debug, Clone)]
pub struct Bill {
    pub decl: String,
    pub root_open: String,
    pub header: Vec<(String, String)>,
    pub lines: Vec<Vec<(String, String)>>,
    /// `None`: computed from the lines (count, sum of nb-quant, sum of mt-total).
    pub footer: Option<Vec<(String, String)>>,
    pub eol: &'static str,
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// The first line of the spec example (used as the model of a good line).
pub fn example_line_1() -> Vec<(String, String)> {
    pairs(&[
        ("nir-per", "1541299999000"),
        ("nom-per", "Dupont"),
        ("pn-per", "Pierre"),
        ("rf-prstpap", "PPP100"),
        ("id-prest", "21999000"),
        ("dtd-interv", "2021-03-01"),
        ("dtf-interv", "2021-03-31"),
        ("nb-quant", "14.25"),
        ("mt-tu", "1"),
        ("mt-total", "0"),
        ("bo-regul", "F"),
    ])
}

pub fn example_line_2() -> Vec<(String, String)> {
    pairs(&[
        ("nir-per", "1551199999000"),
        ("nom-per", "Dupond"),
        ("pn-per", "Marie"),
        ("rf-prstpap", "PPP100"),
        ("id-prest", "21999001"),
        ("dtd-interv", "2021-04-01"),
        ("dtf-interv", "2021-04-30"),
        ("nb-quant", "10.75"),
        ("mt-tu", "1"),
        ("mt-total", "0"),
        ("bo-regul", "F"),
    ])
}

/// Value of an `xs:decimal` lexical form, leniently (tests only use it to
/// compute footers): `+14.25`, `.5`, `14.` and surrounding blanks are read;
/// anything else counts as 0.
pub fn dec(s: &str) -> Decimal {
    let t = s.trim_matches(|c| c == ' ' || c == '\t' || c == '\r' || c == '\n');
    let t = t.strip_prefix('+').unwrap_or(t);
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t),
    };
    let mut t = t.to_string();
    if t.starts_with('.') {
        t.insert(0, '0');
    }
    if t.ends_with('.') {
        t.push('0');
    }
    if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Decimal::ZERO;
    }
    let v = Decimal::from_str(&t).unwrap_or(Decimal::ZERO);
    if neg {
        -v
    } else {
        v
    }
}

impl Bill {
    /// The example of the billing specification, chapter 7, laid out as
    /// `tests/fixtures/billing/03_150521_100_21999000.xml`.
    pub fn example() -> Bill {
        Bill {
            decl: DECL.into(),
            root_open: ROOT_OPEN.into(),
            header: pairs(&[
                ("rf-borfact", "03_150521_100_21999000"),
                ("log-fact", "nomlogiciel_xxxxx_1.3"),
                ("id-cram", "03"),
                ("id-site", "21999000"),
                ("rf-prstpap", "PPP100"),
            ]),
            lines: vec![example_line_1(), example_line_2()],
            footer: None,
            eol: "\n",
        }
    }

    /// The example with `n` lines (copies of the first line, one month each
    /// going back from March 2021, so that no two lines overlap).
    pub fn with_lines(n: usize) -> Bill {
        let mut b = Bill::example();
        b.lines.clear();
        for i in 0..n {
            let mut l = example_line_1();
            let (y, m) = month_back(2021, 3, i as u32);
            let last = last_day(y, m);
            set_in(&mut l, "dtd-interv", &format!("{y:04}-{m:02}-01"));
            set_in(&mut l, "dtf-interv", &format!("{y:04}-{m:02}-{last:02}"));
            b.lines.push(l);
        }
        b
    }

    /// A PPP119 file (header, name and lines).
    pub fn ppp119() -> Bill {
        let mut b = Bill::example();
        b.header("rf-borfact", "03_150521_119_21999000")
            .header("rf-prstpap", "PPP119");
        for i in 1..=b.lines.len() {
            b.set(i, "rf-prstpap", "PPP119");
        }
        b
    }

    /// Sets a header field (raw text).
    pub fn header(&mut self, field: &str, raw: &str) -> &mut Bill {
        set_in(&mut self.header, field, raw);
        self
    }

    /// Sets a field of line `line` (1-based).
    pub fn set(&mut self, line: usize, field: &str, raw: &str) -> &mut Bill {
        set_in(&mut self.lines[line - 1], field, raw);
        self
    }

    /// Sets a footer field (the other footer fields keep their computed value).
    pub fn footer(&mut self, field: &str, raw: &str) -> &mut Bill {
        let mut f = self.computed_footer();
        if let Some(cur) = &self.footer {
            f = cur.clone();
        }
        set_in(&mut f, field, raw);
        self.footer = Some(f);
        self
    }

    fn computed_footer(&self) -> Vec<(String, String)> {
        let sum = |field: &str| -> Decimal {
            self.lines
                .iter()
                .filter_map(|l| l.iter().find(|(n, _)| n == field))
                .map(|(_, v)| dec(v))
                .sum()
        };
        vec![
            ("nb-ligbor".into(), self.lines.len().to_string()),
            ("mt-totamd".into(), sum("nb-quant").normalize().to_string()),
            ("mt-totprest".into(), sum("mt-total").normalize().to_string()),
        ]
    }

    /// `rf-borfact` + `.xml`: the name the file must carry.
    pub fn name(&self) -> String {
        let rf = self
            .header
            .iter()
            .find(|(n, _)| n == "rf-borfact")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        format!("{rf}.xml")
    }

    pub fn render(&self) -> String {
        let e = self.eol;
        let mut s = String::new();
        if !self.decl.is_empty() {
            s.push_str(&self.decl);
            s.push_str(e);
        }
        s.push_str(&self.root_open);
        s.push_str(e);
        for (n, v) in &self.header {
            s.push_str(&format!(" <{n}>{v}</{n}>{e}"));
        }
        for l in &self.lines {
            s.push_str(&format!(" <factprest>{e}"));
            for (n, v) in l {
                s.push_str(&format!("  <{n}>{v}</{n}>{e}"));
            }
            s.push_str(&format!(" </factprest>{e}"));
        }
        let footer = self.footer.clone().unwrap_or_else(|| self.computed_footer());
        for (n, v) in &footer {
            s.push_str(&format!(" <{n}>{v}</{n}>{e}"));
        }
        s.push_str("</factbord>");
        s.push_str(e);
        s
    }

    /// Runs the library check on the rendered file under its own name.
    pub fn check(&self) -> FileVerdict {
        check_named(&self.name(), self.render().as_bytes())
    }
}

fn set_in(v: &mut Vec<(String, String)>, field: &str, raw: &str) {
    match v.iter_mut().find(|(n, _)| n == field) {
        Some(slot) => slot.1 = raw.to_string(),
        None => panic!("no field {field} in {v:?}"),
    }
}

fn month_back(y: i32, m: u32, back: u32) -> (i32, u32) {
    let idx = y * 12 + (m as i32 - 1) - back as i32;
    (idx.div_euclid(12), (idx.rem_euclid(12) + 1) as u32)
}

pub fn last_day(y: i32, m: u32) -> u32 {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .map(|d| d.day0() + 1)
        .unwrap_or(28)
}

use chrono::Datelike;

/// The library check with the default configuration at [`today`].
pub fn check_named(name: &str, bytes: &[u8]) -> FileVerdict {
    let opts = CheckOptions::new(&Config::default(), today());
    check_bytes(name, bytes, &opts)
}

/// 1-based line of the `nth` (1-based) occurrence of `needle` in `text`.
pub fn line_of(text: &str, needle: &str, nth: usize) -> u64 {
    let mut from = 0;
    let mut found = None;
    for _ in 0..nth {
        match text[from..].find(needle) {
            Some(i) => {
                found = Some(from + i);
                from += i + needle.len();
            }
            None => panic!("occurrence {nth} of {needle:?} not found"),
        }
    }
    let at = found.unwrap_or_else(|| panic!("{needle:?} not found"));
    text[..at].bytes().filter(|&b| b == b'\n').count() as u64 + 1
}

/// (code, line, field) of every anomaly, in report order.
pub fn triples(v: &FileVerdict) -> Vec<(String, Option<u32>, Option<String>)> {
    v.anomalies
        .iter()
        .map(|a| (a.code.as_str().to_string(), a.line, a.field.clone()))
        .collect()
}

/// Codes of every anomaly, sorted, with repeats.
pub fn codes(v: &FileVerdict) -> Vec<String> {
    let mut c: Vec<String> = v.anomalies.iter().map(|a| a.code.as_str().to_string()).collect();
    c.sort();
    c
}

/// Whether the gateway called the file schema-invalid or not well-formed.
pub fn f01_or_f02(v: &FileVerdict) -> bool {
    v.anomalies.iter().any(|a| matches!(a.code.as_str(), "F01" | "F02"))
}

/// A readable dump of a verdict for assertion messages.
pub fn dump(v: &FileVerdict) -> String {
    let mut s = format!(
        "{} verdict={} lines={} accepted={}\n",
        v.file,
        v.verdict.as_str(),
        v.lines,
        v.accepted_lines
    );
    for a in &v.anomalies {
        s.push_str(&format!(
            "  {} line={:?} xml_line={:?} field={:?} {}\n",
            a.code, a.line, a.xml_line, a.field, a.message
        ));
    }
    s
}

/// The XSD 1.0 decimal lexical space (`(\+|-)?([0-9]+(\.[0-9]*)?|\.[0-9]+)`)
/// after whitespace collapse; used by generators to know what they made.
pub fn is_xsd_decimal(s: &str) -> bool {
    let t = s.trim_matches(|c| c == ' ' || c == '\t' || c == '\r' || c == '\n');
    let t = t.strip_prefix(['+', '-']).unwrap_or(t);
    let (i, f) = match t.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (t, None),
    };
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    match f {
        None => !i.is_empty() && digits(i),
        Some(f) => digits(i) && digits(f) && !(i.is_empty() && f.is_empty()),
    }
}

// ---------------------------------------------------------------- charsets

/// ISO-8859-1 byte of a character, if it has one.
pub fn latin1(c: char) -> Option<u8> {
    u8::try_from(u32::from(c)).ok()
}

/// Windows-1252 byte of a character, if it has one (0x81, 0x8D, 0x8F,
/// 0x90, 0x9D are undefined).
pub fn cp1252(c: char) -> Option<u8> {
    const HIGH: [(char, u8); 27] = [
        ('€', 0x80),
        ('‚', 0x82),
        ('ƒ', 0x83),
        ('„', 0x84),
        ('…', 0x85),
        ('†', 0x86),
        ('‡', 0x87),
        ('ˆ', 0x88),
        ('‰', 0x89),
        ('Š', 0x8A),
        ('‹', 0x8B),
        ('Œ', 0x8C),
        ('Ž', 0x8E),
        ('‘', 0x91),
        ('’', 0x92),
        ('“', 0x93),
        ('”', 0x94),
        ('•', 0x95),
        ('–', 0x96),
        ('—', 0x97),
        ('˜', 0x98),
        ('™', 0x99),
        ('š', 0x9A),
        ('›', 0x9B),
        ('œ', 0x9C),
        ('ž', 0x9E),
        ('Ÿ', 0x9F),
    ];
    if let Some((_, b)) = HIGH.iter().find(|(ch, _)| *ch == c) {
        return Some(*b);
    }
    match u32::from(c) {
        0..=0x7F | 0xA0..=0xFF => Some(u32::from(c) as u8),
        _ => None,
    }
}

/// ISO-8859-15 byte of a character, if it has one.
pub fn latin9(c: char) -> Option<u8> {
    const DIFF: [(char, u8); 8] = [
        ('€', 0xA4),
        ('Š', 0xA6),
        ('š', 0xA8),
        ('Ž', 0xB4),
        ('ž', 0xB8),
        ('Œ', 0xBC),
        ('œ', 0xBD),
        ('Ÿ', 0xBE),
    ];
    if let Some((_, b)) = DIFF.iter().find(|(ch, _)| *ch == c) {
        return Some(*b);
    }
    match u32::from(c) {
        0xA4 | 0xA6 | 0xA8 | 0xB4 | 0xB8 | 0xBC | 0xBD | 0xBE => None,
        0..=0xFF => Some(u32::from(c) as u8),
        _ => None,
    }
}
