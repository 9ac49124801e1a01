//! The restore once the archive is read, as a state machine: staged →
//! stopped → swapped → started. Each step has an undo, run when a later
//! step fails, back to the server running on its previous data. An undo
//! that fails too stops where it is: the message then says where each
//! part of the data is and that the server stays down (exit 70), and
//! nothing is removed.

use crate::journal::{Done, Failed, Fs};
use crate::server::{self, Control};
use crate::swap::{Datadir, Names};
use mysnap::mysql::ConnectOptions;
use mysnap::{Error, Exit, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// A directory the restore replaces: the datadir, or one the archive's
/// layout names (`--include-layout`).
pub struct Target {
    pub dir: Datadir,
    pub names: Names,
}

impl Target {
    /// Refuses names that a previous restore left behind.
    pub fn new(dir: Datadir, stamp: &str) -> Result<Target> {
        let names = dir.names(stamp);
        for taken in [&names.staging, &names.old, &names.failed] {
            if std::fs::symlink_metadata(taken).is_ok() {
                return Err(Error::new(
                    Exit::CantCreate,
                    format!(
                        "{} already exists: remove or rename it, then retry",
                        taken.display()
                    ),
                ));
            }
        }
        Ok(Target { dir, names })
    }
}

/// The server on DIR, as the restore drives it.
pub trait Server {
    fn stop(&self) -> Result<()>;
    /// Starts it; it may answer only later.
    fn start(&self) -> Result<()>;
    /// Waits until the started server answers.
    fn wait(&self) -> Result<()>;
    /// The processes that hold a file in `dir`: a server still running on it.
    fn holders(&self, dir: &Path) -> Vec<u32>;
}

/// The real server: controlled by `control`, reached through `connect`.
pub struct Live {
    pub control: Control,
    pub connect: ConnectOptions,
    pub wait: Duration,
}

impl Server for Live {
    fn stop(&self) -> Result<()> {
        self.control.stop()
    }

    fn start(&self) -> Result<()> {
        self.control.start()
    }

    fn wait(&self) -> Result<()> {
        if matches!(self.control, Control::NoServer) {
            return Ok(());
        }
        match server::wait_ready(&self.connect, self.wait)? {
            server::Ready::Version(_) => Ok(()),
            // Up, and serving the restored data; only our query failed.
            server::Ready::Refused(why) => {
                log::warn!(
                    "the server is up on the restored data but refused mysql-restore-dir's \
                     connection ({why}): the restored grants may lack the user of its option \
                     files; the restore stands"
                );
                Ok(())
            }
        }
    }

    fn holders(&self, dir: &Path) -> Vec<u32> {
        server::holders(dir)
    }
}

/// What every step works with.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    pub server: &'a dyn Server,
    pub fs: &'a dyn Fs,
}

impl Env<'_> {
    /// Starts the server and waits for it; says how that went.
    fn restart(&self) -> String {
        match self.server.start().and_then(|()| self.server.wait()) {
            Ok(()) => "the server is running on it".to_string(),
            Err(e) => format!("but the server did not start: {}", e.message()),
        }
    }
}

/// Unpacks `stage`'s data into a staging root, filled by `stage`, while
/// the server serves; then stops, swaps, starts. `stage` returns what it
/// unpacked and the layout targets it staged, and removes what it staged
/// when it fails. `before_swap` looks at what was staged, the server still
/// running on the previous data: when it fails, the staging goes and
/// nothing changed.
pub fn staged<T>(
    env: Env,
    datadir: Target,
    stage: impl FnOnce(&Path) -> Result<(T, Vec<Target>)>,
    before_swap: impl FnOnce(&T) -> Result<()>,
) -> Result<(T, Duration)> {
    let (unpacked, layout) =
        stage(&datadir.names.staging).map_err(|e| e.context("nothing changed"))?;
    let targets: Vec<Target> = std::iter::once(datadir).chain(layout).collect();
    if let Err(e) = before_swap(&unpacked) {
        return Err(e.context(format!("nothing changed{}", remove_staging(&targets))));
    }
    let started = Staged { env, targets }.stop()?.swap()?.start()?;
    Ok((unpacked, started.downtime))
}

