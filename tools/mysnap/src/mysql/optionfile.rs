//! MySQL option files, read as the mysql client reads them: the same files
//! in the same order, `[group]` sections, `!include` and `!includedir`,
//! quoting and escapes, `-` and `_` alike in names, later values winning.
//!
//! This is where credentials come from: never from the command line.

use crate::error::IoContext;
use crate::{Error, Exit, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which files to read, as `--defaults-file`, `--defaults-extra-file` and
/// `--no-defaults` say.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// Read only this file.
    pub defaults_file: Option<PathBuf>,
    /// Read this file after the global ones, before ~/.my.cnf.
    pub extra_file: Option<PathBuf>,
    /// Read no file at all.
    pub no_defaults: bool,
}

/// Options from the groups that apply, with names normalised to `_`.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct OptionValues(BTreeMap<String, String>);

/// Shows every option but the secrets: a `{:?}` in a log or a panic
/// message must not print a password.
impl std::fmt::Debug for OptionValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in &self.0 {
            if is_secret(name) {
                map.entry(name, &"<redacted>");
            } else {
                map.entry(name, value);
            }
        }
        map.finish()
    }
}

/// Option names whose values are secrets (`password`, `ssl_passphrase`...).
fn is_secret(name: &str) -> bool {
    name.contains("password") || name.contains("passwd") || name.contains("passphrase")
}

impl OptionValues {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(&normalise(name)).map(String::as_str)
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.0.insert(normalise(name), value.to_string());
    }
}

fn normalise(name: &str) -> String {
    name.trim().to_ascii_lowercase().replace('-', "_")
}

impl Sources {
    /// The files the client would read, in order; missing ones are skipped
    /// except a `--defaults-file` or `--defaults-extra-file` named explicitly.
    pub fn files(&self) -> Vec<(PathBuf, bool)> {
        if self.no_defaults {
            return Vec::new();
        }
        if let Some(file) = &self.defaults_file {
            return vec![(file.clone(), true)];
        }
        let mut files: Vec<(PathBuf, bool)> = ["/etc/my.cnf", "/etc/mysql/my.cnf"]
            .iter()
            .map(|p| (PathBuf::from(p), false))
            .collect();
        for home in ["MARIADB_HOME", "MYSQL_HOME"] {
            if let Some(dir) = std::env::var_os(home) {
                files.push((Path::new(&dir).join("my.cnf"), false));
            }
        }
        if let Some(extra) = &self.extra_file {
            files.push((extra.clone(), true));
        }
        if let Some(home) = std::env::var_os("HOME") {
            files.push((Path::new(&home).join(".my.cnf"), false));
        }
        files
    }

    /// Reads the options of `groups` from every file, later files winning.
    pub fn read(&self, groups: &[&str]) -> Result<OptionValues> {
        let mut values = OptionValues::default();
        for (file, required) in self.files() {
            if !required && !file.exists() {
                continue;
            }
            parse_file(&file, groups, &mut values, 0)?;
        }
        Ok(values)
    }
}

fn bad(file: &Path, line: usize, why: &str) -> Error {
    Error::new(Exit::Config, format!("{}:{line}: {why}", file.display()))
}

fn parse_file(file: &Path, groups: &[&str], values: &mut OptionValues, depth: usize) -> Result<()> {
    if depth > 10 {
        return Err(bad(file, 0, "!include nested too deeply"));
    }
    let text =
        std::fs::read_to_string(file).ctx(format!("cannot read option file {}", file.display()))?;
    parse_text(&text, file, groups, values, depth)
}

/// Parses one file's text; `file` names it in errors and anchors includes.
pub fn parse_text(
    text: &str,
    file: &Path,
    groups: &[&str],
    values: &mut OptionValues,
    depth: usize,
) -> Result<()> {
    let mut in_group = false;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(path) = line.strip_prefix("!includedir") {
            let dir = Path::new(path.trim());
            let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
                Ok(entries) => entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("cnf")))
                    .collect(),
                Err(_) => continue,
            };
            entries.sort();
            for entry in entries {
                parse_file(&entry, groups, values, depth + 1)?;
            }
            continue;
        }
        if let Some(path) = line.strip_prefix("!include") {
            parse_file(Path::new(path.trim()), groups, values, depth + 1)?;
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .ok_or_else(|| bad(file, number, "unterminated [group]"))?;
            in_group = groups.iter().any(|g| g.eq_ignore_ascii_case(name.trim()));
            continue;
        }
        if !in_group {
            continue;
        }
        let (name, value) = match line.split_once('=') {
            Some((name, value)) => (
                name.trim(),
                unquote(value.trim()).map_err(|why| bad(file, number, why))?,
            ),
            None => (
                line.split('#').next().unwrap_or_default().trim(),
                String::new(),
            ),
        };
        if name.is_empty() {
            return Err(bad(file, number, "option without a name"));
        }
        values.set(name, &value);
    }
    Ok(())
}

