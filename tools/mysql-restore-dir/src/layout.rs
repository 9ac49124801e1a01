//! `--include-layout ORIGINAL[=TARGET]`: which of the archive's directories
//! from outside the datadir (redo and undo logs on their own volumes) are
//! restored, and where. Only the command line picks a directory to
//! replace: a manifest's `layout[].original` is matched against it, never
//! obeyed on its own, since anyone who can write to the bucket writes the
//! manifest.

use mysnap::archive::{LayoutEntry, LAYOUT_DIR};
use mysnap::{Error, Exit, Result};
use std::path::{Component, Path, PathBuf};

/// One directory the admin allowed the restore to replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// The path the archive recorded (`layout[].original`).
    pub original: String,
    /// Where its files go.
    pub target: PathBuf,
}

/// A path the command line may name: absolute, with no `.` or `..`.
fn plain_absolute(path: &Path) -> bool {
    path.has_root()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

/// Whether one of the two directories holds the other (or they are one).
fn overlap(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// The real path of `path` where it exists, else `path` itself.
fn real(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Parses the `--include-layout` values and checks them against DIR and
/// each other.
pub fn parse(values: &[String], datadir: &Path) -> Result<Vec<Mapping>> {
    let mut out: Vec<Mapping> = Vec::new();
    for value in values {
        let (original, target) = value.split_once('=').unwrap_or((value, value));
        let target = PathBuf::from(target);
        let bad = |why: &str| Error::usage(format!("--include-layout '{value}': {why}"));
        if !plain_absolute(Path::new(original)) || !plain_absolute(&target) {
            return Err(bad(
                "ORIGINAL and TARGET must be absolute paths without . or ..",
            ));
        }
        if target == Path::new("/") {
            return Err(bad("TARGET cannot be /"));
        }
        for dir in [datadir.to_path_buf(), real(datadir)] {
            if overlap(&target, &dir) || overlap(&real(&target), &dir) {
                return Err(bad(&format!(
                    "TARGET overlaps the data directory {}",
                    datadir.display()
                )));
            }
        }
        for other in &out {
            if other.original == original {
                return Err(bad("ORIGINAL is named twice"));
            }
            if overlap(&target, &other.target) || overlap(&real(&target), &real(&other.target)) {
                return Err(bad(&format!(
                    "TARGET overlaps {}, named by another --include-layout",
                    other.target.display()
                )));
            }
        }
        out.push(Mapping {
            original: original.to_string(),
            target,
        });
    }
    Ok(out)
}

/// The manifest's entries matched with the command line.
#[derive(Debug)]
pub struct Resolved<'a> {
    /// For each entry the admin named: its archived prefix, and its target.
    pub chosen: Vec<(String, PathBuf)>,
    /// The entries nobody named: verified and reported, not restored.
    pub skipped: Vec<&'a LayoutEntry>,
}

/// Matches the manifest's layout entries with the command line's.
pub fn resolve<'a>(manifest: &'a [LayoutEntry], mappings: &[Mapping]) -> Result<Resolved<'a>> {
    for entry in manifest {
        let archived = Path::new(&entry.archived);
        if archived.parent() != Some(Path::new(LAYOUT_DIR))
            || !matches!(
                archived.components().next_back(),
                Some(Component::Normal(_))
            )
        {
            return Err(Error::new(
                Exit::DataErr,
                format!(
                    "archive is corrupt: its manifest puts layout files at '{}', not under {LAYOUT_DIR}/",
                    entry.archived
                ),
            ));
        }
    }
    let mut chosen = Vec::new();
    for mapping in mappings {
        let found: Vec<&LayoutEntry> = manifest
            .iter()
            .filter(|e| e.original == mapping.original)
            .collect();
        match found.as_slice() {
            [entry] => chosen.push((entry.archived.clone(), mapping.target.clone())),
            [] => {
                return Err(Error::new(
                    Exit::DataErr,
                    format!(
                        "--include-layout {}: the archive holds no files from there (it holds: {})",
                        mapping.original,
                        describe(manifest)
                    ),
                ))
            }
            _ => {
                return Err(Error::new(
                    Exit::DataErr,
                    format!(
                        "archive is corrupt: its manifest names {} more than once",
                        mapping.original
                    ),
                ))
            }
        }
    }
    let skipped = manifest
        .iter()
        .filter(|e| !mappings.iter().any(|m| m.original == e.original))
        .collect();
    Ok(Resolved { chosen, skipped })
}

/// The originals an archive's layout names, for messages.
pub fn describe(manifest: &[LayoutEntry]) -> String {
    if manifest.is_empty() {
        return "nothing from outside the datadir".into();
    }
    manifest
        .iter()
        .map(|l| l.original.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u32, original: &str) -> LayoutEntry {
        LayoutEntry {
            archived: format!("{LAYOUT_DIR}/{n}"),
            original: original.into(),
        }
    }

    #[test]
    fn targets_are_absolute_and_apart() {
        let dir = Path::new("/var/lib/mysql");
        let ok = parse(&["/redo".into(), "/undo=/srv/undo".into()], dir).unwrap();
        assert_eq!(ok[0].target, PathBuf::from("/redo"));
        assert_eq!(ok[1].original, "/undo");
        assert_eq!(ok[1].target, PathBuf::from("/srv/undo"));
        for bad in [
            vec!["redo"],
            vec!["/redo=relative"],
            vec!["/redo=/srv/../etc"],
            vec!["/redo=/"],
            vec!["/redo=/var/lib/mysql/redo"],
            vec!["/redo=/var/lib"],
            vec!["/redo=/var/lib/mysql"],
            vec!["/a=/srv/x", "/b=/srv/x/y"],
            vec!["/a=/srv/x", "/a=/srv/y"],
        ] {
            let values: Vec<String> = bad.iter().map(|s| s.to_string()).collect();
            let e = parse(&values, dir).unwrap_err();
            assert_eq!(e.code(), Exit::Usage as i32, "{bad:?}");
        }
    }

    #[test]
    fn the_manifest_alone_picks_nothing() {
        let manifest = [entry(0, "/redo"), entry(1, "/etc")];
        let Resolved { chosen, skipped } = resolve(&manifest, &[]).unwrap();
        assert!(chosen.is_empty());
        assert_eq!(skipped.len(), 2);
        let mapping = parse(&["/redo=/srv/redo".into()], Path::new("/d")).unwrap();
        let Resolved { chosen, skipped } = resolve(&manifest, &mapping).unwrap();
        assert_eq!(
            chosen,
            vec![(format!("{LAYOUT_DIR}/0"), PathBuf::from("/srv/redo"))]
        );
        assert_eq!(skipped, vec![&manifest[1]]);
        let missing = parse(&["/undo".into()], Path::new("/d")).unwrap();
        assert_eq!(
            resolve(&manifest, &missing).unwrap_err().code(),
            Exit::DataErr as i32
        );
        let hostile = [LayoutEntry {
            archived: "db".into(),
            original: "/redo".into(),
        }];
        assert_eq!(
            resolve(&hostile, &mapping).unwrap_err().code(),
            Exit::DataErr as i32
        );
    }
}
