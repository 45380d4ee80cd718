//! Unit tests of the attestation reader: one rule or edge case each.

use chrono::NaiveDate;

use super::*;
use crate::anomaly::Code;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()
}

fn opts() -> Options {
    Options {
        max_file_size: 256 << 20,
        today: today(),
    }
}

const DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// An item's fields in the spec's order; `None` leaves the field out.
struct It {
    fields: Vec<(&'static str, Option<String>)>,
}

impl It {
    fn t() -> It {
        It {
            fields: vec![
                ("rf-commande", Some("C04-2026-000123".into())),
                ("id-cram", Some("04".into())),
                ("code-convention", Some("62739900".into())),
                ("nir-per", Some("1541299999000".into())),
                ("statut", Some("T".into())),
                ("dt-visite", Some("2026-10-02".into())),
                ("motif", Some(String::new())),
                ("commentaire", Some(String::new())),
            ],
        }
    }

    fn s(motif: &str) -> It {
        It::t().set("statut", "S").set("motif", motif).without("dt-visite")
    }

    fn set(mut self, name: &str, raw: &str) -> It {
        let f = self.fields.iter_mut().find(|(n, _)| *n == name).unwrap();
        f.1 = Some(raw.to_string());
        self
    }

    fn without(mut self, name: &str) -> It {
        let f = self.fields.iter_mut().find(|(n, _)| *n == name).unwrap();
        f.1 = None;
        self
    }

    fn xml(&self) -> String {
        let mut s = String::from("  <attvisite>\n");
        for (n, v) in &self.fields {
            if let Some(v) = v {
                s.push_str(&format!("    <{n}>{v}</{n}>\n"));
            }
        }
        s.push_str("  </attvisite>\n");
        s
    }
}

fn doc(items: &[It]) -> String {
    let mut s = format!("{DECL}<attvisites>\n");
    for it in items {
        s.push_str(&it.xml());
    }
    s.push_str("</attvisites>\n");
    s
}

fn check(text: &str) -> AttestationVerdict {
    check_bytes("att.xml", text.as_bytes(), &opts())
}

fn codes(v: &AttestationVerdict) -> Vec<&'static str> {
    v.anomalies.iter().map(|a| a.code.as_str()).collect()
}

fn dump(v: &AttestationVerdict) -> String {
    let mut s = format!("{} items={} accepted={}\n", v.verdict.as_str(), v.items, v.accepted);
    for a in &v.anomalies {
        s.push_str(&format!(
            "  {} line={:?} xml_line={:?} field={:?} {}\n",
            a.code, a.line, a.xml_line, a.field, a.message
        ));
    }
    s
}

/// The verdict of one item, which must carry exactly `want` (codes).
fn one(it: It, want: &[&str]) -> AttestationVerdict {
    let v = check(&doc(&[it]));
    assert_eq!(codes(&v), want, "{}", dump(&v));
    v
}

fn accepted(it: It) {
    let v = one(it, &[]);
    assert_eq!((v.verdict, v.items, v.accepted), (Verdict::Accepted, 1, 1));
}

#[test]
fn the_example_of_the_spec_is_accepted() {
    let v = one(It::t(), &[]);
    assert_eq!(v.verdict, Verdict::Accepted);
    let v = check(&doc(&[
        It::t(),
        It::s("REFUS"),
        It::s("AUTRE").set("commentaire", "parti"),
    ]));
    assert_eq!(
        (v.verdict, v.items, v.accepted),
        (Verdict::Accepted, 3, 3),
        "{}",
        dump(&v)
    );
    let json = v.to_json();
    assert_eq!(json["kind"], "attestations");
    assert_eq!(json["lines"], 3);
    assert_eq!(json["accepted_lines"], 3);
    let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["file", "kind", "verdict", "lines", "accepted_lines", "anomalies"]
    );
}

