//! mysql-restore-dir against real MariaDB servers: a backup made by
//! mysql-lock-hold + snap-tar from one server restores onto another, which
//! comes up with the backed-up rows; every bad archive leaves the target
//! untouched and still serving; a restore the server cannot start on is
//! rolled back.

use mysnap_tests::mariadb::Mariadb;
use mysnap_tests::server::S3Server;
use mysnap_tests::tool::{finish, run, spawn, tool, Output};
use mysnap_tests::vm;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Rows the source server holds when it is backed up.
const SOURCE_ROWS: u32 = 500;
/// Rows the target servers hold before a restore.
const TARGET_ROWS: u32 = 3;

/// The backup every test restores, made once from a source server.
struct Backup {
    /// snap-tar's archive (gzip, with manifest and checksums).
    archive: Vec<u8>,
    /// `tar -czf` of the same datadir: no manifest.
    plain: Vec<u8>,
    /// mysql-lock-hold's status file.
    status: serde_json::Value,
}

fn sh(command: &str) {
    let status = Command::new("sh").args(["-c", command]).status().unwrap();
    assert!(status.success(), "{command} failed");
}

fn backup() -> &'static Backup {
    static BACKUP: OnceLock<Backup> = OnceLock::new();
    BACKUP.get_or_init(|| {
        let source = Mariadb::start();
        fill(&source, SOURCE_ROWS);
        let status_file = source.dir.path().join("status.json");
        let out = run(
            source
                .tool("mysql-lock-hold")
                .arg("--status-file")
                .arg(&status_file)
                .args(["--", "true"]),
            b"",
        );
        out.expect_code(0);
        // A cold copy stands in for the snapshot: LVM is tested in the VM.
        sh(&source.stop_cmd());
        let archive = run(
            tool("snap-tar")
                .arg("--status-file")
                .arg(&status_file)
                .arg(source.datadir()),
            b"",
        );
        archive.expect_code(0);
        let plain = Command::new("tar")
            .arg("-czf")
            .arg("-")
            .arg("-C")
            .arg(source.datadir())
            .arg(".")
            .output()
            .unwrap();
        assert!(plain.status.success());
        let status = std::fs::read(&status_file).unwrap();
        Backup {
            archive: archive.stdout,
            plain: plain.stdout,
            status: serde_json::from_slice(&status).unwrap(),
        }
    })
}

/// An InnoDB and an Aria table with `rows` rows each.
fn fill(db: &Mariadb, rows: u32) {
    use mysql::prelude::Queryable;
    let mut conn = db.admin();
    conn.query_drop(
        "CREATE TABLE t.items (id INT PRIMARY KEY, name VARCHAR(40)) ENGINE=InnoDB;
         CREATE TABLE t.notes (id INT PRIMARY KEY, note TEXT) ENGINE=Aria",
    )
    .unwrap();
    for id in 1..=rows {
        conn.exec_drop(
            "INSERT INTO t.items VALUES (?, ?)",
            (id, format!("item {id}")),
        )
        .unwrap();
        conn.exec_drop(
            "INSERT INTO t.notes VALUES (?, ?)",
            (id, format!("note {id}")),
        )
        .unwrap();
    }
}

fn count(db: &Mariadb, table: &str) -> u32 {
    db.value(&format!("SELECT COUNT(*) FROM {table}"))
        .unwrap()
        .parse()
        .unwrap()
}

/// A server holding TARGET_ROWS rows, to restore onto.
fn target() -> Mariadb {
    let db = Mariadb::start();
    fill(&db, TARGET_ROWS);
    db
}

/// The shared target of the tests whose restore must change nothing.
fn untouched_target() -> (&'static Mariadb, MutexGuard<'static, ()>) {
    static SERVER: OnceLock<Mariadb> = OnceLock::new();
    static SERIAL: Mutex<()> = Mutex::new(());
    let guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    (SERVER.get_or_init(target), guard)
}

