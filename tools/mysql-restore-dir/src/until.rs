//! --until: point-in-time recovery in one command, composed with
//! mysql-binlog-replay run as a child. Before the swap, the replay's
//! --dry-run checks that the binlog archive covers the staged backup's
//! coordinates to TARGET, so a restore that cannot reach TARGET changes
//! nothing. Once the server answers on the restored data (with
//! --no-server, a private one started for it: private.rs), the replay
//! applies the binlog for real, and the report says where it stopped.

use crate::server::{self, Control};
use mysnap::archive::Manifest;
use mysnap::binlog::target::Target;
use mysnap::cli::Args;
use mysnap::mysql::ConnectOptions;
use mysnap::restore::private;
use mysnap::restore::programs::sibling;
use mysnap::signals::{interrupted, Signals};
use mysnap::{child, Error, Exit, Result};
use std::cell::OnceCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const REPLAY: &str = "mysql-binlog-replay";

/// The connection options of this command line, which the replay takes
/// as they are: where the server is and as whom to connect (never a
/// secret: passwords stay in the option files).
const CONNECTION: [&str; 10] = [
    "defaults-file",
    "defaults-extra-file",
    "socket",
    "host",
    "port",
    "user",
    "ssl-mode",
    "ssl-ca",
    "ssl-cert",
    "ssl-key",
];

/// The S3 settings of the replay's archive, passed on as given (the
/// replay checks them). The keys stay in the environment.
pub const S3_OPTIONS: [(&str, &str, &str); 5] = [
    (
        "endpoint",
        "with --until: the archive's S3 endpoint URL (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, or AWS)",
        "URL",
    ),
    (
        "region",
        "with --until: the archive's region (default: $AWS_REGION, $AWS_DEFAULT_REGION, or us-east-1)",
        "REGION",
    ),
    (
        "profile",
        "with --until: the profile in the shared credentials file (default: $AWS_PROFILE)",
        "NAME",
    ),
    (
        "retries",
        "with --until: retries of a failed S3 request (default: 5)",
        "N",
    ),
    (
        "timeout",
        "with --until: time for one S3 request, plus 1s per MiB (default: 60s)",
        "DURATION",
    ),
];

/// Where the restore stops, and how the replay is run.
pub struct Until {
    /// TARGET as given: the replay parses it again.
    given: String,
    /// TARGET as the messages show it.
    target: Target,
    exclusive: bool,
    /// s3://BUCKET/PREFIX/ of mysql-binlog-archive.
    archive: String,
    tool: PathBuf,
    /// This command line's connection and logging options.
    forwarded: Vec<String>,
    /// -q: the replay logs only warnings and errors (its dry run always).
    quiet: bool,
    /// --binlog-epoch, else the epoch the dry run planned in, for the
    /// replay: once the server runs on the restored data, a running
    /// archiver starts a new epoch that may hold the backup's file too.
    epoch: OnceCell<String>,
    /// --binlog-epoch was given.
    chosen: bool,
    /// --no-server: the private server to replay into.
    private: Option<private::Spec>,
}

/// How a replay run ended.
struct Ran {
    status: std::process::ExitStatus,
    stopped: Option<nix::sys::signal::Signal>,
    /// Its stdout, when captured.
    stdout: String,
    /// Its lines on stderr, without the tool's name. Passed on as they
    /// came unless captured, but the last: a failure's message ends in it.
    said: Vec<String>,
}

impl Ran {
    /// The last line on stderr, else how it ended.
    fn last(&self) -> String {
        self.said
            .last()
            .cloned()
            .unwrap_or_else(|| child::describe(self.status))
    }
}

