//! Properties of the attestation check over hostile input: arbitrary
//! bytes, XML token soup, and valid files damaged by byte flips,
//! truncation, insertion, deletion and duplication.
//!
//! Whatever comes in, the check never panics and returns a verdict that is
//! consistent with its own anomalies (spec §8): rejected ⇒ nothing
//! accepted; an item anomaly names an item in 1..=items, a field and an XML
//! line; a file anomaly (A01) has no item; codes are the stateless ones
//! (A01, A04, A05, A06); the same bytes always give the same verdict.
//!
//! The seed is fixed and the case counts bounded so the suite stays
//! deterministic and runs in seconds; `PROPTEST_CASES` raises them.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as PtConfig, RngSeed, TestRunner};

use ppas_gateway::attestation::{check_bytes, AttestationVerdict, Options};
use ppas_gateway::billing::Verdict;

use super::support::{doc_with, dump, today, Att};

const CHECK_CODES: [&str; 4] = ["A01", "A04", "A05", "A06"];

fn config(cases: u32) -> PtConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    PtConfig {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x0A77_E570),
        ..PtConfig::default()
    }
}

fn check(bytes: &[u8]) -> AttestationVerdict {
    // Small enough that some damaged files cross it.
    let opts = Options {
        max_file_size: 6000,
        today: today(),
    };
    check_bytes("attvisites.xml", bytes, &opts)
}

/// Every invariant of a verdict; `Err` describes the first one broken.
fn invariants(bytes: &[u8], v: &AttestationVerdict) -> Result<(), String> {
    let fail = |what: &str| Err(format!("{what}\n{}", dump(v)));
    if v.accepted > v.items {
        return fail("more accepted than items");
    }
    let file_anomaly = v.anomalies.iter().any(|a| a.code.as_str() == "A01");
    let file_lines = bytes.iter().filter(|&&b| b == b'\n' || b == b'\r').count() as u64 + 1;
    let mut bad = BTreeSet::new();
    for a in &v.anomalies {
        let code = a.code.as_str();
        if !CHECK_CODES.contains(&code) {
            return fail(&format!("{code} is not a code of check"));
        }
        if a.message.trim().is_empty() {
            return fail(&format!("{code} without a message"));
        }
        if let Some(x) = a.xml_line {
            // UTF-16 files count their line feeds as two bytes each.
            if x == 0 || x > file_lines {
                return fail(&format!("{code}: xml_line {x} outside 1..={file_lines}"));
            }
        }
        if code == "A01" {
            if a.line.is_some() {
                return fail("A01 with an item");
            }
        } else {
            match a.line {
                Some(l) if l >= 1 && l <= v.items => {
                    bad.insert(l);
                }
                other => return fail(&format!("{code} on item {other:?} of {}", v.items)),
            }
            if a.field.is_none() || a.xml_line.is_none() {
                return fail(&format!("{code} without field or xml_line"));
            }
        }
    }
    if v.items == 0 && !file_anomaly {
        return fail("no item and no A01");
    }
    match v.verdict {
        Verdict::Rejected => {
            if v.accepted != 0 {
                return fail("rejected with accepted items");
            }
            if !file_anomaly && bad.len() as u32 != v.items {
                return fail("rejected without A01 while some items are clean");
            }
        }
        Verdict::Partial => {
            if file_anomaly || bad.is_empty() || v.accepted != v.items - bad.len() as u32 || v.accepted == 0 {
                return fail("partial is some items rejected, some accepted, no A01");
            }
        }
        Verdict::Accepted => {
            if !v.anomalies.is_empty() || v.accepted != v.items || v.items == 0 {
                return fail("accepted is no anomaly and every item accepted");
            }
        }
    }
    let json = v.to_json();
    if json["kind"] != "attestations" || json["lines"] != v.items || json["accepted_lines"] != v.accepted {
        return fail("JSON does not say what the verdict says");
    }
    Ok(())
}

fn holds(bytes: &[u8]) -> Result<(), TestCaseError> {
    let v = check(bytes);
    invariants(bytes, &v).map_err(TestCaseError::fail)?;
    prop_assert_eq!(&check(bytes), &v);
    Ok(())
}