/// mysql-restore-dir for `db`, stopping and starting it with shell
/// commands, waiting up to `wait` for it to answer.
fn restore_waiting(db: &Mariadb, wait: &str) -> Command {
    let mut cmd = db.tool("mysql-restore-dir");
    cmd.arg("--datadir")
        .arg(db.datadir())
        .args(["--stop-cmd", &db.stop_cmd(), "--start-cmd", &db.start_cmd()])
        .args(["--wait", wait]);
    cmd
}

/// mysql-restore-dir onto `datadir`, reading no option files: the
/// machine's own my.cnf must not reach the tests.
fn restore_to(datadir: &Path) -> Command {
    let mut cmd = tool("mysql-restore-dir");
    cmd.arg("--datadir").arg(datadir).arg("--no-defaults");
    cmd
}

fn restore(db: &Mariadb) -> Command {
    restore_waiting(db, "60s")
}

/// Entries beside the datadir that a restore leaves: DIR.old-*, DIR.failed-*, DIR.restore-*.
fn beside(db: &Mariadb, what: &str) -> Vec<PathBuf> {
    std::fs::read_dir(db.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("data.{what}-"))
        })
        .collect()
}

/// A listing of a tree with each file's size and mtime: what "untouched" means.
fn tree(dir: &Path) -> String {
    let out = Command::new("find")
        .arg(dir)
        .args(["-printf", "%P %y %s %T@\\n"])
        .output()
        .unwrap();
    let mut lines: Vec<_> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines.join("\n")
}

fn assert_refused(out: &Output, code: i32, db: &Mariadb, datadir_before: &str, says: &str) {
    out.expect_code(code);
    out.expect_one_line(says);
    assert_eq!(
        count(db, "t.items"),
        TARGET_ROWS,
        "the server still serves the old rows"
    );
    assert!(
        beside(db, "restore").is_empty(),
        "no staging directory left"
    );
    assert!(beside(db, "old").is_empty(), "DIR was not moved");
    // The server writes to its datadir while it runs; the files it keeps must all be there.
    let after = tree(&db.datadir());
    let names = |t: &str| {
        t.lines()
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(datadir_before), names(&after), "DIR's files changed");
}

#[test]
fn a_snap_tar_backup_restores_with_its_rows_and_coordinates() {
    let backup = backup();
    let db = target();
    let coordinates = db.dir.path().join("coordinates.sql");
    let out = run(
        restore(&db).arg("--coordinates-file").arg(&coordinates),
        &backup.archive,
    );
    out.expect_code(0);
    assert_eq!(count(&db, "t.items"), SOURCE_ROWS);
    assert_eq!(count(&db, "t.notes"), SOURCE_ROWS);
    let file = backup.status["binlog_file"].as_str().unwrap();
    let pos = backup.status["binlog_pos"].as_u64().unwrap();
    let expected = format!("CHANGE MASTER TO MASTER_LOG_FILE = '{file}', MASTER_LOG_POS = {pos};");
    let printed = out.stdout_text();
    assert!(printed.contains(&expected), "stdout:\n{printed}");
    if let Some(gtid) = backup.status["gtid"].as_str().filter(|g| !g.is_empty()) {
        assert!(printed.contains(&format!("SET GLOBAL gtid_slave_pos = '{gtid}';")));
    }
    assert_eq!(std::fs::read_to_string(&coordinates).unwrap(), printed);
    // The previous data is kept, whole.
    let old = beside(&db, "old");
    assert_eq!(old.len(), 1, "one DIR.old-*");
    assert!(old[0].join("t/items.ibd").exists());
    assert!(beside(&db, "restore").is_empty());
}

#[test]
fn a_plain_tar_restores_with_no_manifest_only() {
    let backup = backup();
    {
        let (db, _serial) = untouched_target();
        let before = tree(&db.datadir());
        let out = run(&mut restore(db), &backup.plain);
        assert_refused(&out, 65, db, &before, "--no-manifest");
    }
    let db = target();
    let out = run(restore(&db).arg("--no-manifest"), &backup.plain);
    out.expect_code(0);
    assert_eq!(count(&db, "t.items"), SOURCE_ROWS);
    assert!(out.stdout_text().contains("no replication coordinates"));
}

