//! Every option a tool's --help shows is documented in its man page, every
//! page lints clean, and the pages about the systemd units match the units:
//! their settings, the journal fields the tools log, and the sandboxing
//! figures of systemd-analyze.

use mysnap_tests::tool::tool;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const TOOLS: &[&str] = &[
    "s3-put",
    "s3-get",
    "mysql-lock-hold",
    "snap-tar",
    "lvm-snap",
    "mysql-restore-dir",
    "mysql-binlog-archive",
    "mysql-binlog-replay",
    "s3-prune",
    "mysql-verify-backup",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn page(name: &str) -> PathBuf {
    repo().join(format!("man/{name}.1"))
}

/// Every page in man/, of any section.
fn all_pages() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(repo().join("man"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "1" | "5" | "7" | "8"))
        })
        .collect();
    pages.sort();
    pages
}

/// A page as plain text, one line per paragraph (no filling, no
/// hyphenation), so that phrases can be looked for whole.
fn render(page: &Path) -> String {
    let out = Command::new("groff")
        .args(["-man", "-Tascii", "-P-cbou", "-rLL=5000n", "-rHY=0"])
        .arg(page)
        .output()
        .expect("groff is installed by tests/setup.sh");
    assert!(out.status.success(), "groff {}", page.display());
    String::from_utf8(out.stdout).unwrap()
}

