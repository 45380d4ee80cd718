//! Streaming XML tokenizer.
//!
//! In: a [`Scanner`] (checked UTF-8, whatever the file's encoding). Out: one
//! [`Lexeme`] at a time — a [`Token`] (XML declaration, processing
//! instruction, comment, start or empty-element tag with its attributes,
//! end tag, text, CDATA section, reference) and the lines it stands on — or
//! a [`LexError`] (line and French message) at the first well-formedness
//! error, after which the document cannot be trusted.
//!
//! Why not quick-xml's event reader: on `check` it was measured as the
//! bottleneck (see ARCHITECTURE.md). This lexer scans borrowed slices of the
//! scanner's window with table lookups and `memchr`, counts lines as it
//! goes, and copies nothing but open element names; when a token runs past
//! the window, the window is moved to the front of the buffer, more input is
//! read and the token is scanned again from its start.
//!
//! What it refuses, as libxml2 does: names outside the Name production,
//! malformed tags and attributes (missing `=`, quotes or whitespace, `<` or
//! a bare `&` in a value, the same attribute twice), unknown entity and
//! invalid character references (there is no DTD, so only the five
//! predefined entities exist), any DOCTYPE, `--` in a comment, `]]>` in
//! text, malformed processing instructions and XML declarations, end tags
//! that do not close the open element, and markup cut by the end of the
//! file. What it leaves to its caller: the shape of the document (one root,
//! only comments, PIs and blanks around it, the declaration first) and
//! namespaces, whose messages depend on the format being read.
//!
//! Text is scanned here; tags in [`tags`], references and the rarer markup
//! in [`markup`].

use std::io::Read;

use self::markup::{scan_bang, scan_pi, scan_ref};
use self::tags::{scan_end, scan_start};
use super::input::Scanner;
use super::{is_name, is_ws};

/// Longest markup token (tag, comment, PI, CDATA section) accepted: the
/// limit libxml2 applies without its "huge" option. Text has no such
/// limit: it is handed out in chunks.
pub const MAX_TOKEN: usize = 10_000_000;
/// Text longer than this that reaches the end of the window is handed out
/// in pieces, so that the window never grows for text.
const TEXT_CHUNK: usize = 64 * 1024;

/// A well-formedness error: the document stops here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    pub line: u64,
    pub message: String,
}

/// One token and where it stands.
#[derive(Debug)]
pub struct Lexeme<'a> {
    pub token: Token<'a>,
    /// Line the token starts on; for text, the line of its first non-blank
    /// character (what a message about the text points at).
    pub line: u64,
    /// Line of the token's last byte.
    pub end_line: u64,
}