impl Until {
    /// --until and its companions, refused (64) where they cannot work.
    pub fn from_args(args: &Args, control: &Control, wait: Duration) -> Result<Option<Until>> {
        let no_server = matches!(control, Control::NoServer);
        if (args.flag("mysqld") || args.flag("mysqld-option")) && !(no_server && args.flag("until"))
        {
            return Err(args.usage("--mysqld and --mysqld-option go with --until and --no-server"));
        }
        let Some(given) = args.string("until") else {
            if ["binlog-archive", "binlog-epoch", "exclusive", "replay-tool"]
                .iter()
                .chain(S3_OPTIONS.iter().map(|(name, _, _)| name))
                .any(|o| args.matches.opt_present(o))
            {
                return Err(
                    args.usage("--binlog-archive, --binlog-epoch, --exclusive, --replay-tool and the S3 options go with --until")
                );
            }
            return Ok(None);
        };
        let exclusive = args.flag("exclusive");
        let target = Target::parse(&given, exclusive)
            .map_err(|e| args.usage(format!("--until {}", e.message())))?;
        if exclusive && !matches!(target, Target::Gtid { .. }) {
            return Err(args.usage("--exclusive is for a GTID --until"));
        }
        let archive = args.string("binlog-archive").ok_or_else(|| {
            args.usage("--until needs --binlog-archive s3://BUCKET/PREFIX/, where mysql-binlog-archive stores the binlog")
        })?;
        let bucket = archive
            .strip_prefix("s3://")
            .and_then(|rest| rest.split('/').next());
        if bucket.is_none_or(str::is_empty) {
            return Err(args.usage(format!(
                "--binlog-archive '{archive}': not s3://BUCKET/PREFIX/"
            )));
        }
        let refused = [
            (
                args.flag("in-place"),
                "--until and --in-place exclude each other: the archive must be checked against \
                 the backup's coordinates before the server stops",
            ),
            (
                args.flag("as-replica"),
                "--until and --as-replica exclude each other: a new replica catches up through \
                 replication, from the backup's coordinates",
            ),
            (
                args.flag("no-manifest"),
                "--until needs the coordinates in the archive's manifest: drop --no-manifest",
            ),
        ];
        if let Some((_, why)) = refused.iter().find(|(refuse, _)| *refuse) {
            return Err(args.usage(*why));
        }
        Ok(Some(Until {
            given,
            target,
            exclusive,
            archive,
            tool: find_tool(args.string("replay-tool"))?,
            forwarded: forwarded(args),
            quiet: args.flag("quiet"),
            chosen: args.flag("binlog-epoch"),
            private: if no_server {
                Some(private::Spec::from_args(args, wait)?)
            } else {
                None
            },
            epoch: args
                .string("binlog-epoch")
                .map(OnceCell::from)
                .unwrap_or_default(),
        }))
    }

    /// Before the swap: the replay's dry run, from the staged backup's
    /// coordinates to TARGET. Fails with the replay's code and what it
    /// said (the window the archive covers) when it cannot be done, and
    /// when the backup's file is in more than one epoch and no
    /// --binlog-epoch says which: the newest, which the replay would take,
    /// may be a later lineage (the server restored before) that holds the
    /// backup's file but not what came after it then.
    pub fn check(&self, manifest: Option<&Manifest>, signals: &Signals) -> Result<()> {
        let from = from(manifest)?;
        let ran = self.run(&from, &["--dry-run"], true, None, signals)?;
        if let Some(signal) = ran.stopped {
            return Err(interrupted(signal));
        }
        let checking = format!("checking the binlog archive from the backup's {from}");
        let ambiguous = ran
            .said
            .iter()
            .find(|l| l.contains(" is in more than one epoch"))
            .map(|l| l.trim_start_matches("warning: "));
        // First: whatever the newest epoch's plan says follows from the choice.
        if let (false, Some(said)) = (self.chosen, ambiguous) {
            return Err(Error::new(
                Exit::DataErr,
                format!(
                    "{checking}: {said}; the newest may be a later lineage: say which epoch \
                     to replay with --binlog-epoch ('{REPLAY} --list' shows them)"
                ),
            ));
        }
        if !ran.status.success() {
            return Err(Error::with_status(
                child::exit_code(ran.status),
                format!("{checking}: {}", ran.last()),
            ));
        }
        for line in &ran.said {
            log::warn!("{REPLAY}: {}", line.trim_start_matches("warning: "));
        }
        for line in ran.stdout.lines() {
            if let Some(epoch) = line.strip_prefix("epoch ") {
                let _ = self.epoch.set(epoch.to_string());
            }
            if line.starts_with("would apply ") {
                log::info!("the binlog archive covers the replay: {line}");
            } else {
                log::debug!("replay plan: {line}");
            }
        }
        Ok(())
    }

    /// After the swap: the replay, for real, into the server that answers
    /// on the restored base at `connect`, or (--no-server) into a private
    /// server started on `datadir` for it. Its "last applied" line goes to
    /// stdout; a failure says what is in place (the server asked again),
    /// and exits with the replay's code. A signal is passed on to the
    /// replay.
    pub fn replay(
        &self,
        manifest: Option<&Manifest>,
        datadir: &Path,
        connect: &ConnectOptions,
        signals: &Signals,
    ) -> Result<()> {
        let from = from(manifest)?;
        let base = manifest.map_or_else(String::new, taken);
        let failed = |ran: &Ran, state: &str| {
            Error::with_status(
                child::exit_code(ran.status),
                format!(
                    "restored the base backup{base}{state}; the replay from {from} to {} \
                     failed: {}",
                    self.target,
                    ran.last()
                ),
            )
        };
        let Some(spec) = &self.private else {
            let ran = self.run(&from, &[], false, None, signals)?;
            if !ran.status.success() {
                let state = match server::wait_ready(connect, Duration::ZERO) {
                    Ok(_) => " and the server runs on it",
                    Err(_) => " and the server answered on it, but answers no more",
                };
                return Err(failed(&ran, state));
            }
            return self.done(&ran, &base, &from, "");
        };
        let answers = |socket: &Path, wait: Duration| {
            server::wait_ready(&connect.clone().at_socket(socket), wait).map(|_| ())
        };
        let private = spec.start(datadir, answers, signals).map_err(|e| {
            e.context(format!(
                "restored the base backup{base} into {}, and replayed nothing",
                datadir.display()
            ))
        })?;
        let ran = self.run(&from, &[], false, Some(&private.socket()), signals);
        let stopped = private.stop(signals);
        let ran = ran?;
        match (ran.status.success(), stopped) {
            (true, Ok(())) => self.done(&ran, &base, &from, ", through a private server"),
            (false, Ok(())) => Err(failed(&ran, " (the private server for it is shut down)")),
            (false, Err(e)) => Err(failed(&ran, &format!(" ({})", e.message()))),
            (true, Err(e)) => Err(e.context(format!(
                "restored to {}: the base backup{base}, then the binlog from {from}; but",
                self.target
            ))),
        }
    }

