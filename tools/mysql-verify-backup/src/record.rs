//! What a test restore leaves behind: `KEY.verified` beside a backup it
//! verified (which s3-prune reads as "the newest verified backup"), and
//! the metrics of every run, verified or not.

use crate::checks::Checked;
use mysnap::metrics::{self, Textfile};
use mysnap::Result;
use serde::Serialize;
use std::path::Path;

/// `KEY.verified`: a small JSON object, format 1.
#[derive(Debug, Serialize)]
pub struct Verified {
    pub format: u32,
    /// The backup, as an s3:// URL.
    pub backup: String,
    /// When the test restore began and ended, RFC 3339 UTC.
    pub started: String,
    pub finished: String,
    /// The host that ran it.
    pub host: String,
    /// The server that ran on the data, as it said its version.
    pub server_version: String,
    /// From the start to a server answering on the restored data.
    pub rto_seconds: f64,
    pub duration_seconds: f64,
    pub archive: ArchiveCheck,
    pub tables: TableCheck,
}

#[derive(Debug, Serialize)]
pub struct ArchiveCheck {
    /// Files unpacked and checked against the archive's checksum list.
    pub files: u64,
    pub bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct TableCheck {
    pub schemas: usize,
    /// Tables whose files the archive held (the server knows them all).
    pub listed: usize,
    pub checked: usize,
    pub failed: usize,
    pub results: Vec<Checked>,
}

/// How one run ended, for the metrics.
pub struct Run {
    pub finished: chrono::DateTime<chrono::Utc>,
    pub verified: bool,
    /// When the backup was taken, if known.
    pub taken: Option<chrono::DateTime<chrono::Utc>>,
    pub rto_seconds: Option<f64>,
    pub duration_seconds: f64,
    pub tables_checked: usize,
    pub tables_failed: usize,
}

/// The metrics of `run` in `path`. The last success is kept from the file
/// as it stood, so that a failed run does not hide when one last succeeded.
pub fn write_metrics(path: &Path, instance: &str, run: &Run) -> Result<()> {
    let last_success = if run.verified {
        Some(run.finished.timestamp() as f64)
    } else {
        previous(path, metrics::VERIFY_LAST_SUCCESS.name)
    };
    let mut file = Textfile::new(instance, "verify");
    file.set(metrics::VERIFY_LAST_RUN, run.finished.timestamp() as f64)
        .set(
            metrics::VERIFY_LAST_STATUS,
            if run.verified { 1.0 } else { 0.0 },
        )
        .set(metrics::VERIFY_DURATION, run.duration_seconds)
        .set(metrics::VERIFY_TABLES_CHECKED, run.tables_checked as f64)
        .set(metrics::VERIFY_TABLES_FAILED, run.tables_failed as f64);
    if let Some(t) = last_success {
        file.set(metrics::VERIFY_LAST_SUCCESS, t);
    }
    if let Some(rto) = run.rto_seconds {
        file.set(metrics::VERIFY_RTO, rto);
    }
    if let Some(taken) = run.taken {
        file.set(metrics::VERIFY_BACKUP_TIMESTAMP, taken.timestamp() as f64);
    }
    file.write(path)
}

/// The value of `name` in the metrics file at `path`, if it has one.
fn previous(path: &Path, name: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_run_keeps_the_last_success() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mysnap-db1-verify.prom");
        let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        let mut run = Run {
            finished: at("2026-12-01T03:00:00Z"),
            verified: true,
            taken: Some(at("2026-12-01T01:00:00Z")),
            rto_seconds: Some(42.5),
            duration_seconds: 61.0,
            tables_checked: 12,
            tables_failed: 0,
        };
        write_metrics(&path, "db1", &run).unwrap();
        run.finished = at("2026-12-08T03:00:00Z");
        run.verified = false;
        run.tables_failed = 1;
        write_metrics(&path, "db1", &run).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(
            "mysnap_verify_last_success_timestamp_seconds{instance=\"db1\",job=\"verify\"} 1796094000"
        ), "{text}");
        assert!(text.contains("mysnap_verify_last_status{instance=\"db1\",job=\"verify\"} 0"));
        assert!(text.contains("mysnap_verify_tables_failed{instance=\"db1\",job=\"verify\"} 1"));
    }
}
