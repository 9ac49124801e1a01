//! Mounting a snapshot read-only, and finding where it is mounted.

use crate::lvm::Name;
use crate::repair;
use mysnap::error::IoContext;
use mysnap::{Error, Exit, Result};
use nix::mount::{MntFlags, MsFlags};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The filesystems a MySQL datadir lives on, told apart by their superblocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filesystem {
    Ext4,
    Xfs,
}

impl Filesystem {
    /// Reads the superblock: XFS's magic starts the device, ext2/3/4's
    /// sits at byte 1080 (1024 + 56).
    pub fn probe(device: &Path) -> Result<Filesystem> {
        let mut head = Vec::with_capacity(2048);
        std::fs::File::open(device)
            .and_then(|file| file.take(2048).read_to_end(&mut head))
            .ctx(format!("cannot read {}", device.display()))?;
        Self::from_superblock(&head).ok_or_else(|| {
            Error::new(
                Exit::DataErr,
                format!("{} holds neither ext4 nor xfs", device.display()),
            )
        })
    }

    fn from_superblock(head: &[u8]) -> Option<Filesystem> {
        if head.starts_with(b"XFSB") {
            Some(Filesystem::Xfs)
        } else if head.get(1080..1082) == Some(&[0x53, 0xef]) {
            Some(Filesystem::Ext4)
        } else {
            None
        }
    }

    /// Type and options for a read-only mount of a snapshot. A snapshot of
    /// a mounted XFS has the origin's UUID, which XFS refuses twice unless
    /// told `nouuid`. Both replay their journal into the snapshot's
    /// copy-on-write space, which is what makes the copy consistent.
    fn mount_options(self) -> (&'static str, &'static str) {
        match self {
            Filesystem::Ext4 => ("ext4", ""),
            Filesystem::Xfs => ("xfs", "nouuid"),
        }
    }
}

impl std::fmt::Display for Filesystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.mount_options().0)
    }
}

/// `mount`: mounts the snapshot `name` on `dir` (not one that overflowed)
/// and prints `dir`.
pub fn mount_snapshot(name: &Name, dir: &Path) -> Result<()> {
    let snapshot = repair::snapshot(name)?;
    if snapshot.is_invalid() {
        return Err(Error::new(
            Exit::DataErr,
            format!("{name} overflowed: not mounting it"),
        ));
    }
    let fs = mount(Path::new(&snapshot.path()), dir)?;
    log::info!("mounted {name} ({fs}) read-only on {}", dir.display());
    println!("{}", dir.display());
    Ok(())
}

/// Mounts `device` on `dir`, read-only, without devices or setuid.
pub fn mount(device: &Path, dir: &Path) -> Result<Filesystem> {
    if is_mount_point(dir)? {
        return Err(Error::new(
            Exit::CantCreate,
            format!("{} is already a mount point", dir.display()),
        ));
    }
    let fs = Filesystem::probe(device)?;
    let (fstype, data) = fs.mount_options();
    nix::mount::mount(
        Some(device),
        dir,
        Some(fstype),
        MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
        Some(data),
    )
    .map_err(|e| {
        Error::new(
            Exit::IoErr,
            format!(
                "cannot mount {} ({fstype}) on {}: {e}",
                device.display(),
                dir.display()
            ),
        )
    })?;
    Ok(fs)
}

pub fn unmount(dir: &Path) -> Result<()> {
    nix::mount::umount2(dir, MntFlags::empty()).map_err(|e| {
        Error::new(
            Exit::IoErr,
            format!("cannot unmount {}: {e}", dir.display()),
        )
    })
}

/// One line of /proc/self/mountinfo: the device and where it is mounted.
struct Mount {
    device: (u32, u32),
    point: PathBuf,
}

fn mounts() -> Result<Vec<Mount>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ctx("cannot read mountinfo")?;
    Ok(parse_mountinfo(&text))
}

/// Fields: id, parent, major:minor, root, mount point (octal escapes), ...
fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let (major, minor) = fields.nth(2)?.split_once(':')?;
            let point = fields.nth(1)?;
            Some(Mount {
                device: (major.parse().ok()?, minor.parse().ok()?),
                point: PathBuf::from(unescape(point)),
            })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        match rest
            .get(at + 1..at + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            Some(byte) => {
                out.push(byte as char);
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

pub fn is_mount_point(dir: &Path) -> Result<bool> {
    let dir = dir
        .canonicalize()
        .ctx(format!("cannot use {}", dir.display()))?;
    Ok(mounts()?.iter().any(|m| m.point == dir))
}

/// Where a device is mounted, the latest mount first (the order to unmount in).
pub fn mount_points(device: (u32, u32)) -> Result<Vec<PathBuf>> {
    Ok(mounts()?
        .into_iter()
        .rev()
        .filter(|m| m.device == device)
        .map(|m| m.point)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superblocks() {
        let mut ext4 = vec![0u8; 2048];
        ext4[1080..1082].copy_from_slice(&0xef53u16.to_le_bytes());
        assert_eq!(Filesystem::from_superblock(&ext4), Some(Filesystem::Ext4));
        let mut xfs = vec![0u8; 2048];
        xfs[..4].copy_from_slice(b"XFSB");
        assert_eq!(Filesystem::from_superblock(&xfs), Some(Filesystem::Xfs));
        assert_eq!(Filesystem::from_superblock(&[0u8; 2048]), None);
        assert_eq!(Filesystem::from_superblock(b"short"), None);
    }

    #[test]
    fn mountinfo_lines() {
        let text = "\
22 1 0:21 / / rw,relatime - overlay root rw
35 29 253:0 / /mnt/d rw,relatime - ext4 /dev/mapper/vg0-data rw
36 29 253:4 / /run/backup\\040snap rw,relatime - xfs /dev/mapper/vg0-data--snap ro,nouuid
37 29 253:4 / /mnt/again ro,relatime - xfs /dev/mapper/vg0-data--snap ro,nouuid
";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 4);
        assert_eq!(mounts[1].device, (253, 0));
        assert_eq!(mounts[2].point, Path::new("/run/backup snap"));
        assert_eq!(unescape(r"a\134b\011c\"), "a\\b\tc\\");
    }

    #[test]
    fn the_root_is_a_mount_point() {
        assert!(is_mount_point(Path::new("/")).unwrap());
        let dir = std::env::temp_dir().join(format!("lvm-snap-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let inside = is_mount_point(&dir).unwrap();
        std::fs::remove_dir(&dir).unwrap();
        assert!(!inside);
        assert_eq!(
            is_mount_point(Path::new("/nonexistent/dir"))
                .unwrap_err()
                .code(),
            66
        );
    }
}
