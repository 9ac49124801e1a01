//! The state file: where a multipart upload is written down, so that a
//! cleanup step can abort it after s3-put was killed with SIGKILL.
//!
//! It is written twice: before CreateMultipartUpload is sent (the intent:
//! key and time, no upload id yet), and once the server has answered with
//! the upload id. An upload whose start answer never arrived is then still
//! found, by listing the key's open uploads.

use mysnap::error::IoContext;
use mysnap::Result;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UploadRecord {
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    pub key: String,
    /// None while the start of the upload has not been answered.
    #[serde(default)]
    pub upload_id: Option<String>,
    /// When the intent was recorded (RFC 3339, UTC), for whoever reads
    /// the file. Files from before the intent was recorded have none.
    #[serde(default)]
    pub since: Option<String>,
}

pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StateFile { path: path.into() }
    }

    /// Writes the record whole or not at all, readable by the owner only.
    pub fn record(&self, upload: &UploadRecord) -> Result<()> {
        let json = serde_json::to_vec_pretty(upload).expect("plain data serializes");
        mysnap::private_file::write_atomically(&self.path, &json)
    }

    /// The upload recorded, or None when there is no state file.
    pub fn load(path: &Path) -> Result<Option<UploadRecord>> {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).ctx(format!("cannot read state file {}", path.display())),
        };
        serde_json::from_slice(&text).map(Some).map_err(|e| {
            mysnap::Error::new(
                mysnap::Exit::DataErr,
                format!("state file {} is not one s3-put wrote: {e}", path.display()),
            )
        })
    }

    /// The upload is completed or aborted: nothing left to clean up.
    pub fn clear(&self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                log::warn!("cannot remove state file {}: {e}", self.path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn records_loads_and_clears() {
        let path = std::env::temp_dir().join(format!("s3-put-state-{}.json", std::process::id()));
        let upload = UploadRecord {
            endpoint: Some("http://127.0.0.1:9000".into()),
            region: "us-east-1".into(),
            bucket: "b".into(),
            key: "k".into(),
            upload_id: Some("id-1".into()),
            since: Some("2026-12-03T12:00:00Z".into()),
        };
        let state = StateFile::new(&path);
        state.record(&upload).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(StateFile::load(&path).unwrap(), Some(upload));
        state.clear();
        assert_eq!(StateFile::load(&path).unwrap(), None);
        std::fs::write(&path, "garbage").unwrap();
        assert_eq!(StateFile::load(&path).unwrap_err().code(), 65);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_state_file_from_before_the_intent_still_loads() {
        let path = std::env::temp_dir().join(format!("s3-put-old-{}.json", std::process::id()));
        std::fs::write(
            &path,
            r#"{"endpoint":null,"region":"r","bucket":"b","key":"k","upload_id":"u"}"#,
        )
        .unwrap();
        let loaded = StateFile::load(&path).unwrap().unwrap();
        assert_eq!(loaded.upload_id.as_deref(), Some("u"));
        assert_eq!(loaded.since, None);
        std::fs::remove_file(&path).unwrap();
    }
}
