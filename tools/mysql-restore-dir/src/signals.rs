//! SIGINT, SIGTERM and SIGHUP, blocked at start-up (mysnap::signals) and
//! acted on at safe points: before the swap a signal stops the restore and
//! removes what it staged; during the swap and the start it waits, so DIR
//! is never half-replaced. Reading the archive wakes up for a signal too,
//! so a stalled stream cannot keep a restore from stopping.

use mysnap::signals::Signals;
use mysnap::Result;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::sync::Arc;

/// Call first thing in main, before any thread starts.
pub fn block() -> Result<Arc<Signals>> {
    Signals::block(&[Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP], &[]).map(Arc::new)
}

/// A pipe or file that stops reading when a signal arrives.
pub struct Interruptible {
    pub file: File,
    pub signals: Arc<Signals>,
}

impl Read for Interruptible {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(signal) = self.signals.stopped() {
                return Err(io::Error::other(format!("interrupted by {signal}")));
            }
            let mut fds = [
                PollFd::new(self.file.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.signals.fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
                Ok(_) => {}
            }
            let input_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
            if input_ready {
                return self.file.read(buf);
            }
        }
    }
}
