//! mysql-binlog-replay against real MariaDB servers (binary log, GTID) and
//! a real s3s-fs, with the archive that mysql-binlog-archive stored: a
//! point-in-time restore applies every transaction before the target and
//! none after it; a range the archive does not cover whole, or a segment
//! altered in S3, is refused with nothing applied.

use mysnap::binlog::layout::{gap_key, Timeline};
use mysnap_tests::mariadb::Mariadb;
use mysnap_tests::server::S3Server;
use mysnap_tests::tool::Output;
use mysql::prelude::Queryable;
use std::collections::BTreeSet;
use std::path::PathBuf;

const BUCKET: &str = "archive";
const PREFIX: &str = "db1/";

fn url() -> String {
    format!("s3://{BUCKET}/{PREFIX}")
}

/// The server whose binlog is archived.
fn source() -> Mariadb {
    let db = Mariadb::start();
    let mut admin = db.admin();
    admin
        .query_drop("GRANT REPLICATION SLAVE ON *.* TO backup@localhost")
        .unwrap();
    // Row events come with their Annotate_rows events (MariaDB's
    // default), which the archiver asks for: the replay reads them too.
    db
}

/// A server in the source's state at FROM: both start from the harness's
/// setup. The backup user may apply what the binlog holds; the grants
/// are not binlogged, so the server's GTID position stays the source's.
fn target() -> Mariadb {
    target_with(&[])
}

/// The same, with more server options.
fn target_with(server_options: &[&str]) -> Mariadb {
    let db = Mariadb::start_with(server_options);
    let mut admin = db.admin();
    for statement in [
        "SET sql_log_bin = 0",
        "GRANT ALL ON t.* TO backup@localhost",
        "GRANT BINLOG REPLAY ON *.* TO backup@localhost",
    ] {
        admin.query_drop(statement).unwrap();
    }
    db
}

/// Where the source's binlog stands: what a backup taken now records.
fn coordinates(db: &Mariadb) -> String {
    let row: mysql::Row = db
        .admin()
        .query_first("SHOW MASTER STATUS")
        .unwrap()
        .unwrap();
    let (file, position): (String, u64) = (row.get(0).unwrap(), row.get(1).unwrap());
    format!("{file}:{position}")
}

fn archive(db: &Mariadb, s3: &S3Server) {
    let mut cmd = s3.tool("mysql-binlog-archive");
    cmd.arg("--defaults-file")
        .arg(&db.defaults_file)
        .args([
            "--server-id",
            "4242",
            "--heartbeat",
            "500ms",
            "--no-follow",
            "--reconnect-tries",
            "0",
        ])
        .arg(url());
    mysnap_tests::tool::run(&mut cmd, b"").expect_code(0);
}

fn replay(s3: &S3Server, target: &Mariadb, args: &[&str]) -> Output {
    let mut cmd = s3.tool("mysql-binlog-replay");
    cmd.arg("--defaults-file")
        .arg(&target.defaults_file)
        .args(args)
        .arg(url());
    mysnap_tests::tool::run(&mut cmd, b"")
}

/// A committed row: its id, its commit time (the statement's, as the
/// binlog stamps it), and its transaction's GTID.
#[derive(Debug, Clone)]
struct Row {
    id: u32,
    at: f64,
    gtid: String,
}

impl Row {
    fn second(&self) -> i64 {
        self.at.floor() as i64
    }
}

/// Inserts rows one a transaction until the server's clock has moved on
/// by `seconds` whole seconds from the first row's.
fn write(conn: &mut mysql::Conn, rows: &mut Vec<Row>, seconds: i64) {
    let mut first = None;
    loop {
        let id = rows.len() as u32 + 1;
        conn.exec_drop(
            "INSERT INTO t.rows (id, at) VALUES (?, UNIX_TIMESTAMP(NOW(6)))",
            (id,),
        )
        .unwrap();
        rows.push(committed(conn, id));
        let second = rows.last().unwrap().second();
        if second - *first.get_or_insert(second) >= seconds {
            return;
        }
    }
}

