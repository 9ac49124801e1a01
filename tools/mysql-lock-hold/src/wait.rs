//! How holding ends: COMMAND exits, a stopping signal (SIGINT, SIGTERM)
//! arrives, stdin reaches its end in hold mode, or --max-hold passes. The
//! signals are the shared crate's: blocked at start-up and read from a
//! signalfd, so the holder decides when to act on them (never between
//! taking the lock and recording it).

use mysnap::signals::Signals;
use mysnap::Result;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use std::os::fd::AsFd;
use std::process::{Child, ExitStatus};
use std::time::Instant;

pub const STOPPING: [Signal; 2] = [Signal::SIGINT, Signal::SIGTERM];

/// Why holding ended.
#[derive(Debug)]
pub enum Ended {
    Exited(ExitStatus),
    Signal(Signal),
    InputClosed,
    MaxHold,
}

/// Waits until `child` exits, passing SIGINT and SIGTERM on to it after
/// calling `on_stop` (once). At `deadline` the child gets SIGTERM, then
/// SIGKILL after mysnap::signals::KILL_GRACE.
pub fn command(
    signals: &Signals,
    child: &mut Child,
    deadline: Instant,
    on_stop: &mut dyn FnMut(),
) -> Result<Ended> {
    let end = signals.wait_child(child, Some(deadline), &mut |_| on_stop())?;
    // Told to stop, COMMAND's own status no longer counts: the lock went
    // before it finished.
    Ok(match end.stopped_by {
        Some(signal) => Ended::Signal(signal),
        None if end.over_time => Ended::MaxHold,
        None => Ended::Exited(end.status),
    })
}

/// Hold mode: waits for SIGINT/SIGTERM, EOF on `input` (when given) or `deadline`.
pub fn hold(signals: &Signals, input: Option<&std::io::Stdin>, deadline: Instant) -> Result<Ended> {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(Ended::MaxHold);
        }
        let others: Vec<_> = input.iter().map(|stdin| stdin.as_fd()).collect();
        if signals.wait(&others, Some(deadline - now))?.is_some() {
            if let Some(signal) = signals.stopped() {
                return Ok(Ended::Signal(signal));
            }
        } else if input.is_some_and(input_closed) {
            return Ok(Ended::InputClosed);
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
