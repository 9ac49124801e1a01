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
use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(20);

/// The most keys one DeleteObjects request may name (S3's limit).
const DELETE_BATCH: usize = 1000;

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
    /// The Object Lock on this version: from HEAD only (and only where
    /// the caller may read retention), None in listings.
    pub lock: Option<Lock>,
}

/// S3 Object Lock on one object version, as HEAD reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// GOVERNANCE or COMPLIANCE, as the server said it.
    pub mode: Option<String>,
    /// When the retention ends; None without one (or one that is no time).
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// A legal hold, which holds until it is taken off.
    pub legal_hold: bool,
}

impl Lock {
    /// Whether the lock still keeps the version from being deleted. A
    /// mode whose end is no time may hold: it is taken to.
    pub fn holds_at(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.legal_hold || self.until.map_or(self.mode.is_some(), |until| until > now)
    }
}

/// What the bucket keeps of what is deleted, by its configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Protection {
    /// Versioning is on (or suspended with versions kept): a delete
    /// without a version leaves the data stored as a noncurrent version.
    pub versioned: bool,
    /// Object Lock is enabled, or the caller may not see whether it is:
    /// any object may be locked.
    pub object_lock: bool,
    /// The bucket's default retention: every new object is locked this
    /// long after it is stored, unless it says otherwise.
    pub default_retention: Option<chrono::Duration>,
}

/// What a delete of many keys did.
#[derive(Debug, Default)]
pub struct Deleted {
    /// The keys the server did not refuse. Quiet DeleteObjects names only
    /// failures, so a key that was already gone counts as deleted.
    pub deleted: Vec<String>,
    /// The keys the server refused, with its code and message.
    pub failed: Vec<(String, String)>,
    /// HTTP requests made, retries included.
    pub requests: u32,
}

pub struct Client {
    bucket: Box<Bucket>,
    http: reqwest::Client,
    retries: u32,
    timeout: Duration,
    /// The server answered DeleteObjects as a request it does not take.
    no_delete_objects: AtomicBool,
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
            no_delete_objects: AtomicBool::new(false),
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
            lock: lock_of(
                head.object_lock_mode,
                head.object_lock_retain_until_date,
                head.object_lock_legal_hold_status,
            ),
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
                let response = self
                    .send_signed(
                        reqwest::Method::PUT,
                        (key, query),
                        &extra,
                        UNSIGNED_PAYLOAD,
                        body.clone(),
                        timeout,
                    )
                    .await?;
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