/// `archive` with one byte flipped in the middle.
fn flipped(archive: &[u8]) -> Vec<u8> {
    let mut flipped = archive.to_vec();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x55;
    flipped
}

/// A tar stream (gzip) from entries built in the test.
fn crafted(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind, data, link) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(*kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        {
            // set_path refuses '..': write the name bytes directly.
            let gnu = header.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        }
        if let Some(link) = link {
            header.set_link_name(link).unwrap();
        }
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    gz.finish().unwrap()
}

#[test]
fn bad_archives_change_nothing() {
    let backup = backup();
    let (db, _serial) = untouched_target();
    let before = tree(&db.datadir());

    let out = run(&mut restore(db), &flipped(&backup.archive));
    assert_refused(&out, 65, db, &before, "archive");

    let truncated = &backup.archive[..backup.archive.len() * 2 / 3];
    let out = run(&mut restore(db), truncated);
    assert_refused(&out, 65, db, &before, "truncated");

    let evil = crafted(&[("../evil", tar::EntryType::Regular, b"x", None)]);
    let out = run(restore(db).arg("--no-manifest"), &evil);
    assert_refused(&out, 65, db, &before, "unsafe path '../evil'");
    assert!(!db.dir.path().join("evil").exists());

    let outside = crafted(&[
        ("t/link", tar::EntryType::Symlink, b"", Some("/etc")),
        ("t/link/owned", tar::EntryType::Regular, b"x", None),
    ]);
    let out = run(restore(db).arg("--no-manifest"), &outside);
    assert_refused(&out, 65, db, &before, "points outside");

    let fifo = crafted(&[("t/fifo", tar::EntryType::Fifo, b"", None)]);
    let out = run(restore(db).arg("--no-manifest"), &fifo);
    assert_refused(&out, 65, db, &before, "refused");
}

#[test]
fn a_full_disk_while_staging_changes_nothing() {
    let backup = backup();
    let dir = tempfile::tempdir().unwrap();
    // Large enough for each file's size (a file larger than the whole
    // filesystem is refused before any write), yet nearly full: the
    // restore runs out of space while it writes.
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    sh(&format!(
        "mount -t tmpfs -o size=200m tmpfs {0} && fallocate -l 196m {0}/filler",
        small.display()
    ));
    let datadir = small.join("mysql");
    std::fs::create_dir(&datadir).unwrap();
    let out = run(restore_to(&datadir).arg("--no-server"), &backup.archive);
    // The restore's lock file stays beside DIR, by design.
    let left: Vec<_> = std::fs::read_dir(&small)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != ".mysql.mysnap-restore.lock")
        .collect();
    let empty = std::fs::read_dir(&datadir).unwrap().next().is_none();
    sh(&format!("umount {}", small.display()));
    out.expect_code(74);
    assert!(out.stderr.contains("No space left"), "{}", out.stderr);
    let mut left = left;
    left.sort();
    assert_eq!(
        left,
        vec![
            std::ffi::OsString::from("filler"),
            std::ffi::OsString::from("mysql")
        ],
        "only DIR (and the filler) is left"
    );
    assert!(empty, "DIR is still empty");
}

#[test]
fn a_server_that_cannot_start_on_the_restore_gets_its_data_back() {
    // A well-formed archive of a datadir that mariadbd cannot open.
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk");
    std::fs::create_dir_all(junk.join("mysql")).unwrap();
    std::fs::write(junk.join("ibdata1"), vec![0x5a; 1 << 20]).unwrap();
    let archive = run(tool("snap-tar").arg(&junk), b"");
    archive.expect_code(0);
    let db = target();
    let out = run(&mut restore_waiting(&db, "15s"), &archive.stdout);
    out.expect_code(69);
    assert!(out.stderr.contains("rolled back"), "{}", out.stderr);
    assert_eq!(
        count(&db, "t.items"),
        TARGET_ROWS,
        "the old data is back and served"
    );
    let failed = beside(&db, "failed");
    assert_eq!(failed.len(), 1, "the restored data is set aside");
    assert!(failed[0].join("ibdata1").exists());
    assert!(beside(&db, "old").is_empty());
}

