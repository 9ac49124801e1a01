//! Which objects under a prefix are backups, and which is the newest.

use mysnap::s3::ObjectInfo;

/// Sidecars and folder markers are not backups.
pub fn is_backup(key: &str) -> bool {
    !key.ends_with(".sha256") && !key.ends_with('/')
}

/// The backups among `objects`, oldest first: by time stored, then by key
/// (timestamped keys sort by time too).
pub fn backups(objects: Vec<ObjectInfo>) -> Vec<ObjectInfo> {
    let mut found: Vec<ObjectInfo> = objects.into_iter().filter(|o| is_backup(&o.key)).collect();
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
        ];
        let keys: Vec<String> = backups(listed).into_iter().map(|o| o.key).collect();
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