    /// One signed request to `target` (a key and its query) that carries
    /// `body`, whose SHA-256 is `payload` (or UNSIGNED-PAYLOAD); the
    /// response whatever its status.
    async fn send_signed(
        &self,
        method: reqwest::Method,
        target: (&str, &[(&str, &str)]),
        extra: &HeaderMap,
        payload: &str,
        body: bytes::Bytes,
        timeout: Duration,
    ) -> Result<reqwest::Response, Attempt> {
        let (key, query) = target;
        let (url, headers) =
            sign(&self.bucket, method.as_str(), key, query, extra, payload).await?;
        self.http
            .request(method, url)
            .headers(headers)
            .body(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(Attempt::from_reqwest)
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
        Ok(self
            .uploads_under(key)
            .await?
            .map(|uploads| uploads.into_iter().filter(|u| u.key == key).collect()))
    }

    /// The multipart uploads open for keys that begin with `prefix`, or
    /// None when the server does not implement ListMultipartUploads.
    pub async fn uploads_under(&self, prefix: &str) -> Result<Option<Vec<OpenUpload>>> {
        let what = format!("listing the open uploads under {}", self.url(prefix));
        let pages = self
            .retry(&what, || async {
                match self
                    .bucket
                    .list_multiparts_uploads(Some(prefix), None)
                    .await
                {
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
                .filter(|u| u.key.starts_with(prefix))
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

    /// Deletes `keys` in order, up to 1000 in each DeleteObjects request;
    /// a request that fails on the way is retried whole. A key the server
    /// refuses goes to `failed`, not retried. A server that does not take
    /// DeleteObjects gets one DELETE per key, from that batch on. An error
    /// leaves the batches before it deleted.
    pub async fn delete_objects(&self, keys: &[String]) -> Result<Deleted> {
        let requests = Cell::new(0);
        let mut done = Deleted::default();
        for batch in delete_batches(keys) {
            if !self.no_delete_objects.load(Ordering::Relaxed) {
                if let Some(refused) = self.delete_batch(batch, &requests).await? {
                    let refused_keys: std::collections::HashSet<&str> =
                        refused.iter().map(|(key, _)| key.as_str()).collect();
                    done.deleted.extend(
                        batch
                            .iter()
                            .filter(|k| !refused_keys.contains(k.as_str()))
                            .cloned(),
                    );
                    done.failed.extend(refused);
                    continue;
                }
                if !self.no_delete_objects.swap(true, Ordering::Relaxed) {
                    log::info!(
                        "the server does not take DeleteObjects: deleting one key at a time"
                    );
                }
            }
            for key in batch {
                match self.delete_one(key, &requests).await? {
                    None => done.deleted.push(key.clone()),
                    Some((why, _)) => done.failed.push((key.clone(), why)),
                }
            }
        }
        done.requests = requests.get();
        Ok(done)
    }

    /// One Quiet DeleteObjects request for `keys`, retried whole: the keys
    /// the server refused, with its code and message, or None when the
    /// server does not take DeleteObjects at all.
    async fn delete_batch(
        &self,
        keys: &[String],
        requests: &Cell<u32>,
    ) -> Result<Option<Vec<(String, String)>>> {
        let body = bytes::Bytes::from(delete_body(keys));
        let md5 = {
            use md5::Digest;
            md5::Md5::digest(&body)
        };
        // The body is small: sign it, rather than send it unsigned.
        let sha256 = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&body))
        };
        let extra = headers(&[
            (
                "content-md5",
                base64::engine::general_purpose::STANDARD.encode(md5),
            ),
            ("content-type", "application/xml".to_string()),
        ])?;
        let what = format!("deleting {} keys in {}", keys.len(), self.url(""));
        let timeout = self.timeout_for(body.len() as u64);
        self.retry(&what, || async {
            requests.set(requests.get() + 1);
            let response = self
                .send_signed(
                    reqwest::Method::POST,
                    ("", &[("delete", "")]),
                    &extra,
                    &sha256,
                    body.clone(),
                    timeout,
                )
                .await?;
            let status = response.status().as_u16();
            let text = response.text().await.map_err(Attempt::from_reqwest)?;
            if !(200..300).contains(&status) {
                if no_delete_objects(status, &text) {
                    return Ok(None);
                }
                return Err(Attempt::http(status, &text));
            }
            match parse_answer(&text) {
                Some((root, errors)) if root == "DeleteResult" => Ok(Some(
                    errors
                        .into_iter()
                        .map(|e| {
                            let said = e.said();
                            (e.key, said)
                        })
                        .collect(),
                )),
                _ => Err(Attempt::fatal(Error::new(
                    Exit::Unavailable,
                    format!(
                        "the answer to DeleteObjects is not a DeleteResult: '{}'",
                        text.chars().take(200).collect::<String>()
                    ),
                ))),
            }
        })
        .await
    }

    /// Deletes one object. A key already gone is not an error: deleting is
    /// what cleanup does, and cleanup may run twice.
    pub async fn delete_object(&self, key: &str) -> Result<()> {
        match self.delete_one(key, &Cell::new(0)).await? {
            None => Ok(()),
            Some((_, error)) => Err(error.context(format!("DELETE {}", self.url(key)))),
        }
    }

    /// One DELETE of `key`, retried: None when the key is gone (or never
    /// was), or the server's code and message when it refused this key
    /// (not the credentials or the bucket), with the error that makes.
    async fn delete_one(&self, key: &str, requests: &Cell<u32>) -> Result<Option<(String, Error)>> {
        if !addressable(key) {
            let why = "no request URL names this key ('.' or '..' in its path, or a leading '/')";
            return Ok(Some((
                why.to_string(),
                Error::new(
                    Exit::DataErr,
                    format!("cannot delete {}: {why}", self.url(key)),
                ),
            )));
        }
        let what = format!("DELETE {}", self.url(key));
        self.retry(&what, || async {
            requests.set(requests.get() + 1);
            match self.bucket.delete_object(key).await {
                Ok(_) => Ok(None),
                Err(s3::error::S3Error::HttpFailWithBody(status, body)) => {
                    let said = error_document(&body);
                    if status == 404 && said.code != "NoSuchBucket" {
                        return Ok(None);
                    }
                    let a = Attempt::http(status, &body);
                    if !a.retryable && refuses_the_key(status, &said.code) {
                        Ok(Some((said.said(), a.error)))
                    } else {
                        Err(a)
                    }
                }
                Err(e) => Err(Attempt::from(e)),
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
                lock: None,
            }));
            match page.next_continuation_token {
                Some(next) if page.is_truncated => token = Some(next),
                _ => return Ok(objects),
            }
        }
    }

    /// What the bucket keeps of what is deleted: its versioning and its
    /// Object Lock configuration (two GETs). A server that implements
    /// neither (s3s-fs) keeps nothing; one that will not let the caller
    /// read the lock configuration may lock anything.
    pub async fn protection(&self) -> Result<Protection> {
        let mut protection = Protection::default();
        if let Some((status, body)) = self.bucket_config("versioning").await? {
            let texts = xml_texts(&body);
            protection.versioned = status == 200
                && texts.iter().any(|(path, text)| {
                    path == "VersioningConfiguration/Status"
                        && (text == "Enabled" || text == "Suspended")
                });
        }
        match self.bucket_config("object-lock").await? {
            Some((200, body)) => {
                let texts = xml_texts(&body);
                let text = |name: &str| {
                    texts
                        .iter()
                        .find(|(path, _)| path == &format!("ObjectLockConfiguration/{name}"))
                        .map(|(_, text)| text.as_str())
                };
                protection.object_lock = text("ObjectLockEnabled") == Some("Enabled");
                let days = |name: &str, per: i64| {
                    text(&format!("Rule/DefaultRetention/{name}"))
                        .and_then(|n| n.parse::<i64>().ok())
                        .map(|n| chrono::Duration::days(n.saturating_mul(per).min(365_000)))
                };
                protection.default_retention = days("Days", 1).or_else(|| days("Years", 365));
            }
            Some((403, _)) => {
                log::warn!(
                    "{}: the bucket's Object Lock configuration may not be read; \
                     every object is looked at before it is deleted",
                    self.url("")
                );
                protection.object_lock = true;
            }
            _ => {}
        }
        if protection.object_lock {
            protection.versioned = true;
        }
        Ok(protection)
    }

    /// GET ?`which` of the bucket: its status and body, or None where the
    /// server does not implement it or the bucket has none (404, 501).
    async fn bucket_config(&self, which: &str) -> Result<Option<(u16, String)>> {
        let what = format!("GET {}?{which}", self.url(""));
        self.retry(&what, || async {
            let response = self
                .send_signed(
                    reqwest::Method::GET,
                    ("", &[(which, "")]),
                    &HeaderMap::new(),
                    EMPTY_SHA256,
                    bytes::Bytes::new(),
                    self.timeout,
                )
                .await?;
            let status = response.status().as_u16();
            let text = response.text().await.map_err(Attempt::from_reqwest)?;
            match status {
                200 | 403 => Ok(Some((status, text))),
                // No such configuration, or no such request: nothing kept.
                400 | 404 | 405 | 501 if error_document(&text).code != "NoSuchBucket" => {
                    log::debug!("{what}: {status} {}", error_document(&text).said());
                    Ok(None)
                }
                _ => Err(Attempt::http(status, &text)),
            }
        })
        .await
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

/// The lock HEAD reports, from its three headers; None without any.
fn lock_of(
    mode: Option<String>,
    until: Option<String>,
    legal_hold: Option<String>,
) -> Option<Lock> {
    let legal_hold = legal_hold.is_some_and(|s| s.eq_ignore_ascii_case("ON"));
    if mode.is_none() && until.is_none() && !legal_hold {
        return None;
    }
    Some(Lock {
        mode,
        until: until
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&chrono::Utc)),
        legal_hold,
    })
}

/// Every text in an XML document, with the path of local names that
/// leads to it (`Root/Child/Leaf`); entities resolved. A document that
/// does not parse gives what came before the fault.
fn xml_texts(body: &str) -> Vec<(String, String)> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(body);
    let mut path: Vec<String> = Vec::new();
    let mut texts = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                path.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned())
            }
            Ok(Event::End(_)) => {
                path.pop();
            }
            Ok(Event::Text(t)) => {
                if let Ok(text) = t.xml10_content() {
                    let text = text.trim();
                    if !text.is_empty() && !path.is_empty() {
                        texts.push((path.join("/"), text.to_string()));
                    }
                }
            }
            Ok(Event::Eof) | Err(_) => return texts,
            Ok(_) => {}
        }
    }
}

