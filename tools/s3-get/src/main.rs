//! s3-get: write an S3 object to stdout by parallel ranged GETs, in order,
//! verifying it against the SHA-256 sidecar that s3-put stored beside it.

mod catalog;
mod download;

use download::Sink;
use mysnap::cli::{Args, Cli};
use mysnap::quantity::{format_rate, format_size, parse_size, KIB, MIB};
use mysnap::s3::{self, Client, ObjectInfo, S3Url, Settings};
use mysnap::{Error, Exit, Result};
use std::io::IsTerminal;

type Moment = chrono::DateTime<chrono::Utc>;
use std::os::fd::AsFd;
use std::sync::Arc;

const SYNOPSIS: &str = "s3-get [OPTIONS] s3://BUCKET/KEY
       s3-get [OPTIONS] --latest s3://BUCKET/PREFIX/
       s3-get [OPTIONS] --list s3://BUCKET/PREFIX/";
const ABOUT: &str = "Writes an S3 object to stdout by parallel ranged GETs and verifies it against
its KEY.sha256 sidecar. --latest picks the newest backup under a prefix; --list
prints the backups under it, one a line: time, size in bytes, URL.";

fn cli() -> Cli {
    let mut cli = Cli::new("s3-get", SYNOPSIS, ABOUT);
    let opts = cli.opts();
    opts.optopt(
        "p",
        "part-size",
        "bytes per ranged GET (default: 16M)",
        "SIZE",
    );
    opts.optopt("j", "jobs", "ranged GETs at once (default: 4)", "N");
    opts.optflag("", "latest", "download the newest backup under the prefix");
    opts.optflag("", "list", "list the backups under the prefix and exit");
    opts.optopt(
        "",
        "before",
        "with --latest or --list: only backups taken at or before TIME \
         ('YYYY-MM-DD HH:MM:SS' UTC, or RFC 3339)",
        "TIME",
    );
    opts.optflag("", "no-verify", "do not check the SHA-256 sidecar");
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
    let url = S3Url::parse(&args.operands(1, 1, "s3://BUCKET/KEY")?[0])?;
    let part = args.value("part-size", 16 * MIB, parse_size)?;
    if !(64 * KIB..=5 * 1024 * MIB).contains(&part) {
        return Err(args.usage("--part-size must be within 64K..5G"));
    }
    let jobs = args.number("jobs", 4, 1, 64)?;
    let (list, latest) = (args.flag("list"), args.flag("latest"));
    if list && latest {
        return Err(args.usage("--list and --latest exclude each other"));
    }
    let before = args
        .string("before")
        .map(|t| mysnap::moment::parse_moment(&t))
        .transpose()?;
    if before.is_some() && !(list || latest) {
        return Err(args.usage("--before goes with --latest or --list"));
    }
    if !list && std::io::stdout().is_terminal() {
        return Err(
            args.usage("refusing to write an archive to a terminal; redirect or pipe stdout")
        );
    }
    let url = if list || latest {
        url
    } else {
        url.require_key()?
    };
    let client = Arc::new(Client::new(&settings, &url.bucket)?);
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| Error::new(Exit::Software, format!("cannot start runtime: {e}")))?;
    runtime.block_on(async {
        if list {
            return print_list(&client, &url, before).await;
        }
        let object = if latest {
            newest(&client, &url, before).await?
        } else {
            client
                .head(&url.key)
                .await?
                .ok_or_else(|| Error::new(Exit::NoInput, format!("{url}: no such key")))?
        };
        get(client, object, part, jobs, !args.flag("no-verify")).await
    })
}

async fn print_list(client: &Client, prefix: &S3Url, before: Option<Moment>) -> Result<()> {
    let found = catalog::before(
        &prefix.key,
        catalog::backups(&prefix.key, client.list(&prefix.key).await?),
        before,
    );
    if found.is_empty() {
        log::info!("no backups under {prefix}");
    }
    for object in found {
        println!(
            "{}  {:>14}  {}",
            object.last_modified,
            object.size,
            client.url(&object.key)
        );
    }
    Ok(())
}

async fn newest(client: &Client, prefix: &S3Url, before: Option<Moment>) -> Result<ObjectInfo> {
    let found = catalog::before(
        &prefix.key,
        catalog::backups(&prefix.key, client.list(&prefix.key).await?),
        before,
    );
    let newest = found.into_iter().last().ok_or_else(|| {
        let when =
            before.map(|t| format!(" taken at or before {}", t.format("%Y-%m-%d %H:%M:%S UTC")));
        Error::new(
            Exit::NoInput,
            format!("no backups under {prefix}{}", when.unwrap_or_default()),
        )
    })?;
    log::info!(
        "newest backup under {prefix}: {} ({}, {})",
        client.url(&newest.key),
        newest.last_modified,
        format_size(newest.size)
    );
    // The listing's ETag and size are what HEAD says too; HEAD once more so
    // the download is pinned to the object as it is now.
    client.head(&newest.key).await?.ok_or_else(|| {
        Error::new(
            Exit::TempFail,
            format!("{} vanished while being read", client.url(&newest.key)),
        )
    })
}

/// The SHA-256 the sidecar records, or None when there is no sidecar.
async fn expected_sha256(client: &Client, key: &str) -> Result<Option<String>> {
    let sidecar = format!("{key}.sha256");
    let Some(text) = client.get_small(&sidecar).await? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&text);
    let sum = text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if sum.len() != 64 || !sum.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::new(
            Exit::DataErr,
            format!("{}: not a SHA-256 sidecar", client.url(&sidecar)),
        ));
    }
    Ok(Some(sum))
}

async fn get(
    client: Arc<Client>,
    object: ObjectInfo,
    part: u64,
    jobs: usize,
    verify: bool,
) -> Result<()> {
    let url = client.url(&object.key);
    let expected = if verify {
        let sum = expected_sha256(&client, &object.key).await?;
        if sum.is_none() {
            log::warn!("{url} has no .sha256 sidecar: its content cannot be verified");
        }
        sum
    } else {
        None
    };
    let stdout = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| Error::new(Exit::IoErr, format!("cannot use stdout: {e}")))?;
    let sink = Sink::new(Box::new(std::fs::File::from(stdout)));
    let mut progress = mysnap::progress::Progress::new("downloaded", Some(object.size));
    let sink = download::download(client.clone(), &object, part, jobs, sink, &mut progress).await?;
    progress.finish();
    let elapsed = progress.elapsed();
    let bytes = sink.bytes;
    if bytes != object.size {
        return Err(Error::new(
            Exit::DataErr,
            format!("{url}: got {bytes} bytes, expected {}", object.size),
        ));
    }
    let actual = sink.sha256();
    let verdict = match expected {
        Some(expected) if expected != actual => {
            return Err(Error::new(
                Exit::DataErr,
                format!(
                "{url}: SHA-256 mismatch: the data hashes to {actual}, the sidecar says {expected}"
            ),
            ))
        }
        Some(_) => "SHA-256 verified",
        None => "not verified",
    };
    log::info!(
        key = url.to_string().as_str(), bytes = bytes, duration_ms = elapsed.as_millis() as u64, sha256 = actual.as_str();
        "read {url}: {} in {:.1}s ({}), {verdict}",
        format_size(bytes),
        elapsed.as_secs_f64(),
        format_rate(bytes, elapsed)
    );
    Ok(())
}
