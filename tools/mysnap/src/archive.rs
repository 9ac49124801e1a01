//! The mysnap archive format, shared by the tool that writes it (snap-tar)
//! and the tool that reads it back (mysql-restore-dir): entry names, the
//! manifest that comes first, the checksum list that comes last, and the
//! one reader that checks an archive against them.
//!
//! An archive is a plain tar (GNU format, old-GNU sparse entries). Its first
//! entry is [`MANIFEST_PATH`], its last [`CHECKSUMS_PATH`]: a stream that
//! stops anywhere before the checksum list is detectably truncated.
//!
//! [`read`] walks the stream and holds every entry to the format's rules;
//! what becomes of an entry that passes is a [`Hook`]'s business:
//! mysql-restore-dir writes it beneath its staging root, [`verify`]
//! writes nothing. Only the hook knows where things land, so the rules
//! about that (where a symlink may point, names the restore keeps for
//! itself, room on the disk) are the hook's.

use crate::status::Status;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

/// The first entry: what the archive holds and where it came from.
pub const MANIFEST_PATH: &str = "mysnap/manifest.json";
/// The last entry: checksums, and the mark that the archive is complete.
pub const CHECKSUMS_PATH: &str = "mysnap/checksums.json";
/// Files from `--include-layout` mounts go in under `mysnap/layout/N/`.
pub const LAYOUT_DIR: &str = "mysnap/layout";
/// Bumped when a reader of an older version could misread the archive.
pub const FORMAT: u32 = 1;

/// `mysnap/manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    /// Host name of the machine that wrote the archive.
    pub host: String,
    /// When archiving started, RFC 3339 in UTC.
    pub created: String,
    /// Tool name to version, for the tools that made the archive.
    pub tools: std::collections::BTreeMap<String, String>,
    /// The directory archived, as given on the command line.
    pub source: String,
    /// mysql-lock-hold's status file: coordinates (binlog file and
    /// position, GTID, replica source), server layout, lock timings.
    pub status: Option<Status>,
    /// Where files from outside the data directory go back to.
    pub layout: Vec<LayoutEntry>,
}

/// One `--include-layout ORIGINAL=SNAPSHOT_MOUNT`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayoutEntry {
    /// The directory in the archive, `mysnap/layout/N`.
    pub archived: String,
    /// The path on the server where these files live.
    pub original: String,
}

/// `mysnap/checksums.json`: every regular file, in archive order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Checksums {
    pub format: u32,
    pub files: Vec<FileSum>,
    pub file_count: u64,
    /// Sum of the files' sizes (apparent sizes: holes count).
    pub total_bytes: u64,
}

/// One regular file: its name in the archive, its size and the SHA-256 of
/// its content (what `sha256sum` prints for the restored file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileSum {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// Why an archive cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// The stream ended before the checksum list: cut short.
    Truncated(String),
    /// The stream is not a readable tar (or its compression is broken).
    Unreadable(String),
    /// Readable, but not what the checksum list or the format says.
    Corrupt(String),
    /// Written in a format newer than this reader's.
    Newer(u32),
}

impl Invalid {
    /// A failed read of the stream: cut short, or unreadable.
    pub fn reading(e: io::Error) -> Invalid {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Invalid::Truncated(e.to_string())
        } else {
            Invalid::Unreadable(e.to_string())
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invalid::Truncated(why) => write!(f, "archive is truncated: {why}"),
            Invalid::Unreadable(why) => write!(f, "archive is unreadable: {why}"),
            Invalid::Corrupt(why) => write!(f, "archive is corrupt: {why}"),
            Invalid::Newer(format) => write!(
                f,
                "archive format {format} is newer than this tool's {FORMAT}: upgrade mysnap"
            ),
        }
    }
}

impl std::error::Error for Invalid {}

/// An archive that cannot be trusted is bad input.
impl From<Invalid> for crate::Error {
    fn from(invalid: Invalid) -> crate::Error {
        crate::Error::new(crate::Exit::DataErr, invalid.to_string())
    }
}

fn corrupt(why: impl Into<String>) -> Invalid {
    Invalid::Corrupt(why.into())
}

/// Where an entry belongs: the data directory, or one of the manifest's
/// layout directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// An index into the manifest's `layout`; None for the data directory.
    pub layout: Option<usize>,
    /// Relative to that directory, plain names only, never empty.
    pub path: PathBuf,
}

