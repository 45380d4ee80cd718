//! Visit attestations through the real pipeline (spec §4): files dropped by
//! the ergothérapeutes, every anomaly A01–A09 produced against imported
//! orders, F14 for a `factbord` from an ergothérapeute, what an accepted
//! attestation changes (order state, invoice line due 48 h later with the
//! caisse's fee, the listing), the report in three forms, the notice, the
//! history — with the tests' clock (20 November 2026, 10:00 Paris).

use super::*;

/// One `attvisite`, fields as given (empty ones written empty).
#[allow(clippy::too_many_arguments)]
fn item(rf: &str, cram: &str, conv: &str, nir: &str, statut: &str, date: &str, motif: &str, comment: &str) -> String {
    format!(
        "  <attvisite>\n    <rf-commande>{rf}</rf-commande>\n    <id-cram>{cram}</id-cram>\n    \
         <code-convention>{conv}</code-convention>\n    <nir-per>{nir}</nir-per>\n    <statut>{statut}</statut>\n    \
         <dt-visite>{date}</dt-visite>\n    <motif>{motif}</motif>\n    <commentaire>{comment}</commentaire>\n  </attvisite>\n"
    )
}

fn file(items: &[String]) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<attvisites>\n{}</attvisites>\n",
        items.concat()
    )
}

const O123: &str = "C04-2026-000123";
const NIR123: &str = "1541299999000";
const O124: &str = "C04-2026-000124";
const NIR124: &str = "154122A999000";
const O200: &str = "C04-2026-000200";

fn t(rf: &str, nir: &str, date: &str) -> String {
    item(rf, "04", "62739900", nir, "T", date, "", "")
}

fn s(rf: &str, nir: &str, motif: &str, comment: &str) -> String {
    item(rf, "04", "62739900", nir, "S", "", motif, comment)
}

fn report_of(g: &Gw, provider: &str, name: &str) -> ReportSummary {
    let stem = name.trim_end_matches(".xml");
    read_report(&g.read(&format!("outbound/{provider}/reports/{stem}.report.xml")))
}

fn codes(r: &ReportSummary) -> Vec<(String, u32)> {
    r.anomalies.iter().map(|(c, l)| (c.clone(), l.unwrap_or(0))).collect()
}

fn order_state(g: &Gw, rf: &str) -> String {
    g.rows(&format!("SELECT state FROM orders WHERE rf_commande = '{rf}'"))[0][0].clone()
}

