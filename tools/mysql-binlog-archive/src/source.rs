//! The server side: what the server is (flavour, identity, its binary
//! logs), and the replication stream, read on a thread of its own and
//! handed over as raw events.
//!
//! The stream is read from the connection's socket by `dump`, which hands
//! over each event's bytes as sent. Over TLS the socket is not the
//! protocol's, and the mysql crate's stream is used instead: it parses
//! each event, and the bytes are put back together from the parsed
//! header, body and stored checksum. Either way they are checked again
//! (length and CRC32) before they are used. A parser that panics on an
//! odd event (the crate's does on a short one) ends the stream with an
//! error, as a cut connection would.

use crate::dump;
use mysnap::binlog::event::Checksum;
use mysnap::binlog::gtid::Position;
use mysnap::mysql::{classify, ConnectOptions};
use mysnap::{Error, Exit, Result};
use mysql::prelude::Queryable;
use mysql::{BinlogDumpFlags, BinlogRequest, Conn};
use std::panic::AssertUnwindSafe;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Mariadb,
    Mysql,
}

/// What the server said about itself.
#[derive(Debug, Clone)]
pub struct Server {
    pub flavor: Flavor,
    pub version: String,
    /// Its identity in epoch names: `mariadb-dDOMAIN-sSERVERID` or
    /// `mysql-UUID`.
    pub identity: String,
    pub server_id: u32,
    /// Its binary logs, oldest first, with their sizes.
    pub binlogs: Vec<(String, u64)>,
    /// `binlog_checksum`: the checksum of the events it sends before the
    /// first format description (the first, made-up rotation).
    pub checksum: Checksum,
}

impl Server {
    pub fn has(&self, file: &str) -> Option<u64> {
        self.binlogs
            .iter()
            .find(|(f, _)| f == file)
            .map(|(_, s)| *s)
    }
}

/// A privilege error names the grants that the tool needs.
fn denied(what: &str, error: mysql::Error, grant: &str) -> Error {
    let e = classify(error);
    if e.code() == Exit::NoPerm as i32 {
        Error::new(
            Exit::NoPerm,
            format!("{what}: {} (grant {grant})", e.message()),
        )
    } else {
        e.context(what)
    }
}

const GRANTS: &str = "REPLICATION SLAVE and REPLICATION CLIENT, or on MariaDB 10.5 and later \
                      REPLICATION SLAVE and BINLOG MONITOR";

/// Asks the server what it is, and checks that it can be archived by a
/// replica with `server_id`.
pub fn inspect(conn: &mut Conn, server_id: u32, first: bool) -> Result<Server> {
    let (version, log_bin, own_id): (String, u32, u32) = conn
        .query_first("SELECT VERSION(), @@log_bin, @@server_id")
        .map_err(|e| classify(e).context("reading the server's version"))?
        .ok_or_else(|| Error::new(Exit::DataErr, "the server did not say its version"))?;
    if log_bin == 0 {
        return Err(Error::new(
            Exit::Config,
            "the server has no binary log (log_bin is OFF): start it with --log-bin",
        ));
    }
    if own_id == server_id {
        return Err(Error::new(
            Exit::Config,
            format!("--server-id {server_id} is the server's own server_id: choose another"),
        ));
    }
    let flavor = if version.contains("MariaDB") {
        Flavor::Mariadb
    } else {
        Flavor::Mysql
    };
    let identity = match flavor {
        Flavor::Mariadb => {
            let domain: u32 = conn
                .query_first("SELECT @@gtid_domain_id")
                .map_err(|e| classify(e).context("reading gtid_domain_id"))?
                .unwrap_or(0);
            format!("mariadb-d{domain}-s{own_id}")
        }
        Flavor::Mysql => {
            let uuid: String = conn
                .query_first("SELECT @@server_uuid")
                .map_err(|e| classify(e).context("reading server_uuid"))?
                .unwrap_or_default();
            format!(
                "mysql-{}",
                uuid.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
            )
        }
    };
    let binlogs: Vec<(String, u64)> = conn
        .query_map("SHOW BINARY LOGS", |row: mysql::Row| {
            (
                row.get::<String, _>(0).unwrap_or_default(),
                row.get::<u64, _>(1).unwrap_or_default(),
            )
        })
        .map_err(|e| denied("SHOW BINARY LOGS", e, GRANTS))?;
    if let Some((bad, _)) = binlogs
        .iter()
        .find(|(f, _)| !mysnap::binlog::layout::valid_file(f))
    {
        return Err(Error::new(
            Exit::DataErr,
            format!("the server lists a binary log named '{bad}', not BASENAME.NUMBER"),
        ));
    }
    if binlogs.is_empty() {
        return Err(Error::new(Exit::Config, "the server lists no binary logs"));
    }
    if first {
        check_clash(conn, flavor, server_id)?;
    }
    let checksum: String = conn
        .query_first("SELECT @@binlog_checksum")
        .map_err(|e| classify(e).context("reading binlog_checksum"))?
        .unwrap_or_default();
    let checksum = if checksum.eq_ignore_ascii_case("NONE") {
        Checksum::None
    } else {
        Checksum::Crc32
    };
    Ok(Server {
        checksum,
        flavor,
        version,
        identity,
        server_id: own_id,
        binlogs,
    })
}

