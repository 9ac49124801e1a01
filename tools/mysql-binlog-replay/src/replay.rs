//! One replay. Its first half changes nothing: list the archive, plan,
//! fetch and verify the segments, rebuild the binlog files in a private
//! directory, and find the exact stop. Only once all of it is done, and
//! the archive is known to cover the range, is anything applied; a dry
//! run prints the plan instead.

use crate::apply::{self, Tools};
use crate::fetch::Fetcher;
use crate::list;
use crate::plan::{self, Plan};
use crate::scan::{Applied, Scanner};
use crate::server;
use mysnap::binlog::event::{FIRST_EVENT, MAGIC};
use mysnap::binlog::layout::{Timeline, DIR};
use mysnap::binlog::target::{show_time, Position, Target};
use mysnap::error::IoContext;
use mysnap::mysql::ConnectOptions;
use mysnap::quantity::{format_rate, format_size};
use mysnap::s3::Client;
use mysnap::signals::Signals;
use mysnap::{Error, Exit, Result};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Job {
    pub from: Position,
    pub target: Target,
    pub epoch: Option<String>,
    pub jobs: usize,
    /// Bytes of segments in flight at most (one bigger segment goes alone).
    pub budget: u64,
    pub tmpdir: Option<PathBuf>,
}

/// One rebuilt file and the part of it that is applied.
pub struct Rebuilt {
    pub path: PathBuf,
    pub name: String,
    pub segments: usize,
    pub from: u64,
    pub to: u64,
}

/// Everything ready to apply.
pub struct Ready {
    /// Removed when dropped.
    pub dir: tempfile::TempDir,
    pub epoch: String,
    pub files: Vec<Rebuilt>,
    pub stop: Position,
    pub last: Option<Applied>,
    /// The first transaction's GTID, to check against the server.
    pub first_gtid: Option<String>,
    pub transactions: u64,
}

impl Ready {
    /// The bytes of binlog that are applied.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.to - f.from).sum()
    }

    /// The files the binlog tool reads: those with any event to apply.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.files
            .iter()
            .filter(|f| f.to > FIRST_EVENT)
            .map(|f| f.path.clone())
            .collect()
    }
}

/// Replays `job` from the archive under `prefix`. Given `apply` (the
/// tools, and how to reach the server), applies it; without (a dry run),
/// prints the plan.
pub fn run(
    job: &Job,
    client: Arc<Client>,
    prefix: &str,
    apply: Option<(Tools, ConnectOptions)>,
    signals: &Signals,
) -> Result<()> {
    // The server is asked first: a refused login fails before any download.
    let apply = match apply {
        Some((tools, options)) => Some((tools, server::preflight(&options)?)),
        None => None,
    };
    let ready = crate::runtime()?.block_on(prepare(job, client, prefix, signals))?;
    let Some((tools, gtid_position)) = apply else {
        print_plan(job, &ready);
        return Ok(());
    };
    if ready.transactions == 0 {
        println!(
            "nothing to apply: the first transaction after {} is at or past {}",
            job.from, job.target
        );
        return Ok(());
    }
    server::check_not_applied(&gtid_position, ready.first_gtid.as_deref())?;
    signals.check()?;
    let started = Instant::now();
    apply::run(&tools, job.from.position, &ready.paths(), signals)?;
    let elapsed = started.elapsed();
    log::info!(
        "applied {} transactions ({} of binlog, {} to {}) in {:.1}s: {}, {:.0} transactions/s",
        ready.transactions,
        format_size(ready.bytes()),
        job.from,
        ready.stop,
        elapsed.as_secs_f64(),
        format_rate(ready.bytes(), elapsed),
        ready.transactions as f64 / elapsed.as_secs_f64().max(1e-6)
    );
    if let Some(last) = &ready.last {
        println!("last applied: {last}");
    }
    Ok(())
}

fn print_plan(job: &Job, ready: &Ready) {
    println!("epoch {}", ready.epoch);
    for f in &ready.files {
        println!(
            "{}  {}..{}  ({})",
            f.name,
            f.from,
            f.to,
            list::counted(f.segments, "segment")
        );
    }
    println!(
        "would apply {} transactions, {} of binlog, {} to {} (target {})",
        ready.transactions,
        format_size(ready.bytes()),
        job.from,
        ready.stop,
        job.target
    );
    if let Some(last) = &ready.last {
        println!("last to apply: {last}");
    }
    log::debug!("rebuilt in {}", ready.dir.path().display());
}

pub async fn timeline(client: &Client, prefix: &str) -> Result<Timeline> {
    let listing = client.list(&format!("{prefix}{DIR}")).await?;
    let timeline = Timeline::from_listing(prefix, listing.iter().map(|o| (o.key.as_str(), o.size)));
    for key in timeline.foreign.iter().take(3) {
        log::warn!("{}: not a segment of the archive, ignored", client.url(key));
    }
    Ok(timeline)
}

