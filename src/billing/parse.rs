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

use std::io::Read;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::anomaly::{Anomaly, Code};
use super::facets::{self, XsDate};
use super::{Footer, Header, Line};
use crate::xml::{self, input};

/// Children of `factbord`, in order. Index 5 (`factprest`) repeats, 0..n.
const ROOT_SEQ: [&str; 9] = [
    "rf-borfact", "log-fact", "id-cram", "id-site", "rf-prstpap", "factprest", "nb-ligbor", "mt-totamd",
    "mt-totprest",
];
const FACTPREST: usize = 5;

/// Children of `factprest`, in order, all required.
pub const LINE_SEQ: [&str; 11] = [
    "nir-per", "nom-per", "pn-per", "rf-prstpap", "id-prest", "dtd-interv", "dtf-interv", "nb-quant", "mt-tu",
    "mt-total", "bo-regul",
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

const XSI_NS: &[u8] = b"http://www.w3.org/2001/XMLSchema-instance";

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
    Leaf { line: bool, idx: usize },
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
    value: String,
    value_too_long: bool,
    leaf_had_child: bool,
    /// Element depth (root = 1).
    depth: usize,
    /// Namespace declarations in scope: (depth, prefix, uri). Empty prefix:
    /// default namespace.
    ns: Vec<(usize, Vec<u8>, Vec<u8>)>,
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
            out.anomalies.push(Anomaly::file(Code::F01, Some(e.line), None, e.message));
            out.fatal = true;
            return out;
        }
    };
    let mut reader = Reader::from_reader(scanner);
    {
        let c = reader.config_mut();
        c.check_comments = true;
        c.check_end_names = true;
        c.trim_text(false);
        c.expand_empty_elements = false;
    }
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
        value: String::with_capacity(256),
        value_too_long: false,
        leaf_had_child: false,
        depth: 0,
        ns: Vec::new(),
        schema_errors: 0,
        seen_root: false,
        first_event: true,
    };
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        let pos_before = reader.buffer_position();
        let line_before = reader.get_ref().line();
        let ev = reader.read_event_into(&mut buf);
        let xml_line = reader.get_ref().line();
        let r = match ev {
            Ok(Event::Eof) => {
                st.end_of_file(xml_line);
                break;
            }
            Ok(ev) => st.event(ev, xml_line, pos_before, line_before),
            Err(e) => {
                let (line, msg) = match reader.get_ref().error() {
                    Some(ie) => (ie.line, ie.message.clone()),
                    None => (xml_line, describe_xml_error(&e)),
                };
                Err((line, msg))
            }
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

fn describe_xml_error(e: &quick_xml::Error) -> String {
    use quick_xml::errors::IllFormedError as I;
    match e {
        quick_xml::Error::IllFormed(I::MismatchedEndTag { expected, found }) => {
            format!("balise fermante </{found}> alors que <{expected}> est ouverte")
        }
        quick_xml::Error::IllFormed(I::UnmatchedEndTag(n)) => format!("balise fermante </{n}> sans balise ouvrante"),
        quick_xml::Error::IllFormed(I::MissingEndTag(n)) => format!("balise <{n}> jamais fermée"),
        quick_xml::Error::IllFormed(I::DoubleHyphenInComment) => "« -- » interdit dans un commentaire".into(),
        quick_xml::Error::IllFormed(I::UnclosedReference) => "« & » isolé : écrire &amp;amp;".into(),
        quick_xml::Error::Syntax(s) => format!("syntaxe XML invalide : {s}"),
        other => format!("XML mal formé : {other}"),
    }
}

type Step = Result<(), (u64, String)>;

fn fatal<T>(line: u64, msg: impl Into<String>) -> Result<T, (u64, String)> {
    Err((line, msg.into()))
}

impl<S: LineSink> State<'_, S> {
    fn schema(&mut self, line: u64, field: Option<&str>, msg: String) {
        self.schema_errors += 1;
        if self.schema_errors <= MAX_SCHEMA_ANOMALIES {
            self.out.anomalies.push(Anomaly::file(Code::F02, Some(line), field, msg));
        }
    }

    fn event(&mut self, ev: Event<'_>, line: u64, pos_before: u64, line_before: u64) -> Step {
        let first = std::mem::replace(&mut self.first_event, false);
        match ev {
            Event::Decl(d) => {
                if !first || pos_before != 0 {
                    return fatal(line, "la déclaration <?xml …?> doit être tout au début du fichier");
                }
                check_decl(&d).map_err(|m| (line, m))
            }
            Event::DocType(_) => fatal(line, "déclaration DOCTYPE interdite (aucune entité n'est acceptée)"),
            Event::PI(pi) => {
                let target = pi.target();
                if target.eq_ignore_ascii_case("xml") {
                    return fatal(line, "la déclaration <?xml …?> doit être tout au début du fichier");
                }
                if !xml::is_name(target.as_bytes()) || target.contains(':') {
                    return fatal(line, format!("instruction de traitement invalide <?{target}"));
                }
                Ok(())
            }
            Event::Comment(_) => Ok(()),
            Event::Start(e) => self.start(&e, line, false),
            Event::Empty(e) => self.start(&e, line, true),
            Event::End(_) => self.end(line),
            Event::Text(t) => self.text(&t, text_line(&t, line_before), false),
            Event::CData(t) => self.text(&t, line_before, true),
            Event::GeneralRef(r) => {
                if matches!(self.at, Where::Prolog | Where::Epilog) {
                    return fatal(line, format!("référence &{}; en dehors de l'élément racine <factbord>", &*r));
                }
                let Some(c) = xml::resolve_reference(r.as_bytes()) else {
                    return fatal(line, format!("entité ou référence de caractère inconnue : &{};", &*r));
                };
                let mut b = [0u8; 4];
                let s = c.encode_utf8(&mut b);
                self.chars(s, line, false)
            }
            Event::Eof => Ok(()),
        }
    }

    /// Checks the attributes of an element: only namespace declarations and
    /// the `xsi:` schema-location hints are allowed. Returns an F02 message
    /// for an attribute the schema does not allow.
    fn attributes(&mut self, e: &BytesStart<'_>, line: u64, depth: usize) -> Result<Option<String>, (u64, String)> {
        let raw = e.attributes_raw();
        if raw.bytes().all(xml::is_ws) {
            return Ok(None);
        }
        let mut refused = None;
        let mut attrs: Vec<Vec<u8>> = Vec::new();
        for a in e.attributes().with_checks(true) {
            let a = match a {
                Ok(a) => a,
                Err(err) => return fatal(line, format!("attribut mal formé : {err}")),
            };
            let key = a.key.as_ref().as_bytes();
            if !xml::is_qname(key) {
                return fatal(line, format!("nom d'attribut invalide : {}", String::from_utf8_lossy(key)));
            }
            let value = attribute_value(a.value.as_bytes()).map_err(|m| (line, m))?;
            // Namespace declarations apply to the element's own attributes,
            // whatever their order: record them before resolving prefixes.
            if key == b"xmlns" {
                self.ns.push((depth, Vec::new(), value));
            } else if let Some(p) = key.strip_prefix(b"xmlns:") {
                if value.is_empty() {
                    return fatal(line, "un préfixe d'espace de noms ne peut pas être déclaré vide");
                }
                self.ns.push((depth, p.to_vec(), value));
            } else {
                attrs.push(key.to_vec());
            }
        }
        for k in attrs {
            match memchr::memchr(b':', &k) {
                None => {
                    refused.get_or_insert_with(|| format!("attribut « {} » non permis", String::from_utf8_lossy(&k)));
                }
                Some(i) => {
                    let (prefix, local) = (&k[..i], &k[i + 1..]);
                    if prefix == b"xml" {
                        refused.get_or_insert_with(|| format!("attribut « {} » non permis", String::from_utf8_lossy(&k)));
                        continue;
                    }
                    match self.resolve(prefix) {
                        None => {
                            return fatal(line, format!("préfixe d'espace de noms non déclaré : {}", String::from_utf8_lossy(prefix)))
                        }
                        Some(uri) if uri == XSI_NS && (local == b"noNamespaceSchemaLocation" || local == b"schemaLocation") => {}
                        Some(_) => {
                            refused.get_or_insert_with(|| format!("attribut « {} » non permis", String::from_utf8_lossy(&k)));
                        }
                    }
                }
            }
        }
        Ok(refused)
    }

    fn resolve(&self, prefix: &[u8]) -> Option<&[u8]> {
        self.ns.iter().rev().find(|(_, p, _)| p == prefix).map(|(_, _, u)| u.as_slice())
    }

    /// The element's name as the schema sees it: `None` when it is in a
    /// namespace (the schema has no target namespace: never valid).
    fn local_name<'n>(&self, name: &'n [u8], line: u64) -> Result<Option<&'n [u8]>, (u64, String)> {
        if let Some(i) = memchr::memchr(b':', name) {
            let prefix = &name[..i];
            if prefix == b"xml" || self.resolve(prefix).is_some() {
                return Ok(None);
            }
            return fatal(line, format!("préfixe d'espace de noms non déclaré : {}", String::from_utf8_lossy(prefix)));
        }
        match self.resolve(b"") {
            Some(uri) if !uri.is_empty() => Ok(None),
            _ => Ok(Some(name)),
        }
    }

    fn start(&mut self, e: &BytesStart<'_>, line: u64, empty: bool) -> Step {
        let name = e.name().0.as_bytes();
        // Fast path, taken by nearly every element of a conform file: the
        // next field of a line, no attribute, no namespace in scope.
        if self.at == Where::Line
            && self.ns.is_empty()
            && e.attributes_raw().is_empty()
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
            return fatal(line, format!("nom d'élément invalide : <{}", String::from_utf8_lossy(name)));
        }
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return fatal(line, format!("imbrication de plus de {MAX_DEPTH} éléments"));
        }
        let depth = self.depth;
        let refused_attr = self.attributes(e, line, depth)?;
        let local = self.local_name(name, line)?;
        let shown: &str = e.name().0;
        if let Some(msg) = refused_attr {
            if !matches!(self.at, Where::Skip(_)) {
                self.schema(line, Some(shown), format!("{msg} sur <{shown}>"));
            }
        }
        match self.at {
            Where::Prolog => {
                self.seen_root = true;
                if local != Some(b"factbord".as_slice()) {
                    self.schema(line, Some(shown), format!("l'élément racine doit être <factbord>, pas <{shown}>"));
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
                self.schema(line, Some(parent), format!("élément <{shown}> non permis dans <{parent}> (valeur simple attendue)"));
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

    fn enter_leaf(&mut self, in_line: bool, idx: usize, line: u64) {
        self.value.clear();
        self.value_too_long = false;
        self.leaf_had_child = false;
        if in_line {
            self.facts.present |= 1 << idx;
            self.facts.field_lines[idx] = line;
        } else {
            self.out.root_present |= 1 << idx;
            self.out.root_lines[idx] = line;
        }
        self.parent = self.at;
        self.at = Where::Leaf { line: in_line, idx };
    }

    fn start_in_root(&mut self, local: Option<&[u8]>, shown: &str, line: u64) {
        let k = local.and_then(|n| ROOT_SEQ.iter().position(|s| s.as_bytes() == n));
        let Some(k) = k else {
            self.schema(line, Some(shown), format!("élément <{shown}> inconnu dans <factbord>"));
            return self.enter_skip(Where::Root);
        };
        if k == FACTPREST {
            if self.root_pos > FACTPREST {
                self.schema(line, Some(shown), "ligne <factprest> après la fin de fichier (nb-ligbor…)".into());
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
            self.schema(line, Some(shown), format!("élément <{shown}> en double ou hors de l'ordre du cahier des charges"));
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
                self.schema(line, Some(ROOT_SEQ[i]), format!("élément <{}> manquant dans <factbord>", ROOT_SEQ[i]));
            }
        }
    }

    /// Starts a new line, reusing the previous one's buffers.
    fn reset_line(&mut self, xml_line: u64) {
        let l = &mut self.line;
        l.index = self.out.lines;
        l.xml_line = xml_line;
        for s in [&mut l.nir_per, &mut l.nom_per, &mut l.pn_per, &mut l.rf_prstpap, &mut l.id_prest, &mut l.bo_regul] {
            s.clear();
        }
        l.dtd_interv = None;
        l.dtf_interv = None;
        l.nb_quant = None;
        l.mt_tu = None;
        l.mt_total = None;
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
            let what = if k.is_some() { "en double ou hors de l'ordre du cahier des charges" } else { "inconnu" };
            self.schema(line, Some(shown), format!("élément <{shown}> {what} dans <factprest> n° {}", self.line.index));
            return self.enter_skip(Where::Line);
        };
        for i in self.line_pos..k {
            self.schema(line, Some(LINE_SEQ[i]), format!("élément <{}> manquant dans <factprest> n° {}", LINE_SEQ[i], self.line.index));
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
        while self.ns.last().is_some_and(|(d, _, _)| *d > depth) {
            self.ns.pop();
        }
        match self.at {
            Where::Skip(1) => self.at = self.parent,
            Where::Skip(d) => self.at = Where::Skip(d - 1),
            Where::Leaf { line: in_line, idx } => {
                self.finish_leaf(in_line, idx);
                self.at = if in_line { Where::Line } else { Where::Root };
            }
            Where::Line => {
                for i in self.line_pos..LINE_SEQ.len() {
                    self.schema(line, Some(LINE_SEQ[i]), format!("élément <{}> manquant dans <factprest> n° {}", LINE_SEQ[i], self.line.index));
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

    fn text(&mut self, t: &str, line: u64, cdata: bool) -> Step {
        if !cdata && has_byte(t.as_bytes(), b']') && t.contains("]]>") {
            return fatal(line, "la séquence « ]]> » est interdite dans le texte");
        }
        self.chars(t, line, cdata)
    }

    fn chars(&mut self, t: &str, line: u64, cdata: bool) -> Step {
        match self.at {
            Where::Leaf { .. } => {
                if self.value.len() + t.len() > MAX_VALUE {
                    self.value_too_long = true;
                } else if has_byte(t.as_bytes(), b'\r') {
                    self.value.push_str(&t.replace("\r\n", "\n").replace('\r', "\n"));
                } else {
                    self.value.push_str(t);
                }
                Ok(())
            }
            Where::Root | Where::Line => {
                // libxml2 refuses any CDATA section in element-only content,
                // even a blank one: side with it (the reference validator).
                if cdata || !xml::all_ws(t.as_bytes()) {
                    let parent = if self.at == Where::Root { "factbord" } else { "factprest" };
                    let what = if cdata { "section CDATA" } else { "texte" };
                    self.schema(line, Some(parent), format!("{what} non permis entre les éléments de <{parent}>"));
                }
                Ok(())
            }
            Where::Skip(_) => Ok(()),
            Where::Prolog | Where::Epilog => {
                if cdata || !xml::all_ws(t.as_bytes()) {
                    return fatal(line, "texte en dehors de l'élément racine <factbord>");
                }
                Ok(())
            }
        }
    }

    fn finish_leaf(&mut self, in_line: bool, idx: usize) {
        let name = if in_line { LINE_SEQ[idx] } else { ROOT_SEQ[idx] };
        let xml_line = if in_line { self.facts.field_lines[idx] } else { self.out.root_lines[idx] };
        if self.leaf_had_child {
            return;
        }
        if self.value_too_long {
            self.schema(xml_line, Some(name), format!("valeur de <{name}> trop longue"));
            return;
        }
        let owned = std::mem::take(&mut self.value);
        let text = owned.as_str();
        let value = owned.as_bytes();
        let blank = xml::all_ws(value);
        if blank {
            if in_line {
                self.facts.blank |= 1 << idx;
            } else {
                self.out.root_blank |= 1 << idx;
            }
        }
        let set = |s: &mut String| {
            s.clear();
            s.push_str(text);
        };
        let err = if in_line {
            match idx {
                0..=4 => {
                    let n = facets::char_len(value);
                    let max = LINE_MAXLEN[idx];
                    match idx {
                        0 => set(&mut self.line.nir_per),
                        1 => set(&mut self.line.nom_per),
                        2 => set(&mut self.line.pn_per),
                        3 => set(&mut self.line.rf_prstpap),
                        _ => set(&mut self.line.id_prest),
                    }
                    (n > max).then(|| format!("{n} caractères pour {max} au plus"))
                }
                5 | 6 => match facets::date(value) {
                    Ok(d) => {
                        if idx == 5 {
                            self.line.dtd_interv = d.date;
                            self.facts.dtd = Some(d);
                        } else {
                            self.line.dtf_interv = d.date;
                            self.facts.dtf = Some(d);
                        }
                        None
                    }
                    Err(m) => Some(m.to_string()),
                },
                7..=9 => match facets::decimal(value, 11, 2) {
                    Ok(v) => {
                        match idx {
                            7 => self.line.nb_quant = Some(v),
                            8 => self.line.mt_tu = Some(v),
                            _ => self.line.mt_total = Some(v),
                        }
                        None
                    }
                    Err(m) => Some(m.to_string()),
                },
                _ => {
                    set(&mut self.line.bo_regul);
                    (!matches!(value, b"V" | b"F" | b"v" | b"f")).then(|| "valeur attendue : F (ou V)".to_string())
                }
            }
        } else {
            match idx {
                0..=4 => {
                    let n = facets::char_len(value);
                    let max = ROOT_MAXLEN[idx];
                    match idx {
                        0 => set(&mut self.out.header.rf_borfact),
                        1 => set(&mut self.out.header.log_fact),
                        2 => set(&mut self.out.header.id_cram),
                        3 => set(&mut self.out.header.id_site),
                        _ => set(&mut self.out.header.rf_prstpap),
                    }
                    (n > max).then(|| format!("{n} caractères pour {max} au plus"))
                }
                // nb-ligbor: totalDigits 15 and no fractionDigits facet.
                6 => match facets::decimal(value, 15, 15) {
                    Ok(v) => {
                        self.out.footer.nb_ligbor = Some(v);
                        None
                    }
                    Err(m) => Some(m.to_string()),
                },
                _ => match facets::decimal(value, 11, 2) {
                    Ok(v) => {
                        if idx == 7 {
                            self.out.footer.mt_totamd = Some(v);
                        } else {
                            self.out.footer.mt_totprest = Some(v);
                        }
                        None
                    }
                    Err(m) => Some(m.to_string()),
                },
            }
        };
        if let Some(reason) = err {
            let at = if in_line { format!(" (ligne {})", self.line.index) } else { String::new() };
            // A NIR is personal data: never repeated in messages, which end
            // up in e-mails and reports.
            let msg = if name == "nir-per" {
                format!("<{name}>{at} : {reason}")
            } else {
                let cut = text.char_indices().nth(80).map_or(text.len(), |(i, _)| i);
                format!("<{name}>{at} : « {} » : {reason}", &text[..cut])
            };
            self.schema(xml_line, Some(name), msg);
        }
        self.value = owned;
        self.value.clear();
    }

    fn end_of_file(&mut self, line: u64) {
        if !self.seen_root {
            self.out.anomalies.push(Anomaly::file(Code::F01, Some(line), None, "aucun élément racine : fichier vide ou sans XML"));
            self.out.fatal = true;
        } else if self.depth > 0 {
            self.out.anomalies.push(Anomaly::file(Code::F01, Some(line), None, "fin de fichier avant la fermeture de </factbord>"));
            self.out.fatal = true;
        }
    }
}

/// Line of the first non-blank character of a text starting at `line`.
fn text_line(t: &str, line: u64) -> u64 {
    let lead = t.bytes().take_while(|&b| xml::is_ws(b));
    line + lead.filter(|&b| b == b'\n').count() as u64
}

/// The XML declaration's pseudo-attributes (XML 1.0 [23]): `version`
/// first, then optionally `encoding`, then optionally `standalone`
/// (`yes`/`no`), nothing else, each once.
fn check_decl(d: &quick_xml::events::BytesDecl<'_>) -> Result<(), String> {
    let mut names = Vec::new();
    let content: &str = d;
    if !content.starts_with("xml") {
        return Err("déclaration XML invalide".into());
    }
    let start = BytesStart::from_content(content, 3);
    for a in start.attributes().with_checks(true) {
        let a = a.map_err(|e| format!("déclaration XML invalide : {e}"))?;
        let key = a.key.as_ref().to_string();
        let value = a.value.to_string();
        match key.as_str() {
            "version" if names.is_empty() => {
                let ok = value.len() > 2 && value.starts_with("1.") && value[2..].bytes().all(|b| b.is_ascii_digit());
                if !ok {
                    return Err(format!("version XML {value:?} non prise en charge"));
                }
            }
            "encoding" if names == ["version"] => {
                let ok = value.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                    && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
                if !ok {
                    return Err(format!("nom d'encodage invalide : {value:?}"));
                }
            }
            "standalone" if names.first().is_some_and(|n| n == "version") && !names.iter().any(|n| n == "standalone") => {
                if value != "yes" && value != "no" {
                    return Err(format!("standalone doit valoir yes ou no, pas {value:?}"));
                }
            }
            _ => return Err(format!("déclaration XML invalide : « {key} » inattendu à cet endroit (version, encoding, standalone dans cet ordre)")),
        }
        names.push(key);
    }
    if names.first().map(String::as_str) != Some("version") {
        return Err("déclaration XML sans version".into());
    }
    Ok(())
}

/// Decodes an attribute value: references resolved, `<` refused.
fn attribute_value(raw: &[u8]) -> Result<Vec<u8>, String> {
    if memchr::memchr(b'<', raw).is_some() {
        return Err("« < » interdit dans une valeur d'attribut".into());
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = memchr::memchr(b'&', rest) {
        out.extend_from_slice(&rest[..i]);
        let after = &rest[i + 1..];
        let Some(j) = memchr::memchr(b';', after) else {
            return Err("« & » isolé dans une valeur d'attribut".into());
        };
        let c = xml::resolve_reference(&after[..j])
            .ok_or_else(|| format!("entité inconnue &{}; dans une valeur d'attribut", String::from_utf8_lossy(&after[..j])))?;
        let mut b = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
        rest = &after[j + 1..];
    }
    out.extend_from_slice(rest);
    Ok(out)
}

/// Whether `t` holds `b`: a plain loop beats memchr's set-up on the short
/// texts of billing fields.
#[inline]
fn has_byte(t: &[u8], b: u8) -> bool {
    if t.len() < 64 {
        t.iter().any(|&c| c == b)
    } else {
        memchr::memchr(b, t).is_some()
    }
}
