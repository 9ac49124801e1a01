//! The backups under a prefix (`mysnap::s3::backups` says which objects
//! are): what --list prints and --latest downloads.

use mysnap::quantity::format_size;
use mysnap::s3::backups;
use mysnap::s3::{Client, ObjectInfo, S3Url};
use mysnap::{Error, Exit, Result};

type Moment = chrono::DateTime<chrono::Utc>;

/// The backups listed under `prefix` (taken by `before`, if given), oldest
/// first, and the keys listed.
async fn listed(
    client: &Client,
    prefix: &S3Url,
    before: Option<Moment>,
) -> Result<(Vec<ObjectInfo>, std::collections::BTreeSet<String>)> {
    let objects = client.list(&prefix.key).await?;
    let keys = objects.iter().map(|o| o.key.clone()).collect();
    Ok((
        backups::before(&prefix.key, backups::backups(&prefix.key, objects), before),
        keys,
    ))
}

/// --list: the backups under `prefix`, oldest first, one a line: time,
/// size in bytes, whether a test restore verified it, URL.
pub async fn print(client: &Client, prefix: &S3Url, before: Option<Moment>) -> Result<()> {
    let (found, keys) = listed(client, prefix, before).await?;
    if found.is_empty() {
        log::info!("no backups under {prefix}");
    }
    for object in found {
        let verified = keys.contains(&format!("{}{}", object.key, backups::VERIFIED));
        println!(
            "{}  {:>14}  {:<8}  {}",
            object.last_modified,
            object.size,
            if verified { "verified" } else { "-" },
            client.url(&object.key)
        );
    }
    Ok(())
}

/// --latest: the newest backup under `prefix`, as HEAD says it is now.
pub async fn newest(client: &Client, prefix: &S3Url, before: Option<Moment>) -> Result<ObjectInfo> {
    let (found, _) = listed(client, prefix, before).await?;
    let newest = found.into_iter().last().ok_or_else(|| {
        let when =
            before.map(|t| format!(" taken at or before {}", t.format("%Y-%m-%d %H:%M:%S UTC")));
        Error::new(
            Exit::NoInput,
            format!("no backups under {prefix}{}", when.unwrap_or_default()),
        )
    })?;
    log::info!(
        "newest backup under {prefix}: {} ({}, {})",
        client.url(&newest.key),
        newest.last_modified,
        format_size(newest.size)
    );
    // The listing's ETag and size are what HEAD says too; HEAD once more so
    // the download is pinned to the object as it is now.
    client.head(&newest.key).await?.ok_or_else(|| {
        Error::new(
            Exit::TempFail,
            format!("{} vanished while being read", client.url(&newest.key)),
        )
    })
}