/// --in-place: stops, moves DIR's data aside, unpacks into DIR (`stage`
/// with DIR as its root), swaps the layout targets, starts.
pub fn in_place<T>(
    env: Env,
    datadir: Target,
    stage: impl FnOnce(&Path) -> Result<(T, Vec<Target>)>,
) -> Result<(T, Duration)> {
    let root = datadir.dir.dir.clone();
    let aside = Staged {
        env,
        targets: vec![datadir],
    }
    .stop()?
    .move_aside()?;
    match stage(&root) {
        Ok((unpacked, layout)) => {
            let started = aside.unpacked(layout)?.start()?;
            Ok((unpacked, started.downtime))
        }
        Err(e) => Err(aside.abandon(e)),
    }
}

/// Each target's data waits, verified and durable, in its staging
/// directory (in place: nothing is staged yet); the server runs on the
/// previous data.
struct Staged<'a> {
    env: Env<'a>,
    /// The datadir first.
    targets: Vec<Target>,
}

/// The server is down, on the previous data.
struct Stopped<'a> {
    env: Env<'a>,
    targets: Vec<Target>,
    down: Instant,
}

/// In place: DIR's previous data is kept aside and DIR is there to unpack
/// into; the server is down.
struct Aside<'a> {
    env: Env<'a>,
    /// The datadir only, until the layout targets are swapped.
    targets: Vec<Target>,
    down: Instant,
    kept: bool,
}

/// The restored data is in every target, the previous data kept aside;
/// the server is down.
struct Swapped<'a> {
    env: Env<'a>,
    targets: Vec<Target>,
    down: Instant,
    /// Per target: whether it had previous data, now kept aside.
    kept: Vec<bool>,
}

/// The server answers on the restored data.
struct Started {
    downtime: Duration,
}

impl<'a> Staged<'a> {
    /// Stops the server. Undo on failure: the staging directories go.
    fn stop(self) -> Result<Stopped<'a>> {
        if let Err(e) = self.env.server.stop() {
            return Err(e.context(format!("nothing changed{}", remove_staging(&self.targets))));
        }
        Ok(Stopped {
            env: self.env,
            targets: self.targets,
            down: Instant::now(),
        })
    }
}

impl<'a> Stopped<'a> {
    /// Swaps every target. Signals stay blocked, so a swap is never left
    /// half done. Undo on failure: the swaps done are undone, the server
    /// starts again, the staging directories go.
    fn swap(self) -> Result<Swapped<'a>> {
        let mut done = Vec::new();
        for target in &self.targets {
            match target.dir.swap(&target.names, self.env.fs) {
                Ok(swapped) => done.push(swapped),
                Err(failed) => {
                    let done = done.into_iter().map(|s| s.done).collect();
                    return Err(self.unswap(failed, done));
                }
            }
        }
        let kept = done.iter().map(|s| s.kept).collect();
        Ok(Swapped {
            env: self.env,
            targets: self.targets,
            down: self.down,
            kept,
        })
    }

    /// The swap of the target after `done` failed: undoes the swaps done,
    /// and once everything is back, starts the server and removes the
    /// staging directories.
    fn unswap(self, failed: Failed, done: Vec<Done>) -> Error {
        let cause = failed.cause.message();
        let stuck = undo_all(done, failed.stuck, self.env.fs);
        let dirs: Vec<String> = self
            .targets
            .iter()
            .map(|t| t.dir.dir.display().to_string())
            .collect();
        if stuck.is_empty() {
            let restart = self.env.restart();
            let left = remove_staging(&self.targets);
            let as_it_was = if dirs.len() == 1 {
                "left as it was"
            } else {
                "left as they were"
            };
            return Error::with_status(
                failed.cause.code(),
                format!(
                    "swap failed: {cause}; {} {as_it_was} ({restart}){left}",
                    dirs.join(", ")
                ),
            );
        }
        let state = describe(&self.targets, &stuck, |t, _| {
            format!("{} is as it was", t.dir.dir.display())
        });
        Error::new(
            Exit::Software,
            format!(
                "swap failed: {cause}; undoing it failed too: {state}; the server stays \
                 stopped and nothing was removed"
            ),
        )
    }

    /// --in-place: moves DIR's data aside and leaves DIR empty. Undo on
    /// failure: the server starts again on the previous data.
    fn move_aside(self) -> Result<Aside<'a>> {
        let datadir = &self.targets[0];
        let dir = datadir.dir.dir.display();
        match datadir.dir.move_aside(&datadir.names, self.env.fs) {
            Ok(swapped) => Ok(Aside {
                env: self.env,
                kept: swapped.kept,
                targets: self.targets,
                down: self.down,
            }),
            Err(Failed { cause, stuck: None }) => Err(cause.context(format!(
                "moving {dir} aside failed, and was undone ({})",
                self.env.restart()
            ))),
            Err(Failed {
                cause,
                stuck: Some(stuck),
            }) => Err(Error::new(
                Exit::Software,
                format!(
                    "moving {dir} aside failed: {}; undoing it failed too: {stuck}; the server \
                     stays stopped",
                    cause.message()
                ),
            )),
        }
    }
}

