//! The order listing: what each column says for every state, the CSV a
//! French spreadsheet expects, escaped XML, the same bytes for the same state.

use super::*;
use crate::import::testkit::{pdf, Kit};
use crate::import::Kind;

fn read_csv(bytes: &[u8]) -> Vec<Vec<String>> {
    let body = bytes.strip_prefix("\u{FEFF}".as_bytes()).expect("BOM");
    csv::ReaderBuilder::new()
        .delimiter(b';')
        .has_headers(false)
        .from_reader(body)
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

/// Five orders of ergo62, one in each state, and one of ergo59.
fn kit() -> Kit {
    let mut k = Kit::new();
    k.orders(
        "C1;04;62739900;1541299999000;DUPONT;Jean;12 rue des Lilas;03 21 00 00 01;PS;2026-09-01\n\
         C2;04;62739900;154122A999000;MARTIN;Anne;3 place d'Armes;03 21 00 00 02;C;2026-08-15\n\
         C3;03;62000003;1700321000003;DURAND;Paul;1 rue;03 21 00 00 03;PS;2026-07-01\n\
         C4;04;62739900;1700321000004;PETIT;Luc;2 rue;03 21 00 00 04;PS;2026-07-02\n\
         C5;04;62739900;1700321000005;ROUX;Léa;3 rue;03 21 00 00 05;C;2026-07-03\n\
         F1;04;59111100;2600321000002;BLANC;Marc;7 rue;03 20 00 00 07;C;2026-10-01\n",
    );
    // C2: relance; C3: transmise; C4: sans suite; C5: transmise, then clos.
    k.conn
        .execute(
            "UPDATE orders SET state = 'relance', relance_at = '2026-10-14T04:00:00Z' WHERE rf_commande = 'C2'",
            [],
        )
        .unwrap();
    k.attest("C3", "T", "ergo62_att_1.xml", 3);
    k.attest("C4", "S", "ergo62_att_1.xml", 1);
    k.attest("C5", "T", "ergo62_att_2.xml", 1);
    k.import(Kind::Evaluations, "C5.pdf", &pdf("e5")).unwrap();
    k.import(Kind::Evaluations, "C5.pdf", &pdf("e5 bis")).unwrap();
    k.import(Kind::Decisions, "C5.pdf", &pdf("d5")).unwrap();
    k.import(Kind::Evaluations, "C1.pdf", &pdf("e1")).unwrap();
    k
}

#[test]
fn one_row_per_order_with_its_state_dates_attestation_and_documents() {
    let k = kit();
    let r = render(&k.conn, "ergo62").unwrap();
    let rows = read_csv(&r.csv);
    assert_eq!(rows[0], CSV_HEADER.map(String::from));
    assert!(rows.iter().all(|row| row.len() == CSV_HEADER.len()));
    assert_eq!(rows.len(), 6, "header and ergo62's five orders only");
    let col = |name: &str| CSV_HEADER.iter().position(|h| *h == name).unwrap();
    let get = |rf: &str, name: &str| -> String {
        rows.iter().find(|r| r[0] == rf).unwrap_or_else(|| panic!("{rf}"))[col(name)].clone()
    };
    assert_eq!(
        rows[1],
        [
            "C1",
            "04",
            "62739900",
            "1541299999000",
            "DUPONT",
            "Jean",
            "12 rue des Lilas",
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
            "documents/C1.evaluation.pdf",
            ""
        ]
    );
    assert_eq!(get("C2", "NIR"), "154122A999000");
    assert_eq!(get("C2", "État"), "relance");
    assert_eq!(get("C2", "Date de relance"), "14/10/2026");
    assert_eq!(get("C2", "Ressources"), "C");
    assert_eq!(get("C3", "Caisse"), "03");
    assert_eq!(get("C3", "État"), "transmise");
    assert_eq!(get("C3", "Date de transmission"), "20/10/2026");
    assert_eq!(get("C3", "Attestation (fichier)"), "ergo62_att_1.xml");
    assert_eq!(get("C3", "Attestation (n° dans le fichier)"), "3");
    assert_eq!(get("C4", "État"), "sans suite");
    assert_eq!(get("C4", "Motif sans suite"), "REFUS");
    assert_eq!(get("C4", "Date de clôture"), "20/10/2026");
    assert_eq!(get("C5", "État"), "clos");
    assert_eq!(get("C5", "Date de clôture"), "02/11/2026");
    assert_eq!(
        get("C5", "Évaluation"),
        "documents/C5.evaluation.pdf, documents/C5.2.evaluation.pdf"
    );
    assert_eq!(get("C5", "Décision"), "documents/C5.decision.pdf");

    let xml = String::from_utf8(r.xml).unwrap();
    assert!(
        xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<commandes version=\"1\" prestataire=\"ergo62\" nombre=\"5\">\n"),
        "{xml}"
    );
    for needle in [
        "    <dt-commande>2026-09-01</dt-commande>\n    <etat code=\"a_faire\">à faire</etat>\n",
        "<etat code=\"relance\">relance</etat>\n    <dt-relance>2026-10-14</dt-relance>\n",
        "    <dt-transmission>2026-10-20</dt-transmission>\n    <attestation>\n      <fichier>ergo62_att_1.xml</fichier>\n      <numero>3</numero>\n      <statut>T</statut>\n    </attestation>\n",
        "      <statut>S</statut>\n      <motif>REFUS</motif>\n",
        "<etat code=\"clos\">clos</etat>",
        "    <evaluation>documents/C5.evaluation.pdf</evaluation>\n    <evaluation>documents/C5.2.evaluation.pdf</evaluation>\n    <decision>documents/C5.decision.pdf</decision>\n",
        "<adresse>3 place d'Armes</adresse>",
    ] {
        assert!(xml.contains(needle), "missing {needle:?} in\n{xml}");
    }
}

