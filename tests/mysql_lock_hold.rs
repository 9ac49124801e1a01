//! mysql-lock-hold against a real MariaDB: the lock holds while COMMAND
//! runs, never stalls writers past --lock-timeout, goes away with its
//! holder, and records coordinates that match the binary log.
//!
//! One server serves the whole file and the lock is global, so the tests
//! run one at a time.
//!
//! Every bound on a wait is the configured timeout plus a stated slack, and
//! every wait is timed by the server (see `Write`) from an observable event
//! (a file the tool or COMMAND wrote, a statement seen in the processlist),
//! never from a sleep: a busy machine may slow the test's own threads, not
//! move its measurements.

use mysnap_tests::mariadb::{write_option_file, Mariadb};
use mysnap_tests::tool::{finish, run, spawn, wait_for_file, Output};
use mysql::prelude::Queryable;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn server() -> (&'static Mariadb, MutexGuard<'static, ()>) {
    static SERVER: OnceLock<Mariadb> = OnceLock::new();
    static SERIAL: Mutex<()> = Mutex::new(());
    let guard = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    (SERVER.get_or_init(Mariadb::start), guard)
}

/// This machine's clock, which the server's NOW(6) and SYSDATE(6) read too.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// One INSERT, timed by the server: `asked` is when the statement started
/// (NOW(6)), `through` when it got past the global read lock (SYSDATE(6) is
/// read once the table is open, and FLUSH TABLES WITH READ LOCK holds
/// writers at the open); `done` when the client had its answer (BACKUP
/// STAGE BLOCK_COMMIT holds writers at the commit, after SYSDATE).
#[derive(Debug, Clone, Copy)]
struct Write {
    asked: f64,
    through: f64,
    done: f64,
}

impl Write {
    fn waited(&self) -> Duration {
        secs(self.through - self.asked)
    }
}

fn write(conn: &mut mysql::Conn) -> Write {
    let (asked, through): (f64, f64) = conn
        .query_first(
            "INSERT INTO t.writes (at, through) \
             VALUES (UNIX_TIMESTAMP(NOW(6)), UNIX_TIMESTAMP(SYSDATE(6))) RETURNING at, through",
        )
        .unwrap()
        .unwrap();
    Write {
        asked,
        through,
        done: now(),
    }
}

/// How long an INSERT waits right now: a held lock makes it wait.
fn insert_takes(db: &Mariadb) -> Duration {
    write(&mut db.admin()).waited()
}

fn assert_no_lock_held(db: &Mariadb) {
    // Slack: an unlocked write waits for nothing; 500 ms is for a busy server.
    let took = insert_takes(db);
    assert!(
        took < Duration::from_millis(500),
        "a write waited {took:?}: a lock is still held"
    );
}

/// An INSERT started on another thread, once it is seen waiting for the
/// lock; join it for its times.
fn insert_in_background(db: &'static Mariadb) -> std::thread::JoinHandle<Write> {
    let insert = std::thread::spawn(move || write(&mut db.admin()));
    wait_until("an INSERT waiting for the lock", || {
        processlist_has(db, "INSERT INTO t.writes%")
    });
    insert
}

/// Whether a statement like `pattern` is running on the server.
fn processlist_has(db: &Mariadb, pattern: &str) -> bool {
    let count: Option<u64> = db
        .admin()
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE ?",
            (pattern,),
        )
        .unwrap();
    count > Some(0)
}

