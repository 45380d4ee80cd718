//! `ppas-gateway check` as a user runs it: human and `--json` output,
//! several files, exit codes (0 all accepted, 1 any partial or rejected,
//! 2 usage or I/O error), `--config`, the clock from `PPAS_GATEWAY_NOW`,
//! missing files, directories, empty files and binary garbage.
//!
//! Each run happens in an empty temporary directory, so no configuration
//! file of the working tree is picked up by accident.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::check_support::{dump, Bill, NOW};
use crate::support::{bin, repo};

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/billing").join(name)
}

const VALID: &str = "03_150521_100_21999000.xml";
const PARTIAL: &str = "03_160521_100_21999000.xml";
const LATIN1_119: &str = "04_150521_119_21999002.xml";
const FIVE: &str = "03_150521_100_21999003.xml";
const CP1252_CRLF: &str = "03_150521_100_21999004.xml";
const DOCTYPE: &str = "03_150521_100_21999005.xml";

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

/// stdout as JSON lines; every line must be one JSON object.
fn json_lines(o: &Output) -> Vec<Value> {
    let out = text(&o.stdout);
    out.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\nstdout:\n{out}"));
            assert!(v.is_object(), "{l}");
            v
        })
        .collect()
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn anomaly_codes(v: &Value) -> Vec<String> {
    let mut c: Vec<String> = v["anomalies"]
        .as_array()
        .expect("anomalies array")
        .iter()
        .map(|a| a["code"].as_str().expect("code").to_string())
        .collect();
    c.sort();
    c
}

#[test]
fn json_shape_of_an_accepted_file() {
    let f = fixture(VALID);
    let o = run(&["check", "--json", p(&f)]);
    assert_eq!(code(&o), 0, "stderr: {}", text(&o.stderr));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 1);
    let v = &lines[0];
    let mut keys: Vec<&str> = v.as_object().expect("object").keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["accepted_lines", "anomalies", "file", "lines", "verdict"]);
    assert_eq!(v["file"], VALID, "the file name, without its folder");
    assert_eq!(v["verdict"], "accepted");
    assert_eq!(v["lines"], 2);
    assert_eq!(v["accepted_lines"], 2);
    assert_eq!(v["anomalies"], Value::Array(vec![]));
}

#[test]
fn json_shape_of_anomalies() {
    let o = run(&["check", "--json", p(&fixture(PARTIAL))]);
    assert_eq!(code(&o), 1, "partial exits 1; stderr: {}", text(&o.stderr));
    let v = &json_lines(&o)[0];
    assert_eq!(v["verdict"], "partial");
    assert_eq!((v["lines"].as_u64(), v["accepted_lines"].as_u64()), (Some(2), Some(1)));
    let a = &v["anomalies"][0];
    let mut keys: Vec<&str> = a.as_object().expect("object").keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["code", "field", "line", "message", "xml_line"]);
    assert_eq!(a["code"], "L06");
    assert_eq!(a["line"], 2);
    assert_eq!(a["xml_line"], 29);
    assert_eq!(a["field"], "nb-quant");
    assert!(a["message"].as_str().is_some_and(|m| !m.trim().is_empty()));
}

#[test]
fn several_files_one_json_line_each_in_argument_order() {
    let files = [VALID, PARTIAL, LATIN1_119, FIVE, CP1252_CRLF, DOCTYPE];
    let paths: Vec<PathBuf> = files.iter().map(|f| fixture(f)).collect();
    let mut args = vec!["check", "--json"];
    args.extend(paths.iter().map(|x| p(x)));
    let o = run(&args);
    assert_eq!(code(&o), 1, "stderr: {}", text(&o.stderr));
    let lines = json_lines(&o);
    let got: Vec<(&str, &str)> = lines
        .iter()
        .map(|v| (v["file"].as_str().unwrap_or("?"), v["verdict"].as_str().unwrap_or("?")))
        .collect();
    assert_eq!(
        got,
        [
            (VALID, "accepted"),
            (PARTIAL, "partial"),
            (LATIN1_119, "accepted"),
            (FIVE, "rejected"),
            (CP1252_CRLF, "accepted"),
            (DOCTYPE, "rejected"),
        ]
    );
    assert_eq!(anomaly_codes(&lines[3]), ["F08", "L02", "L06", "L09", "L10"]);
    assert_eq!(lines[3]["accepted_lines"], 0);
    let f01: Vec<String> = anomaly_codes(&lines[5]).into_iter().filter(|c| c == "F01").collect();
    assert!(!f01.is_empty(), "{}", lines[5]);
}

