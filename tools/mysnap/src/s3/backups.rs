//! Which objects under a prefix are backups, and when each was taken:
//! s3-get's --list and --latest, and the recoverable window that
//! mysql-binlog-replay --list shows.

use super::ObjectInfo;
use crate::binlog::layout::valid_file;
use crate::binlog::target::Position;
use crate::status::Status;
use std::collections::BTreeMap;

pub type Moment = chrono::DateTime<chrono::Utc>;

/// What is stored beside a backup under its key and one of these
/// suffixes: its SHA-256 sidecar (s3-put), the verify job's record, and
/// s3-prune's pin.
pub const SIDECAR: &str = ".sha256";
pub const VERIFIED: &str = ".verified";
pub const PIN: &str = ".pin";

/// Where a backup's binlog chain begins, stored beside it as object
/// metadata (`s3-put --status-file`), so that a prune can tell which
/// binlog segments a backup needs from a HEAD, without reading (or, once
/// archives are encrypted, decrypting) the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// The binlog file and position where the events after the snapshot
    /// begin.
    pub at: Position,
    /// The server's GTID position then, when it had one and it is short
    /// enough for a header.
    pub gtid: Option<String>,
}

/// Object metadata is sent as headers, and all of a key's user metadata
/// must stay within 2 KiB: a longer GTID set is left out (the file and
/// position are what a prune goes by).
const GTID_MAX: usize = 1024;
const META_FILE: &str = "mysnap-binlog-file";
const META_POSITION: &str = "mysnap-binlog-pos";
const META_GTID: &str = "mysnap-gtid";

impl Start {
    /// From mysql-lock-hold's status file; None when the server had no
    /// binary log.
    pub fn from_status(status: &Status) -> Option<Start> {
        let at = Position {
            file: status.binlog_file.clone()?,
            position: status.binlog_pos?,
        };
        if !valid_file(&at.file) {
            return None;
        }
        // MySQL writes gtid_executed with a newline after each comma.
        let gtid = status
            .gtid
            .as_deref()
            .map(|g| g.split_whitespace().collect::<String>())
            .filter(|g| !g.is_empty() && g.len() <= GTID_MAX && g.bytes().all(gtid_byte));
        Some(Start { at, gtid })
    }

    /// The metadata as (name, value) pairs, without the `x-amz-meta-` part.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = vec![
            (META_FILE.to_string(), self.at.file.clone()),
            (META_POSITION.to_string(), self.at.position.to_string()),
        ];
        if let Some(gtid) = &self.gtid {
            pairs.push((META_GTID.to_string(), gtid.clone()));
        }
        pairs
    }

    /// Reads what a HEAD returned (names in lower case, without
    /// `x-amz-meta-`): None when the file or position is missing or
    /// malformed; anyone who can write to the bucket can write these.
    pub fn from_map(map: &BTreeMap<String, String>) -> Option<Start> {
        let file = map.get(META_FILE).filter(|f| valid_file(f))?;
        let position = map.get(META_POSITION)?;
        if position.is_empty()
            || position.len() > 20
            || !position.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some(Start {
            at: Position {
                file: file.clone(),
                position: position.parse().ok()?,
            },
            gtid: map
                .get(META_GTID)
                .filter(|g| g.len() <= GTID_MAX && g.bytes().all(gtid_byte))
                .cloned(),
        })
    }
}

/// The bytes of MariaDB's and MySQL's GTID sets.
fn gtid_byte(b: u8) -> bool {
    b.is_ascii_hexdigit() || b",-:".contains(&b)
}

/// Sidecars, markers, folder markers and the binlog archive beside the
/// backups (PREFIX/binlog/) are not backups.
pub fn is_backup(prefix: &str, key: &str) -> bool {
    let relative = key
        .strip_prefix(prefix)
        .unwrap_or(key)
        .trim_start_matches('/');
    ![SIDECAR, VERIFIED, PIN].iter().any(|s| key.ends_with(s))
        && !key.ends_with('/')
        && !relative.starts_with(crate::binlog::layout::DIR)
}

/// The backups among `objects` listed under `prefix`, oldest first: by
/// time stored, then by key (timestamped keys sort by time too).
pub fn backups(prefix: &str, objects: Vec<ObjectInfo>) -> Vec<ObjectInfo> {
    let mut found: Vec<ObjectInfo> = objects
        .into_iter()
        .filter(|o| is_backup(prefix, &o.key))
        .collect();
    found.sort_by(|a, b| (&a.last_modified, &a.key).cmp(&(&b.last_modified, &b.key)));
    found
}

/// When a backup was taken: the time its name records (the default
/// `%Y%m%dT%H%M%SZ`), else when it was stored.
pub fn taken(prefix: &str, object: &ObjectInfo) -> Option<Moment> {
    taken_by(prefix, object, None)
}

/// When a backup was taken: the time that its key under `prefix` records
/// in `format`, or without one the time its name begins with in the
/// default `%Y%m%dT%H%M%SZ`; else when it was stored.
pub fn taken_by(
    prefix: &str,
    object: &ObjectInfo,
    format: Option<&crate::moment::NameFormat>,
) -> Option<Moment> {
    let relative = object.key.strip_prefix(prefix).unwrap_or(&object.key);
    let named = match format {
        Some(format) => format.time(relative),
        None => crate::moment::named_time(relative.rsplit('/').next().unwrap_or(relative)),
    };
    named.or_else(|| {
        chrono::DateTime::parse_from_rfc3339(&object.last_modified)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    })
}

