//! Writes the archive: the manifest first, each walked entry as a tar
//! header and its data, and the checksum list last, which marks the
//! archive complete.

use crate::sparse;
use crate::walk::{changed, Entry};
use mysnap::archive::{Checksums, FileSum, Manifest, CHECKSUMS_PATH, FORMAT, MANIFEST_PATH};
use mysnap::error::IoContext;
use mysnap::progress::Progress;
use mysnap::{Error, Exit, Result};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use tar::{EntryType, Header};

/// A file is read in chunks this size: memory stays flat whatever its size.
const CHUNK: usize = 1 << 20;

pub struct Archiver<W: Write> {
    tar: tar::Builder<W>,
    sums: Vec<FileSum>,
    /// Bytes of file content archived so far, holes included.
    done: u64,
    /// Files with more than one link, by (device, inode): later names are
    /// stored as hard links to the first.
    links: HashMap<(u64, u64), PathBuf>,
    owners: HashMap<(u32, u32), (String, String)>,
    progress: Progress,
}

impl<W: Write> Archiver<W> {
    /// Starts the archive with its manifest.
    pub fn new(out: W, manifest: &Manifest, progress: Progress) -> Result<Self> {
        let mut archiver = Archiver {
            tar: tar::Builder::new(out),
            sums: Vec::new(),
            done: 0,
            links: HashMap::new(),
            owners: HashMap::new(),
            progress,
        };
        let json = serde_json::to_vec_pretty(manifest).expect("a manifest serializes");
        archiver.json(MANIFEST_PATH, &json)?;
        Ok(archiver)
    }