#[test]
fn items_are_handed_with_their_values() {
    struct Seen(Vec<Item>);
    impl ItemRules for Seen {
        fn item(&mut self, item: &Item, out: &mut Vec<Anomaly>) {
            assert!(out.is_empty());
            self.0.push(item.clone());
        }
    }
    let text = doc(&[
        It::t().set("dt-visite", " 02/10/2026\n"),
        It::s(" DECES ").set("commentaire", "a\r\nb&#13;c<![CDATA[\r]]>"),
    ]);
    let mut seen = Seen(Vec::new());
    let v = check_reader("a.xml", std::io::Cursor::new(text.into_bytes()), 10, &opts(), &mut seen);
    assert_eq!(v.verdict, Verdict::Accepted, "{}", dump(&v));
    let [t, s] = &seen.0[..] else { panic!("two items") };
    assert_eq!((t.index, t.xml_line), (1, 3));
    assert_eq!(t.rf_commande, "C04-2026-000123");
    assert_eq!(t.id_cram, "04");
    assert_eq!(t.code_convention, "62739900");
    assert_eq!(t.nir_per, "1541299999000");
    assert_eq!(t.statut, "T");
    assert_eq!(t.dt_visite, NaiveDate::from_ymd_opt(2026, 10, 2));
    assert_eq!(t.dt_visite_raw, " 02/10/2026\n");
    // The first item's date holds a line feed.
    assert_eq!((s.index, s.xml_line), (2, 14));
    assert_eq!(s.statut, "S");
    assert_eq!(s.motif, "DECES");
    assert_eq!(s.dt_visite, None);
    assert_eq!(s.dt_visite_raw, "");
    // Line ends normalised in text and CDATA, not in a reference.
    assert_eq!(s.commentaire, "a\nb\rc\n");
}

// ------------------------------------------------------------------ A04

#[test]
fn both_date_forms_are_read() {
    for (raw, want) in [
        ("2026-10-02", (2026, 10, 2)),
        ("02/10/2026", (2026, 10, 2)),
        ("2024-02-29", (2024, 2, 29)),
        ("29/02/2024", (2024, 2, 29)),
        ("2000-02-29", (2000, 2, 29)),
        ("1900-01-01", (1900, 1, 1)),
        ("25/11/2026", (2026, 11, 25)),
        (" 2026-10-02 ", (2026, 10, 2)),
        ("\n\t02/10/2026\r\n", (2026, 10, 2)),
    ] {
        let d = controls::visit_date(raw);
        assert_eq!(
            d,
            Ok(NaiveDate::from_ymd_opt(want.0, want.1, want.2).unwrap()),
            "{raw:?}"
        );
        accepted(It::t().set("dt-visite", raw));
    }
}

#[test]
fn a_date_that_is_not_real_or_not_in_either_form_is_a04() {
    for raw in [
        "2025-02-29",
        "29/02/2025",
        "1900-02-29",
        "2026-13-01",
        "2026-00-10",
        "2026-04-31",
        "31/04/2026",
        "00/01/2026",
        "2026-1-02",
        "2/10/2026",
        "02-10-2026",
        "2026/10/02",
        "02/10/26",
        "20261002",
        "2026-10-02T10:00:00",
        "2026-10-02Z",
        "1899-12-31",
        "0000-01-01",
        "２026-10-02",
        "2026-10-0２",
        "demain",
        "02 /10/2026",
    ] {
        assert!(controls::visit_date(raw).is_err(), "{raw:?}");
        let v = one(It::t().set("dt-visite", raw), &["A04"]);
        let a = &v.anomalies[0];
        assert_eq!(
            (a.line, a.xml_line, a.field.as_deref()),
            (Some(1), Some(9), Some("dt-visite"))
        );
        assert!(a.message.contains("invalide"), "{}", a.message);
        assert_eq!(v.verdict, Verdict::Rejected);
    }
}

#[test]
fn a_missing_or_empty_visit_date_is_a04() {
    let v = one(It::t().without("dt-visite"), &["A04"]);
    // Absent: the line of its attestation.
    assert_eq!(v.anomalies[0].xml_line, Some(3));
    assert!(v.anomalies[0].message.contains("obligatoire"));
    one(It::t().set("dt-visite", ""), &["A04"]);
    one(It::t().set("dt-visite", "  \n "), &["A04"]);
    let v = check(&doc(&[It::t()]).replace("<dt-visite>2026-10-02</dt-visite>", "<dt-visite/>"));
    assert_eq!(codes(&v), ["A04"], "{}", dump(&v));
}

