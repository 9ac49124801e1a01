//! Signals as events. A tool blocks the signals it handles first thing in
//! main (threads inherit the mask) and reads them from a signalfd, so it
//! acts on them where it is safe to: never between taking a resource and
//! recording it. Children start with an empty mask (child::spawn_command).
//!
//! One `Signals` serves every tool: the stopping signals (SIGINT, SIGTERM,
//! and SIGHUP where the tool stops on it) are remembered once they arrive,
//! so a check at the next safe point sees them; waiting for a child passes
//! them on to it. The tools that run on tokio (s3-put, the binlog
//! archiver) await SIGTERM and SIGINT beside their work with `Stopping`.

use crate::{Error, Exit, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::{AsFd, BorrowedFd};
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// Time a child gets between SIGTERM and SIGKILL when its deadline passes.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

pub struct Signals {
    fd: SignalFd,
    stopping: Vec<Signal>,
    /// The first stopping signal that arrived (0: none yet). Atomic, so
    /// that a reader thread and the main thread can share one `Signals`.
    first: AtomicI32,
}

/// How a child that was waited for ended.
#[derive(Debug)]
pub struct ChildEnd {
    pub status: ExitStatus,
    /// The stopping signal passed on to it, if one arrived while it ran.
    pub stopped_by: Option<Signal>,
    /// It was still running at the deadline and was sent SIGTERM (and
    /// SIGKILL after KILL_GRACE).
    pub over_time: bool,
}

impl Signals {
    /// Blocks `stopping` and `also` for this thread and its future threads
    /// and reads them from a non-blocking signalfd. Call before any thread
    /// starts.
    pub fn block(stopping: &[Signal], also: &[Signal]) -> Result<Signals> {
        let mut mask = SigSet::empty();
        for &signal in stopping.iter().chain(also) {
            mask.add(signal);
        }
        mask.thread_block()
            .map_err(|e| Error::new(Exit::Software, format!("cannot block signals: {e}")))?;
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| Error::new(Exit::Software, format!("cannot create signalfd: {e}")))?;
        Ok(Signals {
            fd,
            stopping: stopping.to_vec(),
            first: AtomicI32::new(0),
        })
    }

    /// The signalfd, readable while a signal is pending.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The next pending signal, without waiting; a stopping one is
    /// remembered.
    pub fn next(&self) -> Option<Signal> {
        let signal = match self.fd.read_signal() {
            Ok(Some(info)) => Signal::try_from(info.ssi_signo as i32).ok()?,
            _ => return None,
        };
        if self.stopping.contains(&signal) {
            let _ =
                self.first
                    .compare_exchange(0, signal as i32, Ordering::SeqCst, Ordering::SeqCst);
        }
        Some(signal)
    }

    /// Reads what is pending; the first stopping signal that has arrived.
    pub fn stopped(&self) -> Option<Signal> {
        while self.next().is_some() {}
        Signal::try_from(self.first.load(Ordering::SeqCst)).ok()
    }

    /// Fails with 128 + N once stopping signal N has arrived.
    pub fn check(&self) -> Result<()> {
        match self.stopped() {
            Some(signal) => Err(interrupted(signal)),
            None => Ok(()),
        }
    }

    /// One poll of the signalfd and `others`, for at most `timeout` (None:
    /// no limit). Returns the signal that arrived, if one did.
    pub fn wait(&self, others: &[BorrowedFd], timeout: Option<Duration>) -> Result<Option<Signal>> {
        let timeout = match timeout {
            None => PollTimeout::NONE,
            Some(t) => {
                PollTimeout::try_from(t.max(Duration::from_millis(1))).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = vec![PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        fds.extend(others.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)));
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(self.next()),
            Err(e) => Err(Error::new(Exit::Software, format!("poll: {e}"))),
        }
    }

    /// Waits for `child` to end, passing each stopping signal on to it
    /// (`on_stop` runs once, at the first). The child's end is seen on a
    /// pidfd, so no SIGCHLD is needed (another thread may take it). At
    /// `deadline` the child gets SIGTERM, then SIGKILL after KILL_GRACE.
    pub fn wait_child(
        &self,
        child: &mut Child,
        deadline: Option<Instant>,
        on_stop: &mut dyn FnMut(Signal),
    ) -> Result<ChildEnd> {
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let exited = pidfd(child);
        // Without a pidfd (a kernel before 5.3), look again every 50 ms.
        let recheck = exited.is_none().then_some(Duration::from_millis(50));
        let mut stopped_by = None;
        let mut over_time = false;
        let mut kill_at = deadline;
        loop {
            if let Some(status) = child
                .try_wait()
                .map_err(|e| Error::new(Exit::Software, format!("wait: {e}")))?
            {
                return Ok(ChildEnd {
                    status,
                    stopped_by,
                    over_time,
                });
            }
            let now = Instant::now();
            if let Some(at) = kill_at.filter(|&at| now >= at) {
                let signal = if over_time {
                    Signal::SIGKILL
                } else {
                    log::warn!(
                        "COMMAND still runs at its deadline: sending SIGTERM, and SIGKILL \
                         {}s later",
                        KILL_GRACE.as_secs()
                    );
                    Signal::SIGTERM
                };
                let _ = nix::sys::signal::kill(pid, signal);
                over_time = true;
                kill_at = Some(at.max(now) + KILL_GRACE);
                continue;
            }
            // Until a signal arrives or the child ends.
            let others: Vec<BorrowedFd> = exited.iter().map(|fd| fd.as_fd()).collect();
            let timeout = match (kill_at.map(|at| at - now), recheck) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if let Some(signal) = self.wait(&others, timeout)? {
                if self.stopping.contains(&signal) {
                    if stopped_by.is_none() {
                        on_stop(signal);
                        stopped_by = Some(signal);
                    }
                    let _ = nix::sys::signal::kill(pid, signal);
                }
            }
        }
    }
}

