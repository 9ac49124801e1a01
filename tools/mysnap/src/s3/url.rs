//! `s3://BUCKET/KEY` as admins write it.

use crate::{Error, Result};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    /// The object key, or a prefix; may be empty (the whole bucket).
    pub key: String,
}

impl S3Url {
    pub fn parse(text: &str) -> Result<S3Url> {
        let bad = |why: &str| Error::usage(format!("invalid S3 URL '{text}': {why}"));
        let rest = text
            .strip_prefix("s3://")
            .ok_or_else(|| bad("expected s3://BUCKET/KEY"))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_char =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
        if bucket.len() < 3 || bucket.len() > 63 || !bucket.chars().all(valid_char) {
            return Err(bad(
                "a bucket name has 3 to 63 lowercase letters, digits, '-' or '.'",
            ));
        }
        if key.len() > 1024 {
            return Err(bad("keys are at most 1024 bytes"));
        }
        Ok(S3Url {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    /// The same URL naming an object key: rejects an empty key or one that
    /// ends in '/', which S3 tools treat as a folder.
    pub fn require_key(self) -> Result<S3Url> {
        if self.key.is_empty() || self.key.ends_with('/') {
            return Err(Error::usage(format!("'{self}' names no object key")));
        }
        Ok(self)
    }

    pub fn with_key(&self, key: &str) -> S3Url {
        S3Url {
            bucket: self.bucket.clone(),
            key: key.to_string(),
        }
    }
}

impl fmt::Display for S3Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_and_key() {
        let url = S3Url::parse("s3://backups/db1/2026.tar.gz").unwrap();
        assert_eq!(url.bucket, "backups");
        assert_eq!(url.key, "db1/2026.tar.gz");
        assert_eq!(url.to_string(), "s3://backups/db1/2026.tar.gz");
        assert_eq!(S3Url::parse("s3://backups").unwrap().key, "");
    }

    #[test]
    fn rejects_malformed_urls() {
        for bad in [
            "backups/x",
            "http://b/x",
            "s3://",
            "s3://B/x",
            "s3://ab/x",
            "s3://a_b/x",
        ] {
            assert_eq!(S3Url::parse(bad).unwrap_err().code(), 64, "{bad}");
        }
        for no_key in ["s3://bucket", "s3://bucket/", "s3://bucket/dir/"] {
            let url = S3Url::parse(no_key).unwrap();
            assert_eq!(url.require_key().unwrap_err().code(), 64, "{no_key}");
        }
    }
}
