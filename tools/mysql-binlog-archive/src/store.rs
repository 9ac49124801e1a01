//! The archive in S3: reading where it ends, and storing segments and gap
//! markers, each once, under a key that is never overwritten.

use crate::locate::ArchiveEnd;
use crate::segment::Closed;
use http::{HeaderMap, HeaderName, HeaderValue};
use mysnap::binlog::layout::{self, SegmentMeta, Timeline};
use mysnap::s3::{etag, Client};
use mysnap::{Error, Exit, Result};

pub struct Store {
    pub client: Client,
    /// "" or ending in '/'.
    pub prefix: String,
}

impl Store {
    /// The archive as listed, and where the newest epoch of `identity` ends.
    pub async fn read_end(&self, identity: &str) -> Result<(Timeline, Option<ArchiveEnd>)> {
        let listing = self
            .client
            .list(&format!("{}{}", self.prefix, layout::DIR))
            .await?;
        let timeline = Timeline::from_listing(
            &self.prefix,
            listing.iter().map(|o| (o.key.as_str(), o.size)),
        );
        for key in timeline.foreign.iter().take(3) {
            log::warn!(
                "{}: not a segment of the archive, ignored",
                self.client.url(key)
            );
        }
        for key in timeline.broken.iter().take(3) {
            log::warn!(
                "{}: overlaps or leaves a hole in its file; the archive goes on after the \
                 segments before it",
                self.client.url(key)
            );
        }
        let Some(epoch) = timeline.newest_of(identity) else {
            return Ok((timeline, None));
        };
        let (Some((file, position)), Some(last)) = (epoch.end(), epoch.last_segment()) else {
            return Ok((timeline.clone(), None));
        };
        let head = self.client.head(&last.key).await?.ok_or_else(|| {
            Error::new(
                Exit::TempFail,
                format!("{}: listed, but gone when read", self.client.url(&last.key)),
            )
        })?;
        let meta = SegmentMeta::from_map(&head.metadata).ok_or_else(|| {
            Error::new(
                Exit::DataErr,
                format!(
                    "{}: the archive's last segment has no readable x-amz-meta-mysnap-* \
                     metadata, so where it goes on cannot be told",
                    self.client.url(&last.key)
                ),
            )
        })?;
        let end = ArchiveEnd {
            epoch: epoch.name.clone(),
            file: file.to_string(),
            position,
            file_created: meta.file_created,
            next_file: meta.next_file,
        };
        Ok((timeline, Some(end)))
    }

    /// Stores a segment under its final key, only if the key is free. A
    /// key that already holds these very bytes is an earlier try whose
    /// answer was lost; one that holds others is another writer's.
    pub async fn put_segment(&self, epoch: &str, segment: &Closed) -> Result<String> {
        let key = layout::segment_key(&self.prefix, epoch, &segment.file, segment.start);
        let mut headers = create_only("application/octet-stream");
        for (name, value) in segment.meta.to_pairs() {
            let name = HeaderName::from_bytes(format!("x-amz-meta-{name}").as_bytes())
                .map_err(|e| Error::new(Exit::Software, format!("metadata name {name}: {e}")))?;
            let value = HeaderValue::from_str(&value)
                .map_err(|e| Error::new(Exit::Software, format!("metadata value {value}: {e}")))?;
            headers.insert(name, value);
        }
        let body = bytes::Bytes::from(segment.bytes.clone());
        self.put_once(&key, body, &headers, &segment.bytes).await?;
        Ok(key)
    }

    /// Marks that events are missing before `file`, from `after` on.
    pub async fn put_gap(&self, epoch: &str, after: &(String, u64), file: &str) -> Result<String> {
        let key = layout::gap_key(&self.prefix, epoch, file);
        let body = serde_json::json!({
            "missing_from": {"file": after.0, "position": after.1},
            "resumed_at": {"file": file, "position": mysnap::binlog::event::FIRST_EVENT},
            "detected": chrono::Utc::now().to_rfc3339(),
        })
        .to_string()
        .into_bytes();
        let headers = create_only("application/json");
        match self
            .client
            .put_object(&key, bytes::Bytes::from(body), &headers)
            .await
        {
            // A marker already there says the same thing.
            Err(e) if e.code() == Exit::CantCreate as i32 => Ok(key),
            other => other.map(|_| key),
        }
    }

    async fn put_once(
        &self,
        key: &str,
        body: bytes::Bytes,
        headers: &HeaderMap,
        bytes: &[u8],
    ) -> Result<()> {
        match self.client.put_object(key, body, headers).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Exit::CantCreate as i32 => {
                let url = self.client.url(key);
                let head = self.client.head(key).await?;
                match head.and_then(|h| h.etag) {
                    Some(tag) if etag::same(&tag, &etag::of_body(bytes)) => {
                        log::info!("{url} was stored already, by a try whose answer was lost");
                        Ok(())
                    }
                    _ => Err(Error::new(
                        Exit::CantCreate,
                        format!(
                            "{url} already holds other bytes: is another mysql-binlog-archive \
                             writing to this prefix?"
                        ),
                    )),
                }
            }
            Err(e) => Err(e),
        }
    }
}

/// Headers of a PUT that stores a new object, never over another.
fn create_only(content_type: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        HeaderName::from_static("if-none-match"),
        HeaderValue::from_static("*"),
    );
    headers.insert(
        HeaderName::from_static("content-type"),
        HeaderValue::from_static(content_type),
    );
    headers
}
