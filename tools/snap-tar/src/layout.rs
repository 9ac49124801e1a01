//! `--include-layout ORIGINAL=SNAPSHOT_MOUNT`: data files the server keeps
//! outside DIR, taken from a snapshot of their own volume.

use mysnap::error::IoContext;
use mysnap::{Error, Exit, Result};
use nix::sys::statvfs::{statvfs, FsFlags};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub struct Layout {
    pub original: String,
    pub mount: PathBuf,
}

impl Layout {
    /// Parses `ORIGINAL=SNAPSHOT_MOUNT` and checks that the mount cannot be a
    /// live filesystem.
    pub fn parse(text: &str) -> Result<Layout> {
        let (original, mount) = text.split_once('=').ok_or_else(|| {
            Error::usage(format!(
                "--include-layout '{text}': expected ORIGINAL=SNAPSHOT_MOUNT"
            ))
        })?;
        if !original.starts_with('/') || mount.is_empty() {
            return Err(Error::usage(format!(
                "--include-layout '{text}': ORIGINAL must be an absolute path and SNAPSHOT_MOUNT given"
            )));
        }
        let mount = PathBuf::from(mount);
        refuse_live(&mount)?;
        Ok(Layout {
            original: original.trim_end_matches('/').to_string(),
            mount,
        })
    }
}

/// A snapshot is mounted read-only on a mount point of its own (as
/// `lvm-snap mount` does). Anything else may be the live filesystem, whose
/// files would not match the lock's coordinates.
fn refuse_live(mount: &Path) -> Result<()> {
    let meta = std::fs::metadata(mount).ctx(format!("--include-layout {}", mount.display()))?;
    if !meta.is_dir() {
        return Err(Error::new(
            Exit::NoInput,
            format!("--include-layout {}: not a directory", mount.display()),
        ));
    }
    let parent =
        std::fs::metadata(mount.join("..")).ctx(format!("cannot stat {}/..", mount.display()))?;
    let mount_point = parent.dev() != meta.dev() || parent.ino() == meta.ino();
    let read_only = statvfs(mount)
        .map(|s| s.flags().contains(FsFlags::ST_RDONLY))
        .map_err(|e| {
            Error::new(
                Exit::IoErr,
                format!("cannot statvfs {}: {e}", mount.display()),
            )
        })?;
    if !mount_point || !read_only {
        return Err(Error::new(
            Exit::Usage,
            format!(
                "--include-layout {}: not a read-only mount point, so maybe a live filesystem; \
                 mount a snapshot taken under the same lock (lvm-snap mount)",
                mount.display()
            ),
        ));
    }
    Ok(())
}