/// The backups taken at or before `before` (all without it); with it,
/// ordered by when they were taken.
pub fn before(prefix: &str, backups: Vec<ObjectInfo>, before: Option<Moment>) -> Vec<ObjectInfo> {
    let Some(limit) = before else { return backups };
    let mut kept: Vec<(Moment, ObjectInfo)> = backups
        .into_iter()
        .filter_map(|o| Some((taken(prefix, &o)?, o)))
        .filter(|(t, _)| *t <= limit)
        .collect();
    kept.sort_by_key(|(t, _)| *t);
    kept.into_iter().map(|(_, o)| o).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(key: &str, time: &str) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            size: 1,
            etag: None,
            last_modified: time.into(),
            metadata: Default::default(),
            lock: None,
        }
    }

    #[test]
    fn a_start_goes_into_metadata_and_back_and_bad_metadata_is_none() {
        let mut status: Status = serde_json::from_str(
            r#"{"format":1,"flavor":"mysql","server_version":"8.0.36","server_id":1,
            "server_uuid":null,"binlog_file":"binlog.000042","binlog_pos":157,
            "gtid":"3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,\n4e11fa47-71ca-11e1-9e33-c80aa9429562:1-2",
            "replica":null,"layout":{},"lock":"ftwrl","locked_at":"2026-12-02T01:00:00.000Z",
            "lock_attempts":1,"lock_wait_ms":3,"lock_hold_ms":null}"#,
        )
        .unwrap();
        let start = Start::from_status(&status).unwrap();
        assert_eq!(start.at.to_string(), "binlog.000042:157");
        // The newline MySQL puts after a comma is no header byte.
        assert_eq!(
            start.gtid.as_deref(),
            Some(
                "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,4e11fa47-71ca-11e1-9e33-c80aa9429562:1-2"
            )
        );
        let map: BTreeMap<String, String> = start.to_pairs().into_iter().collect();
        assert_eq!(Start::from_map(&map), Some(start.clone()));
        // A GTID set too long for a header is left out, the rest is kept.
        status.gtid = Some("0-1-1,".repeat(200));
        let long = Start::from_status(&status).unwrap();
        assert_eq!((long.at, long.gtid), (start.at.clone(), None));
        status.binlog_file = None;
        assert_eq!(Start::from_status(&status), None);
        for (name, value) in [
            (META_FILE, "../../etc/passwd"),
            (META_POSITION, "12x"),
            (META_POSITION, "99999999999999999999999"),
            (META_POSITION, ""),
        ] {
            let mut bad = map.clone();
            bad.insert(name.to_string(), value.to_string());
            assert_eq!(Start::from_map(&bad), None, "{name}={value}");
        }
        let mut no_gtid = map.clone();
        no_gtid.insert(META_GTID.to_string(), "0-1-1\r\nx-amz: y".to_string());
        assert_eq!(Start::from_map(&no_gtid).unwrap().gtid, None);
        assert_eq!(Start::from_map(&BTreeMap::new()), None);
    }

    #[test]
    fn before_keeps_the_backups_taken_by_then() {
        let listed = vec![
            // Named 10:00, stored later: its name decides.
            object("db1/20261202T100000Z.tar.gz", "2026-12-02T12:00:00.000Z"),
            object("db1/20261202T110000Z.tar.gz", "2026-12-02T11:05:00.000Z"),
            object("db1/manual.tar.gz", "2026-12-02T10:30:00.000Z"),
        ];
        let limit = crate::moment::parse_moment("2026-12-02 10:45:00").unwrap();
        let keys: Vec<String> = before("db1/", backups("db1/", listed), Some(limit))
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, ["db1/20261202T100000Z.tar.gz", "db1/manual.tar.gz"]);
    }

    #[test]
    fn newest_backup_is_last_and_sidecars_and_markers_are_skipped() {
        let listed = vec![
            object("db1/b.tar.gz", "2026-11-02T00:00:00.000Z"),
            object("db1/b.tar.gz.sha256", "2026-11-03T00:00:00.000Z"),
            // The verify job's record and a pin are no backups either.
            object("db1/b.tar.gz.verified", "2026-11-06T00:00:00.000Z"),
            object("db1/a.tar.gz.pin", "2026-11-06T00:00:00.000Z"),
            object("db1/a.tar.gz", "2026-11-01T00:00:00.000Z"),
            object("db1/", "2026-11-04T00:00:00.000Z"),
            object("db1/c.tar.gz", "2026-11-02T00:00:00.000Z"),
            // Stored first, though its name sorts last.
            object("db1/z.tar.gz", "2026-10-31T00:00:00.000Z"),
            // The binlog archive, stored last.
            object(
                "db1/binlog/20261203T101500Z-a/binlog.000001/00000000000000000004.seg",
                "2026-11-05T00:00:00.000Z",
            ),
        ];
        let keys: Vec<String> = backups("db1/", listed).into_iter().map(|o| o.key).collect();
        assert_eq!(
            keys,
            [
                "db1/z.tar.gz",
                "db1/a.tar.gz",
                "db1/b.tar.gz",
                "db1/c.tar.gz"
            ]
        );
    }
}