fn committed(conn: &mut mysql::Conn, id: u32) -> Row {
    let (at, gtid): (f64, String) = conn
        .exec_first("SELECT at, @@last_gtid FROM t.rows WHERE id = ?", (id,))
        .unwrap()
        .unwrap();
    Row { id, at, gtid }
}

/// Back to the state at FROM, the GTID position too.
fn reset(db: &Mariadb) {
    let mut admin = db.admin();
    for statement in ["SET sql_log_bin = 0", "DROP TABLE t.rows", "RESET MASTER"] {
        admin.query_drop(statement).unwrap();
    }
}

/// The history of the tests: a table, rows in several seconds across a
/// rotation, a temporary table that lives across it, then the accident.
struct History {
    from: String,
    rows: Vec<Row>,
    drop_gtid: String,
}

fn history(db: &Mariadb, s3: &S3Server) -> History {
    let from = coordinates(db);
    let mut conn = db.admin();
    conn.query_drop("CREATE TABLE t.rows (id INT PRIMARY KEY, at DOUBLE)")
        .unwrap();
    // Statement-logged, and needed after the rotation: one session only.
    conn.query_drop("CREATE TEMPORARY TABLE t.pending (id INT)")
        .unwrap();
    conn.query_drop("INSERT INTO t.pending VALUES (1000000)")
        .unwrap();
    let mut rows = Vec::new();
    write(&mut conn, &mut rows, 1);
    archive(db, s3);
    conn.query_drop("FLUSH BINARY LOGS").unwrap();
    // Rows as row events too, from another session (a session with a
    // temporary table cannot leave row format).
    let mut rows_session = db.admin();
    rows_session
        .query_drop("SET SESSION binlog_format = 'ROW'")
        .unwrap();
    write(&mut rows_session, &mut rows, 1);
    conn.query_drop("INSERT INTO t.rows SELECT id, UNIX_TIMESTAMP(NOW(6)) FROM t.pending")
        .unwrap();
    rows.push(committed(&mut conn, 1_000_000));
    write(&mut conn, &mut rows, 1);
    conn.query_drop("DROP TABLE t.rows").unwrap();
    let drop_gtid: String = conn.query_first("SELECT @@last_gtid").unwrap().unwrap();
    archive(db, s3);
    History {
        from,
        rows,
        drop_gtid,
    }
}

fn last_applied(out: &Output, gtid: &str) {
    let stdout = out.stdout_text();
    assert!(
        stdout.starts_with("last applied: ") && stdout.contains(&format!(", GTID {gtid}, ")),
        "stdout: {stdout}\nstderr: {}",
        out.stderr
    );
}

