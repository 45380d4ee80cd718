//! What the drop folders take and when: reference data dropped by the
//! caisse (applied whole or refused whole), temp names left alone until
//! renamed, files still open for writing left for the next pass.

use super::*;

#[test]
fn caisse_drops_are_applied_whole_or_refused_whole() {
    let g = Gw::new();
    // A good providers file, then beneficiaries: both applied, in that order.
    let drop = |kind: &str, name: &str, body: &str| {
        let dir = g.path(&format!("caisse/inbound/{kind}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!(".{name}")), body).unwrap();
        std::fs::rename(dir.join(format!(".{name}")), dir.join(name)).unwrap();
    };
    drop("providers", "prestataires.csv", &providers_csv());
    drop("beneficiaries", "plans.csv", &beneficiaries_csv());
    process(&g, 0);
    assert_eq!(g.count("SELECT COUNT(*) FROM conventions"), 4);
    assert_eq!(g.count("SELECT COUNT(*) FROM plans"), PLANS.len() as i64);
    assert!(g.files("caisse/inbound").is_empty(), "{:?}", g.files("caisse/inbound"));
    let archived = g.files("archive/caisse");
    assert_eq!(archived.len(), 2, "{archived:?}");
    assert!(archived
        .iter()
        .any(|f| f.starts_with("archive/caisse/providers/") && f.ends_with("prestataires.csv")));
    assert_eq!(g.count("SELECT COUNT(*) FROM history WHERE kind = 'import'"), 2);

    // A bad file: moved to rejected/ with every bad row named, nothing applied.
    let before = g.dump();
    let mut bad = providers_csv();
    bad.push_str(&format!(
        "saadD;D;{};d@saadd.example;03 80 00 00 04;saad;03;C03D1;21400001\n",
        siret(4)
    ));
    bad.push_str("saad E;E;12345678901234;e@@x;0380;aide;99;C;21500001\n");
    bad.push_str(&format!(
        "saadF;F;{};f@saadf.example;03 80 00 00 06;saad;03;C03F1\n",
        siret(6)
    ));
    drop("providers", "bad.csv", &bad);
    let out = g.process();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("1 refusé"), "{}", text(&out.stdout));
    assert!(!g.exists("caisse/inbound/providers/bad.csv"));
    assert!(g.exists("caisse/inbound/providers/rejected/bad.csv"));
    let errors = g.read("caisse/inbound/providers/rejected/bad.csv.errors.txt");
    for needle in [
        "line 7: column provider",
        "line 7: column siret",
        "line 7: column email",
        "line 7: column telephone",
        "line 7: column type",
        "line 7: column id-cram",
        "line 8: has 8 cells",
    ] {
        assert!(errors.contains(needle), "missing {needle:?} in:\n{errors}");
    }
    assert!(!errors.contains("line 6"), "the good row is not named:\n{errors}");
    assert_eq!(
        g.dump().get("conventions"),
        before.get("conventions"),
        "nothing applied"
    );
    assert_eq!(g.dump().get("providers"), before.get("providers"), "nothing applied");
}

// ---------------------------------------------------------------------------
// 4. Temp names are left alone until renamed.
// ---------------------------------------------------------------------------

#[test]
fn temp_names_wait_until_renamed() {
    let g = Gw::with_cast();
    let bills: Vec<Bill> = (20..25)
        .map(|d| Bill::new(SITE_A, d).line(BLine::month(NIR_A1, SITE_A, d - 19, "1")))
        .collect();
    let temp_names: Vec<String> = vec![
        format!(".{}", bills[0].name()),
        format!("~{}", bills[1].name()),
        format!("{}.part", bills[2].name()),
        format!("{}.tmp", bills[3].name()),
        format!("{}.filepart", bills[4].name()),
    ];
    let dir = g.path("inbound/saadA");
    std::fs::create_dir_all(&dir).unwrap();
    for (b, t) in bills.iter().zip(&temp_names) {
        std::fs::write(dir.join(t), b.xml()).unwrap();
    }
    // Caisse folders too.
    std::fs::create_dir_all(g.path("caisse/inbound/providers")).unwrap();
    std::fs::write(g.path("caisse/inbound/providers/providers.csv.part"), "provider\n").unwrap();
    process(&g, 0);
    assert_eq!(g.count("SELECT COUNT(*) FROM received_files"), 0);
    let mut left: Vec<String> = g.files("inbound/saadA");
    left.sort();
    let mut expected: Vec<String> = temp_names.iter().map(|t| format!("inbound/saadA/{t}")).collect();
    expected.sort();
    assert_eq!(left, expected);
    assert!(g.exists("caisse/inbound/providers/providers.csv.part"));
    assert_eq!(g.count("SELECT COUNT(*) FROM caisse_imports"), 0);

    for (b, t) in bills.iter().zip(&temp_names) {
        std::fs::rename(dir.join(t), dir.join(b.name())).unwrap();
    }
    process(&g, 0);
    assert_eq!(
        g.count("SELECT COUNT(*) FROM received_files WHERE state = 'done' AND verdict = 'accepted'"),
        5
    );
    assert!(g.files("inbound/saadA").is_empty());
}

#[test]
fn a_file_that_cannot_be_finished_exits_2_after_the_others_are_processed() {
    let g = Gw::with_cast();
    // A file recorded as received whose work copy has gone (deleted by hand).
    g.db()
        .execute(
            "INSERT INTO received_files (provider, name, channel, sha256, size, received_at, work_path, state)
             VALUES ('saadA', 'gone.xml', 'depot', 'ab', 1, '2021-05-20T08:00:00Z', 'work/saadA/1-gone.xml', 'received')",
            [],
        )
        .unwrap();
    let bill = Bill::new(SITE_A, 30).lines((1..=2).map(|m| BLine::month(NIR_A1, SITE_A, m, "2")));
    g.drop_bill("saadA", &bill);
    let out = g.process();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("1 fichier(s) reçu(s) mais non traité(s)"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(report(&g, "saadA", &bill, 1).verdict, "accepted");
    assert_eq!(
        g.count("SELECT COUNT(*) FROM received_files WHERE state = 'received'"),
        1
    );
    assert_eq!(g.count("SELECT COUNT(*) FROM errors"), 1);
}

#[test]
fn process_once_never_takes_a_file_still_open_for_writing() {
    use std::io::Write;
    let g = Gw::with_cast();
    let bill = Bill::new(SITE_A, 30).lines((1..=6).map(|m| BLine::month(NIR_A1, SITE_A, m, "2")));
    let xml = bill.xml();
    let (head, tail) = xml.split_at(xml.len() / 2);
    let dir = g.path("inbound/saadA");
    std::fs::create_dir_all(&dir).unwrap();
    // cron fires while a provider's program is writing the file in place.
    let mut f = std::fs::File::create(dir.join(bill.name())).unwrap();
    f.write_all(head.as_bytes()).unwrap();
    f.flush().unwrap();
    process(&g, 0);
    assert_eq!(
        g.count("SELECT COUNT(*) FROM received_files"),
        0,
        "taken while still open for writing"
    );
    f.write_all(tail.as_bytes()).unwrap();
    drop(f);
    process(&g, 0);
    assert_eq!(report(&g, "saadA", &bill, 1).verdict, "accepted");
}

#[test]
fn a_caisse_file_still_open_for_writing_is_not_applied_in_part() {
    use std::io::Write;
    let g = Gw::new();
    g.import("providers", &providers_csv());
    let csv = beneficiaries_csv();
    // Cut after the third row: what is written so far is a valid file.
    let cut = csv.match_indices('\n').nth(3).map(|(i, _)| i + 1).unwrap();
    let dir = g.path("caisse/inbound/beneficiaries");
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = std::fs::File::create(dir.join("plans.csv")).unwrap();
    f.write_all(&csv.as_bytes()[..cut]).unwrap();
    f.flush().unwrap();
    process(&g, 0);
    assert_eq!(
        g.count("SELECT COUNT(*) FROM plans"),
        0,
        "a file still being written was applied in part"
    );
    f.write_all(&csv.as_bytes()[cut..]).unwrap();
    drop(f);
    process(&g, 0);
    assert_eq!(g.count("SELECT COUNT(*) FROM plans"), PLANS.len() as i64);
}
