//! Evaluations and decisions: refused whole with a clear error (CLI exit 2,
//! drop folder `rejected/` + `.errors.txt`), or routed to the provider of
//! the order; a decision closes the case; the same bytes twice: nothing new.

use super::*;

#[test]
fn the_cli_refuses_what_is_not_a_pdf_of_a_known_order() {
    let g = gw_with_orders();
    let before = g.dump();
    let cases: [(&str, &str, &[u8], &str); 6] = [
        (
            "evaluations",
            "C04-2026-000123.pdf",
            b"Compte rendu d'evaluation\n(texte renomme en .pdf)\n",
            "not a PDF document: it does not start with %PDF-",
        ),
        (
            "evaluations",
            "C04-2026-000123.pdf",
            b"",
            "the file is empty: a PDF document is expected",
        ),
        (
            "decisions",
            "C04-2026-000123.pdf",
            b"%PDF-1.4\n1 0 obj << >> endobj\n",
            "no %%EOF marker at its end",
        ),
        (
            "decisions",
            "decision-C04-2026-000123.doc",
            &pdf("x"),
            "the name must be <rf-commande>.pdf",
        ),
        (
            "evaluations",
            "C04 2026 000123.pdf",
            &pdf("x"),
            "the name must be <rf-commande>.pdf",
        ),
        (
            "decisions",
            "C04-2026-999999.pdf",
            &pdf("x"),
            "no order C04-2026-999999 was imported (import the orders file first)",
        ),
    ];
    for (kind, name, bytes, needle) in cases {
        let out = import_bytes(&g, kind, name, bytes);
        expect(&out, 2);
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("{kind} file {name}: refused, nothing applied")) && err.contains(needle),
            "{kind} {name}: missing {needle:?} in:\n{err}"
        );
        assert!(out.stdout.is_empty());
    }
    assert_eq!(g.dump(), before, "nothing applied");
    assert!(g.files("archive").is_empty(), "{:?}", g.files("archive"));
    assert!(g.files("outbound/ergo62/documents").is_empty());
}

