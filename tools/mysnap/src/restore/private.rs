//! A private server: mariadbd (or mysqld) started on a restored directory
//! for one purpose (the replay of `mysql-restore-dir --until --no-server`,
//! a test restore), with no network and its socket, pid file and error log
//! in a private directory, then shut down cleanly. For the replay, the
//! machine's option files configure it, as they will the server that later
//! runs on DIR; a test restore gives --no-defaults.

use super::programs::{given_program, path_dirs, search};
use crate::cli::Args;
use crate::error::IoContext;
use crate::signals::Signals;
use crate::{child, Error, Exit, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{Gid, Pid, Uid, User};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to start the private server.
pub struct Spec {
    pub binary: PathBuf,
    /// First on its command line (--no-defaults and --defaults-file must
    /// be): --mysqld-option.
    pub options: Vec<String>,
    /// After the ones this module gives.
    pub extra: Vec<String>,
    /// How long it may take to answer, and to stop.
    pub wait: Duration,
    /// What it is for, in its messages: "replay", "test restore".
    pub purpose: &'static str,
}

/// A private server running on DIR.
pub struct Private {
    child: Child,
    dir: tempfile::TempDir,
    wait: Duration,
}

impl Spec {
    /// The replay's: --mysqld and --mysqld-option.
    pub fn from_args(args: &Args, wait: Duration) -> Result<Spec> {
        Ok(Spec {
            binary: find(
                args.string("mysqld"),
                &["mariadbd", "mysqld"],
                "--until with --no-server",
            )?,
            options: args.strings("mysqld-option"),
            extra: Vec::new(),
            wait,
            purpose: "replay",
        })
    }

    /// Starts the server on `datadir` as the owner of its files, and waits
    /// until it answers at its socket; `answers` connects there.
    pub fn start(
        &self,
        datadir: &Path,
        answers: impl Fn(&Path, Duration) -> Result<()>,
        signals: &Signals,
    ) -> Result<Private> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("mysnap-{}-", self.purpose.replace(' ', "-")))
            .tempdir()
            .ctx("creating the private server's directory")?;
        let mut cmd = Command::new(&self.binary);
        cmd.args(&self.options)
            .arg(format!("--datadir={}", datadir.display()))
            .args(["--skip-networking", "--skip-slave-start"])
            .arg(format!(
                "--socket={}",
                dir.path().join("mysqld.sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                dir.path().join("mysqld.pid").display()
            ))
            .arg(format!(
                "--log-error={}",
                dir.path().join("error.log").display()
            ))
            .args(&self.extra);
        // As root, the server runs as the owner of the restored files, who
        // needs the directory too. It is started as that user, since a
        // change of credentials (the server's own, for --user) clears the
        // parent-death signal set below; it is given --user all the same,
        // which a server that runs as root needs.
        let owner = if Uid::effective().is_root() {
            let meta = std::fs::metadata(datadir).ctx(format!("{}", datadir.display()))?;
            std::os::unix::fs::chown(dir.path(), Some(meta.uid()), None)
                .ctx("giving the private directory to the server's user")?;
            // A numeric id serves where no user has a name for it.
            let user = User::from_uid(Uid::from_raw(meta.uid()))
                .ok()
                .flatten()
                .map_or_else(|| meta.uid().to_string(), |u| u.name);
            cmd.arg(format!("--user={user}"));
            Some((Uid::from_raw(meta.uid()), Gid::from_raw(meta.gid())))
        } else {
            None
        };
        let parent = Pid::this();
        // SAFETY: between fork and exec the closure makes only
        // async-signal-safe system calls (setgroups, setgid, setuid,
        // prctl, getppid) and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if let Some((uid, gid)) = owner.filter(|(uid, _)| !uid.is_root()) {
                    nix::unistd::setgroups(&[gid])?;
                    nix::unistd::setgid(gid)?;
                    nix::unistd::setuid(uid)?;
                }
                // The server shuts down cleanly if this tool dies, killed
                // or not, instead of holding DIR for nobody; a parent gone
                // before the signal was set is seen as a new parent.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if nix::unistd::getppid() != parent {
                    return Err(std::io::Error::other("the restore that starts it is gone"));
                }
                Ok(())
            });
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        log::info!(
            "starting a private {} on {} for the {} (no network, socket in {})",
            self.binary.display(),
            datadir.display(),
            self.purpose,
            dir.path().display()
        );
        let child = child::spawn_command(&mut cmd)?;
        let mut private = Private {
            child,
            dir,
            wait: self.wait,
        };
        let started = Instant::now();
        loop {
            if let Some(status) = private.child.try_wait().ctx("waiting for the server")? {
                return Err(Error::new(
                    Exit::Unavailable,
                    format!(
                        "the private server {}{}",
                        child::describe(status),
                        private.logged()
                    ),
                ));
            }
            if let Err(stopped) = signals.check() {
                // The signal is what ends the restore; a server that would
                // not stop cleanly is said too, so that nobody thinks it
                // gone quietly.
                if let Err(e) = private.stop(signals) {
                    log::error!("{}", e.message());
                }
                return Err(stopped);
            }
            let left = self.wait.saturating_sub(started.elapsed());
            match answers(&private.socket(), Duration::ZERO) {
                Ok(()) => return Ok(private),
                Err(e) if left.is_zero() => {
                    let stopped = private.stop(signals);
                    return Err(e.context(format!(
                        "the private server did not answer within {}s{}",
                        self.wait.as_secs(),
                        stopped
                            .err()
                            .map_or_else(String::new, |s| format!(" ({})", s.message()))
                    )));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

impl Private {
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("mysqld.sock")
    }

    /// Shuts the server down with SIGTERM and waits for it to exit, up to
    /// the wait; one that does not is killed, and that is an error (InnoDB
    /// recovers DIR when it next starts).
    pub fn stop(mut self, signals: &Signals) -> Result<()> {
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + self.wait;
        let end = signals.wait_child(&mut self.child, Some(deadline), &mut |_| {})?;
        if end.over_time {
            return Err(Error::new(
                Exit::Unavailable,
                format!(
                    "the private server did not stop within {}s and was killed",
                    self.wait.as_secs()
                ),
            ));
        }
        if !end.status.success() {
            return Err(Error::new(
                Exit::Unavailable,
                format!(
                    "the private server {} on shutdown{}",
                    child::describe(end.status),
                    self.logged()
                ),
            ));
        }
        log::info!("the private server shut down cleanly");
        Ok(())
    }

    /// Its error log so far (crash recovery, errors), to keep or show.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// ": <its first error line>", the cause (the last is "Aborting"),
    /// from its error log, for a message.
    fn logged(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
        log.lines()
            .find(|l| l.contains("[ERROR]"))
            .map_or_else(String::new, |l| format!(": {}", l.trim()))
    }
}

/// --mysqld, else the first of `names` on PATH or in /usr/sbin; `what`
/// says in the error what wanted it.
pub fn find(given: Option<String>, names: &[&str], what: &str) -> Result<PathBuf> {
    if let Some(path) = given {
        return given_program("--mysqld", path);
    }
    let dirs = path_dirs().into_iter().chain([PathBuf::from("/usr/sbin")]);
    search(names, dirs).ok_or_else(|| {
        Error::new(
            Exit::NotFound,
            format!(
                "{what}: no {} on PATH or in /usr/sbin for the private server: give --mysqld",
                names.join(" or ")
            ),
        )
    })
}
