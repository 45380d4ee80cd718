//! `import orders`: the listing each ergothérapeute finds in `/out`, every
//! bad row named with nothing applied, the upsert.

use super::*;

const HEADER_FR: [&str; 19] = [
    "Référence commande",
    "Caisse",
    "Convention",
    "NIR",
    "Nom",
    "Prénom",
    "Adresse",
    "Téléphone",
    "Ressources",
    "Date de commande",
    "État",
    "Date de relance",
    "Date de transmission",
    "Attestation (fichier)",
    "Attestation (n° dans le fichier)",
    "Motif sans suite",
    "Date de clôture",
    "Évaluation",
    "Décision",
];

#[test]
fn imported_orders_are_listed_for_each_ergotherapeute_and_mailed() {
    let g = gw();
    // As a spreadsheet saves it: BOM, CRLF, columns in another order.
    let mut csv = String::from("\u{feff}dt-commande;rf-commande;id-cram;code-convention;nir-per;nom-per;pn-per;adresse;telephone;ressources\r\n");
    for r in ORDERS {
        let cells: Vec<&str> = r.split(';').collect();
        csv.push_str(&format!("{};{}\r\n", cells[9], cells[..9].join(";")));
    }
    let out = import_bytes(&g, "orders", "commandes-2026-11.csv", csv.as_bytes());
    expect(&out, 0);
    assert_eq!(text(&out.stdout), "orders: 3 rows applied (3 new, 0 updated)\n");

    // Each ergothérapeute's /out: both forms, its own orders only.
    assert_eq!(
        g.files("outbound/ergo62"),
        ["outbound/ergo62/commandes.csv", "outbound/ergo62/commandes.xml"]
    );
    assert_eq!(
        g.files("outbound/ergo59"),
        ["outbound/ergo59/commandes.csv", "outbound/ergo59/commandes.xml"]
    );
    assert!(!g.exists("outbound/saad21/commandes.csv"));
    let rows = read_listing_csv(&std::fs::read(g.path("outbound/ergo62/commandes.csv")).unwrap());
    assert_eq!(rows[0], HEADER_FR);
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[1],
        [
            "C04-2026-000123",
            "04",
            "62739900",
            "1541299999000",
            "DUPONT",
            "Jean",
            "12 rue des Lilas 62000 Arras",
            "03 21 00 00 01",
            "PS",
            "01/09/2026",
            "à faire",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            ""
        ]
    );
    assert_eq!(rows[2][3], "154122A999000");
    assert_eq!(rows[2][9], "15/10/2026");
    assert_listing_valid(&g, "ergo62");
    assert_listing_valid(&g, "ergo59");
    let xml = g.read("outbound/ergo59/commandes.xml");
    assert!(
        xml.contains("<commandes version=\"1\" prestataire=\"ergo59\" nombre=\"1\">"),
        "{xml}"
    );
    assert!(xml.contains("<dt-commande>2026-10-01</dt-commande>"), "{xml}");

    // One mail per provider naming its new orders (no person in it).
    let mails = sent_mails(&g);
    assert_eq!(mails.len(), 2, "{mails:?}");
    let to62 = mails.iter().find(|m| m.to.contains("cabinet@ergo62.example")).unwrap();
    assert!(to62.raw.contains("C04-2026-000123") && to62.raw.contains("C04-2026-000124"));
    assert!(!to62.raw.contains("DUPONT") && !to62.raw.contains("1541299999000"));
    let to59 = mails.iter().find(|m| m.to.contains("cabinet@ergo59.example")).unwrap();
    assert!(to59.is_about("C04-2026-000200"), "{:?}", to59.subject);

    // The history names the import.
    let h = g.rows(
        "SELECT kind, application, interface, comment FROM history WHERE kind = 'import' AND application = 'habitat'",
    );
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(
        h[0][3].contains("import orders commandes-2026-11.csv: orders: 3 rows applied"),
        "{h:?}"
    );

    // The same file again: nothing changes, no mail, the listing not rewritten.
    let before = std::fs::metadata(g.path("outbound/ergo62/commandes.csv"))
        .unwrap()
        .modified()
        .unwrap();
    let out = import_bytes(&g, "orders", "commandes-2026-11.csv", csv.as_bytes());
    expect(&out, 0);
    assert_eq!(
        text(&out.stdout),
        "orders: 3 rows applied (0 new, 3 updated); 3 without change\n"
    );
    assert_eq!(sent_mails(&g).len(), 2);
    assert_eq!(
        std::fs::metadata(g.path("outbound/ergo62/commandes.csv"))
            .unwrap()
            .modified()
            .unwrap(),
        before
    );
}

