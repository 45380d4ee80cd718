//! The name of a document's root element, read cheaply: what tells a
//! billing file (`factbord`) from a visit-attestation file (`attvisites`).
//!
//! In: a file. Out: the root element's name as written (with its prefix,
//! if any), or `None` when the bytes are not well-formed XML before a root
//! element is found (or there is none). The start of the file goes through
//! the same input layer and lexer as the readers (BOM, declared encoding,
//! XML declaration, comments, processing instructions, blanks), in small
//! reads that stop at the root's start tag: the rest of the file is never
//! read. Nothing here judges the document: the reader of its kind does.
//!
//! The input layer checks the bytes it reads ahead of the lexer, so an
//! undecodable byte just after the root's start tag (a Latin-1 `é` in a
//! file declared UTF-8) stops it before the tag is handed out. Then the
//! start of the file is read again cut after each `>` in turn: the root's
//! name is found when the bytes up to its start tag are well-formed,
//! whatever follows (the reader of its kind reports what does). A
//! DOCTYPE, which the lexer refuses, is looked past the same way (blanked
//! out, in a file whose encoding is ASCII-compatible): the root behind it
//! is named, and the reader of its kind refuses the DOCTYPE in its own
//! words.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

use super::input::{self, Encoding};
use super::lexer::{Lexer, Token};

/// Bytes handed to the scanner per read: the prolog of a real file fits in
/// one or two of them.
const STEP: usize = 4096;
/// How much of the start is read again when the first reading failed, and
/// how many cuts of it are tried.
const PREFIX: usize = 64 * 1024;
const MAX_CUTS: usize = 64;

/// The name of the document's root element (see the module documentation).
/// `Err` only when the file cannot be opened or read.
pub fn root_element(path: &Path) -> Result<Option<String>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let failed = Arc::new(Mutex::new(None));
    let reader = Steps {
        inner: file,
        failed: Arc::clone(&failed),
    };
    let name = root_of(reader);
    if let Some(e) = failed.lock().map_or(None, |mut f| f.take()) {
        return Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display())));
    }
    if name.is_some() {
        return Ok(name);
    }
    let mut prefix = Vec::with_capacity(PREFIX);
    File::open(path)
        .and_then(|f| f.take(PREFIX as u64).read_to_end(&mut prefix))
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(root_in_prefix(&prefix))
}

/// The root element's name in the start of a document whose bytes after
/// the root's start tag may be anything: the prefix is read cut after each
/// `>` (a UTF-16 one in a UTF-16 document) until a cut shows the root.
pub fn root_in_prefix(prefix: &[u8]) -> Option<String> {
    let (enc, _) = input::sniff(&prefix[..prefix.len().min(1024)]).ok()?;
    root_in_cuts(prefix, enc).or_else(|| {
        if matches!(enc, Encoding::Utf16Le | Encoding::Utf16Be) {
            return None;
        }
        root_in_cuts(&without_doctype(prefix)?, enc)
    })
}

fn root_in_cuts(prefix: &[u8], enc: Encoding) -> Option<String> {
    let cuts = (0..prefix.len()).filter_map(|i| {
        let unit = match enc {
            Encoding::Utf16Le => i % 2 == 0 && prefix.get(i..i + 2) == Some(b">\0".as_slice()),
            Encoding::Utf16Be => i % 2 == 0 && prefix.get(i..i + 2) == Some(b"\0>".as_slice()),
            _ => prefix[i] == b'>',
        };
        let width = if matches!(enc, Encoding::Utf16Le | Encoding::Utf16Be) {
            2
        } else {
            1
        };
        unit.then_some(i + width)
    });
    cuts.take(MAX_CUTS)
        .find_map(|cut| root_of(io::Cursor::new(prefix[..cut].to_vec())))
}

/// The root element's name read from any reader (see [`root_element`]).
pub fn root_of<R: Read + 'static>(reader: R) -> Option<String> {
    let (scanner, _) = input::open(reader).ok()?;
    let mut lexer = Lexer::new(scanner);
    let mut first = true;
    loop {
        let lexeme = lexer.next_token().ok()?;
        match lexeme.token {
            Token::Start(tag) => return Some(String::from_utf8_lossy(tag.name).into_owned()),
            // The declaration only opens the document.
            Token::Decl if !first => return None,
            Token::Decl | Token::Comment => {}
            Token::Pi(target) if !target.eq_ignore_ascii_case(b"xml") => {}
            Token::Text { blank: true, .. } => {}
            _ => return None,
        }
        first = false;
    }
}

