//! s3-prune against real S3 servers with authentication (s3s-fs, and moto
//! for DeleteObjects): 40 nightly backups made by s3-put under backdated
//! names, some pinned, verified or without a sidecar, and a binlog archive
//! beside them. Exactly the expected keys remain, every kept backup still
//! downloads verified, and what a refusal stops deletes nothing.

use mysnap_tests::proxy::FaultProxy;
use mysnap_tests::server::{Kind, S3Server};
use mysnap_tests::tool::{run, Output};
use std::collections::BTreeSet;

const BUCKET: &str = "prune";
const PREFIX: &str = "db/";

/// `2026-01-01 01:00 UTC` plus `day` days, as s3-put's default name.
fn name(day: u32) -> String {
    let t = chrono::DateTime::parse_from_rfc3339("2026-01-01T01:00:00Z").unwrap()
        + chrono::Duration::days(i64::from(day));
    format!("{PREFIX}{}.tar.gz", t.format("%Y%m%dT%H%M%SZ"))
}

/// The backup of `day`, as its bytes.
fn data(day: u32) -> Vec<u8> {
    format!("backup of day {day}\n").repeat(50).into_bytes()
}

fn put(s3: &S3Server, key: &str, data: &[u8]) {
    run(s3.tool("s3-put").arg(format!("s3://{BUCKET}/{key}")), data).expect_code(0);
}

fn prune(s3: &S3Server, args: &[&str]) -> Output {
    run(
        s3.tool("s3-prune")
            .args(args)
            .arg(format!("s3://{BUCKET}/{PREFIX}")),
        b"",
    )
}

fn is_moto(s3: &S3Server) -> bool {
    matches!(s3.kind, Kind::Moto { .. })
}

