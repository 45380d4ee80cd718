//! F02: FactficTrans.xsd, facet by facet (maxLength, totalDigits,
//! fractionDigits, enumeration, xs:date and xs:decimal lexical spaces) and
//! structure (order, missing, unknown, text in element-only content).
//! Every violation is reported with its element and its XML line.

use super::*;

const NAME: &str = "03_150521_100_21999000.xml";

/// Asserts an F02 at this xml line (field left open: for a structure error
/// the spec does not say whether the element or its parent is named).
#[track_caller]
fn f02_at(v: &FileVerdict, lines: &[u64]) {
    assert!(
        v.anomalies
            .iter()
            .any(|a| a.code.as_str() == "F02" && a.line.is_none() && a.xml_line.is_some_and(|l| lines.contains(&l))),
        "expected F02 at one of xml lines {lines:?}\n{}",
        dump(v)
    );
    expect_rejected(v);
}

#[track_caller]
fn no_f01_f02(v: &FileVerdict, ctx: &str) {
    assert!(!f01_or_f02(v), "{ctx}: schema-valid\n{}", dump(v));
}

fn edit(from: &str, to: &str) -> (FileVerdict, String) {
    let t = Bill::example().render();
    assert!(t.contains(from), "{from:?}");
    let t = t.replacen(from, to, 1);
    (check_named(NAME, t.as_bytes()), t)
}

// ---------------------------------------------------------------- maxLength

const HEADER_MAX: [(&str, usize); 5] = [
    ("rf-borfact", 54),
    ("log-fact", 54),
    ("id-cram", 2),
    ("id-site", 15),
    ("rf-prstpap", 6),
];
const LINE_MAX: [(&str, usize); 5] = [
    ("nir-per", 15),
    ("nom-per", 54),
    ("pn-per", 20),
    ("rf-prstpap", 6),
    ("id-prest", 15),
];

#[test]
fn max_length_of_header_fields_counts_characters() {
    for (field, max) in HEADER_MAX {
        for ch in ["9", "é", "€", "\u{1F600}"] {
            let mut b = Bill::example();
            b.header(field, &ch.repeat(max));
            no_f01_f02(&b.check(), &format!("{field} of {max} x {ch}"));
            b.header(field, &ch.repeat(max + 1));
            let t = b.render();
            let v = check_named(NAME, t.as_bytes());
            has_at(&v, "F02", None, Some(field), line_of(&t, &format!("<{field}>"), 1));
            expect_rejected(&v);
        }
    }
}

#[test]
fn max_length_of_line_fields_counts_characters() {
    for (field, max) in LINE_MAX {
        for ch in ["1", "é", "\u{1F600}"] {
            let (v, _) = with_line_field(2, field, &ch.repeat(max));
            no_f01_f02(&v, &format!("{field} of {max} x {ch}"));
            let (v, at) = with_line_field(2, field, &ch.repeat(max + 1));
            has_at(&v, "F02", None, Some(field), at);
            expect_rejected(&v);
        }
    }
}

#[test]
fn nom_per_54_accented_characters_is_valid_55_is_not() {
    let (v, _) = with_line_field(1, "nom-per", &"é".repeat(54));
    expect_accepted(&v, 2);
    let (v, _) = with_line_field(
        1,
        "nom-per",
        &"ÉÈÊËÀÂÄÎÏÔÖÙÛÜŸÇŒÆ".repeat(3)[..].chars().take(54).collect::<String>(),
    );
    expect_accepted(&v, 2);
    let (v, at) = with_line_field(1, "nom-per", &"é".repeat(55));
    expect_exact(&v, &[("F02", None, Some("nom-per"))]);
    has_at(&v, "F02", None, Some("nom-per"), at);
    expect_rejected(&v);
}

