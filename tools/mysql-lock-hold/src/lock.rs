//! Taking the read lock without hurting production: look for statements
//! that would make the lock wait (and writers pile up behind it), bound
//! every lock statement twice (the session's lock_wait_timeout on the
//! server, a watchdog that KILL QUERYs it from a second connection), and
//! back off and retry instead of waiting.

use crate::flavor::Flavor;
use crate::sql::Sql;
use mysnap::mysql::{classify, describe};
use mysnap::signals::Signals;
use mysnap::{Error, Exit, Result};
use mysql::prelude::Queryable;
use mysql::Conn;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::os::fd::BorrowedFd;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// FLUSH TABLES WITH READ LOCK.
    Ftwrl,
    /// MariaDB's BACKUP STAGE up to BLOCK_COMMIT.
    BackupStage,
}

impl Strategy {
    pub fn parse(text: &str) -> Result<Strategy> {
        match text {
            "ftwrl" => Ok(Strategy::Ftwrl),
            "backup-stage" => Ok(Strategy::BackupStage),
            other => Err(Error::usage(format!(
                "--lock must be ftwrl or backup-stage, not '{other}'"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Ftwrl => "ftwrl",
            Strategy::BackupStage => "backup-stage",
        }
    }

    fn statements(self, flush_tables_first: bool) -> Vec<&'static str> {
        match self {
            Strategy::Ftwrl if flush_tables_first => {
                vec![
                    "FLUSH NO_WRITE_TO_BINLOG TABLES",
                    "FLUSH TABLES WITH READ LOCK",
                ]
            }
            Strategy::Ftwrl => vec!["FLUSH TABLES WITH READ LOCK"],
            Strategy::BackupStage => vec![
                "BACKUP STAGE START",
                "BACKUP STAGE FLUSH",
                "BACKUP STAGE BLOCK_DDL",
                "BACKUP STAGE BLOCK_COMMIT",
            ],
        }
    }

    pub fn release_statement(self) -> &'static str {
        match self {
            Strategy::Ftwrl => "UNLOCK TABLES",
            Strategy::BackupStage => "BACKUP STAGE END",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub strategy: Strategy,
    pub lock_timeout: Duration,
    pub retries: u32,
    pub retry_delay: Duration,
    pub long_query_threshold: Duration,
    pub wait_long_queries: Duration,
    pub flush_tables_first: bool,
}

impl Policy {
    /// The longest the tool tries before giving up: every attempt may wait
    /// for long queries and then for the lock, with backoffs in between.
    pub fn give_up_bound(&self) -> Duration {
        let attempt = self.lock_timeout + self.wait_long_queries;
        let backoffs: Duration = (0..self.retries)
            .map(|n| self.retry_delay * (1 << n.min(16)))
            .sum();
        attempt * (self.retries + 1) + backoffs
    }
}

/// A lock being held.
pub struct Held {
    pub attempts: u32,
    /// From the first request to holding the lock, retries included.
    pub waited: Duration,
    pub since: Instant,
}

/// Server errors that mean "the lock statement was cut short": retry.
fn timed_out(error: &mysql::Error) -> bool {
    // 1205 lock wait timeout, 1317 query interrupted (our KILL QUERY).
    matches!(error, mysql::Error::MySqlError(e) if matches!(e.code, 1205 | 1317))
}

/// Runs `statement` on `conn`; if it is still running at `deadline`, or
/// when a signal arrives on `interrupt` (the signalfd: SIGTERM must not wait
/// out the timeout while writers queue behind the pending lock), the
/// watchdog kills it from `watch`.
fn run_bounded(
    conn: &mut Conn,
    watch: &mut Conn,
    statement: &str,
    deadline: Instant,
    interrupt: BorrowedFd<'_>,
) -> Result<(), mysql::Error> {
    const SLICE: Duration = Duration::from_millis(20);
    let id = conn.connection_id();
    let finished = &Mutex::new(false);
    let (done, done_rx) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        scope.spawn(move || loop {
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(SLICE);
            if !matches!(done_rx.recv_timeout(wait), Err(RecvTimeoutError::Timeout)) {
                return;
            }
            let mut fds = [PollFd::new(interrupt, PollFlags::POLLIN)];
            let signalled = poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0);
            if !signalled && Instant::now() < deadline {
                continue;
            }
            // Holding `finished` while killing: the statement cannot
            // complete and a later one start under the KILL.
            let finished = finished.lock().unwrap();
            if !*finished {
                log::debug!("watchdog: KILL QUERY {id} ({statement})");
                if let Err(e) = watch.query_drop(format!("KILL QUERY {id}")) {
                    log::warn!("watchdog could not kill the lock request: {e}");
                }
            }
            return;
        });
        let result = conn.query_drop(statement);
        *finished.lock().unwrap() = true;
        let _ = done.send(());
        result
    })
}

