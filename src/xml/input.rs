//! From raw bytes to a checked UTF-8 stream for the lexer.
//!
//! In: any `Read` (a file, a socket, a slice). Out: a [`Scanner`] — a
//! window of UTF-8 only, which the lexer ([`super::lexer`]) scans in place
//! and refills, and which stops with a recorded [`InputError`] (line and
//! message) at the first byte that XML 1.0 forbids (undecodable text, a
//! control character, U+FFFE/U+FFFF).
//!
//! Encodings: UTF-8 (BOM allowed), UTF-16 with a BOM, and the declared
//! ISO-8859-1, ISO-8859-15 and Windows-1252, transcoded on the fly so memory
//! stays flat whatever the file size. Anything else is refused.

use std::io::{self, Read};

/// The encodings the gateway reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Utf16Le,
    Utf16Be,
    Latin1,
    Latin9,
    Windows1252,
}

/// Why the input stopped: always a well-formedness problem (F01 / A01).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub line: u64,
    pub message: String,
}

/// How many bytes are looked at to find the BOM and the XML declaration.
const SNIFF_LEN: usize = 1024;

/// Looks at the start of a document and returns its encoding and how many
/// BOM bytes to skip. `Err` carries a French message.
pub fn sniff(prefix: &[u8]) -> Result<(Encoding, usize), String> {
    let (bom_enc, skip) = if prefix.starts_with(&[0xEF, 0xBB, 0xBF]) {
        (Some(Encoding::Utf8), 3)
    } else if prefix.starts_with(&[0xFF, 0xFE]) {
        (Some(Encoding::Utf16Le), 2)
    } else if prefix.starts_with(&[0xFE, 0xFF]) {
        (Some(Encoding::Utf16Be), 2)
    } else {
        (None, 0)
    };
    if matches!(bom_enc, Some(Encoding::Utf16Le | Encoding::Utf16Be)) {
        // The declaration is in UTF-16 too: trust the BOM.
        return Ok((bom_enc.unwrap(), skip));
    }
    let declared = declared_encoding(&prefix[skip..]);
    let enc = match declared.as_deref() {
        None => Encoding::Utf8,
        Some(name) => match name.to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" | "us-ascii" | "ascii" => Encoding::Utf8,
            "iso-8859-1" | "iso8859-1" | "iso_8859-1" | "latin1" | "latin-1" | "l1" | "iso-ir-100" | "cp819"
            | "ibm819" => Encoding::Latin1,
            "iso-8859-15" | "iso8859-15" | "iso_8859-15" | "latin-9" | "latin9" => Encoding::Latin9,
            "windows-1252" | "cp1252" | "x-cp1252" => Encoding::Windows1252,
            "utf-16" | "utf16" | "utf-16le" | "utf-16be" => {
                return Err(format!("encodage déclaré {name} sans marque d'ordre des octets (BOM)"))
            }
            _ => return Err(format!("encodage déclaré non pris en charge : {name}")),
        },
    };
    if bom_enc == Some(Encoding::Utf8) && enc != Encoding::Utf8 {
        return Err(format!(
            "le fichier commence par une marque UTF-8 mais déclare l'encodage {}",
            declared.unwrap_or_default()
        ));
    }
    Ok((enc, skip))
}

/// The `encoding` pseudo-attribute of a leading `<?xml …?>`, if any.
fn declared_encoding(doc: &[u8]) -> Option<String> {
    if !doc.starts_with(b"<?xml") {
        return None;
    }
    let end = memchr::memmem::find(doc, b"?>")?;
    let decl = &doc[5..end];
    let at = memchr::memmem::find(decl, b"encoding")?;
    let rest = &decl[at + 8..];
    let rest = trim_ws_start(rest);
    let rest = trim_ws_start(rest.strip_prefix(b"=")?);
    let quote = *rest.first()?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let close = memchr::memchr(quote, &rest[1..])?;
    Some(String::from_utf8_lossy(&rest[1..1 + close]).into_owned())
}

fn trim_ws_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|&&c| super::is_ws(c)).count();
    &b[n..]
}

/// Opens a document for parsing: sniffs the encoding, then wraps the rest
/// in a transcoder (if needed) and a [`Scanner`].
pub fn open<R: Read + 'static>(mut inner: R) -> Result<(Scanner<Box<dyn Read>>, Encoding), InputError> {
    let mut prefix = Vec::with_capacity(SNIFF_LEN);
    (&mut inner)
        .take(SNIFF_LEN as u64)
        .read_to_end(&mut prefix)
        .map_err(|e| InputError {
            line: 1,
            message: format!("lecture impossible : {e}"),
        })?;
    let (enc, skip) = sniff(&prefix).map_err(|message| InputError { line: 1, message })?;
    let rest = io::Cursor::new(prefix).chain(inner);
    let mut rest: Box<dyn Read> = Box::new(rest);
    if skip > 0 {
        let mut bom = vec![0; skip];
        rest.read_exact(&mut bom).map_err(|e| InputError {
            line: 1,
            message: format!("lecture impossible : {e}"),
        })?;
    }
    let decoded: Box<dyn Read> = match enc {
        Encoding::Utf8 => rest,
        other => Box::new(Transcoder::new(rest, other)),
    };
    Ok((Scanner::new(decoded), enc))
}

