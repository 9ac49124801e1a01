//! bench-lock: how long mysql-lock-hold blocks writers, against mylvmbackup.
//!
//! Both tools take FLUSH TABLES WITH READ LOCK around a stand-in for
//! lvcreate that sleeps 0.2 s, against a throwaway MariaDB. A writer thread
//! inserts every 5 ms on its own connection; the longest gap between two of
//! its completed inserts during a run is that run's stall.
//!   1. Overhead: stall - 0.2 s, over alternating runs of both tools.
//!   2. Stall while a 30 s UPDATE runs: mysql-lock-hold must cut its lock
//!      request at --lock-timeout; mylvmbackup waits behind the UPDATE.
//!
//! Missed targets are reported (MISS), never an exit 1.
//! Run: bench/lock.sh (make bench runs it). Knob: BENCH_LOCK_RUNS=20.

use mysnap_tests::mariadb::{write_option_file, Mariadb, BACKUP_PASSWORD};
use mysql::prelude::Queryable;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a real lvcreate takes, and so the least any lock must last.
const LVCREATE_MS: f64 = 200.0;
const OVERHEAD_TARGET_MS: f64 = 20.0;
/// mysql-lock-hold's --lock-timeout in scenario 2, plus 0.5 s of slack.
const STALL_TARGET_S: f64 = 3.5;

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
        // Going before the tool starts, so no gap is the writer's own start.
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

/// One run of a tool: the writers' stall, its exit code (None: killed at
/// the timeout) and its output.
struct Run {
    stall: Duration,
    code: Option<i32>,
    log: String,
}

struct Bench {
    db: Mariadb,
    lvcreate: PathBuf,
    config: PathBuf,
}

impl Bench {
    /// The stand-in for lvcreate, and mylvmbackup's config (mode 0600: it has
    /// the password). Its other LVM and mount tools are `true`: no LVM here.
    fn setup(db: Mariadb) -> Bench {
        let dir = db.dir.path();
        let lvcreate = dir.join("lvcreate-sleep");
        std::fs::write(&lvcreate, "#!/bin/sh\nsleep 0.2\n").unwrap();
        std::fs::set_permissions(&lvcreate, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = dir.join("mylvmbackup.conf");
        // Config::IniFiles keeps the '#', inner space and quote of a value.
        let text = format!(
            "[mysql]\nuser=backup\npassword={BACKUP_PASSWORD}\nsocket={socket}\n\
             [lvm]\nvgname=bench\nlvname=data\nlvsize=1G\n\
             [fs]\nmountdir={d}/lvm-mnt\nbackupdir={d}/lvm-backup\n\
             [tools]\nlvcreate={lvcreate}\nlvremove=/bin/true\nlvs=/bin/true\n\
             mount=/bin/true\numount=/bin/true\n[misc]\nbackuptype=none\nskip_mycnf=1\n",
            socket = db.socket.display(),
            d = dir.display(),
            lvcreate = lvcreate.display(),
        );
        write_option_file(&config, &text);
        // mylvmbackup connects to database `mysql` (hard-coded): the backup
        // user needs some privilege there, and this one is harmless.
        let grant = "GRANT SELECT ON mysql.help_topic TO backup@localhost";
        db.admin().query_drop(grant).unwrap();
        Bench {
            db,
            lvcreate,
            config,
        }
    }

    fn ours(&self, args: &[&str]) -> Command {
        let mut cmd = self.db.tool("mysql-lock-hold");
        cmd.args(args).arg("--").arg(&self.lvcreate);
        cmd
    }

    fn theirs(&self) -> Command {
        let mut cmd = Command::new("mylvmbackup");
        cmd.arg(format!("--configfile={}", self.config.display()));
        cmd
    }

    /// Runs `cmd` to its end (or kills it after `timeout`) while the writer measures.
    fn measure(&self, mut cmd: Command, timeout: Duration) -> Run {
        let path = self.db.dir.path().join("tool.log");
        let file = std::fs::File::create(&path).unwrap();
        let writer = Writer::start(&self.db);
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let mut child = cmd.spawn().expect("start the tool");
        let deadline = Instant::now() + timeout;
        let code = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status.code().unwrap_or(128));
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                // A lock request outlives its client: end it on the server.
                self.kill("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'backup'");
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let log = std::fs::read_to_string(&path).unwrap_or_default();
        let stall = writer.stop();
        Run { stall, code, log }
    }

    /// KILLs the connections whose ids `query` returns.
    fn kill(&self, query: &str) {
        let mut admin = self.db.admin();
        for id in admin.query::<u64, _>(query).unwrap() {
            let _ = admin.query_drop(format!("KILL {id}"));
        }
    }

    /// A run behind `UPDATE ... SLEEP(30)`, started 1.5 s before the tool.
    fn behind_update(&self, cmd: Command, timeout: Duration) -> Run {
        let mut conn = self.db.admin();
        let id = conn.connection_id();
        let update = std::thread::spawn(move || {
            let _ = conn.query_drop("UPDATE t.slow SET v = v WHERE SLEEP(30) = 0");
        });
        std::thread::sleep(Duration::from_millis(1500));
        let run = self.measure(cmd, timeout);
        self.kill(&format!("SELECT {id}"));
        update.join().unwrap();
        run
    }
}

/// Nearest-rank percentile.
fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn overhead_ms(run: &Run) -> f64 {
    run.stall.as_secs_f64() * 1000.0 - LVCREATE_MS
}

fn verdict(ok: bool) -> &'static str {
    ["MISS", "PASS"][ok as usize]
}

