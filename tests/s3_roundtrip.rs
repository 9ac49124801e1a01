//! s3-put and s3-get against a real s3s-fs server: what goes in comes out.

use mysnap_tests::proxy::{Fault, FaultProxy};
use mysnap_tests::server::S3Server;
use mysnap_tests::tool::run;
use mysnap_tests::{random_bytes, sha256_hex, MIB};
use std::collections::BTreeSet;

const BUCKET: &str = "backups";

/// Uploads `data` with `opts`, checks what s3-put printed and what the
/// server stored, and returns the URL.
fn put(server: &S3Server, key: &str, data: &[u8], opts: &[&str]) -> String {
    let url = format!("s3://{BUCKET}/{key}");
    let out = run(server.tool("s3-put").args(opts).arg(&url), data);
    out.expect_code(0);
    let sha = sha256_hex(data);
    assert_eq!(
        out.stdout_text(),
        format!("{url}\n{sha}\n"),
        "stdout is the URL, then the SHA-256"
    );
    let stored = std::fs::read(server.object_file(BUCKET, key)).unwrap();
    assert!(
        stored == data,
        "{key}: stored bytes differ ({} vs {} bytes)",
        stored.len(),
        data.len()
    );
    let name = key.rsplit('/').next().unwrap();
    let sidecar =
        std::fs::read_to_string(server.object_file(BUCKET, &format!("{key}.sha256"))).unwrap();
    assert_eq!(sidecar, format!("{sha}  {name}\n"));
    url
}

fn get(server: &S3Server, url: &str, opts: &[&str]) -> Vec<u8> {
    let out = run(server.tool("s3-get").args(opts).arg(url), b"");
    out.expect_code(0);
    assert!(out.stderr.contains("SHA-256 verified"), "{}", out.stderr);
    out.stdout
}

#[test]
fn round_trips_at_part_boundaries() {
    let server = S3Server::s3s_fs(&[BUCKET]);
    for (part_mib, jobs) in [(5usize, 1usize), (5, 3), (6, 2)] {
        let part = part_mib * MIB;
        for (i, size) in [0, 1, part - 1, part, part + 1].into_iter().enumerate() {
            let data = random_bytes(size, (part_mib * 10 + i) as u64);
            let key = format!("edges/p{part_mib}-j{jobs}-{size}.bin");
            let part_opt = format!("{part_mib}M");
            let url = put(
                &server,
                &key,
                &data,
                &["--part-size", &part_opt, "--jobs", &jobs.to_string()],
            );
            let back = get(
                &server,
                &url,
                &["--part-size", "1M", "--jobs", &jobs.to_string()],
            );
            assert!(back == data, "{key}: s3-get returned different bytes");
        }
    }
}

#[test]
fn round_trips_100_mib() {
    let server = S3Server::s3s_fs(&[BUCKET]);
    let data = random_bytes(100 * MIB, 100);
    for (opts, get_opts) in [
        (["-p", "5M", "-j", "4"], ["-p", "7M", "-j", "3"]),
        (["-p", "16M", "-j", "2"], ["-p", "16M", "-j", "4"]),
    ] {
        let key = format!("big/{}.bin", opts.join(""));
        let url = put(&server, &key, &data, &opts);
        let back = get(&server, &url, &get_opts);
        assert_eq!(sha256_hex(&back), sha256_hex(&data));
    }
}

#[test]
fn part_size_grows_as_planned() {
    let server = S3Server::s3s_fs(&[BUCKET]);
    let data = random_bytes(58 * MIB, 58);
    let out = run(
        server
            .tool("s3-put")
            .env("MYSNAP_TEST_PARTS_PER_STEP", "2")
            .args(["-v", "-p", "5M", "-j", "2", "s3://backups/grow.bin"]),
        &data,
    );
    out.expect_code(0);
    let mut sizes: Vec<(u32, usize)> = out
        .stderr
        .lines()
        .filter_map(|l| {
            let rest = l.split("debug: part ").nth(1)?;
            let (number, rest) = rest.split_once(": ")?;
            Some((number.parse().ok()?, rest.split(' ').next()?.parse().ok()?))
        })
        .collect();
    sizes.sort();
    let mib: Vec<usize> = sizes.iter().map(|(_, bytes)| bytes / MIB).collect();
    // Doubling every 2 parts from 5 MiB: 5 5 10 10 20, then the last 8 MiB.
    assert_eq!(
        mib,
        [5, 5, 10, 10, 20, 8],
        "part sizes; stderr:\n{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read(server.object_file(BUCKET, "grow.bin")).unwrap(),
        data
    );
}

