//! Walks a tree depth-first in name order, so archives of the same tree
//! list the same entries in the same order, skipping excluded paths.

use mysnap::error::IoContext;
use mysnap::{Error, Exit, Result};
use std::fs::Metadata;
use std::path::{Path, PathBuf};

/// The prefix of the names mysql-restore-dir uses inside a datadir.
pub const RESTORE_LEFTOVER: &str = ".mysnap-";

/// `--exclude` patterns. A pattern without `/` matches an entry's name at
/// any depth; one with `/` matches the whole path relative to the archived
/// directory. `*` and `?` never match `/`. An excluded directory is skipped
/// with everything under it.
pub struct Excludes {
    patterns: Vec<(glob::Pattern, bool)>,
}

const MATCH: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

impl Excludes {
    pub fn new(patterns: &[String]) -> Result<Excludes> {
        let patterns = patterns
            .iter()
            .map(|p| {
                let p = p.trim_start_matches("./").trim_end_matches('/');
                glob::Pattern::new(p)
                    .map(|pattern| (pattern, p.contains('/')))
                    .map_err(|e| Error::usage(format!("--exclude '{p}': {e}")))
            })
            .collect::<Result<_>>()?;
        Ok(Excludes { patterns })
    }

    /// Whether `relative` (a path under the walked root) is excluded:
    /// by a pattern, or as what a restore left at the top of a datadir
    /// that is a mount point (`.mysnap-old-<time>` and the like: the
    /// previous data, which must not go into the next backup, and which
    /// mysql-restore-dir refuses in an archive).
    pub fn excludes(&self, relative: &Path) -> bool {
        let name = Path::new(relative.file_name().unwrap_or_default());
        if relative.components().count() == 1
            && name.to_string_lossy().starts_with(RESTORE_LEFTOVER)
        {
            return true;
        }
        self.patterns.iter().any(|(pattern, whole)| {
            pattern.matches_path_with(if *whole { relative } else { name }, MATCH)
        })
    }
}

/// One thing to archive.
pub struct Entry {
    /// The name in the archive.
    pub name: PathBuf,
    /// Where it is on disk.
    pub path: PathBuf,
    pub meta: Metadata,
}

/// Calls `visit` for everything under `root` (not `root` itself), parents
/// before children, with archive names under `prefix`.
pub fn walk(
    root: &Path,
    prefix: &Path,
    excludes: &Excludes,
    visit: &mut dyn FnMut(Entry) -> Result<()>,
) -> Result<()> {
    walk_dir(root, Path::new(""), prefix, excludes, visit)
}

fn walk_dir(
    root: &Path,
    relative: &Path,
    prefix: &Path,
    excludes: &Excludes,
    visit: &mut dyn FnMut(Entry) -> Result<()>,
) -> Result<()> {
    let dir = root.join(relative);
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .ctx(format!("cannot read directory {}", dir.display()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .ctx(format!("cannot read directory {}", dir.display()))?;
    names.sort();
    for name in names {
        let relative = relative.join(&name);
        if excludes.excludes(&relative) {
            if relative.to_string_lossy().starts_with(RESTORE_LEFTOVER) {
                log::info!("left out {}: a restore's leftover", relative.display());
            } else {
                log::debug!("excluded {}", relative.display());
            }
            continue;
        }
        let path = root.join(&relative);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(changed(&path)),
            Err(e) => return Err(e).ctx(format!("cannot stat {}", path.display())),
        };
        let is_dir = meta.is_dir();
        visit(Entry {
            name: prefix.join(&relative),
            path,
            meta,
        })?;
        if is_dir {
            walk_dir(root, &relative, prefix, excludes, visit)?;
        }
    }
    Ok(())
}

/// A tree that changes under snap-tar is not a snapshot: the archive would
/// not be a consistent copy, so this fails rather than warns.
pub fn changed(path: &Path) -> Error {
    Error::new(
        Exit::DataErr,
        format!(
            "{} changed while it was archived; archive a snapshot, not a live directory",
            path.display()
        ),
    )
}

/// Apparent bytes of the regular files under `root`, for progress and ETA.
pub fn total_size(root: &Path, excludes: &Excludes) -> Result<u64> {
    let mut total = 0;
    walk(root, Path::new(""), excludes, &mut |e| {
        if e.meta.is_file() {
            total += e.meta.len();
        }
        Ok(())
    })?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_without_a_slash_match_names_at_any_depth() {
        let x = Excludes::new(&["*.err".into(), "./db1/t?.ibd".into(), "tmp/".into()]).unwrap();
        assert!(x.excludes(Path::new("host.err")));
        assert!(x.excludes(Path::new("a/b/host.err")));
        assert!(x.excludes(Path::new("db1/t1.ibd")));
        assert!(!x.excludes(Path::new("db2/t1.ibd")));
        assert!(!x.excludes(Path::new("x/db1/t1.ibd")));
        assert!(x.excludes(Path::new("a/tmp")));
        // A restore's leftovers at the top, with no pattern; deeper, kept.
        let none = Excludes::new(&[]).unwrap();
        assert!(none.excludes(Path::new(".mysnap-old-20261203T000000Z")));
        assert!(!none.excludes(Path::new("db/.mysnap-old-x")));
        assert!(!none.excludes(Path::new("mysnap-old")));
        assert!(!x.excludes(Path::new("db1/t10.ibd")));
    }

    #[test]
    fn star_does_not_cross_directories() {
        let x = Excludes::new(&["db1/*".into()]).unwrap();
        assert!(x.excludes(Path::new("db1/t.ibd")));
        assert!(!x.excludes(Path::new("db1/sub/t.ibd")));
    }

    #[test]
    fn a_bad_pattern_is_a_usage_error() {
        assert_eq!(Excludes::new(&["[".into()]).err().unwrap().code(), 64);
    }
}
