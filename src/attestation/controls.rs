//! The stateless controls of spec §4 on one attestation: A04 (statut T:
//! the visit date), A05 (statut S: the motif), A06 (the comment).
//!
//! In: an item already read by [`super::parse`], whose shape is valid, and
//! the day of receipt. Out: anomalies appended to a vector, each with the
//! item's index, the XML line and the field, and a French message for the
//! provider. Pure functions: no state, no I/O. The stateful half of A04
//! (a visit before the order's date) belongs to the caller's hook.

use chrono::NaiveDate;

use super::parse::{ItemFacts, COMMENTAIRE, DT_VISITE, ITEM_SEQ, MOTIF};
use super::{Item, MAX_COMMENT, MOTIFS, MOTIF_AUTRE};
use crate::anomaly::{Anomaly, Code};

/// Trims XML whitespace (space, tab, CR, LF) on both sides.
pub fn trim(s: &str) -> &str {
    s.trim_matches([' ', '\t', '\r', '\n'])
}

/// A visit date: `AAAA-MM-JJ` or `JJ/MM/AAAA`, surrounding blanks
/// ignored, a real day of the calendar from 1900 on (as the dates of the
/// caisse's reference data). `Err` carries the French reason.
pub fn visit_date(raw: &str) -> Result<NaiveDate, &'static str> {
    let s = trim(raw);
    if s.is_empty() {
        return Err("date de visite vide");
    }
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let num = |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |n, &c| n * 10 + u32::from(c - b'0'));
    let (y, m, d) = if b.len() == 10 && b[4] == b'-' && b[7] == b'-' && digits(0..4) && digits(5..7) && digits(8..10) {
        (num(0..4), num(5..7), num(8..10))
    } else if b.len() == 10 && b[2] == b'/' && b[5] == b'/' && digits(0..2) && digits(3..5) && digits(6..10) {
        (num(6..10), num(3..5), num(0..2))
    } else {
        return Err("date attendue au format AAAA-MM-JJ ou JJ/MM/AAAA");
    };
    if y < 1900 {
        return Err("année antérieure à 1900");
    }
    NaiveDate::from_ymd_opt(y as i32, m, d).ok_or("ce jour n'existe pas dans le calendrier")
}

/// Whether a comment counts as none: empty or only blanks.
fn blank(s: &str) -> bool {
    s.chars().all(char::is_whitespace)
}

/// A04, A05 and A06 on one item whose shape is valid.
pub fn item(it: &Item, f: &ItemFacts, today: NaiveDate, out: &mut Vec<Anomaly>) {
    let mut push =
        |code: Code, i: usize, msg: String| out.push(Anomaly::line(code, it.index, f.line_of(i, it), ITEM_SEQ[i], msg));
    match it.statut.as_str() {
        "T" => {
            if !f.present(DT_VISITE) || trim(&it.dt_visite_raw).is_empty() {
                push(
                    Code::A04,
                    DT_VISITE,
                    "visite faite (statut T) : la date de visite <dt-visite> est obligatoire (AAAA-MM-JJ ou JJ/MM/AAAA)"
                        .into(),
                );
            } else {
                match visit_date(&it.dt_visite_raw) {
                    Err(reason) => {
                        let shown = shown(&it.dt_visite_raw);
                        push(
                            Code::A04,
                            DT_VISITE,
                            format!("date de visite « {shown} » invalide : {reason}"),
                        )
                    }
                    Ok(d) if d > today => push(
                        Code::A04,
                        DT_VISITE,
                        format!(
                            "date de visite {} postérieure au jour de réception {} : une visite ne peut pas être future",
                            d.format("%d/%m/%Y"),
                            today.format("%d/%m/%Y")
                        ),
                    ),
                    Ok(_) => {}
                }
            }
        }
        "S" => {
            let motif = it.motif.as_str();
            if motif.is_empty() {
                push(
                    Code::A05,
                    MOTIF,
                    format!(
                        "sans suite (statut S) : le motif <motif> est obligatoire ({})",
                        MOTIFS.join(", ")
                    ),
                );
            } else if !MOTIFS.contains(&motif) {
                push(
                    Code::A05,
                    MOTIF,
                    format!(
                        "motif « {} » inconnu : attendu {} (en majuscules)",
                        shown(motif),
                        MOTIFS.join(", ")
                    ),
                );
            } else if motif == MOTIF_AUTRE && blank(&it.commentaire) {
                push(
                    Code::A05,
                    COMMENTAIRE,
                    "motif AUTRE : un commentaire <commentaire> expliquant le motif est obligatoire".into(),
                );
            }
        }
        // Not a valid statut: an A01 already said so.
        _ => {}
    }
    if f.comment_euro {
        push(
            Code::A06,
            COMMENTAIRE,
            "le commentaire contient le signe € : l'écrire en toutes lettres (euros)".into(),
        );
    }
    if f.comment_chars > MAX_COMMENT {
        push(
            Code::A06,
            COMMENTAIRE,
            format!("commentaire de {} caractères : {MAX_COMMENT} au plus", f.comment_chars),
        );
    }
}

/// A value for a message: at most 40 characters.
fn shown(s: &str) -> String {
    let s = trim(s);
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
