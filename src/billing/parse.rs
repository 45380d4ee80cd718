//! Streaming reader of `factbord` files: XML well-formedness (F01) and
//! conformance to `FactficTrans.xsd` (F02) in one pass, no DOM.
//!
//! In: a `Read`. Out: the header and footer, each line handed to a
//! [`LineSink`] as soon as its `</factprest>` is read (so memory stays flat
//! whatever the number of lines), and every F01/F02 anomaly with its XML
//! line and element.
//!
//! The schema is small and fixed, so its content models are written out as
//! two sequences below rather than interpreted from the XSD. After a
//! misplaced element the reader resynchronises on the next known element so
//! that one mistake does not hide the others. An F01 stops the reading: like
//! every XML parser, nothing after a well-formedness error can be trusted.
//!
//! The tokens come from the project's own lexer ([`crate::xml::lexer`]),
//! which checks well-formedness; this module checks the document's shape
//! and the schema. Attributes and namespaces are in [`attrs`], the typed
//! fields in [`leaf`].

use std::io::Read;

use super::facets::XsDate;
use super::{Footer, Header, Line};
use crate::anomaly::{Anomaly, Code};
use crate::xml::lexer::{Lexeme, Lexer, Tag, Token};
use crate::xml::{self, input};

mod leaf;

/// Children of `factbord`, in order. Index 5 (`factprest`) repeats, 0..n.
const ROOT_SEQ: [&str; 9] = [
    "rf-borfact",
    "log-fact",
    "id-cram",
    "id-site",
    "rf-prstpap",
    "factprest",
    "nb-ligbor",
    "mt-totamd",
    "mt-totprest",
];
const FACTPREST: usize = 5;

/// Children of `factprest`, in order, all required.
pub const LINE_SEQ: [&str; 11] = [
    "nir-per",
    "nom-per",
    "pn-per",
    "rf-prstpap",
    "id-prest",
    "dtd-interv",
    "dtf-interv",
    "nb-quant",
    "mt-tu",
    "mt-total",
    "bo-regul",
];

/// `maxLength` of the string fields of the header (by ROOT_SEQ index).
const ROOT_MAXLEN: [usize; 5] = [54, 54, 2, 15, 6];
/// `maxLength` of the string fields of a line (by LINE_SEQ index).
const LINE_MAXLEN: [usize; 5] = [15, 54, 20, 6, 15];

/// Beyond this nesting depth the document is refused (libxml2's own limit).
const MAX_DEPTH: usize = 256;
/// A value longer than this cannot be valid for any field of the schema.
const MAX_VALUE: usize = 64 * 1024;
/// F02 anomalies kept per file; a count of the rest is reported.
const MAX_SCHEMA_ANOMALIES: usize = 10_000;

/// Per-line facts the stateless controls need beyond the typed values.
#[derive(Debug, Clone, Default)]
pub struct LineFacts {
    /// Bit i set: field `LINE_SEQ[i]` is present and empty or blank.
    pub blank: u16,
    /// Bit i set: field `LINE_SEQ[i]` is present.
    pub present: u16,
    pub dtd: Option<XsDate>,
    pub dtf: Option<XsDate>,
    /// XML line of each field (0 when absent).
    pub field_lines: [u64; 11],
}

/// Receives the header once it is complete, then each line as it ends.
pub trait LineSink {
    fn header(&mut self, _header: &Header) {}
    fn line(&mut self, line: &Line, facts: &LineFacts);
}

/// What the reader learnt of the file besides the lines.
#[derive(Debug, Default)]
pub struct Parsed {
    pub header: Header,
    /// Bit i: header field `ROOT_SEQ[i]` (i < 5) present and blank; bits
    /// 6..9: footer fields present and blank.
    pub root_blank: u16,
    pub root_present: u16,
    pub root_lines: [u64; 9],
    pub footer: Footer,
    /// `factprest` elements found.
    pub lines: u32,
    /// F01 and F02 anomalies.
    pub anomalies: Vec<Anomaly>,
    /// An F01 stopped the reading.
    pub fatal: bool,
}

