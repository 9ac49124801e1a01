//! Files that hold state or coordinates: written whole or not at all, and
//! readable by their owner only.

use crate::error::IoContext;
use crate::Result;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `data` to `path` through a temporary file beside it (fsync, then
/// rename), mode 0600, so a reader never sees a half-written file.
pub fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .ctx(format!("cannot create {}", tmp.display()))?;
    file.write_all(data)
        .and_then(|()| file.sync_all())
        .ctx(format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).ctx(format!("cannot create {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

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
}
