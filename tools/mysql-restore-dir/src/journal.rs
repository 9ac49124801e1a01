//! All-or-nothing changes to directories: every rename, directory created
//! and directory removed is recorded as it is done, and a failure undoes
//! the record in reverse. An undo that fails too stops at that step, so
//! each set of entries sits in one known place or is split by a known
//! list, and the error says which.
//!
//! The filesystem calls go through `Fs`, so that the tests can make any
//! one of them fail.

use mysnap::error::IoContext;
use mysnap::{Error, Result};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// The filesystem calls a swap makes.
pub trait Fs {
    /// Renames `from` to `to`, never replacing an entry at `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn create_dir(&self, dir: &Path, mode: u32) -> io::Result<()>;
    /// Removes an empty directory.
    fn remove_dir(&self, dir: &Path) -> io::Result<()>;
    /// The names in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// Makes the renames in `dir` durable.
    fn sync(&self, dir: &Path) -> io::Result<()>;
}

/// The real filesystem.
pub struct RealFs;

impl Fs for RealFs {
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
            // A filesystem without RENAME_NOREPLACE: look first, then rename.
            Err(rustix::io::Errno::INVAL) => {
                if fs::symlink_metadata(to).is_ok() {
                    return Err(io::ErrorKind::AlreadyExists.into());
                }
                fs::rename(from, to)
            }
            result => result.map_err(io::Error::from),
        }
    }

    fn create_dir(&self, dir: &Path, mode: u32) -> io::Result<()> {
        fs::DirBuilder::new().mode(mode).create(dir)
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        fs::remove_dir(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        fs::read_dir(dir)?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect()
    }

    fn sync(&self, dir: &Path) -> io::Result<()> {
        fs::File::open(dir)?.sync_all()
    }
}

/// A set of entries that moves together: the previous data, or the
/// restored data.
struct Group {
    what: &'static str,
    /// Where the entries were before the change.
    home: PathBuf,
    away: PathBuf,
    names: Vec<OsString>,
}

enum Step {
    /// An entry of `groups[group]` moved from `from` to `to`.
    Moved {
        group: usize,
        from: PathBuf,
        to: PathBuf,
    },
    Created(PathBuf),
    /// An empty directory removed, to recreate with `mode`.
    Removed {
        dir: PathBuf,
        mode: u32,
    },
}

/// What an operation changed so far, in order.
#[derive(Default)]
struct Journal {
    groups: Vec<Group>,
    steps: Vec<Step>,
    /// The directories to sync once the undo is done.
    sync_after_undo: Vec<PathBuf>,
}

/// A change that failed: why, and how far the undo got.
#[derive(Debug)]
pub struct Failed {
    pub cause: Error,
    /// None when the undo brought everything back (and made it durable);
    /// else which undo step failed, and where each set of entries is.
    pub stuck: Option<String>,
}

/// A change that is done and durable, kept to undo later.
pub struct Done {
    journal: Journal,
}

impl Done {
    /// Undoes the whole change; on failure, says which step failed and
    /// where each set of entries is.
    pub fn undo(self, fs: &dyn Fs) -> Result<(), String> {
        self.journal.undo(fs)
    }
}

/// A change under way.
pub struct Change<'a> {
    fs: &'a dyn Fs,
    journal: Journal,
}

impl<'a> Change<'a> {
    /// `sync_after_undo`: the directories whose entries an undo changes.
    pub fn new(fs: &'a dyn Fs, sync_after_undo: Vec<PathBuf>) -> Change<'a> {
        Change {
            fs,
            journal: Journal {
                sync_after_undo,
                ..Journal::default()
            },
        }
    }

    /// Renames `from` (itself the set of entries `what`) to `to`.
    pub fn rename(&mut self, what: &'static str, from: &Path, to: &Path) -> Result<()> {
        let name = from.file_name().unwrap_or(from.as_os_str()).to_os_string();
        let group = self.journal.group(what, from, to, vec![name]);
        self.renamed(group, from.to_path_buf(), to.to_path_buf())
    }

    /// Moves every entry of `from` (but the ones `stays` keeps) into `to`,
    /// in name order.
    pub fn move_entries(
        &mut self,
        what: &'static str,
        from: &Path,
        to: &Path,
        stays: fn(&OsStr) -> bool,
    ) -> Result<()> {
        let mut names: Vec<OsString> = self
            .fs
            .list(from)
            .ctx(format!("reading {}", from.display()))?
            .into_iter()
            .filter(|n| !stays(n))
            .collect();
        names.sort();
        let group = self.journal.group(what, from, to, names.clone());
        for name in names {
            self.renamed(group, from.join(&name), to.join(&name))?;
        }
        Ok(())
    }

    fn renamed(&mut self, group: usize, from: PathBuf, to: PathBuf) -> Result<()> {
        self.fs.rename(&from, &to).ctx(format!(
            "renaming {} to {}",
            from.display(),
            to.display()
        ))?;
        self.journal.steps.push(Step::Moved { group, from, to });
        Ok(())
    }

    pub fn create_dir(&mut self, dir: &Path, mode: u32) -> Result<()> {
        self.fs
            .create_dir(dir, mode)
            .ctx(format!("creating {}", dir.display()))?;
        self.journal.steps.push(Step::Created(dir.to_path_buf()));
        Ok(())
    }

    /// Removes the empty `dir`; the undo recreates it with `mode`.
    pub fn remove_dir(&mut self, dir: &Path, mode: u32) -> Result<()> {
        self.fs
            .remove_dir(dir)
            .ctx(format!("removing {}", dir.display()))?;
        self.journal.steps.push(Step::Removed {
            dir: dir.to_path_buf(),
            mode,
        });
        Ok(())
    }

    pub fn sync(&self, dir: &Path) -> Result<()> {
        self.fs.sync(dir).ctx(format!("syncing {}", dir.display()))
    }

    /// Ends the change: kept when `result` is Ok, else undone.
    pub fn end(self, result: Result<()>) -> Result<Done, Failed> {
        match result {
            Ok(()) => Ok(Done {
                journal: self.journal,
            }),
            Err(cause) => Err(Failed {
                cause,
                stuck: self.journal.undo(self.fs).err(),
            }),
        }
    }
}

impl Journal {
    fn group(
        &mut self,
        what: &'static str,
        home: &Path,
        away: &Path,
        names: Vec<OsString>,
    ) -> usize {
        self.groups.push(Group {
            what,
            home: home.to_path_buf(),
            away: away.to_path_buf(),
            names,
        });
        self.groups.len() - 1
    }