#[derive(Debug)]
pub enum Token<'a> {
    /// `<?xml …?>`, already checked by [`decl::check`]. Where it may stand
    /// is the caller's business.
    Decl,
    /// Any other processing instruction: its target.
    Pi(&'a [u8]),
    Comment,
    /// A start tag, or an empty-element tag (`empty`), whose attributes
    /// were checked.
    Start(Tag<'a>),
    /// An end tag, which closes the element open before it.
    End(&'a [u8]),
    /// Character data, without references (each is a [`Token::Ref`]).
    /// Line ends are as in the file (`\r\n` not normalised). `blank`: only
    /// XML whitespace.
    Text {
        text: &'a [u8],
        blank: bool,
    },
    /// The content of a CDATA section.
    CData(&'a [u8]),
    /// A predefined entity or character reference, resolved.
    Ref {
        name: &'a [u8],
        ch: char,
    },
    Eof,
}

/// A start tag: its name and attributes, borrowed from the window.
#[derive(Debug)]
pub struct Tag<'a> {
    pub name: &'a [u8],
    pub empty: bool,
    src: &'a [u8],
    spans: &'a [AttrSpan],
}

impl<'a> Tag<'a> {
    pub fn has_attributes(&self) -> bool {
        !self.spans.is_empty()
    }

    /// The attributes in document order: (name, value as written, with
    /// its references not yet resolved).
    pub fn attributes(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + '_ {
        let src = self.src;
        self.spans
            .iter()
            .map(move |a| (&src[a.name.0..a.name.1], &src[a.value.0..a.value.1]))
    }
}

/// Where an attribute's name and value are in the window.
#[derive(Debug, Clone, Copy)]
struct AttrSpan {
    name: (usize, usize),
    value: (usize, usize),
}

/// What a scan found, as window offsets (the token is built from them once
/// the scan is known to be complete).
enum Raw {
    Decl,
    Pi(usize, usize),
    Comment,
    /// `attrs`: the tag has attributes, in `Lexer::attrs`.
    Start {
        name: (usize, usize),
        empty: bool,
        attrs: bool,
    },
    End(usize, usize),
    Text {
        blank: bool,
    },
    CData(usize, usize),
    Ref(usize, usize, char),
    Eof,
}

struct Scanned {
    raw: Raw,
    /// Window offset just after the token.
    end: usize,
    /// Line feeds inside the token.
    newlines: u64,
    /// Line feeds before the first non-blank character (text only).
    lead: u64,
}

/// `Ok(None)`: the token goes past the window; read more and scan again.
/// `Err((offset, message))`: a well-formedness error at that window offset.
type Scan = Result<Option<Scanned>, (usize, String)>;

pub struct Lexer<R> {
    src: Scanner<R>,
    /// Offset of the next token in the scanner's window.
    pos: usize,
    /// Line of the byte at `pos`.
    line: u64,
    eof: bool,
    /// Names of the open elements, end to end, and where each ends.
    names: Vec<u8>,
    ends: Vec<usize>,
    attrs: Vec<AttrSpan>,
    failed: Option<LexError>,
    text_chunk: usize,
    max_token: usize,
}

impl<R: Read> Lexer<R> {
    pub fn new(src: Scanner<R>) -> Self {
        Self::with_limits(src, TEXT_CHUNK, MAX_TOKEN)
    }

    /// A lexer with other limits than the defaults (tests use tiny ones).
    pub fn with_limits(src: Scanner<R>, text_chunk: usize, max_token: usize) -> Self {
        Lexer {
            src,
            pos: 0,
            line: 1,
            eof: false,
            names: Vec::with_capacity(256),
            ends: Vec::with_capacity(16),
            attrs: Vec::new(),
            failed: None,
            text_chunk: text_chunk.max(4),
            max_token,
        }
    }

    /// Line of the next unread byte.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Open elements.
    pub fn depth(&self) -> usize {
        self.ends.len()
    }

    /// The next token. After an error, the same error again.
    pub fn next_token(&mut self) -> Result<Lexeme<'_>, LexError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        loop {
            match self.scan() {
                // A window that grew past the limit (it grows by doubling)
                // can hold a longer construct whole: the limit is its length.
                Ok(Some(s)) if !matches!(s.raw, Raw::Text { .. }) && s.end - self.pos > self.max_token => {
                    let e = self.too_long();
                    self.failed = Some(e.clone());
                    return Err(e);
                }
                Ok(Some(s)) => return Ok(self.commit(s)),
                Ok(None) => {
                    if let Err(e) = self.refill() {
                        self.failed = Some(e.clone());
                        return Err(e);
                    }
                }
                Err((at, message)) => {
                    let w = self.src.window();
                    let line = self.line + count_lf(&w[self.pos..at.min(w.len())]);
                    let e = LexError { line, message };
                    self.failed = Some(e.clone());
                    return Err(e);
                }
            }
        }
    }

    #[inline]
    fn scan(&mut self) -> Scan {
        let w = self.src.window();
        let i = self.pos;
        let Some(&b) = w.get(i) else {
            return if self.eof {
                Ok(Some(Scanned {
                    raw: Raw::Eof,
                    end: i,
                    newlines: 0,
                    lead: 0,
                }))
            } else {
                Ok(None)
            };
        };
        match b {
            b'<' => match w.get(i + 1) {
                None => short(w, self.eof, "après « < »"),
                Some(b'/') => scan_end(w, i, self.eof, &self.names, &self.ends),
                Some(b'?') => scan_pi(w, i, self.eof),
                Some(b'!') => scan_bang(w, i, self.eof),
                Some(_) => scan_start(w, i, self.eof, &mut self.attrs),
            },
            b'&' => scan_ref(w, i, self.eof),
            _ => scan_text(w, i, self.eof, self.text_chunk),
        }
    }

    /// Moves past a scanned token and hands it out.
    #[inline]
    fn commit(&mut self, s: Scanned) -> Lexeme<'_> {
        let start = self.pos;
        let line = self.line;
        self.pos = s.end;
        self.line += s.newlines;
        match s.raw {
            Raw::Start { name, empty: false, .. } => {
                self.names.extend_from_slice(&self.src.window()[name.0..name.1]);
                self.ends.push(self.names.len());
            }
            Raw::End(..) => {
                self.ends.pop();
                self.names.truncate(self.ends.last().copied().unwrap_or(0));
            }
            _ => {}
        }
        let w = self.src.window();
        let token = match s.raw {
            Raw::Decl => Token::Decl,
            Raw::Pi(a, b) => Token::Pi(&w[a..b]),
            Raw::Comment => Token::Comment,
            Raw::Start { name, empty, attrs } => {
                let spans: &[AttrSpan] = if attrs { &self.attrs } else { &[] };
                Token::Start(Tag {
                    name: &w[name.0..name.1],
                    empty,
                    src: w,
                    spans,
                })
            }
            Raw::End(a, b) => Token::End(&w[a..b]),
            Raw::Text { blank } => Token::Text {
                text: &w[start..s.end],
                blank,
            },
            Raw::CData(a, b) => Token::CData(&w[a..b]),
            Raw::Ref(a, b, ch) => Token::Ref { name: &w[a..b], ch },
            Raw::Eof => Token::Eof,
        };
        Lexeme {
            token,
            line: line + s.lead,
            end_line: self.line,
        }
    }

    /// The error of a construct longer than the limit.
    #[cold]
    fn too_long(&self) -> LexError {
        LexError {
            line: self.line,
            message: format!("construction XML de plus de {} octets", self.max_token),
        }
    }

    /// Reads more input for a token that runs past the window.
    #[cold]
    fn refill(&mut self) -> Result<(), LexError> {
        let pending = self.src.window().len() - self.pos;
        if pending >= self.max_token {
            return Err(self.too_long());
        }
        self.src.advance(self.pos, self.line);
        self.pos = 0;
        match self.src.more() {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.eof = true;
                Ok(())
            }
            Err(e) => Err(match self.src.error() {
                Some(ie) => LexError {
                    line: ie.line,
                    message: ie.message.clone(),
                },
                None => LexError {
                    line: self.line,
                    message: format!("lecture impossible : {e}"),
                },
            }),
        }
    }
}

