//! Files that hold state or coordinates: written whole or not at all, and
//! readable by their owner only (or, for metrics, by anyone).

use crate::error::IoContext;
use crate::Result;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Writes `data` to `path` through a temporary file beside it, mode 0600,
/// so a reader never sees a half-written file: the temporary file has an
/// unpredictable name and is created with O_EXCL (never through a symlink
/// someone planted), synced, renamed over `path`, and the directory synced
/// so the rename survives a crash.
pub fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    write_atomically_with_mode(path, data, 0o600)
}

/// The same, for a file that others may read (metrics: mode 0644).
pub fn write_atomically_with_mode(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(path.file_name().unwrap_or_default());
    prefix.push(".");
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .ctx(format!(
            "cannot create a temporary file in {}",
            dir.display()
        ))?;
    tmp.write_all(data)
        .and_then(|()| tmp.as_file().sync_all())
        .ctx(format!("cannot write {}", tmp.path().display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .ctx(format!("cannot create {}", path.display()))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx(format!("cannot sync {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_private() {
        let path = std::env::temp_dir().join(format!("mysnap-private-{}.json", std::process::id()));
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::remove_file(&path).unwrap();
        let missing_dir = Path::new("/nonexistent-dir/x.json");
        assert_eq!(write_atomically(missing_dir, b"x").unwrap_err().code(), 66);
    }

    /// A symlink planted where the old fixed temporary name was
    /// (`PATH.tmp`) is not followed, and nothing is left beside PATH.
    #[test]
    fn a_planted_symlink_is_not_followed() {
        let dir = std::env::temp_dir().join(format!("mysnap-private-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("state.json.tmp")).unwrap();
        write_atomically(&dir.join("state.json"), b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(std::fs::read(dir.join("state.json")).unwrap(), b"new");
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["state.json", "state.json.tmp", "victim"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
