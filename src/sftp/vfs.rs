//! The provider's view of the file system: client paths in, confined
//! locations out, plus the attributes and `ls -l` lines clients display.
//!
//! A provider sees a virtual tree: `/` holds exactly `in` and `out`; `/in`
//! is its inbound folder (flat: no sub-folders), `/out` its outbound folder
//! (read-only, with sub-folders such as `reports/`). A client path is only
//! ever *parsed* here — split on `/`, `.` dropped, `..` clamped at `/` the
//! way a chroot does — and the result names an area plus a relative path
//! made of plain components. Real paths are never built by joining strings:
//! every file operation goes through the area's `cap_std::fs::Dir`, so even a
//! symlink planted inside a folder cannot lead outside it.

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use chrono_tz::Europe::Paris;
use russh_sftp::protocol::{File, FileAttributes};

/// Prefix of the server's own temporary upload files (hidden, same folder as
/// the final name so that the rename is atomic). Clients can neither see nor
/// name them.
pub const TEMP_PREFIX: &str = ".sftp-";

/// Whether a name is a temporary file of the gateway: the SFTP server's
/// uploads ([`TEMP_PREFIX`]) or a file the gateway is publishing
/// ([`crate::fsutil::TEMP_PREFIX`], e.g. a report being written into
/// `/out`). Such names are not part of the provider's tree: never listed,
/// opened, stat-ed or created.
pub fn is_temporary(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX) || name.starts_with(crate::fsutil::TEMP_PREFIX)
}

/// Longest client path accepted, in bytes.
const MAX_PATH: usize = 4096;
/// Longest single name accepted, in bytes (the usual file-system limit).
const MAX_NAME: usize = 255;

/// One of the two folders a provider sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// `/in`: uploads, flat, writable.
    In,
    /// `/out`: results, read-only, with sub-folders.
    Out,
}

impl Area {
    pub fn name(self) -> &'static str {
        match self {
            Area::In => "in",
            Area::Out => "out",
        }
    }
}

/// Where a client path leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/`
    Root,
    /// `/in` or `/out` itself.
    AreaRoot(Area),
    /// Something inside an area: a relative path of plain components
    /// joined by `/` (never empty, never `.` or `..`).
    Entry(Area, String),
}

impl Target {
    /// The canonical virtual path (`/`, `/in`, `/out/reports/x.pdf`).
    pub fn virtual_path(&self) -> String {
        match self {
            Target::Root => "/".into(),
            Target::AreaRoot(a) => format!("/{}", a.name()),
            Target::Entry(a, rel) => format!("/{}/{rel}", a.name()),
        }
    }
}

/// Why a client path is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// Malformed: NUL, control or invisible characters, backslash, too long.
    Invalid(&'static str),
    /// Well-formed but outside the provider's tree (`/etc`, `/in/sub/x`,
    /// a temporary name).
    NotFound,
}

/// Parses a client path. Relative paths start at `/` (the session's
/// working directory is always `/`).
pub fn resolve(path: &str) -> Result<Target, PathError> {
    let parts = components(path)?;
    let mut it = parts.into_iter();
    let area = match it.next() {
        None => return Ok(Target::Root),
        Some("in") => Area::In,
        Some("out") => Area::Out,
        Some(_) => return Err(PathError::NotFound),
    };
    let rest: Vec<&str> = it.collect();
    if rest.is_empty() {
        return Ok(Target::AreaRoot(area));
    }
    // `/in` is flat: nothing can exist below one of its names.
    if area == Area::In && rest.len() > 1 {
        return Err(PathError::NotFound);
    }
    if rest.iter().any(|c| is_temporary(c)) {
        return Err(PathError::NotFound);
    }
    Ok(Target::Entry(area, rest.join("/")))
}

/// Splits and normalises a path: empty and `.` components dropped, `..`
/// removes the previous component and stops at the root.
fn components(path: &str) -> Result<Vec<&str>, PathError> {
    if path.len() > MAX_PATH {
        return Err(PathError::Invalid("path too long"));
    }
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            name => {
                check_name(name)?;
                out.push(name);
            }
        }
    }
    Ok(out)
}

