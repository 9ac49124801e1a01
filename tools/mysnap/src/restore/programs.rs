//! Finding the programs a restore runs: one given by an option, or the
//! first of some names on PATH and in the usual places.

use crate::{Error, Exit, Result};
use std::path::{Path, PathBuf};

/// A program that `option` names: it must be an executable file.
pub fn given_program(option: &str, path: String) -> Result<PathBuf> {
    if !is_executable(Path::new(&path)) {
        return Err(Error::new(
            Exit::NotFound,
            format!("{option} {path}: not an executable file"),
        ));
    }
    Ok(PathBuf::from(path))
}

/// The directories of PATH, in order.
pub fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default()
}

/// The first of `names` that is executable in one of `dirs`: each name
/// in every directory before the next name.
pub fn search(names: &[&str], dirs: impl IntoIterator<Item = PathBuf>) -> Option<PathBuf> {
    let dirs: Vec<PathBuf> = dirs.into_iter().collect();
    names
        .iter()
        .flat_map(|name| dirs.iter().map(move |d| d.join(name)))
        .find(|p| is_executable(p))
}

pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
