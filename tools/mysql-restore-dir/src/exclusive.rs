//! One restore of a data directory at a time: two restores of one DIR
//! would both stage, stop and swap, and the second would keep the first's
//! restored data as "previous". The lock is a `flock` on a file beside DIR
//! (`.NAME.mysnap-restore.lock` in DIR's parent), held by the open file
//! until the process exits, however it exits. The file stays: removing it
//! would let a third restore lock a new file while the second still holds
//! the old one.

use mysnap::{Error, Exit, Result};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// `/var/lib/mysql` → `/var/lib/.mysql.mysnap-restore.lock`.
pub fn lock_path(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        Some(_) => Path::new("."),
        None => Path::new("/"),
    };
    parent.join(format!(".{name}.mysnap-restore.lock"))
}

/// Takes the lock for DIR, or says who has it (exit 75).
pub fn lock(dir: &Path) -> Result<File> {
    let path = lock_path(dir);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| {
            Error::new(
                Exit::CantCreate,
                format!("cannot create the restore lock {}: {e}", path.display()),
            )
        })?;
    // SAFETY: a plain syscall on an open descriptor.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(Error::new(
                Exit::TempFail,
                format!(
                    "another mysql-restore-dir is restoring {} (it holds {}): nothing changed; \
                     retry when it has finished",
                    dir.display(),
                    path.display()
                ),
            ));
        }
        return Err(Error::new(
            Exit::IoErr,
            format!("locking {}: {e}", path.display()),
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_sits_beside_dir() {
        assert_eq!(
            lock_path(Path::new("/var/lib/mysql")),
            PathBuf::from("/var/lib/.mysql.mysnap-restore.lock")
        );
        assert_eq!(
            lock_path(Path::new("db")),
            PathBuf::from("./.db.mysnap-restore.lock")
        );
    }

    #[test]
    fn a_second_lock_of_one_dir_is_refused() {
        let dir = std::env::temp_dir().join(format!("exclusive-test-{}", std::process::id()));
        let first = lock(&dir).unwrap();
        let second = lock(&dir).unwrap_err();
        assert_eq!(second.code(), Exit::TempFail as i32, "{}", second.message());
        drop(first);
        let third = lock(&dir).unwrap();
        drop(third);
        std::fs::remove_file(lock_path(&dir)).unwrap();
    }
}