/// Refuses names no provider file legitimately has and that could fool a
/// person or a program reading a listing.
fn check_name(name: &str) -> Result<(), PathError> {
    if name.len() > MAX_NAME {
        return Err(PathError::Invalid("name too long"));
    }
    for ch in name.chars() {
        let bad = match ch {
            '\0' => Some("NUL character in name"),
            '\\' => Some("backslash in name"),
            c if c.is_control() => Some("control character in name"),
            // What a lossy UTF-8 decoding leaves for invalid bytes.
            '\u{FFFD}' => Some("name is not valid UTF-8"),
            // Bidirectional overrides and invisible marks: a name must read
            // the same in a listing as on disk.
            '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}' => Some("invisible or bidirectional character in name"),
            _ => None,
        };
        if let Some(why) = bad {
            return Err(PathError::Invalid(why));
        }
    }
    Ok(())
}

/// Whether the intake takes a file of this name (spec §2: names starting
/// with `.` or `~` and ending in `.part`, `.tmp`, `.filepart` wait until
/// renamed).
pub fn intake_visible(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !(name.starts_with('.')
        || name.starts_with('~')
        || lower.ends_with(".part")
        || lower.ends_with(".tmp")
        || lower.ends_with(".filepart"))
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;

/// Attributes of a folder of the virtual tree.
pub fn dir_attrs(writable: bool, mtime: Option<SystemTime>) -> FileAttributes {
    let perm = if writable { 0o755 } else { 0o555 };
    FileAttributes {
        size: Some(0),
        permissions: Some(S_IFDIR | perm),
        atime: mtime.map(unix),
        mtime: mtime.map(unix),
        ..Default::default()
    }
}

/// Attributes of a regular file (`/in` files are writable, `/out` ones not).
pub fn file_attrs(size: u64, writable: bool, mtime: Option<SystemTime>) -> FileAttributes {
    let perm = if writable { 0o644 } else { 0o444 };
    FileAttributes {
        size: Some(size),
        permissions: Some(S_IFREG | perm),
        atime: mtime.map(unix),
        mtime: mtime.map(unix),
        ..Default::default()
    }
}

/// Attributes from real metadata, as the provider may see them. `None` for
/// anything that is neither a regular file nor a folder (symlinks, sockets):
/// such entries are not part of the provider's tree.
pub fn attrs_of(meta: &cap_std::fs::Metadata, area: Area) -> Option<FileAttributes> {
    let mtime = meta.modified().ok().map(|t| t.into_std());
    if meta.is_symlink() {
        None
    } else if meta.is_dir() {
        Some(dir_attrs(area == Area::In, mtime))
    } else if meta.is_file() {
        Some(file_attrs(meta.len(), area == Area::In, mtime))
    } else {
        None
    }
}

fn unix(t: SystemTime) -> u32 {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// A listing entry with an `ls -l` style long name (FileZilla and WinSCP
/// parse it; OpenSSH `ls -l` prints it as is).
pub fn entry(name: &str, attrs: FileAttributes, user: &str, group: &str, now: SystemTime) -> File {
    let longname = longname(name, &attrs, user, group, now);
    File {
        filename: name.to_string(),
        longname,
        attrs,
    }
}

/// `drwxr-xr-x    1 login    provider        0 Nov 22 07:28 name`, the
/// date as `ls` prints it: time of day within six months, else the year.
pub fn longname(name: &str, attrs: &FileAttributes, user: &str, group: &str, now: SystemTime) -> String {
    let mode = attrs.permissions.unwrap_or(0);
    let kind = if mode & 0o170000 == S_IFDIR { 'd' } else { '-' };
    let mut perms = String::with_capacity(9);
    for shift in [6u32, 3, 0] {
        let bits = (mode >> shift) & 7;
        perms.push(if bits & 4 != 0 { 'r' } else { '-' });
        perms.push(if bits & 2 != 0 { 'w' } else { '-' });
        perms.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    let mtime = i64::from(attrs.mtime.unwrap_or(0));
    let now_secs = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let when = DateTime::<Utc>::from_timestamp(mtime, 0)
        .unwrap_or_default()
        .with_timezone(&Paris);
    let six_months = 182 * 24 * 3600;
    let date = if (now_secs - mtime).abs() < six_months {
        when.format("%b %e %H:%M").to_string()
    } else {
        when.format("%b %e  %Y").to_string()
    };
    format!(
        "{kind}{perms}    1 {user:<8} {group:<8} {size:>8} {date} {name}",
        size = attrs.size.unwrap_or(0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(p: &str) -> Result<Target, PathError> {
        resolve(p)
    }

    #[test]
    fn root_and_areas() {
        assert_eq!(t("/"), Ok(Target::Root));
        assert_eq!(t("."), Ok(Target::Root));
        assert_eq!(t(""), Ok(Target::Root));
        assert_eq!(t("/in/"), Ok(Target::AreaRoot(Area::In)));
        assert_eq!(t("out"), Ok(Target::AreaRoot(Area::Out)));
        assert_eq!(
            t("/out/./reports//a.pdf"),
            Ok(Target::Entry(Area::Out, "reports/a.pdf".into()))
        );
    }

    #[test]
    fn dot_dot_never_climbs_above_the_root() {
        assert_eq!(t("/in/../../"), Ok(Target::Root));
        assert_eq!(t("/in/../../etc/passwd"), Err(PathError::NotFound));
        assert_eq!(t("../../../in/x.xml"), Ok(Target::Entry(Area::In, "x.xml".into())));
        assert_eq!(t("/out/reports/../../in/a"), Ok(Target::Entry(Area::In, "a".into())));
        assert_eq!(t("/etc/passwd"), Err(PathError::NotFound));
        assert_eq!(t("/inbound/x"), Err(PathError::NotFound));
    }

    #[test]
    fn in_is_flat_and_temp_names_are_invisible() {
        assert_eq!(t("/in/sub/x.xml"), Err(PathError::NotFound));
        assert_eq!(t("/in/.sftp-1-2"), Err(PathError::NotFound));
        assert_eq!(t("/out/a/.sftp-x/b"), Err(PathError::NotFound));
        assert_eq!(t("/out/reports/.ppas-tmp-12-3-x.pdf"), Err(PathError::NotFound));
        assert_eq!(t("/out/.ppas-tmp-dir/x"), Err(PathError::NotFound));
        assert_eq!(t("/in/.ppas-tmp-12-3-x.xml"), Err(PathError::NotFound));
        assert!(matches!(t("/in/.hidden"), Ok(Target::Entry(Area::In, _))));
    }

    #[test]
    fn odd_names_are_refused() {
        for p in [
            "/in/a\0b",
            "/in/a\nb",
            "/in/a\\..\\b",
            "/in/\u{202E}lmx.exe",
            "/in/a\u{FFFD}",
            "/in/\u{200B}x",
        ] {
            assert!(matches!(t(p), Err(PathError::Invalid(_))), "{p:?}");
        }
        let long = format!("/in/{}", "a".repeat(256));
        assert!(matches!(t(&long), Err(PathError::Invalid(_))));
        assert!(matches!(t("/in/é-accentué.xml"), Ok(Target::Entry(..))));
    }

    #[test]
    fn virtual_paths_round_trip() {
        for p in ["/", "/in", "/out", "/out/reports/a.pdf", "/in/x.xml"] {
            assert_eq!(t(p).unwrap().virtual_path(), p);
        }
    }

    #[test]
    fn intake_visibility_follows_the_spool_rule() {
        assert!(intake_visible("03_150521_100_21999000.xml"));
        for n in [".x", "~x", "a.part", "a.TMP", "a.xml.filepart"] {
            assert!(!intake_visible(n), "{n}");
        }
    }

    #[test]
    fn long_names_look_like_ls() {
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_790_000_000);
        let recent = file_attrs(1234, true, Some(now - std::time::Duration::from_secs(3600)));
        let l = longname("a.xml", &recent, "alice", "saad1", now);
        assert!(l.starts_with("-rw-r--r--    1 alice    saad1        1234 "), "{l}");
        assert!(l.ends_with(" a.xml"), "{l}");
        assert!(l.contains(':'), "recent files show the time: {l}");
        let old = dir_attrs(false, Some(UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000)));
        let l = longname("reports", &old, "alice", "saad1", now);
        assert!(l.starts_with("dr-xr-xr-x "), "{l}");
        assert!(l.contains(" 2020 "), "old entries show the year: {l}");
    }
}
