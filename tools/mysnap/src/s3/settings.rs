//! Where to connect and how hard to try: options and environment shared by
//! `s3-put` and `s3-get`.

use crate::cli::Args;
use crate::quantity::parse_duration;
use crate::Result;
use getopts::Options;
use std::time::Duration;

pub struct Settings {
    /// A custom endpoint (MinIO, Ceph, a test server); path-style addressing.
    pub endpoint: Option<String>,
    pub region: String,
    pub profile: Option<String>,
    /// Attempts after the first for each request.
    pub retries: u32,
    /// Time allowed for one request, plus one second per MiB of its body.
    pub timeout: Duration,
}

pub fn add_options(opts: &mut Options) {
    opts.optopt(
        "",
        "endpoint",
        "S3 endpoint URL (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, or AWS)",
        "URL",
    );
    opts.optopt(
        "",
        "region",
        "region (default: $AWS_REGION, $AWS_DEFAULT_REGION, or us-east-1)",
        "REGION",
    );
    opts.optopt(
        "",
        "profile",
        "profile in the shared credentials file (default: $AWS_PROFILE)",
        "NAME",
    );
    opts.optopt(
        "",
        "retries",
        "retries of a failed request (default: 5)",
        "N",
    );
    opts.optopt(
        "",
        "timeout",
        "time for one request, plus 1s per MiB it carries (default: 60s)",
        "DURATION",
    );
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Settings {
    pub fn from_args(args: &Args) -> Result<Settings> {
        Ok(Settings {
            endpoint: args
                .string("endpoint")
                .or_else(|| env("AWS_ENDPOINT_URL_S3"))
                .or_else(|| env("AWS_ENDPOINT_URL")),
            region: args
                .string("region")
                .or_else(|| env("AWS_REGION"))
                .or_else(|| env("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".to_string()),
            profile: args.string("profile").or_else(|| env("AWS_PROFILE")),
            retries: args.number("retries", 5, 0, 100)?,
            timeout: args.value("timeout", Duration::from_secs(60), parse_duration)?,
        })
    }
}
