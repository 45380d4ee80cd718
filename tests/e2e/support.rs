//! Helpers shared by the end-to-end tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Path of the binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ppas-gateway"))
}

/// Root of the repository (fixtures, schema).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether an external tool is on PATH (tests that need it fail loudly in CI,
/// where `.ci/run` installs it).
pub fn have(tool: &str) -> bool {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool} >/dev/null 2>&1"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The NIR-shaped tokens of `text`: a run of exactly 13 or 15 digits (a
/// NIR, with or without its 2-digit key), or the same with the Corsican
/// department `2A`/`2B` at its 6th and 7th characters. Longer runs (a
/// SIRET has 14 digits, a hash more) are not NIRs.
pub fn nir_like(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let is_part = |c: u8| c.is_ascii_digit() || c == b'A' || c == b'B';
        if !is_part(b[i]) || (i > 0 && b[i - 1].is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_part(b[i]) {
            i += 1;
        }
        // A token glued to other letters is a word, not a number.
        if i < b.len() && b[i].is_ascii_alphanumeric() {
            continue;
        }
        let tok = &text[start..i];
        let corsican = tok.len() > 7 && matches!(&tok[5..7], "2A" | "2B");
        let digits_elsewhere = tok
            .bytes()
            .enumerate()
            .all(|(k, c)| c.is_ascii_digit() || (corsican && (k == 5 || k == 6)));
        if (tok.len() == 13 || tok.len() == 15) && digits_elsewhere {
            found.push(tok.to_string());
        }
    }
    found
}

/// Asserts that `output` (logs, a command's stderr) names no NIR: none of
/// `known` (the NIRs the test used) anywhere, and no NIR-shaped token
/// ([`nir_like`]). `what` names the output in the failure message.
pub fn assert_no_nir(output: &str, known: &[&str], what: &str) {
    for nir in known {
        if let Some(line) = output.lines().find(|l| l.contains(nir)) {
            panic!("NIR {nir} in clear in {what}:\n{line}");
        }
    }
    for line in output.lines() {
        let found = nir_like(line);
        assert!(found.is_empty(), "NIR-shaped {found:?} in {what}:\n{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::nir_like;

    #[test]
    fn nir_like_finds_the_nir_shapes_only() {
        assert_eq!(nir_like("nir=1540321000001 ok"), ["1540321000001"]);
        assert_eq!(nir_like("\"154122A999000\","), ["154122A999000"]);
        assert_eq!(nir_like("(154032100000142)"), ["154032100000142"]);
        // A SIRET, a line number, a date, a hash, a word: none.
        assert!(nir_like("siret 73282932000074 line 12 2026-11-20T10:00:00Z").is_empty());
        assert!(nir_like("sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08").is_empty());
        assert!(nir_like("ABBA BA2A x1540321000001").is_empty());
    }
}
