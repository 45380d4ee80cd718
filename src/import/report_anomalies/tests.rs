//! The report-anomalies import: each row resolved to a transmitted line of
//! a received billing file, every bad row named, one report owed per file
//! and import, what an import again changes; then the publication.

use crate::import::testkit::{Kit, RA_HEADER};
use crate::import::{ImportError, ImportSummary, Kind};

const FILE: &str = "03_151026_100_21999000.xml";
const RF: &str = "03_151026_100_21999000";

fn kit() -> Kit {
    let k = Kit::new();
    k.billing_file(
        FILE,
        &[
            ("1541299999000", "2026-09-01", "2026-09-30", 1),
            ("154122A999000", "2026-09-01", "2026-09-30", 3),
        ],
    );
    k
}

fn import(k: &mut Kit, rows: &str) -> Result<ImportSummary, ImportError> {
    let text = format!("{RA_HEADER}{rows}");
    k.import(Kind::ReportAnomalies, "rejets.csv", text.as_bytes())
}

fn errors(r: Result<ImportSummary, ImportError>) -> Vec<String> {
    match r {
        Err(ImportError::Invalid { errors, .. }) => errors.iter().map(|e| e.to_string()).collect(),
        other => panic!("expected an invalid file, got {other:?}"),
    }
}

fn publish(k: &mut Kit) -> crate::outbound::Published {
    crate::outbound::publish_due(&mut k.conn, &k.cfg, crate::import::testkit::now()).unwrap()
}

#[test]
fn rows_are_resolved_to_their_line_and_a_report_is_owed_to_the_sender() {
    let mut k = kit();
    let rows = format!(
        "{RF};154122A999000;01/09/2026;30/09/2026;R12;Bénéficiaire décédé avant la période\n\
         {RF};1541299999000;2026-09-01;2026-09-30;R03;Montant incohérent\n"
    );
    let s = import(&mut k, &rows).unwrap();
    assert_eq!(
        s.to_string(),
        format!("report-anomalies: 2 rows applied (2 new, 0 updated); 1 report owed (saad21/{RF}.anomalies-report.1)")
    );
    let lines: Vec<(i64, String, i64)> = k
        .conn
        .prepare("SELECT seq, code, line_no FROM anomaly_report_lines ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(lines, [(1, "R03".into(), 1), (2, "R12".into(), 3)], "in line order");
    assert_eq!(k.text("SELECT provider FROM anomaly_reports"), "saad21");
    assert_eq!(
        k.text("SELECT interface FROM history WHERE kind = 'import' ORDER BY id DESC LIMIT 1"),
        "anomalies-de-report"
    );

    let p = publish(&mut k);
    assert_eq!(p.reports, 1);
    let dir = k.path("outbound/saad21/reports");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            format!("{RF}.anomalies-report.1.csv"),
            format!("{RF}.anomalies-report.1.pdf"),
            format!("{RF}.anomalies-report.1.xml")
        ]
    );
    let xml = std::fs::read_to_string(dir.join(format!("{RF}.anomalies-report.1.xml"))).unwrap();
    assert!(xml.contains(&format!("<nom>{FILE}</nom>")), "{xml}");
    assert!(xml.contains("<anomalies nombre=\"2\">"), "{xml}");
    assert!(
        xml.contains("<ligne>3</ligne>\n      <nir-per>154122A999000</nir-per>"),
        "{xml}"
    );
    assert!(
        xml.contains("<motif>Bénéficiaire décédé avant la période</motif>"),
        "{xml}"
    );
    assert!(xml.contains("<recu-le>2026-10-20T10:00:00+02:00</recu-le>"), "{xml}");
    let csv = std::fs::read(dir.join(format!("{RF}.anomalies-report.1.csv"))).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("\u{feff}Rubrique;Valeur;;;;;;\r\n"), "{csv}");
    assert!(
        csv.contains(
            "\r\n3;154122A999000;DUPONT;Jean;01/09/2026;30/09/2026;R12;Bénéficiaire décédé avant la période\r\n"
        ),
        "{csv}"
    );

    // Recorded, mailed to the provider (its own address: no user), once.
    let (subject, to): (String, String) = k
        .conn
        .query_row("SELECT subject, recipients FROM mail_queue", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(subject, format!("PPAS : anomalies de report sur le fichier {FILE}"));
    assert_eq!(to, "contact@saad21.example");
    assert_eq!(
        k.count("SELECT COUNT(*) FROM history WHERE kind = 'chargement' AND interface = 'anomalies-de-report' AND provider = 'saad21' AND convention = '21999000'"),
        1
    );
    assert_eq!(publish(&mut k).reports, 0, "written once");
    assert_eq!(k.count("SELECT COUNT(*) FROM mail_queue"), 1);
}

