//! What the lock holder records: where the binary log stands, where a
//! replica's source stood, and where the server keeps its files; the
//! status file (`mysnap::status`) that snap-tar puts in the archive and
//! mysql-restore-dir reads back is made of them.

use crate::flavor::{Flavor, Kind};
use crate::sql::{Row, Sql};
use mysnap::status::{Layout, Replica, Status};

/// Settings that matter for a consistent, durable snapshot, read before
/// locking, so the lock is held no longer.
#[derive(Debug, Default, Clone)]
pub struct Settings {
    pub layout: Layout,
    pub log_bin: bool,
    pub sync_binlog: Option<String>,
    pub innodb_flush_log_at_trx_commit: Option<String>,
    pub server_id: Option<u64>,
    pub server_uuid: Option<String>,
}

const VARIABLES: &str = "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('datadir', \
    'innodb_data_home_dir', 'innodb_data_file_path', 'innodb_log_group_home_dir', \
    'innodb_undo_directory', 'log_bin_basename', 'log_bin', 'sync_binlog', \
    'innodb_flush_log_at_trx_commit', 'server_id', 'server_uuid')";

impl Settings {
    pub fn read(sql: &mut dyn Sql) -> Result<Settings, mysql::Error> {
        let rows = sql.rows(VARIABLES)?;
        let get = |name: &str| -> Option<String> {
            rows.iter()
                .find(|r| r.get("Variable_name").cloned().flatten().as_deref() == Some(name))
                .and_then(|r| r.get("Value").cloned().flatten())
                .filter(|v| !v.is_empty())
        };
        Ok(Settings {
            layout: Layout {
                datadir: get("datadir"),
                innodb_data_home_dir: get("innodb_data_home_dir"),
                innodb_data_file_path: get("innodb_data_file_path"),
                innodb_log_group_home_dir: get("innodb_log_group_home_dir"),
                innodb_undo_directory: get("innodb_undo_directory"),
                log_bin_basename: get("log_bin_basename"),
            },
            log_bin: get("log_bin").is_some_and(|v| v.eq_ignore_ascii_case("ON") || v == "1"),
            sync_binlog: get("sync_binlog"),
            innodb_flush_log_at_trx_commit: get("innodb_flush_log_at_trx_commit"),
            server_id: get("server_id").and_then(|v| v.parse().ok()),
            server_uuid: get("server_uuid"),
        })
    }

    /// Settings under which a crash (and so a snapshot) may lose commits
    /// the coordinates claim.
    pub fn durability_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.log_bin && self.sync_binlog.as_deref() != Some("1") {
            warnings.push(format!(
                "sync_binlog is {}, not 1: the binary log on disk may lag the coordinates",
                self.sync_binlog.as_deref().unwrap_or("unset")
            ));
        }
        if self.innodb_flush_log_at_trx_commit.as_deref() != Some("1") {
            warnings.push(format!(
                "innodb_flush_log_at_trx_commit is {}, not 1: recent commits may not be on disk",
                self.innodb_flush_log_at_trx_commit
                    .as_deref()
                    .unwrap_or("unset")
            ));
        }
        warnings
    }
}

/// Coordinates read under the lock.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Coordinates {
    pub binlog_file: Option<String>,
    pub binlog_pos: Option<u64>,
    pub gtid: Option<String>,
    pub replica: Option<Replica>,
}

fn field(row: &Row, name: &str) -> Option<String> {
    row.get(name).cloned().flatten().filter(|v| !v.is_empty())
}

impl Coordinates {
    pub fn read(sql: &mut dyn Sql, flavor: &Flavor) -> Result<Coordinates, mysql::Error> {
        let status = sql.rows(flavor.binlog_status_query())?;
        let first = status.first();
        let gtid = sql.value(flavor.gtid_query())?.filter(|g| !g.is_empty());
        let replica = sql.rows(flavor.replica_status_query())?.first().map(|row| {
            let [host, port, file, pos] = flavor.replica_columns();
            Replica {
                source_host: field(row, host),
                source_port: field(row, port).and_then(|p| p.parse().ok()),
                source_log_file: field(row, file),
                source_log_pos: field(row, pos).and_then(|p| p.parse().ok()),
                gtid: None,
            }
        });
        let replica = match (replica, flavor.kind) {
            (Some(mut r), Kind::MariaDb) => {
                r.gtid = sql
                    .value("SELECT @@GLOBAL.gtid_slave_pos")?
                    .filter(|g| !g.is_empty());
                Some(r)
            }
            (Some(mut r), Kind::MySql) => {
                // What the replica applied is what it executed.
                r.gtid = gtid.clone();
                Some(r)
            }
            (None, _) => None,
        };
        Ok(Coordinates {
            binlog_file: first.and_then(|r| field(r, "File")),
            binlog_pos: first
                .and_then(|r| field(r, "Position"))
                .and_then(|p| p.parse().ok()),
            gtid: gtid.map(|g| g.replace('\n', "")),
            replica,
        })
    }
}

/// The status as `key=value` lines, for hold mode's stdout.
pub fn lines(status: &Status) -> String {
    let mut out = String::new();
    let mut add = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            out.push_str(&format!("{key}={value}\n"));
        }
    };
    add("binlog_file", status.binlog_file.clone());
    add("binlog_pos", status.binlog_pos.map(|p| p.to_string()));
    add("gtid", status.gtid.clone());
    add("server_version", Some(status.server_version.clone()));
    add("server_id", status.server_id.map(|p| p.to_string()));
    add("lock_wait_ms", Some(status.lock_wait_ms.to_string()));
    out
}

