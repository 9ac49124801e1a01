//! mysql-verify-backup against a real MariaDB and a real s3s-fs: a good
//! backup verifies (every table checked, KEY.verified stored, metrics
//! written) while the live server beside it is untouched; a backup with a
//! corrupt InnoDB page, archived with checksums made over the corruption
//! so that the archive itself is valid, fails with the table named; a
//! tampered object fails before any server starts.

use mysnap_tests::mariadb::Mariadb;
use mysnap_tests::server::S3Server;
use mysnap_tests::tool::{run, tool, Output};
use mysql::prelude::Queryable;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BUCKET: &str = "backups";
/// How long the tests give the live server to come back after a cold
/// copy: the harness's own start-up bound.
const SERVER_START: Duration = Duration::from_secs(120);

fn sh(command: &str) {
    let status = Command::new("sh").args(["-c", command]).status().unwrap();
    assert!(status.success(), "{command} failed");
}

fn wait_until_up(db: &Mariadb) {
    let deadline = Instant::now() + SERVER_START;
    while db.try_value("SELECT 1").is_none() {
        assert!(Instant::now() < deadline, "the server did not come back");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A live server with tables of several engines, a view and rows.
fn server() -> Mariadb {
    let db = Mariadb::start();
    let mut admin = db.admin();
    for statement in [
        "CREATE DATABASE shop",
        "CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(200)) ENGINE=InnoDB",
        "CREATE TABLE shop.`order lines` (id INT PRIMARY KEY, qty INT) ENGINE=InnoDB",
        "CREATE TABLE shop.log (at INT) ENGINE=Aria",
        "CREATE TABLE shop.legacy (k INT) ENGINE=MyISAM",
        "CREATE VIEW shop.big AS SELECT id FROM shop.orders WHERE id > 100",
        "INSERT INTO shop.`order lines` VALUES (1, 2), (2, 3)",
        "INSERT INTO shop.log VALUES (1), (2)",
        "INSERT INTO shop.legacy VALUES (7)",
    ] {
        admin.query_drop(statement).unwrap();
    }
    // Enough rows for several InnoDB pages.
    for chunk in 0..20 {
        let values: Vec<String> = (0..100)
            .map(|i| format!("({}, '{}')", chunk * 100 + i, "x".repeat(150)))
            .collect();
        admin
            .query_drop(format!(
                "INSERT INTO shop.orders VALUES {}",
                values.join(",")
            ))
            .unwrap();
    }
    db
}

/// A cold backup of `dir` (the live server stopped for the copy: LVM
/// snapshots are tested in the VM) stored at `key`.
fn backup_of(dir: &Path, s3: &S3Server, key: &str) {
    let tar = run(tool("snap-tar").arg(dir), b"");
    tar.expect_code(0);
    run(
        s3.tool("s3-put").arg(format!("s3://{BUCKET}/{key}")),
        &tar.stdout,
    )
    .expect_code(0);
}

/// mysql-verify-backup of `url` into `scratch`, with the metrics in `work`.
fn verify_command(s3: &S3Server, work: &Path, scratch: &Path, url: &str) -> Command {
    let mut cmd = s3.tool("mysql-verify-backup");
    cmd.arg("--scratch")
        .arg(scratch)
        .arg("--metrics-file")
        .arg(work.join("mysnap-db1-verify.prom"))
        .args(["--instance", "db1"])
        .arg(url);
    cmd
}

fn verify(s3: &S3Server, work: &Path, url: &str, more: &[&str]) -> Output {
    let out = run(
        verify_command(s3, work, &work.join("scratch"), url).args(more),
        b"",
    );
    // Shown when a test fails, or with --nocapture.
    eprintln!("mysql-verify-backup {url}:\n{}", out.stderr);
    out
}

/// Every name under `dir` with the SHA-256 of what an idle server does
/// not rewrite (table definitions, MyISAM and Aria data).
fn snapshot(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in glob::glob(&format!("{}/**/*", dir.display())).unwrap() {
        let path = entry.unwrap();
        let name = path.strip_prefix(dir).unwrap().display().to_string();
        let fixed = [".frm", ".MYD", ".MAD"].iter().any(|s| name.ends_with(s));
        let hash = if fixed {
            hex::encode(Sha256::digest(std::fs::read(&path).unwrap()))
        } else {
            String::new()
        };
        out.push(format!("{name} {hash}"));
    }
    out.sort();
    out
}

/// The metrics file, checked line by line against the exposition format:
/// every series has its HELP and TYPE, and its labels; the values by name.
fn metrics(path: &Path) -> std::collections::BTreeMap<String, f64> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644, "{}", path.display());
    let text = std::fs::read_to_string(path).unwrap();
    let mut helped = std::collections::BTreeSet::new();
    let mut typed = std::collections::BTreeSet::new();
    let mut values = std::collections::BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.insert(rest.split(' ').next().unwrap().to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["gauge", "counter"].contains(&kind), "{line}");
            typed.insert(name.to_string());
        } else {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = series.split_once('{').unwrap();
            assert_eq!(labels, "instance=\"db1\",job=\"verify\"}", "{line}");
            assert!(helped.contains(name) && typed.contains(name), "{line}");
            values.insert(name.to_string(), value.parse::<f64>().unwrap());
        }
    }
    values
}

