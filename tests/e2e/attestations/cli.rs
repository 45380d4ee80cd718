//! `ppas-gateway check` on attestation files, as a user runs it: the kind
//! read from the root element, human and `--json` output, billing and
//! attestation files in one run, exit codes, `--config`, the clock from
//! `PPAS_GATEWAY_NOW`, encodings, hostile files, memory on a large file.
//!
//! Each run happens in an empty temporary directory, so no configuration
//! file of the working tree is picked up by accident.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use super::support::{check, doc, doc_with, dump, encode, Att, NOW};
use crate::check_support::{cp1252, latin1};
use crate::support::{bin, repo};

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/attestations").join(name)
}

fn billing(name: &str) -> PathBuf {
    repo().join("tests/fixtures/billing").join(name)
}

const OK: &str = "attvisites_ok.xml";
const PARTIAL: &str = "attvisites_partiel.xml";
const CP1252: &str = "attvisites_cp1252.xml";
const LATIN9: &str = "attvisites_latin9.xml";
const STRUCTURE: &str = "attvisites_structure.xml";
const DOCTYPE: &str = "attvisites_doctype.xml";
const UTF16: &str = "attvisites_utf16.xml";
const BILLING_OK: &str = "03_150521_100_21999000.xml";
const BILLING_PARTIAL: &str = "03_160521_100_21999000.xml";
/// The billing fixtures are named after 15 May 2021.
const BILLING_NOW: &str = "2021-05-15T10:00:00+02:00";

fn run_in(dir: &Path, now: &str, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env("PPAS_GATEWAY_NOW", now)
        .env_remove("RUST_LOG")
        .output()
        .expect("run ppas-gateway")
}