/// What an entry is, as far as the format allows: device nodes, FIFOs and
/// the like never pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    /// A regular file, sparse or not; `size` counts its holes. Its data
    /// follows.
    File {
        size: u64,
    },
    /// A symlink and its text, as archived: where it may point is for the
    /// hook to judge.
    Symlink(PathBuf),
    /// A hard link to a file earlier in the archive, in the same place:
    /// that file's path.
    HardLink(PathBuf),
}

/// One entry that passed the format's rules.
pub struct Entry<'a> {
    /// Its name in the archive, for messages.
    pub name: &'a str,
    pub place: Place,
    pub kind: Kind,
    /// For mode, owner and mtime.
    pub header: &'a tar::Header,
}

/// What becomes of the entries a [`read`] has checked.
pub trait Hook {
    /// The hook's own failures, and the reader's refusals turned into them.
    type Error: From<Invalid>;

    /// Called with the manifest, before any other entry.
    fn manifest(&mut self, manifest: &Manifest) -> Result<(), Self::Error>;

    /// Called for every entry but the manifest and the checksum list. A
    /// file's data comes from `data`, hashed on the way; what the hook
    /// leaves unread is read and hashed after it returns. A read error of
    /// `data` is the archive's: [`Invalid::reading`].
    fn entry(&mut self, entry: &Entry, data: &mut dyn Read) -> Result<(), Self::Error>;

    /// Called after each file with the bytes of file data read so far.
    fn progress(&mut self, _bytes: u64) {}
}

/// What an archive held, once read to its end.
#[derive(Debug)]
pub struct Contents {
    /// None for a plain tar (the first entry is not the manifest).
    pub manifest: Option<Manifest>,
    pub checksums: Option<Checksums>,
    /// Regular files, and their bytes (holes included).
    pub files: u64,
    pub bytes: u64,
    /// Each regular file's size and SHA-256.
    sums: HashMap<String, (u64, String)>,
    /// Entries of any kind: none at all is an empty stream.
    entries: u64,
}

impl Contents {
    /// Checks the files read against the checksum list: all there, none
    /// extra, each of its size and SHA-256. A plain tar has no list to be
    /// checked against: whether one is acceptable is the caller's rule.
    pub fn check(&self) -> Result<(), Invalid> {
        if self.manifest.is_none() {
            return Ok(());
        }
        let checksums = self
            .checksums
            .as_ref()
            .ok_or_else(|| Invalid::Truncated("no checksum list at the end".into()))?;
        if checksums.files.len() as u64 != checksums.file_count
            || self.files != checksums.file_count
        {
            return Err(corrupt(format!(
                "{} files in the archive, {} listed, file_count {}",
                self.files,
                checksums.files.len(),
                checksums.file_count
            )));
        }
        let mut total = 0u64;
        for sum in &checksums.files {
            match self.sums.get(&sum.path) {
                None => {
                    return Err(corrupt(format!(
                        "'{}' is listed but not in the archive",
                        sum.path
                    )))
                }
                Some((size, sha)) if *size != sum.size || *sha != sum.sha256 => {
                    return Err(corrupt(format!(
                        "'{}' does not match its checksum",
                        sum.path
                    )))
                }
                Some((size, _)) => total += size,
            }
        }
        if total != checksums.total_bytes {
            return Err(corrupt(format!(
                "files hold {total} bytes, total_bytes says {}",
                checksums.total_bytes
            )));
        }
        Ok(())
    }
}

/// What a name was taken by, for the rules on names used twice and on
/// hard links.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Taken {
    Dir,
    /// A regular file, or a hard link to one: what a hard link may name.
    File,
    Symlink,
}

