//! Where to go on from: decided from the archive (its newest epoch of this
//! server, and that epoch's last segment) and the server's list of binary
//! logs. The archive is the only state; nothing local is needed.

use crate::source::Server;
use mysnap::binlog::event::FIRST_EVENT;
use mysnap::binlog::gtid::Position;
use mysnap::binlog::layout::file_number;

/// The end of the newest epoch of this server, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveEnd {
    pub epoch: String,
    pub file: String,
    /// Where the last segment ends in `file`.
    pub position: u64,
    /// The file's format description timestamp (from the last segment).
    pub file_created: u32,
    /// The last segment ended with a rotation to this file.
    pub next_file: Option<String>,
    /// MariaDB's GTID position there, when the last segment records it.
    pub gtid_position: Option<Position>,
    /// Every file of the epoch that has segments, and where its last one
    /// ends (for a file before `file`, the file's end).
    pub files: Vec<(String, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Go on in the same epoch, where it ends: the server's file must
    /// have been created at `file_created` (checked on its first event).
    /// `gtid`: the GTID position there, to ask for the stream by.
    Continue {
        epoch: String,
        file: String,
        position: u64,
        file_created: Option<u32>,
        gtid: Option<Position>,
    },
    /// The server no longer has what follows the archive: record a gap in
    /// the epoch, and go on from the oldest file that it has.
    Gap {
        epoch: String,
        after: (String, u64),
        file: String,
    },
    /// Another lineage (a first run, a RESET MASTER, a server renumbered
    /// from 1, another server): a new epoch from the server's oldest file.
    NewEpoch { file: String, why: String },
}

