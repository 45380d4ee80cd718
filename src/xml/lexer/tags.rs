//! Start and end tags: the name, the attributes (`name="value"`, each
//! value free of `<` and with known references only, no name twice), and
//! whether an end tag closes the element open before it.
//!
//! In: the window and the offset of a `<`. Out: a [`Scan`] — the tag, a
//! request for more input, or the error and its offset.

use std::collections::HashSet;

use super::{lossy, name_end, short, valid_name, AttrSpan, Raw, Scan, Scanned};
use crate::xml::{is_ws, resolve_reference};

#[inline]
pub(super) fn scan_start(w: &[u8], i: usize, eof: bool, attrs: &mut Vec<AttrSpan>) -> Scan {
    let (ne, ascii) = name_end(w, i + 1);
    let name = (i + 1, ne);
    // The common case first: `<name>`.
    match w.get(ne) {
        None => return short(w, eof, "dans une balise"),
        Some(&b) if !valid_name(&w[i + 1..ne], ascii) || !(b == b'>' || b == b'/' || is_ws(b)) => {
            return Err((ne, format!("nom d'élément invalide : <{}", lossy(&w[i + 1..ne]))))
        }
        Some(b'>') => {
            let raw = Raw::Start {
                name,
                empty: false,
                attrs: false,
            };
            return Ok(Some(Scanned {
                raw,
                end: ne + 1,
                newlines: 0,
                lead: 0,
            }));
        }
        _ => {}
    }
    attrs.clear();
    let mut seen: Option<HashSet<&[u8]>> = None;
    let mut k = ne;
    let mut newlines = 0;
    loop {
        let before = k;
        k = skip_ws(w, k, &mut newlines);
        let Some(&b) = w.get(k) else {
            return short(w, eof, "dans une balise");
        };
        match b {
            b'>' => {
                let raw = Raw::Start {
                    name,
                    empty: false,
                    attrs: !attrs.is_empty(),
                };
                return Ok(Some(Scanned {
                    raw,
                    end: k + 1,
                    newlines,
                    lead: 0,
                }));
            }
            b'/' => {
                return match w.get(k + 1) {
                    None => short(w, eof, "dans une balise"),
                    Some(b'>') => {
                        let raw = Raw::Start {
                            name,
                            empty: true,
                            attrs: !attrs.is_empty(),
                        };
                        Ok(Some(Scanned {
                            raw,
                            end: k + 2,
                            newlines,
                            lead: 0,
                        }))
                    }
                    Some(_) => Err((
                        k,
                        format!("« / » inattendu dans la balise <{}", lossy(&w[name.0..name.1])),
                    )),
                }
            }
            _ if k == before => {
                return Err((
                    k,
                    format!("attribut mal formé : espace attendu avant « {} »", lossy(&w[k..k + 1])),
                ))
            }
            _ => {}
        }
        let (an, ascii) = name_end(w, k);
        if an == w.len() {
            return short(w, eof, "dans une balise");
        }
        let aname = &w[k..an];
        if !valid_name(aname, ascii) {
            let end = (an + 1).min(w.len());
            return Err((k, format!("nom d'attribut invalide : {}", lossy(&w[k..end]))));
        }
        let mut v = an;
        v = skip_ws(w, v, &mut newlines);
        match w.get(v) {
            None => return short(w, eof, "dans une balise"),
            Some(b'=') => v += 1,
            Some(_) => return Err((v, format!("attribut mal formé : « = » attendu après {}", lossy(aname)))),
        }
        v = skip_ws(w, v, &mut newlines);
        let quote = match w.get(v) {
            None => return short(w, eof, "dans une balise"),
            Some(&q @ (b'"' | b'\'')) => q,
            Some(_) => {
                return Err((
                    v,
                    format!("attribut mal formé : valeur de {} sans guillemets", lossy(aname)),
                ))
            }
        };
        let Some(len) = memchr::memchr(quote, &w[v + 1..]) else {
            return short(w, eof, "dans une balise");
        };
        let value = (v + 1, v + 1 + len);
        newlines += check_value(w, value)?;
        // A few attributes are compared pairwise; many (hostile input, the
        // tag may be megabytes long) through a set, so time stays linear.
        let twice = if attrs.len() < 16 {
            attrs.iter().any(|a| &w[a.name.0..a.name.1] == aname)
        } else {
            let seen = seen.get_or_insert_with(|| attrs.iter().map(|a| &w[a.name.0..a.name.1]).collect());
            !seen.insert(aname)
        };
        if twice {
            return Err((k, format!("attribut mal formé : {} en double", lossy(aname))));
        }
        attrs.push(AttrSpan { name: (k, an), value });
        k = value.1 + 1;
    }
}

/// An attribute value: no `<`, every `&` a known reference. Returns its
/// line feeds.
fn check_value(w: &[u8], (a, b): (usize, usize)) -> Result<u64, (usize, String)> {
    let mut newlines = 0;
    let mut j = a;
    while j < b {
        match w[j] {
            b'\n' => newlines += 1,
            b'<' => return Err((j, "« < » interdit dans une valeur d'attribut".into())),
            b'&' => {
                let Some(len) = memchr::memchr(b';', &w[j + 1..b]) else {
                    return Err((j, "« & » isolé dans une valeur d'attribut".into()));
                };
                let name = &w[j + 1..j + 1 + len];
                if resolve_reference(name).is_none() {
                    return Err((
                        j,
                        format!("entité inconnue &{}; dans une valeur d'attribut", lossy(name)),
                    ));
                }
                j += len + 1;
            }
            _ => {}
        }
        j += 1;
    }
    Ok(newlines)
}

#[inline]
pub(super) fn scan_end(w: &[u8], i: usize, eof: bool, names: &[u8], ends: &[usize]) -> Scan {
    let open = match ends {
        [] => None,
        [.., before, last] => Some(&names[*before..*last]),
        [last] => Some(&names[..*last]),
    };
    // The common case first: `</name>` closing the open element.
    if let Some(open) = open {
        let ne = i + 2 + open.len();
        if w.get(ne) == Some(&b'>') && &w[i + 2..ne] == open {
            return Ok(Some(Scanned {
                raw: Raw::End(i + 2, ne),
                end: ne + 1,
                newlines: 0,
                lead: 0,
            }));
        }
    }
    let (ne, _) = name_end(w, i + 2);
    let mut newlines = 0;
    let k = skip_ws(w, ne, &mut newlines);
    let found = &w[i + 2..ne];
    match w.get(k) {
        None => return short(w, eof, "dans une balise fermante"),
        Some(b'>') => {}
        Some(_) => return Err((k, format!("balise fermante </{} mal formée", lossy(found)))),
    }
    match open {
        Some(open) if open == found => Ok(Some(Scanned {
            raw: Raw::End(i + 2, ne),
            end: k + 1,
            newlines,
            lead: 0,
        })),
        Some(open) => Err((
            k + 1,
            format!(
                "balise fermante </{}> alors que <{}> est ouverte",
                lossy(found),
                lossy(open)
            ),
        )),
        None => Err((
            k + 1,
            format!("balise fermante </{}> sans balise ouvrante", lossy(found)),
        )),
    }
}

/// The index of the first byte at or after `k` that is not XML whitespace,
/// adding the newlines skipped to `newlines`.
fn skip_ws(w: &[u8], mut k: usize, newlines: &mut u64) -> usize {
    while let Some(&b) = w.get(k) {
        if !is_ws(b) {
            break;
        }
        *newlines += u64::from(b == b'\n');
        k += 1;
    }
    k
}
