//! Unpacking an archive into a fresh staging directory, safely. The format's
//! rules (manifest first, plain relative names, each name once, hard links
//! to files of the archive, no special files, the checksum list) are
//! checked by the one reader, `mysnap::archive::read`; this is its hook,
//! with the rules about where things land: every path is resolved beneath
//! its root by the kernel (`mysnap::beneath`), so no name leaves the root
//! and nothing is ever written through a symlink; no symlink may lead out
//! of the root; names the restore keeps for itself are refused; setuid and
//! setgid bits are cleared. Runs of zeros become holes again.

use crate::archive::{self, Entry, Hook, Invalid, Kind, Manifest};
use crate::beneath::{self, Root};
use crate::progress::Progress;
use crate::quantity::format_size;
use crate::signals::Signals;
use crate::{Error, Exit, Result};
use nix::sys::stat::{futimens, Mode};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, Gid, Uid};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Given the manifest's layout entries, the staging root for each archived
/// prefix, or None to skip the layout files.
pub type LayoutRoots = Box<dyn FnMut(&Manifest) -> Result<Option<Vec<(String, PathBuf)>>>>;

/// Where entries go: the data directory's staging root, and one staging
/// root per `--include-layout` directory (archived under `mysnap/layout/N`).
pub struct Roots {
    pub datadir: PathBuf,
    /// Called with the manifest's layout entries, once the manifest is read:
    /// returns the staging root for each archived prefix, or None to skip
    /// the layout files (hashed and verified, but not written).
    pub layout: LayoutRoots,
    /// A plain tar is refused at its first entry, before anything is
    /// written (false only with --no-manifest).
    pub require_manifest: bool,
}

/// What the archive held.
pub struct Unpacked {
    pub manifest: Option<Manifest>,
    pub files: u64,
    pub bytes: u64,
    /// The files against the checksum list, reported by `verify` once
    /// COMMAND has exited: a failed COMMAND is the cause to report.
    checked: Result<(), Invalid>,
}

impl Unpacked {
    /// Whether the archive is whole and as listed. `require` is false only
    /// with --no-manifest, and then only an archive without a manifest may
    /// go unchecked: a mysnap archive is always checked.
    pub fn verify(&self, require: bool) -> Result<()> {
        if require && self.manifest.is_none() {
            return Err(not_mysnap());
        }
        self.checked.clone().map_err(Error::from)
    }
}

fn not_mysnap() -> Error {
    Error::new(
        Exit::DataErr,
        "not a mysnap archive: it has no mysnap/manifest.json first; \
         --no-manifest restores a plain tar without checks",
    )
}

/// Whose files these are: a fixed owner, or the archive's own.
#[derive(Clone, Copy)]
pub struct Owner(pub Option<(Uid, Gid)>);

/// The mode bits an entry keeps: setuid and setgid are cleared, since a
/// data directory never needs them and a planted one would run as its
/// owner. The sticky bit stays.
const MODE_KEPT: u32 = 0o1777;

/// A directory's metadata, applied after its contents (writing into a
/// directory changes its mtime, and a read-only mode would stop us).
struct DirMeta {
    root: usize,
    rel: PathBuf,
    mode: u32,
    mtime: i64,
    owner: (Uid, Gid),
}

/// A symlink the archive made, checked once every entry exists.
struct Planted {
    root: usize,
    rel: PathBuf,
    target: PathBuf,
    name: String,
}

struct Unpacker<'a> {
    owner: Owner,
    /// Where entries are written: `roots[0]` is the datadir's staging root,
    /// the others the layout directories'.
    roots: Vec<Root>,
    layout_roots: LayoutRoots,
    /// For each layout entry of the manifest, its root; None for one that
    /// is verified, not written.
    layout: Vec<Option<usize>>,
    /// Entries before a manifest are refused (see `Roots`).
    require_manifest: bool,
    manifest_seen: bool,
    links: Vec<Planted>,
    dirs: Vec<DirMeta>,
    /// Entries whose setuid or setgid bit was cleared.
    cleared: Vec<String>,
    buf: AlignedBuf,
    signals: &'a Signals,
    progress: &'a mut Progress,
}

