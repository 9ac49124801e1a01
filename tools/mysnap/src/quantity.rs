//! Sizes and durations as admins write them: `16M`, `1G`, `30s`, `5m`.
//! Sizes are binary (16M = 16 MiB), as in dd(1) and lvcreate(8).

use crate::{Error, Result};
use std::time::Duration;

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
pub const GIB: u64 = 1024 * MIB;
pub const TIB: u64 = 1024 * GIB;

/// Parses `123`, `16K`, `16M`, `1G`, `2T` (also `16MiB`, `16MB`: all binary).
pub fn parse_size(text: &str) -> Result<u64> {
    let bad = || Error::usage(format!("invalid size '{text}' (examples: 4096, 16M, 1G)"));
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let number: u64 = t[..digits].parse().map_err(|_| bad())?;
    let unit = match t[digits..].to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => KIB,
        "M" | "MB" | "MIB" => MIB,
        "G" | "GB" | "GIB" => GIB,
        "T" | "TB" | "TIB" => TIB,
        _ => return Err(bad()),
    };
    number.checked_mul(unit).ok_or_else(bad)
}

/// The longest duration any option takes: a hundred years. Longer ones
/// are refused (exit 64) rather than left to overflow a deadline
/// (`Instant + Duration` panics past the clock's range).
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Parses `500ms`, `30s`, `5m`, `2h`, `14d`, `2w`; a bare number means seconds.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let bad = || {
        Error::usage(format!(
            "invalid duration '{text}' (examples: 500ms, 30s, 5m, 14d; at most 100 years)"
        ))
    };
    let t = text.trim();
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let number: f64 = t[..digits].parse().map_err(|_| bad())?;
    let seconds = match &t[digits..] {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        "d" => number * 86400.0,
        "w" => number * 7.0 * 86400.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| *d <= MAX_DURATION)
        .ok_or_else(bad)
}

/// Formats a byte count for people: `1.5 GiB`, `512 B`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Formats a rate for people: `85.3 MiB/s`.
pub fn format_rate(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-6);
    format!("{}/s", format_size((bytes as f64 / secs) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_binary() {
        assert_eq!(parse_size("16M").unwrap(), 16 * MIB);
        assert_eq!(parse_size("16MiB").unwrap(), 16 * MIB);
        assert_eq!(parse_size("1g").unwrap(), GIB);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("5T").unwrap(), 5 * TIB);
        for bad in ["", "M", "12Q", "-1", "1.5G", "99999999999999999999T"] {
            let err = parse_size(bad).unwrap_err();
            assert_eq!(err.code(), 64, "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(
            parse_duration("3d").unwrap(),
            Duration::from_secs(3 * 86400)
        );
        assert_eq!(
            parse_duration("2w").unwrap(),
            Duration::from_secs(14 * 86400)
        );
        for bad in [
            "",
            "s",
            "3y",
            "99999999999d",
            "-1s",
            "1..2s",
            "99999999999h",
            "1e3s",
            "nan",
            "inf",
        ] {
            assert_eq!(parse_duration(bad).unwrap_err().code(), 64, "{bad}");
        }
    }

    proptest::proptest! {
        /// Whatever the text, a duration parses within the bound, so a
        /// deadline from it never overflows, or it is a usage error.
        #[test]
        fn any_duration_text_is_bounded_or_refused(text in "[0-9.]{0,40}(ms|s|m|min|h|d|w|e|)") {
            match parse_duration(&text) {
                Ok(d) => {
                    proptest::prop_assert!(d <= MAX_DURATION);
                    let _deadline = std::time::Instant::now() + d;
                }
                Err(e) => proptest::prop_assert_eq!(e.code(), 64),
            }
        }

        /// Sizes never wrap: a parse gives the exact product, or exit 64.
        #[test]
        fn any_size_text_is_exact_or_refused(number in "[0-9]{0,25}", unit in "(|b|k|KiB|M|mb|G|T|tib|P|x)") {
            let text = format!("{number}{unit}");
            match parse_size(&text) {
                Ok(size) => {
                    let n: u128 = number.parse().unwrap();
                    let scale: u128 = match unit.to_ascii_uppercase().chars().next() {
                        None | Some('B') => 1,
                        Some('K') => 1 << 10,
                        Some('M') => 1 << 20,
                        Some('G') => 1 << 30,
                        _ => 1 << 40,
                    };
                    proptest::prop_assert_eq!(size as u128, n * scale);
                }
                Err(e) => proptest::prop_assert_eq!(e.code(), 64),
            }
        }
    }

    #[test]
    fn human_sizes() {
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(2 * GIB), "2.0 GiB");
    }
}
