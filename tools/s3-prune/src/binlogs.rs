//! Which binlog segments a prune may delete: only those that lie wholly
//! before the start of every backup whose chain stays. Pure: the archive
//! comes in as a listing's timeline, the backups with the starts their
//! metadata records; the keys to delete go out.
//!
//! A replay never crosses epochs (a server's restart from a backup, a new
//! server), and which epoch a start belongs to only the server's history
//! tells. So a start is taken to lie in every epoch that holds its file:
//! each such epoch is kept from there on. An epoch that holds no start is
//! kept whole when it is newer than the oldest epoch that holds one (it
//! covers the time after the backups), and deleted whole when older.
//! Whatever cannot be placed (a backup without a recorded start, a start
//! the archive does not hold) leaves the archive whole: a prune that does
//! not know what a backup needs deletes none of it.

use crate::policy::{Backup, Moment, Plan};
use chrono::Duration;
use mysnap::binlog::layout::{gap_key, Timeline};
use mysnap::binlog::target::Position;
use mysnap::s3::backups::Start;
use std::collections::BTreeMap;

/// The backups whose binlog chains stay, newest first: the kept complete
/// backups from the anchor on, and every pinned one. The anchor is the
/// oldest kept complete backup; with `within`, the newest one taken at
/// least that long before `now` (so that any second of the last `within`
/// can be recovered), or the oldest when none is that old.
pub fn needed(plan: &Plan, within: Option<Duration>, now: Moment) -> Vec<&Backup> {
    let complete: Vec<&Backup> = plan.kept().filter(|b| b.complete).collect();
    let anchor = match within {
        None => complete.last(),
        Some(window) => complete
            .iter()
            .find(|b| b.taken <= now - window)
            .or(complete.last()),
    };
    let Some(anchor) = anchor.map(|b| b.taken) else {
        return Vec::new();
    };
    complete
        .into_iter()
        .filter(|b| b.taken >= anchor || b.pinned)
        .collect()
}

/// Where one epoch is kept from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    pub epoch: String,
    /// None: the epoch goes whole.
    pub from: Option<Position>,
    pub segments: usize,
    pub bytes: u64,
}

/// What the prune does to the binlog archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// There is none under the prefix.
    NoArchive,
    /// Nothing is deleted, for this reason.
    LeftWhole(String),
    Pruned {
        /// Per epoch that loses segments.
        cuts: Vec<Cut>,
        /// Segments and gap markers, oldest first within each epoch.
        delete: Vec<String>,
        segments: usize,
        bytes: u64,
        /// Segments in the archive before the prune.
        total: usize,
        /// The oldest start that stays recoverable: the backup and where.
        oldest: (String, Position),
    },
}