/// Files of this size or more are written with O_DIRECT: the data goes from
/// our buffer to the disk, without a copy into the page cache that costs
/// more CPU than the decompression (measured on a 2 GiB datadir: 2.4-6.5 s
/// of system time buffered against 0.4 s direct), and without a backlog of
/// dirty pages for the syncfs before the swap. Smaller files go through the
/// page cache, where their many small writes are cheap.
const DIRECT_MIN: u64 = 1 << 20;

/// O_DIRECT's alignment of buffer addresses, offsets and lengths: the
/// largest logical block size of the disks we meet.
const DIRECT_ALIGN: usize = 4096;

/// The copy buffer: 1 MiB at an address aligned for O_DIRECT.
struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
}

impl AlignedBuf {
    const LEN: usize = 1 << 20;

    fn new() -> AlignedBuf {
        let storage = vec![0u8; Self::LEN + DIRECT_ALIGN];
        let start = storage.as_ptr().align_offset(DIRECT_ALIGN);
        AlignedBuf { storage, start }
    }

    fn get(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + Self::LEN]
    }
}

fn corrupt(why: impl std::fmt::Display) -> Error {
    Invalid::Corrupt(why.to_string()).into()
}

/// A read error of the archive: its data is bad or cut short.
fn unreadable(e: io::Error) -> Error {
    Invalid::reading(e).into()
}

/// A write error in the staging area: disk full, permissions, I/O.
fn unwritable(path: &Path, e: io::Error) -> Error {
    Error::new(Exit::IoErr, format!("cannot write {}: {e}", path.display()))
}

/// A failed step on `rel` under `root` for the entry `name`: the kernel's
/// refusal of a path through a symlink or out of the root is the archive's
/// fault, anything else the staging area's.
fn failed(root: &Root, rel: &Path, name: &str, e: io::Error) -> Error {
    if beneath::is_escape(&e) {
        corrupt(format!(
            "'{name}' would be written through a symlink or outside the data directory"
        ))
    } else {
        unwritable(&root.display(rel), e)
    }
}

/// Unpacks `input` (an uncompressed tar) under `roots`.
pub fn unpack(
    input: impl Read,
    roots: Roots,
    owner: Owner,
    signals: &Signals,
    progress: &mut Progress,
) -> Result<Unpacked> {
    let datadir = Root::open(&roots.datadir).map_err(|e| unwritable(&roots.datadir, e))?;
    let mut unpacker = Unpacker {
        owner,
        roots: vec![datadir],
        layout_roots: roots.layout,
        layout: Vec::new(),
        require_manifest: roots.require_manifest,
        manifest_seen: false,
        links: Vec::new(),
        dirs: Vec::new(),
        cleared: Vec::new(),
        buf: AlignedBuf::new(),
        signals,
        progress,
    };
    let contents = archive::read(input, &mut unpacker)?;
    unpacker.check_links()?;
    unpacker.finish_dirs()?;
    if !unpacker.cleared.is_empty() {
        log::warn!(
            "cleared the setuid or setgid bit of {} entr{} (a data directory never needs them): {}",
            unpacker.cleared.len(),
            if unpacker.cleared.len() == 1 {
                "y"
            } else {
                "ies"
            },
            unpacker.cleared.join(", ")
        );
    }
    Ok(Unpacked {
        checked: contents.check(),
        manifest: contents.manifest,
        files: contents.files,
        bytes: contents.bytes,
    })
}

/// Names at the top of a root that a restore itself uses or keeps: an
/// archive that holds them would collide with the swap.
fn reserved(top: &str) -> bool {
    top.starts_with(".mysnap-")
}