#[test]
fn binary_and_library_agree_on_every_fixture() {
    let dir = repo().join("tests/fixtures/billing");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let o = run(&["check", "--json", p(&path)]);
        let got = &json_lines(&o)[0];
        let bytes = std::fs::read(&path).expect("fixture");
        let want = crate::check_support::check_named(&name, &bytes);
        assert_eq!(got, &want.to_json(), "{name}\n{}", dump(&want));
        let expect_code = if want.verdict.as_str() == "accepted" { 0 } else { 1 };
        assert_eq!(code(&o), expect_code, "{name}");
    }
}

#[test]
fn all_accepted_exits_0() {
    let o = run(&[
        "check",
        "--json",
        p(&fixture(VALID)),
        p(&fixture(LATIN1_119)),
        p(&fixture(CP1252_CRLF)),
    ]);
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));
    assert_eq!(json_lines(&o).len(), 3);
}

#[test]
fn human_output_is_the_default() {
    let o = run(&["check", p(&fixture(VALID))]);
    assert_eq!(code(&o), 0);
    let out = text(&o.stdout);
    assert!(out.contains(VALID), "{out}");
    assert!(!out.trim_start().starts_with('{'), "not JSON by default: {out}");
    assert!(out.to_lowercase().contains("accept"), "verdict in French: {out}");

    let o = run(&["check", p(&fixture(FIVE)), p(&fixture(PARTIAL))]);
    assert_eq!(code(&o), 1);
    let out = text(&o.stdout);
    for needle in [
        FIVE, PARTIAL, "F08", "L02", "L06", "L09", "L10", "nir-per", "nb-quant", "bo-regul",
    ] {
        assert!(out.contains(needle), "{needle} missing from:\n{out}");
    }
    let low = out.to_lowercase();
    assert!(low.contains("rejet"), "{out}");
    assert!(low.contains("partiel"), "{out}");
}

#[test]
fn missing_file_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("03_150521_100_29999999.xml");
    let o = run_in(dir.path(), NOW, &["check", "--json", p(&missing)]);
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("03_150521_100_29999999.xml"),
        "the error names the file: {}",
        text(&o.stderr)
    );
    // Along with good files, the I/O error still wins.
    let o = run_in(dir.path(), NOW, &["check", "--json", p(&fixture(VALID)), p(&missing)]);
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
}

#[test]
fn a_directory_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sub = dir.path().join("03_150521_100_21999000.xml");
    std::fs::create_dir(&sub).expect("mkdir");
    let o = run_in(dir.path(), NOW, &["check", "--json", p(&sub)]);
    assert_eq!(code(&o), 2, "stdout: {} stderr: {}", text(&o.stdout), text(&o.stderr));
}

#[test]
fn empty_file_and_binary_garbage_are_rejected_f01() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("03_150521_100_21999000.xml");
    std::fs::write(&empty, b"").expect("write");
    let garbage_dir = dir.path().join("g");
    std::fs::create_dir(&garbage_dir).expect("mkdir");
    let garbage = garbage_dir.join("03_150521_100_21999000.xml");
    let bytes: Vec<u8> = (0..65536u32)
        .map(|i| (i.wrapping_mul(0x9E37_79B9) >> 11) as u8)
        .collect();
    std::fs::write(&garbage, &bytes).expect("write");
    let o = run_in(dir.path(), NOW, &["check", "--json", p(&empty), p(&garbage)]);
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 2);
    for v in &lines {
        assert_eq!(v["verdict"], "rejected");
        assert_eq!(v["lines"], 0);
        assert_eq!(v["accepted_lines"], 0);
        assert!(anomaly_codes(v).contains(&"F01".to_string()), "{v}");
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["check"],
        vec!["check", "--json"],
        vec!["check", "--jsn", "x.xml"],
        vec!["chek", "x.xml"],
    ] {
        let o = run(&args);
        assert_eq!(code(&o), 2, "{args:?}: {}", text(&o.stderr));
        assert!(
            o.stdout.is_empty() || !text(&o.stdout).trim_start().starts_with('{'),
            "{args:?}"
        );
    }
}

