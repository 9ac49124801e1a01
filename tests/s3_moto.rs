//! What needs moto: ListMultipartUploads to prove no upload is left open,
//! IAM permissions, and missing buckets. One moto server serves the whole
//! file; each test has its own bucket.

use mysnap_tests::proxy::{Fault, FaultProxy};
use mysnap_tests::server::{Kind, S3Server};
use mysnap_tests::tool::{finish, run, spawn};
use mysnap_tests::{random_bytes, MIB};
use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Child;
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

fn moto() -> &'static S3Server {
    static SERVER: OnceLock<S3Server> = OnceLock::new();
    SERVER.get_or_init(|| S3Server::moto(&[]))
}

fn bucket(name: &str) -> &'static S3Server {
    let server = moto();
    server.create_bucket(name);
    server
}

/// Waits up to a minute until the state file records the upload's id (it
/// is written first without one, before the upload is started).
fn wait_for_upload_id(state: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read(state) {
            let record: serde_json::Value = serde_json::from_slice(&text).unwrap();
            if let Some(id) = record["upload_id"].as_str() {
                return id.to_string();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no upload id in {}",
            state.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts s3-put in its own process group on a producer that sends 12 MiB
/// (two parts of 5 MiB go out) and then hangs; returns once the upload is
/// open, as its state file shows.
fn start_stalled_upload(server: &S3Server, bucket: &str, state: &Path) -> (Child, JoinHandle<()>) {
    let started = spawn(
        server
            .tool("s3-put")
            .process_group(0)
            .args(["-p", "5M", "--state-file"])
            .arg(state)
            .arg(format!("s3://{bucket}/k"))
            .args([
                "--",
                "sh",
                "-c",
                "head -c 12582912 /dev/urandom; exec sleep 60",
            ]),
        Vec::new(),
    );
    wait_for_upload_id(state);
    assert_eq!(
        server.open_uploads(bucket).len(),
        1,
        "the upload is open while it runs"
    );
    started
}

#[test]
fn missing_bucket_exits_66() {
    let server = moto();
    let out = run(
        server.tool("s3-put").arg("s3://no-such-bucket/key"),
        b"data",
    );
    out.expect_code(66);
    assert!(out.stderr.contains("no such bucket"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1);
}

#[test]
fn forbidden_exits_77_with_a_hint() {
    let server = bucket("forbidden");
    let Kind::Moto {
        nobody_key,
        nobody_secret,
    } = &server.kind
    else {
        unreachable!()
    };
    let out = run(
        server
            .tool("s3-put")
            .env("AWS_ACCESS_KEY_ID", nobody_key)
            .env("AWS_SECRET_ACCESS_KEY", nobody_secret)
            .arg("s3://forbidden/key"),
        b"data",
    );
    out.expect_code(77);
    assert!(out.stderr.contains("s3:ListBucket"), "{}", out.stderr);
    assert!(!server.has_object("forbidden", "key"));
}

#[test]
fn failed_producer_leaves_no_upload_open() {
    let server = bucket("producer-fails");
    let out = run(
        server.tool("s3-put").args([
            "-p",
            "5M",
            "s3://producer-fails/k",
            "--",
            "sh",
            "-c",
            "head -c 12582912 /dev/urandom; exit 5",
        ]),
        b"",
    );
    out.expect_code(5);
    assert!(server.open_uploads("producer-fails").is_empty());
    assert!(!server.has_object("producer-fails", "k"));
}

#[test]
fn sigterm_aborts_the_upload() {
    let server = bucket("sigterm");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("upload.json");
    let (child, feeder) = start_stalled_upload(server, "sigterm", &state);
    let started = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    let out = finish(child, feeder);
    out.expect_code(143);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "s3-put did not stop the producer"
    );
    assert!(
        server.open_uploads("sigterm").is_empty(),
        "upload left open"
    );
    assert!(!server.has_object("sigterm", "k"));
    assert!(!state.exists(), "the state file goes with the upload");
}

#[test]
fn sigkill_leaves_a_state_file_that_abort_from_cleans_up() {
    let server = bucket("sigkill");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("upload.json");
    let (child, feeder) = start_stalled_upload(server, "sigkill", &state);
    // As systemd kills a unit's whole control group: s3-put and its producer.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    finish(child, feeder).expect_code(137);
    assert_eq!(
        server.open_uploads("sigkill").len(),
        1,
        "a killed s3-put cannot abort"
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&state).unwrap().permissions());
    assert_eq!(mode & 0o077, 0, "state file readable by others");

    let out = run(server.tool("s3-put").arg("--abort-from").arg(&state), b"");
    out.expect_code(0);
    assert!(server.open_uploads("sigkill").is_empty());
    assert!(!state.exists());
    // Twice is fine: cleanup may run after a run that cleaned up itself.
    run(server.tool("s3-put").arg("--abort-from").arg(&state), b"").expect_code(0);
}

#[test]
fn server_gone_mid_upload_exits_69_and_can_be_cleaned_up() {
    let server = bucket("server-dies");
    let proxy = FaultProxy::transparent(server.port);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("upload.json");
    // The rest of the data comes only once the server is down: the
    // producer waits for the file the test writes then, not for a time.
    let go = dir.path().join("server-down");
    let producer = format!(
        "head -c 6291456 /dev/urandom; while [ ! -e {} ]; do sleep 0.05; done; \
         head -c 20971520 /dev/urandom",
        go.display()
    );
    let (child, feeder) = spawn(
        server
            .tool_via("s3-put", &proxy.endpoint)
            .args(["-p", "5M", "--retries", "2", "--state-file"])
            .arg(&state)
            .args(["s3://server-dies/k", "--", "sh", "-c", &producer]),
        Vec::new(),
    );
    wait_for_upload_id(&state);
    proxy.set_down(true);
    std::fs::write(&go, b"").unwrap();
    let out = finish(child, feeder);
    out.expect_code(69);
    assert!(out.stderr.contains("could not abort"), "{}", out.stderr);
    assert!(
        state.exists(),
        "the state file keeps the upload for cleanup"
    );
    assert!(!server.has_object("server-dies", "k"));

    proxy.set_down(false);
    run(
        server
            .tool_via("s3-put", &proxy.endpoint)
            .arg("--abort-from")
            .arg(&state),
        b"",
    )
    .expect_code(0);
    assert!(server.open_uploads("server-dies").is_empty());
}

#[test]
fn multipart_object_has_the_planned_parts() {
    let server = bucket("growth");
    let data = random_bytes(58 * MIB, 9);
    let out = run(
        server
            .tool("s3-put")
            .env("MYSNAP_TEST_PARTS_PER_STEP", "2")
            .args(["-p", "5M", "s3://growth/k"]),
        &data,
    );
    out.expect_code(0);
    let etag = server.query(&["etag", "growth", "k"]);
    assert!(
        etag.as_str().unwrap().ends_with("-6\""),
        "6 parts (5 5 10 10 20 8 MiB): {etag}"
    );
    let back = run(server.tool("s3-get").arg("s3://growth/k"), b"");
    back.expect_code(0);
    assert!(back.stdout == data);
}

#[test]
fn a_key_created_during_the_upload_is_not_overwritten() {
    let server = bucket("race");
    let dir = tempfile::tempdir().unwrap();
    let (state, go) = (dir.path().join("upload.json"), dir.path().join("go"));
    // The producer holds the end of its input until the other writer is done.
    let (child, feeder) = spawn(
        server
            .tool("s3-put")
            .args(["-p", "5M", "--state-file"])
            .arg(&state)
            .args(["s3://race/k", "--", "sh", "-c"])
            .arg(format!(
                "head -c 12582912 /dev/urandom; while [ ! -e {} ]; do sleep 0.05; done",
                go.display()
            )),
        Vec::new(),
    );
    // The upload is open, so its HEAD, which saw no key, is behind it.
    wait_for_upload_id(&state);
    run(
        server.tool("s3-put").arg("s3://race/k"),
        b"the other writer",
    )
    .expect_code(0);
    std::fs::write(&go, "").unwrap();
    let out = finish(child, feeder);
    // The conditional completion catches it, and says whose object is there.
    out.expect_code(73);
    assert!(out.stderr.contains("412"), "{}", out.stderr);
    assert!(
        out.stderr.contains("holds another object"),
        "{}",
        out.stderr
    );
    assert!(server.open_uploads("race").is_empty());
    let back = run(server.tool("s3-get").arg("s3://race/k"), b"");
    back.expect_code(0);
    assert_eq!(back.stdout, b"the other writer");
}

/// A proxy that applies `fault` to the requests whose request line starts
/// with `prefix`, the first `times` of them.
fn faulty(server: &S3Server, prefix: &str, fault: Fault, times: usize) -> FaultProxy {
    let prefix = prefix.to_string();
    let mut left = times;
    FaultProxy::start(
        server.port,
        Box::new(move |_, line| {
            if left > 0 && line.starts_with(&prefix) {
                left -= 1;
                fault
            } else {
                Fault::Pass
            }
        }),
    )
}

/// The object at `url` reads back as `data`, its sidecar included.
fn reads_back(server: &S3Server, url: &str, data: &[u8]) {
    let back = run(server.tool("s3-get").arg(url), b"");
    back.expect_code(0);
    assert!(back.stdout == data, "{url} does not read back");
}

#[test]
fn a_lost_complete_answer_is_checked_and_the_object_kept() {
    let server = bucket("lost-complete");
    // Every answer to the completion is lost, though the first try stored it.
    let proxy = faulty(
        server,
        "POST /lost-complete/k?uploadId=",
        Fault::LoseResponse,
        3,
    );
    let data = random_bytes(12 * MIB, 21);
    let out = run(
        server.tool_via("s3-put", &proxy.endpoint).args([
            "-p",
            "5M",
            "--retries",
            "2",
            "s3://lost-complete/k",
        ]),
        &data,
    );
    assert_eq!(proxy.faults(), 3);
    out.expect_code(0);
    assert!(out.stderr.contains("is stored"), "{}", out.stderr);
    assert!(!out.stderr.contains("nothing was stored"), "{}", out.stderr);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("s3://lost-complete/k\n"));
    reads_back(server, "s3://lost-complete/k", &data);
    assert!(server.open_uploads("lost-complete").is_empty());
}

#[test]
fn a_lost_put_answer_is_checked_and_the_object_kept() {
    let server = bucket("lost-put");
    let proxy = faulty(server, "PUT /lost-put/k ", Fault::LoseResponse, 1);
    let out = run(
        server
            .tool_via("s3-put", &proxy.endpoint)
            .arg("s3://lost-put/k"),
        b"small enough for one PUT",
    );
    assert_eq!(proxy.faults(), 1);
    out.expect_code(0);
    assert!(!out.stderr.contains("nothing was stored"), "{}", out.stderr);
    reads_back(server, "s3://lost-put/k", b"small enough for one PUT");
}

#[test]
fn sigterm_while_completing_keeps_the_stored_object_and_says_so() {
    let server = bucket("term-complete");
    let proxy = faulty(
        server,
        "POST /term-complete/k?uploadId=",
        Fault::HoldResponse,
        1,
    );
    let data = random_bytes(12 * MIB, 22);
    let (child, feeder) = spawn(
        server
            .tool_via("s3-put", &proxy.endpoint)
            .args(["-p", "5M", "s3://term-complete/k"]),
        data.clone(),
    );
    // The server has completed the upload; s3-put waits for the answer.
    proxy.wait_held(1);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    let out = finish(child, feeder);
    out.expect_code(0);
    assert!(out.stderr.contains("SIGTERM"), "{}", out.stderr);
    assert!(out.stderr.contains("is stored"), "{}", out.stderr);
    assert!(!out.stderr.contains("nothing was stored"), "{}", out.stderr);
    reads_back(server, "s3://term-complete/k", &data);
    assert!(server.open_uploads("term-complete").is_empty());
}

#[test]
fn a_lost_start_answer_leaves_no_stray_upload() {
    let server = bucket("lost-create");
    let proxy = faulty(
        server,
        "POST /lost-create/k?uploads",
        Fault::LoseResponse,
        1,
    );
    let data = random_bytes(12 * MIB, 23);
    let out = run(
        server
            .tool_via("s3-put", &proxy.endpoint)
            .args(["-p", "5M", "s3://lost-create/k"]),
        &data,
    );
    assert_eq!(proxy.faults(), 1);
    out.expect_code(0);
    assert!(
        out.stderr.contains("start answer was lost"),
        "{}",
        out.stderr
    );
    reads_back(server, "s3://lost-create/k", &data);
    assert!(
        server.open_uploads("lost-create").is_empty(),
        "the upload the lost answer started is still open"
    );
}

#[test]
fn a_start_that_is_never_answered_leaves_no_stray_upload() {
    let server = bucket("never-created");
    let proxy = faulty(
        server,
        "POST /never-created/k?uploads",
        Fault::LoseResponse,
        2,
    );
    let out = run(
        server.tool_via("s3-put", &proxy.endpoint).args([
            "-p",
            "5M",
            "--retries",
            "1",
            "s3://never-created/k",
        ]),
        &random_bytes(6 * MIB, 24),
    );
    assert_eq!(proxy.faults(), 2);
    out.expect_code(69);
    assert!(out.stderr.contains("nothing was stored"), "{}", out.stderr);
    assert!(!server.has_object("never-created", "k"));
    assert!(
        server.open_uploads("never-created").is_empty(),
        "uploads started by the unanswered requests are still open"
    );
}

#[test]
fn abort_from_finds_an_upload_whose_start_answer_was_lost() {
    let server = bucket("killed-creating");
    let proxy = faulty(
        server,
        "POST /killed-creating/k?uploads",
        Fault::HoldResponse,
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("upload.json");
    let (child, feeder) = spawn(
        server
            .tool_via("s3-put", &proxy.endpoint)
            .process_group(0)
            .args(["-p", "5M", "--state-file"])
            .arg(&state)
            .arg("s3://killed-creating/k"),
        random_bytes(6 * MIB, 25),
    );
    // The server has started the upload; its answer never reaches s3-put.
    proxy.wait_held(1);
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    finish(child, feeder).expect_code(137);
    assert_eq!(server.open_uploads("killed-creating").len(), 1);
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).expect("the intent is recorded")).unwrap();
    assert!(record["upload_id"].is_null(), "{record}");

    let out = run(server.tool("s3-put").arg("--abort-from").arg(&state), b"");
    out.expect_code(0);
    assert!(
        out.stderr.contains("start answer was lost"),
        "{}",
        out.stderr
    );
    assert!(server.open_uploads("killed-creating").is_empty());
    assert!(!state.exists());
}