#[test]
fn a_french_spreadsheet_gets_bom_semicolons_crlf_and_no_formula() {
    let mut k = Kit::new();
    k.orders("C1;04;62739900;1541299999000;=HYPERLINK(\"http://x\");+33;@adresse; 03 21 00 00 01;PS;2026-09-01\n");
    // A field the import would refuse, as the database could hold it.
    k.conn
        .execute(
            "UPDATE orders SET adresse = '-1;\"x\"' || char(10) || 'suite' WHERE rf_commande = 'C1'",
            [],
        )
        .unwrap();
    let r = render(&k.conn, "ergo62").unwrap();
    assert!(
        r.csv
            .starts_with(b"\xEF\xBB\xBFR\xC3\xA9f\xC3\xA9rence commande;Caisse;"),
        "{:?}",
        &r.csv[..30]
    );
    let text = String::from_utf8(r.csv.clone()).unwrap();
    assert_eq!(text.matches("\r\n").count(), 2);
    assert_eq!(
        text.matches('\n').count(),
        2,
        "every line ends with CRLF, no line break inside a cell"
    );
    let rows = read_csv(&r.csv);
    assert_eq!(rows[1][4], "'=HYPERLINK(\"http://x\")");
    assert_eq!(rows[1][5], "'+33");
    assert_eq!(rows[1][6], "'-1;\"x\" suite");
}

#[test]
fn xml_escapes_what_the_data_holds() {
    let mut k = Kit::new();
    k.orders("C1;04;62739900;1541299999000;O'NEIL & <FILS>;Zoé \"Zo\";1 rue;03 21 00 00 01;PS;2026-09-01\n");
    k.conn
        .execute(
            "UPDATE orders SET adresse = 'a' || char(1) || 'b' || char(9) || 'c' WHERE rf_commande = 'C1'",
            [],
        )
        .unwrap();
    let xml = String::from_utf8(render(&k.conn, "ergo62").unwrap().xml).unwrap();
    assert!(xml.contains("<nom-per>O'NEIL &amp; &lt;FILS&gt;</nom-per>"), "{xml}");
    assert!(xml.contains("<pn-per>Zoé &quot;Zo&quot;</pn-per>"), "{xml}");
    assert!(xml.contains("<adresse>a\u{FFFD}b&#9;c</adresse>"), "{xml}");
}

#[test]
fn the_same_state_gives_the_same_bytes_and_an_empty_listing_is_valid() {
    let k = kit();
    assert_eq!(render(&k.conn, "ergo62").unwrap(), render(&k.conn, "ergo62").unwrap());
    let r = render(&k.conn, "nobody").unwrap();
    assert_eq!(read_csv(&r.csv), [CSV_HEADER.map(String::from)]);
    assert_eq!(
        String::from_utf8(r.xml).unwrap(),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<commandes version=\"1\" prestataire=\"nobody\" nombre=\"0\">\n</commandes>\n"
    );
}
