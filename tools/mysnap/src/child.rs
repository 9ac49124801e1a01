//! Running COMMAND after `--`, the way a shell would report on it.

use crate::{Error, Exit, Result};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};

/// Starts `argv` with the given stdout. A missing command is exit 127 and
/// one that cannot be run 126, as in sh(1).
pub fn spawn(argv: &[String], stdout: Stdio) -> Result<Child> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| Error::usage("no COMMAND given"))?;
    spawn_command(Command::new(program).args(args).stdout(stdout))
}

/// Starts a prepared command, with the same exit codes as `spawn`. The
/// child starts with no signal blocked, even when this process blocks
/// signals to read them from a signalfd (the mask is inherited otherwise).
pub fn spawn_command(command: &mut Command) -> Result<Child> {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec the closure only calls sigprocmask,
    // which is async-signal-safe, and allocates nothing.
    unsafe {
        command.pre_exec(|| {
            nix::sys::signal::SigSet::empty()
                .thread_set_mask()
                .map_err(std::io::Error::from)
        });
    }
    command.spawn().map_err(|e| {
        let code = match e.kind() {
            std::io::ErrorKind::NotFound => Exit::NotFound,
            _ => Exit::CannotRun,
        };
        let program = command.get_program().to_string_lossy();
        Error::new(code, format!("cannot run '{program}': {e}"))
    })
}

/// The status a shell would give: the exit code, or 128 + the signal.
pub fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => Exit::Software as i32,
    }
}

/// "exited with status 3" or "was killed by signal 9".
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "ended in an unknown way".to_string(),
    }
}

/// Turns a child's unsuccessful status into an error carrying it.
pub fn check(argv: &[String], status: ExitStatus) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    Err(Error::with_status(
        exit_code(status),
        format!("'{}' {}", argv[0], describe(status)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(argv: &[&str]) -> Result<ExitStatus> {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        Ok(spawn(&argv, Stdio::null())?.wait().unwrap())
    }

    #[test]
    fn children_start_with_no_signal_blocked() {
        let mut blocked = nix::sys::signal::SigSet::empty();
        blocked.add(nix::sys::signal::Signal::SIGUSR2);
        let before = blocked
            .thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)
            .unwrap();
        let argv: Vec<String> = ["grep", "SigBlk", "/proc/self/status"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let out = spawn(&argv, Stdio::piped())
            .unwrap()
            .wait_with_output()
            .unwrap();
        before.thread_set_mask().unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap().trim(),
            "SigBlk:\t0000000000000000"
        );
    }

    #[test]
    fn statuses_pass_through_like_a_shell() {
        assert_eq!(exit_code(run(&["sh", "-c", "exit 3"]).unwrap()), 3);
        assert_eq!(exit_code(run(&["sh", "-c", "kill -9 $$"]).unwrap()), 137);
        assert_eq!(run(&["/nonexistent/cmd"]).unwrap_err().code(), 127);
        assert_eq!(run(&["/"]).unwrap_err().code(), 126);
    }
}
