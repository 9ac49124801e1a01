//! mysql-binlog-archive against a real MariaDB (binary log on, GTID) and a
//! real s3s-fs: the archive holds the server's binlog files byte for byte.

use mysnap::binlog::event::{Header, FIRST_EVENT, HEADER_LEN, IN_USE};
use mysnap::binlog::layout::Timeline;
use mysnap_tests::mariadb::{write_option_file, Mariadb, BACKUP_PASSWORD};
use mysnap_tests::server::S3Server;
use mysnap_tests::tcp_cut::TcpCut;
use mysnap_tests::tool::Output;
use mysql::prelude::Queryable;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BUCKET: &str = "archive";
const PREFIX: &str = "db1/";

fn server() -> Mariadb {
    let db = Mariadb::start();
    db.admin()
        .query_drop("GRANT REPLICATION SLAVE ON *.* TO backup@localhost")
        .unwrap();
    db
}

fn archiver(db: &Mariadb, s3: &S3Server, extra: &[&str]) -> Command {
    let mut cmd = s3.tool("mysql-binlog-archive");
    cmd.arg("--defaults-file")
        .arg(&db.defaults_file)
        .args(["--server-id", "4242", "--heartbeat", "500ms"])
        .args(extra)
        .arg(format!("s3://{BUCKET}/{PREFIX}"));
    cmd
}

fn run(cmd: &mut Command) -> Output {
    mysnap_tests::tool::run(cmd, b"")
}

/// Every object under the bucket, by key, from s3s-fs's directory.
fn objects(s3: &S3Server) -> BTreeMap<String, Vec<u8>> {
    s3.stored_keys(BUCKET)
        .into_iter()
        .map(|key| {
            let bytes = std::fs::read(s3.object_file(BUCKET, &key)).unwrap();
            (key, bytes)
        })
        .collect()
}

fn timeline(s3: &S3Server) -> (Timeline, BTreeMap<String, Vec<u8>>) {
    let objects = objects(s3);
    let t = Timeline::from_listing(
        PREFIX,
        objects.iter().map(|(k, v)| (k.as_str(), v.len() as u64)),
    );
    (t, objects)
}

/// A file as the archive has it: the magic, then its segments.
fn archived(file: &mysnap::binlog::layout::File, objects: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut bytes = mysnap::binlog::event::MAGIC.to_vec();
    for segment in &file.segments {
        bytes.extend_from_slice(&objects[&segment.key]);
    }
    bytes
}

/// The server's file, with the in-use flag of its format description
/// cleared: a file still being written has it set, and the server sends
/// the event as the closed file will have it.
fn on_disk(db: &Mariadb, name: &str) -> Vec<u8> {
    let mut bytes = std::fs::read(db.datadir().join(name)).unwrap();
    bytes[FIRST_EVENT as usize + 17] &= !(IN_USE as u8);
    bytes
}

fn write_rows(db: &Mariadb, from: u32, n: u32) {
    let mut conn = db.admin();
    for i in from..from + n {
        conn.exec_drop(
            "INSERT INTO t.writes (id, at) VALUES (?, UNIX_TIMESTAMP(NOW(6)))",
            (i,),
        )
        .unwrap();
    }
}

fn assert_byte_exact(db: &Mariadb, s3: &S3Server) -> Timeline {
    let (t, objects) = timeline(s3);
    assert!(t.foreign.is_empty() && t.broken.is_empty(), "{t:?}");
    assert_eq!(t.epochs.len(), 1, "{t:?}");
    for file in &t.epochs[0].files {
        let archive = archived(file, &objects);
        let disk = on_disk(db, &file.name);
        assert!(
            disk.starts_with(&archive),
            "{}: the archive's {} bytes are not the file's first bytes",
            file.name,
            archive.len()
        );
        // Each segment starts with a whole event where the last one ended.
        for segment in &file.segments {
            let head = Header::parse(&objects[&segment.key][..HEADER_LEN]).unwrap();
            assert_eq!(head.start(), Some(segment.start), "{}", segment.key);
        }
    }
    t
}