/// Polls `state` until it holds, for at most 30 s.
fn wait_until(what: &str, mut state: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !state() {
        assert!(Instant::now() < deadline, "never saw {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A shell command for COMMAND that writes the time it ends into `file`.
fn ends_into(file: &std::path::Path, body: &str) -> String {
    format!("{body}; date +%s.%N > {}", file.display())
}

fn ended(file: &std::path::Path) -> f64 {
    std::fs::read_to_string(file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A writer that inserts every 20 ms and records how long each waited.
struct Writer {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Write>>,
}

impl Writer {
    fn start(db: &'static Mariadb) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut conn = db.admin();
            let mut writes = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                writes.push(write(&mut conn));
                std::thread::sleep(Duration::from_millis(20));
            }
            writes
        });
        Writer { stop, thread }
    }

    /// The longest a write had to wait, by the server's clock.
    fn stop(self) -> Duration {
        self.stop.store(true, Ordering::SeqCst);
        let writes = self.thread.join().unwrap();
        writes.iter().map(Write::waited).max().unwrap()
    }
}

/// Runs `statement` on its own connection until the test kills it.
fn long_statement(db: &'static Mariadb, statement: &'static str) -> u32 {
    let mut conn = db.admin();
    let id = conn.connection_id();
    std::thread::spawn(move || {
        let _ = conn.query_drop(statement);
    });
    // Until it has aged past the tests' 1 s --long-query-threshold.
    wait_until("the long statement aged 1.3 s", || {
        let ms: Option<f64> = db
            .admin()
            .exec_first(
                "SELECT MAX(time_ms) FROM information_schema.processlist WHERE id = ?",
                (id,),
            )
            .unwrap();
        ms >= Some(1300.0)
    });
    id
}

fn kill(db: &Mariadb, id: u32) {
    db.admin().query_drop(format!("KILL {id}")).unwrap();
}

fn status_file(db: &Mariadb, name: &str) -> std::path::PathBuf {
    let path = db.dir.path().join(name);
    let _ = std::fs::remove_file(&path);
    path
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn command_runs_under_the_lock_and_its_status_passes_through() {
    let (db, _serial) = server();
    let status = status_file(db, "command.json");
    let end = status_file(db, "command.end");
    let (child, feeder) = spawn(
        db.tool("mysql-lock-hold")
            .arg("--status-file")
            .arg(&status)
            .args([
                "--",
                "sh",
                "-c",
                &format!("{}; exit 7", ends_into(&end, "sleep 1.5")),
            ]),
        Vec::new(),
    );
    wait_for_file(&status);
    let insert = insert_in_background(db).join().unwrap();
    let out = finish(child, feeder);
    out.expect_code(7);
    let ended = ended(&end);
    assert!(
        insert.asked < ended && insert.through >= ended,
        "the INSERT, asked {:.3} s before COMMAND ended, got through {:.3} s after it",
        ended - insert.asked,
        insert.through - ended
    );
    let json = read_json(&status);
    assert!(json["lock_hold_ms"].as_u64().unwrap() >= 1400, "{json}");
    assert_no_lock_held(db);
}

#[test]
fn a_long_write_makes_it_back_off_without_stalling_writers() {
    let (db, _serial) = server();
    let update = long_statement(db, "UPDATE t.slow SET v = v WHERE SLEEP(60) = 0");
    let writer = Writer::start(db);
    let out = run(
        db.tool("mysql-lock-hold").args([
            "--long-query-threshold",
            "1s",
            "--wait-long-queries",
            "500ms",
            "--lock-timeout",
            "1s",
            "--retries",
            "1",
            "--retry-delay",
            "200ms",
            "--",
            "true",
        ]),
        b"",
    );
    let stall = writer.stop();
    kill(db, update);
    out.expect_code(75);
    assert!(out.stderr.contains("long statement"), "{}", out.stderr);
    assert!(
        stall < Duration::from_millis(500),
        "writers stalled {stall:?} though no lock was asked for"
    );
    assert_no_lock_held(db);
}

/// mysql-lock-hold with `args`, asking for the lock behind a long write
/// (a --long-query-threshold above its age), once its request is seen
/// waiting in the processlist. Its stderr is piped.
fn asking_for_the_lock(db: &Mariadb, args: &[&str]) -> Child {
    let child = db
        .tool("mysql-lock-hold")
        .args(["--long-query-threshold", "60s"])
        .args(args)
        .args(["--", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the lock request", || {
        processlist_has(db, "FLUSH TABLES WITH READ LOCK%")
    });
    child
}

#[test]
fn a_stuck_lock_request_is_cut_at_lock_timeout() {
    let (db, _serial) = server();
    let update = long_statement(db, "UPDATE t.slow SET v = v WHERE SLEEP(60) = 0");
    let child = asking_for_the_lock(
        db,
        &[
            "--lock-timeout",
            "1s",
            "--retries",
            "1",
            "--retry-delay",
            "200ms",
        ],
    );
    // A write that is seen queued behind the waiting request (observed,
    // not assumed from a sleep): the test proves what it says.
    let insert = insert_in_background(db).join().unwrap();
    let out = child.wait_with_output().unwrap();
    kill(db, update);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("not granted within 1000 ms"), "{stderr}");
    // It queued after the request began, so it waits at most the
    // --lock-timeout, plus 500 ms of slack for the cut to reach a busy
    // server.
    assert!(
        insert.waited() <= Duration::from_millis(1500),
        "a queued write stalled {:?}, over --lock-timeout + 0.5 s",
        insert.waited()
    );
    assert_no_lock_held(db);
}

/// SIGTERM while the lock request waits behind a long write: the request
/// is cut at once, not at --lock-timeout, so the writers queued behind it
/// go on, and nothing is held.
#[test]
fn sigterm_cuts_a_waiting_lock_request_at_once() {
    let (db, _serial) = server();
    let update = long_statement(db, "UPDATE t.slow SET v = v WHERE SLEEP(60) = 0");
    let mut child = asking_for_the_lock(db, &["--lock-timeout", "30s"]);
    let insert = insert_in_background(db);
    let signalled = sigterm(&child);
    let signalled_at = Instant::now();
    let insert = insert.join().unwrap();
    let status = child.wait().unwrap();
    let exited = signalled_at.elapsed();
    kill(db, update);
    assert_eq!(status.code(), Some(143));
    // "At once": far inside the 30 s --lock-timeout; 500 ms of slack for the
    // KILL QUERY, and 2 s to exit.
    assert!(
        insert.through - signalled < 0.5,
        "writes resumed {:.3} s after SIGTERM",
        insert.through - signalled
    );
    assert!(
        exited < Duration::from_secs(2),
        "exited {exited:?} after SIGTERM"
    );
    assert_no_lock_held(db);
}

#[test]
fn the_watchdog_cuts_the_request_before_lock_wait_timeout() {
    let (db, _serial) = server();
    let update = long_statement(db, "UPDATE t.slow SET v = v WHERE SLEEP(60) = 0");
    let writer = Writer::start(db);
    // lock_wait_timeout is whole seconds (1 s here); the watchdog acts at
    // 400 ms. Slack: 500 ms for its KILL QUERY to reach a busy server.
    let out = run(
        db.tool("mysql-lock-hold").args([
            "--long-query-threshold",
            "60s",
            "--lock-timeout",
            "400ms",
            "--retries",
            "0",
            "--",
            "true",
        ]),
        b"",
    );
    let stall = writer.stop();
    kill(db, update);
    out.expect_code(75);
    assert!(
        out.stderr.contains("ERROR 1317"),
        "the watchdog's KILL QUERY: {}",
        out.stderr
    );
    assert!(
        stall <= Duration::from_millis(900),
        "writers stalled {stall:?}"
    );
}

#[test]
fn lock_wait_timeout_ends_the_request_of_a_killed_holder() {
    let (db, _serial) = server();
    let update = long_statement(db, "UPDATE t.slow SET v = v WHERE SLEEP(60) = 0");
    let writer = Writer::start(db);
    let (mut child, feeder) = spawn(
        db.tool("mysql-lock-hold").args([
            "--long-query-threshold",
            "60s",
            "--lock-timeout",
            "2s",
            "--",
            "true",
        ]),
        Vec::new(),
    );
    wait_until("the lock request", || {
        processlist_has(db, "FLUSH TABLES WITH READ LOCK%")
    });
    child.kill().unwrap();
    finish(child, feeder);
    let stall = writer.stop();
    kill(db, update);
    assert!(
        stall <= Duration::from_millis(2500),
        "writers stalled {stall:?} after the holder died"
    );
    assert_no_lock_held(db);
}

#[test]
fn a_long_select_does_not_stop_the_backup() {
    let (db, _serial) = server();
    let select = long_statement(db, "SELECT COUNT(*) FROM t.slow WHERE SLEEP(60) = 0");
    let out = run(
        db.tool("mysql-lock-hold").args([
            "--long-query-threshold",
            "1s",
            "--lock-timeout",
            "1s",
            "--",
            "true",
        ]),
        b"",
    );
    kill(db, select);
    out.expect_code(0);
    assert!(!out.stderr.contains("long statement"), "{}", out.stderr);
}

/// Starts hold mode with stdin piped and waits for its `locked` line.
fn hold(db: &Mariadb, args: &[&str], env: &[(&str, &std::path::Path)]) -> (Child, Vec<String>) {
    let mut cmd = db.tool("mysql-lock-hold");
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (key, value) in env {
        cmd.env(key, value);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = Vec::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "hold mode ended before 'locked': {lines:?}"
        );
        let line = line.trim_end().to_string();
        if line == "locked" {
            break;
        }
        lines.push(line);
    }
    (child, lines)
}

#[test]
fn hold_mode_prints_coordinates_notifies_and_releases_at_eof() {
    let (db, _serial) = server();
    let notify_path = db.dir.path().join("notify.sock");
    let _ = std::fs::remove_file(&notify_path);
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (mut child, lines) = hold(db, &[], &[("NOTIFY_SOCKET", &notify_path)]);
    assert!(
        lines.iter().any(|l| l.starts_with("binlog_file=binlog.")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("binlog_pos=")),
        "{lines:?}"
    );
    let mut message = [0u8; 256];
    let n = notify.recv(&mut message).unwrap();
    assert!(String::from_utf8_lossy(&message[..n]).contains("READY=1"));

    let insert = insert_in_background(db);
    let released = now();
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    let insert = insert.join().unwrap();
    assert!(status.success());
    assert!(
        insert.through >= released,
        "the INSERT got through {:.3} s before stdin closed",
        released - insert.through
    );
    assert_no_lock_held(db);
}

/// mysql-lock-hold with `args`, its status in `status`; once it holds the lock.
fn holding(db: &Mariadb, status: &std::path::Path, args: &[&str]) -> Child {
    let child = db
        .tool("mysql-lock-hold")
        .arg("--status-file")
        .arg(status)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_file(status);
    child
}

/// Sends SIGTERM; returns when, by the clock the server reads.
fn sigterm(child: &Child) -> f64 {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::SIGTERM).unwrap();
    now()
}