    /// Undoes the steps in reverse, stopping at the first that fails.
    fn undo(mut self, fs: &dyn Fs) -> Result<(), String> {
        while let Some(step) = self.steps.last() {
            let undone = match step {
                Step::Moved { from, to, .. } => fs.rename(to, from).ctx(format!(
                    "renaming {} back to {}",
                    to.display(),
                    from.display()
                )),
                Step::Created(dir) => fs
                    .remove_dir(dir)
                    .ctx(format!("removing {}", dir.display())),
                Step::Removed { dir, mode } => fs
                    .create_dir(dir, *mode)
                    .ctx(format!("recreating {}", dir.display())),
            };
            if let Err(e) = undone {
                return Err(format!("{}; now {}", e.message(), self.state()));
            }
            self.steps.pop();
        }
        for dir in &self.sync_after_undo {
            if let Err(e) = fs.sync(dir) {
                return Err(format!(
                    "syncing {}: {e}, so a crash may bring back part of the change; now {}",
                    dir.display(),
                    self.state()
                ));
            }
        }
        Ok(())
    }

    /// Where each set of entries is, with the steps still done.
    fn state(&self) -> String {
        let mut parts = Vec::new();
        for (index, group) in self.groups.iter().enumerate() {
            let away: Vec<&OsStr> = self
                .steps
                .iter()
                .filter_map(|step| match step {
                    Step::Moved { group, to, .. } if *group == index => to.file_name(),
                    _ => None,
                })
                .collect();
            parts.push(group.describe(&away));
        }
        for step in &self.steps {
            match step {
                Step::Created(dir) if !self.holds_moved(dir) => {
                    parts.push(format!("an empty {} is left", dir.display()))
                }
                Step::Removed { dir, .. } => {
                    parts.push(format!("{} (empty before) is missing", dir.display()))
                }
                _ => {}
            }
        }
        parts.join(", ")
    }

    fn holds_moved(&self, dir: &Path) -> bool {
        self.steps
            .iter()
            .any(|step| matches!(step, Step::Moved { to, .. } if to.parent() == Some(dir)))
    }
}

impl Group {
    /// Where the group is, given the names of its entries still moved.
    fn describe(&self, away: &[&OsStr]) -> String {
        if away.is_empty() {
            return format!("{} is in {}", self.what, self.home.display());
        }
        if away.len() == self.names.len() {
            return format!("{} is in {}", self.what, self.away.display());
        }
        let home: Vec<&OsStr> = self
            .names
            .iter()
            .map(OsString::as_os_str)
            .filter(|n| !away.contains(n))
            .collect();
        // The shorter list is named; the other side holds the rest.
        let (listed, there, others) = if away.len() <= home.len() {
            (away, &self.away, &self.home)
        } else {
            (&home[..], &self.home, &self.away)
        };
        let names: Vec<String> = listed.iter().map(|n| n.to_string_lossy().into()).collect();
        format!(
            "{} is split: {} holds {} ({} of its {} entries), {} the rest",
            self.what,
            there.display(),
            names.join(", "),
            listed.len(),
            self.names.len(),
            others.display()
        )
    }
}

/// A filesystem that fails chosen calls, for the tests.
#[cfg(test)]
pub mod testing {
    use super::*;
    use std::cell::RefCell;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Call {
        Rename,
        CreateDir,
        RemoveDir,
        List,
        Sync,
    }

    /// The real filesystem, but the nth call of each listed kind fails
    /// (counted from 1, per kind) with EIO.
    pub struct Failing {
        fail: Vec<(Call, usize)>,
        calls: RefCell<Vec<Call>>,
    }

    impl Failing {
        pub fn new(fail: &[(Call, usize)]) -> Failing {
            Failing {
                fail: fail.to_vec(),
                calls: RefCell::new(Vec::new()),
            }
        }