/// Every key in the bucket, not through the tool under test: from
/// s3s-fs's directory, or listed by boto3.
fn keys(s3: &S3Server) -> BTreeSet<String> {
    if !is_moto(s3) {
        return s3.stored_keys(BUCKET);
    }
    s3.query(&["list", BUCKET])
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

/// Removes an object behind the tools' back, as a lost sidecar would be.
fn remove(s3: &S3Server, key: &str) {
    if is_moto(s3) {
        assert_eq!(s3.query(&["delete", BUCKET, key]), "deleted");
        return;
    }
    std::fs::remove_file(s3.object_file(BUCKET, key)).unwrap();
    let _ = std::fs::remove_file(s3.object_metadata_file(BUCKET, key));
}

/// Stores `body` at `key` behind the tools' back (no sidecar).
fn store(s3: &S3Server, key: &str, body: &str) {
    if is_moto(s3) {
        s3.query(&["put", BUCKET, body, key]);
        return;
    }
    let path = s3.object_file(BUCKET, key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
}

/// 40 nightly backups from 2026-01-01 (a Thursday) to 2026-02-09 (a
/// Monday); day 4 pinned, day 9 verified, days 1 and 2 without a sidecar,
/// an orphaned sidecar, and two binlog segments.
fn bucket() -> S3Server {
    bucket_on(S3Server::s3s_fs(&[BUCKET]))
}

fn bucket_on(s3: S3Server) -> S3Server {
    for day in 0..40 {
        put(&s3, &name(day), &data(day));
    }
    for day in [1, 2] {
        remove(&s3, &format!("{}.sha256", name(day)));
    }
    // A sidecar whose backup was deleted by hand: an orphan.
    put(&s3, &format!("{PREFIX}by-hand.tar.gz"), b"x");
    remove(&s3, &format!("{PREFIX}by-hand.tar.gz"));
    store(&s3, &format!("{}.verified", name(9)), "{\"ok\":true}\n");
    let pin = run(
        s3.tool("s3-prune")
            .arg("--pin")
            .arg(format!("s3://{BUCKET}/{}", name(4))),
        b"",
    );
    pin.expect_code(0);
    for segment in [
        "binlog/20260101T000000Z-mariadb-d0-s1/binlog.000001/00000000000000000004.seg",
        "binlog/20260101T000000Z-mariadb-d0-s1/binlog.000002/00000000000000000004.seg",
    ] {
        put(&s3, &format!("{PREFIX}{segment}"), b"events");
    }
    s3
}

/// Each backup of `days` downloads whole, verified by its sidecar.
fn restores(s3: &S3Server, days: &[u32]) {
    for &day in days {
        let got = run(
            s3.tool("s3-get")
                .arg(format!("s3://{BUCKET}/{}", name(day))),
            b"",
        );
        got.expect_code(0);
        assert!(got.stdout == data(day), "day {day}");
    }
}

/// The keys of the backups of `days`, with what s3-put and the markers
/// stored beside them.
fn with_sidecars(s3: &S3Server, days: &[u32]) -> BTreeSet<String> {
    let all = keys(s3);
    days.iter()
        .flat_map(|&d| {
            let key = name(d);
            all.iter()
                .filter(move |k| **k == key || k.starts_with(&format!("{key}.")))
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_policy_keeps_exactly_what_its_rules_and_the_always_kept_say() {
    policy_keeps_what_it_says(bucket());
}

#[test]
fn a_policy_keeps_exactly_what_it_says_on_moto_by_delete_objects() {
    policy_keeps_what_it_says(bucket_on(S3Server::moto(&[BUCKET])));
}

fn policy_keeps_what_it_says(s3: S3Server) {
    let before = keys(&s3);
    let binlogs: BTreeSet<String> = before
        .iter()
        .filter(|k| k.starts_with(&format!("{PREFIX}binlog/")))
        .cloned()
        .collect();
    let rules = [
        "--keep-last",
        "3",
        "--keep-weekly",
        "2",
        "--keep-monthly",
        "2",
    ];

    // The plan alone: nothing goes.
    let dry = prune(&s3, &[&rules[..], &["--dry-run"]].concat());
    dry.expect_code(0);
    assert_eq!(keys(&s3), before, "--dry-run deleted nothing");
    assert!(
        dry.stdout_text()
            .contains("40 backups: 8 kept, 32 would delete"),
        "{}",
        dry.stdout_text()
    );

    // The other rules, each planned alone: what they keep, with the
    // always kept (the pinned day 4, the verified day 9, and days 1 and 2
    // without a sidecar).
    for (rule, days) in [
        (&["--keep-daily", "5"][..], &[39, 38, 37, 36, 35][..]),
        // From 3 days before the newest, Feb 9 01:00: Feb 6 01:00 is in.
        (&["--keep-within", "3d"], &[39, 38, 37, 36]),
        (&["--keep-yearly", "3"], &[39]),
    ] {
        let plan = prune(&s3, &[rule, &["--dry-run", "--json"]].concat());
        plan.expect_code(0);
        let report: serde_json::Value = serde_json::from_str(&plan.stdout_text()).unwrap();
        let kept: BTreeSet<String> = report["backups"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["action"] == "keep")
            .map(|b| b["key"].as_str().unwrap().to_string())
            .collect();
        let expected: BTreeSet<String> =
            days.iter().chain(&[9, 4, 2, 1]).map(|&d| name(d)).collect();
        assert_eq!(kept, expected, "{rule:?}");
    }
    assert_eq!(keys(&s3), before, "--dry-run deleted nothing");

    let out = prune(&s3, &rules);
    out.expect_code(0);
    // Last 3: Feb 9, 8, 7. Weekly 2: Feb 9 (its week began that Monday)
    // and Feb 8 (the Sunday before). Monthly 2: Feb 9 and Jan 31. Always:
    // the pinned Jan 5, the verified Jan 10; and the two without a
    // sidecar, Jan 2 and 3, kept without --delete-incomplete.
    let kept_days = [39, 38, 37, 30, 9, 4, 2, 1];
    let expected: BTreeSet<String> = with_sidecars(&s3, &kept_days)
        .union(&binlogs)
        .cloned()
        .collect();
    assert_eq!(keys(&s3), expected, "{}", out.stdout_text());
    assert!(before.contains(&format!("{PREFIX}by-hand.tar.gz.sha256")));
    for line in [
        format!(
            "keep          2026-02-09 01:00:00 UTC  s3://{BUCKET}/{}  (last, weekly, monthly, newest complete)",
            name(39)
        ),
        format!(
            "keep          2026-01-05 01:00:00 UTC  s3://{BUCKET}/{}  (pinned)",
            name(4)
        ),
        format!(
            "keep          2026-01-10 01:00:00 UTC  s3://{BUCKET}/{}  (newest verified)",
            name(9)
        ),
        format!(
            "delete        2026-01-11 01:00:00 UTC  s3://{BUCKET}/{}",
            name(10)
        ),
    ] {
        assert!(out.stdout_text().contains(&line), "{line}\n{}", out.stdout_text());
    }
    // Every kept complete backup still downloads, verified by its sidecar.
    restores(&s3, &[39, 38, 37, 30, 9, 4]);

    // The incomplete ones go when asked; a second run with the same rules
    // has nothing more to delete.
    let out = prune(&s3, &[&rules[..], &["--delete-incomplete"]].concat());
    out.expect_code(0);
    let expected: BTreeSet<String> = with_sidecars(&s3, &[39, 38, 37, 30, 9, 4])
        .union(&binlogs)
        .cloned()
        .collect();
    assert_eq!(keys(&s3), expected);
    assert!(!keys(&s3).iter().any(|k| k.contains(&name(1))));

    // Unpinned, the policy decides for it again.
    run(
        s3.tool("s3-prune")
            .arg("--unpin")
            .arg(format!("s3://{BUCKET}/{}", name(4))),
        b"",
    )
    .expect_code(0);
    prune(&s3, &rules).expect_code(0);
    assert!(!keys(&s3).iter().any(|k| k.contains(&name(4))));
    assert!(keys(&s3).contains(&name(9)), "still the newest verified");
}

#[test]
fn a_plan_that_goes_too_far_or_a_broken_listing_deletes_nothing() {
    let s3 = bucket();
    let before = keys(&s3);
    let out = prune(&s3, &[]);
    out.expect_code(64).expect_one_line("no keep rule");
    let out = prune(&s3, &["--keep-last", "3", "--max-delete", "10"]);
    out.expect_code(65)
        .expect_one_line("more than --max-delete 10");
    let out = prune(&s3, &["--keep-last", "3", "--max-delete", "50%"]);
    out.expect_code(65);
    for bad in [
        &["--keep-last", "0"][..],
        &["--keep-within", "forever"],
        &["--keep-last", "1", "--max-delete", "101%"],
        &["--keep-last", "1", "--pin"],
    ] {
        prune(&s3, bad).expect_code(64);
    }
    assert_eq!(keys(&s3), before);

    // The server goes away: the listing fails, nothing is deleted.
    let proxy = FaultProxy::transparent(s3.port);
    proxy.set_down(true);
    let out = run(
        s3.tool_via("s3-prune", &proxy.endpoint)
            .args(["--retries", "1", "--keep-last", "1"])
            .arg(format!("s3://{BUCKET}/{PREFIX}")),
        b"",
    );
    out.expect_code(69);
    assert!(out.stderr.contains("nothing was deleted"), "{}", out.stderr);
    assert_eq!(keys(&s3), before);
}

/// mysql-lock-hold's status file for a backup whose events begin at
/// `file`:4.
fn status_file(dir: &std::path::Path, file: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{file}.json"));
    let status = format!(
        r#"{{"format":1,"flavor":"mariadb","server_version":"10.11.6-MariaDB","server_id":1,
        "server_uuid":null,"binlog_file":"{file}","binlog_pos":4,"gtid":"0-1-9","replica":null,
        "layout":{{}},"lock":"ftwrl","locked_at":"2026-01-01T01:00:00.000Z","lock_attempts":1,
        "lock_wait_ms":2,"lock_hold_ms":40}}"#
    );
    std::fs::write(&path, status).unwrap();
    path
}

const EPOCH_A: &str = "20260101T000000Z-mariadb-d0-s1";
const EPOCH_B: &str = "20260106T000000Z-mariadb-d0-s2";

/// Where the backup of `day` (0..10) begins: days 0 to 4 in epoch A
/// (binlog.000001 to .000005), days 5 to 9 in epoch B, a new server
/// (mysql-bin.000001 to .000005).
fn start_of(day: u32) -> (&'static str, String) {
    if day < 5 {
        (EPOCH_A, format!("binlog.{:06}", day + 1))
    } else {
        (EPOCH_B, format!("mysql-bin.{:06}", day - 4))
    }
}

/// The two segments, [4, 104) and [104, 204), of each of the first
/// `files` files of `epoch`.
fn segments(epoch: &str, base: &str, files: std::ops::RangeInclusive<u32>) -> Vec<String> {
    files
        .flat_map(|n| {
            [4, 104].map(|start| format!("{PREFIX}binlog/{epoch}/{base}.{n:06}/{start:020}.seg"))
        })
        .collect()
}

#[test]
fn the_binlog_archive_is_kept_from_the_oldest_start_that_a_kept_backup_needs() {
    binlogs_kept_from_the_oldest_start(S3Server::s3s_fs(&[BUCKET]));
}

#[test]
fn the_binlog_archive_is_kept_from_the_oldest_needed_start_on_moto() {
    binlogs_kept_from_the_oldest_start(S3Server::moto(&[BUCKET]));
}

fn binlogs_kept_from_the_oldest_start(s3: S3Server) {
    let dir = tempfile::tempdir().unwrap();
    for day in 0..10 {
        let (_, file) = start_of(day);
        run(
            s3.tool("s3-put")
                .arg("--status-file")
                .arg(status_file(dir.path(), &file))
                .arg(format!("s3://{BUCKET}/{}", name(day))),
            &data(day),
        )
        .expect_code(0);
    }
    // s3-put recorded each start in the object's metadata.
    let head = s3.query(&["head", BUCKET, &name(7)]);
    assert_eq!(
        head["Metadata"]["mysnap-binlog-file"], "mysql-bin.000003",
        "{head}"
    );
    // Epoch A runs on past the last backup in it, to binlog.000006.
    let all: Vec<String> = [
        segments(EPOCH_A, "binlog", 1..=6),
        segments(EPOCH_B, "mysql-bin", 1..=5),
    ]
    .concat();
    for key in &all {
        store(&s3, key, &"e".repeat(100));
    }
    let binlog_keys = |s3: &S3Server| -> BTreeSet<String> {
        keys(s3)
            .into_iter()
            .filter(|k| k.starts_with(&format!("{PREFIX}binlog/")))
            .collect()
    };
    let from = |epoch: &str, base: &str, first: u32, last: u32| segments(epoch, base, first..=last);

    // The last three backups start in B at mysql-bin.000003..5: A goes
    // whole, B loses the two files before .000003.
    let out = prune(&s3, &["--keep-last", "3"]);
    out.expect_code(0);
    let expected: BTreeSet<String> = from(EPOCH_B, "mysql-bin", 3, 5).into_iter().collect();
    assert_eq!(binlog_keys(&s3), expected, "{}", out.stdout_text());
    assert!(
        out.stdout_text().contains(&format!(
            "binlog archive: 16 of 22 segments deleted (1.6 KiB freed); point-in-time \
             recovery reaches back to mysql-bin.000003:4 (s3://{BUCKET}/{})",
            name(7)
        )),
        "{}",
        out.stdout_text()
    );
    // Every kept backup's chain is whole: from its start to the end of B.
    for day in [7, 8, 9] {
        let (epoch, file) = start_of(day);
        let first: u32 = file[file.len() - 6..].parse().unwrap();
        for key in from(epoch, "mysql-bin", first, 5) {
            assert!(keys(&s3).contains(&key), "day {day}: {key}");
        }
    }

    // A shorter window for point-in-time recovery (two days, and every
    // backup is older): from the newest backup on, and a pinned one keeps
    // its own chain.
    run(
        s3.tool("s3-prune")
            .arg("--pin")
            .arg(format!("s3://{BUCKET}/{}", name(8))),
        b"",
    )
    .expect_code(0);
    let out = prune(
        &s3,
        &["--keep-last", "3", "--keep-binlogs-within", "2d", "--json"],
    );
    out.expect_code(0);
    let report: serde_json::Value = serde_json::from_str(&out.stdout_text()).unwrap();
    assert_eq!(report["binlog"]["segments_deleted"], 2, "{report}");
    assert_eq!(report["binlog"]["oldest_start"]["at"], "mysql-bin.000004:4");
    let expected: BTreeSet<String> = from(EPOCH_B, "mysql-bin", 4, 5).into_iter().collect();
    assert_eq!(binlog_keys(&s3), expected);
    // The backups themselves are all still there and restore.
    restores(&s3, &[7, 8, 9]);
}

#[test]
fn a_kept_backup_without_a_recorded_start_leaves_the_binlog_archive_whole() {
    let s3 = bucket();
    let before = keys(&s3);
    let out = prune(&s3, &["--keep-last", "40", "--dry-run"]);
    out.expect_code(0);
    assert!(
        out.stdout_text().contains(&format!(
            "binlog archive: left whole: s3://{BUCKET}/{} records no binlog start",
            name(39)
        )),
        "{}",
        out.stdout_text()
    );
    prune(&s3, &["--keep-last", "40"]).expect_code(0);
    // Only the orphaned sidecar went.
    let mut expected = before;
    assert!(expected.remove(&format!("{PREFIX}by-hand.tar.gz.sha256")));
    assert_eq!(keys(&s3), expected);
}

/// Opens a multipart upload of `key` through the library client, as a
/// killed s3-put leaves one; returns its id.
fn open_upload(s3: &S3Server, key: &str) -> String {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = mysnap_tests::s3_client::client(s3, BUCKET);
    let no_headers = mysnap::s3::headers(&[]).unwrap();
    let (id, _) = runtime
        .block_on(client.create_multipart(key, "application/octet-stream", &no_headers))
        .unwrap();
    id
}

#[test]
fn uploads_left_open_under_the_prefix_are_aborted_once_stale() {
    // moto says every upload began at 2010-11-10T20:48:33Z (a constant in
    // its ListMultipartUploads answer), so here ages are moto's: the
    // policy's two sides are a limit older than that and one younger. The
    // age rule itself is unit-tested with hand-made times (prune.rs).
    let s3 = S3Server::moto(&[BUCKET]);
    put(&s3, &name(0), &data(0));
    let killed = open_upload(&s3, &format!("{PREFIX}killed.tar.gz"));
    let other = open_upload(&s3, &format!("{PREFIX}other.tar.gz"));
    let elsewhere = open_upload(&s3, "elsewhere/killed.tar.gz");
    let all: BTreeSet<String> = [&killed, &other, &elsewhere].map(|s| s.to_string()).into();

    // 1100 weeks, 21 years: moto's uploads are younger; none goes.
    let out = prune(&s3, &["--keep-last", "1", "--abort-uploads-after", "1100w"]);
    out.expect_code(0);
    assert_eq!(
        s3.open_uploads(BUCKET).into_iter().collect::<BTreeSet<_>>(),
        all
    );

    let args = ["--keep-last", "1", "--abort-uploads-after", "24h"];
    let dry = prune(&s3, &[&args[..], &["--dry-run"]].concat());
    dry.expect_code(0);
    let text = dry.stdout_text();
    assert!(
        text.contains(&format!(
            "would abort   s3://{BUCKET}/{PREFIX}killed.tar.gz  (an upload open since \
             2010-11-10T20:48:33.000Z)"
        )) && text.contains("multipart uploads: 2 open for longer than 24h would abort"),
        "{text}"
    );
    assert_eq!(
        s3.open_uploads(BUCKET).len(),
        3,
        "--dry-run aborted nothing"
    );

    let out = prune(&s3, &args);
    out.expect_code(0);
    assert_eq!(
        s3.open_uploads(BUCKET),
        [elsewhere],
        "only the uploads under the prefix went\n{}",
        out.stdout_text()
    );
    // The backup itself is untouched.
    restores(&s3, &[0]);
}

#[test]
fn a_server_that_lists_no_uploads_is_said_and_the_prune_goes_on() {
    // s3s-fs does not implement ListMultipartUploads (501).
    let s3 = bucket();
    let out = prune(&s3, &["--keep-last", "3", "--dry-run"]);
    out.expect_code(0);
    assert!(
        out.stderr
            .contains("the server does not list multipart uploads; none was aborted"),
        "{}",
        out.stderr
    );
}

/// The versions moto holds of `key`: (version id, is a delete marker).
fn versions(s3: &S3Server, key: &str) -> Vec<(String, bool)> {
    s3.query(&["versions", BUCKET])
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["Key"] == key)
        .map(|v| {
            (
                v["VersionId"].as_str().unwrap().to_string(),
                v["DeleteMarker"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn locked_backups_survive_a_prune_and_a_plain_delete() {
    let s3 = S3Server::moto(&[]);
    s3.query(&["create-locked-bucket", BUCKET]);
    let before = chrono::Utc::now();
    let locked_put = |day: u32, mode: &str| {
        run(
            s3.tool("s3-put")
                .args(["--object-lock-days", "2", "--object-lock-mode", mode])
                .arg(format!("s3://{BUCKET}/{}", name(day))),
            &data(day),
        )
        .expect_code(0);
    };
    locked_put(0, "governance");
    locked_put(1, "compliance");
    put(&s3, &name(2), &data(2));
    put(&s3, &name(3), &data(3));
    let after = chrono::Utc::now();

    // The retention s3-put set, on the object and on its sidecar alike.
    for (day, mode) in [(0, "GOVERNANCE"), (1, "COMPLIANCE")] {
        for key in [name(day), format!("{}.sha256", name(day))] {
            let retention = s3.query(&["retention", BUCKET, &key]);
            assert_eq!(retention["Mode"], mode, "{key}");
            let until: chrono::DateTime<chrono::Utc> = retention["RetainUntilDate"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            // Two days from when s3-put began, to the second it was given in.
            let two_days = chrono::Duration::days(2);
            assert!(
                until >= before + two_days - chrono::Duration::seconds(1)
                    && until <= after + two_days,
                "{key}: locked until {until}"
            );
        }
    }

    let out = prune(&s3, &["--keep-last", "1"]);
    out.expect_code(0);
    let text = out.stdout_text();
    assert!(
        text.contains(&format!(
            "s3://{BUCKET}/{}  (locked: governance retention until",
            name(0)
        )) && text.contains(&format!(
            "s3://{BUCKET}/{}  (locked: compliance retention until",
            name(1)
        )) && text.contains(&format!(
            "delete        2026-01-03 01:00:00 UTC  s3://{BUCKET}/{}",
            name(2)
        )) && text.contains("4 backups: 3 kept (2 of them locked), 1 deleted")
            && text.contains("versioning: the bucket keeps what is deleted as noncurrent versions"),
        "{text}"
    );
    for day in [0, 1, 3] {
        assert!(s3.has_object(BUCKET, &name(day)), "day {day}");
        assert!(
            s3.has_object(BUCKET, &format!("{}.sha256", name(day))),
            "day {day}"
        );
    }
    assert!(!s3.has_object(BUCKET, &name(2)));
    assert!(!s3.has_object(BUCKET, &format!("{}.sha256", name(2))));
    restores(&s3, &[0, 1, 3]);

    // A plain DeleteObject (no version) only hides a locked backup behind
    // a delete marker; deleting its version is refused.
    let key = name(0);
    assert_eq!(s3.query(&["delete", BUCKET, &key]), "deleted");
    assert!(!s3.has_object(BUCKET, &key));
    let held = versions(&s3, &key);
    let (version, _) = held
        .iter()
        .find(|(_, marker)| !marker)
        .expect("the locked version is still stored");
    assert_eq!(s3.query(&["delete", BUCKET, &key, version]), "AccessDenied");
    assert!(versions(&s3, &key)
        .iter()
        .any(|(v, marker)| v == version && !marker));
}

#[test]
fn an_object_lock_on_a_bucket_without_one_stores_nothing() {
    let s3 = S3Server::moto(&[BUCKET]);
    let out = run(
        s3.tool("s3-put")
            .args(["--object-lock-days", "1"])
            .arg(format!("s3://{BUCKET}/{}", name(0))),
        &data(0),
    );
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("ObjectLockConfiguration"),
        "{}",
        out.stderr
    );
    assert!(!s3.has_object(BUCKET, &name(0)));
    assert!(!s3.has_object(BUCKET, &format!("{}.sha256", name(0))));
}

#[test]
fn a_name_format_gives_the_times_where_name_order_and_time_order_disagree() {
    let s3 = S3Server::s3s_fs(&[BUCKET]);
    // Day first: "04-02-2026" (4 February) sorts before "05-01-2026" (5
    // January). Stored newest first, so LastModified disagrees as well.
    let dates = [
        "02-03-2026",
        "04-02-2026",
        "01-02-2026",
        "31-01-2026",
        "05-01-2026",
    ];
    for date in dates {
        put(&s3, &format!("{PREFIX}{date}.tar.gz"), date.as_bytes());
    }
    let out = prune(&s3, &["--keep-last", "2", "--name-format", "%d-%m-%Y"]);
    out.expect_code(0);
    let text = out.stdout_text();
    assert!(
        text.contains(&format!(
            "keep          2026-03-02 00:00:00 UTC  s3://{BUCKET}/{PREFIX}02-03-2026.tar.gz"
        )) && text.contains(&format!(
            "delete        2026-01-05 00:00:00 UTC  s3://{BUCKET}/{PREFIX}05-01-2026.tar.gz"
        )),
        "{text}"
    );
    let left: BTreeSet<String> = ["02-03-2026", "04-02-2026"]
        .iter()
        .flat_map(|d| {
            let key = format!("{PREFIX}{d}.tar.gz");
            [format!("{key}.sha256"), key]
        })
        .collect();
    assert_eq!(keys(&s3), left);

    // A format that records no date is refused before anything is listed.
    let refused = prune(&s3, &["--keep-last", "1", "--name-format", "%H%M"]);
    refused.expect_code(64);
    assert!(
        refused.stderr.contains("does not record a date"),
        "{}",
        refused.stderr
    );
    assert_eq!(keys(&s3), left);
}

#[test]
fn a_prune_killed_between_batches_leaves_no_sidecar_without_its_object() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let s3 = S3Server::moto(&[BUCKET]);
    // 600 backups; the 590 that --keep-last 10 deletes are 1180 keys: two
    // DeleteObjects requests, the first of 500 whole backups.
    let days: Vec<u32> = (0..600).collect();
    let all: Vec<String> = days
        .iter()
        .flat_map(|&d| [name(d), format!("{}.sha256", name(d))])
        .collect();
    for chunk in all.chunks(200) {
        let args: Vec<&str> = ["put", BUCKET, "backup"]
            .into_iter()
            .chain(chunk.iter().map(String::as_str))
            .collect();
        s3.query(&args);
    }
    assert_eq!(keys(&s3).len(), 1200);

    // The second DeleteObjects never reaches the server: the prune is
    // killed while it waits on it.
    let posts = AtomicUsize::new(0);
    let proxy = FaultProxy::start(
        s3.port,
        Box::new(move |_, line| {
            if line.starts_with("POST ")
                && line.contains("delete")
                && posts.fetch_add(1, Ordering::SeqCst) == 1
            {
                return mysnap_tests::proxy::Fault::HoldRequest;
            }
            mysnap_tests::proxy::Fault::Pass
        }),
    );
    let (mut child, feeder) = mysnap_tests::tool::spawn(
        s3.tool_via("s3-prune", &proxy.endpoint)
            .args(["--keep-last", "10"])
            .arg(format!("s3://{BUCKET}/{PREFIX}")),
        Vec::new(),
    );
    proxy.wait_held(1);
    child.kill().unwrap();
    let killed = mysnap_tests::tool::finish(child, feeder);
    assert_ne!(killed.code, 0, "the prune was killed");
    proxy.release();

    let left = keys(&s3);
    for key in &left {
        if let Some(object) = key.strip_suffix(".sha256") {
            assert!(left.contains(object), "{key} is left without its object");
        }
    }
    // The first request went whole: the 500 oldest backups, both keys.
    let newest =
        |n: usize| -> BTreeSet<String> { all[all.len() - 2 * n..].iter().cloned().collect() };
    assert_eq!(left, newest(100));

    // The next run finishes the job.
    let out = prune(&s3, &["--keep-last", "10"]);
    out.expect_code(0);
    assert!(
        out.stdout_text()
            .contains("100 backups: 10 kept, 90 deleted"),
        "{}",
        out.stdout_text()
    );
    assert_eq!(keys(&s3), newest(10));
}

#[test]
fn what_a_default_retention_holds_is_left_and_counted() {
    let s3 = S3Server::moto(&[]);
    s3.query(&["create-locked-bucket", BUCKET]);
    s3.query(&["default-retention", BUCKET, "1"]);
    for day in 0..3 {
        put(&s3, &name(day), &data(day));
    }
    // An orphaned sidecar: its backup was deleted by hand (a delete
    // marker; the locked version stays).
    put(&s3, &format!("{PREFIX}by-hand.tar.gz"), b"x");
    assert_eq!(
        s3.query(&["delete", BUCKET, &format!("{PREFIX}by-hand.tar.gz")]),
        "deleted"
    );
    let before = keys(&s3);
    let out = prune(&s3, &["--keep-last", "1"]);
    out.expect_code(0);
    let text = out.stdout_text();
    assert!(
        text.contains("3 backups: 3 kept (2 of them locked), 0 deleted")
            && text.contains(&format!(
                "s3://{BUCKET}/{}  (locked: governance retention until",
                name(0)
            ))
            && text.contains(
                "object lock: 1 key that no backup needs is held by the bucket's default retention"
            ),
        "{text}"
    );
    assert_eq!(keys(&s3), before);
}
