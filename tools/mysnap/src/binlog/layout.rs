//! Where the binlog archive lives in S3, and what a listing of it means.
//!
//! ```text
//! PREFIX/binlog/EPOCH/FILE/POSITION.seg   events [POSITION, POSITION + size) of FILE
//! PREFIX/binlog/EPOCH/FILE/00000000000000000000.gap
//!                                         before FILE, events are missing
//! ```
//!
//! POSITION has 20 digits, so that keys sort as positions do. A segment's
//! bytes are the events exactly as they stand in the server's file (a
//! file is its four magic bytes, then its segments in order). EPOCH is
//! `YYYYmmddTHHMMSSZ-IDENTITY`: when it began (its first event's time, or
//! a second after the server's newest epoch when that is later, so that
//! epoch names never repeat and a newer epoch sorts after the older ones),
//! and the server's identity.
//! Everything that a listing cannot tell (times, GTIDs, the digest) is in
//! the segment's object metadata, `x-amz-meta-mysnap-*`.
//!
//! Keys come from a listing of a bucket that others can write to: a key
//! that does not parse is ignored (and said by the caller), never trusted.

use super::gtid::Position;
use std::collections::BTreeMap;

pub const DIR: &str = "binlog/";
const POSITION_DIGITS: usize = 20;
pub const SEGMENT_SUFFIX: &str = ".seg";
pub const GAP_SUFFIX: &str = ".gap";

/// A binlog file name as servers make them: BASENAME.NNNNNN.
pub fn valid_file(name: &str) -> bool {
    let Some((base, number)) = name.rsplit_once('.') else {
        return false;
    };
    !base.is_empty()
        && name.len() <= 200
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && number.len() >= 6
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// The file's sequence number: files of one lineage are made in its order.
pub fn file_number(name: &str) -> Option<u64> {
    name.rsplit_once('.')?.1.parse().ok()
}

/// An epoch's name: its start, and the server's identity (letters,
/// digits, '-').
pub fn valid_epoch(name: &str) -> bool {
    let Some((time, identity)) = name.split_once('-') else {
        return false;
    };
    time.len() == 16
        && time.as_bytes()[8] == b'T'
        && time.ends_with('Z')
        && time[..8]
            .bytes()
            .chain(time[9..15].bytes())
            .all(|b| b.is_ascii_digit())
        && !identity.is_empty()
        && identity.len() <= 100
        && identity
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

pub fn epoch_name(started: u32, identity: &str) -> String {
    let time = chrono::DateTime::from_timestamp(i64::from(started), 0).unwrap_or_default();
    format!("{}-{identity}", time.format("%Y%m%dT%H%M%SZ"))
}

/// When an epoch began, from its name (the inverse of [`epoch_name`]).
pub fn epoch_started(name: &str) -> Option<u32> {
    if !valid_epoch(name) {
        return None;
    }
    let time = chrono::NaiveDateTime::parse_from_str(&name[..16], "%Y%m%dT%H%M%SZ").ok()?;
    u32::try_from(time.and_utc().timestamp()).ok()
}

/// `prefix` is "" or ends with '/'.
pub fn segment_key(prefix: &str, epoch: &str, file: &str, start: u64) -> String {
    format!("{prefix}{DIR}{epoch}/{file}/{start:0POSITION_DIGITS$}{SEGMENT_SUFFIX}")
}

pub fn gap_key(prefix: &str, epoch: &str, file: &str) -> String {
    format!(
        "{prefix}{DIR}{epoch}/{file}/{:0POSITION_DIGITS$}{GAP_SUFFIX}",
        0
    )
}

/// What one key of the listing is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    Segment {
        epoch: String,
        file: String,
        start: u64,
        size: u64,
    },
    Gap {
        epoch: String,
        file: String,
    },
}