    /// Adds one walked entry.
    pub fn add(&mut self, entry: Entry) -> Result<()> {
        let meta = &entry.meta;
        let mut header = Header::new_gnu();
        header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
        let (user, group) = self.owner(meta.uid(), meta.gid());
        header.set_username(&user).ok();
        header.set_groupname(&group).ok();
        let kind = meta.file_type();
        if kind.is_dir() {
            header.set_size(0);
            // GNU tar's convention: a directory's name ends in '/'.
            let mut name = entry.name.into_os_string();
            name.push("/");
            self.append(&mut header, Path::new(&name), io::empty())
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&entry.path)
                .ctx(format!("cannot read link {}", entry.path.display()))?;
            header.set_size(0);
            self.tar
                .append_link(&mut header, &entry.name, target)
                .map_err(write_error)
        } else if kind.is_file() {
            self.file(&entry, header)
        } else {
            log::warn!(
                "{}: not a file, directory or symlink; skipped",
                entry.path.display()
            );
            Ok(())
        }
    }

    fn file(&mut self, entry: &Entry, mut header: Header) -> Result<()> {
        let meta = &entry.meta;
        if meta.nlink() > 1 {
            if let Some(first) = self.links.get(&(meta.dev(), meta.ino())) {
                header.set_entry_type(EntryType::Link);
                header.set_size(0);
                let first = first.clone();
                return self
                    .tar
                    .append_link(&mut header, &entry.name, first)
                    .map_err(write_error);
            }
            self.links
                .insert((meta.dev(), meta.ino()), entry.name.clone());
        }
        let file = match File::open(&entry.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(changed(&entry.path)),
            other => other.ctx(format!("cannot open {}", entry.path.display()))?,
        };
        let size = meta.len();
        // Allocated less than its length: it has holes worth keeping.
        let map = if meta.blocks() * 512 < size {
            sparse::data_map(&file, size).ctx(format!("cannot map {}", entry.path.display()))?
        } else {
            vec![]
        };
        let mut extensions = Vec::new();
        let map = if map.len() == 1 && map[0].offset == 0 && map[0].len == size {
            vec![] // holes too small to matter: an ordinary file
        } else {
            map
        };
        if map.is_empty() {
            header.set_size(size);
        } else {
            header.set_entry_type(EntryType::GNUSparse);
            header.set_size(sparse::stored(&map));
            extensions = sparse::encode(&mut header, &map, size);
        }
        let data = FileData::new(&file, &entry.path, map, size);
        let mut reader = io::BufReader::with_capacity(
            CHUNK,
            Reader {
                extensions: io::Cursor::new(extensions),
                data,
                progress: &mut self.progress,
                done: &mut self.done,
            },
        );
        let appended = self.tar.append_data(&mut header, &entry.name, &mut reader);
        let mut reader = reader.into_inner();
        let failure = reader.data.failure.take();
        let sha256 = hex::encode(reader.data.hasher.finalize_reset());
        match (appended, failure) {
            (_, Some(e)) => return Err(e),
            (Err(e), None) => return Err(write_error(e)),
            (Ok(()), None) => {}
        }
        let after = file
            .metadata()
            .ctx(format!("cannot stat {}", entry.path.display()))?;
        if after.len() != size
            || after.mtime() != meta.mtime()
            || after.mtime_nsec() != meta.mtime_nsec()
        {
            return Err(changed(&entry.path));
        }
        self.sums.push(FileSum {
            path: entry.name.to_string_lossy().to_string(),
            size,
            sha256,
        });
        Ok(())
    }

    /// Ends the archive with the checksum list, and returns the output.
    pub fn finish(mut self) -> Result<W> {
        let checksums = Checksums {
            format: FORMAT,
            file_count: self.sums.len() as u64,
            total_bytes: self.sums.iter().map(|s| s.size).sum(),
            files: std::mem::take(&mut self.sums),
        };
        let json = serde_json::to_vec_pretty(&checksums).expect("checksums serialize");
        self.json(CHECKSUMS_PATH, &json)?;
        self.progress.finish();
        self.tar.into_inner().map_err(write_error)
    }

    pub fn files(&self) -> usize {
        self.sums.len()
    }

    pub fn elapsed(&self) -> std::time::Duration {
        self.progress.elapsed()
    }

    fn json(&mut self, name: &str, json: &[u8]) -> Result<()> {
        let mut header = Header::new_gnu();
        header.set_entry_type(EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(json.len() as u64);
        header.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
        header.set_username("root").ok();
        header.set_groupname("root").ok();
        self.append(&mut header, Path::new(name), json)
    }

    fn append(&mut self, header: &mut Header, name: &Path, data: impl Read) -> Result<()> {
        self.tar
            .append_data(header, name, data)
            .map_err(write_error)
    }

    fn owner(&mut self, uid: u32, gid: u32) -> (String, String) {
        self.owners
            .entry((uid, gid))
            .or_insert_with(|| {
                let user = nix::unistd::User::from_uid(uid.into()).ok().flatten();
                let group = nix::unistd::Group::from_gid(gid.into()).ok().flatten();
                (
                    user.map(|u| u.name).unwrap_or_default(),
                    group.map(|g| g.name).unwrap_or_default(),
                )
            })
            .clone()
    }
}

/// A failure writing the archive: stdout closed or the disk behind it full.
fn write_error(e: io::Error) -> Error {
    Error::new(Exit::IoErr, format!("cannot write the archive: {e}"))
}

/// A file's data as the archive stores it: whole, or only its data runs.
/// It hashes the file's full content on the way, holes as zeros, and reads
/// exactly what the header announced or fails.
struct FileData<'a> {
    file: &'a File,
    path: &'a Path,
    /// Runs still to read; empty for an ordinary file.
    runs: std::vec::IntoIter<sparse::Segment>,
    /// Position in the file and end of the run being read.
    at: u64,
    end: u64,
    /// Where the logical content has been hashed up to.
    hashed: u64,
    size: u64,
    hasher: Sha256,
    /// Why reading stopped early, kept to report with its own exit code.
    failure: Option<Error>,
}

