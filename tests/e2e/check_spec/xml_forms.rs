//! The same data written in the other ways XML allows: declared encodings
//! (UTF-8 with or without BOM, ISO-8859-1, Windows-1252), CDATA, comments
//! and processing instructions inside values, character references. None of
//! them changes the verdict or the line numbers.

use super::*;

fn example_with_names(nom: &str, pn: &str) -> Bill {
    let mut b = Bill::example();
    b.set(1, "nom-per", nom).set(1, "pn-per", pn);
    b
}

/// Encodes text into a single-byte charset, refusing what it cannot hold.
fn encode_8bit(text: &str, table: fn(char) -> Option<u8>) -> Vec<u8> {
    text.chars()
        .map(|c| table(c).unwrap_or_else(|| panic!("{c:?} has no single-byte form")))
        .collect()
}

fn declared(b: &mut Bill, enc: &str) {
    b.decl = format!("<?xml version=\"1.0\" encoding=\"{enc}\"?>");
}

#[test]
fn utf8_with_bom() {
    let b = example_with_names("Éloïse-Müller", "Françoise");
    let bytes = [b"\xEF\xBB\xBF".as_slice(), b.render().as_bytes()].concat();
    expect_accepted(&check_named(&b.name(), &bytes), 2);
}

#[test]
fn no_declaration_means_utf8() {
    let mut b = example_with_names("Éloïse", "Zoé");
    b.decl = String::new();
    expect_accepted(&b.check(), 2);
    let mut b = example_with_names("Éloïse", "Zoé");
    b.decl = "<?xml version='1.0' encoding='utf-8' standalone='yes'?>".into();
    expect_accepted(&b.check(), 2);
}

#[test]
fn iso_8859_1_with_accents() {
    for enc in ["ISO-8859-1", "iso-8859-1"] {
        let mut b = example_with_names("Éloïse-Müller", "Françoise");
        b.set(2, "bo-regul", "V");
        declared(&mut b, enc);
        let text = b.render();
        let v = check_named(&b.name(), &encode_8bit(&text, latin1));
        expect_exact(&v, &[("L10", Some(2), Some("bo-regul"))]);
        has_at(&v, "L10", Some(2), Some("bo-regul"), line_of(&text, "<bo-regul>", 2));
    }
}

#[test]
fn iso_8859_1_lengths_are_in_characters() {
    let mut b = example_with_names(&"é".repeat(54), &"ü".repeat(20));
    declared(&mut b, "ISO-8859-1");
    expect_accepted(&check_named(&b.name(), &encode_8bit(&b.render(), latin1)), 2);
    let mut b = example_with_names(&"é".repeat(55), "Zoé");
    declared(&mut b, "ISO-8859-1");
    let text = b.render();
    let v = check_named(&b.name(), &encode_8bit(&text, latin1));
    expect_exact(&v, &[("F02", None, Some("nom-per"))]);
    has_at(&v, "F02", None, Some("nom-per"), line_of(&text, "<nom-per>", 1));
}

#[test]
fn windows_1252_with_euro_and_oe() {
    for enc in ["windows-1252", "Windows-1252"] {
        let mut b = example_with_names("Œuvre d’Ève", "Chloé™");
        declared(&mut b, enc);
        expect_accepted(&check_named(&b.name(), &encode_8bit(&b.render(), cp1252)), 2);
    }
    let mut b = example_with_names(&"€".repeat(54), &"œ".repeat(20));
    declared(&mut b, "windows-1252");
    expect_accepted(&check_named(&b.name(), &encode_8bit(&b.render(), cp1252)), 2);
    let mut b = example_with_names("Dupont", &"Ÿ".repeat(21));
    declared(&mut b, "windows-1252");
    let text = b.render();
    let v = check_named(&b.name(), &encode_8bit(&text, cp1252));
    has_at(&v, "F02", None, Some("pn-per"), line_of(&text, "<pn-per>", 1));
}

