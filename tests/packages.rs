//! The Debian package and the RPM that `make deb` and `make rpm` built (make
//! test builds both): their files, modes, conffiles, dependencies and
//! maintainer scripts, lintian's verdict, and the same payload in both.

use mysnap_tests::packages::{deb, rpm};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::process::Command;

const UNITS: [&str; 8] = [
    "mysnap-backup@.service",
    "mysnap-backup@.timer",
    "mysnap-restore@.service",
    "mysnap-binlog@.service",
    "mysnap-prune@.service",
    "mysnap-verify@.service",
    "mysnap-verify@.timer",
    "mysnap-failure@.service",
];

const CONFIG: &str = "/etc/mysnap/example.conf";

fn source_tree() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The tools: the crates under tools/ with a main.rs (not the shared library).
fn tools() -> Vec<String> {
    let tools: Vec<String> = std::fs::read_dir(source_tree().join("tools"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|dir| dir.join("src/main.rs").exists())
        .map(|dir| dir.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(!tools.is_empty(), "no tools under tools/");
    tools
}

/// stdout of a command that must succeed.
fn run(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e} (tests/setup.sh all installs it)"));
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Path → "MODE OWNER/GROUP" for an `ls -l`-like listing: owner and group in
/// the fields `owner` (one "root/root" field, or two), the path in field `path`.
fn listing(text: &str, owner: Range<usize>, path: usize) -> BTreeMap<String, String> {
    text.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let name = fields[path].trim_start_matches('.').trim_end_matches('/');
            (
                name.to_string(),
                format!("{} {}", fields[0], fields[owner.clone()].join("/")),
            )
        })
        .filter(|(name, _)| !name.is_empty())
        .collect()
}

fn deb_listing() -> BTreeMap<String, String> {
    listing(
        &run(Command::new("dpkg-deb").arg("--contents").arg(deb())),
        1..2,
        5,
    )
}

fn rpm_listing() -> BTreeMap<String, String> {
    listing(&run(Command::new("rpm").arg("-qlvp").arg(rpm())), 2..4, 8)
}

/// The control files (control, conffiles, maintainer scripts), extracted.
fn deb_control() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb")
        .arg("--control")
        .arg(deb())
        .arg(dir.path()));
    assert!(
        dir.path().join("control").exists(),
        "dpkg-deb --control extracted nothing"
    );
    dir
}

fn deb_field(name: &str) -> String {
    run(Command::new("dpkg-deb").arg("--field").arg(deb()).arg(name))
        .trim_end()
        .to_string()
}