/// A replica registered with our server id would be thrown off when we
/// register: refuse to start. Reading the list needs a privilege that the
/// archive does not otherwise need; without it, say so and go on.
fn check_clash(conn: &mut Conn, flavor: Flavor, server_id: u32) -> Result<()> {
    let query = match flavor {
        Flavor::Mariadb => "SHOW SLAVE HOSTS",
        Flavor::Mysql => "SHOW REPLICAS",
    };
    match conn.query_map(query, |row: mysql::Row| row.get::<u32, _>(0).unwrap_or(0)) {
        Ok(ids) if ids.contains(&server_id) => Err(Error::new(
            Exit::Config,
            format!(
                "--server-id {server_id} is already used by a replica of this server \
                 ({query} lists it): registering would disconnect it; choose another"
            ),
        )),
        Ok(_) => Ok(()),
        Err(e) => {
            log::warn!(
                "cannot check that no replica uses server id {server_id} ({query}: {}); \
                 make sure none does",
                mysnap::mysql::describe(&e)
            );
            Ok(())
        }
    }
}

/// What the stream thread hands over.
#[derive(Debug)]
pub enum Got {
    /// One event's bytes, as the server sent them.
    Event(Vec<u8>),
    /// The server has nothing more (only with `follow` off).
    End,
    /// The stream broke: a cut connection, a server error, a bad packet.
    Failed(Error),
}

/// Where and how to stream from.
pub struct Request {
    pub server_id: u32,
    pub file: String,
    pub position: u64,
    pub heartbeat: Duration,
    /// Wait for new events at the end (false: the server ends the stream).
    pub follow: bool,
    /// The connection carries TLS: its socket cannot be read directly.
    pub tls: bool,
    /// MariaDB: ask by this GTID position (`@slave_connect_state`). The
    /// server then sends from the start of the transaction after it, in
    /// the file that holds it, whatever `file` and `position` say.
    pub gtid: Option<Position>,
}

/// Sets up the dump on `conn` and starts the thread that reads it.
/// `capacity` bounds how many events wait in the channel.
pub fn start(
    mut conn: Conn,
    flavor: Flavor,
    request: Request,
    capacity: usize,
) -> Result<mpsc::Receiver<Got>> {
    // The period is in nanoseconds; the server sends a heartbeat when it
    // has had nothing to send for that long.
    let mut setup = vec![format!(
        "SET @master_heartbeat_period = {}",
        request.heartbeat.as_nanos()
    )];
    // A replica that does not say it reads checksums gets the events
    // without them: say that it reads the server's own.
    setup.push("SET @master_binlog_checksum = @@global.binlog_checksum".to_string());
    if flavor == Flavor::Mariadb {
        // Events as they stand in the file: GTID events as GTID events (a
        // replica that says it cannot read them gets them rewritten).
        setup.push("SET @mariadb_slave_capability = 4".to_string());
        if let Some(gtid) = &request.gtid {
            // Digits, '-' and ',' only: a Position prints nothing else.
            setup.push(format!("SET @slave_connect_state = '{gtid}'"));
            // The archive takes what the server wrote, in its order: no
            // checks meant for a replica that applies the events.
            setup.push("SET @slave_gtid_strict_mode = 0".to_string());
            setup.push("SET @slave_gtid_ignore_duplicates = 0".to_string());
        }
    }
    for statement in &setup {
        conn.query_drop(statement)
            .map_err(|e| classify(e).context(statement.clone()))?;
    }
    let read = if request.tls {
        crate_stream(conn, flavor, &request)?
    } else {
        socket_stream(conn, flavor, &request)?
    };
    let (tx, rx) = mpsc::channel(capacity);
    std::thread::Builder::new()
        .name("binlog-stream".into())
        .spawn(move || {
            let mut read = read;
            loop {
                let got = read();
                let last = !matches!(got, Got::Event(_));
                if tx.blocking_send(got).is_err() || last {
                    return;
                }
            }
        })
        .map_err(|e| Error::new(Exit::Software, format!("cannot start a thread: {e}")))?;
    Ok(rx)
}

/// Reads the next event of a started stream.
type Read = Box<dyn FnMut() -> Got + Send>;