#[test]
fn every_bad_row_is_named_and_nothing_applied() {
    let mut k = kit();
    // A billing file fully rejected: no line of it was transmitted.
    k.billing_file("03_161026_100_21999000.xml", &[]);
    let rows = format!(
        "{RF};1541299999000;2026-09-01;2026-09-30;R03;Montant incohérent\n\
         03_999999_100_21999000;1541299999000;2026-09-01;2026-09-30;R03;x\n\
         03_161026_100_21999000;1541299999000;2026-09-01;2026-09-30;R03;x\n\
         {RF};1541299999001;2026-09-01;2026-09-30;R03;x\n\
         {RF};1541299999000;2026-09-02;2026-09-30;R03;x\n\
         {RF};154122A999000;2026-09-01;2026-09-29;R03;x\n\
         ;15412;2026-09-31;2026-08-01;;\n\
         {RF};1541299999000;01/09/2026;30/09/2026;R04;doublon\n"
    );
    let errs = errors(import(&mut k, &rows));
    let expect = [
        "line 3: column rf-facture: no billing file 03_999999_100_21999000 with lines transmitted to the payment chain was received",
        "line 4: column rf-facture: no billing file 03_161026_100_21999000 with lines",
        "line 5: billing file 03_151026_100_21999000 has no transmitted line for this nir-per starting on 2026-09-01",
        "line 6: billing file 03_151026_100_21999000 has no transmitted line for this nir-per starting on 2026-09-02",
        "line 7: column dtf-interv: line 3 of billing file 03_151026_100_21999000 (this nir-per, from 2026-09-01) ends on 2026-09-30, not 2026-09-29",
        "line 8: column rf-facture: must not be empty",
        "line 8: column nir-per: must be 13 characters",
        "line 8: column dtd-interv: \"2026-09-31\" is not a real date",
        "line 8: column code: must not be empty",
        "line 8: column motif: must not be empty",
        "line 9: same rf-facture, nir-per and dtd-interv as line 2",
    ];
    for e in expect {
        assert!(errs.iter().any(|m| m.starts_with(e)), "missing {e:?} in {errs:#?}");
    }
    assert_eq!(errs.len(), expect.len(), "{errs:#?}");
    assert!(errs.iter().all(|m| !m.contains("1541299999")), "no NIR: {errs:#?}");
    assert_eq!(k.count("SELECT COUNT(*) FROM report_anomalies"), 0);
    assert_eq!(k.count("SELECT COUNT(*) FROM anomaly_reports"), 0);
}

#[test]
fn a_row_again_is_reported_again_only_when_it_changed() {
    let mut k = kit();
    let a = format!("{RF};1541299999000;2026-09-01;2026-09-30;R03;Montant incohérent\n");
    let b = format!("{RF};154122A999000;2026-09-01;2026-09-30;R12;Décès\n");
    import(&mut k, &format!("{a}{b}")).unwrap();
    publish(&mut k);

    // The same rows: nothing new, no report.
    let s = import(&mut k, &format!("{a}{b}")).unwrap();
    assert_eq!(
        s.to_string(),
        "report-anomalies: 2 rows applied (0 new, 2 updated); nothing new to report"
    );
    assert_eq!(k.count("SELECT COUNT(*) FROM anomaly_reports"), 1);

    // One motif corrected: a second report naming that line only; the first stays.
    let s = import(&mut k, &format!("{a}{}", b.replace("Décès", "Décès le 12/09/2026"))).unwrap();
    assert!(
        s.to_string().ends_with(&format!(
            "1 report owed (saad21/{RF}.anomalies-report.2), 1 row(s) without change"
        )),
        "{s}"
    );
    assert_eq!(publish(&mut k).reports, 1);
    let first =
        std::fs::read_to_string(k.path(&format!("outbound/saad21/reports/{RF}.anomalies-report.1.xml"))).unwrap();
    let second =
        std::fs::read_to_string(k.path(&format!("outbound/saad21/reports/{RF}.anomalies-report.2.xml"))).unwrap();
    assert!(
        first.contains("<anomalies nombre=\"2\">") && first.contains("<motif>Décès</motif>"),
        "{first}"
    );
    assert!(
        second.contains("<anomalies nombre=\"1\">") && second.contains("<motif>Décès le 12/09/2026</motif>"),
        "{second}"
    );
    assert_eq!(
        k.text("SELECT motif FROM report_anomalies WHERE line_no = 3"),
        "Décès le 12/09/2026"
    );
    assert_eq!(k.count("SELECT COUNT(*) FROM mail_queue"), 2);
}

#[test]
fn a_crash_before_the_record_writes_the_same_bytes_and_mails_once() {
    let mut k = kit();
    import(
        &mut k,
        &format!("{RF};1541299999000;2026-09-01;2026-09-30;R03;Montant incohérent\n"),
    )
    .unwrap();
    publish(&mut k);
    let path = k.path(&format!("outbound/saad21/reports/{RF}.anomalies-report.1.pdf"));
    let before = std::fs::read(&path).unwrap();
    // As if the process had died after the files, before the record.
    k.conn.execute("UPDATE anomaly_reports SET done_at = NULL", []).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(publish(&mut k).reports, 1);
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(
        k.count("SELECT COUNT(*) FROM mail_queue"),
        1,
        "the e-mail's key is taken"
    );
}