/// `needed` pairs each backup's key with the start its metadata records.
pub fn plan(prefix: &str, timeline: &Timeline, needed: &[(String, Option<Start>)]) -> Outcome {
    if timeline.epochs.is_empty() {
        return Outcome::NoArchive;
    }
    if needed.is_empty() {
        return Outcome::LeftWhole("no complete backup is kept".into());
    }
    // Per epoch (by index): the earliest start it holds, as the index of
    // its file and the position.
    let mut cuts: BTreeMap<usize, (usize, u64)> = BTreeMap::new();
    let mut oldest: Option<(usize, (usize, u64), &str, &Start)> = None;
    for (key, start) in needed {
        let Some(start) = start else {
            return Outcome::LeftWhole(format!(
                "{key} records no binlog start (stored without s3-put --status-file)"
            ));
        };
        let mut held = false;
        for (e, epoch) in timeline.epochs.iter().enumerate() {
            let Some(f) = epoch
                .files
                .iter()
                .position(|f| f.name == start.at.file && !f.segments.is_empty())
            else {
                continue;
            };
            held = true;
            let at = (f, start.at.position);
            let cut = cuts.entry(e).or_insert(at);
            *cut = (*cut).min(at);
            if oldest.is_none_or(|(oe, oat, _, _)| (e, at) < (oe, oat)) {
                oldest = Some((e, at, key, start));
            }
        }
        if !held {
            return Outcome::LeftWhole(format!(
                "{key} starts at {}, which the binlog archive does not hold",
                start.at
            ));
        }
    }
    let (first, _, oldest_key, oldest_start) = oldest.expect("every start is held");
    let total = timeline
        .epochs
        .iter()
        .map(|e| e.files.iter().map(|f| f.segments.len()).sum::<usize>())
        .sum();
    let (mut delete, mut report) = (Vec::new(), Vec::new());
    for (e, epoch) in timeline.epochs.iter().enumerate() {
        let (before_file, before_position, from) = match cuts.get(&e) {
            Some(&(f, p)) => (
                f,
                p,
                Some(Position {
                    file: epoch.files[f].name.clone(),
                    position: p,
                }),
            ),
            None if e < first => (usize::MAX, 0, None),
            None => continue,
        };
        let mut cut = Cut {
            epoch: epoch.name.clone(),
            from,
            segments: 0,
            bytes: 0,
        };
        for (f, file) in epoch
            .files
            .iter()
            .enumerate()
            .take_while(|(f, _)| *f <= before_file)
        {
            if f < before_file && file.gap_before {
                delete.push(gap_key(prefix, &epoch.name, &file.name));
            }
            for segment in &file.segments {
                if f < before_file || segment.end <= before_position {
                    delete.push(segment.key.clone());
                    cut.segments += 1;
                    cut.bytes += segment.end - segment.start;
                }
            }
        }
        if cut.segments > 0 {
            report.push(cut);
        }
    }
    Outcome::Pruned {
        segments: report.iter().map(|c| c.segments).sum(),
        bytes: report.iter().map(|c| c.bytes).sum(),
        cuts: report,
        delete,
        total,
        oldest: (oldest_key.to_string(), oldest_start.at.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{self, Policy};
    use mysnap::binlog::layout::segment_key;

    const OLD: &str = "20261101T000000Z-mariadb-d0-s1";
    const NEW: &str = "20261120T000000Z-mariadb-d0-s1";
    const NEWEST: &str = "20261125T000000Z-mariadb-d0-s2";

    /// Three epochs, each file in segments of 100 bytes from 4 to 404.
    fn timeline() -> Timeline {
        let mut keys = Vec::new();
        for (epoch, files) in [(OLD, 1..=3), (NEW, 3..=6), (NEWEST, 1..=2)] {
            for n in files {
                for start in [4, 104, 204, 304] {
                    keys.push(segment_key("db1/", epoch, &format!("binlog.{n:06}"), start));
                }
            }
        }
        keys.push(gap_key("db1/", NEW, "binlog.000004"));
        Timeline::from_listing("db1/", keys.iter().map(|k| (k.as_str(), 100)))
    }

    fn start(file: u32, position: u64) -> Option<Start> {
        Some(Start {
            at: Position {
                file: format!("binlog.{file:06}"),
                position,
            },
            gtid: None,
        })
    }

    fn deleted(outcome: &Outcome) -> Vec<String> {
        match outcome {
            Outcome::Pruned { delete, .. } => delete
                .iter()
                .map(|k| k.trim_start_matches("db1/binlog/").to_string())
                .collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn segments_go_only_when_wholly_before_the_oldest_start() {
        let timeline = timeline();
        // A backup in NEW at binlog.000005:204 and one later in it.
        let needed = [
            ("b2".to_string(), start(6, 4)),
            ("b1".into(), start(5, 204)),
        ];
        let outcome = plan("db1/", &timeline, &needed);
        let gone = deleted(&outcome);
        // OLD goes whole (12 segments); NEW loses binlog.000003 and .000004
        // whole with the gap marker before .000004, and .000005's first two
        // segments, [4, 104) and [104, 204): the one at 204 holds the start.
        assert_eq!(gone.len(), 12 + 8 + 1 + 2);
        assert!(gone.iter().all(|k| !k.starts_with(NEWEST)));
        assert!(gone.contains(&format!("{NEW}/binlog.000005/00000000000000000104.seg")));
        assert!(!gone.contains(&format!("{NEW}/binlog.000005/00000000000000000204.seg")));
        assert!(gone.contains(&format!("{NEW}/binlog.000004/00000000000000000000.gap")));
        let Outcome::Pruned {
            cuts,
            segments,
            bytes,
            total,
            oldest,
            ..
        } = outcome
        else {
            unreachable!()
        };
        assert_eq!((segments, bytes, total), (22, 2200, 12 + 16 + 8));
        assert_eq!(oldest.0, "b1");
        assert_eq!(cuts[0].from, None);
        assert_eq!(
            cuts[1].from.as_ref().unwrap().to_string(),
            "binlog.000005:204"
        );
        // A start at a segment's very end keeps the segment after it only.
        let edge = plan("db1/", &timeline, &[("b".into(), start(5, 304))]);
        assert!(deleted(&edge).contains(&format!("{NEW}/binlog.000005/00000000000000000204.seg")));
    }

    #[test]
    fn a_file_in_two_epochs_is_a_start_in_both() {
        // binlog.000003 is in OLD and in NEW: which one the backup belongs
        // to, the listing cannot tell, so both keep it from there.
        let outcome = plan("db1/", &timeline(), &[("b".into(), start(3, 104))]);
        let gone = deleted(&outcome);
        assert!(gone.contains(&format!("{OLD}/binlog.000002/00000000000000000304.seg")));
        assert!(gone.contains(&format!("{OLD}/binlog.000003/00000000000000000004.seg")));
        assert!(gone.contains(&format!("{NEW}/binlog.000003/00000000000000000004.seg")));
        assert!(!gone
            .iter()
            .any(|k| k.contains("000003/00000000000000000104")));
        // 8 + 1 segments of OLD, 1 of NEW; newer epochs stay whole.
        assert_eq!(gone.len(), 10);
    }

    #[test]
    fn what_cannot_be_placed_leaves_the_archive_whole() {
        let timeline = timeline();
        for (needed, why) in [
            (vec![("b".to_string(), None)], "records no binlog start"),
            (vec![("b".into(), start(9, 4))], "does not hold"),
            (
                vec![("a".into(), start(5, 4)), ("b".into(), None)],
                "records no binlog start",
            ),
            (vec![], "no complete backup"),
        ] {
            match plan("db1/", &timeline, &needed) {
                Outcome::LeftWhole(message) => assert!(message.contains(why), "{message}"),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            plan("db1/", &Timeline::default(), &[("b".into(), start(1, 4))]),
            Outcome::NoArchive
        );
    }

    fn backup(day: u32, pinned: bool) -> policy::Backup {
        policy::Backup {
            key: format!("db1/202611{day:02}T010000Z.tar.gz"),
            taken: format!("2026-11-{day:02}T01:00:00Z").parse().unwrap(),
            size: 1,
            complete: true,
            verified: false,
            pinned,
        }
    }

    #[test]
    fn the_chains_needed_run_from_the_anchor_and_from_every_pin() {
        let backups: Vec<_> = (1..=30).map(|d| backup(d, d == 3)).collect();
        let now: Moment = "2026-11-30T12:00:00Z".parse().unwrap();
        let keep = Policy {
            last: Some(20),
            ..Policy::default()
        };
        let plan = policy::plan(&keep, backups, now);
        let days = |list: Vec<&Backup>| -> Vec<u32> {
            list.iter()
                .map(|b| b.key[10..12].parse().unwrap())
                .collect()
        };
        // All kept ones: the last 20 (11..30) and the pin (3).
        let all = days(needed(&plan, None, now));
        assert_eq!(all.len(), 21);
        assert_eq!(all.last(), Some(&3));
        // A 7-day window: from the newest backup at least 7 days old (the
        // 23rd, 01:00, is 7 days 11 hours before now), and the pin.
        let week = days(needed(&plan, Some(Duration::days(7)), now));
        assert_eq!(week, [30, 29, 28, 27, 26, 25, 24, 23, 3]);
        // A window longer than the backups: from the oldest kept.
        assert_eq!(days(needed(&plan, Some(Duration::days(90)), now)).len(), 21);
    }
}
