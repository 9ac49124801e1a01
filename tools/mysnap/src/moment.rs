//! Moments given on the command line (`--until`, `--before`): a UTC date
//! and time, or one with its offset.

use crate::{Error, Result};
use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::{DateTime, NaiveDateTime, NaiveTime, TimeZone, Utc};

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

/// How backup names record their time, other than the default
/// (`s3-prune --name-format`): a strftime format that the key under the
/// prefix begins with; what follows it (an extension) is not read. A time
/// without an offset is UTC; a format without a time of day gives midnight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameFormat {
    format: String,
}

impl NameFormat {
    /// Refuses a format that chrono cannot read, or whose names do not
    /// give their date back.
    pub fn parse(format: &str) -> Result<NameFormat> {
        if format.is_empty() || StrftimeItems::new(format).any(|i| matches!(i, Item::Error)) {
            return Err(Error::usage(format!(
                "--name-format '{format}' is not a strftime format"
            )));
        }
        let name_format = NameFormat {
            format: format.to_string(),
        };
        let probe = Utc
            .with_ymd_and_hms(2026, 12, 4, 1, 2, 3)
            .single()
            .expect("a valid time");
        let name = probe.format(format).to_string();
        match name_format.time(&name) {
            Some(t) if t.date_naive() == probe.date_naive() => Ok(name_format),
            _ => Err(Error::usage(format!(
                "--name-format '{format}' does not record a date: a name made with it \
                 ('{name}') does not say the day (give %Y, %m and %d, or %F, or %s)"
            ))),
        }
    }

    /// The time `name` records, if it begins as the format says.
    pub fn time(&self, name: &str) -> Option<DateTime<Utc>> {
        let mut parsed = Parsed::new();
        chrono::format::parse_and_remainder(&mut parsed, name, StrftimeItems::new(&self.format))
            .ok()?;
        if parsed.timestamp().is_some() || parsed.offset().is_some() {
            if let Ok(t) = parsed.to_datetime() {
                return Some(t.with_timezone(&Utc));
            }
        }
        if let Some(seconds) = parsed.timestamp() {
            return DateTime::from_timestamp(seconds, 0);
        }
        let date = parsed.to_naive_date().ok()?;
        let time = parsed.to_naive_time().unwrap_or(NaiveTime::MIN);
        Some(date.and_time(time).and_utc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_formats_read_their_names_and_refuse_what_records_no_date() {
        let at = |text: &str| parse_moment(text).unwrap();
        let format = |f: &str| NameFormat::parse(f).unwrap();
        assert_eq!(
            format("db1-%Y-%m-%d_%H%M").time("db1-2026-12-02_1014.tar.gz"),
            Some(at("2026-12-02 10:14:00"))
        );
        assert_eq!(
            format("%Y/%m/%d/").time("2026/12/02/full.xb.zst"),
            Some(at("2026-12-02 00:00:00"))
        );
        assert_eq!(
            format("%F %T %z").time("2026-12-02 11:14:59 +0100.tgz"),
            Some(at("2026-12-02 10:14:59"))
        );
        assert_eq!(
            format("backup-%s").time("backup-1796206499.tar"),
            Some(at("2026-12-02 10:14:59"))
        );
        assert_eq!(format("db1-%Y-%m-%d").time("db2-2026-12-02"), None);
        assert_eq!(format("%Y%m%d").time("2026-12-02"), None);
        for bad in ["", "%Q", "%H%M%S", "%Y-%m", "plain"] {
            assert_eq!(NameFormat::parse(bad).unwrap_err().code(), 64, "{bad}");
        }
    }

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
