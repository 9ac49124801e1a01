//! Where replication of a restored copy starts, written as statements an
//! admin pastes into the new replica, in the dialect of the backed-up
//! server; and what `--as-replica` removes so the copy is not a clone of
//! its source's identity.

use mysnap::beneath::{Kind, Root};
use mysnap::error::IoContext;
use mysnap::status::{Flavor, Status};
use mysnap::Result;
use rustix::fs::OFlags;
use std::io::{Read, Write};
use std::path::Path;

/// Where replication of a restored copy starts: the coordinates
/// mysql-lock-hold recorded, from the manifest's status.
#[derive(Debug)]
pub struct Coordinates<'a>(&'a Status);

impl<'a> Coordinates<'a> {
    pub fn from_status(status: &'a Status) -> Coordinates<'a> {
        Coordinates(status)
    }

    fn gtid(&self) -> Option<&str> {
        self.0.gtid.as_deref().filter(|g| !g.is_empty())
    }

    pub fn is_empty(&self) -> bool {
        self.0.binlog_file.is_none() && self.gtid().is_none()
    }

    /// SQL lines for a new replica of the backed-up server. Only the
    /// coordinates: the admin adds host, user and password (CHANGE ... TO
    /// keeps what a statement leaves out).
    pub fn statements(&self) -> String {
        let version = &self.0.server_version;
        let mariadb = self.0.flavor == Flavor::MariaDb;
        let series = crate::server::series(version);
        let new_syntax =
            !mariadb && (series > Some((8, 0)) || series == Some((8, 0)) && patch(version) >= 23);
        let (change, file, pos, auto) = if new_syntax {
            (
                "CHANGE REPLICATION SOURCE TO",
                "SOURCE_LOG_FILE",
                "SOURCE_LOG_POS",
                "SOURCE_AUTO_POSITION = 1",
            )
        } else {
            (
                "CHANGE MASTER TO",
                "MASTER_LOG_FILE",
                "MASTER_LOG_POS",
                "MASTER_AUTO_POSITION = 1",
            )
        };
        let mut out = format!(
            "-- replication coordinates of the backup ({} {})\n",
            if mariadb { "MariaDB" } else { "MySQL" },
            version
        );
        if let (Some(f), Some(p)) = (&self.0.binlog_file, self.0.binlog_pos) {
            out.push_str(&format!("{change} {file} = '{f}', {pos} = {p};\n"));
        }
        if let Some(gtid) = self.gtid() {
            out.push_str("-- or, by GTID:\n");
            if mariadb {
                out.push_str(&format!("SET GLOBAL gtid_slave_pos = '{gtid}';\n"));
                out.push_str("CHANGE MASTER TO MASTER_USE_GTID = slave_pos;\n");
            } else {
                let reset = if series >= Some((8, 4)) {
                    "RESET BINARY LOGS AND GTIDS"
                } else {
                    "RESET MASTER"
                };
                out.push_str(&format!(
                    "{reset}; -- gtid_purged needs an empty gtid_executed\n"
                ));
                out.push_str(&format!("SET GLOBAL gtid_purged = '{gtid}';\n"));
                out.push_str(&format!("{change} {auto};\n"));
            }
        }
        out
    }
}

/// "8.0.23" → 23.
fn patch(version: &str) -> u32 {
    version
        .split(|c: char| !c.is_ascii_digit())
        .nth(2)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// Files a replica must not inherit from its source: the server's identity
/// (MySQL's auto.cnf holds server_uuid), replication state and relay logs,
/// and the temporary tablespace.
fn cloned_state(name: &str) -> bool {
    matches!(
        name,
        "auto.cnf"
            | "master.info"
            | "relay-log.info"
            | "multi-master.info"
            | "ibtmp1"
            | "mysqld-relay-bin.index"
    ) || name.contains("-relay-bin.")
        || name.starts_with("relay-log")
        || name.starts_with("master-") && name.ends_with(".info")
}

/// Removes the cloned state from the staged datadir: names at its top,
/// each removed itself (a symlink's target is never touched). Returns what
/// it removed.
pub fn remove_cloned_state(staging: &Root) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let top = staging
        .list(Path::new(""))
        .ctx(format!("reading {}", staging.path().display()))?;
    for (name, kind) in top {
        let name = name.to_string_lossy().to_string();
        if cloned_state(&name) && kind != Kind::Dir {
            staging
                .remove_file(Path::new(&name))
                .ctx(format!("removing {name}"))?;
            removed.push(name);
        }
    }
    removed.sort();
    Ok(removed)
}

/// Points the binary log and relay log indexes at the new datadir: the
/// server will not start on an index that names files it cannot find.
/// A line under the old datadir (when the manifest says where that was)
/// keeps its place below it; any other absolute line whose file sits at the
/// top of the staged datadir is pointed there. Only regular files are read
/// and rewritten, opened beneath the staging root: an index that is a
/// symlink is left alone.
pub fn rewrite_indexes(
    staging: &Root,
    old_datadir: Option<&str>,
    new_datadir: &Path,
) -> Result<()> {
    let top = staging
        .list(Path::new(""))
        .ctx(format!("reading {}", staging.path().display()))?;
    for (name, kind) in top {
        let rel = Path::new(&name);
        if kind != Kind::File || rel.extension().is_none_or(|e| e != "index") {
            continue;
        }
        let shown = staging.display(rel);
        let mut text = String::new();
        staging
            .open_file(rel, OFlags::RDONLY)
            .and_then(|mut f| f.read_to_string(&mut text))
            .ctx(format!("reading {}", shown.display()))?;
        let is_file =
            |file: &std::ffi::OsStr| staging.kind(Path::new(file)).ok() == Some(Kind::File);
        let rewritten = rewrite_lines(&text, is_file, old_datadir, new_datadir);
        if rewritten != text {
            staging
                .open_file(rel, OFlags::WRONLY | OFlags::TRUNC)
                .and_then(|mut f| f.write_all(rewritten.as_bytes()))
                .ctx(format!("rewriting {}", shown.display()))?;
        }
    }
    Ok(())
}

fn rewrite_lines(
    text: &str,
    is_file: impl Fn(&std::ffi::OsStr) -> bool,
    old: Option<&str>,
    new: &Path,
) -> String {
    let old = old.map(|o| o.trim_end_matches('/'));
    text.lines()
        .map(|line| {
            let below_old = old
                .and_then(|o| line.strip_prefix(o))
                .filter(|rest| rest.starts_with('/'));
            let file = Path::new(line)
                .file_name()
                .filter(|_| line.starts_with('/'));
            match (below_old, file) {
                (Some(rest), _) => format!("{}{rest}\n", new.display()),
                (None, Some(file)) if is_file(file) => {
                    format!("{}\n", new.join(file).display())
                }
                _ => format!("{line}\n"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SQL for a status of `flavor` and `version` at binlog.000007:1234.
    fn statements(flavor: Flavor, version: &str, gtid: Option<&str>) -> String {
        let status = Status {
            format: 1,
            flavor,
            server_version: version.into(),
            server_id: Some(1),
            server_uuid: None,
            binlog_file: Some("binlog.000007".into()),
            binlog_pos: Some(1234),
            gtid: gtid.map(str::to_string),
            replica: None,
            layout: Default::default(),
            lock: "ftwrl".into(),
            locked_at: "2026-01-01T00:00:00.000Z".into(),
            lock_attempts: 1,
            lock_wait_ms: 1,
            lock_hold_ms: Some(2),
        };
        Coordinates::from_status(&status).statements()
    }

    #[test]
    fn mariadb_uses_change_master_and_gtid_slave_pos() {
        let sql = statements(Flavor::MariaDb, "10.11.6-MariaDB", Some("0-1-42"));
        assert!(sql.contains(
            "CHANGE MASTER TO MASTER_LOG_FILE = 'binlog.000007', MASTER_LOG_POS = 1234;"
        ));
        assert!(sql.contains("SET GLOBAL gtid_slave_pos = '0-1-42';"));
        assert!(sql.contains("MASTER_USE_GTID = slave_pos"));
    }

    #[test]
    fn mysql_syntax_follows_the_version() {
        let new = statements(Flavor::MySql, "8.0.36", Some("uuid:1-5"));
        assert!(new.contains("CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE = 'binlog.000007', SOURCE_LOG_POS = 1234;"));
        assert!(new.contains("RESET MASTER;"));
        assert!(new.contains("SET GLOBAL gtid_purged = 'uuid:1-5';"));
        assert!(new.contains("SOURCE_AUTO_POSITION = 1"));
        let lts = statements(Flavor::MySql, "8.4.2", Some("uuid:1-5"));
        assert!(lts.contains("RESET BINARY LOGS AND GTIDS;"));
        assert!(lts.contains("CHANGE REPLICATION SOURCE TO"));
        let old = statements(Flavor::MySql, "8.0.22", None);
        assert!(old.contains("CHANGE MASTER TO MASTER_LOG_FILE"));
        assert!(!old.contains("gtid"));
        let v57 = statements(Flavor::MySql, "5.7.44-log", None);
        assert!(v57.contains("CHANGE MASTER TO"));
    }

    #[test]
    fn replica_state_is_recognised() {
        for name in [
            "auto.cnf",
            "relay-log.info",
            "mysqld-relay-bin.000003",
            "ibtmp1",
            "master-s1.info",
        ] {
            assert!(cloned_state(name), "{name}");
        }
        for name in ["ibdata1", "binlog.000001", "binlog.index", "mysql"] {
            assert!(!cloned_state(name), "{name}");
        }
    }

    #[test]
    fn index_paths_follow_the_datadir() {
        let text = "/var/lib/mysql/logs/binlog.000001\n./binlog.000002\n/elsewhere/binlog.000003\n/gone/binlog.000004\n";
        let new = Path::new("/srv/db");
        assert_eq!(
            rewrite_lines(text, |f| f == "binlog.000003", Some("/var/lib/mysql/"), new),
            "/srv/db/logs/binlog.000001\n./binlog.000002\n/srv/db/binlog.000003\n/gone/binlog.000004\n"
        );
    }
}
