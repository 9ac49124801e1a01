//! S3 keys from the standard places, never from the command line.
//!
//! In order: the `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
//! `AWS_SESSION_TOKEN` variables; systemd credentials (`LoadCredential=`)
//! named `aws-access-key-id`, `aws-secret-access-key` and optionally
//! `aws-session-token` in `$CREDENTIALS_DIRECTORY`; the shared credentials
//! file (`$AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`) with the
//! profile; the EC2 instance metadata service, unless
//! `AWS_EC2_METADATA_DISABLED=true`.

use crate::{Error, Exit, Result};
use s3::creds::Credentials;
use std::path::Path;

/// The variables that hold S3 secrets. A COMMAND that s3-put runs gets
/// none of them: it produces the data, it does not need the keys, and a
/// child that logs or dumps its environment must not leak them. (The
/// `AWS_SECURITY_TOKEN` alias is the older SDKs' name for the session token.)
pub const SECRET_VARIABLES: [&str; 4] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
];

/// A key pair, with a session token for temporary keys.
fn key_pair(access: &str, secret: &str, token: Option<&str>) -> Credentials {
    Credentials::new(Some(access), Some(secret), None, token, None)
        .expect("keys given directly are always accepted")
}

fn from_credentials_directory(dir: &Path) -> Result<Option<Credentials>> {
    let read = |name: &str| -> Result<Option<String>> {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(text) => Ok(Some(text.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::new(
                Exit::NoPerm,
                format!("cannot read credential {name}: {e}"),
            )),
        }
    };
    let (Some(access), Some(secret)) = (read("aws-access-key-id")?, read("aws-secret-access-key")?)
    else {
        return Ok(None);
    };
    let token = read("aws-session-token")?;
    Ok(Some(key_pair(&access, &secret, token.as_deref())))
}

fn complete(creds: Credentials) -> Option<Credentials> {
    (creds.access_key.is_some() && creds.secret_key.is_some()).then_some(creds)
}

/// The first complete set of keys in the chain, or exit 77 saying where
/// they were looked for.
pub fn credentials(profile: Option<&str>) -> Result<Credentials> {
    if let Some(creds) = Credentials::from_env().ok().and_then(complete) {
        return Ok(creds);
    }
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        if let Some(creds) = from_credentials_directory(Path::new(&dir))? {
            return Ok(creds);
        }
    }
    if let Some(creds) = Credentials::from_profile(profile).ok().and_then(complete) {
        return Ok(creds);
    }
    if let Some(name) = profile {
        return Err(Error::new(
            Exit::NoPerm,
            format!("no S3 keys for profile '{name}' in the shared credentials file"),
        ));
    }
    let metadata_disabled =
        std::env::var("AWS_EC2_METADATA_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    if !metadata_disabled {
        let from_metadata = Credentials::from_instance_metadata_v2(false)
            .or_else(|_| Credentials::from_instance_metadata(false));
        if let Ok(creds) = from_metadata {
            return Ok(creds);
        }
    }
    Err(Error::new(
        Exit::NoPerm,
        "no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
         write ~/.aws/credentials, or pass aws-access-key-id and aws-secret-access-key with LoadCredential=",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_systemd_credentials_directory() {
        let dir = std::env::temp_dir().join(format!("mysnap-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(from_credentials_directory(&dir).unwrap().is_none());
        std::fs::write(dir.join("aws-access-key-id"), "AKID\n").unwrap();
        assert!(
            from_credentials_directory(&dir).unwrap().is_none(),
            "half a key pair is no key pair"
        );
        std::fs::write(dir.join("aws-secret-access-key"), "SECRET\n").unwrap();
        let creds = from_credentials_directory(&dir).unwrap().unwrap();
        assert_eq!(creds.access_key.as_deref(), Some("AKID"));
        assert_eq!(creds.secret_key.as_deref(), Some("SECRET"));
        assert_eq!(creds.session_token, None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