/// The batches of DeleteObjects requests for `keys`, in order.
fn delete_batches(keys: &[String]) -> std::slice::Chunks<'_, String> {
    keys.chunks(DELETE_BATCH)
}

/// The body of a Quiet DeleteObjects request for `keys`.
fn delete_body(keys: &[String]) -> String {
    let mut xml = String::from("<Delete><Quiet>true</Quiet>");
    for key in keys {
        xml.push_str("<Object><Key>");
        xml.push_str(&xml_escape(key));
        xml.push_str("</Key></Object>");
    }
    xml.push_str("</Delete>");
    xml
}

/// `text` as XML character data.
fn xml_escape(text: &str) -> String {
    let mut xml = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => xml.push_str("&amp;"),
            '<' => xml.push_str("&lt;"),
            '>' => xml.push_str("&gt;"),
            '"' => xml.push_str("&quot;"),
            '\'' => xml.push_str("&apos;"),
            // A literal CR would reach the server as LF (XML's line ends).
            '\r' => xml.push_str("&#13;"),
            c => xml.push(c),
        }
    }
    xml
}

/// An `<Error>` of an S3 answer: one key's in a DeleteResult, or the
/// whole error document (no key).
#[derive(Debug, Default, PartialEq)]
struct ErrorEntry {
    key: String,
    code: String,
    message: String,
}

