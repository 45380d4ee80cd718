//! The orders import: every rule of a row, all or nothing, the upsert and
//! what it may change, listings marked, one mail per provider.

use crate::import::testkit::{Kit, O_HEADER};
use crate::import::{ImportError, Kind};

const A: &str =
    "C04-2026-000123;04;62739900;1541299999000;DUPONT;Jean;12 rue des Lilas 62000 Arras;03 21 00 00 01;PS;2026-09-01\n";
const B: &str =
    "C04-2026-000124;04;62739900;154122A999000;MARTIN;Anne;3 place d'Armes 62000 Arras;03 21 00 00 02;C;15/10/2026\n";

fn errors(r: Result<crate::import::ImportSummary, ImportError>) -> Vec<String> {
    match r {
        Err(ImportError::Invalid { errors, .. }) => errors.iter().map(|e| e.to_string()).collect(),
        other => panic!("expected an invalid file, got {other:?}"),
    }
}

fn mails(k: &Kit) -> Vec<(String, String, String, String)> {
    k.conn
        .prepare("SELECT dedup_key, recipients, subject, body FROM mail_queue ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn new_orders_are_a_faire_with_their_provider_a_listing_a_mail_and_history() {
    let mut k = Kit::new();
    // BOM, CRLF, columns in another order, both date forms.
    let text = "\u{feff}dt-commande;ressources;telephone;adresse;pn-per;nom-per;nir-per;code-convention;id-cram;rf-commande\r\n\
        2026-09-01;PS;03 21 00 00 01;12 rue des Lilas 62000 Arras;Jean;DUPONT;1541299999000;62739900;04;C04-2026-000123\r\n\
        15/10/2026;C;03 21 00 00 02;3 place d'Armes 62000 Arras;Anne;MARTIN;154122A999000;62739900;04;C04-2026-000124\r\n";
    let s = k.import(Kind::Orders, "commandes.csv", text.as_bytes()).unwrap();
    assert_eq!(s.to_string(), "orders: 2 rows applied (2 new, 0 updated)");
    let o = crate::habitat::Order::load(&k.conn, "C04-2026-000124")
        .unwrap()
        .unwrap();
    assert_eq!(o.provider, "ergo62");
    assert_eq!(o.state, crate::habitat::OrderState::AFaire);
    assert_eq!(o.dt_commande, "2026-10-15");
    assert_eq!(o.nir_per, "154122A999000");
    assert_eq!((o.ressources.as_str(), o.relance_at, o.closed_at), ("C", None, None));
    assert_eq!(k.listing("ergo62"), (1, 0));

    let m = mails(&k);
    assert_eq!(m.len(), 1, "{m:?}");
    let (key, to, subject, body) = &m[0];
    assert!(key.starts_with("orders:ergo62:"), "{key}");
    assert_eq!(to, "alice@ergo62.example");
    assert_eq!(subject, "PPAS : 2 nouvelles commandes d'intervention");
    assert!(
        body.contains("  - C04-2026-000123 du 01/09/2026 (caisse 04, convention 62739900)"),
        "{body}"
    );
    assert!(body.contains("C04-2026-000124 du 15/10/2026"), "{body}");
    assert!(body.contains("/out/commandes.csv"), "{body}");
    assert!(
        !body.contains("1541299999000") && !body.contains("DUPONT") && !body.contains("Lilas"),
        "no person in the mail: {body}"
    );

    let (app, iface, prov, conv, comment): (String, String, String, String, String) = k
        .conn
        .query_row(
            "SELECT application, interface, provider, convention, comment FROM history
             WHERE kind = 'import' ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(
        (app.as_str(), iface.as_str(), prov.as_str(), conv.as_str()),
        ("habitat", "referentiel", "ergo62", "62739900")
    );
    assert!(
        comment.contains("import orders commandes.csv") && comment.contains("2 new"),
        "{comment}"
    );
}

#[test]
fn every_bad_row_is_named_and_nothing_applied() {
    let mut k = Kit::new();
    let text = format!(
        "{O_HEADER}{A}\
         ;04;62739900;1541299999000;DUPONT;Jean;1 rue;03 21 00 00 01;PS;2026-09-01\n\
         C04/1;99;62739900;1541299999000;DUPONT;Jean;1 rue;03 21 00 00 01;PS;2026-09-01\n\
         C04-3;04;00000000;1541299999000;DUPONT;Jean;1 rue;03 21 00 00 01;PS;2026-09-01\n\
         C04-4;03;21999000;1541299999000;DUPONT;Jean;1 rue;03 21 00 00 01;PS;2026-09-01\n\
         C04-5;04;62739900;15412999990;;;;0321000001;ps;2026-02-30\n\
         C04-6;04;62739900;154123A999000;DUPONT;Jean;1 rue;03 21 00 00 01;S;2026-11-03\n\
         C04-7;04;62739900;1541299999000;DUPONT;Jean;1 rue;03 21 00 00 01;PS;2026/09/01\n\
         C04-2026-000123;04;62739900;1541299999000;DUPONT;Jean;1 rue;03 21 00 00 01;PS;2026-09-01\n\
         C04-9;04;62739900;1541299999000;DUPONT;Jean;1 rue\n\
         -C04;04;62739900;1541299999000;DUPONT;Jean;1 rue;03 21 00 00 01;PS;2026-09-01\n"
    );
    let errs = errors(k.import(Kind::Orders, "commandes.csv", text.as_bytes()));
    let expect = [
        "line 3: column rf-commande: must not be empty",
        "line 4: column rf-commande: \"C04/1\" is not an order reference",
        "line 4: column id-cram: \"99\" is not a known caisse id-cram",
        "line 5: column code-convention: 00000000 is not a validated convention of caisse 04",
        "line 6: column code-convention: convention 21999000 of caisse 03 is held by saad21, a home-care provider (type saad)",
        "line 7: column nir-per: must be 13 characters",
        "line 7: column nom-per: must not be empty",
        "line 7: column pn-per: must not be empty",
        "line 7: column adresse: must not be empty",
        "line 7: column telephone: \"0321000001\" must be written nn nn nn nn nn",
        "line 7: column ressources: \"ps\" must be PS (personne seule) or C (couple)",
        "line 7: column dt-commande: \"2026-02-30\" is not a real date",
        "line 8: column nir-per: must be 13 characters",
        "line 8: column ressources: \"S\" must be PS",
        "line 8: column dt-commande: 2026-11-03 is after today (2026-11-02)",
        "line 9: column dt-commande: \"2026/09/01\" is not a date",
        "line 10: same rf-commande as line 2",
        "line 11: has 7 cells, the header has 10",
        "line 12: column rf-commande: \"-C04\" is not an order reference",
    ];
    for e in expect {
        assert!(errs.iter().any(|m| m.starts_with(e)), "missing {e:?} in {errs:#?}");
    }
    assert_eq!(errs.len(), expect.len(), "{errs:#?}");
    assert!(
        errs.iter().all(|m| !m.contains("1541299999") && !m.contains("DUPONT")),
        "no NIR nor name: {errs:#?}"
    );
    assert_eq!(k.count("SELECT COUNT(*) FROM orders"), 0);
    assert_eq!(k.count("SELECT COUNT(*) FROM listings WHERE kind = 'commandes'"), 0);
    assert_eq!(k.count("SELECT COUNT(*) FROM mail_queue"), 0);
    assert_eq!(k.count("SELECT COUNT(*) FROM history WHERE application = 'habitat'"), 0);
}

#[test]
fn today_is_the_paris_day() {
    let mut k = Kit::new();
    // 23:30 UTC on 2 November is already 3 November in Paris.
    let late = chrono::DateTime::parse_from_rfc3339("2026-11-02T23:30:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let row = "C1;04;62739900;1541299999000;DUPONT;Jean;1 rue;03 21 00 00 01;PS;2026-11-03\n";
    let text = format!("{O_HEADER}{row}");
    k.import_at(Kind::Orders, "c.csv", text.as_bytes(), late).unwrap();
    let text = format!("{O_HEADER}{}", row.replace("C1;", "C2;").replace("11-03", "11-04"));
    let errs = errors(k.import_at(Kind::Orders, "c.csv", text.as_bytes(), late));
    assert_eq!(
        errs,
        ["line 2: column dt-commande: 2026-11-04 is after today (2026-11-03): an order cannot be dated in the future"]
    );
}

#[test]
fn the_same_file_again_changes_nothing_and_mails_nobody() {
    let mut k = Kit::new();
    k.orders(&format!("{A}{B}"));
    let before = (k.listing("ergo62"), mails(&k).len());
    let s = k.orders(&format!("{A}{B}"));
    assert_eq!(
        s.to_string(),
        "orders: 2 rows applied (0 new, 2 updated); 2 without change"
    );
    assert_eq!((k.listing("ergo62"), mails(&k).len()), before);
    assert_eq!(
        k.count("SELECT COUNT(*) FROM history WHERE kind = 'import' AND application = 'habitat'"),
        2
    );
}

#[test]
fn an_update_keeps_state_relance_and_attestation() {
    let mut k = Kit::new();
    k.orders(&format!("{A}{B}"));
    k.conn
        .execute(
            "UPDATE orders SET state = 'relance', relance_at = '2026-10-31T06:00:00Z' WHERE rf_commande = 'C04-2026-000123'",
            [],
        )
        .unwrap();
    k.attest("C04-2026-000124", "T", "att1.xml", 1);
    let wanted = k.listing("ergo62").0;
    // New address for A, new name and telephone for B (allowed after an attestation).
    let a2 = A.replace("12 rue des Lilas", "14 rue des Lilas");
    let b2 = B
        .replace("MARTIN;Anne", "MARTIN-DURAND;Anne")
        .replace("03 21 00 00 02", "06 00 00 00 02");
    let s = k.orders(&format!("{a2}{b2}"));
    assert_eq!((s.new, s.updated, s.note), (0, 2, None));
    let a = crate::habitat::Order::load(&k.conn, "C04-2026-000123")
        .unwrap()
        .unwrap();
    assert_eq!(a.state, crate::habitat::OrderState::Relance);
    assert_eq!(a.relance_at.as_deref(), Some("2026-10-31T06:00:00Z"));
    assert!(a.adresse.starts_with("14 rue"));
    let b = crate::habitat::Order::load(&k.conn, "C04-2026-000124")
        .unwrap()
        .unwrap();
    assert_eq!(b.state, crate::habitat::OrderState::Transmise);
    assert_eq!(b.nom_per, "MARTIN-DURAND");
    assert_eq!(k.count("SELECT COUNT(*) FROM attestations"), 1);
    assert_eq!(k.listing("ergo62").0, wanted + 1, "marked once for the import");
    assert_eq!(mails(&k).len(), 1, "no mail for changed orders");
}

#[test]
fn an_open_order_moves_to_another_ergotherapeute_who_is_told() {
    let mut k = Kit::new();
    k.orders(A);
    let moved = A.replace(";62739900;", ";59111100;");
    let s = k.orders(&moved);
    assert_eq!((s.new, s.updated), (0, 1));
    assert_eq!(
        k.text("SELECT provider FROM orders WHERE rf_commande = 'C04-2026-000123'"),
        "ergo59"
    );
    assert_eq!(k.listing("ergo62"), (2, 0), "the old provider's listing loses it");
    assert_eq!(k.listing("ergo59"), (1, 0));
    let m = mails(&k);
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(m[1].0.starts_with("orders:ergo59:"));
    assert_eq!(m[1].1, "cabinet@ergo59.example", "no user: the provider's own address");
    assert_eq!(m[1].2, "PPAS : nouvelle commande d'intervention C04-2026-000123");
}

#[test]
fn what_an_attested_closed_or_documented_order_may_not_change() {
    let mut k = Kit::new();
    let c = "C3;04;62739900;1700321000003;DURAND;Paul;1 rue;03 21 00 00 03;PS;2026-09-02\n";
    let d = "C4;04;62739900;1700321000004;PETIT;Luc;2 rue;03 21 00 00 04;PS;2026-09-02\n";
    let e = "C5;04;62739900;1700321000005;ROUX;Léa;3 rue;03 21 00 00 05;C;2026-09-02\n";
    k.orders(&format!("{A}{B}{c}{d}{e}"));
    k.attest("C04-2026-000123", "T", "att1.xml", 1);
    k.attest("C04-2026-000124", "S", "att1.xml", 2);
    k.conn
        .execute(
            "UPDATE orders SET state = 'clos', closed_at = '2026-10-30T10:00:00Z' WHERE rf_commande = 'C3'",
            [],
        )
        .unwrap();
    k.import(Kind::Evaluations, "C4.pdf", &crate::import::testkit::pdf("c4"))
        .unwrap();
    k.import(Kind::Evaluations, "C5.pdf", &crate::import::testkit::pdf("c5"))
        .unwrap();
    let before: Vec<String> = k
        .conn
        .prepare("SELECT rf_commande || code_convention || nir_per || dt_commande FROM orders ORDER BY 1")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();

    let text = format!(
        "{O_HEADER}{}{}{}{}{}",
        // Attested (T): another convention, another NIR, another date.
        A.replace(";62739900;1541299999000;", ";59111100;1541299999001;")
            .replace("2026-09-01", "2026-09-05"),
        // Attested (S): another caisse's convention of the same provider.
        B.replace(";04;62739900;", ";03;62000003;"),
        // Closed.
        c.replace(";62739900;", ";59111100;"),
        // Documents routed to ergo62: not to another provider...
        d.replace(";62739900;", ";59111100;"),
        // ... but to another convention of ergo62, yes.
        e.replace(";04;62739900;", ";03;62000003;"),
    );
    let errs = errors(k.import(Kind::Orders, "c.csv", text.as_bytes()));
    let expect = [
        "line 2: column code-convention: an attestation was transmitted for order C04-2026-000123 under convention 62739900 of caisse 04",
        "line 2: column nir-per: differs from the NIR of order C04-2026-000123",
        "line 2: column dt-commande: order C04-2026-000123 has a transmitted attestation: its date (2026-09-01) cannot change",
        "line 3: column code-convention: an attestation was transmitted for order C04-2026-000124",
        "line 4: column code-convention: order C3 is closed (clos)",
        "line 5: column code-convention: documents of order C4 were already routed to ergo62",
    ];
    for e in expect {
        assert!(errs.iter().any(|m| m.starts_with(e)), "missing {e:?} in {errs:#?}");
    }
    assert_eq!(errs.len(), expect.len(), "{errs:#?}");
    let after: Vec<String> = k
        .conn
        .prepare("SELECT rf_commande || code_convention || nir_per || dt_commande FROM orders ORDER BY 1")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(before, after, "nothing applied");

    // Only the allowed move: applied.
    let text = format!("{O_HEADER}{}", e.replace(";04;62739900;", ";03;62000003;"));
    k.import(Kind::Orders, "c.csv", text.as_bytes()).unwrap();
    assert_eq!(
        k.text("SELECT code_convention FROM orders WHERE rf_commande = 'C5'"),
        "62000003"
    );
}
