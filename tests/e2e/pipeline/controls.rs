//! One test (at least) per stateful control of spec §3: F05, F06, F09,
//! F12, L04, L05, L07, L08, L11, and the report counter of a name received
//! again. Each drops files as a provider would and reads the report and
//! the outbox back.

use serde_json::Value;

use super::*;

#[test]
fn f05_unknown_site_rejects_the_file() {
    let g = Gw::with_cast();
    let bill = Bill::new("21999999", 4).line(BLine::month(NIR_A1, SITE_A, 1, "5"));
    g.drop_bill("saadA", &bill);
    process(&g, 1);
    let r = report(&g, "saadA", &bill, 1);
    assert_eq!(r.verdict, "rejected");
    assert_eq!(codes(&r), vec![("F05", 0)]);
    assert!(g.files("outbox").is_empty());
    assert_eq!(g.count("SELECT COUNT(*) FROM accepted_lines"), 0);
}

#[test]
fn f06_unknown_caisse_or_no_convention_with_it() {
    let g = Gw::with_cast();
    // Caisse 98 does not exist.
    let unknown = Bill::new(SITE_A, 5)
        .cram("98")
        .line(BLine::month(NIR_A1, SITE_A, 1, "5"));
    g.drop_bill("saadA", &unknown);
    process(&g, 1);
    let r = report(&g, "saadA", &unknown, 1);
    assert_eq!(r.verdict, "rejected");
    assert!(has(&r, "F06", 0), "{r:?}");
    assert!(!codes(&r).iter().any(|(c, _)| matches!(*c, "F05" | "F12")), "{r:?}");
    // saadC holds a convention with caisse 04 only and bills caisse 03.
    let no_conv = Bill::new(SITE_C, 5).line(BLine::month(NIR_A1, SITE_C, 1, "5"));
    g.drop_bill("saadC", &no_conv);
    process(&g, 1);
    let r = report(&g, "saadC", &no_conv, 1);
    assert_eq!(r.verdict, "rejected");
    assert!(has(&r, "F06", 0), "{r:?}");
    assert!(!codes(&r).iter().any(|(c, _)| matches!(*c, "F05" | "F12")), "{r:?}");
    assert!(g.files("outbox").is_empty(), "{:?}", g.files("outbox"));
}

#[test]
fn f09_same_bytes_twice_gets_a_second_report() {
    let g = Gw::with_cast();
    let bill = Bill::new(SITE_A, 6).line(BLine::month(NIR_A1, SITE_A, 1, "5"));
    g.drop_bill("saadA", &bill);
    process(&g, 0);
    let first_report = g.read(&report_rel("saadA", &bill, 1, "xml"));
    let first_outbox = g.read(&outbox_rel(&bill));

    g.drop_bill("saadA", &bill);
    process(&g, 1);
    let r2 = report(&g, "saadA", &bill, 2);
    assert_eq!(r2.verdict, "rejected");
    assert!(has(&r2, "F09", 0), "{r2:?}");
    for ext in ["xml", "csv", "pdf"] {
        assert!(g.exists(&report_rel("saadA", &bill, 2, ext)), "second report .{ext}");
    }
    // The first report and the outbox file are untouched; no line doubled.
    assert_eq!(g.read(&report_rel("saadA", &bill, 1, "xml")), first_report);
    assert_eq!(g.read(&outbox_rel(&bill)), first_outbox);
    assert_eq!(g.count("SELECT COUNT(*) FROM accepted_lines"), 1);
    // A third time: third report.
    g.drop_bill("saadA", &bill);
    process(&g, 1);
    assert!(has(&report(&g, "saadA", &bill, 3), "F09", 0));
}

#[test]
fn f09_an_rf_borfact_with_transmitted_lines_cannot_be_sent_again() {
    let g = Gw::with_cast();
    // Partial: one line transmitted, one rejected (regularisation).
    let partial = Bill::new(SITE_A, 7).lines([
        BLine::month(NIR_A1, SITE_A, 1, "5"),
        BLine::month(NIR_A1, SITE_A, 2, "5").regul(),
    ]);
    g.drop_bill("saadA", &partial);
    process(&g, 1);
    assert_eq!(report(&g, "saadA", &partial, 1).verdict, "partial");
    // The "corrected" file (same rf-borfact, other bytes) is refused.
    let corrected = Bill::new(SITE_A, 7).line(BLine::month(NIR_A1, SITE_A, 2, "5"));
    g.drop_bill("saadA", &corrected);
    process(&g, 1);
    let r = report(&g, "saadA", &corrected, 2);
    assert_eq!(r.verdict, "rejected");
    assert_eq!(codes(&r), vec![("F09", 0)]);
    assert_eq!(outbox_lines(&g, &partial), vec![line_of(&partial.lines[0])]);
    assert_eq!(g.count("SELECT COUNT(*) FROM accepted_lines"), 1);
}

