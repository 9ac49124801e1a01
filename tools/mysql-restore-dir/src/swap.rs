//! The data directory, the names around it, and the swap: staged data in,
//! previous data kept aside, both by rename within one filesystem, so the
//! server is down only for the renames however large the data.
//!
//! A DIR that is a mount point cannot be renamed (EBUSY), and nothing
//! beside it is on its filesystem. Then the staging and the previous data
//! live inside DIR, as `.mysnap-restore-<ts>` and `.mysnap-old-<ts>`, and
//! the swap moves DIR's entries, one rename each.
//!
//! Each swap is all or nothing (`journal`): a failure at any rename,
//! directory created or removed, or sync undoes what was done, and an undo
//! that fails too says where each part of the data is.

use crate::journal::{Change, Done, Failed, Fs};
use mysnap::error::IoContext;
use mysnap::{Error, Exit, Result};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Entries of a mount-point DIR that the swap leaves where they are.
fn stays(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    name == "lost+found" || name.starts_with(".mysnap-")
}

/// What DIR is before the restore.
#[derive(Debug)]
pub struct Datadir {
    pub dir: PathBuf,
    pub exists: bool,
    pub mount_point: bool,
    /// Holds nothing (a mount point's lost+found does not count).
    pub empty: bool,
    /// Looks like a MySQL data directory.
    pub is_datadir: bool,
}

/// The names one restore uses, all on DIR's filesystem.
#[derive(Debug, Clone)]
pub struct Names {
    pub staging: PathBuf,
    pub old: PathBuf,
    pub failed: PathBuf,
}

