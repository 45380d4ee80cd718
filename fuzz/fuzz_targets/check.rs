//! libFuzzer target: arbitrary bytes through `check_bytes`.
//!
//! The check must never panic, and its verdict must agree with its own
//! anomalies whatever the input (the same invariants as the property tests
//! in `tests/e2e/check_props.rs`, cheap enough to run on every input).

#![no_main]

use std::sync::OnceLock;

use chrono::NaiveDate;
use libfuzzer_sys::fuzz_target;
use ppas_gateway::billing::check::{check_bytes, CheckOptions};
use ppas_gateway::billing::Verdict;
use ppas_gateway::config::Config;

const NAME: &str = "03_150521_100_21999000.xml";

fn opts() -> &'static CheckOptions {
    static OPTS: OnceLock<CheckOptions> = OnceLock::new();
    OPTS.get_or_init(|| {
        let today = NaiveDate::from_ymd_opt(2021, 5, 15).expect("a real date");
        CheckOptions::new(&Config::default(), today)
    })
}

fuzz_target!(|data: &[u8]| {
    let v = check_bytes(NAME, data, opts());
    assert_eq!(v.file, NAME);
    assert!(v.accepted_lines <= v.lines);
    let file_anomaly = v.anomalies.iter().any(|a| a.code.as_str().starts_with('F'));
    let mut bad = std::collections::BTreeSet::new();
    for a in &v.anomalies {
        assert!(!a.message.is_empty(), "{} without message", a.code);
        if a.code.as_str().starts_with('F') {
            assert!(a.line.is_none(), "file anomaly {} with a line", a.code);
        } else {
            let l = a.line.expect("line anomaly has a line");
            assert!(l >= 1 && l <= v.lines, "{} on line {l} of {}", a.code, v.lines);
            bad.insert(l);
        }
    }
    match v.verdict {
        Verdict::Rejected => assert_eq!(v.accepted_lines, 0),
        Verdict::Partial => {
            assert!(!file_anomaly && !bad.is_empty());
            assert_eq!(v.accepted_lines, v.lines - bad.len() as u32);
        }
        Verdict::Accepted => {
            assert!(v.anomalies.is_empty());
            assert_eq!(v.accepted_lines, v.lines);
        }
    }
    if v.lines == 0 {
        assert!(file_anomaly, "no line and no file anomaly");
    }
});
