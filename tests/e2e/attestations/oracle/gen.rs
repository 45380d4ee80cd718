//! Generated attestation files for the differential oracle: a
//! deterministic generator of schema-valid `attvisites` documents and of
//! the mutations that break (or keep) them, after the billing oracle's.
//!
//! In: a seed and a case number. Out: a [`Case`] — the bytes, the
//! operations applied (to read a failure), and, when the case holds a
//! construct where libxml2 departs from XSD 1.0 / XML 1.0, the equivalent
//! bytes without it (so the runner tells a libxml2 quirk from a gateway
//! bug with evidence rather than a skip list).

use crate::check_support::{cp1252, latin1, latin9};

/// SplitMix64: tiny, deterministic, good enough to spread cases.
pub struct Rng(u64);

impl Rng {
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

/// Where libxml2 departs from the XSD 1.0 / XML 1.0 specifications (the
/// same departures as the billing oracle's).
pub const QUIRK_CDATA_WS: &str = "empty or whitespace-only CDATA section in element-only content: XSD 1.0 \
Part 1 §3.4.4 only forbids non-whitespace characters; libxml2 refuses any CDATA node there";
pub const QUIRK_DECL_BLANK: &str = "no white space between the encoding and standalone pseudo-attributes of \
the XML declaration: XML 1.0 §2.8 requires it; libxml2 omits the check for a document in UTF-8";
pub const QUIRK_BOM_DECL: &str = "UTF-8 byte order mark with a declared non-UTF-8 encoding: XML 1.0 §4.3.3 \
makes it a fatal error; libxml2 follows the BOM";

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
    Kids(Vec<Node>),
}

#[derive(Clone, Debug)]
pub enum Node {
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
    /// xs:string with maxLength.
    Str(usize),
    /// T | S.
    Statut,
    /// xs:string, no facet (dt-visite, motif, commentaire).
    Free,
    Container,
}

pub fn kind_of(name: &str) -> Kind {
    match name {
        "rf-commande" => Kind::Str(30),
        "id-cram" => Kind::Str(2),
        "code-convention" => Kind::Str(20),
        "nir-per" => Kind::Str(15),
        "statut" => Kind::Statut,
        "dt-visite" | "motif" | "commentaire" => Kind::Free,
        _ => Kind::Container,
    }
}