#[test]
fn a_visit_after_the_day_of_receipt_is_a04() {
    accepted(It::t().set("dt-visite", "2026-11-25"));
    accepted(It::t().set("dt-visite", "25/11/2026"));
    for raw in ["2026-11-26", "26/11/2026", "01/01/2027", "9999-12-31"] {
        let v = one(It::t().set("dt-visite", raw), &["A04"]);
        assert!(v.anomalies[0].message.contains("future"), "{}", v.anomalies[0].message);
    }
}

#[test]
fn a_sans_suite_needs_no_date_and_its_date_is_not_judged() {
    accepted(It::s("REFUS"));
    accepted(It::s("REFUS").set("dt-visite", "n'importe quoi"));
    // A T ignores the motif.
    accepted(It::t().set("motif", "PAS UN MOTIF"));
}

// ------------------------------------------------------------------ A05

#[test]
fn every_motif_of_the_list_is_accepted() {
    for m in MOTIFS {
        let it = It::s(m).set("commentaire", "précision");
        accepted(it);
    }
    accepted(It::s("  INJOIGNABLE\n"));
}

#[test]
fn a_missing_or_unknown_motif_is_a05() {
    let v = one(It::s("REFUS").without("motif"), &["A05"]);
    assert_eq!(v.anomalies[0].field.as_deref(), Some("motif"));
    assert_eq!(v.anomalies[0].xml_line, Some(3));
    one(It::s(""), &["A05"]);
    one(It::s("   "), &["A05"]);
    for m in [
        "refus",
        "Refus",
        "REFUSE",
        "DÉCÈS",
        "DECES;AUTRE",
        "R E F U S",
        "AUTRES",
    ] {
        let v = one(It::s(m), &["A05"]);
        assert!(v.anomalies[0].message.contains("inconnu"), "{}", v.anomalies[0].message);
        assert_eq!(v.anomalies[0].xml_line, Some(9));
    }
}

#[test]
fn motif_autre_needs_a_comment() {
    accepted(It::s("AUTRE").set("commentaire", "déménagement chez sa fille"));
    for it in [
        It::s("AUTRE"),
        It::s("AUTRE").without("commentaire"),
        It::s("AUTRE").set("commentaire", " \n\t "),
        It::s("AUTRE").set("commentaire", "&#160;"),
    ] {
        let v = one(it, &["A05"]);
        assert_eq!(v.anomalies[0].field.as_deref(), Some("commentaire"));
        assert!(v.anomalies[0].message.contains("AUTRE"));
    }
}

// ------------------------------------------------------------------ A06

#[test]
fn the_euro_sign_is_a06_in_every_encoding() {
    one(It::t().set("commentaire", "coût 100 €"), &["A06"]);
    one(It::t().set("commentaire", "coût 100 &#8364;"), &["A06"]);
    one(It::t().set("commentaire", "&#x20AC;"), &["A06"]);
    one(It::s("AUTRE").set("commentaire", "<![CDATA[€]]>"), &["A06"]);
    let encoded = |decl: &str, euro: u8| -> AttestationVerdict {
        let text = doc(&[It::t().set("commentaire", "co\u{FB}t 100 EURO")]).replacen(DECL, decl, 1);
        let mut bytes: Vec<u8> = text.chars().map(|c| c as u32 as u8).collect();
        let at = bytes.windows(4).position(|w| w == b"EURO").unwrap();
        bytes.splice(at..at + 4, [euro]);
        check_bytes("a.xml", &bytes, &opts())
    };
    let v = encoded("<?xml version=\"1.0\" encoding=\"windows-1252\"?>\n", 0x80);
    assert_eq!(codes(&v), ["A06"], "{}", dump(&v));
    let v = encoded("<?xml version='1.0' encoding='ISO-8859-15'?>\n", 0xA4);
    assert_eq!(codes(&v), ["A06"], "{}", dump(&v));
    // In ISO-8859-1, 0xA4 is the currency sign ¤, not the euro.
    let v = encoded("<?xml version='1.0' encoding='ISO-8859-1'?>\n", 0xA4);
    assert_eq!(codes(&v), Vec::<&str>::new(), "{}", dump(&v));
    let utf16: Vec<u8> = "\u{feff}"
        .chars()
        .chain(
            doc(&[It::t().set("commentaire", "5 €")])
                .replacen(DECL, "<?xml version=\"1.0\" encoding=\"UTF-16\"?>", 1)
                .chars(),
        )
        .collect::<String>()
        .encode_utf16()
        .flat_map(|u| u.to_be_bytes())
        .collect();
    let v = check_bytes("a.xml", &utf16, &opts());
    assert_eq!(codes(&v), ["A06"], "{}", dump(&v));
    // The sign elsewhere is not the comment's business.
    accepted(It::t().set("rf-commande", "C€"));
}

