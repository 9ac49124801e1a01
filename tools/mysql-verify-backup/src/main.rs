//! mysql-verify-backup: a test restore. The newest complete backup under
//! a prefix (or one KEY) is streamed as s3-get streams it, unpacked and
//! verified as mysql-restore-dir unpacks it, into a scratch directory; a
//! throwaway server with no network starts on it and every table is
//! checked. The result goes beside the backup (KEY.verified) and into
//! Prometheus metrics. No live server is touched.

mod checks;
mod options;
mod record;
mod verify;

use mysnap::signals::Signals;
use nix::sys::signal::Signal;
use std::sync::Arc;

fn main() {
    mysnap::logging::init();
    // Blocked before any thread starts, so that every thread inherits it.
    let signals = Signals::block(&[Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP], &[]);
    mysnap::logging::exit(signals.and_then(|signals| {
        options::cli()
            .parse()
            .and_then(|args| options::Options::from_args(&args))
            .and_then(|options| verify::run(&options, Arc::new(signals)))
    }));
}
