//! s3-put: stream stdin, or a command's stdout, into one S3 object by
//! multipart upload, without knowing its length and without staging it.

mod plan;
mod state;
mod upload;

use chrono::format::{Item, StrftimeItems};
use mysnap::cli::{Args, Cli};
use mysnap::s3::{self, Client, Settings};
use mysnap::units::{format_rate, format_size, parse_size, MIB};
use mysnap::{child, Error, Exit, Result};
use plan::PartPlan;
use state::StateFile;
use std::io::Read;
use std::process::Stdio;
use std::sync::Arc;
use upload::{OpenSlot, Source, Stored, Target};

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
        return runtime.block_on(abort_from(&settings, &path));
    }
    let url = s3::S3Url::parse(&args.operands(1, 1, "s3://BUCKET/KEY")?[0])?.require_key()?;
    let key = expand_key(&url.key, chrono::Utc::now())?;
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
        headers: object_headers(&args)?,
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
    runtime.block_on(put(client, target, args.flag("overwrite"), args.command))
}

/// Storage class and encryption headers, checked before anything is sent.
fn object_headers(args: &Args) -> Result<http::HeaderMap> {
    let mut pairs = Vec::new();
    if let Some(class) = args.string("storage-class") {
        pairs.push(("x-amz-storage-class", class));
    }
    let kms_key = args.string("sse-kms-key-id");
    match args.string("sse").as_deref() {
        None if kms_key.is_some() => return Err(args.usage("--sse-kms-key-id needs --sse aws:kms")),
        None => {}
        Some("AES256") if kms_key.is_some() => {
            return Err(args.usage("--sse-kms-key-id needs --sse aws:kms"))
        }
        Some(algorithm @ ("AES256" | "aws:kms")) => {
            pairs.push(("x-amz-server-side-encryption", algorithm.to_string()));
            if let Some(id) = kms_key {
                pairs.push(("x-amz-server-side-encryption-aws-kms-key-id", id));
            }
        }
        Some(other) => {
            return Err(args.usage(format!("--sse must be AES256 or aws:kms, not '{other}'")))
        }
    }
    s3::headers(&pairs)
}

/// Expands strftime patterns in the key, in UTC.
fn expand_key(template: &str, now: chrono::DateTime<chrono::Utc>) -> Result<String> {
    let items: Vec<Item> = StrftimeItems::new(template).collect();
    if items.iter().any(|item| matches!(item, Item::Error)) {
        return Err(Error::usage(format!(
            "invalid strftime pattern in key '{template}'"
        )));
    }
    Ok(now.format_with_items(items.into_iter()).to_string())
}