/// The files in units/ whose names end in `suffix`.
fn unit_files(suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("units"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().ends_with(suffix))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no units/*{suffix}");
    files
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_str().unwrap().to_string()
}

/// The MYSNAP_* names in a text.
fn mysnap_names(text: &str) -> BTreeSet<String> {
    text.match_indices("MYSNAP_")
        .map(|(at, _)| {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            name.trim_end_matches('_').to_string()
        })
        .filter(|name| name.len() > "MYSNAP_".len())
        .collect()
}

/// The items of a rendered page whose tag is a MYSNAP_* name: tag → the
/// text of its body, joined into one line. Tags given together (.TQ) get
/// the same body.
fn tagged_items(text: &str) -> BTreeMap<String, String> {
    const TAG_INDENT: usize = 7;
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut items = BTreeMap::new();
    let mut tags: Vec<String> = Vec::new();
    let mut body = String::new();
    let mut flush = |tags: &mut Vec<String>, body: &mut String| {
        for tag in tags.drain(..) {
            items.insert(tag, body.trim().to_string());
        }
        body.clear();
    };
    for line in text.lines() {
        let word = line.trim();
        let is_tag = indent(line) == TAG_INDENT
            && word.starts_with("MYSNAP_")
            && word
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if is_tag {
            if !body.is_empty() {
                flush(&mut tags, &mut body);
            }
            tags.push(word.to_string());
        } else if !tags.is_empty() {
            if word.is_empty() || indent(line) > TAG_INDENT {
                body.push(' ');
                body.push_str(word);
            } else {
                flush(&mut tags, &mut body);
            }
        }
    }
    flush(&mut tags, &mut body);
    items
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
    let pages = all_pages();
    let names: Vec<String> = pages.iter().map(|p| file_name(p)).collect();
    for expected in TOOLS
        .iter()
        .map(|t| format!("{t}.1"))
        .chain(["mysnap.7".to_string(), "mysnap.conf.5".to_string()])
    {
        assert!(
            names.contains(&expected),
            "man/{expected} is missing: {names:?}"
        );
    }
    for page in pages {
        let out = Command::new("groff")
            .args(["-ww", "-z", "-man"])
            .arg(&page)
            .output()
            .expect("groff is installed by tests/setup.sh");
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && warnings.is_empty(),
            "{}:\n{warnings}",
            page.display()
        );
    }
}

/// mysnap.conf(5) documents exactly the settings the units and
/// example.conf use, with the units' defaults and the units that read them.
#[test]
fn mysnap_conf_documents_the_units_settings() {
    let services = unit_files(".service");
    let example = std::fs::read_to_string(repo().join("units/example.conf")).unwrap();
    let mut settings = mysnap_names(&example);
    // setting → the units that read it ("backup" for mysnap-backup@.service)
    let mut used_by: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // setting → its default, as the page writes it
    let mut defaults: BTreeMap<String, String> = BTreeMap::new();
    for service in &services {
        let text = std::fs::read_to_string(service).unwrap();
        let unit = file_name(service);
        let short = unit
            .trim_start_matches("mysnap-")
            .trim_end_matches("@.service")
            .to_string();
        for name in mysnap_names(&text) {
            used_by
                .entry(name.clone())
                .or_default()
                .insert(short.clone());
            settings.insert(name);
        }
        for line in text.lines() {
            if let Some((name, value)) = line
                .strip_prefix("Environment=")
                .and_then(|assignment| assignment.split_once('='))
            {
                defaults.insert(name.to_string(), unescape_specifiers(value));
            }
        }
    }
    assert!(settings.len() >= 10, "too few settings found: {settings:?}");
    let units: BTreeSet<String> = used_by.values().flatten().cloned().collect();

    let items = tagged_items(&render(&repo().join("man/mysnap.conf.5")));
    let documented: BTreeSet<String> = items.keys().cloned().collect();
    let missing: Vec<_> = settings.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "man/mysnap.conf.5 does not document {missing:?}"
    );
    let unknown: Vec<_> = documented.difference(&settings).collect();
    assert!(
        unknown.is_empty(),
        "man/mysnap.conf.5 documents {unknown:?}, which no unit and not example.conf use"
    );

    for (name, body) in &items {
        match defaults.get(name) {
            Some(value) => assert!(
                body.contains(&format!("Default: {value}")),
                "man/mysnap.conf.5: {name} should say \"Default: {value}\" as the units do: {body}"
            ),
            None => assert!(
                body.contains("Default: none") || body.contains("No default"),
                "man/mysnap.conf.5: {name} has no default in the units: {body}"
            ),
        }
        let users = used_by.get(name).cloned().unwrap_or_default();
        let (_, said) = body
            .split_once("Used by ")
            .unwrap_or_else(|| panic!("man/mysnap.conf.5: {name} does not say which unit uses it"));
        for unit in &units {
            assert_eq!(
                said.contains(unit.as_str()),
                users.contains(unit),
                "man/mysnap.conf.5: {name} is used by {users:?}, but the page says: Used by {said}"
            );
        }
    }
}

/// A unit file's value as the page writes it: `%%` is `%`, `%i` the
/// instance.
fn unescape_specifiers(value: &str) -> String {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('%', Some('%')) => {
                out.push('%');
                chars.next();
            }
            ('%', Some('i')) => {
                out.push_str("INSTANCE");
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// mysnap(7) lists the journal fields the tools log: every key of a
/// `log::info!(key = value; ...)` call, as MYSNAP_<KEY>.
#[test]
fn mysnap_7_lists_the_journal_fields() {
    let mut fields = BTreeSet::new();
    for crate_dir in std::fs::read_dir(repo().join("tools")).unwrap() {
        let src = crate_dir.unwrap().path().join("src");
        let Ok(entries) = std::fs::read_dir(&src) else {
            continue;
        };
        for file in entries {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&file).unwrap();
                for key in log_keys(&text) {
                    fields.insert(format!("MYSNAP_{}", key.to_ascii_uppercase()));
                }
            }
        }
    }
    for expected in ["MYSNAP_KEY", "MYSNAP_LOCK_HOLD_MS", "MYSNAP_GTID"] {
        assert!(
            fields.contains(expected),
            "{expected} not found in tools/: {fields:?}"
        );
    }
    let documented: BTreeSet<String> = tagged_items(&render(&repo().join("man/mysnap.7")))
        .into_keys()
        .collect();
    assert_eq!(
        documented, fields,
        "man/mysnap.7 lists other journal fields than the tools log"
    );
}

/// The keys of the key-value pairs in a file's `log` macro calls: the
/// `name = value` items before a `;` that comes ahead of the message.
fn log_keys(source: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for macro_name in ["trace!(", "debug!(", "info!(", "warn!(", "error!("] {
        for (at, _) in source.match_indices(macro_name) {
            let args = &source[at + macro_name.len()..];
            let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
            let mut items = vec![String::new()];
            let mut has_pairs = false;
            for c in args.chars() {
                if in_string {
                    in_string = c != '"' || escaped;
                    escaped = c == '\\' && !escaped;
                    continue;
                }
                match c {
                    '"' if depth == 0 => break, // the message: no pairs before it
                    '"' => in_string = true,
                    '(' | '[' | '{' => depth += 1,
                    ')' | ']' | '}' if depth == 0 => break,
                    ')' | ']' | '}' => depth -= 1,
                    ';' if depth == 0 => {
                        has_pairs = true;
                        break;
                    }
                    ',' if depth == 0 => items.push(String::new()),
                    _ => {}
                }
                if depth == 0 && c != ',' {
                    items.last_mut().unwrap().push(c);
                }
            }
            if has_pairs {
                for item in items {
                    if let Some((key, _)) = item.split_once('=') {
                        keys.push(key.trim().to_string());
                    }
                }
            }
        }
    }
    keys
}

/// The exposure figures in mysnap(7) are what systemd-analyze reports for
/// each unit file.
#[test]
fn mysnap_7_exposure_figures_match_systemd_analyze() {
    let text = render(&repo().join("man/mysnap.7"));
    for service in unit_files(".service") {
        let unit = file_name(&service);
        let written: Vec<String> = text
            .lines()
            .filter_map(|line| {
                let words: Vec<&str> = line.split_whitespace().collect();
                match words[..] {
                    [name, figure, level] if name == unit && figure.parse::<f64>().is_ok() => {
                        Some(format!("{figure} {level}"))
                    }
                    _ => None,
                }
            })
            .collect();
        assert_eq!(
            written.len(),
            1,
            "man/mysnap.7 should give {unit}'s exposure once, as a line \"{unit}  FIGURE LEVEL\": {written:?}"
        );
        let out = match Command::new("systemd-analyze")
            .args(["security", "--offline=true"])
            .arg(&service)
            .output()
        {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "systemd-analyze is not installed: it comes with systemd (apt-get install systemd), \
                 and this test needs it to check man/mysnap.7's exposure figures"
            ),
            Err(e) => panic!("systemd-analyze: {e}"),
        };
        let report = String::from_utf8_lossy(&out.stdout);
        let measured = report
            .lines()
            .find_map(|line| line.split_once("Overall exposure level for ")?.1.split_once(": "))
            .map(|(_, figure)| figure.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| {
                panic!(
                    "systemd-analyze security --offline=true {} printed no overall exposure:\n{report}{}",
                    service.display(),
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        assert_eq!(
            written[0], measured,
            "man/mysnap.7 gives {unit} an exposure of {}, systemd-analyze says {measured}",
            written[0]
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
