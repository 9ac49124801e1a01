//! A directory tree that untrusted names are resolved in by the kernel, not
//! by string checks: every path under a [`Root`] is opened with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, so no name, and no
//! symlink that an archive planted, can reach outside the root or through a
//! link. The last component of a path is never followed either (every call
//! acts on the link itself, or refuses it).
//!
//! On a kernel without openat2 (before Linux 5.6, RHEL 8) the same walk is
//! done one component at a time with `O_NOFOLLOW`, and `..` never climbs
//! above the root: the same rule, enforced by the same kernel checks.

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// An open directory, the root that relative paths are resolved beneath.
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// What is at a path, without following a symlink there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

/// Why a path does not resolve inside the root.
pub fn is_escape(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::EXDEV))
}

impl Root {
    /// Opens `path` itself, which the caller trusts (a directory it made):
    /// a symlink there is refused all the same.
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The root's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `rel` joined to the root's path, for messages only.
    pub fn display(&self, rel: &Path) -> PathBuf {
        self.path.join(rel)
    }

    /// Opens `rel` (which may hold `..`, never leaving the root) with
    /// `flags`; a symlink anywhere on the way, or at the end, is refused
    /// with ELOOP, a way out with EXDEV.
    pub fn open_at(&self, rel: &Path, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        let fd = match rustix::fs::openat2(&self.fd, rel, flags, mode, resolve) {
            Err(Errno::NOSYS) => self.walk(rel, flags, mode)?,
            other => other?,
        };
        // O_PATH with O_NOFOLLOW opens a trailing symlink itself, with
        // either call: refuse it here, as any other symlink is.
        if flags.contains(OFlags::PATH) && is_symlink(fd.as_fd())? {
            return Err(Errno::LOOP.into());
        }
        Ok(fd)
    }

