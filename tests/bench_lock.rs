//! bench-lock: how long mysql-lock-hold blocks writers, against mylvmbackup.
//!
//! Both tools take FLUSH TABLES WITH READ LOCK around a stand-in for
//! lvcreate that sleeps 0.2 s, against a throwaway MariaDB. A writer thread
//! inserts every 5 ms on its own connection; the longest gap between two of
//! its completed inserts during a run is that run's stall.
//!   1. Overhead: stall - 0.2 s, over alternating runs of both tools.
//!   2. Stall while a 30 s UPDATE runs: mysql-lock-hold must cut its lock
//!      request at --lock-timeout; mylvmbackup waits behind the UPDATE.
//! Missed targets are reported (MISS), never an exit 1.
//! Run: bench/lock.sh (make bench runs it). Knob: BENCH_LOCK_RUNS=20.

use mysnap_tests::mariadb::{write_option_file, Mariadb, BACKUP_PASSWORD};
use mysql::prelude::Queryable;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a real lvcreate takes, and so the least any lock must last.
const LVCREATE: Duration = Duration::from_millis(200);
const OVERHEAD_TARGET_MS: f64 = 20.0;
const LOCK_TIMEOUT: Duration = Duration::from_secs(3);
const UPDATE: &str = "UPDATE t.slow SET v = v WHERE SLEEP(30) = 0";

/// Inserts every 5 ms on its own connection, noting when each insert finished.
struct Writer {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Instant>>,
}

impl Writer {
    fn start(db: &Mariadb) -> Writer {
        let mut conn = db.admin();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut done = vec![Instant::now()];
            while !flag.load(Ordering::SeqCst) {
                conn.query_drop("INSERT INTO t.writes (at) VALUES (UNIX_TIMESTAMP(NOW(6)))")
                    .expect("writer insert");
                done.push(Instant::now());
                std::thread::sleep(Duration::from_millis(5));
            }
            done
        });
        // Running before the tool starts: the first gap is not a startup gap.
        std::thread::sleep(Duration::from_millis(100));
        Writer { stop, thread }
    }

    /// The longest gap between consecutive completed inserts.
    fn stop(self) -> Duration {
        std::thread::sleep(Duration::from_millis(50));
        self.stop.store(true, Ordering::SeqCst);
        let done = self.thread.join().unwrap();
        done.windows(2).map(|w| w[1] - w[0]).max().unwrap()
    }
}

/// Runs `cmd` with its output in `log`; kills it after `timeout` (code None).
fn run(cmd: &mut Command, log: &Path, timeout: Duration) -> Option<i32> {
    let file = std::fs::File::create(log).unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status.code().unwrap_or(128));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `cmd` while the writer measures; the stall and the exit code.
fn measured(
    db: &Mariadb,
    cmd: &mut Command,
    log: &Path,
    timeout: Duration,
) -> (Duration, Option<i32>) {
    let writer = Writer::start(db);
    let code = run(cmd, log, timeout);
    if code.is_none() {
        // A killed mylvmbackup may leave its FTWRL request queued: end it.
        kill_user(db, "backup");
    }
    (writer.stop(), code)
}

fn kill_user(db: &Mariadb, user: &str) {
    let mut admin = db.admin();
    let ids: Vec<u64> = admin
        .query(format!(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '{user}'"
        ))
        .unwrap();
    for id in ids {
        let _ = admin.query_drop(format!("KILL {id}"));
    }
}

