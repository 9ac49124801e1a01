//! Reads the archived events in order, as the segments arrive, and finds
//! where the replay stops: at a transaction's boundary, so that every
//! transaction before the target is applied whole and none after it.
//!
//! A transaction begins at its GTID event (or a BEGIN without one) and
//! ends with its commit (XID, COMMIT, ROLLBACK, XA PREPARE); a MariaDB
//! GTID marked standalone, and a MySQL GTID whose first query is not
//! BEGIN, end with that one statement. Events about the file (format,
//! rotation, GTID lists) are in no transaction. Every event is checked:
//! whole, its CRC, and starting where the one before it ended.

use mysnap::binlog::event::{kind, Checksum, Event, Header, Role, FIRST_EVENT, HEADER_LEN};
use mysnap::binlog::target::{show_time, Position, Target};
use mysnap::{Error, Exit, Result};

/// The last transaction applied: what the tool reports at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub gtid: Option<String>,
    /// Its last event's time.
    pub time: u32,
    /// Where it ends: the next transaction's coordinates.
    pub end: Position,
}

/// As the plan and the last line print it: time, GTID, end.
impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}, GTID {}, {}",
            show_time(i64::from(self.time)),
            self.gtid.as_deref().unwrap_or("none"),
            self.end
        )
    }
}

/// How an open transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// With its commit event.
    Transactional,
    /// With its first statement (or a commit).
    Standalone,
    /// A MySQL GTID: BEGIN makes it transactional, another query ends it.
    Undecided,
}

#[derive(Debug)]
struct Open {
    start: u64,
    gtid: Option<String>,
    shape: Shape,
    /// Its newest event's time so far.
    time: u32,
}

pub struct Scanner {
    target: Target,
    from: Position,
    file: String,
    /// Where the next event starts in `file`.
    position: u64,
    checksum: Checksum,
    /// The start of an event that the last segment did not hold whole.
    carry: Vec<u8>,
    /// The file's last event ended it: Some(next file) after a rotation,
    /// Some(None) after the server's stop.
    ended: Option<Option<String>>,
    open: Option<Open>,
    /// FROM has been passed: events are applied, and the target looked for.
    applying: bool,
    pub last: Option<Applied>,
    /// The first applied transaction's GTID.
    pub first_gtid: Option<String>,
    pub transactions: u64,
    /// The newest event time seen after FROM.
    pub newest: u32,
}

fn bad(message: String) -> Error {
    Error::new(Exit::DataErr, message)
}

impl Scanner {
    pub fn new(from: Position, target: Target) -> Scanner {
        Scanner {
            target,
            from,
            file: String::new(),
            position: 0,
            checksum: Checksum::Crc32,
            carry: Vec::new(),
            ended: None,
            open: None,
            applying: false,
            last: None,
            first_gtid: None,
            transactions: 0,
            newest: 0,
        }
    }

    /// Where the events read so far end.
    pub fn end(&self) -> Position {
        Position {
            file: self.file.clone(),
            position: self.position,
        }
    }

    /// The GTID of a transaction that the archive holds only the start of.
    pub fn unfinished(&self) -> Option<String> {
        self.open
            .as_ref()
            .map(|o| o.gtid.clone().unwrap_or_default())
    }

    /// The events go on in `name`, from its first event. Returns the stop
    /// when the target was the end of the file before.
    pub fn begin_file(&mut self, name: &str) -> Result<Option<Position>> {
        if !self.file.is_empty() {
            if !self.carry.is_empty() {
                return Err(bad(format!(
                    "{}: the archive ends inside an event at {}",
                    self.file, self.position
                )));
            }
            match self.ended.take() {
                None => {
                    return Err(bad(format!(
                        "the archive of {} ends at {} without its rotation, and {name} \
                         follows: events between them are missing",
                        self.file, self.position
                    )))
                }
                Some(Some(next)) if next != name => {
                    return Err(bad(format!(
                        "{} rotates to {next}, but the archive goes on with {name}",
                        self.file
                    )))
                }
                Some(_) => {}
            }
            if !self.applying {
                self.pass_from()?;
            }
            if let Target::Position(p) = &self.target {
                if p.file == self.file {
                    if p.position > self.position {
                        return Err(bad(format!(
                            "{} ends at {}: it has no position {}",
                            self.file, self.position, p.position
                        )));
                    }
                    return Ok(Some(Position {
                        file: name.to_string(),
                        position: FIRST_EVENT,
                    }));
                }
            }
        } else if name != self.from.file {
            return Err(Error::new(
                Exit::Software,
                format!("the plan starts at {name}, not at {}", self.from.file),
            ));
        }
        self.file = name.to_string();
        self.position = FIRST_EVENT;
        self.checksum = Checksum::Crc32;
        self.open = None;
        Ok(None)
    }

