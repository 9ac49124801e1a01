//! The stream path: read parts from the input, upload up to `jobs` of them
//! at once, and commit the object only when the whole input is in and the
//! producer said it succeeded.
//!
//! Memory: one part being read plus `jobs` parts in flight, each held once
//! (the HTTP body shares the buffer), so about part size × (jobs + 1).

use crate::plan::{PartPlan, MAX_PARTS};
use crate::state::{OpenUpload, StateFile};
use http::HeaderMap;
use mysnap::error::IoContext;
use mysnap::progress::Progress;
use mysnap::s3::Client;
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

/// The upload id of a multipart upload that is open, for whoever has to
/// abort it when the upload fails or is interrupted.
pub type OpenSlot = Arc<Mutex<Option<String>>>;

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
/// returns Ok. On failure the multipart upload is left in `open` for the
/// caller to abort.
pub async fn upload<F>(
    client: Arc<Client>,
    target: &Target,
    mut source: Source,
    producer_ok: F,
    open: &OpenSlot,
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
        client
            .put_object(&target.key, first.into(), &headers)
            .await?;
        return Ok(Stored {
            bytes: source.bytes,
            sha256: hex::encode(source.hasher.finalize()),
            parts: 1,
        });
    }

    let upload_id = client
        .create_multipart(&target.key, &target.content_type, &target.headers)
        .await?;
    *open.lock().unwrap() = Some(upload_id.clone());
    log::debug!("multipart upload {upload_id} started");
    if let Some(state) = &target.state {
        state.record(&OpenUpload {
            endpoint: target.endpoint.clone(),
            region: target.region.clone(),
            bucket: client.url("").bucket,
            key: target.key.clone(),
            upload_id: upload_id.clone(),
        })?;
    }

    let slots = Arc::new(Semaphore::new(target.jobs));
    let mut in_flight: JoinSet<Result<s3::serde_types::Part>> = JoinSet::new();
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
                "input is larger than S3's limit of 10,000 parts (5 TiB); nothing was stored",
            ));
        }
        buf = next;
    }
    while let Some(done) = in_flight.join_next().await {
        parts.push(joined(done)?);
    }
    producer_ok.await?;

    parts.sort_by_key(|p| p.part_number);
    client
        .complete_multipart(&target.key, &upload_id, &parts, &target.commit_headers)
        .await?;
    open.lock().unwrap().take();
    if let Some(state) = &target.state {
        state.clear();
    }
    Ok(Stored {
        bytes: source.bytes,
        sha256: hex::encode(source.hasher.finalize()),
        parts: parts.len() as u32,
    })
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
