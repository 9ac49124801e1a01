//! Ranged GETs, up to `jobs` at once, written to the output in order.
//!
//! Memory: `jobs` ranges in flight plus the one being written, each one
//! part size: about part size × (jobs + 1).

use mysnap::error::IoContext;
use mysnap::progress::Progress;
use mysnap::s3::{Client, ObjectInfo};
use mysnap::{Error, Exit, Result};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;

/// The output, with the SHA-256 of everything written to it.
pub struct Sink {
    output: Box<dyn Write + Send>,
    hasher: Sha256,
    pub bytes: u64,
}

impl Sink {
    pub fn new(output: Box<dyn Write + Send>) -> Self {
        Sink {
            output,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    pub fn sha256(self) -> String {
        hex::encode(self.hasher.finalize())
    }

    async fn write(mut self, chunk: Vec<u8>) -> Result<Sink> {
        tokio::task::spawn_blocking(move || {
            self.hasher.update(&chunk);
            self.output.write_all(&chunk).ctx("cannot write output")?;
            self.bytes += chunk.len() as u64;
            Ok(self)
        })
        .await
        .map_err(|e| Error::new(Exit::Software, format!("writer task: {e}")))?
    }

    async fn flush(mut self) -> Result<Sink> {
        tokio::task::spawn_blocking(move || {
            self.output.flush().ctx("cannot write output")?;
            Ok(self)
        })
        .await
        .map_err(|e| Error::new(Exit::Software, format!("writer task: {e}")))?
    }
}

/// Streams `object` into `sink`, `part` bytes a request.
pub async fn download(
    client: Arc<Client>,
    object: &ObjectInfo,
    part: u64,
    jobs: usize,
    mut sink: Sink,
    progress: &mut Progress,
) -> Result<Sink> {
    let ranges: Vec<(u64, u64)> = (0..object.size)
        .step_by(part as usize)
        .map(|start| (start, part.min(object.size - start)))
        .collect();
    let mut pending = ranges.into_iter();
    let mut in_flight = VecDeque::new();
    let start_next = |in_flight: &mut VecDeque<_>, pending: &mut std::vec::IntoIter<(u64, u64)>| {
        while in_flight.len() < jobs {
            let Some((start, len)) = pending.next() else {
                break;
            };
            let (client, key, etag) = (client.clone(), object.key.clone(), object.etag.clone());
            in_flight.push_back(tokio::spawn(async move {
                client.get_range(&key, start, len, etag.as_deref()).await
            }));
        }
    };
    start_next(&mut in_flight, &mut pending);
    while let Some(next) = in_flight.pop_front() {
        let chunk = match next.await {
            Ok(chunk) => chunk?,
            Err(e) => return Err(Error::new(Exit::Software, format!("download task: {e}"))),
        };
        // Keep `jobs` ranges coming while this one is written.
        start_next(&mut in_flight, &mut pending);
        sink = sink.write(chunk).await?;
        progress.update(sink.bytes);
    }
    sink.flush().await
}