#[test]
fn until_signal_ignores_stdin_and_sigterm_releases() {
    let (db, _serial) = server();
    let status = status_file(db, "until.json");
    let mut child = holding(db, &status, &["--until-signal"]);
    // Its stdin is at EOF from the start: a write still waits for the lock.
    let insert = insert_in_background(db);
    assert!(
        child.try_wait().unwrap().is_none(),
        "EOF on stdin released the lock"
    );
    let signalled = sigterm(&child);
    assert!(child.wait().unwrap().success());
    assert!(insert.join().unwrap().through >= signalled);
    assert_no_lock_held(db);
}

/// SIGTERM while COMMAND runs: the lock goes at once, though COMMAND takes
/// its time to stop (as an lvcreate in its critical section does).
#[test]
fn sigterm_releases_before_a_slow_command_has_stopped() {
    let (db, _serial) = server();
    let status = status_file(db, "slow.json");
    let go = status_file(db, "slow.go");
    // COMMAND ignores SIGTERM and runs until the test lets it go.
    let command = format!(
        "trap '' TERM; until [ -e {} ]; do sleep 0.05; done",
        go.display()
    );
    let mut child = holding(db, &status, &["--", "sh", "-c", &command]);
    let insert = insert_in_background(db);
    let signalled = sigterm(&child);
    let insert = insert.join().unwrap();
    // Slack: 500 ms for the release to reach a busy server.
    assert!(
        insert.through - signalled < 0.5,
        "writes resumed {:.3} s after SIGTERM",
        insert.through - signalled
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the holder did not wait for COMMAND"
    );
    std::fs::write(&go, b"").unwrap();
    assert!(!child.wait().unwrap().success());
    assert_no_lock_held(db);
}