/// Reads a listed key under `prefix`; None for anything that is not a
/// well-formed segment or gap marker.
pub fn parse_key(prefix: &str, key: &str, size: u64) -> Option<Stored> {
    let rest = key.strip_prefix(prefix)?.strip_prefix(DIR)?;
    let mut parts = rest.split('/');
    let (epoch, file, name) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !valid_epoch(epoch) || !valid_file(file) {
        return None;
    }
    let (digits, suffix) = name.split_at_checked(POSITION_DIGITS)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let position: u64 = digits.parse().ok()?;
    let (epoch, file) = (epoch.to_string(), file.to_string());
    match suffix {
        SEGMENT_SUFFIX if position >= super::event::FIRST_EVENT && size > 0 => {
            Some(Stored::Segment {
                epoch,
                file,
                start: position,
                size,
            })
        }
        GAP_SUFFIX if position == 0 => Some(Stored::Gap { epoch, file }),
        _ => None,
    }
}

/// What a segment's object metadata says of it (`x-amz-meta-mysnap-*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentMeta {
    /// The server's identity, as in the epoch's name.
    pub server: String,
    /// The file's format description timestamp: two files of one name
    /// with different ones are not the same file.
    pub file_created: u32,
    pub first_time: u32,
    pub last_time: u32,
    pub events: u64,
    /// The first and last GTID in the segment, if it has any.
    pub gtid_first: Option<String>,
    pub gtid_last: Option<String>,
    /// MariaDB's GTID position after the segment's last whole transaction,
    /// when it is known (see `gtid::Tracker`): where a replica connecting
    /// by GTID is sent the events that follow. It may lag by a transaction
    /// that the segment ends inside, never lead.
    pub gtid_position: Option<Position>,
    /// SHA-256 of the segment's bytes, in hex.
    pub sha256: String,
    /// When the segment ends with its file's rotation: the next file.
    pub next_file: Option<String>,
}

const META: &str = "mysnap-";

impl SegmentMeta {
    /// The metadata as (name, value) pairs, without the `x-amz-meta-` part.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = vec![
            ("server", self.server.clone()),
            ("file-created", self.file_created.to_string()),
            ("first-time", self.first_time.to_string()),
            ("last-time", self.last_time.to_string()),
            ("events", self.events.to_string()),
            ("sha256", self.sha256.clone()),
        ];
        if let Some(g) = &self.gtid_first {
            pairs.push(("gtid-first", g.clone()));
        }
        if let Some(g) = &self.gtid_last {
            pairs.push(("gtid-last", g.clone()));
        }
        if let Some(p) = &self.gtid_position {
            pairs.push(("gtid-position", p.to_string()));
        }
        if let Some(f) = &self.next_file {
            pairs.push(("next-file", f.clone()));
        }
        pairs
            .into_iter()
            .map(|(k, v)| (format!("{META}{k}"), v))
            .collect()
    }

    /// Reads what a HEAD returned (names lower-case, without
    /// `x-amz-meta-`); None when a field is missing or malformed.
    pub fn from_map(map: &BTreeMap<String, String>) -> Option<SegmentMeta> {
        let get = |k: &str| map.get(&format!("{META}{k}"));
        let number = |k: &str| get(k)?.parse::<u32>().ok();
        let gtid = |k: &str| {
            get(k)
                .filter(|g| {
                    g.len() <= 100
                        && g.bytes()
                            .all(|b| b.is_ascii_hexdigit() || b"-:".contains(&b))
                })
                .cloned()
        };
        let sha256 = get("sha256")?.clone();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(SegmentMeta {
            server: get("server")?.clone(),
            file_created: number("file-created")?,
            first_time: number("first-time")?,
            last_time: number("last-time")?,
            events: get("events")?.parse().ok()?,
            gtid_first: gtid("gtid-first"),
            gtid_last: gtid("gtid-last"),
            // Unreadable is unknown: the archiver goes on by file and
            // position then.
            gtid_position: get("gtid-position").and_then(|p| p.parse().ok()),
            sha256,
            next_file: get("next-file").filter(|f| valid_file(f)).cloned(),
        })
    }
}

/// One segment of a timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub key: String,
    pub start: u64,
    pub end: u64,
}

