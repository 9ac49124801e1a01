//! The archiver's run: connect, find where the archive ends, stream from
//! there, cut the stream into segments and store each one, and when the
//! stream breaks, store what was received and reconnect with backoff.
//!
//! One session is one connection. It ends with the stream (an error, a
//! lineage that changed under it, or the end of the binlog without
//! --follow) or with SIGTERM/SIGINT; in every case the open segment, whose
//! events are whole, is stored first, so a stop loses nothing that the
//! server has sent.

use crate::locate::{locate, Start};
use crate::metrics::Metrics;
use crate::segment::{Cut, Open};
use crate::source::{self, Got, Request, Server};
use crate::store::{Put, Store};
use libsystemd::daemon::{notify, NotifyState};
use mysnap::binlog::event::{kind, Checksum, Event, Header, FIRST_EVENT};
use mysnap::binlog::gtid::{Position, Tracker};
use mysnap::binlog::layout::Timeline;
use mysnap::mysql::ConnectOptions;
use mysnap::signals::Stopping;
use mysnap::{Error, Exit, Result};
use std::path::PathBuf;
use std::time::Duration;

pub struct Job {
    pub server_id: u32,
    pub cut: Cut,
    pub heartbeat: Duration,
    /// Wait for new events (false: store what there is, then exit).
    pub follow: bool,
    /// Failed sessions in a row, without a segment stored in between,
    /// before giving up (exit 75).
    pub retries: u32,
    pub metrics_file: Option<PathBuf>,
}

const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Events waiting between the stream's thread and the store.
const QUEUE: usize = 64;

/// How a session ended, when not by an error.
enum Ended {
    /// SIGTERM/SIGINT, or the end of the binlog without --follow.
    Stop,
    /// The server's file is not the archive's (its format description
    /// has another time): a new epoch begins.
    Lineage(String),
    /// A stop whose last store failed: the error, without a retry.
    Failed(Error),
}

pub async fn run(job: &Job, connection: &ConnectOptions, store: &Store) -> Result<()> {
    let mut stops = Stopping::install()?;
    let mut metrics = Metrics {
        archive: store.client.url(&store.prefix).to_string(),
        ..Metrics::default()
    };
    let mut failures = 0;
    let mut first = true;
    let mut new_epoch: Option<String> = None;
    // The last session's ask by GTID was refused: ask the next one by file
    // and position.
    let mut by_file = false;
    loop {
        let mut session = Session {
            job,
            store,
            metrics: &mut metrics,
            server: None,
            epoch: None,
            file: String::new(),
            expected: 0,
            checksum: Checksum::Crc32,
            expect_created: None,
            open: None,
            streamed: false,
            timeline: Timeline::default(),
            diverged: None,
            catching_up: false,
            sent_again: 0,
            gtid_refused: None,
        };
        let use_gtid = !std::mem::take(&mut by_file);
        let result = session
            .run(connection, first, new_epoch.take(), use_gtid, &mut stops)
            .await;
        // A session that streamed was a good connection: count afresh.
        let streamed = session.streamed;
        let diverged = session.diverged.take();
        let refused = session.gtid_refused.take();
        first = false;
        match result {
            Ok(Ended::Stop) => return Ok(()),
            Ok(Ended::Failed(e)) => return Err(e),
            Ok(Ended::Lineage(why)) => {
                log::warn!("{why}: a new epoch begins");
                new_epoch = Some(why);
                continue;
            }
            Err(_) if refused.is_some() => {
                let (level, why) = refused.expect("checked");
                log::log!(level, "{why}: going on by file and position");
                by_file = true;
                continue;
            }
            Err(_) if diverged.is_some() => {
                let why = diverged.expect("checked");
                log::warn!("{why}: a new epoch begins");
                new_epoch = Some(why);
                continue;
            }
            Err(e) if !retryable(&e) => return Err(e),
            Err(e) => {
                if streamed {
                    failures = 0;
                }
                failures += 1;
                if failures > job.retries {
                    return Err(Error::new(
                        Exit::TempFail,
                        format!("{}; gave up after {failures} tries", e.message()),
                    ));
                }
                let delay = BACKOFF_FIRST
                    .saturating_mul(1 << (failures - 1).min(5))
                    .min(BACKOFF_MAX);
                log::warn!(
                    "{}; reconnecting in {}s ({failures} of {} tries)",
                    e.message(),
                    delay.as_secs(),
                    job.retries
                );
                metrics.reconnects += 1;
                let _ = notify(false, &[NotifyState::Watchdog]);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stops.next() => return Ok(()),
                }
            }
        }
    }
}