impl Datadir {
    pub fn inspect(dir: &Path) -> Result<Datadir> {
        let meta = match fs::metadata(dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Datadir {
                    dir: dir.to_path_buf(),
                    exists: false,
                    mount_point: false,
                    empty: true,
                    is_datadir: false,
                })
            }
            Err(e) => return Err(e).ctx(format!("--datadir {}", dir.display())),
        };
        if !meta.is_dir() {
            return Err(Error::usage(format!(
                "--datadir {} is not a directory",
                dir.display()
            )));
        }
        let parent = parent(dir);
        let parent_dev = fs::metadata(&parent)
            .ctx(format!("{}", parent.display()))?
            .dev();
        let mut empty = true;
        let mut is_datadir = false;
        for entry in fs::read_dir(dir).ctx(format!("reading {}", dir.display()))? {
            let name = entry.ctx("reading the data directory")?.file_name();
            if !stays(&name) {
                empty = false;
            }
            let name = name.to_string_lossy();
            if ["mysql", "ibdata1", "aria_log_control", "auto.cnf"].contains(&name.as_ref()) {
                is_datadir = true;
            }
        }
        Ok(Datadir {
            dir: dir.to_path_buf(),
            exists: true,
            mount_point: meta.dev() != parent_dev,
            empty,
            is_datadir,
        })
    }

    pub fn names(&self, stamp: &str) -> Names {
        if self.mount_point {
            let inside = |what: &str| self.dir.join(format!(".mysnap-{what}-{stamp}"));
            Names {
                staging: inside("restore"),
                old: inside("old"),
                failed: inside("failed"),
            }
        } else {
            Names {
                staging: sibling(&self.dir, "restore", stamp),
                old: sibling(&self.dir, "old", stamp),
                failed: sibling(&self.dir, "failed", stamp),
            }
        }
    }

    /// Puts the staged data in place of DIR and keeps DIR's data as
    /// `names.old`. All or nothing: a swap that fails is undone, and the
    /// returned `Done` undoes a finished one.
    pub fn swap(&self, names: &Names, fs: &dyn Fs) -> Result<Swap, Failed> {
        let kept = self.exists && !self.empty;
        let done = if self.mount_point {
            self.swap_inside(names, kept, fs)?
        } else {
            self.swap_beside(names, kept, fs)?
        };
        Ok(Swap { kept, done })
    }

    fn swap_beside(&self, names: &Names, kept: bool, fs: &dyn Fs) -> Result<Done, Failed> {
        let parent = self.parent();
        let mut change = Change::new(fs, vec![parent.clone()]);
        let result = (|| -> Result<()> {
            if kept {
                change.rename(PREVIOUS, &self.dir, &names.old)?;
            } else if self.exists {
                change.remove_dir(&self.dir, 0o777)?;
            }
            change.rename(RESTORED, &names.staging, &self.dir)?;
            change.sync(&parent)
        })();
        change.end(result)
    }

    fn swap_inside(&self, names: &Names, kept: bool, fs: &dyn Fs) -> Result<Done, Failed> {
        // The backed-up filesystem's lost+found gives way to this one's.
        let lost = names.staging.join("lost+found");
        if std::fs::symlink_metadata(&lost).is_ok_and(|m| m.is_dir()) {
            std::fs::remove_dir_all(&lost)
                .ctx(format!("removing {}", lost.display()))
                .map_err(|cause| Failed { cause, stuck: None })?;
        }
        let mut change = Change::new(fs, vec![names.staging.clone(), self.dir.clone()]);
        let result = (|| -> Result<()> {
            if kept {
                change.create_dir(&names.old, 0o777)?;
                change.move_entries(PREVIOUS, &self.dir, &names.old, stays)?;
            }
            change.move_entries(RESTORED, &names.staging, &self.dir, stays)?;
            change.remove_dir(&names.staging, 0o700)?;
            if kept {
                change.sync(&names.old)?;
            }
            change.sync(&self.dir)
        })();
        change.end(result)
    }

    /// For --in-place: keeps DIR's data as `names.old` and leaves DIR empty
    /// (created when missing) to unpack into. All or nothing, as `swap`;
    /// `swap_back` puts the previous data back.
    pub fn move_aside(&self, names: &Names, fs: &dyn Fs) -> Result<Swap, Failed> {
        let kept = self.exists && !self.empty;
        let synced = if self.mount_point {
            vec![self.dir.clone()]
        } else {
            vec![self.parent()]
        };
        let mut change = Change::new(fs, synced.clone());
        let result = (|| -> Result<()> {
            if kept && self.mount_point {
                change.create_dir(&names.old, 0o777)?;
                change.move_entries(PREVIOUS, &self.dir, &names.old, stays)?;
                change.sync(&names.old)?;
            } else if kept {
                change.rename(PREVIOUS, &self.dir, &names.old)?;
            }
            if !self.mount_point && (kept || !self.exists) {
                change.create_dir(&self.dir, 0o700)?;
            }
            synced.iter().try_for_each(|dir| change.sync(dir))
        })();
        let done = change.end(result)?;
        Ok(Swap { kept, done })
    }

    /// Undoes `swap` or `move_aside` for a rollback: the restored data in
    /// DIR goes to `names.failed`, the previous data (if `kept`) comes
    /// back. All or nothing, as `swap`.
    pub fn swap_back(&self, names: &Names, kept: bool, fs: &dyn Fs) -> Result<Done, Failed> {
        if self.mount_point {
            let mut synced = vec![self.dir.clone()];
            if kept {
                synced.push(names.old.clone());
            }
            let mut change = Change::new(fs, synced);
            let result = (|| -> Result<()> {
                change.create_dir(&names.failed, 0o777)?;
                change.move_entries(RESTORED, &self.dir, &names.failed, stays)?;
                if kept {
                    change.move_entries(PREVIOUS, &names.old, &self.dir, stays)?;
                    change.remove_dir(&names.old, 0o777)?;
                }
                change.sync(&names.failed)?;
                change.sync(&self.dir)
            })();
            change.end(result)
        } else {
            let parent = self.parent();
            let mut change = Change::new(fs, vec![parent.clone()]);
            let result = (|| -> Result<()> {
                change.rename(RESTORED, &self.dir, &names.failed)?;
                if kept {
                    change.rename(PREVIOUS, &names.old, &self.dir)?;
                } else if self.exists {
                    change.create_dir(&self.dir, 0o777)?;
                }
                change.sync(&parent)
            })();
            change.end(result)
        }
    }

    /// DIR's parent directory, whose entries a swap beside DIR changes.
    fn parent(&self) -> PathBuf {
        parent(&self.dir)
    }
}

