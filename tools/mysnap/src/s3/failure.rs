//! Telling a passing failure (retry it) from a final one (exit with the
//! right code), from what the server or the network said.

use crate::{Error, Exit};
use s3::error::S3Error;

/// One failed attempt at a request: what went wrong and whether another
/// attempt may succeed.
#[derive(Debug)]
pub struct Attempt {
    pub retryable: bool,
    pub error: Error,
}

impl Attempt {
    pub fn fatal(error: Error) -> Self {
        Attempt {
            retryable: false,
            error,
        }
    }

    fn transient(error: Error) -> Self {
        Attempt {
            retryable: true,
            error,
        }
    }

    /// The network failed: refused, reset, timed out, cut off mid-body.
    pub fn transport(what: impl std::fmt::Display) -> Self {
        Self::transient(Error::new(
            Exit::Unavailable,
            format!("cannot reach S3: {what}"),
        ))
    }

    /// The server answered `status` with an S3 error document `body`.
    pub fn http(status: u16, body: &str) -> Self {
        let code = xml_field(body, "Code").unwrap_or_default();
        let detail = xml_field(body, "Message")
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        let said = if code.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status} {code}{detail}")
        };
        match (status, code.as_str()) {
            (404, "NoSuchBucket") => Self::fatal(Error::new(
                Exit::NoInput,
                format!("no such bucket ({said})"),
            )),
            (404, "NoSuchUpload") => Self::fatal(Error::new(
                Exit::NoInput,
                format!("no such multipart upload ({said})"),
            )),
            (404, _) => Self::fatal(Error::new(Exit::NoInput, format!("no such key ({said})"))),
            (
                401 | 403,
                "SignatureDoesNotMatch"
                | "InvalidAccessKeyId"
                | "InvalidToken"
                | "ExpiredToken"
                | "InvalidClientTokenId",
            ) => Self::fatal(Error::new(
                Exit::NoPerm,
                format!("S3 rejected the credentials ({said}); check the access key and secret"),
            )),
            (401 | 403, "") => Self::fatal(Error::new(
                Exit::NoPerm,
                format!(
                    "access denied ({said}): check the credentials and the permissions; \
                     S3 also answers 403 for a missing key when the caller lacks s3:ListBucket"
                ),
            )),
            (401 | 403, _) => Self::fatal(Error::new(
                Exit::NoPerm,
                format!(
                    "permission denied ({said}); note that S3 answers 403 for a missing key \
                     when the caller lacks s3:ListBucket"
                ),
            )),
            (412, _) => Self::fatal(Error::new(
                Exit::CantCreate,
                format!("precondition failed ({said})"),
            )),
            (501, _) => Self::fatal(Error::new(
                Exit::Unavailable,
                format!("the server does not implement this request ({said})"),
            )),
            (408 | 429 | 500..=599, _)
            | (400, "RequestTimeout" | "BadDigest" | "IncompleteBody") => {
                Self::transient(Error::new(Exit::Unavailable, format!("S3 failed ({said})")))
            }
            _ => Self::fatal(Error::new(
                Exit::Unavailable,
                format!("S3 refused the request ({said})"),
            )),
        }
    }

    pub fn from_reqwest(e: reqwest::Error) -> Self {
        // Show the innermost cause: "connection refused", not "error sending request".
        let mut cause: &dyn std::error::Error = &e;
        while let Some(inner) = cause.source() {
            cause = inner;
        }
        if e.is_timeout() {
            Self::transport(format!("request timed out ({cause})"))
        } else {
            Self::transport(cause)
        }
    }
}

impl From<S3Error> for Attempt {
    fn from(e: S3Error) -> Self {
        match e {
            S3Error::HttpFailWithBody(status, body) => Attempt::http(status, &body),
            S3Error::Reqwest(e) => Attempt::from_reqwest(e),
            S3Error::Io(e) => Attempt::transport(e),
            S3Error::Credentials(e) => {
                Attempt::fatal(Error::new(Exit::NoPerm, format!("S3 credentials: {e}")))
            }
            // A body cut short by the network shows up as XML that does
            // not parse: worth another attempt.
            other => Attempt::transient(Error::new(Exit::Unavailable, format!("S3: {other}"))),
        }
    }
}

/// The text of the first `<name>` element in an S3 error document.
fn xml_field(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{name}>"))? + start;
    Some(body[start..end].trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(code: &str) -> String {
        format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>m</Message></Error>")
    }

    #[test]
    fn classifies_server_answers() {
        let cases = [
            (404, "NoSuchKey", false, 66),
            (404, "NoSuchBucket", false, 66),
            (403, "SignatureDoesNotMatch", false, 77),
            (403, "AccessDenied", false, 77),
            (412, "PreconditionFailed", false, 73),
            (500, "InternalError", true, 69),
            (503, "SlowDown", true, 69),
            (501, "NotImplemented", false, 69),
            (400, "BadDigest", true, 69),
            (400, "InvalidArgument", false, 69),
        ];
        for (status, code, retryable, exit) in cases {
            let a = Attempt::http(status, &doc(code));
            assert_eq!(a.retryable, retryable, "{status} {code}");
            assert_eq!(a.error.code(), exit, "{status} {code}");
            assert!(a.error.message().contains(code), "{}", a.error);
        }
        let access_denied = Attempt::http(403, &doc("AccessDenied"));
        assert!(access_denied.error.message().contains("s3:ListBucket"));
        // HEAD answers carry no body.
        assert_eq!(Attempt::http(404, "").error.code(), 66);
    }
}
