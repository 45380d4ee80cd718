//! Line anomalies of `check`: L01, L02, L03, L06, L09, L10, L12; verdicts,
//! counts and `xml_line` of line anomalies.

use super::*;

/// The example with line `line`'s `field` set: exactly one anomaly `code`
/// on that line and field, at the field's xml line.
#[track_caller]
fn only(line: usize, field: &str, raw: &str, code: &str) {
    let (v, at) = with_line_field(line, field, raw);
    let ctx = format!("{field}={raw:?}");
    expect_exact_ctx(&v, &[(code, Some(line as u32), Some(field))], &ctx);
    has_at(&v, code, Some(line as u32), Some(field), at);
    assert_eq!(v.verdict, Verdict::Partial, "{ctx}\n{}", dump(&v));
    assert_eq!((v.lines, v.accepted_lines), (2, 1), "{ctx}\n{}", dump(&v));
}

#[track_caller]
fn fine(line: usize, field: &str, raw: &str) {
    let (v, _) = with_line_field(line, field, raw);
    assert!(v.anomalies.is_empty(), "{field}={raw:?} must be accepted\n{}", dump(&v));
    expect_accepted(&v, 2);
}

#[track_caller]
fn expect_exact_ctx(v: &FileVerdict, want: &[(&str, Option<u32>, Option<&str>)], ctx: &str) {
    let mut got = triples(v);
    let mut want: Vec<_> = want
        .iter()
        .map(|(c, l, f)| (c.to_string(), *l, f.map(str::to_string)))
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "{ctx}\n{}", dump(v));
}

// ---------------------------------------------------------------- L01

#[test]
fn l01_line_prestation_differs_from_header() {
    only(2, "rf-prstpap", "PPP119", "L01");
    only(1, "rf-prstpap", "ppp100", "L01");
    only(1, "rf-prstpap", "PPP10", "L01");
}

// ---------------------------------------------------------------- L02

#[test]
fn l02_nir_length_and_characters() {
    for nir in [
        "154129999900",
        "15412999990001",
        "154129999900012",
        " 1541299999000",
        "1541299999000 ",
        "1541299A99000",
        "A541299999000",
        "1541299999-00",
        "\u{FF11}541299999000",
        "154129999900\u{0660}",
    ] {
        only(1, "nir-per", nir, "L02");
    }
}

#[test]
fn l02_corsica_form() {
    fine(1, "nir-per", "154122A999000");
    fine(2, "nir-per", "155112B999000");
    for nir in [
        "154122C999000",
        "154122a999000",
        "154122b999000",
        "2A41299999000",
        "15412A2999000",
        "1541299992A00",
        "15412AB999000",
    ] {
        only(1, "nir-per", nir, "L02");
    }
}

#[test]
fn l02_character_reference_digits_are_digits() {
    fine(1, "nir-per", "&#49;541299999000");
    fine(1, "nir-per", "<![CDATA[1541299999000]]>");
}

// ---------------------------------------------------------------- L03

#[test]
fn l03_start_after_end() {
    let mut b = Bill::example();
    b.set(1, "dtd-interv", "2021-03-31").set(1, "dtf-interv", "2021-03-01");
    let v = b.check();
    assert_eq!(codes(&v), ["L03"], "{}", dump(&v));
    let a = &v.anomalies[0];
    assert_eq!(a.line, Some(1));
    assert!(
        matches!(a.field.as_deref(), Some("dtd-interv" | "dtf-interv")),
        "{}",
        dump(&v)
    );
    let t = b.render();
    let at = line_of(&t, &format!("<{}>", a.field.as_deref().unwrap_or("")), 1);
    assert_eq!(a.xml_line, Some(at), "{}", dump(&v));
    assert_eq!(v.verdict, Verdict::Partial);
}

#[test]
fn l03_one_day_period_is_fine() {
    let mut b = Bill::example();
    b.set(1, "dtd-interv", "2021-03-15").set(1, "dtf-interv", "2021-03-15");
    expect_accepted(&b.check(), 2);
}

