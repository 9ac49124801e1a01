//! One prune: list the prefix whole, tell each backup's state from what is
//! stored beside it, decide by the policy, refuse a runaway plan, report,
//! then delete: each backup's sidecar and markers with it, in one request
//! where the server takes DeleteObjects, the object after its sidecar;
//! then the binlog segments that no kept backup's chain needs.

use crate::binlogs::{self, Outcome};
use crate::policy::{self, Backup, Decision, MaxDelete, Plan, Policy};
use mysnap::binlog::layout::{Timeline, DIR};
use mysnap::moment::NameFormat;
use mysnap::quantity::format_size;
use mysnap::s3::backups::{self, Start, PIN, SIDECAR, VERIFIED};
use mysnap::s3::{Client, Lock, ObjectInfo, OpenUpload, Protection, S3Url};
use mysnap::{Error, Exit, Result};
use std::collections::{BTreeMap, BTreeSet};

/// What the command line asked for.
pub struct Job {
    pub policy: Policy,
    /// Multipart uploads open for longer than this are aborted.
    pub abort_uploads_after: chrono::Duration,
    /// The binlog archive is kept for at least this long back from now.
    pub binlogs_within: Option<chrono::Duration>,
    pub max_delete: Option<MaxDelete>,
    pub dry_run: bool,
    pub json: bool,
    /// How the backups' names record their time, other than the default.
    pub name_format: Option<NameFormat>,
}

/// DeleteObjects takes at most this many keys.
const BATCH: usize = 1000;

/// The backups under the prefix and the keys stored beside them.
struct Listing {
    backups: Vec<Backup>,
    /// Every key listed, with its size.
    keys: BTreeMap<String, u64>,
    /// Every key listed, with when it was stored (RFC 3339, as listed).
    stored: BTreeMap<String, String>,
}

/// Lists `prefix` whole: a listing that fails, or breaks off, is an error
/// before anything is decided, so nothing is deleted on half a listing.
async fn listing(client: &Client, prefix: &S3Url, format: Option<&NameFormat>) -> Result<Listing> {
    let objects = client.list(&prefix.key).await.map_err(|e| {
        Error::new(
            Exit::Unavailable,
            format!("{}: nothing was deleted", e.message()),
        )
    })?;
    let keys: BTreeMap<String, u64> = objects.iter().map(|o| (o.key.clone(), o.size)).collect();
    let stored = objects
        .iter()
        .map(|o| (o.key.clone(), o.last_modified.clone()))
        .collect();
    let mut found = Vec::new();
    for object in backups::backups(&prefix.key, objects) {
        found.push(backup(client, prefix, &object, &keys, format)?);
    }
    Ok(Listing {
        backups: found,
        keys,
        stored,
    })
}

fn backup(
    client: &Client,
    prefix: &S3Url,
    object: &ObjectInfo,
    keys: &BTreeMap<String, u64>,
    format: Option<&NameFormat>,
) -> Result<Backup> {
    let beside = |suffix: &str| keys.contains_key(&format!("{}{suffix}", object.key));
    let taken = backups::taken_by(&prefix.key, object, format).ok_or_else(|| {
        Error::new(
            Exit::DataErr,
            format!(
                "{}: neither its name nor its time stored ('{}') says when it was taken; \
                 nothing was deleted",
                client.url(&object.key),
                object.last_modified
            ),
        )
    })?;
    Ok(Backup {
        key: object.key.clone(),
        taken,
        size: object.size,
        complete: beside(SIDECAR),
        verified: beside(VERIFIED),
        pinned: beside(PIN),
    })
}

/// Sidecars and markers whose backup is gone (a prune cut between its
/// requests, a backup deleted by hand): they go too. Only where a backup
/// could be: nothing in the binlog archive is touched.
fn orphans(prefix: &str, listing: &Listing) -> Vec<String> {
    let backups: BTreeSet<&str> = listing.backups.iter().map(|b| b.key.as_str()).collect();
    listing
        .keys
        .keys()
        .filter(|key| {
            [SIDECAR, VERIFIED, PIN].iter().any(|suffix| {
                key.strip_suffix(suffix).is_some_and(|object| {
                    backups::is_backup(prefix, object) && !backups.contains(object)
                })
            })
        })
        .cloned()
        .collect()
}

/// The keys of one backup, in the order they go: what says it is whole
/// (its sidecar) and its markers first, the object last.
fn keys_of(backup: &Backup, listed: &BTreeMap<String, u64>) -> Vec<String> {
    let mut keys: Vec<String> = [SIDECAR, VERIFIED]
        .iter()
        .map(|suffix| format!("{}{suffix}", backup.key))
        .filter(|k| listed.contains_key(k))
        .collect();
    keys.push(backup.key.clone());
    keys
}