    /// The bytes of `file` from `start` on (a segment). Returns the stop
    /// once it is among them.
    pub fn feed(&mut self, start: u64, bytes: &[u8]) -> Result<Option<Position>> {
        if start != self.position + self.carry.len() as u64 {
            return Err(Error::new(
                Exit::Software,
                format!("{}: a segment at {start} out of order", self.file),
            ));
        }
        let mut carried = std::mem::take(&mut self.carry);
        let data: &[u8] = if carried.is_empty() {
            bytes
        } else {
            carried.extend_from_slice(bytes);
            &carried
        };
        let mut at = 0;
        while data.len() - at >= HEADER_LEN {
            let header = Header::parse(&data[at..]).expect("a whole header");
            let size = header.size as usize;
            if size < HEADER_LEN {
                return Err(bad(format!(
                    "{}:{}: an event header that gives a size of {size}",
                    self.file, self.position
                )));
            }
            if data.len() - at < size {
                break;
            }
            let stop = self.event(&data[at..at + size])?;
            at += size;
            if stop.is_some() {
                return Ok(stop);
            }
        }
        self.carry = data[at..].to_vec();
        Ok(None)
    }

    /// The archive has nothing more: the stop, if the target is its very
    /// end; None when it ends before the target.
    pub fn finish(&mut self) -> Result<Option<Position>> {
        if !self.carry.is_empty() {
            return Err(bad(format!(
                "{}: the archive ends inside an event at {}",
                self.file, self.position
            )));
        }
        if !self.applying {
            self.pass_from()?;
        }
        Ok(match &self.target {
            Target::Position(p)
                if p.file == self.file && p.position == self.position && self.open.is_none() =>
            {
                Some(self.end())
            }
            _ => None,
        })
    }

    /// Checks that FROM is where the events read so far end, outside a
    /// transaction.
    fn pass_from(&mut self) -> Result<()> {
        if self.file != self.from.file || self.position != self.from.position {
            return Err(bad(format!(
                "{} is beyond the end of the archived {} ({})",
                self.from, self.file, self.position
            )));
        }
        self.check_boundary()?;
        self.applying = true;
        Ok(())
    }

    fn check_boundary(&self) -> Result<()> {
        match &self.open {
            Some(open) => Err(bad(format!(
                "{} is inside a transaction ({}, from {}:{}): not where a backup's \
                 coordinates can be",
                self.from,
                open.gtid.as_deref().unwrap_or("no GTID"),
                self.file,
                open.start
            ))),
            None => Ok(()),
        }
    }

    fn event(&mut self, bytes: &[u8]) -> Result<Option<Position>> {
        let (file, pos) = (self.file.clone(), self.position);
        let event =
            Event::parse(bytes, self.checksum).map_err(|m| bad(format!("{file}:{pos}: {m}")))?;
        let header = event.header;
        if header.start() != Some(pos) {
            return Err(bad(format!(
                "{file}:{pos}: the event says it ends at {}, not at {}",
                header.end,
                pos + u64::from(header.size)
            )));
        }
        let end = pos + u64::from(header.size);
        if !self.applying && file == self.from.file {
            if pos == self.from.position {
                self.check_boundary()?;
                self.applying = true;
            } else if pos < self.from.position && end > self.from.position {
                return Err(bad(format!(
                    "{} is not where an event starts ({file}:{pos} holds one to {end})",
                    self.from
                )));
            }
        }
        if let Some(checksum) = event.format_checksum() {
            self.checksum = checksum;
        }
        let role = event.role(self.checksum);
        self.position = end;
        match header.kind {
            kind::ROTATE => self.ended = Some(event.rotation(self.checksum).map(|(f, _)| f)),
            kind::STOP => self.ended = Some(None),
            _ => {}
        }
        let stop = self.step(&role, &header, pos, end)?;
        if self.applying {
            self.newest = self.newest.max(header.timestamp);
        }
        Ok(stop.map(|position| Position {
            file: file.clone(),
            position,
        }))
    }

