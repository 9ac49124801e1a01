//! The shared S3 client of the tools (`mysnap::s3::Client`) called
//! directly, against either test server: the checks that s3s-fs and moto
//! both run.

use crate::server::S3Server;
use std::collections::BTreeSet;

/// A library client for `bucket` on `server`. Client::new takes the keys
/// only from the environment; they leave it at once, so that no tool
/// another test starts meanwhile inherits them.
pub fn client(server: &S3Server, bucket: &str) -> mysnap::s3::Client {
    std::env::set_var("AWS_ACCESS_KEY_ID", &server.access_key);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", &server.secret_key);
    let settings = mysnap::s3::Settings {
        endpoint: Some(server.endpoint.clone()),
        region: "us-east-1".to_string(),
        profile: None,
        retries: 2,
        timeout: std::time::Duration::from_secs(30),
    };
    let client = mysnap::s3::Client::new(&settings, bucket);
    std::env::remove_var("AWS_ACCESS_KEY_ID");
    std::env::remove_var("AWS_SECRET_ACCESS_KEY");
    client.unwrap()
}

/// 30 keys, two with '&', a space and non-ASCII letters in them: one
/// among the 25 deleted in a batch, one among the 5 kept.
pub fn delete_test_keys() -> Vec<String> {
    (0..30)
        .map(|i| match i {
            3 => "del/a&b c-\u{e9}t\u{e9}.bin".to_string(),
            28 => "del/x&y \u{fc}ber.bin".to_string(),
            i => format!("del/k{i:02}.bin"),
        })
        .collect()
}

/// Deletes the kept key with '&' in it one by one, twice (the second
/// time it is gone already, which is no error), and one that never
/// existed; returns the keys that must remain.
pub fn delete_one_of(
    runtime: &tokio::runtime::Runtime,
    client: &mysnap::s3::Client,
    mut kept: BTreeSet<String>,
) -> BTreeSet<String> {
    let key = "del/x&y \u{fc}ber.bin";
    assert!(kept.remove(key));
    runtime.block_on(async {
        client.delete_object(key).await.unwrap();
        client.delete_object(key).await.unwrap();
        client.delete_object("del/never-3").await.unwrap();
    });
    kept
}

/// Stores each of `keys` through `client`.
pub fn put_all(runtime: &tokio::runtime::Runtime, client: &mysnap::s3::Client, keys: &[String]) {
    runtime.block_on(async {
        for key in keys {
            let body = bytes::Bytes::from(format!("object {key}"));
            let no_headers = mysnap::s3::headers(&[]).unwrap();
            client.put_object(key, body, &no_headers).await.unwrap();
        }
    });
}

/// Deletes 25 of `keys` and 2 keys that never existed, checks what the
/// client says it did, and returns the 5 keys that must remain.
pub fn delete_25_of(
    server_name: &str,
    runtime: &tokio::runtime::Runtime,
    client: &mysnap::s3::Client,
    keys: &[String],
) -> BTreeSet<String> {
    let (doomed, kept) = keys.split_at(25);
    let mut doomed = doomed.to_vec();
    doomed.extend(["del/never-1".to_string(), "del/never 2 \u{fc}".to_string()]);
    let done = runtime.block_on(client.delete_objects(&doomed)).unwrap();
    println!(
        "{server_name}: {} ({} requests)",
        if done.requests == 1 {
            "one DeleteObjects request"
        } else {
            "one DELETE per key"
        },
        done.requests
    );
    assert!(done.failed.is_empty(), "{:?}", done.failed);
    assert_eq!(
        done.deleted, doomed,
        "every key counts as deleted, in order"
    );
    assert_eq!(
        done.requests, 1,
        "{server_name} takes DeleteObjects: one request"
    );
    kept.iter().cloned().collect()
}
