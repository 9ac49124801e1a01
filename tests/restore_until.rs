//! mysql-restore-dir --until against a real MariaDB and a real s3s-fs:
//! the base backup from S3 (s3-get --latest --before), then the binlog
//! that mysql-binlog-archive stored, replayed to the second before an
//! accident. A TARGET the archive does not reach, or a bad command line,
//! changes nothing: DIR as it was, the server still serving, no staging.

use mysnap::binlog::layout::Timeline;
use mysnap_tests::mariadb::Mariadb;
use mysnap_tests::server::S3Server;
use mysnap_tests::tool::{run, tool, Output};
use mysql::prelude::Queryable;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BUCKET: &str = "archive";
const PREFIX: &str = "s3://archive/db1/";
/// How long the tests give the server to come back after a restart:
/// the harness's own start-up bound.
const SERVER_START: Duration = Duration::from_secs(120);

fn sh(command: &str) {
    let status = Command::new("sh").args(["-c", command]).status().unwrap();
    assert!(status.success(), "{command} failed");
}

/// Polls until the server answers again after `start_cmd`.
fn wait_until_up(db: &Mariadb) {
    let deadline = Instant::now() + SERVER_START;
    while db.try_value("SELECT 1").is_none() {
        assert!(Instant::now() < deadline, "the server did not come back");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A row and the whole second its transaction committed in (the
/// binlog's stamp, from the same clock).
struct Row {
    id: u32,
    second: i64,
}

/// Inserts rows, one a transaction, until the server's clock has moved
/// on by `seconds` whole seconds from the first row's.
fn write(db: &Mariadb, rows: &mut Vec<Row>, seconds: i64) {
    let mut conn = db.admin();
    let mut first = None;
    loop {
        let id = rows.len() as u32 + 1;
        conn.exec_drop(
            "INSERT INTO t.rows (id, at) VALUES (?, UNIX_TIMESTAMP(NOW(6)))",
            (id,),
        )
        .unwrap();
        let at: f64 = conn
            .exec_first("SELECT at FROM t.rows WHERE id = ?", (id,))
            .unwrap()
            .unwrap();
        let second = at.floor() as i64;
        rows.push(Row { id, second });
        if second - *first.get_or_insert(second) >= seconds {
            return;
        }
    }
}

/// mysql-binlog-archive following the server, as mysnap-binlog@ runs it,
/// stopped when dropped.
struct Archiver(Child);

/// How often the archiver stores what it received.
const SEGMENT_INTERVAL: Duration = Duration::from_millis(200);
/// The archiver's first reconnection delay.
const RECONNECT: Duration = Duration::from_secs(1);
/// Slack for a loaded 2-core machine on top of each configured interval.
const SLACK: Duration = Duration::from_secs(30);

impl Archiver {
    fn follow(db: &Mariadb, s3: &S3Server) -> Archiver {
        let mut cmd = s3.tool("mysql-binlog-archive");
        cmd.arg("--defaults-file")
            .arg(&db.defaults_file)
            .args(["-q", "--server-id", "4242", "--heartbeat", "200ms"])
            .arg("--segment-interval")
            .arg(format!("{}ms", SEGMENT_INTERVAL.as_millis()))
            .arg(PREFIX)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        Archiver(cmd.spawn().unwrap())
    }
}

impl Drop for Archiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The archive as s3s-fs keeps it: one file per object, at its key.
fn timeline(s3: &S3Server) -> Timeline {
    let root = s3.object_file(BUCKET, "");
    let pattern = root.join("db1/binlog/*/*/*");
    let keys: Vec<(String, u64)> = glob::glob(pattern.to_str().unwrap())
        .unwrap()
        .map(|path| {
            let path = path.unwrap();
            let key = path.strip_prefix(&root).unwrap().display().to_string();
            (key, std::fs::metadata(&path).unwrap().len())
        })
        .collect();
    Timeline::from_listing("db1/", keys.iter().map(|(k, s)| (k.as_str(), *s)))
}

/// A later lineage's epoch, as the archive would hold it had it archived
/// this server's binary log once restored: the backup's file `file`, the
/// same bytes and metadata, under a newer epoch's name.
fn add_later_epoch(s3: &S3Server, file: &str) -> String {
    let t = timeline(s3);
    let old = &t.epochs[0];
    let (_, identity) = old.name.split_once('-').unwrap();
    let later = format!("20991231T000000Z-{identity}");
    let meta = |key: &str| s3.object_metadata_file(BUCKET, key);
    let segments = &old.files.iter().find(|f| f.name == file).unwrap().segments;
    for segment in segments {
        let key = segment.key.replacen(&old.name, &later, 1);
        let to = s3.object_file(BUCKET, &key);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(s3.object_file(BUCKET, &segment.key), to).unwrap();
        std::fs::copy(meta(&segment.key), meta(&key)).unwrap();
    }
    later
}

/// Polls until the archive's newest epoch ends where the server's binary
/// log does; the archiver stores within its interval, after a reconnection
/// (backoff from 1 s) when the server restarted.
fn wait_archived(db: &Mariadb, s3: &S3Server) {
    let deadline = Instant::now() + RECONNECT + SEGMENT_INTERVAL + SLACK;
    loop {
        let row: mysql::Row = db
            .admin()
            .query_first("SHOW MASTER STATUS")
            .unwrap()
            .unwrap();
        let server: (String, u64) = (row.get(0).unwrap(), row.get(1).unwrap());
        let t = timeline(s3);
        let end = t
            .epochs
            .last()
            .and_then(|e| e.end().map(|(f, p)| (f.to_string(), p)));
        if end.as_ref() == Some(&server) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not archived: {end:?}, the server at {server:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
fn time(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// The server, its binlog archived, with a base backup in S3: rows
/// before the backup, rows after it over a few seconds, then the
/// accident, `DROP TABLE`.
struct History {
    db: Mariadb,
    s3: S3Server,
    rows: Vec<Row>,
    /// How many of the rows the base backup holds.
    base: usize,
    /// The binary log file of the backup's coordinates.
    backup_file: String,
}

fn history() -> History {
    // Row-based logging, with MariaDB's default Annotate_rows events
    // before the row events: the archive and the replay carry them.
    let db = Mariadb::start_with(&["--binlog-format=ROW"]);
    let s3 = S3Server::s3s_fs(&[BUCKET]);
    let mut admin = db.admin();
    for statement in [
        "GRANT REPLICATION SLAVE, BINLOG REPLAY ON *.* TO backup@localhost",
        "GRANT ALL ON t.* TO backup@localhost",
        // Connects and reads, no more: a replay as this user fails.
        "CREATE USER reader@localhost IDENTIFIED BY 'reader-pw'",
        "GRANT SELECT ON t.* TO reader@localhost",
        "CREATE TABLE t.rows (id INT PRIMARY KEY, at DOUBLE)",
    ] {
        admin.query_drop(statement).unwrap();
    }
    drop(admin);
    let archiver = Archiver::follow(&db, &s3);
    let mut rows = Vec::new();
    write(&db, &mut rows, 0);
    let base = rows.len();

    // The base backup: the coordinates under the lock, then a cold copy
    // (LVM snapshots are tested in the VM), into S3.
    let status = db.dir.path().join("status.json");
    let out = run(
        db.tool("mysql-lock-hold")
            .arg("--status-file")
            .arg(&status)
            .args(["--", "true"]),
        b"",
    );
    out.expect_code(0);
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&status).unwrap()).unwrap();
    let backup_file = recorded["binlog_file"].as_str().unwrap().to_string();
    sh(&db.stop_cmd());
    let tar = run(
        tool("snap-tar")
            .arg("--status-file")
            .arg(&status)
            .arg(db.datadir()),
        b"",
    );
    tar.expect_code(0);
    sh(&db.start_cmd());
    let put = run(
        s3.tool("s3-put")
            .arg(format!("{PREFIX}%Y%m%dT%H%M%SZ.tar.gz")),
        &tar.stdout,
    );
    put.expect_code(0);
    wait_until_up(&db);

    // After the backup: rows over a few seconds, then the accident.
    write(&db, &mut rows, 3);
    db.admin().query_drop("DROP TABLE t.rows").unwrap();
    wait_archived(&db, &s3);
    // Stopped before the restores: on a restored server it would begin a
    // new epoch, which holds the backup's file too, and each later restore
    // here would have to name its epoch.
    drop(archiver);
    History {
        db,
        s3,
        rows,
        base,
        backup_file,
    }
}

/// mysql-restore-dir --until TARGET --binlog-archive `archive` onto the
/// history's server as the backup user, the base from `s3-get --latest
/// --before TARGET`, with `more` options.
fn restore_until(h: &History, target: &str, archive: &str, more: &[&str]) -> Output {
    restore_as(h, &h.db.defaults_file, target, archive, more)
}

/// The server's control for the restore: its own stop and start commands.
fn commands(db: &Mariadb) -> Vec<String> {
    [
        "--stop-cmd".into(),
        db.stop_cmd(),
        "--start-cmd".into(),
        db.start_cmd(),
    ]
    .to_vec()
}

/// The same, connecting with the option file `defaults`.
fn restore_as(h: &History, defaults: &Path, target: &str, archive: &str, more: &[&str]) -> Output {
    run(
        &mut restore_command(h, defaults, &commands(&h.db), target, archive, more),
        b"",
    )
}

/// The same, with `control` instead of the server's commands: the
/// command, to run or spawn.
fn restore_command(
    h: &History,
    defaults: &Path,
    control: &[String],
    target: &str,
    archive: &str,
    more: &[&str],
) -> Command {
    let db = &h.db;
    let get = h.s3.tool("s3-get");
    let mut cmd = h.s3.tool("mysql-restore-dir");
    cmd.arg("--defaults-file")
        .arg(defaults)
        .arg("--datadir")
        .arg(db.datadir())
        .args(control)
        .args(["--wait", &format!("{}s", SERVER_START.as_secs())])
        .args(["--until", target, "--binlog-archive", archive])
        .args(more)
        .arg("--")
        .arg(get.get_program())
        .args(["-q", "--latest", "--before", target, PREFIX]);
    cmd
}

/// Entries beside the datadir whose names start with `data.<what>-`.
fn beside(db: &Mariadb, what: &str) -> Vec<String> {
    std::fs::read_dir(db.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|name| name.starts_with(&format!("data.{what}-")))
        .collect()
}

/// DIR as far as a restore could change it: every name and type, and the
/// bytes of what an idle server does not write (its binary log, the
/// tables' definitions). InnoDB's own files it may flush at any time.
fn snapshot(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in glob::glob(&format!("{}/**/*", dir.display())).unwrap() {
        let path = entry.unwrap();
        let name = path.strip_prefix(dir).unwrap().display().to_string();
        let kind = if path.is_dir() { "dir" } else { "file" };
        let fixed = name.starts_with("binlog.") || name.ends_with(".frm");
        let hash = if fixed {
            hex::encode(Sha256::digest(std::fs::read(&path).unwrap()))
        } else {
            String::new()
        };
        out.push(format!("{name} {kind} {hash}"));
    }
    out.sort();
    out
}

/// The refusals: DIR, the server and what is beside DIR as they were.
fn assert_nothing_changed(h: &History, before: &[String], out: &Output, code: i32, says: &str) {
    out.expect_code(code).expect_one_line(says);
    assert_eq!(snapshot(&h.db.datadir()), before, "DIR changed");
    assert!(
        !h.db.has_table(),
        "the server still serves the data after the accident"
    );
    assert!(beside(&h.db, "restore").is_empty(), "no staging left");
    assert!(beside(&h.db, "old").is_empty(), "DIR was not moved");
}

#[test]
fn restores_to_the_second_before_the_accident_or_changes_nothing() {
    let h = history();
    // The second before the last rows': all of it is kept, none after.
    let until = h.rows.last().unwrap().second - 1;
    let expected: BTreeSet<u32> = h
        .rows
        .iter()
        .filter(|r| r.second <= until)
        .map(|r| r.id)
        .collect();
    assert!(
        expected.len() > h.base && expected.len() < h.rows.len(),
        "rows after the backup on both sides of the target"
    );
    let before = snapshot(&h.db.datadir());

    // The recoverable window: the base backup, and the archive reaching
    // past it to the newest archived event, the drop's.
    let mut list = h.s3.tool("mysql-binlog-replay");
    list.args(["--list", PREFIX]);
    let listed = run(&mut list, b"");
    listed.expect_code(0);
    let text = listed.stdout_text();
    let backup = text
        .lines()
        .skip_while(|l| *l != "backups")
        .nth(1)
        .unwrap_or_else(|| panic!("no backups listed: {text}"));
    assert!(
        backup.contains(PREFIX) && backup.contains(".tar.gz  recoverable to "),
        "{text}"
    );
    let newest = text
        .lines()
        .find_map(|l| l.strip_prefix("newest archived event: "))
        .unwrap_or_else(|| panic!("no newest event: {text}"));
    assert!(
        newest >= time(h.rows.last().unwrap().second).as_str(),
        "{newest} is before the last row's second: {text}"
    );

    // Usage: nothing is read, stopped or staged.
    let out = restore_until(&h, &time(until), "archive/db1/", &["-q"]);
    assert_nothing_changed(&h, &before, &out, 64, "not s3://BUCKET/PREFIX/");
    let out = restore_until(&h, "yesterday noon", PREFIX, &["-q"]);
    assert_nothing_changed(&h, &before, &out, 64, "--until 'yesterday noon' is neither");
    let mut no_archive = h.s3.tool("mysql-restore-dir");
    no_archive.arg("--datadir").arg(h.db.datadir()).args([
        "--stop-cmd",
        "false",
        "--start-cmd",
        "false",
        "--until",
        &time(until),
    ]);
    let out = run(&mut no_archive, b"");
    assert_nothing_changed(&h, &before, &out, 64, "--until needs --binlog-archive");

    // A target past the archive's end: staged and checked, then refused
    // with the window the archive covers, before the server stops.
    let out = restore_until(&h, "2099-01-01 00:00:00", PREFIX, &["-q"]);
    assert_nothing_changed(&h, &before, &out, 65, "the archive covers");
    assert!(out.stderr.contains("nothing changed: "), "{}", out.stderr);

    // The backup's file in a later epoch too: which lineage to replay is
    // the admin's to say; refused before the swap until they do.
    let epoch = timeline(&h.s3).epochs[0].name.clone();
    add_later_epoch(&h.s3, &h.backup_file);
    let out = restore_until(&h, &time(until), PREFIX, &["-q"]);
    assert_nothing_changed(&h, &before, &out, 65, "is in more than one epoch");
    assert!(out.stderr.contains("--binlog-epoch"), "{}", out.stderr);
    let pinned = ["-q", "--binlog-epoch", &epoch];

    // A replay the restored grants refuse, after the swap: the base stays,
    // the server runs on it, and the message says just that.
    let reader = h.db.dir.path().join("reader.cnf");
    mysnap_tests::mariadb::write_option_file(
        &reader,
        &format!(
            "[client]\nuser = reader\npassword = reader-pw\nsocket = {}\n",
            h.db.socket.display()
        ),
    );
    let out = restore_as(&h, &reader, &time(until), PREFIX, &pinned);
    out.expect_code(77)
        .expect_one_line("mysql-restore-dir: restored the base backup of ");
    for says in [
        " and the server runs on it; the replay from ",
        "BINLOG REPLAY",
    ] {
        assert!(out.stderr.contains(says), "{}", out.stderr);
    }
    let base: BTreeSet<u32> = h.rows[..h.base].iter().map(|r| r.id).collect();
    assert_eq!(h.db.ids(), base, "the server runs on the base backup");
    assert_eq!(beside(&h.db, "old").len(), 1, "the previous data is kept");

    // To the second before the accident: the base, then the binlog.
    let out = restore_until(&h, &time(until), PREFIX, &pinned[1..]);
    out.expect_code(0);
    assert!(h.db.has_table(), "the table is back");
    assert_eq!(h.db.ids(), expected, "--until {}", time(until));
    let stdout = out.stdout_text();
    assert!(
        stdout.contains("CHANGE MASTER TO") && stdout.contains("last applied: "),
        "stdout: {stdout}\nstderr: {}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("restored to {} UTC", time(until))),
        "{}",
        out.stderr
    );
    assert_eq!(beside(&h.db, "old").len(), 2, "both previous data kept");
    assert!(beside(&h.db, "restore").is_empty());

    // The server down, as on a new machine (--no-server): the replay goes
    // into a private server on the restored DIR, shut down after it, and
    // the server then starts on data restored to the target.
    sh(&h.db.stop_cmd());
    let no_server = ["--no-server".to_string()];
    let broken = [
        "-q",
        "--binlog-epoch",
        &epoch,
        "--mysqld-option=--no-defaults",
        "--mysqld-option=--no-such-option",
    ];
    let restore_no_server = |more: &[&str]| {
        run(
            &mut restore_command(
                &h,
                &h.db.defaults_file,
                &no_server,
                &time(until),
                PREFIX,
                more,
            ),
            b"",
        )
    };
    let out = restore_no_server(&broken);
    out.expect_code(69)
        .expect_one_line(", and replayed nothing: the private server exited with status ");
    assert!(
        out.stderr.contains("no-such-option"),
        "its error: {}",
        out.stderr
    );
    assert!(
        h.db.try_value("SELECT 1").is_none(),
        "no server left on DIR"
    );
    let private = ["--binlog-epoch", &epoch, "--mysqld-option=--no-defaults"];
    let out = restore_no_server(&private);
    out.expect_code(0);
    for says in [
        "starting a private ",
        "the private server shut down cleanly",
        "through a private server",
    ] {
        assert!(out.stderr.contains(says), "{says}: {}", out.stderr);
    }
    assert!(
        out.stdout_text().contains("last applied: "),
        "{}",
        out.stdout_text()
    );
    assert!(
        !h.db.dir.path().join("data/mysqld.sock").exists() && h.db.try_value("SELECT 1").is_none(),
        "no server left running on DIR"
    );
    sh(&h.db.start_cmd());
    wait_until_up(&h.db);
    assert!(h.db.has_table(), "the table is back");
    assert_eq!(h.db.ids(), expected, "--no-server --until {}", time(until));
}

/// The pids of the mariadbd processes started on `datadir`.
fn servers_on(datadir: &Path) -> Vec<u32> {
    let want = format!("--datadir={}", datadir.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|line| line.split(|&b| b == 0).any(|arg| arg == want.as_bytes()))
        })
        .collect()
}

/// A restore killed while the replay runs in its private server: the
/// server, which would hold DIR for nobody, shuts down cleanly on its own
/// (its parent-death signal), and the next server starts on DIR.
#[test]
fn a_killed_restore_leaves_no_private_server_running() {
    let h = history();
    let until = h.rows.last().unwrap().second - 1;
    sh(&h.db.stop_cmd());
    let work = tempfile::tempdir().unwrap();
    let replaying = work.path().join("replaying");
    // The replay tool: the real one for the check before the swap, then
    // one that says it runs and waits, as a long replay would.
    let real = tool("mysql-binlog-replay");
    let script = work.path().join("replay");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \" $* \" in *\" --dry-run \"*) exec {} \"$@\";; esac\n\
             echo $$ > {}\nexec sleep 600\n",
            real.get_program().to_string_lossy(),
            replaying.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut cmd = restore_command(
        &h,
        &h.db.defaults_file,
        &["--no-server".to_string()],
        &time(until),
        PREFIX,
        &[
            "--mysqld-option=--no-defaults",
            "--replay-tool",
            script.to_str().unwrap(),
        ],
    );
    let log = work.path().join("restore.log");
    let mut restore = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let said = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + SERVER_START;
    while !replaying.exists() {
        assert!(
            Instant::now() < deadline,
            "the replay never began: {}",
            said()
        );
        assert!(
            restore.try_wait().unwrap().is_none(),
            "the restore ended first: {}",
            said()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let datadir = h.db.datadir();
    assert_eq!(servers_on(&datadir).len(), 1, "one private server runs");
    restore.kill().unwrap();
    restore.wait().unwrap();
    // The server's shutdown, within the harness's start-up bound.
    let deadline = Instant::now() + SERVER_START;
    while !servers_on(&datadir).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the private server still runs on DIR after the restore was killed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let sleeper = std::fs::read_to_string(&replaying).unwrap();
    let _ = Command::new("kill").arg(sleeper.trim()).status();
    sh(&h.db.start_cmd());
    wait_until_up(&h.db);
    assert_eq!(
        h.db.ids().len(),
        h.base,
        "the server starts on the restored base backup"
    );
}
