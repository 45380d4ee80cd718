//! Documents of an order: refused whole with every problem, kept and owed
//! to the right provider, a decision closing the case, versions, re-import.

use super::check_pdf;
use crate::import::testkit::{pdf, Kit};
use crate::import::{ImportError, Kind};

const A: &str = "C04-2026-000123;04;62739900;1541299999000;DUPONT;Jean;12 rue des Lilas;03 21 00 00 01;PS;2026-09-01\n";
const F: &str = "F59-1;04;59111100;2600321000002;MARTIN;Anne;3 place d'Armes;03 20 00 00 02;C;2026-10-01\n";

fn kit() -> Kit {
    let mut k = Kit::new();
    k.orders(&format!("{A}{F}"));
    k
}

fn refused(r: Result<crate::import::ImportSummary, ImportError>) -> (String, Vec<String>) {
    match r {
        Err(e @ ImportError::Refused { .. }) => {
            let text = e.to_string();
            let ImportError::Refused { problems, .. } = e else {
                unreachable!()
            };
            (text, problems)
        }
        other => panic!("expected a refused document, got {other:?}"),
    }
}

/// Every file under `rel` of the spool, sorted.
fn files(k: &Kit, rel: &str) -> Vec<String> {
    fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), out);
            } else {
                out.push(e.path().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(&k.path(rel), &mut out);
    out.sort();
    out
}

#[test]
fn the_pdf_checks() {
    assert!(check_pdf(&pdf("x")).is_ok());
    // %%EOF followed by padding within the last 1024 bytes.
    let mut padded = pdf("x");
    padded.extend(std::iter::repeat_n(b'\n', 1000));
    assert!(check_pdf(&padded).is_ok());
    assert_eq!(
        check_pdf(b"").unwrap_err(),
        ["the file is empty: a PDF document is expected"]
    );
    let text = check_pdf(b"Bonjour,\nceci est un texte.\n").unwrap_err();
    assert_eq!(text.len(), 2, "{text:?}");
    assert!(text[0].contains("does not start with %PDF-"));
    assert!(text[1].contains("no %%EOF marker"));
    // Cut in the middle (a copy interrupted).
    let full = pdf("x");
    let cut = check_pdf(&full[..full.len() - 8]).unwrap_err();
    assert_eq!(cut.len(), 1, "{cut:?}");
    assert!(cut[0].contains("no %%EOF"));
    // %%EOF only far from the end.
    let mut far = pdf("x");
    far.extend(std::iter::repeat_n(b'x', 2000));
    assert!(check_pdf(&far).is_err());
}

#[test]
fn not_a_pdf_a_bad_name_or_an_unknown_order_is_refused_whole() {
    let mut k = kit();
    let (text, p) = refused(k.import(Kind::Evaluations, "C04-2026-000123.pdf", b"Bonjour\n"));
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        text.starts_with(
            "evaluations file C04-2026-000123.pdf: refused, nothing applied (2 problems)\n  not a PDF document"
        ),
        "{text}"
    );
    let (_, p) = refused(k.import(Kind::Decisions, "C04-2026-000123.pdf", b""));
    assert_eq!(p, ["the file is empty: a PDF document is expected"]);

    for name in [
        "C04-2026-000123.txt",
        "C04-2026-000123",
        "C04 2026.pdf",
        ".pdf",
        "C04.2026.pdf",
        "../C04.pdf",
    ] {
        let (_, p) = refused(k.import(Kind::Evaluations, name, &pdf("a")));
        assert_eq!(p.len(), 1, "{name}: {p:?}");
        assert!(p[0].starts_with("the name must be <rf-commande>.pdf"), "{name}: {p:?}");
    }
    let (_, p) = refused(k.import(Kind::Decisions, "C04-2026-999999.pdf", &pdf("a")));
    assert_eq!(
        p,
        ["no order C04-2026-999999 was imported (import the orders file first)"]
    );
    // Every problem at once.
    let (_, p) = refused(k.import(Kind::Decisions, "C04-2026-999999.pdf", b"%PDF-1.4 cut"));
    assert_eq!(p.len(), 2, "{p:?}");

    assert_eq!(k.count("SELECT COUNT(*) FROM documents"), 0);
    assert!(files(&k, "archive").is_empty(), "{:?}", files(&k, "archive"));
    assert_eq!(k.state("C04-2026-000123"), "a_faire");
    assert_eq!(k.count("SELECT COUNT(*) FROM history WHERE interface = 'documents'"), 0);
}

