//! A throwaway MariaDB server from Debian's packages: its own datadir,
//! socket and port under a temp dir, binary logging on, a `backup` user
//! whose password lives in an option file (as the tools expect), and an
//! `admin` user for the tests' own queries.

use crate::server::free_port;
use crate::tool::tool;
use mysql::prelude::Queryable;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Mariadb {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub port: u16,
    /// Option file with the backup user's password (mode 0600).
    pub defaults_file: PathBuf,
    /// The mariadbd command line, for tests that stop and restart it.
    server: String,
    child: Child,
}

const ADMIN_PASSWORD: &str = "admin-pw";
/// A password with the characters option files make hard: '#', space, quote.
pub const BACKUP_PASSWORD: &str = "b#ck up'pw";

fn binary(name: &str) -> String {
    for dir in ["/usr/sbin", "/usr/bin"] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path.display().to_string();
        }
    }
    panic!("{name} is not installed: run tests/setup.sh (make test does)");
}

impl Mariadb {
    /// Installs a datadir and starts mariadbd on it. The server stops when
    /// the test process ends, even one that panics.
    pub fn start() -> Mariadb {
        Self::start_with(&[])
    }

    /// The same, with more server options (TLS, for one).
    pub fn start_with(server_options: &[&str]) -> Mariadb {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let out = Command::new(binary("mariadb-install-db"))
            .args([
                "--user=root",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ])
            .arg(format!("--datadir={}", data.display()))
            // Its own tmpdir: two installs at once in /tmp collide on
            // their temporary tables' names.
            .arg(format!("--tmpdir={}", dir.path().display()))
            .output()
            .expect("run mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let socket = dir.path().join("mysqld.sock");
        let port = free_port();
        let server = format!(
            "{} --no-defaults --user=root --datadir={data} --socket={sock} --port={port} \
             --bind-address=127.0.0.1 --pid-file={dir}/mysqld.pid --log-bin={data}/binlog \
             --server-id=1 --innodb-buffer-pool-size=32M --log-error={dir}/error.log --tmpdir={dir} {extra}",
            binary("mariadbd"),
            data = data.display(),
            sock = socket.display(),
            dir = dir.path().display(),
            extra = server_options.join(" "),
        );
        let child = Command::new("sh")
            .process_group(0)
            .args(["-c", &watched(&server)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ready = Command::new(binary("mariadb"))
                .arg(format!("--socket={}", socket.display()))
                .args(["-e", "SELECT 1"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "mariadbd did not start: see {}/error.log",
                dir.path().display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let setup = format!(
            "CREATE USER admin@localhost IDENTIFIED BY '{ADMIN_PASSWORD}';
             GRANT ALL ON *.* TO admin@localhost WITH GRANT OPTION;
             CREATE USER backup@localhost IDENTIFIED BY '{}';
             GRANT RELOAD, PROCESS, BINLOG MONITOR, SLAVE MONITOR ON *.* TO backup@localhost;
             CREATE DATABASE t;
             CREATE TABLE t.slow (id INT PRIMARY KEY, v INT) ENGINE=InnoDB;
             INSERT INTO t.slow VALUES (1, 1);
             CREATE TABLE t.writes (id INT PRIMARY KEY AUTO_INCREMENT, at DOUBLE, through DOUBLE) ENGINE=InnoDB;",
            BACKUP_PASSWORD.replace('\'', "\\'")
        );
        let out = Command::new(binary("mariadb"))
            .arg(format!("--socket={}", socket.display()))
            .args(["-e", &setup])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "setup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let defaults_file = dir.path().join("backup.cnf");
        write_option_file(
            &defaults_file,
            &format!(
                "[client]\nuser = backup\npassword = \"{}\"\nsocket = {}\n",
                BACKUP_PASSWORD.replace('\'', "\\'"),
                socket.display()
            ),
        );
        Mariadb {
            dir,
            socket,
            port,
            defaults_file,
            server,
            child,
        }
    }

    pub fn datadir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A shell command that stops the server and returns once it is gone.
    pub fn stop_cmd(&self) -> String {
        format!(
            "p=$(cat {}/mysqld.pid) && kill $p && while kill -0 $p 2>/dev/null; do sleep 0.1; done",
            self.dir.path().display()
        )
    }

    /// A shell command that starts the server again in the background and
    /// returns at once (as init scripts do); the server still ends with
    /// the test process.
    pub fn start_cmd(&self) -> String {
        format!("({}) >/dev/null 2>&1 &", watched(&self.server))
    }

    /// A connection with every privilege, for the tests' own queries.
    pub fn admin(&self) -> mysql::Conn {
        let opts = mysql::OptsBuilder::new()
            .socket(Some(self.socket.display().to_string()))
            .user(Some("admin"))
            .pass(Some(ADMIN_PASSWORD))
            .prefer_socket(false);
        mysql::Conn::new(opts).expect("admin connection")
    }

    /// `name` with `--defaults-file` pointing at the backup user's options.
    pub fn tool(&self, name: &str) -> Command {
        let mut cmd = tool(name);
        cmd.arg("--defaults-file").arg(&self.defaults_file);
        cmd
    }

    /// One value from the server, or None while it does not answer.
    pub fn try_value(&self, query: &str) -> Option<String> {
        let opts = mysql::OptsBuilder::new()
            .socket(Some(self.socket.display().to_string()))
            .user(Some("admin"))
            .pass(Some(ADMIN_PASSWORD))
            .prefer_socket(false);
        let mut conn = mysql::Conn::new(opts).ok()?;
        mysql::prelude::Queryable::query_first(&mut conn, query)
            .ok()
            .flatten()
    }

    /// One value from the server.
    pub fn value(&self, query: &str) -> Option<String> {
        self.admin().query_first(query).unwrap()
    }

    /// The ids in the tests' table `t.rows`.
    pub fn ids(&self) -> std::collections::BTreeSet<u32> {
        self.admin()
            .query("SELECT id FROM t.rows")
            .unwrap()
            .into_iter()
            .collect()
    }

    /// Whether the tests' table `t.rows` exists.
    pub fn has_table(&self) -> bool {
        self.value(
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = 't' AND table_name = 'rows'",
        )
        .as_deref()
            == Some("1")
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        // The watching shell and mariadbd share a process group.
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// `server` in the background, killed once the test process is gone.
fn watched(server: &str) -> String {
    format!(
        "{server} & m=$!; while kill -0 {} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.5; done; kill $m 2>/dev/null",
        std::process::id()
    )
}

pub fn write_option_file(path: &Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}