#[test]
fn max_length_counts_the_value_not_the_markup() {
    // 54 characters once references are resolved and comments dropped.
    let raw = format!(
        "{}&amp;&#233;&#x1F600;<!-- {} -->",
        "a".repeat(51),
        "long comment ".repeat(10)
    );
    let (v, _) = with_line_field(1, "nom-per", &raw);
    expect_accepted(&v, 2);
    let raw = format!("<![CDATA[{}<&>]]>{}", "a".repeat(20), "b".repeat(31));
    let (v, _) = with_line_field(1, "nom-per", &raw);
    expect_accepted(&v, 2);
    let raw = format!("{}&amp;&amp;", "a".repeat(53));
    let (v, at) = with_line_field(1, "nom-per", &raw);
    has_at(&v, "F02", None, Some("nom-per"), at);
    // Strings keep their blanks: they count.
    let (v, at) = with_line_field(1, "pn-per", &format!(" {} ", "x".repeat(19)));
    has_at(&v, "F02", None, Some("pn-per"), at);
}

// ---------------------------------------------------------------- decimals

#[test]
fn decimal_lexical_forms_that_are_valid() {
    for raw in [
        "14.250",
        "+14.25",
        ".5",
        "14.",
        "0014.25",
        "14.2500000000",
        " 14.25 ",
        "\n14.25\t",
        "0000000000014.25",
    ] {
        let (v, _) = with_line_field(1, "nb-quant", raw);
        assert!(v.anomalies.is_empty(), "nb-quant={raw:?}\n{}", dump(&v));
        expect_accepted(&v, 2);
    }
}

#[test]
fn decimal_lexical_forms_that_are_not() {
    for raw in [
        "1e3",
        "1E3",
        "14,25",
        "1_000",
        "INF",
        "NaN",
        ".",
        "+",
        "-",
        "+-1",
        "1 0",
        "0x10",
        "١٤",
        "１４",
        "14.25.1",
        "\u{A0}14.25",
        "14h",
        "--1",
    ] {
        let (v, at) = with_line_field(1, "nb-quant", raw);
        has_at(&v, "F02", None, Some("nb-quant"), at);
        lacks(&v, "F01");
        expect_rejected(&v);
    }
}

#[test]
fn total_digits_eleven() {
    for field in ["nb-quant", "mt-tu", "mt-total"] {
        for raw in ["123456789012", "1234567890.25", "-123456789012", "123456789012.0"] {
            let (v, at) = with_line_field(1, field, raw);
            has_at(&v, "F02", None, Some(field), at);
            expect_rejected(&v);
        }
        for raw in [
            "12345678901",
            "123456789.25",
            "000000000012345678901",
            "12345678901.000",
        ] {
            // Line 2 at 0 keeps the footer sum within 11 digits too.
            let mut b = Bill::example();
            b.set(1, field, raw).set(2, field, "0");
            no_f01_f02(&b.check(), &format!("{field}={raw}"));
        }
    }
}

#[test]
fn fraction_digits_two() {
    for field in ["nb-quant", "mt-tu", "mt-total"] {
        for raw in ["14.251", "0.001", "1.005", "-0.125"] {
            let (v, at) = with_line_field(2, field, raw);
            has_at(&v, "F02", None, Some(field), at);
            expect_rejected(&v);
        }
        for raw in ["1.000", "0.000000"] {
            let (v, _) = with_line_field(2, field, raw);
            no_f01_f02(&v, &format!("{field}={raw}"));
        }
    }
}

#[test]
fn footer_decimals() {
    for (field, bad, good) in [
        ("nb-ligbor", "1234567890123456", "000000000000000000002"),
        ("mt-totamd", "25.001", "25.000"),
        ("mt-totamd", "123456789012", "+25.0"),
        ("mt-totprest", "0.001", "0.000"),
        ("mt-totprest", "1e0", "-0.00"),
        ("nb-ligbor", "2e0", "2."),
    ] {
        let mut b = Bill::example();
        b.footer(field, bad);
        let t = b.render();
        let v = check_named(NAME, t.as_bytes());
        has_at(&v, "F02", None, Some(field), line_of(&t, &format!("<{field}>"), 1));
        let mut b = Bill::example();
        b.footer(field, good);
        expect_accepted(&b.check(), 2);
    }
    // 15 digits are allowed in nb-ligbor (then F08: not the line count).
    let mut b = Bill::example();
    b.footer("nb-ligbor", "123456789012345");
    expect_exact(&b.check(), &[("F08", None, Some("nb-ligbor"))]);
}

// ---------------------------------------------------------------- enumeration