    /// A replay that went through: its last line, and ours.
    fn done(&self, ran: &Ran, base: &str, from: &str, how: &str) -> Result<()> {
        if let Some(said) = ran.said.last() {
            let _ = writeln!(std::io::stderr().lock(), "{REPLAY}: {said}");
        }
        log::info!(
            "restored to {}: the base backup{base}, then the binlog from {from}{how}",
            self.target
        );
        Ok(())
    }

    /// Runs the replay from `from`, its stderr read line by line (passed
    /// on unless `capture`, which also captures its stdout and keeps it
    /// quiet: its error is the one line of ours).
    /// `socket`: the private server's, instead of where this command line
    /// connects.
    fn run(
        &self,
        from: &str,
        extra: &[&str],
        capture: bool,
        socket: Option<&Path>,
        signals: &Signals,
    ) -> Result<Ran> {
        let _ = std::io::stdout().flush();
        let mut cmd = Command::new(&self.tool);
        match socket {
            None => cmd.args(&self.forwarded),
            Some(socket) => cmd
                .args(self.forwarded.iter().filter(|o| {
                    !["--socket=", "--host=", "--port="]
                        .iter()
                        .any(|p| o.starts_with(p))
                }))
                .arg(format!("--socket={}", socket.display()))
                .arg("--host=localhost"),
        };
        cmd.args(extra);
        if let Some(epoch) = self.epoch.get() {
            cmd.args(["--epoch", epoch]);
        }
        if capture || self.quiet {
            cmd.arg("--quiet");
        }
        cmd.args(["--from", from, "--until", &self.given]);
        if self.exclusive {
            cmd.arg("--exclusive");
        }
        cmd.arg(&self.archive)
            .stdin(Stdio::null())
            .stdout(if capture {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .stderr(Stdio::piped());
        log::debug!("running {cmd:?}");
        let mut replay = child::spawn_command(&mut cmd)?;
        let stderr = replay
            .stderr
            .take()
            .map(|err| std::thread::spawn(move || lines(err, !capture)));
        let stdout = replay.stdout.take().map(|mut out| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = out.read_to_string(&mut text);
                text
            })
        });
        let end = signals.wait_child(&mut replay, None, &mut |_| {})?;
        let said = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
        let stdout = stdout.and_then(|t| t.join().ok()).unwrap_or_default();
        Ok(Ran {
            status: end.status,
            stopped: end.stopped_by,
            stdout,
            said,
        })
    }
}

/// Reads `from` to its end and returns its non-empty lines without the
/// replay's name; passes each on to our stderr as it comes when `pass`,
/// but the last.
fn lines(from: impl Read, pass: bool) -> Vec<String> {
    let prefix = format!("{REPLAY}: ");
    let mut all: Vec<String> = Vec::new();
    for line in BufReader::new(from)
        .lines()
        .map_while(std::result::Result::ok)
    {
        if line.trim().is_empty() {
            continue;
        }
        if let (true, Some(before)) = (pass, all.last()) {
            let _ = writeln!(std::io::stderr().lock(), "{prefix}{before}");
        }
        all.push(line.strip_prefix(&prefix).unwrap_or(&line).to_string());
    }
    all
}

/// The backup's binlog coordinates, FILE:POS, from the staged manifest.
fn from(manifest: Option<&Manifest>) -> Result<String> {
    let status = manifest.and_then(|m| m.status.as_ref());
    match status.map(|s| (&s.binlog_file, s.binlog_pos)) {
        Some((Some(file), Some(pos))) => Ok(format!("{file}:{pos}")),
        Some(_) => Err(Error::new(
            Exit::DataErr,
            "--until: the backup records no binlog coordinates (its server had no binary log)",
        )),
        None => Err(Error::new(
            Exit::DataErr,
            "--until: the archive records no mysql-lock-hold status, so no binlog coordinates",
        )),
    }
}

