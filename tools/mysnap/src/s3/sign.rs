//! SigV4 header signing for the data path, built on rust-s3's signing
//! primitives.

use super::failure::Attempt;
use crate::{Error, Exit};
use hmac::Mac;
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderMap, HeaderName, HeaderValue};
use s3::signing;
use s3::Bucket;

/// The payload hash of a request whose body the signature leaves out.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// SHA-256 of an empty body, for GETs.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn header(value: &str) -> Result<HeaderValue, Attempt> {
    HeaderValue::from_str(value).map_err(|_| {
        Attempt::fatal(Error::new(
            Exit::Software,
            format!("invalid header value '{value}'"),
        ))
    })
}

/// The URL and the signed headers for `method` on `key`.
pub async fn sign(
    bucket: &Bucket,
    method: &str,
    key: &str,
    query: &[(&str, &str)],
    extra: &HeaderMap,
    payload_sha256: &str,
) -> Result<(url::Url, HeaderMap), Attempt> {
    let mut text = format!("{}/{}", bucket.url(), signing::uri_encode(key, false));
    for (i, (name, value)) in query.iter().enumerate() {
        text.push(if i == 0 { '?' } else { '&' });
        text.push_str(&format!(
            "{}={}",
            signing::uri_encode(name, true),
            signing::uri_encode(value, true)
        ));
    }
    let url = url::Url::parse(&text).map_err(|e| {
        Attempt::fatal(Error::new(
            Exit::Config,
            format!("invalid S3 URL {text}: {e}"),
        ))
    })?;
    let host = match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        (None, _) => {
            return Err(Attempt::fatal(Error::new(
                Exit::Config,
                format!("no host in {text}"),
            )))
        }
    };
    let now = time::OffsetDateTime::now_utc();
    let long_date = now
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .expect("a UTC time formats");
    let creds = bucket.credentials().await?;
    let (Some(access), Some(secret)) = (&creds.access_key, &creds.secret_key) else {
        return Err(Attempt::fatal(Error::new(
            Exit::NoPerm,
            "no S3 credentials",
        )));
    };

    let mut headers = extra.clone();
    headers.insert(HOST, header(&host)?);
    headers.insert(HeaderName::from_static("x-amz-date"), header(&long_date)?);
    headers.insert(
        HeaderName::from_static("x-amz-content-sha256"),
        header(payload_sha256)?,
    );
    if let Some(token) = creds
        .session_token
        .as_ref()
        .or(creds.security_token.as_ref())
    {
        headers.insert(
            HeaderName::from_static("x-amz-security-token"),
            header(token)?,
        );
    }

    let region = bucket.region();
    let canonical = signing::canonical_request(method, &url, &headers, payload_sha256)?;
    let to_sign = signing::string_to_sign(&now, &region, &canonical)?;
    let signing_key = signing::signing_key(&now, secret, &region, "s3")?;
    let mut mac = signing::HmacSha256::new_from_slice(&signing_key)
        .map_err(|e| Attempt::fatal(Error::new(Exit::Software, format!("HMAC: {e}"))))?;
    mac.update(to_sign.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    let authorization = signing::authorization_header(
        access,
        &now,
        &region,
        &signing::signed_header_string(&headers),
        &signature,
    )?;
    headers.insert(AUTHORIZATION, header(&authorization)?);
    Ok((url, headers))
}