const FIELDS: [&str; 8] = [
    "rf-commande",
    "id-cram",
    "code-convention",
    "nir-per",
    "statut",
    "dt-visite",
    "motif",
    "commentaire",
];
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
        "/",
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
        "¤",
        "ß",
        "Ÿ",
        "\u{1F600}",
        "\u{85}",
        "\u{2028}",
        "\n",
        "\t",
    ];
    const MARKUP: &[&str] = &[
        "&amp;",
        "&lt;",
        "&gt;",
        "&quot;",
        "&apos;",
        "&#233;",
        "&#x20AC;",
        "&#8364;",
        "&#x1F600;",
        "&#65;",
        "&#13;",
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

pub fn valid_value(r: &mut Rng, name: &str) -> String {
    match kind_of(name) {
        Kind::Str(max) => {
            let len = if r.chance(30) { max } else { r.range(0, max) };
            string_of(r, len)
        }
        Kind::Statut => r
            .pick(&["T", "S", "T", "S", "&#84;", "<![CDATA[S]]>", "T<!-- fait -->"])
            .to_string(),
        Kind::Free => match name {
            "dt-visite" => r
                .pick(&[
                    "2026-10-02",
                    "02/10/2026",
                    "29/02/2024",
                    "2026-02-30",
                    "hier",
                    "",
                    " 2026-10-02 ",
                ])
                .to_string(),
            "motif" => r
                .pick(&[
                    "REFUS",
                    "INJOIGNABLE",
                    "DECES",
                    "ETABLISSEMENT",
                    "DEMENAGEMENT",
                    "AUTRE",
                    "",
                    "refus",
                ])
                .to_string(),
            _ => {
                let len = if r.chance(5) { r.range(490, 520) } else { r.range(0, 40) };
                string_of(r, len)
            }
        },
        Kind::Container => String::new(),
    }
}

/// Values on and across the edges of the type.
pub fn edge_value(r: &mut Rng, name: &str) -> String {
    match kind_of(name) {
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
        Kind::Statut => r
            .pick(&[
                "T",
                "S",
                "t",
                "s",
                " T",
                "T ",
                "",
                "TS",
                "X",
                "&#84;",
                "&#x53;",
                "&#32;S",
                "T\n",
                "<![CDATA[T]]>",
                "<![CDATA[ T]]>",
                "\u{FF34}",
            ])
            .to_string(),
        Kind::Free => match r.below(4) {
            0 => {
                let n = r.range(499, 502);
                string_of(r, n)
            }
            1 => "x".repeat(r.range(1000, 70_000)),
            2 => r.pick(&["", " ", "€", "&#8364;", "]]&gt;", "\u{FEFF}"]).to_string(),
            _ => string_of(r, 8),
        },
        Kind::Container => String::new(),
    }
}

// ------------------------------------------------------------------ documents

fn ws(r: &mut Rng, depth: usize) -> Node {
    let nl = if r.chance(10) { "\r\n" } else { "\n" };
    let mut s = format!("{nl}{}", " ".repeat(depth * r.range(1, 2)));
    if r.chance(3) {
        let markup: &str = r.pick::<&str>(&["<!-- attestation -->", "<?app x?>", "<!---->"]);
        s.push_str(markup);
        s.push_str(nl);
    }
    Node::Raw(s)
}

fn container(r: &mut Rng, name: &str, kids: Vec<El>, depth: usize) -> El {
    let mut items = Vec::new();
    for k in kids {
        items.push(ws(r, depth + 1));
        items.push(Node::El(k));
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
    let n = *r.pick(&[1usize, 1, 2, 2, 3, 5]);
    let mut items = Vec::new();
    for _ in 0..n {
        let mut fields = Vec::new();
        for (i, f) in FIELDS.iter().enumerate() {
            if i < 5 || r.chance(60) {
                fields.push(leaf(f, valid_value(r, f)));
            }
        }
        items.push(container(r, "attvisite", fields, 1));
    }
    let mut root = container(r, "attvisites", items, 0);
    root.attrs = match r.below(5) {
        0 => format!(" xmlns:xsi=\"{XSI}\" xsi:noNamespaceSchemaLocation=\"attvisites.xsd\""),
        1 => format!(" xmlns:i='{XSI}'\n  i:schemaLocation='urn:x attvisites.xsd'"),
        _ => String::new(),
    };
    let decl = match r.below(6) {
        0 => None,
        1 => Some("<?xml version='1.0' encoding='utf-8'?>".to_string()),
        2 => Some("<?xml version=\"1.0\"?>".to_string()),
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
                    Node::El(k) => render_el(k, out),
                    Node::Raw(s) => out.push_str(s),
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
            if let Node::El(k) = it {
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
                Node::El(k) => k,
                Node::Raw(_) => unreachable!("paths only point at elements"),
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

fn split_at(r: &mut Rng, v: &str) -> usize {
    let cuts: Vec<usize> = (0..=v.len()).filter(|&i| v.is_char_boundary(i)).collect();
    *r.pick(&cuts)
}

// ------------------------------------------------------------------ cases

pub struct Case {
    pub id: usize,
    /// What was done to the valid document, in order.
    pub ops: Vec<String>,
    pub bytes: Vec<u8>,
    /// The same document with every libxml2-quirk construct replaced by its
    /// equivalent form (only when there is one).
    pub equiv: Option<Vec<u8>>,
    pub quirks: Vec<&'static str>,
    /// The product refuses the document whatever the schema says: why.
    pub must_a01: Option<&'static str>,
}

const DOCTYPE_REASON: &str = "a document type declaration is refused (PRODUCT.md §3–4, A01)";
const CP1252_REASON: &str = "a byte Windows-1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) in a file \
declared windows-1252 is an encoding error (XML 1.0 §4.3.3, A01) wherever it stands";

pub fn case(seed: u64, id: usize) -> Case {
    let mut r = Rng(seed ^ (id as u64).wrapping_mul(0xA24B_AED4_963E_E407));
    let mut d = valid_doc(&mut r);
    let mut c = Case {
        id,
        ops: Vec::new(),
        bytes: Vec::new(),
        equiv: None,
        quirks: Vec::new(),
        must_a01: None,
    };
    let n = match r.below(20) {
        0..=3 => 0,
        4..=12 => 1,
        13..=17 => 2,
        _ => 3,
    };
    for _ in 0..n {
        tree_op(&mut r, &mut d, &mut c);
    }
    let enc = if r.chance(25) { *r.pick(&ENCODINGS) } else { "utf-8" };
    if enc != "utf-8" {
        c.ops.push(format!("encoding: {enc}"));
    }
    let (real, equiv) = encode(&mut r, &mut d, enc, &mut c);
    c.bytes = real;
    if c.quirks.is_empty() {
        if r.chance(12) {
            byte_op(&mut r, &mut c);
        }
    } else {
        c.equiv = Some(equiv);
    }
    if c.must_a01.is_none()
        && c.ops.iter().any(|o| o.starts_with("encoding: windows-1252"))
        && c.bytes.iter().any(|b| matches!(b, 0x81 | 0x8D | 0x8F | 0x90 | 0x9D))
    {
        c.must_a01 = Some(CP1252_REASON);
    }
    c
}

fn tree_op(r: &mut Rng, d: &mut Doc, c: &mut Case) {
    match r.below(40) {
        0..=2 => drop_el(r, d, c),
        3..=5 => dup_el(r, d, c),
        6..=7 => swap_el(r, d, c),
        8..=10 => rename_el(r, d, c),
        11..=13 => add_attr(r, d, c),
        14..=17 => container_text(r, d, c),
        18..=26 => facet_value(r, d, c),
        27..=29 => wrap_ws(r, d, c),
        30..=32 => value_markup(r, d, c),
        33..=35 => value_ref(r, d, c),
        _ => doc_level(r, d, c),
    }
}

fn kids_mut<'a>(d: &'a mut Doc, parent: &[usize]) -> &'a mut Vec<Node> {
    match &mut get_mut(&mut d.root, parent).body {
        Body::Kids(k) => k,
        Body::Value(_) => unreachable!("a parent is a container"),
    }
}

fn el_name(it: &Node) -> String {
    match it {
        Node::El(e) => e.name.clone(),
        Node::Raw(_) => String::new(),
    }
}

fn drop_el(r: &mut Rng, d: &mut Doc, c: &mut Case) {
    let Some(p) = pick_path(r, d, |_| true) else { return };
    let (parent, i) = (&p[..p.len() - 1], p[p.len() - 1]);
    let it = kids_mut(d, parent).remove(i);
    c.ops.push(format!("drop <{}>", el_name(&it)));
}

fn dup_el(r: &mut Rng, d: &mut Doc, c: &mut Case) {
    let Some(p) = pick_path(r, d, |_| true) else { return };
    let (parent, i) = (&p[..p.len() - 1], p[p.len() - 1]);
    let kids = kids_mut(d, parent);
    let it = kids[i].clone();
    c.ops.push(format!("duplicate <{}>", el_name(&it)));
    kids.insert(i + 1, it);
}

fn swap_el(r: &mut Rng, d: &mut Doc, c: &mut Case) {
    let Some(p) = pick_path(r, d, |_| true) else { return };
    let (parent, i) = (&p[..p.len() - 1], p[p.len() - 1]);
    let kids = kids_mut(d, parent);
    let Some(j) = (i + 1..kids.len()).find(|&j| matches!(kids[j], Node::El(_))) else {
        return;
    };
    kids.swap(i, j);
    c.ops
        .push(format!("swap <{}> and <{}>", el_name(&kids[j]), el_name(&kids[i])));
}

fn rename_el(r: &mut Rng, d: &mut Doc, c: &mut Case) {
    let Some(p) = pick_path(r, d, |_| true) else { return };
    let e = get_mut(&mut d.root, &p);
    let old = e.name.clone();
    match r.below(8) {
        0 => e.name = r.pick(&FIELDS).to_string(),
        1 => e.name = old.to_uppercase(),
        2 => e.name = r.pick(&["attvisite", "attvisites", "adresse"]).to_string(),
        3 => {
            e.name = format!("x:{old}");
            e.attrs.push_str(" xmlns:x=\"urn:x\"");
        }
        4 => e.name = format!("y:{old}"),
        5 => e.name = format!("1{old}"),
        6 => e.name = "dàte-visite".into(),
        _ => {
            e.end_name = Some(format!("{old}s"));
            c.ops.push(format!("end tag </{old}> misspelt"));
            return;
        }
    }
    c.ops.push(format!("rename <{old}> to <{}>", e.name));
}

fn add_attr(r: &mut Rng, d: &mut Doc, c: &mut Case) {
    const ATTRS: &[&str] = &[
        " a=\"1\"",
        " xml:lang=\"fr\"",
        " xmlns:p=\"urn:p\"",
        " xmlns=\"\"",
        " xmlns=\"urn:x\"",
        " xsi:nil=\"true\"",
        " xsi:noNamespaceSchemaLocation=\"a.xsd\"",
        " xsi:schemaLocation=\"urn:a a.xsd\"",
        " xsi:type=\"xs:string\"",
        " xmlns:q=\"urn:q\" q:r=\"1\"",
        " a=\"1\" a=\"2\"",
        " a=1",
        " a=\"&e;\"",
        " xmlns:xsi=\"urn:pas-xsi\"",
    ];
    let on_root = r.chance(30);
    let a = *r.pick(ATTRS);
    let e = if on_root {
        &mut d.root
    } else {
        let Some(p) = pick_path(r, d, |_| true) else { return };
        get_mut(&mut d.root, &p)
    };
    e.attrs.push_str(a);
    c.ops.push(format!("attribute{a} on <{}>", e.name));
}

fn container_text(r: &mut Rng, d: &mut Doc, c: &mut Case) {
    let texts: Vec<(String, Option<&'static str>)> = vec![
        ("x".into(), None),
        ("&amp;".into(), None),
        ("<![CDATA[y]]>".into(), None),
        ("&#65;".into(), None),
        ("&#160;".into(), None),
        ("&#32;".into(), None),
        ("<!-- c -->".into(), None),
        ("<?p q?>".into(), None),
        ("<?xml version=\"1.0\"?>".into(), None),
        ("&x;".into(), None),
        ("\u{A0}".into(), None),
        (quirk("<![CDATA[ ]]>", " "), Some(QUIRK_CDATA_WS)),
        (quirk("<![CDATA[]]>", ""), Some(QUIRK_CDATA_WS)),
    ];
    let (t, q) = texts[r.below(texts.len())].clone();
    let target: Option<Vec<usize>> = if r.chance(30) {
        Some(Vec::new())
    } else {
        pick_path(r, d, |e| !is_leaf(e))
    };
    let Some(p) = target else { return };
    let kids = kids_mut(d, &p);
    let at = r.below(kids.len() + 1);
    kids.insert(at, Node::Raw(t.clone()));
    if let Some(q) = q {
        c.quirks.push(q);
    }
    c.ops
        .push(format!("text {:?} in element-only content", resolve(&t, false)));
}

fn value_mut(e: &mut El) -> &mut String {
    match &mut e.body {
        Body::Value(v) => v,
        Body::Kids(_) => unreachable!("a leaf"),
    }
}

fn facet_value(r: &mut Rng, d: &mut Doc, c: &mut Case) {
    let Some(p) = pick_path(r, d, is_leaf) else { return };
    let e = get_mut(&mut d.root, &p);
    let v = edge_value(r, &e.name);
    let shown: String = v.chars().take(60).collect();
    c.ops
        .push(format!("<{}> = {shown:?} ({} chars)", e.name, v.chars().count()));
    *value_mut(e) = v;
}

fn wrap_ws(r: &mut Rng, d: &mut Doc, c: &mut Case) {
    let Some(p) = pick_path(r, d, is_leaf) else { return };
    let e = get_mut(&mut d.root, &p);
    const WS: &[&str] = &[" ", "\n", "\t", "\r\n", "&#32;", "&#10;", "&#9;", "&#13;", "  \n  "];
    let left = if r.chance(60) { *r.pick(WS) } else { "" };
    let right = if left.is_empty() || r.chance(50) {
        *r.pick(WS)
    } else {
        ""
    };
    let name = e.name.clone();
    let v = value_mut(e);
    *v = format!("{left}{v}{right}");
    c.ops.push(format!("<{name}> wrapped in {left:?} … {right:?}"));
}

fn insert_in_value(r: &mut Rng, d: &mut Doc, c: &mut Case, what: &str, pool: &[&str]) {
    let Some(p) = pick_path(r, d, is_leaf) else { return };
    let e = get_mut(&mut d.root, &p);
    let name = e.name.clone();
    let ins = *r.pick(pool);
    let v = value_mut(e);
    let at = split_at(r, v);
    v.insert_str(at, ins);
    c.ops.push(format!("{what} {ins:?} at byte {at} of <{name}>"));
}

fn value_markup(r: &mut Rng, d: &mut Doc, c: &mut Case) {
    const POOL: &[&str] = &[
        "<!--c-->",
        "<?p x?>",
        "<![CDATA[]]>",
        "<![CDATA[€]]>",
        "<!---->",
        "<b/>",
        "<!-- a -- b -->",
        "<?xml-stylesheet x?>",
        "]]>",
        "<",
        ">",
    ];
    insert_in_value(r, d, c, "markup", POOL);
}

fn value_ref(r: &mut Rng, d: &mut Doc, c: &mut Case) {
    const POOL: &[&str] = &[
        "&amp;",
        "&lt;",
        "&#233;",
        "&#x1F600;",
        "&#0;",
        "&#xD800;",
        "&#xFFFE;",
        "&foo;",
        "&",
        "&#65",
        "&#X41;",
        "&#x10FFFF;",
        "&#x110000;",
        "&#8364;",
        "&#x85;",
    ];
    insert_in_value(r, d, c, "reference", POOL);
}

fn doc_level(r: &mut Rng, d: &mut Doc, c: &mut Case) {
    let what = match r.below(16) {
        0 => {
            d.decl = None;
            "no XML declaration".to_string()
        }
        1 => {
            d.decl = Some("<?xml version=\"1.1\" encoding=\"UTF-8\"?>".into());
            "XML 1.1 declared".into()
        }
        2 => {
            let bad = *r.pick(&[
                "<?xml encoding=\"UTF-8\"?>",
                "<?xml version=\"1.0\" standalone=\"maybe\"?>",
                "<?xml version=\"2.0\"?>",
                "<?xml version=\"1.0\" standalone=\"yes\" encoding=\"UTF-8\"?>",
                "<?xml version=\"1.0\" encoding=\"UTF-8\"standalone=\"no\"?>",
            ]);
            d.decl = Some(if bad.contains("\"UTF-8\"standalone") {
                c.quirks.push(QUIRK_DECL_BLANK);
                quirk(bad, &bad.replace("UTF-8", "ISO-8859-1"))
            } else {
                bad.to_string()
            });
            "bad declaration".into()
        }
        3 => {
            d.pre = r.pick(&[" ", "\n", "<!-- c -->"]).to_string();
            format!("{:?} before the declaration", d.pre)
        }
        4 => {
            d.prolog.push_str("<!-- c -->\n<?p x?>\n");
            "comment and PI before the root".into()
        }
        5 | 6 => {
            let dt = *r.pick(&[
                "<!DOCTYPE attvisites>",
                "<!DOCTYPE attvisites SYSTEM \"attvisites.dtd\">",
                "<!DOCTYPE attvisites [<!ELEMENT attvisites ANY>]>",
                "<!DOCTYPE attvisites [\n<!ENTITY e \"x\">\n]>",
            ]);
            d.prolog.push_str(dt);
            d.prolog.push('\n');
            c.must_a01 = Some(DOCTYPE_REASON);
            format!("{dt:?} before the root")
        }
        7 => {
            d.prolog.push_str("x\n");
            "text before the root".into()
        }
        8..=10 => {
            let e = *r.pick(&[
                "<!-- fin -->",
                "<?p?>",
                "  \n\n",
                "<attvisites/>",
                "x",
                "&amp;",
                "<![CDATA[x]]>",
                "&#32;",
            ]);
            d.epilog.push_str(e);
            format!("{e:?} after the root")
        }
        11 => {
            d.root.name = r.pick(&["attvisite", "factbord", "Attvisites"]).to_string();
            "root renamed".into()
        }
        12 => {
            d.root.attrs.push_str(" xmlns=\"urn:cnav\"");
            "root in a namespace".into()
        }
        13 => {
            // Every item dropped: an empty root.
            if let Body::Kids(k) = &mut d.root.body {
                k.retain(|n| matches!(n, Node::Raw(_)));
            }
            "no attvisite".into()
        }
        14 => {
            // Deep nesting inside a comment's place.
            let depth = *r.pick(&[100usize, 255, 256, 300]);
            let p = pick_path(r, d, is_leaf);
            if let Some(p) = p {
                let e = get_mut(&mut d.root, &p);
                *value_mut(e) = format!("{}{}", "<n>".repeat(depth), "</n>".repeat(depth));
            }
            format!("{depth} nested elements in a value")
        }
        _ => {
            d.root.attrs.push_str(&format!(" xmlns:xsi=\"{XSI}\""));
            "xsi declared twice or added".into()
        }
    };
    c.ops.push(what);
}

// ------------------------------------------------------------------ bytes

const ENCODINGS: [&str; 11] = [
    "utf-8+bom",
    "ISO-8859-1",
    "iso-8859-1",
    "ISO-8859-15",
    "windows-1252",
    "UTF-16LE+bom",
    "UTF-16BE+bom",
    "declared ISO-8859-1, UTF-8 bytes",
    "declared UTF-8, ISO-8859-1 bytes",
    "windows-1252 with 0x81",
    "utf-8 bom, declared ISO-8859-1",
];

fn set_encoding(d: &mut Doc, name: &str) {
    let version = if d.decl.as_deref().is_some_and(|x| x.contains("1.1")) {
        "1.1"
    } else {
        "1.0"
    };
    d.decl = Some(format!("<?xml version=\"{version}\" encoding=\"{name}\"?>"));
}

fn encode_text(text: &str, table: fn(char) -> Option<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match table(c) {
            Some(b) => out.push(b),
            None => out.extend_from_slice(format!("&#x{:X};", u32::from(c)).as_bytes()),
        }
    }
    out
}

fn encode(r: &mut Rng, d: &mut Doc, enc: &str, c: &mut Case) -> (Vec<u8>, Vec<u8>) {
    let single = |d: &Doc, table: fn(char) -> Option<u8>| {
        (
            encode_text(&resolve(&d.text(), false), table),
            encode_text(&resolve(&d.text(), true), table),
        )
    };
    let both = |d: &Doc, f: &dyn Fn(&str) -> Vec<u8>| (f(&resolve(&d.text(), false)), f(&resolve(&d.text(), true)));
    match enc {
        "utf-8+bom" => both(d, &|t| [b"\xEF\xBB\xBF".as_slice(), t.as_bytes()].concat()),
        "ISO-8859-1" | "iso-8859-1" => {
            set_encoding(d, enc);
            single(d, latin1)
        }
        "ISO-8859-15" => {
            set_encoding(d, enc);
            single(d, latin9)
        }
        "windows-1252" => {
            set_encoding(d, enc);
            single(d, cp1252)
        }
        "windows-1252 with 0x81" => {
            set_encoding(d, "windows-1252");
            let (mut b, mut e) = single(d, cp1252);
            let at = r.below(b.len());
            let at = b[at..].iter().position(|&x| x == b'>').map_or(b.len(), |i| at + i + 1);
            b.insert(at.min(b.len()), 0x81);
            if at <= e.len() {
                e.insert(at, 0x81);
            }
            (b, e)
        }
        "UTF-16LE+bom" | "UTF-16BE+bom" => {
            set_encoding(d, "UTF-16");
            let le = enc.starts_with("UTF-16LE");
            both(d, &|t| {
                let mut out = if le { vec![0xFF, 0xFE] } else { vec![0xFE, 0xFF] };
                for u in t.encode_utf16() {
                    out.extend_from_slice(&if le { u.to_le_bytes() } else { u.to_be_bytes() });
                }
                out
            })
        }
        "declared ISO-8859-1, UTF-8 bytes" => {
            set_encoding(d, "ISO-8859-1");
            both(d, &|t| t.as_bytes().to_vec())
        }
        "declared UTF-8, ISO-8859-1 bytes" => {
            set_encoding(d, "UTF-8");
            single(d, latin1)
        }
        "utf-8 bom, declared ISO-8859-1" => {
            set_encoding(d, "ISO-8859-1");
            c.quirks.push(QUIRK_BOM_DECL);
            let real = [b"\xEF\xBB\xBF".as_slice(), resolve(&d.text(), false).as_bytes()].concat();
            (real, Vec::new())
        }
        _ => both(d, &|t| t.as_bytes().to_vec()),
    }
}

fn byte_op(r: &mut Rng, c: &mut Case) {
    let b = &mut c.bytes;
    if b.is_empty() {
        return;
    }
    match r.below(3) {
        0 => {
            let at = r.below(b.len());
            b.truncate(at);
            c.ops.push(format!("truncated at byte {at}"));
        }
        1 => {
            for _ in 0..r.range(1, 2) {
                let at = r.below(b.len());
                let v = r.next() as u8;
                c.ops.push(format!("byte {at} 0x{:02X} -> 0x{v:02X}", b[at]));
                b[at] = v;
            }
        }
        _ => {
            let ins: &[u8] = r.pick::<&[u8]>(&[
                b"\xFF".as_slice(),
                b"\xC3",
                b"\xC0\xAF",
                b"\xED\xA0\x80",
                b"\x00",
                b"\x01",
                b"\xE2\x82\xAC",
                b"\xEF\xBF\xBE",
            ]);
            let at = r.below(b.len());
            b.splice(at..at, ins.iter().copied());
            c.ops.push(format!("bytes {ins:02X?} inserted at {at}"));
        }
    }
}