/// Reads an uncompressed archive to its end, holding each entry to the
/// format and handing it to `hook`: the manifest, if any, comes first;
/// nothing follows the checksum list; names are relative and plain; a
/// name is used once (a directory may repeat); hard links name an earlier
/// file in the same place; names under [`LAYOUT_DIR`] belong to a layout
/// entry of the manifest; only directories, files, symlinks and hard
/// links. Every file is hashed; [`Contents::check`] then holds the sums
/// to the checksum list.
pub fn read<H: Hook>(tar: impl Read, hook: &mut H) -> Result<Contents, H::Error> {
    let mut contents = Contents {
        manifest: None,
        checksums: None,
        files: 0,
        bytes: 0,
        sums: HashMap::new(),
        entries: 0,
    };
    let mut taken: HashMap<PathBuf, Taken> = HashMap::new();
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().map_err(Invalid::reading)? {
        let mut entry = entry.map_err(Invalid::reading)?;
        let name = entry
            .path()
            .map_err(Invalid::reading)?
            .to_string_lossy()
            .to_string();
        let first = contents.entries == 0;
        contents.entries += 1;
        if contents.checksums.is_some() {
            return Err(corrupt(format!("'{name}' after the checksum list")).into());
        }
        let path = clean(&name)?;
        if path == Path::new(MANIFEST_PATH) {
            if !first {
                return Err(corrupt("the manifest is not the first entry").into());
            }
            let manifest = parse_manifest(&read_json(&mut entry)?)?;
            hook.manifest(&manifest)?;
            contents.manifest = Some(manifest);
            continue;
        }
        if path == Path::new(CHECKSUMS_PATH) {
            contents.checksums = Some(
                serde_json::from_slice(&read_json(&mut entry)?)
                    .map_err(|e| corrupt(format!("{CHECKSUMS_PATH}: {e}")))?,
            );
            continue;
        }
        let Some(kind) = kind(&mut entry, &name, &taken)? else {
            continue; // an extension header, not an entry of its own
        };
        let layout = contents.manifest.as_ref().map_or(&[][..], |m| &m.layout);
        let Some(place) = place(&path, layout, &name)? else {
            if kind != Kind::Dir {
                return Err(corrupt(format!("'{name}' is not a directory")).into());
            }
            continue; // the root, or a layout directory itself
        };
        let kind = match kind {
            Kind::HardLink(target) => match place_of(&target, layout) {
                Some(to) if to.layout == place.layout => Kind::HardLink(to.path),
                _ => {
                    return Err(corrupt(format!(
                        "hard link '{name}' points to '{}', in another directory of the archive",
                        target.display()
                    ))
                    .into())
                }
            },
            kind => kind,
        };
        let now = match kind {
            Kind::Dir => Taken::Dir,
            Kind::File { .. } | Kind::HardLink(_) => Taken::File,
            Kind::Symlink(_) => Taken::Symlink,
        };
        match taken.insert(path, now) {
            None => {}
            Some(Taken::Dir) if now == Taken::Dir => {}
            Some(_) => return Err(corrupt(format!("'{name}' appears twice")).into()),
        }
        let checked = Entry {
            name: &name,
            place,
            kind,
            header: &entry.header().clone(),
        };
        let mut data = Hashing::new(&mut entry);
        hook.entry(&checked, &mut data)?;
        if let Kind::File { .. } = checked.kind {
            let (size, sha256) = data.finish().map_err(Invalid::reading)?;
            contents.files += 1;
            contents.bytes += size;
            contents.sums.insert(name, (size, sha256));
            hook.progress(contents.bytes);
        }
    }
    Ok(contents)
}

/// Reads a manifest or checksum list.
fn read_json(entry: &mut impl Read) -> Result<Vec<u8>, Invalid> {
    let mut json = Vec::new();
    entry.read_to_end(&mut json).map_err(Invalid::reading)?;
    Ok(json)
}

/// The manifest, its format judged before the rest (a newer one may not
/// parse as this version's); each layout directory directly under
/// [`LAYOUT_DIR`].
fn parse_manifest(json: &[u8]) -> Result<Manifest, Invalid> {
    #[derive(Deserialize)]
    struct Versioned {
        format: u32,
    }
    let bad = |e: serde_json::Error| corrupt(format!("{MANIFEST_PATH}: {e}"));
    let Versioned { format } = serde_json::from_slice(json).map_err(bad)?;
    if format > FORMAT {
        return Err(Invalid::Newer(format));
    }
    let manifest: Manifest = serde_json::from_slice(json).map_err(bad)?;
    for entry in &manifest.layout {
        let archived = Path::new(&entry.archived);
        if archived.parent() != Some(Path::new(LAYOUT_DIR))
            || !matches!(
                archived.components().next_back(),
                Some(Component::Normal(_))
            )
        {
            return Err(corrupt(format!(
                "its manifest puts layout files at '{}', not under {LAYOUT_DIR}/",
                entry.archived
            )));
        }
    }
    Ok(manifest)
}