impl<'a> Aside<'a> {
    /// DIR holds the unpacked data: swaps the layout targets in. Undo on
    /// failure: the layout swaps done are undone, and `abandon`.
    fn unpacked(mut self, layout: Vec<Target>) -> Result<Swapped<'a>> {
        let mut done = Vec::new();
        let mut kept = vec![self.kept];
        for target in &layout {
            match target.dir.swap(&target.names, self.env.fs) {
                Ok(swapped) => {
                    kept.push(swapped.kept);
                    done.push(swapped.done);
                }
                Err(failed) => {
                    let stuck = undo_all(done, failed.stuck, self.env.fs);
                    self.targets.extend(layout);
                    if stuck.is_empty() {
                        return Err(self.abandon(failed.cause.context("swap failed")));
                    }
                    // Keys are offsets into `layout`; the datadir is targets[0].
                    let stuck = stuck.into_iter().map(|(i, s)| (i + 1, s)).collect();
                    let state = describe(&self.targets, &stuck, |t, i| {
                        if i == 0 {
                            where_now(t, self.kept)
                        } else {
                            format!("{} is as it was", t.dir.dir.display())
                        }
                    });
                    return Err(Error::new(
                        Exit::Software,
                        format!(
                            "swap failed: {}; undoing it failed too: {state}; the server stays \
                             stopped and nothing was removed",
                            failed.cause.message()
                        ),
                    ));
                }
            }
        }
        self.targets.extend(layout);
        Ok(Swapped {
            env: self.env,
            targets: self.targets,
            down: self.down,
            kept,
        })
    }

    /// Undoes the in-place restore after `cause`: the partly restored data
    /// in DIR goes, the previous data comes back, the server starts on it.
    fn abandon(self, cause: Error) -> Error {
        let datadir = &self.targets[0];
        let (dir, names) = (&datadir.dir, &datadir.names);
        let left = remove_staging(&self.targets);
        match dir.swap_back(names, self.kept, self.env.fs) {
            Ok(_) => {
                let left = left + &remove(&[names.failed.as_path()]);
                let back = if self.kept {
                    format!("previous data back in {}", dir.dir.display())
                } else {
                    format!("{} is as it was", dir.dir.display())
                };
                cause.context(format!("{back} ({}){left}", self.env.restart()))
            }
            Err(failed) => {
                let state = match failed.stuck {
                    None if self.kept => format!(
                        "undone: the partly restored data is in {}, the previous data in {}",
                        dir.dir.display(),
                        names.old.display()
                    ),
                    None => format!(
                        "undone: the partly restored data is in {}",
                        dir.dir.display()
                    ),
                    Some(stuck) => format!("undoing that failed too: {stuck}"),
                };
                Error::new(
                    Exit::Software,
                    format!(
                        "{}; putting the previous data back failed: {}; {state}; the server \
                         stays stopped",
                        cause.message(),
                        failed.cause.message()
                    ),
                )
            }
        }
    }
}