/// Windows-1252 code points for bytes 0x80–0x9F; 0 for the five bytes
/// Windows-1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D): a file
/// holding one is not in its declared encoding (F01), as libxml2 (iconv)
/// also judges, rather than silently read as a C1 control character.
const CP1252_HIGH: [u16; 32] = [
    0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017D, 0, 0,
    0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178,
];

fn latin9(b: u8) -> char {
    match b {
        0xA4 => '€',
        0xA6 => 'Š',
        0xA8 => 'š',
        0xB4 => 'Ž',
        0xB8 => 'ž',
        0xBC => 'Œ',
        0xBD => 'œ',
        0xBE => 'Ÿ',
        _ => b as char,
    }
}

/// Streams a single-byte or UTF-16 encoding as UTF-8.
struct Transcoder<R> {
    inner: R,
    enc: Encoding,
    raw: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    /// A UTF-16 high surrogate waiting for its pair, or an odd trailing byte.
    pending: Vec<u8>,
    /// A decoding error met after some good text: reported once that text
    /// has been read, so that the error's line is the bad byte's.
    error: Option<String>,
}

impl<R: Read> Transcoder<R> {
    fn new(inner: R, enc: Encoding) -> Self {
        Transcoder {
            inner,
            enc,
            raw: vec![0; 32 * 1024],
            out: Vec::with_capacity(64 * 1024),
            out_pos: 0,
            pending: Vec::new(),
            error: None,
        }
    }

    fn refill(&mut self) -> io::Result<bool> {
        if let Some(e) = self.error.take() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        let n = self.inner.read(&mut self.raw)?;
        self.out.clear();
        self.out_pos = 0;
        if n == 0 {
            if !self.pending.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "UTF-16 tronqué en fin de fichier",
                ));
            }
            return Ok(false);
        }
        let raw = &self.raw[..n];
        match self.enc {
            Encoding::Latin1 => {
                for &b in raw {
                    push_char(&mut self.out, b as char);
                }
            }
            Encoding::Latin9 => {
                for &b in raw {
                    push_char(&mut self.out, latin9(b));
                }
            }
            Encoding::Windows1252 => {
                for &b in raw {
                    let c = if (0x80..0xA0).contains(&b) {
                        match CP1252_HIGH[(b - 0x80) as usize] {
                            0 => {
                                self.error = Some(format!("octet 0x{b:02X} non défini en Windows-1252"));
                                break;
                            }
                            u => char::from_u32(u32::from(u)).unwrap_or('\u{FFFD}'),
                        }
                    } else {
                        b as char
                    };
                    push_char(&mut self.out, c);
                }
            }
            Encoding::Utf16Le | Encoding::Utf16Be => {
                let mut bytes = std::mem::take(&mut self.pending);
                bytes.extend_from_slice(raw);
                let even = bytes.len() & !1;
                let le = self.enc == Encoding::Utf16Le;
                let units: Vec<u16> = bytes[..even]
                    .chunks_exact(2)
                    .map(|c| {
                        if le {
                            u16::from_le_bytes([c[0], c[1]])
                        } else {
                            u16::from_be_bytes([c[0], c[1]])
                        }
                    })
                    .collect();
                // Keep a trailing high surrogate for the next read.
                let keep_units = match units.last() {
                    Some(u) if (0xD800..0xDC00).contains(u) => 1,
                    _ => 0,
                };
                for r in char::decode_utf16(units[..units.len() - keep_units].iter().copied()) {
                    match r {
                        Ok(c) => push_char(&mut self.out, c),
                        Err(_) => return Err(io::Error::new(io::ErrorKind::InvalidData, "UTF-16 invalide")),
                    }
                }
                self.pending = bytes[even - 2 * keep_units..].to_vec();
            }
            Encoding::Utf8 => self.out.extend_from_slice(raw),
        }
        Ok(true)
    }
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut b = [0; 4];
    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
}

impl<R: Read> Read for Transcoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.out_pos == self.out.len() {
            if !self.refill()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.out.len() - self.out_pos);
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