/// A running statement that would make the lock wait, older than the threshold.
fn long_blocker(
    watch: &mut Conn,
    flavor: &Flavor,
    policy: &Policy,
    holder: u32,
) -> Result<Option<String>> {
    let query = format!(
        "SELECT ID, TIME, INFO FROM information_schema.PROCESSLIST \
         WHERE ID NOT IN (CONNECTION_ID(), {holder}) AND INFO IS NOT NULL AND TIME >= {} \
         AND COMMAND NOT IN ('Sleep', 'Daemon', 'Binlog Dump', 'Binlog Dump GTID', 'Killed')",
        policy.long_query_threshold.as_secs()
    );
    let rows = Sql::rows(watch, &query).map_err(classify)?;
    for row in rows {
        let info = row.get("INFO").cloned().flatten().unwrap_or_default();
        let blocks = match policy.strategy {
            Strategy::Ftwrl => flavor.blocks_ftwrl(&info),
            Strategy::BackupStage => flavor.blocks_backup_stage(&info),
        };
        if blocks {
            let id = row.get("ID").cloned().flatten().unwrap_or_default();
            let time = row.get("TIME").cloned().flatten().unwrap_or_default();
            let short: String = info.chars().take(80).collect();
            return Ok(Some(format!("connection {id}, running {time}s: {short}")));
        }
    }
    Ok(None)
}

/// Waits up to `wait_long_queries` for blocking statements to finish.
fn wait_for_long_queries(
    watch: &mut Conn,
    flavor: &Flavor,
    policy: &Policy,
    holder: u32,
) -> Result<Option<String>> {
    let deadline = Instant::now() + policy.wait_long_queries;
    loop {
        let blocker = long_blocker(watch, flavor, policy, holder)?;
        if blocker.is_none() || Instant::now() >= deadline {
            return Ok(blocker);
        }
        std::thread::sleep(Duration::from_millis(100).min(deadline - Instant::now()));
    }
}

/// Takes the lock on `conn`, or gives up with exit 75 having held nothing.
pub fn acquire(
    conn: &mut Conn,
    watch: &mut Conn,
    flavor: &Flavor,
    policy: &Policy,
    signals: &Signals,
) -> Result<Held> {
    let started = Instant::now();
    let holder = conn.connection_id();
    for attempt in 0..=policy.retries {
        signals.check()?;
        if attempt > 0 {
            let delay = policy.retry_delay * (1 << (attempt - 1).min(16));
            log::info!(
                "retrying in {:.1}s (retry {attempt} of {})",
                delay.as_secs_f64(),
                policy.retries
            );
            std::thread::sleep(delay);
        }
        signals.check()?;
        if let Some(blocker) = wait_for_long_queries(watch, flavor, policy, holder)? {
            log::warn!(
                "not locking: a long statement would stall writers behind the lock ({blocker})"
            );
            continue;
        }
        let asked = Instant::now();
        let deadline = asked + policy.lock_timeout;
        let mut outcome = Ok(());
        for statement in policy.strategy.statements(policy.flush_tables_first) {
            outcome = run_bounded(conn, watch, statement, deadline, signals.fd());
            if outcome.is_err() {
                break;
            }
        }
        match outcome {
            Ok(()) => {
                log::debug!("locked in {} ms", asked.elapsed().as_millis());
                return Ok(Held {
                    attempts: attempt + 1,
                    waited: started.elapsed(),
                    since: Instant::now(),
                });
            }
            Err(e) if timed_out(&e) => {
                // Leave nothing half-taken (a BACKUP STAGE started, a table flush).
                let _ = conn.query_drop(policy.strategy.release_statement());
                log::warn!(
                    "lock not granted within {} ms ({})",
                    policy.lock_timeout.as_millis(),
                    describe(&e)
                );
            }
            Err(e) => return Err(classify(e).context("cannot take the lock")),
        }
    }
    Err(Error::new(
        Exit::TempFail,
        format!(
            "no lock after {} attempts in {:.1}s; nothing is held",
            policy.retries + 1,
            started.elapsed().as_secs_f64()
        ),
    ))
}

/// Releases the lock. A connection the server already dropped (its
/// wait_timeout after a frozen holder) took the lock with it.
pub fn release(conn: &mut Conn, strategy: Strategy) -> Result<()> {
    match conn.query_drop(strategy.release_statement()) {
        Ok(()) => Ok(()),
        Err(mysql::Error::IoError(_) | mysql::Error::CodecError(_)) => {
            log::warn!("the server had dropped the connection, and the lock with it");
            Ok(())
        }
        Err(e) => {
            Err(classify(e).context("cannot release the lock (closing the connection releases it)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn give_up_is_bounded_as_documented() {
        let policy = Policy {
            strategy: Strategy::Ftwrl,
            lock_timeout: Duration::from_secs(3),
            retries: 3,
            retry_delay: Duration::from_secs(1),
            long_query_threshold: Duration::from_secs(10),
            wait_long_queries: Duration::from_secs(5),
            flush_tables_first: false,
        };
        // 4 × (3 s + 5 s) + 1 + 2 + 4 s of backoff.
        assert_eq!(policy.give_up_bound(), Duration::from_secs(39));
    }

    #[test]
    fn strategies_and_their_statements() {
        assert_eq!(Strategy::parse("ftwrl").unwrap(), Strategy::Ftwrl);
        assert_eq!(Strategy::parse("lock-instance").unwrap_err().code(), 64);
        assert_eq!(
            Strategy::BackupStage.statements(false).last(),
            Some(&"BACKUP STAGE BLOCK_COMMIT")
        );
        assert_eq!(
            Strategy::Ftwrl.statements(true)[0],
            "FLUSH NO_WRITE_TO_BINLOG TABLES"
        );
        assert_eq!(
            Strategy::BackupStage.release_statement(),
            "BACKUP STAGE END"
        );
    }
}