#[test]
fn bo_regul_enumeration() {
    for raw in ["X", "FF", " F", "F ", "Vrai", "0", "é"] {
        let (v, at) = with_line_field(1, "bo-regul", raw);
        has_at(&v, "F02", None, Some("bo-regul"), at);
        lacks(&v, "L10");
        expect_rejected(&v);
    }
    for raw in ["F", "f", "<![CDATA[F]]>", "&#70;"] {
        let (v, _) = with_line_field(1, "bo-regul", raw);
        expect_accepted(&v, 2);
    }
}

// ---------------------------------------------------------------- structure

#[test]
fn unknown_element() {
    let (v, t) = edit(
        "  <bo-regul>F</bo-regul>\n",
        "  <bo-regul>F</bo-regul>\n  <commentaire>x</commentaire>\n",
    );
    f02_at(&v, &[line_of(&t, "<commentaire>", 1)]);
    assert_eq!(v.lines, 2);
    let (v, t) = edit(" <id-site>", " <siret>1</siret>\n <id-site>");
    f02_at(&v, &[line_of(&t, "<siret>", 1)]);
    let (v, t) = edit("<nom-per>Dupont</nom-per>", "<nom-per><b>Dup</b>ont</nom-per>");
    f02_at(&v, &[line_of(&t, "<b>", 1)]);
    let (v, t) = edit("<nb-ligbor>2</nb-ligbor>", "<NB-LIGBOR>2</NB-LIGBOR>");
    f02_at(&v, &[line_of(&t, "<NB-LIGBOR>", 1)]);
}

#[test]
fn unknown_attribute() {
    for (from, to, needle) in [
        ("<factprest>", "<factprest num=\"1\">", "<factprest num"),
        ("<nb-quant>", "<nb-quant unite=\"h\">", "<nb-quant unite"),
        ("<factbord ", "<factbord version=\"2\" ", "<factbord "),
        ("<factbord ", "<factbord xml:lang=\"fr\" ", "<factbord "),
        ("<factbord ", "<factbord xsi:nil=\"true\" ", "<factbord "),
        ("<factbord ", "<factbord xsi:inconnu=\"1\" ", "<factbord "),
    ] {
        let (v, t) = edit(from, to);
        f02_at(&v, &[line_of(&t, needle, 1)]);
    }
}

#[test]
fn xsi_and_namespace_declarations_on_the_root_are_allowed() {
    let xsi = "http://www.w3.org/2001/XMLSchema-instance";
    for root in [
        "<factbord>".to_string(),
        format!("<factbord xmlns:xsi=\"{xsi}\" xsi:schemaLocation=\"urn:x FactficTrans.xsd\">"),
        format!("<factbord xmlns:i=\"{xsi}\" i:noNamespaceSchemaLocation=\"FactficTrans.xsd\">"),
        format!("<factbord xmlns:xsi=\"{xsi}\" xmlns:ext=\"urn:editeur\" xsi:noNamespaceSchemaLocation=\"autre.xsd\">"),
        format!("<factbord\n  xmlns:xsi='{xsi}'\n  xsi:noNamespaceSchemaLocation='FactficTrans.xsd'\n>"),
    ] {
        let mut b = Bill::example();
        b.root_open = root.clone();
        let v = b.check();
        assert!(v.anomalies.is_empty(), "{root}\n{}", dump(&v));
    }
}

#[test]
fn root_element_name_and_namespace() {
    let (v, _) = edit("<factbord ", "<factbord xmlns=\"urn:cnav:factbord\" ");
    f02_at(&v, &[2]);
    let t = Bill::example().render().replace("factbord", "facture");
    let v = check_named(NAME, t.as_bytes());
    f02_at(&v, &[2]);
    // An attribute in a foreign namespace is not declared either.
    let (v, _) = edit("<factbord ", "<factbord xmlns:e=\"urn:e\" e:v=\"1\" ");
    f02_at(&v, &[2]);
}