#[test]
fn the_archive_is_the_servers_binlog_byte_for_byte() {
    let db = server();
    let s3 = S3Server::s3s_fs(&[BUCKET]);
    write_rows(&db, 1, 50);
    db.admin().query_drop("FLUSH BINARY LOGS").unwrap();
    write_rows(&db, 51, 50);
    let out = run(&mut archiver(&db, &s3, &["--no-follow"]));
    out.expect_code(0);
    let t = assert_byte_exact(&db, &s3);
    let files = &t.epochs[0].files;
    assert_eq!(files.len(), 2, "{t:?}");
    // The whole of both files: the first closed by its rotation, the
    // second up to the server's end.
    let (_, objects) = timeline(&s3);
    for file in files {
        assert_eq!(
            archived(file, &objects),
            on_disk(&db, &file.name),
            "{}",
            file.name
        );
    }
    assert!(
        t.epochs[0].name.ends_with("-mariadb-d0-s1"),
        "{}",
        t.epochs[0].name
    );

    // A second run goes on where the archive ends, with nothing twice.
    write_rows(&db, 101, 20);
    let out = run(&mut archiver(&db, &s3, &["--no-follow"]));
    out.expect_code(0);
    assert!(out.stderr.contains("going on with epoch"), "{}", out.stderr);
    let t = assert_byte_exact(&db, &s3);
    let last = t.epochs[0].files.last().unwrap();
    let (_, objects) = timeline(&s3);
    assert_eq!(archived(last, &objects), on_disk(&db, &last.name));
}

/// The kinds of the events in a binlog file, in order.
fn event_kinds(file: &[u8]) -> Vec<u8> {
    let mut kinds = Vec::new();
    let mut at = FIRST_EVENT as usize;
    while let Some(header) = file.get(at..).and_then(Header::parse) {
        kinds.push(header.kind);
        at += header.size as usize;
    }
    kinds
}

/// Row-based logging: MariaDB writes an Annotate_rows event (the
/// statement's text) before each statement's rows, and sends it only to a
/// replica that asks for it. The archive has them all, where they are in
/// the file.
#[test]
fn row_based_binlogs_are_archived_whole_with_their_annotations() {
    let db = Mariadb::start_with(&["--binlog-format=ROW", "--binlog-annotate-row-events=ON"]);
    db.admin()
        .query_drop("GRANT REPLICATION SLAVE ON *.* TO backup@localhost")
        .unwrap();
    let s3 = S3Server::s3s_fs(&[BUCKET]);
    write_rows(&db, 1, 30);
    db.admin()
        .query_drop("UPDATE t.writes SET at = at + 1 WHERE id <= 10")
        .unwrap();
    // A hole in the stream is refused: fail at once rather than retry.
    run(&mut archiver(
        &db,
        &s3,
        &["--no-follow", "--reconnect-tries", "0"],
    ))
    .expect_code(0);
    let t = assert_byte_exact(&db, &s3);
    let (_, objects) = timeline(&s3);
    let file = t.epochs[0].files.last().unwrap();
    let archive = archived(file, &objects);
    assert_eq!(archive, on_disk(&db, &file.name), "{}", file.name);
    let kinds = event_kinds(&archive);
    let annotations = kinds
        .iter()
        .filter(|k| **k == mysnap::binlog::event::kind::MARIADB_ANNOTATE_ROWS)
        .count();
    // One for each INSERT and one for the UPDATE.
    assert!(
        annotations >= 31,
        "{annotations} Annotate_rows events in {kinds:?}"
    );
}

