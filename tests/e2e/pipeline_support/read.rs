//! Reading back what the gateway wrote: `.eml` files, report and outbox
//! XML (by their fixed layouts), and the verdicts of real tools (xmllint,
//! pdftotext).

use std::path::Path;
use std::process::Command;

use super::text;
use crate::support;

/// An `.eml` file as the tests read it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub file: String,
    pub message_id: String,
    pub subject: String,
    pub to: String,
    pub raw: String,
}

impl Mail {
    pub fn parse(file: &str, raw: &str) -> Mail {
        // Unfold headers (RFC 5322 §2.2.3), stop at the blank line.
        let head = raw.split("\r\n\r\n").next().unwrap_or(raw);
        let head = head.split("\n\n").next().unwrap_or(head);
        let unfolded = head
            .replace("\r\n ", " ")
            .replace("\n ", " ")
            .replace("\r\n\t", " ")
            .replace("\n\t", " ");
        let field = |name: &str| {
            unfolded
                .lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(": ")))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        Mail {
            file: file.to_string(),
            message_id: field("Message-ID"),
            subject: field("Subject"),
            to: field("To"),
            raw: raw.to_string(),
        }
    }

    /// Whether the (possibly RFC 2047-encoded) subject names `file_name`:
    /// the file name is ASCII, so it stays in clear in the header.
    pub fn is_about(&self, file_name: &str) -> bool {
        self.subject.contains(file_name)
    }
}

/// `xmllint --noout --schema XSD FILE`: Ok, or the tool's complaint.
pub fn xmllint_schema(xsd: &str, file: &Path) -> Result<(), String> {
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(support::repo().join("schema").join(xsd))
        .arg(file)
        .output()
        .expect("xmllint (libxml2-utils) is required");
    if out.status.success() {
        Ok(())
    } else {
        Err(text(&out.stderr))
    }
}

/// Text of a PDF by `pdftotext`.
pub fn pdf_text(file: &Path) -> String {
    let out = Command::new("pdftotext")
        .arg("-layout")
        .arg(file)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils) is required");
    assert!(
        out.status.success(),
        "pdftotext {}: {}",
        file.display(),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A report XML read back: (verdict code, lines found, accepted lines, anomalies as (code, line)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSummary {
    pub verdict: String,
    pub lines: u32,
    pub accepted: u32,
    pub anomalies: Vec<(String, Option<u32>)>,
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = s.find(open)? + open.len();
    let end = s[start..].find(close)? + start;
    Some(&s[start..end])
}

/// Reads the processing report XML (format of `schema/report.xsd`).
pub fn read_report(xml: &str) -> ReportSummary {
    let verdict = between(xml, "<verdict code=\"", "\"").unwrap_or_default().to_string();
    let lines = between(xml, "<lignes-trouvees>", "</lignes-trouvees>")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let accepted = between(xml, "<lignes-acceptees>", "</lignes-acceptees>")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut anomalies = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find("<anomalie code=\"") {
        let block_end = rest[i..].find("</anomalie>").map(|e| i + e).unwrap_or(rest.len());
        let block = &rest[i..block_end];
        let code = between(block, "<anomalie code=\"", "\"")
            .unwrap_or_default()
            .to_string();
        let line = between(block, "<ligne>", "</ligne>").and_then(|v| v.parse().ok());
        anomalies.push((code, line));
        rest = &rest[block_end..];
    }
    ReportSummary {
        verdict,
        lines,
        accepted,
        anomalies,
    }
}

/// An outbox line as the tests compare it: (nir, dtd, dtf, nb-quant).
pub type OutLine = (String, String, String, String);

/// The lines of an outbox `factbord` and its footer (nb-ligbor, mt-totamd, mt-totprest).
pub fn read_outbox(xml: &str) -> (Vec<OutLine>, (String, String, String)) {
    let mut lines = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find("<factprest>") {
        let end = rest[i..].find("</factprest>").map(|e| i + e).expect("closed factprest");
        let b = &rest[i..end];
        let f = |n: &str| {
            between(b, &format!("<{n}>"), &format!("</{n}>"))
                .unwrap_or_default()
                .to_string()
        };
        lines.push((f("nir-per"), f("dtd-interv"), f("dtf-interv"), f("nb-quant")));
        rest = &rest[end..];
    }
    let f = |n: &str| {
        between(xml, &format!("<{n}>"), &format!("</{n}>"))
            .unwrap_or_default()
            .to_string()
    };
    (lines, (f("nb-ligbor"), f("mt-totamd"), f("mt-totprest")))
}