/// What a new connection can cure: the server away or restarting, a cut
/// or broken stream, a position it no longer has, a passing S3 failure.
fn retryable(e: &Error) -> bool {
    [
        Exit::Unavailable,
        Exit::TempFail,
        Exit::DataErr,
        Exit::NoInput,
        Exit::IoErr,
    ]
    .iter()
    .any(|&c| e.code() == c as i32)
}

struct Session<'a> {
    job: &'a Job,
    store: &'a Store,
    metrics: &'a mut Metrics,
    server: Option<Server>,
    epoch: Option<String>,
    /// Where the stream is: the file, and where its next event must start.
    file: String,
    expected: u64,
    checksum: Checksum,
    /// The creation time the archive has for `file`, checked against the
    /// server's format description of it.
    expect_created: Option<u32>,
    open: Option<Open>,
    /// The server sent something on this connection.
    streamed: bool,
    /// The archive as the session began: a new epoch is named after its
    /// epochs of this server.
    timeline: Timeline,
    /// A segment's key held other events than the server sent: why.
    diverged: Option<String>,
    /// Asked by GTID, and the stream has not yet reached where the
    /// archive ends: what the server sends again is followed, not added.
    catching_up: bool,
    /// Events sent again while catching up.
    sent_again: u64,
    /// The server refused the ask by GTID, or answered it elsewhere than
    /// where the archive ends: why, and whether that is worth a warning.
    gtid_refused: Option<(log::Level, String)>,
}