#[test]
fn config_sets_the_size_limit_and_the_prestation_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = fixture(VALID);
    let size = std::fs::metadata(&f).expect("size").len();
    let cfg = dir.path().join("gw.toml");
    std::fs::write(&cfg, format!("[limits]\nmax_file_size = {}\n", size - 1)).expect("config");
    let o = run_in(dir.path(), NOW, &["check", "--json", "--config", p(&cfg), p(&f)]);
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    let v = &json_lines(&o)[0];
    assert!(anomaly_codes(v).contains(&"F11".to_string()), "{v}");
    assert_eq!(v["verdict"], "rejected");

    std::fs::write(&cfg, format!("[limits]\nmax_file_size = {size}\n")).expect("config");
    let o = run_in(dir.path(), NOW, &["--config", p(&cfg), "check", "--json", p(&f)]);
    assert_eq!(code(&o), 0, "the limit is inclusive: {}", text(&o.stdout));

    // A table without PPP119: the PPP119 fixture's header is unknown (F07).
    std::fs::write(&cfg, "[billing.prestations]\nPPP100 = 30\n").expect("config");
    let o = run_in(
        dir.path(),
        NOW,
        &["check", "--json", "--config", p(&cfg), p(&fixture(LATIN1_119))],
    );
    assert_eq!(code(&o), 1);
    assert!(anomaly_codes(&json_lines(&o)[0]).contains(&"F07".to_string()));
}

#[test]
fn config_errors_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = fixture(VALID);
    let missing = dir.path().join("absent.toml");
    let o = run_in(dir.path(), NOW, &["check", "--config", p(&missing), p(&f)]);
    assert_eq!(code(&o), 2, "an explicit configuration must exist");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[limits]\nmax_file_size = \"beaucoup\"\n").expect("config");
    let o = run_in(dir.path(), NOW, &["check", "--config", p(&bad), p(&f)]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("bad.toml"), "{}", text(&o.stderr));
}

#[test]
fn the_day_of_receipt_is_the_paris_day_of_ppas_gateway_now() {
    // One line ending on 1 April 2021.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = Bill::example();
    b.header("rf-borfact", "03_010421_100_21999000");
    b.set(2, "dtd-interv", "2021-04-01").set(2, "dtf-interv", "2021-04-01");
    let f = dir.path().join(b.name());
    std::fs::write(&f, b.render()).expect("write");
    // 31 March 22:30 UTC is already 1 April in Paris (UTC+2).
    let o = run_in(dir.path(), "2021-03-31T22:30:00Z", &["check", "--json", p(&f)]);
    assert_eq!(code(&o), 0, "{}", text(&o.stdout));
    // 31 March 21:30 UTC is still 31 March in Paris: the line ends tomorrow.
    let o = run_in(dir.path(), "2021-03-31T21:30:00Z", &["check", "--json", p(&f)]);
    assert_eq!(code(&o), 1);
    let v = &json_lines(&o)[0];
    assert_eq!(v["verdict"], "partial");
    assert_eq!(v["anomalies"][0]["code"], "L03");
    assert_eq!(v["anomalies"][0]["line"], 2);
    // An unreadable clock is a usage error.
    let o = run_in(dir.path(), "demain", &["check", "--json", p(&f)]);
    assert_eq!(code(&o), 2);
}

#[test]
fn names_are_checked_on_the_file_name_not_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nested = dir.path().join("a.b/03_150521_100_21999000.d");
    std::fs::create_dir_all(&nested).expect("mkdir");
    let f = nested.join(VALID);
    std::fs::copy(fixture(VALID), &f).expect("copy");
    let o = run_in(dir.path(), NOW, &["check", "--json", p(&f)]);
    assert_eq!(code(&o), 0, "{}", text(&o.stdout));
    assert_eq!(json_lines(&o)[0]["file"], VALID);
    // A relative path from the working directory.
    let o = run_in(
        dir.path(),
        NOW,
        &[
            "check",
            "--json",
            "a.b/03_150521_100_21999000.d/03_150521_100_21999000.xml",
        ],
    );
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    // Renamed: the name no longer matches rf-borfact.
    let g = dir.path().join("03_150521_100_21999009.XML");
    std::fs::copy(fixture(VALID), &g).expect("copy");
    let o = run_in(dir.path(), NOW, &["check", "--json", p(&g)]);
    assert_eq!(code(&o), 1);
    let c = anomaly_codes(&json_lines(&o)[0]);
    assert!(!c.is_empty() && c.iter().all(|c| c == "F04"), "{c:?}");
}

#[test]
fn many_files_in_one_run() {
    let f = fixture(VALID);
    let mut args = vec!["check", "--json"];
    for _ in 0..200 {
        args.push(p(&f));
    }
    let o = run(&args);
    assert_eq!(code(&o), 0);
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 200);
    assert!(lines.iter().all(|v| v["verdict"] == "accepted"));
}

#[test]
fn no_database_or_spool_is_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = run_in(dir.path(), NOW, &["check", "--json", p(&fixture(PARTIAL))]);
    assert_eq!(code(&o), 1);
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
    assert!(left.is_empty(), "check is stateless: it left {left:?}");
}