/// Valid files of 1 to 6 items, some with a bad value, LF or CRLF, in
/// UTF-8 or windows-1252.
fn valid_file() -> impl Strategy<Value = Vec<u8>> {
    (
        1usize..7,
        any::<bool>(),
        any::<bool>(),
        any::<Index>(),
        prop::sample::select(vec!["demain", "2027-01-01", "REFUS", "x€", "", "31/02/2026"]),
    )
        .prop_map(|(n, crlf, cp1252, at, bad)| {
            let mut items: Vec<Att> = (0..n)
                .map(|i| {
                    if i % 3 == 2 {
                        Att::s("AUTRE").set("commentaire", "déménagé")
                    } else {
                        Att::t()
                    }
                })
                .collect();
            let k = at.index(n);
            items[k] = match bad {
                "REFUS" => Att::s("refus"),
                "x€" => Att::t().set("commentaire", "x€"),
                d => Att::t().set("dt-visite", d),
            };
            let eol = if crlf { "\r\n" } else { "\n" };
            if cp1252 {
                let text = doc_with("<?xml version=\"1.0\" encoding=\"windows-1252\"?>", &items, eol);
                super::support::encode(&text, crate::check_support::cp1252)
            } else {
                doc_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>", &items, eol).into_bytes()
            }
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

/// Pieces of attestation-file XML, for token soup and insertions.
const TOKENS: [&str; 36] = [
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
    "<?xml version=\"1.0\" encoding=\"ISO-8859-15\"?>",
    "<?xml version=\"1.0\" encoding=\"windows-1252\"?>",
    "\u{FEFF}",
    "<attvisites>",
    "</attvisites>",
    "<attvisite>",
    "</attvisite>",
    "<rf-commande>C04-2026-000123</rf-commande>",
    "<id-cram>04</id-cram>",
    "<code-convention>62739900</code-convention>",
    "<nir-per>1541299999000</nir-per>",
    "<statut>T</statut>",
    "<statut>S</statut>",
    "<dt-visite>",
    "</dt-visite>",
    "2026-10-02",
    "02/10/2026",
    "<motif>AUTRE</motif>",
    "<commentaire>",
    "</commentaire>",
    "€",
    "&#8364;",
    "&amp;",
    "&foo;",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<?p x?>",
    "<!DOCTYPE attvisites [<!ENTITY e \"x\">]>",
    " xmlns=\"urn:x\"",
    " a=\"1\"",
    "\r\n",
    "\u{0}",
    "\u{1F600}",
];

#[test]
fn arbitrary_bytes_never_panic() {
    let mut runner = TestRunner::new(config(512));
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..3000), |bytes| holds(&bytes))
        .unwrap_or_else(|e| panic!("{e}"));
    // The same, behind an attestation prolog, so the bytes reach the reader.
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..3000), |bytes| {
            holds(&[b"<?xml version=\"1.0\"?>\n<attvisites><attvisite>".as_slice(), &bytes].concat())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn token_soup_never_panics() {
    let soup =
        prop::collection::vec(prop::sample::select(TOKENS.to_vec()), 0..80).prop_map(|t| t.concat().into_bytes());
    let mut runner = TestRunner::new(config(512));
    runner
        .run(&soup, |bytes| holds(&bytes))
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn damaged_valid_files_keep_the_invariants() {
    let cases = (valid_file(), prop::collection::vec(damage(), 1..6));
    let mut runner = TestRunner::new(config(768));
    runner
        .run(&cases, |(mut bytes, damages)| {
            for d in &damages {
                apply(&mut bytes, d);
            }
            holds(&bytes)
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn undamaged_generated_files_are_well_formed_and_partial_or_rejected() {
    let mut runner = TestRunner::new(config(128));
    runner
        .run(&valid_file(), |bytes| {
            holds(&bytes)?;
            let v = check(&bytes);
            prop_assert!(v.anomalies.iter().all(|a| a.code.as_str() != "A01"), "{}", dump(&v));
            prop_assert!(!v.anomalies.is_empty(), "{}", dump(&v));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
