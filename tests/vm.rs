//! lvm-snap against real LVM snapshots, in a VM (tests/vm/run.sh boots
//! Debian's kernel over this host's root, under software emulation here).
//! One boot per filesystem runs tests/vm/lvm-snap.sh: a backup of a live
//! MariaDB taken under the lock and restored on a second server, an
//! overflowing snapshot under s3-put, and the snapshot's life cycle.
//!
//! A machine that cannot boot the VM skips with a loud SKIPPED line, unless
//! MYSNAP_REQUIRE_VM=1 (CI sets it), when that is a failure.

use mysnap_tests::server::installed;
use mysnap_tests::vm::{can_run, run_checks, seed_datadir};

fn scenarios_on(fs: &str) {
    if !can_run() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let seed = seed_datadir(work.path());
    let s3s = installed("s3s-fs-0.14.1/bin/s3s-fs");
    let args = [fs.as_ref(), seed.as_os_str(), s3s.as_os_str()];
    run_checks(
        &["--disk", "3G", "--timeout", "900"],
        "lvm-snap.sh",
        &args,
        40,
    );
}

#[test]
fn lvm_snap_on_ext4() {
    scenarios_on("ext4");
}

#[test]
fn lvm_snap_on_xfs() {
    scenarios_on("xfs");
}
