//! Cost of the `beneficiaires` listing at the size of the processing
//! benchmark: one provider with N plans (default 100 000) and one accepted
//! billing line per plan and per file, put there by the real import and
//! pipeline.
//!
//!     cargo bench --bench listing                # 100 000 plans, 1 file, 15 runs
//!     cargo bench --bench listing -- 10000 5     # N plans, RUNS runs
//!     cargo bench --bench listing -- 100000 15 6 # and FILES monthly files (N × FILES lines)
//!     KEEP=1 cargo bench --bench listing         # keep the state (its folder is printed)
//!     STATE=<folder> cargo bench --bench listing # measure a kept state again
//!
//! Prints the best and median wall time and thread CPU time of
//! `listing::beneficiaires::render` (both forms in memory, as the publisher
//! gets them) and of `write` into a sink (the reading and the formatting
//! only), with the sizes written.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use ppas_gateway::clock::Clock;
use ppas_gateway::config::Config;
use ppas_gateway::import::{import_file, Kind};
use ppas_gateway::listing::beneficiaires;
use ppas_gateway::pipeline::{Attempt, Channel, Pipeline};

const SURNAMES: [&str; 8] = [
    "Dupont", "Lefèvre", "Müller", "Château", "Garçon", "Martin", "Moreau", "Roux",
];
const FIRST: [&str; 7] = ["Zoé", "Hélène", "François", "Anaïs", "Noël", "Gérard", "Élodie"];
const SITE: &str = "21000001";

/// CPU time (user + system) of the calling thread.
fn thread_cpu() -> Duration {
    // SAFETY: rusage is plain data (all zeroes is a valid value), which
    // getrusage fills.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut u);
        u
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// A distinct, valid NIR for plan `i`.
fn nir(i: usize) -> String {
    format!("{}", 1_000_000_000_000u64 + (i as u64 * 7_919) % 8_000_000_000_000)
}

/// The billing file of month `month` (2026): one line per plan.
fn billing_file(n: usize, month: u32) -> (String, String) {
    let name = format!("03_{month:02}1126_100_{SITE}.xml");
    let last = chrono::NaiveDate::from_ymd_opt(2026, month + 1, 1).unwrap() - chrono::Days::new(1);
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<factbord>\n <rf-borfact>{}</rf-borfact>\n <log-fact>banc</log-fact>\n \
         <id-cram>03</id-cram>\n <id-site>{SITE}</id-site>\n <rf-prstpap>PPP100</rf-prstpap>\n",
        &name[..name.len() - 4]
    );
    let mut hundredths = 0u64;
    for i in 0..n {
        let q = 100 + ((i as u64 + u64::from(month)) % 2900);
        hundredths += q;
        let _ = write!(
            x,
            " <factprest>\n  <nir-per>{}</nir-per>\n  <nom-per>{}{}</nom-per>\n  <pn-per>{}</pn-per>\n  \
             <rf-prstpap>PPP100</rf-prstpap>\n  <id-prest>{SITE}</id-prest>\n  <dtd-interv>2026-{month:02}-01</dtd-interv>\n  \
             <dtf-interv>{last}</dtf-interv>\n  <nb-quant>{}.{:02}</nb-quant>\n  <mt-tu>1</mt-tu>\n  \
             <mt-total>0</mt-total>\n  <bo-regul>F</bo-regul>\n </factprest>\n",
            nir(i),
            SURNAMES[i % 8],
            i,
            FIRST[i % 7],
            q / 100,
            q % 100
        );
    }
    let _ = write!(
        x,
        " <nb-ligbor>{n}</nb-ligbor>\n <mt-totamd>{}.{:02}</mt-totamd>\n <mt-totprest>0</mt-totprest>\n</factbord>\n",
        hundredths / 100,
        hundredths % 100
    );
    (name, x)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not and
    // only checks that the benchmark still runs, on a small state.
    let benching = std::env::args().any(|a| a == "--bench");
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let arg = |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (n, runs) = if benching {
        (arg(0, 100_000), arg(1, 15).max(1))
    } else {
        (arg(0, 300), 1)
    };
    let files = arg(2, 1).clamp(1, 10);

    let tmp = tempfile::tempdir().expect("temporary folder");
    let (root, _cleanup) = match std::env::var_os("STATE") {
        // A state kept by an earlier run: measured as it is (under valgrind, say).
        Some(dir) => (std::path::PathBuf::from(dir), Some(tmp)),
        None => {
            let root = tmp.path().to_path_buf();
            let cleanup = if std::env::var("KEEP").is_ok_and(|v| v == "1") {
                eprintln!(
                    "state kept in {} (STATE=<that folder> measures it again)",
                    tmp.keep().display()
                );
                None
            } else {
                Some(tmp)
            };
            build_state(&root, n, files);
            (root, cleanup)
        }
    };
    let conn = ppas_gateway::store::open_existing(&root.join("spool/state/gateway.db")).expect("database");
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM plans", [], |r| r.get(0)).unwrap();
    let accepted: i64 = conn
        .query_row("SELECT COUNT(*) FROM accepted_lines", [], |r| r.get(0))
        .unwrap();

    let first = beneficiaires::render(&conn, "saadbench").expect("render");
    let mut rendered = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (t, c) = (Instant::now(), thread_cpu());
        let r = beneficiaires::render(&conn, "saadbench").expect("render");
        rendered.push((t.elapsed(), thread_cpu() - c));
        assert!(r == first, "the same state gives the same bytes");
    }
    let mut streamed = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (t, c) = (Instant::now(), thread_cpu());
        let plans = beneficiaires::write(&conn, "saadbench", &mut std::io::sink(), &mut std::io::sink()).unwrap();
        streamed.push((t.elapsed(), thread_cpu() - c));
        assert_eq!(plans as i64, n);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let stats = |v: &[(Duration, Duration)]| {
        let mut wall: Vec<Duration> = v.iter().map(|x| x.0).collect();
        let mut cpu: Vec<Duration> = v.iter().map(|x| x.1).collect();
        wall.sort();
        cpu.sort();
        format!(
            "wall best {:.1} ms, median {:.1} ms; CPU best {:.1} ms, median {:.1} ms",
            ms(wall[0]),
            ms(wall[wall.len() / 2]),
            ms(cpu[0]),
            ms(cpu[cpu.len() / 2])
        )
    };
    println!(
        "beneficiaires listing, {n} plans, {accepted} accepted lines, {runs} runs:\n  \
         render (CSV {:.1} MB + XML {:.1} MB in memory): {}\n  \
         write to a sink (reading + formatting):     {}",
        first.csv.len() as f64 / 1e6,
        first.xml.len() as f64 / 1e6,
        stats(&rendered),
        stats(&streamed)
    );
}