impl Session<'_> {
    async fn run(
        &mut self,
        connection: &ConnectOptions,
        first: bool,
        new_epoch: Option<String>,
        use_gtid: bool,
        stops: &mut Stopping,
    ) -> Result<Ended> {
        let read_timeout = self.job.heartbeat * 3 + Duration::from_secs(5);
        let connection = connection.clone().with_read_timeout(read_timeout);
        let connection_name = connection.describe();
        let server_id = self.job.server_id;
        let tls = connection.tls_requested()?;
        let (conn, server) = tokio::task::spawn_blocking(move || {
            let mut conn = source::connect(&connection)?;
            let server = source::inspect(&mut conn, server_id, first)?;
            Ok::<_, Error>((conn, server))
        })
        .await
        .map_err(|e| Error::new(Exit::Software, format!("connect task: {e}")))??;
        log::info!(
            "connected to {} ({}, server id {}, binlogs {} to {})",
            connection_name,
            server.version,
            server.server_id,
            server.binlogs[0].0,
            server.binlogs[server.binlogs.len() - 1].0
        );
        let (timeline, end) = self.store.read_end(&server.identity).await?;
        let start = match new_epoch {
            Some(why) => Start::NewEpoch {
                file: server.binlogs[0].0.clone(),
                why,
            },
            None => locate(end.as_ref(), &server),
        };
        let mut gaps = 0;
        let mut gtid = Tracker::default();
        let mut ask_gtid: Option<Position> = None;
        match start {
            Start::Continue {
                epoch,
                file,
                position,
                file_created,
                gtid: known,
            } => {
                // MariaDB is asked by GTID where the archive records the
                // position; MySQL's GTID sets are not followed here.
                ask_gtid = known.clone().filter(|p| {
                    use_gtid && server.flavor == source::Flavor::Mariadb && !p.is_empty()
                });
                match &ask_gtid {
                    Some(p) => log::info!(
                        "going on with epoch {epoch} at {file}:{position}, by GTID position {p}"
                    ),
                    None => log::info!(
                        "going on with epoch {epoch} at {file}:{position}, by file and position"
                    ),
                }
                gtid = Tracker::at(known);
                gaps = timeline
                    .epochs
                    .iter()
                    .find(|e| e.name == epoch)
                    .map_or(0, |e| e.files.iter().filter(|f| f.gap_before).count());
                self.epoch = Some(epoch);
                self.file = file;
                self.expected = position;
                self.expect_created = file_created;
            }
            Start::Gap { epoch, after, file } => {
                log::error!(
                    "the server no longer has the binary logs from {}:{} on (purged before \
                     they were archived): events up to {file} are missing; the archive goes on \
                     from {file}, and a replay cannot cross this gap",
                    after.0,
                    after.1
                );
                let key = self.store.put_gap(&epoch, &after, &file).await?;
                log::info!("recorded the gap as {}", self.store.client.url(&key));
                gaps = timeline
                    .epochs
                    .iter()
                    .find(|e| e.name == epoch)
                    .map_or(0, |e| e.files.iter().filter(|f| f.gap_before).count())
                    + 1;
                self.epoch = Some(epoch);
                self.file = file;
                self.expected = FIRST_EVENT;
            }
            Start::NewEpoch { file, why } => {
                if end.is_some() {
                    log::warn!(
                        "{why}: a new epoch of {} begins at {file}:4, beside the old one",
                        server.identity
                    );
                } else {
                    log::info!("a new epoch of {} from {file}:4 ({why})", server.identity);
                }
                self.file = file;
                self.expected = FIRST_EVENT;
            }
        }
        self.timeline = timeline;
        self.metrics.gaps = gaps as u64;
        self.checksum = server.checksum;
        self.open = Some(Open::new(
            &self.file,
            self.expected,
            &server.identity,
            self.expect_created.unwrap_or(0),
            gtid,
        ));
        self.catching_up = ask_gtid.is_some();
        self.metrics.by_gtid = ask_gtid.is_some();
        let request = Request {
            server_id,
            file: self.file.clone(),
            position: self.expected,
            heartbeat: self.job.heartbeat,
            follow: self.job.follow,
            tls,
            gtid: ask_gtid,
        };
        let flavor = server.flavor;
        self.server = Some(server);
        let mut events =
            tokio::task::spawn_blocking(move || source::start(conn, flavor, request, QUEUE))
                .await
                .map_err(|e| Error::new(Exit::Software, format!("stream task: {e}")))??;
        let _ = notify(
            false,
            &[
                NotifyState::Ready,
                NotifyState::Status(format!("streaming from {}:{}", self.file, self.expected)),
            ],
        );
        loop {
            let cut = self.job.cut;
            let deadline = self.open().deadline(&cut);
            let timer = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                got = events.recv() => match got {
                    Some(Got::Event(bytes)) => {
                        self.streamed = true;
                        let _ = notify(false, &[NotifyState::Watchdog]);
                        match self.event(&bytes) {
                            Ok(Action::Added(last_kind)) => {
                                if self.open().due(&cut, last_kind) {
                                    self.store_open().await?;
                                }
                            }
                            Ok(Action::Switch(file, position)) => {
                                self.store_open().await?;
                                self.switch(file, position);
                            }
                            Ok(Action::Nothing) => {}
                            Err(Interrupt::Lineage(why)) => {
                                self.store_open().await?;
                                return Ok(Ended::Lineage(why));
                            }
                            Err(Interrupt::Error(e)) => {
                                self.store_open().await?;
                                return Err(e);
                            }
                            Err(Interrupt::Gtid(level, why)) => {
                                self.store_open().await?;
                                self.gtid_refused = Some((level, why.clone()));
                                return Err(Error::new(Exit::DataErr, why));
                            }
                        }
                    }
                    Some(Got::End) | None => {
                        self.store_open().await?;
                        if self.job.follow {
                            // A server that shuts down ends the stream so.
                            return Err(Error::new(
                                Exit::Unavailable,
                                format!("the server ended the stream at {}:{}", self.file, self.expected),
                            ));
                        }
                        log::info!("archived to the end of the binary log: {}:{}", self.file, self.expected);
                        return Ok(Ended::Stop);
                    }
                    Some(Got::Failed(e)) => {
                        self.store_open().await?;
                        // 1236 before the stream reached the archive's
                        // end: the server has no such GTID position.
                        if self.catching_up && e.code() == Exit::NoInput as i32 {
                            self.gtid_refused = Some((
                                log::Level::Warn,
                                format!(
                                    "the server refused the ask by GTID position: {}",
                                    e.message()
                                ),
                            ));
                        }
                        return Err(e);
                    }
                },
                _ = timer => self.store_open().await?,
                _ = stops.next() => {
                    let _ = notify(false, &[NotifyState::Stopping]);
                    if let Err(e) = self.store_open().await {
                        // Stopping still: no reconnection for this one.
                        return Ok(Ended::Failed(e.context("stopping: the open segment was not stored")));
                    }
                    log::info!("stopped by a signal; archived to {}:{}", self.file, self.expected);
                    return Ok(Ended::Stop);
                }
            }
        }
    }

    fn open(&mut self) -> &mut Open {
        self.open
            .as_mut()
            .expect("a session has an open segment once streaming")
    }

    fn identity(&self) -> String {
        self.server
            .as_ref()
            .map(|s| s.identity.clone())
            .unwrap_or_default()
    }

    /// Takes one event from the stream: adds it to the open segment, or
    /// follows the stream to another file, or skips what is in no file.
    /// An event that does not start where the archive ends stops the
    /// session.
    fn event(&mut self, bytes: &[u8]) -> std::result::Result<Action, Interrupt> {
        let bad = |what: String| Interrupt::Error(Error::new(Exit::DataErr, what));
        let header = Header::parse(bytes).ok_or_else(|| {
            bad(format!(
                "the server sent {} bytes, not an event",
                bytes.len()
            ))
        })?;
        let event = Event::parse(bytes, self.checksum).map_err(|m| {
            bad(format!(
                "the server sent {m} (type {}, at {}:{})",
                header.kind, self.file, self.expected
            ))
        })?;
        if header.is_heartbeat() {
            // Sent when the server has nothing more: it stands where the
            // stream does.
            log::trace!(
                "heartbeat at {}, the stream at {}",
                header.end,
                self.expected
            );
            self.heartbeat(u64::from(header.end) == self.expected);
            return Ok(Action::Nothing);
        }
        if let Some(checksum) = event.format_checksum() {
            self.checksum = checksum;
        }
        let Some(start) = header.start() else {
            // In no file: the stream's own rotation to the file it sends
            // next, MariaDB's made-up GTID list, or a format description
            // sent again for a position past the file's start.
            if header.kind == kind::ROTATE {
                let (file, position) = event
                    .rotation(self.checksum)
                    .ok_or_else(|| bad("the server sent a rotation without a file name".into()))?;
                if file != self.file && self.catching_up && !self.archived_whole_before(&file) {
                    return Err(self.elsewhere(&file));
                }
                if file != self.file {
                    return Ok(Action::Switch(file, position.max(FIRST_EVENT)));
                }
            } else if header.kind == kind::FORMAT_DESCRIPTION {
                self.check_lineage(header.timestamp)?;
            }
            return Ok(Action::Nothing);
        };
        if start < self.expected && header.kind == kind::FORMAT_DESCRIPTION && start == FIRST_EVENT
        {
            self.check_lineage(header.timestamp)?;
            return Ok(Action::Nothing);
        }
        if self.catching_up {
            // By GTID, the server sends from the start of the transaction
            // after the position, and the file's own events before it:
            // what the archive has already is followed, not added.
            if u64::from(header.end) <= self.expected {
                let checksum = self.checksum;
                self.open().follow(&event, checksum);
                self.sent_again += 1;
                return Ok(Action::Nothing);
            }
            if start != self.expected {
                return Err(Interrupt::Gtid(
                    log::Level::Warn,
                    format!(
                        "asked by GTID position, the server sent an event at {}:{start}, but \
                         the archive is at {}:{}",
                        self.file, self.file, self.expected
                    ),
                ));
            }
            self.catching_up = false;
            log::debug!(
                "by GTID the stream meets the archive at {}:{start}, after {} events \
                 that the archive has",
                self.file,
                self.sent_again
            );
        }
        if start != self.expected {
            return Err(bad(format!(
                "the server sent an event at {}:{start}, but the archive is at {}:{}",
                self.file, self.file, self.expected
            )));
        }
        if header.kind == kind::FORMAT_DESCRIPTION {
            self.check_lineage(header.timestamp)?;
        }
        let checksum = self.checksum;
        self.open().push(&event, checksum);
        self.expected = u64::from(header.end);
        Ok(Action::Added(header.kind))
    }

    /// Whether the archive has all of the file it is in, as the server
    /// lists it, and `next` is the server's next file: by GTID, a server
    /// whose position is at the end of a file (after a restart, or a
    /// rotation that the archive ends just before) sends from the next.
    fn archived_whole_before(&self, next: &str) -> bool {
        let Some(server) = &self.server else {
            return false;
        };
        let files = &server.binlogs;
        files.windows(2).any(|pair| {
            let ((this, size), (following, _)) = (&pair[0], &pair[1]);
            *this == self.file && *size == self.expected && following == next
        })
    }

    /// Asked by GTID, the server streams from `file`, which is not where
    /// the archive ends. A file that the archive has all but its last
    /// events of (the stop event that a server writes as it shuts down
    /// comes after the last transaction) is the usual case after a
    /// restart, and no cause for a warning.
    fn elsewhere(&self, file: &str) -> Interrupt {
        let size = self.server.as_ref().and_then(|s| s.has(&self.file));
        match size {
            Some(size) if size > self.expected => Interrupt::Gtid(
                log::Level::Info,
                format!(
                    "the server's GTID position is in {file}, and the archive has {} to {} \
                     of its {size} bytes: the rest is asked for",
                    self.file, self.expected
                ),
            ),
            _ => Interrupt::Gtid(
                log::Level::Warn,
                format!(
                    "asked by GTID position, the server streams from {file}, but the \
                     archive is at {}:{}",
                    self.file, self.expected
                ),
            ),
        }
    }

    /// A file's format description says when it was made: a file of the
    /// archive's name made at another time is another lineage.
    fn check_lineage(&mut self, created: u32) -> std::result::Result<(), Interrupt> {
        match self.expect_created {
            Some(expected) if expected != created => Err(Interrupt::Lineage(format!(
                "the server's {} was created at {created}, the archive's at {expected}: \
                 not the same file",
                self.file
            ))),
            _ => {
                self.expect_created = Some(created);
                self.open().set_file_created(created);
                Ok(())
            }
        }
    }

    /// Says how far behind the archive is: in the metrics, and to systemd.
    fn heartbeat(&mut self, caught_up: bool) {
        let (len, age) = (self.open().len(), self.open().age());
        let m = &mut *self.metrics;
        m.caught_up = caught_up;
        m.unstored_bytes = len as u64;
        m.unstored_seconds = age.as_secs_f64();
        self.write_metrics();
        let _ = notify(
            false,
            &[NotifyState::Status(format!(
                "{} at {}:{}, {len} bytes not yet stored",
                if caught_up { "caught up" } else { "streaming" },
                self.file,
                self.expected
            ))],
        );
    }

    fn write_metrics(&self) {
        if let Some(path) = &self.job.metrics_file {
            if let Err(e) = self.metrics.write(path) {
                log::warn!("{}", e.message());
            }
        }
    }

    /// Moves to another file (the stream went on there).
    fn switch(&mut self, file: String, position: u64) {
        self.file = file;
        self.expected = position;
        self.expect_created = None;
        let identity = self.identity();
        // The GTID position goes on; the next file's GTID list restates it.
        let gtid = self.open().gtid().clone();
        self.open = Some(Open::new(&self.file, position, &identity, 0, gtid));
    }

    /// Stores the open segment, if it holds anything; after a rotation,
    /// the next segment begins the next file.
    async fn store_open(&mut self) -> Result<()> {
        let open = self.open();
        if open.is_empty() {
            return Ok(());
        }
        let closed = open.close();
        let epoch = match &self.epoch {
            Some(e) => e.clone(),
            None => {
                let name = self
                    .timeline
                    .new_epoch_name(closed.meta.first_time, &self.identity());
                log::info!("epoch {name} begins");
                self.epoch = Some(name.clone());
                name
            }
        };
        let key = match self.store.put_segment(&epoch, &closed).await? {
            Put::Stored(key) => key,
            Put::Diverged(why) => {
                self.diverged = Some(why.clone());
                return Err(Error::new(Exit::DataErr, why));
            }
        };
        log::debug!(
            "stored {} ({} bytes)",
            self.store.client.url(&key),
            closed.bytes.len()
        );
        let m = &mut *self.metrics;
        m.segments += 1;
        m.bytes += closed.bytes.len() as u64;
        m.last_event = closed.meta.last_time;
        m.last_store = chrono::Utc::now().timestamp();
        m.unstored_seconds = 0.0;
        m.unstored_bytes = 0;
        self.write_metrics();
        let when = chrono::DateTime::from_timestamp(i64::from(closed.meta.last_time), 0)
            .unwrap_or_default()
            .format("%Y-%m-%d %H:%M:%S UTC");
        let _ = notify(
            false,
            &[NotifyState::Status(format!(
                "archived to {}:{}, last event at {when}",
                closed.file,
                closed.end()
            ))],
        );
        if let Some(next) = closed.meta.next_file.clone() {
            self.switch(next, FIRST_EVENT);
        }
        Ok(())
    }
}

/// What one event from the stream calls for.
enum Action {
    Nothing,
    /// Added to the open segment; its type.
    Added(u8),
    /// The stream goes on in another file, from this position.
    Switch(String, u64),
}

/// Why a session stops inside the event loop.
enum Interrupt {
    Lineage(String),
    Error(Error),
    /// Asked by GTID, the stream does not meet the archive's end: why,
    /// and how loudly to say it.
    Gtid(log::Level, String),
}
