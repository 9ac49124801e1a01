//! mysql-binlog-replay: applies the binlog that mysql-binlog-archive
//! stored to a running server, from a base backup's coordinates up to a
//! time, a GTID or a position, exactly: every transaction before the
//! target, none after it. Nothing is applied unless the archive covers the
//! whole range and every segment is verified.

mod apply;
mod coordinates;
mod fetch;
mod list;
mod plan;
mod replay;
mod scan;
mod server;

use mysnap::binlog::layout::file_number;
use mysnap::binlog::target::{Position, Target};
use mysnap::cli::{Args, Cli};
use mysnap::mysql::ConnectOptions;
use mysnap::quantity::{parse_size, KIB, MIB};
use mysnap::s3::{self, Client, S3Url, Settings};
use mysnap::signals::Signals;
use mysnap::{Error, Exit, Result};
use nix::sys::signal::Signal;
use replay::Job;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const SYNOPSIS: &str = "mysql-binlog-replay [OPTIONS] (--from FILE:POS | --from-file FILE) --until TARGET s3://BUCKET/PREFIX/
       mysql-binlog-replay [OPTIONS] --list s3://BUCKET/PREFIX/";
const ABOUT: &str =
    "Applies the binary log archived under PREFIX/binlog/ to a running server, from a
base backup's coordinates up to TARGET: a time ('YYYY-MM-DD HH:MM:SS', UTC unless
it gives its zone), a GTID, or FILE:POS. Every transaction before the target is
applied, none after it. The segments are fetched ahead, verified against their
SHA-256 and rebuilt into binlog files first; a range the archive does not cover
whole (a gap, a hole, an epoch's end) is refused, and nothing is applied. Then
mariadb-binlog (or mysqlbinlog) applies them through the client in one session.";

const STOPPING: [Signal; 2] = [Signal::SIGINT, Signal::SIGTERM];

fn cli() -> Cli {
    let mut cli = Cli::new("mysql-binlog-replay", SYNOPSIS, ABOUT);
    let opts = cli.opts();
    opts.optopt(
        "",
        "from",
        "start at this binlog position: the base backup's coordinates",
        "FILE:POS",
    );
    opts.optopt(
        "",
        "from-file",
        "read the coordinates from a status file, a manifest, or mysql-restore-dir's \
         --coordinates-file",
        "FILE",
    );
    opts.optopt(
        "",
        "until",
        "stop at a time, a GTID (inclusive unless --exclusive) or FILE:POS",
        "TARGET",
    );
    opts.optflag(
        "",
        "exclusive",
        "with a GTID target: stop before that transaction",
    );
    opts.optopt(
        "",
        "epoch",
        "use this epoch of the archive (default: the one that holds FROM's file; needed when several do)",
        "NAME",
    );
    opts.optflag(
        "n",
        "dry-run",
        "fetch, verify and print the plan and its last transaction; apply nothing",
    );
    opts.optflag(
        "",
        "list",
        "print the recoverable window of each epoch and exit",
    );
    opts.optopt("j", "jobs", "segments fetched at once (default: 4)", "N");
    opts.optopt(
        "",
        "read-ahead",
        "segment bytes fetched ahead at most (default: 64M)",
        "SIZE",
    );
    opts.optopt(
        "",
        "tmpdir",
        "rebuild the binlog files in a private directory here (default: $TMPDIR or /tmp)",
        "DIR",
    );
    opts.optopt(
        "",
        "binlog-tool",
        "the binlog reader (default: mariadb-binlog, else mysqlbinlog, on PATH)",
        "PATH",
    );
    opts.optopt(
        "",
        "client",
        "the client that applies its output (default: mariadb, else mysql, on PATH)",
        "PATH",
    );
    mysnap::mysql::add_options(opts);
    s3::add_options(opts);
    cli
}

fn main() {
    // Before any thread: the stopping signals are read from a signalfd.
    let signals = Signals::block(&STOPPING, &[]);
    mysnap::logging::init();
    mysnap::logging::exit(
        signals.and_then(|signals| cli().parse().and_then(|args| run(args, signals))),
    );
}

/// The runtime the S3 work runs on: --list's, and a replay's fetching.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new()
        .map_err(|e| Error::new(Exit::Software, format!("cannot start runtime: {e}")))
}

fn run(args: Args, signals: Signals) -> Result<()> {
    let url = S3Url::parse(&args.operands(1, 1, "s3://BUCKET/PREFIX/")?[0])?;
    let mut prefix = url.key.clone();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    if args.flag("list") {
        if ["from", "from-file", "until"].iter().any(|o| args.flag(o)) || args.flag("dry-run") {
            return Err(args.usage("--list takes no --from, --from-file, --until or --dry-run"));
        }
        let client = Client::new(&Settings::from_args(&args)?, &url.bucket)?;
        return runtime()?.block_on(list::print(&client, &prefix));
    }
    let job = job(&args)?;
    let settings = Settings::from_args(&args)?;
    let client = Arc::new(Client::new(&settings, &url.bucket)?);
    let apply = if args.flag("dry-run") {
        None
    } else {
        Some((
            apply::Tools::from_args(&args)?,
            ConnectOptions::from_args(&args, "mysql")?,
        ))
    };
    replay::run(&job, client, &prefix, apply, &signals)
}

fn job(args: &Args) -> Result<Job> {
    let from = match (args.string("from"), args.string("from-file")) {
        (Some(text), None) => Position::parse(&text)
            .ok_or_else(|| args.usage(format!("--from '{text}': not FILE:POS")))?,
        (None, Some(path)) => coordinates::read(Path::new(&path))?,
        (Some(_), Some(_)) => return Err(args.usage("--from and --from-file exclude each other")),
        (None, None) => return Err(args.usage("--from FILE:POS or --from-file FILE is required")),
    };
    let text = args
        .string("until")
        .ok_or_else(|| args.usage("--until TARGET is required"))?;
    let target =
        Target::parse(&text, args.flag("exclusive")).map_err(|e| args.usage(e.message()))?;
    if args.flag("exclusive") && !matches!(target, Target::Gtid { .. }) {
        return Err(args.usage("--exclusive is for a GTID target"));
    }
    if let Target::Position(p) = &target {
        let before = (file_number(&p.file), p.position) < (file_number(&from.file), from.position);
        if before {
            return Err(args.usage(format!("--until {p} is before --from {from}")));
        }
    }
    let budget = args.value("read-ahead", 64 * MIB, parse_size)?;
    if budget < 64 * KIB {
        return Err(args.usage("--read-ahead must be at least 64K"));
    }
    Ok(Job {
        from,
        target,
        epoch: args.string("epoch"),
        jobs: args.number("jobs", 4, 1, 64)?,
        budget,
        tmpdir: args.string("tmpdir").map(PathBuf::from),
    })
}