#[test]
fn a_comment_of_500_characters_passes_and_501_is_a06() {
    accepted(It::t().set("commentaire", &"x".repeat(500)));
    accepted(It::t().set("commentaire", &"é".repeat(500)));
    accepted(It::t().set("commentaire", &"\u{1F600}".repeat(500)));
    // A CR LF counts as one character (XML line-end normalisation).
    accepted(It::t().set("commentaire", &"a\r\n".repeat(250)));
    accepted(It::t().set("commentaire", &"&amp;".repeat(500)));
    let v = one(It::t().set("commentaire", &"x".repeat(501)), &["A06"]);
    let a = &v.anomalies[0];
    assert!(a.message.contains("501 caractères"), "{}", a.message);
    assert_eq!(
        (a.line, a.xml_line, a.field.as_deref()),
        (Some(1), Some(11), Some("commentaire"))
    );
    one(It::t().set("commentaire", &"é".repeat(501)), &["A06"]);
    one(
        It::t().set("commentaire", &format!("{}<!-- c -->x", "y".repeat(500))),
        &["A06"],
    );
    // Both rules at once: both said.
    one(It::t().set("commentaire", &"€".repeat(501)), &["A06", "A06"]);
}

#[test]
fn a_huge_comment_is_counted_without_being_kept() {
    struct Len(usize);
    impl ItemRules for Len {
        fn item(&mut self, item: &Item, _: &mut Vec<Anomaly>) {
            self.0 = item.commentaire.len();
        }
    }
    let big = "é".repeat(3 << 20);
    let text = doc(&[It::t().set("commentaire", &format!("{big}€"))]);
    let mut len = Len(0);
    let v = check_reader("a.xml", std::io::Cursor::new(text.into_bytes()), 0, &opts(), &mut len);
    assert_eq!(codes(&v), ["A06", "A06"], "{}", dump(&v));
    assert!(v.anomalies[1]
        .message
        .contains(&format!("{} caractères", (3 << 20) + 1)));
    assert!(len.0 <= parse::MAX_VALUE && len.0 > parse::MAX_VALUE - 4, "{}", len.0);
}

// ------------------------------------------------------------------ every problem

#[test]
fn every_problem_is_listed_and_items_are_judged_alone() {
    let v = check(&doc(&[
        It::t(),
        It::t()
            .set("dt-visite", "2027-01-01")
            .set("commentaire", &format!("{}€", "x".repeat(600))),
        It::s("AUTRE"),
        It::s("REFUS"),
    ]));
    assert_eq!(v.verdict, Verdict::Partial, "{}", dump(&v));
    assert_eq!((v.items, v.accepted), (4, 2));
    let got: Vec<(&str, Option<u32>, Option<&str>)> = v
        .anomalies
        .iter()
        .map(|a| (a.code.as_str(), a.line, a.field.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("A04", Some(2), Some("dt-visite")),
            ("A06", Some(2), Some("commentaire")),
            ("A06", Some(2), Some("commentaire")),
            ("A05", Some(3), Some("commentaire")),
        ]
    );
    let v = check(&doc(&[It::s("NON"), It::t().without("dt-visite")]));
    assert_eq!((v.verdict, v.accepted), (Verdict::Rejected, 0), "{}", dump(&v));
}

