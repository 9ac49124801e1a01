//! A volume group's LVM lock, taken as LVM's own file locking takes it, so
//! that lvm-snap and the LVM tools exclude each other. Every LVM command
//! that changes a group (lvcreate, lvremove, lvextend...) holds it from
//! before its first device-mapper change to after its last: while lvm-snap
//! holds it, no LVM command is half-way through a change, so a suspended
//! device or a half-loaded table in the group is a killed command's leftover.
//!
//! The protocol is LVM's (`locking_dir`, /run/lock/lvm, and
//! `prioritise_write_locks`, on by default): a writer first takes
//! `V_<vg>:aux`, which new readers also pass through, then `V_<vg>`, then
//! lets the aux go. A lock file may be unlinked by whoever releases it, so
//! a lock counts only once the locked file is still the one at the path.

use mysnap::{Error, Exit, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// LVM's compiled-in `global/locking_dir`; repair checks that lvm.conf
/// keeps it (see `repair::check_locking`).
pub const LOCKING_DIR: &str = "/run/lock/lvm";

/// How long to wait for another LVM command to finish with the group.
pub const WAIT: Duration = Duration::from_secs(60);

/// The group's lock, held exclusively until dropped.
pub struct VgLock {
    _held: Held,
}

#[derive(Debug)]
struct Held {
    lock: Flock<File>,
    path: PathBuf,
}

impl VgLock {
    /// Waits up to `WAIT` for the lock of volume group `vg`.
    pub fn exclusive(vg: &str) -> Result<VgLock> {
        let dir = Path::new(LOCKING_DIR);
        if !dir.is_dir() {
            // No LVM command has run since boot; make it as LVM does.
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::new(
                    Exit::CantCreate,
                    format!("cannot make {}: {e}", dir.display()),
                )
            })?;
        }
        let path = dir.join(format!("V_{vg}"));
        let deadline = Instant::now() + WAIT;
        let aux = take(&with_suffix(&path, ":aux"), vg, deadline)?;
        let main = take(&path, vg, deadline);
        drop(aux);
        Ok(VgLock { _held: main? })
    }
}

impl Drop for Held {
    /// As LVM releases a lock: the file goes, unless someone replaced it.
    fn drop(&mut self) {
        if same_file(&self.lock, &self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn take(path: &Path, vg: &str, deadline: Instant) -> Result<Held> {
    loop {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::new(Exit::IoErr, format!("cannot open {}: {e}", path.display())))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) if same_file(&lock, path) => {
                return Ok(Held {
                    lock,
                    path: path.to_path_buf(),
                })
            }
            // Unlinked by its last holder while we waited: take the new one.
            Ok(_) => continue,
            Err((_, Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err((_, Errno::EWOULDBLOCK)) => {
                return Err(Error::new(
                    Exit::TempFail,
                    format!(
                        "another LVM command has held volume group {vg}'s lock ({}) for {} s: \
                         try again when it has finished",
                        path.display(),
                        WAIT.as_secs()
                    ),
                ))
            }
            Err((_, e)) => {
                return Err(Error::new(
                    Exit::IoErr,
                    format!("cannot lock {}: {e}", path.display()),
                ))
            }
        }
    }
}

fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_lock_file_does_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("V_vg0");
        let deadline = Instant::now() + Duration::from_secs(5);
        let first = take(&path, "vg0", deadline).unwrap();
        assert!(same_file(&first.lock, &path));
        // Another holder's release unlinked the file and a third made a new one.
        std::fs::remove_file(&path).unwrap();
        let second = take(&path, "vg0", deadline).unwrap();
        assert!(!same_file(&first.lock, &path) && same_file(&second.lock, &path));
        drop(first);
        assert!(
            path.exists(),
            "the stale holder must not unlink the new file"
        );
        drop(second);
        assert!(!path.exists(), "the holder unlinks its own file");
    }

    #[test]
    fn a_held_lock_makes_the_next_one_wait_and_give_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("V_vg0");
        let _held = take(&path, "vg0", Instant::now()).unwrap();
        let started = Instant::now();
        let err = take(&path, "vg0", Instant::now() + Duration::from_millis(100)).unwrap_err();
        assert_eq!(err.code(), 75);
        assert!(err.message().contains("volume group vg0's lock"), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(100));
    }
}
