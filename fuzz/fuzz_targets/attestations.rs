//! libFuzzer target: arbitrary bytes through the attestation check, and
//! through the root-element sniff that tells the file kinds apart.
//!
//! The check must never panic, and its verdict must agree with its own
//! anomalies whatever the input (the invariants of the property tests in
//! `tests/e2e/attestations/props.rs`, cheap enough to run on every input):
//! rejected ⇒ nothing accepted; A04–A06 on items 1..=items with a field and
//! an XML line; A01 without an item; a file without items has an A01; a
//! stateful hook sees only items without A01, with their stateless
//! anomalies already given.

#![no_main]

use std::collections::BTreeSet;
use std::sync::OnceLock;

use chrono::NaiveDate;
use libfuzzer_sys::fuzz_target;
use ppas_gateway::anomaly::Anomaly;
use ppas_gateway::attestation::{check_reader, Item, ItemRules, Options};
use ppas_gateway::billing::Verdict;

fn opts() -> &'static Options {
    static OPTS: OnceLock<Options> = OnceLock::new();
    OPTS.get_or_init(|| Options {
        max_file_size: 1 << 20,
        today: NaiveDate::from_ymd_opt(2026, 11, 25).expect("a real date"),
    })
}

/// A hook that checks what it is handed.
struct Hook {
    seen: u32,
}

impl ItemRules for Hook {
    fn item(&mut self, item: &Item, out: &mut Vec<Anomaly>) {
        self.seen += 1;
        assert!(item.index >= 1);
        assert!(item.statut == "T" || item.statut == "S", "statut {:?}", item.statut);
        assert!(out.iter().all(|a| a.line == Some(item.index)));
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = ppas_gateway::xml::sniff::root_of(std::io::Cursor::new(data.to_vec()));
    let _ = ppas_gateway::xml::sniff::root_in_prefix(data);
    let mut hook = Hook { seen: 0 };
    let v = check_reader(
        "attvisites.xml",
        std::io::Cursor::new(data.to_vec()),
        data.len() as u64,
        opts(),
        &mut hook,
    );
    assert!(hook.seen <= v.items);
    assert!(v.accepted <= v.items);
    let a01 = v.anomalies.iter().any(|a| a.code.as_str() == "A01");
    let mut bad = BTreeSet::new();
    for a in &v.anomalies {
        let code = a.code.as_str();
        assert!(matches!(code, "A01" | "A04" | "A05" | "A06"), "{code}");
        assert!(!a.message.is_empty(), "{code} without message");
        if code == "A01" {
            assert!(a.line.is_none(), "A01 with an item");
        } else {
            let l = a.line.expect("an item anomaly has its item");
            assert!(l >= 1 && l <= v.items, "{code} on item {l} of {}", v.items);
            assert!(a.field.is_some() && a.xml_line.is_some());
            bad.insert(l);
        }
    }
    match v.verdict {
        Verdict::Rejected => assert_eq!(v.accepted, 0),
        Verdict::Partial => {
            assert!(!a01 && !bad.is_empty());
            assert_eq!(v.accepted, v.items - bad.len() as u32);
        }
        Verdict::Accepted => {
            assert!(v.anomalies.is_empty());
            assert_eq!(v.accepted, v.items);
        }
    }
    if v.items == 0 {
        assert!(a01, "no item and no A01");
    }
});
