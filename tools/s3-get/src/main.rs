//! s3-get: write an S3 object to stdout by parallel ranged GETs, in order,
//! verifying it against the SHA-256 sidecar that s3-put stored beside it.

mod catalog;
mod download;
mod get;

use mysnap::cli::{Args, Cli};
use mysnap::quantity::{parse_size, KIB, MIB};
use mysnap::s3::{self, Client, S3Url, Settings};
use mysnap::{Error, Exit, Result};
use std::io::IsTerminal;
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
            return catalog::print(&client, &url, before).await;
        }
        let object = if latest {
            catalog::newest(&client, &url, before).await?
        } else {
            get::object(&client, &url).await?
        };
        get::get(client, object, part, jobs, !args.flag("no-verify")).await
    })
}