#[test]
fn storage_class_encryption_and_content_type_reach_the_object() {
    let server = bucket("headers");
    let data = random_bytes(11 * MIB, 11);
    for (key, input) in [
        ("multipart", data.as_slice()),
        ("single", b"small".as_slice()),
    ] {
        let url = format!("s3://headers/{key}");
        let out = run(
            server.tool("s3-put").args([
                "-p",
                "5M",
                "--storage-class",
                "STANDARD_IA",
                "--sse",
                "AES256",
                "--content-type",
                "application/gzip",
                &url,
            ]),
            input,
        );
        out.expect_code(0);
        let head = server.query(&["head", "headers", key]);
        assert_eq!(head["StorageClass"], "STANDARD_IA", "{key}: {head}");
        assert_eq!(head["ServerSideEncryption"], "AES256", "{key}: {head}");
        assert_eq!(head["ContentType"], "application/gzip", "{key}: {head}");
        assert_eq!(head["ContentLength"], input.len(), "{key}: {head}");
    }
}

/// The keys s3-get --list shows under `prefix` (not through the client
/// under test).
fn listed(server: &S3Server, bucket: &str, prefix: &str) -> BTreeSet<String> {
    let url = format!("s3://{bucket}/{prefix}");
    let out = run(server.tool("s3-get").args(["--list", &url]), b"");
    out.expect_code(0);
    let marker = format!("  s3://{bucket}/");
    out.stdout_text()
        .lines()
        .map(|line| line.split_once(&marker).unwrap().1.to_string())
        .collect()
}

/// Client::delete_objects: 25 of 30 keys and 2 that never existed go in
/// one DeleteObjects request; exactly the other 5 remain. Then
/// Client::delete_object takes one more.
use mysnap_tests::s3_client::{client, delete_25_of, delete_one_of, delete_test_keys, put_all};

#[test]
fn delete_objects_deletes_the_keys_given_and_no_others() {
    let server = bucket("delete-batch");
    let client = client(server, "delete-batch");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let keys = delete_test_keys();
    put_all(&runtime, &client, &keys);
    let all: BTreeSet<String> = keys.iter().cloned().collect();
    assert_eq!(listed(server, "delete-batch", "del/"), all);
    let kept = delete_25_of("moto", &runtime, &client, &keys);
    assert_eq!(listed(server, "delete-batch", "del/"), kept);
    let kept = delete_one_of(&runtime, &client, kept);
    assert_eq!(listed(server, "delete-batch", "del/"), kept);
}