#[test]
fn kill_9_of_the_holder_releases_at_once() {
    let (db, _serial) = server();
    let (mut child, _) = hold(db, &[], &[]);
    let insert = insert_in_background(db);
    child.kill().unwrap();
    let killed = now();
    let _ = child.wait();
    let insert = insert.join().unwrap();
    // The server ends the dead connection's lock at once; 1 s of slack.
    assert!(
        insert.through - killed < 1.0,
        "writes resumed {:.3} s after the kill",
        insert.through - killed
    );
}

#[test]
fn a_frozen_holder_is_dropped_by_the_server_after_max_hold() {
    let (db, _serial) = server();
    let started = now();
    let (mut child, _) = hold(db, &["--max-hold", "2s"], &[]);
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::SIGSTOP).unwrap();
    let frozen = now();
    let insert = write(&mut db.admin());
    nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL).unwrap();
    let _ = child.wait();
    // The server drops the silent holder by its wait_timeout, which
    // mysql-lock-hold sets to --max-hold + its 2 s grace + 1 s: never
    // before --max-hold from its start; 2 s of slack for the server's
    // timeout check after that.
    assert!(
        insert.through - started >= 2.0,
        "the lock went {:.3} s after the holder started, before --max-hold",
        insert.through - started
    );
    assert!(
        insert.through - frozen <= (2 + 2 + 1 + 2) as f64,
        "the server kept the lock of a frozen holder for {:.3} s",
        insert.through - frozen
    );
}

