//! The packages `make deb` and `make rpm` built (`make test` builds both
//! first): one of each, or the test fails saying which make target to run.

use std::path::PathBuf;

fn target() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// The one package named `*.EXT` in `dirs`; missing or ambiguous is a failure.
fn package(dirs: &[PathBuf], ext: &str, make_target: &str) -> PathBuf {
    let found: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == ext))
        .collect();
    assert!(
        found.len() == 1,
        "expected one .{ext} in {dirs:?}, found {found:?}: run 'make {make_target}' (make test does)"
    );
    found.into_iter().next().unwrap()
}

pub fn deb() -> PathBuf {
    package(&[target().join("debian")], "deb", "deb")
}

pub fn rpm() -> PathBuf {
    let rpms = target().join("rpm/RPMS");
    let arch_dirs: Vec<PathBuf> = std::fs::read_dir(&rpms)
        .map(|dirs| dirs.map(|d| d.unwrap().path()).collect())
        .unwrap_or_default();
    package(&arch_dirs, "rpm", "rpm")
}
