//! XML form of the processing report (`schema/report.xsd`,
//! `docs/formats/report.md`).
//!
//! Written by hand into a `String` rather than through an XML writer: the
//! structure is fixed and shallow, and one escaping function ([`text`]) is
//! the single place where outside text (file names, header fields, anomaly
//! messages quoting the provider's data) enters the document. It escapes the
//! markup characters and replaces what XML 1.0 cannot carry at all (control
//! characters, U+FFFE/U+FFFF) with U+FFFD, so the report stays well-formed
//! whatever a message contains.

use std::fmt::Write;

use super::{ReportMeta, Summary};
use crate::anomaly::FileKind;
use crate::billing::FileVerdict;

/// Version of the report layout, in the root's `version` attribute.
pub const FORMAT_VERSION: &str = "1";

/// Renders the XML report (UTF-8, LF line ends, two-space indent).
pub fn render_xml(v: &FileVerdict, m: &ReportMeta<'_>) -> Vec<u8> {
    let s = Summary::new(v, m);
    let mut o = String::with_capacity(1024 + v.anomalies.len() * 320);
    o.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let kind = match m.kind {
        FileKind::Billing => "facturation",
        FileKind::Attestations => "attestations",
    };
    let _ = writeln!(o, "<compte-rendu version=\"{FORMAT_VERSION}\" type=\"{kind}\">");

    o.push_str("  <fichier>\n");
    elem(&mut o, 4, "nom", &v.file);
    elem(&mut o, 4, "empreinte-sha256", m.sha256);
    elem(&mut o, 4, "canal", m.channel);
    elem(&mut o, 4, "recu-le", &s.received_rfc3339);
    elem(&mut o, 4, "traite-le", &s.processed_rfc3339);
    o.push_str("  </fichier>\n");

    elem(&mut o, 2, "prestataire", m.provider);

    // An attestation file has no header: each attestation names its order.
    if m.kind == FileKind::Billing {
        o.push_str("  <bordereau>\n");
        elem(&mut o, 4, "rf-borfact", &v.header.rf_borfact);
        o.push_str("    <caisse>\n");
        elem(&mut o, 6, "id-cram", &v.header.id_cram);
        if let Some(name) = m.caisse_name {
            elem(&mut o, 6, "nom", name);
        }
        o.push_str("    </caisse>\n");
        elem(&mut o, 4, "id-site", &v.header.id_site);
        elem(&mut o, 4, "rf-prstpap", &v.header.rf_prstpap);
        o.push_str("  </bordereau>\n");
    }

    o.push_str("  <resultat>\n");
    let _ = writeln!(
        o,
        "    <verdict code=\"{}\">{}</verdict>",
        s.verdict_code,
        text(s.verdict_fr)
    );
    let _ = writeln!(o, "    <lignes-trouvees>{}</lignes-trouvees>", s.lines);
    let _ = writeln!(o, "    <lignes-acceptees>{}</lignes-acceptees>", s.accepted_lines);
    let _ = writeln!(o, "    <lignes-rejetees>{}</lignes-rejetees>", s.rejected_lines);
    if m.kind == FileKind::Billing {
        let _ = writeln!(o, "    <heures-acceptees>{}</heures-acceptees>", s.hours_dot);
    }
    o.push_str("  </resultat>\n");

    let _ = writeln!(
        o,
        "  <anomalies nombre=\"{}\" fichier=\"{}\" ligne=\"{}\">",
        v.anomalies.len(),
        s.file_anomalies,
        s.line_anomalies
    );
    for a in &v.anomalies {
        let _ = writeln!(
            o,
            "    <anomalie code=\"{}\" niveau=\"{}\">",
            a.code.as_str(),
            s.level_fr(a.code.level())
        );
        elem(&mut o, 6, "libelle", a.code.title_fr());
        if let Some(line) = a.line {
            let _ = writeln!(o, "      <ligne>{line}</ligne>");
        }
        if let Some(xml_line) = a.xml_line {
            let _ = writeln!(o, "      <ligne-xml>{xml_line}</ligne-xml>");
        }
        if let Some(field) = &a.field {
            elem(&mut o, 6, "champ", field);
        }
        elem(&mut o, 6, "message", &a.message);
        o.push_str("    </anomalie>\n");
    }
    o.push_str("  </anomalies>\n");
    o.push_str("</compte-rendu>\n");
    o.into_bytes()
}