#[test]
fn accepted_attestations_change_their_orders_once_and_create_invoice_lines() {
    let g = Gw::new_with("\n[habitat]\nvisit_fee = 140\n[habitat.visit_fees]\n04 = 162.5\n");
    g.import("providers", PROVIDERS);
    g.import("orders", &orders_csv(ORDERS));
    let name = "attestations-ergo62-1.xml";
    g.drop_file(
        "ergo62",
        name,
        file(&[t(O123, NIR123, "02/10/2026"), s(O124, NIR124, "REFUS", "")]).as_bytes(),
    );
    let out = g.process();
    expect(&out, 0);
    let r = report_of(&g, "ergo62", name);
    assert_eq!((r.verdict.as_str(), r.lines, r.accepted), ("accepted", 2, 2), "{r:?}");
    assert_eq!(order_state(&g, O123), "transmise");
    assert_eq!(order_state(&g, O124), "sans_suite");
    // One invoice line, for the T attestation: the caisse's fee, due 48 h
    // after the reception (20/11 10:00 Paris = 09:00 UTC).
    let lines = g.rows("SELECT rf_commande, code_convention, amount, created_at, due_at FROM invoice_lines");
    assert_eq!(
        lines,
        [[
            O123,
            "62739900",
            "16250",
            "2026-11-20T09:00:00Z",
            "2026-11-22T09:00:00Z"
        ]
        .map(String::from)
        .to_vec()]
    );
    // The listing shows both, the history says so.
    assert_eq!(listing_row(&g, "ergo62", O123)["État"], "transmise");
    assert_eq!(listing_row(&g, "ergo62", O124)["État"], "sans suite");
    let row = listing_row(&g, "ergo62", O123);
    assert_eq!(
        (
            row["Attestation (fichier)"].as_str(),
            row["Attestation (n° dans le fichier)"].as_str()
        ),
        (name, "1")
    );
    assert_eq!(row["Date de transmission"], "20/11/2026");
    assert_eq!(listing_row(&g, "ergo62", O124)["Motif sans suite"], "REFUS");
    assert_listing_valid(&g, "ergo62");
    let hist = g.rows("SELECT application, interface FROM history WHERE kind = 'processed'");
    assert_eq!(hist, [["habitat", "attestations"].map(String::from).to_vec()]);
    xmllint_schema(
        "report.xsd",
        &g.path("outbound/ergo62/reports/attestations-ergo62-1.report.xml"),
    )
    .unwrap();
    let pdf = pdf_text(&g.path("outbound/ergo62/reports/attestations-ergo62-1.report.pdf"));
    assert!(
        pdf.contains("Attestations acceptées") && pdf.contains("Fichier d'attestations de visite"),
        "{pdf}"
    );
    assert!(
        g.files("outbox").is_empty(),
        "attestations never reach the billing outbox"
    );

    // The same attestation again: A03 for each, nothing changes.
    g.drop_file("ergo62", "again.xml", file(&[t(O123, NIR123, "2026-10-02")]).as_bytes());
    expect(&g.process(), 1);
    let r = report_of(&g, "ergo62", "again.xml");
    assert_eq!(r.verdict, "rejected");
    assert!(codes(&r).contains(&("A03".into(), 1)), "{r:?}");
    assert_eq!(g.count("SELECT COUNT(*) FROM invoice_lines"), 1);
    assert_eq!(g.count("SELECT COUNT(*) FROM attestations"), 2);
}

#[test]
fn every_attestation_anomaly_is_named_and_the_rest_is_accepted() {
    let g = gw_with_orders();
    // ergo62's order C04-2026-000125 dated 2026-11-01 for A04 before the order date.
    g.import(
        "orders",
        &orders_csv(&[
            "C04-2026-000125;04;62739900;1541299999005;LEROY;Paul;1 rue 62000 Arras;03 21 00 00 05;PS;2026-11-01",
        ]),
    );
    // An order already closed by its decision (A08).
    expect(&import_bytes(&g, "decisions", "C04-2026-000125.pdf", &pdf("d")), 0);
    let long = "x".repeat(501);
    let items = [
        t("C04-2099-999999", NIR123, "2026-10-02"), // 1: A02 unknown
        item(O200, "04", "59111100", "2600321000002", "T", "2026-10-05", "", ""), // 2: A02 another provider's
        t(O123, "1541299999999", "2026-10-02"),     // 3: A07
        t(O123, NIR123, ""),                        // 4: A04 missing date (and same order as 3)
        t(O123, NIR123, "31/02/2026"),              // 5: A04 not a date
        t(O123, NIR123, "2026-12-01"),              // 6: A04 after the day of receipt
        t("C04-2026-000125", "1541299999005", "2026-10-15"), // 7: A04 before the order date, A08 closed
        s(O124, NIR124, "", ""),                    // 8: A05 no motif
        s(O124, NIR124, "PARTI", ""),               // 9: A05 not in the list
        s(O124, NIR124, "AUTRE", " "),              // 10: A05 AUTRE without comment
        s(O124, NIR124, "REFUS", "coût 30 €"),      // 11: A06 euro sign
        s(O124, NIR124, "REFUS", &long),            // 12: A06 too long
        t(O123, NIR123, "2026-10-02"),              // 13: accepted
        s(O124, NIR124, "AUTRE", "a déménagé chez sa fille"), // 14: accepted
        t(O123, NIR123, "2026-10-03"),              // 15: A03, answered in item 13
    ];
    g.drop_file("ergo62", "all.xml", file(&items).as_bytes());
    expect(&g.process(), 1);
    let r = report_of(&g, "ergo62", "all.xml");
    assert_eq!((r.verdict.as_str(), r.lines, r.accepted), ("partial", 15, 2), "{r:?}");
    let got = codes(&r);
    for (code, item) in [
        ("A02", 1),
        ("A02", 2),
        ("A07", 3),
        ("A04", 4),
        ("A04", 5),
        ("A04", 6),
        ("A04", 7),
        ("A08", 7),
        ("A05", 8),
        ("A05", 9),
        ("A05", 10),
        ("A06", 11),
        ("A06", 12),
        ("A03", 15),
    ] {
        assert!(
            got.contains(&(code.to_string(), item)),
            "missing {code} on attestation {item}: {got:?}"
        );
    }
    assert!(!got.iter().any(|(_, i)| *i == 13 || *i == 14), "{got:?}");
    assert!(!got.iter().any(|(c, _)| c == "A09" || c == "A01"), "{got:?}");
    assert_eq!(order_state(&g, O123), "transmise");
    assert_eq!(order_state(&g, O124), "sans_suite");
    // The other provider's order is untouched, and its holder learns nothing.
    assert_eq!(order_state(&g, O200), "a_faire");
    // A notice tells the ergothérapeute what was rejected.
    let mails = sent_mails(&g);
    assert!(mails.iter().any(|m| m.is_about("all.xml")), "{mails:?}");
}

