//! The object s3-put stores, as the options name it: its key, with the
//! strftime patterns expanded, and the headers that set its storage class
//! and encryption, and record where its binlog chain begins.

use chrono::format::{Item, StrftimeItems};
use mysnap::cli::Args;
use mysnap::s3;
use mysnap::s3::backups::Start;
use mysnap::status::Status;
use mysnap::{Error, Result};

/// Storage class, encryption and metadata headers, checked before
/// anything is sent. They go on the object and on its sidecar alike.
pub fn headers(args: &Args, now: chrono::DateTime<chrono::Utc>) -> Result<http::HeaderMap> {
    let mut map = sent_as_is(args)?;
    map.extend(object_lock(args, now)?);
    if let Some(path) = args.string("status-file") {
        let status = Status::read_file(std::path::Path::new(&path))?;
        match Start::from_status(&status) {
            Some(start) => {
                for (name, value) in start.to_pairs() {
                    let name =
                        http::HeaderName::from_bytes(format!("x-amz-meta-{name}").as_bytes())
                            .expect("metadata names are header names");
                    let value = http::HeaderValue::from_str(&value)
                        .expect("Start holds header-safe values only");
                    map.insert(name, value);
                }
            }
            None => log::warn!(
                "{path}: the server had no binary log when the backup was taken; \
                 the object records no binlog start"
            ),
        }
    }
    Ok(map)
}

fn sent_as_is(args: &Args) -> Result<http::HeaderMap> {
    let mut pairs = Vec::new();
    if let Some(class) = args.string("storage-class") {
        pairs.push(("x-amz-storage-class", class));
    }
    let kms_key = args.string("sse-kms-key-id");
    match args.string("sse").as_deref() {
        None if kms_key.is_some() => return Err(args.usage("--sse-kms-key-id needs --sse aws:kms")),
        None => {}
        Some("AES256") if kms_key.is_some() => {
            return Err(args.usage("--sse-kms-key-id needs --sse aws:kms"))
        }
        Some(algorithm @ ("AES256" | "aws:kms")) => {
            pairs.push(("x-amz-server-side-encryption", algorithm.to_string()));
            if let Some(id) = kms_key {
                pairs.push(("x-amz-server-side-encryption-aws-kms-key-id", id));
            }
        }
        Some(other) => {
            return Err(args.usage(format!("--sse must be AES256 or aws:kms, not '{other}'")))
        }
    }
    s3::headers(&pairs)
}

/// `--object-lock-days N`: the object and its sidecar are kept by S3
/// Object Lock until N days after `now` (when s3-put began), in
/// `--object-lock-mode` (governance unless told). The bucket must have
/// Object Lock enabled; the server refuses the upload otherwise.
fn object_lock(args: &Args, now: chrono::DateTime<chrono::Utc>) -> Result<http::HeaderMap> {
    let mode = args.string("object-lock-mode");
    if args.string("object-lock-days").is_none() {
        return match mode {
            Some(_) => Err(args.usage("--object-lock-mode needs --object-lock-days")),
            None => Ok(http::HeaderMap::new()),
        };
    }
    let days = args.number("object-lock-days", 0, 1, 36_500)?;
    let mode = match mode.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("governance") => "GOVERNANCE",
        Some("compliance") => "COMPLIANCE",
        Some(_) => {
            return Err(args.usage(format!(
                "--object-lock-mode must be governance or compliance, not '{}'",
                mode.unwrap_or_default()
            )))
        }
    };
    let until = now + chrono::Duration::days(i64::from(days));
    s3::headers(&[
        ("x-amz-object-lock-mode", mode.to_string()),
        (
            "x-amz-object-lock-retain-until-date",
            until.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        ),
    ])
}