impl ErrorEntry {
    /// The code and message, as `failed` gives them.
    fn said(&self) -> String {
        match (self.code.as_str(), self.message.as_str()) {
            ("", "") => "no reason given".to_string(),
            (code, "") => code.to_string(),
            ("", message) => message.to_string(),
            (code, message) => format!("{code}: {message}"),
        }
    }
}

/// The name of the root element of an S3 answer and its `<Error>`s: the
/// root's children, or the root itself for an error document. None when
/// the answer is not whole, well-formed XML.
fn parse_answer(body: &str) -> Option<(String, Vec<ErrorEntry>)> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(body);
    let mut root = None;
    let mut errors = Vec::new();
    // The open elements by local name; the <Error> being read and its
    // depth; the field of it being read and its text so far.
    let mut open: Vec<Vec<u8>> = Vec::new();
    let mut entry: Option<(ErrorEntry, usize)> = None;
    let mut field: Option<Vec<u8>> = None;
    let mut text = String::new();
    loop {
        let (name, closes) = match reader.read_event().ok()? {
            Event::Start(e) => (Some(e.local_name().as_ref().to_vec()), false),
            Event::Empty(e) => (Some(e.local_name().as_ref().to_vec()), true),
            Event::End(_) => (None, true),
            Event::Text(t) if field.is_some() => {
                text.push_str(&t.xml10_content().ok()?);
                continue;
            }
            Event::CData(t) if field.is_some() => {
                text.push_str(&t.decode().ok()?);
                continue;
            }
            Event::GeneralRef(r) if field.is_some() => {
                match r.resolve_char_ref().ok()? {
                    Some(c) => text.push(c),
                    None => {
                        text.push_str(quick_xml::escape::resolve_xml_entity(&r.decode().ok()?)?)
                    }
                }
                continue;
            }
            Event::Eof if open.is_empty() => return Some((String::from_utf8(root?).ok()?, errors)),
            Event::Eof => return None,
            _ => continue,
        };
        if let Some(name) = name {
            if root.is_none() {
                root = Some(name.clone());
            }
            open.push(name);
            let name = open.last().expect("just pushed");
            match &entry {
                None if name == b"Error" && open.len() <= 2 => {
                    entry = Some((ErrorEntry::default(), open.len()))
                }
                Some((_, depth)) if open.len() == depth + 1 && field.is_none() => {
                    field = Some(name.clone());
                    text.clear();
                }
                _ => {}
            }
        }
        if closes {
            let name = open.pop()?;
            match &mut entry {
                Some((e, depth)) if open.len() == *depth && field.as_ref() == Some(&name) => {
                    let value = std::mem::take(&mut text);
                    match name.as_slice() {
                        // Keys may begin or end with spaces: kept as they are.
                        b"Key" => e.key = value,
                        b"Code" => e.code = value.trim().to_string(),
                        b"Message" => e.message = value.trim().to_string(),
                        _ => {}
                    }
                    field = None;
                }
                Some((_, depth)) if open.len() + 1 == *depth => {
                    errors.extend(entry.take().map(|(e, _)| e));
                }
                _ => {}
            }
        }
    }
}

