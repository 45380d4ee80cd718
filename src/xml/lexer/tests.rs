//! Unit tests of the lexer: tokens, lines, each refusal, and tokens that
//! span a refill (tiny windows).

use std::io::{self, Read};

use super::*;

/// A token as an owned string, with its line and end line.
fn show(t: &Token<'_>) -> String {
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match t {
        Token::Decl => "decl".into(),
        Token::Pi(t) => format!("pi {}", s(t)),
        Token::Comment => "comment".into(),
        Token::Start(tag) => {
            let mut out = format!("{} {}", if tag.empty { "empty" } else { "start" }, s(tag.name));
            for (k, v) in tag.attributes() {
                out.push_str(&format!(" {}={}", s(k), s(v)));
            }
            out
        }
        Token::End(n) => format!("end {}", s(n)),
        Token::Text { text, blank } => {
            format!("text{} {:?}", if *blank { "(blank)" } else { "" }, s(text))
        }
        Token::CData(c) => format!("cdata {:?}", s(c)),
        Token::Ref { name, ch } => format!("ref {} {ch:?}", s(name)),
        Token::Eof => "eof".into(),
    }
}

/// A reader handing out at most `step` bytes per read.
struct Trickle(io::Cursor<Vec<u8>>, usize);

impl Read for Trickle {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        let n = self.1.min(b.len());
        self.0.read(&mut b[..n])
    }
}

/// The quoted text of a shown text token.
fn body(shown: &str) -> &str {
    &shown[shown.find(' ').unwrap() + 1..]
}

/// Lexes `doc` with a window of `cap` bytes fed `step` bytes at a time.
/// Text is merged across pieces so that results compare whatever the window.
fn lex_with(doc: &[u8], cap: usize, step: usize, chunk: usize) -> (Vec<(String, u64, u64)>, Option<LexError>) {
    let src = Scanner::with_capacity(Trickle(io::Cursor::new(doc.to_vec()), step), cap);
    let mut lx = Lexer::with_limits(src, chunk, MAX_TOKEN);
    let mut out: Vec<(String, u64, u64)> = Vec::new();
    let mut prev_text = false;
    loop {
        match lx.next_token() {
            Ok(l) => {
                let is_text = matches!(l.token, Token::Text { .. });
                let shown = show(&l.token);
                if is_text && prev_text {
                    // A text piece: glue it to the previous one.
                    let last = out.last_mut().unwrap();
                    let (a, b) = (body(&last.0), body(&shown));
                    let joined = format!("{}{}", &a[..a.len() - 1], &b[1..]);
                    last.0 = format!("text* {joined}");
                    last.2 = l.end_line;
                } else {
                    out.push((shown, l.line, l.end_line));
                }
                prev_text = is_text;
                if matches!(l.token, Token::Eof) {
                    return (out, None);
                }
            }
            Err(e) => return (out, Some(e)),
        }
    }
}

fn lex(doc: &str) -> (Vec<(String, u64, u64)>, Option<LexError>) {
    lex_with(doc.as_bytes(), 256 * 1024, usize::MAX, TEXT_CHUNK)
}

fn tokens(doc: &str) -> Vec<String> {
    let (t, e) = lex(doc);
    assert_eq!(e, None, "{doc}");
    t.into_iter().map(|(s, _, _)| s).collect()
}

fn error(doc: &str) -> LexError {
    let (_, e) = lex(doc);
    e.unwrap_or_else(|| panic!("no error for {doc:?}"))
}

#[test]
fn tokens_of_a_small_document() {
    let doc = "<?xml version=\"1.0\"?>\n<!-- c --><a x=\"1\" y='&amp;'>t&lt;<b/><![CDATA[<z>]]><?p d?></a>\n";
    assert_eq!(
        tokens(doc),
        [
            "decl",
            "text(blank) \"\\n\"",
            "comment",
            "start a x=1 y=&amp;",
            "text \"t\"",
            "ref lt '<'",
            "empty b",
            "cdata \"<z>\"",
            "pi p",
            "end a",
            "text(blank) \"\\n\"",
            "eof",
        ]
    );
}

