//! One billing file from bytes to [`FileVerdict`]: size (F11), name (F03,
//! F04), streaming parse (F01, F02), stateless controls, and — when the
//! caller brings one — the stateful rules of a [`LineRules`] hook.
//!
//! This is the pure core of `check`, `validate` and processing: the only
//! input is the bytes and a read-only view of the rules; the output lists
//! every anomaly found.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::controls::{self, Rules, Totals};
use super::parse::{self, LineFacts, LineSink};
use super::{decide, name, FileVerdict, Header, Line};
use crate::anomaly::{Anomaly, Code, Level};
use crate::config::Config;

/// What the stateless check needs to know.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub max_file_size: u64,
    pub rules: Rules,
}

impl CheckOptions {
    pub fn new(cfg: &Config, today: NaiveDate) -> CheckOptions {
        CheckOptions {
            max_file_size: cfg.limits.max_file_size,
            rules: Rules {
                prestations: cfg.billing.prestations.clone(),
                today,
            },
        }
    }

    pub fn with_prestations(max_file_size: u64, prestations: BTreeMap<String, Decimal>, today: NaiveDate) -> Self {
        CheckOptions {
            max_file_size,
            rules: Rules { prestations, today },
        }
    }
}

/// Stateful rules applied to each line after the stateless ones (the
/// pipeline's view of the state). `out` already holds the line's stateless
/// anomalies: a hook that records consumption must do so only when the
/// line ends with none.
pub trait LineRules {
    fn header(&mut self, _header: &Header, _out: &mut Vec<Anomaly>) {}
    fn line(&mut self, header: &Header, line: &Line, out: &mut Vec<Anomaly>);
}

/// No state: the `check` command.
pub struct Stateless;

impl LineRules for Stateless {
    fn line(&mut self, _: &Header, _: &Line, _: &mut Vec<Anomaly>) {}
}

struct Sink<'a, H: LineRules> {
    rules: &'a Rules,
    hook: &'a mut H,
    header: Header,
    header_anomalies: Vec<Anomaly>,
    line_anomalies: Vec<Anomaly>,
    scratch: Vec<Anomaly>,
    totals: Totals,
    rejected: u32,
    accepted_hours: Decimal,
}

impl<H: LineRules> LineSink for Sink<'_, H> {
    fn header(&mut self, header: &Header) {
        self.header = header.clone();
        self.hook.header(header, &mut self.header_anomalies);
    }

    fn line(&mut self, line: &Line, facts: &LineFacts) {
        self.totals.add(line);
        self.scratch.clear();
        controls::line(&self.header, line, facts, self.rules, &mut self.scratch);
        self.hook.line(&self.header, line, &mut self.scratch);
        if self.scratch.iter().any(|a| a.code.level() == Level::Line) {
            self.rejected += 1;
        } else if let Some(q) = line.nb_quant {
            self.accepted_hours += q;
        }
        self.line_anomalies.append(&mut self.scratch);
    }
}

/// Checks a file on disk (stateless). `Err` only when the file cannot be
/// opened or is not a regular file: anything in it gives a verdict.
pub fn check_path(path: &Path, opts: &CheckOptions) -> Result<FileVerdict> {
    check_path_with(path, opts, &mut Stateless)
}

/// Checks a file on disk with stateful rules.
pub fn check_path_with<H: LineRules>(path: &Path, opts: &CheckOptions, hook: &mut H) -> Result<FileVerdict> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    check_file_as(path, &name, opts, hook)
}

/// Checks a file on disk that was delivered under another name (the name
/// rules F03/F04 apply to `name`).
pub fn check_file_as<H: LineRules>(path: &Path, name: &str, opts: &CheckOptions, hook: &mut H) -> Result<FileVerdict> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        anyhow::bail!("{} is not a regular file", path.display());
    }
    Ok(check_reader(
        name,
        BufReader::with_capacity(1 << 16, file),
        meta.len(),
        opts,
        hook,
    ))
}

/// Checks bytes in memory (stateless). Never panics.
pub fn check_bytes(name: &str, bytes: &[u8], opts: &CheckOptions) -> FileVerdict {
    check_reader(
        name,
        std::io::Cursor::new(bytes.to_vec()),
        bytes.len() as u64,
        opts,
        &mut Stateless,
    )
}

/// The whole check over any reader of `size` bytes.
pub fn check_reader<R: Read + 'static, H: LineRules>(
    name: &str,
    reader: R,
    size: u64,
    opts: &CheckOptions,
    hook: &mut H,
) -> FileVerdict {
    let mut file_anomalies = Vec::new();
    if size > opts.max_file_size {
        file_anomalies.push(Anomaly::file(
            Code::F11,
            None,
            None,
            format!(
                "fichier de {size} octets : le maximum est de {} octets",
                opts.max_file_size
            ),
        ));
        name::check(name, None, &mut file_anomalies);
        return FileVerdict {
            file: name.to_string(),
            verdict: super::Verdict::Rejected,
            lines: 0,
            accepted_lines: 0,
            accepted_hours: Decimal::ZERO,
            header: Header::default(),
            footer: Default::default(),
            anomalies: file_anomalies,
        };
    }
    let mut sink = Sink {
        rules: &opts.rules,
        hook,
        header: Header::default(),
        header_anomalies: Vec::new(),
        line_anomalies: Vec::new(),
        scratch: Vec::new(),
        totals: Totals::default(),
        rejected: 0,
        accepted_hours: Decimal::ZERO,
    };
    let parsed = parse::parse(reader, &mut sink);
    let header_read = parsed.root_present & 0b11111 == 0b11111;
    name::check(name, header_read.then_some(&parsed.header), &mut file_anomalies);
    file_anomalies.extend(parsed.anomalies.iter().cloned());
    if !parsed.fatal {
        controls::header(&parsed, &opts.rules, &mut file_anomalies);
        controls::footer(&parsed, &sink.totals, &mut file_anomalies);
    }
    file_anomalies.append(&mut sink.header_anomalies);
    // A fatal error stops the reading: lines after it were never seen, and
    // the file is rejected anyway.
    let rejected = sink.rejected;
    let any_file = file_anomalies.iter().any(|a| a.code.level() == Level::File);
    let (verdict, accepted_lines) = decide(parsed.lines, rejected, any_file);
    file_anomalies.append(&mut sink.line_anomalies);
    FileVerdict {
        file: name.to_string(),
        verdict,
        lines: parsed.lines,
        accepted_lines,
        accepted_hours: if accepted_lines > 0 {
            sink.accepted_hours
        } else {
            Decimal::ZERO
        },
        header: parsed.header,
        footer: parsed.footer,
        anomalies: file_anomalies,
    }
}
