//! s3-put: stream stdin, or a command's stdout, into one S3 object by
//! multipart upload, without knowing its length and without staging it.

mod cleanup;
mod commit;
mod object;
mod plan;
mod put;
mod state;
mod upload;

use mysnap::cli::{Args, Cli};
use mysnap::quantity::{format_size, parse_size, MIB};
use mysnap::s3::{self, Client, Settings};
use mysnap::{Error, Exit, Result};
use plan::PartPlan;
use state::StateFile;
use std::sync::Arc;
use upload::Target;

const SYNOPSIS: &str = "s3-put [OPTIONS] s3://BUCKET/KEY [-- COMMAND [ARGS...]]\n       s3-put [OPTIONS] --abort-from STATE-FILE";
const ABOUT: &str = "Uploads stdin, or the stdout of COMMAND, to S3 by streaming multipart upload.
With COMMAND the object is stored only if COMMAND exits 0. KEY may hold strftime
patterns, expanded in UTC. On success prints the final URL and the SHA-256.";

fn cli() -> Cli {
    let mut cli = Cli::new("s3-put", SYNOPSIS, ABOUT);
    let opts = cli.opts();
    opts.optopt(
        "p",
        "part-size",
        "size of the first parts, at least 5M (default: 16M)",
        "SIZE",
    );
    opts.optopt("j", "jobs", "parts uploaded at once (default: 4)", "N");
    opts.optopt(
        "",
        "expected-size",
        "pick a part size that keeps this much flat in memory",
        "SIZE",
    );
    opts.optflag("", "overwrite", "replace an existing object at KEY");
    opts.optopt(
        "",
        "state-file",
        "record the open upload here, for --abort-from",
        "FILE",
    );
    opts.optopt(
        "",
        "abort-from",
        "abort the upload recorded in FILE and exit",
        "FILE",
    );
    opts.optopt(
        "",
        "storage-class",
        "S3 storage class (STANDARD, STANDARD_IA, ...)",
        "CLASS",
    );
    opts.optopt(
        "",
        "sse",
        "server-side encryption: AES256 or aws:kms",
        "ALGORITHM",
    );
    opts.optopt("", "sse-kms-key-id", "KMS key for --sse aws:kms", "ID");
    opts.optopt(
        "",
        "status-file",
        "mysql-lock-hold's status file: record the binlog start in the object's metadata",
        "FILE",
    );
    opts.optopt(
        "",
        "object-lock-days",
        "S3 Object Lock: no one deletes the object or its sidecar for N days",
        "N",
    );
    opts.optopt(
        "",
        "object-lock-mode",
        "governance (the default: users with the right permission may lift it) or compliance",
        "MODE",
    );
    opts.optopt(
        "",
        "content-type",
        "Content-Type of the object (default: application/octet-stream)",
        "TYPE",
    );
    s3::add_options(opts);
    cli
}

fn main() {
    mysnap::memory::keep_large_buffers_unpooled();
    mysnap::logging::init();
    mysnap::logging::exit(cli().parse().and_then(run));
}

fn run(args: Args) -> Result<()> {
    let settings = Settings::from_args(&args)?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| Error::new(Exit::Software, format!("cannot start runtime: {e}")))?;
    if let Some(path) = args.string("abort-from") {
        args.operands(0, 0, "")?;
        return runtime.block_on(cleanup::abort_from(&settings, &path));
    }
    let url = s3::S3Url::parse(&args.operands(1, 1, "s3://BUCKET/KEY")?[0])?.require_key()?;
    let started = chrono::Utc::now();
    let key = object::expand_key(&url.key, started)?;
    let base = args.value("part-size", 16 * MIB, parse_size)?;
    let plan = match args.value("expected-size", None, |t| parse_size(t).map(Some))? {
        Some(expected) => PartPlan::for_expected(base, expected)?,
        None => match test_parts_per_step()? {
            Some(step) => PartPlan::with_step(base, step)?,
            None => PartPlan::new(base)?,
        },
    };
    log::debug!(
        "parts of {} for the first {}, then doubling every {} parts",
        format_size(plan.base()),
        format_size(plan.flat_bytes()),
        plan.step()
    );
    let target = Target {
        key,
        plan,
        jobs: args.number("jobs", 4, 1, 64)?,
        content_type: args
            .string("content-type")
            .unwrap_or_else(|| "application/octet-stream".to_string()),
        headers: object::headers(&args, started)?,
        commit_headers: if args.flag("overwrite") {
            http::HeaderMap::new()
        } else {
            s3::headers(&[("if-none-match", "*".to_string())])?
        },
        state: args.string("state-file").map(StateFile::new),
        endpoint: settings.endpoint.clone(),
        region: settings.region.clone(),
    };
    upload::content_type(&target.content_type)?;
    let client = Arc::new(Client::new(&settings, &url.bucket)?);
    runtime.block_on(put::put(
        client,
        target,
        args.flag("overwrite"),
        args.command,
    ))
}

/// The tests' hook: `MYSNAP_TEST_PARTS_PER_STEP` makes the part size
/// double after fewer parts, so growth shows in a small upload. Only debug
/// builds (the ones the tests run) read it: the release that packages ship
/// does not have it.
#[cfg(debug_assertions)]
fn test_parts_per_step() -> Result<Option<u32>> {
    match std::env::var("MYSNAP_TEST_PARTS_PER_STEP") {
        Ok(step) => step
            .parse()
            .map(Some)
            .map_err(|_| Error::usage("MYSNAP_TEST_PARTS_PER_STEP must be a number")),
        Err(_) => Ok(None),
    }
}

#[cfg(not(debug_assertions))]
fn test_parts_per_step() -> Result<Option<u32>> {
    Ok(None)
}
