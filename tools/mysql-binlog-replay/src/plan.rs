//! Which segments a replay reads, decided from the listing alone: the
//! epoch that holds FROM's file, and the files from there on as far as
//! the archive is whole (a gap marker, a missing file or a hole ends it).

use mysnap::binlog::event::FIRST_EVENT;
use mysnap::binlog::layout::{Epoch, File, Timeline, DIR};
use mysnap::binlog::target::Position;
use mysnap::{Error, Exit, Result};

/// One segment to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub file: String,
    pub key: String,
    pub start: u64,
    pub end: u64,
}

/// Why the whole part of the archive ends where it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    /// The epoch ends there; `newer` is the epoch after it, if any.
    Epoch { newer: Option<String> },
    /// A gap marker: the server purged the binlogs before `file`.
    Gap { file: String },
    /// Something is missing before `file` (a file, or its start).
    Missing { file: String },
    /// A segment of `file` does not follow the one before it.
    Hole { file: String },
}

#[derive(Debug)]
pub struct Plan<'a> {
    pub epoch: &'a Epoch,
    pub from: Position,
    pub files: Vec<&'a File>,
    pub limit: Limit,
}

fn refuse(message: String) -> Error {
    Error::new(Exit::DataErr, message)
}

impl Plan<'_> {
    pub fn segments(&self) -> Vec<Planned> {
        self.files
            .iter()
            .flat_map(|f| {
                f.segments.iter().map(|s| Planned {
                    file: f.name.clone(),
                    key: s.key.clone(),
                    start: s.start,
                    end: s.end,
                })
            })
            .collect()
    }

    /// Where the whole part ends.
    pub fn end(&self) -> Position {
        let last = self.files[self.files.len() - 1];
        Position {
            file: last.name.clone(),
            position: last.segments.last().map_or(FIRST_EVENT, |s| s.end),
        }
    }

    /// Why it ends there, for a refusal.
    pub fn why_it_ends(&self) -> String {
        match &self.limit {
            Limit::Epoch { newer: None } => "the archive ends there".to_string(),
            Limit::Epoch { newer: Some(next) } => format!(
                "epoch {} ends there, and {next} after it is another lineage: a replay \
                 does not cross epochs",
                self.epoch.name
            ),
            Limit::Gap { file } => format!(
                "then a gap: the server purged binlogs before {file} before they were \
                 archived"
            ),
            Limit::Missing { file } => {
                format!("then a hole: the archive lacks what comes before {file}")
            }
            Limit::Hole { file } => format!("then a hole inside {file}"),
        }
    }
}

/// The plan for a replay from `from`: in `epoch`, or else the newest
/// epoch that holds from's file.
pub fn choose<'a>(
    timeline: &'a Timeline,
    from: &Position,
    epoch: Option<&str>,
) -> Result<Plan<'a>> {
    let holds = |e: &&Epoch| {
        e.files
            .iter()
            .any(|f| f.name == from.file && !f.segments.is_empty())
    };
    let epoch = match epoch {
        Some(name) => {
            let e = timeline
                .epochs
                .iter()
                .find(|e| e.name == name)
                .ok_or_else(|| refuse(format!("the archive has no epoch {name}")))?;
            if !holds(&e) {
                return Err(refuse(format!("epoch {name} does not hold {}", from.file)));
            }
            e
        }
        None => {
            let mut holding = timeline.epochs.iter().rev().filter(holds);
            let e = holding.next().ok_or_else(|| {
                refuse(format!(
                    "the archive holds no {}: it has {}",
                    from.file,
                    overview(timeline)
                ))
            })?;
            // Two epochs with the file: a server restored from a backup
            // goes on in files of the same names, in an epoch of its own.
            // Which one the backup belongs to, only the admin knows: the
            // newer may hold the backup's file but not what followed it.
            if let Some(older) = holding.next() {
                return Err(refuse(format!(
                    "{} is in more than one epoch ({} and {}): say which one the backup \
                     belongs to with --epoch (--list shows them)",
                    from.file, e.name, older.name
                )));
            }
            e
        }
    };
    let stretches = epoch.stretches();
    let stretch = stretches
        .iter()
        .find(|s| s.iter().any(|f| f.name == from.file))
        .expect("the epoch holds the file");
    let at = stretch.iter().position(|f| f.name == from.file).unwrap();
    let first = &stretch[at];
    let archived = (first.segments[0].start, first.segments.last().unwrap().end);
    if archived.0 != FIRST_EVENT {
        return Err(refuse(format!(
            "the archive holds {} only from {} on: a replay needs the file from its start",
            first.name, archived.0
        )));
    }
    if from.position < FIRST_EVENT || from.position > archived.1 {
        return Err(refuse(format!(
            "{from} is not in the archive, which holds {} from {} to {} (epoch {})",
            first.name, archived.0, archived.1, epoch.name
        )));
    }
    let broken_in = |file: &File| {
        let dir = format!("{DIR}{}/{}/", epoch.name, file.name);
        timeline.broken.iter().any(|key| key.contains(&dir))
    };
    let mut files = Vec::new();
    let mut limit = None;
    for file in &stretch[at..] {
        files.push(file);
        if broken_in(file) {
            limit = Some(Limit::Hole {
                file: file.name.clone(),
            });
            break;
        }
    }
    let limit = limit.unwrap_or_else(|| {
        let last = &files[files.len() - 1].name;
        let after = epoch.files.iter().skip_while(|f| &f.name != last).nth(1);
        match after {
            Some(next) if next.gap_before => Limit::Gap {
                file: next.name.clone(),
            },
            Some(next) => Limit::Missing {
                file: next.name.clone(),
            },
            None => Limit::Epoch {
                newer: timeline
                    .epochs
                    .iter()
                    .skip_while(|e| e.name != epoch.name)
                    .nth(1)
                    .map(|e| e.name.clone()),
            },
        }
    });
    Ok(Plan {
        epoch,
        from: from.clone(),
        files,
        limit,
    })
}

