//! Generated billing files for the differential oracle: a deterministic
//! generator of schema-valid `factbord` documents and of the mutations
//! that break (or keep) them.
//!
//! In: a seed and a case number. Out: a [`Case`] — the bytes, the list of
//! operations applied (to read a failure), and, when the case contains a
//! construct where libxml2 departs from XSD 1.0, the XSD-equivalent bytes
//! that avoid it (so the runner can tell a libxml2 quirk from a gateway bug
//! with evidence rather than a skip list).
//!
//! Documents are a small tree so that element-level mutations (drop,
//! duplicate, swap, rename) stay meaningful; values are raw XML text so that
//! a mutation can put entity references, CDATA or comments inside them.

use crate::check_support::{cp1252, latin1, latin9};

/// SplitMix64: tiny, deterministic, good enough to spread cases.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

// ------------------------------------------------------------------ quirks

/// Marks a construct rendered one way for the real file and another,
/// XSD-equivalent way for the evidence file (private-use characters never
/// produced otherwise).
const Q_OPEN: char = '\u{E000}';
const Q_MID: char = '\u{E001}';
const Q_CLOSE: char = '\u{E002}';

fn quirk(real: &str, equiv: &str) -> String {
    format!("{Q_OPEN}{real}{Q_MID}{equiv}{Q_CLOSE}")
}

fn resolve(text: &str, equiv: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(Q_OPEN) {
        out.push_str(&rest[..i]);
        let after = &rest[i + Q_OPEN.len_utf8()..];
        let m = after.find(Q_MID).expect("quirk middle");
        let c = after.find(Q_CLOSE).expect("quirk end");
        out.push_str(if equiv {
            &after[m + Q_MID.len_utf8()..c]
        } else {
            &after[..m]
        });
        rest = &after[c + Q_CLOSE.len_utf8()..];
    }
    out.push_str(rest);
    out
}

/// Where libxml2 departs from the XSD 1.0 / XML 1.0 specifications.
pub const QUIRK_DATE_WS: &str = "xs:date value with surrounding whitespace: XSD 1.0 Part 2 §3.2.9 fixes \
whiteSpace=collapse for xs:date, so the value is valid; libxml2 refuses it";
pub const QUIRK_CDATA_WS: &str = "empty or whitespace-only CDATA section in element-only content: XSD 1.0 \
Part 1 §3.4.4 (Element Locally Valid (Complex Type) 2.3) only forbids non-whitespace characters; \
libxml2 refuses any CDATA node there";
pub const QUIRK_DECL_BLANK: &str = "no white space between the encoding and standalone pseudo-attributes of \
the XML declaration: XML 1.0 §2.8 (SDDecl ::= S 'standalone' …) requires it; libxml2 omits the check for a \
document in UTF-8";
pub const QUIRK_BOM_DECL: &str = "UTF-8 byte order mark with a declared non-UTF-8 encoding: XML 1.0 §4.3.3 \
makes it a fatal error (the entity is not in its declared encoding); libxml2 follows the BOM";

// ------------------------------------------------------------------ model

#[derive(Clone, Debug)]
pub struct El {
    pub name: String,
    pub end_name: Option<String>,
    pub attrs: String,
    pub body: Body,
}

#[derive(Clone, Debug)]
pub enum Body {
    Value(String),
    Kids(Vec<Item>),
}

#[derive(Clone, Debug)]
pub enum Item {
    El(El),
    Raw(String),
}

pub struct Doc {
    pub pre: String,
    pub decl: Option<String>,
    pub prolog: String,
    pub root: El,
    pub epilog: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Str(usize),
    Date,
    Dec { total: usize, frac: Option<usize> },
    Regul,
    Container,
}

pub fn kind_of(name: &str) -> Kind {
    match name {
        "rf-borfact" | "log-fact" | "nom-per" => Kind::Str(54),
        "id-cram" => Kind::Str(2),
        "id-site" | "nir-per" | "id-prest" => Kind::Str(15),
        "rf-prstpap" => Kind::Str(6),
        "pn-per" => Kind::Str(20),
        "dtd-interv" | "dtf-interv" => Kind::Date,
        "nb-quant" | "mt-tu" | "mt-total" | "mt-totamd" | "mt-totprest" => Kind::Dec {
            total: 11,
            frac: Some(2),
        },
        "nb-ligbor" => Kind::Dec { total: 15, frac: None },
        "bo-regul" => Kind::Regul,
        _ => Kind::Container,
    }
}

