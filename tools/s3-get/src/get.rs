//! One object to stdout, whole and verified: its size against HEAD's, its
//! SHA-256 against the KEY.sha256 sidecar that s3-put stored beside it.

use crate::download::{self, Sink};
use mysnap::quantity::{format_rate, format_size};
use mysnap::s3::{Client, ObjectInfo, S3Url};
use mysnap::{Error, Exit, Result};
use std::os::fd::AsFd;
use std::sync::Arc;

/// The object `url` names, or exit 66.
pub async fn object(client: &Client, url: &S3Url) -> Result<ObjectInfo> {
    client
        .head(&url.key)
        .await?
        .ok_or_else(|| Error::new(Exit::NoInput, format!("{url}: no such key")))
}

/// The SHA-256 the sidecar records, or None when there is no sidecar.
async fn expected_sha256(client: &Client, key: &str) -> Result<Option<String>> {
    let sidecar = format!("{key}.sha256");
    let Some(text) = client.get_small(&sidecar).await? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&text);
    let sum = text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if sum.len() != 64 || !sum.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::new(
            Exit::DataErr,
            format!("{}: not a SHA-256 sidecar", client.url(&sidecar)),
        ));
    }
    Ok(Some(sum))
}

/// Downloads `object` to stdout by `jobs` ranged GETs of `part` bytes,
/// checked against its sidecar unless `verify` is off.
pub async fn get(
    client: Arc<Client>,
    object: ObjectInfo,
    part: u64,
    jobs: usize,
    verify: bool,
) -> Result<()> {
    let url = client.url(&object.key);
    let expected = if verify {
        let sum = expected_sha256(&client, &object.key).await?;
        if sum.is_none() {
            log::warn!("{url} has no .sha256 sidecar: its content cannot be verified");
        }
        sum
    } else {
        None
    };
    let stdout = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| Error::new(Exit::IoErr, format!("cannot use stdout: {e}")))?;
    let sink = Sink::new(Box::new(std::fs::File::from(stdout)));
    let mut progress = mysnap::progress::Progress::new("downloaded", Some(object.size));
    let sink = download::download(client.clone(), &object, part, jobs, sink, &mut progress).await?;
    progress.finish();
    let elapsed = progress.elapsed();
    let bytes = sink.bytes;
    if bytes != object.size {
        return Err(Error::new(
            Exit::DataErr,
            format!("{url}: got {bytes} bytes, expected {}", object.size),
        ));
    }
    let actual = sink.sha256();
    let verdict = match expected {
        Some(expected) if expected != actual => {
            return Err(Error::new(
                Exit::DataErr,
                format!(
                "{url}: SHA-256 mismatch: the data hashes to {actual}, the sidecar says {expected}"
            ),
            ))
        }
        Some(_) => "SHA-256 verified",
        None => "not verified",
    };
    log::info!(
        key = url.to_string().as_str(), bytes = bytes, duration_ms = elapsed.as_millis() as u64, sha256 = actual.as_str();
        "read {url}: {} in {:.1}s ({}), {verdict}",
        format_size(bytes),
        elapsed.as_secs_f64(),
        format_rate(bytes, elapsed)
    );
    Ok(())
}