#[test]
fn lines_are_counted_everywhere() {
    let doc = "<a\n x='1\n2'\n>\n\n  t\n<!--\n-->\n<![CDATA[\n]]><?p\n?></a\n>";
    let (t, e) = lex(doc);
    assert_eq!(e, None);
    let lines: Vec<(&str, u64, u64)> = t
        .iter()
        .map(|(s, a, b)| (s.split(' ').next().unwrap(), *a, *b))
        .collect();
    assert_eq!(
        lines,
        [
            ("start", 1, 4),
            // Text: the line of its first non-blank character.
            ("text", 6, 7),
            ("comment", 7, 8),
            // Blank: the line after its last line feed.
            ("text(blank)", 9, 9),
            ("cdata", 9, 10),
            ("pi", 10, 11),
            ("end", 11, 12),
            ("eof", 12, 12),
        ]
    );
}

#[test]
fn character_references_and_names() {
    assert_eq!(tokens("<a>&#233;&#xE9;</a>")[1..3], ["ref #233 'é'", "ref #xE9 'é'"]);
    assert_eq!(tokens("<nöm-pér é='1'/>")[0], "empty nöm-pér é=1");
    assert_eq!(tokens("<x:a xmlns:x='u'></x:a>")[0], "start x:a xmlns:x=u");
}

#[test]
fn refusals() {
    for (doc, what) in [
        ("<!DOCTYPE a><a/>", "DOCTYPE"),
        ("<a>&foo;</a>", "inconnue"),
        ("<a>&#0;</a>", "inconnue"),
        ("<a>&#xD800;</a>", "inconnue"),
        ("<a>a & b</a>", "isolé"),
        ("<a>&amp</a>", "isolé"),
        ("<a>x]]>y</a>", "]]>"),
        ("<a><!-- a -- b --></a>", "--"),
        ("<a><!-- a ---></a>", "--"),
        ("<a></b>", "alors que"),
        ("</a>", "sans balise ouvrante"),
        ("<1a/>", "nom d'élément invalide"),
        ("< a/>", "nom d'élément invalide"),
        ("<a\"x\"/>", "nom d'élément invalide"),
        ("<a x/>", "« = »"),
        ("<a x=1/>", "guillemets"),
        ("<a x='1'y='2'/>", "espace"),
        ("<a x='1' x='2'/>", "en double"),
        ("<a a0='' a1='' a2='' a3='' a4='' a5='' a6='' a7='' a8='' a9='' b0='' b1='' b2='' b3='' b4='' b5='' b6='' b7='' b8='' b9='' a5=''/>", "en double"),
        ("<a x='<'/>", "« < »"),
        ("<a x='&'/>", "isolé"),
        ("<a x='&e;'/>", "entité inconnue"),
        ("<a 1x='1'/>", "nom d'attribut invalide"),
        ("<a/ >", "« / »"),
        ("<a></a x>", "mal formée"),
        ("<a><?x:y z?></a>", "instruction de traitement invalide"),
        ("<a><? z?></a>", "instruction de traitement invalide"),
        ("<?xml version=\"2.0\"?><a/>", "version"),
        ("<?xml encoding=\"UTF-8\"?><a/>", "inattendu"),
        ("<a><!ELEMENT a ANY></a>", "syntaxe"),
        ("<a><![CDATA[x</a>", "fin de fichier"),
        ("<a><!-- x</a>", "fin de fichier"),
        ("<a", "fin de fichier"),
        ("<a x='1", "fin de fichier"),
        ("<a>&am", "fin de fichier"),
        ("<", "fin de fichier"),
        ("<a><?p x", "fin de fichier"),
    ] {
        let e = error(doc);
        assert!(e.message.contains(what), "{doc:?}: {e:?}");
    }
}

