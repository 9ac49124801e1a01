//! A binlog event as the server stores it: the common 19-byte header that
//! every event of format 4 starts with (MySQL 5.0 and later, every
//! MariaDB), and the few bodies the archive reads: the format description
//! (its checksum algorithm), a rotation (the next file's name), and the
//! GTID events of both flavours. Everything here is read from bytes a
//! server sent, so nothing panics on short or odd input: it answers None.

/// The first four bytes of every binlog file.
pub const MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];
/// The position of a file's first event.
pub const FIRST_EVENT: u64 = MAGIC.len() as u64;
pub const HEADER_LEN: usize = 19;
const FLAGS_OFFSET: usize = 17;

/// The flag of the format description event of a file that is still
/// being written; cleared when the file is closed, and left out of the
/// event's checksum.
pub const IN_USE: u16 = 0x01;
/// The flag of an event that a server made up for the stream (the first
/// Rotate, MariaDB's GTID list on connect): it is in no file.
pub const ARTIFICIAL: u16 = 0x20;

/// Event types (the header's fifth byte) that the archive looks at.
pub mod kind {
    pub const QUERY: u8 = 2;
    pub const STOP: u8 = 3;
    pub const ROTATE: u8 = 4;
    pub const FORMAT_DESCRIPTION: u8 = 15;
    pub const XID: u8 = 16;
    pub const HEARTBEAT: u8 = 27;
    pub const MYSQL_GTID: u8 = 33;
    pub const MYSQL_ANONYMOUS_GTID: u8 = 34;
    pub const MYSQL_PREVIOUS_GTIDS: u8 = 35;
    pub const XA_PREPARE: u8 = 38;
    pub const MYSQL_HEARTBEAT_V2: u8 = 41;
    pub const MARIADB_GTID: u8 = 162;
    pub const MARIADB_BINLOG_CHECKPOINT: u8 = 161;
    pub const MARIADB_GTID_LIST: u8 = 163;
    pub const MARIADB_ANNOTATE_ROWS: u8 = 160;
}

/// What an event is to the transaction around it: where transactions
/// begin and end is what a replay may stop at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// About the file, in no transaction: its format, rotation, stop, the
    /// GTID state and checkpoints.
    File,
    /// A GTID event, which begins a transaction. `standalone`: MariaDB's
    /// flag of a statement without BEGIN/COMMIT (DDL), which ends with
    /// its one query; a MySQL GTID says nothing, its first query tells.
    Gtid { gtid: String, standalone: bool },
    /// A query that opens a transaction: BEGIN, START TRANSACTION, XA START.
    Begin,
    /// The event that commits or ends one: an XID, COMMIT, ROLLBACK (not
    /// to a savepoint), XA PREPARE (event or query), XA COMMIT/ROLLBACK.
    Commit,
    /// Any other query.
    Statement,
    /// Any other event (rows, table maps, variables, annotations).
    Data,
}

/// MariaDB's GTID flag of a group without BEGIN/COMMIT.
const FL_STANDALONE: u8 = 1;
/// A query event's fixed part: thread id, exec time, schema length,
/// error code, status variables' length.
const QUERY_POST_HEADER: usize = 13;

/// The checksum algorithm of the events that follow a format description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    None,
    Crc32,
}

impl Checksum {
    pub fn bytes(self) -> usize {
        match self {
            Checksum::None => 0,
            Checksum::Crc32 => 4,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Seconds since the epoch, by the server's clock, when the event (or
    /// its transaction) began.
    pub timestamp: u32,
    pub kind: u8,
    pub server_id: u32,
    /// The whole event's length, header and checksum included.
    pub size: u32,
    /// Where the event ends in its file (0 for one that is in no file).
    pub end: u32,
    pub flags: u16,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl Header {
    pub fn parse(event: &[u8]) -> Option<Header> {
        Some(Header {
            timestamp: u32_at(event, 0)?,
            kind: *event.get(4)?,
            server_id: u32_at(event, 5)?,
            size: u32_at(event, 9)?,
            end: u32_at(event, 13)?,
            flags: u16_at(event, FLAGS_OFFSET)?,
        })
    }

    /// Where the event starts in its file, if it is in one.
    pub fn start(&self) -> Option<u64> {
        if self.end == 0 || self.flags & ARTIFICIAL != 0 {
            return None;
        }
        u64::from(self.end).checked_sub(u64::from(self.size))
    }

    pub fn is_heartbeat(&self) -> bool {
        matches!(self.kind, kind::HEARTBEAT | kind::MYSQL_HEARTBEAT_V2)
    }
}

/// One whole event, checked: its length is the header's, and its checksum
/// (when the format has one) matches its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    pub header: Header,
    pub bytes: &'a [u8],
}

/// Why bytes are not an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Malformed {
    Short(usize),
    Length { header: u32, actual: usize },
    Checksum { stored: u32, computed: u32 },
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::Short(n) => write!(f, "an event of {n} bytes, shorter than its header"),
            Malformed::Length { header, actual } => {
                write!(f, "an event of {actual} bytes whose header says {header}")
            }
            Malformed::Checksum { stored, computed } => write!(
                f,
                "an event whose CRC32 is {stored:08x}, but its bytes give {computed:08x}"
            ),
        }
    }
}

