//! The ETag S3 gives an object, worked out from its bytes, so that a tool
//! can tell whether the object under a key is the one it uploaded after the
//! answer to its upload was lost.
//!
//! A single PUT's ETag is the hex MD5 of the body. A multipart upload's is
//! the hex MD5 of the parts' binary MD5s, joined, then `-` and the number
//! of parts. Both hold for unencrypted and SSE-S3 objects; an SSE-KMS or
//! SSE-C object's ETag is not an MD5 and cannot be compared.

use md5::{Digest, Md5};

/// The ETag of an object stored by one PUT of `body`.
pub fn of_body(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// The ETag of an object completed from parts with these MD5s, in order.
pub fn of_parts(md5s: &[[u8; 16]]) -> String {
    let mut joined = Md5::new();
    for md5 in md5s {
        joined.update(md5);
    }
    format!("{}-{}", hex::encode(joined.finalize()), md5s.len())
}

/// Whether two ETags are the same, as servers quote and case them.
pub fn same(a: &str, b: &str) -> bool {
    let bare = |t: &str| t.trim().trim_matches('"').to_ascii_lowercase();
    bare(a) == bare(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_as_s3_computes_them() {
        // Checked against Python's hashlib.
        assert_eq!(of_body(b"aaaaaaaaaa"), "e09c80c42fda55f9d992e59ca6b3307d");
        let parts = [
            Md5::digest(b"aaaaaaaaaa").into(),
            Md5::digest(b"bbb").into(),
        ];
        assert_eq!(of_parts(&parts), "568bd1f3a3ef4a720453555306037d4b-2");
        assert!(same(
            "\"568BD1F3A3EF4A720453555306037D4B-2\"",
            &of_parts(&parts)
        ));
        assert!(!same(
            "\"568bd1f3a3ef4a720453555306037d4b-3\"",
            &of_parts(&parts)
        ));
    }
}