/// " of <when the lock was taken>", or of when archiving started.
fn taken(manifest: &Manifest) -> String {
    let when = manifest
        .status
        .as_ref()
        .map_or(manifest.created.as_str(), |s| s.locked_at.as_str());
    format!(" of {when}")
}

/// --replay-tool, else mysql-binlog-replay beside this executable, else on PATH.
fn find_tool(given: Option<String>) -> Result<PathBuf> {
    sibling(
        given,
        "--replay-tool",
        REPLAY,
        "--until: ",
        "mysql-restore-dir",
    )
}

/// This command line's connection and logging options, for the replay.
fn forwarded(args: &Args) -> Vec<String> {
    let mut out = Vec::new();
    for name in CONNECTION {
        if let Some(value) = args.string(name) {
            out.push(format!("--{name}={value}"));
        }
    }
    for (name, _, _) in S3_OPTIONS {
        if let Some(value) = args.string(name) {
            out.push(format!("--{name}={value}"));
        }
    }
    for flag in ["no-defaults", "syslog"] {
        if args.flag(flag) {
            out.push(format!("--{flag}"));
        }
    }
    for _ in 0..args.matches.opt_count("verbose") {
        out.push("--verbose".to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<Option<Until>> {
        let args = crate::options::cli()
            .parse_from(argv.iter().map(|s| s.to_string()).collect())
            .unwrap();
        Until::from_args(
            &args,
            &Control::Service("mariadb".into()),
            Duration::from_secs(1),
        )
    }

    const ARCHIVE: &str = "--binlog-archive=s3://b/db1/";
    const TOOL: &str = "--replay-tool=/bin/true";

    #[test]
    fn until_and_its_companions() {
        assert!(parse(&[]).unwrap().is_none());
        let until = parse(&[
            "--until",
            "2026-12-02 10:14:59",
            ARCHIVE,
            TOOL,
            "-S",
            "/s",
            "--endpoint",
            "http://127.0.0.1:9000",
            "--region=eu-west-1",
            "-vv",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(until.target, Target::Time(1_796_206_499));
        assert_eq!(
            until.forwarded,
            [
                "--socket=/s",
                "--endpoint=http://127.0.0.1:9000",
                "--region=eu-west-1",
                "--verbose",
                "--verbose"
            ]
        );
        let gtid = parse(&["--until", "0-1-42", "--exclusive", ARCHIVE, TOOL])
            .unwrap()
            .unwrap();
        assert!(gtid.exclusive);
    }

    #[test]
    fn what_cannot_work_is_a_usage_error() {
        let time = "--until=2026-12-02 10:14:59";
        for (argv, says) in [
            (&[time, TOOL][..], "--until needs --binlog-archive"),
            (&[ARCHIVE][..], "go with --until"),
            (&["--binlog-epoch=e"][..], "go with --until"),
            (&["--endpoint=http://127.0.0.1:9000"][..], "go with --until"),
            (
                &["--until=soon", ARCHIVE, TOOL][..],
                "--until 'soon' is neither",
            ),
            (
                &[time, "--exclusive", ARCHIVE, TOOL][..],
                "--exclusive is for a GTID",
            ),
            (
                &[time, "--binlog-archive=b/db1/", TOOL][..],
                "not s3://BUCKET/PREFIX/",
            ),
            (
                &[time, ARCHIVE, TOOL, "--in-place"][..],
                "exclude each other",
            ),
            (
                &[time, ARCHIVE, TOOL, "--as-replica"][..],
                "exclude each other",
            ),
            (
                &[time, ARCHIVE, TOOL, "--no-manifest"][..],
                "drop --no-manifest",
            ),
        ] {
            let e = parse(argv)
                .err()
                .unwrap_or_else(|| panic!("{argv:?} accepted"));
            assert_eq!(e.code(), 64, "{argv:?}");
            assert!(e.message().contains(says), "{argv:?}: {}", e.message());
        }
        for argv in [
            &["--mysqld=/bin/true"][..],
            &[time, ARCHIVE, TOOL, "--mysqld-option=-x"],
        ] {
            let e = parse(argv)
                .err()
                .unwrap_or_else(|| panic!("{argv:?} accepted"));
            assert!(
                e.message().contains("go with --until and --no-server"),
                "{argv:?}"
            );
        }
        let args = crate::options::cli()
            .parse_from(
                [
                    time,
                    ARCHIVE,
                    TOOL,
                    "--mysqld=/bin/true",
                    "--mysqld-option=--no-defaults",
                ]
                .map(String::from)
                .to_vec(),
            )
            .unwrap();
        let until = Until::from_args(&args, &Control::NoServer, Duration::from_secs(1));
        assert!(
            until.unwrap().unwrap().private.is_some(),
            "a private server"
        );
    }
}