/// A window over UTF-8 bytes that refuses bytes XML forbids and knows the
/// line of its first byte.
pub struct Scanner<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    filled: usize,
    /// Bytes of the buffer already checked (always ≥ `filled` after a fill).
    checked: usize,
    /// Newlines in the bytes consumed so far.
    newlines: u64,
    /// An incomplete UTF-8 sequence at the end of the checked bytes.
    carry: usize,
    error: Option<InputError>,
    bytes_read: u64,
}

const BUF_LEN: usize = 256 * 1024;

impl<R: Read> Scanner<R> {
    pub fn new(inner: R) -> Self {
        Self::with_capacity(inner, BUF_LEN)
    }

    /// A scanner whose buffer starts at `len` bytes (tests use tiny ones so
    /// that tokens span refills).
    pub fn with_capacity(inner: R, len: usize) -> Self {
        Scanner {
            inner,
            buf: vec![0; len.max(4)].into_boxed_slice(),
            pos: 0,
            filled: 0,
            checked: 0,
            newlines: 0,
            carry: 0,
            error: None,
            bytes_read: 0,
        }
    }

    /// 1-based line of the next unconsumed byte.
    pub fn line(&self) -> u64 {
        self.newlines + 1
    }

    /// The first forbidden byte met, if any (the parser then sees an I/O error).
    pub fn error(&self) -> Option<&InputError> {
        self.error.as_ref()
    }

