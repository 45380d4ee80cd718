//! One attestation file from bytes to [`AttestationVerdict`]: size (A01),
//! streaming read (A01), the stateless controls of each item (A04–A06),
//! and — when the caller brings one — the stateful rules of an
//! [`ItemRules`] hook.
//!
//! This is the pure core of `check` and of processing: the only input is
//! the bytes and a read-only view of the rules; the output lists every
//! anomaly found.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::{Context, Result};

use super::parse::{self, ItemFacts, ItemSink};
use super::{controls, AttestationVerdict, Item, ItemRules, Options, Stateless};
use crate::anomaly::{Anomaly, Code, Level};
use crate::billing::decide;

struct Sink<'a, H: ItemRules> {
    opts: &'a Options,
    hook: &'a mut H,
    item_anomalies: Vec<Anomaly>,
    scratch: Vec<Anomaly>,
    rejected: u32,
}

impl<H: ItemRules> ItemSink for Sink<'_, H> {
    fn item(&mut self, item: &Item, facts: &ItemFacts) {
        self.scratch.clear();
        if facts.shape_ok {
            controls::item(item, facts, self.opts.today, &mut self.scratch);
        }
        if facts.schema_ok {
            self.hook.item(item, &mut self.scratch);
        }
        if !facts.schema_ok || self.scratch.iter().any(|a| a.code.level() == Level::Line) {
            self.rejected += 1;
        }
        self.item_anomalies.append(&mut self.scratch);
    }
}

/// Checks a file on disk delivered under `name`. `Err` only when the file
/// cannot be opened or is not a regular file: anything in it gives a
/// verdict.
pub fn check_file<H: ItemRules>(path: &Path, name: &str, opts: &Options, hook: &mut H) -> Result<AttestationVerdict> {
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
pub fn check_bytes(name: &str, bytes: &[u8], opts: &Options) -> AttestationVerdict {
    check_reader(
        name,
        std::io::Cursor::new(bytes.to_vec()),
        bytes.len() as u64,
        opts,
        &mut Stateless,
    )
}

/// The whole check over any reader of `size` bytes. Never panics.
pub fn check_reader<R: Read + 'static, H: ItemRules>(
    name: &str,
    reader: R,
    size: u64,
    opts: &Options,
    hook: &mut H,
) -> AttestationVerdict {
    if size > opts.max_file_size {
        return AttestationVerdict {
            file: name.to_string(),
            verdict: crate::billing::Verdict::Rejected,
            items: 0,
            accepted: 0,
            anomalies: vec![Anomaly::file(
                Code::A01,
                None,
                None,
                format!(
                    "fichier de {size} octets : le maximum est de {} octets",
                    opts.max_file_size
                ),
            )],
        };
    }
    let mut sink = Sink {
        opts,
        hook,
        item_anomalies: Vec::new(),
        scratch: Vec::new(),
        rejected: 0,
    };
    let parsed = parse::parse(reader, &mut sink);
    let mut anomalies = parsed.anomalies;
    let any_file = anomalies.iter().any(|a| a.code.level() == Level::File);
    let (verdict, accepted) = decide(parsed.items, sink.rejected, any_file);
    anomalies.append(&mut sink.item_anomalies);
    AttestationVerdict {
        file: name.to_string(),
        verdict,
        items: parsed.items,
        accepted,
        anomalies,
    }
}
