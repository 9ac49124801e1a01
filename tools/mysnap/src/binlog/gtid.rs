//! MariaDB's GTID position: for each replication domain, the last
//! transaction (server id and sequence number) that is in the binlog up to
//! some point. It is what a replica gives `@slave_connect_state` to be sent
//! the transactions after it, and what the archive records at the end of
//! each segment, so that the archiver can go on by GTID.
//!
//! It is tracked from the events: a file's Gtid_list event gives the
//! position at the file's start, and each transaction moves its domain on
//! once it is whole (its commit, or for a standalone GTID its one
//! statement). A transaction that has begun but not ended is not in the
//! position: a replica that connects with it is sent that transaction
//! again, from its GTID event.

use super::event::{kind, Checksum, Event, Role};
use std::collections::BTreeMap;
use std::fmt;

/// One domain's last transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gtid {
    pub domain: u32,
    pub server: u32,
    pub sequence: u64,
}

/// The position: one GTID per domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    domains: BTreeMap<u32, (u32, u64)>,
}

/// At most this many domains are read from an event or from metadata: a
/// real server has a handful, and the metadata must stay small.
const MAX_DOMAINS: usize = 64;

impl Position {
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    fn set(&mut self, gtid: Gtid) {
        self.domains
            .insert(gtid.domain, (gtid.server, gtid.sequence));
    }

    /// The position as a Gtid_list event's body states it: a count (its
    /// low 28 bits; the high 4 are flags), then (domain, server, sequence)
    /// for each domain. None for a body that is not one.
    pub fn from_gtid_list(body: &[u8]) -> Option<Position> {
        let count = u32::from_le_bytes(body.get(..4)?.try_into().ok()?) & 0x0fff_ffff;
        let count = usize::try_from(count).ok()?;
        if count > MAX_DOMAINS {
            return None;
        }
        let mut position = Position::default();
        for entry in body.get(4..4 + 16 * count)?.chunks_exact(16) {
            position.set(Gtid {
                domain: u32::from_le_bytes(entry[0..4].try_into().ok()?),
                server: u32::from_le_bytes(entry[4..8].try_into().ok()?),
                sequence: u64::from_le_bytes(entry[8..16].try_into().ok()?),
            });
        }
        Some(position)
    }
}

impl fmt::Display for Position {
    /// As MariaDB prints it: `D-S-N,D-S-N`, in the order of the domains.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (domain, (server, sequence))) in self.domains.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{domain}-{server}-{sequence}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Position {
    type Err = String;

    /// `D-S-N,D-S-N`, each domain once; "" is the empty position.
    fn from_str(text: &str) -> Result<Position, String> {
        let mut position = Position::default();
        if text.is_empty() {
            return Ok(position);
        }
        for part in text.split(',') {
            let numbers: Vec<&str> = part.split('-').collect();
            let gtid = match numbers.as_slice() {
                [d, s, n] => (|| {
                    Some(Gtid {
                        domain: d.parse().ok()?,
                        server: s.parse().ok()?,
                        sequence: n.parse().ok()?,
                    })
                })(),
                _ => None,
            }
            .ok_or_else(|| format!("'{part}' is not a GTID (DOMAIN-SERVER-SEQUENCE)"))?;
            if position.domains.contains_key(&gtid.domain) {
                return Err(format!("domain {} is given twice", gtid.domain));
            }
            if position.domains.len() == MAX_DOMAINS {
                return Err(format!("more than {MAX_DOMAINS} domains"));
            }
            position.set(gtid);
        }
        Ok(position)
    }
}

/// Follows the position through a file's events, in order.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    /// Known once a Gtid_list has been read, or when given at a point.
    position: Option<Position>,
    /// The transaction begun and not yet ended, and whether it is
    /// standalone (it ends with its first statement).
    open: Option<(Gtid, bool)>,
}

impl Tracker {
    /// A tracker that knows the position at the point it starts from,
    /// which must be between transactions.
    pub fn at(position: Option<Position>) -> Tracker {
        Tracker {
            position,
            open: None,
        }
    }

    /// The position after the last whole transaction seen, if known.
    pub fn position(&self) -> Option<&Position> {
        self.position.as_ref()
    }

    /// Whether a transaction has begun and not ended.
    pub fn in_transaction(&self) -> bool {
        self.open.is_some()
    }

