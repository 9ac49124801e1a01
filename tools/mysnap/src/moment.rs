//! Moments given on the command line (`--until`, `--before`): a UTC date
//! and time, or one with its offset.

use crate::{Error, Result};
use chrono::{DateTime, NaiveDateTime, Utc};

/// Reads `2026-12-02 10:14:59` (UTC), `2026-12-02T10:14:59Z`,
/// `2026-12-02T11:14:59+01:00` (RFC 3339), or `20261202T101459Z` (the
/// default backup name's form).
pub fn parse_moment(text: &str) -> Result<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y%m%dT%H%M%SZ"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(t) = DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S %z") {
        return Ok(t.with_timezone(&Utc));
    }
    Err(Error::usage(format!(
        "'{text}' is not a time: give 'YYYY-MM-DD HH:MM:SS' (UTC) or RFC 3339 with its offset"
    )))
}

/// The time a backup's name records (`%Y%m%dT%H%M%SZ` at its start, the
/// default name), if it does.
pub fn named_time(name: &str) -> Option<DateTime<Utc>> {
    let stamp = name.get(..16)?;
    NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_in_every_form_agree() {
        let want = parse_moment("2026-12-02 10:14:59").unwrap();
        for text in [
            "2026-12-02T10:14:59Z",
            "2026-12-02T11:14:59+01:00",
            "20261202T101459Z",
            "2026-12-02 05:14:59 -0500",
        ] {
            assert_eq!(parse_moment(text).unwrap(), want, "{text}");
        }
        for bad in ["", "yesterday", "2026-13-02 10:14:59", "2026-12-02"] {
            assert_eq!(parse_moment(bad).unwrap_err().code(), 64, "{bad}");
        }
        assert_eq!(named_time("20261202T101459Z.tar.gz"), Some(want));
        assert_eq!(named_time("manual.tar.gz"), None);
    }
}