/// The binlog archive's part of the plan: the starts that the kept
/// backups' metadata records (one HEAD each), placed in the archive.
async fn binlog_plan(
    client: &Client,
    prefix: &S3Url,
    listing: &Listing,
    plan: &Plan,
    job: &Job,
    now: policy::Moment,
) -> Result<Outcome> {
    let archive = format!("{}{DIR}", prefix.key);
    let timeline = Timeline::from_listing(
        &prefix.key,
        listing
            .keys
            .range(archive.clone()..)
            .take_while(|(k, _)| k.starts_with(&archive))
            .map(|(k, size)| (k.as_str(), *size)),
    );
    if timeline.epochs.is_empty() {
        return Ok(Outcome::NoArchive);
    }
    let mut needed = Vec::new();
    for backup in binlogs::needed(plan, job.binlogs_within, now) {
        let start = client
            .head(&backup.key)
            .await
            .map_err(|e| Error::with_status(e.code(), format!("{e}: nothing was deleted")))?
            .and_then(|head| Start::from_map(&head.metadata));
        needed.push((client.url(&backup.key).to_string(), start));
    }
    Ok(binlogs::plan(&prefix.key, &timeline, &needed))
}

/// The backups that the plan deletes whose object S3 Object Lock still
/// keeps: one HEAD each, only where the bucket may lock.
async fn locked_backups(
    client: &Client,
    plan: &Plan,
    protection: &Protection,
    now: policy::Moment,
) -> Result<BTreeMap<String, Lock>> {
    let mut locked = BTreeMap::new();
    if !protection.object_lock {
        return Ok(locked);
    }
    for backup in plan.deleted() {
        let head = client
            .head(&backup.key)
            .await
            .map_err(|e| Error::with_status(e.code(), format!("{e}: nothing was deleted")))?;
        if let Some(lock) = head.and_then(|h| h.lock).filter(|l| l.holds_at(now)) {
            locked.insert(backup.key.clone(), lock);
        }
    }
    Ok(locked)
}

/// Whether the bucket's default retention still holds `key` (one that is
/// no backup), by when it was stored; a time that is no time may be held.
fn held_by_default(
    listing: &Listing,
    protection: &Protection,
    now: policy::Moment,
    key: &str,
) -> bool {
    match protection.default_retention {
        Some(retention) if protection.object_lock => listing
            .stored
            .get(key)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .is_none_or(|t| t.with_timezone(&chrono::Utc) + retention > now),
        _ => false,
    }
}

/// The multipart uploads under the prefix open for longer than the job
/// allows, or None where the server does not list them. An upload whose
/// start the server does not say in RFC 3339 is left.
async fn stale_uploads(
    client: &Client,
    prefix: &S3Url,
    job: &Job,
    now: policy::Moment,
) -> Result<Option<Vec<OpenUpload>>> {
    let Some(uploads) = client
        .uploads_under(&prefix.key)
        .await
        .map_err(|e| Error::with_status(e.code(), format!("{e}: nothing was deleted")))?
    else {
        log::info!("{prefix}: the server does not list multipart uploads; none was aborted");
        return Ok(None);
    };
    Ok(Some(
        uploads
            .into_iter()
            .filter(
                |u| match stale(&u.initiated, now, job.abort_uploads_after) {
                    Some(stale) => stale,
                    None => {
                        log::warn!(
                            "{}: the upload {} began at '{}', which is no time; it is left",
                            client.url(&u.key),
                            u.upload_id,
                            u.initiated
                        );
                        false
                    }
                },
            )
            .collect(),
    ))
}

/// Whether an upload that began at `initiated` (RFC 3339, by the server's
/// clock) has been open for longer than `after`; None when that is no time.
fn stale(initiated: &str, now: policy::Moment, after: chrono::Duration) -> Option<bool> {
    let began = chrono::DateTime::parse_from_rfc3339(initiated).ok()?;
    Some(now - began.with_timezone(&chrono::Utc) > after)
}