    /// Takes the next event.
    pub fn push(&mut self, event: &Event, checksum: Checksum) {
        match event.header.kind {
            kind::MARIADB_GTID_LIST => {
                // The position at the file's start: what the server wrote
                // is the truth, whatever was tracked before it.
                self.position = event.body(checksum).and_then(Position::from_gtid_list);
                self.open = None;
                return;
            }
            kind::MARIADB_GTID => {
                let body = event.body(checksum).unwrap_or_default();
                let gtid = (|| {
                    Some(Gtid {
                        sequence: u64::from_le_bytes(body.get(0..8)?.try_into().ok()?),
                        domain: u32::from_le_bytes(body.get(8..12)?.try_into().ok()?),
                        server: event.header.server_id,
                    })
                })();
                let standalone = matches!(
                    event.role(checksum),
                    Role::Gtid {
                        standalone: true,
                        ..
                    }
                );
                // A GTID event that cannot be read leaves the position
                // unknown from here on, rather than wrong.
                match gtid {
                    Some(gtid) => self.open = Some((gtid, standalone)),
                    None => {
                        self.position = None;
                        self.open = None;
                    }
                }
                return;
            }
            _ => {}
        }
        let Some((gtid, standalone)) = self.open else {
            return;
        };
        let ends = match event.role(checksum) {
            Role::Commit => true,
            Role::Statement => standalone,
            _ => false,
        };
        if ends {
            if let Some(position) = &mut self.position {
                position.set(gtid);
            }
            self.open = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binlog::event::tests::{event, query_body};

    fn gtid_event(domain: u32, server: u32, sequence: u64, standalone: bool) -> Vec<u8> {
        let mut body = sequence.to_le_bytes().to_vec();
        body.extend_from_slice(&domain.to_le_bytes());
        body.push(u8::from(standalone));
        let mut e = event(kind::MARIADB_GTID, 1, 100, 0, &body);
        // The server id is the header's.
        e[5..9].copy_from_slice(&server.to_le_bytes());
        let crc = crc32fast::hash(&e[..e.len() - 4]);
        let at = e.len() - 4;
        e[at..].copy_from_slice(&crc.to_le_bytes());
        e
    }

    fn gtid_list(entries: &[(u32, u32, u64)]) -> Vec<u8> {
        let mut body = (entries.len() as u32).to_le_bytes().to_vec();
        for (d, s, n) in entries {
            body.extend_from_slice(&d.to_le_bytes());
            body.extend_from_slice(&s.to_le_bytes());
            body.extend_from_slice(&n.to_le_bytes());
        }
        event(kind::MARIADB_GTID_LIST, 1, 100, 0, &body)
    }

    fn push(tracker: &mut Tracker, bytes: &[u8]) {
        tracker.push(
            &Event::parse(bytes, Checksum::Crc32).unwrap(),
            Checksum::Crc32,
        );
    }

    fn shown(tracker: &Tracker) -> Option<String> {
        tracker.position().map(|p| p.to_string())
    }

    #[test]
    fn positions_print_and_parse_as_mariadb_writes_them() {
        let p: Position = "1-7-20,0-1-5".parse().unwrap();
        assert_eq!(p.to_string(), "0-1-5,1-7-20");
        assert_eq!("".parse::<Position>().unwrap(), Position::default());
        for bad in ["0-1", "0-1-x", "0-1-2,0-3-4", "0-1-2,", "a-b-c", "0-1-2-3"] {
            assert!(bad.parse::<Position>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_position_moves_on_when_a_transaction_ends_not_when_it_begins() {
        let mut t = Tracker::default();
        push(&mut t, &gtid_list(&[(0, 1, 10), (2, 1, 3)]));
        assert_eq!(shown(&t).as_deref(), Some("0-1-10,2-1-3"));
        push(&mut t, &gtid_event(0, 1, 11, false));
        push(&mut t, &event(kind::QUERY, 1, 100, 0, &query_body("BEGIN")));
        push(
            &mut t,
            &event(kind::QUERY, 1, 100, 0, &query_body("INSERT x")),
        );
        assert!(t.in_transaction());
        assert_eq!(shown(&t).as_deref(), Some("0-1-10,2-1-3"));
        push(&mut t, &event(kind::XID, 1, 100, 0, &7u64.to_le_bytes()));
        assert!(!t.in_transaction());
        assert_eq!(shown(&t).as_deref(), Some("0-1-11,2-1-3"));
        // A standalone GTID ends with its statement; a new domain appears.
        push(&mut t, &gtid_event(5, 9, 1, true));
        push(
            &mut t,
            &event(
                kind::QUERY,
                1,
                100,
                0,
                &query_body("CREATE TABLE t (a INT)"),
            ),
        );
        assert_eq!(shown(&t).as_deref(), Some("0-1-11,2-1-3,5-9-1"));
    }

    #[test]
    fn without_a_gtid_list_the_position_is_unknown() {
        let mut t = Tracker::default();
        push(&mut t, &gtid_event(0, 1, 11, true));
        push(
            &mut t,
            &event(kind::QUERY, 1, 100, 0, &query_body("DROP TABLE t")),
        );
        assert_eq!(shown(&t), None);
        // A tracker given the position where it starts goes on from it.
        let mut t = Tracker::at(Some("0-1-11".parse().unwrap()));
        push(&mut t, &gtid_event(0, 1, 12, true));
        push(
            &mut t,
            &event(kind::QUERY, 1, 100, 0, &query_body("DROP TABLE u")),
        );
        assert_eq!(shown(&t).as_deref(), Some("0-1-12"));
    }

    #[test]
    fn a_short_gtid_list_is_not_a_position() {
        let mut body = 2u32.to_le_bytes().to_vec();
        body.extend_from_slice(&[0; 16]);
        assert_eq!(Position::from_gtid_list(&body), None);
        assert_eq!(Position::from_gtid_list(&[1, 0]), None);
        let mut huge = 0x0fff_ffffu32.to_le_bytes().to_vec();
        huge.extend_from_slice(&[0; 64]);
        assert_eq!(Position::from_gtid_list(&huge), None);
    }
}
