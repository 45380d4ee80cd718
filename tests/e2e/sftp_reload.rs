//! SIGHUP reaches the SFTP server of the real daemon: the signal sent to
//! `serve`, a limit lowered in the configuration file, and OpenSSH `sftp`
//! meets the new limit at its next upload; the log names the key.

use std::fs;

use crate::sftp_support::*;

#[test]
fn sighup_lowers_the_upload_limit_of_the_running_sftp_server() {
    let live = LiveServe::start("[limits]\nmax_file_size = 1000000\n");
    let put = |name: &str| {
        let local = live.root().join("upload.bin");
        fs::write(&local, vec![b'x'; 4096]).unwrap();
        live.sftp(&format!("put {} /in/{name}\n", local.display()))
    };
    let out = put("a.xml");
    assert!(out.status.success(), "4 KiB under a 1 MB limit: {}", text(&out));

    fs::write(
        &live.config,
        LiveServe::config_text(live.root(), "[limits]\nmax_file_size = 1000\n"),
    )
    .unwrap();
    live.signal(libc::SIGHUP);
    let reloaded = live.wait_line("SIGHUP: configuration reloaded");
    assert!(reloaded.contains("limits.max_file_size"), "{reloaded}");
    let out = put("b.xml");
    assert!(
        !out.status.success(),
        "4 KiB over the reloaded 1000-byte limit went through: {}",
        text(&out)
    );
    live.stop();
}