/// The token runs past the window: more input is needed, or at the end of
/// the file, the token is cut.
fn short(w: &[u8], eof: bool, what: &str) -> Scan {
    if eof {
        Err((w.len(), format!("fin de fichier {what}")))
    } else {
        Ok(None)
    }
}

fn count_lf(b: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', b).count() as u64
}

const TEXT_PLAIN: u8 = 0;
const TEXT_STOP: u8 = 1;
const TEXT_LF: u8 = 2;
const TEXT_BRACKET: u8 = 3;

/// What a byte means inside text: most bytes are plain and cost one lookup.
static TEXT_CLASS: [u8; 256] = {
    let mut t = [TEXT_PLAIN; 256];
    t[b'<' as usize] = TEXT_STOP;
    t[b'&' as usize] = TEXT_STOP;
    t[b'\n' as usize] = TEXT_LF;
    t[b']' as usize] = TEXT_BRACKET;
    t
};

/// Bytes that may be part of a name: ASCII name characters and every byte
/// of a non-ASCII character (checked against the Name production after).
static NAME_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b':') || c >= 0x80;
        b += 1;
    }
    t
};

/// End of the name starting at `i`, and whether it is all ASCII.
#[inline]
fn name_end(w: &[u8], mut i: usize) -> (usize, bool) {
    let mut high = 0u8;
    while let Some(&b) = w.get(i) {
        if !NAME_BYTE[b as usize] {
            break;
        }
        high |= b;
        i += 1;
    }
    (i, high < 0x80)
}

/// The Name production, with a fast path for ASCII names (whose bytes
/// [`name_end`] already vetted).
#[inline]
fn valid_name(name: &[u8], ascii: bool) -> bool {
    if ascii {
        name.first()
            .is_some_and(|&f| f.is_ascii_alphabetic() || f == b'_' || f == b':')
    } else {
        is_name(name)
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[inline]
fn scan_text(w: &[u8], i: usize, eof: bool, chunk: usize) -> Scan {
    let n = w.len();
    let mut j = i;
    // Leading blanks first: their line feeds give the line of the first
    // non-blank character, and most texts between tags are only blanks.
    let mut lead = 0;
    while j < n {
        match w[j] {
            b' ' | b'\t' | b'\r' => {}
            b'\n' => lead += 1,
            _ => break,
        }
        j += 1;
    }
    let blank_end = j;
    let mut newlines = lead;
    while j < n {
        match TEXT_CLASS[w[j] as usize] {
            TEXT_PLAIN => {}
            TEXT_LF => newlines += 1,
            TEXT_STOP => break,
            _ => {
                if j + 2 < n {
                    if w[j + 1] == b']' && w[j + 2] == b'>' {
                        return Err((j, "la séquence « ]]> » est interdite dans le texte".into()));
                    }
                } else if !eof {
                    // Whether this `]` starts `]]>` is known after a refill.
                    return text_piece(w, i, j, newlines, chunk);
                }
            }
        }
        j += 1;
    }
    if j == n && !eof {
        return text_piece(w, i, j, newlines, chunk);
    }
    let raw = Raw::Text { blank: j == blank_end };
    Ok(Some(Scanned {
        raw,
        end: j,
        newlines,
        lead,
    }))
}

/// Text that reached the end of the window at `j`: a short one is scanned
/// again after a refill; a long one is handed out up to `j`, less a final
/// `\r` (which may be the first half of `\r\n`, normalised by the reader).
#[cold]
fn text_piece(w: &[u8], i: usize, j: usize, newlines: u64, chunk: usize) -> Scan {
    if j - i < chunk {
        return Ok(None);
    }
    let cut = if w[j - 1] == b'\r' { j - 1 } else { j };
    let text = &w[i..cut];
    let blanks = text.iter().take_while(|&&b| is_ws(b)).count();
    let raw = Raw::Text {
        blank: blanks == text.len(),
    };
    Ok(Some(Scanned {
        raw,
        end: cut,
        newlines,
        lead: count_lf(&text[..blanks]),
    }))
}

mod markup;
mod tags;

#[cfg(test)]
mod tests;