/// A pidfd for `child`: readable once it has ended.
fn pidfd(child: &Child) -> Option<std::os::fd::OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    // SAFETY: a non-negative result is a file descriptor that we own.
    (fd >= 0).then(|| unsafe { std::os::fd::FromRawFd::from_raw_fd(fd as i32) })
}

/// SIGTERM and SIGINT for a tool that runs on tokio and awaits them
/// beside its other work (s3-put's upload, the binlog archiver's stream),
/// instead of reading a signalfd: tokio's handlers, installed once, so a
/// signal that arrives between two awaits is kept for the next.
#[cfg(feature = "s3")]
pub struct Stopping {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(feature = "s3")]
impl Stopping {
    /// Installs the handlers; call it inside the runtime, before the work.
    pub fn install() -> Result<Stopping> {
        use tokio::signal::unix::{signal, SignalKind};
        let handler = |kind| {
            signal(kind)
                .map_err(|e| Error::new(Exit::Software, format!("cannot handle signals: {e}")))
        };
        Ok(Stopping {
            term: handler(SignalKind::terminate())?,
            int: handler(SignalKind::interrupt())?,
        })
    }

    /// The next SIGTERM or SIGINT.
    pub async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::SIGTERM,
            _ = self.int.recv() => Signal::SIGINT,
        }
    }
}

/// The error for a stop by `signal`: exit 128 + N, as a shell reports it.
pub fn interrupted(signal: Signal) -> Error {
    Error::with_status(128 + signal as i32, format!("interrupted by {signal}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    // Each test blocks the signals in its own thread and raises them at
    // that thread, so the tests do not see each other's signals.

    #[test]
    fn a_stopping_signal_is_remembered_and_checked() {
        std::thread::spawn(|| {
            let signals = Signals::block(&[Signal::SIGUSR1], &[Signal::SIGUSR2]).unwrap();
            assert!(signals.check().is_ok());
            nix::sys::signal::raise(Signal::SIGUSR2).unwrap();
            assert_eq!(signals.next(), Some(Signal::SIGUSR2));
            assert!(signals.check().is_ok(), "SIGUSR2 is not a stopping signal");
            nix::sys::signal::raise(Signal::SIGUSR1).unwrap();
            let error = signals.check().unwrap_err();
            assert_eq!(error.code(), 128 + Signal::SIGUSR1 as i32);
            assert_eq!(error.message(), "interrupted by SIGUSR1");
            // Remembered: the signal was read once, and still counts.
            assert_eq!(signals.stopped(), Some(Signal::SIGUSR1));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_stopping_signal_is_passed_on_to_the_child() {
        std::thread::spawn(|| {
            let signals = Signals::block(&[Signal::SIGUSR1], &[]).unwrap();
            let mut child =
                crate::child::spawn_command(std::process::Command::new("sleep").arg("600"))
                    .unwrap();
            nix::sys::signal::raise(Signal::SIGUSR1).unwrap();
            let mut stops = Vec::new();
            let end = signals
                .wait_child(&mut child, None, &mut |s| stops.push(s))
                .unwrap();
            assert_eq!(end.stopped_by, Some(Signal::SIGUSR1));
            assert_eq!(end.status.signal(), Some(Signal::SIGUSR1 as i32));
            assert_eq!(stops, [Signal::SIGUSR1]);
            assert!(!end.over_time);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_child_past_its_deadline_is_terminated() {
        std::thread::spawn(|| {
            let signals = Signals::block(&[Signal::SIGUSR1], &[]).unwrap();
            let mut child =
                crate::child::spawn_command(std::process::Command::new("sleep").arg("600"))
                    .unwrap();
            let end = signals
                .wait_child(&mut child, Some(Instant::now()), &mut |_| {})
                .unwrap();
            assert!(end.over_time);
            assert_eq!(end.stopped_by, None);
            assert_eq!(end.status.signal(), Some(Signal::SIGTERM as i32));
        })
        .join()
        .unwrap();
    }
}