/// "Access denied" is an answer: a server that gives it is up on the
/// restored data, so the restore stands (with a warning), and is not
/// rolled back after --wait. The version guard, which could not ask the
/// server its version, says that it is off.
#[test]
fn a_server_that_refuses_our_credentials_is_up_and_the_restore_stands() {
    let backup = backup();
    let db = target();
    let wrong = db.dir.path().join("wrong.cnf");
    mysnap_tests::mariadb::write_option_file(
        &wrong,
        &format!(
            "[client]\nuser = backup\npassword = not-the-password\nsocket = {}\n",
            db.socket.display()
        ),
    );
    let out = run(
        tool("mysql-restore-dir")
            .arg("--defaults-file")
            .arg(&wrong)
            .arg("--datadir")
            .arg(db.datadir())
            .args(["--stop-cmd", &db.stop_cmd(), "--start-cmd", &db.start_cmd()])
            .args(["--wait", "60s"]),
        &backup.archive,
    );
    out.expect_code(0);
    assert!(
        out.stderr
            .contains("refused mysql-restore-dir's connection (ERROR 1045"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("without the newer-version guard"),
        "{}",
        out.stderr
    );
    assert_eq!(
        count(&db, "t.items"),
        SOURCE_ROWS,
        "the restored rows are served"
    );
    assert!(beside(&db, "failed").is_empty(), "not rolled back");
    assert_eq!(beside(&db, "old").len(), 1);
}

#[test]
fn refuses_what_it_must_not_replace() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let restore_to = |datadir: &Path, extra: &[&str]| run(restore_to(datadir).args(extra), b"");
    let out = restore_to(&file, &["--no-server"]);
    out.expect_code(64);
    assert!(out.stderr.contains("is not a directory"));
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), b"mine").unwrap();
    let out = restore_to(&other, &["--no-server"]);
    out.expect_code(64);
    assert!(
        out.stderr.contains("no MySQL data directory"),
        "{}",
        out.stderr
    );
    let missing = dir.path().join("missing");
    let out = restore_to(&missing, &["--service", "mariadb"]);
    out.expect_code(66);
    assert!(out.stderr.contains("--no-server"));
    let out = restore_to(&missing, &[]);
    out.expect_code(64);
    let out = restore_to(&missing, &["--no-server", "--stop-cmd", "true"]);
    out.expect_code(64);
    let out = restore_to(&missing, &["--stop-cmd", "true"]);
    out.expect_code(64);
    assert!(!missing.exists(), "refusals create nothing");
    // A name an earlier restore left, for the stamp this one will use, is
    // refused (exit 73) and kept. The stamp has one-second resolution: the
    // names cover the next two minutes, so a slow start still meets one.
    let now = chrono::Utc::now();
    let left: Vec<PathBuf> = (0..120)
        .map(|s| {
            let stamp = (now + chrono::Duration::seconds(s)).format("%Y%m%dT%H%M%SZ");
            dir.path().join(format!("other.old-{stamp}"))
        })
        .collect();
    for name in &left {
        std::fs::create_dir(name).unwrap();
        std::fs::write(name.join("kept"), b"earlier").unwrap();
    }
    let out = restore_to(&other, &["--no-server", "--force"]);
    out.expect_code(73);
    out.expect_one_line("already exists: remove or rename it");
    for name in &left {
        assert_eq!(std::fs::read(name.join("kept")).unwrap(), b"earlier");
    }
    assert_eq!(std::fs::read(other.join("notes.txt")).unwrap(), b"mine");
}

