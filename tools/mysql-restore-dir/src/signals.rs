//! SIGINT, SIGTERM and SIGHUP, blocked at start-up and polled at safe
//! points: before the swap a signal stops the restore and removes what it
//! staged; during the swap it waits, so DIR is never half-replaced.

use mysnap::{Error, Result};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;

pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// Call first thing in main, before any thread starts.
    pub fn block() -> Result<Signals> {
        let fd = mysnap::signals::block(&[Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP])?;
        Ok(Signals { fd })
    }

    /// Fails with 128 + the signal's number when one has arrived.
    pub fn check(&self) -> Result<()> {
        match self.fd.read_signal() {
            Ok(Some(info)) => {
                let name = Signal::try_from(info.ssi_signo as i32)
                    .map(|s| s.as_str())
                    .unwrap_or("a signal");
                Err(Error::with_status(
                    128 + info.ssi_signo as i32,
                    format!("stopped by {name}"),
                ))
            }
            _ => Ok(()),
        }
    }
}