/// What the entry is; None for an extension header.
fn kind<R: Read>(
    entry: &mut tar::Entry<R>,
    name: &str,
    taken: &HashMap<PathBuf, Taken>,
) -> Result<Option<Kind>, Invalid> {
    use tar::EntryType::*;
    let link = |entry: &tar::Entry<R>, what: &str| -> Result<PathBuf, Invalid> {
        Ok(entry
            .link_name()
            .map_err(Invalid::reading)?
            .ok_or_else(|| corrupt(format!("{what} '{name}' has no target")))?
            .into_owned())
    };
    Ok(Some(match entry.header().entry_type() {
        Directory => Kind::Dir,
        Regular | Continuous | GNUSparse => Kind::File { size: entry.size() },
        Symlink => Kind::Symlink(link(entry, "symlink")?),
        Link => {
            let target = link(entry, "hard link")?;
            let target = clean(&target.to_string_lossy())
                .map_err(|_| corrupt(format!("hard link '{name}' points outside")))?;
            if taken.get(&target) != Some(&Taken::File) {
                return Err(corrupt(format!(
                    "hard link '{name}' points to '{}', which is not a file in this archive",
                    target.display()
                )));
            }
            Kind::HardLink(target)
        }
        XGlobalHeader | XHeader | GNULongName | GNULongLink => return Ok(None),
        other => {
            return Err(corrupt(format!(
                "'{name}' is a {other:?} entry: device nodes, FIFOs and the like are refused"
            )))
        }
    }))
}

/// `name` as a relative path of plain names.
fn clean(name: &str) -> Result<PathBuf, Invalid> {
    let mut path = PathBuf::new();
    for component in Path::new(name).components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            _ => return Err(corrupt(format!("unsafe path '{name}'"))),
        }
    }
    Ok(path)
}

/// Where `path` belongs; None for the archive's own directories: the root
/// and each layout directory itself (and `mysnap/layout` that holds them).
fn place(path: &Path, layout: &[LayoutEntry], name: &str) -> Result<Option<Place>, Invalid> {
    if path.as_os_str().is_empty() || path == Path::new(LAYOUT_DIR) {
        return Ok(None);
    }
    match place_of(path, layout) {
        Some(place) if place.path.as_os_str().is_empty() => Ok(None),
        Some(place) => Ok(Some(place)),
        None => Err(corrupt(format!(
            "'{name}' is under no layout entry of the manifest"
        ))),
    }
}

/// The data directory's, or the layout entry's whose directory holds
/// `path` (the path inside it may be empty); None under [`LAYOUT_DIR`]
/// but in no layout entry.
fn place_of(path: &Path, layout: &[LayoutEntry]) -> Option<Place> {
    if !path.starts_with(LAYOUT_DIR) {
        return Some(Place {
            layout: None,
            path: path.to_path_buf(),
        });
    }
    layout.iter().enumerate().find_map(|(i, entry)| {
        path.strip_prefix(&entry.archived).ok().map(|inner| Place {
            layout: Some(i),
            path: inner.to_path_buf(),
        })
    })
}

/// A file's data, hashed as it is read.
struct Hashing<'a> {
    data: &'a mut dyn Read,
    hasher: Sha256,
    size: u64,
}

impl<'a> Hashing<'a> {
    fn new(data: &'a mut dyn Read) -> Self {
        Hashing {
            data,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// Reads what is left, and returns the size and SHA-256 of it all.
    fn finish(mut self) -> io::Result<(u64, String)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.size, hex::encode(self.hasher.finalize())))
    }
}

impl Read for Hashing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.data.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// The hook of [`verify`]: every entry is checked and hashed, none written.
struct Nowhere;

impl Hook for Nowhere {
    type Error = Invalid;

    fn manifest(&mut self, _: &Manifest) -> Result<(), Invalid> {
        Ok(())
    }

    fn entry(&mut self, _: &Entry, _: &mut dyn Read) -> Result<(), Invalid> {
        Ok(())
    }
}