fn private_dir(tmpdir: Option<&Path>) -> Result<tempfile::TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("mysql-binlog-replay.");
    let dir = match tmpdir {
        Some(d) => builder.tempdir_in(d),
        None => builder.tempdir(),
    }
    .ctx("cannot create a private directory for the binlog files")?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .ctx(format!("chmod {}", dir.path().display()))?;
    Ok(dir)
}

/// The window a refusal names: where the whole archive after FROM ends,
/// and its newest event.
fn window(plan: &Plan, newest: u32) -> String {
    let newest = if newest > 0 {
        format!(", newest event {}", show_time(i64::from(newest)))
    } else {
        String::new()
    };
    format!(
        "the archive covers {} to {} in epoch {}{newest}; {}",
        plan.from,
        plan.end(),
        plan.epoch.name,
        plan.why_it_ends()
    )
}

pub async fn prepare(
    job: &Job,
    client: Arc<Client>,
    prefix: &str,
    signals: &Signals,
) -> Result<Ready> {
    let timeline = timeline(&client, prefix).await?;
    let plan = plan::choose(&timeline, &job.from, job.epoch.as_deref())?;
    let segments = plan.segments();
    log::info!(
        "epoch {}: {} segments of {} files from {}:4 (replay from {}), to {}",
        plan.epoch.name,
        segments.len(),
        plan.files.len(),
        job.from.file,
        job.from,
        job.target
    );
    let dir = private_dir(job.tmpdir.as_deref())?;
    let mut fetcher = Fetcher::new(
        client,
        plan.epoch.identity(),
        segments,
        job.jobs,
        job.budget,
    );
    let mut scanner = Scanner::new(job.from.clone(), job.target.clone());
    let mut files: Vec<Rebuilt> = Vec::new();
    let mut out: Option<std::fs::File> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut stop = None;
    let checked = |e: Error, scanner: &Scanner| {
        if e.code() == Exit::DataErr as i32 {
            Error::new(
                Exit::DataErr,
                format!(
                    "{}; the archive is whole from {} to {}",
                    e.message(),
                    job.from,
                    scanner.end()
                ),
            )
        } else {
            e
        }
    };
    while stop.is_none() {
        let got = loop {
            tokio::select! {
                got = fetcher.next() => break got,
                _ = tick.tick() => signals.check()?,
            }
        };
        let Some(got) = got else { break };
        let got = got?;
        let name = &got.planned.file;
        if files.last().is_none_or(|f| &f.name != name) {
            if let Some(s) = scanner.begin_file(name).map_err(|e| checked(e, &scanner))? {
                stop = Some(s);
                break;
            }
            let path = dir.path().join(name);
            let mut file =
                std::fs::File::create(&path).ctx(format!("create {}", path.display()))?;
            file.write_all(&MAGIC)
                .ctx(format!("write {}", path.display()))?;
            out = Some(file);
            let from = if *name == job.from.file {
                job.from.position
            } else {
                FIRST_EVENT
            };
            files.push(Rebuilt {
                path,
                name: name.clone(),
                segments: 0,
                from,
                to: FIRST_EVENT,
            });
        }
        let rebuilt = files.last_mut().expect("a file");
        out.as_mut()
            .expect("an open file")
            .write_all(&got.bytes)
            .ctx(format!("write {}", rebuilt.path.display()))?;
        rebuilt.segments += 1;
        rebuilt.to = got.planned.end;
        stop = scanner
            .feed(got.planned.start, &got.bytes)
            .map_err(|e| checked(e, &scanner))?;
    }
    drop(fetcher);
    let stop = match stop {
        Some(s) => s,
        None => scanner
            .finish()
            .map_err(|e| checked(e, &scanner))?
            .ok_or_else(|| {
                let inside = scanner
                    .unfinished()
                    .map(|g| format!(" (it ends inside transaction {g})"))
                    .unwrap_or_default();
                Error::new(
                    Exit::DataErr,
                    format!(
                        "cannot replay to {}: {}{inside}",
                        job.target,
                        window(&plan, scanner.newest)
                    ),
                )
            })?,
    };
    if let (Some(file), Some(rebuilt)) = (out.as_mut(), files.last_mut()) {
        if rebuilt.name == stop.file {
            file.set_len(stop.position)
                .and_then(|()| file.sync_all())
                .ctx(format!("truncate {}", rebuilt.path.display()))?;
            rebuilt.to = stop.position;
        }
    }
    Ok(Ready {
        dir,
        epoch: plan.epoch.name.clone(),
        files,
        stop,
        last: scanner.last.clone(),
        first_gtid: scanner.first_gtid.clone(),
        transactions: scanner.transactions,
    })
}