async fn put(
    client: Arc<Client>,
    target: Target,
    overwrite: bool,
    command: Option<Vec<String>>,
) -> Result<()> {
    let url = client.url(&target.key);
    if !overwrite {
        if let Some(existing) = client.head(&target.key).await? {
            return Err(Error::new(
                Exit::CantCreate,
                format!(
                    "{url} exists ({}); use --overwrite to replace it",
                    format_size(existing.size)
                ),
            ));
        }
    }

    // The input: our stdin, or the stdout of COMMAND, whose exit status
    // decides whether the object is committed.
    let (input, mut producer): (Box<dyn Read + Send>, Option<std::process::Child>) = match &command
    {
        None => (Box::new(std::io::stdin()), None),
        Some(argv) => {
            let (program, rest) = argv
                .split_first()
                .ok_or_else(|| Error::usage("no COMMAND given"))?;
            let mut command = std::process::Command::new(program);
            command.args(rest).stdout(Stdio::piped());
            for name in s3::SECRET_VARIABLES {
                command.env_remove(name);
            }
            let mut spawned = child::spawn_command(&mut command)?;
            let stdout = spawned.stdout.take().expect("stdout is piped");
            (Box::new(stdout), Some(spawned))
        }
    };
    let producer_pid = producer
        .as_ref()
        .map(|c| nix::unistd::Pid::from_raw(c.id() as i32));
    let producer_ok = async {
        let (Some(argv), Some(mut spawned)) = (command.as_ref(), producer.take()) else {
            return Ok(());
        };
        let status = tokio::task::spawn_blocking(move || spawned.wait())
            .await
            .map_err(|e| Error::new(Exit::Software, format!("wait task: {e}")))?
            .map_err(|e| {
                Error::new(
                    Exit::Software,
                    format!("cannot wait for '{}': {e}", argv[0]),
                )
            })?;
        child::check(argv, status)
    };

    let open: OpenSlot = Default::default();
    let committed = std::cell::Cell::new(false);
    let mut progress = mysnap::progress::Progress::new("uploaded", None);
    let work = async {
        let stored = upload::upload(
            client.clone(),
            &target,
            Source::new(input),
            producer_ok,
            &open,
            &mut progress,
        )
        .await?;
        committed.set(true);
        progress.finish();
        finish(&client, &target, &stored, progress.elapsed()).await
    };
    let outcome = tokio::select! {
        result = work => result,
        signal = interrupted() => {
            if let Some(pid) = producer_pid {
                let _ = nix::sys::signal::kill(pid, signal);
            }
            Err(Error::with_status(128 + signal as i32, format!("interrupted by {signal}")))
        }
    };
    match outcome {
        Err(e) if !committed.get() => {
            abort_open(&client, &target, &open).await;
            Err(Error::with_status(
                e.code(),
                format!("{e}; nothing was stored"),
            ))
        }
        other => other,
    }
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

/// Waits for SIGINT or SIGTERM.
async fn interrupted() -> nix::sys::signal::Signal {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("signal handler");
    let mut int = signal(SignalKind::interrupt()).expect("signal handler");
    tokio::select! {
        _ = term.recv() => nix::sys::signal::Signal::SIGTERM,
        _ = int.recv() => nix::sys::signal::Signal::SIGINT,
    }
}

/// Aborts the multipart upload left open by a failure, so no parts linger.
async fn abort_open(client: &Client, target: &Target, open: &OpenSlot) {
    let Some(upload_id) = open.lock().unwrap().take() else {
        return;
    };
    match client.abort_multipart(&target.key, &upload_id).await {
        Ok(()) => {
            log::info!(
                "aborted the multipart upload of {}",
                client.url(&target.key)
            );
            if let Some(state) = &target.state {
                state.clear();
            }
        }
        Err(e) => {
            let hint = match &target.state {
                Some(_) => "; the state file keeps it for 's3-put --abort-from'",
                None => "; a bucket lifecycle rule AbortIncompleteMultipartUpload removes it later",
            };
            log::error!("could not abort upload {upload_id}: {e}{hint}");
        }
    }
}

/// After the object is committed: the sidecar, stdout, the summary line.
async fn finish(
    client: &Client,
    target: &Target,
    stored: &Stored,
    elapsed: std::time::Duration,
) -> Result<()> {
    let url = client.url(&target.key);
    let name = target.key.rsplit('/').next().unwrap_or(&target.key);
    let sidecar = format!("{}  {name}\n", stored.sha256);
    let mut headers = target.headers.clone();
    headers.remove("x-amz-storage-class");
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    client
        .put_object(
            &format!("{}.sha256", target.key),
            sidecar.into_bytes().into(),
            &headers,
        )
        .await
        .map_err(|e| e.context(format!("{url} is stored, but its .sha256 sidecar is not")))?;
    println!("{url}\n{}", stored.sha256);
    log::info!(
        key = url.to_string().as_str(), bytes = stored.bytes, duration_ms = elapsed.as_millis() as u64, sha256 = stored.sha256.as_str();
        "stored {url}: {} in {:.1}s ({}), {} part{}",
        format_size(stored.bytes),
        elapsed.as_secs_f64(),
        format_rate(stored.bytes, elapsed),
        stored.parts,
        if stored.parts == 1 { "" } else { "s" }
    );
    Ok(())
}

/// `--abort-from FILE`: the cleanup after an s3-put that was killed.
async fn abort_from(settings: &Settings, path: &str) -> Result<()> {
    let Some(open) = StateFile::load(std::path::Path::new(path))? else {
        log::info!("no state file {path}: no upload to abort");
        return Ok(());
    };
    let settings = Settings {
        endpoint: settings.endpoint.clone().or(open.endpoint.clone()),
        region: open.region.clone(),
        profile: settings.profile.clone(),
        retries: settings.retries,
        timeout: settings.timeout,
    };
    let client = Client::new(&settings, &open.bucket)?;
    client.abort_multipart(&open.key, &open.upload_id).await?;
    StateFile::new(path).clear();
    log::info!(
        "aborted upload {} of {}",
        open.upload_id,
        client.url(&open.key)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn key_patterns_expand_in_utc() {
        let now = chrono::Utc.with_ymd_and_hms(2026, 11, 23, 1, 2, 3).unwrap();
        assert_eq!(
            expand_key("db1/%Y%m%dT%H%M%SZ.tar.gz", now).unwrap(),
            "db1/20261123T010203Z.tar.gz"
        );
        assert_eq!(expand_key("plain/key", now).unwrap(), "plain/key");
        assert_eq!(expand_key("100%%", now).unwrap(), "100%");
        assert_eq!(expand_key("bad/%Q", now).unwrap_err().code(), 64);
    }

    #[test]
    fn encryption_options_are_checked() {
        let parse = |argv: &[&str]| {
            let args = cli()
                .parse_from(argv.iter().map(|s| s.to_string()).collect())
                .unwrap();
            object_headers(&args)
        };
        assert!(parse(&["--sse", "AES256"]).is_ok());
        let kms = parse(&["--sse", "aws:kms", "--sse-kms-key-id", "k1"]).unwrap();
        assert_eq!(kms["x-amz-server-side-encryption-aws-kms-key-id"], "k1");
        assert_eq!(parse(&["--sse", "DES"]).unwrap_err().code(), 64);
        assert_eq!(
            parse(&["--sse", "AES256", "--sse-kms-key-id", "k"])
                .unwrap_err()
                .code(),
            64
        );
        assert_eq!(parse(&["--sse-kms-key-id", "k"]).unwrap_err().code(), 64);
    }
}
