//! mysql-lock-hold: a read lock whose lifetime is the process's. It takes
//! the lock with a short timeout and retries, records where the binary log
//! stands, and holds the lock while COMMAND runs (like flock(1)), or in
//! hold mode until stdin closes or a signal arrives.

mod coordinates;
mod flavor;
mod lock;
mod sql;
mod wait;

use coordinates::{Coordinates, Settings};
use flavor::Flavor;
use lock::{Policy, Strategy};
use mysnap::cli::{Args, Cli};
use mysnap::mysql::{classify, ConnectOptions};
use mysnap::signals::Signals;
use mysnap::status::Status;
use mysnap::units::parse_duration;
use mysnap::{child, Error, Exit, Result};
use sql::Sql;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use wait::Ended;

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

struct Job {
    policy: Policy,
    max_hold: Duration,
    status_file: Option<PathBuf>,
    flush_logs: bool,
    until_signal: bool,
    command: Option<Vec<String>>,
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
    let mut conn = connection.connect()?;
    let mut watch = connection.connect()?;
    let flavor = Flavor::detect(&mut watch).map_err(classify)?;
    if job.policy.strategy == Strategy::BackupStage && !flavor.has_backup_stage() {
        return Err(Error::new(
            Exit::Config,
            format!(
                "{flavor} has no BACKUP STAGE (MariaDB 10.4.1 and later have it); use --lock ftwrl"
            ),
        ));
    }
    let settings = Settings::read(&mut watch).map_err(classify)?;
    for warning in settings.durability_warnings() {
        log::warn!("{warning}");
    }
    // The server's own dead man's switch: lock_wait_timeout ends a lock
    // request even if we die; wait_timeout drops a silent holder (and the
    // lock) once --max-hold and COMMAND's grace period are over.
    let session = format!(
        "SET SESSION lock_wait_timeout = {}, wait_timeout = {}",
        job.policy.lock_timeout.as_secs_f64().ceil().max(1.0) as u64,
        (job.max_hold + mysnap::signals::KILL_GRACE)
            .as_secs_f64()
            .ceil() as u64
            + 1
    );
    conn.run(&session).map_err(classify)?;

    log::debug!(
        "giving up on the lock after at most {:.1}s",
        job.policy.give_up_bound().as_secs_f64()
    );
    let held = lock::acquire(&mut conn, &mut watch, &flavor, &job.policy, &signals)?;
    let mut released_early = None;
    let outcome = hold(
        &job,
        &mut conn,
        &flavor,
        &settings,
        &held,
        &signals,
        &mut released_early,
    );
    let (released, hold_ms) =
        released_early.unwrap_or_else(|| release(&mut conn, job.policy.strategy, &held));
    log::info!(
        lock_wait_ms = held.waited.as_millis() as u64, lock_hold_ms = hold_ms;
        "released the lock: waited {} ms for it ({} attempt{}), held it {hold_ms} ms",
        held.waited.as_millis(),
        held.attempts,
        if held.attempts == 1 { "" } else { "s" }
    );
    let (status, ended) = outcome?;
    released?;
    if let Some(path) = &job.status_file {
        let mut status = status;
        status.lock_hold_ms = Some(hold_ms);
        status.write_file(path)?;
    }
    match ended {
        Ended::Exited(exit) => match &job.command {
            Some(argv) => child::check(argv, exit),
            None => Ok(()),
        },
        Ended::MaxHold => Err(Error::new(
            Exit::TempFail,
            format!(
                "held the lock for --max-hold ({}s); released it",
                job.max_hold.as_secs_f64()
            ),
        )),
        Ended::Signal(signal) if job.command.is_none() => {
            log::info!("{signal}: released");
            Ok(())
        }
        Ended::Signal(signal) => Err(mysnap::signals::interrupted(signal)),
        Ended::InputClosed => Ok(()),
    }
}

/// The release's outcome, and how long the lock was held (ms).
type Released = (Result<()>, u64);

fn release(conn: &mut mysql::Conn, strategy: lock::Strategy, held: &lock::Held) -> Released {
    let released = lock::release(conn, strategy);
    (released, held.since.elapsed().as_millis() as u64)
}

/// Under the lock: make it durable, record where things stand, then run
/// COMMAND or wait, as briefly as the job allows.
fn hold(
    job: &Job,
    conn: &mut mysql::Conn,
    flavor: &Flavor,
    settings: &Settings,
    held: &lock::Held,
    signals: &Signals,
    released_early: &mut Option<Released>,
) -> Result<(Status, Ended)> {
    let deadline = held.since + job.max_hold;
    conn.run("FLUSH NO_WRITE_TO_BINLOG ENGINE LOGS")
        .map_err(|e| classify(e).context("FLUSH ENGINE LOGS"))?;
    if job.flush_logs && settings.log_bin {
        conn.run("FLUSH BINARY LOGS")
            .map_err(|e| classify(e).context("FLUSH BINARY LOGS"))?;
    }
    let coordinates =
        Coordinates::read(conn, flavor).map_err(|e| classify(e).context("reading coordinates"))?;
    let status = Status {
        format: mysnap::status::FORMAT,
        flavor: match flavor.kind {
            flavor::Kind::MariaDb => mysnap::status::Flavor::MariaDb,
            flavor::Kind::MySql => mysnap::status::Flavor::MySql,
        },
        server_version: flavor.version_string.clone(),
        server_id: settings.server_id,
        server_uuid: settings.server_uuid.clone(),
        binlog_file: coordinates.binlog_file,
        binlog_pos: coordinates.binlog_pos,
        gtid: coordinates.gtid,
        replica: coordinates.replica,
        layout: settings.layout.clone(),
        lock: job.policy.strategy.name().to_string(),
        locked_at: chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string(),
        lock_attempts: held.attempts,
        lock_wait_ms: held.waited.as_millis() as u64,
        lock_hold_ms: None,
    };
    if let Some(path) = &job.status_file {
        status.write_file(path)?;
    }
    log::info!(
        binlog_file = status.binlog_file.as_deref().unwrap_or(""), binlog_pos = status.binlog_pos.unwrap_or(0), gtid = status.gtid.as_deref().unwrap_or("");
        "locked ({}): binlog {}:{}, gtid {}",
        flavor,
        status.binlog_file.as_deref().unwrap_or("-"),
        status.binlog_pos.map_or("-".to_string(), |p| p.to_string()),
        status.gtid.as_deref().unwrap_or("-")
    );
    signals.check()?;

    let ended = match &job.command {
        Some(argv) => {
            let mut command = std::process::Command::new(&argv[0]);
            command.args(&argv[1..]).stdout(Stdio::inherit());
            for (key, value) in coordinates::environment(&status) {
                command.env(key, value);
            }
            if let Some(path) = &job.status_file {
                command.env("MYSNAP_STATUS_FILE", path);
            }
            let mut running = child::spawn_command(&mut command)?;
            // Told to stop: writers go on at once, not once COMMAND has
            // finished or undone its step (an lvcreate takes its time).
            let mut release = || {
                *released_early = Some(release(conn, job.policy.strategy, held));
            };
            wait::command(signals, &mut running, deadline, &mut release)?
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{}locked", coordinates::lines(&status))
                .and_then(|()| stdout.flush());
            let _ = libsystemd::daemon::notify(false, &[libsystemd::daemon::NotifyState::Ready]);
            let stdin = std::io::stdin();
            let input = (!job.until_signal).then_some(&stdin);
            wait::hold(signals, input, deadline)?
        }
    };
    Ok((status, ended))
}
