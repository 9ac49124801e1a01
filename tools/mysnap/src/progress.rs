//! Progress of long work: a line redrawn on a terminal, and `STATUS=` for
//! `systemctl status` when running under systemd.

use crate::quantity::{format_rate, format_size};
use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub struct Progress {
    verb: &'static str,
    total: Option<u64>,
    started: Instant,
    last_shown: Option<Instant>,
    terminal: bool,
    systemd: bool,
}

const TERMINAL_EVERY: Duration = Duration::from_millis(250);
const SYSTEMD_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    /// `verb` says what is happening ("uploaded"); `total` is known for
    /// downloads, not for streams of unknown length.
    pub fn new(verb: &'static str, total: Option<u64>) -> Self {
        Progress {
            verb,
            total,
            started: Instant::now(),
            last_shown: None,
            terminal: std::io::stderr().is_terminal() && log::max_level() >= log::LevelFilter::Info,
            systemd: std::env::var_os("NOTIFY_SOCKET").is_some(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn line(&self, done: u64) -> String {
        let rate = format_rate(done, self.elapsed());
        match self.total {
            Some(total) if total > 0 => format!(
                "{} {} of {} ({}%), {rate}{}",
                self.verb,
                format_size(done),
                format_size(total),
                done * 100 / total,
                eta(done, total, self.elapsed())
            ),
            _ => format!("{} {}, {rate}", self.verb, format_size(done)),
        }
    }

    /// Reports `done` bytes, at most a few times a second.
    pub fn update(&mut self, done: u64) {
        if !self.terminal && !self.systemd {
            return;
        }
        let every = if self.terminal {
            TERMINAL_EVERY
        } else {
            SYSTEMD_EVERY
        };
        if self.last_shown.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.last_shown = Some(Instant::now());
        let line = self.line(done);
        if self.terminal {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K{line}");
            crate::logging::PROGRESS_LINE.store(true, Ordering::Relaxed);
        }
        if self.systemd {
            let state = libsystemd::daemon::NotifyState::Status(line);
            let _ = libsystemd::daemon::notify(false, &[state]);
        }
    }

    /// Clears the terminal line, leaving the summary to a log line.
    pub fn finish(&mut self) {
        if crate::logging::PROGRESS_LINE.swap(false, Ordering::Relaxed) {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }
}

/// `, ETA 1m05s` at the rate so far, once there is a rate to go by.
fn eta(done: u64, total: u64, elapsed: Duration) -> String {
    if done == 0 || done >= total || elapsed < Duration::from_secs(1) {
        return String::new();
    }
    let left = elapsed.as_secs_f64() * (total - done) as f64 / done as f64;
    let secs = left.round() as u64;
    format!(", ETA {}m{:02}s", secs / 60, secs % 60)
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_follows_the_rate_so_far() {
        assert_eq!(eta(25, 100, Duration::from_secs(10)), ", ETA 0m30s");
        assert_eq!(eta(1, 100, Duration::from_secs(2)), ", ETA 3m18s");
        assert_eq!(eta(0, 100, Duration::from_secs(10)), "");
        assert_eq!(eta(100, 100, Duration::from_secs(10)), "");
    }
}
