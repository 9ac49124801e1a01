//! The status file: what mysql-lock-hold recorded while it held the lock
//! (where the binary log stood, the server's identity and layout, the
//! lock's timings). mysql-lock-hold writes it, snap-tar puts it into the
//! archive's manifest, mysql-restore-dir reads it back from there: one
//! type for all three, so a key cannot be misspelt on one side only.
//!
//! Keys a newer version adds are ignored on reading; a key this version
//! needs is required (the nullable ones may be left out), so a file that
//! is not a status file is refused rather than read as empty coordinates.

use crate::error::IoContext;
use crate::{Error, Exit, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The status file's own schema version; a newer one is refused.
pub const FORMAT: u32 = 1;

/// The status file (JSON), its keys in the order they are written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub format: u32,
    pub flavor: Flavor,
    /// As `SELECT VERSION()` gives it.
    pub server_version: String,
    pub server_id: Option<u64>,
    pub server_uuid: Option<String>,
    /// Where the events after the snapshot begin; None without a binary log.
    pub binlog_file: Option<String>,
    pub binlog_pos: Option<u64>,
    /// MariaDB's gtid_binlog_pos or MySQL's gtid_executed; None when empty.
    pub gtid: Option<String>,
    /// Set on a replica: where replication of a copy resumes.
    pub replica: Option<Replica>,
    pub layout: Layout,
    /// The lock taken: "ftwrl" or "backup-stage".
    pub lock: String,
    /// UTC, RFC 3339 with milliseconds.
    pub locked_at: String,
    pub lock_attempts: u32,
    pub lock_wait_ms: u64,
    /// None until the lock is released.
    pub lock_hold_ms: Option<u64>,
}

/// Which server family the backup comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    MariaDb,
    MySql,
}

/// Where the server keeps its files, from its variables (relative paths
/// are relative to `datadir`); None where unset or empty.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub datadir: Option<String>,
    pub innodb_data_home_dir: Option<String>,
    pub innodb_data_file_path: Option<String>,
    pub innodb_log_group_home_dir: Option<String>,
    pub innodb_undo_directory: Option<String>,
    pub log_bin_basename: Option<String>,
}

/// Where a replica's source stood: where replication of this copy resumes.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    pub source_host: Option<String>,
    pub source_port: Option<u64>,
    pub source_log_file: Option<String>,
    pub source_log_pos: Option<u64>,
    pub gtid: Option<String>,
}

impl Status {
    /// Parses a status file's bytes; says why they are not one.
    pub fn parse(json: &[u8]) -> Result<Status, String> {
        let status: Status = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        if status.format > FORMAT {
            return Err(format!(
                "format {} is newer than this tool's {FORMAT}: upgrade mysnap",
                status.format
            ));
        }
        Ok(status)
    }

    /// Reads the status file at `path`: one that does not parse is bad
    /// data (exit 65), one that cannot be read an I/O failure.
    pub fn read_file(path: &Path) -> Result<Status> {
        let json =
            std::fs::read(path).ctx(format!("cannot read status file {}", path.display()))?;
        Status::parse(&json).map_err(|why| {
            Error::new(
                Exit::DataErr,
                format!(
                    "{} is not a mysql-lock-hold status file: {why}",
                    path.display()
                ),
            )
        })
    }

    /// Writes the status file at `path` atomically, mode 0600.
    pub fn write_file(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).expect("plain data serializes");
        crate::private_file::write_atomically(path, &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A status file as mysql-lock-hold 0.1 wrote it, byte for byte.
    const WRITTEN: &str = r#"{
  "format": 1,
  "flavor": "mariadb",
  "server_version": "10.11.6-MariaDB-0+deb12u1-log",
  "server_id": 1,
  "server_uuid": null,
  "binlog_file": "mysql-bin.000043",
  "binlog_pos": 379,
  "gtid": "0-1-18823",
  "replica": {
    "source_host": "db0.example.com",
    "source_port": 3306,
    "source_log_file": "mysql-bin.000099",
    "source_log_pos": 1234,
    "gtid": "0-2-17"
  },
  "layout": {
    "datadir": "/var/lib/mysql/",
    "innodb_data_home_dir": null,
    "innodb_data_file_path": "ibdata1:12M:autoextend",
    "innodb_log_group_home_dir": "./",
    "innodb_undo_directory": "./",
    "log_bin_basename": "/var/lib/mysql/mysql-bin"
  },
  "lock": "ftwrl",
  "locked_at": "2026-11-23T01:02:03.456Z",
  "lock_attempts": 1,
  "lock_wait_ms": 14,
  "lock_hold_ms": 2210
}"#;

    #[test]
    fn the_written_form_reads_back_and_is_written_unchanged() {
        let status = Status::parse(WRITTEN.as_bytes()).unwrap();
        assert_eq!(status.flavor, Flavor::MariaDb);
        assert_eq!(status.binlog_pos, Some(379));
        assert_eq!(status.layout.datadir.as_deref(), Some("/var/lib/mysql/"));
        assert_eq!(status.replica.as_ref().unwrap().source_port, Some(3306));
        let again = serde_json::to_string_pretty(&status).unwrap();
        assert_eq!(again, WRITTEN);
    }

    #[test]
    fn keys_of_a_newer_version_are_ignored_and_null_ones_may_be_missing() {
        let json = r#"{"format":1,"flavor":"mysql","server_version":"8.4.2",
            "binlog_file":"binlog.000001","binlog_pos":4,
            "layout":{"datadir":"/d/","redo_dir":"/r/"},"lock":"ftwrl",
            "locked_at":"2026-01-01T00:00:00.000Z","lock_attempts":2,
            "lock_wait_ms":1,"encryption":{"recipients":[]}}"#;
        let status = Status::parse(json.as_bytes()).unwrap();
        assert_eq!(status.flavor, Flavor::MySql);
        assert_eq!(status.gtid, None);
        assert_eq!(status.server_id, None);
        assert_eq!(status.lock_hold_ms, None);
    }

    #[test]
    fn what_is_not_a_status_file_is_refused() {
        for (json, says) in [
            ("\"binlog.000001 379\"", "invalid type"),
            (
                "{\"binlog_file\": \"b.1\", \"binlog_pos\": 4}",
                "missing field",
            ),
            (
                &WRITTEN.replace("\"binlog_pos\": 379", "\"binlog_pos\": \"379\""),
                "invalid type",
            ),
            (
                &WRITTEN.replace("\"mariadb\"", "\"oracle\""),
                "unknown variant",
            ),
            (&WRITTEN.replace("\"format\": 1", "\"format\": 2"), "newer"),
            ("{", "EOF"),
        ] {
            let why = Status::parse(json.as_bytes()).unwrap_err();
            assert!(why.contains(says), "{json}: {why}");
        }
    }
}