const LINE: [&str; 11] = [
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
const HEADER: [&str; 5] = ["rf-borfact", "log-fact", "id-cram", "id-site", "rf-prstpap"];
const FOOTER: [&str; 3] = ["nb-ligbor", "mt-totamd", "mt-totprest"];
pub const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

fn leaf(name: &str, value: String) -> El {
    El {
        name: name.into(),
        end_name: None,
        attrs: String::new(),
        body: Body::Value(value),
    }
}

// ------------------------------------------------------------------ values

/// One character of a string value, possibly written as markup.
fn str_unit(r: &mut Rng) -> String {
    const PLAIN: &[&str] = &[
        "a",
        "b",
        "z",
        "D",
        "P",
        "0",
        "1",
        "7",
        "9",
        " ",
        "-",
        "'",
        "_",
        ".",
        "é",
        "è",
        "à",
        "ç",
        "ô",
        "É",
        "Œ",
        "œ",
        "€",
        "ü",
        "ß",
        "Ÿ",
        "\u{1F600}",
        "\u{85}",
        "\u{2028}",
    ];
    const MARKUP: &[&str] = &[
        "&amp;",
        "&lt;",
        "&gt;",
        "&quot;",
        "&apos;",
        "&#233;",
        "&#x20AC;",
        "&#x1F600;",
        "&#65;",
    ];
    if r.chance(10) {
        r.pick(MARKUP).to_string()
    } else {
        r.pick(PLAIN).to_string()
    }
}

fn string_of(r: &mut Rng, len: usize) -> String {
    (0..len).map(|_| str_unit(r)).collect()
}

fn valid_string(r: &mut Rng, max: usize) -> String {
    let len = if r.chance(30) { max } else { r.range(0, max) };
    string_of(r, len)
}

fn valid_date(r: &mut Rng) -> String {
    let y = r.range(1000, 2999);
    let m = r.range(1, 12);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1];
    let d = if r.chance(20) { days } else { r.range(1, days) };
    let tz = if r.chance(10) {
        *r.pick(&["Z", "+01:00", "-05:30", "+14:00", "-14:00", "+00:00"])
    } else {
        ""
    };
    format!("{y:04}-{m:02}-{d:02}{tz}")
}

fn digits(r: &mut Rng, n: usize, first_nonzero: bool) -> String {
    (0..n)
        .map(|i| {
            let lo = if i == 0 && first_nonzero { 1 } else { 0 };
            char::from(b'0' + r.range(lo, 9) as u8)
        })
        .collect()
}

fn valid_decimal(r: &mut Rng, total: usize, frac: Option<usize>) -> String {
    let max_frac = frac.unwrap_or(total).min(total);
    let b = r.range(0, max_frac);
    let a = r.range(if b == 0 { 1 } else { 0 }, (total - b).min(9));
    let int = if a == 0 { String::new() } else { digits(r, a, true) };
    let mut fr = digits(r, b, false);
    if b > 0 {
        // last fraction digit non-zero so that trailing zeros below are extra
        fr.pop();
        fr.push(char::from(b'0' + r.range(1, 9) as u8));
    }
    let sign = if r.chance(10) { *r.pick(&["+", "-"]) } else { "" };
    let lead = if r.chance(10) {
        "0".repeat(r.range(1, 6))
    } else {
        String::new()
    };
    let trail = if r.chance(10) {
        "0".repeat(r.range(1, 6))
    } else {
        String::new()
    };
    let int = if int.is_empty() && (b == 0 || r.chance(50)) {
        "0".to_string()
    } else {
        int
    };
    if b == 0 {
        match r.below(4) {
            0 => format!("{sign}{lead}{int}."),
            1 if !trail.is_empty() => format!("{sign}{lead}{int}.{trail}"),
            _ => format!("{sign}{lead}{int}"),
        }
    } else {
        format!("{sign}{lead}{int}.{fr}{trail}")
    }
}

pub fn valid_value(r: &mut Rng, k: Kind) -> String {
    match k {
        Kind::Str(max) => valid_string(r, max),
        Kind::Date => valid_date(r),
        Kind::Dec { total, frac } => valid_decimal(r, total, frac),
        Kind::Regul => r.pick(&["F", "f", "V", "v"]).to_string(),
        Kind::Container => String::new(),
    }
}

