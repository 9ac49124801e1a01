//! SIGINT, SIGTERM and SIGHUP, blocked at start-up (mysnap::signals) and
//! acted on at safe points: before the swap a signal stops the restore and
//! removes what it staged; during the swap and the start it waits, so DIR
//! is never half-replaced. Reading the archive wakes up for a signal too
//! (mysnap::restore::input::Interruptible).

use mysnap::signals::Signals;
use mysnap::Result;
use nix::sys::signal::Signal;
use std::sync::Arc;

/// Call first thing in main, before any thread starts.
pub fn block() -> Result<Arc<Signals>> {
    Signals::block(&[Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP], &[]).map(Arc::new)
}