pub async fn prune(client: &Client, prefix: &S3Url, job: &Job) -> Result<()> {
    let listing = listing(client, prefix, job.name_format.as_ref()).await?;
    let now = chrono::Utc::now();
    let mut plan = policy::plan(&job.policy, listing.backups.clone(), now);
    let protection = client
        .protection()
        .await
        .map_err(|e| Error::with_status(e.code(), format!("{e}: nothing was deleted")))?;
    let locked = locked_backups(client, &plan, &protection, now).await?;
    plan.lock(&locked.keys().cloned().collect());
    let kept = Kept {
        locks: &locked,
        protection: &protection,
        by_default: 0,
    };
    if let Some(why) = policy::refusal(&plan, job.max_delete) {
        report(
            client,
            &prefix.key,
            &plan,
            job,
            &[],
            &Outcome::LeftWhole(why.clone()),
            None,
            &kept,
        );
        return Err(Error::new(
            Exit::DataErr,
            format!("{why}; nothing was deleted"),
        ));
    }
    let held = |key: &String| held_by_default(&listing, &protection, now, key);
    let (orphans, held_orphans): (Vec<String>, Vec<String>) = orphans(&prefix.key, &listing)
        .into_iter()
        .partition(|k| !held(k));
    let mut by_default = held_orphans.len();
    let mut binlogs = binlog_plan(client, prefix, &listing, &plan, job, now).await?;
    if let Outcome::Pruned { delete, .. } = &mut binlogs {
        let listed = delete.len();
        delete.retain(|k| !held(k));
        by_default += listed - delete.len();
    }
    let stale = stale_uploads(client, prefix, job, now).await?;
    let kept = Kept { by_default, ..kept };
    report(
        client,
        &prefix.key,
        &plan,
        job,
        &orphans,
        &binlogs,
        stale.as_deref(),
        &kept,
    );
    if job.dry_run {
        log::info!("--dry-run: nothing was deleted");
        return Ok(());
    }
    // Before the deletes: an upload that a killed s3-put left open holds
    // storage that no listing shows.
    for upload in stale.iter().flatten() {
        client
            .abort_multipart(&upload.key, &upload.upload_id)
            .await?;
    }
    // Whole backups in each request: a prune cut between two requests
    // leaves each backup whole or gone. The binlog segments go after
    // the backups, oldest first, so that a cut leaves the archive whole
    // from some point on.
    let mut batches: Vec<Vec<String>> = Vec::new();
    let mut batch: Vec<String> = Vec::new();
    let segments = match &binlogs {
        Outcome::Pruned { delete, .. } => delete.clone(),
        _ => Vec::new(),
    };
    // Oldest first: a prune cut short has narrowed the window from its
    // old end, and left no hole in the middle of it.
    let groups = plan
        .deleted()
        .rev()
        .map(|b| keys_of(b, &listing.keys))
        .chain(orphans.iter().map(|k| vec![k.clone()]))
        .chain(segments.into_iter().map(|k| vec![k]));
    for keys in groups {
        if batch.len() + keys.len() > BATCH {
            batches.push(std::mem::take(&mut batch));
        }
        batch.extend(keys);
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    let mut failed: Vec<(String, String)> = Vec::new();
    let mut requests = 0;
    for keys in &batches {
        let done = client.delete_objects(keys).await?;
        requests += done.requests;
        failed.extend(done.failed);
    }
    log::debug!("{requests} delete requests for {} batches", batches.len());
    if !failed.is_empty() {
        for (key, why) in failed.iter().take(10) {
            log::error!("{}: not deleted: {why}", client.url(key));
        }
        return Err(Error::new(
            Exit::Unavailable,
            format!(
                "{} of the keys to delete were not deleted (the first are above); run again",
                failed.len()
            ),
        ));
    }
    Ok(())
}

/// What the bucket keeps beyond the plan: the locked backups, the keys
/// its default retention holds, and whether deletes free any space.
struct Kept<'a> {
    locks: &'a BTreeMap<String, Lock>,
    protection: &'a Protection,
    by_default: usize,
}

