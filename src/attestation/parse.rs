//! Streaming reader of `attvisites` files: XML well-formedness and
//! conformance to `schema/attvisites.xsd` in one pass, no DOM (A01).
//!
//! In: a `Read`. Out: each `attvisite` handed to an [`ItemSink`] as soon as
//! its `</attvisite>` is read (so memory stays flat whatever the number of
//! attestations), with the facts the controls need, and every A01 with its
//! XML line and element.
//!
//! The schema is small and fixed: its content model is written out as one
//! sequence below. After a misplaced element the reader resynchronises on
//! the next known element, so one mistake does not hide the others; a
//! well-formedness error stops the reading, as in any XML parser. The
//! tokens come from the project's lexer ([`crate::xml::lexer`]), which
//! judges well-formedness as libxml2 does; this module judges the shape of
//! the document, its namespaces ([`attrs`]) and the simple types.

use std::io::Read;

use super::{controls, Item};
use crate::anomaly::{Anomaly, Code};
use crate::billing::facets::char_len;
use crate::xml::lexer::{Lexeme, Lexer, Tag, Token};
use crate::xml::{self, input};

/// The root element.
pub const ROOT: &str = "attvisites";
/// The repeated child of the root (one or more).
pub const ITEM: &str = "attvisite";

/// Children of `attvisite`, in order; the first [`REQUIRED`] are required,
/// the others optional.
pub const ITEM_SEQ: [&str; 8] = [
    "rf-commande",
    "id-cram",
    "code-convention",
    "nir-per",
    "statut",
    "dt-visite",
    "motif",
    "commentaire",
];
pub const REQUIRED: usize = 5;
pub const NIR: usize = 3;
pub const STATUT: usize = 4;
pub const DT_VISITE: usize = 5;
pub const MOTIF: usize = 6;
pub const COMMENTAIRE: usize = 7;

/// `maxLength` of the identifiers (by `ITEM_SEQ` index).
pub const MAXLEN: [usize; 4] = [30, 2, 20, 15];

/// Beyond this nesting depth the document is refused (libxml2's own limit).
const MAX_DEPTH: usize = 256;
/// Text kept of one value; the rest is counted and scanned, not kept.
pub const MAX_VALUE: usize = 64 * 1024;
/// A01 details kept per file; a count of the rest is reported.
const MAX_SCHEMA_ANOMALIES: usize = 10_000;

/// What the controls need to know of an item beyond its values.
#[derive(Debug, Clone, Default)]
pub struct ItemFacts {
    /// Bit i set: `ITEM_SEQ[i]` is present.
    pub present: u8,
    /// XML line of each field (0 when absent).
    pub field_lines: [u64; 8],
    /// Every required element is there, in order, with nothing foreign in
    /// the item: its values can be judged.
    pub shape_ok: bool,
    /// No A01 inside the item at all (shape and simple types): the
    /// stateful rules may see it.
    pub schema_ok: bool,
    /// Characters of `commentaire` (line ends normalised), all of them.
    pub comment_chars: usize,
    /// `commentaire` holds the euro sign.
    pub comment_euro: bool,
}

impl ItemFacts {
    pub fn present(&self, i: usize) -> bool {
        self.present & (1 << i) != 0
    }

    /// The line of field `i`, or of its item when it is absent.
    pub fn line_of(&self, i: usize, item: &Item) -> u64 {
        match self.field_lines[i] {
            0 => item.xml_line,
            l => l,
        }
    }
}

/// Receives each item as it ends.
pub trait ItemSink {
    fn item(&mut self, item: &Item, facts: &ItemFacts);
}

/// What the reader learnt of the file besides the items.
#[derive(Debug, Default)]
pub struct Parsed {
    /// `attvisite` elements found.
    pub items: u32,
    /// A01 anomalies.
    pub anomalies: Vec<Anomaly>,
    /// A well-formedness error stopped the reading.
    pub fatal: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    Prolog,
    Root,
    Item,
    /// Inside a field of an item (`ITEM_SEQ` index).
    Leaf(usize),
    /// Inside an element that is reported and not read; depth below it.
    Skip(usize),
    Epilog,
}