fn object(s3: &S3Server, key: &str) -> PathBuf {
    s3.object_file(BUCKET, key)
}

#[test]
fn a_good_backup_verifies_and_the_live_server_is_untouched() {
    let db = server();
    let s3 = S3Server::s3s_fs(&[BUCKET]);
    let work = tempfile::tempdir().unwrap();
    sh(&db.stop_cmd());
    let key = "db1/20261201T010000Z.tar.gz";
    backup_of(&db.datadir(), &s3, key);
    sh(&db.start_cmd());
    wait_until_up(&db);
    // An older backup too: the newest complete one is what is verified.
    backup_of(&db.datadir(), &s3, "db1/20261130T010000Z.tar.gz");
    let before = snapshot(&db.datadir());
    let tables: usize = db
        .value(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA NOT IN \
             ('information_schema', 'performance_schema') AND TABLE_TYPE <> 'SYSTEM VIEW'",
        )
        .unwrap()
        .parse()
        .unwrap();

    // Under the unit's umask (0077), into a scratch directory whose parent
    // does not exist yet: the parent is made 0755 all the same, or the
    // server (as mysql) could not reach the data.
    let scratch = work.path().join("verify").join("db1");
    let mut cmd = verify_command(&s3, work.path(), &scratch, &format!("s3://{BUCKET}/db1/"));
    // SAFETY: umask is async-signal-safe and allocates nothing.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::umask(0o077);
            Ok(())
        });
    }
    let out = run(&mut cmd, b"");
    eprintln!("{}", out.stderr);
    out.expect_code(0);
    assert!(
        out.stderr
            .contains(&format!("s3://{BUCKET}/{key} verified: {tables} tables")),
        "{}",
        out.stderr
    );

    // The record beside the backup.
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(object(&s3, &format!("{key}.verified"))).unwrap())
            .unwrap();
    assert_eq!(record["backup"], format!("s3://{BUCKET}/{key}"));
    assert_eq!(record["tables"]["checked"], tables);
    assert_eq!(record["tables"]["failed"], 0);
    assert!(record["server_version"]
        .as_str()
        .unwrap()
        .contains("MariaDB"));
    let rto = record["rto_seconds"].as_f64().unwrap();
    assert!(rto > 0.0 && rto <= record["duration_seconds"].as_f64().unwrap());
    let checked: Vec<String> = record["tables"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}.{} {}",
                r["schema"].as_str().unwrap(),
                r["table"].as_str().unwrap(),
                r["ok"]
            )
        })
        .collect();
    for table in [
        "shop.orders true",
        "shop.order lines true",
        "shop.log true",
        "shop.legacy true",
        "shop.big true",
    ] {
        assert!(checked.contains(&table.to_string()), "{table}: {checked:?}");
    }
    assert!(!object(&s3, "db1/20261130T010000Z.tar.gz.verified").exists());
    // s3-get --list shows which backup a test restore verified.
    let listed = run(
        s3.tool("s3-get")
            .args(["--list", &format!("s3://{BUCKET}/db1/")]),
        b"",
    );
    listed.expect_code(0);
    let marks: Vec<(String, String)> = listed
        .stdout_text()
        .lines()
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (fields[2].to_string(), fields[3].to_string())
        })
        .collect();
    // In the order S3 stored them: the verified one first.
    assert_eq!(
        marks,
        [
            ("verified".to_string(), format!("s3://{BUCKET}/{key}")),
            (
                "-".to_string(),
                format!("s3://{BUCKET}/db1/20261130T010000Z.tar.gz")
            ),
        ],
        "{}",
        listed.stdout_text()
    );

    // The metrics, and the scratch directory gone.
    let values = metrics(&work.path().join("mysnap-db1-verify.prom"));
    assert_eq!(values["mysnap_verify_last_status"], 1.0);
    assert_eq!(values["mysnap_verify_tables_checked"], tables as f64);
    assert_eq!(values["mysnap_verify_tables_failed"], 0.0);
    assert!(values["mysnap_verify_rto_seconds"] > 0.0);
    let now = chrono::Utc::now().timestamp() as f64;
    assert!((now - values["mysnap_verify_last_success_timestamp_seconds"]).abs() < 3600.0);
    assert!(!scratch.exists() && work.path().join("verify").exists());

    // The live server: its files as they were, and it answers on its
    // socket and its port.
    assert_eq!(snapshot(&db.datadir()), before);
    assert_eq!(
        db.value("SELECT COUNT(*) FROM shop.orders").unwrap(),
        "2000"
    );
    let tcp = mysql::OptsBuilder::new()
        .ip_or_hostname(Some("127.0.0.1"))
        .tcp_port(db.port)
        .user(Some("admin"))
        .pass(Some("admin-pw"));
    let mut conn = mysql::Conn::new(tcp).expect("the live server answers on its port");
    let one: Option<u32> = conn.query_first("SELECT 1").unwrap();
    assert_eq!(one, Some(1));
}

