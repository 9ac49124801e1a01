//! Real S3-compatible servers on loopback, with authentication enforced.

use crate::tool::tool;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn cache_dir() -> PathBuf {
    match std::env::var_os("MYSNAP_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/mysnap"),
    }
}

/// A program tests/setup.sh installed under the cache directory.
pub fn installed(relative: &str) -> PathBuf {
    let path = cache_dir().join(relative);
    assert!(
        path.exists(),
        "{} is not installed: run tests/setup.sh (make test does)",
        path.display()
    );
    path
}

pub fn venv_python() -> PathBuf {
    installed("venv/bin/python")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what} exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub enum Kind {
    /// s3s-fs: objects are plain files under `data`.
    S3sFs { data: tempfile::TempDir },
    Moto {
        nobody_key: String,
        nobody_secret: String,
    },
}

pub struct S3Server {
    pub endpoint: String,
    pub port: u16,
    pub access_key: String,
    pub secret_key: String,
    pub kind: Kind,
    child: Child,
}

impl S3Server {
    /// An s3s-fs server with `buckets`, and keys made up for this run.
    pub fn s3s_fs(buckets: &[&str]) -> S3Server {
        let binary = installed("s3s-fs-0.14.1/bin/s3s-fs");
        let data = tempfile::tempdir().unwrap();
        for bucket in buckets {
            std::fs::create_dir(data.path().join(bucket)).unwrap();
        }
        let port = free_port();
        let access_key = format!(
            "AK{}",
            crate::sha256_hex(&port.to_le_bytes())[..16].to_uppercase()
        );
        let secret_key = crate::sha256_hex(access_key.as_bytes())[..40].to_string();
        let mut child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", &access_key, "--secret-key", &secret_key])
            .arg(data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        wait_for_port(port, &mut child, "s3s-fs");
        S3Server {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            access_key,
            secret_key,
            kind: Kind::S3sFs { data },
            child,
        }
    }

    /// A moto server with IAM users (one with all rights, one with none)
    /// and `buckets`. It stops when this test process ends.
    pub fn moto(buckets: &[&str]) -> S3Server {
        let moto = installed("venv/bin/moto_server");
        let port = free_port();
        // moto must not outlive the test process, even when a test panics
        // and statics are never dropped: a shell watches our pid.
        let watch = format!(
            "{} -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
             while kill -0 {} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.5; done; kill $m",
            moto.display(),
            std::process::id()
        );
        // In a process group of its own, so that kill() takes moto with
        // the shell: a shell killed by SIGKILL cannot kill its child.
        let mut child = Command::new("sh")
            .args(["-c", &watch])
            .process_group(0)
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "4")
            .stdout(Stdio::null())
            .spawn()
            .expect("start moto");
        wait_for_port(port, &mut child, "moto");
        let endpoint = format!("http://127.0.0.1:{port}");
        let setup = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/moto_setup.py");
        let out = Command::new(venv_python())
            .arg(setup)
            .arg(&endpoint)
            .args(buckets)
            .output()
            .expect("run moto_setup.py");
        assert!(
            out.status.success(),
            "moto setup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let keys: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let field = |name: &str| keys[name].as_str().unwrap().to_string();
        S3Server {
            endpoint,
            port,
            access_key: field("access_key"),
            secret_key: field("secret_key"),
            kind: Kind::Moto {
                nobody_key: field("nobody_access_key"),
                nobody_secret: field("nobody_secret_key"),
            },
            child,
        }
    }

    /// `name` set up to talk to this server, credentials in the environment.
    pub fn tool(&self, name: &str) -> Command {
        self.tool_via(name, &self.endpoint)
    }

    /// `name` talking to this server through `endpoint` (a proxy).
    pub fn tool_via(&self, name: &str, endpoint: &str) -> Command {
        let mut cmd = tool(name);
        cmd.env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key);
        cmd
    }

    /// The file s3s-fs keeps an object in.
    pub fn object_file(&self, bucket: &str, key: &str) -> PathBuf {
        match &self.kind {
            Kind::S3sFs { data } => data.path().join(bucket).join(key),
            Kind::Moto { .. } => panic!("moto keeps objects in memory"),
        }
    }

    /// Every key in `bucket`, from s3s-fs's directory (not through a
    /// tool under test); s3s-fs's own files left out.
    pub fn stored_keys(&self, bucket: &str) -> std::collections::BTreeSet<String> {
        let root = self.object_file(bucket, "");
        let mut found = std::collections::BTreeSet::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    let key = path.strip_prefix(&root).unwrap().display().to_string();
                    if !key.contains(".s3s-fs") && !key.ends_with(".metadata.json") {
                        found.insert(key);
                    }
                }
            }
        }
        found
    }

    /// The file s3s-fs keeps an object's metadata in: beside the bucket,
    /// named by the base64url of the bucket's name and the key's.
    pub fn object_metadata_file(&self, bucket: &str, key: &str) -> PathBuf {
        let bucket_dir = self.object_file(bucket, "");
        bucket_dir.parent().unwrap().join(format!(
            ".bucket-{}.object-{}.metadata.json",
            base64url(bucket),
            base64url(key)
        ))
    }

    /// Asks the server through boto3: `query` is one of the commands of
    /// fixtures/s3_query.py.
    pub fn query(&self, args: &[&str]) -> serde_json::Value {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/s3_query.py");
        let out = Command::new(venv_python())
            .arg(script)
            .args(args)
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .expect("run s3_query.py");
        assert!(
            out.status.success(),
            "s3_query {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The multipart uploads open in `bucket` (moto: ListMultipartUploads).
    pub fn open_uploads(&self, bucket: &str) -> Vec<String> {
        self.query(&["uploads", bucket])
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap().to_string())
            .collect()
    }

    /// Whether `key` exists in `bucket`, by HEAD.
    pub fn has_object(&self, bucket: &str, key: &str) -> bool {
        self.query(&["exists", bucket, key]).as_bool().unwrap()
    }

    pub fn create_bucket(&self, bucket: &str) {
        self.query(&["create-bucket", bucket]);
    }

    /// Kills the server at once, as a crash would.
    pub fn kill(&mut self) {
        if matches!(self.kind, Kind::Moto { .. }) {
            let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn base64url(text: &str) -> String {
    const DIGITS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(DIGITS[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}
