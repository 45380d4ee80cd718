//! `check [--json] FILE...`: stateless conformance check of billing files.
//!
//! Needs no database. Prints a French report per file (or one JSON object
//! per file per line with `--json`); exit 0 when every file is accepted,
//! 1 when any is partial or rejected, 2 when a file cannot be read.

use std::io::Write;

use super::{Ctx, FilesArgs, Outcome};
use crate::billing::check::{check_path, CheckOptions};
use crate::billing::{FileVerdict, Verdict};

pub fn run(ctx: &Ctx, a: &FilesArgs) -> anyhow::Result<Outcome> {
    let opts = CheckOptions::new(&ctx.cfg, ctx.clock.today());
    let verdicts = a.files.iter().map(|path| check_path(path, &opts));
    print_verdicts(verdicts, a.json)
}

/// Prints verdicts as they come and folds them into the exit outcome:
/// an unreadable file is reported and makes the command fail (exit 2) once
/// every other file has been checked.
pub fn print_verdicts(
    verdicts: impl Iterator<Item = anyhow::Result<FileVerdict>>,
    json: bool,
) -> anyhow::Result<Outcome> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut all_accepted = true;
    let mut failures = Vec::new();
    for v in verdicts {
        match v {
            Ok(v) => {
                all_accepted &= v.verdict == Verdict::Accepted;
                if json {
                    writeln!(out, "{}", v.to_json())?;
                } else {
                    write_human(&mut out, &v)?;
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
    for a in &v.anomalies {
        let mut place = Vec::new();
        if let Some(l) = a.line {
            place.push(format!("ligne {l}"));
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
