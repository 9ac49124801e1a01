//! mysql-binlog-archive: connects to a MySQL or MariaDB server as a
//! replica and stores its binary log in S3 as immutable segments, seconds
//! behind the server, so that a restore can reach any second after a
//! backup. The archive itself is the state: a restart reads where it ends.

mod archiver;
mod dump;
mod locate;
mod metrics;
mod segment;
mod source;
mod store;

use archiver::Job;
use mysnap::cli::{Args, Cli};
use mysnap::mysql::ConnectOptions;
use mysnap::quantity::{parse_duration, parse_size, KIB, MIB};
use mysnap::s3::{self, Client, S3Url, Settings};
use mysnap::{Error, Exit, Result};
use segment::Cut;
use std::path::PathBuf;
use std::time::Duration;

const SYNOPSIS: &str = "mysql-binlog-archive [OPTIONS] --server-id N s3://BUCKET/PREFIX/";
const ABOUT: &str = "Streams the server's binary log over the replication protocol and stores it
under PREFIX/binlog/ as immutable segments: one every --segment-interval while
there are events, at --segment-size, and at every rotation. Goes on where the
archive ends; records a gap when the server purged binlogs it never got, and
starts a new epoch when the server's binlogs are another lineage.";

fn cli() -> Cli {
    let mut cli = Cli::new("mysql-binlog-archive", SYNOPSIS, ABOUT);
    let opts = cli.opts();
    opts.optopt(
        "",
        "server-id",
        "register as a replica with this server id (required; unique among replicas)",
        "N",
    );
    opts.optopt(
        "",
        "segment-interval",
        "store the open segment this long after its first event (default: 5s)",
        "DURATION",
    );
    opts.optopt(
        "",
        "segment-size",
        "store the open segment once it holds this much (default: 16M)",
        "SIZE",
    );
    opts.optopt(
        "",
        "heartbeat",
        "ask the server for a heartbeat when idle this long; a silent connection is \
         dropped after 3 of them plus 5s (default: 2s)",
        "DURATION",
    );
    opts.optflag(
        "",
        "no-follow",
        "archive up to the end of the binary log, then exit 0",
    );
    opts.optopt(
        "",
        "reconnect-tries",
        "reconnections in a row, without a segment stored, before giving up with exit 75 \
         (default: 10)",
        "N",
    );
    opts.optopt(
        "",
        "metrics-file",
        "write Prometheus metrics here after each segment (node_exporter textfile)",
        "FILE",
    );
    mysnap::mysql::add_options(opts);
    s3::add_options(opts);
    cli
}

fn main() {
    mysnap::logging::init();
    mysnap::logging::exit(cli().parse().and_then(run));
}

fn run(args: Args) -> Result<()> {
    let url = S3Url::parse(&args.operands(1, 1, "s3://BUCKET/PREFIX/")?[0])?;
    if args.command.is_some() {
        return Err(args.usage("mysql-binlog-archive runs no COMMAND: nothing goes after --"));
    }
    let Some(server_id) = args.string("server-id") else {
        return Err(args.usage("--server-id is required: a replica id no other replica uses"));
    };
    let server_id: u32 = server_id.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
        args.usage(format!(
            "--server-id '{server_id}': a number from 1 to 4294967295"
        ))
    })?;
    let duration = |name, default| args.value(name, default, parse_duration);
    let cut = Cut {
        interval: duration("segment-interval", Duration::from_secs(5))?,
        size: args.value("segment-size", 16 * MIB, parse_size)? as usize,
    };
    if cut.interval < Duration::from_millis(100) || cut.size < 64 * KIB as usize {
        return Err(
            args.usage("--segment-interval must be at least 100ms and --segment-size at least 64K")
        );
    }
    let heartbeat = duration("heartbeat", Duration::from_secs(2))?;
    if !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&heartbeat) {
        return Err(args.usage("--heartbeat must be within 100ms..1h"));
    }
    let job = Job {
        server_id,
        cut,
        heartbeat,
        follow: !args.flag("no-follow"),
        retries: args.number("reconnect-tries", 10, 0, 1_000_000)?,
        metrics_file: args.string("metrics-file").map(PathBuf::from),
    };
    let mut prefix = url.key.clone();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    let connection = ConnectOptions::from_args(&args, "mysql-binlog-archive")?;
    let settings = Settings::from_args(&args)?;
    let client = Client::new(&settings, &url.bucket)?;
    let store = store::Store { client, prefix };
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| Error::new(Exit::Software, format!("cannot start runtime: {e}")))?;
    runtime.block_on(archiver::run(&job, &connection, &store))
}