#[test]
fn a_fresh_machine_restores_the_latest_backup_from_s3() {
    let backup = backup();
    let s3 = S3Server::s3s_fs(&["backups"]);
    for key in ["db1/20261101T000000Z.tar.gz", "db1/20261102T000000Z.tar.gz"] {
        let out = run(
            s3.tool("s3-put").arg(format!("s3://backups/{key}")),
            &backup.archive,
        );
        out.expect_code(0);
    }
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("mysql");
    // s3-get's own checks (sidecar SHA-256) gate the restore through `--`.
    let mut get = s3.tool("s3-get");
    let args: Vec<String> = std::iter::once(get.get_program().to_string_lossy().to_string())
        .chain(get.get_args().map(|a| a.to_string_lossy().to_string()))
        .chain(["--latest".to_string(), "s3://backups/db1/".to_string()])
        .collect();
    let mut cmd = restore_to(&datadir);
    cmd.args(["--no-server", "--"]).args(&args);
    for (key, value) in get.get_envs() {
        if let Some(value) = value {
            cmd.env(key, value);
        }
    }
    let out = run(&mut cmd, b"");
    out.expect_code(0);
    assert!(datadir.join("t/items.ibd").exists());
    assert!(datadir.join("ibdata1").exists());
    assert!(out.stdout_text().contains("CHANGE MASTER TO"));
    let _ = get.stdout(Stdio::null());

    // And a failing COMMAND restores nothing.
    let missing = dir.path().join("again");
    let mut cmd = restore_to(&missing);
    cmd.args(["--no-server", "--", "sh", "-c"])
        .arg("head -c 100000 && exit 3");
    let out = run(&mut cmd, &backup.archive);
    assert_ne!(out.code, 0);
    assert!(!missing.exists(), "nothing restored");
    assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".restore-")
    }));
}

#[test]
fn in_place_restores_and_rolls_back_a_bad_archive() {
    let backup = backup();
    let db = target();
    let out = run(restore(&db).arg("--in-place"), &flipped(&backup.archive));
    out.expect_code(65);
    assert!(out.stderr.contains("previous data back"), "{}", out.stderr);
    assert_eq!(
        count(&db, "t.items"),
        TARGET_ROWS,
        "restarted on the old data"
    );
    assert!(beside(&db, "old").is_empty() && beside(&db, "failed").is_empty());

    let out = run(restore(&db).arg("--in-place"), &backup.archive);
    out.expect_code(0);
    assert_eq!(count(&db, "t.items"), SOURCE_ROWS);
    assert_eq!(beside(&db, "old").len(), 1);
}

#[test]
fn sigterm_while_staging_changes_nothing() {
    let backup = backup();
    let (db, _serial) = untouched_target();
    let before = tree(&db.datadir());
    let file = db.dir.path().join("archive.tar.gz");
    std::fs::write(&file, &backup.archive).unwrap();
    // A stream that stalls part-way: the signal must not wait for more data.
    let producer = format!("head -c 300000 {}; exec sleep 60", file.display());
    let (child, feeder) = spawn(restore(db).args(["--", "sh", "-c", &producer]), Vec::new());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while beside(db, "restore").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no staging directory appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = finish(child, feeder);
    assert_refused(&out, 143, db, &before, "interrupted by SIGTERM");
    std::fs::remove_file(&file).unwrap();
}

