//! `check [--json] FILE...`: stateless conformance check of billing files
//! and visit-attestation files.
//!
//! Needs no database. The kind of each file is read from its root element
//! (`attvisites`: attestations; anything else, or nothing readable: a
//! billing file, checked as it always was). Prints a French report per
//! file (or one JSON object per file per line with `--json`; an attestation
//! file's carries `"kind":"attestations"`, `lines` counting its
//! `attvisite` elements); exit 0 when every file is accepted, 1 when any is
//! partial or rejected, 2 when a file cannot be read.

use std::io::Write;
use std::path::Path;

use super::{Ctx, FilesArgs, Outcome};
use crate::anomaly::Anomaly;
use crate::attestation::{self, AttestationVerdict};
use crate::billing::check::{check_path, CheckOptions};
use crate::billing::{FileVerdict, Verdict};

/// The verdict on one file, of either kind.
#[derive(Debug, Clone)]
pub enum Checked {
    Billing(FileVerdict),
    Attestations(AttestationVerdict),
}

impl Checked {
    pub fn verdict(&self) -> Verdict {
        match self {
            Checked::Billing(v) => v.verdict,
            Checked::Attestations(v) => v.verdict,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Checked::Billing(v) => v.to_json(),
            Checked::Attestations(v) => v.to_json(),
        }
    }
}

/// Whether a root element names an attestation file (its local name, so
/// that a namespaced root reaches the attestation reader, which refuses it).
pub fn is_attestations_root(root: &str) -> bool {
    root.rsplit(':').next() == Some(attestation::parse::ROOT)
}

pub fn run(ctx: &Ctx, a: &FilesArgs) -> anyhow::Result<Outcome> {
    let today = ctx.clock.today();
    let billing = CheckOptions::new(&ctx.cfg, today);
    let attestations = attestation::Options::new(&ctx.cfg, today);
    let verdicts = a.files.iter().map(|path| check_one(path, &billing, &attestations));
    print_checked(verdicts, a.json)
}

/// Checks one file of either kind (stateless).
pub fn check_one(path: &Path, billing: &CheckOptions, attestations: &attestation::Options) -> anyhow::Result<Checked> {
    // A file that cannot be sniffed goes the billing way, which says why
    // it cannot be read as it always did.
    match crate::xml::sniff::root_element(path) {
        Ok(Some(root)) if is_attestations_root(&root) => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            attestation::check_file(path, &name, attestations, &mut attestation::Stateless).map(Checked::Attestations)
        }
        _ => check_path(path, billing).map(Checked::Billing),
    }
}

/// Prints verdicts as they come and folds them into the exit outcome:
/// an unreadable file is reported and makes the command fail (exit 2) once
/// every other file has been checked.
pub fn print_checked(verdicts: impl Iterator<Item = anyhow::Result<Checked>>, json: bool) -> anyhow::Result<Outcome> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut all_accepted = true;
    let mut failures = Vec::new();
    for v in verdicts {
        match v {
            Ok(v) => {
                all_accepted &= v.verdict() == Verdict::Accepted;
                if json {
                    writeln!(out, "{}", v.to_json())?;
                } else {
                    match &v {
                        Checked::Billing(v) => write_human(&mut out, v)?,
                        Checked::Attestations(v) => write_human_attestations(&mut out, v)?,
                    }
                }
            }
            Err(e) => {
                eprintln!("ppas-gateway: error: {e:#}");
                failures.push(e);
            }
        }
        out.flush()?;
    }
    if let Some(e) = failures.into_iter().next() {
        return Err(e.context("some files could not be read"));
    }
    Ok(if all_accepted { Outcome::Ok } else { Outcome::Anomalies })
}

/// The report a person reads: French wording, one anomaly a line.
pub fn write_human(out: &mut impl Write, v: &FileVerdict) -> std::io::Result<()> {
    let rejected_lines = v.lines - v.accepted_lines.min(v.lines);
    writeln!(
        out,
        "{} : {} — {} ligne(s), {} acceptée(s), {} rejetée(s), {} anomalie(s)",
        v.file,
        v.verdict.label_fr(),
        v.lines,
        v.accepted_lines,
        if v.verdict == Verdict::Rejected {
            v.lines
        } else {
            rejected_lines
        },
        v.anomalies.len()
    )?;
    write_anomalies(out, &v.anomalies, "ligne")
}

/// The same report for an attestation file: items are attestations.
pub fn write_human_attestations(out: &mut impl Write, v: &AttestationVerdict) -> std::io::Result<()> {
    let rejected = if v.verdict == Verdict::Rejected {
        v.items
    } else {
        v.items - v.accepted.min(v.items)
    };
    writeln!(
        out,
        "{} : {} — {} attestation(s), {} acceptée(s), {} rejetée(s), {} anomalie(s)",
        v.file,
        v.verdict.label_fr(),
        v.items,
        v.accepted,
        rejected,
        v.anomalies.len()
    )?;
    write_anomalies(out, &v.anomalies, "attestation")
}

/// One anomaly a line: code, place (`item` N, XML line, element), title,
/// message.
fn write_anomalies(out: &mut impl Write, anomalies: &[Anomaly], item: &str) -> std::io::Result<()> {
    for a in anomalies {
        let mut place = Vec::new();
        if let Some(l) = a.line {
            place.push(format!("{item} {l}"));
        }
        if let Some(x) = a.xml_line {
            place.push(format!("ligne XML {x}"));
        }
        if let Some(f) = &a.field {
            place.push(format!("<{f}>"));
        }
        writeln!(
            out,
            "  {} [{}] {} : {}",
            a.code,
            place.join(", "),
            a.code.title_fr(),
            a.message
        )?;
    }
    Ok(())
}