#[test]
fn l03_end_after_the_day_of_receipt() {
    // Receipt on 2021-05-15: ending that day is fine, the next day is not.
    let mut b = Bill::example();
    b.set(2, "dtd-interv", "2021-05-01").set(2, "dtf-interv", "2021-05-15");
    expect_accepted(&b.check(), 2);
    only(2, "dtf-interv", "2021-05-16", "L03");
    let mut b = Bill::example();
    b.set(2, "dtd-interv", "2021-06-01").set(2, "dtf-interv", "2021-06-30");
    let v = b.check();
    assert!(
        codes(&v).iter().all(|c| c == "L03") && !v.anomalies.is_empty(),
        "{}",
        dump(&v)
    );
    assert!(v.anomalies.iter().all(|a| a.line == Some(2)), "{}", dump(&v));
}

#[test]
fn l03_date_with_a_time_zone_is_schema_valid_but_not_plain() {
    for (field, raw) in [
        ("dtd-interv", "2021-03-01Z"),
        ("dtd-interv", "2021-03-01+01:00"),
        ("dtf-interv", "2021-03-31-05:00"),
        ("dtf-interv", "2021-03-31+14:00"),
    ] {
        only(1, field, raw, "L03");
    }
}

#[test]
fn l03_schema_valid_years_that_are_not_yyyy() {
    // xs:date allows a negative or a 5-digit year; the rule wants YYYY-MM-DD.
    only(1, "dtd-interv", "-2021-03-01", "L03");
    let (v, _) = with_line_field(1, "dtf-interv", "12021-03-31");
    assert!(
        !v.anomalies.is_empty() && codes(&v).iter().all(|c| c == "L03"),
        "{}",
        dump(&v)
    );
}

#[test]
fn l03_impossible_dates_are_f02_and_l03() {
    for (field, raw) in [
        ("dtd-interv", "2021-02-29"),
        ("dtf-interv", "2021-04-31"),
        ("dtd-interv", "2021-13-01"),
        ("dtd-interv", "2021-03-00"),
        ("dtf-interv", "2100-02-29"),
    ] {
        let (v, at) = with_line_field(1, field, raw);
        let ctx = format!("{field}={raw}");
        expect_exact_ctx(&v, &[("F02", None, Some(field)), ("L03", Some(1), Some(field))], &ctx);
        has_at(&v, "F02", None, Some(field), at);
        has_at(&v, "L03", Some(1), Some(field), at);
        expect_rejected(&v);
    }
}

#[test]
fn l03_leap_days() {
    let mut b = Bill::example();
    b.set(1, "dtd-interv", "2020-02-01").set(1, "dtf-interv", "2020-02-29");
    b.set(2, "dtd-interv", "2000-02-29").set(2, "dtf-interv", "2000-02-29");
    expect_accepted(&b.check(), 2);
}

#[test]
fn l03_not_a_date_at_all() {
    for raw in [
        "01/03/2021",
        "2021-3-01",
        "20210301",
        "2021-03-01T00:00:00",
        "mars 2021",
    ] {
        let (v, at) = with_line_field(1, "dtd-interv", raw);
        has_at(&v, "F02", None, Some("dtd-interv"), at);
        has_at(&v, "L03", Some(1), Some("dtd-interv"), at);
        expect_rejected(&v);
    }
}

// ---------------------------------------------------------------- L06

#[test]
fn l06_quantity_bounds_ppp100() {
    for raw in ["0", "0.00", "-0", "-1", "-0.01", "30.01", "31", "1000"] {
        only(1, "nb-quant", raw, "L06");
    }
    for raw in ["30", "30.00", "+30", "0.01", ".5", "14."] {
        fine(1, "nb-quant", raw);
    }
}