#[test]
fn a_replay_stops_exactly_at_a_time_or_a_gtid() {
    let src = source();
    let s3 = S3Server::s3s_fs(&[BUCKET]);
    let dst = target();
    let h = history(&src, &s3);
    let last = h.rows.last().unwrap().second();
    let seconds: BTreeSet<i64> = h.rows.iter().map(Row::second).collect();
    assert!(seconds.len() >= 3, "rows in {seconds:?}");

    // The second before the last rows': all of it is kept, none after.
    let until = last - 1;
    let expected: BTreeSet<u32> = h
        .rows
        .iter()
        .filter(|r| r.second() <= until)
        .map(|r| r.id)
        .collect();
    assert!(!expected.is_empty() && expected.len() < h.rows.len());
    let time = chrono::DateTime::from_timestamp(until, 0)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();

    let out = replay(
        &s3,
        &dst,
        &["--from", &h.from, "--until", &time, "--dry-run"],
    );
    out.expect_code(0);
    assert!(
        out.stdout_text().contains("would apply"),
        "{}",
        out.stdout_text()
    );
    assert!(!dst.has_table(), "a dry run applies nothing");

    let out = replay(&s3, &dst, &["--from", &h.from, "--until", &time]);
    out.expect_code(0);
    assert!(dst.has_table());
    assert_eq!(dst.ids(), expected, "--until {time}");
    let newest = h.rows.iter().rev().find(|r| r.second() <= until).unwrap();
    last_applied(&out, &newest.gtid);

    // The same instant with its zone, one hour east.
    reset(&dst);
    let zoned = chrono::DateTime::from_timestamp(until + 3600, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S+01:00")
        .to_string();
    replay(&s3, &dst, &["--from", &h.from, "--until", &zoned]).expect_code(0);
    assert_eq!(dst.ids(), expected, "--until {zoned}");

    // A GTID in the middle, inclusive: that transaction and all before.
    reset(&dst);
    let k = h.rows.len() / 2;
    let out = replay(&s3, &dst, &["--from", &h.from, "--until", &h.rows[k].gtid]);
    out.expect_code(0);
    let expected: BTreeSet<u32> = h.rows[..=k].iter().map(|r| r.id).collect();
    assert_eq!(dst.ids(), expected, "--until {}", h.rows[k].gtid);
    last_applied(&out, &h.rows[k].gtid);

    // The accident's GTID, exclusive, from a status file: every row.
    reset(&dst);
    let (file, position) = h.from.split_once(':').unwrap();
    let status = dst.dir.path().join("status.json");
    std::fs::write(
        &status,
        format!(
            r#"{{"format":1,"flavor":"mariadb","server_version":"10.11","binlog_file":"{file}",
                "binlog_pos":{position},"layout":{{}},"lock":"ftwrl",
                "locked_at":"2026-01-01T00:00:00.000Z","lock_attempts":1,"lock_wait_ms":1}}"#
        ),
    )
    .unwrap();
    let from_file = ["--from-file", status.to_str().unwrap()];
    let until_drop = ["--until", &h.drop_gtid, "--exclusive"];
    let out = replay(&s3, &dst, &[&from_file[..], &until_drop[..]].concat());
    out.expect_code(0);
    assert!(dst.has_table());
    let all: BTreeSet<u32> = h.rows.iter().map(|r| r.id).collect();
    assert_eq!(dst.ids(), all);
    last_applied(&out, &h.rows.last().unwrap().gtid);

    // Again on a server that has it all: refused, nothing doubled.
    let out = replay(
        &s3,
        &dst,
        &[&["-q"][..], &from_file[..], &until_drop[..]].concat(),
    );
    out.expect_one_line("holds these events already")
        .expect_code(65);
    assert_eq!(dst.ids(), all);
}

/// The archive as s3s-fs keeps it: one file per object, at its key.
fn timeline(s3: &S3Server) -> Timeline {
    let root = s3.object_file(BUCKET, "");
    let pattern = root.join(PREFIX).join("binlog/*/*/*");
    let keys: Vec<(String, u64)> = glob::glob(pattern.to_str().unwrap())
        .unwrap()
        .map(|path| {
            let path = path.unwrap();
            let key = path.strip_prefix(&root).unwrap().display().to_string();
            (key, std::fs::metadata(&path).unwrap().len())
        })
        .collect();
    Timeline::from_listing(PREFIX, keys.iter().map(|(k, s)| (k.as_str(), *s)))
}