impl<'a> Event<'a> {
    /// Checks `bytes` as one event; `checksum` is the algorithm in force
    /// (a format description event carries its own, and always a CRC).
    pub fn parse(bytes: &'a [u8], checksum: Checksum) -> Result<Event<'a>, Malformed> {
        let header = Header::parse(bytes).ok_or(Malformed::Short(bytes.len()))?;
        if header.size as usize != bytes.len() {
            return Err(Malformed::Length {
                header: header.size,
                actual: bytes.len(),
            });
        }
        let event = Event { header, bytes };
        let algorithm = if header.kind == kind::FORMAT_DESCRIPTION {
            event.format_checksum()
        } else {
            Some(checksum)
        };
        if algorithm == Some(Checksum::Crc32) {
            event.check_crc()?;
        }
        Ok(event)
    }

    fn check_crc(&self) -> Result<(), Malformed> {
        let body_end = self
            .bytes
            .len()
            .checked_sub(4)
            .filter(|&n| n >= HEADER_LEN)
            .ok_or(Malformed::Short(self.bytes.len()))?;
        let stored = u32_at(self.bytes, body_end).unwrap_or_default();
        let mut hasher = crc32fast::Hasher::new();
        if self.header.kind == kind::FORMAT_DESCRIPTION {
            // Computed with the in-use flag clear, as the closed file has it.
            let mut head = [0u8; HEADER_LEN];
            head.copy_from_slice(&self.bytes[..HEADER_LEN]);
            head[FLAGS_OFFSET] &= !(IN_USE as u8);
            hasher.update(&head);
            hasher.update(&self.bytes[HEADER_LEN..body_end]);
        } else {
            hasher.update(&self.bytes[..body_end]);
        }
        let computed = hasher.finalize();
        if stored != computed {
            return Err(Malformed::Checksum { stored, computed });
        }
        Ok(())
    }

    /// The checksum algorithm that a format description event announces:
    /// its last five bytes are the algorithm and the event's own CRC (every
    /// server since MySQL 5.6.1 and MariaDB 5.3 writes them).
    pub fn format_checksum(&self) -> Option<Checksum> {
        if self.header.kind != kind::FORMAT_DESCRIPTION {
            return None;
        }
        let at = self.bytes.len().checked_sub(5)?;
        match self.bytes.get(at)? {
            0 => Some(Checksum::None),
            1 => Some(Checksum::Crc32),
            _ => None,
        }
    }

    /// The body, without the header and the checksum.
    pub fn body(&self, checksum: Checksum) -> Option<&'a [u8]> {
        self.bytes
            .get(HEADER_LEN..self.bytes.len().checked_sub(checksum.bytes())?)
    }

    /// A rotation's next file and position.
    pub fn rotation(&self, checksum: Checksum) -> Option<(String, u64)> {
        if self.header.kind != kind::ROTATE {
            return None;
        }
        let body = self.body(checksum)?;
        let position = u64_at(body, 0)?;
        let name = std::str::from_utf8(body.get(8..)?).ok()?;
        crate::binlog::layout::valid_file(name).then(|| (name.to_string(), position))
    }