#[test]
fn command_output_is_stored_when_it_succeeds() {
    let server = S3Server::s3s_fs(&[BUCKET]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payload");
    let data = random_bytes(11 * MIB + 17, 7);
    std::fs::write(&file, &data).unwrap();
    let out = run(
        server
            .tool("s3-put")
            .args(["-p", "5M", "s3://backups/cmd.bin", "--", "cat"])
            .arg(&file),
        b"",
    );
    out.expect_code(0);
    assert_eq!(
        std::fs::read(server.object_file(BUCKET, "cmd.bin")).unwrap(),
        data
    );
}

/// COMMAND produces the data and needs no S3 keys: it gets none of the
/// secret variables (s3-put itself had them, or the upload would fail).
#[test]
fn command_gets_none_of_the_s3_secrets() {
    let server = S3Server::s3s_fs(&[BUCKET]);
    let out = run(
        server
            .tool("s3-put")
            .args(["s3://backups/env.txt", "--", "env"]),
        b"",
    );
    out.expect_code(0);
    let env = std::fs::read_to_string(server.object_file(BUCKET, "env.txt")).unwrap();
    assert!(
        env.contains("AWS_ENDPOINT_URL="),
        "the rest of the environment is kept:\n{env}"
    );
    for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        assert!(
            !env.contains(&format!("{name}=")),
            "{name} reached COMMAND:\n{env}"
        );
    }
    assert!(!env.contains(&server.secret_key));
}

#[test]
fn key_patterns_expand_in_utc_and_existing_keys_are_kept() {
    let server = S3Server::s3s_fs(&[BUCKET]);
    let out = run(
        server
            .tool("s3-put")
            .arg("s3://backups/db1/%Y/%Y%m%dT%H%M%SZ.bin"),
        b"first",
    );
    out.expect_code(0);
    let url = out.stdout_text().lines().next().unwrap().to_string();
    let year = std::process::Command::new("date")
        .args(["-u", "+%Y"])
        .output()
        .unwrap()
        .stdout;
    let year = String::from_utf8(year).unwrap().trim().to_string();
    assert!(
        url.starts_with(&format!("s3://backups/db1/{year}/{year}")),
        "{url}"
    );
    assert!(!url.contains('%'));

    // The same key again: refused, the object untouched.
    let again = run(server.tool("s3-put").arg(&url), b"second");
    again.expect_code(73);
    assert!(again.stderr.contains("--overwrite"), "{}", again.stderr);
    assert_eq!(get(&server, &url, &[]), b"first");

    let replaced = run(server.tool("s3-put").args(["--overwrite", &url]), b"second");
    replaced.expect_code(0);
    assert_eq!(get(&server, &url, &[]), b"second");
}