/// The stream on the connection's own socket (`dump`): every event, as
/// sent. The connection stays open, unused, as long as the stream.
fn socket_stream(conn: Conn, flavor: Flavor, request: &Request) -> Result<Read> {
    use std::os::fd::{AsRawFd, BorrowedFd};
    // SAFETY: the descriptor is conn's, and conn lives as long as this
    // duplicate (it moves into the closure below).
    let socket = unsafe { BorrowedFd::borrow_raw(conn.as_raw_fd()) }
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .map_err(|e| {
            Error::new(
                Exit::Software,
                format!("cannot use the connection's socket: {e}"),
            )
        })?;
    let mut flags = 0;
    if !request.follow {
        flags |= dump::NON_BLOCK;
    }
    if flavor == Flavor::Mariadb {
        flags |= dump::SEND_ANNOTATE_ROWS;
    }
    let position = u32::try_from(request.position).map_err(|_| {
        Error::new(
            Exit::DataErr,
            format!(
                "position {} is past what COM_BINLOG_DUMP can ask for",
                request.position
            ),
        )
    })?;
    let mut stream = dump::Dump::start(socket, request.server_id, &request.file, position, flags)
        .map_err(|e| denied("starting the binlog dump", e, GRANTS))?;
    Ok(Box::new(move || {
        let _open = &conn;
        match stream.next() {
            Ok(dump::Packet::Event(bytes)) => Got::Event(bytes),
            Ok(dump::Packet::End) => Got::End,
            Err(e) => Got::Failed(stream_error(e)),
        }
    }))
}

/// The mysql crate's stream, for a connection whose socket carries TLS.
/// It cannot ask MariaDB for Annotate_rows events, which MariaDB then
/// leaves out: refuse a server that writes them, rather than archive a
/// hole at every row-based transaction.
fn crate_stream(mut conn: Conn, flavor: Flavor, request: &Request) -> Result<Read> {
    if flavor == Flavor::Mariadb {
        let annotate: Option<u32> = conn
            .query_first("SELECT @@binlog_annotate_row_events")
            .map_err(|e| classify(e).context("reading binlog_annotate_row_events"))?;
        if annotate == Some(1) {
            return Err(Error::new(
                Exit::Config,
                "over TLS this tool cannot ask MariaDB for its Annotate_rows events, and \
                 binlog_annotate_row_events is ON: the archive would miss them; connect by \
                 the socket or without TLS, or set binlog_annotate_row_events=OFF",
            ));
        }
    }
    let mut binlog_request = BinlogRequest::new(request.server_id)
        .with_filename(request.file.clone().into_bytes())
        .with_pos(request.position);
    if !request.follow {
        binlog_request = binlog_request.with_flags(BinlogDumpFlags::BINLOG_DUMP_NON_BLOCK);
    }
    let mut stream = conn
        .get_binlog_stream(binlog_request)
        .map_err(|e| denied("starting the binlog dump", e, GRANTS))?;
    Ok(Box::new(move || {
        match std::panic::catch_unwind(AssertUnwindSafe(|| stream.next())) {
            Ok(Some(Ok(event))) => Got::Event(raw(&event)),
            Ok(Some(Err(e))) => Got::Failed(stream_error(e)),
            Ok(None) => Got::End,
            Err(_) => Got::Failed(Error::new(
                Exit::DataErr,
                "the server sent an event that the binlog parser could not read",
            )),
        }
    }))
}

fn stream_error(e: mysql::Error) -> Error {
    let text = mysnap::mysql::describe(&e);
    match &e {
        // 1236: the file or position is gone (purged, or another lineage).
        mysql::Error::MySqlError(m) if m.code == 1236 => Error::new(Exit::NoInput, text),
        _ => classify(e).context("the binlog stream"),
    }
}

/// The event's bytes as the server sent them: the header, the body, and
/// for a format description its checksum algorithm; then the checksum as
/// received (not one computed here, which would hide a corrupt event).
fn raw(event: &mysql::binlog::events::Event) -> Vec<u8> {
    let header = event.header();
    let mut bytes = Vec::with_capacity(header.event_size() as usize);
    bytes.extend_from_slice(&header.timestamp().to_le_bytes());
    bytes.push(header.event_type_raw());
    bytes.extend_from_slice(&header.server_id().to_le_bytes());
    bytes.extend_from_slice(&header.event_size().to_le_bytes());
    bytes.extend_from_slice(&header.log_pos().to_le_bytes());
    bytes.extend_from_slice(&header.flags_raw().to_le_bytes());
    bytes.extend_from_slice(event.data());
    if header.event_type_raw() == mysnap::binlog::event::kind::FORMAT_DESCRIPTION {
        if let Ok(Some(alg)) = event.footer().get_checksum_alg() {
            bytes.push(alg as u8);
        }
    }
    if let Some(checksum) = event.checksum() {
        bytes.extend_from_slice(&checksum);
    }
    bytes
}

pub fn connect(options: &ConnectOptions) -> Result<Conn> {
    options.connect()
}