    /// openat2's rule, one component at a time.
    fn walk(&self, rel: &Path, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
        let dir_flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut stack: Vec<OwnedFd> = Vec::new();
        let parts: Vec<Component> = rel.components().collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let current = stack.last().map(|f| f.as_fd()).unwrap_or(self.fd.as_fd());
            match part {
                Component::Normal(name) if last => {
                    return match rustix::fs::openat(current, *name, flags, mode) {
                        // O_NOFOLLOW's answer for a trailing symlink.
                        Err(Errno::LOOP) | Err(Errno::NOTDIR)
                            if kind_at(current, name).ok() == Some(Kind::Symlink) =>
                        {
                            Err(Errno::LOOP.into())
                        }
                        other => Ok(other?),
                    };
                }
                Component::Normal(name) => {
                    let next = rustix::fs::openat(current, *name, dir_flags, Mode::empty())
                        .map_err(|e| match e {
                            // O_DIRECTORY | O_NOFOLLOW on a symlink.
                            Errno::NOTDIR if kind_at(current, name).ok() == Some(Kind::Symlink) => {
                                Errno::LOOP
                            }
                            e => e,
                        })?;
                    stack.push(next);
                }
                Component::CurDir => {}
                Component::ParentDir => {
                    if stack.pop().is_none() {
                        return Err(Errno::XDEV.into());
                    }
                }
                Component::RootDir | Component::Prefix(_) => return Err(Errno::XDEV.into()),
            }
        }
        let current = stack.last().map(|f| f.as_fd()).unwrap_or(self.fd.as_fd());
        Ok(rustix::fs::openat(current, ".", flags, mode)?)
    }

    /// The directory that holds `rel`'s last component, opened beneath the
    /// root, and that component's name. `rel` must end in a plain name.
    fn parent(&self, rel: &Path) -> io::Result<(OwnedFd, OsString)> {
        let name = match rel.components().next_back() {
            Some(Component::Normal(name)) => name.to_os_string(),
            _ => return Err(Errno::INVAL.into()),
        };
        let parent = rel.parent().unwrap_or(Path::new(""));
        let dir = self.open_at(parent, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
        Ok((dir, name))
    }

    /// Opens the directory `rel` for reading (listing, fchown, fsync).
    pub fn open_dir(&self, rel: &Path) -> io::Result<File> {
        let fd = self.open_at(rel, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
        Ok(File::from(fd))
    }

    /// Opens the existing regular file `rel` (never a symlink) with `flags`.
    pub fn open_file(&self, rel: &Path, flags: OFlags) -> io::Result<File> {
        let file = File::from(self.open_at(rel, flags, Mode::empty())?);
        if !file.metadata()?.is_file() {
            return Err(Errno::INVAL.into());
        }
        Ok(file)
    }

    /// Creates the new file `rel` for writing; an existing name is EEXIST.
    pub fn create_file(&self, rel: &Path, mode: u32) -> io::Result<File> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL;
        Ok(File::from(self.open_at(
            rel,
            flags,
            Mode::from_raw_mode(mode),
        )?))
    }

    /// Creates the directory `rel`; its parent must exist.
    pub fn mkdir(&self, rel: &Path, mode: u32) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        Ok(rustix::fs::mkdirat(&dir, &name, Mode::from_raw_mode(mode))?)
    }

    /// Creates every missing directory on the way to `rel`, and `rel`.
    pub fn mkdir_all(&self, rel: &Path, mode: u32) -> io::Result<()> {
        let mut path = PathBuf::new();
        for part in rel.components() {
            path.push(part);
            match self.mkdir(&path, mode) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match self.kind(&path)? {
                    Kind::Dir => {}
                    Kind::Symlink => return Err(Errno::LOOP.into()),
                    _ => return Err(Errno::NOTDIR.into()),
                },
                other => other?,
            }
        }
        Ok(())
    }

    /// Creates the symlink `rel` with `target` as its text. The target is
    /// not followed, nor checked: see [`Root::check_link`].
    pub fn symlink(&self, target: &Path, rel: &Path) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        Ok(rustix::fs::symlinkat(target, &dir, &name)?)
    }

    /// Hard-links the regular file `from` as `to`; a symlink or directory
    /// at `from` is refused.
    pub fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from_dir, from_name) = self.parent(from)?;
        if kind_at(from_dir.as_fd(), &from_name)? != Kind::File {
            return Err(Errno::PERM.into());
        }
        let (to_dir, to_name) = self.parent(to)?;
        Ok(rustix::fs::linkat(
            &from_dir,
            &from_name,
            &to_dir,
            &to_name,
            AtFlags::empty(),
        )?)
    }

    /// What `rel` is, without following a symlink there.
    pub fn kind(&self, rel: &Path) -> io::Result<Kind> {
        if !matches!(rel.components().next_back(), Some(Component::Normal(_))) {
            self.open_at(rel, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
            return Ok(Kind::Dir);
        }
        let (dir, name) = self.parent(rel)?;
        kind_at(dir.as_fd(), &name)
    }

    /// Sets the owner of `rel` itself, a symlink included.
    pub fn chown_link(&self, rel: &Path, uid: u32, gid: u32) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        let (uid, gid) = (
            rustix::fs::Uid::from_raw(uid),
            rustix::fs::Gid::from_raw(gid),
        );
        Ok(rustix::fs::chownat(
            &dir,
            &name,
            Some(uid),
            Some(gid),
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    /// Removes the file or symlink `rel` (a symlink itself, never its target).
    pub fn remove_file(&self, rel: &Path) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        Ok(rustix::fs::unlinkat(&dir, &name, AtFlags::empty())?)
    }

    /// The names in the directory `rel`, with what each one is.
    pub fn list(&self, rel: &Path) -> io::Result<Vec<(OsString, Kind)>> {
        let dir = self.open_at(rel, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
        let mut out = Vec::new();
        for entry in rustix::fs::Dir::read_from(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let name = OsStr::from_bytes(name).to_os_string();
            let kind = kind_at(dir.as_fd(), &name)?;
            out.push((name, kind));
        }
        Ok(out)
    }

    /// Checks that the symlink `link` (a path under the root) with
    /// `target` as its text resolves inside the root, the way the kernel
    /// will resolve it: absolute targets are refused; the target's
    /// directories must not pass through a symlink (ELOOP) or climb out
    /// (EXDEV). Its last component may be a symlink, which is checked on
    /// its own. A path that runs into a missing name is judged by its
    /// names, since nothing in the archive can make it a symlink later
    /// (the check runs once every entry exists).
    pub fn check_link(&self, link: &Path, target: &Path) -> io::Result<()> {
        if target.has_root() || target.as_os_str().is_empty() {
            return Err(Errno::XDEV.into());
        }
        let mut through = link.parent().unwrap_or(Path::new("")).to_path_buf();
        let parts: Vec<Component> = target.components().collect();
        let ends_in_name = matches!(parts.last(), Some(Component::Normal(_)));
        let dirs = if ends_in_name {
            &parts[..parts.len() - 1]
        } else {
            &parts[..]
        };
        for part in dirs {
            through.push(part);
        }
        match self.open_at(&through, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()) {
            Ok(_) => Ok(()),
            Err(e)
                if e.raw_os_error() == Some(libc::ENOENT)
                    || e.raw_os_error() == Some(libc::ENOTDIR) =>
            {
                if lexically_within(link, target) {
                    Ok(())
                } else {
                    Err(Errno::XDEV.into())
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Flushes everything written on the root's filesystem.
    pub fn sync_filesystem(&self) -> io::Result<()> {
        let dir = self.open_dir(Path::new(""))?;
        Ok(rustix::fs::syncfs(&dir)?)
    }

    /// The root's own descriptor (an O_PATH handle).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn is_symlink(fd: BorrowedFd) -> io::Result<bool> {
    let stat = rustix::fs::fstat(fd)?;
    Ok(rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::Symlink)
}

fn kind_at(dir: BorrowedFd, name: &OsStr) -> io::Result<Kind> {
    let stat = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(match rustix::fs::FileType::from_raw_mode(stat.st_mode) {
        rustix::fs::FileType::RegularFile => Kind::File,
        rustix::fs::FileType::Directory => Kind::Dir,
        rustix::fs::FileType::Symlink => Kind::Symlink,
        _ => Kind::Other,
    })
}

/// Whether `target`, read from `link`'s directory, stays inside by its
/// names alone, taking every name for a real directory.
pub fn lexically_within(link: &Path, target: &Path) -> bool {
    let mut depth: usize = link.parent().map_or(0, |p| {
        p.components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .count()
    });
    for part in target.components() {
        match part {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Scratch {
            let dir = nix::unistd::mkdtemp(&std::env::temp_dir().join("beneath-test.XXXXXX"))
                .expect("mkdtemp");
            fs::create_dir(dir.join("root")).unwrap();
            Scratch(dir)
        }
        fn root(&self) -> Root {
            Root::open(&self.0.join("root")).unwrap()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// `a -> .`, `b -> a/..`, `c -> b/..`: each name alone looks inside,
    /// yet `c` is two levels up. The kernel sees through it.
    #[test]
    fn a_chain_of_links_is_caught_by_the_kernel() {
        let s = Scratch::new();
        let root = s.root();
        root.symlink(Path::new("."), Path::new("a")).unwrap();
        root.symlink(Path::new("a/.."), Path::new("b")).unwrap();
        root.symlink(Path::new("b/.."), Path::new("c")).unwrap();
        assert!(lexically_within(Path::new("b"), Path::new("a/..")));
        root.check_link(Path::new("a"), Path::new(".")).unwrap();
        let b = root
            .check_link(Path::new("b"), Path::new("a/.."))
            .unwrap_err();
        assert!(is_escape(&b), "{b}");
        let c = root
            .check_link(Path::new("c"), Path::new("b/.."))
            .unwrap_err();
        assert!(is_escape(&c), "{c}");
        // And nothing is created through one.
        let e = root.create_file(Path::new("c/outside"), 0o600).unwrap_err();
        assert!(is_escape(&e), "{e}");
        assert!(!s.0.join("outside").exists());
    }

    #[test]
    fn nothing_is_written_through_or_at_a_symlink() {
        let s = Scratch::new();
        fs::create_dir(s.0.join("out")).unwrap();
        fs::write(s.0.join("out/victim"), b"x").unwrap();
        let root = s.root();
        root.symlink(Path::new("../out"), Path::new("d")).unwrap();
        root.symlink(Path::new("../out/victim"), Path::new("f"))
            .unwrap();
        for rel in ["d/new", "d/victim"] {
            assert!(root.create_file(Path::new(rel), 0o600).is_err(), "{rel}");
        }
        let e = root
            .open_file(Path::new("f"), OFlags::WRONLY | OFlags::TRUNC)
            .unwrap_err();
        assert!(is_escape(&e), "{e}");
        assert!(root.mkdir(Path::new("d/sub"), 0o700).is_err());
        assert!(root.hard_link(Path::new("f"), Path::new("g")).is_err());
        assert!(root.open_dir(Path::new("d")).is_err());
        assert!(root
            .open_at(Path::new(".."), OFlags::PATH, Mode::empty())
            .is_err());
        // Removing a symlink removes the link, not its target.
        root.remove_file(Path::new("f")).unwrap();
        assert_eq!(fs::read(s.0.join("out/victim")).unwrap(), b"x");
    }

    #[test]
    fn links_inside_pass() {
        let s = Scratch::new();
        let root = s.root();
        root.mkdir_all(Path::new("db/sub"), 0o700).unwrap();
        root.create_file(Path::new("db/t.ibd"), 0o600).unwrap();
        root.symlink(Path::new("../db/t.ibd"), Path::new("db/sub/l"))
            .unwrap();
        root.check_link(Path::new("db/sub/l"), Path::new("../t.ibd"))
            .unwrap();
        root.check_link(Path::new("db/l"), Path::new("sub/../t.ibd"))
            .unwrap();
        // A dangling target, judged by its names.
        root.check_link(Path::new("db/l"), Path::new("later/x"))
            .unwrap();
        assert!(root
            .check_link(Path::new("db/l"), Path::new("later/../../../x"))
            .is_err());
        assert!(root
            .check_link(Path::new("l"), Path::new("/etc/passwd"))
            .is_err());
        root.hard_link(Path::new("db/t.ibd"), Path::new("db/sub/h"))
            .unwrap();
        assert_eq!(root.kind(Path::new("db/sub/l")).unwrap(), Kind::Symlink);
        assert_eq!(root.kind(Path::new("db/sub/h")).unwrap(), Kind::File);
        assert_eq!(root.kind(Path::new("")).unwrap(), Kind::Dir);
        let mut names: Vec<_> = root.list(Path::new("db")).unwrap();
        names.sort();
        assert_eq!(
            names,
            vec![
                (OsString::from("sub"), Kind::Dir),
                (OsString::from("t.ibd"), Kind::File)
            ]
        );
    }

    /// The fallback walk for kernels without openat2 keeps the same rule.
    #[test]
    fn the_walk_without_openat2_keeps_the_rule() {
        let s = Scratch::new();
        let root = s.root();
        root.mkdir(Path::new("d"), 0o700).unwrap();
        root.symlink(Path::new("."), Path::new("a")).unwrap();
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        assert!(root.walk(Path::new("d/.."), flags, Mode::empty()).is_ok());
        let up = root
            .walk(Path::new("d/../.."), flags, Mode::empty())
            .unwrap_err();
        assert!(is_escape(&up), "{up}");
        let link = root
            .walk(Path::new("a/d"), flags, Mode::empty())
            .unwrap_err();
        assert!(is_escape(&link), "{link}");
    }
}
