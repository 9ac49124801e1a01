//! --list: the recoverable window of each epoch, as the listing and the
//! metadata of the first and last segment of each whole stretch say it;
//! then each base backup beside the archive, and how far the archive
//! reaches after it.

use mysnap::binlog::layout::{File, SegmentMeta, DIR};
use mysnap::binlog::target::show_time;
use mysnap::quantity::format_size;
use mysnap::s3::{backups, Client};
use mysnap::Result;

async fn meta(client: &Client, key: &str) -> Result<Option<SegmentMeta>> {
    Ok(client
        .head(key)
        .await?
        .and_then(|h| SegmentMeta::from_map(&h.metadata)))
}

/// "1 file", "2 files".
pub fn counted(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// A whole stretch of an epoch, by the times of its first and last
/// events (None: its segments carry no metadata).
struct Stretch {
    epoch: String,
    times: Option<(i64, i64)>,
}

/// One stretch as a line: its range, its times, its size.
async fn stretch_line(client: &Client, files: &[File]) -> Result<(String, Option<(i64, i64)>)> {
    let (first, last) = (&files[0], &files[files.len() - 1]);
    let (a, b) = (&first.segments[0], last.segments.last().expect("segments"));
    let times = match (meta(client, &a.key).await?, meta(client, &b.key).await?) {
        (Some(a), Some(b)) => Some((i64::from(a.first_time), i64::from(b.last_time))),
        _ => None,
    };
    let shown = match times {
        Some((a, b)) => format!("{} .. {}", show_time(a), show_time(b)),
        None => "times unknown (segments without metadata)".to_string(),
    };
    let segments: usize = files.iter().map(|f| f.segments.len()).sum();
    let bytes: u64 = files
        .iter()
        .flat_map(|f| &f.segments)
        .map(|s| s.end - s.start)
        .sum();
    let line = format!(
        "  {}:{} .. {}:{}  {shown}  ({}, {}, {})",
        first.name,
        a.start,
        last.name,
        b.end,
        counted(files.len(), "file"),
        counted(segments, "segment"),
        format_size(bytes)
    );
    Ok((line, times))
}

/// How far the archive reaches after a backup taken at `taken`: to the
/// end of the stretch whose times hold that moment. By time only: the
/// backup's own coordinates are inside it, and `--dry-run` (or
/// mysql-restore-dir --until) checks them.
fn reach(stretches: &[Stretch], taken: i64) -> String {
    let holding: Vec<&Stretch> = stretches
        .iter()
        .filter(|s| s.times.is_some_and(|(a, b)| a <= taken && taken <= b))
        .collect();
    match holding.as_slice() {
        [] => "the archive does not reach past it".to_string(),
        [one] => format!(
            "recoverable to {} (epoch {})",
            show_time(one.times.expect("held").1),
            one.epoch
        ),
        several => format!(
            "in {} epochs ({}): say which with --epoch",
            several.len(),
            several
                .iter()
                .map(|s| s.epoch.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Lists the archive under `prefix` and prints each epoch's window.
pub async fn print(client: &Client, prefix: &str) -> Result<()> {
    let timeline = crate::replay::timeline(client, prefix).await?;
    if timeline.epochs.is_empty() {
        log::info!("no binlog segments in the archive");
    }
    let mut windows = Vec::new();
    for epoch in &timeline.epochs {
        println!("epoch {}", epoch.name);
        let stretches = epoch.stretches();
        for (i, stretch) in stretches.iter().enumerate() {
            if i > 0 {
                let file = &stretch[0];
                let why = if file.gap_before {
                    "a gap: binlogs purged before they were archived"
                } else if file.segments[0].start != mysnap::binlog::event::FIRST_EVENT {
                    "a hole: the file's start is missing"
                } else {
                    "a hole: files missing"
                };
                println!("  -- {why}, before {}", file.name);
            }
            let (line, times) = stretch_line(client, stretch).await?;
            println!("{line}");
            windows.push(Stretch {
                epoch: epoch.name.clone(),
                times,
            });
            for file in stretch.iter() {
                let dir = format!("{DIR}{}/{}/", epoch.name, file.name);
                let broken = timeline.broken.iter().filter(|k| k.contains(&dir)).count();
                if broken > 0 {
                    println!(
                        "  -- a hole inside {} after {}: {broken} segments do not follow",
                        file.name,
                        file.segments.last().map_or(0, |s| s.end)
                    );
                }
            }
        }
    }
    let backups = backups::backups(prefix, client.list(prefix).await?);
    if !backups.is_empty() {
        println!("backups");
    }
    for backup in &backups {
        let Some(taken) = backups::taken(prefix, backup) else {
            continue;
        };
        println!(
            "  {}  {}  {}",
            show_time(taken.timestamp()),
            client.url(&backup.key),
            reach(&windows, taken.timestamp())
        );
    }
    if let Some(newest) = windows.iter().filter_map(|w| w.times).map(|t| t.1).max() {
        println!("newest archived event: {}", show_time(newest));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stretch(epoch: &str, first: i64, last: i64) -> Stretch {
        Stretch {
            epoch: epoch.into(),
            times: Some((first, last)),
        }
    }

    #[test]
    fn a_backup_reaches_to_the_end_of_the_stretch_that_holds_its_time() {
        let stretches = [
            stretch("e1", 100, 200),
            stretch("e1", 300, 400),
            Stretch {
                epoch: "e1".into(),
                times: None,
            },
            stretch("e2", 350, 500),
        ];
        assert!(reach(&stretches, 150).starts_with("recoverable to"));
        assert!(reach(&stretches, 150).ends_with("(epoch e1)"));
        assert!(reach(&stretches, 250).contains("does not reach"));
        assert!(reach(&stretches, 450).ends_with("(epoch e2)"));
        assert!(reach(&stretches, 360).contains("2 epochs (e1, e2)"));
    }
}