#[test]
fn f09_a_fully_rejected_rf_borfact_may_be_sent_again_corrected() {
    let g = Gw::with_cast();
    // Every line rejected (saadB's beneficiary, a regularisation).
    let bad = Bill::new(SITE_A, 8).lines([
        BLine::month(NIR_B1, SITE_A, 1, "5"),
        BLine::month(NIR_A1, SITE_A, 2, "6").regul(),
    ]);
    g.drop_bill("saadA", &bad);
    process(&g, 1);
    let r = report(&g, "saadA", &bad, 1);
    assert_eq!(r.verdict, "rejected");
    assert_eq!(codes(&r), vec![("L04", 1), ("L10", 2)]);
    assert!(!g.exists(&outbox_rel(&bad)));
    // A file rejected by a file anomaly (footer) also transmits nothing.
    let mut footer = Bill::new(SITE_A, 9).line(BLine::month(NIR_A1, SITE_A, 3, "4"));
    footer.nb_ligbor = Some("2".into());
    g.drop_bill("saadA", &footer);
    process(&g, 1);
    assert_eq!(codes(&report(&g, "saadA", &footer, 1)), vec![("F08", 0)]);

    // Both corrected and sent again under the same names: accepted.
    let good = Bill::new(SITE_A, 8).line(BLine::month(NIR_A1, SITE_A, 2, "6"));
    g.drop_bill("saadA", &good);
    let mut footer_ok = footer.clone();
    footer_ok.nb_ligbor = None;
    g.drop_bill("saadA", &footer_ok);
    process(&g, 0);
    for bill in [&good, &footer_ok] {
        let r = report(&g, "saadA", bill, 2);
        assert_eq!(r.verdict, "accepted", "{} {r:?}", bill.name());
        assert_eq!(
            outbox_lines(&g, bill),
            bill.lines.iter().map(line_of).collect::<Vec<_>>()
        );
    }
}

#[test]
fn names_that_differ_only_by_extension_case_get_their_own_reports() {
    let g = Gw::with_cast();
    let bill = Bill::new(SITE_A, 28).line(BLine::month(NIR_A1, SITE_A, 1, "5"));
    g.drop_bill("saadA", &bill);
    process(&g, 0);
    // The same rf-borfact again as `.XML` (F03 accepts any case), then the
    // same stem without extension: both map to the report stem of the first.
    let again = Bill::new(SITE_A, 28).line(BLine::month(NIR_A1, SITE_A, 2, "5"));
    g.drop_file("saadA", &format!("{}.XML", bill.rf_borfact()), again.xml().as_bytes());
    process(&g, 1);
    g.drop_file("saadA", &bill.rf_borfact(), again.xml().as_bytes());
    let other = Bill::new(SITE_A, 29).line(BLine::month(NIR_A1, SITE_A, 3, "5"));
    g.drop_bill("saadA", &other);
    process(&g, 1);
    let r2 = report(&g, "saadA", &bill, 2);
    assert_eq!(r2.verdict, "rejected");
    assert!(has(&r2, "F09", 0), "{r2:?}");
    // The third has the same content as the second: F09 alone (spec §3),
    // naming the earlier file.
    let r3 = report(&g, "saadA", &bill, 3);
    assert_eq!(codes(&r3), [("F09", 0)], "{r3:?}");
    assert_eq!(
        report(&g, "saadA", &bill, 1).verdict,
        "accepted",
        "the first report is kept"
    );
    assert_eq!(
        report(&g, "saadA", &other, 1).verdict,
        "accepted",
        "later files are not blocked"
    );
    assert_eq!(g.count("SELECT COUNT(*) FROM received_files WHERE state != 'done'"), 0);
    assert!(g.files("work").is_empty(), "{:?}", g.files("work"));
}

