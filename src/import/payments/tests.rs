//! The payments import: every rule of a row, all or nothing, statements
//! per convention and payment reference, the upsert and its revisions.

use crate::import::testkit::{Kit, P_HEADER};
use crate::import::{ImportError, ImportSummary, Kind};

const A: &str = "P2026-1101;2026-11-01;04;62739900;FAC-2026-0001;1541299999000;DUPONT;Jean;PPP200;2026-10-01;2026-10-15;1;1234,50\n";
const B: &str =
    "P2026-1101;01/11/2026;04;62739900;FAC-2026-0001;154122A999000;MARTIN;Anne;PPP200;01/10/2026;31/10/2026;2.5;80.1\n";

fn errors(r: Result<ImportSummary, ImportError>) -> Vec<String> {
    match r {
        Err(ImportError::Invalid { errors, .. }) => errors.iter().map(|e| e.to_string()).collect(),
        other => panic!("expected an invalid file, got {other:?}"),
    }
}

fn import(k: &mut Kit, rows: &str) -> Result<ImportSummary, ImportError> {
    let text = format!("{P_HEADER}{rows}");
    k.import(Kind::Payments, "paiements.csv", text.as_bytes())
}

#[test]
fn payments_make_one_statement_per_convention_and_reference() {
    let mut k = Kit::new();
    // A third line: same reference, another convention (ergo62's with caisse 03).
    let c =
        "P2026-1101;2026-11-01;03;62000003;FAC-2026-0002;1541299999000;DUPONT;Jean;PPP200;2026-10-01;2026-10-15;1;60\n";
    let s = import(&mut k, &format!("{A}{B}{c}")).unwrap();
    assert_eq!(
        s.to_string(),
        "payments: 3 rows applied (3 new, 0 updated); 2 statements: 2 new, 0 changed"
    );
    let rows = k
        .conn
        .prepare(
            "SELECT id_cram, code_convention, rf_paiement, provider, dt_paiement, due_at, revision, published_revision
             FROM statements ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok(format!(
                "{}|{}|{}|{}|{}|{}|{}|{}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, i64>(7)?
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect::<Vec<_>>();
    assert_eq!(
        rows,
        [
            // 1 November 00:00 in Paris is 31 October 23:00 UTC; 48 hours later.
            "04|62739900|P2026-1101|ergo62|2026-11-01|2026-11-02T23:00:00Z|1|0",
            "03|62000003|P2026-1101|ergo62|2026-11-01|2026-11-02T23:00:00Z|1|0",
        ]
    );
    // Decimals with either separator, as hundredths; both date forms.
    let lines: Vec<(String, String, i64, i64)> = k
        .conn
        .prepare("SELECT nir_per, dtf_interv, nb_quant, mt_paye FROM payments ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(lines[0].2, 100);
    assert_eq!(lines[0].3, 123450);
    assert_eq!(lines[1], ("154122A999000".into(), "2026-10-31".into(), 250, 8010));
    assert_eq!(lines[2].3, 6000);

    let (app, iface, prov, comment): (String, String, String, String) = k
        .conn
        .query_row(
            "SELECT application, interface, provider, comment FROM history WHERE kind = 'import' ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (app.as_str(), iface.as_str(), prov.as_str()),
        ("habitat", "paiements", "ergo62")
    );
    assert!(
        comment.starts_with("import payments paiements.csv: payments: 3 rows applied"),
        "{comment}"
    );
    assert_eq!(
        k.count("SELECT COUNT(*) FROM mail_queue"),
        0,
        "mailed when published, not before"
    );
}

#[test]
fn every_bad_row_is_named_and_nothing_applied() {
    let mut k = Kit::new();
    let rows = format!(
        "{A}\
         ;2026-11-01;04;62739900;F1;1541299999000;DUPONT;Jean;PPP200;2026-10-01;2026-10-15;1;10\n\
         P.1;2026-11-01;99;62739900;F1;1541299999000;DUPONT;Jean;PPP200;2026-10-01;2026-10-15;1;10\n\
         P3;2026-11-01;04;00000000;F1;1541299999000;DUPONT;Jean;PPP200;2026-10-01;2026-10-15;1;10\n\
         P4;2026-11-03;04;62739900;;15412999990;;;PPP-200;2026-10-16;2026-10-15;1e3;-5\n\
         P5;2026/11/01;04;62739900;F1;1541299999000;DUPONT;Jean;PPP200;31/02/2026;2026-10-15;1,234;12 000\n\
         P2026-1101;2026-11-01;04;62739900;FAC-2026-0001;1541299999000;DUPONT;Jean;PPP200;2026-10-01;2026-10-15;1;10\n\
         P2026-1101;2026-10-31;04;62739900;FAC-2026-0009;1541299999000;DUPONT;Jean;PPP200;2026-09-01;2026-09-30;1;10\n\
         P9;2026-11-01;04;62739900\n"
    );
    let errs = errors(import(&mut k, &rows));
    let expect = [
        "line 3: column rf-paiement: must not be empty",
        "line 4: column id-cram: \"99\" is not a known caisse id-cram",
        "line 5: column code-convention: 00000000 is not a validated convention of caisse 04",
        "line 6: column rf-facture: must not be empty",
        "line 6: column nir-per: must be 13 characters",
        "line 6: column nom-per: must not be empty",
        "line 6: column pn-per: must not be empty",
        "line 6: column rf-prstpap: \"PPP-200\" must contain only ASCII letters and digits",
        "line 6: column dtf-interv: 2026-10-15 is before the start of the period (2026-10-16)",
        "line 6: column nb-quant: \"1e3\" is not a decimal number",
        "line 6: column mt-paye: \"-5\" must not be negative",
        "line 7: column dt-paiement: \"2026/11/01\" is not a date",
        "line 7: column dtd-interv: \"31/02/2026\" is not a real date",
        "line 7: column nb-quant: \"1,234\" has more than 2 decimals",
        "line 7: column mt-paye: \"12 000\" is not a decimal number",
        "line 8: same rf-paiement, rf-facture, nir-per and dtd-interv as line 2",
        "line 9: column dt-paiement: 2026-10-31 differs from the date of payment P2026-1101 of convention 62739900 at line 2 (2026-11-01)",
        "line 10: has 4 cells, the header has 13",
    ];
    for e in expect {
        assert!(errs.iter().any(|m| m.starts_with(e)), "missing {e:?} in {errs:#?}");
    }
    assert_eq!(errs.len(), expect.len(), "{errs:#?}");
    assert!(
        errs.iter().all(|m| !m.contains("1541299999") && !m.contains("DUPONT")),
        "no NIR nor name: {errs:#?}"
    );
    assert_eq!(k.count("SELECT COUNT(*) FROM statements"), 0);
    assert_eq!(k.count("SELECT COUNT(*) FROM payments"), 0);
    assert_eq!(k.count("SELECT COUNT(*) FROM history WHERE interface = 'paiements'"), 0);
}

#[test]
fn a_home_care_provider_gets_its_statements_too() {
    let mut k = Kit::new();
    let row = "VIR-77;2026-10-30;03;21999000;03_151026_100_21999000;1541299999000;DUPONT;Jean;PPP100;2026-09-01;2026-09-30;12,5;0\n";
    import(&mut k, row).unwrap();
    assert_eq!(k.text("SELECT provider FROM statements"), "saad21");
    assert_eq!(
        k.text("SELECT application FROM history WHERE interface = 'paiements'"),
        "aide-a-domicile"
    );
}

#[test]
fn the_upsert_keeps_lines_in_place_and_counts_revisions() {
    let mut k = Kit::new();
    import(&mut k, &format!("{A}{B}")).unwrap();
    let revision = |k: &Kit| k.count("SELECT revision FROM statements");

    // The same file again: nothing changes.
    let s = import(&mut k, &format!("{A}{B}")).unwrap();
    assert_eq!(
        s.to_string(),
        "payments: 2 rows applied (0 new, 2 updated); 1 statement: 0 new, 0 changed, 2 row(s) without change"
    );
    assert_eq!(revision(&k), 1);

    // An amount corrected: a new revision, the line updated in place.
    let corrected = A.replace(";1234,50", ";1234,00");
    import(&mut k, &corrected).unwrap();
    assert_eq!(revision(&k), 2);
    assert_eq!(k.count("SELECT COUNT(*) FROM payments"), 2);
    assert_eq!(
        k.count("SELECT mt_paye FROM payments WHERE nir_per = '1541299999000'"),
        123400
    );

    // A line more: another revision.
    let c =
        "P2026-1101;2026-11-01;04;62739900;FAC-2026-0003;1541299999000;DUPONT;Jean;PPP200;2026-10-16;2026-10-31;1;10\n";
    let s = import(&mut k, c).unwrap();
    assert_eq!(s.new, 1);
    assert_eq!(revision(&k), 3);

    // Before its publication the date may be corrected (and moves the due time).
    let moved = format!("{A}{B}")
        .replace("2026-11-01;04", "2026-10-30;04")
        .replace("01/11/2026;04", "30/10/2026;04");
    import(&mut k, &moved).unwrap();
    assert_eq!(k.text("SELECT dt_paiement FROM statements"), "2026-10-30");
    assert_eq!(k.text("SELECT due_at FROM statements"), "2026-10-31T23:00:00Z");

    // Once published it may not; nor may a line move to another convention.
    k.conn
        .execute("UPDATE statements SET published_revision = revision", [])
        .unwrap();
    let errs = errors(import(&mut k, &format!("{A}{B}")));
    assert_eq!(
        errs,
        ["line 2: column dt-paiement: payment P2026-1101 of convention 62739900 was published dated 2026-10-30: its date cannot change"]
    );
    let other = A.replace("2026-11-01;04;62739900", "2026-10-30;04;59111100");
    let errs = errors(import(&mut k, &other));
    assert_eq!(
        errs,
        ["line 2: column code-convention: this payment line (rf-paiement P2026-1101, rf-facture FAC-2026-0001, period starting 2026-10-01) was imported under convention 62739900 of caisse 04: it cannot move to another convention"]
    );
}
