//! One run of mysql-lock-hold once its options are parsed: connect, check
//! the server, take the lock, record where the binary log stands, hold it
//! while COMMAND runs (or in hold mode), release it, and say how it ended.

use crate::coordinates::{self, Coordinates, Settings};
use crate::flavor::{self, Flavor};
use crate::lock::{self, Policy, Strategy};
use crate::sql::Sql;
use crate::wait::{self, Ended};
use mysnap::mysql::{classify, ConnectOptions};
use mysnap::signals::Signals;
use mysnap::status::Status;
use mysnap::{child, Error, Exit, Result};
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// What the command line asked for.
pub struct Job {
    pub policy: Policy,
    pub max_hold: Duration,
    pub status_file: Option<PathBuf>,
    pub flush_logs: bool,
    pub until_signal: bool,
    pub command: Option<Vec<String>>,
}

pub fn run(job: &Job, connection: &ConnectOptions, signals: &Signals) -> Result<()> {
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
    let held = lock::acquire(&mut conn, &mut watch, &flavor, &job.policy, signals)?;
    let mut released_early = None;
    let outcome = hold(
        job,
        &mut conn,
        &flavor,
        &settings,
        &held,
        signals,
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