impl Swapped<'_> {
    /// Starts the server on the restored data. Undo on failure: the
    /// rollback.
    fn start(self) -> Result<Started> {
        match self
            .env
            .server
            .start()
            .and_then(|()| self.env.server.wait())
        {
            Ok(()) => {
                for (target, kept) in self.targets.iter().zip(&self.kept) {
                    if *kept {
                        log::info!("previous data kept in {}", target.names.old.display());
                    }
                }
                Ok(Started {
                    downtime: self.down.elapsed(),
                })
            }
            Err(cause) => Err(self.roll_back(cause)),
        }
    }

    /// Stops the server, puts the previous data back, starts the server on
    /// it. Never renames under a server that may still run: a failed stop
    /// is fine only when no process holds a file in DIR.
    fn roll_back(self, cause: Error) -> Error {
        if let Err(stop) = self.env.server.stop() {
            let dir = &self.targets[0].dir.dir;
            let holders = self.env.server.holders(dir);
            if !holders.is_empty() {
                let holders: Vec<String> = holders.iter().map(u32::to_string).collect();
                return Error::new(
                    Exit::Software,
                    format!(
                        "{}; rolling back needs the server stopped, and {} (processes {} still \
                         hold files in {}): nothing was moved, {}",
                        cause.message(),
                        stop.message(),
                        holders.join(", "),
                        dir.display(),
                        self.where_now()
                    ),
                );
            }
            log::warn!(
                "{}; no process holds a file in {}, so the server is not running: rolling back",
                stop.message(),
                dir.display()
            );
        }
        self.put_back(cause)
    }

    /// The rollback's renames, all or nothing, and the restart.
    fn put_back(self, cause: Error) -> Error {
        let mut back = Vec::new();
        for (target, kept) in self.targets.iter().zip(&self.kept) {
            match target.dir.swap_back(&target.names, *kept, self.env.fs) {
                Ok(done) => back.push(done),
                Err(failed) => {
                    let stuck = undo_all(back, failed.stuck, self.env.fs);
                    let state = if stuck.is_empty() {
                        format!("undone: {}", self.where_now())
                    } else {
                        let kept = &self.kept;
                        let state = describe(&self.targets, &stuck, |t, i| where_now(t, kept[i]));
                        format!("undoing that failed too: {state}")
                    };
                    return Error::new(
                        Exit::Software,
                        format!(
                            "{}; rolling back failed: {}; {state}; the server stays stopped",
                            cause.message(),
                            failed.cause.message()
                        ),
                    );
                }
            }
        }
        let back: Vec<String> = self
            .targets
            .iter()
            .zip(&self.kept)
            .map(|(t, kept)| rolled_back(t, *kept))
            .collect();
        Error::new(
            Exit::Unavailable,
            format!(
                "{}; rolled back: {} ({})",
                cause.message(),
                back.join("; "),
                self.env.restart()
            ),
        )
    }

    fn where_now(&self) -> String {
        let all: Vec<String> = self
            .targets
            .iter()
            .zip(&self.kept)
            .map(|(t, kept)| where_now(t, *kept))
            .collect();
        all.join("; ")
    }
}

/// Where a swapped target's data is.
fn where_now(target: &Target, kept: bool) -> String {
    let dir = target.dir.dir.display();
    if kept {
        format!(
            "the restored data is in {dir}, the previous data in {}",
            target.names.old.display()
        )
    } else {
        format!("the restored data is in {dir}, which had no previous data")
    }
}

/// Where a rolled-back target's data is.
fn rolled_back(target: &Target, kept: bool) -> String {
    let (dir, failed) = (target.dir.dir.display(), target.names.failed.display());
    if kept {
        format!("the restored data is in {failed}, the previous data is back in {dir}")
    } else {
        format!("the restored data is in {failed}, {dir} is as it was")
    }
}

/// Undoes `done` in reverse, after the target past them failed with
/// `stuck` (None when its own undo worked). Returns, by target index,
/// what each undo that failed says.
fn undo_all(done: Vec<Done>, stuck: Option<String>, fs: &dyn Fs) -> BTreeMap<usize, String> {
    let mut failed: BTreeMap<usize, String> = stuck.into_iter().map(|s| (done.len(), s)).collect();
    for (index, done) in done.into_iter().enumerate().rev() {
        if let Err(stuck) = done.undo(fs) {
            failed.insert(index, stuck);
        }
    }
    failed
}

/// Every target's state: what its failed undo says, else `state`.
fn describe(
    targets: &[Target],
    stuck: &BTreeMap<usize, String>,
    state: impl Fn(&Target, usize) -> String,
) -> String {
    let all: Vec<String> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| stuck.get(&i).cloned().unwrap_or_else(|| state(t, i)))
        .collect();
    all.join("; ")
}