#[test]
fn bad_setups_are_refused_with_their_exit_codes() {
    let db = server();
    let s3 = S3Server::s3s_fs(&[BUCKET]);
    // No REPLICATION SLAVE: 77, naming the grants.
    db.admin()
        .query_drop("REVOKE REPLICATION SLAVE ON *.* FROM backup@localhost")
        .unwrap();
    let out = run(&mut archiver(
        &db,
        &s3,
        &["--no-follow", "--reconnect-tries", "0"],
    ));
    out.expect_code(77);
    assert!(out.stderr.contains("REPLICATION SLAVE"), "{}", out.stderr);
    // The server's own id.
    db.admin()
        .query_drop("GRANT REPLICATION SLAVE ON *.* TO backup@localhost")
        .unwrap();
    let mut cmd = s3.tool("mysql-binlog-archive");
    cmd.arg("--defaults-file")
        .arg(&db.defaults_file)
        .args(["--server-id", "1", "--no-follow"])
        .arg(format!("s3://{BUCKET}/{PREFIX}"));
    run(&mut cmd).expect_code(78);
    // No --server-id.
    let mut cmd = s3.tool("mysql-binlog-archive");
    cmd.arg(format!("s3://{BUCKET}/{PREFIX}"));
    run(&mut cmd)
        .expect_one_line("--server-id is required")
        .expect_code(64);
    assert!(objects(&s3).is_empty(), "nothing was stored");
}

