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

/// A sibling tool: the one `option` names, else `name` beside this
/// executable (an install puts the tools together), else on PATH. `what`
/// begins the error, which names `tool`, the one looking.
pub fn sibling(
    given: Option<String>,
    option: &str,
    name: &str,
    what: &str,
    tool: &str,
) -> Result<PathBuf> {
    if let Some(path) = given {
        return given_program(option, path);
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf));
    search(&[name], beside.into_iter().chain(path_dirs())).ok_or_else(|| {
        Error::new(
            Exit::NotFound,
            format!(
                "{what}cannot find {name} beside {tool} or on PATH: install it or give {option}"
            ),
        )
    })
}