#[test]
fn what_the_archive_does_not_cover_is_refused_and_nothing_applied() {
    let src = source();
    let s3 = S3Server::s3s_fs(&[BUCKET]);
    let dst = target();
    let from = coordinates(&src);
    let mut conn = src.admin();
    conn.query_drop("CREATE TABLE t.rows (id INT PRIMARY KEY, at DOUBLE)")
        .unwrap();
    let mut rows = Vec::new();
    write(&mut conn, &mut rows, 0);
    archive(&src, &s3);
    conn.query_drop("FLUSH BINARY LOGS").unwrap();
    write(&mut conn, &mut rows, 0);
    archive(&src, &s3);
    let t = timeline(&s3);
    let epoch = &t.epochs[0];
    let second = &epoch.files[1];
    let end = format!("{}:{}", second.name, second.segments.last().unwrap().end);
    let refused = |args: &[&str], says: &str| {
        let out = replay(&s3, &dst, &[&["-q", "--from", &from][..], args].concat());
        out.expect_one_line(says).expect_code(65);
        assert!(!dst.has_table(), "nothing applied: {args:?}");
    };

    // The whole archive, to its last position: the plan is there.
    let out = replay(&s3, &dst, &["--from", &from, "--until", &end, "--dry-run"]);
    out.expect_code(0);
    assert!(
        out.stdout_text().contains(&second.name),
        "{}",
        out.stdout_text()
    );

    // A segment altered in S3: the first file's would verify, but nothing
    // is applied until all of them do.
    let segment: PathBuf = s3.object_file(BUCKET, &second.segments[0].key);
    let original = std::fs::read(&segment).unwrap();
    let mut altered = original.clone();
    altered[original.len() / 2] ^= 0x40;
    std::fs::write(&segment, &altered).unwrap();
    refused(&["--until", &end], "SHA-256");
    std::fs::write(&segment, &original).unwrap();

    // A hole: the end of the first file (its rotation) is gone.
    let first = &epoch.files[0];
    assert!(first.segments.len() >= 2, "{first:?}");
    let tail = s3.object_file(BUCKET, &first.segments.last().unwrap().key);
    let aside = dst.dir.path().join("aside");
    std::fs::rename(&tail, &aside).unwrap();
    refused(&["--until", &end], "events between them are missing");
    std::fs::rename(&aside, &tail).unwrap();

    // A gap marker before the second file; --list shows it.
    let marker = s3.object_file(BUCKET, &gap_key(PREFIX, &epoch.name, &second.name));
    std::fs::write(&marker, b"{}").unwrap();
    refused(&["--until", &end], "gap");
    let mut list = s3.tool("mysql-binlog-replay");
    list.args(["--list", &url()]);
    let out = mysnap_tests::tool::run(&mut list, b"");
    out.expect_code(0);
    let text = out.stdout_text();
    assert!(
        text.contains(&format!("epoch {}", epoch.name)) && text.contains("a gap"),
        "{text}"
    );
    std::fs::remove_file(&marker).unwrap();

    // The end of the archive before the target, and a GTID it lacks.
    refused(&["--until", "2099-01-01 00:00:00"], "the archive covers");
    refused(&["--until", "0-1-999999"], "the archive covers");

    // Usage, a refused login, a server out of reach.
    replay(&s3, &dst, &["-q", "--from", &from]).expect_code(64);
    replay(&s3, &dst, &["-q", "--from", &from, "--until", "soon"]).expect_code(64);
    let wrong = dst.dir.path().join("wrong.cnf");
    mysnap_tests::mariadb::write_option_file(
        &wrong,
        &format!(
            "[client]\nuser = backup\npassword = wrong\nsocket = {}\n",
            dst.socket.display()
        ),
    );
    let mut cmd = s3.tool("mysql-binlog-replay");
    cmd.arg("--defaults-file").arg(&wrong);
    cmd.args(["-q", "--from", &from, "--until", &end, &url()]);
    mysnap_tests::tool::run(&mut cmd, b"").expect_code(77);
    let out = replay(
        &s3,
        &dst,
        &[
            "-q",
            "--socket",
            "/nonexistent/mysqld.sock",
            "--from",
            &from,
            "--until",
            &end,
        ],
    );
    out.expect_code(69);
    assert!(!dst.has_table());

    // And with the archive whole again, it applies.
    replay(&s3, &dst, &["--from", &from, "--until", &end]).expect_code(0);
    assert_eq!(dst.ids(), rows.iter().map(|r| r.id).collect());
}

