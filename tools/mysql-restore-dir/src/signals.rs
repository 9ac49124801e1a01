//! SIGINT, SIGTERM and SIGHUP, blocked at start-up and acted on at safe
//! points: before the swap a signal stops the restore and removes what it
//! staged; during the swap and the start it waits, so DIR is never
//! half-replaced. Reading the archive wakes up for a signal too, so a
//! stalled stream cannot keep a restore from stopping.

use mysnap::{Error, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

pub struct Signals {
    fd: SignalFd,
    /// A signal read by the archive reader's thread, for `check` to report.
    caught: AtomicI32,
}

impl Signals {
    /// Call first thing in main, before any thread starts.
    pub fn block() -> Result<Arc<Signals>> {
        let fd = mysnap::signals::block(&[Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP])?;
        Ok(Arc::new(Signals {
            fd,
            caught: AtomicI32::new(0),
        }))
    }

    /// The signal that arrived, if one has.
    fn arrived(&self) -> Option<i32> {
        if let Ok(Some(info)) = self.fd.read_signal() {
            self.caught.store(info.ssi_signo as i32, Ordering::SeqCst);
        }
        Some(self.caught.load(Ordering::SeqCst)).filter(|&s| s != 0)
    }

    /// Fails with 128 + the signal's number when one has arrived.
    pub fn check(&self) -> Result<()> {
        match self.arrived() {
            Some(signo) => Err(Error::with_status(
                128 + signo,
                format!("stopped by {}", name(signo)),
            )),
            None => Ok(()),
        }
    }
}

fn name(signo: i32) -> &'static str {
    Signal::try_from(signo).map_or("a signal", |s| s.as_str())
}

/// A pipe or file that stops reading when a signal arrives.
pub struct Interruptible {
    pub file: File,
    pub signals: Arc<Signals>,
}

impl Read for Interruptible {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(signo) = self.signals.arrived() {
                return Err(io::Error::other(format!("stopped by {}", name(signo))));
            }
            let mut fds = [
                PollFd::new(self.file.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.signals.fd.as_fd(), PollFlags::POLLIN),
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