impl Hook for Unpacker<'_> {
    type Error = Error;

    /// Opens the staging roots of the layout directories to restore.
    fn manifest(&mut self, manifest: &Manifest) -> Result<()> {
        self.manifest_seen = true;
        let chosen = (self.layout_roots)(manifest)?.unwrap_or_default();
        self.layout = vec![None; manifest.layout.len()];
        for (prefix, path) in chosen {
            let root = Root::open(&path).map_err(|e| unwritable(&path, e))?;
            self.roots.push(root);
            for (entry, slot) in manifest.layout.iter().zip(&mut self.layout) {
                if entry.archived == prefix {
                    *slot = Some(self.roots.len() - 1);
                }
            }
        }
        Ok(())
    }

    fn entry(&mut self, entry: &Entry, data: &mut dyn Read) -> Result<()> {
        self.signals.check()?;
        if self.require_manifest && !self.manifest_seen {
            return Err(not_mysnap());
        }
        let index = match entry.place.layout {
            None => 0,
            Some(i) => match self.layout.get(i).copied().flatten() {
                Some(index) => index,
                None => return Ok(()), // verified, not written
            },
        };
        self.write(index, entry, data)
    }

    fn progress(&mut self, bytes: u64) {
        self.progress.update(bytes);
    }
}

impl Unpacker<'_> {
    fn owner_of(&self, header: &tar::Header) -> Result<(Uid, Gid)> {
        Ok(match self.owner.0 {
            Some(owner) => owner,
            None => (
                Uid::from_raw(header.uid().map_err(unreadable)? as u32),
                Gid::from_raw(header.gid().map_err(unreadable)? as u32),
            ),
        })
    }

    fn make_parent(&self, root: &Root, rel: &Path, name: &str) -> Result<()> {
        match rel.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => root
                .mkdir_all(parent, 0o750)
                .map_err(|e| failed(root, parent, name, e)),
            _ => Ok(()),
        }
    }

    /// Refuses an entry larger than the whole staging filesystem, holes
    /// included, before a byte of it is written or hashed: a sparse map or
    /// a header that claims a petabyte would otherwise cost hours of
    /// hashing zeros before any other check. (Free space is not judged
    /// here: runs of zeros become holes, so the data may need less than the
    /// archive holds; a disk that fills up fails the write with ENOSPC.)
    fn check_room(&self, root: &Root, size: u64, name: &str) -> Result<()> {
        let fs = rustix::fs::fstatvfs(root.fd()).map_err(|e| unwritable(root.path(), e.into()))?;
        let total = fs.f_blocks.saturating_mul(fs.f_frsize);
        if size > total {
            return Err(Error::new(
                Exit::IoErr,
                format!(
                    "'{name}' is {} ({size} bytes), more than the whole filesystem of {} \
                     holds ({}): refused before writing it",
                    format_size(size),
                    root.path().display(),
                    format_size(total)
                ),
            ));
        }
        Ok(())
    }

    /// Writes one entry beneath `roots[index]`.
    fn write(&mut self, index: usize, entry: &Entry, data: &mut dyn Read) -> Result<()> {
        let (name, rel) = (entry.name, &entry.place.path);
        let top = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy());
        if top.as_deref().is_some_and(reserved) {
            return Err(corrupt(format!(
                "'{name}': names that start with .mysnap- are the restore's own \
                 (an earlier restore's leftovers were archived?)"
            )));
        }
        if rel == Path::new("lost+found") && index == 0 && entry.kind != Kind::Dir {
            return Err(corrupt(format!(
                "'{name}' is a {:?} entry: lost+found must be a directory",
                entry.header.entry_type()
            )));
        }
        let archived_mode = entry.header.mode().map_err(unreadable)? & 0o7777;
        let mode = archived_mode & MODE_KEPT;
        if mode != archived_mode {
            self.cleared.push(format!("'{name}'"));
        }
        let mtime = entry.header.mtime().map_err(unreadable)? as i64;
        let owner = self.owner_of(entry.header)?;
        let root = &self.roots[index];
        match &entry.kind {
            Kind::Dir => {
                if root.kind(rel).ok() != Some(beneath::Kind::Dir) {
                    self.make_parent(root, rel, name)?;
                    root.mkdir(rel, 0o700)
                        .map_err(|e| failed(root, rel, name, e))?;
                }
                self.dirs.push(DirMeta {
                    root: index,
                    rel: rel.clone(),
                    mode,
                    mtime,
                    owner,
                });
            }
            Kind::File { size } => {
                self.check_room(root, *size, name)?;
                self.make_parent(root, rel, name)?;
                let file = create(root, rel, *size >= DIRECT_MIN)
                    .map_err(|e| failed(root, rel, name, e))?;
                let full = root.display(rel);
                self.write_file(data, file, &full, (mode, mtime, owner))?;
            }
            Kind::Symlink(target) => {
                // By names first, for a clear message; the kernel's check
                // follows once every entry exists (check_links).
                if target.has_root() || !beneath::lexically_within(rel, target) {
                    return Err(corrupt(format!(
                        "symlink '{name}' points outside the data directory ({})",
                        target.display()
                    )));
                }
                self.make_parent(root, rel, name)?;
                root.symlink(target, rel)
                    .map_err(|e| failed(root, rel, name, e))?;
                root.chown_link(rel, owner.0.as_raw(), owner.1.as_raw())
                    .map_err(|e| failed(root, rel, name, e))?;
                self.links.push(Planted {
                    root: index,
                    rel: rel.clone(),
                    target: target.clone(),
                    name: name.to_string(),
                });
            }
            Kind::HardLink(source) => {
                self.make_parent(root, rel, name)?;
                root.hard_link(source, rel)
                    .map_err(|e| failed(root, rel, name, e))?;
            }
        }
        Ok(())
    }

    /// Every symlink, judged by the kernel now that every entry exists: its
    /// target must resolve inside its root, and not through a symlink the
    /// archive made (`a -> .`, then `b -> a/..`).
    fn check_links(&self) -> Result<()> {
        for link in &self.links {
            let root = &self.roots[link.root];
            root.check_link(&link.rel, &link.target).map_err(|e| {
                if beneath::is_escape(&e) {
                    corrupt(format!(
                        "symlink '{}' -> '{}' leads outside the data directory, or through \
                         another symlink of the archive",
                        link.name,
                        link.target.display()
                    ))
                } else {
                    unwritable(&root.display(&link.rel), e)
                }
            })?;
        }
        Ok(())
    }

    /// Copies a file's data, leaving holes where whole blocks are zero,
    /// then sets its owner, mode and mtime. (The reader hashes the data on
    /// its way here.)
    fn write_file(
        &mut self,
        data: &mut dyn Read,
        mut file: Output,
        full: &Path,
        (mode, mtime, owner): (u32, i64, (Uid, Gid)),
    ) -> Result<()> {
        const BLOCK: usize = 4096;
        let mut size = 0u64;
        let buf = self.buf.get();
        loop {
            let n = read_full(data, buf).map_err(unreadable)?;
            if n == 0 {
                break;
            }
            self.signals.check()?;
            let mut at = 0;
            while at < n {
                let end = (at + BLOCK).min(n);
                let zero = is_zero(&buf[at..end]);
                // Extend the run while blocks keep the same kind.
                let mut run_end = end;
                while run_end < n {
                    let next = (run_end + BLOCK).min(n);
                    if is_zero(&buf[run_end..next]) != zero {
                        break;
                    }
                    run_end = next;
                }
                if zero {
                    file.skip((run_end - at) as u64);
                } else {
                    file.write(buf, at..run_end)
                        .map_err(|e| unwritable(full, e))?;
                }
                at = run_end;
            }
            size += n as u64;
        }
        let file = file.finish(size).map_err(|e| unwritable(full, e))?;
        set_meta(&file, mode, mtime, owner).map_err(|e| unwritable(full, e))
    }

    /// Directory owners, modes and mtimes, deepest first, each on the
    /// directory opened beneath its root (never through a symlink).
    fn finish_dirs(&mut self) -> Result<()> {
        self.dirs
            .sort_by(|a, b| (b.root, &b.rel).cmp(&(a.root, &a.rel)));
        for dir in &self.dirs {
            let root = &self.roots[dir.root];
            let name = dir.rel.display().to_string();
            let handle = root
                .open_dir(&dir.rel)
                .map_err(|e| failed(root, &dir.rel, &name, e))?;
            set_meta(&handle, dir.mode, dir.mtime, dir.owner)
                .map_err(|e| unwritable(&root.display(&dir.rel), e))?;
        }
        Ok(())
    }
}