/// A value as the client reads it: quotes removed, escapes applied.
fn unquote(value: &str) -> std::result::Result<String, &'static str> {
    let mut chars = value.chars();
    let quote = match value.chars().next() {
        Some(q @ ('"' | '\'')) => {
            chars.next();
            Some(q)
        }
        _ => None,
    };
    let mut out = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('b') => out.push('\u{8}'),
                Some('s') => out.push(' '),
                Some('"') => out.push('"'),
                Some('\'') => out.push('\''),
                Some('\\') => out.push('\\'),
                Some('#') => out.push('#'),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            c if Some(c) == quote => return Ok(out),
            // An unquoted '#' starts a comment, as in the client's parser.
            '#' if quote.is_none() => break,
            c => out.push(c),
        }
    }
    if quote.is_some() {
        return Err("unterminated quoted value");
    }
    Ok(out.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, groups: &[&str]) -> OptionValues {
        let mut values = OptionValues::default();
        parse_text(text, Path::new("test.cnf"), groups, &mut values, 0).unwrap();
        values
    }

    #[test]
    fn reads_only_the_groups_asked_for() {
        let text = "[mysqld]\nuser=mysql\n[client]\nuser = backup\npassword=\"p#ss w\\\\rd\"\n\
                    # comment\n; comment\n[mysql-lock-hold]\nsocket=/run/x.sock # trailing\nskip-ssl\n";
        let v = parse(text, &["client", "mysql-lock-hold"]);
        assert_eq!(v.get("user"), Some("backup"));
        assert_eq!(v.get("password"), Some("p#ss w\\rd"));
        assert_eq!(v.get("socket"), Some("/run/x.sock"));
        assert_eq!(v.get("skip_ssl"), Some(""));
        assert_eq!(v.get("skip-ssl"), Some(""));
    }

    #[test]
    fn later_values_win_and_groups_are_case_insensitive() {
        let v = parse(
            "[CLIENT]\nport=1\n[other]\nport=2\n[client]\nport=3\n",
            &["client"],
        );
        assert_eq!(v.get("port"), Some("3"));
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(unquote("'a b'").unwrap(), "a b");
        assert_eq!(unquote("a\\sb").unwrap(), "a b");
        assert_eq!(unquote("\"tab\\there\"").unwrap(), "tab\there");
        assert_eq!(unquote("value   ").unwrap(), "value");
        assert_eq!(unquote("pa#ss").unwrap(), "pa");
        assert_eq!(unquote("pa\\#ss").unwrap(), "pa#ss");
        assert!(unquote("'open").is_err());
    }

    #[test]
    fn includes_and_errors() {
        let dir = std::env::temp_dir().join(format!("mysnap-cnf-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(dir.join("conf.d/10-a.cnf"), "[client]\nuser=a\n").unwrap();
        std::fs::write(dir.join("conf.d/20-b.cnf"), "[client]\nuser=b\n").unwrap();
        std::fs::write(dir.join("conf.d/ignored.txt"), "[client]\nuser=c\n").unwrap();
        std::fs::write(dir.join("inc.cnf"), "[client]\nhost=db\n").unwrap();
        let main = dir.join("my.cnf");
        std::fs::write(
            &main,
            format!(
                "!includedir {0}/conf.d\n!include {0}/inc.cnf\n",
                dir.display()
            ),
        )
        .unwrap();
        let sources = Sources {
            defaults_file: Some(main.clone()),
            ..Default::default()
        };
        let v = sources.read(&["client"]).unwrap();
        assert_eq!(v.get("user"), Some("b"));
        assert_eq!(v.get("host"), Some("db"));

        std::fs::write(&main, "[client\nuser=x\n").unwrap();
        assert_eq!(sources.read(&["client"]).unwrap_err().code(), 78);
        let missing = Sources {
            defaults_file: Some(dir.join("absent.cnf")),
            ..Default::default()
        };
        assert_eq!(missing.read(&["client"]).unwrap_err().code(), 66);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn defaults_file_replaces_the_search() {
        let only = Sources {
            defaults_file: Some("/x.cnf".into()),
            extra_file: Some("/y.cnf".into()),
            no_defaults: false,
        };
        assert_eq!(only.files(), vec![(PathBuf::from("/x.cnf"), true)]);
        let none = Sources {
            no_defaults: true,
            ..Default::default()
        };
        assert!(none.files().is_empty());
        let extra = Sources {
            extra_file: Some("/y.cnf".into()),
            ..Default::default()
        };
        let files = extra.files();
        assert_eq!(files[0].0, PathBuf::from("/etc/my.cnf"));
        assert!(files.contains(&(PathBuf::from("/y.cnf"), true)));
    }
}
