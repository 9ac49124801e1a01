//! The stream path: read parts from the input, upload up to `jobs` of them
//! at once, and commit the object only when the whole input is in and the
//! producer said it succeeded.
//!
//! Memory: one part being read plus `jobs` parts in flight, each held once
//! (the HTTP body shares the buffer), so about part size × (jobs + 1).

use crate::plan::{PartPlan, MAX_PARTS};
use crate::state::{StateFile, UploadRecord};
use chrono::{DateTime, Utc};
use http::HeaderMap;
use mysnap::error::IoContext;
use mysnap::progress::Progress;
use mysnap::s3::{etag, Client, UploadedPart};
use mysnap::{Error, Exit, Result};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::io::Read;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// What the caller decided about the object to store.
pub struct Target {
    pub key: String,
    pub plan: PartPlan,
    pub jobs: usize,
    pub content_type: String,
    /// Storage class and encryption headers, for the object and its sidecar.
    pub headers: HeaderMap,
    /// `If-None-Match: *` on the commit, unless overwriting is allowed.
    pub commit_headers: HeaderMap,
    pub state: Option<StateFile>,
    pub endpoint: Option<String>,
    pub region: String,
}

impl Target {
    /// Whether the stored object's ETag is the MD5 that `etag` computes:
    /// true unless the object is encrypted with a KMS key.
    pub fn etag_is_md5(&self) -> bool {
        self.headers
            .get("x-amz-server-side-encryption")
            .is_none_or(|v| v != "aws:kms")
    }

