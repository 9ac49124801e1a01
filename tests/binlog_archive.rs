//! mysql-binlog-archive against a real MariaDB (binary log on, GTID) and a
//! real s3s-fs: the archive holds the server's binlog files byte for byte.

use mysnap::binlog::event::{Header, FIRST_EVENT, HEADER_LEN, IN_USE};
use mysnap::binlog::layout::Timeline;
use mysnap_tests::mariadb::Mariadb;
use mysnap_tests::server::S3Server;
use mysnap_tests::tool::Output;
use mysql::prelude::Queryable;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

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
    let root = s3.object_file(BUCKET, "");
    let mut found = BTreeMap::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let key = path.strip_prefix(&root).unwrap().display().to_string();
                // s3s-fs keeps its own metadata beside the objects.
                if key.contains(".s3s-fs") || key.ends_with(".metadata.json") {
                    continue;
                }
                found.insert(key, std::fs::read(&path).unwrap());
            }
        }
    }
    found
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
    for file in files {
        let (t2, objects) = timeline(&s3);
        let _ = t2;
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
    let _ = Stdio::null();
    let _ = Path::new("");
}