#[test]
fn error_lines() {
    assert_eq!(error("<a>\n\n&foo;</a>").line, 3);
    assert_eq!(error("<a>\n<b>\n</c>").line, 3);
    assert_eq!(error("<a>\n<!-- -- -->").line, 2);
    // A DOCTYPE: at the line of its end, whatever its literals and internal
    // subset hold.
    assert_eq!(error("\n\n<!DOCTYPE a [\n]>").line, 4);
    let dtd = "<!DOCTYPE a SYSTEM \"x>\" [\n<!ENTITY e \"]>\">\n<!-- ]> -->\n<?p ]>?>\n]\n>\n<a/>";
    assert_eq!(error(dtd).line, 6);
    assert!(error(dtd).message.contains("DOCTYPE interdite"));
    assert_eq!(error("<!doctype a>").line, 1);
    assert!(error("\n<!DOCTYPE a [ <!ENTITY e 'x'>").message.contains("non fermée"));
    assert_eq!(error("<a>\nx\n\x01</a>").line, 3);
}

#[test]
fn what_is_left_to_the_caller() {
    // Shape of the document: two roots, text outside the root, a late
    // declaration are tokens like any other.
    assert_eq!(tokens("<a/><b/>x").len(), 4);
    assert_eq!(tokens("\n<?xml version='1.0'?><a/>")[1], "decl");
    assert_eq!(tokens("<a><?XML x?></a>")[1], "pi XML");
    assert_eq!(tokens("<a><?xml-stylesheet x?></a>")[1], "pi xml-stylesheet");
}

#[test]
fn an_error_is_sticky() {
    let src = Scanner::new(io::Cursor::new(b"<a>&x;<b/>".to_vec()));
    let mut lx = Lexer::new(src);
    assert!(lx.next_token().is_ok());
    let e = lx.next_token().unwrap_err();
    assert_eq!(lx.next_token().unwrap_err(), e);
}

/// Every token kind, with lines, CRLF, non-ASCII and long runs.
fn sample() -> String {
    let mut doc =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<!-- début\n -->\n<racine a=\"1\"\n b='é&amp;'>\n");
    for i in 0..40 {
        doc.push_str(&format!(
            "  <ligne n=\"{i}\"><nom>Éloïse ]] &#x152;uvre &lt;{i}&gt;</nom><vide/><c><![CDATA[a]]b\n]]></c><?p {i}?></ligne>\r\n"
        ));
    }
    doc.push_str(&"x".repeat(300));
    doc.push_str("<!---->\n</racine>\n<!-- fin -->\n");
    doc
}

#[test]
fn tokens_spanning_refills_are_the_same() {
    let doc = sample();
    let whole = lex(&doc);
    assert_eq!(whole.1, None);
    for cap in [4, 5, 7, 16, 61] {
        for step in [1, 3, 13, 1000] {
            let small = lex_with(doc.as_bytes(), cap, step, 8);
            // Text pieces were glued back: the tokens and lines agree.
            let norm = |v: &[(String, u64, u64)]| -> Vec<(String, u64)> {
                v.iter()
                    .map(|(s, _, e)| {
                        if s.starts_with("text") {
                            (format!("text {}", body(s)), *e)
                        } else {
                            (s.clone(), *e)
                        }
                    })
                    .collect()
            };
            let (a, b) = (norm(&small.0), norm(&whole.0));
            let diff = a.iter().zip(&b).position(|(x, y)| x != y);
            assert!(
                a == b,
                "window {cap}, reads of {step}: first difference at {diff:?}: {:?}",
                diff.map(|d| (&a[d], &b[d]))
            );
            assert_eq!(small.1, None);
        }
    }
}

