//! File anomalies of `check`: F01, F03, F04, F07, F08, F10, F11, F13 (F02 is
//! in `schema`). A file anomaly rejects the whole file.

use ppas_gateway::billing::check::{check_bytes, CheckOptions};
use ppas_gateway::config::Config;

use super::*;

/// Asserts the codes are exactly `want` (sorted multiset), for anomalies
/// whose `field` the spec leaves open (file-name rules, F10).
#[track_caller]
fn expect_codes(v: &FileVerdict, want: &[&str]) {
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(codes(v), want, "{}", dump(v));
    for a in &v.anomalies {
        if a.code.as_str().starts_with('F') {
            assert_eq!(a.line, None, "a file anomaly has no line index\n{}", dump(v));
        }
    }
}

fn example_text() -> String {
    Bill::example().render()
}

fn example_with(from: &str, to: &str) -> String {
    let t = example_text();
    assert!(t.contains(from), "{from:?} not in the example");
    t.replacen(from, to, 1)
}

const NAME: &str = "03_150521_100_21999000.xml";

// ---------------------------------------------------------------- F01

#[test]
fn f01_doctype_is_refused() {
    let t = example_with("<factbord ", "<!DOCTYPE factbord>\n<factbord ");
    let v = check_named(NAME, t.as_bytes());
    expect_rejected(&v);
    let f01 = v.anomalies.iter().find(|a| a.code.as_str() == "F01");
    assert_eq!(
        f01.and_then(|a| a.xml_line),
        Some(2),
        "F01 at the DOCTYPE line\n{}",
        dump(&v)
    );
}

#[test]
fn f01_entity_declaration_is_refused_and_never_expanded() {
    let t = example_with(
        "<factbord ",
        "<!DOCTYPE factbord [\n<!ENTITY nom \"Dupont\">\n<!ENTITY a \"&nom;&nom;&nom;&nom;&nom;&nom;&nom;&nom;\">\n]>\n<factbord ",
    )
    .replacen(">Dupont<", ">&a;<", 1);
    let v = check_named(NAME, t.as_bytes());
    expect_rejected(&v);
    assert!(v.anomalies.iter().any(|a| a.code.as_str() == "F01"), "{}", dump(&v));
    lacks(&v, "F02");
}

#[test]
fn f01_undeclared_entity() {
    let t = example_with(">Dupont<", ">Dup&foo;ont<");
    let v = check_named(NAME, t.as_bytes());
    expect_rejected(&v);
    let f01: Vec<_> = v.anomalies.iter().filter(|a| a.code.as_str() == "F01").collect();
    assert!(!f01.is_empty(), "{}", dump(&v));
    assert_eq!(f01[0].xml_line, Some(line_of(&t, "&foo;", 1)), "{}", dump(&v));
}

#[test]
fn f01_predefined_entities_and_character_references_are_fine() {
    let t = example_with(">Dupont<", ">D&amp;&lt;&gt;&quot;&apos;&#233;&#xE9;t<");
    expect_accepted(&check_named(NAME, t.as_bytes()), 2);
}

#[test]
fn f01_forbidden_character_references() {
    for r in [
        "&#1;",
        "&#x0;",
        "&#xFFFE;",
        "&#xFFFF;",
        "&#x110000;",
        "&#xD800;",
        "&#;",
        "&#x;",
        "&#12a;",
    ] {
        let t = example_with(">Dupont<", &format!(">Dup{r}ont<"));
        let v = check_named(NAME, t.as_bytes());
        assert!(
            v.anomalies.iter().any(|a| a.code.as_str() == "F01"),
            "{r}\n{}",
            dump(&v)
        );
        expect_rejected(&v);
    }
}

#[test]
fn f01_unclosed_root() {
    let t = example_with("</factbord>\n", "");
    let v = check_named(NAME, t.as_bytes());
    expect_rejected(&v);
    assert!(v.anomalies.iter().any(|a| a.code.as_str() == "F01"), "{}", dump(&v));
}