/// The stand-in for lvcreate, and mylvmbackup's config (mode 0600: it has the
/// password). Every other LVM and mount tool is `true`: no LVM on this host.
fn setup(db: &Mariadb) -> (PathBuf, PathBuf) {
    let dir = db.dir.path();
    let lvcreate = dir.join("lvcreate-sleep");
    std::fs::write(
        &lvcreate,
        "#!/bin/sh\n# What a real lvcreate takes.\nsleep 0.2\n",
    )
    .unwrap();
    std::fs::set_permissions(&lvcreate, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.join("mylvmbackup.conf");
    // Config::IniFiles keeps '#', inner spaces and quotes of a value as they are.
    let text = format!(
        "[mysql]\nuser=backup\npassword={BACKUP_PASSWORD}\nsocket={socket}\n\
         [lvm]\nvgname=bench\nlvname=data\nlvsize=1G\n\
         [fs]\nmountdir={d}/lvm-mnt\nbackupdir={d}/lvm-backup\n\
         [tools]\nlvcreate={lvcreate}\nlvremove=/bin/true\nlvs=/bin/true\nmount=/bin/true\numount=/bin/true\n\
         [misc]\nbackuptype=none\nskip_mycnf=1\n",
        socket = db.socket.display(),
        d = dir.display(),
        lvcreate = lvcreate.display(),
    );
    write_option_file(&config, &text);
    (lvcreate, config)
}

fn mylvmbackup(config: &Path) -> Command {
    let mut cmd = Command::new("mylvmbackup");
    cmd.arg(format!("--configfile={}", config.display()));
    cmd
}

/// Nearest-rank percentile of milliseconds.
fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

/// A stall behind a 30 s UPDATE that has been running ~1.5 s.
fn behind_update(
    db: &Mariadb,
    cmd: &mut Command,
    log: &Path,
    timeout: Duration,
) -> (Duration, Option<i32>) {
    let mut conn = db.admin();
    let id = conn.connection_id();
    let update = std::thread::spawn(move || {
        let _ = conn.query_drop(UPDATE);
    });
    std::thread::sleep(Duration::from_millis(1500));
    let result = measured(db, cmd, log, timeout);
    let _ = db.admin().query_drop(format!("KILL {id}"));
    update.join().unwrap();
    result
}

fn code(code: Option<i32>) -> String {
    code.map_or("killed at timeout".into(), |c| format!("exit {c}"))
}

fn main() {
    let runs: usize = std::env::var("BENCH_LOCK_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    println!("bench-lock: starting a throwaway MariaDB");
    let db = Mariadb::start();
    let (lvcreate, config) = setup(&db);
    let version = db.value("SELECT VERSION()").unwrap_or_default();
    let logs = db.dir.path();
    let ours = |extra: &[&str]| {
        let mut cmd = db.tool("mysql-lock-hold");
        cmd.args(extra).arg("--").arg(&lvcreate);
        cmd
    };
    let idle = measured(
        &db,
        &mut Command::new("sleep").arg("1"),
        &logs.join("idle.log"),
        LVCREATE * 10,
    )
    .0;

    // 1. Lock overhead, alternating the tools so drift on the host hits both.
    let status = logs.join("status.json");
    let (mut our_overhead, mut their_overhead, mut our_hold) = (vec![], vec![], vec![]);
    for i in 0..runs {
        println!("bench-lock: overhead run {} of {runs}", i + 1);
        for tool in if i % 2 == 0 { [0, 1] } else { [1, 0] } {
            if tool == 0 {
                let mut cmd = ours(&["--status-file", status.to_str().unwrap()]);
                let log = logs.join("lock-hold.log");
                let (stall, code) = measured(&db, &mut cmd, &log, Duration::from_secs(30));
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                assert_eq!(code, Some(0), "mysql-lock-hold failed:\n{log}");
                our_overhead.push(ms(stall) - ms(LVCREATE));
                let json: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&status).unwrap()).unwrap();
                our_hold.push(json["lock_hold_ms"].as_f64().expect("lock_hold_ms") - ms(LVCREATE));
            } else {
                let log = logs.join("mylvmbackup.log");
                let (stall, code) = measured(
                    &db,
                    &mut mylvmbackup(&config),
                    &log,
                    Duration::from_secs(40),
                );
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                // The lock window is what counts; still, say if it failed.
                assert!(
                    text.contains("Unlocking tables"),
                    "mylvmbackup never unlocked:\n{text}"
                );
                if code != Some(0) && i == 0 {
                    println!(
                        "bench-lock: mylvmbackup {} after unlocking:\n{text}",
                        self::code(code)
                    );
                }
                their_overhead.push(ms(stall) - ms(LVCREATE));
            }
        }
    }

    // 2. Stalls behind a long UPDATE: the lock request queues behind it and
    // every writer queues behind the request.
    println!("bench-lock: stall behind a 30 s UPDATE: mysql-lock-hold, --long-query-threshold 60s");
    let timeout_args = [
        "--lock-timeout",
        "3s",
        "--retries",
        "1",
        "--retry-delay",
        "1s",
    ];
    let mut cmd = ours(&[&timeout_args[..], &["--long-query-threshold", "60s"]].concat());
    let (our_stall, our_code) =
        behind_update(&db, &mut cmd, &logs.join("u1.log"), Duration::from_secs(40));
    println!("bench-lock: the same with --long-query-threshold 1s");
    let mut cmd = ours(&[&timeout_args[..], &["--long-query-threshold", "1s"]].concat());
    let (detect_stall, detect_code) =
        behind_update(&db, &mut cmd, &logs.join("u2.log"), Duration::from_secs(40));
    println!("bench-lock: the same with mylvmbackup (waits for the UPDATE, ~30 s)");
    let log = logs.join("u3.log");
    let (their_stall, their_code) = behind_update(
        &db,
        &mut mylvmbackup(&config),
        &log,
        Duration::from_secs(40),
    );

    let (o50, o90, t50, t90) = (
        percentile(&our_overhead, 0.5),
        percentile(&our_overhead, 0.9),
        percentile(&their_overhead, 0.5),
        percentile(&their_overhead, 0.9),
    );
    let hold50 = percentile(&our_hold, 0.5);
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.1}x", a / b)
        } else {
            "-".into()
        }
    };
    let bound = LOCK_TIMEOUT + Duration::from_millis(500);
    println!();
    println!(
        "MariaDB {version}, {} CPUs; writer inserts every 5 ms; lvcreate stand-in sleeps 0.2 s",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("writer's own longest gap with no lock: {:.1} ms", ms(idle));
    println!();
    println!("1. Lock overhead: writer stall - 0.2 s, {runs} runs per tool (ms)");
    println!("  {:<16} {:>8} {:>8}", "tool", "p50", "p90");
    println!("  {:<16} {:>8.1} {:>8.1}", "mysql-lock-hold", o50, o90);
    println!("  {:<16} {:>8.1} {:>8.1}", "mylvmbackup", t50, t90);
    println!(
        "  {:<16} {:>8} {:>8}",
        "mylvmbackup/ours",
        ratio(t50, o50),
        ratio(t90, o90)
    );
    println!("  mysql-lock-hold lock_hold_ms - 200 (status file), p50: {hold50:.1} ms");
    println!(
        "  target: mysql-lock-hold p50 <= {OVERHEAD_TARGET_MS} ms: {}",
        verdict(o50 <= OVERHEAD_TARGET_MS)
    );
    println!();
    println!("2. Worst writer stall behind a running 30 s UPDATE (s)");
    println!("  {:<52} {:>7}  {}", "tool", "stall", "outcome");
    let row = |name: &str, stall: Duration, code: Option<i32>| {
        println!(
            "  {:<52} {:>7.2}  {}",
            name,
            stall.as_secs_f64(),
            self::code(code)
        );
    };
    row(
        "mysql-lock-hold --lock-timeout 3s --retries 1 (asks)",
        our_stall,
        our_code,
    );
    row(
        "mysql-lock-hold ... --long-query-threshold 1s (detects)",
        detect_stall,
        detect_code,
    );
    row("mylvmbackup (defaults)", their_stall, their_code);
    println!(
        "  mylvmbackup/mysql-lock-hold: {}",
        ratio(their_stall.as_secs_f64(), our_stall.as_secs_f64())
    );
    println!(
        "  target: mysql-lock-hold stall <= lock-timeout + 0.5 s = {:.1} s: {}",
        bound.as_secs_f64(),
        verdict(our_stall <= bound)
    );
}
