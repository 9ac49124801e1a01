//! Which objects under a prefix are backups, and when each was taken:
//! s3-get's --list and --latest, and the recoverable window that
//! mysql-binlog-replay --list shows.

use super::ObjectInfo;

pub type Moment = chrono::DateTime<chrono::Utc>;

/// What is stored beside a backup under its key and one of these
/// suffixes: its SHA-256 sidecar (s3-put), the verify job's record, and
/// s3-prune's pin.
pub const SIDECAR: &str = ".sha256";
pub const VERIFIED: &str = ".verified";
pub const PIN: &str = ".pin";

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
    let name = object.key.strip_prefix(prefix).unwrap_or(&object.key);
    let name = name.rsplit('/').next().unwrap_or(name);
    crate::moment::named_time(name).or_else(|| {
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
        }
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