#[test]
fn an_evaluation_is_kept_and_owed_to_its_provider() {
    let mut k = kit();
    let listing = k.listing("ergo59");
    let bytes = pdf("eval F59-1");
    let s = k.import(Kind::Evaluations, "F59-1.pdf", &bytes).unwrap();
    assert_eq!(
        s.to_string(),
        "evaluations: F59-1.pdf for order F59-1, routed to ergo59 as documents/F59-1.evaluation.pdf"
    );
    let (source, path, provider, size, done): (String, String, String, i64, Option<String>) = k
        .conn
        .query_row(
            "SELECT source_path, path, provider, size, done_at FROM documents",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert!(
        source.starts_with("archive/caisse/evaluations/F59-1-") && source.ends_with(".pdf"),
        "{source}"
    );
    assert_eq!(std::fs::read(k.path(&source)).unwrap(), bytes);
    assert_eq!(path, "outbound/ergo59/documents/F59-1.evaluation.pdf");
    assert_eq!((provider.as_str(), size, done), ("ergo59", bytes.len() as i64, None));
    assert_eq!(k.state("F59-1"), "a_faire", "an evaluation does not change the state");
    assert_eq!(k.listing("ergo59").0, listing.0 + 1);
    let (key, to, subject, body): (String, String, String, String) = k
        .conn
        .query_row(
            "SELECT dedup_key, recipients, subject, body FROM mail_queue WHERE dedup_key LIKE 'evaluation:%'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert!(key.starts_with("evaluation:F59-1:"), "{key}");
    assert_eq!(to, "cabinet@ergo59.example");
    assert_eq!(subject, "PPAS : évaluation de la commande F59-1");
    assert!(body.contains("/out/documents/F59-1.evaluation.pdf"), "{body}");
    let (iface, prov, conv): (String, String, String) = k
        .conn
        .query_row(
            "SELECT interface, provider, convention FROM history WHERE kind = 'import' AND interface = 'documents'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (iface.as_str(), prov.as_str(), conv.as_str()),
        ("documents", "ergo59", "59111100")
    );
}

#[test]
fn the_same_bytes_twice_change_nothing_and_a_new_version_takes_a_counter() {
    let mut k = kit();
    let v1 = pdf("v1");
    k.import(Kind::Evaluations, "C04-2026-000123.pdf", &v1).unwrap();
    let counts = |k: &Kit| {
        (
            k.count("SELECT COUNT(*) FROM documents"),
            k.count("SELECT COUNT(*) FROM mail_queue"),
            k.count("SELECT COUNT(*) FROM history"),
            k.listing("ergo62"),
            files(k, "archive").len(),
        )
    };
    let before = counts(&k);
    // Same bytes, extension in capitals (a scanner's name): nothing new.
    let s = k.import(Kind::Evaluations, "C04-2026-000123.PDF", &v1).unwrap();
    assert_eq!((s.new, s.rows), (0, 1));
    assert!(
        s.to_string()
            .ends_with("(same content, documents/C04-2026-000123.evaluation.pdf): nothing new"),
        "{s}"
    );
    assert_eq!(counts(&k), before);

    // Another version: published beside the first, never over it.
    let s = k.import(Kind::Evaluations, "C04-2026-000123.pdf", &pdf("v2")).unwrap();
    assert!(
        s.to_string()
            .contains("as documents/C04-2026-000123.2.evaluation.pdf (version 2)"),
        "{s}"
    );
    let s = k.import(Kind::Evaluations, "C04-2026-000123.pdf", &pdf("v3")).unwrap();
    assert!(s.to_string().contains("C04-2026-000123.3.evaluation.pdf"), "{s}");
    // The same content as another kind is another document.
    let s = k.import(Kind::Decisions, "C04-2026-000123.pdf", &v1).unwrap();
    assert!(
        s.to_string().contains("as documents/C04-2026-000123.decision.pdf"),
        "{s}"
    );
    assert_eq!(k.count("SELECT COUNT(*) FROM documents"), 4);
}

#[test]
fn a_decision_closes_the_case_once() {
    let mut k = kit();
    let s = k.import(Kind::Decisions, "C04-2026-000123.pdf", &pdf("d1")).unwrap();
    assert!(s.to_string().ends_with("; the case is closed"), "{s}");
    let o = crate::habitat::Order::load(&k.conn, "C04-2026-000123")
        .unwrap()
        .unwrap();
    assert_eq!(o.state, crate::habitat::OrderState::Clos);
    assert_eq!(o.closed_at.as_deref(), Some("2026-11-02T09:00:00Z"));
    let subject = k.text("SELECT subject FROM mail_queue WHERE dedup_key LIKE 'decision:%'");
    assert_eq!(
        subject,
        "PPAS : notification de décision de la commande C04-2026-000123"
    );

    // A corrected notice later: a second version; the case stays closed as it was.
    let later = crate::import::testkit::now() + chrono::Duration::days(3);
    k.import_at(Kind::Decisions, "C04-2026-000123.pdf", &pdf("d2"), later)
        .unwrap();
    let o = crate::habitat::Order::load(&k.conn, "C04-2026-000123")
        .unwrap()
        .unwrap();
    assert_eq!(o.closed_at.as_deref(), Some("2026-11-02T09:00:00Z"));
    assert_eq!(k.count("SELECT COUNT(*) FROM documents WHERE kind = 'decision'"), 2);

    // A case closed sans suite keeps that state.
    k.attest("F59-1", "S", "att.xml", 1);
    let s = k.import(Kind::Decisions, "F59-1.pdf", &pdf("d3")).unwrap();
    assert!(!s.to_string().contains("closed"), "{s}");
    assert_eq!(k.state("F59-1"), "sans_suite");
    // A transmitted one is closed by its decision.
    let text = format!(
        "{}C7;04;62739900;1700321000007;BLANC;Marc;7 rue;03 21 00 00 07;PS;2026-09-07\n",
        crate::import::testkit::O_HEADER
    );
    k.import(Kind::Orders, "c.csv", text.as_bytes()).unwrap();
    k.attest("C7", "T", "att.xml", 2);
    k.import(Kind::Decisions, "C7.pdf", &pdf("d4")).unwrap();
    assert_eq!(k.state("C7"), "clos");
}