/// The man pages the source tree has, as installed: /usr/share/man/manN/PAGE.N.gz.
fn man_pages() -> Vec<String> {
    let mut pages: Vec<String> = std::fs::read_dir(source_tree().join("man"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter_map(|name| {
            let section = name.rsplit_once('.')?.1.to_string();
            ["1", "5", "7"]
                .contains(&section.as_str())
                .then(|| format!("/usr/share/man/man{section}/{name}.gz"))
        })
        .collect();
    pages.sort();
    pages
}

#[test]
fn deb_holds_the_tools_units_man_pages_and_private_config() {
    let files = deb_listing();
    let tools = tools();
    for tool in &tools {
        assert_eq!(
            files.get(&format!("/usr/bin/{tool}")).map(String::as_str),
            Some("-rwxr-xr-x root/root"),
            "{tool}"
        );
    }
    for unit in UNITS {
        assert_eq!(
            files
                .get(&format!("/lib/systemd/system/{unit}"))
                .map(String::as_str),
            Some("-rw-r--r-- root/root"),
            "{unit}"
        );
    }
    let pages = man_pages();
    assert!(pages.len() >= tools.len(), "{pages:?}");
    let packaged: Vec<String> = files
        .keys()
        .filter(|path| path.starts_with("/usr/share/man/man") && path.contains('.'))
        .cloned()
        .collect();
    assert_eq!(packaged, pages, "man pages in the .deb against man/");
    assert_eq!(
        files.get(CONFIG).map(String::as_str),
        Some("-rw------- root/root")
    );
    assert_eq!(
        files.get("/etc/mysnap").map(String::as_str),
        Some("drwx------ root/root")
    );
}

#[test]
fn deb_control_version_dependencies_and_conffiles() {
    assert_eq!(deb_field("Version"), env!("CARGO_PKG_VERSION"));
    let depends = deb_field("Depends");
    assert!(
        depends.split(", ").any(|dep| dep == "lvm2"),
        "Depends: {depends}"
    );
    let conffiles = std::fs::read_to_string(deb_control().path().join("conffiles"))
        .expect("a conffiles control file");
    assert_eq!(conffiles.lines().collect::<Vec<_>>(), [CONFIG]);
}

/// Units are shipped, never switched on: the admin enables an instance.
#[test]
fn deb_maintainer_scripts_enable_and_start_nothing() {
    let control = deb_control();
    let forbidden = [
        "deb-systemd-helper enable",
        "deb-systemd-invoke start",
        "deb-systemd-invoke restart",
        "systemctl enable",
        "systemctl start",
        "systemctl restart",
        "--now",
        ".timer",
    ];
    for script in ["preinst", "postinst", "prerm", "postrm"] {
        let Ok(text) = std::fs::read_to_string(control.path().join(script)) else {
            continue;
        };
        for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
            for word in forbidden {
                assert!(!line.contains(word), "{script}: {line}");
            }
        }
    }
}

#[test]
fn lintian_reports_no_errors() {
    let deb = deb();
    let report = run(Command::new("lintian")
        .args(["--fail-on", "none", "--display-info", "--show-overrides"])
        .arg(&deb));
    eprintln!("lintian {}:\n{report}", deb.display());
    // The overridden mode of the config shows lintian looked at the files.
    assert!(
        report.contains("O: mysnap: non-standard-file-perm 0600"),
        "lintian did not report the overridden config mode"
    );
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{}", errors.join("\n"));
}

/// The RPM's files and modes are the .deb's, but for each distribution's
/// conventions: units under /usr/lib (RPM's %{_unitdir}) where bookworm's
/// debhelper uses /lib, and Debian's /usr/share/doc and lintian overrides.
/// Directories other than /etc/mysnap belong to the system on RPM distributions.
#[test]
fn rpm_has_the_debs_files() {
    let from_deb: BTreeMap<String, String> = deb_listing()
        .into_iter()
        .filter(|(path, mode)| !mode.starts_with('d') || path == "/etc/mysnap")
        .filter(|(path, _)| {
            !path.starts_with("/usr/share/doc/mysnap/")
                && !path.starts_with("/usr/share/lintian/overrides/")
        })
        .map(|(path, mode)| {
            let path = match path.strip_prefix("/lib/systemd/system/") {
                Some(unit) => format!("/usr/lib/systemd/system/{unit}"),
                None => path,
            };
            (path, mode)
        })
        .collect();
    assert!(from_deb.len() >= tools().len() + UNITS.len() + 2);
    assert_eq!(rpm_listing(), from_deb);
}

#[test]
fn rpm_requires_lvm2_marks_the_config_and_runs_no_scripts() {
    let rpm = rpm();
    let query = |args: &[&str]| run(Command::new("rpm").args(args).arg(&rpm));
    assert_eq!(
        query(&["-qp", "--queryformat", "%{VERSION}"]),
        env!("CARGO_PKG_VERSION")
    );
    let requires = query(&["-qp", "--requires"]);
    assert!(requires.lines().any(|l| l.trim() == "lvm2"), "{requires}");
    let config = query(&["-qcp"]);
    assert_eq!(config.lines().collect::<Vec<_>>(), [CONFIG]);
    assert_eq!(
        rpm_listing().get(CONFIG).map(String::as_str),
        Some("-rw------- root/root")
    );
    let scripts = query(&["-qp", "--scripts"]);
    assert!(scripts.is_empty(), "{scripts}");
}

/// The build runs in a staging copy under target/: debhelper's and rpmbuild's
/// leftovers never land in packaging/.
#[test]
fn packaging_dir_holds_no_build_output() {
    deb();
    rpm();
    let untracked = run(Command::new("git")
        .args(["ls-files", "--others", "--", "packaging"])
        .current_dir(source_tree()));
    assert!(
        untracked.is_empty(),
        "untracked files in packaging/:\n{untracked}"
    );
}

/// The tests' hooks are debug-build only: the shipped s3-put does not read
/// `MYSNAP_TEST_PARTS_PER_STEP` (its name is not even in the binary).
#[test]
fn the_packaged_tools_have_no_test_hooks() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb())
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "dpkg-deb -x");
    for tool in tools() {
        let binary = std::fs::read(dir.path().join("usr/bin").join(&tool)).unwrap();
        let hook = b"MYSNAP_TEST_";
        assert!(
            !binary.windows(hook.len()).any(|w| w == hook),
            "{tool} carries a test hook"
        );
    }
}
