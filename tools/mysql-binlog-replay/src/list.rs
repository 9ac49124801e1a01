//! --list: the recoverable window of each epoch, as the listing and the
//! metadata of the first and last segment of each whole stretch say it.

use mysnap::binlog::layout::{File, SegmentMeta, DIR};
use mysnap::binlog::target::show_time;
use mysnap::quantity::format_size;
use mysnap::s3::Client;
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

/// One stretch as a line: its range, its times, its size.
async fn stretch_line(client: &Client, files: &[File]) -> Result<String> {
    let (first, last) = (&files[0], &files[files.len() - 1]);
    let (a, b) = (&first.segments[0], last.segments.last().expect("segments"));
    let times = match (meta(client, &a.key).await?, meta(client, &b.key).await?) {
        (Some(a), Some(b)) => format!(
            "{} .. {}",
            show_time(i64::from(a.first_time)),
            show_time(i64::from(b.last_time))
        ),
        _ => "times unknown (segments without metadata)".to_string(),
    };
    let segments: usize = files.iter().map(|f| f.segments.len()).sum();
    let bytes: u64 = files
        .iter()
        .flat_map(|f| &f.segments)
        .map(|s| s.end - s.start)
        .sum();
    Ok(format!(
        "  {}:{} .. {}:{}  {times}  ({}, {}, {})",
        first.name,
        a.start,
        last.name,
        b.end,
        counted(files.len(), "file"),
        counted(segments, "segment"),
        format_size(bytes)
    ))
}

/// Lists the archive under `prefix` and prints each epoch's window.
pub async fn print(client: &Client, prefix: &str) -> Result<()> {
    let timeline = crate::replay::timeline(client, prefix).await?;
    if timeline.epochs.is_empty() {
        log::info!("no binlog segments in the archive");
    }
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
            println!("{}", stretch_line(client, stretch).await?);
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
    Ok(())
}