/// `<name>escaped value</name>` on its own line.
fn elem(o: &mut String, indent: usize, name: &str, value: &str) {
    for _ in 0..indent {
        o.push(' ');
    }
    o.push('<');
    o.push_str(name);
    o.push('>');
    push_text(o, value);
    o.push_str("</");
    o.push_str(name);
    o.push_str(">\n");
}

/// Escapes `s` for element content or a double-quoted attribute.
pub(crate) fn text(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    push_text(&mut o, s);
    o
}

fn push_text(o: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            // Kept as references: a parser would otherwise normalise a raw
            // CR (and a tab in an attribute) away.
            '\r' => o.push_str("&#13;"),
            '\t' => o.push_str("&#9;"),
            '\n' => o.push_str("&#10;"),
            c if is_xml_char(c) => o.push(c),
            _ => o.push('\u{FFFD}'),
        }
    }
}

/// The `Char` production of XML 1.0 (Rust strings hold no surrogates).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

#[cfg(test)]
mod tests {
    use super::super::tests::{accepted, meta, partial};
    use super::*;
    use crate::billing::{Anomaly, Code};

    fn s(b: Vec<u8>) -> String {
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn partial_report_carries_every_anomaly_with_its_title() {
        let x = s(render_xml(&partial(), &meta()));
        assert!(
            x.contains("<verdict code=\"partial\">partiellement accepté</verdict>"),
            "{x}"
        );
        assert!(x.contains("<anomalies nombre=\"2\" fichier=\"0\" ligne=\"2\">"), "{x}");
        assert!(x.contains("<libelle>Quantité invalide</libelle>"), "{x}");
        assert!(x.contains("<ligne-xml>31</ligne-xml>"), "{x}");
        assert!(x.contains("<nom>Carsat Nord-Picardie</nom>"), "{x}");
        assert!(x.contains("<recu-le>2026-11-25T10:58:12+01:00</recu-le>"), "{x}");
        assert!(x.contains("<heures-acceptees>12.50</heures-acceptees>"), "{x}");
    }

    #[test]
    fn hostile_text_is_escaped_or_replaced() {
        let mut v = partial();
        v.file = "a&b<c>.xml".into();
        v.anomalies = vec![Anomaly::file(
            Code::F01,
            None,
            None,
            "bad ]]> \"q\" 'a' \u{0}\u{1}\u{1b}\r\n\tend \u{FFFE} 😀",
        )];
        let x = s(render_xml(&v, &meta()));
        assert!(x.contains("<nom>a&amp;b&lt;c&gt;.xml</nom>"), "{x}");
        assert!(
            x.contains(
                "<message>bad ]]&gt; &quot;q&quot; 'a' \u{FFFD}\u{FFFD}\u{FFFD}&#13;&#10;&#9;end \u{FFFD} 😀</message>"
            ),
            "{x}"
        );
        // No line/field elements for a file anomaly without them.
        assert!(!x.contains("<ligne>"), "{x}");
        assert!(!x.contains("<champ>"), "{x}");
    }

    #[test]
    fn accepted_report_has_an_empty_anomaly_list_and_is_deterministic() {
        let a = render_xml(&accepted(), &meta());
        assert_eq!(a, render_xml(&accepted(), &meta()));
        let x = s(a);
        assert!(
            x.contains("<anomalies nombre=\"0\" fichier=\"0\" ligne=\"0\">\n  </anomalies>"),
            "{x}"
        );
        assert!(x.contains("<verdict code=\"accepted\">accepté</verdict>"), "{x}");
    }
}