/// Waits until `done`, for at most `bound` (the configured interval or
/// timeout behind it, plus the slack that the caller states).
fn wait_until(what: &str, bound: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !done() {
        if Instant::now() > deadline {
            let log_path = LOG.lock().unwrap().clone();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let metrics =
                std::fs::read_to_string(log_path.with_extension("prom")).unwrap_or_default();
            panic!("{what}: not within {bound:?}; the archiver said:\n{log}\nmetrics:\n{metrics}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where the running archiver's stderr goes, for failure messages.
static LOG: std::sync::Mutex<PathBuf> = std::sync::Mutex::new(PathBuf::new());

/// Slack for a loaded 2-core machine on top of each configured interval.
const SLACK: Duration = Duration::from_secs(30);

/// Where the server's binary log ends now.
fn server_end(db: &Mariadb) -> (String, u64) {
    let row: mysql::Row = db
        .admin()
        .query_first("SHOW MASTER STATUS")
        .unwrap()
        .unwrap();
    (row.get(0).unwrap(), row.get(1).unwrap())
}

/// Whether the archive's newest epoch ends where the server's log does.
fn archived_to_end(db: &Mariadb, s3: &S3Server) -> bool {
    let (t, _) = timeline(s3);
    let end = t
        .epochs
        .last()
        .and_then(|e| e.end().map(|(f, p)| (f.to_string(), p)));
    end == Some(server_end(db))
}

fn metrics(path: &Path) -> BTreeMap<String, f64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            let name = name.split('{').next()?.to_string();
            Some((name, value.parse().ok()?))
        })
        .collect()
}

/// The backup user, over TCP through `port`, in an option file.
fn over_tcp(db: &Mariadb, port: u16) -> PathBuf {
    db.admin()
        .query_drop(format!(
            "CREATE USER IF NOT EXISTS backup@'127.0.0.1' IDENTIFIED BY '{}'; \
             GRANT REPLICATION SLAVE, BINLOG MONITOR, SLAVE MONITOR ON *.* TO backup@'127.0.0.1'",
            BACKUP_PASSWORD.replace('\'', "\\'")
        ))
        .unwrap();
    let path = db.dir.path().join("tcp.cnf");
    write_option_file(
        &path,
        &format!(
            "[client]\nuser=backup\npassword=\"{}\"\nhost=127.0.0.1\nport={port}\n",
            BACKUP_PASSWORD.replace('\'', "\\'")
        ),
    );
    path
}

fn follow(options: &Path, s3: &S3Server, interval: &str, metrics: &Path) -> Child {
    *LOG.lock().unwrap() = metrics.with_extension("log");
    s3.tool("mysql-binlog-archive")
        .arg("--defaults-file")
        .arg(options)
        .args([
            "-vvv",
            "--server-id",
            "4242",
            "--heartbeat",
            "200ms",
            "--segment-interval",
            interval,
        ])
        .arg("--metrics-file")
        .arg(metrics)
        .arg(format!("s3://{BUCKET}/{PREFIX}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(metrics.with_extension("log")).unwrap())
        .spawn()
        .unwrap()
}

fn stop(mut child: Child, signal: Signal) -> (Option<i32>, String) {
    kill(Pid::from_raw(child.id() as i32), signal).unwrap();
    let status = child.wait().unwrap();
    let err = std::fs::read_to_string(LOG.lock().unwrap().as_path()).unwrap_or_default();
    (status.code(), err)
}

/// The archiver follows the server through a cut connection and a server
/// restart, and the archive stays the server's bytes, with nothing twice.
#[test]
fn following_survives_a_cut_connection_and_a_server_restart() {
    let db = server();
    let s3 = S3Server::s3s_fs(&[BUCKET]);
    let cut = TcpCut::start(db.port);
    let options = over_tcp(&db, cut.port);
    let metrics_file = db.dir.path().join("binlog.prom");
    let interval = Duration::from_millis(200);
    let archiver = follow(&options, &s3, "200ms", &metrics_file);
    write_rows(&db, 1, 30);
    wait_until("the first rows archived", interval + SLACK, || {
        archived_to_end(&db, &s3)
    });

    cut.cut();
    write_rows(&db, 31, 30);
    // The reconnection waits 1 s first.
    wait_until(
        "archived again after the cut",
        Duration::from_secs(1) + interval + SLACK,
        || archived_to_end(&db, &s3),
    );
    assert!(cut.accepted() >= 2, "it reconnected");

    let sh = |c: &str| {
        assert!(Command::new("sh")
            .args(["-c", c])
            .status()
            .unwrap()
            .success())
    };
    sh(&db.stop_cmd());
    sh(&db.start_cmd());
    wait_until("the server back", SLACK, || {
        db.try_value("SELECT 1").is_some()
    });
    write_rows(&db, 61, 30);
    // Backoff doubles up to 30 s while the server is away.
    wait_until(
        "archived after the restart",
        Duration::from_secs(30) + interval + SLACK,
        || archived_to_end(&db, &s3),
    );
    let (code, err) = stop(archiver, Signal::SIGTERM);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("reconnecting"), "{err}");
    let t = assert_byte_exact(&db, &s3);
    assert!(
        t.epochs[0].files.len() >= 2,
        "the restart began a new file: {t:?}"
    );
    let m = metrics(&metrics_file);
    assert!(m["mysnap_binlog_segments_stored_total"] >= 1.0, "{m:?}");
    assert!(m["mysnap_binlog_reconnects_total"] >= 1.0, "{m:?}");
    // The cut's reconnection went on by GTID position. After the restart
    // the server's position is in its new file, and the old one's stop
    // event is asked for by file and position, without a warning.
    assert!(err.contains(", by GTID position 0-1-"), "{err}");
    assert!(
        err.contains("the server's GTID position is in binlog.000002")
            && err.contains(": the rest is asked for: going on by file and position"),
        "{err}"
    );
    assert!(!err.contains("warning: asked by GTID"), "{err}");
    assert!(!err.contains("refused the ask by GTID"), "{err}");
    assert!(m.contains_key("mysnap_binlog_streaming_by_gtid"), "{m:?}");
}

/// SIGTERM stores what was received; SIGKILL loses nothing either, since
/// the next run fetches again what was not stored.
#[test]
fn a_stop_at_any_instant_loses_nothing() {
    let db = server();
    let s3 = S3Server::s3s_fs(&[BUCKET]);
    let metrics_file = db.dir.path().join("binlog.prom");
    let holding = || {
        let m = metrics(&metrics_file);
        m.get("mysnap_binlog_caught_up") == Some(&1.0)
            && m.get("mysnap_binlog_unstored_bytes")
                .is_some_and(|&b| b > 0.0)
    };
    // An hour per segment: only the stop stores.
    let running = follow(&db.defaults_file, &s3, "1h", &metrics_file);
    write_rows(&db, 1, 20);
    // Heartbeats come every 200 ms once the server has sent everything.
    wait_until("everything received, nothing stored", SLACK, holding);
    assert!(timeline(&s3).1.is_empty(), "nothing stored before the stop");
    let (code, err) = stop(running, Signal::SIGTERM);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        archived_to_end(&db, &s3),
        "SIGTERM stored the open segment: {err}"
    );

    std::fs::remove_file(&metrics_file).unwrap();
    let running = follow(&db.defaults_file, &s3, "1h", &metrics_file);
    write_rows(&db, 21, 20);
    wait_until("the new rows received, not stored", SLACK, holding);
    let (code, _) = stop(running, Signal::SIGKILL);
    assert_eq!(code, None);
    assert!(!archived_to_end(&db, &s3), "SIGKILL stored nothing");
    let out = run(&mut archiver(&db, &s3, &["--no-follow"]));
    out.expect_code(0);
    assert!(archived_to_end(&db, &s3));
    assert_byte_exact(&db, &s3);
}

/// Every object under the archive's prefix, with its bytes.
fn snapshot(s3: &S3Server) -> BTreeMap<String, Vec<u8>> {
    objects(s3)
}

/// A server with `rows` rows written, archived to its end once.
fn archived_once(rows: u32) -> (Mariadb, S3Server) {
    let db = server();
    let s3 = S3Server::s3s_fs(&[BUCKET]);
    write_rows(&db, 1, rows);
    run(&mut archiver(&db, &s3, &["--no-follow"])).expect_code(0);
    (db, s3)
}

#[test]
fn binlogs_purged_before_they_were_archived_are_a_recorded_gap() {
    let (db, s3) = archived_once(10);
    let (lost, lost_end) = server_end(&db);
    // While the archiver is stopped: more rows, two rotations, a purge.
    write_rows(&db, 11, 10);
    db.admin().query_drop("FLUSH BINARY LOGS").unwrap();
    write_rows(&db, 21, 10);
    db.admin().query_drop("FLUSH BINARY LOGS").unwrap();
    let (current, _) = server_end(&db);
    db.admin()
        .query_drop(format!("PURGE BINARY LOGS TO '{current}'"))
        .unwrap();
    write_rows(&db, 31, 10);
    // The oldest it kept (MariaDB keeps one a checkpoint still needs).
    let first: mysql::Row = db.admin().query_first("SHOW BINARY LOGS").unwrap().unwrap();
    let oldest: String = first.get(0).unwrap();
    assert_ne!(oldest, lost, "the archive's last file is purged");
    let before = snapshot(&s3);
    let metrics_file = db.dir.path().join("binlog.prom");
    let metrics_opt = format!("--metrics-file={}", metrics_file.display());
    let out = run(&mut archiver(&db, &s3, &["--no-follow", &metrics_opt]));
    out.expect_code(0);
    assert!(
        out.stderr.contains(&format!(
            "no longer has the binary logs from {lost}:{lost_end} on"
        )),
        "the gap is logged as an error with the missing range: {}",
        out.stderr
    );
    let after = snapshot(&s3);
    for (key, bytes) in &before {
        assert_eq!(after.get(key), Some(bytes), "{key} untouched");
    }
    let (t, objects) = timeline(&s3);
    let epoch = &t.epochs[0];
    let resumed = epoch.files.iter().find(|f| f.name == oldest).unwrap();
    assert!(resumed.gap_before, "{t:?}");
    let marker = objects
        .iter()
        .find(|(k, _)| k.ends_with(".gap"))
        .map(|(_, v)| serde_json::from_slice::<serde_json::Value>(v).unwrap())
        .unwrap();
    assert_eq!(marker["missing_from"]["file"], lost.as_str());
    assert_eq!(marker["missing_from"]["position"], lost_end);
    assert_eq!(archived(resumed, &objects), on_disk(&db, &oldest));
    assert_eq!(metrics(&metrics_file)["mysnap_binlog_gaps"], 1.0);
}

#[test]
fn a_reset_master_begins_a_new_epoch_beside_the_old_one() {
    let db = server();
    let s3 = S3Server::s3s_fs(&[BUCKET]);
    write_rows(&db, 1, 10);
    db.admin().query_drop("FLUSH BINARY LOGS").unwrap();
    write_rows(&db, 11, 10);
    run(&mut archiver(&db, &s3, &["--no-follow"])).expect_code(0);
    let before = snapshot(&s3);
    let (t, _) = timeline(&s3);
    let first_start = t.epochs[0].name.clone();
    // A new binlog of another second than the old epoch's first file.
    let started: i64 = db
        .value("SELECT UNIX_TIMESTAMP()")
        .unwrap()
        .parse()
        .unwrap();
    wait_until("the server's clock past the epoch's second", SLACK, || {
        db.value("SELECT UNIX_TIMESTAMP()")
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > started
    });
    db.admin().query_drop("RESET MASTER").unwrap();
    write_rows(&db, 21, 10);
    let out = run(&mut archiver(&db, &s3, &["--no-follow"]));
    out.expect_code(0);
    assert!(out.stderr.contains("a new epoch"), "{}", out.stderr);
    let after = snapshot(&s3);
    for (key, bytes) in &before {
        assert_eq!(after.get(key), Some(bytes), "{key} untouched");
    }
    let (t, objects) = timeline(&s3);
    assert_eq!(t.epochs.len(), 2, "{t:?}");
    assert_eq!(t.epochs[0].name, first_start);
    let new = &t.epochs[1];
    assert_eq!(new.files[0].name, "binlog.000001");
    assert_eq!(
        archived(&new.files[0], &objects),
        on_disk(&db, "binlog.000001")
    );
}

/// The server's binary log files and index, as a backup holds them.
fn binlog_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("binlog.") && name != "binlog.state"
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_server_restored_from_a_backup_begins_a_new_epoch_beside_the_old_one() {
    let db = server();
    let s3 = S3Server::s3s_fs(&[BUCKET]);
    let sh = |script: &str| {
        let status = Command::new("sh").args(["-c", script]).status().unwrap();
        assert!(status.success(), "{script}");
    };
    write_rows(&db, 1, 10);
    db.admin().query_drop("FLUSH BINARY LOGS").unwrap();
    write_rows(&db, 11, 5);
    // The base backup's binary logs: binlog.000001 whole, binlog.000002
    // to the backup point.
    let backup = db.dir.path().join("backup");
    std::fs::create_dir(&backup).unwrap();
    for file in binlog_files(&db.datadir()) {
        std::fs::copy(&file, backup.join(file.file_name().unwrap())).unwrap();
    }
    // The archive goes on past the backup, into binlog.000003.
    write_rows(&db, 16, 10);
    db.admin().query_drop("FLUSH BINARY LOGS").unwrap();
    write_rows(&db, 26, 5);
    run(&mut archiver(&db, &s3, &["--no-follow"])).expect_code(0);
    let before = snapshot(&s3);
    let (t, _) = timeline(&s3);
    assert_eq!(t.epochs.len(), 1, "{t:?}");
    let old = t.epochs[0].clone();
    assert!(
        old.files.iter().any(|f| f.name == "binlog.000003"),
        "{old:?}"
    );
    // The restore: the backup's binary logs in place of the server's.
    sh(&db.stop_cmd());
    for file in binlog_files(&db.datadir()) {
        std::fs::remove_file(file).unwrap();
    }
    let _ = std::fs::remove_file(db.datadir().join("binlog.state"));
    for file in binlog_files(&backup) {
        std::fs::copy(&file, db.datadir().join(file.file_name().unwrap())).unwrap();
    }
    sh(&db.start_cmd());
    wait_until("the restored server up", SLACK, || {
        db.try_value("SELECT 1").is_some()
    });
    write_rows(&db, 100, 30);
    let out = run(&mut archiver(&db, &s3, &["--no-follow"]));
    out.expect_code(0);
    assert!(
        out.stderr.contains("binlog.000002 holds")
            && out.stderr.contains("restored from a backup")
            && out.stderr.contains("a new epoch"),
        "the new epoch and why: {}",
        out.stderr
    );
    let after = snapshot(&s3);
    for (key, bytes) in &before {
        assert_eq!(after.get(key), Some(bytes), "{key} untouched");
    }
    let (t, objects) = timeline(&s3);
    assert_eq!(t.epochs.len(), 2, "{t:?}");
    assert_eq!(t.epochs[0], old, "the old epoch as it was");
    let new = &t.epochs[1];
    assert!(new.name > old.name, "{} after {}", new.name, old.name);
    let on_server = binlog_files(&db.datadir())
        .into_iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|n| n != "binlog.index")
        .collect::<Vec<_>>();
    let names: Vec<&str> = new.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names, on_server,
        "the new epoch has every file of the server"
    );
    for file in &new.files {
        assert_eq!(
            archived(file, &objects),
            on_disk(&db, &file.name),
            "{}",
            file.name
        );
    }
}

