//! Unit tests of the pipeline's steps on a real spool in a temporary
//! folder: taking, the day of receipt, recovery, the payment chain's file
//! delivered once, attempts and quarantine, duplicates.

use super::*;

fn pipeline(dir: &Path) -> Pipeline {
    let mut cfg = Config::default();
    cfg.paths.spool = dir.join("spool");
    cfg.paths.database = dir.join("spool/state/gateway.db");
    Pipeline::open(cfg, Clock::Fixed(chrono::Utc::now())).unwrap()
}

#[test]
fn a_file_open_for_writing_is_seen_as_such() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.xml");
    let w = fs::File::create(&p).unwrap();
    assert!(open_for_writing(&p));
    drop(w);
    assert!(!open_for_writing(&p));
    let _r = fs::File::open(&p).unwrap();
    assert!(!open_for_writing(&p), "a reader is not a writer");
    assert!(!open_for_writing(&d.path().join("absent.xml")));
}

fn at(t: &str) -> Clock {
    Clock::Fixed(
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .with_timezone(&chrono::Utc),
    )
}

fn drop_fixture(p: &Pipeline, provider: &str, name: &str) -> PathBuf {
    let dir = p.spool.inbound().join(provider);
    fs::create_dir_all(&dir).unwrap();
    let to = dir.join(name);
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/billing/03_150521_100_21999000.xml");
    fs::copy(from, &to).unwrap();
    to
}