#[test]
fn max_hold_stops_the_command_and_releases() {
    let (db, _serial) = server();
    let out = run(
        db.tool("mysql-lock-hold")
            .args(["--max-hold", "1s", "--", "sleep", "30"]),
        b"",
    );
    out.expect_code(75);
    assert!(out.stderr.contains("max-hold"), "{}", out.stderr);
    // SIGTERM at 1 s ends `sleep`: the hold, as the tool measured it, ends
    // before the SIGKILL that would follow 2 s later.
    let held: u64 = out
        .stderr
        .split("held it ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no hold time in: {}", out.stderr));
    assert!(
        (1000..1000 + 2000).contains(&held),
        "held {held} ms: COMMAND was not stopped by SIGTERM at --max-hold"
    );
    assert_no_lock_held(db);
}

#[test]
fn coordinates_match_the_binary_log_and_mark_where_replication_resumes() {
    let (db, _serial) = server();
    let mut admin = db.admin();
    let before: mysql::Row = admin.query_first("SHOW MASTER STATUS").unwrap().unwrap();
    let before_file: String = before.get("File").unwrap();
    let status = status_file(db, "coordinates.json");
    let out = run(
        db.tool("mysql-lock-hold")
            .arg("--status-file")
            .arg(&status)
            .args([
                "--",
                "sh",
                "-c",
                "echo \"$MYSNAP_BINLOG_FILE $MYSNAP_BINLOG_POS $MYSNAP_GTID $MYSNAP_STATUS_FILE\"",
            ]),
        b"",
    );
    out.expect_code(0);
    let json = read_json(&status);
    let after: mysql::Row = admin.query_first("SHOW MASTER STATUS").unwrap().unwrap();
    let file: String = after.get("File").unwrap();
    assert_eq!(json["binlog_file"], file.as_str(), "{json}");
    // MariaDB may append a Binlog_checkpoint event after the flush, on its
    // own: nothing else may stand between the recorded position and now.
    let recorded = json["binlog_pos"].as_u64().unwrap();
    let between: Vec<mysql::Row> = admin
        .query(format!("SHOW BINLOG EVENTS IN '{file}' FROM {recorded}"))
        .unwrap();
    for event in &between {
        let kind: String = event.get("Event_type").unwrap();
        assert_eq!(
            kind, "Binlog_checkpoint",
            "an event after the recorded position: {json}"
        );
    }
    let pos = recorded;
    assert_ne!(file, before_file, "the binary log was not flushed");
    let gtid: String = admin
        .query_first("SELECT @@gtid_binlog_pos")
        .unwrap()
        .unwrap();
    assert_eq!(json["gtid"], gtid.as_str());
    assert_eq!(json["flavor"], "mariadb");
    assert_eq!(json["lock"], "ftwrl");
    assert!(
        json["layout"]["datadir"]
            .as_str()
            .unwrap()
            .ends_with("/data/"),
        "{json}"
    );
    assert_eq!(
        out.stdout_text().trim(),
        format!("{file} {pos} {gtid} {}", status.display()),
        "COMMAND's environment"
    );

    // A replica started at these coordinates gets exactly what came after.
    admin
        .query_drop("INSERT INTO t.writes (at) VALUES (-1)")
        .unwrap();
    let events: Vec<mysql::Row> = admin
        .query(format!("SHOW BINLOG EVENTS IN '{file}' FROM {pos} LIMIT 8"))
        .unwrap();
    let first_pos: u64 = events[0].get("Pos").unwrap();
    assert_eq!(first_pos, pos);
    let infos: Vec<String> = events
        .iter()
        .map(|e| e.get::<String, _>("Info").unwrap())
        .collect();
    assert!(
        infos.iter().any(|i| i.contains("INSERT INTO t.writes")),
        "{infos:?}"
    );
}