/// A stall in seconds with how the tool ended.
fn stall(run: &Run) -> String {
    let code = run.code.map_or("killed".into(), |c| c.to_string());
    format!("{:.2} (exit {code})", run.stall.as_secs_f64())
}

fn main() {
    let runs: usize = std::env::var("BENCH_LOCK_RUNS").map_or(20, |r| r.parse().unwrap());
    println!("bench-lock: starting a throwaway MariaDB");
    let bench = Bench::setup(Mariadb::start());
    let minute = Duration::from_secs(60);
    let mut idle = Command::new("sleep");
    idle.arg("1");
    let idle = bench.measure(idle, minute).stall;

    // 1. Lock overhead, alternating the tools so drift on the host hits both.
    let status = bench.db.dir.path().join("status.json");
    let (mut ours, mut theirs, mut held) = (vec![], vec![], vec![]);
    for i in 0..runs {
        println!("bench-lock: overhead run {} of {runs}", i + 1);
        for our_turn in [i % 2 == 0, i % 2 == 1] {
            if our_turn {
                let args = ["--status-file", status.to_str().unwrap()];
                let run = bench.measure(bench.ours(&args), minute);
                assert_eq!(run.code, Some(0), "mysql-lock-hold failed:\n{}", run.log);
                ours.push(overhead_ms(&run));
                let json: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&status).unwrap()).unwrap();
                held.push(json["lock_hold_ms"].as_f64().expect("lock_hold_ms") - LVCREATE_MS);
            } else {
                let run = bench.measure(bench.theirs(), minute);
                // Only the lock window counts, but there must have been one.
                let log = &run.log;
                assert!(log.contains("Unlocking tables"), "mylvmbackup:\n{log}");
                if run.code != Some(0) {
                    println!("bench-lock: mylvmbackup failed after unlocking:\n{log}");
                }
                theirs.push(overhead_ms(&run));
            }
        }
    }

    // 2. Behind a long UPDATE, a lock request waits and every writer queues
    // behind the request: only giving up on the lock bounds the stall.
    let cut = |threshold: &str| {
        let args = format!(
            "--lock-timeout 3s --retries 1 --retry-delay 1s --long-query-threshold {threshold}"
        );
        bench.ours(&args.split(' ').collect::<Vec<_>>())
    };
    println!("bench-lock: behind a 30 s UPDATE: mysql-lock-hold, asking for the lock");
    let asks = bench.behind_update(cut("60s"), minute);
    println!("bench-lock: behind a 30 s UPDATE: mysql-lock-hold, detecting the UPDATE");
    let sees = bench.behind_update(cut("1s"), minute);
    println!("bench-lock: behind a 30 s UPDATE: mylvmbackup (waits it out, ~30 s)");
    let waits = bench.behind_update(bench.theirs(), Duration::from_secs(40));

    let (o50, o90) = (percentile(&ours, 0.5), percentile(&ours, 0.9));
    let (t50, t90) = (percentile(&theirs, 0.5), percentile(&theirs, 0.9));
    let ratio = waits.stall.as_secs_f64() / asks.stall.as_secs_f64();
    let version = bench.db.value("SELECT VERSION()").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!(
        "mysql-lock-hold vs mylvmbackup: MariaDB {version}, {cpus} CPUs, {runs} runs per tool"
    );
    println!(
        "writer: an INSERT every 5 ms, longest gap with no lock {:.1} ms; lvcreate: sleep 0.2",
        idle.as_secs_f64() * 1000.0
    );
    let row = |cells: [&str; 5]| {
        let [what, ours, theirs, ratio, target] = cells;
        let line = format!("  {what:<27} {ours:>15} {theirs:>15} {ratio:>6}  {target}");
        println!("{}", line.trim_end());
    };
    let (f, x) = (|v: f64| format!("{v:.1}"), |v: f64| format!("{v:.1}x"));
    let head = ("measurement", "mysql-lock-hold", "mylvmbackup", "ratio");
    println!(
        "  {:<27} {:>15} {:>15} {:>6}  target",
        head.0, head.1, head.2, head.3
    );
    let pass = verdict(o50 <= OVERHEAD_TARGET_MS);
    let target = format!("<= {OVERHEAD_TARGET_MS} ms {pass}");
    row(["overhead p50, ms", &f(o50), &f(t50), &x(t50 / o50), &target]);
    row(["overhead p90, ms", &f(o90), &f(t90), &x(t90 / o90), ""]);
    let hold = f(percentile(&held, 0.5));
    row(["lock_hold_ms - 200 p50, ms", &hold, "-", "", ""]);
    let pass = verdict(asks.stall.as_secs_f64() <= STALL_TARGET_S);
    let target = format!("<= {STALL_TARGET_S} s {pass}");
    let (asks_s, waits_s) = (stall(&asks), stall(&waits));
    let r = x(ratio);
    row(["stall behind UPDATE, s (1)", &asks_s, &waits_s, &r, &target]);
    row(["stall behind UPDATE, s (2)", &stall(&sees), "-", "", ""]);
    println!("  overhead: writer stall - 200 ms; lock_hold_ms: from --status-file");
    println!("  ratio: mylvmbackup / mysql-lock-hold; mylvmbackup at its defaults");
    println!("  (1) mysql-lock-hold --lock-timeout 3s --retries 1 --retry-delay 1s --long-query-threshold 60s");
    println!("  (2) the same with --long-query-threshold 1s; exit 75: gave up, holding nothing");
}