fn run(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    run_in(dir.path(), NOW, args)
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json_lines(o: &Output) -> Vec<Value> {
    let out = text(&o.stdout);
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\nstdout:\n{out}")))
        .collect()
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn anomaly_codes(v: &Value) -> Vec<String> {
    v["anomalies"]
        .as_array()
        .expect("anomalies array")
        .iter()
        .map(|a| a["code"].as_str().expect("code").to_string())
        .collect()
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().expect("object").keys().map(String::as_str).collect()
}

#[test]
fn json_of_an_accepted_attestation_file() {
    let o = run(&["check", "--json", p(&fixture(OK))]);
    assert_eq!(code(&o), 0, "stderr: {}", text(&o.stderr));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 1);
    let v = &lines[0];
    assert_eq!(
        keys(v),
        ["file", "kind", "verdict", "lines", "accepted_lines", "anomalies"]
    );
    assert_eq!(v["file"], OK);
    assert_eq!(v["kind"], "attestations");
    assert_eq!(v["verdict"], "accepted");
    assert_eq!((v["lines"].as_u64(), v["accepted_lines"].as_u64()), (Some(4), Some(4)));
    assert_eq!(v["anomalies"], Value::Array(vec![]));
}

#[test]
fn json_of_item_anomalies() {
    let o = run(&["check", "--json", p(&fixture(PARTIAL))]);
    assert_eq!(code(&o), 1, "partial exits 1; stderr: {}", text(&o.stderr));
    let v = &json_lines(&o)[0];
    assert_eq!(v["verdict"], "partial");
    assert_eq!((v["lines"].as_u64(), v["accepted_lines"].as_u64()), (Some(5), Some(1)));
    let got: Vec<(String, u64, u64, String)> = v["anomalies"]
        .as_array()
        .expect("anomalies")
        .iter()
        .map(|a| {
            assert_eq!(keys(a), ["code", "line", "xml_line", "field", "message"]);
            assert!(a["message"].as_str().is_some_and(|m| !m.trim().is_empty()));
            (
                a["code"].as_str().unwrap().to_string(),
                a["line"].as_u64().unwrap(),
                a["xml_line"].as_u64().unwrap(),
                a["field"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("A04", 2, 17, "dt-visite"),
        ("A05", 3, 19, "commentaire"),
        ("A04", 4, 33, "dt-visite"),
        ("A06", 4, 34, "commentaire"),
        ("A05", 5, 42, "motif"),
        ("A06", 5, 43, "commentaire"),
    ]
    .map(|(c, l, x, f)| (c.to_string(), l, x, f.to_string()));
    assert_eq!(got, want);
}

#[test]
fn every_fixture_gets_its_verdict_in_argument_order() {
    let files = [OK, PARTIAL, CP1252, LATIN9, STRUCTURE, DOCTYPE, UTF16];
    let paths: Vec<PathBuf> = files.iter().map(|f| fixture(f)).collect();
    let mut args = vec!["check", "--json"];
    args.extend(paths.iter().map(|x| p(x)));
    let o = run(&args);
    assert_eq!(code(&o), 1, "stderr: {}", text(&o.stderr));
    let lines = json_lines(&o);
    let got: Vec<(&str, &str, &str, Vec<String>)> = lines
        .iter()
        .map(|v| {
            (
                v["file"].as_str().unwrap(),
                v["kind"].as_str().unwrap(),
                v["verdict"].as_str().unwrap(),
                anomaly_codes(v),
            )
        })
        .collect();
    let s = |v: &[&str]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    assert_eq!(
        got,
        [
            (OK, "attestations", "accepted", s(&[])),
            (
                PARTIAL,
                "attestations",
                "partial",
                s(&["A04", "A05", "A04", "A06", "A05", "A06"])
            ),
            (CP1252, "attestations", "partial", s(&["A06"])),
            (LATIN9, "attestations", "partial", s(&["A06"])),
            (STRUCTURE, "attestations", "rejected", s(&["A01", "A01", "A01", "A04"])),
            (DOCTYPE, "attestations", "rejected", s(&["A01"])),
            (UTF16, "attestations", "accepted", s(&[])),
        ]
    );
    assert_eq!(lines[4]["accepted_lines"], 0);
    assert!(lines[4]["anomalies"][0]["line"].is_null(), "A01 is a file anomaly");
    assert!(lines[5]["anomalies"][0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("DOCTYPE")));
}

#[test]
fn binary_and_library_agree_on_every_fixture() {
    let dir = repo().join("tests/fixtures/attestations");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 7);
    for name in names {
        let path = dir.join(&name);
        let o = run(&["check", "--json", p(&path)]);
        let got = &json_lines(&o)[0];
        let bytes = std::fs::read(&path).expect("fixture");
        let mut want = check(&bytes);
        want.file = name.clone();
        assert_eq!(got, &want.to_json(), "{name}\n{}", dump(&want));
        let expect_code = if want.verdict.as_str() == "accepted" { 0 } else { 1 };
        assert_eq!(code(&o), expect_code, "{name}");
    }
}

#[test]
fn human_output_speaks_of_attestations() {
    let o = run(&["check", p(&fixture(PARTIAL)), p(&fixture(STRUCTURE))]);
    assert_eq!(code(&o), 1);
    let out = text(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "attvisites_partiel.xml : partiellement accepté — 5 attestation(s), 1 acceptée(s), 4 rejetée(s), 6 anomalie(s)"
    );
    assert!(
        lines[1].starts_with(
            "  A04 [attestation 2, ligne XML 17, <dt-visite>] Date de visite absente, invalide, antérieure à la commande ou future : "
        ),
        "{out}"
    );
    assert_eq!(
        lines[7],
        "attvisites_structure.xml : rejeté — 4 attestation(s), 0 acceptée(s), 4 rejetée(s), 4 anomalie(s)"
    );
    assert!(
        lines[8].starts_with("  A01 [ligne XML 8, <statut>] Fichier d'attestations mal formé ou non conforme : "),
        "{out}"
    );
}

#[test]
fn billing_and_attestation_files_in_one_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (b_ok, b_partial, a_ok) = (billing(BILLING_OK), billing(BILLING_PARTIAL), fixture(OK));
    // The billing fixtures' day, when the attestations' visits are in the
    // past too.
    let o = run_in(
        dir.path(),
        "2026-11-25T10:00:00+01:00",
        &["check", "--json", p(&b_partial), p(&a_ok)],
    );
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 2);
    assert_eq!(
        keys(&lines[0]),
        ["file", "verdict", "lines", "accepted_lines", "anomalies"],
        "a billing file's JSON is as it was"
    );
    assert_eq!(lines[0]["verdict"], "partial");
    assert_eq!(lines[1]["kind"], "attestations");
    // Both accepted: exit 0.
    let o = run_in(
        dir.path(),
        "2026-11-25T10:00:00+01:00",
        &["check", "--json", p(&a_ok), p(&b_ok), p(&fixture(UTF16))],
    );
    assert_eq!(code(&o), 0, "{}", text(&o.stdout));
}

#[test]
fn a_billing_file_reads_as_before() {
    // The report of the spec's partial example, byte for byte.
    let dir = tempfile::tempdir().expect("tempdir");
    let o = run_in(dir.path(), BILLING_NOW, &["check", p(&billing(BILLING_PARTIAL))]);
    assert_eq!(code(&o), 1);
    assert_eq!(
        text(&o.stdout),
        "03_160521_100_21999000.xml : partiellement accepté — 2 ligne(s), 1 acceptée(s), 1 rejetée(s), 1 anomalie(s)\n  \
         L06 [ligne 2, ligne XML 29, <nb-quant>] Quantité invalide : quantité 31 supérieure au maximum mensuel de 30 heures\n"
    );
    let o = run_in(
        dir.path(),
        BILLING_NOW,
        &["check", "--json", p(&billing(BILLING_PARTIAL))],
    );
    assert_eq!(
        text(&o.stdout),
        "{\"file\":\"03_160521_100_21999000.xml\",\"verdict\":\"partial\",\"lines\":2,\"accepted_lines\":1,\
         \"anomalies\":[{\"code\":\"L06\",\"line\":2,\"xml_line\":29,\"field\":\"nb-quant\",\
         \"message\":\"quantité 31 supérieure au maximum mensuel de 30 heures\"}]}\n"
    );
    // A root that is not attvisites, or no root at all: a billing file.
    for (content, code_wanted) in [
        (&b"<attvisite><statut>T</statut></attvisite>"[..], "F02"),
        (b"", "F01"),
        (b"<!-- rien -->", "F01"),
    ] {
        let f = dir.path().join("03_150521_100_21999000.xml");
        std::fs::write(&f, content).expect("write");
        let o = run_in(dir.path(), BILLING_NOW, &["check", "--json", p(&f)]);
        let v = &json_lines(&o)[0];
        assert!(v.get("kind").is_none(), "{v}");
        assert!(anomaly_codes(v).contains(&code_wanted.to_string()), "{v}");
    }
}

#[test]
fn the_kind_is_read_past_encodings_and_broken_content() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: Vec<(&str, Vec<u8>, &str, Vec<&str>)> = vec![
        // Latin-1 bytes in a file declared UTF-8, just after the root.
        (
            "latin1_as_utf8.xml",
            encode(&doc(&[Att::t().set("commentaire", "réalisée")]), latin1),
            "rejected",
            vec!["A01"],
        ),
        (
            "cp1252.xml",
            encode(
                &doc_with(
                    "<?xml version=\"1.0\" encoding=\"windows-1252\"?>",
                    &[Att::t().set("commentaire", "« fait » – 20 €")],
                    "\r\n",
                ),
                cp1252,
            ),
            "rejected",
            vec!["A06"],
        ),
        (
            "namespaced.xml",
            doc(&[Att::t()])
                .replace("<attvisites>", "<a:attvisites xmlns:a=\"urn:cnav\">")
                .replace("</attvisites>", "</a:attvisites>")
                .into_bytes(),
            "rejected",
            vec!["A01"],
        ),
        (
            "bom.xml",
            [b"\xEF\xBB\xBF".as_slice(), doc(&[Att::s("DECES")]).as_bytes()].concat(),
            "accepted",
            vec![],
        ),
        (
            "truncated.xml",
            doc(&[Att::t()]).as_bytes()[..200].to_vec(),
            "rejected",
            vec!["A01"],
        ),
    ];
    for (name, bytes, verdict, want) in cases {
        let f = dir.path().join(name);
        std::fs::write(&f, &bytes).expect("write");
        let o = run_in(dir.path(), NOW, &["check", "--json", p(&f)]);
        let v = &json_lines(&o)[0];
        assert_eq!(v["kind"], "attestations", "{name}: {v}");
        assert_eq!(v["verdict"], verdict, "{name}: {v}");
        assert_eq!(anomaly_codes(v), want, "{name}: {v}");
    }
}

