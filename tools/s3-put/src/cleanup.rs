//! What is left on the server when an upload does not finish: the open
//! multipart upload, and strays, uploads started by a request whose answer
//! was lost (the retry started another). Both are aborted, so no parts
//! linger and are billed; `--abort-from` does the same after a SIGKILL.

use crate::state::StateFile;
use crate::upload::Target;
use mysnap::s3::{Client, Settings};
use mysnap::Result;

/// What a search for strays found.
#[derive(Debug)]
pub enum Strays {
    Aborted(Vec<String>),
    /// The server does not implement ListMultipartUploads.
    CannotList,
}

/// Aborts the uploads open for exactly `key`, except `keep`.
///
/// Not by start time: servers disagree on it (moto answers a fixed date),
/// and the clocks may too. By key: the key names this run's object (a
/// timestamped key names this run alone), and two writers of one key race
/// whatever is done here: only one of their objects is kept.
pub async fn abort_strays(client: &Client, key: &str, keep: Option<&str>) -> Result<Strays> {
    let Some(open) = client.open_uploads(key).await? else {
        return Ok(Strays::CannotList);
    };
    let mut aborted = Vec::new();
    for upload in open {
        if keep == Some(upload.upload_id.as_str()) {
            continue;
        }
        client.abort_multipart(key, &upload.upload_id).await?;
        aborted.push(upload.upload_id);
    }
    Ok(Strays::Aborted(aborted))
}

/// Logs what `abort_strays` did. Returns true when every stray is known
/// to be gone.
pub fn report_strays(client: &Client, key: &str, found: Result<Strays>) -> bool {
    let url = client.url(key);
    match found {
        Ok(Strays::Aborted(ids)) => {
            for id in &ids {
                log::info!("aborted upload {id} of {url}: its start answer was lost");
            }
            true
        }
        Ok(Strays::CannotList) => {
            log::warn!(
                "the server cannot list open uploads: an upload of {url} whose start answer \
                 was lost cannot be found; a bucket lifecycle rule \
                 AbortIncompleteMultipartUpload removes it"
            );
            false
        }
        Err(e) => {
            log::warn!("could not look for uploads of {url} whose start answer was lost: {e}");
            false
        }
    }
}

/// Aborts the open upload `upload_id` after a failure. Returns whether it
/// is gone; the state file goes with it.
pub async fn abort_open(client: &Client, target: &Target, upload_id: &str) -> bool {
    match client.abort_multipart(&target.key, upload_id).await {
        Ok(()) => {
            log::info!(
                "aborted the multipart upload of {}",
                client.url(&target.key)
            );
            if let Some(state) = &target.state {
                state.clear();
            }
            true
        }
        Err(e) => {
            let hint = match &target.state {
                Some(_) => "; the state file keeps it for 's3-put --abort-from'",
                None => "; a bucket lifecycle rule AbortIncompleteMultipartUpload removes it later",
            };
            log::error!("could not abort upload {upload_id}: {e}{hint}");
            false
        }
    }
}

/// `--abort-from FILE`: the cleanup after an s3-put that was killed.
pub async fn abort_from(settings: &Settings, path: &str) -> Result<()> {
    let Some(record) = StateFile::load(std::path::Path::new(path))? else {
        log::info!("no state file {path}: no upload to abort");
        return Ok(());
    };
    let settings = Settings {
        endpoint: settings.endpoint.clone().or(record.endpoint.clone()),
        region: record.region.clone(),
        profile: settings.profile.clone(),
        retries: settings.retries,
        timeout: settings.timeout,
    };
    let client = Client::new(&settings, &record.bucket)?;
    let url = client.url(&record.key);
    if let Some(id) = &record.upload_id {
        client.abort_multipart(&record.key, id).await?;
        log::info!("aborted upload {id} of {url}");
    }
    // An upload whose start answer was lost (the record has no id yet, or
    // the start was retried) is found only by listing the key's uploads.
    match abort_strays(&client, &record.key, None).await {
        Ok(Strays::CannotList) if record.upload_id.is_some() => {}
        Ok(found) => {
            report_strays(&client, &record.key, Ok(found));
        }
        Err(e) => {
            return Err(e.context(format!(
                "looking for uploads of {url} whose start answer was lost; {path} is kept, \
                 run again"
            )))
        }
    }
    StateFile::new(path).clear();
    Ok(())
}