#[test]
fn a_bad_orders_file_names_every_row_and_changes_nothing() {
    let g = gw_with_orders();
    let before = g.dump();
    let listing = g.read("outbound/ergo62/commandes.csv");
    let csv = orders_csv(&[
        ORDERS[0],
        "C04-2026-000300;04;62739900;1541299999000;DUPONT;Jean;1 rue;0321000001;X;2026-09-31",
        "C04 2026;99;62739900;15412;;Jean;1 rue;03 21 00 00 01;PS;2026-09-01",
        "C04-2026-000301;03;21999000;1541299999000;DUPONT;Jean;1 rue;03 21 00 00 01;PS;2026-09-01",
        "C04-2026-000302;04;11111111;1541299999000;DUPONT;Jean;;03 21 00 00 01;PS;2026-11-21",
        ORDERS[0],
    ]);
    let out = import_bytes(&g, "orders", "bad.csv", csv.as_bytes());
    expect(&out, 2);
    let err = text(&out.stderr);
    for needle in [
        "orders file bad.csv: ",
        "nothing applied",
        "line 3: column telephone: \"0321000001\" must be written nn nn nn nn nn",
        "line 3: column ressources: \"X\" must be PS (personne seule) or C (couple)",
        "line 3: column dt-commande: \"2026-09-31\" is not a real date",
        "line 4: column rf-commande: \"C04 2026\" is not an order reference",
        "line 4: column id-cram: \"99\" is not a known caisse id-cram",
        "line 4: column nir-per: must be 13 characters",
        "line 4: column nom-per: must not be empty",
        "line 5: column code-convention: convention 21999000 of caisse 03 is held by saad21, a home-care provider",
        "line 6: column code-convention: 11111111 is not a validated convention of caisse 04",
        "line 6: column adresse: must not be empty",
        "line 6: column dt-commande: 2026-11-21 is after today (2026-11-20)",
        "line 7: same rf-commande as line 2",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(!err.contains("line 2:"), "the good row is not named:\n{err}");
    assert!(
        !err.contains("1541299999000") && !err.contains("DUPONT"),
        "no NIR nor name:\n{err}"
    );
    assert_eq!(g.dump(), before, "the database is unchanged");
    assert_eq!(g.read("outbound/ergo62/commandes.csv"), listing);
}

#[test]
fn an_update_keeps_the_state_and_an_attested_order_stays_with_its_convention() {
    let g = gw_with_orders();
    attest(&g, "C04-2026-000124", "T", "ergo62_attestations_1.xml", 2);
    // Corrections: a new address for an open order, a new telephone for the attested one.
    let csv = orders_csv(&[
        &ORDERS[0].replace("12 rue des Lilas", "14 rue des Lilas"),
        &ORDERS[1].replace("03 21 00 00 02", "06 12 34 56 78"),
    ]);
    let out = import_bytes(&g, "orders", "corrections.csv", csv.as_bytes());
    expect(&out, 0);
    assert_eq!(text(&out.stdout), "orders: 2 rows applied (0 new, 2 updated)\n");
    let a = listing_row(&g, "ergo62", "C04-2026-000123");
    assert_eq!(a["Adresse"], "14 rue des Lilas 62000 Arras");
    assert_eq!(a["État"], "à faire");
    let b = listing_row(&g, "ergo62", "C04-2026-000124");
    assert_eq!(b["Téléphone"], "06 12 34 56 78");
    assert_eq!(b["État"], "transmise");
    assert_eq!(b["Date de transmission"], "19/11/2026");
    assert_eq!(b["Attestation (fichier)"], "ergo62_attestations_1.xml");
    assert_eq!(b["Attestation (n° dans le fichier)"], "2");
    assert_listing_valid(&g, "ergo62");

    // The attested order may not move; the open one may, to ergo59, who is told.
    let csv = orders_csv(&[&ORDERS[1].replace(";62739900;", ";59111100;")]);
    let out = import_bytes(&g, "orders", "move.csv", csv.as_bytes());
    expect(&out, 2);
    assert!(
        text(&out.stderr).contains(
            "line 2: column code-convention: an attestation was transmitted for order C04-2026-000124 under convention 62739900 of caisse 04: the order cannot move to another convention"
        ),
        "{}",
        text(&out.stderr)
    );
    let csv = orders_csv(&[&ORDERS[0].replace(";62739900;", ";59111100;")]);
    expect(&import_bytes(&g, "orders", "move.csv", csv.as_bytes()), 0);
    assert_eq!(
        listing_row(&g, "ergo59", "C04-2026-000123")["Adresse"],
        "12 rue des Lilas 62000 Arras"
    );
    let rows = read_listing_csv(&std::fs::read(g.path("outbound/ergo62/commandes.csv")).unwrap());
    assert!(
        rows.iter().all(|r| r[0] != "C04-2026-000123"),
        "gone from ergo62: {rows:?}"
    );
    let mails = sent_mails(&g);
    assert_eq!(mails.iter().filter(|m| m.to.contains("ergo59")).count(), 2, "{mails:?}");
}

#[test]
fn a_running_gateway_holding_the_spool_writes_the_listing_itself() {
    let g = gw();
    let _lock = ppas_gateway::pipeline::SpoolLock::try_acquire(&g.path("state/gateway.lock"))
        .unwrap()
        .expect("lock");
    let out = import_bytes(&g, "orders", "c.csv", orders_csv(ORDERS).as_bytes());
    expect(&out, 0);
    assert_eq!(g.count("SELECT COUNT(*) FROM orders"), 3);
    assert!(!g.exists("outbound/ergo62/commandes.csv"), "left to the lock holder");
    assert_eq!(g.count("SELECT COUNT(*) FROM listings WHERE written < wanted"), 2);
    drop(_lock);
    // The next writer (here `run relances`) publishes what is owed.
    expect(&g.run(&["run", "relances"]), 0);
    assert_listing_valid(&g, "ergo62");
}