pub fn locate(end: Option<&ArchiveEnd>, server: &Server) -> Start {
    let oldest = server.binlogs[0].0.clone();
    let Some(end) = end else {
        return Start::NewEpoch {
            file: oldest,
            why: "the archive holds nothing of this server yet".into(),
        };
    };
    // A server whose file holds less than the archive has of that file
    // wrote another history after some point of it: a server restored
    // from a backup (its files are the backup's copies, up to the backup
    // point), whose new events would follow bytes that the archive has
    // and the server never wrote. Every file that both have tells, not
    // only the one the archive ends in: the restored server goes on in a
    // new file, while the backup's copy of the archive's file is short.
    for (name, archived) in &end.files {
        if let Some(size) = server.has(name).filter(|&size| size < *archived) {
            return Start::NewEpoch {
                file: oldest,
                why: format!(
                    "the server's {name} holds {size} bytes, but the archive has it to \
                     {archived}: the server's binary log is not the archive's from there \
                     on (restored from a backup?)"
                ),
            };
        }
    }
    // After a rotation the archive is at the start of the next file.
    let (file, position, created) = match &end.next_file {
        Some(next) => (next.clone(), FIRST_EVENT, None),
        None => (end.file.clone(), end.position, Some(end.file_created)),
    };
    if let Some(size) = server.has(&file) {
        if size >= position {
            return Start::Continue {
                epoch: end.epoch.clone(),
                file,
                position,
                file_created: created,
                gtid: end.gtid_position.clone(),
            };
        }
        return Start::NewEpoch {
            file: oldest,
            why: format!(
                "the server's {file} holds {size} bytes, but the archive has it to {position}: \
                 another file of that name"
            ),
        };
    }
    let ours = file_number(&file);
    let newer = server
        .binlogs
        .iter()
        .all(|(f, _)| file_number(f) > ours && ours.is_some());
    if newer {
        Start::Gap {
            epoch: end.epoch.clone(),
            after: (file, position),
            file: oldest,
        }
    } else {
        Start::NewEpoch {
            file: oldest,
            why: format!(
                "the server's binary logs ({} to {}) do not follow the archive's {file}",
                server.binlogs[0].0,
                server.binlogs[server.binlogs.len() - 1].0
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Flavor;

    fn server(files: &[(&str, u64)]) -> Server {
        Server {
            flavor: Flavor::Mariadb,
            version: "10.11".into(),
            identity: "mariadb-d0-s1".into(),
            server_id: 1,
            binlogs: files.iter().map(|(f, s)| (f.to_string(), *s)).collect(),
            checksum: mysnap::binlog::event::Checksum::Crc32,
        }
    }

    fn end(file: &str, position: u64, next: Option<&str>) -> ArchiveEnd {
        ArchiveEnd {
            epoch: "E".into(),
            file: file.into(),
            position,
            file_created: 7,
            next_file: next.map(String::from),
            gtid_position: None,
            files: vec![("b.000003".into(), 100), (file.into(), position)],
        }
    }

    #[test]
    fn an_empty_archive_starts_at_the_oldest_file() {
        let s = server(&[("b.000003", 100), ("b.000004", 5)]);
        assert!(matches!(locate(None, &s), Start::NewEpoch { file, .. } if file == "b.000003"));
    }

    #[test]
    fn the_archive_goes_on_where_it_ends() {
        let s = server(&[("b.000003", 100), ("b.000004", 500)]);
        assert_eq!(
            locate(Some(&end("b.000004", 300, None)), &s),
            Start::Continue {
                epoch: "E".into(),
                file: "b.000004".into(),
                position: 300,
                file_created: Some(7),
                gtid: None
            }
        );
        // With the GTID position that the last segment recorded.
        let mut with_gtid = end("b.000004", 300, None);
        with_gtid.gtid_position = Some("0-1-17".parse().unwrap());
        assert!(matches!(
            locate(Some(&with_gtid), &s),
            Start::Continue { gtid: Some(g), .. } if g.to_string() == "0-1-17"
        ));
        // After a rotation, at the next file's start, even once the
        // rotated file is purged.
        let s = server(&[("b.000005", 500)]);
        assert_eq!(
            locate(Some(&end("b.000004", 300, Some("b.000005"))), &s),
            Start::Continue {
                epoch: "E".into(),
                file: "b.000005".into(),
                position: 4,
                file_created: None,
                gtid: None
            }
        );
    }

    #[test]
    fn purged_files_are_a_gap() {
        let s = server(&[("b.000007", 100), ("b.000008", 5)]);
        assert_eq!(
            locate(Some(&end("b.000004", 300, None)), &s),
            Start::Gap {
                epoch: "E".into(),
                after: ("b.000004".into(), 300),
                file: "b.000007".into()
            }
        );
    }

    #[test]
    fn a_reset_or_renumbered_server_is_a_new_epoch() {
        let reset = server(&[("b.000001", 100)]);
        assert!(matches!(
            locate(Some(&end("b.000004", 300, None)), &reset),
            Start::NewEpoch { file, .. } if file == "b.000001"
        ));
        // A file of the archive's name, but shorter than the archive has it.
        let short = server(&[("b.000001", 100), ("b.000004", 200)]);
        assert!(matches!(
            locate(Some(&end("b.000004", 300, None)), &short),
            Start::NewEpoch { .. }
        ));
    }

    #[test]
    fn a_server_restored_from_a_backup_is_a_new_epoch() {
        // The archive has b.000003 whole (100 bytes) and b.000004 to 300;
        // the restored server has the backup's copy of b.000003, to 60,
        // then a new b.000004 that it wrote past the archive's end.
        let restored = server(&[("b.000002", 100), ("b.000003", 60), ("b.000004", 800)]);
        for next in [None, Some("b.000005")] {
            match locate(Some(&end("b.000004", 300, next)), &restored) {
                Start::NewEpoch { file, why } => {
                    assert_eq!(file, "b.000002");
                    assert!(why.contains("b.000003 holds 60 bytes"), "{why}");
                }
                other => panic!("{other:?}"),
            }
        }
        // The backup's copy of the archive's own file, shorter than the
        // archive has it, after a rotation out of it.
        let restored = server(&[("b.000003", 100), ("b.000004", 200), ("b.000005", 4000)]);
        assert!(matches!(
            locate(Some(&end("b.000004", 300, Some("b.000005"))), &restored),
            Start::NewEpoch { why, .. } if why.contains("b.000004 holds 200 bytes")
        ));
        // Files that hold at least what the archive has go on.
        let same = server(&[("b.000003", 100), ("b.000004", 300), ("b.000005", 4000)]);
        assert!(matches!(
            locate(Some(&end("b.000004", 300, Some("b.000005"))), &same),
            Start::Continue { file, .. } if file == "b.000005"
        ));
    }
}
