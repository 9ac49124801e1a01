//! Signals as events: SIGINT, SIGTERM and SIGCHLD are blocked at start-up
//! and read from a signalfd, so the holder decides when to act on them
//! (never between taking the lock and recording it). Children start with
//! an empty signal mask (mysnap::child::spawn_command clears it).

use mysnap::{Error, Exit, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use std::os::fd::AsFd;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

pub struct Signals {
    fd: SignalFd,
}

/// Why holding ended.
#[derive(Debug)]
pub enum Ended {
    Exited(ExitStatus),
    Signal(Signal),
    InputClosed,
    MaxHold,
}

/// Time a COMMAND gets between SIGTERM and SIGKILL at --max-hold.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

impl Signals {
    /// Call first thing in main, before any thread starts.
    pub fn block() -> Result<Signals> {
        let fd = mysnap::signals::block(&[Signal::SIGINT, Signal::SIGTERM, Signal::SIGCHLD])?;
        Ok(Signals { fd })
    }

    /// The signalfd, readable while a signal is pending.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn next(&mut self) -> Option<Signal> {
        match self.fd.read_signal() {
            Ok(Some(info)) => Signal::try_from(info.ssi_signo as i32).ok(),
            _ => None,
        }
    }

    /// Fails with 128 + N when SIGINT or SIGTERM has arrived.
    pub fn check_interrupted(&mut self) -> Result<()> {
        while let Some(signal) = self.next() {
            if signal != Signal::SIGCHLD {
                return Err(interrupted(signal));
            }
        }
        Ok(())
    }

    /// Waits until `child` exits, forwarding SIGINT and SIGTERM to it after
    /// calling `on_stop` (once). At `deadline` the child gets SIGTERM, then
    /// SIGKILL after KILL_GRACE.
    pub fn wait_child(
        &mut self,
        child: &mut Child,
        deadline: Instant,
        on_stop: &mut dyn FnMut(),
    ) -> Result<Ended> {
        // Told to stop, COMMAND's own status no longer counts: the lock went
        // before it finished.
        let mut stopped_by = None;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let mut over_time = false;
        let mut kill_at = deadline;
        loop {
            if let Some(status) = child
                .try_wait()
                .map_err(|e| Error::new(Exit::Software, format!("wait: {e}")))?
            {
                return Ok(match stopped_by {
                    Some(signal) => Ended::Signal(signal),
                    None if over_time => Ended::MaxHold,
                    None => Ended::Exited(status),
                });
            }
            let now = Instant::now();
            if now >= kill_at {
                let signal = if over_time {
                    Signal::SIGKILL
                } else {
                    Signal::SIGTERM
                };
                if !over_time {
                    log::warn!("COMMAND still runs at --max-hold: sending SIGTERM");
                }
                let _ = nix::sys::signal::kill(pid, signal);
                over_time = true;
                kill_at = now + KILL_GRACE;
                continue;
            }
            if let Some(signal) = self.wait_event(None, kill_at - now)? {
                if signal != Signal::SIGCHLD {
                    if stopped_by.is_none() {
                        on_stop();
                        stopped_by = Some(signal);
                    }
                    let _ = nix::sys::signal::kill(pid, signal);
                }
            }
        }
    }

    /// Hold mode: waits for SIGINT/SIGTERM, EOF on `input` (when given) or `deadline`.
    pub fn wait_hold(
        &mut self,
        input: Option<&std::io::Stdin>,
        deadline: Instant,
    ) -> Result<Ended> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(Ended::MaxHold);
            }
            match self.wait_event(input, deadline - now)? {
                Some(Signal::SIGCHLD) => {}
                Some(signal) => return Ok(Ended::Signal(signal)),
                None => {
                    if let Some(stdin) = input {
                        if input_closed(stdin) {
                            return Ok(Ended::InputClosed);
                        }
                    }
                }
            }
        }
    }

    /// One poll: a signal, or None when `input` is readable or time is up.
    fn wait_event(
        &mut self,
        input: Option<&std::io::Stdin>,
        timeout: Duration,
    ) -> Result<Option<Signal>> {
        let timeout = PollTimeout::try_from(timeout.max(Duration::from_millis(1)))
            .unwrap_or(PollTimeout::MAX);
        let mut fds = vec![PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        if let Some(stdin) = input {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(self.next()),
            Err(e) => Err(Error::new(Exit::Software, format!("poll: {e}"))),
        }
    }
}

/// Reads what is there; true at end of input. Whatever is written to
/// stdin is ignored: only its end matters.
fn input_closed(stdin: &std::io::Stdin) -> bool {
    use std::os::fd::AsRawFd;
    let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
    if !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0) {
        return false;
    }
    let mut buf = [0u8; 4096];
    matches!(
        nix::unistd::read(stdin.as_raw_fd(), &mut buf),
        Ok(0) | Err(_)
    )
}

pub fn interrupted(signal: Signal) -> Error {
    Error::with_status(128 + signal as i32, format!("interrupted by {signal}"))
}
