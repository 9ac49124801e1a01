//! Which objects under a prefix are backups, and which is the newest.

use mysnap::s3::ObjectInfo;

/// Sidecars, folder markers and the binlog archive beside the backups
/// (PREFIX/binlog/) are not backups.
pub fn is_backup(prefix: &str, key: &str) -> bool {
    let relative = key
        .strip_prefix(prefix)
        .unwrap_or(key)
        .trim_start_matches('/');
    !key.ends_with(".sha256")
        && !key.ends_with('/')
        && !relative.starts_with(mysnap::binlog::layout::DIR)
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
    fn newest_backup_is_last_and_sidecars_are_skipped() {
        let listed = vec![
            object("db1/b.tar.gz", "2026-11-02T00:00:00.000Z"),
            object("db1/b.tar.gz.sha256", "2026-11-03T00:00:00.000Z"),
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