/// One file's archived part: its segments in order, and whether a gap
/// marker says that events before it are missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub name: String,
    pub gap_before: bool,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epoch {
    pub name: String,
    /// In the order the server made them.
    pub files: Vec<File>,
}

impl Epoch {
    pub fn identity(&self) -> &str {
        self.name.split_once('-').map_or("", |(_, id)| id)
    }

    /// Where the archive of this epoch ends: the last file and position.
    pub fn end(&self) -> Option<(&str, u64)> {
        let file = self.files.iter().rev().find(|f| !f.segments.is_empty())?;
        Some((&file.name, file.segments.last()?.end))
    }

    pub fn last_segment(&self) -> Option<&Segment> {
        self.files.iter().rev().find_map(|f| f.segments.last())
    }

    /// The epoch's files in runs that a replay may go through, as far as
    /// the listing tells: in a run, each file after the first is numbered
    /// one more than the one before, has no gap marker, and is archived
    /// from its first event. (Whether a file's archive ends with its
    /// rotation, only its last segment's metadata and bytes tell.)
    pub fn stretches(&self) -> Vec<&[File]> {
        let follows = |before: &File, file: &File| {
            !file.gap_before
                && file.segments.first().map(|s| s.start) == Some(super::event::FIRST_EVENT)
                && file_number(&before.name).and_then(|n| n.checked_add(1))
                    == file_number(&file.name)
        };
        let files: Vec<usize> = (0..self.files.len())
            .filter(|&i| !self.files[i].segments.is_empty())
            .collect();
        let mut stretches = Vec::new();
        let mut begin = 0;
        for (k, &i) in files.iter().enumerate() {
            let next = files.get(k + 1).copied();
            let ends = match next {
                Some(j) => j != i + 1 || !follows(&self.files[i], &self.files[j]),
                None => true,
            };
            if ends {
                stretches.push(&self.files[files[begin]..=i]);
                begin = k + 1;
            }
        }
        stretches
    }
}

/// The archive under a prefix, as a listing shows it: its epochs, oldest
/// first, and the keys that are no part of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    pub epochs: Vec<Epoch>,
    /// Keys under PREFIX/binlog/ that are not segments or markers.
    pub foreign: Vec<String>,
    /// Segments that overlap another or leave a hole inside a file: an
    /// archive that only mysql-binlog-archive wrote never has them.
    pub broken: Vec<String>,
}

impl Timeline {
    /// Builds the timeline from (key, size) pairs of a listing.
    pub fn from_listing<'a>(
        prefix: &str,
        listing: impl IntoIterator<Item = (&'a str, u64)>,
    ) -> Timeline {
        let mut timeline = Timeline::default();
        let mut epochs: BTreeMap<String, BTreeMap<String, File>> = BTreeMap::new();
        for (key, size) in listing {
            let Some(stored) = parse_key(prefix, key, size) else {
                timeline.foreign.push(key.to_string());
                continue;
            };
            let (epoch, file) = match &stored {
                Stored::Segment { epoch, file, .. } | Stored::Gap { epoch, file } => (epoch, file),
            };
            let entry = epochs
                .entry(epoch.clone())
                .or_default()
                .entry(file.clone())
                .or_insert_with(|| File {
                    name: file.clone(),
                    gap_before: false,
                    segments: Vec::new(),
                });
            match stored {
                Stored::Gap { .. } => entry.gap_before = true,
                Stored::Segment { start, size, .. } => entry.segments.push(Segment {
                    key: key.to_string(),
                    start,
                    end: start + size,
                }),
            }
        }
        for (name, files) in epochs {
            let mut files: Vec<File> = files.into_values().collect();
            files.sort_by_key(|f| (file_number(&f.name), f.name.clone()));
            for file in &mut files {
                file.segments.sort_by_key(|s| s.start);
                let mut kept: Vec<Segment> = Vec::new();
                for segment in std::mem::take(&mut file.segments) {
                    match kept.last() {
                        Some(last) if last.end != segment.start => {
                            timeline.broken.push(segment.key.clone())
                        }
                        _ => kept.push(segment),
                    }
                }
                file.segments = kept;
            }
            timeline.epochs.push(Epoch { name, files });
        }
        timeline
    }

