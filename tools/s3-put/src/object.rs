//! The object s3-put stores, as the options name it: its key, with the
//! strftime patterns expanded, and the headers that set its storage class
//! and encryption.

use chrono::format::{Item, StrftimeItems};
use mysnap::cli::Args;
use mysnap::s3;
use mysnap::{Error, Result};

/// Storage class and encryption headers, checked before anything is sent.
pub fn headers(args: &Args) -> Result<http::HeaderMap> {
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
            headers(&args)
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
}
