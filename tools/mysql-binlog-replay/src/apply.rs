//! Applying the rebuilt binlog files with the server's own tools, in one
//! session: `mariadb-binlog --start-position=FROM FILES... | mariadb`.
//! One session keeps what spans files (temporary tables, session
//! variables) as the server had it. The files end exactly where the
//! replay stops, so neither tool is asked to stop anywhere.

use mysnap::cli::Args;
use mysnap::signals::{interrupted, Signals};
use mysnap::{Error, Exit, Result};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The two programs, and how the client connects.
pub struct Tools {
    pub binlog: PathBuf,
    pub client: PathBuf,
    /// Connection options for the client: the option files and what the
    /// command line set, never a password.
    pub client_args: Vec<String>,
}

/// The first of `names` found on PATH.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

fn program(args: &Args, option: &str, names: &[&str]) -> Result<PathBuf> {
    match args.string(option) {
        Some(p) => Ok(PathBuf::from(p)),
        None => on_path(names).ok_or_else(|| {
            Error::new(
                Exit::Unavailable,
                format!(
                    "none of {} is on PATH: install the server's client tools, or give --{option}",
                    names.join(", ")
                ),
            )
        }),
    }
}

impl Tools {
    pub fn from_args(args: &Args) -> Result<Tools> {
        let binlog = program(args, "binlog-tool", &["mariadb-binlog", "mysqlbinlog"])?;
        let client = program(args, "client", &["mariadb", "mysql"])?;
        // Option files first: the clients read them only there.
        let mut client_args = Vec::new();
        for name in ["defaults-file", "defaults-extra-file"] {
            if let Some(value) = args.string(name) {
                client_args.push(format!("--{name}={value}"));
            }
        }
        if args.flag("no-defaults") {
            client_args.push("--no-defaults".into());
        }
        for name in [
            "socket", "host", "port", "user", "ssl-ca", "ssl-cert", "ssl-key",
        ] {
            if let Some(value) = args.string(name) {
                client_args.push(format!("--{name}={value}"));
            }
        }
        if let Some(mode) = args.string("ssl-mode") {
            client_args.extend(ssl_mode(&client, &mode));
        }
        client_args.push("--binary-mode".into());
        Ok(Tools {
            binlog,
            client,
            client_args,
        })
    }
}

/// --ssl-mode as the client understands it: MySQL's client takes it, the
/// MariaDB client has its switches instead.
fn ssl_mode(client: &Path, mode: &str) -> Vec<String> {
    let version = Command::new(client)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    if !version.contains("MariaDB") {
        return vec![format!("--ssl-mode={mode}")];
    }
    let switch = match mode.to_ascii_uppercase().as_str() {
        "DISABLED" => "--skip-ssl",
        "VERIFY_IDENTITY" => "--ssl-verify-server-cert",
        _ => "--ssl",
    };
    vec![switch.to_string()]
}

/// Reads a child's stderr to the end in a thread.
fn collect(mut from: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = from.read_to_string(&mut text);
        text
    })
}

/// Runs the pipeline over `files` (in order), the first from `start`.
pub fn run(tools: &Tools, start: u64, files: &[PathBuf], signals: &Signals) -> Result<()> {
    let mut binlog_cmd = Command::new(&tools.binlog);
    // It reads local files only: no option file may change its output.
    binlog_cmd
        .arg("--no-defaults")
        .arg(format!("--start-position={start}"))
        .args(files)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut binlog = mysnap::child::spawn_command(&mut binlog_cmd)?;
    let binlog_err = collect(binlog.stderr.take().expect("piped"));
    let sql = binlog.stdout.take().expect("piped");
    let mut client_cmd = Command::new(&tools.client);
    client_cmd
        .args(&tools.client_args)
        .stdin(Stdio::from(sql))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut client = match mysnap::child::spawn_command(&mut client_cmd) {
        Ok(c) => c,
        Err(e) => {
            let _ = binlog.kill();
            let _ = binlog.wait();
            return Err(e);
        }
    };
    let client_err = collect(client.stderr.take().expect("piped"));
    let binlog_pid = nix::unistd::Pid::from_raw(binlog.id() as i32);
    let end = signals.wait_child(&mut client, None, &mut |signal| {
        let _ = nix::sys::signal::kill(binlog_pid, signal);
    })?;
    if !end.status.success() {
        let _ = binlog.kill();
    }
    let binlog_status = binlog
        .wait()
        .map_err(|e| Error::new(Exit::Software, format!("wait: {e}")))?;
    let (client_text, binlog_text) = (
        client_err.join().unwrap_or_default(),
        binlog_err.join().unwrap_or_default(),
    );
    for line in binlog_text.lines().chain(client_text.lines()) {
        log::debug!("{line}");
    }
    let name = |p: &Path| {
        p.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().to_string())
    };
    if let Some(signal) = end.stopped_by {
        return Err(interrupted(signal)
            .context("stopped while applying (the transactions applied so far stay applied)"));
    }
    if !end.status.success() {
        let error = client_text
            .lines()
            .find(|l| l.starts_with("ERROR"))
            .or_else(|| client_text.lines().last())
            .unwrap_or("no message")
            .to_string();
        return Err(Error::new(
            client_exit(&error),
            format!(
                "{} {}: {error} (the transactions before it stay applied)",
                name(&tools.client),
                mysnap::child::describe(end.status)
            ),
        ));
    }
    if !binlog_status.success() {
        let error = binlog_text
            .lines()
            .last()
            .unwrap_or("no message")
            .to_string();
        return Err(Error::new(
            Exit::DataErr,
            format!(
                "{} {}: {error} (what it printed before was applied)",
                name(&tools.binlog),
                mysnap::child::describe(binlog_status)
            ),
        ));
    }
    Ok(())
}

/// The exit code for the client's error line, `ERROR 1045 (28000) ...`:
/// 77 for a refused login or a missing privilege, 69 for a server out of
/// reach or gone, 65 for an event the server would not apply.
fn client_exit(line: &str) -> Exit {
    let code: Option<u32> = line
        .strip_prefix("ERROR ")
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok());
    match code {
        Some(1044 | 1045 | 1142 | 1143 | 1227 | 1370 | 1698) => Exit::NoPerm,
        Some(2002 | 2003 | 2005 | 2006 | 2013 | 2026) => Exit::Unavailable,
        Some(_) => Exit::DataErr,
        None => Exit::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_map_to_sysexits() {
        let code = |line| client_exit(line) as i32;
        assert_eq!(
            code("ERROR 1227 (42000) at line 9: Access denied; you need BINLOG REPLAY"),
            77
        );
        assert_eq!(code("ERROR 1045 (28000): Access denied for user"), 77);
        assert_eq!(
            code("ERROR 2002 (HY000): Can't connect to local server"),
            69
        );
        assert_eq!(
            code("ERROR 1062 (23000) at line 40: Duplicate entry '1'"),
            65
        );
        assert_eq!(code("Segmentation fault"), 69);
    }
}