/// Values on and across the edges of the type.
pub fn edge_value(r: &mut Rng, k: Kind) -> String {
    match k {
        Kind::Str(max) => match r.below(6) {
            0 => string_of(r, max),
            1 => string_of(r, max + 1),
            2 => {
                let n = max + r.range(2, 5);
                string_of(r, n)
            }
            3 => " ".repeat(r.range(0, max + 1)),
            4 => "é".repeat(if r.chance(50) { max } else { max + 1 }),
            _ => format!("{}&amp;", "x".repeat(max - 1 + r.below(2))),
        },
        Kind::Date => r
            .pick(&[
                "2021-02-29",
                "2020-02-29",
                "1900-02-29",
                "2000-02-29",
                "2100-02-29",
                "2021-04-31",
                "2021-13-01",
                "2021-00-10",
                "2021-01-00",
                "0000-01-01",
                "-0001-01-01",
                "12021-01-01",
                "02021-01-01",
                "2021-1-01",
                "21-01-01",
                "2021/01/01",
                "01/01/2021",
                "2021-01-01Z",
                "2021-01-01+14:00",
                "2021-01-01-14:00",
                "2021-01-01+14:01",
                "2021-01-01+15:00",
                "2021-01-01+1:00",
                "2021-01-01T00:00:00",
                "",
                "2021-01-01z",
                "\u{FF12}021-01-01",
                "2021-01-01+01:60",
                "2021-01",
                "-2021-03-01",
                "9999-12-31",
                "2021-01-01-00:00",
            ])
            .to_string(),
        Kind::Dec { total, .. } => {
            if r.chance(30) {
                // exactly at and one past the digit limit
                let n = total + r.below(2);
                let cut = r.below(n.min(4));
                let d = digits(r, n, true);
                if cut == 0 {
                    d
                } else {
                    format!("{}.{}", &d[..n - cut], &d[n - cut..])
                }
            } else {
                r.pick(&[
                    "1e3",
                    "1E3",
                    "14,25",
                    ".",
                    "+",
                    "-",
                    "",
                    "+-1",
                    "1 0",
                    "0x1F",
                    "INF",
                    "NaN",
                    "-INF",
                    "\u{661}",
                    "\u{FF11}",
                    "14.251",
                    "0.001",
                    "1.005",
                    "123456789012",
                    "12345678901",
                    "1234567890.1",
                    "123456789.12",
                    "0000000000000000123456789.12",
                    "123456789.1200000",
                    "+.5",
                    "-.5",
                    "5.",
                    "-0",
                    "+0.00",
                    "00",
                    "1_0",
                    "\u{A0}1",
                    "1.2.3",
                    "--1",
                    "1-",
                    "999999999999999",
                    "9999999999999999",
                    "0.10",
                    "12345678901.00",
                ])
                .to_string()
            }
        }
        Kind::Regul => r
            .pick(&[
                "V", "F", "v", "f", "X", "", " ", "VF", "T", "0", "é", " F", "F\n", "&#70;", "&#86;",
            ])
            .to_string(),
        Kind::Container => String::new(),
    }
}

// ------------------------------------------------------------------ documents

fn ws(r: &mut Rng, depth: usize) -> Item {
    let nl = if r.chance(10) { "\r\n" } else { "\n" };
    let mut s = format!("{nl}{}", " ".repeat(depth * r.range(1, 2)));
    if r.chance(3) {
        let markup: &str = r.pick::<&str>(&["<!-- ligne -->", "<?app x?>", "<!---->"]);
        s.push_str(markup);
        s.push_str(nl);
    }
    Item::Raw(s)
}

fn container(r: &mut Rng, name: &str, kids: Vec<El>, depth: usize) -> El {
    let mut items = Vec::new();
    for k in kids {
        items.push(ws(r, depth + 1));
        items.push(Item::El(k));
    }
    items.push(ws(r, depth));
    El {
        name: name.into(),
        end_name: None,
        attrs: String::new(),
        body: Body::Kids(items),
    }
}