/// What a whole, verified archive says about itself.
#[derive(Debug)]
pub struct Verified {
    pub manifest: Manifest,
    pub checksums: Checksums,
}

/// Reads an uncompressed archive to its end, writing nothing, and checks
/// it is a whole mysnap archive: [`read`]'s rules, a manifest first, the
/// checksum list last, and every file as listed.
pub fn verify(tar: impl Read) -> Result<Verified, Invalid> {
    let contents = read(tar, &mut Nowhere)?;
    contents.check()?;
    match contents {
        Contents {
            manifest: Some(manifest),
            checksums: Some(checksums),
            ..
        } => Ok(Verified {
            manifest,
            checksums,
        }),
        Contents { entries: 0, .. } => Err(Invalid::Truncated("the archive is empty".into())),
        Contents { .. } => Err(corrupt(format!(
            "not a mysnap archive: its first entry is not {MANIFEST_PATH}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tar::EntryType;

    #[test]
    fn a_newer_format_is_told_apart_from_a_corrupt_manifest() {
        let newer = r#"{"format": 2, "everything": "different"}"#;
        assert_eq!(parse_manifest(newer.as_bytes()), Err(Invalid::Newer(2)));
        let mut bad = serde_json::to_value(manifest(&[])).unwrap();
        bad["status"] = serde_json::json!({"binlog_file": "mysql-bin.000001"});
        match parse_manifest(&serde_json::to_vec(&bad).unwrap()) {
            Err(Invalid::Corrupt(why)) => assert!(why.contains("missing field"), "{why}"),
            other => panic!("a status that is not one: {other:?}"),
        }
        for hostile in [
            "db",
            "mysnap/layout",
            "mysnap/layout/0/..",
            "mysnap/layout/0/x",
        ] {
            let json = serde_json::to_vec(&manifest(&[hostile])).unwrap();
            match parse_manifest(&json) {
                Err(Invalid::Corrupt(why)) => assert!(why.contains("not under"), "{why}"),
                other => panic!("{hostile}: {other:?}"),
            }
        }
    }

    #[test]
    fn paths_must_stay_relative() {
        assert_eq!(clean("./a/b").unwrap(), PathBuf::from("a/b"));
        assert!(clean("../evil").is_err());
        assert!(clean("a/../../evil").is_err());
        assert!(clean("/etc/passwd").is_err());
        assert_eq!(clean("./").unwrap(), PathBuf::new());
    }

    /// One entry of a test archive: name, type, data or link target.
    type Spec<'a> = (&'a str, EntryType, &'a [u8]);

    /// A tar of `entries`, names written as given.
    fn tar_of(entries: &[Spec]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_mode(0o644);
            let gnu = header.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            let body: &[u8] = if kind.is_hard_link() || kind.is_symlink() {
                gnu.linkname[..data.len()].copy_from_slice(data);
                b""
            } else {
                data
            };
            header.set_size(body.len() as u64);
            header.set_cksum();
            builder.append(&header, body).unwrap();
        }
        builder.into_inner().unwrap()
    }

    /// A manifest without a status, its layout directories at `layout`.
    fn manifest(layout: &[&str]) -> Manifest {
        Manifest {
            format: FORMAT,
            host: "h".into(),
            created: "2026-01-01T00:00:00Z".into(),
            tools: Default::default(),
            source: "/s".into(),
            status: None,
            layout: layout
                .iter()
                .map(|a| LayoutEntry {
                    archived: a.to_string(),
                    original: format!("/{a}"),
                })
                .collect(),
        }
    }

    /// A whole mysnap archive: a manifest with `layout`, `entries`, and
    /// the checksum list of their regular files.
    fn archive(layout: &[&str], entries: &[Spec]) -> Vec<u8> {
        let files: Vec<FileSum> = entries
            .iter()
            .filter(|(_, kind, _)| *kind == EntryType::Regular)
            .map(|(name, _, data)| FileSum {
                path: name.to_string(),
                size: data.len() as u64,
                sha256: hex::encode(Sha256::digest(data)),
            })
            .collect();
        let checksums = Checksums {
            format: FORMAT,
            file_count: files.len() as u64,
            total_bytes: files.iter().map(|f| f.size).sum(),
            files,
        };
        let manifest = serde_json::to_vec(&manifest(layout)).unwrap();
        let checksums = serde_json::to_vec(&checksums).unwrap();
        let mut all: Vec<Spec> = vec![(MANIFEST_PATH, EntryType::Regular, &manifest)];
        all.extend_from_slice(entries);
        all.push((CHECKSUMS_PATH, EntryType::Regular, &checksums));
        tar_of(&all)
    }

    fn refused(tar: &[u8]) -> String {
        verify(tar).unwrap_err().to_string()
    }

    use EntryType::{Directory as D, Link as H, Regular as F, Symlink as S};

    #[test]
    fn a_whole_archive_verifies() {
        let tar = archive(
            &["mysnap/layout/0"],
            &[
                ("db/", D, b""),
                ("db/t.ibd", F, b"data"),
                ("db/t2.ibd", H, b"db/t.ibd"),
                ("db/s", S, b"t.ibd"),
                ("mysnap/layout/0/", D, b""),
                ("mysnap/layout/0/ib_logfile0", F, b"redo"),
            ],
        );
        let verified = verify(&tar[..]).unwrap();
        assert_eq!(verified.checksums.file_count, 2);
    }

    #[test]
    fn names_are_used_once_and_only_plain_ones() {
        let twice = archive(&[], &[("t", F, b"1"), ("./t", F, b"2")]);
        assert!(refused(&twice).contains("'./t' appears twice"));
        let dir_then_file = archive(&[], &[("t/", D, b""), ("t", F, b"x")]);
        assert!(refused(&dir_then_file).contains("appears twice"));
        let dirs_repeat = archive(&[], &[("t/", D, b""), ("t/", D, b"")]);
        verify(&dirs_repeat[..]).unwrap();
        let evil = archive(&[], &[("../evil", F, b"x")]);
        assert!(refused(&evil).contains("unsafe path '../evil'"));
        let fifo = archive(&[], &[("f", EntryType::Fifo, b"")]);
        assert!(refused(&fifo).contains("FIFOs and the like are refused"));
    }

    #[test]
    fn hard_links_name_an_earlier_file_of_their_own_directory() {
        let to_dir = archive(&[], &[("t/", D, b""), ("h", H, b"t")]);
        assert!(refused(&to_dir).contains("not a file in this archive"));
        let forward = archive(&[], &[("h", H, b"t"), ("t", F, b"x")]);
        assert!(refused(&forward).contains("not a file in this archive"));
        let to_link = archive(&[], &[("t", F, b"x"), ("h", H, b"t"), ("h2", H, b"h")]);
        verify(&to_link[..]).unwrap();
        let out = archive(&[], &[("h", H, b"../etc/passwd")]);
        assert!(refused(&out).contains("hard link 'h' points outside"));
        let across = archive(
            &["mysnap/layout/0"],
            &[("t", F, b"x"), ("mysnap/layout/0/h", H, b"t")],
        );
        assert!(refused(&across).contains("in another directory of the archive"));
    }

    #[test]
    fn the_order_and_the_layout_are_the_manifests() {
        let tar = archive(&[], &[("t", F, b"x")]);
        let mut after = tar[..tar.len() - 1024].to_vec();
        after.extend(tar_of(&[("late", F, b"x")]));
        assert!(refused(&after).contains("'late' after the checksum list"));
        let second = archive(&[], &[(MANIFEST_PATH, F, b"{}")]);
        assert!(refused(&second).contains("the manifest is not the first entry"));
        let stray = archive(&["mysnap/layout/0"], &[("mysnap/layout/1/x", F, b"x")]);
        assert!(refused(&stray).contains("under no layout entry of the manifest"));
        let plain = tar_of(&[("t", F, b"x")]);
        assert!(refused(&plain).contains("not a mysnap archive"));
        assert!(matches!(
            verify(&tar_of(&[])[..]),
            Err(Invalid::Truncated(_))
        ));
    }

    #[test]
    fn files_are_held_to_the_checksum_list() {
        let tar = archive(&[], &[("t", F, b"x")]);
        // 'x' is the data's first byte, in the block after t's header.
        let at = tar
            .windows(2)
            .position(|w| w == b"x\0")
            .filter(|&at| at % 512 == 0)
            .unwrap();
        let mut changed = tar.clone();
        changed[at] = b'y';
        assert!(refused(&changed).contains("'t' does not match its checksum"));
    }
}
