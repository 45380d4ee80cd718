//! Properties of `check_bytes` over hostile input: arbitrary bytes, XML
//! token soup, and valid files damaged by byte flips, truncation,
//! insertion, deletion and duplication.
//!
//! Whatever comes in, the check never panics and always returns a verdict
//! that is consistent with its own anomalies (spec §8): rejected ⇒ nothing
//! transmitted; a line anomaly names a line in 1..=lines and a field; a
//! file anomaly has no line; codes are the ones `check` may give.
//!
//! The seed is fixed and the case counts bounded so the suite stays
//! deterministic and runs in seconds; `PROPTEST_CASES` raises them for a
//! longer hunt.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as PtConfig, RngSeed};

use ppas_gateway::billing::check::{check_bytes, CheckOptions};
use ppas_gateway::billing::{FileVerdict, Verdict};
use ppas_gateway::config::Config;

use crate::check_support::{today, Bill};

/// The codes the stateless check may give (spec §8).
const CHECK_CODES: [&str; 16] = [
    "F01", "F02", "F03", "F04", "F07", "F08", "F10", "F11", "F13", "L01", "L02", "L03", "L06", "L09", "L10", "L12",
];

fn config(cases: u32) -> PtConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    PtConfig {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x00C0_FFEE),
        ..PtConfig::default()
    }
}

fn check(name: &str, bytes: &[u8]) -> FileVerdict {
    let mut cfg = Config::default();
    // Small enough that some damaged files cross it (F11 on the way).
    cfg.limits.max_file_size = 4000;
    check_bytes(name, bytes, &CheckOptions::new(&cfg, today()))
}

/// Every invariant of a verdict; `Err` describes the first one broken.
fn invariants(name: &str, bytes: &[u8], v: &FileVerdict) -> Result<(), String> {
    let fail = |what: &str| Err(format!("{what}\n{}", crate::check_support::dump(v)));
    if v.file != name {
        return fail("file is not the name given");
    }
    if v.accepted_lines > v.lines {
        return fail("more accepted lines than lines");
    }
    let file_anomaly = v.anomalies.iter().any(|a| a.code.as_str().starts_with('F'));
    let mut bad_lines = BTreeSet::new();
    // Lines of the file, counting CR LF, LF and lone CR generously.
    let file_lines = bytes.iter().filter(|&&b| b == b'\n' || b == b'\r').count() as u64 + 1;
    for a in &v.anomalies {
        let code = a.code.as_str();
        if !CHECK_CODES.contains(&code) {
            return fail(&format!("{code} is not a code of check"));
        }
        if a.message.trim().is_empty() {
            return fail(&format!("{code} without a message"));
        }
        if let Some(x) = a.xml_line {
            if x == 0 || x > file_lines {
                return fail(&format!("{code}: xml_line {x} outside 1..={file_lines}"));
            }
        }
        if code.starts_with('F') {
            if a.line.is_some() {
                return fail(&format!("file anomaly {code} with a line"));
            }
        } else {
            match a.line {
                Some(l) if l >= 1 && l <= v.lines => {
                    bad_lines.insert(l);
                }
                other => {
                    return fail(&format!(
                        "line anomaly {code} with line {other:?} (lines = {})",
                        v.lines
                    ))
                }
            }
            if a.field.is_none() || a.xml_line.is_none() {
                return fail(&format!("line anomaly {code} without field or xml_line"));
            }
        }
    }
    if v.lines == 0 && !file_anomaly {
        return fail("no line and no file anomaly (F10 at least)");
    }
    let expect_accepted = v.lines - bad_lines.len() as u32;
    match v.verdict {
        Verdict::Rejected => {
            if v.accepted_lines != 0 {
                return fail("rejected with accepted lines");
            }
            if !file_anomaly && expect_accepted != 0 {
                return fail("rejected without a file anomaly while some lines are clean");
            }
        }
        Verdict::Partial => {
            if file_anomaly || bad_lines.is_empty() || v.accepted_lines != expect_accepted || expect_accepted == 0 {
                return fail("partial is some lines rejected, some accepted, no file anomaly");
            }
        }
        Verdict::Accepted => {
            if !v.anomalies.is_empty() || v.accepted_lines != v.lines || v.lines == 0 {
                return fail("accepted is no anomaly and every line transmitted");
            }
        }
    }
    let json = v.to_json();
    for k in ["file", "verdict", "lines", "accepted_lines", "anomalies"] {
        if json.get(k).is_none() {
            return fail(&format!("JSON without {k}"));
        }
    }
    Ok(())
}

fn holds(name: &str, bytes: &[u8]) -> Result<(), TestCaseError> {
    let v = check(name, bytes);
    invariants(name, bytes, &v).map_err(TestCaseError::fail)?;
    // Stateless and deterministic: the same bytes give the same verdict.
    prop_assert_eq!(&check(name, bytes), &v);
    Ok(())
}

const NAME: &str = "03_150521_100_21999000.xml";

