//! Prometheus metrics for node_exporter's textfile collector, rewritten
//! whole (atomically) after every stored segment.

use mysnap::Result;
use std::fmt::Write;
use std::path::Path;

#[derive(Debug, Default, Clone)]
pub struct Metrics {
    /// The archive's URL, the label of every series.
    pub archive: String,
    pub segments: u64,
    pub bytes: u64,
    /// By the server's clock: the newest stored event.
    pub last_event: u32,
    /// By ours: the last segment stored.
    pub last_store: i64,
    /// Gap markers in the epoch being written.
    pub gaps: u64,
    /// How long the oldest event not yet stored has waited.
    pub unstored_seconds: f64,
    pub unstored_bytes: u64,
    /// The last heartbeat said the server had sent all it had.
    pub caught_up: bool,
    /// The stream was asked for by MariaDB GTID position (else by file
    /// and position).
    pub by_gtid: bool,
    pub reconnects: u64,
}

impl Metrics {
    pub fn render(&self) -> String {
        let label = format!(
            "{{archive=\"{}\"}}",
            self.archive.replace(['"', '\\', '\n'], "_")
        );
        let mut out = String::new();
        let mut series = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(out, "# HELP mysnap_binlog_{name} {help}");
            let _ = writeln!(out, "# TYPE mysnap_binlog_{name} {kind}");
            let _ = writeln!(out, "mysnap_binlog_{name}{label} {value}");
        };
        series(
            "segments_stored_total",
            "counter",
            "Segments stored by this run.",
            self.segments.to_string(),
        );
        series(
            "bytes_stored_total",
            "counter",
            "Binlog bytes stored by this run.",
            self.bytes.to_string(),
        );
        series(
            "last_event_timestamp_seconds",
            "gauge",
            "Server time of the newest archived event.",
            self.last_event.to_string(),
        );
        series(
            "last_store_timestamp_seconds",
            "gauge",
            "When the last segment was stored.",
            self.last_store.to_string(),
        );
        series(
            "gaps",
            "gauge",
            "Gap markers in the current epoch: binlogs the archive never got.",
            self.gaps.to_string(),
        );
        series(
            "unstored_seconds",
            "gauge",
            "Age of the oldest received event not yet stored.",
            format!("{:.3}", self.unstored_seconds),
        );
        series(
            "unstored_bytes",
            "gauge",
            "Bytes received and not yet stored.",
            self.unstored_bytes.to_string(),
        );
        series(
            "caught_up",
            "gauge",
            "1 when the server's last heartbeat found nothing more to send.",
            u8::from(self.caught_up).to_string(),
        );
        series(
            "streaming_by_gtid",
            "gauge",
            "1 when the stream was asked for by GTID position, 0 by file and position.",
            u8::from(self.by_gtid).to_string(),
        );
        series(
            "reconnects_total",
            "counter",
            "Connections to the server after the first.",
            self.reconnects.to_string(),
        );
        out
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        mysnap::private_file::write_atomically_with_mode(path, self.render().as_bytes(), 0o644)
    }
}