    /// Moves the transaction state by one event at `pos..end`; the stop
    /// position in this file when the target is reached.
    fn step(&mut self, role: &Role, header: &Header, pos: u64, end: u64) -> Result<Option<u64>> {
        // A GTID or a file event closes what is still open.
        if matches!(role, Role::File | Role::Gtid { .. }) {
            if let Some(stop) = self.close(pos) {
                return Ok(Some(stop));
            }
        }
        match (role, self.open.as_mut()) {
            (Role::Gtid { gtid, standalone }, _) => {
                let shape = match (header.kind, standalone) {
                    (kind::MARIADB_GTID, true) => Shape::Standalone,
                    (kind::MARIADB_GTID, false) => Shape::Transactional,
                    _ => Shape::Undecided,
                };
                self.open = Some(Open {
                    start: pos,
                    gtid: Some(gtid.clone()).filter(|g| !g.is_empty()),
                    shape,
                    time: 0,
                });
            }
            (Role::Begin, Some(open)) if open.shape == Shape::Undecided => {
                open.shape = Shape::Transactional
            }
            (Role::File, _) | (_, Some(_)) => {}
            (Role::Begin, None) => {
                self.open = Some(Open {
                    start: pos,
                    gtid: None,
                    shape: Shape::Transactional,
                    time: 0,
                })
            }
            // An event outside any transaction is one of its own.
            (_, None) => {
                self.open = Some(Open {
                    start: pos,
                    gtid: None,
                    shape: Shape::Standalone,
                    time: 0,
                })
            }
        }
        if let Some(open) = self.open.as_mut() {
            open.time = open.time.max(header.timestamp);
        }
        let item_start = self.open.as_ref().map_or(pos, |o| o.start);
        if !self.applying {
            self.check_before_from(role, header)?;
        } else {
            let reached = match &self.target {
                Target::Time(t) => i64::from(header.timestamp) > *t,
                Target::Position(p) => p.file == self.file && end > p.position,
                Target::Gtid {
                    gtid,
                    inclusive: false,
                } => matches!(role, Role::Gtid { gtid: g, .. } if g == gtid),
                Target::Gtid { .. } => false,
            };
            if reached {
                return Ok(Some(item_start));
            }
        }
        let ends = match (role, self.open.as_ref().map(|o| o.shape)) {
            (Role::Commit, Some(_)) => true,
            (Role::Statement, Some(Shape::Standalone | Shape::Undecided)) => true,
            (Role::Data, Some(Shape::Standalone)) => item_start == pos,
            _ => false,
        };
        Ok(if ends { self.close(end) } else { None })
    }

    /// Ends the open transaction at `end`; the stop when it was the
    /// target (inclusive).
    fn close(&mut self, end: u64) -> Option<u64> {
        let open = self.open.take()?;
        if !self.applying {
            return None;
        }
        self.transactions += 1;
        if self.transactions == 1 {
            self.first_gtid = open.gtid.clone();
        }
        let reached = matches!(&self.target, Target::Gtid { gtid, inclusive: true }
            if open.gtid.as_deref() == Some(gtid.as_str()));
        self.last = Some(Applied {
            gtid: open.gtid,
            time: open.time,
            end: Position {
                file: self.file.clone(),
                position: end,
            },
        });
        reached.then_some(end)
    }