#[test]
fn wrong_order() {
    let (v, t) = edit(
        "<mt-tu>1</mt-tu>\n  <mt-total>0</mt-total>",
        "<mt-total>0</mt-total>\n  <mt-tu>1</mt-tu>",
    );
    f02_at(&v, &[line_of(&t, "<mt-total>", 1)]);
    let (v, t) = edit(
        " <id-cram>03</id-cram>\n <id-site>21999000</id-site>",
        " <id-site>21999000</id-site>\n <id-cram>03</id-cram>",
    );
    f02_at(&v, &[line_of(&t, "<id-site>", 1)]);
    // A line after the footer has begun.
    let (v, t) = edit(" <mt-totamd>", " <factprest/>\n <mt-totamd>");
    f02_at(&v, &[line_of(&t, "<factprest/>", 1)]);
}

#[test]
fn missing_element() {
    let t0 = Bill::example().render();
    let fp_start = line_of(&t0, "<factprest>", 1);
    // mt-tu missing: mt-total comes where mt-tu is due.
    let (v, t) = edit("  <mt-tu>1</mt-tu>\n", "");
    f02_at(&v, &[fp_start, line_of(&t, "<mt-total>", 1)]);
    // bo-regul missing: the line ends too early.
    let (v, t) = edit("  <bo-regul>F</bo-regul>\n", "");
    f02_at(&v, &[fp_start, line_of(&t, "</factprest>", 1)]);
    // id-site missing from the header.
    let (v, t) = edit(" <id-site>21999000</id-site>\n", "");
    f02_at(&v, &[2, line_of(&t, "<rf-prstpap>", 1)]);
    // the whole footer missing.
    let (v, t) = edit(
        " <nb-ligbor>2</nb-ligbor>\n <mt-totamd>25</mt-totamd>\n <mt-totprest>0</mt-totprest>\n",
        "",
    );
    f02_at(&v, &[2, line_of(&t, "</factbord>", 1)]);
    // an empty line.
    let (v, t) = edit(
        " <nb-ligbor>2</nb-ligbor>",
        " <factprest></factprest>\n <nb-ligbor>3</nb-ligbor>",
    );
    f02_at(&v, &[line_of(&t, "<factprest></factprest>", 1)]);
    assert_eq!(v.lines, 3, "{}", dump(&v));
}

#[test]
fn duplicated_element() {
    let (v, t) = edit(
        "<nom-per>Dupont</nom-per>",
        "<nom-per>Dupont</nom-per><nom-per>Dupont</nom-per>",
    );
    f02_at(&v, &[line_of(&t, "<nom-per>", 1)]);
    let (v, t) = edit(
        " <log-fact>",
        " <rf-borfact>03_150521_100_21999000</rf-borfact>\n <log-fact>",
    );
    f02_at(&v, &[line_of(&t, "<rf-borfact>", 2)]);
}

#[test]
fn text_in_element_only_content() {
    let mut wrong = Vec::new();
    for (from, to, needle) in [
        ("<factprest>", "<factprest>ligne 1", "ligne 1"),
        (" <id-cram>", " en-tête <id-cram>", "en-tête"),
        ("</factbord>", "fin</factbord>", "fin</factbord>"),
        ("<factprest>", "<factprest><![CDATA[x]]>", "<![CDATA[x"),
        ("<factprest>", "<factprest>&amp;", "&amp;"),
    ] {
        let (v, t) = edit(from, to);
        let at = line_of(&t, needle, 1);
        let ok = v
            .anomalies
            .iter()
            .any(|a| a.code.as_str() == "F02" && a.xml_line == Some(at));
        if !ok {
            wrong.push(format!("{to:?}: expected F02 at xml line {at}\n{}", dump(&v)));
        }
        expect_rejected(&v);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Blanks, comments and processing instructions are not content.
    let (v, _) = edit("<factprest>", "<factprest> <!-- ligne 1 --> <?app x?> \t");
    expect_accepted(&v, 2);
}

#[test]
fn the_whole_file_on_one_line() {
    let t: String = Bill::example()
        .render()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("");
    let v = check_named(NAME, t.as_bytes());
    expect_accepted(&v, 2);
    let t = t.replacen("<bo-regul>F", "<bo-regul>V", 1);
    let v = check_named(NAME, t.as_bytes());
    expect_exact(&v, &[("L10", Some(1), Some("bo-regul"))]);
    assert_eq!(v.anomalies[0].xml_line, Some(1));
}
