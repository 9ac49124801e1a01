//! The packaged systemd units end to end, in the VM with systemd as PID 1
//! (tests/vm/units.sh): the .deb installed, the nightly unit started by its
//! timer, a restore with mysnap-restore@, OnFailure=, and the backup killed
//! at each stage. Its own test binary, so that no other VM competes with
//! it for the CPUs while it times how soon writes go on after a kill.
//!
//! A machine that cannot boot the VM skips with a loud SKIPPED line, unless
//! MYSNAP_REQUIRE_VM=1 (CI sets it), when that is a failure.

use mysnap_tests::packages::deb;
use mysnap_tests::server::installed;
use mysnap_tests::vm::{can_run, run_checks, seed_datadir};

#[test]
fn the_package_s_units_back_up_restore_and_survive_kills_under_systemd() {
    if !can_run() {
        return;
    }
    let deb = deb();
    let work = tempfile::tempdir().unwrap();
    let seed = seed_datadir(work.path());
    let s3s = installed("s3s-fs-0.14.1/bin/s3s-fs");
    let args = [deb.as_os_str(), seed.as_os_str(), s3s.as_os_str()];
    // The checks of the package (one per tool installed), the backup,
    // the restore, OnFailure= and
    // the binlog archive's unit (10), a restore to a point in time by
    // mysnap-restore@ (2), one that finds the ioctl to hold
    // lvcreate at, and 6 for each of the 10 kill points.
    run_checks(
        &["--systemd", "--disk", "2G", "--timeout", "3000"],
        "units.sh",
        &args,
        119,
    );
}
