//! The data directory, the names around it, and the swap: staged data in,
//! previous data kept aside, both by rename within one filesystem, so the
//! server is down only for the renames however large the data.
//!
//! A DIR that is a mount point cannot be renamed (EBUSY), and nothing
//! beside it is on its filesystem. Then the staging and the previous data
//! live inside DIR, as `.mysnap-restore-<ts>` and `.mysnap-old-<ts>`, and
//! the swap moves DIR's entries, one rename each.

use mysnap::error::IoContext;
use mysnap::{Error, Exit, Result};
use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Entries of a mount-point DIR that the swap leaves where they are.
fn stays(name: &str) -> bool {
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
        let parent = dir.parent().unwrap_or(Path::new("/"));
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        let parent_dev = fs::metadata(parent)
            .ctx(format!("{}", parent.display()))?
            .dev();
        let mut empty = true;
        let mut is_datadir = false;
        for entry in fs::read_dir(dir).ctx(format!("reading {}", dir.display()))? {
            let name = entry.ctx("reading the data directory")?.file_name();
            let name = name.to_string_lossy();
            if !stays(&name) {
                empty = false;
            }
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
    /// `names.old`. Returns whether there was previous data to keep. A
    /// swap that fails part-way is undone as far as renames allow.
    pub fn swap(&self, names: &Names) -> Result<bool> {
        let kept = self.exists && !self.empty;
        if self.mount_point {
            self.swap_inside(names, kept)?;
        } else {
            self.swap_beside(names, kept)?;
        }
        Ok(kept)
    }

    fn swap_beside(&self, names: &Names, kept: bool) -> Result<()> {
        if kept {
            rename(&self.dir, &names.old)?;
        } else if self.exists {
            fs::remove_dir(&self.dir).ctx(format!("removing the empty {}", self.dir.display()))?;
        }
        if let Err(e) = rename(&names.staging, &self.dir) {
            if kept {
                let _ = fs::rename(&names.old, &self.dir);
            } else if self.exists {
                let _ = fs::create_dir(&self.dir);
            }
            return Err(e);
        }
        sync_dir(self.dir.parent().unwrap_or(Path::new("/")))
    }

    fn swap_inside(&self, names: &Names, kept: bool) -> Result<()> {
        // The backed-up filesystem's lost+found gives way to this one's.
        let lost = names.staging.join("lost+found");
        if fs::symlink_metadata(&lost).is_ok_and(|m| m.is_dir()) {
            fs::remove_dir_all(&lost).ctx(format!("removing {}", lost.display()))?;
        }
        if kept {
            fs::create_dir(&names.old).ctx(format!("creating {}", names.old.display()))?;
            if let Err(e) = move_entries(&self.dir, &names.old) {
                let _ = move_entries(&names.old, &self.dir);
                let _ = fs::remove_dir(&names.old);
                return Err(e);
            }
        }
        if let Err(e) = move_entries(&names.staging, &self.dir) {
            let _ = move_entries(&self.dir, &names.staging);
            if kept {
                let _ = move_entries(&names.old, &self.dir);
                let _ = fs::remove_dir(&names.old);
            }
            return Err(e);
        }
        fs::remove_dir(&names.staging).ctx(format!("removing {}", names.staging.display()))?;
        sync_dir(&self.dir)
    }

    /// For --in-place: keeps DIR's data as `names.old` and leaves DIR empty
    /// (created when missing) to unpack into. Returns whether there was
    /// previous data to keep; `swap_back` undoes it.
    pub fn move_aside(&self, names: &Names) -> Result<bool> {
        let kept = self.exists && !self.empty;
        if kept && self.mount_point {
            fs::create_dir(&names.old).ctx(format!("creating {}", names.old.display()))?;
            move_entries(&self.dir, &names.old)?;
        } else if kept {
            rename(&self.dir, &names.old)?;
        }
        if !self.dir.exists() {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&self.dir)
                .ctx(format!("creating {}", self.dir.display()))?;
        }
        sync_dir(self.dir.parent().unwrap_or(Path::new("/")))?;
        Ok(kept)
    }

    /// Undoes `swap`: the restored data goes to `names.failed`, the
    /// previous data comes back.
    pub fn swap_back(&self, names: &Names, kept: bool) -> Result<()> {
        if self.mount_point {
            fs::create_dir(&names.failed).ctx(format!("creating {}", names.failed.display()))?;
            move_entries(&self.dir, &names.failed)?;
            if kept {
                move_entries(&names.old, &self.dir)?;
                fs::remove_dir(&names.old).ctx(format!("removing {}", names.old.display()))?;
            }
            sync_dir(&self.dir)
        } else {
            rename(&self.dir, &names.failed)?;
            if kept {
                rename(&names.old, &self.dir)?;
            } else if self.exists {
                fs::create_dir(&self.dir).ctx(format!("creating {}", self.dir.display()))?;
            }
            sync_dir(self.dir.parent().unwrap_or(Path::new("/")))
        }
    }
}

/// `/var/lib/mysql` → `/var/lib/mysql.<what>-<stamp>`.
pub fn sibling(dir: &Path, what: &str, stamp: &str) -> PathBuf {
    let mut name = dir.as_os_str().to_os_string();
    name.push(format!(".{what}-{stamp}"));
    PathBuf::from(name)
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).ctx(format!("renaming {} to {}", from.display(), to.display()))
}

/// Moves every entry of `from` (except the ones that stay) into `to`.
fn move_entries(from: &Path, to: &Path) -> Result<()> {
    for entry in fs::read_dir(from).ctx(format!("reading {}", from.display()))? {
        let name = entry
            .ctx(format!("reading {}", from.display()))?
            .file_name();
        if !stays(&name.to_string_lossy()) {
            rename(&from.join(&name), &to.join(&name))?;
        }
    }
    sync_dir(to)
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
mod tests {
    use super::*;

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