/// The code and message of an S3 error document; empty when there are none.
fn error_document(body: &str) -> ErrorEntry {
    match parse_answer(body) {
        Some((root, mut errors)) if root == "Error" && !errors.is_empty() => errors.remove(0),
        _ => ErrorEntry::default(),
    }
}

/// Whether the server's refusal of DeleteObjects says it does not take the
/// request at all, rather than that this one failed. A Content-MD5 it
/// calls invalid counts: ours is always well formed.
fn no_delete_objects(status: u16, body: &str) -> bool {
    let said = error_document(body);
    let message = said.message.to_ascii_lowercase();
    let md5_unsupported = message.contains("content-md5")
        && ["not supported", "unsupported", "not implemented"]
            .iter()
            .any(|s| message.contains(s));
    match status {
        501 | 405 => true,
        400 => {
            matches!(
                said.code.as_str(),
                "NotImplemented" | "MethodNotAllowed" | "NotSupported" | "InvalidDigest"
            ) || md5_unsupported
        }
        _ => false,
    }
}

/// Whether a request URL names `key` and no other: the URL parser drops
/// "." and ".." segments of a path, and rust-s3 a leading '/'. (A
/// DeleteObjects body names any key.)
fn addressable(key: &str) -> bool {
    !key.starts_with('/') && !key.split('/').any(|s| s == "." || s == "..")
}