        /// How many calls of `kind` were made.
        pub fn count(&self, kind: Call) -> usize {
            self.calls.borrow().iter().filter(|&&c| c == kind).count()
        }

        fn call(&self, kind: Call) -> io::Result<()> {
            self.calls.borrow_mut().push(kind);
            if self.fail.contains(&(kind, self.count(kind))) {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            Ok(())
        }
    }

    impl Fs for Failing {
        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            self.call(Call::Rename)?;
            RealFs.rename(from, to)
        }
        fn create_dir(&self, dir: &Path, mode: u32) -> io::Result<()> {
            self.call(Call::CreateDir)?;
            RealFs.create_dir(dir, mode)
        }
        fn remove_dir(&self, dir: &Path) -> io::Result<()> {
            self.call(Call::RemoveDir)?;
            RealFs.remove_dir(dir)
        }
        fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
            self.call(Call::List)?;
            RealFs.list(dir)
        }
        fn sync(&self, dir: &Path) -> io::Result<()> {
            self.call(Call::Sync)?;
            RealFs.sync(dir)
        }
    }

    /// Every entry under `dir`, with a file's contents: what "as it was" means.
    pub fn tree(dir: &Path) -> Vec<(String, Option<Vec<u8>>)> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Option<Vec<u8>>)>) {
            for entry in fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                if path.is_dir() {
                    out.push((rel + "/", None));
                    walk(root, &path, out);
                } else {
                    out.push((rel, Some(fs::read(&path).unwrap())));
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, dir, &mut out);
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    fn never(_: &OsStr) -> bool {
        false
    }

    /// `a/` holding x, y and z.
    fn three() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        fs::create_dir(&a).unwrap();
        for name in ["x", "y", "z"] {
            fs::write(a.join(name), name).unwrap();
        }
        (tmp, a, b)
    }

    fn move_all(fs: &dyn Fs, a: &Path, b: &Path) -> Result<Done, Failed> {
        let mut change = Change::new(fs, vec![a.to_path_buf()]);
        let result = change
            .create_dir(b, 0o700)
            .and_then(|()| change.move_entries("the data", a, b, never))
            .and_then(|()| change.sync(b));
        change.end(result)
    }

    #[test]
    fn a_rename_never_replaces_an_entry() {
        let (_tmp, a, _) = three();
        let e = RealFs.rename(&a.join("x"), &a.join("y")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(a.join("y")).unwrap(), b"y");
    }

    #[test]
    fn a_move_that_fails_part_way_is_undone() {
        let (tmp, a, b) = three();
        let before = tree(tmp.path());
        let fs = Failing::new(&[(Call::Rename, 3)]);
        let failed = move_all(&fs, &a, &b).err().unwrap();
        assert!(failed.cause.message().contains("/a/z to "), "{failed:?}");
        assert_eq!(failed.stuck, None);
        assert_eq!(tree(tmp.path()), before);
        // Three forward renames (the last failed), two back.
        assert_eq!(fs.count(Call::Rename), 5);
    }

    #[test]
    fn an_undo_that_fails_says_which_entries_are_where() {
        let (tmp, a, b) = three();
        // x and y moved, z failed; moving y back fails too.
        let fs = Failing::new(&[(Call::Rename, 3), (Call::Rename, 4)]);
        let failed = move_all(&fs, &a, &b).err().unwrap();
        let stuck = failed.stuck.unwrap();
        let (a, b) = (a.display(), b.display());
        assert_eq!(
            stuck,
            format!(
                "renaming {b}/y back to {a}/y: Input/output error (os error 5); now the data \
                 is split: {a} holds z (1 of its 3 entries), {b} the rest"
            )
        );
        assert!(tmp.path().join("b/x").exists() && tmp.path().join("b/y").exists());
        assert!(tmp.path().join("a/z").exists());
    }

    #[test]
    fn a_failed_sync_of_the_undo_is_told() {
        let (tmp, a, b) = three();
        let before = tree(tmp.path());
        // The change's own sync fails, then the undo's.
        let fs = Failing::new(&[(Call::Sync, 1), (Call::Sync, 2)]);
        let stuck = move_all(&fs, &a, &b).err().unwrap().stuck.unwrap();
        assert!(
            stuck.starts_with(&format!("syncing {}", a.display())),
            "{stuck}"
        );
        assert!(
            stuck.ends_with(&format!("now the data is in {}", a.display())),
            "{stuck}"
        );
        assert_eq!(tree(tmp.path()), before, "every rename is back");
    }

    #[test]
    fn an_empty_directory_left_by_the_undo_is_told() {
        let (tmp, a, b) = three();
        let fs = Failing::new(&[(Call::Rename, 2), (Call::RemoveDir, 1)]);
        let stuck = move_all(&fs, &a, &b).err().unwrap().stuck.unwrap();
        assert!(
            stuck.ends_with(&format!(
                "now the data is in {}, an empty {} is left",
                a.display(),
                b.display()
            )),
            "{stuck}"
        );
        assert!(tmp.path().join("b").is_dir());
    }
}
