//! Every option a tool's --help shows is documented in its man page, and
//! every page lints clean.

use mysnap_tests::tool::tool;
use std::path::PathBuf;
use std::process::Command;

const TOOLS: [&str; 6] = [
    "s3-put",
    "s3-get",
    "mysql-lock-hold",
    "snap-tar",
    "lvm-snap",
    "mysql-restore-dir",
];

fn page(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../man/{name}.1"))
}

/// The long options in a --help text.
fn long_options(help: &str) -> Vec<String> {
    let mut found: Vec<String> = help
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(String::from)
        .collect();
    found.sort();
    found.dedup();
    found
}

#[test]
fn help_options_are_in_the_man_pages() {
    for name in TOOLS {
        let out = tool(name).arg("--help").output().unwrap();
        assert!(out.status.success(), "{name} --help");
        let help = String::from_utf8(out.stdout).unwrap();
        let options = long_options(&help);
        assert!(
            options.len() >= 8,
            "{name}: too few options found: {options:?}"
        );
        let roff = std::fs::read_to_string(page(name)).unwrap_or_else(|e| panic!("{name}.1: {e}"));
        let text = roff
            .replace("\\-", "-")
            .replace("\\fB", "")
            .replace("\\fI", "")
            .replace("\\fR", "")
            .replace("\\fP", "");
        for option in options {
            assert!(
                text.contains(&option),
                "man/{name}.1 does not document {option}"
            );
        }
    }
}

#[test]
fn man_pages_lint_clean() {
    for name in TOOLS {
        let out = Command::new("groff")
            .args(["-ww", "-z", "-man"])
            .arg(page(name))
            .output()
            .expect("groff is installed by tests/setup.sh");
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && warnings.is_empty(),
            "{name}.1:\n{warnings}"
        );
    }
}

#[test]
fn version_and_help_exit_zero() {
    for name in TOOLS {
        for flag in ["-V", "--version", "-h"] {
            let out = tool(name).arg(flag).output().unwrap();
            assert_eq!(out.status.code(), Some(0), "{name} {flag}");
            assert!(!out.stdout.is_empty());
        }
        let version = String::from_utf8(tool(name).arg("-V").output().unwrap().stdout).unwrap();
        assert!(
            version.starts_with(&format!("{name} (mysnap) ")),
            "{version}"
        );
    }
}
