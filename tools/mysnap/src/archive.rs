//! The mysnap archive format, shared by the tool that writes it (snap-tar)
//! and the tools that read it back (mysql-restore-dir): entry names, the
//! manifest that comes first, the checksum list that comes last, and a
//! reader that checks an archive is whole.
//!
//! An archive is a plain tar (GNU format, old-GNU sparse entries). Its first
//! entry is [`MANIFEST_PATH`], its last [`CHECKSUMS_PATH`]: a stream that
//! stops anywhere before the checksum list is detectably truncated.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;

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
    /// mysql-lock-hold's status file, verbatim: coordinates (binlog file and
    /// position, GTID, replica source), server layout, lock timings.
    pub status: Option<serde_json::Value>,
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
#[derive(Debug, PartialEq, Eq)]
pub enum Invalid {
    /// The stream ended before the checksum list: cut short.
    Truncated(String),
    /// Readable, but not what the checksum list or the format says.
    Corrupt(String),
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invalid::Truncated(why) => write!(f, "archive is truncated: {why}"),
            Invalid::Corrupt(why) => write!(f, "archive is corrupt: {why}"),
        }
    }
}

impl std::error::Error for Invalid {}

/// What a whole, verified archive says about itself.
#[derive(Debug)]
pub struct Verified {
    pub manifest: Manifest,
    pub checksums: Checksums,
}

/// Reads an uncompressed archive to its end, hashing every regular file, and
/// checks it against the format: manifest first, checksum list last, every
/// file's size and SHA-256 as listed, and nothing missing or extra.
pub fn verify(tar: impl Read) -> Result<Verified, Invalid> {
    let truncated = |e: std::io::Error| Invalid::Truncated(e.to_string());
    let mut archive = tar::Archive::new(tar);
    let mut manifest: Option<Manifest> = None;
    let mut checksums: Option<Checksums> = None;
    let mut seen: HashMap<String, (u64, String)> = HashMap::new();
    let mut order = Vec::new();
    for entry in archive.entries().map_err(truncated)? {
        let mut entry = entry.map_err(truncated)?;
        let path = entry
            .path()
            .map_err(truncated)?
            .to_string_lossy()
            .to_string();
        if checksums.is_some() {
            return Err(Invalid::Corrupt(format!(
                "'{path}' after the checksum list"
            )));
        }
        if manifest.is_none() && path != MANIFEST_PATH {
            return Err(Invalid::Corrupt(format!(
                "first entry is '{path}', not {MANIFEST_PATH}"
            )));
        }
        let mut json = Vec::new();
        if path == MANIFEST_PATH || path == CHECKSUMS_PATH {
            entry.read_to_end(&mut json).map_err(truncated)?;
        }
        if path == MANIFEST_PATH {
            if manifest.is_some() {
                return Err(Invalid::Corrupt("a second manifest".into()));
            }
            let m: Manifest = serde_json::from_slice(&json)
                .map_err(|e| Invalid::Corrupt(format!("{MANIFEST_PATH}: {e}")))?;
            if m.format > FORMAT {
                return Err(Invalid::Corrupt(format!(
                    "format {} is newer than this reader's {FORMAT}",
                    m.format
                )));
            }
            manifest = Some(m);
        } else if path == CHECKSUMS_PATH {
            checksums = Some(
                serde_json::from_slice(&json)
                    .map_err(|e| Invalid::Corrupt(format!("{CHECKSUMS_PATH}: {e}")))?,
            );
        } else if entry.header().entry_type().is_file()
            || entry.header().entry_type().is_gnu_sparse()
        {
            let (size, sha256) = hash(&mut entry).map_err(truncated)?;
            order.push(path.clone());
            seen.insert(path, (size, sha256));
        }
    }
    let manifest = manifest.ok_or_else(|| Invalid::Truncated("no manifest".into()))?;
    let checksums =
        checksums.ok_or_else(|| Invalid::Truncated("no checksum list at the end".into()))?;
    check_sums(&checksums, &order, &seen)?;
    Ok(Verified {
        manifest,
        checksums,
    })
}

/// The size and SHA-256 of everything `reader` yields.
pub fn hash(reader: &mut impl Read) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// Checks the files an archive held (`order`, `seen`: path to size and
/// SHA-256) against its checksum list.
pub fn check_sums(
    checksums: &Checksums,
    order: &[String],
    seen: &HashMap<String, (u64, String)>,
) -> Result<(), Invalid> {
    let corrupt = |why: String| Err(Invalid::Corrupt(why));
    if checksums.files.len() as u64 != checksums.file_count || order.len() != checksums.files.len()
    {
        return corrupt(format!(
            "{} files in the archive, {} listed, file_count {}",
            order.len(),
            checksums.files.len(),
            checksums.file_count
        ));
    }
    let mut total = 0u64;
    for sum in &checksums.files {
        match seen.get(&sum.path) {
            None => return corrupt(format!("'{}' is listed but not in the archive", sum.path)),
            Some((size, sha)) if *size != sum.size || *sha != sum.sha256 => {
                return corrupt(format!("'{}' does not match its checksum", sum.path))
            }
            Some((size, _)) => total += size,
        }
    }
    if total != checksums.total_bytes {
        return corrupt(format!(
            "files hold {total} bytes, total_bytes says {}",
            checksums.total_bytes
        ));
    }
    Ok(())
}