impl<'a> FileData<'a> {
    fn new(file: &'a File, path: &'a Path, map: Vec<sparse::Segment>, size: u64) -> Self {
        let whole = map.is_empty();
        FileData {
            file,
            path,
            runs: map.into_iter(),
            at: 0,
            end: if whole { size } else { 0 },
            hashed: 0,
            size,
            hasher: Sha256::new(),
            failure: None,
        }
    }

    /// Hashes zeros for a hole up to `to`.
    fn hash_hole(&mut self, to: u64) {
        static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
        while self.hashed < to {
            let n = (to - self.hashed).min(ZEROS.len() as u64) as usize;
            self.hasher.update(&ZEROS[..n]);
            self.hashed += n as u64;
        }
    }

    /// Reads the next piece of data into `buf`; 0 at the end.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.end {
            match self.runs.next() {
                Some(run) => {
                    self.at = run.offset;
                    self.end = run.offset + run.len;
                }
                None => {
                    self.hash_hole(self.size);
                    return Ok(0);
                }
            }
        }
        self.hash_hole(self.at);
        let want = (self.end - self.at).min(buf.len() as u64) as usize;
        let n = self.file.read_at(&mut buf[..want], self.at)?;
        if n == 0 {
            self.failure = Some(changed(self.path));
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank"));
        }
        self.hasher.update(&buf[..n]);
        self.at += n as u64;
        self.hashed = self.at;
        Ok(n)
    }
}

/// What `tar::Builder` copies after a header: sparse extension blocks, then
/// the file's data, counted for progress.
struct Reader<'a, 'f> {
    extensions: io::Cursor<Vec<u8>>,
    data: FileData<'f>,
    progress: &'a mut Progress,
    done: &'a mut u64,
}

impl Read for Reader<'_, '_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.extensions.read(out)?;
        if n > 0 {
            return Ok(n);
        }
        let hashed = self.data.hashed;
        let n = match self.data.read(out) {
            Ok(n) => n,
            Err(e) => {
                if self.data.failure.is_none() {
                    self.data.failure = Some(Error::new(
                        mysnap::error::io_exit(&e),
                        format!("cannot read {}: {e}", self.data.path.display()),
                    ));
                }
                return Err(e);
            }
        };
        *self.done += self.data.hashed - hashed;
        self.progress.update(*self.done);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An open scratch file of `len` bytes, already unlinked; its former
    /// path serves for messages.
    fn file_of(len: usize) -> (PathBuf, File) {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("snap-tar-archive-{}-{n}", std::process::id()));
        std::fs::write(&path, vec![b'x'; len]).unwrap();
        let file = File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        (path, file)
    }

    #[test]
    fn a_file_shorter_than_its_header_fails_as_changed() {
        let (path, file) = file_of(10);
        // The header announced 20 bytes: the file shrank after it was listed.
        let mut data = FileData::new(&file, &path, vec![], 20);
        let mut buf = [0u8; 64];
        assert_eq!(data.read(&mut buf).unwrap(), 10);
        assert!(data.read(&mut buf).is_err());
        let failure = data.failure.unwrap();
        assert_eq!(failure.code(), 65);
        assert!(failure.message().contains("changed while it was archived"));
    }

    #[test]
    fn holes_are_hashed_as_zeros() {
        let (path, file) = file_of(512);
        let map = vec![
            sparse::Segment {
                offset: 0,
                len: 512,
            },
            sparse::Segment {
                offset: 4096,
                len: 0,
            },
        ];
        let mut data = FileData::new(&file, &path, map, 4096);
        let mut buf = [0u8; 4096];
        let mut stored = 0;
        loop {
            match data.read(&mut buf).unwrap() {
                0 => break,
                n => stored += n,
            }
        }
        assert_eq!(stored, 512, "only the data run is stored");
        let mut whole = vec![b'x'; 512];
        whole.resize(4096, 0);
        assert_eq!(
            hex::encode(data.hasher.finalize()),
            hex::encode(Sha256::digest(&whole))
        );
    }
}