#[test]
fn f12_a_site_of_another_provider_is_never_billed_for_the_sender() {
    let g = Gw::with_cast();
    // saadB drops a file of saadA's site into its own folder.
    let bill = Bill::new(SITE_A, 10).line(BLine::month(NIR_A1, SITE_A, 1, "5"));
    g.drop_bill("saadB", &bill);
    process(&g, 1);
    let r = report(&g, "saadB", &bill, 1);
    assert_eq!(r.verdict, "rejected");
    assert!(has(&r, "F12", 0), "{r:?}");
    assert!(!codes(&r).contains(&("F05", 0)));
    assert!(
        g.files("outbound/saadA/reports").is_empty(),
        "saadA never sees saadB's report"
    );
    assert!(g.files("outbox").is_empty());
    // The period was not taken: saadA bills it.
    let own = Bill::new(SITE_A, 11).line(BLine::month(NIR_A1, SITE_A, 1, "5"));
    g.drop_bill("saadA", &own);
    process(&g, 0);
    assert_eq!(report(&g, "saadA", &own, 1).verdict, "accepted");
}

#[test]
fn l04_no_plan_for_this_provider_and_prestation() {
    let g = Gw::with_cast();
    let bill = Bill::new(SITE_A, 12).lines([
        BLine::month(NIR_B1, SITE_A, 1, "5"),   // saadB's beneficiary
        BLine::month(NIR_NONE, SITE_A, 1, "5"), // nobody's
        BLine::month(NIR_A1, SITE_A, 1, "5"),
    ]);
    g.drop_bill("saadA", &bill);
    // PPP119: NIR_A1 has a plan, NIR_A3 only a PPP100 one.
    let p119 = Bill::new(SITE_A, 12).prest("PPP119").lines([
        BLine::month(NIR_A3, SITE_A, 1, "5").prest("PPP119"),
        BLine::month(NIR_A1, SITE_A, 1, "40").prest("PPP119"),
    ]);
    g.drop_file("saadA", &p119.name(), p119.xml().as_bytes());
    process(&g, 1);
    let r = report(&g, "saadA", &bill, 1);
    assert_eq!((r.verdict.as_str(), r.accepted), ("partial", 1));
    assert_eq!(codes(&r), vec![("L04", 1), ("L04", 2)]);
    let r = report(&g, "saadA", &p119, 1);
    assert_eq!((r.verdict.as_str(), r.accepted), ("partial", 1));
    assert_eq!(codes(&r), vec![("L04", 1)]);
    assert_eq!(outbox_lines(&g, &p119), vec![line_of(&p119.lines[1])]);
}

#[test]
fn l05_period_outside_the_plan() {
    let g = Gw::with_cast();
    // NIR_A3's plan runs from January to June.
    let bill = Bill::new(SITE_A, 13).lines([
        BLine::new(NIR_A3, SITE_A, "2026-06-15", "2026-07-15", "5"),
        BLine::month(NIR_A3, SITE_A, 10, "5"),
        BLine::month(NIR_A3, SITE_A, 3, "5"),
        BLine::new(NIR_A3, SITE_A, "2026-06-01", "2026-06-30", "5"),
    ]);
    g.drop_bill("saadA", &bill);
    process(&g, 1);
    let r = report(&g, "saadA", &bill, 1);
    assert_eq!(codes(&r), vec![("L05", 1), ("L05", 2)]);
    assert_eq!(
        outbox_lines(&g, &bill),
        vec![line_of(&bill.lines[2]), line_of(&bill.lines[3])]
    );
}