    /// Before FROM, the base backup holds the events: one past the target
    /// means the backup is newer than the target.
    fn check_before_from(&self, role: &Role, header: &Header) -> Result<()> {
        let newer = match (&self.target, role) {
            (_, Role::File) => false,
            (Target::Time(t), _) => i64::from(header.timestamp) > *t,
            (Target::Gtid { gtid, .. }, Role::Gtid { gtid: g, .. }) => g == gtid,
            _ => false,
        };
        if newer {
            return Err(bad(format!(
                "{}:{} is before {}, but already past the target {}: the base backup is \
                 newer than the target; restore an older one",
                self.file,
                self.position - u64::from(header.size),
                self.from,
                self.target
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysnap::binlog::event::MAGIC;

    /// A binlog file built event by event, with real CRCs.
    struct File {
        bytes: Vec<u8>,
    }

    impl File {
        fn new() -> File {
            let mut f = File {
                bytes: MAGIC.to_vec(),
            };
            let mut fde = vec![0u8; 80];
            fde.push(1); // CRC32
            f.push(kind::FORMAT_DESCRIPTION, 100, 0, &fde);
            f
        }

        fn push(&mut self, kind: u8, time: u32, flags: u16, body: &[u8]) -> u64 {
            let start = self.bytes.len() as u64;
            let size = (HEADER_LEN + body.len() + 4) as u32;
            let mut e = Vec::new();
            e.extend_from_slice(&time.to_le_bytes());
            e.push(kind);
            e.extend_from_slice(&1u32.to_le_bytes());
            e.extend_from_slice(&size.to_le_bytes());
            e.extend_from_slice(&(start as u32 + size).to_le_bytes());
            e.extend_from_slice(&flags.to_le_bytes());
            e.extend_from_slice(body);
            e.extend_from_slice(&crc32fast::hash(&e).to_le_bytes());
            self.bytes.extend_from_slice(&e);
            start
        }

        fn query(&mut self, time: u32, text: &str) -> u64 {
            let mut body = vec![0u8; 13];
            body.push(0);
            body.extend_from_slice(text.as_bytes());
            self.push(kind::QUERY, time, 0, &body)
        }

        fn gtid(&mut self, time: u32, seq: u64, standalone: bool) -> u64 {
            let mut body = seq.to_le_bytes().to_vec();
            body.extend_from_slice(&0u32.to_le_bytes());
            body.push(u8::from(standalone));
            self.push(kind::MARIADB_GTID, time, 0, &body)
        }

        /// A row insert as MariaDB logs it: GTID, rows, XID.
        fn insert(&mut self, time: u32, seq: u64) -> u64 {
            let start = self.gtid(time, seq, false);
            self.push(30, time, 0, &[1, 2, 3]);
            self.push(kind::XID, time, 0, &[0; 8]);
            start
        }

        fn rotate(&mut self, time: u32, next: &str) -> u64 {
            let mut body = 4u64.to_le_bytes().to_vec();
            body.extend_from_slice(next.as_bytes());
            self.push(kind::ROTATE, time, 0, &body)
        }

        fn end(&self) -> u64 {
            self.bytes.len() as u64
        }
    }

    fn at(file: &str, position: u64) -> Position {
        Position {
            file: file.into(),
            position,
        }
    }

    /// Feeds `files` to a scanner, each in segments of `cut` bytes.
    fn scan(
        from: Position,
        target: Target,
        files: &[(&str, &File)],
        cut: usize,
    ) -> (Scanner, Result<Option<Position>>) {
        let mut s = Scanner::new(from, target);
        for (name, file) in files {
            match s.begin_file(name) {
                Ok(Some(stop)) => return (s, Ok(Some(stop))),
                Ok(None) => {}
                Err(e) => return (s, Err(e)),
            }
            for (i, chunk) in file.bytes[4..].chunks(cut).enumerate() {
                match s.feed(4 + (i * cut) as u64, chunk) {
                    Ok(None) => {}
                    other => return (s, other),
                }
            }
        }
        let result = s.finish();
        (s, result)
    }

    fn two_files() -> (File, File, Vec<u64>) {
        let mut a = File::new();
        let mut starts = vec![];
        starts.push(a.gtid(100, 1, true));
        a.query(100, "CREATE TABLE t (id INT)");
        for (i, t) in [(2, 100), (3, 101), (4, 102)] {
            starts.push(a.insert(t, i));
        }
        a.rotate(102, "b.000002");
        let mut b = File::new();
        for (i, t) in [(5, 103), (6, 104)] {
            starts.push(b.insert(t, i));
        }
        starts.push(b.gtid(105, 7, true));
        b.query(105, "DROP TABLE t");
        (a, b, starts)
    }

    #[test]
    fn a_time_keeps_its_second_and_stops_before_the_next() {
        let (a, b, starts) = two_files();
        for cut in [7, 64, 100_000] {
            let (s, stop) = scan(
                at("b.000001", 4),
                Target::Time(103),
                &[("b.000001", &a), ("b.000002", &b)],
                cut,
            );
            assert_eq!(stop.unwrap(), Some(at("b.000002", starts[5])), "{cut}");
            assert_eq!(s.transactions, 5);
            let last = s.last.unwrap();
            assert_eq!(last.gtid.as_deref(), Some("0-1-5"));
            assert_eq!(last.time, 103);
            assert_eq!(last.end, at("b.000002", starts[5]));
        }
    }

    #[test]
    fn a_gtid_stops_after_or_before_its_transaction() {
        let (a, b, starts) = two_files();
        let files = [("b.000001", &a), ("b.000002", &b)];
        let gtid = |g: &str, inclusive| Target::Gtid {
            gtid: g.into(),
            inclusive,
        };
        let (_, stop) = scan(at("b.000001", 4), gtid("0-1-7", false), &files, 50);
        assert_eq!(stop.unwrap(), Some(at("b.000002", starts[6])));
        let (s, stop) = scan(at("b.000001", 4), gtid("0-1-6", true), &files, 50);
        assert_eq!(stop.unwrap(), Some(at("b.000002", starts[6])));
        assert_eq!(s.last.unwrap().gtid.as_deref(), Some("0-1-6"));
        // The DDL at the very end of the archive, inclusive: it is whole.
        let (s, stop) = scan(at("b.000001", 4), gtid("0-1-7", true), &files, 50);
        assert_eq!(stop.unwrap(), Some(at("b.000002", b.end())));
        assert_eq!(s.transactions, 7);
        // Not in the archive: it ends first.
        let (_, stop) = scan(at("b.000001", 4), gtid("0-1-99", true), &files, 50);
        assert_eq!(stop.unwrap(), None);
        // Before FROM: the base is past the target.
        let e = scan(at("b.000001", starts[2]), gtid("0-1-2", true), &files, 50)
            .1
            .unwrap_err();
        assert_eq!(e.code(), 65);
        assert!(
            e.message().contains("newer than the target"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn a_position_applies_what_ends_before_it() {
        let (a, b, starts) = two_files();
        let files = [("b.000001", &a), ("b.000002", &b)];
        let pos = |f: &str, p| Target::Position(at(f, p));
        // Inside the transaction that starts at starts[3]: stop before it.
        let (_, stop) = scan(
            at("b.000001", starts[1]),
            pos("b.000001", starts[3] + 30),
            &files,
            50,
        );
        assert_eq!(stop.unwrap(), Some(at("b.000001", starts[3])));
        // The end of the first file: all of it, nothing of the next.
        let (s, stop) = scan(
            at("b.000001", starts[1]),
            pos("b.000001", a.end()),
            &files,
            50,
        );
        assert_eq!(stop.unwrap(), Some(at("b.000002", 4)));
        assert_eq!(s.transactions, 3);
        // The archive's end.
        let (_, stop) = scan(at("b.000001", 4), pos("b.000002", b.end()), &files, 50);
        assert_eq!(stop.unwrap(), Some(at("b.000002", b.end())));
        let e = scan(at("b.000001", 4), pos("b.000001", a.end() + 1), &files, 50)
            .1
            .unwrap_err();
        assert!(e.message().contains("no position"), "{}", e.message());
    }

    #[test]
    fn from_must_be_a_transaction_boundary() {
        let (a, b, starts) = two_files();
        let files = [("b.000001", &a), ("b.000002", &b)];
        for from in [starts[2] + 1, starts[2] + 42] {
            let e = scan(at("b.000001", from), Target::Time(999), &files, 50)
                .1
                .unwrap_err();
            assert_eq!(e.code(), 65);
        }
        let e = scan(at("b.000001", a.end() + 10), Target::Time(999), &files, 50)
            .1
            .unwrap_err();
        assert!(e.message().contains("beyond the end"), "{}", e.message());
    }

    #[test]
    fn a_missing_rotation_or_a_bad_event_is_refused() {
        let (mut a, b, _) = two_files();
        let rotate_at = a.bytes.len() - (HEADER_LEN + 8 + 8 + 4);
        let unrotated = File {
            bytes: a.bytes[..rotate_at].to_vec(),
        };
        let files = [("b.000001", &unrotated), ("b.000002", &b)];
        let e = scan(at("b.000001", 4), Target::Time(999), &files, 50)
            .1
            .unwrap_err();
        assert!(
            e.message().contains("without its rotation"),
            "{}",
            e.message()
        );
        let n = a.bytes.len();
        a.bytes[n - 6] ^= 1;
        let files = [("b.000001", &a), ("b.000002", &b)];
        let e = scan(at("b.000001", 4), Target::Time(999), &files, 50)
            .1
            .unwrap_err();
        assert!(e.message().contains("CRC32"), "{}", e.message());
    }

    #[test]
    fn mysql_transactions_begin_with_their_first_query() {
        let mut f = File::new();
        let gtid_body = |n: u8| {
            let mut body = vec![0u8];
            body.extend_from_slice(&[n; 16]);
            body.extend_from_slice(&1u64.to_le_bytes());
            body
        };
        let first = f.push(kind::MYSQL_GTID, 10, 0, &gtid_body(1));
        f.query(10, "BEGIN");
        f.query(10, "INSERT INTO t VALUES (1)");
        f.push(kind::XID, 10, 0, &[0; 8]);
        let ddl = f.push(kind::MYSQL_GTID, 11, 0, &gtid_body(2));
        f.query(11, "CREATE TABLE u (id INT)");
        let after = f.end();
        let (s, stop) = scan(
            at("b.000001", 4),
            Target::Position(at("b.000001", after)),
            &[("b.000001", &f)],
            1000,
        );
        assert_eq!(stop.unwrap(), Some(at("b.000001", after)));
        assert_eq!(s.transactions, 2);
        assert!(first < ddl);
        assert_eq!(s.unfinished(), None);
    }
}
