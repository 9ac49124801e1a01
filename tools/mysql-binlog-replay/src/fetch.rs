//! Fetching the planned segments ahead, in parallel and in order, each
//! checked against its metadata (its server, size and SHA-256) before
//! anything reads it. At most `jobs` requests and about `budget` bytes
//! are in flight; a segment bigger than the budget is fetched alone.

use crate::plan::Planned;
use mysnap::binlog::layout::SegmentMeta;
use mysnap::s3::Client;
use mysnap::{Error, Exit, Result};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// A segment as stored, verified.
pub struct Fetched {
    pub planned: Planned,
    pub bytes: Vec<u8>,
}

pub struct Fetcher {
    client: Arc<Client>,
    /// The epoch's server, which every segment must say it is from.
    identity: String,
    queue: VecDeque<Planned>,
    running: VecDeque<(u64, JoinHandle<Result<Fetched>>)>,
    jobs: usize,
    budget: u64,
    in_flight: u64,
}

impl Fetcher {
    pub fn new(
        client: Arc<Client>,
        identity: &str,
        segments: Vec<Planned>,
        jobs: usize,
        budget: u64,
    ) -> Fetcher {
        Fetcher {
            client,
            identity: identity.to_string(),
            queue: segments.into(),
            running: VecDeque::new(),
            jobs,
            budget,
            in_flight: 0,
        }
    }

    fn fill(&mut self) {
        while let Some(next) = self.queue.front() {
            let size = next.end - next.start;
            let room = self.running.len() < self.jobs && self.in_flight + size <= self.budget;
            if !room && !self.running.is_empty() {
                break;
            }
            let planned = self.queue.pop_front().expect("a front");
            let client = self.client.clone();
            let identity = self.identity.clone();
            let task = tokio::spawn(async move { fetch(&client, &identity, planned).await });
            self.in_flight += size;
            self.running.push_back((size, task));
        }
    }

    /// The next segment in order; None once all were handed out. Safe to
    /// cancel: a segment whose wait was cancelled is the next one again.
    pub async fn next(&mut self) -> Option<Result<Fetched>> {
        self.fill();
        let (_, task) = self.running.front_mut()?;
        let result = task
            .await
            .unwrap_or_else(|e| Err(Error::new(Exit::Software, format!("fetch task: {e}"))));
        let (size, _) = self.running.pop_front().expect("the front");
        self.in_flight -= size;
        self.fill();
        Some(result)
    }
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        for (_, task) in &self.running {
            task.abort();
        }
    }
}

fn bad(message: String) -> Error {
    Error::new(Exit::DataErr, message)
}

async fn fetch(client: &Client, identity: &str, planned: Planned) -> Result<Fetched> {
    let url = client.url(&planned.key);
    let size = planned.end - planned.start;
    let head = client.head(&planned.key).await?.ok_or_else(|| {
        Error::new(
            Exit::TempFail,
            format!("{url}: listed, but gone when read; run again"),
        )
    })?;
    let meta = SegmentMeta::from_map(&head.metadata).ok_or_else(|| {
        bad(format!(
            "{url}: no readable x-amz-meta-mysnap-* metadata: not a segment that \
             mysql-binlog-archive stored"
        ))
    })?;
    if meta.server != identity {
        return Err(bad(format!(
            "{url}: says it is from server {}, but its epoch is {identity}'s",
            meta.server
        )));
    }
    if head.size != size {
        return Err(bad(format!(
            "{url}: {} bytes, but the listing said {size}",
            head.size
        )));
    }
    let bytes = client
        .get_range(&planned.key, 0, size, head.etag.as_deref())
        .await?;
    let (bytes, digest) = tokio::task::spawn_blocking(move || {
        let digest = hex::encode(Sha256::digest(&bytes));
        (bytes, digest)
    })
    .await
    .map_err(|e| Error::new(Exit::Software, format!("checksum task: {e}")))?;
    if !digest.eq_ignore_ascii_case(&meta.sha256) {
        return Err(bad(format!(
            "{url}: its SHA-256 is {digest}, but its metadata says {}: the segment was \
             altered or damaged; nothing was applied",
            meta.sha256
        )));
    }
    Ok(Fetched { planned, bytes })
}