#[test]
fn backup_stage_blocks_commits_while_held() {
    let (db, _serial) = server();
    let status = status_file(db, "stage.json");
    let end = status_file(db, "stage.end");
    let (child, feeder) = spawn(
        db.tool("mysql-lock-hold")
            .args(["--lock", "backup-stage", "--status-file"])
            .arg(&status)
            .args(["--", "sh", "-c", &ends_into(&end, "sleep 1")]),
        Vec::new(),
    );
    wait_for_file(&status);
    // BLOCK_COMMIT holds it at the commit: it is done only after the release.
    let insert = write(&mut db.admin());
    finish(child, feeder).expect_code(0);
    let ended = ended(&end);
    assert!(
        insert.asked < ended && insert.done >= ended,
        "a commit went through BLOCK_COMMIT {:.3} s before COMMAND ended",
        ended - insert.done
    );
    assert_eq!(read_json(&status)["lock"], "backup-stage");
    assert_no_lock_held(db);
}

fn one_line(out: &Output, mentions: &str) {
    assert_eq!(
        out.stderr.lines().count(),
        1,
        "one line on stderr:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(mentions),
        "should mention '{mentions}':\n{}",
        out.stderr
    );
}

#[test]
fn failures_exit_with_their_codes_and_hold_nothing() {
    let (db, _serial) = server();
    let lock = |args: &[&str]| run(db.tool("mysql-lock-hold").args(args), b"");
    for (args, mentions) in [
        (&["--bogus"][..], "bogus"),
        (&["--lock", "instance", "--", "true"][..], "--lock"),
        (
            &["--lock-timeout", "10ms", "--", "true"][..],
            "lock-timeout",
        ),
        (
            &["--max-hold", "soon", "--", "true"][..],
            "invalid duration",
        ),
        (&["--until-signal", "--", "true"][..], "hold mode"),
        (&["extra"][..], "unexpected argument"),
        (&["--ssl-mode", "sometimes", "--", "true"][..], "ssl-mode"),
    ] {
        let out = lock(args);
        assert_eq!(out.code, 64, "{args:?}: {}", out.stderr);
        one_line(&out, mentions);
    }

    let wrong = db.dir.path().join("wrong.cnf");
    write_option_file(
        &wrong,
        &format!(
            "[client]\nuser=backup\npassword=nope\nsocket={}\n",
            db.socket.display()
        ),
    );
    let out = run(
        mysnap_tests::tool::tool("mysql-lock-hold")
            .arg("--defaults-file")
            .arg(&wrong)
            .args(["--", "true"]),
        b"",
    );
    out.expect_code(77);
    one_line(&out, "Access denied");

    let out = run(
        mysnap_tests::tool::tool("mysql-lock-hold").args([
            "--no-defaults",
            "--socket",
            "/nonexistent.sock",
            "--",
            "true",
        ]),
        b"",
    );
    out.expect_code(69);
    one_line(&out, "/nonexistent.sock");

    let out = run(
        mysnap_tests::tool::tool("mysql-lock-hold").args([
            "--defaults-file",
            "/nonexistent.cnf",
            "--",
            "true",
        ]),
        b"",
    );
    out.expect_code(66);

    let out = lock(&["--", "/no/such/command"]);
    out.expect_code(127);
    assert!(out.stderr.contains("cannot run"), "{}", out.stderr);
    let out = lock(&["--", "/"]);
    out.expect_code(126);
    assert_no_lock_held(db);
}