/// One provider with `n` plans (import), then `files` monthly billing files
/// of a line per plan (pipeline), every line accepted.
fn build_state(root: &std::path::Path, n: usize, files: usize) {
    let mut cfg = Config::default();
    cfg.paths.spool = root.join("spool");
    cfg.paths.database = root.join("spool/state/gateway.db");
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-20T10:00:00+01:00")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let mut p = Pipeline::open(cfg, Clock::Fixed(now)).expect("pipeline");

    let t = Instant::now();
    let providers = format!(
        "provider;raison-sociale;siret;email;telephone;type;id-cram;code-convention;id-site\n\
         saadbench;SAAD Banc d'essai;73282932000074;bench@saad.example;03 80 00 00 00;saad;03;{SITE};{SITE}\n"
    );
    let mut plans =
        String::from("id-cram;id-site;nir-per;nom-per;pn-per;rf-prstpap;dt-debut;dt-fin;mt-total;mt-consomme\n");
    for i in 0..n {
        let _ = writeln!(
            plans,
            "03;{SITE};{};{}{};{};PPP100;2026-01-01;2026-12-31;400;{},{:02}",
            nir(i),
            SURNAMES[i % 8],
            i,
            FIRST[i % 7],
            i % 40,
            i % 100
        );
    }
    import_file(&mut p.conn, &p.cfg, Kind::Providers, "p.csv", providers.as_bytes(), now).expect("providers");
    import_file(&mut p.conn, &p.cfg, Kind::Beneficiaries, "b.csv", plans.as_bytes(), now).expect("plans");
    let imported = t.elapsed();

    let t = Instant::now();
    let inbound = p.spool.inbound_of("saadbench");
    std::fs::create_dir_all(&inbound).unwrap();
    for month in 1..=files as u32 {
        let (name, body) = billing_file(n, month);
        let path = inbound.join(&name);
        std::fs::write(&path, body).unwrap();
        let a = p.process_file(&path, Channel::Depot).expect("process");
        assert!(matches!(a, Some(Attempt::Finished(_))), "{a:?}");
    }
    let accepted: i64 = p
        .conn
        .query_row("SELECT COUNT(*) FROM accepted_lines", [], |r| r.get(0))
        .unwrap();
    assert_eq!(accepted as usize, n * files, "every line accepted");
    eprintln!(
        "state: {n} plans imported in {} ms, {accepted} accepted lines ({files} files) processed in {} ms",
        imported.as_millis(),
        t.elapsed().as_millis()
    );
}
