//! Bad input and failures against a real s3s-fs server: one clear line on
//! stderr, the documented exit code, and nothing stored.

use mysnap_tests::server::{free_port, S3Server};
use mysnap_tests::tool::{run, tool, Output};
use mysnap_tests::{random_bytes, MIB};

const BUCKET: &str = "backups";

/// Every file the server holds, so a test can say "nothing changed".
fn stored_files(server: &S3Server) -> Vec<String> {
    let root = server.object_file(BUCKET, "");
    let mut found = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                found.push(path.strip_prefix(&root).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    found
}

fn one_line(out: &Output, mentions: &str) {
    assert_eq!(
        out.stderr.lines().count(),
        1,
        "one line on stderr, got:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(mentions),
        "stderr should mention '{mentions}':\n{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "nothing on stdout");
}

#[test]
fn usage_errors_exit_64_and_store_nothing() {
    let server = S3Server::s3s_fs(&[BUCKET]);
    let cases: &[(&str, &[&str], &str)] = &[
        ("s3-put", &["backups/key"], "invalid S3 URL"),
        ("s3-put", &["s3://Bad_Bucket/key"], "invalid S3 URL"),
        ("s3-put", &["s3://backups/"], "names no object key"),
        ("s3-put", &["--bogus", "s3://backups/k"], "bogus"),
        ("s3-put", &["s3://backups/k", "--jobs"], "jobs"),
        (
            "s3-put",
            &["--part-size", "4M", "s3://backups/k"],
            "minimum of 5 MiB",
        ),
        (
            "s3-put",
            &["--part-size", "6G", "s3://backups/k"],
            "maximum of 5 GiB",
        ),
        (
            "s3-put",
            &["--part-size", "lots", "s3://backups/k"],
            "invalid size",
        ),
        ("s3-put", &["--jobs", "0", "s3://backups/k"], "jobs"),
        (
            "s3-put",
            &["--timeout", "soon", "s3://backups/k"],
            "invalid duration",
        ),
        (
            "s3-put",
            &["--expected-size", "6T", "s3://backups/k"],
            "5 TiB",
        ),
        ("s3-put", &["s3://backups/%Q"], "strftime"),
        (
            "s3-put",
            &["s3://backups/k", "extra"],
            "unexpected argument",
        ),
        ("s3-put", &["s3://backups/k", "--"], "no COMMAND"),
        ("s3-put", &[], "missing"),
        ("s3-put", &["--sse", "rot13", "s3://backups/k"], "--sse"),
        ("s3-get", &["s3://backups"], "names no object key"),
        (
            "s3-get",
            &["--list", "--latest", "s3://backups/"],
            "exclude",
        ),
        (
            "s3-get",
            &["--part-size", "1K", "s3://backups/k"],
            "part-size",
        ),
        ("s3-get", &["http://backups/k"], "invalid S3 URL"),
    ];
    for (name, args, mentions) in cases {
        let out = run(server.tool(name).args(*args), b"data");
        assert_eq!(out.code, 64, "{name} {args:?}: {}", out.stderr);
        one_line(&out, mentions);
    }
    assert!(
        stored_files(&server).is_empty(),
        "{:?}",
        stored_files(&server)
    );
}

#[test]
fn missing_or_wrong_credentials_exit_77() {
    let server = S3Server::s3s_fs(&[BUCKET]);
    let none = run(
        tool("s3-put")
            .env("AWS_ENDPOINT_URL", &server.endpoint)
            .arg("s3://backups/k"),
        b"data",
    );
    none.expect_code(77);
    one_line(&none, "no S3 credentials");

    let wrong = run(
        server
            .tool("s3-put")
            .env("AWS_SECRET_ACCESS_KEY", "not-the-secret")
            .arg("s3://backups/k"),
        b"data",
    );
    wrong.expect_code(77);
    one_line(&wrong, "403");
    let wrong_get = run(
        server
            .tool("s3-get")
            .env("AWS_SECRET_ACCESS_KEY", "not-the-secret")
            .arg("s3://backups/k"),
        b"",
    );
    wrong_get.expect_code(77);
    assert!(stored_files(&server).is_empty());
}

#[test]
fn missing_key_exits_66() {
    let server = S3Server::s3s_fs(&[BUCKET]);
    let out = run(server.tool("s3-get").arg("s3://backups/no/such/key"), b"");
    out.expect_code(66);
    one_line(&out, "no such key");
    run(server.tool("s3-get").arg("s3://nobucket/key"), b"").expect_code(66);
}

#[test]
fn unreachable_server_exits_69_after_retries() {
    let port = free_port();
    let out = run(
        tool("s3-put")
            .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
            .env("AWS_ACCESS_KEY_ID", "AK")
            .env("AWS_SECRET_ACCESS_KEY", "SK")
            .args(["--retries", "2", "s3://backups/k"]),
        b"data",
    );
    out.expect_code(69);
    assert!(
        out.stderr.contains("gave up after 3 attempts"),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stderr
            .lines()
            .filter(|l| l.contains("retrying"))
            .count(),
        2,
        "{}",
        out.stderr
    );
}

#[test]
fn failed_producer_stores_nothing() {
    let server = S3Server::s3s_fs(&[BUCKET]);
    // Large enough for a multipart upload, and small enough for a single PUT.
    for script in [
        "head -c 12582912 /dev/urandom; exit 3",
        "echo partial; exit 3",
    ] {
        let out = run(
            server.tool("s3-put").args([
                "-p",
                "5M",
                "s3://backups/failed",
                "--",
                "sh",
                "-c",
                script,
            ]),
            b"",
        );
        out.expect_code(3);
        assert!(out.stderr.contains("nothing was stored"), "{}", out.stderr);
        assert!(out.stdout.is_empty());
        assert!(
            stored_files(&server).is_empty(),
            "{script}: {:?}",
            stored_files(&server)
        );
    }
    let killed = run(
        server
            .tool("s3-put")
            .args(["s3://backups/failed", "--", "sh", "-c", "kill -9 $$"]),
        b"",
    );
    killed.expect_code(137);
    let missing = run(
        server
            .tool("s3-put")
            .args(["s3://backups/failed", "--", "/no/such/producer"]),
        b"",
    );
    missing.expect_code(127);
    one_line(&missing, "cannot run");
    let not_executable = run(
        server
            .tool("s3-put")
            .args(["s3://backups/failed", "--", "/"]),
        b"",
    );
    not_executable.expect_code(126);
    assert!(
        stored_files(&server).is_empty(),
        "{:?}",
        stored_files(&server)
    );
}

#[test]
fn empty_input_stores_an_empty_object() {
    let server = S3Server::s3s_fs(&[BUCKET]);
    let out = run(server.tool("s3-put").arg("s3://backups/empty"), b"");
    out.expect_code(0);
    assert_eq!(
        std::fs::read(server.object_file(BUCKET, "empty")).unwrap(),
        b""
    );
    let back = run(server.tool("s3-get").arg("s3://backups/empty"), b"");
    back.expect_code(0);
    assert!(back.stdout.is_empty());
    assert!(back.stderr.contains("SHA-256 verified"), "{}", back.stderr);
}

#[test]
fn abort_from_without_state_file_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        tool("s3-put")
            .args(["--abort-from"])
            .arg(dir.path().join("absent.json")),
        b"",
    );
    out.expect_code(0);
    let corrupt = dir.path().join("corrupt.json");
    std::fs::write(&corrupt, "{").unwrap();
    let out = run(tool("s3-put").arg("--abort-from").arg(&corrupt), b"");
    out.expect_code(65);
}

#[test]
fn sidecar_that_is_not_a_checksum_is_bad_data() {
    let server = S3Server::s3s_fs(&[BUCKET]);
    let data = random_bytes(MIB, 1);
    run(server.tool("s3-put").arg("s3://backups/odd"), &data).expect_code(0);
    std::fs::write(server.object_file(BUCKET, "odd.sha256"), "not a checksum\n").unwrap();
    let out = run(server.tool("s3-get").arg("s3://backups/odd"), b"");
    out.expect_code(65);
    one_line(&out, "not a SHA-256 sidecar");
}