impl Parsed {
    pub fn root_field_line(&self, i: usize) -> Option<u64> {
        Some(self.root_lines[i]).filter(|&l| l > 0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    Prolog,
    Root,
    Line,
    /// Inside a simple-typed element: in the root (`line == false`) or in a line.
    Leaf {
        line: bool,
        idx: usize,
    },
    /// Inside an element that is reported and not read; depth below it.
    Skip(usize),
    Epilog,
}

struct State<'s, S: LineSink> {
    sink: &'s mut S,
    out: Parsed,
    at: Where,
    /// Where to return after a Leaf or a Skip.
    parent: Where,
    root_pos: usize,
    line_pos: usize,
    header_sent: bool,
    line: Line,
    facts: LineFacts,
    /// The text of the current field so far (UTF-8: the lexer hands out
    /// whole characters).
    value: Vec<u8>,
    value_too_long: bool,
    leaf_had_child: bool,
    /// Element depth (root = 1).
    depth: usize,
    /// Namespace declarations in scope: (depth, prefix, uri). Empty prefix:
    /// default namespace.
    ns: crate::xml::names::Namespaces,
    schema_errors: usize,
    seen_root: bool,
    first_event: bool,
}

/// Reads a billing file. Never panics; the result lists every anomaly found.
pub fn parse<R: Read + 'static, S: LineSink>(reader: R, sink: &mut S) -> Parsed {
    let (scanner, _enc) = match input::open(reader) {
        Ok(x) => x,
        Err(e) => {
            let mut out = Parsed::default();
            out.anomalies
                .push(Anomaly::file(Code::F01, Some(e.line), None, e.message));
            out.fatal = true;
            return out;
        }
    };
    let mut lexer = Lexer::new(scanner);
    let mut st = State {
        sink,
        out: Parsed::default(),
        at: Where::Prolog,
        parent: Where::Prolog,
        root_pos: 0,
        line_pos: 0,
        header_sent: false,
        line: Line::default(),
        facts: LineFacts::default(),
        value: Vec::with_capacity(256),
        value_too_long: false,
        leaf_had_child: false,
        depth: 0,
        ns: Default::default(),
        schema_errors: 0,
        seen_root: false,
        first_event: true,
    };
    loop {
        let r = match lexer.next_token() {
            Ok(Lexeme {
                token: Token::Eof,
                end_line,
                ..
            }) => {
                st.end_of_file(end_line);
                break;
            }
            Ok(lexeme) => st.token(lexeme),
            Err(e) => Err((e.line, e.message)),
        };
        if let Err((line, msg)) = r {
            st.out.anomalies.push(Anomaly::file(Code::F01, Some(line), None, msg));
            st.out.fatal = true;
            break;
        }
    }
    if st.schema_errors > MAX_SCHEMA_ANOMALIES {
        let more = st.schema_errors - MAX_SCHEMA_ANOMALIES;
        st.out.anomalies.push(Anomaly::file(
            Code::F02,
            None,
            None,
            format!("{more} autres écarts au schéma non détaillés"),
        ));
    }
    st.out
}

type Step = Result<(), (u64, String)>;

fn fatal<T>(line: u64, msg: impl Into<String>) -> Result<T, (u64, String)> {
    Err((line, msg.into()))
}