#[test]
fn errors_spanning_refills_are_the_same() {
    for doc in [
        "<!DOCTYPE a [\n<!ENTITY e \"]>\">\n]>",
        "<a>\n\n&foo;</a>",
        "<a>\nxy]]>z</a>",
        "<a>\n<!-- a -- b --></a>",
        "<a>\n<b x='1' x='2'/></a>",
        "<a>\nx]]>",
    ] {
        let whole = lex(doc).1.unwrap();
        for cap in [4, 6, 9] {
            for step in [1, 2, 5] {
                assert_eq!(
                    lex_with(doc.as_bytes(), cap, step, 4).1.as_ref(),
                    Some(&whole),
                    "{doc:?} {cap} {step}"
                );
            }
        }
    }
}

#[test]
fn long_text_comes_in_pieces_that_keep_crlf_together() {
    let doc = format!("<a>{}</a>", "ab\r\n".repeat(100));
    let src = Scanner::with_capacity(io::Cursor::new(doc.into_bytes()), 16);
    let mut lx = Lexer::with_limits(src, 8, MAX_TOKEN);
    let mut text = Vec::new();
    let mut pieces = 0;
    loop {
        let l = lx.next_token().unwrap();
        match l.token {
            Token::Text { text: t, .. } => {
                assert!(!t.ends_with(b"\r"), "a piece ends between \\r and \\n");
                text.extend_from_slice(t);
                pieces += 1;
            }
            Token::Eof => break,
            _ => {}
        }
    }
    assert_eq!(text, "ab\r\n".repeat(100).as_bytes());
    assert!(pieces > 1);
}

#[test]
fn markup_longer_than_the_limit_is_refused() {
    let doc = format!("<a><!--{}--></a>", "x".repeat(100));
    let src = Scanner::with_capacity(io::Cursor::new(doc.into_bytes()), 8);
    let mut lx = Lexer::with_limits(src, 8, 50);
    let e = loop {
        match lx.next_token() {
            Ok(l) if matches!(l.token, Token::Eof) => panic!("no error"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert!(e.message.contains("plus de 50 octets"), "{e:?}");
}

#[test]
fn markup_longer_than_the_limit_is_refused_even_when_the_window_holds_it() {
    // A window larger than the limit (it grows by doubling): the comment,
    // the tag and the attribute fit in it whole, and are still refused.
    for doc in [
        format!("<a><!--{}--></a>", "x".repeat(60)),
        format!("<a b=\"{}\"/>", "x".repeat(60)),
        format!("<a><?pi {}?></a>", "x".repeat(60)),
    ] {
        let src = Scanner::with_capacity(io::Cursor::new(doc.clone().into_bytes()), 4096);
        let mut lx = Lexer::with_limits(src, 8, 50);
        let e = loop {
            match lx.next_token() {
                Ok(l) if matches!(l.token, Token::Eof) => panic!("no error for {doc}"),
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert!(e.message.contains("plus de 50 octets"), "{e:?}");
    }
    // At the limit: fine.
    let doc = format!("<a><!--{}--></a>", "x".repeat(43));
    let src = Scanner::with_capacity(io::Cursor::new(doc.into_bytes()), 4096);
    let mut lx = Lexer::with_limits(src, 8, 50);
    while !matches!(lx.next_token().unwrap().token, Token::Eof) {}
}

#[test]
fn any_bytes_give_tokens_or_an_error() {
    // A cheap deterministic fuzz: every prefix and some byte flips of the
    // sample, through a tiny window, must end (Eof or error), never panic.
    let doc = sample().into_bytes();
    let mut seed = 0x9E37_79B9u32;
    for round in 0..300 {
        let mut d = doc[..(round * 37) % doc.len()].to_vec();
        for _ in 0..3 {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            if !d.is_empty() {
                let at = seed as usize % d.len();
                d[at] = b"<>&;/?!-[]'\"= \nx\xc3"[(seed >> 16) as usize % 17];
            }
        }
        let _ = lex_with(&d, 7, 5, 8);
    }
}