#[test]
fn f01_second_root_and_text_after_root() {
    let mut wrong = Vec::new();
    for tail in [
        "<factbord/>\n",
        "<x>1</x>\n",
        "junk\n",
        "&#32;\n",
        "&amp;\n",
        "<![CDATA[ ]]>\n",
    ] {
        let t = format!("{}{tail}", example_text());
        let v = check_named(NAME, t.as_bytes());
        let f01 = v.anomalies.iter().find(|a| a.code.as_str() == "F01");
        if f01.is_none() || v.accepted_lines != 0 {
            wrong.push(format!("{tail:?}: expected F01 (rejected)\n{}", dump(&v)));
        } else if f01.and_then(|a| a.xml_line) != Some(38) {
            wrong.push(format!(
                "{tail:?}: expected F01 at xml line 38, the line after </factbord>\n{}",
                dump(&v)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn f01_malformed_xml_declarations() {
    let mut wrong = Vec::new();
    for decl in [
        "<?xml version=\"1.0\" standalone=\"maybe\"?>",
        "<?xml encoding=\"UTF-8\"?>",
        "<?xml version=\"2.0\"?>",
        "<?xml version=\"1.0\" encoding=\"UTF-8\" version=\"1.0\"?>",
        "<?xml version=\"1.0\" standalone=\"yes\" encoding=\"UTF-8\"?>",
        "<?xml version=\"1.0\" encoding=\"\"?>",
        "<?XML version=\"1.0\"?>",
    ] {
        let mut b = Bill::example();
        b.decl = decl.to_string();
        let v = b.check();
        if !v.anomalies.iter().any(|a| a.code.as_str() == "F01") || v.accepted_lines != 0 {
            wrong.push(format!("{decl}: expected F01 (XML 1.0 [23] XMLDecl)\n{}", dump(&v)));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    for decl in [
        "<?xml version=\"1.0\" standalone=\"no\"?>",
        "<?xml version = '1.0'  encoding = 'UTF-8' ?>",
        "<?xml version=\"1.1\"?>",
    ] {
        let mut b = Bill::example();
        b.decl = decl.to_string();
        expect_accepted(&b.check(), 2);
    }
}

#[test]
fn f01_comments_and_processing_instructions_after_the_root_are_fine() {
    let t = format!("{}<!-- fin -->\n<?app done?>\n\n", example_text());
    expect_accepted(&check_named(NAME, t.as_bytes()), 2);
}

#[test]
fn f01_mismatched_tags() {
    let t = example_with("<pn-per>Pierre</pn-per>", "<pn-per>Pierre</pn-pers>");
    let v = check_named(NAME, t.as_bytes());
    expect_rejected(&v);
    let f01 = v.anomalies.iter().find(|a| a.code.as_str() == "F01");
    assert_eq!(f01.and_then(|a| a.xml_line), Some(11), "{}", dump(&v));
}

#[test]
fn f01_undecodable_and_forbidden_bytes() {
    let base = example_text().into_bytes();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "latin-1 byte in a UTF-8 file",
            replace_bytes(&base, b"Dupont", b"Dup\xe9ont"),
        ),
        ("overlong UTF-8", replace_bytes(&base, b"Dupont", b"Dup\xc0\xafont")),
        (
            "UTF-8 surrogate",
            replace_bytes(&base, b"Dupont", b"Dup\xed\xa0\x80ont"),
        ),
        (
            "truncated UTF-8 sequence",
            replace_bytes(&base, b"Dupont", b"Dup\xc3ont"),
        ),
        ("control character", replace_bytes(&base, b"Dupont", b"Dup\x01ont")),
        ("NUL", replace_bytes(&base, b"Dupont", b"Dup\x00ont")),
        ("U+FFFE", replace_bytes(&base, b"Dupont", "Dup\u{FFFE}ont".as_bytes())),
        ("]]> in text", replace_bytes(&base, b"Dupont", b"Dup]]>ont")),
        ("declaration after a blank", [b"\n".as_slice(), &base].concat()),
    ];
    for (what, bytes) in cases {
        let v = check_named(NAME, &bytes);
        assert!(
            v.anomalies.iter().any(|a| a.code.as_str() == "F01"),
            "{what}\n{}",
            dump(&v)
        );
        expect_rejected(&v);
    }
}

#[test]
fn f01_empty_blank_and_garbage_files() {
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    for (what, bytes) in [
        ("empty", Vec::new()),
        ("blank", b"  \n\t\n".to_vec()),
        ("declaration only", DECL.as_bytes().to_vec()),
        ("garbage", garbage),
        ("not xml", b"nir;nom\n1541299999000;Dupont\n".to_vec()),
    ] {
        let v = check_named(NAME, &bytes);
        assert!(
            v.anomalies.iter().any(|a| a.code.as_str() == "F01"),
            "{what}\n{}",
            dump(&v)
        );
        expect_rejected(&v);
        assert_eq!(v.lines, 0, "{what}");
    }
}

pub fn replace_bytes(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = hay
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern present");
    [&hay[..at], to, &hay[at + from.len()..]].concat()
}

// ---------------------------------------------------------------- F03, F04

fn named(name: &str, rf_borfact: &str, id_cram: &str, id_site: &str) -> FileVerdict {
    let mut b = Bill::example();
    b.header("rf-borfact", rf_borfact)
        .header("id-cram", id_cram)
        .header("id-site", id_site);
    check_named(name, b.render().as_bytes())
}

#[test]
fn f03_extension_is_case_insensitive() {
    for name in [
        "03_150521_100_21999000.XML",
        "03_150521_100_21999000.Xml",
        "03_150521_100_21999000.xml",
    ] {
        let v = named(name, "03_150521_100_21999000", "03", "21999000");
        expect_accepted(&v, 2);
        assert_eq!(v.file, name);
    }
}

#[test]
fn f03_other_extensions() {
    for name in [
        "03_150521_100_21999000.txt",
        "03_150521_100_21999000",
        "03_150521_100_21999000.xmll",
    ] {
        let v = named(name, "03_150521_100_21999000", "03", "21999000");
        expect_codes(&v, &["F03"]);
        expect_rejected(&v);
    }
}

#[test]
fn f04_length_limit_is_25_characters() {
    // 2 + 1 + 6 + 1 + 3 + 1 + 11 = 25
    let v = named(
        "03_150521_100_21999000123.xml",
        "03_150521_100_21999000123",
        "03",
        "21999000123",
    );
    expect_accepted(&v, 2);
    // 26 characters: id-site (12) and rf-borfact (26) are still schema-valid.
    let v = named(
        "03_150521_100_219990001234.xml",
        "03_150521_100_219990001234",
        "03",
        "219990001234",
    );
    expect_codes(&v, &["F04"]);
    expect_rejected(&v);
}

#[test]
fn f04_date_must_be_a_real_jjmmaa() {
    for (jjmmaa, ok) in [
        ("150521", true),
        ("290220", true),
        ("310121", true),
        ("310221", false),
        ("290221", false),
        ("000521", false),
        ("151321", false),
        ("1505211", false),
        ("15052", false),
        ("15O521", false),
    ] {
        let rf = format!("03_{jjmmaa}_100_21999000");
        let v = named(&format!("{rf}.xml"), &rf, "03", "21999000");
        if ok {
            expect_accepted(&v, 2);
        } else {
            expect_codes(&v, &["F04"]);
        }
    }
}

#[test]
fn f04_name_must_equal_rf_borfact() {
    let v = named(NAME, "03_160521_100_21999000", "03", "21999000");
    expect_codes(&v, &["F04"]);
    expect_rejected(&v);
}

#[test]
fn f04_name_parts_must_match_the_header() {
    // id-site of the name differs from the header's.
    let v = named("03_150521_100_21999001.xml", "03_150521_100_21999001", "03", "21999000");
    expect_codes(&v, &["F04"]);
    // id-cram of the name differs from the header's.
    let v = named("04_150521_100_21999000.xml", "04_150521_100_21999000", "03", "21999000");
    expect_codes(&v, &["F04"]);
    // prestation code of the name differs from the header's rf-prstpap.
    let v = named("03_150521_119_21999000.xml", "03_150521_119_21999000", "03", "21999000");
    expect_codes(&v, &["F04"]);
    // not the <id-cram>_<JJMMAA>_<code>_<id-site> shape.
    let v = named("03-150521-100-21999000.xml", "03-150521-100-21999000", "03", "21999000");
    expect_codes(&v, &["F04"]);
    let v = named(
        "03_150521_100_21999000_.xml",
        "03_150521_100_21999000_",
        "03",
        "21999000",
    );
    expect_codes(&v, &["F04"]);
}

// ---------------------------------------------------------------- F07

#[test]
fn f07_header_prestation_not_in_the_table() {
    let mut b = Bill::example();
    b.header("rf-borfact", "03_150521_999_21999000")
        .header("rf-prstpap", "PPP999");
    b.set(1, "rf-prstpap", "PPP999").set(2, "rf-prstpap", "PPP999");
    let t = b.render();
    let v = check_named(&b.name(), t.as_bytes());
    has_at(&v, "F07", None, Some("rf-prstpap"), line_of(&t, "<rf-prstpap>", 1));
    lacks(&v, "L01");
    lacks(&v, "F04");
    expect_rejected(&v);
}

#[test]
fn f07_the_table_comes_from_the_configuration() {
    let cfg = Config::parse("[billing.prestations]\nPPP100 = 30\nPPP200 = 10\n").expect("config");
    let opts = CheckOptions::new(&cfg, today());
    let mut b = Bill::example();
    b.header("rf-borfact", "03_150521_200_21999000")
        .header("rf-prstpap", "PPP200");
    b.set(1, "rf-prstpap", "PPP200")
        .set(2, "rf-prstpap", "PPP200")
        .set(1, "nb-quant", "10")
        .set(2, "nb-quant", "10.01");
    let t = b.render();
    let v = check_bytes(&b.name(), t.as_bytes(), &opts);
    // PPP200 is known here, its monthly maximum is 10.
    expect_exact(&v, &[("L06", Some(2), Some("nb-quant"))]);
    // PPP119 is not in this table.
    let v = check_bytes("03_150521_119_21999000.xml", Bill::ppp119().render().as_bytes(), &opts);
    has(&v, "F07", None, Some("rf-prstpap"));
}

// ---------------------------------------------------------------- F08

#[test]
fn f08_each_total_is_checked() {
    for (field, raw) in [
        ("nb-ligbor", "3"),
        ("nb-ligbor", "1"),
        ("nb-ligbor", "2.5"),
        ("mt-totamd", "25.01"),
        ("mt-totamd", "24.99"),
        ("mt-totprest", "1"),
        ("mt-totprest", "-0.01"),
    ] {
        let mut b = Bill::example();
        b.footer(field, raw);
        let t = b.render();
        let v = check_named(&b.name(), t.as_bytes());
        expect_exact(&v, &[("F08", None, Some(field))]);
        has_at(&v, "F08", None, Some(field), line_of(&t, &format!("<{field}>"), 1));
        expect_rejected(&v);
    }
}

#[test]
fn f08_totals_compare_by_value() {
    for (field, raw) in [
        ("nb-ligbor", "2.0"),
        ("nb-ligbor", "+02"),
        ("mt-totamd", "25.00"),
        ("mt-totamd", "+25"),
        ("mt-totamd", "025.0"),
        ("mt-totamd", " 25 "),
        ("mt-totprest", "0.00"),
        ("mt-totprest", "-0"),
        ("mt-totprest", ".0"),
    ] {
        let mut b = Bill::example();
        b.footer(field, raw);
        expect_accepted(&b.check(), 2);
    }
}

#[test]
fn f08_totals_include_rejected_lines() {
    // Line 2 is rejected (L06) but the footer describes the file as sent.
    let mut b = Bill::example();
    b.set(2, "nb-quant", "31");
    let v = b.check();
    expect_exact(&v, &[("L06", Some(2), Some("nb-quant"))]);
    assert_eq!(v.accepted_hours, dec("14.25"));
}

// ---------------------------------------------------------------- F10

#[test]
fn f10_no_line() {
    let b = Bill::with_lines(0);
    let t = b.render();
    assert!(t.contains("<nb-ligbor>0</nb-ligbor>"));
    let v = check_named(&b.name(), t.as_bytes());
    expect_codes(&v, &["F10"]);
    expect_rejected(&v);
    assert_eq!(v.lines, 0);
}

// ---------------------------------------------------------------- F11

#[test]
fn f11_size_limit_from_the_configuration() {
    let t = example_text();
    let len = t.len() as u64;
    let mut cfg = Config::default();
    cfg.limits.max_file_size = len;
    let v = check_bytes(NAME, t.as_bytes(), &CheckOptions::new(&cfg, today()));
    expect_accepted(&v, 2);
    cfg.limits.max_file_size = len - 1;
    let v = check_bytes(NAME, t.as_bytes(), &CheckOptions::new(&cfg, today()));
    has(&v, "F11", None, None);
    expect_rejected(&v);
}

#[test]
fn f11_is_decided_before_parsing() {
    // Garbage over the limit is too large first of all.
    let mut cfg = Config::default();
    cfg.limits.max_file_size = 100;
    let v = check_bytes(NAME, &[0xFFu8; 101], &CheckOptions::new(&cfg, today()));
    has(&v, "F11", None, None);
    expect_rejected(&v);
}

// ---------------------------------------------------------------- F13

#[test]
fn f13_empty_or_blank_header_fields() {
    for field in ["rf-borfact", "id-cram", "id-site", "rf-prstpap"] {
        // id-cram allows 2 characters: a 3-character blank would be F02 too.
        let blanks: &[&str] = if field == "id-cram" {
            &["", "  ", "\t"]
        } else {
            &["", "  ", "\t\n "]
        };
        for &raw in blanks {
            let mut b = Bill::example();
            b.header(field, raw);
            let t = b.render();
            let v = check_named(NAME, t.as_bytes());
            has_at(&v, "F13", None, Some(field), line_of(&t, &format!("<{field}>"), 1));
            lacks(&v, "F02");
            expect_rejected(&v);
        }
    }
}

#[test]
fn f13_log_fact_may_be_empty() {
    for raw in ["", "   "] {
        let mut b = Bill::example();
        b.header("log-fact", raw);
        expect_accepted(&b.check(), 2);
    }
    let t = example_with("<log-fact>nomlogiciel_xxxxx_1.3</log-fact>", "<log-fact/>");
    expect_accepted(&check_named(NAME, t.as_bytes()), 2);
}

#[test]
fn f13_empty_footer_fields_are_also_f02() {
    for field in FOOTER_FIELDS {
        for raw in ["", " "] {
            let mut b = Bill::example();
            b.footer(field, raw);
            let t = b.render();
            let v = check_named(NAME, t.as_bytes());
            let at = line_of(&t, &format!("<{field}>"), 1);
            has_at(&v, "F13", None, Some(field), at);
            has_at(&v, "F02", None, Some(field), at);
            expect_rejected(&v);
        }
    }
}

// ---------------------------------------------------------------- several

#[test]
fn every_file_anomaly_is_reported() {
    let mut b = Bill::example();
    b.header("rf-borfact", "03_150521_999_21999001") // F04: not the file name
        .header("id-site", " ") // F13
        .header("rf-prstpap", "PPP999"); // F07
    b.set(1, "rf-prstpap", "PPP999").set(2, "rf-prstpap", "PPP999");
    b.footer("nb-ligbor", "7"); // F08
    let v = check_named("03_150521_999_21999000.txt", b.render().as_bytes()); // F03
    for code in ["F03", "F04", "F07", "F08", "F13"] {
        assert!(
            v.anomalies.iter().any(|a| a.code.as_str() == code),
            "{code} missing\n{}",
            dump(&v)
        );
    }
    lacks(&v, "F01");
    lacks(&v, "F02");
    lacks(&v, "L01");
    expect_rejected(&v);
}
