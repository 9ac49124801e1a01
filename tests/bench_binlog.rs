//! bench-binlog: how far behind the server mysql-binlog-archive's archive
//! is (its RPO), against the peers' design (a timer that copies rotated
//! binlog files), and what the archiver costs.
//!
//!   1. RPO under a steady load: a writer commits numbered rows at a fixed
//!      rate; at random moments the age of the newest archived row is
//!      sampled (p50, p99), for the archiver at its defaults and for a
//!      closed-file timer at the default max_binlog_size.
//!   2. A crash: mariadbd and the archiver are SIGKILLed together; the
//!      rows whose commit had returned and that the archive lacks are
//!      counted.
//!   3. Cost: CPU-seconds per GiB of binlog, archiving a large binlog from
//!      scratch, and PUT requests per hour at the defaults (phase 1).
//!
//! Missed targets are reported (MISS), never an exit 1.
//! Run: bench/binlog.sh (make bench runs it).
//! Knobs: BENCH_BINLOG_SECONDS=60 (phase 1), BENCH_BINLOG_RATE=100 (rows/s),
//! BENCH_BINLOG_MIB=256 (phase 3).

use mysnap_tests::mariadb::Mariadb;
use mysnap_tests::server::S3Server;
use mysql::prelude::Queryable;
use rand::Rng;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BUCKET: &str = "bench";
const RPO_TARGET_S: f64 = 5.0;
/// How often the peers' timer copies closed binlog files.
const TIMER: Duration = Duration::from_secs(60);

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Files under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                found.push(p);
            }
        }
    }
    found.sort();
    found
}

/// The highest row id in statement events of `bytes` (events, no magic).
fn newest_id(bytes: &[u8]) -> Option<u64> {
    let needle = b"VALUES (";
    bytes
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| w == needle)
        .filter_map(|(i, _)| {
            let digits: Vec<u8> = bytes[i + needle.len()..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .copied()
                .collect();
            std::str::from_utf8(&digits).ok()?.parse().ok()
        })
        .max()
}

/// The newest id in the archive's newest two segments (a segment may hold
/// only a rotation).
fn archived_id(root: &Path) -> Option<u64> {
    let segments: Vec<PathBuf> = files(root)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments
        .iter()
        .rev()
        .take(2)
        .filter_map(|p| newest_id(&std::fs::read(p).ok()?))
        .max()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "OK"
    } else {
        "MISS"
    }
}