    fn record(
        &self,
        client: &Client,
        upload_id: Option<&str>,
        since: DateTime<Utc>,
    ) -> UploadRecord {
        UploadRecord {
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            bucket: client.url("").bucket,
            key: self.key.clone(),
            upload_id: upload_id.map(str::to_string),
            since: Some(since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        }
    }
}

/// How far the upload got, for whoever has to clean up or tell the truth
/// after a failure or a signal: each step is recorded before the request
/// that could leave something on the server is sent.
#[derive(Debug, Clone, Default)]
pub enum Phase {
    /// Nothing sent that could leave anything behind.
    #[default]
    Reading,
    /// CreateMultipartUpload was sent; no upload id came back yet.
    Starting,
    /// The multipart upload is open.
    Open { upload_id: String },
    /// The commit (CompleteMultipartUpload, or the single PUT) was sent:
    /// from here the object may exist, whatever the answer said.
    Committing {
        upload_id: Option<String>,
        expected: Expected,
    },
    /// The server answered that the object is stored.
    Stored,
}

pub type PhaseSlot = Arc<Mutex<Phase>>;

fn enter(slot: &PhaseSlot, phase: Phase) {
    *slot.lock().unwrap() = phase;
}

/// The object this upload commits, as the server will describe it.
#[derive(Debug, Clone)]
pub struct Expected {
    pub etag: String,
    pub stored: Stored,
}

#[derive(Debug, Clone)]
pub struct Stored {
    pub bytes: u64,
    pub sha256: String,
    pub parts: u32,
}

/// The input, with the running SHA-256 and byte count of all read so far.
pub struct Source {
    input: Box<dyn Read + Send>,
    hasher: Sha256,
    bytes: u64,
}

impl Source {
    pub fn new(input: Box<dyn Read + Send>) -> Self {
        Source {
            input,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Fills a buffer of `size` bytes, or fewer at the end of the input.
    fn read_part(&mut self, size: u64) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; size as usize];
        let mut filled = 0;
        while filled < buf.len() {
            match self.input.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        buf.truncate(filled);
        self.hasher.update(&buf);
        self.bytes += filled as u64;
        Ok(buf)
    }
}

/// Reads the next part off the async runtime's threads.
async fn next_part(mut source: Source, size: u64) -> Result<(Source, Vec<u8>)> {
    tokio::task::spawn_blocking(move || {
        let buf = source.read_part(size).ctx("cannot read input")?;
        Ok((source, buf))
    })
    .await
    .map_err(|e| Error::new(Exit::Software, format!("reader task: {e}")))?
}

/// Uploads everything `source` yields to `target.key`. `producer_ok` is
/// awaited at the end of the input: the object is committed only if it
/// returns Ok. On failure `phase` tells the caller how far it got.
pub async fn upload<F>(
    client: Arc<Client>,
    target: &Target,
    mut source: Source,
    producer_ok: F,
    phase: &PhaseSlot,
    progress: &mut Progress,
) -> Result<Stored>
where
    F: Future<Output = Result<()>>,
{
    let first_size = target.plan.part_size(1);
    let first;
    (source, first) = next_part(source, first_size).await?;
    progress.update(source.bytes);

    if (first.len() as u64) < first_size {
        // The whole input fits one part: one PUT, once the producer is done.
        producer_ok.await?;
        let mut headers = target.headers.clone();
        headers.extend(target.commit_headers.clone());
        headers.insert(
            http::header::CONTENT_TYPE,
            content_type(&target.content_type)?,
        );
        let body = bytes::Bytes::from(first);
        let stored = Stored {
            bytes: source.bytes,
            sha256: hex::encode(source.hasher.finalize()),
            parts: 1,
        };
        let etag = {
            let body = body.clone();
            tokio::task::spawn_blocking(move || etag::of_body(&body))
                .await
                .map_err(|e| Error::new(Exit::Software, format!("checksum task: {e}")))?
        };
        enter(
            phase,
            Phase::Committing {
                upload_id: None,
                expected: Expected {
                    etag,
                    stored: stored.clone(),
                },
            },
        );
        client.put_object(&target.key, body, &headers).await?;
        enter(phase, Phase::Stored);
        return Ok(stored);
    }

    let since = Utc::now();
    enter(phase, Phase::Starting);
    if let Some(state) = &target.state {
        state.record(&target.record(&client, None, since))?;
    }
    let (upload_id, requests) = client
        .create_multipart(&target.key, &target.content_type, &target.headers)
        .await?;
    enter(
        phase,
        Phase::Open {
            upload_id: upload_id.clone(),
        },
    );
    log::debug!("multipart upload {upload_id} started");
    if requests > 1 {
        // An earlier request may have started an upload whose answer was lost.
        crate::cleanup::report_strays(
            &client,
            &target.key,
            crate::cleanup::abort_strays(&client, &target.key, Some(&upload_id)).await,
        );
    }
    if let Some(state) = &target.state {
        state.record(&target.record(&client, Some(&upload_id), since))?;
    }

    let slots = Arc::new(Semaphore::new(target.jobs));
    let mut in_flight: JoinSet<Result<UploadedPart>> = JoinSet::new();
    let mut parts = Vec::new();
    let mut number = 1u32;
    let mut buf = first;
    loop {
        let slot = slots
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore is never closed");
        while let Some(done) = in_flight.try_join_next() {
            parts.push(joined(done)?);
        }
        let (client, key, id) = (client.clone(), target.key.clone(), upload_id.clone());
        in_flight.spawn(async move {
            let _slot = slot;
            let len = buf.len();
            let part = client.upload_part(&key, &id, number, buf.into()).await?;
            log::debug!("part {number}: {len} bytes uploaded");
            Ok(part)
        });
        number += 1;
        let next;
        (source, next) = next_part(source, target.plan.part_size(number)).await?;
        progress.update(source.bytes);
        if next.is_empty() {
            break;
        }
        if number > MAX_PARTS {
            return Err(Error::new(
                Exit::DataErr,
                "input is larger than S3's limit of 10,000 parts (5 TiB)",
            ));
        }
        buf = next;
    }
    while let Some(done) = in_flight.join_next().await {
        parts.push(joined(done)?);
    }
    producer_ok.await?;

    parts.sort_by_key(|p| p.part.part_number);
    let md5s: Vec<[u8; 16]> = parts.iter().map(|p| p.md5).collect();
    let stored = Stored {
        bytes: source.bytes,
        sha256: hex::encode(source.hasher.finalize()),
        parts: parts.len() as u32,
    };
    enter(
        phase,
        Phase::Committing {
            upload_id: Some(upload_id.clone()),
            expected: Expected {
                etag: etag::of_parts(&md5s),
                stored: stored.clone(),
            },
        },
    );
    let parts: Vec<_> = parts.into_iter().map(|p| p.part).collect();
    client
        .complete_multipart(&target.key, &upload_id, &parts, &target.commit_headers)
        .await?;
    enter(phase, Phase::Stored);
    if let Some(state) = &target.state {
        state.clear();
    }
    Ok(stored)
}

fn joined<T>(done: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    done.map_err(|e| Error::new(Exit::Software, format!("upload task: {e}")))?
}

pub fn content_type(text: &str) -> Result<http::HeaderValue> {
    http::HeaderValue::from_str(text)
        .map_err(|_| Error::usage(format!("invalid content type '{text}'")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most 3 bytes a call, like a slow pipe.
    struct Trickle(std::io::Cursor<Vec<u8>>);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(3);
            self.0.read(&mut buf[..n])
        }
    }

    #[test]
    fn parts_are_filled_from_short_reads_and_hashed_whole() {
        let data: Vec<u8> = (0..100u8).collect();
        let mut source = Source::new(Box::new(Trickle(std::io::Cursor::new(data.clone()))));
        let a = source.read_part(40).unwrap();
        let b = source.read_part(40).unwrap();
        let c = source.read_part(40).unwrap();
        let d = source.read_part(40).unwrap();
        assert_eq!((a.len(), b.len(), c.len(), d.len()), (40, 40, 20, 0));
        assert_eq!([a, b, c].concat(), data);
        assert_eq!(source.bytes, 100);
        assert_eq!(
            hex::encode(source.hasher.finalize()),
            hex::encode(Sha256::digest(&data))
        );
    }
}
