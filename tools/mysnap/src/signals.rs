//! Signals as events. A tool blocks the signals it handles first thing in
//! main (threads inherit the mask) and reads them from a signalfd, so it
//! acts on them where it is safe to: never between taking a resource and
//! recording it. Children start with an empty mask (child::spawn_command).

use crate::{Error, Exit, Result};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// Blocks `signals` for this thread and its future threads, and returns a
/// non-blocking signalfd that receives them. Call before any thread starts.
pub fn block(signals: &[Signal]) -> Result<SignalFd> {
    let mut mask = SigSet::empty();
    for &signal in signals {
        mask.add(signal);
    }
    mask.thread_block()
        .map_err(|e| Error::new(Exit::Software, format!("cannot block signals: {e}")))?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| Error::new(Exit::Software, format!("cannot create signalfd: {e}")))
}