#[test]
fn a_kind_its_sender_does_not_send_is_refused_whole() {
    let g = gw_with_orders();
    // Attestations from a home-care provider: A09, the order untouched.
    g.drop_file("saad21", "att.xml", file(&[t(O123, NIR123, "2026-10-02")]).as_bytes());
    // A factbord from an ergothérapeute: F14, unread.
    let bill = Bill::new("62739900", 5)
        .cram("04")
        .line(BLine::month(NIR123, "62739900", 5, "2"));
    g.drop_bill("ergo62", &bill);
    // A malformed attestation file: A01.
    g.drop_file("ergo62", "broken.xml", b"<attvisites><attvisite></attvisites>");
    expect(&g.process(), 1);
    assert_eq!(codes(&report_of(&g, "saad21", "att.xml")), [("A09".to_string(), 0)]);
    let r = report_of(&g, "ergo62", &bill.name());
    assert_eq!(
        (r.verdict.as_str(), codes(&r)),
        ("rejected", vec![("F14".to_string(), 0)])
    );
    let r = report_of(&g, "ergo62", "broken.xml");
    assert!(
        r.verdict == "rejected" && codes(&r).iter().all(|(c, _)| c == "A01"),
        "{r:?}"
    );
    assert_eq!(order_state(&g, O123), "a_faire");
    assert!(g.files("outbox").is_empty());
    let kinds = g.rows("SELECT name, kind FROM received_files ORDER BY name");
    assert!(
        kinds.contains(&vec!["att.xml".to_string(), "attestations".to_string()]),
        "{kinds:?}"
    );
    assert!(kinds.contains(&vec![bill.name(), "billing".to_string()]), "{kinds:?}");
}

#[test]
fn validate_and_check_read_attestation_files_too() {
    let g = gw_with_orders();
    let f = g.dir.path().join("v.xml");
    std::fs::write(
        &f,
        file(&[t(O123, NIR123, "2026-10-02"), t(O124, "1541299999999", "2026-10-02")]),
    )
    .unwrap();
    let before = g.dump();
    let out = g.run(&["validate", "--json", f.to_str().unwrap()]);
    expect(&out, 1);
    let v: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(
        (v["kind"].as_str(), v["verdict"].as_str(), v["accepted_lines"].as_u64()),
        (Some("attestations"), Some("partial"), Some(1))
    );
    assert_eq!(v["anomalies"][0]["code"], "A07");
    assert_eq!(g.dump(), before, "validate changed the database");
    // check: the stateless codes only (the NIR is not compared without state).
    let out = g.run(&["check", "--json", f.to_str().unwrap()]);
    expect(&out, 0);
}