#[test]
fn l07_budget_is_consumed_across_lines_and_files_but_not_by_rejected_lines() {
    let g = Gw::with_cast();
    // NIR_A2: total 20, 4 consumed before the gateway: 16 left.
    // A file rejected as a whole (footer) consumes nothing.
    let mut rejected = Bill::new(SITE_A, 14).line(BLine::month(NIR_A2, SITE_A, 1, "16"));
    rejected.nb_ligbor = Some("3".into());
    g.drop_bill("saadA", &rejected);
    process(&g, 1);
    assert_eq!(report(&g, "saadA", &rejected, 1).verdict, "rejected");

    let first = Bill::new(SITE_A, 15).lines([
        BLine::month(NIR_A2, SITE_A, 1, "6"),         // 10 left
        BLine::month(NIR_A2, SITE_A, 2, "8"),         // 2 left
        BLine::month(NIR_A2, SITE_A, 3, "3"),         // L07: 3 > 2
        BLine::month(NIR_A2, SITE_A, 4, "1").regul(), // L10: consumes nothing
        BLine::month(NIR_A2, SITE_A, 5, "2"),         // exactly what is left
    ]);
    g.drop_bill("saadA", &first);
    process(&g, 1);
    let r = report(&g, "saadA", &first, 1);
    assert_eq!(codes(&r), vec![("L07", 3), ("L10", 4)]);
    assert_eq!(
        outbox_lines(&g, &first),
        vec![
            line_of(&first.lines[0]),
            line_of(&first.lines[1]),
            line_of(&first.lines[4])
        ]
    );

    // A later file: nothing left for NIR_A2.
    let second = Bill::new(SITE_A, 16).lines([
        BLine::month(NIR_A2, SITE_A, 6, "0.5"),
        BLine::month(NIR_A1, SITE_A, 6, "30"),
    ]);
    let p = g.drop_bill("saadA", &second);
    let out = g.run(&["validate", "--json", p.to_str().unwrap()]);
    let v: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(v["anomalies"][0]["code"], "L07", "{v}");
    assert_eq!(v["anomalies"][0]["line"], 1, "{v}");
    process(&g, 1);
    let r = report(&g, "saadA", &second, 1);
    assert_eq!(codes(&r), vec![("L07", 1)]);
    assert_eq!(outbox_lines(&g, &second), vec![line_of(&second.lines[1])]);
}

#[test]
fn l08_overlap_within_a_file_and_with_earlier_files_but_not_with_rejected_lines() {
    let g = Gw::with_cast();
    let first = Bill::new(SITE_A, 17).lines([
        BLine::month(NIR_A1, SITE_A, 10, "10"),
        BLine::new(NIR_A1, SITE_A, "2026-10-15", "2026-10-31", "2"), // L08 in the file
        BLine::month(NIR_A1, SITE_A, 9, "10"),
        BLine::new(NIR_A1, SITE_A, "2026-08-01", "2026-08-15", "3").regul(), // rejected: blocks nothing
        BLine::new(NIR_A1, SITE_A, "2026-08-10", "2026-08-20", "3"),
    ]);
    g.drop_bill("saadA", &first);
    process(&g, 1);
    assert_eq!(codes(&report(&g, "saadA", &first, 1)), vec![("L08", 2), ("L10", 4)]);
    assert_eq!(
        outbox_lines(&g, &first),
        vec![
            line_of(&first.lines[0]),
            line_of(&first.lines[2]),
            line_of(&first.lines[4])
        ]
    );

    let second = Bill::new(SITE_A, 18).lines([
        BLine::new(NIR_A1, SITE_A, "2026-09-30", "2026-09-30", "1"), // one common day
        BLine::month(NIR_A1, SITE_A, 10, "1"),                       // identical period, other amount
        BLine::month(NIR_A1, SITE_A, 7, "10"),
        BLine::new(NIR_A1, SITE_A, "2026-08-21", "2026-08-31", "2"), // touches, does not overlap
    ]);
    g.drop_bill("saadA", &second);
    // Another prestation for the same NIR and period is not an overlap.
    let p119 = Bill::new(SITE_A, 18)
        .prest("PPP119")
        .line(BLine::month(NIR_A1, SITE_A, 10, "10").prest("PPP119"));
    g.drop_bill("saadA", &p119);
    process(&g, 1);
    assert_eq!(codes(&report(&g, "saadA", &second, 1)), vec![("L08", 1), ("L08", 2)]);
    assert_eq!(
        outbox_lines(&g, &second),
        vec![line_of(&second.lines[2]), line_of(&second.lines[3])]
    );
    assert_eq!(report(&g, "saadA", &p119, 1).verdict, "accepted");
}

#[test]
fn l11_intervening_site_must_belong_to_the_sender() {
    let g = Gw::with_cast();
    let bill = Bill::new(SITE_A, 19).lines([
        BLine::month(NIR_A1, SITE_B, 1, "5"),     // saadB's site
        BLine::month(NIR_A1, "99999999", 2, "5"), // nobody's site
        BLine::month(NIR_A1, SITE_A2, 3, "5"),    // saadA's other site
        BLine::month(NIR_A5, SITE_A, 3, "5"),     // plan at the other site, billed from this one
    ]);
    g.drop_bill("saadA", &bill);
    process(&g, 1);
    let r = report(&g, "saadA", &bill, 1);
    assert_eq!(codes(&r), vec![("L11", 1), ("L11", 2)]);
    assert_eq!(
        outbox_lines(&g, &bill),
        vec![line_of(&bill.lines[2]), line_of(&bill.lines[3])]
    );
}
