//! The replication stream spoken directly on the connection's socket:
//! `COM_REGISTER_SLAVE`, then `COM_BINLOG_DUMP`, then one packet per event.
//!
//! The mysql crate logs in and runs the setup queries; then its socket is
//! used as is. Two reasons not to use the crate's own binlog stream:
//! - it sends only the non-blocking flag of `COM_BINLOG_DUMP`, so MariaDB
//!   is never asked for its Annotate_rows events (flag 2) and leaves them
//!   out of the stream: with row-based logging the archive would have a
//!   hole at every transaction;
//! - it parses every event (and panics on some), where the archive wants
//!   the bytes exactly as sent. Here they are handed over untouched, and
//!   checked by `mysnap::binlog::event` (length and CRC32) before use.
//!
//! This needs the bytes on the socket to be the protocol's own, so it is
//! for connections without TLS; `source` picks the crate's stream for the
//! others.

use std::io::{BufReader, ErrorKind, Read, Write};

/// `COM_BINLOG_DUMP` flag: end the stream at the end of the last binlog
/// instead of waiting for more.
pub const NON_BLOCK: u16 = 0x01;
/// `COM_BINLOG_DUMP` flag on MariaDB: send Annotate_rows events too
/// (`BINLOG_SEND_ANNOTATE_ROWS_EVENT`).
pub const SEND_ANNOTATE_ROWS: u16 = 0x02;

const COM_REGISTER_SLAVE: u8 = 0x15;
const COM_BINLOG_DUMP: u8 = 0x12;
/// A packet of this length goes on in the next one.
const MAX_PACKET: usize = 0xff_ffff;

/// What one read of the stream gave.
#[derive(Debug)]
pub enum Packet {
    /// An event's bytes, header to checksum.
    Event(Vec<u8>),
    /// The end of the stream (only asked for with `NON_BLOCK`).
    End,
}

/// The stream on a socket that the caller keeps open.
pub struct Dump<S> {
    socket: BufReader<S>,
}

impl<S: Read + Write> Dump<S> {
    /// Registers as replica `server_id` and asks for the events from
    /// `file:position` on.
    pub fn start(
        socket: S,
        server_id: u32,
        file: &str,
        position: u32,
        flags: u16,
    ) -> Result<Dump<S>, mysql::Error> {
        let mut dump = Dump {
            socket: BufReader::new(socket),
        };
        // Host, user and password empty, port 0, rank and master id 0: what
        // the server lists in SHOW SLAVE HOSTS besides the server id.
        let mut register = vec![COM_REGISTER_SLAVE];
        register.extend_from_slice(&server_id.to_le_bytes());
        register.extend_from_slice(&[0, 0, 0]);
        register.extend_from_slice(&0u16.to_le_bytes());
        register.extend_from_slice(&[0; 8]);
        dump.command(&register)?;
        match dump.packet()? {
            reply if reply.first() == Some(&0x00) => {}
            reply => return Err(unexpected("COM_REGISTER_SLAVE", &reply)),
        }
        let mut request = vec![COM_BINLOG_DUMP];
        request.extend_from_slice(&position.to_le_bytes());
        request.extend_from_slice(&flags.to_le_bytes());
        request.extend_from_slice(&server_id.to_le_bytes());
        request.extend_from_slice(file.as_bytes());
        dump.command(&request)?;
        Ok(dump)
    }

    /// The next event, or the end of the stream.
    pub fn next(&mut self) -> Result<Packet, mysql::Error> {
        let packet = self.packet()?;
        match packet.first() {
            Some(0x00) => Ok(Packet::Event(packet[1..].to_vec())),
            // An EOF packet is short; an event never starts with 0xfe.
            Some(0xfe) if packet.len() < 9 => Ok(Packet::End),
            _ => Err(unexpected("the binlog stream", &packet)),
        }
    }

    /// Sends `payload` as a new command (sequence number 0).
    fn command(&mut self, payload: &[u8]) -> Result<(), mysql::Error> {
        debug_assert!(payload.len() < MAX_PACKET);
        let len = (payload.len() as u32).to_le_bytes();
        let mut packet = Vec::with_capacity(4 + payload.len());
        packet.extend_from_slice(&[len[0], len[1], len[2], 0]);
        packet.extend_from_slice(payload);
        let socket = self.socket.get_mut();
        socket.write_all(&packet)?;
        socket.flush()?;
        Ok(())
    }

    /// One logical packet: the pieces of a long one put together. An error
    /// packet becomes the server's error.
    fn packet(&mut self) -> Result<Vec<u8>, mysql::Error> {
        let mut payload = Vec::new();
        loop {
            let mut header = [0u8; 4];
            self.socket.read_exact(&mut header).map_err(closed)?;
            let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
            let start = payload.len();
            payload.resize(start + len, 0);
            self.socket
                .read_exact(&mut payload[start..])
                .map_err(closed)?;
            if len < MAX_PACKET {
                break;
            }
        }
        if payload.first() == Some(&0xff) {
            return Err(server_error(&payload));
        }
        Ok(payload)
    }
}

/// A socket that ended mid-packet is a cut connection.
fn closed(e: std::io::Error) -> mysql::Error {
    if e.kind() == ErrorKind::UnexpectedEof {
        std::io::Error::new(ErrorKind::UnexpectedEof, "the server closed the connection").into()
    } else {
        e.into()
    }
}