/// A CA, and a server certificate for 127.0.0.1 signed by it, made with openssl.
fn certificates(dir: &std::path::Path, name: &str) {
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ca = format!("{name}-ca");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &format!("/CN={ca}"),
        "-keyout",
        &format!("{ca}.key"),
        "-out",
        &format!("{ca}.pem"),
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &format!("{name}.key"),
        "-out",
        &format!("{name}.csr"),
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &format!("{name}.csr"),
        "-CA",
        &format!("{ca}.pem"),
        "-CAkey",
        &format!("{ca}.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        &format!("{name}.pem"),
    ]);
}

#[test]
fn tls_options_reach_the_server() {
    // Its own server, but the timing tests share the CPU: one at a time.
    let (_, _serial) = server();
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path(), "server");
    certificates(certs.path(), "other");
    let path = |f: &str| certs.path().join(f).display().to_string();
    let db = Mariadb::start_with(&[
        &format!("--ssl-ca={}", path("server-ca.pem")),
        &format!("--ssl-cert={}", path("server.pem")),
        &format!("--ssl-key={}", path("server.key")),
    ]);
    db.admin()
        .query_drop(
            "CREATE USER tls@'127.0.0.1' IDENTIFIED BY 'tls-pw' REQUIRE SSL; \
             GRANT RELOAD, PROCESS, BINLOG MONITOR, SLAVE MONITOR ON *.* TO tls@'127.0.0.1'",
        )
        .unwrap();
    let cnf = db.dir.path().join("tls.cnf");
    write_option_file(
        &cnf,
        &format!(
            "[client]\nuser=tls\npassword=tls-pw\nhost=127.0.0.1\nport={}\n",
            db.port
        ),
    );
    let lock = |extra: &[&str]| {
        run(
            mysnap_tests::tool::tool("mysql-lock-hold")
                .arg("--defaults-file")
                .arg(&cnf)
                .args(extra)
                .args(["--", "true"]),
            b"",
        )
    };
    // The account requires TLS: without it the server says no.
    lock(&["--ssl-mode", "DISABLED"]).expect_code(77);
    // Verified against the right CA, with the host name checked.
    lock(&[
        "--ssl-mode",
        "VERIFY_IDENTITY",
        "--ssl-ca",
        &path("server-ca.pem"),
    ])
    .expect_code(0);
    // A certificate from another CA is refused.
    let out = lock(&["--ssl-mode", "VERIFY_CA", "--ssl-ca", &path("other-ca.pem")]);
    out.expect_code(69);
    // REQUIRED encrypts without verifying.
    lock(&["--ssl-mode", "REQUIRED"]).expect_code(0);
}

#[test]
fn preferred_tls_falls_back_to_plain_text_and_required_does_not() {
    let (db, _serial) = server();
    db.admin()
        .query_drop(
            "CREATE USER IF NOT EXISTS plain@'127.0.0.1' IDENTIFIED BY 'plain-pw'; \
             GRANT RELOAD, PROCESS, BINLOG MONITOR, SLAVE MONITOR ON *.* TO plain@'127.0.0.1'",
        )
        .unwrap();
    let cnf = db.dir.path().join("plain.cnf");
    write_option_file(
        &cnf,
        &format!(
            "[client]\nuser=plain\npassword=plain-pw\nhost=127.0.0.1\nport={}\n",
            db.port
        ),
    );
    let lock = |mode: &str| {
        run(
            mysnap_tests::tool::tool("mysql-lock-hold")
                .arg("--defaults-file")
                .arg(&cnf)
                .args(["--ssl-mode", mode, "--", "true"]),
            b"",
        )
    };
    // This server has no TLS.
    lock("PREFERRED").expect_code(0);
    let out = lock("REQUIRED");
    out.expect_code(69);
    one_line(&out, "secure connection");
    assert_no_lock_held(db);
}