fn archiver(db: &Mariadb, s3: &S3Server, prefix: &str, extra: &[&str]) -> Command {
    let mut cmd = s3.tool("mysql-binlog-archive");
    cmd.arg("--defaults-file")
        .arg(&db.defaults_file)
        .args(["--server-id", "4242", "-q"])
        .args(extra)
        .arg(format!("s3://{BUCKET}/{prefix}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

fn main() {
    let seconds = knob("BENCH_BINLOG_SECONDS", 60);
    let rate = knob("BENCH_BINLOG_RATE", 100);
    let mib = knob("BENCH_BINLOG_MIB", 256);
    let db = Mariadb::start_with(&["--binlog-format=STATEMENT"]);
    let mut admin = db.admin();
    admin
        .query_drop("GRANT REPLICATION SLAVE ON *.* TO backup@localhost")
        .unwrap();
    let s3 = S3Server::s3s_fs(&[BUCKET]);
    let root = s3.object_file(BUCKET, "rpo");

    // 1. RPO.
    let mut follow = archiver(&db, &s3, "rpo/", &[]).spawn().unwrap();
    let commits: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (commits, stop) = (commits.clone(), stop.clone());
        let mut conn = db.admin();
        std::thread::spawn(move || {
            let period = Duration::from_secs_f64(1.0 / rate as f64);
            let start = Instant::now();
            let mut id: u64 = 0;
            while !stop.load(Ordering::SeqCst) {
                id += 1;
                let due = start + period * id as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                // Fails once the server is killed: the rows before are the committed ones.
                if conn
                    .query_drop(format!(
                        "INSERT INTO t.writes (id, at) VALUES ({id}, UNIX_TIMESTAMP(NOW(6)))"
                    ))
                    .is_err()
                {
                    return;
                }
                commits.lock().unwrap().push(Instant::now());
            }
        })
    };
    let began = Instant::now();
    let closed_dir = tempfile::tempdir().unwrap();
    let mut next_timer = began + TIMER;
    let (mut ours, mut peers) = (Vec::new(), Vec::new());
    let mut rng = rand::thread_rng();
    while began.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs_f64(rng.gen_range(0.2..1.0)));
        if Instant::now() >= next_timer {
            // The peers' timer: copy the files the server has closed.
            let current: mysql::Row = admin.query_first("SHOW MASTER STATUS").unwrap().unwrap();
            let current: String = current.get(0).unwrap();
            let logs: Vec<String> = admin
                .query_map("SHOW BINARY LOGS", |r: mysql::Row| r.get(0).unwrap())
                .unwrap();
            for log in logs.iter().filter(|l| **l != current) {
                let _ = std::fs::copy(db.datadir().join(log), closed_dir.path().join(log));
            }
            next_timer += TIMER;
        }
        let now = Instant::now();
        let commits = commits.lock().unwrap();
        let age = |id: Option<u64>| match id {
            Some(id) if id >= 1 && (id as usize) <= commits.len() => {
                now.duration_since(commits[id as usize - 1]).as_secs_f64()
            }
            // Nothing archived yet: everything since the start is at risk.
            _ => now.duration_since(began).as_secs_f64(),
        };
        ours.push(age(archived_id(&root)));
        let peer_id = files(closed_dir.path())
            .iter()
            .filter_map(|p| newest_id(&std::fs::read(p).ok()?))
            .max();
        peers.push(age(peer_id));
    }
    let segments = files(&root)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .count();
    let written: u64 = admin
        .query_map("SHOW BINARY LOGS", |r: mysql::Row| {
            r.get::<u64, _>(1).unwrap()
        })
        .unwrap()
        .iter()
        .sum();
    let fill_hours =
        (1u64 << 30) as f64 / (written as f64 / began.elapsed().as_secs_f64()) / 3600.0;
    let puts_per_hour = segments as f64 * 3600.0 / began.elapsed().as_secs_f64();

    // 2. The crash: both killed at once.
    let pid: i32 = std::fs::read_to_string(db.dir.path().join("mysqld.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    let _ = follow.kill();
    let _ = follow.wait();
    stop.store(true, Ordering::SeqCst);
    let committed = commits.lock().unwrap().len() as u64;
    let _ = writer.join();
    let archived = files(&root)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .filter_map(|p| newest_id(&std::fs::read(p).ok()?))
        .max()
        .unwrap_or(0);
    let lost = committed.saturating_sub(archived);

    ours.sort_by(f64::total_cmp);
    peers.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&ours, 0.5), percentile(&ours, 0.99));
    let (q50, q99) = (percentile(&peers, 0.5), percentile(&peers, 0.99));
    println!(
        "binlog archive, {rate} rows/s for {seconds} s, {} samples:",
        ours.len()
    );
    println!(
        "  RPO streamed (defaults: 5s segments):  p50 {p50:.2} s  p99 {p99:.2} s  (target p99 <= {RPO_TARGET_S} s) {}",
        verdict(p99 <= RPO_TARGET_S)
    );
    println!(
        "  RPO closed files (timer every {} s, max_binlog_size 1G):  p50 {q50:.2} s  p99 {q99:.2} s",
        TIMER.as_secs()
    );
    println!(
        "  ratio closed-file / streamed:  p50 {:.1}x  p99 {:.1}x (no file closed in the run: a 1G file fills in {fill_hours:.1} h at this load, \
         so the closed-file RPO grows that long)",
        q50 / p50,
        q99 / p99
    );
    println!("  PUT requests per hour at the defaults under this load: {puts_per_hour:.0}");
    println!(
        "  mariadbd and the archiver SIGKILLed together: {lost} of {committed} committed rows not archived \
         ({:.1} s of writes at this rate)",
        lost as f64 / rate as f64
    );
    drop(db);

    // 3. Cost, on a fresh server: a large binlog archived from scratch.
    let db = Mariadb::start_with(&["--binlog-format=STATEMENT", "--max-allowed-packet=64M"]);
    let mut admin = db.admin();
    admin
        .query_drop(
            "GRANT REPLICATION SLAVE ON *.* TO backup@localhost; \
             CREATE TABLE t.big (id INT PRIMARY KEY AUTO_INCREMENT, b LONGBLOB)",
        )
        .unwrap();
    let blob: Vec<u8> = (0..1 << 20).map(|_| rng.gen::<u8>()).collect();
    for _ in 0..mib {
        admin
            .exec_drop("INSERT INTO t.big (b) VALUES (?)", (blob.clone(),))
            .unwrap();
    }
    let logs: Vec<(String, u64)> = admin
        .query_map("SHOW BINARY LOGS", |r: mysql::Row| {
            (r.get(0).unwrap(), r.get(1).unwrap())
        })
        .unwrap();
    let bytes: u64 = logs.iter().map(|(_, s)| s).sum();
    let start = Instant::now();
    let mut child = archiver(&db, &s3, "cost/", &["--no-follow"])
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let usage = loop {
        // wait4 gives the child's own CPU time.
        let mut status = 0;
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid.as_raw(), &mut status, 0, &mut ru) };
        if r == pid.as_raw() {
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "the archiver failed"
            );
            break ru;
        }
    };
    let _ = child.try_wait();
    let wall = start.elapsed().as_secs_f64();
    let cpu = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu_s = cpu(usage.ru_utime) + cpu(usage.ru_stime);
    let gib = bytes as f64 / (1u64 << 30) as f64;
    println!(
        "  cost: {:.0} MiB of binlog archived in {wall:.1} s ({:.0} MiB/s), {:.2} CPU-s per GiB",
        bytes as f64 / (1u64 << 20) as f64,
        bytes as f64 / (1u64 << 20) as f64 / wall,
        cpu_s / gib
    );
}
