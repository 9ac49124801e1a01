//! mysql-lock-hold: a read lock whose lifetime is the process's. It takes
//! the lock with a short timeout and retries, records where the binary log
//! stands, and holds the lock while COMMAND runs (like flock(1)), or in
//! hold mode until stdin closes or a signal arrives.

mod coordinates;
mod flavor;
mod holder;
mod lock;
mod sql;
mod wait;

use holder::Job;
use lock::{Policy, Strategy};
use mysnap::cli::{Args, Cli};
use mysnap::mysql::ConnectOptions;
use mysnap::quantity::parse_duration;
use mysnap::signals::Signals;
use mysnap::Result;
use std::path::PathBuf;
use std::time::Duration;

const SYNOPSIS: &str = "mysql-lock-hold [OPTIONS] -- COMMAND [ARGS...]
       mysql-lock-hold [OPTIONS]";
const ABOUT: &str = "Takes FLUSH TABLES WITH READ LOCK (or BACKUP STAGE) with a short timeout and
retries, flushes the binary logs, records the coordinates, and holds the lock
while COMMAND runs, exiting with its status. Without COMMAND (hold mode) it
prints the coordinates and 'locked', and holds until stdin closes, SIGTERM or
SIGINT arrives, or --max-hold expires.";

fn cli() -> Cli {
    let mut cli = Cli::new("mysql-lock-hold", SYNOPSIS, ABOUT);
    let opts = cli.opts();
    opts.optopt(
        "",
        "lock",
        "ftwrl (default) or backup-stage (MariaDB: also blocks commits)",
        "KIND",
    );
    opts.optopt(
        "",
        "lock-timeout",
        "give up one attempt at the lock after this long (default: 3s)",
        "DURATION",
    );
    opts.optopt("", "retries", "attempts after the first (default: 3)", "N");
    opts.optopt(
        "",
        "retry-delay",
        "first backoff between attempts, doubling (default: 1s)",
        "DURATION",
    );
    opts.optopt(
        "",
        "long-query-threshold",
        "statements running this long would stall the lock (default: 10s)",
        "DURATION",
    );
    opts.optopt(
        "",
        "wait-long-queries",
        "wait this long for such statements before backing off (default: 5s)",
        "DURATION",
    );
    opts.optflag(
        "",
        "flush-tables-first",
        "run FLUSH NO_WRITE_TO_BINLOG TABLES before the lock",
    );
    opts.optflag(
        "",
        "no-flush-logs",
        "do not FLUSH BINARY LOGS under the lock",
    );
    opts.optopt(
        "",
        "status-file",
        "write the coordinates here as JSON (mode 0600)",
        "FILE",
    );
    opts.optopt(
        "",
        "max-hold",
        "never hold the lock longer than this (default: 60s)",
        "DURATION",
    );
    opts.optflag(
        "",
        "until-signal",
        "hold mode: ignore stdin, hold until SIGTERM or SIGINT",
    );
    mysnap::mysql::add_options(opts);
    cli
}

fn main() {
    // Before anything else, and before any thread: signals become events.
    let signals = Signals::block(&wait::STOPPING, &[]);
    mysnap::logging::init();
    mysnap::logging::exit(
        signals.and_then(|signals| cli().parse().and_then(|args| run(args, signals))),
    );
}

fn run(args: Args, signals: Signals) -> Result<()> {
    args.operands(0, 0, "")?;
    let duration = |name, default| args.value(name, default, parse_duration);
    let job = Job {
        policy: Policy {
            strategy: args.value("lock", Strategy::Ftwrl, Strategy::parse)?,
            lock_timeout: duration("lock-timeout", Duration::from_secs(3))?,
            retries: args.number("retries", 3, 0, 100)?,
            retry_delay: duration("retry-delay", Duration::from_secs(1))?,
            long_query_threshold: duration("long-query-threshold", Duration::from_secs(10))?,
            wait_long_queries: duration("wait-long-queries", Duration::from_secs(5))?,
            flush_tables_first: args.flag("flush-tables-first"),
        },
        max_hold: duration("max-hold", Duration::from_secs(60))?,
        status_file: args.string("status-file").map(PathBuf::from),
        flush_logs: !args.flag("no-flush-logs"),
        until_signal: args.flag("until-signal"),
        command: args.command.clone(),
    };
    if job.policy.lock_timeout < Duration::from_millis(100) || job.max_hold < Duration::from_secs(1)
    {
        return Err(args.usage("--lock-timeout must be at least 100ms and --max-hold at least 1s"));
    }
    if job.command.is_some() && job.until_signal {
        return Err(args.usage("--until-signal is for hold mode, without COMMAND"));
    }
    let connection = ConnectOptions::from_args(&args, "mysql-lock-hold")?;
    holder::run(&job, &connection, &signals)
}
