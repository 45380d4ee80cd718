//! References and the rarer markup: processing instructions (and the XML
//! declaration), comments, CDATA sections, and the refused DOCTYPE.
//!
//! In: the window and the offset of a `&` or `<`. Out: a [`Scan`] — the
//! token, a request for more input, or the error and its offset.

use memchr::memmem;

use super::{count_lf, lossy, short, Raw, Scan, Scanned, NAME_BYTE};
use crate::xml::{decl, is_name, is_ws, resolve_reference};

pub(super) fn scan_ref(w: &[u8], i: usize, eof: bool) -> Scan {
    let mut j = i + 1;
    while let Some(&b) = w.get(j) {
        if !(NAME_BYTE[b as usize] || b == b'#') {
            break;
        }
        j += 1;
    }
    match w.get(j) {
        None => short(w, eof, "dans une référence &…;"),
        Some(b';') => {
            let name = &w[i + 1..j];
            match resolve_reference(name) {
                Some(ch) => Ok(Some(Scanned {
                    raw: Raw::Ref(i + 1, j, ch),
                    end: j + 1,
                    newlines: 0,
                    lead: 0,
                })),
                None => Err((
                    i,
                    format!("entité ou référence de caractère inconnue : &{};", lossy(name)),
                )),
            }
        }
        Some(_) => Err((i, "« & » isolé : écrire &amp;amp;".into())),
    }
}

pub(super) fn scan_pi(w: &[u8], i: usize, eof: bool) -> Scan {
    let Some(len) = memmem::find(&w[i + 2..], b"?>") else {
        return short(w, eof, "dans une instruction de traitement <?…?>");
    };
    let end = i + 2 + len;
    let body = &w[i + 2..end];
    let newlines = count_lf(body);
    let t = body.iter().position(|&b| is_ws(b)).unwrap_or(body.len());
    let target = &body[..t];
    let after = end + 2;
    if target == b"xml" {
        decl::check(&body[3..]).map_err(|m| (after, m))?;
        return Ok(Some(Scanned {
            raw: Raw::Decl,
            end: after,
            newlines,
            lead: 0,
        }));
    }
    if !is_name(target) || target.contains(&b':') {
        return Err((after, format!("instruction de traitement invalide <?{}", lossy(target))));
    }
    Ok(Some(Scanned {
        raw: Raw::Pi(i + 2, i + 2 + t),
        end: after,
        newlines,
        lead: 0,
    }))
}

/// `<!`: a comment, a CDATA section, or a refused DOCTYPE.
pub(super) fn scan_bang(w: &[u8], i: usize, eof: bool) -> Scan {
    let rest = &w[i..];
    if rest.starts_with(b"<!--") {
        return scan_comment(w, i, eof);
    }
    if rest.starts_with(b"<![CDATA[") {
        let from = i + 9;
        let Some(len) = memmem::find(&w[from..], b"]]>") else {
            return short(w, eof, "dans une section CDATA");
        };
        let end = from + len;
        let newlines = count_lf(&w[from..end]);
        return Ok(Some(Scanned {
            raw: Raw::CData(from, end),
            end: end + 3,
            newlines,
            lead: 0,
        }));
    }
    if rest.len() >= 9 && rest[..9].eq_ignore_ascii_case(b"<!DOCTYPE") {
        // Refused whatever it holds, at the line of its end (where the
        // reader has always reported it): find that end first.
        return match doctype_end(w, i) {
            Some(end) => Err((
                end,
                "déclaration DOCTYPE interdite (aucune entité n'est acceptée)".into(),
            )),
            None if eof => Err((w.len(), "syntaxe XML invalide : déclaration DOCTYPE non fermée".into())),
            None => Ok(None),
        };
    }
    // The window ends inside what may be one of them: decide after a refill.
    let maybe = |p: &[u8]| rest.len() < p.len() && p[..rest.len()].eq_ignore_ascii_case(rest);
    if maybe(b"<!--") || maybe(b"<![CDATA[") || maybe(b"<!DOCTYPE") {
        return short(w, eof, "dans une déclaration <!…");
    }
    let end = (i + 12).min(w.len());
    Err((
        i,
        format!("syntaxe XML invalide : {}…", String::from_utf8_lossy(&w[i..end])),
    ))
}

fn scan_comment(w: &[u8], i: usize, eof: bool) -> Scan {
    let from = i + 4;
    let Some(len) = memmem::find(&w[from..], b"--") else {
        return short(w, eof, "dans un commentaire");
    };
    let dashes = from + len;
    match w.get(dashes + 2) {
        None => short(w, eof, "dans un commentaire"),
        Some(b'>') => {
            let newlines = count_lf(&w[from..dashes]);
            Ok(Some(Scanned {
                raw: Raw::Comment,
                end: dashes + 3,
                newlines,
                lead: 0,
            }))
        }
        Some(_) => Err((dashes, "« -- » interdit dans un commentaire".into())),
    }
}

/// Offset just after the `>` that closes the DOCTYPE at `i`, or `None`
/// when the window ends first. Quoted literals, the internal subset and the
/// comments, PIs and declarations in it are skipped, so a `>` inside them
/// does not end it.
fn doctype_end(w: &[u8], i: usize) -> Option<usize> {
    let quoted = |k: usize| -> Option<usize> { Some(k + 2 + memchr::memchr(w[k], &w[k + 1..])?) };
    let mut k = i + 9;
    loop {
        match *w.get(k)? {
            b'\'' | b'"' => k = quoted(k)?,
            b'[' => break,
            b'>' => return Some(k + 1),
            _ => k += 1,
        }
    }
    k += 1;
    loop {
        match *w.get(k)? {
            b']' => return Some(k + 2 + memchr::memchr(b'>', &w[k + 1..])?),
            b'<' if w[k..].starts_with(b"<!--") => k += 7 + memmem::find(&w[k + 4..], b"-->")?,
            b'<' if w[k..].starts_with(b"<?") => k += 4 + memmem::find(&w[k + 2..], b"?>")?,
            b'<' => {
                // A markup declaration: up to its `>`, literals skipped.
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