/// The environment COMMAND gets.
pub fn environment(status: &Status) -> Vec<(&'static str, String)> {
    let mut env = Vec::new();
    if let Some(file) = &status.binlog_file {
        env.push(("MYSNAP_BINLOG_FILE", file.clone()));
    }
    if let Some(pos) = status.binlog_pos {
        env.push(("MYSNAP_BINLOG_POS", pos.to_string()));
    }
    if let Some(gtid) = &status.gtid {
        env.push(("MYSNAP_GTID", gtid.clone()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::Recorded;

    #[test]
    fn mysql_84_replica_coordinates() {
        let flavor = Flavor::parse("8.4.3");
        let mut sql = Recorded::new(&[
            (
                "SHOW BINARY LOG STATUS",
                &[&[
                    ("File", Some("binlog.000007")),
                    ("Position", Some("157")),
                    (
                        "Executed_Gtid_Set",
                        Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-77"),
                    ),
                ]],
            ),
            (
                "SELECT @@GLOBAL.gtid_executed",
                &[&[(
                    "@@GLOBAL.gtid_executed",
                    Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-77"),
                )]],
            ),
            (
                "SHOW REPLICA STATUS",
                &[&[
                    ("Source_Host", Some("db0.example")),
                    ("Source_Port", Some("3306")),
                    ("Relay_Source_Log_File", Some("binlog.000042")),
                    ("Exec_Source_Log_Pos", Some("9001")),
                ]],
            ),
        ]);
        let c = Coordinates::read(&mut sql, &flavor).unwrap();
        assert_eq!(c.binlog_file.as_deref(), Some("binlog.000007"));
        assert_eq!(c.binlog_pos, Some(157));
        let r = c.replica.unwrap();
        assert_eq!(r.source_host.as_deref(), Some("db0.example"));
        assert_eq!(r.source_log_file.as_deref(), Some("binlog.000042"));
        assert_eq!(r.source_log_pos, Some(9001));
        assert_eq!(
            r.gtid.as_deref(),
            Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-77")
        );
    }

    #[test]
    fn mysql_57_and_mariadb_use_master_columns() {
        let mut sql = Recorded::new(&[
            (
                "SHOW MASTER STATUS",
                &[&[("File", Some("mysql-bin.000003")), ("Position", Some("4"))]],
            ),
            (
                "SELECT @@GLOBAL.gtid_binlog_pos",
                &[&[("@@GLOBAL.gtid_binlog_pos", Some("0-1-42"))]],
            ),
            (
                "SHOW SLAVE STATUS",
                &[&[
                    ("Master_Host", Some("primary")),
                    ("Master_Port", Some("3307")),
                    ("Relay_Master_Log_File", Some("mysql-bin.000099")),
                    ("Exec_Master_Log_Pos", Some("1234")),
                ]],
            ),
            (
                "SELECT @@GLOBAL.gtid_slave_pos",
                &[&[("@@GLOBAL.gtid_slave_pos", Some("0-2-17"))]],
            ),
        ]);
        let c = Coordinates::read(&mut sql, &Flavor::parse("10.11.6-MariaDB")).unwrap();
        assert_eq!(c.gtid.as_deref(), Some("0-1-42"));
        assert_eq!(
            c.replica,
            Some(Replica {
                source_host: Some("primary".into()),
                source_port: Some(3307),
                source_log_file: Some("mysql-bin.000099".into()),
                source_log_pos: Some(1234),
                gtid: Some("0-2-17".into()),
            })
        );
    }

    #[test]
    fn no_binary_log_no_coordinates() {
        let mut sql = Recorded::new(&[
            ("SHOW MASTER STATUS", &[]),
            (
                "SELECT @@GLOBAL.gtid_binlog_pos",
                &[&[("@@GLOBAL.gtid_binlog_pos", Some(""))]],
            ),
            ("SHOW SLAVE STATUS", &[]),
        ]);
        let c = Coordinates::read(&mut sql, &Flavor::parse("10.11.6-MariaDB")).unwrap();
        assert_eq!(c, Coordinates::default());
    }

    #[test]
    fn settings_and_their_warnings() {
        let var =
            |n: &'static str, v: &'static str| -> &'static [(&'static str, Option<&'static str>)] {
                Box::leak(Box::new([("Variable_name", Some(n)), ("Value", Some(v))]))
            };
        let rows: Vec<&[(&str, Option<&str>)]> = vec![
            var("datadir", "/var/lib/mysql/"),
            var("log_bin", "ON"),
            var("sync_binlog", "0"),
            var("innodb_flush_log_at_trx_commit", "1"),
            var("server_id", "7"),
            var("innodb_undo_directory", ""),
        ];
        let mut sql = Recorded::new(&[(VARIABLES, &rows)]);
        let s = Settings::read(&mut sql).unwrap();
        assert_eq!(s.layout.datadir.as_deref(), Some("/var/lib/mysql/"));
        assert_eq!(s.layout.innodb_undo_directory, None);
        assert_eq!(s.server_id, Some(7));
        assert!(s.log_bin);
        let warnings = s.durability_warnings();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("sync_binlog is 0"));
    }
}
