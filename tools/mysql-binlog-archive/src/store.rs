//! The archive in S3: reading where it ends, and storing segments and gap
//! markers, each once, under a key that is never overwritten.

use crate::locate::ArchiveEnd;
use crate::segment::Closed;
use http::{HeaderMap, HeaderName, HeaderValue};
use mysnap::binlog::layout::{self, SegmentMeta, Timeline};
use mysnap::s3::Client;
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
        let files = epoch
            .files
            .iter()
            .filter_map(|f| Some((f.name.clone(), f.segments.last()?.end)))
            .collect();
        let end = ArchiveEnd {
            epoch: epoch.name.clone(),
            file: file.to_string(),
            position,
            file_created: meta.file_created,
            next_file: meta.next_file,
            gtid_position: meta.gtid_position,
            files,
        };
        Ok((timeline, Some(end)))
    }

    /// Stores a segment under its final key, only if the key is free. A
    /// key that already holds these very bytes is an earlier try whose
    /// answer was lost; one that holds others is either another writer's
    /// (the same events, cut elsewhere: one is the start of the other) or
    /// another history of the server at a place the archive already has
    /// ([`Put::Diverged`]).
    pub async fn put_segment(&self, epoch: &str, segment: &Closed) -> Result<Put> {
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
        let url = self.client.url(&key);
        match self.client.put_object(&key, body, &headers).await {
            Ok(_) => return Ok(Put::Stored(key)),
            Err(e) if e.code() == Exit::CantCreate as i32 => {}
            Err(e) => return Err(e),
        }
        let stored = self.client.get_small(&key).await?.unwrap_or_default();
        if stored == segment.bytes {
            log::info!("{url} was stored already, by a try whose answer was lost");
            return Ok(Put::Stored(key));
        }
        match differs_at(&stored, &segment.bytes) {
            Some(at) => Ok(Put::Diverged(format!(
                "{url} holds other events than the server sent for {}: they differ from \
                 {}:{} on, so the server's binary log is not the archive's",
                segment.file,
                segment.file,
                segment.start + at as u64
            ))),
            None => Err(Error::new(
                Exit::CantCreate,
                format!(
                    "{url} already holds {} bytes of the same events ({} sent): is another \
                     mysql-binlog-archive writing to this prefix?",
                    stored.len(),
                    segment.bytes.len()
                ),
            )),
        }
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
}

/// What storing a segment came to.
#[derive(Debug)]
pub enum Put {
    /// Stored (now, or by an earlier try) under this key.
    Stored(String),
    /// The key holds other events at a place both have: why.
    Diverged(String),
}

/// Where two stretches of events first differ, within the shorter one;
/// None when one is the start of the other (or an empty object, which no
/// writer of this archive stores).
fn differs_at(stored: &[u8], sent: &[u8]) -> Option<usize> {
    if stored.is_empty() {
        return None;
    }
    stored.iter().zip(sent).position(|(a, b)| a != b)
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

#[cfg(test)]
mod tests {
    use super::differs_at;

    #[test]
    fn another_writers_cut_is_not_another_history() {
        assert_eq!(differs_at(b"abcdef", b"abc"), None);
        assert_eq!(differs_at(b"abc", b"abcdef"), None);
        assert_eq!(differs_at(b"", b"abc"), None);
        assert_eq!(differs_at(b"abXdef", b"abcdef"), Some(2));
    }
}