    /// A query event's statement text.
    pub fn query(&self, checksum: Checksum) -> Option<&'a [u8]> {
        if self.header.kind != kind::QUERY {
            return None;
        }
        let body = self.body(checksum)?;
        let schema = usize::from(*body.get(8)?);
        let status = usize::from(u16_at(body, 11)?);
        body.get(QUERY_POST_HEADER + status + schema + 1..)
    }

    /// What the event is to its transaction.
    pub fn role(&self, checksum: Checksum) -> Role {
        match self.header.kind {
            kind::FORMAT_DESCRIPTION
            | kind::ROTATE
            | kind::STOP
            | kind::MYSQL_PREVIOUS_GTIDS
            | kind::MARIADB_BINLOG_CHECKPOINT
            | kind::MARIADB_GTID_LIST => Role::File,
            kind::MARIADB_GTID | kind::MYSQL_GTID | kind::MYSQL_ANONYMOUS_GTID => {
                let standalone = self.header.kind == kind::MARIADB_GTID
                    && self
                        .body(checksum)
                        .and_then(|b| b.get(12))
                        .is_some_and(|flags| flags & FL_STANDALONE != 0);
                Role::Gtid {
                    gtid: self.gtid(checksum).unwrap_or_default(),
                    standalone,
                }
            }
            kind::XID | kind::XA_PREPARE => Role::Commit,
            kind::QUERY => match self.query(checksum) {
                Some(text) => query_role(text),
                None => Role::Statement,
            },
            _ => Role::Data,
        }
    }

    /// The transaction's GTID, as the server prints it: MariaDB's
    /// DOMAIN-SERVER-SEQUENCE, or MySQL's UUID:NUMBER.
    pub fn gtid(&self, checksum: Checksum) -> Option<String> {
        let body = self.body(checksum)?;
        match self.header.kind {
            kind::MARIADB_GTID => {
                let sequence = u64_at(body, 0)?;
                let domain = u32_at(body, 8)?;
                Some(format!("{domain}-{}-{sequence}", self.header.server_id))
            }
            kind::MYSQL_GTID => {
                let sid = body.get(1..17)?;
                let number = u64_at(body, 17)?;
                let hex: String = sid.iter().map(|b| format!("{b:02x}")).collect();
                Some(format!(
                    "{}-{}-{}-{}-{}:{number}",
                    &hex[..8],
                    &hex[8..12],
                    &hex[12..16],
                    &hex[16..20],
                    &hex[20..]
                ))
            }
            _ => None,
        }
    }
}