#[test]
fn documents_are_routed_to_the_provider_of_the_order_and_a_decision_closes_it() {
    let g = gw_with_orders();
    let eval = pdf("évaluation C04-2026-000200");
    let out = import_bytes(&g, "evaluations", "C04-2026-000200.pdf", &eval);
    expect(&out, 0);
    assert_eq!(
        text(&out.stdout),
        "evaluations: C04-2026-000200.pdf for order C04-2026-000200, routed to ergo59 as documents/C04-2026-000200.evaluation.pdf\n"
    );
    assert_eq!(
        std::fs::read(g.path("outbound/ergo59/documents/C04-2026-000200.evaluation.pdf")).unwrap(),
        eval
    );
    assert!(g.files("outbound/ergo62/documents").is_empty());
    let row = listing_row(&g, "ergo59", "C04-2026-000200");
    assert_eq!(row["Évaluation"], "documents/C04-2026-000200.evaluation.pdf");
    assert_eq!(row["État"], "à faire");

    // The same bytes again: nothing new (no second file, no mail, no history).
    let history = g.count("SELECT COUNT(*) FROM history");
    let out = import_bytes(&g, "evaluations", "C04-2026-000200.pdf", &eval);
    expect(&out, 0);
    assert!(text(&out.stdout).ends_with(": nothing new\n"), "{}", text(&out.stdout));
    assert_eq!(g.files("outbound/ergo59/documents").len(), 1);
    assert_eq!(g.count("SELECT COUNT(*) FROM history"), history);

    // The decision: published beside it, the case closed.
    let decision = pdf("décision C04-2026-000200");
    let out = import_bytes(&g, "decisions", "C04-2026-000200.pdf", &decision);
    expect(&out, 0);
    assert!(
        text(&out.stdout).ends_with("; the case is closed\n"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        std::fs::read(g.path("outbound/ergo59/documents/C04-2026-000200.decision.pdf")).unwrap(),
        decision
    );
    let row = listing_row(&g, "ergo59", "C04-2026-000200");
    assert_eq!(row["État"], "clos");
    assert_eq!(row["Date de clôture"], "20/11/2026");
    assert_eq!(row["Décision"], "documents/C04-2026-000200.decision.pdf");
    assert_listing_valid(&g, "ergo59");

    // History: the imports and one "chargement" per published document.
    let h = g.rows(
        "SELECT kind, interface, provider, convention, comment FROM history
         WHERE application = 'habitat' AND interface = 'documents' ORDER BY id",
    );
    let kinds: Vec<&str> = h.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(kinds, ["import", "chargement", "import", "chargement"], "{h:?}");
    assert!(h.iter().all(|r| r[2] == "ergo59" && r[3] == "59111100"), "{h:?}");
    assert_eq!(
        h[3][4],
        "notification de décision de la commande C04-2026-000200 publiée : documents/C04-2026-000200.decision.pdf"
    );

    // The provider is told of each document.
    let mails = sent_mails(&g);
    let about: Vec<&Mail> = mails.iter().filter(|m| m.raw.contains("/out/documents/")).collect();
    assert_eq!(about.len(), 2, "{mails:?}");
    assert!(about.iter().all(|m| m.to.contains("cabinet@ergo59.example")));
    let apps = g.rows("SELECT DISTINCT application FROM history WHERE kind = 'mail'");
    assert_eq!(
        apps,
        [["habitat"]],
        "every notice of the ergothérapeute side is habitat"
    );
}

#[test]
fn the_drop_folders_import_documents_and_reject_bad_ones_with_their_errors() {
    let g = gw_with_orders();
    let drop = |kind: &str, name: &str, bytes: &[u8]| {
        let dir = g.path(&format!("caisse/inbound/{kind}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!(".{name}")), bytes).unwrap();
        std::fs::rename(dir.join(format!(".{name}")), dir.join(name)).unwrap();
    };
    drop("evaluations", "C04-2026-000123.pdf", &pdf("e123"));
    drop("decisions", "C04-2026-000124.pdf", &pdf("d124"));
    drop("evaluations", "C04-2026-000124.pdf", b"PK\x03\x04 a zip renamed");
    drop("decisions", "C04-2026-777777.pdf", &pdf("d777"));
    drop("decisions", "notification.txt", &pdf("n"));
    let out = g.process();
    expect(&out, 1);
    assert!(
        text(&out.stdout).contains("référentiel : 2 appliqué(s), 3 refusé(s)"),
        "{}",
        text(&out.stdout)
    );

    // Applied: published to ergo62, the drops gone, the bytes kept in archive/.
    assert_eq!(
        g.files("outbound/ergo62/documents"),
        [
            "outbound/ergo62/documents/C04-2026-000123.evaluation.pdf",
            "outbound/ergo62/documents/C04-2026-000124.decision.pdf"
        ]
    );
    assert_eq!(
        g.read("outbound/ergo62/documents/C04-2026-000124.decision.pdf")
            .as_bytes(),
        pdf("d124")
    );
    let archived = g.files("archive/caisse");
    assert_eq!(archived.len(), 2, "{archived:?}");
    assert!(archived
        .iter()
        .any(|f| f.starts_with("archive/caisse/decisions/C04-2026-000124-")));
    assert_eq!(listing_row(&g, "ergo62", "C04-2026-000124")["État"], "clos");
    assert_eq!(
        listing_row(&g, "ergo62", "C04-2026-000123")["Évaluation"],
        "documents/C04-2026-000123.evaluation.pdf"
    );
    assert_listing_valid(&g, "ergo62");

    // Refused: moved to rejected/ with the reason beside them.
    let left: Vec<String> = g.files("caisse/inbound");
    assert_eq!(
        left,
        [
            "caisse/inbound/decisions/rejected/C04-2026-777777.pdf",
            "caisse/inbound/decisions/rejected/C04-2026-777777.pdf.errors.txt",
            "caisse/inbound/decisions/rejected/notification.txt",
            "caisse/inbound/decisions/rejected/notification.txt.errors.txt",
            "caisse/inbound/evaluations/rejected/C04-2026-000124.pdf",
            "caisse/inbound/evaluations/rejected/C04-2026-000124.pdf.errors.txt",
        ]
    );
    let e = g.read("caisse/inbound/evaluations/rejected/C04-2026-000124.pdf.errors.txt");
    assert!(e.contains("not a PDF document: it does not start with %PDF-"), "{e}");
    let e = g.read("caisse/inbound/decisions/rejected/C04-2026-777777.pdf.errors.txt");
    assert!(e.contains("no order C04-2026-777777 was imported"), "{e}");
    let e = g.read("caisse/inbound/decisions/rejected/notification.txt.errors.txt");
    assert!(e.contains("the name must be <rf-commande>.pdf"), "{e}");

    // The same decision dropped again: nothing new, the drop removed.
    drop("decisions", "C04-2026-000124.pdf", &pdf("d124"));
    expect(&g.process(), 0);
    assert_eq!(g.count("SELECT COUNT(*) FROM documents"), 2);
    assert!(!g.exists("caisse/inbound/decisions/C04-2026-000124.pdf"));
    let outcome =
        g.rows("SELECT outcome, detail FROM caisse_imports WHERE kind = 'decisions' ORDER BY id DESC LIMIT 1");
    assert_eq!(outcome[0][0], "applied");
    assert!(outcome[0][1].ends_with("nothing new"), "{outcome:?}");

    // A new version of the evaluation: beside the first, never over it.
    drop("evaluations", "C04-2026-000123.pdf", &pdf("e123 v2"));
    expect(&g.process(), 0);
    assert_eq!(
        g.read("outbound/ergo62/documents/C04-2026-000123.evaluation.pdf")
            .as_bytes(),
        pdf("e123")
    );
    assert_eq!(
        g.read("outbound/ergo62/documents/C04-2026-000123.2.evaluation.pdf")
            .as_bytes(),
        pdf("e123 v2")
    );
}
