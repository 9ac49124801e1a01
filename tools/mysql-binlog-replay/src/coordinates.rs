//! --from-file: the base backup's binlog coordinates, from the files that
//! carry them: mysql-lock-hold's status file, an archive's manifest
//! (mysnap/manifest.json, whose "status" is that file), or what
//! mysql-restore-dir prints and writes to --coordinates-file (the
//! CHANGE MASTER / CHANGE REPLICATION SOURCE statement).

use mysnap::binlog::target::Position;
use mysnap::error::IoContext;
use mysnap::status::Status;
use mysnap::{Error, Exit, Result};
use std::path::Path;

pub fn read(path: &Path) -> Result<Position> {
    let bytes = std::fs::read(path).ctx(format!("cannot read {}", path.display()))?;
    parse(&bytes).map_err(|why| {
        Error::new(
            Exit::DataErr,
            format!("{}: no binlog coordinates: {why}", path.display()),
        )
    })
}

fn parse(bytes: &[u8]) -> std::result::Result<Position, String> {
    let text = String::from_utf8_lossy(bytes);
    if text.trim_start().starts_with('{') {
        return from_json(bytes);
    }
    from_statements(&text)
}

fn from_json(bytes: &[u8]) -> std::result::Result<Position, String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let status = match value.get("status") {
        // A manifest: its status, or none when the snapshot had no lock.
        Some(serde_json::Value::Null) => {
            return Err("the manifest records no mysql-lock-hold status".into())
        }
        Some(status) => Status::parse(status.to_string().as_bytes())?,
        None => Status::parse(bytes)?,
    };
    match (status.binlog_file, status.binlog_pos) {
        (Some(file), Some(position)) => Position::parse(&format!("{file}:{position}"))
            .ok_or(format!("'{file}' is not a binlog file name")),
        _ => Err("the server had no binary log when the backup was taken".into()),
    }
}

/// The first statement that names a log file and position:
/// `... MASTER_LOG_FILE = 'F', MASTER_LOG_POS = P;` or the SOURCE_ forms.
fn from_statements(text: &str) -> std::result::Result<Position, String> {
    for line in text.lines().filter(|l| !l.trim_start().starts_with("--")) {
        let upper = line.to_ascii_uppercase();
        let value = |name: &str| {
            let at = upper.find(name)? + name.len();
            let rest = line[at..].trim_start().strip_prefix('=')?.trim_start();
            Some(rest.to_string())
        };
        let (Some(file), Some(pos)) = (value("_LOG_FILE"), value("_LOG_POS")) else {
            continue;
        };
        let file = file
            .strip_prefix('\'')
            .and_then(|f| f.split_once('\''))
            .map(|(f, _)| f.to_string())
            .ok_or("the log file is not quoted")?;
        let pos: String = pos.chars().take_while(char::is_ascii_digit).collect();
        return Position::parse(&format!("{file}:{pos}"))
            .ok_or(format!("'{file}:{pos}' is not FILE:POSITION"));
    }
    Err("neither a status file, a manifest, nor a CHANGE MASTER statement".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(file: &str, position: u64) -> Position {
        Position {
            file: file.into(),
            position,
        }
    }

    #[test]
    fn what_mysql_restore_dir_prints() {
        let mariadb = "-- replication coordinates of the backup (MariaDB 10.11.6-MariaDB)\n\
             CHANGE MASTER TO MASTER_LOG_FILE = 'mysql-bin.000043', MASTER_LOG_POS = 379;\n\
             -- or, by GTID:\nSET GLOBAL gtid_slave_pos = '0-1-18823';\n";
        assert_eq!(parse(mariadb.as_bytes()), Ok(at("mysql-bin.000043", 379)));
        let mysql = "CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE = 'binlog.000007', \
                     SOURCE_LOG_POS = 1234;\n";
        assert_eq!(parse(mysql.as_bytes()), Ok(at("binlog.000007", 1234)));
        let none = "-- the archive records no replication coordinates\n";
        assert!(parse(none.as_bytes()).is_err());
    }

    #[test]
    fn a_status_file_or_a_manifest() {
        let status = r#"{"format":1,"flavor":"mariadb","server_version":"10.11",
            "binlog_file":"binlog.000002","binlog_pos":385,"gtid":"0-1-7",
            "layout":{},"lock":"ftwrl","locked_at":"2026-01-01T00:00:00.000Z",
            "lock_attempts":1,"lock_wait_ms":1}"#;
        assert_eq!(parse(status.as_bytes()), Ok(at("binlog.000002", 385)));
        let manifest = format!(r#"{{"format":1,"host":"db1","status":{status}}}"#);
        assert_eq!(parse(manifest.as_bytes()), Ok(at("binlog.000002", 385)));
        let no_binlog = status.replace(r#""binlog_file":"binlog.000002","binlog_pos":385,"#, "");
        assert!(parse(no_binlog.as_bytes())
            .unwrap_err()
            .contains("no binary log"));
        assert!(parse(br#"{"status":null}"#).is_err());
        assert!(parse(b"{").is_err());
    }
}
