//! The VM test bed (tests/vm/run.sh): whether this machine can boot it,
//! and a MariaDB datadir seed made on the host for the VM to use.
//!
//! A machine that cannot boot the VM skips with a loud SKIPPED line, unless
//! MYSNAP_REQUIRE_VM=1 (CI sets it), when that is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn vm_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vm")
}

/// Whether the VM can run here; if not, whether that fails the test.
pub fn can_run() -> bool {
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
    let line = format!("SKIPPED: VM test: {reason}");
    eprintln!("{line}");
    println!("{line}");
    false
}

/// A fresh datadir made on the host, where it takes a second, not twenty.
pub fn seed_datadir(dir: &Path) -> PathBuf {
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

/// Boots the VM with `options` (run.sh's), runs `script` (under tests/vm/)
/// with `args`, and asserts that it exited 0 with at least `min_passed`
/// PASS lines and no FAIL line. The built tools are on its PATH.
pub fn run_checks(options: &[&str], script: &str, args: &[&std::ffi::OsStr], min_passed: usize) {
    let started = std::time::Instant::now();
    let out = Command::new(vm_dir().join("run.sh"))
        .args(options)
        .args(["--", "env"])
        .arg(format!(
            "MYSNAP_BIN_DIR={}",
            crate::tool::bin_dir().display()
        ))
        .arg(vm_dir().join(script))
        .args(args)
        .output()
        .expect("run tests/vm/run.sh");
    let output = String::from_utf8_lossy(&out.stdout);
    let report = format!(
        "VM {options:?} {script}, {:.0} s, {}:\n{output}{}",
        started.elapsed().as_secs_f64(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let passed = output.lines().filter(|l| l.starts_with("PASS ")).count();
    let failed: Vec<&str> = output.lines().filter(|l| l.starts_with("FAIL ")).collect();
    assert!(
        out.status.success() && failed.is_empty() && passed >= min_passed,
        "{report}\n{passed} passed; failed: {failed:#?}"
    );
    println!("{report}");
}
