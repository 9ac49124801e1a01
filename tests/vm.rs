//! lvm-snap against real LVM snapshots, in a VM (tests/vm/run.sh boots
//! Debian's kernel over this host's root, under software emulation here).
//! One boot per filesystem runs tests/vm/lvm-snap.sh: a backup of a live
//! MariaDB taken under the lock and restored on a second server, an
//! overflowing snapshot under s3-put, and the snapshot's life cycle.
//!
//! A machine that cannot boot the VM skips with a loud SKIPPED line, unless
//! MYSNAP_REQUIRE_VM=1 (CI sets it), when that is a failure.

use mysnap_tests::server::installed;
use mysnap_tests::tool::bin_dir;
use std::path::{Path, PathBuf};
use std::process::Command;

fn vm_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vm")
}

/// Whether the VM can run here; if not, whether that fails the test.
fn can_run() -> bool {
    let check = Command::new(vm_dir().join("run.sh"))
        .arg("--check")
        .output()
        .expect("run tests/vm/run.sh --check");
    if check.status.success() {
        return true;
    }
    let reason = String::from_utf8_lossy(&check.stdout).trim().to_string();
    if std::env::var("MYSNAP_REQUIRE_VM").as_deref() == Ok("1") {
        panic!("the VM tests cannot run: {reason} (MYSNAP_REQUIRE_VM=1)");
    }
    // Both streams: cargo test shows stdout only for failures.
    let line = format!("SKIPPED: VM tests of lvm-snap: {reason}");
    eprintln!("{line}");
    println!("{line}");
    false
}

/// A fresh datadir made on the host, where it takes a second, not twenty.
fn seed_datadir(dir: &Path) -> PathBuf {
    // Two installs at once failed now and then: one at a time.
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let seed = dir.join("seed");
    let out = Command::new("mariadb-install-db")
        .args([
            "--user=root",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
            "--innodb-log-file-size=8M",
        ])
        .arg(format!("--datadir={}", seed.display()))
        .output()
        .expect("run mariadb-install-db (tests/setup.sh installs it)");
    assert!(
        out.status.success(),
        "mariadb-install-db: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    seed
}

fn scenarios_on(fs: &str) {
    if !can_run() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let seed = seed_datadir(work.path());
    let started = std::time::Instant::now();
    let out = Command::new(vm_dir().join("run.sh"))
        .args(["--disk", "3G", "--timeout", "900", "--", "env"])
        .arg(format!("MYSNAP_BIN_DIR={}", bin_dir().display()))
        .arg(vm_dir().join("lvm-snap.sh"))
        .arg(fs)
        .arg(&seed)
        .arg(installed("s3s-fs-0.14.1/bin/s3s-fs"))
        .output()
        .expect("run tests/vm/run.sh");
    let output = String::from_utf8_lossy(&out.stdout);
    let report = format!(
        "VM on {fs}, {:.0} s, {}:\n{output}{}",
        started.elapsed().as_secs_f64(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let passed = output.lines().filter(|l| l.starts_with("PASS ")).count();
    let failed: Vec<&str> = output.lines().filter(|l| l.starts_with("FAIL ")).collect();
    assert!(
        out.status.success() && failed.is_empty() && passed >= 40,
        "{report}\n{} passed; failed: {failed:#?}",
        passed
    );
    println!("{report}");
}

#[test]
fn lvm_snap_on_ext4() {
    scenarios_on("ext4");
}

#[test]
fn lvm_snap_on_xfs() {
    scenarios_on("xfs");
}