/// The server's GTID position now.
fn gtid_binlog_pos(db: &Mariadb) -> String {
    db.admin()
        .query_first("SELECT @@gtid_binlog_pos")
        .unwrap()
        .unwrap()
}

/// Sets the GTID position that the archive's last segment records.
fn record_gtid_position(s3: &S3Server, position: &str) {
    let (t, _) = timeline(s3);
    let last = t.epochs[0].files.last().unwrap().segments.last().unwrap();
    let file = s3.object_metadata_file(BUCKET, &last.key);
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let user = &mut meta["user_metadata"];
    assert!(user["mysnap-gtid-position"].is_string(), "{meta}");
    user["mysnap-gtid-position"] = position.into();
    std::fs::write(&file, meta.to_string()).unwrap();
}

/// The run asked for the stream by `gtid`, and only so.
fn asked_by_gtid(out: &Output, gtid: &str) {
    out.expect_code(0);
    let err = &out.stderr;
    assert!(err.contains(&format!("by GTID position {gtid}")), "{err}");
    assert!(!err.contains("by file and position"), "{err}");
}

/// The archive is the server's bytes, and has all of its newest file.
fn archived_whole(db: &Mariadb, s3: &S3Server) {
    let t = assert_byte_exact(db, s3);
    let last = t.epochs[0].files.last().unwrap();
    assert_eq!(archived(last, &timeline(s3).1), on_disk(db, &last.name));
}