/// Removes the targets' staging directories; says which could not be.
pub fn remove_staging(targets: &[Target]) -> String {
    let staging: Vec<&Path> = targets.iter().map(|t| t.names.staging.as_path()).collect();
    remove(&staging)
}

/// Removes `dirs` with their contents (a missing one is fine); says which
/// could not be removed, for the end of a message.
pub fn remove(dirs: &[&Path]) -> String {
    let failed: Vec<String> = dirs
        .iter()
        .filter_map(|dir| match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Some(format!("{}: {e}", dir.display()))
            }
            _ => None,
        })
        .collect();
    if failed.is_empty() {
        String::new()
    } else {
        format!(" (but removing failed for {})", failed.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::testing::{tree, Call, Failing};
    use crate::journal::RealFs;
    use crate::swap::tests::{fixture, Before, Fixture};
    use std::cell::RefCell;

    /// A server that fails the calls listed by name and count (from 1),
    /// and records every call.
    #[derive(Default)]
    struct Fake {
        fail: Vec<(&'static str, usize)>,
        holders: Vec<u32>,
        calls: RefCell<Vec<&'static str>>,
    }

    impl Fake {
        fn failing(fail: &[(&'static str, usize)]) -> Fake {
            Fake {
                fail: fail.to_vec(),
                ..Fake::default()
            }
        }

        fn call(&self, what: &'static str) -> Result<()> {
            self.calls.borrow_mut().push(what);
            let nth = self.calls.borrow().iter().filter(|&&c| c == what).count();
            if self.fail.contains(&(what, nth)) {
                return Err(Error::new(
                    Exit::Unavailable,
                    format!("{what} #{nth} failed"),
                ));
            }
            Ok(())
        }

        fn calls(&self) -> Vec<&'static str> {
            self.calls.borrow().clone()
        }
    }

    impl Server for Fake {
        fn stop(&self) -> Result<()> {
            self.call("stop")
        }
        fn start(&self) -> Result<()> {
            self.call("start")
        }
        fn wait(&self) -> Result<()> {
            self.call("wait")
        }
        fn holders(&self, _: &Path) -> Vec<u32> {
            self.holders.clone()
        }
    }

    /// A fixture's DIR as a target, with the temp dir that holds it.
    fn target(f: Fixture) -> (tempfile::TempDir, Target) {
        let Fixture { tmp, dir, names } = f;
        (tmp, Target { dir, names })
    }

    /// The staged restore of a fixture whose data is already staged.
    fn staged_restore(target: Target, server: &Fake, fs: &dyn Fs) -> Result<Duration> {
        let env = Env { server, fs };
        staged(env, target, |_| Ok(((), Vec::new())), |_: &()| Ok(())).map(|((), down)| down)
    }

    fn read(path: &Path) -> String {
        String::from_utf8(std::fs::read(path).unwrap()).unwrap()
    }

    const STOP_START: [&str; 3] = ["stop", "start", "wait"];

    #[test]
    fn a_restore_stops_swaps_and_starts() {
        let (_tmp, t) = target(fixture(false, Before::Data));
        let (dir, old) = (t.dir.dir.clone(), t.names.old.clone());
        let server = Fake::default();
        staged_restore(t, &server, &RealFs).unwrap();
        assert_eq!(server.calls(), STOP_START);
        assert_eq!(read(&dir.join("ibdata1")), "new");
        assert_eq!(read(&old.join("ibdata1")), "old");
    }

    #[test]
    fn a_server_that_does_not_start_gets_its_previous_data_back() {
        for mount_point in [false, true] {
            let (_tmp, t) = target(fixture(mount_point, Before::Data));
            let (dir, names) = (t.dir.dir.clone(), t.names.clone());
            let server = Fake::failing(&[("wait", 1)]);
            let e = staged_restore(t, &server, &RealFs).unwrap_err();
            assert_eq!(e.code(), Exit::Unavailable as i32);
            assert_eq!(
                e.message(),
                format!(
                    "wait #1 failed; rolled back: the restored data is in {}, the previous \
                     data is back in {} (the server is running on it)",
                    names.failed.display(),
                    dir.display()
                )
            );
            assert_eq!(server.calls(), [STOP_START, STOP_START].concat());
            assert_eq!(read(&dir.join("ibdata1")), "old");
            assert_eq!(read(&names.failed.join("t/items.ibd")), "new");
            assert!(!names.old.exists() && !names.staging.exists());
        }
    }

    #[test]
    fn a_failed_stop_with_a_process_holding_dir_renames_nothing() {
        let (tmp, t) = target(fixture(false, Before::Data));
        let (dir, old) = (t.dir.dir.clone(), t.names.old.clone());
        let server = Fake {
            holders: vec![4242],
            ..Fake::failing(&[("wait", 1), ("stop", 2)])
        };
        let e = staged_restore(t, &server, &RealFs).unwrap_err();
        assert_eq!(e.code(), Exit::Software as i32);
        assert_eq!(
            e.message(),
            format!(
                "wait #1 failed; rolling back needs the server stopped, and stop #2 failed \
                 (processes 4242 still hold files in {dir}): nothing was moved, the restored \
                 data is in {dir}, the previous data in {old}",
                dir = dir.display(),
                old = old.display()
            )
        );
        assert_eq!(server.calls(), ["stop", "start", "wait", "stop"]);
        assert_eq!(read(&dir.join("ibdata1")), "new");
        assert_eq!(read(&old.join("ibdata1")), "old");
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(left.len(), 2, "DIR and DIR.old only");
    }

    #[test]
    fn a_failed_stop_with_no_process_holding_dir_rolls_back() {
        let (_tmp, t) = target(fixture(false, Before::Data));
        let dir = t.dir.dir.clone();
        let server = Fake::failing(&[("wait", 1), ("stop", 2)]);
        let e = staged_restore(t, &server, &RealFs).unwrap_err();
        assert_eq!(e.code(), Exit::Unavailable as i32);
        assert!(e.message().contains("; rolled back: "), "{e}");
        assert_eq!(read(&dir.join("ibdata1")), "old");
    }

    #[test]
    fn a_rollback_whose_undo_fails_tells_the_real_state() {
        let (_tmp, t) = target(fixture(false, Before::Data));
        let (dir, names) = (t.dir.dir.clone(), t.names.clone());
        let (d, old, failed) = (dir.display(), names.old.display(), names.failed.display());
        // Renames: the swap's 1 and 2; the rollback's 3 (DIR to failed)
        // and 4 (old to DIR), which fails; its undo, 5, fails too.
        let fs = Failing::new(&[(Call::Rename, 4), (Call::Rename, 5)]);
        let server = Fake::failing(&[("wait", 1)]);
        let e = staged_restore(t, &server, &fs).unwrap_err();
        assert_eq!(e.code(), Exit::Software as i32);
        assert_eq!(
            e.message(),
            format!(
                "wait #1 failed; rolling back failed: renaming {old} to {d}: Input/output \
                 error (os error 5); undoing that failed too: renaming {failed} back to {d}: \
                 Input/output error (os error 5); now the restored data is in {failed}, the \
                 previous data is in {old}; the server stays stopped"
            )
        );
        assert_eq!(server.calls(), ["stop", "start", "wait", "stop"]);
        assert!(!dir.exists());
        assert_eq!(read(&names.failed.join("ibdata1")), "new");
        assert_eq!(read(&names.old.join("ibdata1")), "old");
    }

    #[test]
    fn a_rollback_that_fails_is_undone_and_the_server_stays_stopped() {
        let (_tmp, t) = target(fixture(false, Before::Data));
        let (dir, old) = (t.dir.dir.clone(), t.names.old.clone());
        let fs = Failing::new(&[(Call::Rename, 4)]);
        let server = Fake::failing(&[("wait", 1)]);
        let e = staged_restore(t, &server, &fs).unwrap_err();
        assert_eq!(e.code(), Exit::Software as i32);
        assert!(
            e.message().ends_with(&format!(
                "; undone: the restored data is in {}, the previous data in {}; the server \
                 stays stopped",
                dir.display(),
                old.display()
            )),
            "{e}"
        );
        assert_eq!(server.calls(), ["stop", "start", "wait", "stop"]);
        assert_eq!(read(&dir.join("ibdata1")), "new");
    }

    /// --until's check: the server is never stopped, the staging goes.
    #[test]
    fn a_failed_check_before_the_swap_changes_nothing() {
        let (tmp, t) = target(fixture(false, Before::Data));
        let (ltmp, layout) = target(fixture(false, Before::Data));
        let staging = [t.names.staging.clone(), layout.names.staging.clone()];
        let unstaged = |dir: &Path, staging: &Path| -> Vec<_> {
            tree(dir)
                .into_iter()
                .filter(|(name, _)| !dir.join(name).starts_with(staging))
                .collect()
        };
        let before = (
            unstaged(tmp.path(), &staging[0]),
            unstaged(ltmp.path(), &staging[1]),
        );
        let server = Fake::default();
        let env = Env {
            server: &server,
            fs: &RealFs,
        };
        let refuse = |_: &()| Err(Error::new(Exit::DataErr, "the archive ends too soon"));
        let e = staged(env, t, |_| Ok(((), vec![layout])), refuse).unwrap_err();
        assert_eq!(e.code(), Exit::DataErr as i32);
        assert_eq!(e.message(), "nothing changed: the archive ends too soon");
        assert!(server.calls().is_empty(), "the server was not stopped");
        assert_eq!((tree(tmp.path()), tree(ltmp.path())), before);
        assert!(staging.iter().all(|s| !s.exists()));
    }

    #[test]
    fn a_failed_stop_changes_nothing() {
        let (tmp, t) = target(fixture(false, Before::Data));
        let staging = t.names.staging.clone();
        std::fs::remove_dir_all(&staging).unwrap();
        let before = tree(tmp.path());
        std::fs::create_dir(&staging).unwrap();
        let server = Fake::failing(&[("stop", 1)]);
        let e = staged_restore(t, &server, &RealFs).unwrap_err();
        assert_eq!(e.code(), Exit::Unavailable as i32);
        assert_eq!(e.message(), "nothing changed: stop #1 failed");
        assert_eq!(server.calls(), ["stop"]);
        assert_eq!(tree(tmp.path()), before, "the staging directory is gone");
    }

    #[test]
    fn a_failed_swap_is_undone_and_the_server_restarts() {
        for mount_point in [false, true] {
            let (tmp, t) = target(fixture(mount_point, Before::Data));
            let dir = t.dir.dir.clone();
            let staging = t.names.staging.clone();
            let before: Vec<_> = tree(tmp.path())
                .into_iter()
                .filter(|(name, _)| !tmp.path().join(name).starts_with(&staging))
                .collect();
            // Beside, the second rename (staging to DIR); inside, the
            // fifth (the second staged entry).
            let nth = if mount_point { 5 } else { 2 };
            let fs = Failing::new(&[(Call::Rename, nth)]);
            let server = Fake::default();
            let e = staged_restore(t, &server, &fs).unwrap_err();
            assert_eq!(e.code(), Exit::IoErr as i32);
            assert!(e.message().starts_with("swap failed: renaming "), "{e}");
            assert!(
                e.message().ends_with(&format!(
                    "{} left as it was (the server is running on it)",
                    dir.display()
                )),
                "{e}"
            );
            assert_eq!(server.calls(), STOP_START);
            assert_eq!(tree(tmp.path()), before, "as it was, staging removed");
        }
    }

    #[test]
    fn a_swap_whose_undo_fails_leaves_the_server_stopped_and_removes_nothing() {
        let (_tmp, t) = target(fixture(false, Before::Data));
        let (dir, names) = (t.dir.dir.clone(), t.names.clone());
        let fs = Failing::new(&[(Call::Rename, 2), (Call::Rename, 3)]);
        let server = Fake::default();
        let e = staged_restore(t, &server, &fs).unwrap_err();
        assert_eq!(e.code(), Exit::Software as i32);
        assert_eq!(
            e.message(),
            format!(
                "swap failed: renaming {staging} to {d}: Input/output error (os error 5); \
                 undoing it failed too: renaming {old} back to {d}: Input/output error (os \
                 error 5); now the previous data is in {old}, the restored data is in \
                 {staging}; the server stays stopped and nothing was removed",
                d = dir.display(),
                old = names.old.display(),
                staging = names.staging.display()
            )
        );
        assert_eq!(server.calls(), ["stop"], "never started on a missing DIR");
        assert_eq!(read(&names.staging.join("ibdata1")), "new");
    }

    /// A layout target whose swap fails undoes the datadir's swap, done
    /// before it, back to the staging directory: nothing of the restore
    /// is left anywhere.
    #[test]
    fn a_failed_layout_swap_undoes_the_datadir_swap() {
        let (tmp, t) = target(fixture(false, Before::Data));
        let (ltmp, layout) = target(fixture(false, Before::Data));
        let unstaged = |dir: &Path, staging: &Path| -> Vec<_> {
            tree(dir)
                .into_iter()
                .filter(|(name, _)| !dir.join(name).starts_with(staging))
                .collect()
        };
        let before = unstaged(tmp.path(), &t.names.staging);
        let layout_before = unstaged(ltmp.path(), &layout.names.staging);
        let dirs = format!("{}, {}", t.dir.dir.display(), layout.dir.dir.display());
        // Renames 1 and 2 swap the datadir; 3, the layout's first, fails.
        let fs = Failing::new(&[(Call::Rename, 3)]);
        let server = Fake::default();
        let env = Env {
            server: &server,
            fs: &fs,
        };
        let e = staged(env, t, |_| Ok(((), vec![layout])), |_: &()| Ok(())).unwrap_err();
        assert!(
            e.message().ends_with(&format!(
                "{dirs} left as they were (the server is running on it)"
            )),
            "{e}"
        );
        assert_eq!(tree(tmp.path()), before);
        assert_eq!(tree(ltmp.path()), layout_before);
    }

    /// An in-place restore whose unpack writes part of a file, then fails.
    fn in_place_failing_unpack(t: Target, server: &Fake, fs: &dyn Fs) -> Error {
        let env = Env { server, fs };
        in_place(env, t, |root| -> Result<((), Vec<Target>)> {
            std::fs::write(root.join("ibdata1"), "partial").unwrap();
            Err(Error::new(Exit::DataErr, "bad archive"))
        })
        .unwrap_err()
    }

    #[test]
    fn in_place_a_failed_unpack_brings_the_previous_data_back() {
        let (tmp, t) = target(fixture(false, Before::Data));
        std::fs::remove_dir_all(&t.names.staging).unwrap();
        let before = tree(tmp.path());
        let dir = t.dir.dir.clone();
        let server = Fake::default();
        let e = in_place_failing_unpack(t, &server, &RealFs);
        assert_eq!(e.code(), Exit::DataErr as i32);
        assert_eq!(
            e.message(),
            format!(
                "previous data back in {} (the server is running on it): bad archive",
                dir.display()
            )
        );
        assert_eq!(server.calls(), STOP_START);
        assert_eq!(tree(tmp.path()), before);
    }

    /// The previous data cannot come back: the server must not start on
    /// the partly restored DIR.
    #[test]
    fn in_place_a_failed_put_back_leaves_the_server_stopped() {
        let (_tmp, t) = target(fixture(false, Before::Data));
        std::fs::remove_dir_all(&t.names.staging).unwrap();
        let (dir, old) = (t.dir.dir.clone(), t.names.old.clone());
        // Rename 1 moves DIR aside; 2, DIR to failed, fails.
        let fs = Failing::new(&[(Call::Rename, 2)]);
        let server = Fake::default();
        let e = in_place_failing_unpack(t, &server, &fs);
        assert_eq!(e.code(), Exit::Software as i32);
        assert!(
            e.message().ends_with(&format!(
                "; undone: the partly restored data is in {}, the previous data in {}; the \
                 server stays stopped",
                dir.display(),
                old.display()
            )),
            "{e}"
        );
        assert_eq!(server.calls(), ["stop"]);
        assert_eq!(read(&old.join("ibdata1")), "old");
    }

    #[test]
    fn in_place_restores_and_starts() {
        let (_tmp, t) = target(fixture(true, Before::Data));
        std::fs::remove_dir_all(&t.names.staging).unwrap();
        let (dir, old) = (t.dir.dir.clone(), t.names.old.clone());
        let server = Fake::default();
        let env = Env {
            server: &server,
            fs: &RealFs,
        };
        in_place(env, t, |root| -> Result<((), Vec<Target>)> {
            std::fs::write(root.join("ibdata1"), "new").unwrap();
            Ok(((), Vec::new()))
        })
        .unwrap();
        assert_eq!(server.calls(), STOP_START);
        assert_eq!(read(&dir.join("ibdata1")), "new");
        assert_eq!(read(&old.join("ibdata1")), "old");
        assert!(dir.join("lost+found").is_dir());
    }
}
