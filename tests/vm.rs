//! lvm-snap against real LVM snapshots, in a VM (tests/vm/run.sh boots
//! Debian's kernel over this host's root, under software emulation here).
//! One boot per filesystem runs tests/vm/lvm-snap.sh: a backup of a live
//! MariaDB taken under the lock and restored on a second server, an
//! overflowing snapshot under s3-put, and the snapshot's life cycle. A
//! third boot kills lvcreate at every device-mapper change it makes.
//!
//! A machine that cannot boot the VM skips with a loud SKIPPED line, unless
//! MYSNAP_REQUIRE_VM=1 (CI sets it), when that is a failure.

use mysnap_tests::server::installed;
use mysnap_tests::vm::{can_run, run_checks, seed_datadir};

/// Runs lvm-snap.sh's `scenarios` (all but kills when empty) on `fs`,
/// expecting at least `checks` PASS lines.
fn scenarios_on(fs: &str, scenarios: &[&str], timeout: &str, checks: usize) {
    if !can_run() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let seed = seed_datadir(work.path());
    let s3s = installed("s3s-fs-0.14.1/bin/s3s-fs");
    let mut args = vec![fs.as_ref(), seed.as_os_str(), s3s.as_os_str()];
    args.extend(scenarios.iter().map(std::ffi::OsStr::new));
    run_checks(
        &["--disk", "3G", "--timeout", timeout],
        "lvm-snap.sh",
        &args,
        checks,
    );
}

#[test]
fn lvm_snap_on_ext4() {
    scenarios_on("ext4", &[], "900", 40);
}

#[test]
fn lvm_snap_on_xfs() {
    scenarios_on("xfs", &[], "900", 40);
}

/// lvcreate stopped at each of its 17 device-mapper changes (and once
/// after the last), and killed three ways there: 6 checks a kill, 4 for
/// the trace, the restores and the writer. About 13 minutes here.
#[test]
fn lvcreate_killed_at_every_device_mapper_change() {
    scenarios_on("xfs", &["kills"], "2700", 18 * 3 * 6 + 1 + 3 * 2 + 1);
}