/// A tmpfs mounted at `dir` for the length of a test.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        sh(&format!(
            "mount -t tmpfs -o size={size} tmpfs {}",
            dir.display()
        ));
        Tmpfs(dir.to_path_buf())
    }

    fn read_only(&self) {
        sh(&format!("mount -o remount,ro {}", self.0.display()));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn layout_files_go_back_where_they_came_from_with_include_layout() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    std::fs::create_dir_all(source.join("mysql")).unwrap();
    std::fs::write(source.join("ibdata1"), b"system tablespace").unwrap();
    let snap = Tmpfs::mount(&dir.path().join("redo-snap"), "4m");
    std::fs::write(snap.0.join("ib_logfile0"), b"new redo").unwrap();
    snap.read_only();
    let redo = dir.path().join("redo");
    std::fs::create_dir(&redo).unwrap();
    std::fs::write(redo.join("ib_logfile0"), b"old redo").unwrap();
    let layout = format!("{}={}", redo.display(), snap.0.display());
    let archive = run(
        tool("snap-tar")
            .args(["--include-layout", &layout])
            .arg(&source),
        b"",
    );
    archive.expect_code(0);

    let datadir = dir.path().join("mysql");
    let restore_to = |datadir: &Path, extra: &[&str]| {
        run(
            restore_to(datadir).arg("--no-server").args(extra),
            &archive.stdout,
        )
    };
    // Without --include-layout the files are checked, not restored.
    let out = restore_to(&datadir, &[]);
    out.expect_code(0);
    assert!(out.stderr.contains("--include-layout"), "{}", out.stderr);
    assert_eq!(
        std::fs::read(redo.join("ib_logfile0")).unwrap(),
        b"old redo"
    );
    assert!(
        !datadir.join("mysnap").exists(),
        "no mysnap/ directory in the datadir"
    );

    let again = dir.path().join("mysql2");
    let out = restore_to(&again, &["--include-layout", redo.to_str().unwrap()]);
    out.expect_code(0);
    assert_eq!(
        std::fs::read(again.join("ibdata1")).unwrap(),
        b"system tablespace"
    );
    assert_eq!(
        std::fs::read(redo.join("ib_logfile0")).unwrap(),
        b"new redo"
    );
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("redo.old-"))
        .collect();
    assert_eq!(kept.len(), 1, "the previous redo directory is kept");
    assert_eq!(
        std::fs::read(dir.path().join(&kept[0]).join("ib_logfile0")).unwrap(),
        b"old redo"
    );
}

/// On most database hosts DIR is an LV mounted at DIR, which cannot be
/// renamed, and the server is a systemd service: both are real in the VM.
#[test]
fn restores_onto_a_mounted_lv_through_systemd_in_the_vm() {
    if !vm::can_run() {
        return;
    }
    let backup = backup();
    let work = tempfile::tempdir().unwrap();
    let seed = vm::seed_datadir(work.path());
    let archive = work.path().join("backup.tar.gz");
    std::fs::write(&archive, &backup.archive).unwrap();
    let rows = SOURCE_ROWS.to_string();
    let args = [seed.as_os_str(), archive.as_os_str(), rows.as_ref()];
    let options = ["--systemd", "--disk", "2G", "--timeout", "900"];
    vm::run_checks(&options, "restore.sh", &args, 8);
}

/// A DIR that is a mount point cannot be renamed: the swap happens inside
/// it, and the archive's own lost+found gives way to the filesystem's.
#[test]
fn a_mount_point_datadir_is_swapped_inside() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    std::fs::create_dir_all(source.join("mysql")).unwrap();
    std::fs::create_dir_all(source.join("lost+found")).unwrap();
    std::fs::write(source.join("ibdata1"), b"new").unwrap();
    let archive = run(tool("snap-tar").arg(&source), b"");
    archive.expect_code(0);
    let mount = Tmpfs::mount(&dir.path().join("mysql"), "16m");
    std::fs::create_dir_all(mount.0.join("mysql")).unwrap();
    std::fs::create_dir_all(mount.0.join("lost+found")).unwrap();
    std::fs::write(mount.0.join("ibdata1"), b"old").unwrap();
    let out = run(restore_to(&mount.0).arg("--no-server"), &archive.stdout);
    out.expect_code(0);
    assert_eq!(std::fs::read(mount.0.join("ibdata1")).unwrap(), b"new");
    assert!(mount.0.join("lost+found").is_dir());
    let names: Vec<String> = std::fs::read_dir(&mount.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    let old: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with(".mysnap-old-"))
        .collect();
    assert_eq!(old.len(), 1, "{names:?}");
    assert_eq!(
        std::fs::read(mount.0.join(old[0]).join("ibdata1")).unwrap(),
        b"old"
    );
    assert!(
        !names.iter().any(|n| n.starts_with(".mysnap-restore-")),
        "{names:?}"
    );
}
