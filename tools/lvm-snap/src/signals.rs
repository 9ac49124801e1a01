//! SIGINT, SIGTERM and SIGHUP are blocked from the start and read from a
//! signalfd when lvm-snap is ready for them: never while an LVM tool runs
//! (the tools inherit the mask, see lvm.rs), and while COMMAND runs they
//! are passed on to it, so that cleaning up always happens.

use mysnap::{Error, Exit, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use std::os::fd::AsFd;
use std::process::{Child, ExitStatus};

pub struct Signals {
    fd: SignalFd,
    /// The first stopping signal that arrived.
    pub received: Option<Signal>,
}

const STOPPING: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

impl Signals {
    /// Call first thing in main, before any thread starts.
    pub fn block() -> Result<Signals> {
        let signals: Vec<Signal> = STOPPING.into_iter().chain([Signal::SIGCHLD]).collect();
        let fd = mysnap::signals::block(&signals)?;
        Ok(Signals { fd, received: None })
    }

    /// The next signal that has arrived, without waiting; a stopping one is
    /// remembered.
    fn next(&mut self) -> Option<Signal> {
        let signal = match self.fd.read_signal() {
            Ok(Some(info)) => Signal::try_from(info.ssi_signo as i32).ok()?,
            _ => return None,
        };
        if STOPPING.contains(&signal) {
            self.received.get_or_insert(signal);
        }
        Some(signal)
    }

    /// Fails with 128 + N once SIGINT, SIGTERM or SIGHUP has arrived.
    pub fn check(&mut self) -> Result<()> {
        while self.next().is_some() {}
        match self.received {
            Some(signal) => Err(interrupted(signal)),
            None => Ok(()),
        }
    }

    /// Waits for `child` to end, passing SIGINT, SIGTERM and SIGHUP on to it.
    pub fn wait_child(&mut self, child: &mut Child) -> Result<ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        loop {
            if let Some(status) = child
                .try_wait()
                .map_err(|e| Error::new(Exit::Software, format!("wait: {e}")))?
            {
                return Ok(status);
            }
            // Until a signal arrives; SIGCHLD when the child ends.
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::NONE);
            while let Some(signal) = self.next() {
                if STOPPING.contains(&signal) {
                    let _ = nix::sys::signal::kill(pid, signal);
                }
            }
        }
    }
}

pub fn interrupted(signal: Signal) -> Error {
    Error::with_status(128 + signal as i32, format!("interrupted by {signal}"))
}
