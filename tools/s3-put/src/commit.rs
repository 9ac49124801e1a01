//! After a commit whose answer did not come (a lost response, a retry that
//! met NoSuchUpload or 412, a signal while it was in flight), the object
//! may or may not exist. HEAD tells which: the object is this upload's only
//! if its ETag is the one computed from the bytes sent, and its size the
//! size read.

use crate::upload::{Expected, Target};
use mysnap::s3::{etag, Client};

#[derive(Debug)]
pub enum Found {
    /// This upload's object is stored.
    Ours,
    /// No object under the key.
    Absent,
    /// Another object is under the key: another writer's, or the one
    /// `--overwrite` was to replace.
    Another { etag: Option<String> },
    /// Whether the object is this upload's cannot be told.
    Unknown(String),
}

pub async fn confirm(client: &Client, target: &Target, expected: &Expected) -> Found {
    let info = match client.head(&target.key).await {
        Ok(Some(info)) => info,
        Ok(None) => return Found::Absent,
        Err(e) => return Found::Unknown(format!("the HEAD that would tell failed: {e}")),
    };
    if !target.etag_is_md5() {
        return Found::Unknown(
            "an object is there, but the ETag of an SSE-KMS object is not an MD5 to compare"
                .to_string(),
        );
    }
    match info.etag {
        Some(found) if etag::same(&found, &expected.etag) && info.size == expected.stored.bytes => {
            Found::Ours
        }
        etag => Found::Another { etag },
    }
}