struct State<'s, S: ItemSink> {
    sink: &'s mut S,
    out: Parsed,
    at: Where,
    /// Where to return after a Leaf or a Skip.
    parent: Where,
    item_pos: usize,
    in_item: bool,
    item: Item,
    facts: ItemFacts,
    /// The text of the current field so far, line ends normalised (UTF-8:
    /// the lexer hands out whole characters), kept up to `MAX_VALUE`.
    value: Vec<u8>,
    /// Characters of the current field, kept or not.
    value_chars: usize,
    value_cut: bool,
    value_euro: bool,
    leaf_had_child: bool,
    scratch: Vec<u8>,
    /// Element depth (root = 1).
    depth: usize,
    /// Namespace declarations in scope: (depth, prefix, uri). Empty prefix:
    /// default namespace.
    ns: crate::xml::names::Namespaces,
    schema_errors: usize,
    seen_root: bool,
    first_event: bool,
}

/// Reads an attestation file. Never panics; the result lists every A01.
pub fn parse<R: Read + 'static, S: ItemSink>(reader: R, sink: &mut S) -> Parsed {
    let (scanner, _enc) = match input::open(reader) {
        Ok(x) => x,
        Err(e) => {
            let mut out = Parsed::default();
            out.anomalies
                .push(Anomaly::file(Code::A01, Some(e.line), None, e.message));
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
        item_pos: 0,
        in_item: false,
        item: Item::default(),
        facts: ItemFacts::default(),
        value: Vec::with_capacity(256),
        value_chars: 0,
        value_cut: false,
        value_euro: false,
        leaf_had_child: false,
        scratch: Vec::new(),
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
            st.out.anomalies.push(Anomaly::file(Code::A01, Some(line), None, msg));
            st.out.fatal = true;
            break;
        }
    }
    if st.schema_errors > MAX_SCHEMA_ANOMALIES {
        let more = st.schema_errors - MAX_SCHEMA_ANOMALIES;
        st.out.anomalies.push(Anomaly::file(
            Code::A01,
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

fn lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

impl<S: ItemSink> State<'_, S> {
    /// A schema violation (A01). Inside an item, it keeps the item from the
    /// stateful rules.
    fn schema(&mut self, line: u64, field: Option<&str>, msg: String) {
        if self.in_item {
            self.facts.schema_ok = false;
        }
        self.schema_errors += 1;
        if self.schema_errors <= MAX_SCHEMA_ANOMALIES {
            self.out
                .anomalies
                .push(Anomaly::file(Code::A01, Some(line), field, msg));
        }
    }

    /// A violation of the item's shape: its values are not judged either.
    fn shape(&mut self, line: u64, field: Option<&str>, msg: String) {
        self.facts.shape_ok = false;
        self.schema(line, field, msg);
    }

    /// `attvisite n° i`, for messages.
    fn which(&self) -> String {
        format!("<{ITEM}> n° {}", self.item.index)
    }

    /// One token. Lines as the billing reader gives them: a tag at its
    /// `>`, a text at its first non-blank character.
    fn token(&mut self, lx: Lexeme<'_>) -> Step {
        let first = std::mem::replace(&mut self.first_event, false);
        let line = lx.end_line;
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
            Token::Text { text, blank } => self.chars(text, blank, lx.line, Chars::Text),
            Token::CData(text) => self.chars(text, xml::all_ws(text), lx.line, Chars::CData),
            Token::Ref { name, ch } => {
                if matches!(self.at, Where::Prolog | Where::Epilog) {
                    return fatal(
                        line,
                        format!("référence &{}; en dehors de l'élément racine <{ROOT}>", lossy(name)),
                    );
                }
                let mut b = [0u8; 4];
                let s = ch.encode_utf8(&mut b);
                self.chars(s.as_bytes(), xml::all_ws(s.as_bytes()), line, Chars::Ref)
            }
        }
    }

    fn start(&mut self, tag: &Tag<'_>, line: u64) -> Step {
        let name = tag.name;
        let empty = tag.empty;
        // Fast path: the next field of an item, no attribute, no default
        // namespace in scope.
        if self.at == Where::Item
            && !tag.has_attributes()
            && self.ns.resolve(b"").is_none_or(<[u8]>::is_empty)
            && ITEM_SEQ.get(self.item_pos).is_some_and(|s| s.as_bytes() == name)
            && self.depth < MAX_DEPTH
        {
            self.depth += 1;
            let k = self.item_pos;
            self.item_pos += 1;
            self.enter_leaf(k, line);
            return if empty { self.end(line) } else { Ok(()) };
        }
        if !xml::is_qname(name) {
            return fatal(line, format!("nom d'élément invalide : <{}", lossy(name)));
        }
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return fatal(line, format!("imbrication de plus de {MAX_DEPTH} éléments"));
        }
        let depth = self.depth;
        let refused_attr = self.ns.attributes(tag, line, depth)?;
        let local = self.ns.local_name(name, line)?;
        let shown = lossy(name);
        let shown: &str = &shown;
        let refused_attr = refused_attr.filter(|_| !matches!(self.at, Where::Skip(_)));
        if let Some(msg) = &refused_attr {
            self.schema(line, Some(shown), format!("{msg} sur <{shown}>"));
        }
        match self.at {
            Where::Prolog => {
                self.seen_root = true;
                if local != Some(ROOT.as_bytes()) {
                    self.schema(
                        line,
                        Some(shown),
                        format!("l'élément racine doit être <{ROOT}>, pas <{shown}>"),
                    );
                    self.enter_skip(Where::Epilog);
                } else {
                    self.at = Where::Root;
                }
            }
            Where::Epilog => return fatal(line, format!("second élément racine <{shown}> après </{ROOT}>")),
            Where::Root => self.start_in_root(local, shown, line),
            Where::Item => self.start_in_item(local, shown, line),
            Where::Leaf(idx) => {
                let parent = ITEM_SEQ[idx];
                let which = self.which();
                self.shape(
                    line,
                    Some(parent),
                    format!("élément <{shown}> non permis dans <{parent}> de {which} (valeur simple attendue)"),
                );
                // Reported here; the field's value is not judged further.
                self.leaf_had_child = true;
                self.at = Where::Skip(1);
                self.parent = Where::Leaf(idx);
            }
            Where::Skip(d) => self.at = Where::Skip(d + 1),
        }
        // An attribute on the `attvisite` itself was reported before the
        // item began: it keeps the item from the stateful rules too.
        if refused_attr.is_some() && self.in_item {
            self.facts.schema_ok = false;
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
        if local != Some(ITEM.as_bytes()) {
            let what = if local.is_some_and(|n| ITEM_SEQ.iter().any(|s| s.as_bytes() == n)) {
                format!("élément <{shown}> en dehors d'une attestation <{ITEM}>")
            } else {
                format!("élément <{shown}> inconnu dans <{ROOT}>")
            };
            self.schema(line, Some(shown), what);
            return self.enter_skip(Where::Root);
        }
        self.out.items = self.out.items.saturating_add(1);
        self.reset_item(line);
        self.at = Where::Item;
    }

    fn start_in_item(&mut self, local: Option<&[u8]>, shown: &str, line: u64) {
        let k = local.and_then(|n| ITEM_SEQ.iter().position(|s| s.as_bytes() == n));
        let Some(k) = k.filter(|&k| k >= self.item_pos) else {
            let what = if k.is_some() {
                "en double ou hors de l'ordre du format"
            } else {
                "inconnu"
            };
            let which = self.which();
            self.shape(line, Some(shown), format!("élément <{shown}> {what} dans {which}"));
            return self.enter_skip(Where::Item);
        };
        self.missing(self.item_pos, k.min(REQUIRED), line);
        self.item_pos = k + 1;
        self.enter_leaf(k, line);
    }

    /// Reports the required fields between `from` and `to` (exclusive).
    fn missing(&mut self, from: usize, to: usize, line: u64) {
        for i in from..to {
            let which = self.which();
            self.shape(
                line,
                Some(ITEM_SEQ[i]),
                format!("élément <{}> manquant dans {which}", ITEM_SEQ[i]),
            );
        }
    }

    /// Starts a new item, reusing the previous one's buffers.
    fn reset_item(&mut self, xml_line: u64) {
        let it = &mut self.item;
        it.index = self.out.items;
        it.xml_line = xml_line;
        for s in [
            &mut it.rf_commande,
            &mut it.id_cram,
            &mut it.code_convention,
            &mut it.nir_per,
            &mut it.statut,
            &mut it.dt_visite_raw,
            &mut it.motif,
            &mut it.commentaire,
        ] {
            s.clear();
        }
        it.dt_visite = None;
        self.facts = ItemFacts {
            shape_ok: true,
            schema_ok: true,
            ..ItemFacts::default()
        };
        self.item_pos = 0;
        self.in_item = true;
    }

    fn enter_leaf(&mut self, idx: usize, line: u64) {
        self.value.clear();
        self.value_chars = 0;
        self.value_cut = false;
        self.value_euro = false;
        self.leaf_had_child = false;
        self.facts.present |= 1 << idx;
        self.facts.field_lines[idx] = line;
        self.parent = self.at;
        self.at = Where::Leaf(idx);
    }

    fn end(&mut self, line: u64) -> Step {
        self.depth = self.depth.saturating_sub(1);
        let depth = self.depth;
        self.ns.close(depth);
        match self.at {
            Where::Skip(1) => self.at = self.parent,
            Where::Skip(d) => self.at = Where::Skip(d - 1),
            Where::Leaf(idx) => {
                self.finish_leaf(idx);
                self.at = Where::Item;
            }
            Where::Item => {
                self.missing(self.item_pos, REQUIRED, line);
                self.sink.item(&self.item, &self.facts);
                self.in_item = false;
                self.at = Where::Root;
            }
            Where::Root => {
                if self.out.items == 0 {
                    self.schema(
                        line,
                        Some(ITEM),
                        format!("aucune attestation <{ITEM}> dans <{ROOT}> : il en faut au moins une"),
                    );
                }
                self.at = Where::Epilog;
            }
            Where::Prolog | Where::Epilog => {}
        }
        Ok(())
    }

    /// Character data; `blank`: only XML whitespace.
    fn chars(&mut self, t: &[u8], blank: bool, line: u64, kind: Chars) -> Step {
        match self.at {
            Where::Leaf(idx) => {
                // Line ends are normalised in the text as written (CDATA
                // included), not in a character reference (`&#13;`).
                if kind != Chars::Ref && t.contains(&b'\r') {
                    let mut s = std::mem::take(&mut self.scratch);
                    s.clear();
                    push_normalised(&mut s, t);
                    self.append(idx, &s);
                    self.scratch = s;
                } else {
                    self.append(idx, t);
                }
                Ok(())
            }
            Where::Root | Where::Item => {
                // libxml2 refuses any CDATA section in element-only content,
                // even a blank one: side with it (the reference validator).
                if kind == Chars::CData || !blank {
                    let (parent, what) = if self.at == Where::Root {
                        (ROOT, format!("<{ROOT}>"))
                    } else {
                        (ITEM, self.which())
                    };
                    let text = if kind == Chars::CData { "section CDATA" } else { "texte" };
                    self.shape(
                        line,
                        Some(parent),
                        format!("{text} non permis entre les éléments de {what}"),
                    );
                }
                Ok(())
            }
            Where::Skip(_) => Ok(()),
            Where::Prolog | Where::Epilog => {
                if kind == Chars::CData || !blank {
                    return fatal(line, format!("texte en dehors de l'élément racine <{ROOT}>"));
                }
                Ok(())
            }
        }
    }

    /// Adds text to the current field: counted and scanned whole, kept up
    /// to `MAX_VALUE` bytes.
    fn append(&mut self, idx: usize, t: &[u8]) {
        self.value_chars += char_len(t);
        if idx == COMMENTAIRE && !self.value_euro {
            self.value_euro = memchr::memmem::find(t, "€".as_bytes()).is_some();
        }
        let room = MAX_VALUE - self.value.len();
        if t.len() <= room {
            self.value.extend_from_slice(t);
        } else {
            // Cut at a character boundary.
            let mut cut = room;
            while cut > 0 && (t[cut] & 0xC0) == 0x80 {
                cut -= 1;
            }
            self.value.extend_from_slice(&t[..cut]);
            self.value_cut = true;
        }
    }

    fn finish_leaf(&mut self, idx: usize) {
        if self.leaf_had_child {
            return;
        }
        let name = ITEM_SEQ[idx];
        let xml_line = self.facts.field_lines[idx];
        let value = std::mem::take(&mut self.value);
        // The lexer hands out whole UTF-8 characters and cuts keep them
        // whole: this never fails.
        let text = std::str::from_utf8(&value).unwrap_or_default();
        let set = |s: &mut String| {
            s.clear();
            s.push_str(text);
        };
        let it = &mut self.item;
        let err = match idx {
            0..=3 => {
                match idx {
                    0 => set(&mut it.rf_commande),
                    1 => set(&mut it.id_cram),
                    2 => set(&mut it.code_convention),
                    _ => set(&mut it.nir_per),
                }
                let (n, max) = (self.value_chars, MAXLEN[idx]);
                (n > max).then(|| format!("{n} caractères pour {max} au plus"))
            }
            STATUT => {
                set(&mut it.statut);
                (text != "T" && text != "S").then(|| "valeur attendue : T (visite faite) ou S (sans suite)".to_string())
            }
            DT_VISITE => {
                set(&mut it.dt_visite_raw);
                it.dt_visite = controls::visit_date(text).ok();
                None
            }
            MOTIF => {
                it.motif.clear();
                it.motif.push_str(controls::trim(text));
                None
            }
            _ => {
                set(&mut it.commentaire);
                self.facts.comment_chars = self.value_chars;
                self.facts.comment_euro = self.value_euro;
                None
            }
        };
        if let Some(reason) = err {
            let which = self.which();
            // A NIR is personal data: never repeated in messages, which end
            // up in e-mails and reports.
            let msg = if idx == NIR {
                format!("<{name}> de {which} : {reason}")
            } else {
                let cut = text.char_indices().nth(80).map_or(text.len(), |(i, _)| i);
                format!("<{name}> de {which} : « {} » : {reason}", &text[..cut])
            };
            self.schema(xml_line, Some(name), msg);
        }
        self.value = value;
        self.value.clear();
    }

    fn end_of_file(&mut self, line: u64) {
        if !self.seen_root {
            self.out.anomalies.push(Anomaly::file(
                Code::A01,
                Some(line),
                None,
                "aucun élément racine : fichier vide ou sans XML",
            ));
            self.out.fatal = true;
        } else if self.depth > 0 {
            self.out.anomalies.push(Anomaly::file(
                Code::A01,
                Some(line),
                None,
                format!("fin de fichier avant la fermeture de </{ROOT}>"),
            ));
            self.out.fatal = true;
        }
    }
}

/// Where character data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chars {
    Text,
    CData,
    /// A character or predefined entity reference, resolved.
    Ref,
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