/// Owner, mode and mtime of an open file or directory.
fn set_meta(file: &File, mode: u32, mtime: i64, owner: (Uid, Gid)) -> io::Result<()> {
    fchown(file.as_raw_fd(), Some(owner.0), Some(owner.1))?;
    nix::sys::stat::fchmod(file.as_raw_fd(), Mode::from_bits_truncate(mode))?;
    let time = TimeSpec::new(mtime, 0);
    futimens(file.as_raw_fd(), &time, &time)?;
    Ok(())
}

/// Whether a block holds only zeros (written to vectorize, unlike a
/// short-circuiting `all`).
fn is_zero(block: &[u8]) -> bool {
    block.iter().fold(0u8, |acc, &b| acc | b) == 0
}

/// Creates a new file for writing beneath `root`, never through a symlink;
/// with O_DIRECT when asked and the filesystem allows it.
fn create(root: &Root, rel: &Path, direct: bool) -> io::Result<Output> {
    let file = root.create_file(rel, 0o600)?;
    let mut output = Output {
        file,
        direct: false,
        offset: 0,
    };
    // Set afterwards, not at open: a filesystem without O_DIRECT (tmpfs
    // before Linux 6.6, overlayfs on it) fails such an open with EINVAL
    // only after creating the file.
    if direct {
        output.set_direct(true).or_else(|e| match e {
            nix::Error::EINVAL => Ok(()),
            e => Err(io::Error::from(e)),
        })?;
    }
    Ok(output)
}

