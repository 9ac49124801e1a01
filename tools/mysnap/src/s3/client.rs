//! The object operations `s3-put` and `s3-get` need, each retried with
//! exponential backoff and jitter when the failure is a passing one.

use super::failure::Attempt;
use super::sign::{sign, EMPTY_SHA256, UNSIGNED_PAYLOAD};
use super::{credentials, S3Url, Settings};
use crate::quantity::MIB;
use crate::{Error, Exit, Result};
use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue};
use rand::Rng;
use s3::serde_types::Part;
use s3::{Bucket, Region};
use std::future::Future;
use std::time::Duration;

const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(20);

/// A multipart upload the server lists as open.
#[derive(Debug, Clone)]
pub struct OpenUpload {
    pub key: String,
    pub upload_id: String,
    /// RFC 3339, by the server's clock.
    pub initiated: String,
}

/// A part as uploaded: its number, the ETag the server gave it, and the
/// MD5 of its bytes as computed here (what the object's ETag is made of).
#[derive(Debug, Clone)]
pub struct UploadedPart {
    pub part: Part,
    pub md5: [u8; 16],
}

/// What the tools need to know about a stored object.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    /// RFC 3339 from listings, RFC 1123 from HEAD; as the server said it.
    pub last_modified: String,
    /// User metadata (`x-amz-meta-NAME`, by NAME in lower case): from HEAD
    /// only, empty in listings.
    pub metadata: std::collections::BTreeMap<String, String>,
}

pub struct Client {
    bucket: Box<Bucket>,
    http: reqwest::Client,
    retries: u32,
    timeout: Duration,
}

