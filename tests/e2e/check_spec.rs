//! Conformance of the billing-file check to the specification (PRODUCT.md
//! §3, §8, FactficTrans.xsd), one test per anomaly code and per schema
//! facet, through the library entry point `check_bytes`.
//!
//! Every expectation is derived from the written rules, not from the
//! implementation: a test states the file (the spec example with one edit)
//! and the anomalies the rules call for — code, `line`, `field`, and the
//! `xml_line` where the element is. Where the rules leave a choice open
//! (e.g. whether an unparsable `nb-quant` also counts as L06), the test only
//! asserts what is certain and says so.
//!
//! The day of receipt is 15 May 2021 (`check_support::NOW`).

use ppas_gateway::billing::{FileVerdict, Verdict};

use crate::check_support::*;

mod file_codes;
mod line_codes;
mod schema;
mod xml_forms;

/// Asserts the anomalies are exactly `want` (as a multiset of
/// (code, line, field)), whatever their order.
#[track_caller]
pub fn expect_exact(v: &FileVerdict, want: &[(&str, Option<u32>, Option<&str>)]) {
    let mut got = triples(v);
    let mut want: Vec<(String, Option<u32>, Option<String>)> = want
        .iter()
        .map(|(c, l, f)| (c.to_string(), *l, f.map(str::to_string)))
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "anomalies differ\n{}", dump(v));
    for a in &v.anomalies {
        assert!(!a.message.trim().is_empty(), "anomaly without a message\n{}", dump(v));
    }
}

/// Asserts there is an anomaly with this code, line and field; returns its
/// `xml_line`.
#[track_caller]
pub fn has(v: &FileVerdict, code: &str, line: Option<u32>, field: Option<&str>) -> Option<u64> {
    match v
        .anomalies
        .iter()
        .find(|a| a.code.as_str() == code && a.line == line && a.field.as_deref() == field)
    {
        Some(a) => {
            assert!(!a.message.trim().is_empty(), "{code} without a message\n{}", dump(v));
            a.xml_line
        }
        None => panic!("expected {code} line={line:?} field={field:?}\n{}", dump(v)),
    }
}

/// Asserts an anomaly with this code, line, field and xml_line.
#[track_caller]
pub fn has_at(v: &FileVerdict, code: &str, line: Option<u32>, field: Option<&str>, xml_line: u64) {
    let got = has(v, code, line, field);
    assert_eq!(got, Some(xml_line), "{code} {field:?}: wrong xml_line\n{}", dump(v));
}

#[track_caller]
pub fn lacks(v: &FileVerdict, code: &str) {
    assert!(
        v.anomalies.iter().all(|a| a.code.as_str() != code),
        "unexpected {code}\n{}",
        dump(v)
    );
}

/// A file with no anomaly at all: accepted, every line transmitted.
#[track_caller]
pub fn expect_accepted(v: &FileVerdict, lines: u32) {
    expect_exact(v, &[]);
    assert_eq!(v.verdict, Verdict::Accepted, "{}", dump(v));
    assert_eq!((v.lines, v.accepted_lines), (lines, lines), "{}", dump(v));
}

/// A rejected file transmits nothing.
#[track_caller]
pub fn expect_rejected(v: &FileVerdict) {
    assert_eq!(v.verdict, Verdict::Rejected, "{}", dump(v));
    assert_eq!(v.accepted_lines, 0, "{}", dump(v));
}

/// The spec example with one line field replaced; returns the verdict and
/// the xml line of that field in line `line`.
pub fn with_line_field(line: usize, field: &str, raw: &str) -> (FileVerdict, u64) {
    let mut b = Bill::example();
    b.set(line, field, raw);
    let text = b.render();
    let at = line_of(&text, &format!("<{field}>"), line_nth(&b, line, field));
    (check_named(&b.name(), text.as_bytes()), at)
}

/// Which occurrence of `<field>` in the file belongs to line `line`
/// (`rf-prstpap` also appears once in the header).
pub fn line_nth(_b: &Bill, line: usize, field: &str) -> usize {
    if field == "rf-prstpap" {
        line + 1
    } else {
        line
    }
}

#[test]
fn the_spec_example_fixture_is_accepted_and_matches_the_builder() {
    let path = crate::support::repo().join("tests/fixtures/billing/03_150521_100_21999000.xml");
    let bytes = std::fs::read(&path).expect("fixture");
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        Bill::example().render(),
        "the builder must lay out the example exactly as the fixture"
    );
    let v = check_named("03_150521_100_21999000.xml", &bytes);
    assert_eq!(v.file, "03_150521_100_21999000.xml");
    expect_accepted(&v, 2);
    assert_eq!(v.accepted_hours, dec("25"), "14.25 + 10.75 hours");
}

#[test]
fn a_ppp119_file_is_accepted() {
    let v = Bill::ppp119().check();
    expect_accepted(&v, 2);
}

#[test]
fn many_lines_are_all_counted_and_accepted() {
    let v = Bill::with_lines(40).check();
    expect_accepted(&v, 40);
}