/// BEGIN and COMMIT as the server writes them, whatever the case and
/// spacing; a ROLLBACK TO SAVEPOINT stays inside its transaction.
fn query_role(text: &[u8]) -> Role {
    let text = String::from_utf8_lossy(&text[..text.len().min(64)]).to_ascii_uppercase();
    let words: Vec<&str> = text.split_ascii_whitespace().take(3).collect();
    match words.as_slice() {
        ["BEGIN", ..] | ["START", "TRANSACTION", ..] | ["XA", "START" | "BEGIN", ..] => Role::Begin,
        ["COMMIT", ..] | ["XA", "PREPARE" | "COMMIT" | "ROLLBACK", ..] => Role::Commit,
        ["ROLLBACK", "TO", ..] | ["ROLLBACK", "WORK", "TO", ..] => Role::Statement,
        ["ROLLBACK", ..] => Role::Commit,
        _ => Role::Statement,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An event of `kind` with `body`, ending at `end`, with a CRC32.
    pub fn event(kind: u8, timestamp: u32, end: u32, flags: u16, body: &[u8]) -> Vec<u8> {
        let size = (HEADER_LEN + body.len() + 4) as u32;
        let mut e = Vec::new();
        e.extend_from_slice(&timestamp.to_le_bytes());
        e.push(kind);
        e.extend_from_slice(&7u32.to_le_bytes());
        e.extend_from_slice(&size.to_le_bytes());
        e.extend_from_slice(&end.to_le_bytes());
        e.extend_from_slice(&flags.to_le_bytes());
        e.extend_from_slice(body);
        let mut head = e.clone();
        if kind == kind::FORMAT_DESCRIPTION {
            head[FLAGS_OFFSET] &= !(IN_USE as u8);
        }
        e.extend_from_slice(&crc32fast::hash(&head).to_le_bytes());
        e
    }

    #[test]
    fn a_rotation_names_the_next_file() {
        let mut body = 4u64.to_le_bytes().to_vec();
        body.extend_from_slice(b"binlog.000002");
        let bytes = event(kind::ROTATE, 0, 0, ARTIFICIAL, &body);
        let e = Event::parse(&bytes, Checksum::Crc32).unwrap();
        assert_eq!(
            e.rotation(Checksum::Crc32),
            Some(("binlog.000002".into(), 4))
        );
        assert_eq!(e.header.start(), None, "artificial: in no file");
    }

    #[test]
    fn a_mariadb_gtid_is_domain_server_sequence() {
        let mut body = 42u64.to_le_bytes().to_vec();
        body.extend_from_slice(&3u32.to_le_bytes());
        body.push(0);
        let bytes = event(kind::MARIADB_GTID, 1, 500, 0, &body);
        let e = Event::parse(&bytes, Checksum::Crc32).unwrap();
        assert_eq!(e.gtid(Checksum::Crc32).as_deref(), Some("3-7-42"));
        assert_eq!(e.header.start(), Some(500 - bytes.len() as u64));
    }

    #[test]
    fn a_format_description_checksum_ignores_the_in_use_flag() {
        let mut body = vec![0u8; 80];
        body.push(1); // CRC32
        let bytes = event(kind::FORMAT_DESCRIPTION, 1, 4 + 104, IN_USE, &body);
        let e = Event::parse(&bytes, Checksum::None).unwrap();
        assert_eq!(e.format_checksum(), Some(Checksum::Crc32));
    }

    /// A query event's body: the fixed part, no status variables, schema
    /// "t", then the text.
    pub fn query_body(text: &str) -> Vec<u8> {
        let mut body = vec![0u8; QUERY_POST_HEADER];
        body[8] = 1;
        body.extend_from_slice(b"t\0");
        body.extend_from_slice(text.as_bytes());
        body
    }

    #[test]
    fn roles_mark_where_transactions_begin_and_end() {
        let role = |kind: u8, body: &[u8]| {
            let bytes = event(kind, 1, 100, 0, body);
            Event::parse(&bytes, Checksum::Crc32)
                .unwrap()
                .role(Checksum::Crc32)
        };
        for (text, expected) in [
            ("BEGIN", Role::Begin),
            ("  start transaction", Role::Begin),
            ("COMMIT", Role::Commit),
            ("ROLLBACK", Role::Commit),
            ("rollback to savepoint a", Role::Statement),
            ("XA PREPARE 'x'", Role::Commit),
            ("INSERT INTO t VALUES (1)", Role::Statement),
        ] {
            assert_eq!(role(kind::QUERY, &query_body(text)), expected, "{text}");
        }
        let bytes = event(kind::QUERY, 1, 100, 0, &query_body("DROP TABLE t"));
        let e = Event::parse(&bytes, Checksum::Crc32).unwrap();
        assert_eq!(e.query(Checksum::Crc32), Some(&b"DROP TABLE t"[..]));
        let mut gtid = 9u64.to_le_bytes().to_vec();
        gtid.extend_from_slice(&0u32.to_le_bytes());
        gtid.push(FL_STANDALONE);
        assert_eq!(
            role(kind::MARIADB_GTID, &gtid),
            Role::Gtid {
                gtid: "0-7-9".into(),
                standalone: true
            }
        );
        gtid[12] = 0;
        assert!(matches!(
            role(kind::MARIADB_GTID, &gtid),
            Role::Gtid {
                standalone: false,
                ..
            }
        ));
        assert_eq!(role(kind::XID, &[0; 8]), Role::Commit);
        assert_eq!(role(kind::ROTATE, &[0; 8]), Role::File);
        assert_eq!(role(30, &[0; 8]), Role::Data);
        // A query too short for its fixed part is a statement, no panic.
        assert_eq!(role(kind::QUERY, &[1, 2]), Role::Statement);
    }

    #[test]
    fn bad_bytes_are_refused_without_a_panic() {
        let good = event(kind::XID, 1, 100, 0, &[1, 2, 3, 4, 5, 6, 7, 8]);
        for cut in 0..good.len() {
            assert!(
                Event::parse(&good[..cut], Checksum::Crc32).is_err(),
                "{cut}"
            );
        }
        let mut flipped = good.clone();
        flipped[HEADER_LEN] ^= 1;
        assert!(matches!(
            Event::parse(&flipped, Checksum::Crc32),
            Err(Malformed::Checksum { .. })
        ));
        assert!(Event::parse(&flipped, Checksum::None).is_ok());
        // A header that claims less than a header: no panic either.
        let mut tiny = good.clone();
        tiny[9..13].copy_from_slice(&3u32.to_le_bytes());
        assert!(Event::parse(&tiny, Checksum::Crc32).is_err());
        let rotate = event(kind::ROTATE, 0, 0, 0, &[1, 2]);
        let e = Event::parse(&rotate, Checksum::Crc32).unwrap();
        assert_eq!(e.rotation(Checksum::Crc32), None);
        assert_eq!(e.gtid(Checksum::Crc32), None);
    }
}