    /// Bytes of UTF-8 read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    fn fail(&mut self, at: usize, message: String) -> io::Error {
        let line = self.newlines + 1 + memchr::memchr_iter(b'\n', &self.buf[self.pos..at]).count() as u64;
        self.error = Some(InputError {
            line,
            message: message.clone(),
        });
        io::Error::new(io::ErrorKind::InvalidData, message)
    }

    /// Checks `buf[checked..filled]`: control characters, U+FFFE/U+FFFF, UTF-8.
    fn check_new(&mut self) -> io::Result<()> {
        let start = self.checked - self.carry;
        let region = &self.buf[start..self.filled];
        let mut bad = false;
        for &b in region {
            bad |= (b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r');
        }
        if bad {
            let i = region
                .iter()
                .position(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
                .unwrap_or(0);
            let b = region[i];
            return Err(self.fail(start + i, format!("caractère interdit en XML (code {b:#04x})")));
        }
        match std::str::from_utf8(region) {
            Ok(_) => self.carry = 0,
            Err(e) if e.error_len().is_none() => self.carry = region.len() - e.valid_up_to(),
            Err(e) => {
                let at = start + e.valid_up_to();
                return Err(self.fail(at, "texte non décodable en UTF-8 (vérifier l'encodage déclaré)".into()));
            }
        }
        // U+FFFE and U+FFFF are not XML characters (EF BF BE / EF BF BF).
        if let Some(i) = memchr::memmem::find(region, &[0xEF, 0xBF]) {
            let mut j = i;
            while j + 2 < region.len() + 1 {
                if region
                    .get(j..j + 3)
                    .is_some_and(|s| s == [0xEF, 0xBF, 0xBE] || s == [0xEF, 0xBF, 0xBF])
                {
                    return Err(self.fail(start + j, "caractère interdit en XML (U+FFFE/U+FFFF)".into()));
                }
                match memchr::memmem::find(&region[j + 1..], &[0xEF, 0xBF]) {
                    Some(k) => j = j + 1 + k,
                    None => break,
                }
            }
        }
        self.checked = self.filled;
        Ok(())
    }
}

/// The sliding window the lexer scans in place (`crate::xml::lexer`): it
/// reads borrowed slices of the buffer, and bytes only move when a token
/// spans a refill.
impl<R: Read> Scanner<R> {
    /// The checked UTF-8 bytes not consumed yet. Never ends inside a
    /// character.
    #[inline]
    pub fn window(&self) -> &[u8] {
        &self.buf[self.pos..self.filled - self.carry]
    }

    /// Consumes the first `n` bytes of the window; `line` is the line of
    /// the byte that follows them. The lexer counts lines as it scans, so
    /// the scanner does not count them a second time.
    #[inline]
    pub fn advance(&mut self, n: usize, line: u64) {
        self.pos = (self.pos + n).min(self.filled - self.carry);
        self.newlines = line.saturating_sub(1);
    }

    /// Reads more input behind the window, first moving the window to the
    /// front of the buffer, and doubling the buffer when the window already
    /// fills it (the caller bounds how long a token may be). `Ok(false)` at
    /// the end of the input; `Err` when the input stopped, with
    /// [`Scanner::error`] saying why and where.
    pub fn more(&mut self) -> io::Result<bool> {
        if let Some(e) = &self.error {
            return Err(io::Error::new(io::ErrorKind::InvalidData, e.message.clone()));
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.filled, 0);
            self.filled -= self.pos;
            self.checked -= self.pos;
            self.pos = 0;
        }
        let visible = self.filled - self.carry;
        loop {
            if self.filled == self.buf.len() {
                let mut grown = std::mem::take(&mut self.buf).into_vec();
                grown.resize(grown.len() * 2, 0);
                self.buf = grown.into_boxed_slice();
            }
            let n = match self.inner.read(&mut self.buf[self.filled..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    let at = self.filled - self.carry;
                    return Err(self.fail(at, format!("texte non décodable : {e}")));
                }
                Err(e) => return Err(e),
            };
            if n == 0 {
                if self.carry > 0 {
                    let at = self.filled - self.carry;
                    return Err(self.fail(at, "texte UTF-8 tronqué en fin de fichier".into()));
                }
                return Ok(false);
            }
            self.bytes_read += n as u64;
            self.filled += n;
            self.check_new()?;
            // Only part of a character arrived: it is not visible yet.
            if self.filled - self.carry > visible {
                return Ok(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> (Result<String, InputError>, Encoding) {
        let (mut s, enc) = match open(io::Cursor::new(bytes.to_vec())) {
            Ok(x) => x,
            Err(e) => return (Err(e), Encoding::Utf8),
        };
        (drain(&mut s), enc)
    }

    /// The whole input through the window, as the lexer reads it.
    fn drain<R: Read>(s: &mut Scanner<R>) -> Result<String, InputError> {
        let (mut out, mut line) = (Vec::new(), 1);
        loop {
            let w = s.window();
            line += memchr::memchr_iter(b'\n', w).count() as u64;
            out.extend_from_slice(w);
            let n = w.len();
            s.advance(n, line);
            match s.more() {
                Ok(true) => {}
                Ok(false) => return Ok(String::from_utf8(out).unwrap()),
                Err(_) => return Err(s.error().cloned().unwrap()),
            }
        }
    }

    #[test]
    fn latin1_and_cp1252_are_transcoded() {
        let doc = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>\xe9</a>";
        let (r, enc) = read_all(doc);
        assert_eq!(enc, Encoding::Latin1);
        assert!(r.unwrap().ends_with("<a>é</a>"));
        let doc = b"<?xml version='1.0' encoding='windows-1252'?><a>\x80\x9c</a>";
        assert!(read_all(doc).0.unwrap().ends_with("<a>€œ</a>"));
    }

    #[test]
    fn bytes_windows_1252_leaves_undefined_are_refused_at_their_line() {
        for b in [0x81u8, 0x8D, 0x8F, 0x90, 0x9D] {
            let mut doc = b"<?xml version='1.0' encoding='windows-1252'?>\n<a>\n\x80".to_vec();
            doc.push(b);
            doc.extend_from_slice(b"</a>\n");
            let e = read_all(&doc).0.unwrap_err();
            assert_eq!(e.line, 3, "0x{b:02X}: {e:?}");
            assert!(e.message.contains(&format!("0x{b:02X}")), "{}", e.message);
        }
    }

    #[test]
    fn bom_and_utf16_are_read() {
        let (r, _) = read_all(b"\xEF\xBB\xBF<a/>");
        assert_eq!(r.unwrap(), "<a/>");
        let utf16: Vec<u8> = "\u{feff}<a>é</a>"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        assert_eq!(read_all(&utf16).0.unwrap(), "<a>é</a>");
    }

    #[test]
    fn forbidden_bytes_stop_with_their_line() {
        let (r, _) = read_all(b"<a>\n\nx\x01</a>");
        assert_eq!(r.unwrap_err().line, 3);
        let (r, _) = read_all(b"<a>\n\xff</a>");
        assert_eq!(r.unwrap_err().line, 2);
        let (r, _) = read_all(b"<a>\xef\xbf\xbf</a>");
        assert!(r.is_err());
        let (r, _) = read_all(b"<a>\xc3");
        assert!(r.is_err());
    }

    #[test]
    fn unsupported_encoding_is_refused() {
        let e = sniff(b"<?xml version=\"1.0\" encoding=\"EBCDIC\"?>").unwrap_err();
        assert!(e.contains("EBCDIC"));
        assert!(sniff(b"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>").is_err());
    }

    #[test]
    fn multibyte_sequences_split_across_reads_are_kept() {
        // A reader that returns one byte at a time.
        struct OneByte(io::Cursor<Vec<u8>>);
        impl Read for OneByte {
            fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
                let n = 1.min(b.len());
                self.0.read(&mut b[..n])
            }
        }
        let text = "<a>éèà€😀\nz</a>";
        let mut s = Scanner::new(OneByte(io::Cursor::new(text.as_bytes().to_vec())));
        assert_eq!(drain(&mut s).unwrap(), text);
        assert_eq!(s.line(), 2);
    }
}
