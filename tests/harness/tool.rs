//! Running the built tools as a user would, with a controlled environment.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Where `cargo build --workspace` put the binaries.
pub fn bin_dir() -> PathBuf {
    match std::env::var_os("MYSNAP_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug"),
    }
}

/// A command for tool `name`, with no AWS settings inherited from the
/// caller's environment and the instance metadata service switched off.
pub fn tool(name: &str) -> Command {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run 'cargo build --workspace' first (make test does)",
        path.display()
    );
    let mut cmd = Command::new(path);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().to_string();
        if key.starts_with("AWS_")
            || key == "CREDENTIALS_DIRECTORY"
            || key == "JOURNAL_STREAM"
            || key == "NOTIFY_SOCKET"
        {
            cmd.env_remove(key);
        }
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true");
    // No ~/.aws of the person running the tests.
    cmd.env("HOME", std::env::temp_dir().join("mysnap-tests-empty-home"));
    cmd
}

#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Output {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).to_string()
    }

    /// Asserts that stderr is one line, and says `says`: what a refusal
    /// prints.
    pub fn expect_one_line(&self, says: &str) -> &Self {
        assert!(
            self.stderr.contains(says),
            "stderr should say '{says}':\n{}",
            self.stderr
        );
        assert_eq!(
            self.stderr.trim().lines().count(),
            1,
            "one line:\n{}",
            self.stderr
        );
        self
    }

    /// Asserts the exit code, showing stderr when it is not the expected one.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code; stderr:\n{}", self.stderr);
        self
    }
}

/// Starts `cmd` with `stdin` fed from a thread; stdout and stderr captured.
pub fn spawn(cmd: &mut Command, stdin: Vec<u8>) -> (Child, std::thread::JoinHandle<()>) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tool");
    let mut input = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        // The tool may stop reading early (an error): that is not ours to report.
        let _ = input.write_all(&stdin);
    });
    (child, feeder)
}

pub fn finish(child: Child, feeder: std::thread::JoinHandle<()>) -> Output {
    let out = child.wait_with_output().expect("wait for tool");
    feeder.join().unwrap();
    use std::os::unix::process::ExitStatusExt;
    Output {
        code: out
            .status
            .code()
            .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0)),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

/// Runs `cmd` to the end with `stdin` as input.
pub fn run(cmd: &mut Command, stdin: &[u8]) -> Output {
    let (child, feeder) = spawn(cmd, stdin.to_vec());
    finish(child, feeder)
}

/// Waits up to a minute for `path` to exist (a tool's state or status file).
pub fn wait_for_file(path: &std::path::Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
