//! File-name rules (F03, F04): `<id-cram>_<JJMMAA>_<code>_<id-site>.xml`,
//! the name without extension equal to `rf-borfact` and at most 25
//! characters (billing specification, chapter 9).
//!
//! In: the file name as received and the header when one was read. Out:
//! anomalies, one per broken rule.

use chrono::NaiveDate;

use super::Header;
use crate::anomaly::{Anomaly, Code};

const MAX_STEM: usize = 25;

/// Splits `name` into (stem, extension) at the last dot.
fn split(name: &str) -> (&str, Option<&str>) {
    match name.rfind('.') {
        Some(i) => (&name[..i], Some(&name[i + 1..])),
        None => (name, None),
    }
}

/// Whether `JJMMAA` is a real date (years 2000–2099).
fn real_ddmmyy(s: &str) -> bool {
    if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let n = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(0);
    NaiveDate::from_ymd_opt(2000 + n(4..6) as i32, n(2..4), n(0..2)).is_some()
}

/// The prestation code as it appears in file names: `PPP100` → `100`.
pub fn short_code(rf_prstpap: &str) -> &str {
    rf_prstpap.strip_prefix("PPP").unwrap_or(rf_prstpap)
}

/// Checks the name; `header` is `None` when the file could not be read far
/// enough (the structure of the name is still checked).
pub fn check(file_name: &str, header: Option<&Header>, out: &mut Vec<Anomaly>) {
    let (stem, ext) = split(file_name);
    if !ext.is_some_and(|e| e.eq_ignore_ascii_case("xml")) {
        out.push(Anomaly::file(
            Code::F03,
            None,
            None,
            format!("le fichier « {file_name} » doit avoir l'extension .xml"),
        ));
    }
    let len = stem.chars().count();
    if len > MAX_STEM {
        out.push(Anomaly::file(
            Code::F04,
            None,
            None,
            format!("le nom « {stem} » a {len} caractères ({MAX_STEM} au plus)"),
        ));
    }
    let form = "<id-cram>_<JJMMAA>_<code prestation sans PPP>_<id-site>";
    match header {
        Some(h) => {
            if stem != h.rf_borfact {
                out.push(Anomaly::file(
                    Code::F04,
                    None,
                    Some("rf-borfact"),
                    format!(
                        "le nom du fichier « {stem} » diffère de rf-borfact « {} »",
                        h.rf_borfact
                    ),
                ));
            }
            let pre = format!("{}_", h.id_cram);
            let post = format!("_{}_{}", short_code(&h.rf_prstpap), h.id_site);
            let shaped = stem.len() == pre.len() + 6 + post.len() && stem.starts_with(&pre) && stem.ends_with(&post);
            if !shaped {
                out.push(Anomaly::file(
                    Code::F04,
                    None,
                    None,
                    format!("le nom « {stem} » n'est pas de la forme {form} attendue ici : {pre}JJMMAA{post}"),
                ));
            } else if !real_ddmmyy(&stem[pre.len()..pre.len() + 6]) {
                out.push(Anomaly::file(
                    Code::F04,
                    None,
                    None,
                    format!(
                        "la date « {} » du nom n'est pas une date JJMMAA réelle",
                        &stem[pre.len()..pre.len() + 6]
                    ),
                ));
            }
        }
        None => {
            let parts: Vec<&str> = stem.split('_').collect();
            let ok = parts.len() == 4 && parts.iter().all(|p| !p.is_empty()) && real_ddmmyy(parts[1]);
            if !ok {
                out.push(Anomaly::file(
                    Code::F04,
                    None,
                    None,
                    format!("le nom « {stem} » n'est pas de la forme {form}"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            rf_borfact: "03_150521_100_21999000".into(),
            log_fact: String::new(),
            id_cram: "03".into(),
            id_site: "21999000".into(),
            rf_prstpap: "PPP100".into(),
        }
    }

    fn codes(name: &str, h: Option<&Header>) -> Vec<Code> {
        let mut out = Vec::new();
        check(name, h, &mut out);
        out.into_iter().map(|a| a.code).collect()
    }

    #[test]
    fn the_example_name_is_valid_in_any_case_of_extension() {
        assert!(codes("03_150521_100_21999000.xml", Some(&header())).is_empty());
        assert!(codes("03_150521_100_21999000.XML", Some(&header())).is_empty());
    }

    #[test]
    fn each_rule_gives_its_code() {
        assert_eq!(codes("03_150521_100_21999000.txt", Some(&header())), [Code::F03]);
        assert_eq!(codes("03_150521_100_21999000", Some(&header())), [Code::F03]);
        // not a real date, and differs from rf-borfact
        let mut h = header();
        h.rf_borfact = "03_310221_100_21999000".into();
        assert_eq!(codes("03_310221_100_21999000.xml", Some(&h)), [Code::F04]);
        assert_eq!(
            codes("04_150521_100_21999000.xml", Some(&header())),
            [Code::F04, Code::F04]
        );
        let mut h = header();
        h.id_site = "219990001234567".into();
        h.rf_borfact = "03_150521_100_219990001234567".into();
        assert_eq!(codes("03_150521_100_219990001234567.xml", Some(&h)), [Code::F04]);
        assert_eq!(codes("garbage.xml", None), [Code::F04]);
        assert!(codes("03_290220_100_21999000.xml", None).is_empty());
    }
}
