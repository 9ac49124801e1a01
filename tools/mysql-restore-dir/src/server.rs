//! Stopping and starting mysqld around the swap, and waiting until it
//! answers: through systemctl, through the admin's own commands, or not at
//! all on a fresh machine.

use mysnap::error::IoContext;
use mysnap::mysql::ConnectOptions;
use mysnap::{child, Error, Exit, Result};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub enum Control {
    Service(String),
    /// Run by /bin/sh -c; the start command may return before mysqld answers.
    Commands {
        stop: String,
        start: String,
    },
    NoServer,
}

impl Control {
    pub fn stop(&self) -> Result<()> {
        match self {
            Control::Service(name) => run(Command::new("systemctl").args(["stop", name])),
            Control::Commands { stop, .. } => run(&mut shell(stop)),
            Control::NoServer => Ok(()),
        }
        .map_err(|e| e.context("stopping the server"))
    }

    pub fn start(&self) -> Result<()> {
        match self {
            Control::Service(name) => run(Command::new("systemctl").args(["start", name])),
            Control::Commands { start, .. } => run(&mut shell(start)),
            Control::NoServer => Ok(()),
        }
        .map_err(|e| e.context("starting the server"))
    }
}

/// `/bin/sh -c COMMAND` in its own process group, so that the daemon it
/// starts outlives this tool and a ^C at the terminal does not reach it.
fn shell(command: &str) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", command]).process_group(0);
    cmd
}

/// Runs a control command with stdin closed and its output on our stderr
/// (stdout carries the coordinates).
fn run(cmd: &mut Command) -> Result<()> {
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .ctx("duplicating stderr")?;
    cmd.stdin(Stdio::null()).stdout(Stdio::from(stderr));
    let argv: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().to_string())
        .collect();
    let status = child::spawn_command(cmd)?
        .wait()
        .ctx("waiting for the command")?;
    child::check(&argv, status).map_err(|e| Error::new(Exit::Unavailable, e.message()))
}

/// How a server that is up answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ready {
    /// It told its version.
    Version(String),
    /// It answered with an error (access denied, too many connections...):
    /// it is up, but our credentials or its limits stop the query.
    Refused(String),
}

/// Connects until the server answers or `wait` runs out. Any answer counts,
/// an error packet too: a server that says "access denied" is up.
pub fn wait_ready(connect: &ConnectOptions, wait: Duration) -> Result<Ready> {
    use mysql::prelude::Queryable;
    let deadline = Instant::now() + wait;
    loop {
        let answer = connect
            .connect_raw()?
            .and_then(|mut conn| conn.query_first::<String, _>("SELECT VERSION()"));
        let last = match answer {
            Ok(Some(version)) => return Ok(Ready::Version(version)),
            Ok(None) => return Ok(Ready::Refused("SELECT VERSION() returned no row".into())),
            Err(mysql::Error::MySqlError(e)) => {
                return Ok(Ready::Refused(format!(
                    "ERROR {} ({}): {}",
                    e.code, e.state, e.message
                )))
            }
            Err(e) => mysnap::mysql::describe(&e),
        };
        if Instant::now() >= deadline {
            return Err(Error::new(
                Exit::Unavailable,
                format!(
                    "the server did not answer within {}s: cannot connect to {}: {last}",
                    wait.as_secs(),
                    connect.describe()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The processes that hold a file or their working directory under `dir`,
/// as the kernel shows them in /proc: a server that still runs on `dir`
/// has its tablespaces and logs open there. Processes we may not inspect
/// are skipped (as root, there are none).
pub fn holders(dir: &Path) -> Vec<u32> {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return Vec::new();
    };
    let inside = |link: &Path| link == dir || link.starts_with(&dir);
    let mut found = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let base = entry.path();
        let cwd = std::fs::read_link(base.join("cwd")).is_ok_and(|l| inside(&l));
        let open = std::fs::read_dir(base.join("fd")).is_ok_and(|fds| {
            fds.flatten()
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| inside(&l)))
        });
        if cwd || open {
            found.push(pid);
        }
    }
    found
}

/// The release series of a version string: "10.11.6-MariaDB-0+deb12u1" →
/// (10, 11). A newer series may change the data files' format.
pub fn series(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_with_a_file_open_under_dir_holds_it() {
        let dir = tempfile_dir();
        std::fs::write(dir.join("ibdata1"), b"x").unwrap();
        assert!(holders(&dir).is_empty(), "nobody yet");
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("exec 3<{}/ibdata1; read line", dir.display()))
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait on the state itself: the child's descriptor 3 points there.
        let fd3 = format!("/proc/{}/fd/3", child.id());
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::read_link(&fd3).is_err() {
            assert!(Instant::now() < deadline, "the child never opened the file");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(holders(&dir), vec![child.id()]);
        drop(child.stdin.take());
        child.wait().unwrap();
        assert!(holders(&dir).is_empty(), "the holder is gone");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("holders-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn series_of_real_version_strings() {
        assert_eq!(series("10.11.6-MariaDB-0+deb12u1-log"), Some((10, 11)));
        assert_eq!(series("8.0.36"), Some((8, 0)));
        assert_eq!(series("8.4.0-commercial"), Some((8, 4)));
        assert_eq!(series("garbage"), None);
        assert!(series("11.4.2").unwrap() > series("10.11.6").unwrap());
    }
}
