//! Rules of the reference-data imports, on an in-memory database.

use chrono::{TimeZone, Utc};
use rusqlite::Connection;

use super::*;

const P_HEADER: &str = "provider;raison-sociale;siret;email;telephone;type;id-cram;code-convention;id-site\n";
const B_HEADER: &str = "id-cram;id-site;nir-per;nom-per;pn-per;rf-prstpap;dt-debut;dt-fin;mt-total;mt-consomme\n";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()
}

fn run(c: &mut Connection, kind: Kind, text: &str) -> Result<ImportSummary, ImportError> {
    import_file(c, &Config::default(), kind, "test.csv", text.as_bytes(), now())
}

fn errors(r: Result<ImportSummary, ImportError>) -> Vec<String> {
    match r {
        Err(ImportError::Invalid { errors, .. }) => errors.iter().map(|e| e.to_string()).collect(),
        other => panic!("expected an invalid file, got {other:?}"),
    }
}

fn count(c: &Connection, table: &str) -> i64 {
    c.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn providers(c: &mut Connection) {
    let text = format!(
        "{P_HEADER}saad1;SAAD Un;73282932000074;a@saad1.example;03 21 00 00 01;saad;03;C1;21999000\n\
         ergo1;Ergo Un;35600000049837;e@ergo1.example;03 21 00 00 03;ergo;04;62739900;62000001\n"
    );
    run(c, Kind::Providers, &text).unwrap();
}

#[test]
fn providers_applied_with_history_then_upserted() {
    let mut c = crate::store::open_in_memory().unwrap();
    // BOM, CRLF, columns in another order, padded header names.
    let text = "\u{feff} id-site ;provider;type;raison-sociale;siret;email;telephone;id-cram;code-convention\r\n\
        21999000;saad1;saad;SAAD Un;73282932000074;a@saad1.example;03 21 00 00 01;03;C1\r\n\
        21999001;saad1;saad;SAAD Un;73282932000074;a@saad1.example;03 21 00 00 01;04;C2\r\n";
    let s = run(&mut c, Kind::Providers, text).unwrap();
    assert_eq!(
        s,
        ImportSummary {
            kind: Kind::Providers,
            rows: 2,
            new: 2,
            updated: 0,
            note: None,
        }
    );
    assert_eq!(s.to_string(), "providers: 2 rows applied (2 new, 0 updated)");
    assert_eq!(count(&c, "providers"), 1);
    assert_eq!(count(&c, "conventions"), 2);
    let (kind, iface, app, prov, comment): (String, String, String, Option<String>, String) = c
        .query_row(
            "SELECT kind, interface, application, provider, comment FROM history",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(
        (kind.as_str(), iface.as_str(), app.as_str()),
        ("import", "referentiel", "aide-a-domicile")
    );
    assert_eq!(prov.as_deref(), Some("saad1"));
    assert!(comment.contains("test.csv") && comment.contains("2 new"), "{comment}");

    // Same key again: updated in place (new e-mail, new site), plus one new row.
    let text = format!(
        "{P_HEADER}saad1;SAAD Un SARL;73282932000074;b@saad1.example;03 21 00 00 09;saad;03;C1;21999002\n\
         saad1;SAAD Un SARL;73282932000074;b@saad1.example;03 21 00 00 09;saad;05;C5;21999005\n"
    );
    let s = run(&mut c, Kind::Providers, &text).unwrap();
    assert_eq!((s.rows, s.new, s.updated), (2, 1, 1));
    assert_eq!(count(&c, "conventions"), 3);
    let (email, raison): (String, String) = c
        .query_row(
            "SELECT email, raison_sociale FROM providers WHERE provider='saad1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((email.as_str(), raison.as_str()), ("b@saad1.example", "SAAD Un SARL"));
    let site: String = c
        .query_row(
            "SELECT id_site FROM conventions WHERE id_cram='03' AND code_convention='C1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(site, "21999002");
    assert_eq!(count(&c, "history"), 2);
}

#[test]
fn every_bad_row_is_listed_and_nothing_applied() {
    let mut c = crate::store::open_in_memory().unwrap();
    let text = format!(
        "{P_HEADER}saad1;SAAD Un;73282932000074;a@saad1.example;03 21 00 00 01;saad;03;C1;21999000\n\
         saad-2;SAAD Deux;73282932000075;nope;0321000002;home;99;C2;21_999\n\
         saad3;SAAD Trois;44306184100047;c@saad3.example;03 21 00 00 03;saad;03;C3;21999003\n\
         saad4;;44306184100047;c@saad4.example;03 21 00 00 04;ergo;03;C4\n\
         saad5;SAAD Cinq;44306184100047;c@saad5.example;03 21 00 00 05;saad;03;;21999005\n"
    );
    let errs = errors(run(&mut c, Kind::Providers, &text));
    let expect = [
        "line 3: column provider:",
        "line 3: column siret:",
        "line 3: column email:",
        "line 3: column telephone:",
        "line 3: column type:",
        "line 3: column id-cram:",
        "line 3: column id-site:",
        "line 5: has 8 cells, the header has 9",
        "line 6: column code-convention: must not be empty",
    ];
    assert_eq!(errs.len(), expect.len(), "{errs:#?}");
    for e in expect {
        assert!(errs.iter().any(|m| m.starts_with(e)), "missing {e:?} in {errs:#?}");
    }
    assert_eq!(count(&c, "providers"), 0);
    assert_eq!(count(&c, "conventions"), 0);
    assert_eq!(count(&c, "history"), 0);

    // The displayed error names every row, one per line.
    let e = run(&mut c, Kind::Providers, &text).unwrap_err().to_string();
    assert!(
        e.starts_with("providers file test.csv: 9 problems found, nothing applied"),
        "{e}"
    );
    assert!(e.contains("\n  line 6: column code-convention:"), "{e}");
}

#[test]
fn header_problems_name_the_column() {
    let mut c = crate::store::open_in_memory().unwrap();
    let text = "provider;raison-sociale;siret;email;telephone;type;id-cram;code-conv;id-site\n";
    let errs = errors(run(&mut c, Kind::Providers, text));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("line 1: column code-conv: unknown column")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e == "line 1: column code-convention: missing column in the header"),
        "{errs:?}"
    );
}

#[test]
fn provider_rows_must_agree_and_keys_not_repeat() {
    let mut c = crate::store::open_in_memory().unwrap();
    let text = format!(
        "{P_HEADER}saad1;SAAD Un;73282932000074;a@saad1.example;03 21 00 00 01;saad;03;C1;21999000\n\
         saad1;SAAD Un;73282932000074;other@saad1.example;03 21 00 00 01;saad;04;C2;21999000\n\
         saad1;SAAD Un;73282932000074;a@saad1.example;03 21 00 00 01;saad;03;C1;21999000\n"
    );
    let errs = errors(run(&mut c, Kind::Providers, &text));
    assert_eq!(
        errs,
        vec![
            "line 3: column email: differs from line 2 for provider saad1",
            "line 4: same provider, id-cram and code-convention as line 2",
        ]
    );
}

#[test]
fn a_site_and_a_convention_belong_to_one_provider() {
    let mut c = crate::store::open_in_memory().unwrap();
    // In the same file.
    let text = format!(
        "{P_HEADER}saad1;SAAD Un;73282932000074;a@saad1.example;03 21 00 00 01;saad;03;C1;21999000\n\
         saad2;SAAD Deux;44306184100047;b@saad2.example;03 21 00 00 02;saad;03;C2;21999000\n"
    );
    let errs = errors(run(&mut c, Kind::Providers, &text));
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].starts_with("line 2: column id-site: site 21999000 is also given to provider saad2 (line 3)"),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with("line 3: column id-site: site 21999000 is also given to provider saad1 (line 2)"),
        "{errs:?}"
    );

    // Against the database.
    providers(&mut c);
    let text = format!("{P_HEADER}saad2;SAAD Deux;44306184100047;b@saad2.example;03 21 00 00 02;saad;03;C1;21999000\n");
    let errs = errors(run(&mut c, Kind::Providers, &text));
    assert!(
        errs.iter().any(|e| e
            .starts_with("line 2: column id-site: site 21999000 is also given to provider saad1 (already registered)")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e
            .starts_with("line 2: column code-convention: convention C1 of caisse 03 is also given to provider saad1")),
        "{errs:?}"
    );

    // Moving a site between two conventions of the same provider is fine,
    // and so is handing a site over when its convention moves in the same file.
    let text = format!(
        "{P_HEADER}saad1;SAAD Un;73282932000074;a@saad1.example;03 21 00 00 01;saad;03;C1;21999009\n\
         saad2;SAAD Deux;44306184100047;b@saad2.example;03 21 00 00 02;saad;03;C2;21999000\n"
    );
    run(&mut c, Kind::Providers, &text).unwrap();
}