/// The median of a few timings.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One of the SHOW SLAVE STATUS columns, as text ("" for NULL).
fn slave_status(row: &mysql::Row, column: &str) -> String {
    row.get_opt::<Option<String>, _>(column)
        .and_then(Result::ok)
        .flatten()
        .unwrap_or_default()
}

/// The relay-log path, by hand: the binlog files (from `from` on) go into
/// the target's datadir as its relay logs, and its SQL thread, with
/// `threads` parallel workers in `mode` (0: the serial applier), applies
/// them. Needs the target started with --relay-log=relay and
/// --skip-slave-start, a server_id not the source's, and an account with
/// SUPER (or REPLICATION SLAVE ADMIN). Returns the seconds from the first
/// copy to the SQL thread's leaving the last of the files.
fn apply_as_relay_logs(
    db: &Mariadb,
    files: &[PathBuf],
    from_file: &str,
    from_pos: &str,
    threads: usize,
    mode: &str,
    expected_rows: u64,
) -> f64 {
    let mut admin = db.admin();
    // No replica configured and no relay log left from an earlier run.
    admin.query_drop("STOP SLAVE").unwrap();
    admin.query_drop("RESET SLAVE ALL").unwrap();
    let started = std::time::Instant::now();
    let mut index = String::new();
    for (n, file) in files.iter().enumerate() {
        let name = format!("relay.{:06}", n + 1);
        std::fs::copy(file, db.datadir().join(&name)).unwrap();
        index.push_str(&format!("./{name}\n"));
    }
    std::fs::write(db.datadir().join("relay.index"), index).unwrap();
    // MASTER_LOG_FILE as well as RELAY_LOG_FILE: a binlog file, unlike a
    // relay log, starts with no Rotate event naming the master's file,
    // and MariaDB 10.11's parallel applier crashes the server on the
    // empty name it is left with.
    admin
        .query_drop(format!(
            "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_USE_GTID = no, \
             MASTER_LOG_FILE = '{from_file}', MASTER_LOG_POS = {from_pos}, \
             RELAY_LOG_FILE = 'relay.000001', RELAY_LOG_POS = {from_pos}"
        ))
        .unwrap();
    admin
        .query_drop(format!(
            "SET GLOBAL slave_parallel_threads = {threads}, slave_parallel_mode = '{mode}'"
        ))
        .unwrap();
    admin.query_drop("START SLAVE SQL_THREAD").unwrap();
    // CHANGE MASTER opened a relay log of its own after ours: once the
    // SQL thread is in it, every event of ours is applied (with parallel
    // workers, the position is the last group all of whose predecessors
    // committed).
    let own = format!("relay.{:06}", files.len() + 1);
    loop {
        let row: mysql::Row = admin.query_first("SHOW SLAVE STATUS").unwrap().unwrap();
        let error = slave_status(&row, "Last_SQL_Error");
        assert!(error.is_empty(), "the SQL thread stopped: {error}");
        if slave_status(&row, "Relay_Log_File") >= own {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Counted before STOP SLAVE, which lets the workers finish what they
    // hold: a position that ran ahead of the commits shows here.
    let rows: u64 = admin
        .query_first("SELECT COUNT(*) FROM t.bench")
        .unwrap()
        .unwrap();
    assert_eq!(
        rows, expected_rows,
        "the SQL thread left our relay logs early"
    );
    admin.query_drop("STOP SLAVE").unwrap();
    elapsed
}

/// Apply speed of three ways on the same files, the same target reset
/// between runs: mysql-binlog-replay, `mariadb-binlog FILES | mariadb` by
/// hand (the source's own files), and the files as the target's relay
/// logs, applied by its SQL thread, serial then parallel. The source
/// commits from several sessions at once, so that its binlog has commit
/// groups for the parallel applier. Run by bench/replay.sh;
/// BENCH_REPLAY_TRANSACTIONS, BENCH_REPLAY_RUNS, BENCH_REPLAY_WRITERS,
/// BENCH_REPLAY_THREADS.
#[test]
#[ignore = "a benchmark: bench/replay.sh runs it"]
fn bench_replay_against_mariadb_binlog_by_hand() {
    let transactions = setting("BENCH_REPLAY_TRANSACTIONS", 20_000);
    let runs = setting("BENCH_REPLAY_RUNS", 3);
    let writers = setting("BENCH_REPLAY_WRITERS", 4).max(1);
    let threads = setting("BENCH_REPLAY_THREADS", 4).max(1);
    let src = source();
    let s3 = S3Server::s3s_fs(&[BUCKET]);
    // Its own server_id: the SQL thread skips events of its own.
    let dst = target_with(&[
        "--server-id=2",
        "--relay-log=relay",
        "--skip-slave-start",
        // Applied events binlogged on the target, as the other ways are.
        "--log-slave-updates",
    ]);
    for db in [&src, &dst] {
        // Commits wait for no fsync: the figures are the appliers', not the disk's.
        db.admin()
            .query_drop("SET GLOBAL innodb_flush_log_at_trx_commit = 2")
            .unwrap();
    }
    let from = coordinates(&src);
    let group_commits = |db: &Mariadb| -> (u64, u64) {
        let status = |name: &str| {
            db.value(&format!(
                "SELECT VARIABLE_VALUE FROM information_schema.global_status \
                 WHERE VARIABLE_NAME = '{name}'"
            ))
            .unwrap()
            .parse::<u64>()
            .unwrap()
        };
        (status("BINLOG_COMMITS"), status("BINLOG_GROUP_COMMITS"))
    };
    src.admin()
        .query_drop("CREATE TABLE t.bench (id INT PRIMARY KEY, v VARCHAR(100))")
        .unwrap();
    // A commit waits up to 2 ms for the other writers' to join its group
    // (a lone writer's would only wait).
    let wait_count = if writers > 1 { writers } else { 0 };
    src.admin()
        .query_drop(format!(
            "SET GLOBAL binlog_commit_wait_count = {wait_count}, binlog_commit_wait_usec = 2000"
        ))
        .unwrap();
    let before = group_commits(&src);
    let filler = "x".repeat(100);
    std::thread::scope(|scope| {
        for w in 0..writers {
            let mut conn = src.admin();
            let filler = &filler;
            scope.spawn(move || {
                conn.query_drop("SET SESSION binlog_format = 'ROW'")
                    .unwrap();
                for n in (w..transactions).step_by(writers) {
                    let values: Vec<String> = (0..10)
                        .map(|i| format!("({}, '{filler}')", n * 10 + i))
                        .collect();
                    conn.query_drop(format!("INSERT INTO t.bench VALUES {}", values.join(",")))
                        .unwrap();
                }
            });
        }
    });
    let after = group_commits(&src);
    let (commits, groups) = (after.0 - before.0, after.1 - before.1);
    src.admin().query_drop("FLUSH BINARY LOGS").unwrap();
    archive(&src, &s3);
    let t = timeline(&s3);
    let files = &t.epochs[0].files;
    let (from_file, from_pos) = from.split_once(':').unwrap();
    let first = files.iter().position(|f| f.name == from_file).unwrap();
    let last = files.last().unwrap();
    let end = format!("{}:{}", last.name, last.segments.last().unwrap().end);
    let on_disk: Vec<PathBuf> = files[first..]
        .iter()
        .map(|f| src.datadir().join(&f.name))
        .collect();
    let bytes: u64 = on_disk
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum::<u64>()
        - from_pos.parse::<u64>().unwrap();
    let count = |db: &Mariadb| db.value("SELECT COUNT(*) FROM t.bench").unwrap();
    let reset = |db: &Mariadb| {
        let mut admin = db.admin();
        for s in [
            "STOP SLAVE",
            "RESET SLAVE ALL",
            "SET GLOBAL gtid_slave_pos = ''",
            "SET sql_log_bin = 0",
            "DROP TABLE t.bench",
            "RESET MASTER",
        ] {
            admin.query_drop(s).unwrap();
        }
    };
    let relay_ways = [
        ("relay logs, serial applier".to_string(), 0, "conservative"),
        (
            format!("relay logs, {threads} threads conservative"),
            threads,
            "conservative",
        ),
        (
            format!("relay logs, {threads} threads optimistic"),
            threads,
            "optimistic",
        ),
    ];
    let (mut tool, mut apply, mut by_hand) = (Vec::new(), Vec::new(), Vec::new());
    let mut relay: Vec<Vec<f64>> = vec![Vec::new(); relay_ways.len()];
    for _ in 0..runs {
        let started = std::time::Instant::now();
        let out = replay(&s3, &dst, &["--from", &from, "--until", &end]);
        tool.push(started.elapsed().as_secs_f64());
        out.expect_code(0);
        let applied: f64 = out
            .stderr
            .lines()
            .find(|l| l.contains(": applied "))
            .and_then(|l| l.rsplit(" in ").next())
            .and_then(|s| s.split('s').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN);
        apply.push(applied);
        assert_eq!(count(&dst), (transactions * 10).to_string());
        reset(&dst);

        let files: Vec<String> = on_disk.iter().map(|p| p.display().to_string()).collect();
        let script = format!(
            "mariadb-binlog --no-defaults --start-position={from_pos} {} | \
             mariadb --defaults-file={} --binary-mode",
            files.join(" "),
            dst.defaults_file.display()
        );
        let started = std::time::Instant::now();
        let status = std::process::Command::new("bash")
            .args(["-o", "pipefail", "-c", &script])
            .status()
            .unwrap();
        by_hand.push(started.elapsed().as_secs_f64());
        assert!(status.success(), "{script}");
        assert_eq!(count(&dst), (transactions * 10).to_string());
        reset(&dst);

        for ((_, threads, mode), times) in relay_ways.iter().zip(&mut relay) {
            times.push(apply_as_relay_logs(
                &dst,
                &on_disk,
                from_file,
                from_pos,
                *threads,
                mode,
                transactions as u64 * 10,
            ));
            assert_eq!(count(&dst), (transactions * 10).to_string());
            reset(&dst);
        }
    }
    let mib = bytes as f64 / (1024.0 * 1024.0);
    let (tool, apply, by_hand) = (median(tool), median(apply), median(by_hand));
    let relay: Vec<f64> = relay.into_iter().map(median).collect();
    let transactions = transactions as f64 + 1.0;
    println!("replay: {mib:.1} MiB of binlog, {transactions} transactions, median of {runs} runs");
    println!(
        "  source: {writers} writers, {commits} commits in {groups} binlog group commits \
         ({:.1} a group)",
        commits as f64 / groups.max(1) as f64
    );
    let mut ways = vec![
        ("mysql-binlog-replay, fetch to end".to_string(), tool),
        ("mysql-binlog-replay, its apply".to_string(), apply),
        ("mariadb-binlog | mariadb by hand".to_string(), by_hand),
    ];
    ways.extend(
        relay_ways
            .iter()
            .map(|w| w.0.clone())
            .zip(relay.iter().copied()),
    );
    for (what, secs) in &ways {
        println!(
            "  {what:38} {secs:6.2} s  {:7.1} MiB/s  {:8.0} transactions/s",
            mib / secs,
            transactions / secs
        );
    }
    println!(
        "  ratio (by hand / tool): {:.2}x end to end, {:.2}x applying (target >= 1.0x)",
        by_hand / tool,
        by_hand / apply
    );
    for ((what, _, _), secs) in relay_ways.iter().zip(&relay) {
        println!(
            "  ratio ({what} against): by hand {:.2}x, mysql-binlog-replay {:.2}x end to end, \
             {:.2}x its apply (> 1: the relay logs faster)",
            by_hand / secs,
            tool / secs,
            apply / secs
        );
    }
}
