//! The bordereaux job: due 48 hours after the payment date (Paris), once
//! per revision, the three forms from the database, a new edition for a
//! statement completed later, never a second mail.

use chrono::{DateTime, NaiveDate, Utc};

use super::*;
use crate::import::testkit::{Kit, P_HEADER};
use crate::import::Kind;

const A: &str = "P2026-1101;2026-10-30;04;62739900;FAC-2026-0001;1541299999000;DUPONT;Jean;PPP200;2026-10-01;2026-10-15;1;1234,50\n";
const B: &str =
    "P2026-1101;2026-10-30;04;62739900;FAC-2026-0001;154122A999000;MARTIN;Anne;PPP200;2026-10-01;2026-10-31;2,5;80,1\n";
const STEM: &str = "bordereau-62739900-P2026-1101";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn import(k: &mut Kit, rows: &str) {
    let text = format!("{P_HEADER}{rows}");
    k.import(Kind::Payments, "paiements.csv", text.as_bytes()).unwrap();
}

fn run_at(k: &mut Kit, at: &str) -> BordereauxSummary {
    run(&mut k.conn, &k.cfg, &Clock::Fixed(t(at))).unwrap()
}

fn files(k: &Kit, provider: &str) -> Vec<String> {
    let dir = k.path(&format!("outbound/{provider}/bordereaux"));
    let mut v: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn read(k: &Kit, rel: &str) -> Vec<u8> {
    std::fs::read(k.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn due_at_is_48_hours_after_midnight_in_paris() {
    let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
    // Winter: 00:00 in Paris is 23:00 UTC the day before.
    assert_eq!(due_at(d(2026, 11, 16)), t("2026-11-17T23:00:00Z"));
    // Summer: 22:00 UTC.
    assert_eq!(due_at(d(2026, 7, 1)), t("2026-07-02T22:00:00Z"));
    // Across the spring change (29 March 2026): 48 elapsed hours, 01:00 local.
    assert_eq!(due_at(d(2026, 3, 28)), t("2026-03-29T23:00:00Z"));
    assert_eq!(due_at(d(2026, 3, 28)), t("2026-03-30T01:00:00+02:00"));
    // Across the autumn change (25 October 2026): 23:00 local.
    assert_eq!(due_at(d(2026, 10, 24)), t("2026-10-25T22:00:00Z"));
}

#[test]
fn published_once_when_due_with_its_three_forms_history_and_mail() {
    let mut k = Kit::new();
    import(&mut k, &format!("{A}{B}"));
    // Due 1 November 00:00 in Paris (31 October 23:00 UTC).
    let s = run_at(&mut k, "2026-10-31T23:59:59+01:00");
    assert_eq!(s, BordereauxSummary::default());
    assert!(files(&k, "ergo62").is_empty());

    let s = run_at(&mut k, "2026-11-01T00:00:00+01:00");
    assert_eq!(s, BordereauxSummary { published: 1, mails: 1 });
    assert_eq!(s.to_string(), "1 bordereau(x) publié(s), 1 e-mail(s) mis en file");
    assert_eq!(
        files(&k, "ergo62"),
        [format!("{STEM}.csv"), format!("{STEM}.pdf"), format!("{STEM}.xml")]
    );
    assert!(files(&k, "ergo59").is_empty());

    let xml = String::from_utf8(read(&k, &format!("outbound/ergo62/bordereaux/{STEM}.xml"))).unwrap();
    for part in [
        "<bordereau-paiement version=\"1\" edition=\"1\">",
        "<rf-paiement>P2026-1101</rf-paiement>",
        "<dt-paiement>2026-10-30</dt-paiement>",
        "<code-convention>62739900</code-convention>",
        "<nom>Carsat Nord-Picardie</nom>",
        "<compte>ergo62</compte>",
        "<paiements nombre=\"2\">",
        "<nir-per>154122A999000</nir-per>",
        "<nb-quant>2.50</nb-quant>",
        "<mt-paye>1234.50</mt-paye>",
        "<lignes>2</lignes>\n    <nb-quant>3.50</nb-quant>\n    <mt-paye>1314.60</mt-paye>",
    ] {
        assert!(xml.contains(part), "{part} in {xml}");
    }
    let csv = String::from_utf8(read(&k, &format!("outbound/ergo62/bordereaux/{STEM}.csv"))).unwrap();
    assert!(csv.starts_with("\u{feff}Rubrique;Valeur;;;;;;;\r\n"), "{csv}");
    assert!(
        csv.contains("\r\nMontant total payé (euros);1 314,60;;;;;;;\r\n"),
        "{csv}"
    );
    assert!(
        csv.contains("\r\nFAC-2026-0001;1541299999000;DUPONT;Jean;PPP200;01/10/2026;15/10/2026;1,00;1 234,50\r\n"),
        "{csv}"
    );
    assert!(read(&k, &format!("outbound/ergo62/bordereaux/{STEM}.pdf")).starts_with(b"%PDF-"));

    let (key, to, subject, body): (String, String, String, String) = k
        .conn
        .query_row("SELECT dedup_key, recipients, subject, body FROM mail_queue", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap();
    assert_eq!(to, "alice@ergo62.example");
    assert!(key.starts_with("bordereau:") && key.ends_with(":1"), "{key}");
    assert_eq!(subject, "PPAS : bordereau de paiement P2026-1101 du 30/10/2026");
    assert!(
        body.contains("2 lignes payées, 1 314,60 €") && body.contains(&format!("{STEM}.pdf")),
        "{body}"
    );
    assert!(!body.contains("1541299999000") && !body.contains("DUPONT"), "{body}");
    let (app, conv, comment): (String, String, String) = k
        .conn
        .query_row(
            "SELECT application, convention, comment FROM history WHERE kind = 'chargement' AND interface = 'bordereaux'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((app.as_str(), conv.as_str()), ("habitat", "62739900"));
    assert!(
        comment.starts_with(&format!(
            "bordereau de paiement P2026-1101 du 30/10/2026 publié : {STEM}.pdf"
        )),
        "{comment}"
    );

    // Again at the same instant, and later: nothing more.
    let pdf = read(&k, &format!("outbound/ergo62/bordereaux/{STEM}.pdf"));
    assert_eq!(
        run_at(&mut k, "2026-11-01T00:00:00+01:00"),
        BordereauxSummary::default()
    );
    assert_eq!(
        run_at(&mut k, "2026-12-01T00:00:00+01:00"),
        BordereauxSummary::default()
    );
    assert_eq!(read(&k, &format!("outbound/ergo62/bordereaux/{STEM}.pdf")), pdf);
    assert_eq!(k.count("SELECT COUNT(*) FROM mail_queue"), 1);
    assert_eq!(k.count("SELECT COUNT(*) FROM statement_editions"), 1);
    assert_eq!(
        k.count("SELECT COUNT(*) FROM history WHERE kind = 'job' AND interface = 'bordereaux'"),
        4
    );
}

#[test]
fn a_statement_completed_after_its_publication_gets_a_new_edition() {
    let mut k = Kit::new();
    import(&mut k, A);
    run_at(&mut k, "2026-11-02T09:00:00Z");
    let first: Vec<Vec<u8>> = ["pdf", "xml", "csv"]
        .iter()
        .map(|e| read(&k, &format!("outbound/ergo62/bordereaux/{STEM}.{e}")))
        .collect();
    import(&mut k, &format!("{A}{B}"));
    let s = run_at(&mut k, "2026-11-02T09:30:00Z");
    assert_eq!(s.published, 1);
    assert_eq!(
        files(&k, "ergo62"),
        [
            format!("{STEM}.2.csv"),
            format!("{STEM}.2.pdf"),
            format!("{STEM}.2.xml"),
            format!("{STEM}.csv"),
            format!("{STEM}.pdf"),
            format!("{STEM}.xml"),
        ]
    );
    for (e, bytes) in ["pdf", "xml", "csv"].iter().zip(&first) {
        assert_eq!(
            &read(&k, &format!("outbound/ergo62/bordereaux/{STEM}.{e}")),
            bytes,
            "{e} unchanged"
        );
    }
    let xml = String::from_utf8(read(&k, &format!("outbound/ergo62/bordereaux/{STEM}.2.xml"))).unwrap();
    assert!(
        xml.contains("edition=\"2\"") && xml.contains("<paiements nombre=\"2\">"),
        "{xml}"
    );
    let keys: Vec<String> = k
        .conn
        .prepare("SELECT dedup_key FROM mail_queue ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(keys.len(), 2);
    assert!(keys[1].ends_with(":2"), "{keys:?}");
    assert_eq!(k.text("SELECT name FROM statements"), STEM);
    // The same file once more: no change, no edition.
    import(&mut k, &format!("{A}{B}"));
    assert_eq!(run_at(&mut k, "2026-11-02T10:00:00Z").published, 0);
}

#[test]
fn a_crash_before_the_record_writes_the_same_bytes_and_never_mails_twice() {
    let mut k = Kit::new();
    import(&mut k, &format!("{A}{B}"));
    run_at(&mut k, "2026-11-02T09:00:00Z");
    let before: Vec<Vec<u8>> = ["pdf", "xml", "csv"]
        .iter()
        .map(|e| read(&k, &format!("outbound/ergo62/bordereaux/{STEM}.{e}")))
        .collect();
    // As if the process died after writing the files, before the record.
    k.conn.execute("DELETE FROM statement_editions", []).unwrap();
    k.conn
        .execute(
            "UPDATE statements SET published_revision = 0, published_at = NULL, name = NULL",
            [],
        )
        .unwrap();
    let s = run_at(&mut k, "2026-11-03T09:00:00Z");
    assert_eq!(s, BordereauxSummary { published: 1, mails: 0 });
    for (e, bytes) in ["pdf", "xml", "csv"].iter().zip(&before) {
        assert_eq!(
            &read(&k, &format!("outbound/ergo62/bordereaux/{STEM}.{e}")),
            bytes,
            "{e}"
        );
    }
    assert_eq!(k.count("SELECT COUNT(*) FROM mail_queue"), 1);
}

#[test]
fn one_convention_code_with_two_caisses_gets_two_names() {
    let mut k = Kit::new();
    let p = "provider;raison-sociale;siret;email;telephone;type;id-cram;code-convention;id-site\n\
             ergo62;Ergo Artois;44306184100047;cabinet@ergo62.example;03 21 00 00 62;ergo;03;62739900;62739901\n";
    k.import(Kind::Providers, "providers.csv", p.as_bytes()).unwrap();
    import(
        &mut k,
        &format!(
            "{A}{}",
            A.replace(";04;", ";03;").replace("FAC-2026-0001", "FAC-2026-0002")
        ),
    );
    assert_eq!(run_at(&mut k, "2026-11-02T09:00:00Z").published, 2);
    let names = files(&k, "ergo62");
    assert!(names.contains(&format!("{STEM}.xml")), "{names:?}");
    assert!(
        names.contains(&"bordereau-03-62739900-P2026-1101.xml".to_string()),
        "{names:?}"
    );
}

#[test]
fn one_failing_statement_does_not_hold_up_the_others() {
    let mut k = Kit::new();
    let other = "Q1;2026-10-30;04;59111100;F9;2600321000002;BLANC;Marc;PPP200;2026-10-01;2026-10-31;1;50\n";
    import(&mut k, &format!("{A}{other}"));
    // ergo62's folder cannot be created: a file stands in its way.
    std::fs::create_dir_all(k.path("outbound")).unwrap();
    std::fs::write(k.path("outbound/ergo62"), b"x").unwrap();
    let e = run(&mut k.conn, &k.cfg, &Clock::Fixed(t("2026-11-02T09:00:00Z"))).unwrap_err();
    assert!(
        format!("{e:#}").contains("1 payment statement(s) not published"),
        "{e:#}"
    );
    assert_eq!(
        files(&k, "ergo59"),
        [
            "bordereau-59111100-Q1.csv",
            "bordereau-59111100-Q1.pdf",
            "bordereau-59111100-Q1.xml"
        ]
    );
    std::fs::remove_file(k.path("outbound/ergo62")).unwrap();
    assert_eq!(run_at(&mut k, "2026-11-02T10:00:00Z").published, 1);
}

#[test]
fn any_reference_and_a_date_to_come_make_safe_names_published_when_due() {
    let mut k = Kit::new();
    // Paid on 5 November, after the import's day: due 7 November 00:00.
    let row = |rf: &str, f: &str| {
        A.replace("P2026-1101;2026-10-30", &format!("{rf};2026-11-05"))
            .replace("FAC-2026-0001", f)
    };
    import(
        &mut k,
        &format!("{}{}", row("VIR/2026.11 A", "F1"), row("VIR.2026.11 A", "F2")),
    );
    assert_eq!(run_at(&mut k, "2026-11-06T23:59:59+01:00").published, 0);
    assert!(files(&k, "ergo62").is_empty());
    assert_eq!(run_at(&mut k, "2026-11-07T00:00:00+01:00").published, 2);
    let names = files(&k, "ergo62");
    let first = "bordereau-62739900-VIR_2026_11_A";
    let second = "bordereau-04-62739900-VIR_2026_11_A";
    for stem in [first, second] {
        for ext in ["csv", "pdf", "xml"] {
            assert!(names.contains(&format!("{stem}.{ext}")), "{stem}.{ext} in {names:?}");
        }
    }
    assert_eq!(names.len(), 6, "{names:?}");
    // The documents show the reference as given.
    let both =
        [first, second].map(|s| String::from_utf8(read(&k, &format!("outbound/ergo62/bordereaux/{s}.xml"))).unwrap());
    assert!(
        both.iter()
            .any(|x| x.contains("<rf-paiement>VIR/2026.11 A</rf-paiement>")),
        "{both:?}"
    );
    assert!(
        both.iter()
            .any(|x| x.contains("<rf-paiement>VIR.2026.11 A</rf-paiement>")),
        "{both:?}"
    );
    assert_eq!(file_part("a/b.c d-é_9"), "a_b_c_d-__9");
}
