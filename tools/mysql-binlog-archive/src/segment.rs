//! The open segment: the events received since the last one was stored,
//! and when it must be closed.

use mysnap::binlog::event::{kind, Checksum, Event};
use mysnap::binlog::gtid::Tracker;
use mysnap::binlog::layout::SegmentMeta;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

/// When a segment is closed.
#[derive(Debug, Clone, Copy)]
pub struct Cut {
    /// This long after its first event arrived.
    pub interval: Duration,
    /// Once it holds this many bytes.
    pub size: usize,
}

/// A closed segment, ready to store.
#[derive(Debug, Clone)]
pub struct Closed {
    pub file: String,
    pub start: u64,
    pub bytes: Vec<u8>,
    pub meta: SegmentMeta,
}

impl Closed {
    pub fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }
}

#[derive(Debug)]
pub struct Open {
    pub file: String,
    pub start: u64,
    bytes: Vec<u8>,
    meta: SegmentMeta,
    /// When its first event arrived here (not the server's clock).
    opened: Option<Instant>,
    /// The file's next name, once a rotation has been added.
    rotated: Option<String>,
    /// MariaDB's GTID position at the end of what is here.
    gtid: Tracker,
}

impl Open {
    /// A segment from `file:start`, where the GTID position is what
    /// `gtid` has followed up to there.
    pub fn new(file: &str, start: u64, server: &str, file_created: u32, gtid: Tracker) -> Open {
        Open {
            file: file.to_string(),
            start,
            bytes: Vec::new(),
            meta: SegmentMeta {
                server: server.to_string(),
                file_created,
                ..SegmentMeta::default()
            },
            opened: None,
            rotated: None,
            gtid,
        }
    }

    /// The GTID position as followed so far, to go on with elsewhere.
    pub fn gtid(&self) -> &Tracker {
        &self.gtid
    }

    /// Follows an event that the archive has already (sent again from a
    /// transaction's start when going on by GTID): it moves the GTID
    /// position, but is not added.
    pub fn follow(&mut self, event: &Event, checksum: Checksum) {
        self.gtid.push(event, checksum);
    }

    /// The file's format description time, once known.
    pub fn set_file_created(&mut self, created: u32) {
        self.meta.file_created = created;
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// How long its oldest event has waited to be stored.
    pub fn age(&self) -> Duration {
        self.opened.map_or(Duration::ZERO, |t| t.elapsed())
    }

    /// When it must be closed by time, if it holds anything.
    pub fn deadline(&self, cut: &Cut) -> Option<Instant> {
        self.opened.map(|t| t + cut.interval)
    }

    /// Adds an event that starts at `end()`.
    pub fn push(&mut self, event: &Event, checksum: Checksum) {
        let header = event.header;
        if self.bytes.is_empty() {
            self.opened = Some(Instant::now());
            self.meta.first_time = header.timestamp;
        }
        self.meta.last_time = header.timestamp;
        self.meta.events += 1;
        if let Some(gtid) = event.gtid(checksum) {
            if self.meta.gtid_first.is_none() {
                self.meta.gtid_first = Some(gtid.clone());
            }
            self.meta.gtid_last = Some(gtid);
        }
        self.gtid.push(event, checksum);
        if header.kind == kind::ROTATE {
            self.rotated = event.rotation(checksum).map(|(name, _)| name);
        }
        self.bytes.extend_from_slice(event.bytes);
    }

    /// Whether it is due: full, or it ends its file (a rotation, or the
    /// server's stop), or its time is up.
    pub fn due(&self, cut: &Cut, last_kind: u8) -> bool {
        !self.is_empty()
            && (self.bytes.len() >= cut.size
                || matches!(last_kind, kind::ROTATE | kind::STOP)
                || self.age() >= cut.interval)
    }

    /// Closes it, and opens the next one where it ends (in the next file
    /// after a rotation).
    pub fn close(&mut self) -> Closed {
        let mut meta = self.meta.clone();
        meta.sha256 = hex::encode(Sha256::digest(&self.bytes));
        meta.next_file = self.rotated.clone();
        meta.gtid_position = self.gtid.position().cloned();
        let closed = Closed {
            file: self.file.clone(),
            start: self.start,
            bytes: std::mem::take(&mut self.bytes),
            meta,
        };
        self.start = closed.end();
        self.opened = None;
        self.meta.events = 0;
        self.meta.gtid_first = None;
        self.meta.gtid_last = None;
        self.rotated = None;
        closed
    }
}