#[test]
fn the_archive_goes_on_by_gtid_position_and_by_file_when_the_server_refuses_it() {
    let (db, s3) = archived_once(30);
    // The position recorded is the server's: a second run asks by it.
    let at_end = gtid_binlog_pos(&db);
    write_rows(&db, 31, 10);
    asked_by_gtid(&run(&mut archiver(&db, &s3, &["--no-follow"])), &at_end);
    archived_whole(&db, &s3);

    // A position that lags (as after a segment that ended inside a
    // transaction): the server sends again the transactions after it,
    // which the archive has; they are not stored twice.
    let (domain_server, sequence) = gtid_binlog_pos(&db)
        .rsplit_once('-')
        .map(|(a, b)| (a.to_string(), b.parse::<u64>().unwrap()))
        .unwrap();
    let lagging = format!("{domain_server}-{}", sequence - 5);
    record_gtid_position(&s3, &lagging);
    write_rows(&db, 41, 10);
    let out = run(&mut archiver(&db, &s3, &["--no-follow", "-v"]));
    asked_by_gtid(&out, &lagging);
    // Five transactions of at least a GTID, the insert and its XID.
    let again = out
        .stderr
        .split("after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse::<u32>().ok());
    assert!(
        again.is_some_and(|n| n >= 5 * 3),
        "the five transactions after the lagging position were sent again: {}",
        out.stderr
    );
    archived_whole(&db, &s3);

    // A position that the server never had: it refuses it, and the
    // archive goes on by file and position, whole.
    record_gtid_position(&s3, "0-1-999999");
    write_rows(&db, 51, 10);
    let out = run(&mut archiver(&db, &s3, &["--no-follow"]));
    out.expect_code(0);
    assert!(
        out.stderr
            .contains("the server refused the ask by GTID position")
            && out.stderr.contains("going on by file and position"),
        "{}",
        out.stderr
    );
    archived_whole(&db, &s3);
    // And it records the true position again for the next run.
    let at_end = gtid_binlog_pos(&db);
    asked_by_gtid(&run(&mut archiver(&db, &s3, &["--no-follow"])), &at_end);
}