/// Whether an error answer to a request on one key is about that key (a
/// policy denies it, the key is not valid there), not about every request
/// (the credentials, the bucket, the kind of request).
fn refuses_the_key(status: u16, code: &str) -> bool {
    matches!(
        (status, code),
        (403, "AccessDenied" | "InvalidObjectState")
            | (400, "InvalidArgument" | "KeyTooLongError")
            | (409, _)
    )
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

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("k/{i:05}")).collect()
    }

    #[test]
    fn bucket_configurations_and_locks_are_read() {
        let config = r#"<?xml version="1.0" encoding="UTF-8"?>
<ObjectLockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <ObjectLockEnabled>Enabled</ObjectLockEnabled>
  <Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>7</Days></DefaultRetention></Rule>
</ObjectLockConfiguration>"#;
        let texts = xml_texts(config);
        assert!(texts.contains(&(
            "ObjectLockConfiguration/ObjectLockEnabled".into(),
            "Enabled".into()
        )));
        assert!(texts.contains(&(
            "ObjectLockConfiguration/Rule/DefaultRetention/Days".into(),
            "7".into()
        )));
        assert_eq!(xml_texts("<a><b>x</b"), [("a/b".into(), "x".into())]);

        let now: chrono::DateTime<chrono::Utc> = "2026-12-04T12:00:00Z".parse().unwrap();
        let lock = |mode: Option<&str>, until: Option<&str>, hold: Option<&str>| {
            lock_of(
                mode.map(Into::into),
                until.map(Into::into),
                hold.map(Into::into),
            )
        };
        assert_eq!(lock(None, None, None), None);
        assert_eq!(lock(None, None, Some("OFF")), None);
        let held = |l: Option<Lock>| l.unwrap().holds_at(now);
        assert!(held(lock(
            Some("GOVERNANCE"),
            Some("2026-12-04T12:00:01Z"),
            None
        )));
        assert!(!held(lock(
            Some("GOVERNANCE"),
            Some("2026-12-04T12:00:00Z"),
            None
        )));
        assert!(held(lock(None, Some("2026-12-01T00:00:00Z"), Some("ON"))));
        // A retention whose end is no time may hold: it is taken to.
        assert!(held(lock(Some("COMPLIANCE"), Some("soon"), None)));
    }

    #[test]
    fn delete_body_escapes_keys() {
        let keys = vec!["a&b <c> \"d\" 'e'".to_string(), "é ü/x y".to_string()];
        assert_eq!(
            delete_body(&keys),
            "<Delete><Quiet>true</Quiet>\
             <Object><Key>a&amp;b &lt;c&gt; &quot;d&quot; &apos;e&apos;</Key></Object>\
             <Object><Key>é ü/x y</Key></Object></Delete>"
        );
        // What is escaped reads back as the same key, spaces and CRs too.
        for key in [
            "a&b <c> \"d\" 'e'",
            " lead and trail ",
            "cr\r\nlf",
            "ø/€/🦀",
            "]]>",
        ] {
            let answer = format!(
                "<DeleteResult><Error><Key>{}</Key><Code>C</Code><Message>M</Message></Error></DeleteResult>",
                xml_escape(key)
            );
            let (_, errors) = parse_answer(&answer).unwrap();
            assert_eq!(errors[0].key, key);
        }
    }

    #[test]
    fn deletes_in_batches_of_1000_in_order() {
        let sizes = |n| {
            delete_batches(&keys(n))
                .map(|b| b.len())
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(1000), [1000]);
        assert_eq!(sizes(1001), [1000, 1]);
        assert_eq!(sizes(2500), [1000, 1000, 500]);
        let all = keys(2500);
        let again: Vec<String> = delete_batches(&all).flatten().cloned().collect();
        assert_eq!(again, all);
        let first = delete_batches(&all).next().unwrap();
        let body = delete_body(first);
        assert_eq!(body.matches("<Object>").count(), 1000);
        assert!(body.contains("<Key>k/00000</Key>") && body.contains("<Key>k/00999</Key>"));
        assert!(!body.contains("<Key>k/01000</Key>"));
    }

    #[test]
    fn parses_the_errors_of_a_delete_result() {
        let answer = r#"<?xml version="1.0" encoding="UTF-8"?>
<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Deleted><Key>gone</Key></Deleted>
  <Error>
    <Key>a&amp;b c-&#233;</Key>
    <Code>AccessDenied</Code>
    <Message>Access Denied</Message>
  </Error>
  <Deleted><Key>also gone</Key></Deleted>
  <Error><Key><![CDATA[x<y]]></Key><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>
  <Error><Key/><Code>InvalidArgument</Code></Error>
</DeleteResult>"#;
        let (root, errors) = parse_answer(answer).unwrap();
        assert_eq!(root, "DeleteResult");
        assert_eq!(
            errors,
            [
                ErrorEntry {
                    key: "a&b c-é".into(),
                    code: "AccessDenied".into(),
                    message: "Access Denied".into(),
                },
                ErrorEntry {
                    key: "x<y".into(),
                    code: "InternalError".into(),
                    message: "We encountered an internal error. Please try again.".into(),
                },
                ErrorEntry {
                    key: "".into(),
                    code: "InvalidArgument".into(),
                    message: "".into(),
                },
            ]
        );
        assert_eq!(errors[0].said(), "AccessDenied: Access Denied");
        assert_eq!(errors[2].said(), "InvalidArgument");
        // Quiet, nothing failed.
        let quiet = r#"<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>"#;
        assert_eq!(parse_answer(quiet), Some(("DeleteResult".into(), vec![])));
        // An error document is one error, without a key.
        let document = "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code>\
                        <Message>The specified bucket does not exist</Message>\
                        <BucketName>b</BucketName></Error>";
        assert_eq!(error_document(document).code, "NoSuchBucket");
        assert_eq!(parse_answer(document).unwrap().0, "Error");
        // Cut short, or not XML: not an answer.
        assert_eq!(parse_answer("<DeleteResult><Error><Key>a</Key>"), None);
        assert_eq!(parse_answer(&answer[..answer.len() - 20]), None);
        assert_eq!(parse_answer(""), None);
        assert_eq!(parse_answer("<a>&bogus;</a><b>"), None);
        assert_eq!(error_document("Bad Gateway"), ErrorEntry::default());
    }

    #[test]
    fn tells_a_server_without_delete_objects() {
        let doc = |code: &str, message: &str| {
            format!("<Error><Code>{code}</Code><Message>{message}</Message></Error>")
        };
        assert!(no_delete_objects(501, ""));
        assert!(no_delete_objects(501, &doc("NotImplemented", "x")));
        assert!(no_delete_objects(405, "<html>Method Not Allowed</html>"));
        assert!(no_delete_objects(400, &doc("NotImplemented", "x")));
        assert!(no_delete_objects(400, &doc("MethodNotAllowed", "x")));
        assert!(no_delete_objects(400, &doc("InvalidDigest", "bad")));
        assert!(no_delete_objects(
            400,
            &doc("InvalidRequest", "Content-MD5 is not supported")
        ));
        assert!(!no_delete_objects(400, &doc("MalformedXML", "x")));
        assert!(!no_delete_objects(400, &doc("BadDigest", "x")));
        assert!(!no_delete_objects(403, &doc("AccessDenied", "x")));
        assert!(!no_delete_objects(404, &doc("NoSuchBucket", "x")));
        assert!(!no_delete_objects(500, &doc("InternalError", "x")));
        assert!(!no_delete_objects(503, ""));
    }

    #[test]
    fn keys_a_url_cannot_name_are_not_deleted_one_by_one() {
        for key in ["a", "a/b.c", "...", "a/.b/..c", "a./b", "a//b"] {
            assert!(addressable(key), "{key}");
        }
        for key in ["/a", "..", "./a", "a/../b", "a/.", "a/./b"] {
            assert!(!addressable(key), "{key}");
        }
    }

    #[test]
    fn tells_a_refused_key_from_a_refused_request() {
        assert!(refuses_the_key(403, "AccessDenied"));
        assert!(refuses_the_key(400, "InvalidArgument"));
        assert!(!refuses_the_key(403, "SignatureDoesNotMatch"));
        assert!(!refuses_the_key(403, "InvalidAccessKeyId"));
        assert!(!refuses_the_key(404, "NoSuchBucket"));
        assert!(!refuses_the_key(501, "NotImplemented"));
    }

    /// A request as the fake server saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        target: String,
        headers: std::collections::HashMap<String, String>,
        body: Vec<u8>,
    }

    /// An HTTP server on loopback that answers each request with what
    /// `answer` says (status, body) and records it; one request a
    /// connection.
    fn fake_server(
        mut answer: impl FnMut(&Seen) -> (u16, String) + Send + 'static,
    ) -> (String, std::sync::Arc<std::sync::Mutex<Vec<Seen>>>) {
        use std::io::{BufRead, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = std::io::BufReader::new(stream.unwrap());
                let mut line = String::new();
                stream.read_line(&mut line).unwrap();
                let mut parts = line.split_whitespace();
                let (method, target) = (parts.next().unwrap(), parts.next().unwrap());
                let mut request = Seen {
                    method: method.to_string(),
                    target: target.to_string(),
                    headers: Default::default(),
                    body: Vec::new(),
                };
                loop {
                    let mut header = String::new();
                    stream.read_line(&mut header).unwrap();
                    let Some((name, value)) = header.trim_end().split_once(':') else {
                        break;
                    };
                    let name = name.to_ascii_lowercase();
                    request.headers.insert(name, value.trim().to_string());
                }
                let length = request
                    .headers
                    .get("content-length")
                    .map_or(0, |l| l.parse().unwrap());
                request.body = vec![0; length];
                stream.read_exact(&mut request.body).unwrap();
                let (status, body) = answer(&request);
                log.lock().unwrap().push(request);
                let response = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.get_mut().write_all(response.as_bytes()).unwrap();
            }
        });
        (endpoint, seen)
    }

    fn fake_client(endpoint: &str) -> Client {
        // Only these tests build a Client, with the same made-up keys.
        std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDFAKE");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "fake-secret");
        let settings = Settings {
            endpoint: Some(endpoint.to_string()),
            region: "us-east-1".to_string(),
            profile: None,
            retries: 2,
            timeout: Duration::from_secs(10),
        };
        Client::new(&settings, "bucket").unwrap()
    }

    fn error_doc(code: &str, message: &str) -> String {
        format!("<Error><Code>{code}</Code><Message>{message}</Message></Error>")
    }

    #[test]
    fn delete_objects_retries_a_batch_whole_and_reports_refused_keys() {
        let mut posts = 0;
        let (endpoint, seen) = fake_server(move |request| match request.method.as_str() {
            "POST" => {
                posts += 1;
                if posts == 1 {
                    return (500, error_doc("InternalError", "try again"));
                }
                let mut answer = String::from("<DeleteResult>");
                if String::from_utf8_lossy(&request.body).contains("<Key>k/00002</Key>") {
                    answer.push_str(
                        "<Error><Key>k/00002</Key><Code>AccessDenied</Code>\
                         <Message>Access Denied</Message></Error>",
                    );
                }
                (200, answer + "</DeleteResult>")
            }
            _ => (400, error_doc("Unexpected", "only POST")),
        });
        let client = fake_client(&endpoint);
        let all = keys(1001);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let done = runtime.block_on(client.delete_objects(&all)).unwrap();
        assert_eq!(done.requests, 3, "the first batch twice, then the second");
        assert_eq!(
            done.failed,
            [(
                "k/00002".to_string(),
                "AccessDenied: Access Denied".to_string()
            )]
        );
        let mut deleted = all.clone();
        deleted.remove(2);
        assert_eq!(done.deleted, deleted);

        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        for (request, keys) in seen.iter().zip([&all[..1000], &all[..1000], &all[1000..]]) {
            assert_eq!(request.target, "/bucket/?delete=");
            assert_eq!(request.body, delete_body(keys).as_bytes());
            let md5 = {
                use md5::Digest;
                md5::Md5::digest(&request.body)
            };
            let sha256 = {
                use sha2::Digest;
                hex::encode(sha2::Sha256::digest(&request.body))
            };
            let header = |name: &str| request.headers.get(name).map(String::as_str);
            assert_eq!(
                header("content-md5"),
                Some(
                    base64::engine::general_purpose::STANDARD
                        .encode(md5)
                        .as_str()
                )
            );
            assert_eq!(header("content-type"), Some("application/xml"));
            assert_eq!(header("x-amz-content-sha256"), Some(sha256.as_str()));
            assert!(header("authorization")
                .unwrap()
                .contains("SignedHeaders=content-md5;content-type;host;"));
        }
    }

    #[test]
    fn delete_objects_falls_back_to_one_delete_a_key() {
        let (endpoint, seen) =
            fake_server(
                |request| match (request.method.as_str(), request.target.as_str()) {
                    ("POST", _) => (501, error_doc("NotImplemented", "not here")),
                    ("DELETE", "/bucket/k/locked") => {
                        (403, error_doc("AccessDenied", "Access Denied"))
                    }
                    ("DELETE", "/bucket/k/missing") => (404, error_doc("NoSuchKey", "gone")),
                    ("DELETE", _) => (204, String::new()),
                    _ => (400, error_doc("Unexpected", "only POST and DELETE")),
                },
            );
        let client = fake_client(&endpoint);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let asked: Vec<String> = ["k/a", "k/locked", "k/../b", "k/missing"]
            .map(String::from)
            .to_vec();
        let done = runtime.block_on(client.delete_objects(&asked)).unwrap();
        assert_eq!(
            done.requests, 4,
            "one POST, then one DELETE a key a URL names"
        );
        assert_eq!(done.deleted, ["k/a", "k/missing"]);
        let failed: Vec<&str> = done.failed.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(failed, ["k/locked", "k/../b"]);
        assert_eq!(done.failed[0].1, "AccessDenied: Access Denied");
        // The client remembers: no more POSTs.
        let done = runtime
            .block_on(client.delete_objects(&["k/b".to_string()]))
            .unwrap();
        assert_eq!((done.requests, done.deleted), (1, vec!["k/b".to_string()]));
        let methods: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|r| format!("{} {}", r.method, r.target))
            .collect();
        assert_eq!(
            methods,
            [
                "POST /bucket/?delete=",
                "DELETE /bucket/k/a",
                "DELETE /bucket/k/locked",
                "DELETE /bucket/k/missing",
                "DELETE /bucket/k/b"
            ]
        );
        // One key alone: gone already is fine, refused is an error.
        runtime.block_on(client.delete_object("k/missing")).unwrap();
        let refused = runtime
            .block_on(client.delete_object("k/locked"))
            .unwrap_err();
        assert_eq!(refused.code(), Exit::NoPerm as i32, "{refused}");
        let unnamed = runtime.block_on(client.delete_object("k/./b")).unwrap_err();
        assert_eq!(unnamed.code(), Exit::DataErr as i32, "{unnamed}");
        assert_eq!(seen.lock().unwrap().len(), 7, "no request for k/./b");
    }
}
