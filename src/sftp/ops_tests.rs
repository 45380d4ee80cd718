//! Unit tests of the SFTP operations on a temporary spool (no network).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use russh_sftp::protocol::{OpenFlags, StatusCode};

use super::Ops;
use crate::sftp::space::{Space, SpaceConfig, UploadLimits};
use crate::sftp::SftpEvents;

#[derive(Default)]
struct Recorder {
    uploads: Mutex<Vec<PathBuf>>,
    downloads: Mutex<Vec<(String, u64)>>,
}

impl SftpEvents for Recorder {
    fn upload_complete(&self, _provider: &str, path: &Path) {
        self.uploads.lock().unwrap().push(path.to_path_buf());
    }
    fn downloaded(&self, _login: &str, _provider: &str, rel_path: &str, bytes: u64) {
        self.downloads.lock().unwrap().push((rel_path.to_string(), bytes));
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    events: Arc<Recorder>,
    closing: Arc<AtomicBool>,
    limits: Arc<UploadLimits>,
    ops: Ops,
}

fn fixture(max_file_size: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let events = Arc::new(Recorder::default());
    let closing = Arc::new(AtomicBool::new(false));
    let limits = Arc::new(UploadLimits::new(max_file_size, true));
    let space = Space::open(
        SpaceConfig {
            spool: dir.path(),
            limits: limits.clone(),
            events: events.clone(),
            closing: closing.clone(),
        },
        "alice",
        "saad1",
    )
    .unwrap();
    Fixture {
        dir,
        events,
        closing,
        limits,
        ops: Ops::new(Arc::new(space)),
    }
}

impl Fixture {
    fn inbound(&self) -> PathBuf {
        self.dir.path().join("inbound/saad1")
    }
    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.inbound())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

const WRITE_NEW: OpenFlags = OpenFlags::WRITE.union(OpenFlags::CREATE).union(OpenFlags::TRUNCATE);

#[tokio::test]
async fn upload_is_renamed_on_close_and_announced() {
    let mut f = fixture(1 << 20);
    let h = f.ops.open("/in/a.xml", WRITE_NEW).await.unwrap();
    f.ops.write(&h, 0, Bytes::from_static(b"hel")).await.unwrap();
    f.ops.write(&h, 3, Bytes::from_static(b"lo")).await.unwrap();
    let names = f.names();
    assert_eq!(names.len(), 1);
    assert!(names[0].starts_with(".sftp-"), "{names:?}");
    let l = f.ops.opendir("/in").await.unwrap();
    assert_eq!(
        f.ops.readdir(&l).unwrap_err().code,
        StatusCode::Eof,
        "temp files are not listed"
    );
    assert_eq!(f.ops.fstat(&h).await.unwrap().size, Some(5));
    f.ops.close(&h).await.unwrap();
    assert_eq!(f.names(), vec!["a.xml"]);
    assert_eq!(fs::read(f.inbound().join("a.xml")).unwrap(), b"hello");
    assert_eq!(*f.events.uploads.lock().unwrap(), vec![f.inbound().join("a.xml")]);
}

#[tokio::test]
async fn writes_past_the_limit_are_refused_and_the_temp_removed() {
    let mut f = fixture(10);
    let h = f.ops.open("/in/a.xml", WRITE_NEW).await.unwrap();
    f.ops.write(&h, 0, Bytes::from_static(b"12345678")).await.unwrap();
    let e = f.ops.write(&h, 8, Bytes::from_static(b"9abc")).await.unwrap_err();
    assert_eq!(e.code, StatusCode::Failure);
    assert!(e.msg.contains("file too large"), "{e:?}");
    assert!(f.names().is_empty(), "temp removed at once: {:?}", f.names());
    assert!(f.ops.write(&h, 12, Bytes::from_static(b"x")).await.is_err());
    assert!(f.ops.close(&h).await.is_err(), "close reports the refusal");
    assert!(f.names().is_empty());
    assert!(f.events.uploads.lock().unwrap().is_empty());
}

#[tokio::test]
async fn session_end_discards_unfinished_uploads_and_reports_downloads() {
    let mut f = fixture(1 << 20);
    fs::write(f.dir.path().join("outbound/saad1/r.csv"), b"abcdef").unwrap();
    let up = f.ops.open("/in/a.xml", WRITE_NEW).await.unwrap();
    f.ops.write(&up, 0, Bytes::from_static(b"partial")).await.unwrap();
    let down = f.ops.open("/out/r.csv", OpenFlags::READ).await.unwrap();
    f.ops.read(1, &down, 0, 3).await.unwrap();
    f.ops.finish().await;
    assert!(f.names().is_empty());
    assert!(f.events.uploads.lock().unwrap().is_empty());
    assert_eq!(*f.events.downloads.lock().unwrap(), vec![("r.csv".to_string(), 3)]);
}

#[tokio::test]
async fn reads_answer_whole_data_packets_then_eof() {
    let mut f = fixture(1 << 20);
    fs::create_dir_all(f.dir.path().join("outbound/saad1/reports")).unwrap();
    fs::write(f.dir.path().join("outbound/saad1/reports/r.pdf"), b"%PDF-1.7").unwrap();
    let h = f.ops.open("/out/reports/r.pdf", OpenFlags::READ).await.unwrap();
    let p = f.ops.read(7, &h, 0, 100).await.unwrap();
    assert_eq!(&p[0..4], &(9u32 + 8).to_be_bytes(), "length");
    assert_eq!(p[4], 103, "SSH_FXP_DATA");
    assert_eq!(&p[5..9], &7u32.to_be_bytes(), "request id");
    assert_eq!(&p[9..13], &8u32.to_be_bytes(), "data length");
    assert_eq!(&p[13..], b"%PDF-1.7");
    assert_eq!(f.ops.read(8, &h, 8, 100).await.unwrap_err().code, StatusCode::Eof);
    assert!(
        f.ops.write(&h, 0, Bytes::from_static(b"x")).await.is_err(),
        "read-only handle"
    );
    f.ops.close(&h).await.unwrap();
    assert_eq!(
        *f.events.downloads.lock().unwrap(),
        vec![("reports/r.pdf".to_string(), 8)]
    );
}

#[tokio::test]
async fn resume_without_truncate_keeps_what_is_there() {
    let mut f = fixture(1 << 20);
    fs::write(f.inbound().join("x.xml"), b"abc").unwrap();
    let e = f
        .ops
        .open("/in/x.xml", WRITE_NEW.union(OpenFlags::EXCLUDE))
        .await
        .unwrap_err();
    assert_eq!(e.msg, "file exists");
    let h = f.ops.open("/in/x.xml", OpenFlags::WRITE).await.unwrap();
    f.ops.write(&h, 3, Bytes::from_static(b"def")).await.unwrap();
    f.ops.close(&h).await.unwrap();
    assert_eq!(fs::read(f.inbound().join("x.xml")).unwrap(), b"abcdef");
    let h = f
        .ops
        .open("/in/x.xml", OpenFlags::WRITE.union(OpenFlags::APPEND))
        .await
        .unwrap();
    f.ops.write(&h, 0, Bytes::from_static(b"g")).await.unwrap();
    f.ops.close(&h).await.unwrap();
    assert_eq!(fs::read(f.inbound().join("x.xml")).unwrap(), b"abcdefg");
    let e = f.ops.open("/in/none.xml", OpenFlags::WRITE).await.unwrap_err();
    assert_eq!(e.code, StatusCode::NoSuchFile, "no CREATE, no file");
}

#[tokio::test]
async fn renames_stay_in_in_and_plain_rename_never_overwrites() {
    let f = fixture(1 << 20);
    fs::write(f.inbound().join("a.xml.filepart"), b"a").unwrap();
    fs::write(f.inbound().join("b.xml"), b"b").unwrap();
    let e = f
        .ops
        .rename("/in/a.xml.filepart", "/in/b.xml", false)
        .await
        .unwrap_err();
    assert_eq!(e.msg, "file exists");
    f.ops.rename("/in/a.xml.filepart", "/in/a.xml", false).await.unwrap();
    f.ops.rename("/in/a.xml", "/in/b.xml", true).await.unwrap();
    assert_eq!(f.names(), vec!["b.xml"]);
    assert_eq!(fs::read(f.inbound().join("b.xml")).unwrap(), b"a");
    assert_eq!(
        f.ops.rename("/in/b.xml", "/out/b.xml", true).await.unwrap_err().code,
        StatusCode::PermissionDenied
    );
    let announced = f.events.uploads.lock().unwrap().clone();
    assert_eq!(announced, vec![f.inbound().join("a.xml"), f.inbound().join("b.xml")]);
}

#[tokio::test]
async fn nothing_is_renamed_into_place_once_the_server_is_closing() {
    let mut f = fixture(1 << 20);
    let h = f.ops.open("/in/a.xml", WRITE_NEW).await.unwrap();
    f.ops.write(&h, 0, Bytes::from_static(b"data")).await.unwrap();
    f.closing.store(true, Ordering::SeqCst);
    assert!(f.ops.close(&h).await.is_err());
    assert!(f.names().is_empty(), "{:?}", f.names());
    assert!(f.events.uploads.lock().unwrap().is_empty());
}

#[tokio::test]
async fn handles_are_limited_and_unknown_ones_refused() {
    let mut f = fixture(1 << 20);
    let mut hs = Vec::new();
    for _ in 0..super::MAX_HANDLES {
        hs.push(f.ops.opendir("/").await.unwrap());
    }
    assert!(f.ops.opendir("/").await.is_err());
    f.ops.close(&hs[0]).await.unwrap();
    assert!(f.ops.opendir("/").await.is_ok());
    assert!(f.ops.close("nope").await.is_err());
    assert!(f.ops.read(1, "nope", 0, 1).await.is_err());
}

/// Names of a folder's listing (one batch).
async fn listed(ops: &mut Ops, path: &str) -> Vec<String> {
    let h = ops.opendir(path).await.unwrap();
    ops.readdir(&h).unwrap().into_iter().map(|e| e.filename).collect()
}

#[tokio::test]
async fn the_gateway_temporary_files_are_not_part_of_the_tree() {
    let mut f = fixture(1 << 20);
    let reports = f.dir.path().join("outbound/saad1/reports");
    fs::create_dir_all(&reports).unwrap();
    fs::write(reports.join("a.report.pdf"), b"%PDF").unwrap();
    fs::write(reports.join(".ppas-tmp-42-1-0001-b.report.pdf"), b"%PD").unwrap();
    fs::create_dir_all(f.dir.path().join("outbound/saad1/.ppas-tmp-dir")).unwrap();
    fs::write(f.inbound().join(".ppas-tmp-42-2-0002-c.xml"), b"<").unwrap();
    fs::write(f.inbound().join(".sftp-0123456789abcdef"), b"<").unwrap();
    fs::write(f.inbound().join("d.xml"), b"<d/>").unwrap();
    assert_eq!(listed(&mut f.ops, "/out/reports").await, ["a.report.pdf"]);
    assert_eq!(listed(&mut f.ops, "/out").await, ["reports"]);
    assert_eq!(listed(&mut f.ops, "/in").await, ["d.xml"]);
    for path in [
        "/out/reports/.ppas-tmp-42-1-0001-b.report.pdf",
        "/in/.ppas-tmp-42-2-0002-c.xml",
    ] {
        assert_eq!(
            f.ops.stat(path).await.unwrap_err().code,
            StatusCode::NoSuchFile,
            "{path}"
        );
        let e = f.ops.open(path, OpenFlags::READ).await.unwrap_err();
        assert_eq!(e.code, StatusCode::NoSuchFile, "{path}");
    }
    assert!(f.ops.opendir("/out/.ppas-tmp-dir").await.is_err());
    // Nor can a provider make one.
    assert!(f.ops.open("/in/.ppas-tmp-1-1-x.xml", WRITE_NEW).await.is_err());
}

#[tokio::test]
async fn upload_limits_changed_apply_to_the_next_upload() {
    let mut f = fixture(10);
    let before = f.ops.open("/in/a.xml", WRITE_NEW).await.unwrap();
    f.limits.set(4, false);
    let after = f.ops.open("/in/b.xml", WRITE_NEW).await.unwrap();
    f.ops.write(&before, 0, Bytes::from_static(b"12345678")).await.unwrap();
    f.ops.close(&before).await.unwrap();
    let e = f.ops.write(&after, 0, Bytes::from_static(b"12345")).await.unwrap_err();
    assert!(e.msg.contains("the limit is 4 bytes"), "{e:?}");
    assert_eq!(f.names(), vec!["a.xml"]);
}