#[test]
fn a_utf8_file_read_as_latin1_has_more_characters() {
    // 27 "é" in UTF-8 bytes declared ISO-8859-1 are 54 characters ("Ã©"…);
    // 28 are 56: the length is decided on the declared encoding.
    let mut b = example_with_names(&"é".repeat(27), "Zoé");
    declared(&mut b, "ISO-8859-1");
    let v = b.check();
    assert!(!f01_or_f02(&v), "{}", dump(&v));
    let mut b = example_with_names(&"é".repeat(28), "Zoé");
    declared(&mut b, "ISO-8859-1");
    has(&b.check(), "F02", None, Some("nom-per"));
}

#[test]
fn cdata_inside_values() {
    let mut b = Bill::example();
    b.set(1, "nb-quant", "<![CDATA[14.25]]>")
        .set(1, "dtd-interv", "<![CDATA[2021-03-01]]>")
        .set(1, "nom-per", "<![CDATA[D'<Dupont> & fils]]>")
        .set(2, "nb-quant", "1<![CDATA[0]]>.7<![CDATA[]]>5");
    b.footer("mt-totamd", "25");
    expect_accepted(&b.check(), 2);
}

#[test]
fn comments_and_processing_instructions_inside_values() {
    let mut b = Bill::example();
    b.set(1, "nb-quant", "14<!-- heures -->.25")
        .set(1, "dtf-interv", "2021-03<!-- mois -->-31")
        .set(1, "nom-per", "Du<?app x?>pont")
        .set(2, "mt-tu", "<!--a-->1<!--b-->")
        .set(2, "bo-regul", "<?app?>F");
    b.footer("mt-totamd", "25");
    expect_accepted(&b.check(), 2);
}

#[test]
fn markup_only_values_are_empty() {
    let mut b = Bill::example();
    b.set(1, "nom-per", "<![CDATA[]]>").set(2, "pn-per", "<!-- rien -->");
    let v = b.check();
    expect_exact(
        &v,
        &[("L12", Some(1), Some("nom-per")), ("L12", Some(2), Some("pn-per"))],
    );
}

#[test]
fn comments_and_processing_instructions_between_elements() {
    let t = Bill::example()
        .render()
        .replacen("<factbord ", "<!-- bordereau -->\n<?app début?>\n<factbord ", 1)
        .replacen(" <factprest>", " <!-- ligne -->\n <?app l?>\n <factprest>", 2)
        .replacen(" <nb-ligbor>", " <!--\n fin\n -->\n <nb-ligbor>", 1);
    let v = check_named("03_150521_100_21999000.xml", t.as_bytes());
    expect_accepted(&v, 2);
}

#[test]
fn character_references_in_values() {
    let mut b = Bill::example();
    b.set(1, "nb-quant", "&#49;&#x34;.25")
        .set(1, "dtd-interv", "&#50;021-03-01")
        .set(1, "nom-per", "&#x152;uvre &#233;&#x20AC;")
        .set(2, "bo-regul", "&#x46;")
        .set(2, "nir-per", "155119999900&#48;");
    b.footer("mt-totamd", "25");
    expect_accepted(&b.check(), 2);
    // A reference can carry a bad value like any other text.
    let (v, at) = with_line_field(1, "bo-regul", "&#x56;");
    expect_exact(&v, &[("L10", Some(1), Some("bo-regul"))]);
    has_at(&v, "L10", Some(1), Some("bo-regul"), at);
}

#[test]
fn crlf_line_ends() {
    let mut b = Bill::with_lines(3);
    b.eol = "\r\n";
    expect_accepted(&b.check(), 3);
}

#[test]
fn utf16_with_a_byte_order_mark() {
    // XML 1.0 §4.3.3: every processor reads UTF-16.
    for le in [true, false] {
        let mut b = example_with_names("Éloïse \u{1F600}", "Zoé");
        b.set(2, "bo-regul", "V");
        b.decl = "<?xml version=\"1.0\" encoding=\"UTF-16\"?>".into();
        let text = b.render();
        let mut bytes = if le { vec![0xFF, 0xFE] } else { vec![0xFE, 0xFF] };
        for u in text.encode_utf16() {
            bytes.extend_from_slice(&if le { u.to_le_bytes() } else { u.to_be_bytes() });
        }
        let v = check_named(&b.name(), &bytes);
        expect_exact(&v, &[("L10", Some(2), Some("bo-regul"))]);
        has_at(&v, "L10", Some(2), Some("bo-regul"), line_of(&text, "<bo-regul>", 2));
    }
}