#[test]
fn beneficiaries_checked_against_registered_sites() {
    let mut c = crate::store::open_in_memory().unwrap();
    providers(&mut c);
    let text = format!(
        "{B_HEADER}03;21999000;1541299999000;DUPONT;JEAN;PPP100;2026-01-01;2026-12-31;120,50;10.5\n\
         03;21999000;154122A999000;MARTIN;ANNE;PPP119;01/01/2026;31/12/2026;45;0\n"
    );
    let s = run(&mut c, Kind::Beneficiaries, &text).unwrap();
    assert_eq!(s.to_string(), "beneficiaries: 2 rows applied (2 new, 0 updated)");
    let (total, used, debut): (i64, i64, String) = c
        .query_row(
            "SELECT mt_total, mt_consomme, dt_debut FROM plans WHERE rf_prstpap='PPP119'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((total, used, debut.as_str()), (4500, 0, "2026-01-01"));
    let used: i64 = c
        .query_row("SELECT mt_consomme FROM plans WHERE rf_prstpap='PPP100'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(used, 1050);

    // Upsert on the key: same plan with new amounts; a new start date is a new plan.
    let text = format!(
        "{B_HEADER}03;21999000;1541299999000;DUPONT;JEAN;PPP100;01/01/2026;2026-12-31;130;20\n\
         03;21999000;1541299999000;DUPONT;JEAN;PPP100;2027-01-01;2027-12-31;130;0\n"
    );
    let s = run(&mut c, Kind::Beneficiaries, &text).unwrap();
    assert_eq!((s.new, s.updated), (1, 1));
    assert_eq!(count(&c, "plans"), 3);
    let (total, used): (i64, i64) = c
        .query_row(
            "SELECT mt_total, mt_consomme FROM plans WHERE dt_debut='2026-01-01' AND rf_prstpap='PPP100'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((total, used), (13000, 2000));
}

#[test]
fn bad_beneficiary_rows_are_all_named_without_the_nir() {
    let mut c = crate::store::open_in_memory().unwrap();
    providers(&mut c);
    let text = format!(
        "{B_HEADER}03;21999000;1541299999000;DUPONT;JEAN;PPP100;2026-01-01;2026-12-31;120;10\n\
         03;62000001;1541299999000;DUPONT;JEAN;PPP100;2026-01-01;2026-12-31;120;10\n\
         04;21999000;15412999990;DUPONT;;PPP200;2026-02-30;2026-12-31;12,345;-1\n\
         03;21999000;1541299999000;DUPONT;JEAN;PPP119;2026-12-31;2026-01-01;10;11\n\
         03;21999000;1541299999000;DUPONT;JEAN;PPP100;01/01/2026;2026-06-30;120;10\n"
    );
    let errs = errors(run(&mut c, Kind::Beneficiaries, &text));
    let expect = [
        "line 3: column id-site: site 62000001 has no validated convention with caisse 03",
        "line 4: column id-site: site 21999000 has no validated convention with caisse 04",
        "line 4: column nir-per:",
        "line 4: column pn-per: must not be empty",
        "line 4: column rf-prstpap:",
        "line 4: column dt-debut:",
        "line 4: column mt-total:",
        "line 4: column mt-consomme:",
        "line 5: column dt-fin: 2026-01-01 is before dt-debut 2026-12-31",
        "line 5: column mt-consomme: 11.00 is more than mt-total 10.00",
        "line 6: same id-cram, id-site, nir-per, rf-prstpap and dt-debut as line 2",
    ];
    assert_eq!(errs.len(), expect.len(), "{errs:#?}");
    for e in expect {
        assert!(errs.iter().any(|m| m.starts_with(e)), "missing {e:?} in {errs:#?}");
    }
    assert!(
        errs.iter().all(|m| !m.contains("154129") && !m.contains("DUPONT")),
        "{errs:#?}"
    );
    assert_eq!(count(&c, "plans"), 0);
    assert_eq!(count(&c, "history"), 1, "only the providers import");
}

#[test]
fn every_csv_kind_reads_its_header() {
    let mut c = crate::store::open_in_memory().unwrap();
    for k in [Kind::Payments, Kind::ReportAnomalies] {
        let e = run(&mut c, k, "x\n").unwrap_err();
        assert!(matches!(e, ImportError::Invalid { .. }), "{e}");
        assert!(e.to_string().contains("line 1: column x: unknown column"), "{e}");
    }
    assert_eq!(Kind::parse("report-anomalies"), Some(Kind::ReportAnomalies));
    assert_eq!(Kind::parse("nope"), None);
    assert!("nope"
        .parse::<Kind>()
        .unwrap_err()
        .to_string()
        .contains("providers, beneficiaries"));
}