impl<S: LineSink> State<'_, S> {
    fn schema(&mut self, line: u64, field: Option<&str>, msg: String) {
        self.schema_errors += 1;
        if self.schema_errors <= MAX_SCHEMA_ANOMALIES {
            self.out
                .anomalies
                .push(Anomaly::file(Code::F02, Some(line), field, msg));
        }
    }

    /// One token. Lines as the messages have always given them: a tag at
    /// its `>`, a text at its first non-blank character, a CDATA section at
    /// its start.
    fn token(&mut self, lx: Lexeme<'_>) -> Step {
        let first = std::mem::replace(&mut self.first_event, false);
        let line = lx.end_line;
        // The lexer checked the declaration's syntax; it must open the file
        // (and a PI named `xml` anywhere else is a misplaced declaration).
        let misplaced_decl = match &lx.token {
            Token::Decl => !first,
            Token::Pi(target) => target.eq_ignore_ascii_case(b"xml"),
            _ => false,
        };
        if misplaced_decl {
            return fatal(line, "la déclaration <?xml …?> doit être tout au début du fichier");
        }
        match lx.token {
            Token::Decl | Token::Comment | Token::Eof | Token::Pi(_) => Ok(()),
            Token::Start(tag) => self.start(&tag, line),
            Token::End(_) => self.end(line),
            Token::Text { text, blank } => self.chars(text, blank, lx.line, false),
            Token::CData(text) => self.chars(text, xml::all_ws(text), lx.line, true),
            Token::Ref { name, ch } => {
                if matches!(self.at, Where::Prolog | Where::Epilog) {
                    let name = String::from_utf8_lossy(name);
                    return fatal(
                        line,
                        format!("référence &{name}; en dehors de l'élément racine <factbord>"),
                    );
                }
                let mut b = [0u8; 4];
                let s = ch.encode_utf8(&mut b);
                self.chars(s.as_bytes(), xml::all_ws(s.as_bytes()), line, false)
            }
        }
    }

    fn start(&mut self, tag: &Tag<'_>, line: u64) -> Step {
        let name = tag.name;
        let empty = tag.empty;
        // Fast path, taken by nearly every element of a conform file: the
        // next field of a line, no attribute, no default namespace in scope
        // (the root's `xmlns:xsi` does not change an unprefixed name).
        if self.at == Where::Line
            && !tag.has_attributes()
            && self.ns.resolve(b"").is_none_or(<[u8]>::is_empty)
            && LINE_SEQ.get(self.line_pos).is_some_and(|s| s.as_bytes() == name)
            && self.depth < MAX_DEPTH
        {
            self.depth += 1;
            let k = self.line_pos;
            self.line_pos += 1;
            self.enter_leaf(true, k, line);
            return if empty { self.end(line) } else { Ok(()) };
        }
        if !xml::is_qname(name) {
            return fatal(
                line,
                format!("nom d'élément invalide : <{}", String::from_utf8_lossy(name)),
            );
        }
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return fatal(line, format!("imbrication de plus de {MAX_DEPTH} éléments"));
        }
        let depth = self.depth;
        let refused_attr = self.ns.attributes(tag, line, depth)?;
        let local = self.ns.local_name(name, line)?;
        let shown = String::from_utf8_lossy(name);
        let shown: &str = &shown;
        if let Some(msg) = refused_attr {
            if !matches!(self.at, Where::Skip(_)) {
                self.schema(line, Some(shown), format!("{msg} sur <{shown}>"));
            }
        }
        match self.at {
            Where::Prolog => {
                self.seen_root = true;
                if local != Some(b"factbord".as_slice()) {
                    self.schema(
                        line,
                        Some(shown),
                        format!("l'élément racine doit être <factbord>, pas <{shown}>"),
                    );
                    self.enter_skip(Where::Epilog);
                } else {
                    self.at = Where::Root;
                }
            }
            Where::Epilog => return fatal(line, format!("second élément racine <{shown}> après </factbord>")),
            Where::Root => self.start_in_root(local, shown, line),
            Where::Line => self.start_in_line(local, shown, line),
            Where::Leaf { line: in_line, idx } => {
                let parent = if in_line { LINE_SEQ[idx] } else { ROOT_SEQ[idx] };
                self.schema(
                    line,
                    Some(parent),
                    format!("élément <{shown}> non permis dans <{parent}> (valeur simple attendue)"),
                );
                // Reported here; the leaf's value is not checked further.
                self.leaf_had_child = true;
                self.at = Where::Skip(1);
                self.parent = Where::Leaf { line: in_line, idx };
            }
            Where::Skip(d) => self.at = Where::Skip(d + 1),
        }
        if empty {
            return self.end(line);
        }
        Ok(())
    }

    fn enter_skip(&mut self, back: Where) {
        self.parent = back;
        self.at = Where::Skip(1);
    }

    fn start_in_root(&mut self, local: Option<&[u8]>, shown: &str, line: u64) {
        let k = local.and_then(|n| ROOT_SEQ.iter().position(|s| s.as_bytes() == n));
        let Some(k) = k else {
            self.schema(line, Some(shown), format!("élément <{shown}> inconnu dans <factbord>"));
            return self.enter_skip(Where::Root);
        };
        if k == FACTPREST {
            if self.root_pos > FACTPREST {
                self.schema(
                    line,
                    Some(shown),
                    "ligne <factprest> après la fin de fichier (nb-ligbor…)".into(),
                );
            } else {
                self.missing_root(self.root_pos, FACTPREST, line);
                self.root_pos = FACTPREST;
            }
            self.send_header();
            self.out.lines += 1;
            self.reset_line(line);
            self.facts = LineFacts::default();
            self.line_pos = 0;
            self.at = Where::Line;
            return;
        }
        if k < self.root_pos || (k == self.root_pos && self.out.root_present & (1 << k) != 0) {
            self.schema(
                line,
                Some(shown),
                format!("élément <{shown}> en double ou hors de l'ordre du cahier des charges"),
            );
            return self.enter_skip(Where::Root);
        }
        self.missing_root(self.root_pos, k, line);
        if k > FACTPREST {
            self.send_header();
        }
        self.root_pos = k + 1;
        self.enter_leaf(false, k, line);
    }

    /// Reports the required root children between `from` and `to` (exclusive).
    fn missing_root(&mut self, from: usize, to: usize, line: u64) {
        for i in from..to {
            if i != FACTPREST && self.out.root_present & (1 << i) == 0 {
                self.schema(
                    line,
                    Some(ROOT_SEQ[i]),
                    format!("élément <{}> manquant dans <factbord>", ROOT_SEQ[i]),
                );
            }
        }
    }

    fn start_in_line(&mut self, local: Option<&[u8]>, shown: &str, line: u64) {
        // Fast path: the expected next field.
        let expected = LINE_SEQ.get(self.line_pos).map(|s| s.as_bytes());
        let k = if local.is_some() && local == expected {
            Some(self.line_pos)
        } else {
            local.and_then(|n| LINE_SEQ.iter().position(|s| s.as_bytes() == n))
        };
        let Some(k) = k.filter(|&k| k >= self.line_pos) else {
            let what = if k.is_some() {
                "en double ou hors de l'ordre du cahier des charges"
            } else {
                "inconnu"
            };
            self.schema(
                line,
                Some(shown),
                format!("élément <{shown}> {what} dans <factprest> n° {}", self.line.index),
            );
            return self.enter_skip(Where::Line);
        };
        for i in self.line_pos..k {
            self.schema(
                line,
                Some(LINE_SEQ[i]),
                format!(
                    "élément <{}> manquant dans <factprest> n° {}",
                    LINE_SEQ[i], self.line.index
                ),
            );
        }
        self.line_pos = k + 1;
        self.enter_leaf(true, k, line);
    }

    fn send_header(&mut self) {
        if !self.header_sent {
            self.header_sent = true;
            self.sink.header(&self.out.header);
        }
    }

    fn end(&mut self, line: u64) -> Step {
        self.depth = self.depth.saturating_sub(1);
        let depth = self.depth;
        self.ns.close(depth);
        match self.at {
            Where::Skip(1) => self.at = self.parent,
            Where::Skip(d) => self.at = Where::Skip(d - 1),
            Where::Leaf { line: in_line, idx } => {
                self.finish_leaf(in_line, idx);
                self.at = if in_line { Where::Line } else { Where::Root };
            }
            Where::Line => {
                for i in self.line_pos..LINE_SEQ.len() {
                    self.schema(
                        line,
                        Some(LINE_SEQ[i]),
                        format!(
                            "élément <{}> manquant dans <factprest> n° {}",
                            LINE_SEQ[i], self.line.index
                        ),
                    );
                }
                self.sink.line(&self.line, &self.facts);
                self.at = Where::Root;
            }
            Where::Root => {
                self.missing_root(self.root_pos, ROOT_SEQ.len(), line);
                self.send_header();
                self.at = Where::Epilog;
            }
            Where::Prolog | Where::Epilog => {}
        }
        Ok(())
    }

    /// Character data (text, CDATA or a resolved reference); `blank`: only
    /// XML whitespace.
    fn chars(&mut self, t: &[u8], blank: bool, line: u64, cdata: bool) -> Step {
        match self.at {
            Where::Leaf { .. } => {
                if self.value.len() + t.len() > MAX_VALUE {
                    self.value_too_long = true;
                } else if has_byte(t, b'\r') {
                    push_normalised(&mut self.value, t);
                } else {
                    self.value.extend_from_slice(t);
                }
                Ok(())
            }
            Where::Root | Where::Line => {
                // libxml2 refuses any CDATA section in element-only content,
                // even a blank one: side with it (the reference validator).
                if cdata || !blank {
                    let parent = if self.at == Where::Root {
                        "factbord"
                    } else {
                        "factprest"
                    };
                    let what = if cdata { "section CDATA" } else { "texte" };
                    self.schema(
                        line,
                        Some(parent),
                        format!("{what} non permis entre les éléments de <{parent}>"),
                    );
                }
                Ok(())
            }
            Where::Skip(_) => Ok(()),
            Where::Prolog | Where::Epilog => {
                if cdata || !blank {
                    return fatal(line, "texte en dehors de l'élément racine <factbord>");
                }
                Ok(())
            }
        }
    }

    fn end_of_file(&mut self, line: u64) {
        if !self.seen_root {
            self.out.anomalies.push(Anomaly::file(
                Code::F01,
                Some(line),
                None,
                "aucun élément racine : fichier vide ou sans XML",
            ));
            self.out.fatal = true;
        } else if self.depth > 0 {
            self.out.anomalies.push(Anomaly::file(
                Code::F01,
                Some(line),
                None,
                "fin de fichier avant la fermeture de </factbord>",
            ));
            self.out.fatal = true;
        }
    }
}

/// Appends text with its line ends normalised as XML 1.0 §2.11 says:
/// `\r\n` and a lone `\r` become `\n`.
fn push_normalised(out: &mut Vec<u8>, t: &[u8]) {
    let mut i = 0;
    while i < t.len() {
        if t[i] == b'\r' {
            out.push(b'\n');
            if t.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
        } else {
            out.push(t[i]);
        }
        i += 1;
    }
}

/// Whether `t` holds `b`: a plain loop beats memchr's set-up on the short
/// texts of billing fields.
#[inline]
fn has_byte(t: &[u8], b: u8) -> bool {
    if t.len() < 64 {
        t.contains(&b)
    } else {
        memchr::memchr(b, t).is_some()
    }
}