#[test]
fn the_hook_sees_valid_items_after_the_stateless_controls() {
    struct Orders(Vec<(u32, usize)>);
    impl ItemRules for Orders {
        fn item(&mut self, item: &Item, out: &mut Vec<Anomaly>) {
            self.0.push((item.index, out.len()));
            if item.rf_commande == "INCONNUE" {
                out.push(Anomaly::line(
                    Code::A02,
                    item.index,
                    item.xml_line,
                    "rf-commande",
                    "commande inconnue",
                ));
            }
        }
    }
    let text = doc(&[
        It::t(),
        It::t().set("rf-commande", "INCONNUE"),
        It::t().set("dt-visite", "hier"),
        It::t().set("statut", "X"),
        It::t().without("id-cram"),
        It::t(),
        It::t(),
    ])
    .replacen("<attvisite>", "<attvisite id=\"6\">", 6)
    .replacen("<attvisite id=\"6\">", "<attvisite>", 5)
    .replace(
        "<motif></motif>\n    <commentaire></commentaire>\n  </attvisite>\n</attvisites>",
        "<motif xml:lang=\"fr\"></motif>\n    <commentaire></commentaire>\n  </attvisite>\n</attvisites>",
    );
    let mut hook = Orders(Vec::new());
    let v = check_reader("a.xml", std::io::Cursor::new(text.into_bytes()), 0, &opts(), &mut hook);
    // Items 4 (bad statut), 5 (missing field), 6 (attribute on attvisite)
    // and 7 (attribute on a field) never reach the hook.
    assert_eq!(hook.0, [(1, 0), (2, 0), (3, 1)]);
    assert_eq!(codes(&v), ["A01", "A01", "A01", "A01", "A02", "A04"], "{}", dump(&v));
    assert_eq!((v.verdict, v.accepted), (Verdict::Rejected, 0));
    // Without the A01s: partial.
    let text = doc(&[It::t(), It::t().set("rf-commande", "INCONNUE")]);
    let mut hook = Orders(Vec::new());
    let v = check_reader("a.xml", std::io::Cursor::new(text.into_bytes()), 0, &opts(), &mut hook);
    assert_eq!(
        (v.verdict, v.items, v.accepted),
        (Verdict::Partial, 2, 1),
        "{}",
        dump(&v)
    );
}

// ------------------------------------------------------------------ A01

fn a01(text: &str) -> AttestationVerdict {
    let v = check(text);
    assert!(codes(&v).contains(&"A01"), "{}", dump(&v));
    assert!(v.anomalies.iter().all(|a| a.code != Code::A01 || a.line.is_none()));
    assert_eq!((v.verdict, v.accepted), (Verdict::Rejected, 0));
    v
}