/// Builds a header map from static names and values already checked.
pub fn headers(pairs: &[(&'static str, String)]) -> Result<HeaderMap> {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let value = HeaderValue::from_str(value)
            .map_err(|_| Error::usage(format!("invalid value for {name}: '{value}'")))?;
        map.insert(HeaderName::from_static(name), value);
    }
    Ok(map)
}

impl Client {
    pub fn new(settings: &Settings, bucket: &str) -> Result<Client> {
        // Retries are ours, with backoff and jitter, for every request.
        s3::set_retries(0);
        let creds = credentials(settings.profile.as_deref())?;
        let region = match &settings.endpoint {
            Some(endpoint) => Region::Custom {
                region: settings.region.clone(),
                endpoint: endpoint.trim_end_matches('/').to_string(),
            },
            None => settings.region.parse().map_err(|e| {
                Error::new(Exit::Config, format!("region '{}': {e}", settings.region))
            })?,
        };
        let mut bucket = Bucket::new(bucket, region, creds)
            .map_err(|e| Error::new(Exit::Config, format!("S3 bucket '{bucket}': {e}")))?;
        if settings.endpoint.is_some() {
            bucket = bucket.with_path_style();
        }
        bucket.set_request_timeout(Some(settings.timeout));
        let http = bucket.http_client();
        Ok(Client {
            bucket,
            http,
            retries: settings.retries,
            timeout: settings.timeout,
        })
    }

    pub fn url(&self, key: &str) -> S3Url {
        S3Url {
            bucket: self.bucket.name(),
            key: key.to_string(),
        }
    }

    /// Time allowed for a request that carries `bytes`.
    fn timeout_for(&self, bytes: u64) -> Duration {
        self.timeout + Duration::from_secs(bytes / MIB)
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries run out.
    pub async fn retry<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Attempt>>,
    {
        let mut failures = 0;
        loop {
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(a) if a.retryable && failures < self.retries => {
                    let delay = backoff(failures);
                    failures += 1;
                    log::warn!(
                        "{what}: {}; retrying in {:.1}s ({failures} of {} retries)",
                        a.error,
                        delay.as_secs_f64(),
                        self.retries
                    );
                    tokio::time::sleep(delay).await;
                }
                Err(a) if a.retryable && failures > 0 => {
                    return Err(a
                        .error
                        .context(format!("{what}: gave up after {} attempts", failures + 1)))
                }
                Err(a) => return Err(a.error.context(what)),
            }
        }
    }

    /// The object's size and ETag, or None when there is no such key.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let what = format!("HEAD {}", self.url(key));
        let found = self
            .retry(&what, || async {
                match self.bucket.head_object(key).await {
                    Ok((head, _)) => Ok(Some(head)),
                    Err(e) => match Attempt::from(e) {
                        a if a.error.code() == Exit::NoInput as i32 => Ok(None),
                        a => Err(a),
                    },
                }
            })
            .await?;
        Ok(found.map(|head| ObjectInfo {
            key: key.to_string(),
            size: head.content_length.unwrap_or(0).max(0) as u64,
            etag: head.e_tag,
            last_modified: head.last_modified.unwrap_or_default(),
            metadata: head
                .metadata
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        }))
    }

    /// A small object read whole (a sidecar), or None when there is none.
    pub async fn get_small(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let what = format!("GET {}", self.url(key));
        self.retry(&what, || async {
            match self.bucket.get_object(key).await {
                Ok(data) => Ok(Some(data.to_vec())),
                Err(e) => match Attempt::from(e) {
                    a if a.error.code() == Exit::NoInput as i32 => Ok(None),
                    a => Err(a),
                },
            }
        })
        .await
    }

    /// One signed PUT of `body` with `extra` headers and Content-MD5;
    /// returns the ETag and the MD5. `query` selects a part of a multipart upload. The
    /// server checks the bytes against Content-MD5; the signature leaves
    /// the payload out, which spares a second SHA-256 pass over every byte.
    async fn put_signed(
        &self,
        what: &str,
        key: &str,
        body: bytes::Bytes,
        extra: &HeaderMap,
        query: &[(&str, &str)],
    ) -> Result<(String, [u8; 16])> {
        let md5: [u8; 16] = {
            let body = body.clone();
            tokio::task::spawn_blocking(move || {
                use md5::Digest;
                md5::Md5::digest(&body).into()
            })
        }
        .await
        .map_err(|e| Error::new(Exit::Software, format!("checksum task: {e}")))?;
        let mut extra = extra.clone();
        extra.insert(
            HeaderName::from_static("content-md5"),
            HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(md5))
                .expect("base64 is a valid header value"),
        );
        let timeout = self.timeout_for(body.len() as u64);
        let etag = self
            .retry(what, || async {
                let (url, headers) =
                    sign(&self.bucket, "PUT", key, query, &extra, UNSIGNED_PAYLOAD).await?;
                let response = self
                    .http
                    .put(url)
                    .headers(headers)
                    .body(body.clone())
                    .timeout(timeout)
                    .send()
                    .await
                    .map_err(Attempt::from_reqwest)?;
                let status = response.status().as_u16();
                if !(200..300).contains(&status) {
                    let text = response.text().await.unwrap_or_default();
                    return Err(Attempt::http(status, &text));
                }
                let etag = response
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                Ok(etag)
            })
            .await?;
        Ok((etag, md5))
    }

    /// Stores a whole object in one PUT.
    pub async fn put_object(
        &self,
        key: &str,
        body: bytes::Bytes,
        extra: &HeaderMap,
    ) -> Result<String> {
        let what = format!("PUT {}", self.url(key));
        Ok(self.put_signed(&what, key, body, extra, &[]).await?.0)
    }

    /// Starts a multipart upload; returns its upload id and how many
    /// requests it took. More than one means an earlier request may have
    /// started an upload whose answer was lost: a stray to look for.
    pub async fn create_multipart(
        &self,
        key: &str,
        content_type: &str,
        extra: &HeaderMap,
    ) -> Result<(String, u32)> {
        let bucket = self.with_headers(extra)?;
        let what = format!("starting multipart upload of {}", self.url(key));
        let requests = std::cell::Cell::new(0);
        let started = self
            .retry(&what, || async {
                requests.set(requests.get() + 1);
                Ok(bucket.initiate_multipart_upload(key, content_type).await?)
            })
            .await?;
        Ok((started.upload_id, requests.get()))
    }

    /// The multipart uploads open for exactly `key`, or None when the
    /// server does not implement ListMultipartUploads (HTTP 501).
    pub async fn open_uploads(&self, key: &str) -> Result<Option<Vec<OpenUpload>>> {
        let what = format!("listing the open uploads of {}", self.url(key));
        let pages = self
            .retry(&what, || async {
                match self.bucket.list_multiparts_uploads(Some(key), None).await {
                    Ok(pages) => Ok(Some(pages)),
                    Err(s3::error::S3Error::HttpFailWithBody(501, _)) => Ok(None),
                    Err(e) => Err(Attempt::from(e)),
                }
            })
            .await?;
        Ok(pages.map(|pages| {
            pages
                .into_iter()
                .flat_map(|page| page.uploads)
                .filter(|u| u.key == key)
                .map(|u| OpenUpload {
                    key: u.key,
                    upload_id: u.id,
                    initiated: u.initiated,
                })
                .collect()
        }))
    }

    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        body: bytes::Bytes,
    ) -> Result<UploadedPart> {
        let what = format!("uploading part {number}");
        let number_text = number.to_string();
        let query = [
            ("partNumber", number_text.as_str()),
            ("uploadId", upload_id),
        ];
        let (etag, md5) = self
            .put_signed(&what, key, body, &HeaderMap::new(), &query)
            .await?;
        Ok(UploadedPart {
            part: Part {
                part_number: number,
                etag,
            },
            md5,
        })
    }

    /// Completes the upload; `extra` may carry `If-None-Match: *`.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[Part],
        extra: &HeaderMap,
    ) -> Result<()> {
        let bucket = self.with_headers(extra)?;
        let what = format!("completing {}", self.url(key));
        self.retry(&what, || async {
            bucket
                .complete_multipart_upload(key, upload_id, parts.to_vec())
                .await?;
            Ok(())
        })
        .await
    }

    /// Aborts the upload, dropping its parts. An upload already gone is not
    /// an error: aborting is what cleanup does, and cleanup may run twice.
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        let what = format!("aborting upload of {}", self.url(key));
        self.retry(&what, || async {
            match self.bucket.abort_upload(key, upload_id).await {
                Ok(()) => Ok(()),
                Err(e) => match Attempt::from(e) {
                    a if a.error.code() == Exit::NoInput as i32 => Ok(()),
                    a => Err(a),
                },
            }
        })
        .await
    }

    /// Bytes `start..start+len` of the object. A connection cut mid-body is
    /// resumed where it stopped; `etag` makes sure the object is the same one.
    pub async fn get_range(
        &self,
        key: &str,
        start: u64,
        len: u64,
        etag: Option<&str>,
    ) -> Result<Vec<u8>> {
        let what = format!("GET {} bytes {start}-{}", self.url(key), start + len - 1);
        let mut buf = Vec::with_capacity(len as usize);
        let timeout = self.timeout_for(len);
        let mut failures = 0;
        loop {
            let have = buf.len() as u64;
            match self
                .get_into(key, start + have, len - have, etag, timeout, &mut buf)
                .await
            {
                Ok(()) => return Ok(buf),
                Err(a) if a.retryable && (buf.len() as u64 > have || failures < self.retries) => {
                    if buf.len() as u64 > have {
                        // Progress was made: the network works, start counting anew.
                        failures = 0;
                    }
                    let delay = backoff(failures);
                    failures += 1;
                    log::warn!(
                        "{what}: {} after {} bytes; resuming in {:.1}s",
                        a.error,
                        buf.len(),
                        delay.as_secs_f64()
                    );
                    tokio::time::sleep(delay).await;
                }
                Err(a) => return Err(a.error.context(what)),
            }
        }
    }

    async fn get_into(
        &self,
        key: &str,
        start: u64,
        len: u64,
        etag: Option<&str>,
        timeout: Duration,
        buf: &mut Vec<u8>,
    ) -> Result<(), Attempt> {
        let mut extra = headers(&[("range", format!("bytes={start}-{}", start + len - 1))])
            .map_err(Attempt::fatal)?;
        if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(e).ok()) {
            extra.insert(http::header::IF_MATCH, etag);
        }
        let (url, signed) = sign(&self.bucket, "GET", key, &[], &extra, EMPTY_SHA256).await?;
        let request = self.http.get(url).headers(signed).timeout(timeout);
        let mut response = request.send().await.map_err(Attempt::from_reqwest)?;
        let status = response.status().as_u16();
        if status != 206 {
            let text = response.text().await.unwrap_or_default();
            if status == 412 {
                return Err(Attempt::fatal(Error::new(
                    Exit::TempFail,
                    "the object changed while it was being read; run again",
                )));
            }
            return Err(Attempt::http(status, &text));
        }
        let end = buf.len() as u64 + len;
        while let Some(chunk) = response.chunk().await.map_err(Attempt::from_reqwest)? {
            if buf.len() as u64 + chunk.len() as u64 > end {
                return Err(Attempt::fatal(Error::new(
                    Exit::DataErr,
                    "server sent more bytes than asked for",
                )));
            }
            buf.extend_from_slice(&chunk);
        }
        if (buf.len() as u64) < end {
            return Err(Attempt::transport("response ended early"));
        }
        Ok(())
    }

    /// Every object under `prefix`, in the order S3 lists them.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let what = format!("listing {}", self.url(prefix));
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let (page, _) = self
                .retry(&what, || async {
                    Ok(self
                        .bucket
                        .list_page(prefix.to_string(), None, token.clone(), None, None)
                        .await?)
                })
                .await?;
            objects.extend(page.contents.into_iter().map(|o| ObjectInfo {
                key: o.key,
                size: o.size,
                etag: o.e_tag,
                last_modified: o.last_modified,
                metadata: Default::default(),
            }));
            match page.next_continuation_token {
                Some(next) if page.is_truncated => token = Some(next),
                _ => return Ok(objects),
            }
        }
    }

    fn with_headers(&self, extra: &HeaderMap) -> Result<Box<Bucket>> {
        if extra.is_empty() {
            return Ok(self.bucket.clone());
        }
        self.bucket
            .with_extra_headers(extra.clone())
            .map(Box::new)
            .map_err(|e| Error::new(Exit::Software, format!("S3 headers: {e}")))
    }
}

/// Exponential backoff with full jitter: half to all of 200ms × 2^n, at most 20s.
fn backoff(failures: u32) -> Duration {
    let ceiling = BACKOFF_FIRST
        .saturating_mul(1 << failures.min(16))
        .min(BACKOFF_MAX);
    ceiling.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for n in 0..30 {
            let d = backoff(n);
            let ceiling = BACKOFF_FIRST
                .saturating_mul(1 << n.min(16))
                .min(BACKOFF_MAX);
            assert!(d <= ceiling && d >= ceiling / 2, "{n}: {d:?}");
        }
        assert!(backoff(40) <= BACKOFF_MAX);
    }
}