/// Expands strftime patterns in the key, in UTC.
pub fn expand_key(template: &str, now: chrono::DateTime<chrono::Utc>) -> Result<String> {
    let items: Vec<Item> = StrftimeItems::new(template).collect();
    if items.iter().any(|item| matches!(item, Item::Error)) {
        return Err(Error::usage(format!(
            "invalid strftime pattern in key '{template}'"
        )));
    }
    Ok(now.format_with_items(items.into_iter()).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn key_patterns_expand_in_utc() {
        let now = chrono::Utc.with_ymd_and_hms(2026, 11, 23, 1, 2, 3).unwrap();
        assert_eq!(
            expand_key("db1/%Y%m%dT%H%M%SZ.tar.gz", now).unwrap(),
            "db1/20261123T010203Z.tar.gz"
        );
        assert_eq!(expand_key("plain/key", now).unwrap(), "plain/key");
        assert_eq!(expand_key("100%%", now).unwrap(), "100%");
        assert_eq!(expand_key("bad/%Q", now).unwrap_err().code(), 64);
    }

    #[test]
    fn encryption_options_are_checked() {
        let parse = |argv: &[&str]| {
            let args = crate::cli()
                .parse_from(argv.iter().map(|s| s.to_string()).collect())
                .unwrap();
            headers(&args, chrono::Utc::now())
        };
        assert!(parse(&["--sse", "AES256"]).is_ok());
        let kms = parse(&["--sse", "aws:kms", "--sse-kms-key-id", "k1"]).unwrap();
        assert_eq!(kms["x-amz-server-side-encryption-aws-kms-key-id"], "k1");
        assert_eq!(parse(&["--sse", "DES"]).unwrap_err().code(), 64);
        assert_eq!(
            parse(&["--sse", "AES256", "--sse-kms-key-id", "k"])
                .unwrap_err()
                .code(),
            64
        );
        assert_eq!(parse(&["--sse-kms-key-id", "k"]).unwrap_err().code(), 64);
    }

    #[test]
    fn object_lock_options_give_a_mode_and_a_date() {
        let now = chrono::Utc.with_ymd_and_hms(2026, 12, 4, 1, 2, 3).unwrap();
        let parse = |argv: &[&str]| {
            let args = crate::cli()
                .parse_from(argv.iter().map(|s| s.to_string()).collect())
                .unwrap();
            headers(&args, now)
        };
        let map = parse(&["--object-lock-days", "30"]).unwrap();
        assert_eq!(map["x-amz-object-lock-mode"], "GOVERNANCE");
        assert_eq!(
            map["x-amz-object-lock-retain-until-date"],
            "2027-01-03T01:02:03Z"
        );
        let map = parse(&[
            "--object-lock-days",
            "1",
            "--object-lock-mode",
            "Compliance",
        ])
        .unwrap();
        assert_eq!(map["x-amz-object-lock-mode"], "COMPLIANCE");
        assert!(parse(&[]).unwrap().get("x-amz-object-lock-mode").is_none());
        for bad in [
            &["--object-lock-mode", "compliance"][..],
            &["--object-lock-days", "0"],
            &["--object-lock-days", "x"],
            &["--object-lock-days", "1", "--object-lock-mode", "legal"],
        ] {
            assert_eq!(parse(bad).unwrap_err().code(), 64, "{bad:?}");
        }
    }

    #[test]
    fn the_status_file_becomes_the_binlog_start_in_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coordinates.json");
        let status = r#"{"format":1,"flavor":"mariadb","server_version":"10.11.6-MariaDB",
            "server_id":1,"server_uuid":null,"binlog_file":"mysql-bin.000007",
            "binlog_pos":385,"gtid":"0-1-77","replica":null,"layout":{},"lock":"ftwrl",
            "locked_at":"2026-12-02T01:00:00.000Z","lock_attempts":1,"lock_wait_ms":3,
            "lock_hold_ms":null}"#;
        std::fs::write(&path, status).unwrap();
        let parse = |argv: &[&str]| {
            let args = crate::cli()
                .parse_from(argv.iter().map(|s| s.to_string()).collect())
                .unwrap();
            headers(&args, chrono::Utc::now())
        };
        let map = parse(&["--status-file", path.to_str().unwrap()]).unwrap();
        assert_eq!(map["x-amz-meta-mysnap-binlog-file"], "mysql-bin.000007");
        assert_eq!(map["x-amz-meta-mysnap-binlog-pos"], "385");
        assert_eq!(map["x-amz-meta-mysnap-gtid"], "0-1-77");
        std::fs::write(&path, b"{}").unwrap();
        let refused = parse(&["--status-file", path.to_str().unwrap()]).unwrap_err();
        assert_eq!(refused.code(), 65);
        let missing = dir.path().join("none.json");
        assert!(parse(&["--status-file", missing.to_str().unwrap()]).is_err());
    }
}