#[test]
fn the_day_of_receipt_is_the_paris_day_of_ppas_gateway_now() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("a.xml");
    std::fs::write(
        &f,
        doc(&[
            Att::t().set("dt-visite", "2026-11-25"),
            Att::t().set("dt-visite", "25/11/2026"),
        ]),
    )
    .expect("write");
    // 24 November 23:30 UTC is already the 25th in Paris (UTC+1).
    let o = run_in(dir.path(), "2026-11-24T23:30:00Z", &["check", "--json", p(&f)]);
    assert_eq!(code(&o), 0, "{}", text(&o.stdout));
    // 22:30 UTC is still the 24th in Paris: both visits are tomorrow.
    let o = run_in(dir.path(), "2026-11-24T22:30:00Z", &["check", "--json", p(&f)]);
    assert_eq!(code(&o), 1);
    let v = &json_lines(&o)[0];
    assert_eq!(v["verdict"], "rejected");
    assert_eq!(anomaly_codes(v), ["A04", "A04"]);
    assert_eq!(v["anomalies"][1]["line"], 2);
}

#[test]
fn config_sets_the_size_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = fixture(OK);
    let size = std::fs::metadata(&f).expect("size").len();
    let cfg = dir.path().join("gw.toml");
    std::fs::write(&cfg, format!("[limits]\nmax_file_size = {}\n", size - 1)).expect("config");
    let o = run_in(dir.path(), NOW, &["check", "--json", "--config", p(&cfg), p(&f)]);
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    let v = &json_lines(&o)[0];
    assert_eq!(v["kind"], "attestations");
    assert_eq!(anomaly_codes(v), ["A01"]);
    assert_eq!((v["lines"].as_u64(), v["accepted_lines"].as_u64()), (Some(0), Some(0)));
    std::fs::write(&cfg, format!("[limits]\nmax_file_size = {size}\n")).expect("config");
    let o = run_in(dir.path(), NOW, &["check", "--json", "--config", p(&cfg), p(&f)]);
    assert_eq!(code(&o), 0, "the limit is inclusive: {}", text(&o.stdout));
}