/// The prefix with its first DOCTYPE declaration blanked out (line feeds
/// kept), when there is one and it ends in the prefix. The end is found as
/// the lexer finds it: quoted literals, the internal subset, and the
/// comments, PIs and declarations in it are skipped.
fn without_doctype(prefix: &[u8]) -> Option<Vec<u8>> {
    let start = prefix.windows(9).position(|w| w.eq_ignore_ascii_case(b"<!DOCTYPE"))?;
    let w = prefix;
    let quoted = |k: usize| -> Option<usize> { Some(k + 2 + memchr::memchr(w[k], &w[k + 1..])?) };
    let find = |k: usize, pat: &[u8]| memchr::memmem::find(&w[k..], pat);
    let mut k = start + 9;
    let end = loop {
        match *w.get(k)? {
            b'\'' | b'"' => k = quoted(k)?,
            b'[' => break None,
            b'>' => break Some(k + 1),
            _ => k += 1,
        }
    };
    let end = match end {
        Some(end) => end,
        None => {
            k += 1;
            loop {
                match *w.get(k)? {
                    b']' => break k + 2 + memchr::memchr(b'>', &w[k + 1..])?,
                    b'<' if w[k..].starts_with(b"<!--") => k += 7 + find(k + 4, b"-->")?,
                    b'<' if w[k..].starts_with(b"<?") => k += 4 + find(k + 2, b"?>")?,
                    b'<' => {
                        k += 1;
                        loop {
                            match *w.get(k)? {
                                b'\'' | b'"' => k = quoted(k)?,
                                b'>' => break,
                                _ => k += 1,
                            }
                        }
                        k += 1;
                    }
                    _ => k += 1,
                }
            }
        }
    };
    let mut out = prefix.to_vec();
    for b in &mut out[start..end] {
        if *b != b'\n' {
            *b = b' ';
        }
    }
    Some(out)
}

/// A reader that hands out at most [`STEP`] bytes a read, so that the
/// scanner reads no further than the lexer needs, and keeps an I/O error
/// (which the scanner would turn into a well-formedness error) for the
/// caller.
struct Steps<R> {
    inner: R,
    failed: Arc<Mutex<Option<io::Error>>>,
}