#[test]
fn l06_quantity_bounds_ppp119() {
    let mut b = Bill::ppp119();
    b.set(1, "nb-quant", "45").set(2, "nb-quant", "44.99");
    expect_accepted(&b.check(), 2);
    let mut b = Bill::ppp119();
    b.set(2, "nb-quant", "45.01");
    let v = b.check();
    expect_exact(&v, &[("L06", Some(2), Some("nb-quant"))]);
}

// ---------------------------------------------------------------- L09

#[test]
fn l09_unit_price_must_be_one_and_amount_zero() {
    for raw in ["1.00", "1.0", "+1", "01", "1.", " 1 "] {
        fine(1, "mt-tu", raw);
    }
    for raw in ["0.00", "-0", "+0", ".00", "000"] {
        fine(1, "mt-total", raw);
    }
    for raw in ["2", "0.99", "1.01", "0", "-1"] {
        only(1, "mt-tu", raw, "L09");
    }
    for raw in ["5", "0.01", "-1"] {
        only(2, "mt-total", raw, "L09");
    }
}

// ---------------------------------------------------------------- L10

#[test]
fn l10_regularisations_are_refused() {
    only(1, "bo-regul", "V", "L10");
    only(2, "bo-regul", "v", "L10");
    fine(1, "bo-regul", "f");
}

// ---------------------------------------------------------------- L12

#[test]
fn l12_empty_string_fields() {
    // Strings: an empty value is schema-valid; only L12 applies.
    for field in ["nom-per", "pn-per", "id-prest"] {
        for raw in ["", "   ", "\t"] {
            only(2, field, raw, "L12");
        }
    }
}

#[test]
fn l12_self_closed_field() {
    let t = Bill::example()
        .render()
        .replacen("<pn-per>Marie</pn-per>", "<pn-per/>", 1);
    let v = check_named("03_150521_100_21999000.xml", t.as_bytes());
    expect_exact(&v, &[("L12", Some(2), Some("pn-per"))]);
    assert_eq!(v.anomalies[0].xml_line, Some(line_of(&t, "<pn-per/>", 1)));
}

#[test]
fn l12_empty_nir_and_prestation_carry_their_own_codes_too() {
    // An empty NIR is not 13 characters either (L02 may come with it); an
    // empty line prestation differs from the header's (L01).
    let (v, at) = with_line_field(1, "nir-per", "");
    has_at(&v, "L12", Some(1), Some("nir-per"), at);
    assert!(codes(&v).iter().all(|c| c == "L12" || c == "L02"), "{}", dump(&v));
    let (v, at) = with_line_field(1, "rf-prstpap", " ");
    has_at(&v, "L12", Some(1), Some("rf-prstpap"), at);
    has_at(&v, "L01", Some(1), Some("rf-prstpap"), at);
    assert_eq!(v.verdict, Verdict::Partial);
}

#[test]
fn l12_empty_typed_fields_are_also_f02() {
    for field in ["dtd-interv", "dtf-interv", "nb-quant", "mt-tu", "mt-total", "bo-regul"] {
        for raw in ["", "  "] {
            let (v, at) = with_line_field(2, field, raw);
            has_at(&v, "L12", Some(2), Some(field), at);
            has_at(&v, "F02", None, Some(field), at);
            expect_rejected(&v);
            assert_eq!(v.lines, 2);
        }
    }
}

// ---------------------------------------------------------------- verdicts

#[test]
fn partial_verdict_one_bad_line_among_good_ones() {
    let mut b = Bill::with_lines(3);
    b.set(2, "nb-quant", "30.5");
    let v = b.check();
    expect_exact(&v, &[("L06", Some(2), Some("nb-quant"))]);
    assert_eq!(v.verdict, Verdict::Partial);
    assert_eq!((v.lines, v.accepted_lines), (3, 2));
    assert_eq!(v.accepted_hours, dec("28.5"), "lines 1 and 3: 14.25 each");
}

#[test]
fn every_line_rejected_is_a_rejected_file() {
    let mut b = Bill::example();
    b.set(1, "bo-regul", "V").set(2, "mt-tu", "2");
    let v = b.check();
    expect_exact(
        &v,
        &[("L10", Some(1), Some("bo-regul")), ("L09", Some(2), Some("mt-tu"))],
    );
    expect_rejected(&v);
    assert_eq!(v.lines, 2);
}