pub fn valid_doc(r: &mut Rng) -> Doc {
    let mut kids: Vec<El> = HEADER.iter().map(|n| leaf(n, valid_value(r, kind_of(n)))).collect();
    let lines = *r.pick(&[0usize, 1, 1, 2, 2, 3, 5]);
    for _ in 0..lines {
        let fields = LINE.iter().map(|n| leaf(n, valid_value(r, kind_of(n)))).collect();
        kids.push(container(r, "factprest", fields, 1));
    }
    for n in FOOTER {
        // nb-ligbor is an xs:decimal: a fraction is schema-valid, but files
        // carry a count; keep fractions rare so they do not hide the rest.
        let v = if n == "nb-ligbor" && !r.chance(10) {
            valid_decimal(r, 15, Some(0))
        } else {
            valid_value(r, kind_of(n))
        };
        kids.push(leaf(n, v));
    }
    let mut root = container(r, "factbord", kids, 0);
    root.attrs = match r.below(6) {
        0 => String::new(),
        1 => format!(" xmlns:xsi=\"{XSI}\" xsi:schemaLocation=\"urn:x FactficTrans.xsd\""),
        2 => format!(" xmlns:i='{XSI}'\n  i:noNamespaceSchemaLocation='FactficTrans.xsd'"),
        3 => {
            format!(" xmlns:xsi=\"{XSI}\" xmlns:ext=\"urn:editeur\" xsi:noNamespaceSchemaLocation=\"FactficTrans.xsd\"")
        }
        _ => format!(" xmlns:xsi=\"{XSI}\" xsi:noNamespaceSchemaLocation=\"FactficTrans.xsd\""),
    };
    let decl = match r.below(8) {
        0 => None,
        1 => Some("<?xml version='1.0' encoding='utf-8'?>".to_string()),
        2 => Some("<?xml version=\"1.0\"?>".to_string()),
        3 => Some("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>".to_string()),
        _ => Some("<?xml version=\"1.0\" encoding=\"UTF-8\"?>".to_string()),
    };
    Doc {
        pre: String::new(),
        decl,
        prolog: "\n".into(),
        root,
        epilog: "\n".into(),
    }
}

fn render_el(e: &El, out: &mut String) {
    out.push('<');
    out.push_str(&e.name);
    out.push_str(&e.attrs);
    out.push('>');
    match &e.body {
        Body::Value(v) => out.push_str(v),
        Body::Kids(items) => {
            for it in items {
                match it {
                    Item::El(k) => render_el(k, out),
                    Item::Raw(s) => out.push_str(s),
                }
            }
        }
    }
    out.push_str("</");
    out.push_str(e.end_name.as_deref().unwrap_or(&e.name));
    out.push('>');
}

impl Doc {
    /// The document text with quirk markers still in.
    pub fn text(&self) -> String {
        let mut s = self.pre.clone();
        if let Some(d) = &self.decl {
            s.push_str(d);
        }
        s.push_str(&self.prolog);
        render_el(&self.root, &mut s);
        s.push_str(&self.epilog);
        s
    }
}

/// Paths (child indexes in `Kids`) of every element below the root.
fn paths(e: &El, at: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    if let Body::Kids(items) = &e.body {
        for (i, it) in items.iter().enumerate() {
            if let Item::El(k) = it {
                at.push(i);
                out.push(at.clone());
                paths(k, at, out);
                at.pop();
            }
        }
    }
}

fn get_mut<'a>(root: &'a mut El, path: &[usize]) -> &'a mut El {
    let mut e = root;
    for &i in path {
        e = match &mut e.body {
            Body::Kids(items) => match &mut items[i] {
                Item::El(k) => k,
                Item::Raw(_) => unreachable!("paths only point at elements"),
            },
            Body::Value(_) => unreachable!("paths only go through containers"),
        };
    }
    e
}

fn pick_path(r: &mut Rng, d: &Doc, want: impl Fn(&El) -> bool) -> Option<Vec<usize>> {
    let mut all = Vec::new();
    paths(&d.root, &mut Vec::new(), &mut all);
    let mut root = d.root.clone();
    let ok: Vec<Vec<usize>> = all.into_iter().filter(|p| want(get_mut(&mut root, p))).collect();
    if ok.is_empty() {
        None
    } else {
        Some(r.pick(&ok).clone())
    }
}

fn is_leaf(e: &El) -> bool {
    matches!(e.body, Body::Value(_))
}

/// Splits a raw value at a random character boundary.
fn split_at(r: &mut Rng, v: &str) -> usize {
    let cuts: Vec<usize> = (0..=v.len()).filter(|&i| v.is_char_boundary(i)).collect();
    *r.pick(&cuts)
}

pub mod mutate;
pub use mutate::{case, Case};

pub(crate) fn encode_text(text: &str, table: fn(char) -> Option<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match table(c) {
            Some(b) => out.push(b),
            None => out.extend_from_slice(format!("&#x{:X};", u32::from(c)).as_bytes()),
        }
    }
    out
}

pub(crate) fn charset(name: &str) -> fn(char) -> Option<u8> {
    match name {
        "latin1" => latin1,
        "latin9" => latin9,
        _ => cp1252,
    }
}