#[test]
fn unreadable_files_exit_2_after_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("absent.xml");
    let o = run_in(dir.path(), NOW, &["check", "--json", p(&fixture(OK)), p(&missing)]);
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    assert_eq!(json_lines(&o).len(), 1, "the readable file is still reported");
    assert!(text(&o.stderr).contains("absent.xml"), "{}", text(&o.stderr));
    let sub = dir.path().join("dossier.xml");
    std::fs::create_dir(&sub).expect("mkdir");
    let o = run_in(dir.path(), NOW, &["check", p(&sub)]);
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
}

#[test]
fn check_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = run_in(dir.path(), NOW, &["check", p(&fixture(PARTIAL))]);
    assert_eq!(code(&o), 1);
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
    assert!(left.is_empty(), "check is stateless: it left {left:?}");
}

/// Peak resident memory (KiB) of `check --json FILE`: the child's own
/// `VmHWM`, read from `/proc` until it exits. (`wait4`'s `ru_maxrss` would
/// count the test process's memory too: a spawned child starts as a copy
/// of it, and Linux keeps that high-water mark across `exec`.)
fn peak_rss_kib(dir: &Path, file: &Path) -> (u64, String) {
    let mut child = Command::new(bin())
        .args(["check", "--json", p(file)])
        .current_dir(dir)
        .env("PPAS_GATEWAY_NOW", NOW)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let status = format!("/proc/{}/status", child.id());
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).expect("read stdout");
        out
    });
    let mut peak = 0;
    loop {
        let hwm = std::fs::read_to_string(&status).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        });
        peak = peak.max(hwm.unwrap_or(0));
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    (peak, reader.join().expect("reader"))
}

#[test]
fn memory_stays_flat_on_100_000_attestations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |n: usize| {
        let f = dir.path().join(format!("att_{n}.xml"));
        let item = Att::t()
            .set("commentaire", "Visite réalisée, salle de bain à adapter.")
            .render("\n");
        let mut s = String::with_capacity(item.len() * n + 200);
        s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<attvisites>\n");
        for _ in 0..n {
            s.push_str(&item);
        }
        s.push_str("</attvisites>\n");
        std::fs::write(&f, s).expect("write");
        f
    };
    let (small, large) = (write(1_000), write(100_000));
    let (rss_small, out) = peak_rss_kib(dir.path(), &small);
    assert!(out.contains("\"accepted_lines\":1000"), "{out}");
    let (rss_large, out) = peak_rss_kib(dir.path(), &large);
    assert!(out.contains("\"accepted_lines\":100000"), "{out}");
    let size_kib = std::fs::metadata(&large).expect("size").len() / 1024;
    println!("peak RSS: {rss_small} KiB (1 000 attestations), {rss_large} KiB (100 000, {size_kib} KiB of file)");
    assert!(
        rss_large.saturating_sub(rss_small) < 8 * 1024 && rss_large < 64 * 1024,
        "peak RSS {rss_small} KiB for 1 000 attestations, {rss_large} KiB for 100 000 ({size_kib} KiB of file)"
    );
}
