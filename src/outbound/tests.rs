//! The publisher: what is owed is written once and recorded; a kill between
//! a write and its record only means the same bytes again; one failure does
//! not hold up the rest.

use super::*;
use crate::import::testkit::{now, pdf, Kit};
use crate::import::Kind;

const A: &str = "C04-2026-000123;04;62739900;1541299999000;DUPONT;Jean;12 rue des Lilas;03 21 00 00 01;PS;2026-09-01\n";
const F: &str = "F59-1;04;59111100;2600321000002;MARTIN;Anne;3 place d'Armes;03 20 00 00 02;C;2026-10-01\n";

fn kit() -> Kit {
    let mut k = Kit::new();
    k.orders(&format!("{A}{F}"));
    k.import(Kind::Evaluations, "C04-2026-000123.pdf", &pdf("e1")).unwrap();
    k.import(Kind::Decisions, "F59-1.pdf", &pdf("d1")).unwrap();
    k
}

fn publish(k: &mut Kit) -> Result<Published> {
    publish_due(&mut k.conn, &k.cfg, now())
}

fn read(k: &Kit, rel: &str) -> Vec<u8> {
    std::fs::read(k.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every name in the provider's outbound folder, recursively, sorted.
fn outbound(k: &Kit, provider: &str) -> Vec<String> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            if e.file_type().unwrap().is_dir() {
                walk(root, &e.path(), out);
            } else {
                out.push(e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let root = k.path(&format!("outbound/{provider}"));
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

#[test]
fn everything_owed_is_written_once_and_recorded() {
    let mut k = kit();
    let p = publish(&mut k).unwrap();
    // Each provider's commandes, and its historique (the documents'
    // "chargement" entries marked it).
    assert_eq!(
        p,
        Published {
            documents: 2,
            listings: 4,
            reports: 0
        }
    );
    assert_eq!(
        outbound(&k, "ergo62"),
        [
            "commandes.csv",
            "commandes.xml",
            "documents/C04-2026-000123.evaluation.pdf",
            "historique.csv"
        ]
    );
    assert_eq!(
        outbound(&k, "ergo59"),
        [
            "commandes.csv",
            "commandes.xml",
            "documents/F59-1.decision.pdf",
            "historique.csv"
        ]
    );
    assert_eq!(
        read(&k, "outbound/ergo62/documents/C04-2026-000123.evaluation.pdf"),
        pdf("e1")
    );
    assert_eq!(read(&k, "outbound/ergo59/documents/F59-1.decision.pdf"), pdf("d1"));
    let rendered = crate::listing::commandes::render(&k.conn, "ergo62").unwrap();
    assert_eq!(read(&k, "outbound/ergo62/commandes.csv"), rendered.csv);
    assert_eq!(read(&k, "outbound/ergo62/commandes.xml"), rendered.xml);
    assert_eq!(k.count("SELECT COUNT(*) FROM documents WHERE done_at IS NULL"), 0);
    assert_eq!(k.count("SELECT COUNT(*) FROM listings WHERE written <> wanted"), 0);
    let comments: Vec<(String, String, String)> = k
        .conn
        .prepare("SELECT provider, convention, comment FROM history WHERE kind = 'chargement' ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        comments,
        [
            (
                "ergo62".to_string(),
                "62739900".to_string(),
                "évaluation de la commande C04-2026-000123 publiée : documents/C04-2026-000123.evaluation.pdf"
                    .to_string()
            ),
            (
                "ergo59".to_string(),
                "59111100".to_string(),
                "notification de décision de la commande F59-1 publiée : documents/F59-1.decision.pdf".to_string()
            ),
        ]
    );

    // Nothing owed any more: nothing written, nothing recorded.
    let history = k.count("SELECT COUNT(*) FROM history");
    let mtime = std::fs::metadata(k.path("outbound/ergo62/commandes.csv"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(publish(&mut k).unwrap(), Published::default());
    assert_eq!(k.count("SELECT COUNT(*) FROM history"), history);
    assert_eq!(
        std::fs::metadata(k.path("outbound/ergo62/commandes.csv"))
            .unwrap()
            .modified()
            .unwrap(),
        mtime
    );
}

#[test]
fn a_kill_between_write_and_record_writes_the_same_bytes_again() {
    let mut k = kit();
    publish(&mut k).unwrap();
    let before: Vec<Vec<u8>> = [
        "outbound/ergo62/commandes.csv",
        "outbound/ergo62/commandes.xml",
        "outbound/ergo62/documents/C04-2026-000123.evaluation.pdf",
    ]
    .iter()
    .map(|f| read(&k, f))
    .collect();
    // As if the process died after the renames, before the records.
    k.conn.execute("UPDATE documents SET done_at = NULL", []).unwrap();
    k.conn
        .execute("UPDATE listings SET written = 0 WHERE kind = 'commandes'", [])
        .unwrap();
    // The documents' entries recorded again mark the historique listings.
    assert_eq!(
        publish(&mut k).unwrap(),
        Published {
            documents: 2,
            listings: 4,
            reports: 0
        }
    );
    let after: Vec<Vec<u8>> = [
        "outbound/ergo62/commandes.csv",
        "outbound/ergo62/commandes.xml",
        "outbound/ergo62/documents/C04-2026-000123.evaluation.pdf",
    ]
    .iter()
    .map(|f| read(&k, f))
    .collect();
    assert_eq!(before, after);
    assert_eq!(
        outbound(&k, "ergo62").len(),
        4,
        "no temporary file left: {:?}",
        outbound(&k, "ergo62")
    );

    // A temporary file a kill left behind is hidden and never a listing.
    std::fs::write(k.path("outbound/ergo62/.ppas-tmp-1-2-commandes.csv"), b"half").unwrap();
    assert_eq!(read(&k, "outbound/ergo62/commandes.csv"), before[0]);
}

#[test]
fn written_follows_the_generation_read_and_is_never_lowered() {
    let mut k = kit();
    k.conn
        .execute(
            "UPDATE listings SET wanted = 9, written = 4 WHERE provider = 'ergo62'",
            [],
        )
        .unwrap();
    publish(&mut k).unwrap();
    assert_eq!(k.listing("ergo62"), (9, 9));
    // A change committed after: owed again, written again.
    crate::habitat::mark_listing(&k.conn, "ergo62", crate::habitat::Listing::Commandes).unwrap();
    assert_eq!(
        publish(&mut k).unwrap(),
        Published {
            documents: 0,
            listings: 1,
            reports: 0
        }
    );
    assert_eq!(k.listing("ergo62"), (10, 10));
}

#[test]
fn a_missing_or_altered_source_holds_up_nothing_else() {
    let mut k = kit();
    let source = k.text("SELECT source_path FROM documents WHERE rf_commande = 'C04-2026-000123'");
    let kept = read(&k, &source);
    std::fs::remove_file(k.path(&source)).unwrap();
    let e = format!("{:#}", publish(&mut k).unwrap_err());
    assert!(e.starts_with("1 outbound file(s) not written"), "{e}");
    assert!(
        e.contains("outbound/ergo62/documents/C04-2026-000123.evaluation.pdf"),
        "{e}"
    );
    // The other document and both listings were written.
    assert!(k.path("outbound/ergo59/documents/F59-1.decision.pdf").exists());
    assert_eq!(k.count("SELECT COUNT(*) FROM listings WHERE written <> wanted"), 0);
    assert_eq!(k.count("SELECT COUNT(*) FROM documents WHERE done_at IS NULL"), 1);
    assert!(!k
        .path("outbound/ergo62/documents/C04-2026-000123.evaluation.pdf")
        .exists());

    // Altered: refused, nothing left in the folder.
    std::fs::write(k.path(&source), b"%PDF-1.4 something else %%EOF").unwrap();
    let e = format!("{:#}", publish(&mut k).unwrap_err());
    assert!(e.contains("no longer has the imported content"), "{e}");
    assert!(!k
        .path("outbound/ergo62/documents/C04-2026-000123.evaluation.pdf")
        .exists());
    assert_eq!(
        outbound(&k, "ergo62"),
        ["commandes.csv", "commandes.xml", "historique.csv"]
    );

    // Put back: published at the next call.
    std::fs::write(k.path(&source), &kept).unwrap();
    assert_eq!(
        publish(&mut k).unwrap(),
        Published {
            documents: 1,
            listings: 1,
            reports: 0
        },
        "the document, and the historique its entry marked"
    );
    assert_eq!(
        read(&k, "outbound/ergo62/documents/C04-2026-000123.evaluation.pdf"),
        kept
    );
}

#[test]
fn a_published_version_is_never_replaced() {
    let mut k = kit();
    publish(&mut k).unwrap();
    k.import(Kind::Evaluations, "C04-2026-000123.pdf", &pdf("e2")).unwrap();
    // commandes (the new version is listed) and historique (its entries).
    assert_eq!(
        publish(&mut k).unwrap(),
        Published {
            documents: 1,
            listings: 2,
            reports: 0
        }
    );
    assert_eq!(
        read(&k, "outbound/ergo62/documents/C04-2026-000123.evaluation.pdf"),
        pdf("e1")
    );
    assert_eq!(
        read(&k, "outbound/ergo62/documents/C04-2026-000123.2.evaluation.pdf"),
        pdf("e2")
    );
}