/// An error packet: 0xff, the code, '#' and the SQL state, the message.
fn server_error(packet: &[u8]) -> mysql::Error {
    let code = match packet {
        [_, a, b, ..] => u16::from_le_bytes([*a, *b]),
        _ => 0,
    };
    let rest = packet.get(3..).unwrap_or_default();
    let (state, message) = match rest {
        [b'#', state @ ..] if state.len() >= 5 => (
            String::from_utf8_lossy(&state[..5]).into_owned(),
            String::from_utf8_lossy(&state[5..]).into_owned(),
        ),
        _ => (
            "HY000".to_string(),
            String::from_utf8_lossy(rest).into_owned(),
        ),
    };
    mysql::Error::MySqlError(mysql::MySqlError {
        state,
        message,
        code,
    })
}

fn unexpected(what: &str, packet: &[u8]) -> mysql::Error {
    std::io::Error::new(
        ErrorKind::InvalidData,
        format!(
            "{what}: the server sent a packet of {} bytes starting with {:#04x}, \
             neither an event nor its end",
            packet.len(),
            packet.first().copied().unwrap_or(0)
        ),
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A fake socket: reads come from `input`, writes go to `output`.
    struct Wire {
        input: Cursor<Vec<u8>>,
        output: Vec<u8>,
    }

    impl Read for Wire {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl Write for Wire {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.output.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
        let len = (payload.len() as u32).to_le_bytes();
        let mut p = vec![len[0], len[1], len[2], seq];
        p.extend_from_slice(payload);
        p
    }

    fn wire(packets: &[Vec<u8>]) -> Wire {
        Wire {
            input: Cursor::new(packets.concat()),
            output: Vec::new(),
        }
    }

    #[test]
    fn the_requests_carry_the_flags_and_the_coordinates() {
        let w = wire(&[packet(1, &[0, 0, 0, 2, 0, 0, 0])]);
        let dump = Dump::start(
            w,
            4242,
            "mysql-bin.000007",
            1234,
            NON_BLOCK | SEND_ANNOTATE_ROWS,
        )
        .unwrap();
        let out = &dump.socket.get_ref().output;
        // COM_REGISTER_SLAVE: header, command, server id, then 13 bytes.
        assert_eq!(&out[..4], &[18, 0, 0, 0]);
        assert_eq!(out[4], COM_REGISTER_SLAVE);
        assert_eq!(&out[5..9], &4242u32.to_le_bytes());
        let dump_request = &out[22..];
        let payload_len = 1 + 4 + 2 + 4 + "mysql-bin.000007".len();
        assert_eq!(dump_request[0] as usize, payload_len);
        assert_eq!(dump_request[3], 0, "a new command starts at sequence 0");
        assert_eq!(dump_request[4], COM_BINLOG_DUMP);
        assert_eq!(&dump_request[5..9], &1234u32.to_le_bytes());
        assert_eq!(&dump_request[9..11], &3u16.to_le_bytes());
        assert_eq!(&dump_request[11..15], &4242u32.to_le_bytes());
        assert_eq!(&dump_request[15..], b"mysql-bin.000007");
    }

    #[test]
    fn events_come_whole_also_across_long_packets() {
        let long: Vec<u8> = (0..MAX_PACKET + 10).map(|i| (i % 251) as u8).collect();
        let mut first = vec![0x00];
        first.extend_from_slice(&long);
        let ok = packet(1, &[0, 0, 0, 2, 0, 0, 0]);
        let mut packets = vec![ok, packet(1, &first[..MAX_PACKET])];
        packets.push(packet(2, &first[MAX_PACKET..]));
        packets.push(packet(3, &[0x00, 1, 2, 3]));
        packets.push(packet(4, &[0xfe, 0, 0, 2, 0]));
        let mut dump = Dump::start(wire(&packets), 1, "b.000001", 4, 0).unwrap();
        match dump.next().unwrap() {
            Packet::Event(bytes) => assert!(bytes == long, "the long event is put together"),
            other => panic!("{other:?}"),
        }
        match dump.next().unwrap() {
            Packet::Event(bytes) => assert_eq!(bytes, [1, 2, 3]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(dump.next().unwrap(), Packet::End));
    }

    #[test]
    fn a_server_error_keeps_its_code_and_message() {
        let ok = packet(1, &[0, 0, 0, 2, 0, 0, 0]);
        let mut err = vec![0xff];
        err.extend_from_slice(&1236u16.to_le_bytes());
        err.extend_from_slice(b"#HY000Could not find first log file name");
        let mut dump = Dump::start(wire(&[ok, packet(1, &err)]), 1, "b.000001", 4, 0).unwrap();
        match dump.next() {
            Err(mysql::Error::MySqlError(e)) => {
                assert_eq!(e.code, 1236);
                assert_eq!(e.state, "HY000");
                assert_eq!(e.message, "Could not find first log file name");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_refused_registration_is_the_servers_error() {
        let mut err = vec![0xff];
        err.extend_from_slice(&1045u16.to_le_bytes());
        err.extend_from_slice(b"#28000Access denied");
        match Dump::start(wire(&[packet(1, &err)]), 1, "b.000001", 4, 0) {
            Err(mysql::Error::MySqlError(e)) => assert_eq!(e.code, 1045),
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("accepted an error packet"),
        }
    }

    #[test]
    fn a_connection_cut_mid_packet_is_an_error() {
        let ok = packet(1, &[0, 0, 0, 2, 0, 0, 0]);
        let mut cut = packet(1, &[0x00; 100]);
        cut.truncate(50);
        let mut dump = Dump::start(wire(&[ok, cut]), 1, "b.000001", 4, 0).unwrap();
        let e = dump.next().unwrap_err();
        assert!(e.to_string().contains("closed the connection"), "{e}");
    }
}
