//! Where a replay starts and where it stops, as a command line says
//! them: FILE:POS, a time, or a GTID.

use super::layout::valid_file;
use crate::{Error, Result};
use chrono::{DateTime, NaiveDateTime, Utc};
use std::fmt;

/// A place in the source's binary log: where the event after it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub file: String,
    pub position: u64,
}

impl Position {
    /// `BASENAME.NNNNNN:POS`; None for anything else.
    pub fn parse(text: &str) -> Option<Position> {
        let (file, position) = text.trim().rsplit_once(':')?;
        if !valid_file(file) || position.is_empty() || !position.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some(Position {
            file: file.to_string(),
            position: position.parse().ok()?,
        })
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.position)
    }
}

/// Where to stop: every transaction before it is applied, none after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Transactions whose events all carry this second or an earlier one
    /// (seconds since the epoch, UTC): the whole of the second is kept.
    Time(i64),
    /// Up to and with this transaction, or (not inclusive) up to it.
    Gtid { gtid: String, inclusive: bool },
    /// The transactions that end at or before this position.
    Position(Position),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Time(t) => write!(f, "{}", show_time(*t)),
            Target::Gtid { gtid, inclusive } => write!(
                f,
                "GTID {gtid} ({})",
                if *inclusive { "inclusive" } else { "exclusive" }
            ),
            Target::Position(p) => write!(f, "{p}"),
        }
    }
}

/// A time as the tool prints it: UTC, to the second.
pub fn show_time(seconds: i64) -> String {
    DateTime::from_timestamp(seconds, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| format!("{seconds} seconds after the epoch"))
}

impl Target {
    /// FILE:POS, then a GTID, then a time. `exclusive` applies to a GTID.
    pub fn parse(text: &str, exclusive: bool) -> Result<Target> {
        if let Some(position) = Position::parse(text) {
            return Ok(Target::Position(position));
        }
        if let Some(gtid) = parse_gtid(text) {
            return Ok(Target::Gtid {
                gtid,
                inclusive: !exclusive,
            });
        }
        match parse_time(text) {
            Some(Ok(t)) => Ok(Target::Time(t)),
            Some(Err(why)) => Err(Error::usage(format!("'{text}': {why}"))),
            None => Err(Error::usage(format!(
                "'{text}' is neither a time ('YYYY-MM-DD HH:MM:SS', UTC unless it says its \
                 zone), a GTID (D-S-N, or UUID:N) nor FILE:POS"
            ))),
        }
    }
}

/// A GTID as the server prints it: MariaDB's DOMAIN-SERVER-SEQUENCE
/// (no leading zeros, so a date is not one), or MySQL's UUID:NUMBER.
fn parse_gtid(text: &str) -> Option<String> {
    let text = text.trim();
    let number = |p: &str| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0'))
    };
    let parts: Vec<&str> = text.split('-').collect();
    if let [domain, server, sequence] = parts[..] {
        if [domain, server, sequence].iter().all(|p| number(p)) {
            domain.parse::<u32>().ok()?;
            server.parse::<u32>().ok()?;
            sequence.parse::<u64>().ok()?;
            return Some(text.to_string());
        }
        return None;
    }
    let (uuid, n) = text.split_once(':')?;
    let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
    let hex = uuid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    (groups == [8, 4, 4, 4, 12] && hex && number(n) && n.parse::<u64>().is_ok())
        .then(|| format!("{}:{n}", uuid.to_ascii_lowercase()))
}

/// 'YYYY-MM-DD HH:MM[:SS]' (or with a T), in UTC, or followed by Z, UTC
/// or an offset. None: not a time; Some(Err): a time this tool cannot
/// stop at exactly (events carry whole seconds).
fn parse_time(text: &str) -> Option<std::result::Result<i64, String>> {
    let mut text = text.trim().to_string();
    if text.len() > 10 && text.as_bytes()[10] == b'T' {
        text.replace_range(10..11, " ");
    }
    let utc = ["Z", "z", " UTC", "UTC"]
        .iter()
        .find_map(|suffix| text.strip_suffix(suffix))
        .unwrap_or(&text);
    let naive = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(utc.trim_end(), f).ok())
        .map(|t| t.and_utc());
    let time = naive.or_else(|| {
        ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f %#z"]
            .iter()
            .find_map(|f| DateTime::parse_from_str(&text, f).ok())
            .map(|t| t.with_timezone(&Utc))
    })?;
    if time.timestamp_subsec_nanos() != 0 {
        return Some(Err(
            "the binary log's times are whole seconds: give a time without a fraction".into(),
        ));
    }
    Some(Ok(time.timestamp()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(text: &str) -> Target {
        Target::parse(text, false).unwrap()
    }

    #[test]
    fn times_are_utc_unless_they_say_their_zone() {
        let t = 1_796_206_499; // 2026-12-02 10:14:59 UTC
        for text in [
            "2026-12-02 10:14:59",
            "2026-12-02T10:14:59",
            "2026-12-02T10:14:59Z",
            "2026-12-02 10:14:59 UTC",
            "2026-12-02T11:14:59+01:00",
            "2026-12-02 11:14:59 +0100",
            "2026-12-02T10:14:59.000Z",
        ] {
            assert_eq!(target(text), Target::Time(t), "{text}");
        }
        assert_eq!(target("2026-12-02 10:14"), Target::Time(t - 59));
        assert_eq!(show_time(t), "2026-12-02 10:14:59 UTC");
        let e = Target::parse("2026-12-02 10:14:59.5", false).unwrap_err();
        assert_eq!(e.code(), 64);
        assert!(e.message().contains("whole seconds"), "{}", e.message());
    }

    #[test]
    fn gtids_and_positions() {
        assert_eq!(
            target("0-1-42"),
            Target::Gtid {
                gtid: "0-1-42".into(),
                inclusive: true
            }
        );
        assert_eq!(
            Target::parse("0-1-42", true).unwrap(),
            Target::Gtid {
                gtid: "0-1-42".into(),
                inclusive: false
            }
        );
        assert_eq!(
            target("3E11FA47-71CA-11E1-9E33-C80AA9429562:23"),
            Target::Gtid {
                gtid: "3e11fa47-71ca-11e1-9e33-c80aa9429562:23".into(),
                inclusive: true
            }
        );
        assert_eq!(
            target("binlog.000042:1234"),
            Target::Position(Position {
                file: "binlog.000042".into(),
                position: 1234
            })
        );
        assert_eq!(Position::parse("binlog:12"), None);
        assert_eq!(Position::parse("binlog.000001:"), None);
    }

    #[test]
    fn a_date_alone_or_garbage_is_a_usage_error() {
        for text in [
            "2026-12-02",
            "yesterday",
            "0-1",
            "0-1-x",
            "",
            "binlog.000001:x",
        ] {
            assert_eq!(Target::parse(text, false).unwrap_err().code(), 64, "{text}");
        }
    }
}