/// How a lock reads in the report.
fn lock_text(lock: &Lock) -> String {
    let mode = lock.mode.as_deref().unwrap_or("").to_ascii_lowercase();
    match (lock.legal_hold, lock.until) {
        (true, _) => "a legal hold".to_string(),
        (false, Some(until)) => format!(
            "{mode} retention until {}",
            until.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        (false, None) => format!("{mode} retention"),
    }
}

/// One line per backup, newest first, one per epoch that loses segments,
/// then a summary; or the same as JSON.
#[allow(clippy::too_many_arguments)]
fn report(
    client: &Client,
    prefix: &str,
    plan: &Plan,
    job: &Job,
    orphans: &[String],
    binlogs: &Outcome,
    stale: Option<&[OpenUpload]>,
    kept: &Kept,
) {
    let aborting = if job.dry_run { "would abort" } else { "abort" };
    let deleting = if job.dry_run {
        "would delete"
    } else {
        "delete"
    };
    if job.json {
        let backups: Vec<serde_json::Value> = plan
            .backups
            .iter()
            .map(|(b, d)| {
                let (action, reasons) = match d {
                    Decision::Keep(r) => ("keep", r.iter().map(|r| r.name()).collect()),
                    Decision::Delete => ("delete", Vec::new()),
                };
                serde_json::json!({
                    "key": b.key,
                    "taken": b.taken.to_rfc3339(),
                    "size": b.size,
                    "complete": b.complete,
                    "verified": b.verified,
                    "pinned": b.pinned,
                    "action": action,
                    "kept_by": reasons,
                    "locked": kept.locks.get(&b.key).map(lock_text),
                })
            })
            .collect();
        let summary = summary(plan);
        let out = serde_json::json!({
            "dry_run": job.dry_run,
            "backups": backups,
            "orphans": orphans,
            "kept": summary.kept,
            "deleted": summary.deleted,
            "bytes_freed": summary.freed,
            "oldest_kept": summary.oldest_kept.map(|t| t.to_rfc3339()),
            "binlog": binlog_json(binlogs),
            "locked": kept.locks.len(),
            "held_by_default_retention": kept.by_default,
            "versioned": kept.protection.versioned,
            "uploads_aborted": stale.map(|uploads| uploads.iter().map(|u| serde_json::json!({
                "key": u.key,
                "upload_id": u.upload_id,
                "initiated": u.initiated,
            })).collect::<Vec<_>>()),
        });
        println!("{out}");
        return;
    }
    for (b, d) in &plan.backups {
        let when = b.taken.format("%Y-%m-%d %H:%M:%S UTC");
        match d {
            Decision::Keep(reasons) => {
                let why: Vec<String> = reasons
                    .iter()
                    .map(|r| match (r, kept.locks.get(&b.key)) {
                        (policy::Reason::Locked, Some(lock)) => {
                            format!("locked: {}", lock_text(lock))
                        }
                        _ => r.name().to_string(),
                    })
                    .collect();
                println!(
                    "keep          {when}  {}  ({})",
                    client.url(&b.key),
                    why.join(", ")
                );
            }
            Decision::Delete => println!("{deleting:<13} {when}  {}", client.url(&b.key)),
        }
    }
    for key in orphans {
        println!("{deleting:<13} {}  (its backup is gone)", client.url(key));
    }
    for upload in stale.unwrap_or_default() {
        println!(
            "{aborting:<13} {}  (an upload open since {})",
            client.url(&upload.key),
            upload.initiated
        );
    }
    if let Outcome::Pruned { cuts, .. } = binlogs {
        for cut in cuts {
            let what = match &cut.from {
                None => "the whole epoch".to_string(),
                Some(at) => format!("before {at}"),
            };
            println!(
                "{deleting:<13} {}  {} segments ({}): {what}",
                client.url(&format!("{prefix}{DIR}{}/", cut.epoch)),
                cut.segments,
                format_size(cut.bytes)
            );
        }
    }
    let s = summary(plan);
    let deleted = if job.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    let oldest = s.oldest_kept.map_or_else(
        || "none".to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    );
    let locked = match kept.locks.len() {
        0 => String::new(),
        n => format!(" ({n} of them locked)"),
    };
    println!(
        "{} backups: {} kept{locked}, {} {deleted} ({} freed); the oldest kept backup is from {oldest}",
        plan.backups.len(),
        s.kept,
        s.deleted,
        format_size(s.freed)
    );
    if kept.by_default > 0 {
        let (keys, are, they) = match kept.by_default {
            1 => ("key", "is", "it goes"),
            _ => ("keys", "are", "they go"),
        };
        println!(
            "object lock: {} {keys} that no backup needs {are} held by the bucket's default \
             retention; {they} once it ends",
            kept.by_default
        );
    }
    if kept.protection.versioned {
        println!(
            "versioning: the bucket keeps what is deleted as noncurrent versions; \
             the space is freed when a lifecycle rule expires them"
        );
    }
    if let Some(uploads) = stale.filter(|u| !u.is_empty()) {
        let aborted = if job.dry_run {
            "would abort"
        } else {
            "aborted"
        };
        let after = job.abort_uploads_after.num_seconds();
        let after = match after {
            a if a % 3600 == 0 => format!("{}h", a / 3600),
            a if a % 60 == 0 => format!("{}m", a / 60),
            a => format!("{a}s"),
        };
        println!(
            "multipart uploads: {} open for longer than {after} {aborted}",
            uploads.len()
        );
    }
    match binlogs {
        Outcome::NoArchive => {}
        Outcome::LeftWhole(why) => println!("binlog archive: left whole: {why}"),
        Outcome::Pruned {
            segments,
            bytes,
            total,
            oldest,
            ..
        } => println!(
            "binlog archive: {segments} of {total} segments {deleted} ({} freed); \
             point-in-time recovery reaches back to {} ({})",
            format_size(*bytes),
            oldest.1,
            oldest.0
        ),
    }
}

fn binlog_json(binlogs: &Outcome) -> serde_json::Value {
    match binlogs {
        Outcome::NoArchive => serde_json::Value::Null,
        Outcome::LeftWhole(why) => serde_json::json!({ "left_whole": why }),
        Outcome::Pruned {
            cuts,
            segments,
            bytes,
            total,
            oldest,
            ..
        } => serde_json::json!({
            "segments": total,
            "segments_deleted": segments,
            "bytes_freed": bytes,
            "epochs": cuts.iter().map(|c| serde_json::json!({
                "epoch": c.epoch,
                "deleted_before": c.from.as_ref().map(|p| p.to_string()),
                "segments_deleted": c.segments,
                "bytes_freed": c.bytes,
            })).collect::<Vec<_>>(),
            "oldest_start": { "backup": oldest.0, "at": oldest.1.to_string() },
        }),
    }
}

struct Summary {
    kept: usize,
    deleted: usize,
    freed: u64,
    oldest_kept: Option<policy::Moment>,
}

fn summary(plan: &Plan) -> Summary {
    Summary {
        kept: plan.kept().count(),
        deleted: plan.deleted().count(),
        freed: plan.deleted().map(|b| b.size).sum(),
        oldest_kept: plan.kept().filter(|b| b.complete).map(|b| b.taken).min(),
    }
}

/// `--pin`: marks the backup so that no prune deletes it.
pub async fn pin(client: &Client, url: &S3Url) -> Result<()> {
    if client.head(&url.key).await?.is_none() {
        return Err(Error::new(Exit::NoInput, format!("{url}: no such backup")));
    }
    let marker = format!("{}{PIN}", url.key);
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    let body = format!(
        "pinned by s3-prune at {}\n",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
    );
    client
        .put_object(&marker, bytes::Bytes::from(body), &headers)
        .await?;
    log::info!("pinned {url}: no prune deletes it until --unpin");
    Ok(())
}

/// `--unpin`: takes the mark away (none there is no error).
pub async fn unpin(client: &Client, url: &S3Url) -> Result<()> {
    client.delete_object(&format!("{}{PIN}", url.key)).await?;
    log::info!("unpinned {url}: the policy decides for it again");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(key: &str) -> Backup {
        Backup {
            key: key.into(),
            taken: chrono::Utc::now(),
            size: 1,
            complete: true,
            verified: false,
            pinned: false,
        }
    }

    #[test]
    fn an_upload_is_stale_only_when_open_for_longer_than_the_limit() {
        let now: policy::Moment = "2026-12-04T12:00:00Z".parse().unwrap();
        let day = chrono::Duration::hours(24);
        assert_eq!(stale("2026-12-03T11:59:59.000Z", now, day), Some(true));
        assert_eq!(stale("2026-12-03T12:00:00.000Z", now, day), Some(false));
        assert_eq!(stale("2026-12-04T11:00:00+00:00", now, day), Some(false));
        // A server clock ahead of ours: young, whatever the skew.
        assert_eq!(stale("2026-12-05T12:00:00Z", now, day), Some(false));
        assert_eq!(stale("Tue, 03 Dec 2026 10:00:00 GMT", now, day), None);
        assert_eq!(stale("", now, day), None);
    }

    #[test]
    fn a_backup_goes_sidecar_first_and_orphans_are_found() {
        let keys: BTreeMap<String, u64> = [
            "p/a.tar.gz",
            "p/a.tar.gz.sha256",
            "p/a.tar.gz.verified",
            "p/gone.tar.gz.sha256",
            "p/gone.tar.gz.pin",
            "p/b.tar.gz",
            "p/binlog/e/binlog.000001/00000000000000000004.seg.sha256",
        ]
        .iter()
        .map(|k| (k.to_string(), 1))
        .collect();
        assert_eq!(
            keys_of(&backup("p/a.tar.gz"), &keys),
            ["p/a.tar.gz.sha256", "p/a.tar.gz.verified", "p/a.tar.gz"]
        );
        assert_eq!(keys_of(&backup("p/b.tar.gz"), &keys), ["p/b.tar.gz"]);
        let listing = Listing {
            backups: vec![backup("p/a.tar.gz"), backup("p/b.tar.gz")],
            keys,
            stored: BTreeMap::new(),
        };
        assert_eq!(
            orphans("p/", &listing),
            ["p/gone.tar.gz.pin", "p/gone.tar.gz.sha256"]
        );
    }
}