/// Valid files of 0 to 6 lines, some with a bad value, in UTF-8 or CRLF.
fn valid_file() -> impl Strategy<Value = Vec<u8>> {
    (
        0usize..7,
        any::<bool>(),
        any::<Index>(),
        prop::sample::select(vec!["31", "0", "V", "", "2021-02-29", "x"]),
    )
        .prop_map(|(n, crlf, at, bad)| {
            let mut b = Bill::with_lines(n);
            if crlf {
                b.eol = "\r\n";
            }
            if n > 0 {
                let line = at.index(n) + 1;
                let field = match bad {
                    "31" | "0" => "nb-quant",
                    "V" => "bo-regul",
                    "2021-02-29" => "dtf-interv",
                    _ => "nom-per",
                };
                b.set(line, field, bad);
            }
            b.render().into_bytes()
        })
}

#[derive(Debug, Clone)]
enum Damage {
    Flip(Index, u8),
    Truncate(Index),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Duplicate(Index, usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Flip(i, b)),
        any::<Index>().prop_map(Damage::Truncate),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(i, v)| Damage::Insert(i, v)),
        (any::<Index>(), prop::sample::select(TOKENS.to_vec()))
            .prop_map(|(i, t)| Damage::Insert(i, t.as_bytes().to_vec())),
        (any::<Index>(), 1usize..64).prop_map(|(i, n)| Damage::Delete(i, n)),
        (any::<Index>(), 1usize..400).prop_map(|(i, n)| Damage::Duplicate(i, n)),
    ]
}

fn apply(bytes: &mut Vec<u8>, d: &Damage) {
    if bytes.is_empty() {
        return;
    }
    match d {
        Damage::Flip(i, b) => {
            let at = i.index(bytes.len());
            bytes[at] = *b;
        }
        Damage::Truncate(i) => bytes.truncate(i.index(bytes.len())),
        Damage::Insert(i, v) => {
            let at = i.index(bytes.len() + 1);
            bytes.splice(at..at, v.iter().copied());
        }
        Damage::Delete(i, n) => {
            let at = i.index(bytes.len());
            let end = (at + n).min(bytes.len());
            bytes.drain(at..end);
        }
        Damage::Duplicate(i, n) => {
            let at = i.index(bytes.len());
            let end = (at + n).min(bytes.len());
            let chunk: Vec<u8> = bytes[at..end].to_vec();
            bytes.splice(end..end, chunk);
        }
    }
}

/// Pieces of billing-file XML, for token soup and insertions.
const TOKENS: [&str; 40] = [
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
    "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>",
    "<?xml version=\"1.0\" encoding=\"UTF-16\"?>",
    "\u{FEFF}",
    "<factbord>",
    "</factbord>",
    "<factprest>",
    "</factprest>",
    "<nb-quant>",
    "</nb-quant>",
    "14.25",
    "<dtd-interv>",
    "</dtd-interv>",
    "2021-03-01",
    "<nb-ligbor>",
    "</nb-ligbor>",
    "<mt-totamd>",
    "</mt-totamd>",
    "<bo-regul>V</bo-regul>",
    "<rf-prstpap>PPP100",
    "</rf-prstpap>",
    "<nir-per>1541299999000</nir-per>",
    "&amp;",
    "&#233;",
    "&#x1F600;",
    "&#0;",
    "&foo;",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<?p x?>",
    "<!DOCTYPE factbord [<!ENTITY e \"x\">]>",
    "&e;",
    " xmlns=\"urn:x\"",
    " a=\"1\"",
    "\r\n",
    "\u{0}",
    "\u{FFFD}",
    "\u{1F600}",
];

#[test]
fn arbitrary_bytes_never_panic() {
    let mut runner = proptest::test_runner::TestRunner::new(config(512));
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..3000), |bytes| {
            holds(NAME, &bytes)
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn token_soup_never_panics() {
    let soup =
        prop::collection::vec(prop::sample::select(TOKENS.to_vec()), 0..80).prop_map(|t| t.concat().into_bytes());
    let mut runner = proptest::test_runner::TestRunner::new(config(512));
    runner
        .run(&soup, |bytes| holds(NAME, &bytes))
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn damaged_valid_files_keep_the_invariants() {
    let cases = (valid_file(), prop::collection::vec(damage(), 1..6));
    let mut runner = proptest::test_runner::TestRunner::new(config(768));
    runner
        .run(&cases, |(mut bytes, damages)| {
            for d in &damages {
                apply(&mut bytes, d);
            }
            holds(NAME, &bytes)
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn undamaged_generated_files_hold_too() {
    let mut runner = proptest::test_runner::TestRunner::new(config(128));
    runner
        .run(&valid_file(), |bytes| {
            holds(NAME, &bytes)?;
            let v = check(NAME, &bytes);
            prop_assert!(
                v.anomalies.iter().all(|a| a.code.as_str() != "F01"),
                "{}",
                crate::check_support::dump(&v)
            );
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn any_name_is_handled() {
    let names = prop::string::string_regex("[A-Za-z0-9_.\\-é ]{0,40}").expect("regex");
    let mut runner = proptest::test_runner::TestRunner::new(config(256));
    let bytes = Bill::example().render().into_bytes();
    runner
        .run(&names, |name| holds(&name, &bytes))
        .unwrap_or_else(|e| panic!("{e}"));
}