impl<R: Read> Read for Steps<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(STEP);
        match self.inner.read(&mut buf[..n]) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let kept = io::Error::new(e.kind(), e.to_string());
                if let Ok(mut f) = self.failed.lock() {
                    f.get_or_insert(e);
                }
                Err(kept)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// As `root_element` reads a file.
    fn root(bytes: &[u8]) -> Option<String> {
        root_of(Cursor::new(bytes.to_vec())).or_else(|| root_in_prefix(&bytes[..bytes.len().min(PREFIX)]))
    }

    #[test]
    fn finds_the_root_behind_the_prolog() {
        assert_eq!(
            root(b"<attvisites><attvisite/></attvisites>").as_deref(),
            Some("attvisites")
        );
        assert_eq!(
            root(b"\xEF\xBB\xBF<?xml version='1.0' encoding='UTF-8'?>\n<!-- c -->\n<?pi x?>\n  <factbord>").as_deref(),
            Some("factbord")
        );
        assert_eq!(
            root(b"<?xml version=\"1.0\" encoding=\"windows-1252\"?><attvisites>\x80").as_deref(),
            Some("attvisites")
        );
        assert_eq!(
            root(b"<?xml version=\"1.0\" encoding=\"ISO-8859-15\"?>\r\n<attvisites xmlns:xsi='x'>").as_deref(),
            Some("attvisites")
        );
        assert_eq!(
            root(b"<p:attvisites xmlns:p='urn:x'/>").as_deref(),
            Some("p:attvisites")
        );
        let utf16: Vec<u8> = "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-16\"?><attvisites>"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        assert_eq!(root(&utf16).as_deref(), Some("attvisites"));
        // A long prolog is read through.
        let mut long = b"<?xml version=\"1.0\"?>".to_vec();
        for _ in 0..5000 {
            long.extend_from_slice(b"<!-- commentaire -->\n");
        }
        long.extend_from_slice(b"<attvisites>");
        assert_eq!(root(&long).as_deref(), Some("attvisites"));
        // What follows the root's start tag does not matter.
        assert_eq!(root(b"<attvisites>\x01\xFF</factbord>").as_deref(), Some("attvisites"));
        assert_eq!(
            root(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- a > b -->\n<attvisites>\n<attvisite>r\xE9alis\xE9")
                .as_deref(),
            Some("attvisites")
        );
        let utf16: Vec<u8> = "\u{feff}<?xml version=\"1.0\"?><!-- > --><attvisites>"
            .encode_utf16()
            .flat_map(|u| u.to_be_bytes())
            .chain([0xD8, 0x00, 0x00, 0x41])
            .collect();
        assert_eq!(root(&utf16).as_deref(), Some("attvisites"));
    }

    #[test]
    fn none_when_not_well_formed_before_a_root() {
        for bad in [
            &b""[..],
            b"   \n",
            b"<!-- only a comment -->",
            b"plain text",
            b"<!-- c --><?xml version=\"1.0\"?><attvisites/>",
            b"<?xml version=\"1.0\" encoding=\"EBCDIC\"?><attvisites/>",
            b"<?xml version=\"2.0\"?><attvisites/>",
            b"\x01<attvisites/>",
            b"&amp;<attvisites/>",
            b"<![CDATA[x]]><attvisites/>",
            b"<attvisites",
            b"<attvisites a=1>",
            b"<1attvisites>",
            b"\xFF\xFE\x00",
            b"\xC3<attvisites/>",
        ] {
            assert_eq!(root(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_doctype_is_looked_past() {
        for doc in [
            &b"<!DOCTYPE attvisites><attvisites/>"[..],
            b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<!DOCTYPE attvisites [\n<!ENTITY e \"\xE9>\">\n<!-- ]> -->\n<?p ]>?>\n]>\n<attvisites>",
            b"<!doctype attvisites SYSTEM \"a>b.dtd\"><attvisites>&e;</attvisites>",
        ] {
            assert_eq!(root(doc).as_deref(), Some("attvisites"), "{:?}", String::from_utf8_lossy(doc));
        }
        for doc in [
            &b"<!DOCTYPE attvisites [<!ENTITY e \"x\">"[..],
            b"<!DOCTYPE attvisites><!DOCTYPE attvisites><attvisites/>",
            b"<!DOCTYPE attvisites>x<attvisites/>",
        ] {
            assert_eq!(root(doc), None, "{:?}", String::from_utf8_lossy(doc));
        }
    }

    #[test]
    fn reads_only_the_start_of_a_file() {
        struct Counting(Cursor<Vec<u8>>, Arc<Mutex<u64>>);
        impl Read for Counting {
            fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
                let n = self.0.read(b)?;
                *self.1.lock().unwrap() += n as u64;
                Ok(n)
            }
        }
        let mut doc = b"<?xml version=\"1.0\"?>\n<attvisites>".to_vec();
        doc.resize(50 << 20, b' ');
        let read = Arc::new(Mutex::new(0));
        let steps = Steps {
            inner: Counting(Cursor::new(doc), Arc::clone(&read)),
            failed: Arc::new(Mutex::new(None)),
        };
        assert_eq!(root_of(steps).as_deref(), Some("attvisites"));
        assert!(
            *read.lock().unwrap() <= 4 * STEP as u64,
            "{} bytes read",
            read.lock().unwrap()
        );
    }

    #[test]
    fn files_on_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let p = dir.join("a.xml");
        std::fs::write(&p, b"<attvisites/>").unwrap();
        assert_eq!(root_element(&p).unwrap().as_deref(), Some("attvisites"));
        std::fs::write(&p, b"<attvisites><attvisite>\xE9\x01").unwrap();
        assert_eq!(root_element(&p).unwrap().as_deref(), Some("attvisites"));
        std::fs::write(&p, b"<!DOCTYPE x><attvisites>").unwrap();
        assert_eq!(root_element(&p).unwrap().as_deref(), Some("attvisites"));
        std::fs::write(&p, b"<!-- <attvisites> -->").unwrap();
        assert_eq!(root_element(&p).unwrap(), None);
        let missing = dir.join("missing.xml");
        assert!(root_element(&missing).is_err());
        // A directory opens but cannot be read: an error, not a verdict.
        assert!(root_element(&dir).is_err());
    }
}