fn a01_at(text: &str, want: &[(u64, &str)]) {
    let v = a01(text);
    let got: Vec<(u64, &str)> = v
        .anomalies
        .iter()
        .filter(|a| a.code == Code::A01)
        .map(|a| (a.xml_line.unwrap_or(0), a.field.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(got, want, "{}", dump(&v));
}

#[test]
fn every_schema_violation_is_listed_with_its_line_and_element() {
    let text = doc(&[
        It::t().without("code-convention"),
        It::t(),
        It::t().set("statut", "X").set("rf-commande", &"C".repeat(31)),
    ]);
    a01_at(&text, &[(6, "code-convention"), (23, "rf-commande"), (27, "statut")]);
    // Out of order, twice, unknown: the reader resynchronises.
    let text = doc(&[It::t()])
        .replace(
            "<statut>T</statut>",
            "<motif/><statut>T</statut><statut>T</statut><ville>Lyon</ville>",
        )
        .replace("</attvisite>", "</attvisite>\n<inconnu/>\n<attvisite/>");
    let v = a01(&text);
    let msgs: Vec<&str> = v.anomalies.iter().map(|a| a.message.as_str()).collect();
    assert_eq!(v.anomalies.len(), 12, "{}", dump(&v));
    // <motif/> before <statut>: statut is missing there, then every field
    // before motif is out of order until the reader is past it.
    assert!(msgs[0].contains("<statut> manquant"), "{msgs:?}");
    assert!(msgs[1].contains("<statut> en double ou hors de l'ordre"), "{msgs:?}");
    assert!(msgs[2].contains("<statut> en double ou hors de l'ordre"), "{msgs:?}");
    assert!(msgs[3].contains("<ville> inconnu dans <attvisite> n° 1"), "{msgs:?}");
    assert!(msgs[4].contains("<dt-visite> en double ou hors de l'ordre"), "{msgs:?}");
    assert!(msgs[5].contains("<motif> en double ou hors de l'ordre"), "{msgs:?}");
    assert!(msgs[6].contains("<inconnu> inconnu dans <attvisites>"), "{msgs:?}");
    assert!(
        msgs[7..].iter().all(|m| m.contains("manquant dans <attvisite> n° 2")),
        "{msgs:?}"
    );
    assert_eq!(v.items, 2);
}

#[test]
fn identifiers_have_their_maximum_length() {
    for (name, max) in [
        ("rf-commande", 30),
        ("id-cram", 2),
        ("code-convention", 20),
        ("nir-per", 15),
    ] {
        accepted(It::t().set(name, &"9".repeat(max)));
        accepted(It::t().set(name, ""));
        let v = one(It::t().set(name, &"é".repeat(max + 1)), &["A01"]);
        assert_eq!(v.anomalies[0].field.as_deref(), Some(name));
    }
    // The NIR is never repeated in a message.
    let v = one(It::t().set("nir-per", "1541299999000123"), &["A01"]);
    assert!(
        !v.anomalies[0].message.contains("1541299999000"),
        "{}",
        v.anomalies[0].message
    );
}

#[test]
fn statut_is_exactly_t_or_s() {
    for bad in ["", " T", "T ", "t", "s", "TS", "X", "&#32;S"] {
        one(It::t().set("statut", bad), &["A01"]);
    }
    accepted(It::t().set("statut", "&#84;"));
    accepted(It::t().set("statut", "<![CDATA[T]]>"));
    accepted(It::t().set("statut", "<!-- fait -->T<?app x?>"));
}

#[test]
fn comments_pis_and_cdata_stand_where_xml_allows_them() {
    let text = doc(&[It::t().set("commentaire", "<![CDATA[<b>gras</b> & co]]>")])
        .replace(
            "<attvisites>\n",
            "<!-- en-tête -->\n<?app v1?>\n<attvisites>\n<!-- une -->\n",
        )
        .replace("</attvisites>\n", "</attvisites>\n<!-- fin -->\n<?fin?>\n");
    let v = check(&text);
    assert_eq!(v.verdict, Verdict::Accepted, "{}", dump(&v));
    // CDATA between elements: refused, as libxml2 does.
    a01_at(
        &doc(&[It::t()]).replace("<statut>", "<![CDATA[ ]]><statut>"),
        &[(8, "attvisite")],
    );
    a01_at(
        &doc(&[It::t()]).replace("<attvisite>", "x<attvisite>"),
        &[(3, "attvisites")],
    );
    a01(&doc(&[It::t()]).replace("<statut>", "texte<statut>"));
    a01(&doc(&[It::t()]).replace("<motif></motif>", "<motif><b/></motif>"));
}

#[test]
fn document_shape_and_namespaces() {
    a01_at(&format!("{DECL}<attvisites>\n</attvisites>\n"), &[(3, "attvisite")]);
    a01_at(&format!("{DECL}<attvisites/>"), &[(2, "attvisite")]);
    a01(&doc(&[It::t()]).replace("attvisites>", "factbord>"));
    a01(&doc(&[It::t()]).replace("<attvisites>", "<attvisites xmlns=\"urn:x\">"));
    a01(&doc(&[It::t()])
        .replace("<attvisites>", "<p:attvisites xmlns:p=\"urn:x\">")
        .replace("</attvisites>", "</p:attvisites>"));
    a01(&doc(&[It::t()]).replace("<statut>", "<statut a=\"1\">"));
    a01(&doc(&[It::t()])
        .replace("<statut>", "<x:statut xmlns:x=\"urn:x\">")
        .replace("</statut>", "</x:statut>"));
    a01(&doc(&[It::t()])
        .replace("<statut>", "<q:statut>")
        .replace("</statut>", "</q:statut>"));
    a01(&doc(&[It::t()])
        .replace("<rf-commande>", "<attvisite>")
        .replace("</rf-commande>", "</attvisite>"));
    let ok = doc(&[It::t()]).replace(
        "<attvisites>",
        "<attvisites xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:noNamespaceSchemaLocation=\"attvisites.xsd\">",
    );
    assert_eq!(check(&ok).verdict, Verdict::Accepted);
    let ok = doc(&[It::t()]).replace("<attvisites>", "<attvisites xmlns=\"\">");
    assert_eq!(check(&ok).verdict, Verdict::Accepted);
    // Elements outside an attvisite.
    a01(&doc(&[It::t()]).replace("<attvisite>\n", "<statut>T</statut><attvisite>\n"));
}

#[test]
fn not_well_formed_files_stop_at_the_error() {
    let text = doc(&[It::t(), It::t()]).replace("<id-cram>04</id-cram>\n    <code", "<id-cram>04</id-kram>\n    <code");
    let v = a01(&text);
    assert_eq!(v.anomalies.len(), 1, "{}", dump(&v));
    assert_eq!(v.anomalies[0].xml_line, Some(5));
    let v = a01(&doc(&[It::t()])[..120]);
    assert!(v.anomalies[0].message.contains("fin de fichier"), "{}", dump(&v));
    for bad in [
        "",
        "   ",
        "pas du XML",
        "\u{FEFF}",
        "<attvisites>",
        "<attvisites></attvisites><attvisites/>",
        "<?xml version=\"1.0\" encoding=\"KOI8-R\"?><attvisites/>",
    ] {
        let v = a01(bad);
        assert_eq!(v.items, 0);
    }
    let v = a01(&doc(&[It::t()])
        .replace("Lyon", "x")
        .replace("62739900", "6273\u{1}9900"));
    assert_eq!(v.anomalies[0].xml_line, Some(6));
    let mut bytes = doc(&[It::t()]).into_bytes();
    bytes.insert(150, 0xFF);
    let v = check_bytes("a.xml", &bytes, &opts());
    assert_eq!(codes(&v), ["A01"], "{}", dump(&v));
}

#[test]
fn hostile_xml_is_refused_without_a_panic() {
    // DOCTYPE and entities.
    let v = a01(&doc(&[It::t()]).replace(
        "<attvisites>",
        "<!DOCTYPE attvisites [<!ENTITY e \"x\">]>\n<attvisites>",
    ));
    assert!(v.anomalies[0].message.contains("DOCTYPE"));
    a01(&doc(&[It::t().set("commentaire", "&e;")]));
    a01(&doc(&[It::t().set("commentaire", "&#0;")]));
    // Billion laughs never gets a chance.
    let lol = format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [<!ENTITY lol \"lol\">{}]>\n<attvisites>&lol9;</attvisites>",
        (1..10)
            .map(|i| format!("<!ENTITY lol{i} \"{}\">", format!("&lol{};", i - 1).repeat(10)))
            .collect::<String>()
    );
    a01(&lol);
    // Deep nesting.
    let deep = format!(
        "<attvisites><attvisite>{}{}</attvisite></attvisites>",
        "<a>".repeat(10_000),
        "</a>".repeat(10_000)
    );
    let v = a01(&deep);
    assert!(
        v.anomalies.iter().any(|a| a.message.contains("imbrication")),
        "{}",
        dump(&v)
    );
    // A huge tag.
    let huge = format!("<attvisites><attvisite a=\"{}\"/></attvisites>", "x".repeat(20_000_000));
    let v = a01(&huge);
    assert!(v.anomalies[0].message.contains("octets"), "{}", dump(&v));
    // Many attributes, many elements.
    let attrs: String = (0..20_000).map(|i| format!(" a{i}=\"1\"")).collect();
    a01(&format!("<attvisites{attrs}/>"));
    let many = format!("<attvisites>{}</attvisites>", "<x/>".repeat(50_000));
    let v = a01(&many);
    assert_eq!(v.anomalies.len(), 10_001, "every violation up to the cap, then a count");
}

#[test]
fn a_file_larger_than_the_limit_is_refused_unread() {
    let text = doc(&[It::t()]);
    let o = Options {
        max_file_size: 100,
        today: today(),
    };
    let v = check_bytes("a.xml", text.as_bytes(), &o);
    assert_eq!(codes(&v), ["A01"]);
    assert_eq!((v.items, v.accepted, v.verdict), (0, 0, Verdict::Rejected));
    assert!(v.anomalies[0].message.contains("maximum"));
}

#[test]
fn many_attestations_stream_through() {
    let mut text = format!("{DECL}<attvisites>\n");
    let item = It::t().xml();
    for _ in 0..20_000 {
        text.push_str(&item);
    }
    text.push_str("</attvisites>\n");
    let v = check(&text);
    assert_eq!((v.verdict, v.items, v.accepted), (Verdict::Accepted, 20_000, 20_000));
}