#[test]
fn every_anomaly_is_reported_five_problems() {
    let mut b = Bill::with_lines(3);
    b.set(1, "nir-per", "154129999900") // L02
        .set(1, "mt-tu", "2") // L09
        .set(2, "nb-quant", "31") // L06
        .set(3, "bo-regul", "V"); // L10
    b.footer("nb-ligbor", "5"); // F08
    let t = b.render();
    let v = check_named(&b.name(), t.as_bytes());
    expect_exact(
        &v,
        &[
            ("L02", Some(1), Some("nir-per")),
            ("L09", Some(1), Some("mt-tu")),
            ("L06", Some(2), Some("nb-quant")),
            ("L10", Some(3), Some("bo-regul")),
            ("F08", None, Some("nb-ligbor")),
        ],
    );
    has_at(&v, "L02", Some(1), Some("nir-per"), line_of(&t, "<nir-per>", 1));
    has_at(&v, "L09", Some(1), Some("mt-tu"), line_of(&t, "<mt-tu>", 1));
    has_at(&v, "L06", Some(2), Some("nb-quant"), line_of(&t, "<nb-quant>", 2));
    has_at(&v, "L10", Some(3), Some("bo-regul"), line_of(&t, "<bo-regul>", 3));
    has_at(&v, "F08", None, Some("nb-ligbor"), line_of(&t, "<nb-ligbor>", 1));
    expect_rejected(&v);
    assert_eq!(v.lines, 3);
}

#[test]
fn every_anomaly_is_reported_schema_and_lines_together() {
    // A schema violation rejects the file, and the line controls still run.
    let mut b = Bill::with_lines(3);
    b.set(3, "nom-per", &"x".repeat(55)) // F02
        .set(1, "bo-regul", "v") // L10
        .set(2, "nir-per", "154122C999000") // L02
        .set(2, "pn-per", ""); // L12
    let t = b.render();
    let v = check_named(&b.name(), t.as_bytes());
    expect_exact(
        &v,
        &[
            ("F02", None, Some("nom-per")),
            ("L10", Some(1), Some("bo-regul")),
            ("L02", Some(2), Some("nir-per")),
            ("L12", Some(2), Some("pn-per")),
        ],
    );
    has_at(&v, "F02", None, Some("nom-per"), line_of(&t, "<nom-per>", 3));
    expect_rejected(&v);
}

// ---------------------------------------------------------------- xml_line

#[test]
fn xml_line_follows_crlf_and_multi_line_tags() {
    let mut b = Bill::with_lines(4);
    b.set(4, "nb-quant", "40");
    b.eol = "\r\n";
    let t = b.render();
    let v = check_named(&b.name(), t.as_bytes());
    has_at(&v, "L06", Some(4), Some("nb-quant"), line_of(&t, "<nb-quant>", 4));

    // The spec prints the root start tag over two lines.
    let mut b = Bill::with_lines(4);
    b.set(3, "bo-regul", "V");
    b.root_open = b
        .root_open
        .replacen(" xsi:noNamespaceSchemaLocation", "\n xsi:noNamespaceSchemaLocation", 1);
    let t = b.render();
    let v = check_named(&b.name(), t.as_bytes());
    has_at(&v, "L10", Some(3), Some("bo-regul"), line_of(&t, "<bo-regul>", 3));
}

#[test]
fn xml_line_of_a_value_spread_over_lines_is_its_start_tag() {
    let mut b = Bill::example();
    b.set(2, "nom-per", "Du\npont\nDurand");
    b.set(2, "bo-regul", "<!--\n\n-->V");
    let t = b.render();
    let v = check_named(&b.name(), t.as_bytes());
    has_at(&v, "L10", Some(2), Some("bo-regul"), line_of(&t, "<bo-regul>", 2));
}