fn codes(p: &Pipeline, id: i64) -> Vec<String> {
    p.conn
        .prepare("SELECT code FROM anomalies WHERE file_id = ?1 ORDER BY seq")
        .unwrap()
        .query_map([id], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[test]
fn l03_compares_with_the_day_of_receipt_not_of_the_decision() {
    // Codes of the fixture received at `received`, decided at `decided`.
    let codes_when = |received: &str, decided: &str| {
        let d = tempfile::tempdir().unwrap();
        let mut p = pipeline(d.path());
        let path = drop_fixture(&p, "saad1", "03_150521_100_21999000.xml");
        p.clock = at(received);
        let id = p.take(&path, Channel::Depot).unwrap().unwrap();
        p.clock = at(decided);
        p.finish(id).unwrap();
        codes(&p, id)
    };
    // The fixture's last line ends on 2021-04-30. Received on the 29th
    // (Paris), decided after a restart on 1 May: still after receipt.
    let c = codes_when("2021-04-29T23:30:00+02:00", "2021-05-01T10:00:00+02:00");
    assert!(c.iter().any(|c| c == "L03"), "{c:?}");
    // Received on 30 April itself: the same line is not late.
    let c = codes_when("2021-04-30T00:30:00+02:00", "2021-04-28T10:00:00+02:00");
    assert!(!c.iter().any(|c| c == "L03"), "{c:?}");
}

#[test]
fn only_regular_files_of_a_provider_folder_are_taken() {
    let d = tempfile::tempdir().unwrap();
    let mut p = pipeline(d.path());
    let inbound = p.spool.inbound();
    let provider_dir = inbound.join("saad1");
    fs::create_dir_all(provider_dir.join("nested")).unwrap();
    fs::write(provider_dir.join("nested/a.xml"), b"x").unwrap();
    let elsewhere = d.path().join("secret.xml");
    fs::write(&elsewhere, b"x").unwrap();
    std::os::unix::fs::symlink(&elsewhere, provider_dir.join("link.xml")).unwrap();
    for path in [
        provider_dir.join("nested"),
        provider_dir.clone(),
        provider_dir.join("link.xml"),
        provider_dir.join("nested/a.xml"),
    ] {
        assert_eq!(p.take(&path, Channel::Depot).unwrap(), None, "{}", path.display());
    }
    assert!(provider_dir.join("nested/a.xml").exists() && provider_dir.join("link.xml").exists() && elsewhere.exists());
    let n: i64 = p
        .conn
        .query_row("SELECT COUNT(*) FROM received_files", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
    // The same folder named another way is still the inbound folder.
    let dotted = d.path().join("spool/./inbound/saad1/03_150521_100_21999000.xml");
    drop_fixture(&p, "saad1", "03_150521_100_21999000.xml");
    assert!(p.take(&dotted, Channel::Depot).unwrap().is_some());
}

#[test]
fn a_file_that_cannot_be_finished_does_not_hold_up_the_others() {
    let d = tempfile::tempdir().unwrap();
    let mut p = pipeline(d.path());
    p.clock = at("2021-05-20T10:00:00+02:00");
    let first = drop_fixture(&p, "saad1", "03_150521_100_21999000.xml");
    let id = p.take(&first, Channel::Depot).unwrap().unwrap();
    // Its work copy deleted by hand before the decision.
    let work: String = p
        .conn
        .query_row("SELECT work_path FROM received_files WHERE id = ?1", [id], |r| r.get(0))
        .unwrap();
    fs::remove_file(p.spool.abs(&work)).unwrap();
    drop_fixture(&p, "saad2", "03_150521_100_21999000.xml");
    let s = p.process_once().unwrap();
    assert_eq!((s.processed, s.failed), (1, 1), "{s:?}");
    assert!(!s.all_accepted());
    let errors: i64 = p
        .conn
        .query_row("SELECT COUNT(*) FROM errors", [], |r| r.get(0))
        .unwrap();
    assert_eq!(errors, 1);
    let states: Vec<String> = p
        .conn
        .prepare("SELECT state FROM received_files ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(states, ["received", "done"]);
}

#[test]
fn recovery_keeps_the_mail_temp_files_of_this_process() {
    let d = tempfile::tempdir().unwrap();
    let mut p = pipeline(d.path());
    let mail = p.spool.mail();
    // A write in progress by this process's mail worker, and one left by a dead process.
    let mine = mail.join(format!(
        "{}{}-7-00000001-ab.eml",
        fsutil::TEMP_PREFIX,
        std::process::id()
    ));
    let dead = mail.join(format!("{}{}-7-00000002-cd.eml", fsutil::TEMP_PREFIX, u32::MAX));
    fs::write(&mine, b"half").unwrap();
    fs::write(&dead, b"half").unwrap();
    p.recover(false).unwrap();
    assert!(mine.exists(), "the live writer's temp file was removed");
    assert!(!dead.exists(), "a dead writer's temp file was kept");
}

/// The fixture's provider and beneficiaries: `saad1` (sites 21999000 and
/// 21999001, caisse 03) and a plan for each of its two NIRs.
fn with_reference_data(p: &mut Pipeline) {
    use crate::import::{import_file, Kind};
    let providers = "provider;raison-sociale;siret;email;telephone;type;id-cram;code-convention;id-site\n\
        saad1;SAAD Un;73282932000074;contact@saad1.example;03 21 00 00 01;saad;03;C1;21999000\n\
        saad1;SAAD Un;73282932000074;contact@saad1.example;03 21 00 00 01;saad;03;C2;21999001\n";
    let beneficiaries = "id-cram;id-site;nir-per;nom-per;pn-per;rf-prstpap;dt-debut;dt-fin;mt-total;mt-consomme\n\
        03;21999000;1541299999000;Dupont;Pierre;PPP100;2021-01-01;2021-12-31;200;0\n\
        03;21999001;1551199999000;Dupond;Marie;PPP100;2021-01-01;2021-12-31;200;0\n";
    let now = p.clock.now();
    import_file(&mut p.conn, &p.cfg, Kind::Providers, "p.csv", providers.as_bytes(), now).unwrap();
    import_file(
        &mut p.conn,
        &p.cfg,
        Kind::Beneficiaries,
        "b.csv",
        beneficiaries.as_bytes(),
        now,
    )
    .unwrap();
}

/// A pipeline with the reference data, on 20 May 2021.
fn accepting(dir: &Path) -> Pipeline {
    let mut p = pipeline(dir);
    p.clock = at("2021-05-20T10:00:00+02:00");
    with_reference_data(&mut p);
    p
}

fn one<T: rusqlite::types::FromSql>(p: &Pipeline, sql: &str) -> T {
    p.conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Makes `outbound/<provider>/reports` unusable, even for root: a file
/// stands where the folder should be.
fn block_reports(p: &Pipeline, provider: &str) -> PathBuf {
    let reports = p.spool.outbound_of(provider).join("reports");
    if reports.is_dir() {
        fs::remove_dir_all(&reports).unwrap();
    }
    fs::create_dir_all(reports.parent().unwrap()).unwrap();
    fs::write(&reports, b"blocked").unwrap();
    reports
}

const NAME: &str = "03_150521_100_21999000.xml";

#[test]
fn the_payment_chains_file_is_delivered_once_whatever_fails_after_it() {
    let d = tempfile::tempdir().unwrap();
    let mut p = accepting(d.path());
    let blocked = block_reports(&p, "saad1");
    let path = drop_fixture(&p, "saad1", NAME);
    let id = p.take(&path, Channel::Depot).unwrap().unwrap();
    assert!(matches!(p.attempt(id), Attempt::Failed(_)));
    let outbox = p.spool.abs(&format!("outbox/03/{NAME}"));
    assert!(outbox.exists(), "the outbox file is written before the reports");
    // The payment chain takes it.
    fs::rename(&outbox, d.path().join("consumed.xml")).unwrap();
    // Failing passes, then the block is lifted.
    assert!(matches!(p.attempt(id), Attempt::Failed(_)));
    fs::remove_file(&blocked).unwrap();
    assert_eq!(p.recover(false).unwrap(), (1, 0));
    assert!(!outbox.exists(), "the outbox file came back");
    assert_eq!(one::<String>(&p, "SELECT state FROM received_files"), "done");
    assert_eq!(one::<i64>(&p, "SELECT COUNT(*) FROM history WHERE kind = 'outbox'"), 1);
    assert!(p
        .spool
        .outbound_of("saad1")
        .join("reports/03_150521_100_21999000.report.pdf")
        .exists());
    assert_eq!(one::<i64>(&p, "SELECT attempts FROM received_files"), 2);
}

#[test]
fn a_staged_outbox_file_is_renamed_once_after_an_interruption() {
    let d = tempfile::tempdir().unwrap();
    let mut p = accepting(d.path());
    block_reports(&p, "saad1");
    let path = drop_fixture(&p, "saad1", NAME);
    let id = p.take(&path, Channel::Depot).unwrap().unwrap();
    p.attempt(id);
    let outbox = p.spool.abs(&format!("outbox/03/{NAME}"));
    let bytes = fs::read(&outbox).unwrap();
    // As if the process had died after the staging commit, before the
    // rename: the staged copy is there, the delivery not recorded.
    let staged = p.spool.abs(&format!("outbox/03/{}9-9-{NAME}", fsutil::TEMP_PREFIX));
    fs::rename(&outbox, &staged).unwrap();
    let rel = p.spool.rel(&staged).unwrap();
    p.conn
        .execute(
            "UPDATE outputs SET done_at = NULL, staged_path = ?1 WHERE kind = 'outbox'",
            [&rel],
        )
        .unwrap();
    fs::remove_file(p.spool.outbound_of("saad1").join("reports")).unwrap();
    p.recover(true).unwrap();
    assert_eq!(
        fs::read(&outbox).unwrap(),
        bytes,
        "the staged file was renamed into place"
    );
    assert!(!staged.exists());
    // As if the process had died after the rename, before its commit, and
    // the payment chain had taken the file meanwhile: never written again.
    fs::remove_file(&outbox).unwrap();
    p.conn
        .execute(
            "UPDATE outputs SET done_at = NULL, staged_path = ?1 WHERE kind = 'outbox'",
            [&rel],
        )
        .unwrap();
    p.conn
        .execute("UPDATE received_files SET state = 'decided'", [])
        .unwrap();
    p.recover(true).unwrap();
    assert!(!outbox.exists(), "a renamed outbox file was written again");
    assert_eq!(
        one::<Option<String>>(&p, "SELECT staged_path FROM outputs WHERE kind = 'outbox'"),
        None
    );
    assert_eq!(one::<String>(&p, "SELECT state FROM received_files"), "done");
}

#[test]
fn a_file_failing_again_and_again_is_quarantined_then_retried() {
    let d = tempfile::tempdir().unwrap();
    let mut p = accepting(d.path());
    p.cfg.intake.max_attempts = 3;
    let blocked = block_reports(&p, "saad1");
    let path = drop_fixture(&p, "saad1", NAME);
    let id = p.take(&path, Channel::Depot).unwrap().unwrap();
    assert!(matches!(p.attempt(id), Attempt::Failed(_)));
    assert!(matches!(p.attempt(id), Attempt::Failed(_)));
    let a = p.attempt(id);
    assert!(matches!(&a, Attempt::Quarantined(e) if e.contains("reports")), "{a:?}");
    let f = ReceivedFile::get(&p.conn, id).unwrap();
    assert!(f.quarantined() && f.work_path.starts_with("quarantine/saad1/"), "{f:?}");
    assert!(p.spool.abs(&f.work_path).exists());
    assert!(
        fs::read_dir(p.spool.work_of("saad1")).unwrap().next().is_none(),
        "work/ still holds it"
    );
    // Rescans leave it alone.
    assert_eq!(p.recover(false).unwrap(), (0, 0));
    assert_eq!(ReceivedFile::get(&p.conn, id).unwrap().attempts, 3);
    assert_eq!(quarantine::quarantined(&p.conn).unwrap().len(), 1);
    // Nothing matches: nothing retried.
    assert!(quarantine::retry(&mut p.conn, Some("other.xml")).unwrap().is_empty());
    fs::remove_file(&blocked).unwrap();
    let back = quarantine::retry(&mut p.conn, Some(&format!("saad1/{NAME}"))).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(p.recover(false).unwrap(), (1, 0));
    let f = ReceivedFile::get(&p.conn, id).unwrap();
    assert_eq!((f.state, f.quarantined()), (FileState::Done, false));
    assert!(
        p.spool.abs(f.archive_path.as_deref().unwrap()).exists(),
        "archived from where it was resumed"
    );
    assert!(fs::read_dir(p.spool.root().join("quarantine/saad1"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn a_start_finding_a_file_in_flight_counts_an_interrupted_attempt() {
    let d = tempfile::tempdir().unwrap();
    let mut p = accepting(d.path());
    p.cfg.intake.max_attempts = 2;
    let blocked = block_reports(&p, "saad1");
    let path = drop_fixture(&p, "saad1", NAME);
    let id = p.take(&path, Channel::Depot).unwrap().unwrap();
    let other = drop_fixture(&p, "saad1", "03_160521_100_21999000.xml");
    let other = p.take(&other, Channel::Depot).unwrap().unwrap();
    // Two processes that die while handling it (the attempt never returns).
    let in_hand = p.spool.root().join("state/in-hand");
    fs::write(&in_hand, id.to_string()).unwrap();
    p.count_interrupted().unwrap();
    assert_eq!(ReceivedFile::get(&p.conn, id).unwrap().attempts, 1);
    assert_eq!(fs::read_to_string(&in_hand).unwrap(), "", "read once");
    p.count_interrupted().unwrap();
    assert_eq!(
        ReceivedFile::get(&p.conn, id).unwrap().attempts,
        1,
        "a start with nothing in hand counts nothing"
    );
    fs::write(&in_hand, id.to_string()).unwrap();
    p.count_interrupted().unwrap();
    assert_eq!(
        ReceivedFile::get(&p.conn, other).unwrap().attempts,
        0,
        "only the file in hand is counted"
    );
    let f = ReceivedFile::get(&p.conn, id).unwrap();
    assert!(f.quarantined(), "{f:?}");
    assert!(f.last_error.unwrap().contains("interrupted"));
    fs::remove_file(&blocked).unwrap();
    assert_eq!(p.recover(true).unwrap(), (1, 0), "only the other file is finished");
    assert!(
        ReceivedFile::get(&p.conn, id).unwrap().quarantined(),
        "a quarantined file is not retried at start"
    );
    assert_eq!(ReceivedFile::get(&p.conn, other).unwrap().state, FileState::Done);
}

#[test]
fn an_identical_file_gets_f09_alone_naming_the_first_and_its_report() {
    let d = tempfile::tempdir().unwrap();
    let mut p = accepting(d.path());
    let first = drop_fixture(&p, "saad1", NAME);
    let id1 = p.take(&first, Channel::Depot).unwrap().unwrap();
    assert_eq!(p.attempt(id1), Attempt::Finished(Verdict::Accepted));
    let again = drop_fixture(&p, "saad1", NAME);
    let id2 = p.take(&again, Channel::Depot).unwrap().unwrap();
    assert_eq!(p.attempt(id2), Attempt::Finished(Verdict::Rejected));
    assert_eq!(codes(&p, id2), ["F09"], "line codes against its own earlier acceptance");
    let message: String = p
        .conn
        .query_row("SELECT message FROM anomalies WHERE file_id = ?1", [id2], |r| r.get(0))
        .unwrap();
    assert!(
        message.contains(NAME) && message.contains("20/05/2021 à 10:00"),
        "{message}"
    );
    assert!(
        message.contains("/out/reports/03_150521_100_21999000.report.pdf"),
        "{message}"
    );
    let (lines, accepted): (i64, i64) = p
        .conn
        .query_row(
            "SELECT lines, accepted_lines FROM received_files WHERE id = ?1",
            [id2],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((lines, accepted), (2, 0));
    assert_eq!(one::<i64>(&p, "SELECT COUNT(*) FROM outputs WHERE kind = 'outbox'"), 1);
}
