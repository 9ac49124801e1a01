//! Prometheus metrics for node_exporter's textfile collector: one file per
//! instance and job (`mysnap-INSTANCE-JOB.prom`), every series labelled
//! `instance` and `job`, written whole to a temporary file beside it,
//! fsynced, made 0644 and renamed over the old one, so that the collector
//! never reads half a file. Each metric's HELP and TYPE are declared once,
//! here, so that they agree across the jobs that write them.

use crate::error::IoContext;
use crate::Result;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Where Debian's prometheus-node-exporter reads textfiles.
pub const DEFAULT_DIR: &str = "/var/lib/prometheus/node-exporter";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

/// A metric as declared once for every job that writes it.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

const fn gauge(name: &'static str, help: &'static str) -> Metric {
    Metric {
        name,
        kind: Kind::Gauge,
        help,
    }
}

pub const VERIFY_LAST_RUN: Metric = gauge(
    "mysnap_verify_last_run_timestamp_seconds",
    "When the last test restore ended, whatever its result.",
);
pub const VERIFY_LAST_STATUS: Metric = gauge(
    "mysnap_verify_last_status",
    "1 when the last test restore verified the backup, 0 when it did not.",
);
pub const VERIFY_LAST_SUCCESS: Metric = gauge(
    "mysnap_verify_last_success_timestamp_seconds",
    "When a test restore last verified a backup.",
);
pub const VERIFY_BACKUP_TIMESTAMP: Metric = gauge(
    "mysnap_verify_backup_timestamp_seconds",
    "When the backup that the last test restore verified was taken.",
);
pub const VERIFY_RTO: Metric = gauge(
    "mysnap_verify_rto_seconds",
    "The last test restore's time from its start to a server answering on the data.",
);
pub const VERIFY_DURATION: Metric = gauge(
    "mysnap_verify_duration_seconds",
    "How long the last test restore took, its checks included.",
);
pub const VERIFY_TABLES_CHECKED: Metric = gauge(
    "mysnap_verify_tables_checked",
    "Tables that the last test restore checked.",
);
pub const VERIFY_TABLES_FAILED: Metric = gauge(
    "mysnap_verify_tables_failed",
    "Tables that failed the last test restore's checks.",
);

/// The series of one job's file.
pub struct Textfile {
    instance: String,
    job: String,
    body: String,
}

/// A label value as the exposition format quotes it.
fn quoted(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Textfile {
    pub fn new(instance: &str, job: &str) -> Textfile {
        Textfile {
            instance: instance.to_string(),
            job: job.to_string(),
            body: String::new(),
        }
    }

    /// The file's name in `dir`: `mysnap-INSTANCE-JOB.prom`.
    pub fn path_in(dir: &Path, instance: &str, job: &str) -> PathBuf {
        let safe = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        dir.join(format!("mysnap-{}-{}.prom", safe(instance), safe(job)))
    }

    /// Adds one series; a value that is no number (NaN) is written as
    /// the format spells it.
    pub fn set(&mut self, metric: Metric, value: f64) -> &mut Textfile {
        let kind = match metric.kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        let _ = writeln!(self.body, "# HELP {} {}", metric.name, metric.help);
        let _ = writeln!(self.body, "# TYPE {} {kind}", metric.name);
        let value = if value.is_nan() {
            "NaN".to_string()
        } else {
            // Whole numbers without a fraction, others to the millisecond.
            let rounded = (value * 1000.0).round() / 1000.0;
            if rounded.fract() == 0.0 && rounded.abs() < 1e15 {
                format!("{}", rounded as i64)
            } else {
                format!("{rounded}")
            }
        };
        let _ = writeln!(
            self.body,
            "{}{{instance=\"{}\",job=\"{}\"}} {value}",
            metric.name,
            quoted(&self.instance),
            quoted(&self.job)
        );
        self
    }

    pub fn render(&self) -> &str {
        &self.body
    }

    /// Writes the file at `path` whole: a temporary file beside it, fsynced
    /// and renamed over it, mode 0644, then the directory fsynced.
    pub fn write(&self, path: &Path) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut temp = tempfile::Builder::new()
            .prefix(".mysnap-metrics-")
            .tempfile_in(dir)
            .ctx(format!("creating a metrics file in {}", dir.display()))?;
        temp.write_all(self.body.as_bytes())
            .and_then(|_| temp.as_file().sync_all())
            .and_then(|_| {
                temp.as_file()
                    .set_permissions(std::fs::Permissions::from_mode(0o644))
            })
            .ctx(format!("writing {}", temp.path().display()))?;
        temp.persist(path)
            .map_err(|e| e.error)
            .ctx(format!("renaming the metrics file to {}", path.display()))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .ctx(format!("syncing {}", dir.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_textfile_is_written_whole_with_its_labels_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = Textfile::path_in(dir.path(), "db/1", "verify");
        assert_eq!(path.file_name().unwrap(), "mysnap-db_1-verify.prom");
        let mut file = Textfile::new("db\"1", "verify");
        file.set(VERIFY_RTO, 12.3456).set(VERIFY_TABLES_FAILED, 0.0);
        file.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "# HELP mysnap_verify_rto_seconds The last test restore's time from its start \
             to a server answering on the data.\n\
             # TYPE mysnap_verify_rto_seconds gauge\n\
             mysnap_verify_rto_seconds{instance=\"db\\\"1\",job=\"verify\"} 12.346\n\
             # HELP mysnap_verify_tables_failed Tables that failed the last test restore's checks.\n\
             # TYPE mysnap_verify_tables_failed gauge\n\
             mysnap_verify_tables_failed{instance=\"db\\\"1\",job=\"verify\"} 0\n"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        // Nothing else is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