    /// The newest epoch of a server.
    pub fn newest_of(&self, identity: &str) -> Option<&Epoch> {
        self.epochs.iter().rev().find(|e| e.identity() == identity)
    }

    /// The name of a new epoch of `identity` whose first event is at
    /// `first`: after every epoch of that server that the archive holds,
    /// so never one of theirs and the newest. (A server restored from a
    /// backup sends the very first file that began its older epoch: named
    /// by that event's time alone, the new epoch would be the old one.)
    pub fn new_epoch_name(&self, first: u32, identity: &str) -> String {
        let newest = self
            .epochs
            .iter()
            .filter(|e| e.identity() == identity)
            .filter_map(|e| epoch_started(&e.name))
            .max();
        let started = match newest {
            Some(t) if t >= first => t.saturating_add(1),
            _ => first,
        };
        epoch_name(started, identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: &str = "20261203T101500Z-mariadb-d0-s1";

    #[test]
    fn keys_sort_as_positions_and_read_back() {
        let a = segment_key("db1/", E, "binlog.000001", 4);
        let b = segment_key("db1/", E, "binlog.000001", 1_000_000);
        assert!(a < b);
        assert_eq!(
            parse_key("db1/", &b, 10),
            Some(Stored::Segment {
                epoch: E.into(),
                file: "binlog.000001".into(),
                start: 1_000_000,
                size: 10
            })
        );
        let gap = gap_key("db1/", E, "binlog.000003");
        assert!(gap < segment_key("db1/", E, "binlog.000003", 4));
        assert!(matches!(
            parse_key("db1/", &gap, 0),
            Some(Stored::Gap { .. })
        ));
    }

    #[test]
    fn hostile_keys_are_not_part_of_the_archive() {
        for key in [
            "db1/binlog/../x/binlog.000001/00000000000000000004.seg",
            "db1/binlog/20261203T101500Z-a/../../00000000000000000004.seg",
            "db1/binlog/20261203T101500Z-a/binlog.000001/4.seg",
            "db1/binlog/20261203T101500Z-a/binlog.000001/0000000000000000000x.seg",
            "db1/binlog/20261203T101500Z-a/binlog.000001/00000000000000000000.seg",
            "db1/binlog/20261203T101500Z-a/binlog.000001/00000000000000000004.gap",
            "db1/binlog/20261203T101500Z-a b/binlog.000001/00000000000000000004.seg",
            "db1/binlog/20261203T101500Z-a/binlog/00000000000000000004.seg",
            "db1/binlog/20261203T101500Z-a/binlog.000001/00000000000000000004.seg/x",
            "db2/binlog/20261203T101500Z-a/binlog.000001/00000000000000000004.seg",
        ] {
            assert_eq!(parse_key("db1/", key, 10), None, "{key}");
        }
    }

    #[test]
    fn a_timeline_orders_files_by_number_and_finds_the_end() {
        let keys = [
            (segment_key("", E, "binlog.1000000", 4), 100),
            (segment_key("", E, "binlog.999999", 4), 50),
            (segment_key("", E, "binlog.999999", 54), 10),
            (gap_key("", E, "binlog.1000000"), 0),
            ("binlog/README".to_string(), 5),
        ];
        let t = Timeline::from_listing("", keys.iter().map(|(k, s)| (k.as_str(), *s)));
        assert_eq!(t.foreign, ["binlog/README"]);
        assert!(t.broken.is_empty());
        let epoch = t.newest_of("mariadb-d0-s1").unwrap();
        let names: Vec<&str> = epoch.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["binlog.999999", "binlog.1000000"]);
        assert!(epoch.files[1].gap_before);
        assert_eq!(epoch.end(), Some(("binlog.1000000", 104)));
        assert!(t.newest_of("another").is_none());
    }

    #[test]
    fn stretches_end_at_gaps_missing_files_and_late_starts() {
        let keys = [
            (segment_key("", E, "b.000001", 4), 10),
            (segment_key("", E, "b.000002", 4), 10),
            // b.000003 is missing
            (segment_key("", E, "b.000004", 4), 10),
            (gap_key("", E, "b.000005"), 0),
            (segment_key("", E, "b.000005", 4), 10),
            (segment_key("", E, "b.000006", 50), 10),
        ];
        let t = Timeline::from_listing("", keys.iter().map(|(k, s)| (k.as_str(), *s)));
        let runs: Vec<Vec<&str>> = t.epochs[0]
            .stretches()
            .iter()
            .map(|run| run.iter().map(|f| f.name.as_str()).collect())
            .collect();
        assert_eq!(
            runs,
            [
                vec!["b.000001", "b.000002"],
                vec!["b.000004"],
                vec!["b.000005"],
                vec!["b.000006"]
            ]
        );
    }

    #[test]
    fn an_overlap_or_hole_inside_a_file_is_broken() {
        let keys = [
            (segment_key("", E, "binlog.000001", 4), 100),
            (segment_key("", E, "binlog.000001", 50), 100),
            (segment_key("", E, "binlog.000001", 104), 10),
        ];
        let t = Timeline::from_listing("", keys.iter().map(|(k, s)| (k.as_str(), *s)));
        assert_eq!(t.broken, [keys[1].0.clone()]);
        assert_eq!(t.epochs[0].end(), Some(("binlog.000001", 114)));
    }

    #[test]
    fn metadata_reads_back_and_refuses_bad_values() {
        let meta = SegmentMeta {
            server: "mariadb-d0-s1".into(),
            file_created: 1,
            first_time: 2,
            last_time: 3,
            events: 4,
            gtid_first: Some("0-1-5".into()),
            gtid_last: None,
            gtid_position: Some("0-1-4,1-2-9".parse().unwrap()),
            sha256: "ab".repeat(32),
            next_file: Some("binlog.000002".into()),
        };
        let map: BTreeMap<String, String> = meta.to_pairs().into_iter().collect();
        assert_eq!(SegmentMeta::from_map(&map), Some(meta));
        let mut bad = map.clone();
        bad.insert("mysnap-sha256".into(), "zz".into());
        assert_eq!(SegmentMeta::from_map(&bad), None);
        // A GTID position that does not read is unknown, not an error.
        let mut odd = map.clone();
        odd.insert("mysnap-gtid-position".into(), "0-1-x'".into());
        let read = SegmentMeta::from_map(&odd).expect("the rest reads");
        assert_eq!(read.gtid_position, None);
    }

    #[test]
    fn epoch_names() {
        assert_eq!(
            epoch_name(1_764_756_900, "mariadb-d0-s1"),
            "20251203T101500Z-mariadb-d0-s1"
        );
        assert!(valid_epoch(&epoch_name(0, "x")));
        assert!(!valid_epoch("2026-x"));
        assert_eq!(
            epoch_started("20251203T101500Z-mariadb-d0-s1"),
            Some(1_764_756_900)
        );
        assert_eq!(epoch_started("2025120XT101500Z-a"), None);
    }

    #[test]
    fn a_new_epoch_is_named_after_the_servers_older_ones() {
        let keys = [
            (segment_key("", E, "b.000001", 4), 10),
            (segment_key("", "20261203T101510Z-other", "b.000001", 4), 10),
        ];
        let t = Timeline::from_listing("", keys.iter().map(|(k, s)| (k.as_str(), *s)));
        let at = epoch_started(E).unwrap();
        // The same first event (a restored server's copy of the file that
        // began E), or an older one: the second after E.
        for first in [at, at - 3600] {
            assert_eq!(
                t.new_epoch_name(first, "mariadb-d0-s1"),
                "20261203T101501Z-mariadb-d0-s1"
            );
        }
        assert_eq!(
            t.new_epoch_name(at + 60, "mariadb-d0-s1"),
            epoch_name(at + 60, "mariadb-d0-s1")
        );
        // Another server's epochs do not count.
        assert_eq!(t.new_epoch_name(at, "x"), epoch_name(at, "x"));
    }
}