#[test]
fn list_and_latest_skip_sidecars() {
    let server = S3Server::s3s_fs(&[BUCKET]);
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        put(
            &server,
            &format!("db2/{name}.tar.gz"),
            name.repeat(i + 1).as_bytes(),
            &[],
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    put(&server, "other/z.tar.gz", b"not under the prefix", &[]);
    let out = run(
        server.tool("s3-get").args(["--list", "s3://backups/db2/"]),
        b"",
    );
    out.expect_code(0);
    let urls: Vec<String> = out
        .stdout_text()
        .lines()
        .map(|l| l.split_whitespace().last().unwrap().to_string())
        .collect();
    assert_eq!(
        urls,
        [
            "s3://backups/db2/a.tar.gz",
            "s3://backups/db2/b.tar.gz",
            "s3://backups/db2/c.tar.gz"
        ]
    );
    let sizes: Vec<u64> = out
        .stdout_text()
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(sizes, [1, 2, 3]);
    assert_eq!(get(&server, "s3://backups/db2/", &["--latest"]), b"ccc");

    let none = run(
        server
            .tool("s3-get")
            .args(["--latest", "s3://backups/nothing/"]),
        b"",
    );
    none.expect_code(66);
}

/// --latest goes by the time S3 stored a backup, not by its name: here
/// the older backup's name sorts last.
#[test]
fn latest_is_the_newest_stored_whatever_the_names() {
    let server = S3Server::s3s_fs(&[BUCKET]);
    put(&server, "db3/z-older.tar.gz", b"older", &[]);
    let listed = run(
        server.tool("s3-get").args(["--list", "s3://backups/db3/"]),
        b"",
    );
    listed.expect_code(0);
    let stored: String = listed
        .stdout_text()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let stored = chrono::DateTime::parse_from_rfc3339(&stored).unwrap();
    // LastModified may have one-second resolution: the next upload must
    // land in a later second, so wait until the clock has passed it.
    let next_second = stored.timestamp() + 1;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while chrono::Utc::now().timestamp() < next_second {
        assert!(
            std::time::Instant::now() < deadline,
            "the clock does not reach {next_second}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    put(&server, "db3/a-newer.tar.gz", b"newer", &[]);
    assert_eq!(get(&server, "s3://backups/db3/", &["--latest"]), b"newer");
}

/// --before picks by the time a backup's name records, whatever order S3
/// stored them in, and the binlog archive beside them is no backup.
#[test]
fn latest_before_a_time_is_the_base_of_a_restore_to_a_point() {
    let server = S3Server::s3s_fs(&[BUCKET]);
    put(&server, "db4/20261202T110000Z.tar.gz", b"eleven", &[]);
    put(&server, "db4/20261202T090000Z.tar.gz", b"nine", &[]);
    put(&server, "db4/20261202T100000Z.tar.gz", b"ten", &[]);
    put(
        &server,
        "db4/binlog/20261202T000000Z-mariadb-d0-s1/binlog.000001/00000000000000000004.seg",
        b"segment",
        &[],
    );
    let before = |time: &str| {
        get(
            &server,
            "s3://backups/db4/",
            &["--latest", "--before", time],
        )
    };
    assert_eq!(before("2026-12-02 10:14:59"), b"ten");
    assert_eq!(before("2026-12-02T10:00:00Z"), b"ten");
    assert_eq!(before("2026-12-02T10:59:59+01:00"), b"nine");
    assert_eq!(
        get(&server, "s3://backups/db4/", &["--latest"]),
        b"ten",
        "the last stored"
    );
    let none = run(
        server.tool("s3-get").args([
            "--latest",
            "--before",
            "2026-12-01 00:00:00",
            "s3://backups/db4/",
        ]),
        b"",
    );
    none.expect_code(66);
    none.expect_one_line(
        "no backups under s3://backups/db4/ taken at or before 2026-12-01 00:00:00 UTC",
    );
    let listed = run(
        server.tool("s3-get").args([
            "--list",
            "--before",
            "2026-12-02 10:30:00",
            "s3://backups/db4/",
        ]),
        b"",
    );
    listed.expect_code(0);
    let urls: Vec<&str> = listed
        .stdout
        .split(|b| *b == b'\n')
        .filter_map(|l| std::str::from_utf8(l).ok()?.split_whitespace().last())
        .collect();
    assert_eq!(
        urls,
        [
            "s3://backups/db4/20261202T090000Z.tar.gz",
            "s3://backups/db4/20261202T100000Z.tar.gz"
        ]
    );
    run(
        server
            .tool("s3-get")
            .args(["--before", "2026-12-02 10:30:00", "s3://backups/db4/x"]),
        b"",
    )
    .expect_code(64);
}

#[test]
fn credentials_from_systemd_and_shared_files() {
    let server = S3Server::s3s_fs(&[BUCKET]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("aws-access-key-id"),
        format!("{}\n", server.access_key),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("aws-secret-access-key"),
        format!("{}\n", server.secret_key),
    )
    .unwrap();
    let out = run(
        mysnap_tests::tool::tool("s3-put")
            .env("AWS_ENDPOINT_URL", &server.endpoint)
            .env("CREDENTIALS_DIRECTORY", dir.path())
            .arg("s3://backups/creds/systemd"),
        b"via LoadCredential",
    );
    out.expect_code(0);

    let shared = dir.path().join("credentials");
    std::fs::write(
        &shared,
        format!(
            "[default]\naws_access_key_id = WRONG\naws_secret_access_key = WRONG\n\n[backup]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            server.access_key, server.secret_key
        ),
    )
    .unwrap();
    let with_profile = |profile: &str| {
        run(
            mysnap_tests::tool::tool("s3-get")
                .env("AWS_ENDPOINT_URL", &server.endpoint)
                .env("AWS_SHARED_CREDENTIALS_FILE", &shared)
                .args(["--profile", profile, "s3://backups/creds/systemd"]),
            b"",
        )
    };
    let out = with_profile("backup");
    out.expect_code(0);
    assert_eq!(out.stdout, b"via LoadCredential");
    with_profile("default").expect_code(77);
    with_profile("missing").expect_code(77);
}

#[test]
fn tampered_object_is_detected() {
    let server = S3Server::s3s_fs(&[BUCKET]);
    let data = random_bytes(3 * MIB, 3);
    let url = put(&server, "tamper.bin", &data, &[]);
    let file = server.object_file(BUCKET, "tamper.bin");
    let mut stored = std::fs::read(&file).unwrap();
    stored[MIB] ^= 0x55;
    std::fs::write(&file, &stored).unwrap();
    let out = run(server.tool("s3-get").arg(&url), b"");
    out.expect_code(65);
    assert!(out.stderr.contains("SHA-256 mismatch"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
    run(server.tool("s3-get").args(["--no-verify", &url]), b"").expect_code(0);
}

#[test]
fn upload_survives_errors_and_cut_connections() {
    let server = S3Server::s3s_fs(&[BUCKET]);
    let proxy = FaultProxy::start(
        server.port,
        Box::new(|n, line| match n % 7 {
            _ if !line.starts_with("PUT") => Fault::Pass,
            1 => Fault::Error500,
            4 => Fault::CutRequest,
            _ => Fault::Pass,
        }),
    );
    let data = random_bytes(40 * MIB + 3, 40);
    let out = run(
        server.tool_via("s3-put", &proxy.endpoint).args([
            "-p",
            "5M",
            "-j",
            "3",
            "s3://backups/faulty.bin",
        ]),
        &data,
    );
    out.expect_code(0);
    assert!(proxy.faults() >= 2, "faults injected: {}", proxy.faults());
    assert!(out.stderr.contains("retrying"), "{}", out.stderr);
    assert_eq!(
        std::fs::read(server.object_file(BUCKET, "faulty.bin")).unwrap(),
        data
    );
}

#[test]
fn download_resumes_after_cut_connections() {
    let server = S3Server::s3s_fs(&[BUCKET]);
    let data = random_bytes(20 * MIB + 5, 20);
    let url = put(&server, "resume.bin", &data, &[]);
    let proxy = FaultProxy::start(
        server.port,
        Box::new(|n, line| match n % 3 {
            _ if !line.starts_with("GET /backups/resume.bin ") => Fault::Pass,
            0 => Fault::CutResponse,
            1 => Fault::Error500,
            _ => Fault::Pass,
        }),
    );
    let out = run(
        server
            .tool_via("s3-get", &proxy.endpoint)
            .args(["-p", "4M", "-j", "2", &url]),
        b"",
    );
    out.expect_code(0);
    assert!(out.stdout == data, "resumed download differs");
    assert!(proxy.faults() >= 2, "faults injected: {}", proxy.faults());
    assert!(out.stderr.contains("resuming"), "{}", out.stderr);
}

#[test]
fn endpoint_option_wins_over_the_environment() {
    let server = S3Server::s3s_fs(&[BUCKET]);
    let dead = format!("http://127.0.0.1:{}", mysnap_tests::server::free_port());
    let out = run(
        server
            .tool_via("s3-put", &dead)
            .env("AWS_ENDPOINT_URL_S3", &dead)
            .args(["--endpoint", &server.endpoint, "s3://backups/endpoint"]),
        b"x",
    );
    out.expect_code(0);
    // AWS_ENDPOINT_URL_S3 wins over AWS_ENDPOINT_URL.
    let out = run(
        server
            .tool_via("s3-get", &dead)
            .env("AWS_ENDPOINT_URL_S3", &server.endpoint)
            .arg("s3://backups/endpoint"),
        b"",
    );
    out.expect_code(0);
    assert_eq!(out.stdout, b"x");
}

/// Every key under `dir/` in BUCKET, from s3s-fs's directory (not through
/// the client under test).
fn stored_under(server: &S3Server, dir: &str) -> BTreeSet<String> {
    server
        .stored_keys(BUCKET)
        .into_iter()
        .filter(|k| k.starts_with(&format!("{dir}/")))
        .collect()
}

/// Client::delete_objects: 25 of 30 keys and 2 that never existed go in
/// one DeleteObjects request; exactly the other 5 remain. Then
/// Client::delete_object takes one more.
use mysnap_tests::s3_client::{client, delete_25_of, delete_one_of, delete_test_keys, put_all};

#[test]
fn delete_objects_deletes_the_keys_given_and_no_others() {
    let server = S3Server::s3s_fs(&[BUCKET]);
    let client = client(&server, BUCKET);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let keys = delete_test_keys();
    put_all(&runtime, &client, &keys);
    assert_eq!(stored_under(&server, "del"), keys.iter().cloned().collect());
    let kept = delete_25_of("s3s-fs", &runtime, &client, &keys);
    assert_eq!(stored_under(&server, "del"), kept);
    let kept = delete_one_of(&runtime, &client, kept);
    assert_eq!(stored_under(&server, "del"), kept);
}