/// Flips bytes inside page `page` of an InnoDB tablespace, past its
/// header: the page's checksum no longer matches.
fn corrupt_page(ibd: &Path, page: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(ibd)
        .unwrap();
    let size = file.metadata().unwrap().len();
    let at = page * 16384 + 4000;
    assert!(at + 64 < size, "{} has no page {page}", ibd.display());
    let mut bytes = [0u8; 64];
    file.read_exact_at(&mut bytes, at).unwrap();
    let flipped: Vec<u8> = bytes.iter().map(|b| !b).collect();
    file.write_all_at(&flipped, at).unwrap();
}

#[test]
fn a_corrupt_page_fails_the_check_with_the_table_named() {
    let db = server();
    let s3 = S3Server::s3s_fs(&[BUCKET]);
    let work = tempfile::tempdir().unwrap();
    sh(&db.stop_cmd());
    let copy = work.path().join("copy");
    sh(&format!(
        "cp -a {} {}",
        db.datadir().display(),
        copy.display()
    ));
    sh(&db.start_cmd());
    // Page 3 is the root of the table's clustered index, read by any scan.
    corrupt_page(&copy.join("shop/orders.ibd"), 3);
    // snap-tar's checksums are made over the corrupt file: the archive
    // itself is whole, only the data inside it is bad.
    let key = "db1/20261201T010000Z.tar.gz";
    backup_of(&copy, &s3, key);

    let out = verify(&s3, work.path(), &format!("s3://{BUCKET}/{key}"), &[]);
    out.expect_code(65);
    assert!(
        out.stderr.contains("the backup does not verify") && out.stderr.contains("shop.orders"),
        "{}",
        out.stderr
    );
    assert!(!object(&s3, &format!("{key}.verified")).exists());
    let values = metrics(&work.path().join("mysnap-db1-verify.prom"));
    assert_eq!(values["mysnap_verify_last_status"], 0.0);
    assert!(values["mysnap_verify_tables_failed"] >= 1.0);
    assert!(!values.contains_key("mysnap_verify_last_success_timestamp_seconds"));
    assert!(!work.path().join("scratch").exists());
    wait_until_up(&db);
}

#[test]
fn a_tampered_archive_fails_before_any_server_starts() {
    let db = server();
    let s3 = S3Server::s3s_fs(&[BUCKET]);
    let work = tempfile::tempdir().unwrap();
    sh(&db.stop_cmd());
    let key = "db1/20261201T010000Z.tar.gz";
    backup_of(&db.datadir(), &s3, key);
    sh(&db.start_cmd());
    // A scratch directory that the server's user (mysql) could not reach
    // is refused before anything is fetched.
    let closed = work.path().join("closed");
    std::fs::create_dir(&closed).unwrap();
    std::fs::set_permissions(&closed, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let out = run(
        s3.tool("mysql-verify-backup")
            .arg("--scratch")
            .arg(closed.join("scratch"))
            .arg(format!("s3://{BUCKET}/db1/")),
        b"",
    );
    out.expect_code(73);
    assert!(
        out.stderr.contains("cannot reach it") && !out.stderr.contains("s3-get"),
        "{}",
        out.stderr
    );
    assert!(!closed.join("scratch").exists());
    // One byte of the stored object changed: its sidecar no longer matches.
    let path = object(&s3, key);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();

    let out = verify(
        &s3,
        work.path(),
        &format!("s3://{BUCKET}/db1/"),
        &["--keep"],
    );
    out.expect_code(65);
    assert!(
        !out.stderr.contains("starting a private") && !out.stderr.contains("a server answers"),
        "{}",
        out.stderr
    );
    assert!(!object(&s3, &format!("{key}.verified")).exists());
    // Kept, as asked: what was unpacked before the fault, and no server
    // log (none was started).
    assert!(work.path().join("scratch/data").exists());
    assert!(!work.path().join("scratch/mysqld-error.log").exists());
    let values = metrics(&work.path().join("mysnap-db1-verify.prom"));
    assert_eq!(values["mysnap_verify_last_status"], 0.0);
    wait_until_up(&db);
}