fn parent(dir: &Path) -> PathBuf {
    match dir.parent() {
        Some(p) if p.as_os_str().is_empty() => PathBuf::from("."),
        Some(p) => p.to_path_buf(),
        None => PathBuf::from("/"),
    }
}

/// A finished swap (or move aside): whether DIR had previous data to
/// keep, and the record to undo it by.
pub struct Swap {
    pub kept: bool,
    pub done: Done,
}

const PREVIOUS: &str = "the previous data";
const RESTORED: &str = "the restored data";

/// `/var/lib/mysql` → `/var/lib/mysql.<what>-<stamp>`.
pub fn sibling(dir: &Path, what: &str, stamp: &str) -> PathBuf {
    let mut name = dir.as_os_str().to_os_string();
    name.push(format!(".{what}-{stamp}"));
    PathBuf::from(name)
}

/// Makes renames in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let handle = fs::File::open(dir).ctx(format!("opening {}", dir.display()))?;
    handle.sync_all().ctx(format!("syncing {}", dir.display()))
}

/// Makes everything written on `path`'s filesystem durable: one call
/// instead of an fsync per file.
pub fn sync_filesystem(path: &Path) -> Result<()> {
    let handle = fs::File::open(path).ctx(format!("opening {}", path.display()))?;
    nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&handle))
        .map_err(|e| Error::new(Exit::IoErr, format!("syncing {}: {e}", path.display())))
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::journal::testing::{tree, Call, Failing};
    use crate::journal::RealFs;

    /// What DIR holds before the restore.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub enum Before {
        Data,
        Empty,
        Missing,
    }

    pub struct Fixture {
        pub tmp: tempfile::TempDir,
        pub dir: Datadir,
        pub names: Names,
    }

    fn write(dir: &Path, files: &[&str], what: &str) {
        for file in files {
            let path = dir.join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, what).unwrap();
        }
    }

    /// DIR (`mysql` in a temp dir) as `before` says, and its staging
    /// directory filled. A mount point is played by a plain directory
    /// (the swap only picks its names by it), with a lost+found and an
    /// earlier restore's leftover, both of which stay.
    pub fn fixture(mount_point: bool, before: Before) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mysql");
        if before != Before::Missing {
            fs::create_dir(&dir).unwrap();
        }
        if before == Before::Data {
            write(
                &dir,
                &["ibdata1", "mysql/user.MAD", "aria_log_control"],
                "old",
            );
        }
        if mount_point {
            fs::create_dir(dir.join("lost+found")).unwrap();
            write(&dir, &[".mysnap-old-EARLIER/ibdata1"], "earlier");
        }
        let dir = Datadir {
            mount_point,
            ..Datadir::inspect(&dir).unwrap()
        };
        let names = dir.names("T");
        fs::create_dir(&names.staging).unwrap();
        write(
            &names.staging,
            &["ibdata1", "mysql/user.MAD", "t/items.ibd"],
            "new",
        );
        Fixture { tmp, dir, names }
    }

    type Op = fn(&Fixture, &dyn Fs) -> Result<(), Failed>;

    fn swap(f: &Fixture, fs: &dyn Fs) -> Result<(), Failed> {
        f.dir.swap(&f.names, fs).map(|_| ())
    }

    fn move_aside(f: &Fixture, fs: &dyn Fs) -> Result<(), Failed> {
        f.dir.move_aside(&f.names, fs).map(|_| ())
    }

    fn swap_back(f: &Fixture, fs: &dyn Fs) -> Result<(), Failed> {
        let kept = f.dir.exists && !f.dir.empty;
        f.dir.swap_back(&f.names, kept, fs).map(|_| ())
    }

    const CALLS: [Call; 5] = [
        Call::Rename,
        Call::CreateDir,
        Call::RemoveDir,
        Call::List,
        Call::Sync,
    ];

    /// Makes each filesystem call of `op` fail in turn, on a fresh
    /// fixture each time (after `first`, done for real): every failure
    /// must leave the tree exactly as it was.
    fn every_failure_is_undone(mount_point: bool, before: Before, first: Option<Op>, op: Op) {
        let setup = || {
            let f = fixture(mount_point, before);
            if let Some(first) = first {
                first(&f, &RealFs).unwrap();
            }
            f
        };
        let counted = Failing::new(&[]);
        op(&setup(), &counted).unwrap();
        let mut points = 0;
        for call in CALLS {
            for nth in 1..=counted.count(call) {
                let f = setup();
                let before_op = tree(f.tmp.path());
                let failed = op(&f, &Failing::new(&[(call, nth)])).err();
                let failed = failed.unwrap_or_else(|| panic!("{call:?} #{nth} did not fail"));
                assert_eq!(failed.stuck, None, "{call:?} #{nth}: {}", failed.cause);
                assert_eq!(tree(f.tmp.path()), before_op, "{call:?} #{nth}");
                points += 1;
            }
        }
        assert!(points > 0, "no failure points");
    }

    #[test]
    fn every_failure_of_a_swap_beside_is_undone() {
        for before in [Before::Data, Before::Empty, Before::Missing] {
            every_failure_is_undone(false, before, None, swap);
        }
    }

    #[test]
    fn every_failure_of_a_swap_inside_a_mount_point_is_undone() {
        for before in [Before::Data, Before::Empty] {
            every_failure_is_undone(true, before, None, swap);
        }
    }

    #[test]
    fn every_failure_of_a_move_aside_is_undone() {
        for before in [Before::Data, Before::Empty, Before::Missing] {
            every_failure_is_undone(false, before, None, move_aside);
        }
        for before in [Before::Data, Before::Empty] {
            every_failure_is_undone(true, before, None, move_aside);
        }
    }

    #[test]
    fn every_failure_of_a_swap_back_is_undone() {
        for before in [Before::Data, Before::Empty, Before::Missing] {
            every_failure_is_undone(false, before, Some(swap), swap_back);
        }
        for before in [Before::Data, Before::Empty] {
            every_failure_is_undone(true, before, Some(swap), swap_back);
        }
    }

    #[test]
    fn a_swap_inside_keeps_what_stays_and_a_swap_back_reverses_it() {
        let f = fixture(true, Before::Data);
        let dir = &f.dir.dir;
        let swapped = f.dir.swap(&f.names, &RealFs).unwrap();
        assert!(swapped.kept);
        assert_eq!(fs::read(dir.join("ibdata1")).unwrap(), b"new");
        assert_eq!(fs::read(f.names.old.join("ibdata1")).unwrap(), b"old");
        assert!(!f.names.staging.exists());
        assert!(dir.join("lost+found").is_dir());
        assert_eq!(
            fs::read(dir.join(".mysnap-old-EARLIER/ibdata1")).unwrap(),
            b"earlier"
        );
        f.dir.swap_back(&f.names, true, &RealFs).unwrap();
        assert_eq!(fs::read(dir.join("ibdata1")).unwrap(), b"old");
        assert_eq!(
            fs::read(f.names.failed.join("t/items.ibd")).unwrap(),
            b"new"
        );
        assert!(!f.names.old.exists());
    }

    /// The staging directory keeps an entry the swap leaves where it is:
    /// removing it fails (ENOTEMPTY) once everything else has moved.
    #[test]
    fn a_staging_directory_that_will_not_go_undoes_the_whole_swap() {
        let f = fixture(true, Before::Data);
        write(&f.names.staging, &[".mysnap-stray"], "x");
        let before = tree(f.tmp.path());
        let failed = f.dir.swap(&f.names, &RealFs).err().unwrap();
        assert!(
            failed.cause.message().starts_with(&format!(
                "removing {}: Directory not empty",
                f.names.staging.display()
            )),
            "{}",
            failed.cause
        );
        assert_eq!(failed.stuck, None);
        assert_eq!(tree(f.tmp.path()), before);
    }

    #[test]
    fn a_swap_inside_whose_undo_fails_says_where_each_part_is() {
        let f = fixture(true, Before::Data);
        // Renames 1-3 move the previous entries into old, 4-6 the staged
        // ones into DIR: the 5th fails, and so does moving the 4th back.
        let fs = Failing::new(&[(Call::Rename, 5), (Call::Rename, 6)]);
        let failed = f.dir.swap(&f.names, &fs).err().unwrap();
        let (dir, old, staging) = (
            f.dir.dir.display(),
            f.names.old.display(),
            f.names.staging.display(),
        );
        assert_eq!(
            failed.cause.message(),
            format!("renaming {staging}/mysql to {dir}/mysql: Input/output error (os error 5)")
        );
        assert_eq!(
            failed.stuck.unwrap(),
            format!(
                "renaming {dir}/ibdata1 back to {staging}/ibdata1: Input/output error (os \
                 error 5); now the previous data is in {old}, the restored data is split: \
                 {dir} holds ibdata1 (1 of its 3 entries), {staging} the rest"
            )
        );
        assert_eq!(fs::read(f.dir.dir.join("ibdata1")).unwrap(), b"new");
        assert_eq!(fs::read(f.names.old.join("ibdata1")).unwrap(), b"old");
        assert!(f.names.staging.join("mysql").is_dir());
        assert!(f.names.staging.join("t").is_dir());
    }

    #[test]
    fn a_swap_beside_reports_its_undo_errors_truthfully() {
        let f = fixture(false, Before::Data);
        let fs = Failing::new(&[(Call::Rename, 2), (Call::Rename, 3)]);
        let failed = f.dir.swap(&f.names, &fs).err().unwrap();
        let (dir, old, staging) = (
            f.dir.dir.display(),
            f.names.old.display(),
            f.names.staging.display(),
        );
        assert_eq!(
            failed.stuck.unwrap(),
            format!(
                "renaming {old} back to {dir}: Input/output error (os error 5); now the \
                 previous data is in {old}, the restored data is in {staging}"
            )
        );
        assert!(!f.dir.dir.exists());

        let f = fixture(false, Before::Empty);
        let fs = Failing::new(&[(Call::Rename, 1), (Call::CreateDir, 1)]);
        let failed = f.dir.swap(&f.names, &fs).err().unwrap();
        let (dir, staging) = (f.dir.dir.display(), f.names.staging.display());
        assert_eq!(
            failed.stuck.unwrap(),
            format!(
                "recreating {dir}: Input/output error (os error 5); now the restored data \
                 is in {staging}, {dir} (empty before) is missing"
            )
        );
    }

    #[test]
    fn names_sit_beside_a_plain_directory() {
        let d = Datadir {
            dir: PathBuf::from("/var/lib/mysql"),
            exists: true,
            mount_point: false,
            empty: false,
            is_datadir: true,
        };
        let n = d.names("20261123T101500Z");
        assert_eq!(
            n.staging,
            PathBuf::from("/var/lib/mysql.restore-20261123T101500Z")
        );
        assert_eq!(n.old, PathBuf::from("/var/lib/mysql.old-20261123T101500Z"));
        let m = Datadir {
            mount_point: true,
            ..d
        };
        assert_eq!(
            m.names("T").old,
            PathBuf::from("/var/lib/mysql/.mysnap-old-T")
        );
    }
}