/// A file being written at increasing offsets, with holes skipped over.
struct Output {
    file: File,
    direct: bool,
    offset: u64,
}

impl Output {
    /// Leaves a hole of `len` bytes.
    fn skip(&mut self, len: u64) {
        self.offset += len;
    }

    /// Writes `buf[range]` at the current offset. With O_DIRECT, a range
    /// that does not end on a block boundary (only the file's last one) is
    /// padded with zeros, which `finish` cuts off again; `buf` has room.
    fn write(&mut self, buf: &mut [u8], range: std::ops::Range<usize>) -> io::Result<()> {
        let len = range.len();
        let mut end = range.end;
        let misplaced = self.offset as usize % DIRECT_ALIGN != 0;
        if self.direct && (misplaced || len % DIRECT_ALIGN != 0) {
            let padded = range.start + len.next_multiple_of(DIRECT_ALIGN);
            if misplaced || padded > buf.len() {
                self.buffered()?;
            } else {
                buf[range.end..padded].fill(0);
                end = padded;
            }
        }
        match self.file.write_all_at(&buf[range.start..end], self.offset) {
            // A device with larger blocks than we align to.
            Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                self.buffered()?;
                self.file.write_all_at(&buf[range.clone()], self.offset)?;
            }
            other => other?,
        }
        self.offset += len as u64;
        Ok(())
    }

    /// Goes on through the page cache.
    fn buffered(&mut self) -> io::Result<()> {
        Ok(self.set_direct(false)?)
    }

    fn set_direct(&mut self, direct: bool) -> nix::Result<()> {
        use nix::fcntl::{fcntl, OFlag, F_GETFL, F_SETFL};
        let fd = self.file.as_raw_fd();
        let mut flags = OFlag::from_bits_truncate(fcntl(fd, F_GETFL)?);
        flags.set(OFlag::O_DIRECT, direct);
        fcntl(fd, F_SETFL(flags))?;
        self.direct = direct;
        Ok(())
    }

    /// Sets the file's length to `size` (the data written and the holes
    /// after it), and starts writing buffered data back now, so the one
    /// syncfs before the swap finds most of it already on disk.
    fn finish(self, size: u64) -> io::Result<File> {
        self.file.set_len(size)?;
        // SAFETY: a plain syscall on an open descriptor.
        unsafe { libc::sync_file_range(self.file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        Ok(self.file)
    }
}

/// Fills `buf` unless the reader ends first; returns how much it read.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A fresh directory under the temp dir, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Scratch {
            let dir = nix::unistd::mkdtemp(&std::env::temp_dir().join("unpack-test.XXXXXX"))
                .expect("mkdtemp");
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Writes `data` through an Output as write_file does (1 MiB reads,
    /// zero blocks skipped), and returns what the file holds.
    fn write_through(direct: bool, data: &[u8], fall_back_after: Option<usize>) -> (bool, Vec<u8>) {
        let scratch = Scratch::new();
        let path = scratch.0.join("f");
        let mut out = create(&Root::open(&scratch.0).unwrap(), Path::new("f"), direct).unwrap();
        let was_direct = out.direct;
        let mut buf = AlignedBuf::new();
        let buf = buf.get();
        for (i, piece) in data.chunks(AlignedBuf::LEN).enumerate() {
            if fall_back_after == Some(i) {
                out.buffered().unwrap();
            }
            buf[..piece.len()].copy_from_slice(piece);
            let mut at = 0;
            while at < piece.len() {
                let end = (at + 4096).min(piece.len());
                if is_zero(&buf[at..end]) {
                    out.skip((end - at) as u64);
                } else {
                    out.write(buf, at..end).unwrap();
                }
                at = end;
            }
        }
        out.finish(data.len() as u64).unwrap();
        (was_direct, fs::read(&path).unwrap())
    }

    /// 3 MiB and a ragged 1000 bytes: data, a hole, data, and a tail that
    /// is neither block-aligned nor zero.
    fn ragged() -> Vec<u8> {
        let mut data: Vec<u8> = (0..3 * AlignedBuf::LEN + 1000)
            .map(|i| (i % 251) as u8)
            .collect();
        data[AlignedBuf::LEN..AlignedBuf::LEN + 64 * 1024].fill(0);
        data
    }

    #[test]
    fn direct_writes_pad_the_tail_and_cut_it_off() {
        let data = ragged();
        let (direct, written) = write_through(true, &data, None);
        if !direct {
            eprintln!(
                "NOTE: {} refuses O_DIRECT; the buffered path was tested",
                std::env::temp_dir().display()
            );
        }
        assert_eq!(written.len(), data.len());
        assert!(written == data, "the file differs from what was written");
    }

    #[test]
    fn direct_writes_fall_back_to_buffered_midway() {
        let data = ragged();
        let (_, written) = write_through(true, &data, Some(2));
        assert!(written == data, "the file differs from what was written");
        let (direct, written) = write_through(false, &data, None);
        assert!(!direct);
        assert!(written == data, "the file differs from what was written");
    }

    #[test]
    fn zero_blocks_are_found() {
        assert!(is_zero(&[0u8; 4096]));
        let mut block = [0u8; 4096];
        block[4095] = 1;
        assert!(!is_zero(&block));
        assert!(is_zero(&[]));
    }
}