/// "epoch E: FIRST to LAST; ..." for a refusal.
fn overview(timeline: &Timeline) -> String {
    if timeline.epochs.is_empty() {
        return "no binlog segments".to_string();
    }
    timeline
        .epochs
        .iter()
        .map(|e| {
            let named: Vec<&str> = e
                .files
                .iter()
                .filter(|f| !f.segments.is_empty())
                .map(|f| f.name.as_str())
                .collect();
            match (named.first(), named.last()) {
                (Some(a), Some(b)) => format!("epoch {}: {a} to {b}", e.name),
                _ => format!("epoch {}: only gap markers", e.name),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysnap::binlog::layout::{gap_key, segment_key};

    const E1: &str = "20261201T000000Z-mariadb-d0-s1";
    const E2: &str = "20261202T000000Z-mariadb-d0-s1";

    fn timeline(keys: &[(String, u64)]) -> Timeline {
        Timeline::from_listing("p/", keys.iter().map(|(k, s)| (k.as_str(), *s)))
    }

    fn from(file: &str, position: u64) -> Position {
        Position {
            file: file.into(),
            position,
        }
    }

    #[test]
    fn the_epoch_named_or_the_only_one_holding_the_file_and_the_whole_run_after_it() {
        let t = timeline(&[
            (segment_key("p/", E1, "b.000001", 4), 100),
            (segment_key("p/", E1, "b.000002", 4), 100),
            (segment_key("p/", E2, "b.000001", 4), 50),
            (segment_key("p/", E2, "b.000001", 54), 50),
            (segment_key("p/", E2, "b.000002", 4), 10),
            (gap_key("p/", E2, "b.000004"), 0),
            (segment_key("p/", E2, "b.000004", 4), 10),
        ]);
        // Both epochs hold b.000001: which one is the admin's to say.
        let e = choose(&t, &from("b.000001", 54), None).unwrap_err();
        assert_eq!(e.code(), 65);
        assert!(
            e.message().contains("more than one epoch"),
            "{}",
            e.message()
        );
        let plan = choose(&t, &from("b.000001", 54), Some(E2)).unwrap();
        assert_eq!(plan.epoch.name, E2);
        assert_eq!(plan.segments().len(), 3);
        assert_eq!(plan.end(), from("b.000002", 14));
        assert_eq!(
            plan.limit,
            Limit::Gap {
                file: "b.000004".into()
            }
        );
        let plan = choose(&t, &from("b.000002", 4), Some(E1)).unwrap();
        assert_eq!(
            plan.limit,
            Limit::Epoch {
                newer: Some(E2.into())
            }
        );
        assert!(plan.why_it_ends().contains("does not cross epochs"));
        let plan = choose(&t, &from("b.000004", 4), None).unwrap();
        assert_eq!(plan.limit, Limit::Epoch { newer: None });
    }

    #[test]
    fn a_gap_a_hole_or_a_from_outside_the_archive() {
        let t = timeline(&[
            (segment_key("p/", E1, "b.000001", 4), 100),
            (gap_key("p/", E1, "b.000002"), 0),
            (segment_key("p/", E1, "b.000002", 4), 100),
            (segment_key("p/", E1, "b.000002", 104), 10),
            (segment_key("p/", E1, "b.000002", 200), 10),
            (segment_key("p/", E1, "b.000003", 4), 10),
        ]);
        let plan = choose(&t, &from("b.000001", 4), None).unwrap();
        assert_eq!(
            plan.limit,
            Limit::Gap {
                file: "b.000002".into()
            }
        );
        let plan = choose(&t, &from("b.000002", 4), None).unwrap();
        assert_eq!(
            plan.limit,
            Limit::Hole {
                file: "b.000002".into()
            }
        );
        assert_eq!(plan.end(), from("b.000002", 114));
        for bad in [from("b.000001", 105), from("b.000009", 4)] {
            assert_eq!(choose(&t, &bad, None).unwrap_err().code(), 65, "{bad}");
        }
        assert_eq!(
            choose(&t, &from("b.000001", 4), Some("20990101T000000Z-x"))
                .unwrap_err()
                .code(),
            65
        );
    }
}
