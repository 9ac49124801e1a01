//! snap-tar end to end: archives of real trees unpacked by GNU tar and by
//! the tar crate (as mysql-restore-dir will), the manifest and checksum
//! list, sparse files, exclusion, snapshot layouts, and the error paths.

use flate2::read::MultiGzDecoder;
use mysnap::archive::{self, Invalid, Manifest};
use mysnap_tests::tool::{run, tool, Output};
use mysnap_tests::{random_bytes, MIB};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn snap_tar(args: &[&str]) -> Output {
    run(tool("snap-tar").args(args), b"")
}

/// Writes `runs` of data at their offsets into a file of `size` bytes.
fn sparse_file(path: &Path, runs: &[(u64, usize)], size: u64) {
    let mut f = File::create(path).unwrap();
    for (i, &(at, len)) in runs.iter().enumerate() {
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&random_bytes(len, at + i as u64)).unwrap();
    }
    f.set_len(size).unwrap();
}

fn set_mtime(path: &Path, secs: i64) {
    let t = nix::sys::time::TimeSpec::new(secs, 0);
    nix::sys::stat::utimensat(
        None,
        path,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

/// A tree with what a datadir holds and what tar finds hard: owners,
/// modes, mtimes, symlinks, hard links, empty directories, long names,
/// empty files and sparse files of every shape.
fn sample_tree(root: &Path) {
    let db = root.join("db1");
    fs::create_dir_all(db.join("empty")).unwrap();
    fs::create_dir_all(root.join("mysql")).unwrap();
    fs::write(root.join("ibdata1"), random_bytes(3 * MIB + 17, 1)).unwrap();
    fs::write(db.join("t1.frm"), b"frm").unwrap();
    fs::write(db.join("zero"), b"").unwrap();
    fs::write(root.join("mysql/user.MYD"), "row\n".repeat(5000)).unwrap();
    let long = "n".repeat(120);
    fs::write(db.join(&long), b"long name").unwrap();
    symlink("t1.frm", db.join("link")).unwrap();
    symlink("/nowhere/absolute", root.join("dangling")).unwrap();
    fs::hard_link(db.join("t1.frm"), db.join("t1.hard")).unwrap();
    // Leading hole, data in the middle, trailing hole.
    sparse_file(
        &db.join("t1.ibd"),
        &[(8 * MIB as u64, 100_000)],
        64 * MIB as u64,
    );
    // Data at the start and at the very end, an unaligned length.
    sparse_file(
        &db.join("t2.ibd"),
        &[(0, 4096), (40 * MIB as u64 - 3, 3)],
        40 * MIB as u64,
    );
    // Only a hole.
    sparse_file(&db.join("hole"), &[], 16 * MIB as u64);
    // Many runs: the map spills into extension headers.
    let runs: Vec<(u64, usize)> = (0..60).map(|i| (i * MIB as u64, 5000)).collect();
    sparse_file(&db.join("t3.ibd"), &runs, 61 * MIB as u64);
    fs::set_permissions(db.join("t1.frm"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::set_permissions(root.join("ibdata1"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(db.join("empty"), fs::Permissions::from_mode(0o2750)).unwrap();
    nix::unistd::chown(&db.join("t1.ibd"), Some(1234.into()), Some(5678.into())).unwrap();
    nix::unistd::chown(&db, Some(27.into()), Some(27.into())).unwrap();
    std::os::unix::fs::lchown(root.join("dangling"), Some(4321), Some(4321)).unwrap();
    for (i, path) in walk(root).into_iter().enumerate() {
        set_mtime(&root.join(path), 1_600_000_000 + i as i64 * 3600);
    }
}

/// Paths under `root`, sorted, deepest last so mtimes set on files do not
/// move their directory's.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let rel = rel.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                stack.push(rel.clone());
            }
            out.push(rel);
        }
    }
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out
}

/// Where the data is: (offset, length) runs found by SEEK_DATA/SEEK_HOLE.
fn data_runs(path: &Path) -> Vec<(u64, u64)> {
    use nix::unistd::{lseek, Whence};
    use std::os::fd::AsRawFd;
    let f = File::open(path).unwrap();
    let size = f.metadata().unwrap().len() as i64;
    let mut runs = Vec::new();
    let mut at = 0;
    while at < size {
        let Ok(start) = lseek(f.as_raw_fd(), at, Whence::SeekData) else {
            break;
        };
        let end = lseek(f.as_raw_fd(), start, Whence::SeekHole).unwrap();
        runs.push((start as u64, (end - start) as u64));
        at = end;
    }
    runs
}

/// Everything about each entry that a restore must keep.
fn describe(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut inodes: BTreeMap<u64, PathBuf> = BTreeMap::new();
    let mut out = BTreeMap::new();
    let mut paths = walk(root);
    paths.sort();
    for rel in paths {
        let path = root.join(&rel);
        let m = fs::symlink_metadata(&path).unwrap();
        let mut line = format!(
            "mode {:o} owner {}:{} mtime {}",
            m.mode(),
            m.uid(),
            m.gid(),
            m.mtime()
        );
        if m.file_type().is_symlink() {
            line += &format!(" -> {}", fs::read_link(&path).unwrap().display());
        } else if m.is_file() {
            let (size, sha) = size_and_sha256(&path);
            line += &format!(" size {size} sha256 {sha} links {}", m.nlink());
            if m.nlink() > 1 {
                let first = inodes.entry(m.ino()).or_insert(rel.clone());
                line += &format!(" same as {}", first.display());
            }
        }
        out.insert(rel, line);
    }
    out
}

/// What the checksum list says of a file: its size and SHA-256.
fn size_and_sha256(path: &Path) -> (u64, String) {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut File::open(path).unwrap(), &mut hasher).unwrap();
    (size, hex::encode(hasher.finalize()))
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Unpacks with plain GNU tar, as an admin would.
fn gnu_untar(archive: &[u8], flags: &str, into: &Path) {
    fs::create_dir_all(into).unwrap();
    let out = run(
        Command::new("tar").args([flags, "-", "-C"]).arg(into),
        archive,
    );
    out.expect_code(0);
}

fn gunzip(archive: &[u8]) -> Vec<u8> {
    let mut tar = Vec::new();
    MultiGzDecoder::new(archive).read_to_end(&mut tar).unwrap();
    tar
}

fn verify_gz(archive: &[u8]) -> Result<archive::Verified, Invalid> {
    archive::verify(MultiGzDecoder::new(archive))
}

#[test]
fn round_trip_through_gnu_tar_keeps_everything() {
    let dir = tempdir();
    let src = dir.path().join("src");
    sample_tree(&src);
    let out = snap_tar(&[src.to_str().unwrap()]);
    out.expect_code(0);
    let restored = dir.path().join("restored");
    gnu_untar(&out.stdout, "-xzf", &restored);
    assert!(restored.join(archive::MANIFEST_PATH).is_file());
    fs::remove_dir_all(restored.join("mysnap")).unwrap();
    let (want, got) = (describe(&src), describe(&restored));
    assert_eq!(want.len(), got.len(), "{want:#?}\n{got:#?}");
    for (path, line) in &want {
        assert_eq!(Some(line), got.get(path), "{}", path.display());
    }
    // Holes stay holes: the data runs are where they were (widened at most
    // to 512-byte blocks), and no more is allocated.
    for name in ["db1/t1.ibd", "db1/t2.ibd", "db1/t3.ibd", "db1/hole"] {
        let (a, b) = (src.join(name), restored.join(name));
        let (ma, mb) = (fs::metadata(&a).unwrap(), fs::metadata(&b).unwrap());
        assert!(
            mb.blocks() <= ma.blocks() + 64,
            "{name}: {} blocks, was {}",
            mb.blocks(),
            ma.blocks()
        );
        assert_eq!(data_runs(&a).len(), data_runs(&b).len(), "{name}");
    }
    // 180 MiB of apparent size, about 7 MiB of data: holes never reached gzip.
    assert!(
        out.stdout.len() < 5 * MIB,
        "archive is {} bytes",
        out.stdout.len()
    );
    let verified = verify_gz(&out.stdout).unwrap();
    assert_eq!(
        verified.checksums.file_count, 9,
        "hard links carry no data of their own"
    );
}

#[test]
fn the_tar_crate_reads_sparse_entries_and_the_checksums_match() {
    let dir = tempdir();
    let src = dir.path().join("src");
    sample_tree(&src);
    let out = snap_tar(&[src.to_str().unwrap()]);
    out.expect_code(0);
    let restored = dir.path().join("restored");
    let mut tar = tar::Archive::new(MultiGzDecoder::new(&out.stdout[..]));
    tar.set_preserve_permissions(true);
    tar.unpack(&restored).unwrap();
    let verified = verify_gz(&out.stdout).unwrap();
    for sum in &verified.checksums.files {
        let (size, sha) = size_and_sha256(&restored.join(&sum.path));
        assert_eq!((size, &sha), (sum.size, &sum.sha256), "{}", sum.path);
    }
    for name in ["db1/t1.ibd", "db1/t3.ibd", "db1/hole"] {
        let (a, b) = (src.join(name), restored.join(name));
        assert!(
            fs::metadata(&b).unwrap().blocks() <= fs::metadata(&a).unwrap().blocks() + 64,
            "{name}"
        );
    }
    let total: u64 = verified.checksums.files.iter().map(|f| f.size).sum();
    assert_eq!(verified.checksums.total_bytes, total);
    assert!(total > 180 * MIB as u64);
}

#[test]
fn manifest_comes_first_and_carries_the_lock_coordinates() {
    let dir = tempdir();
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("db")).unwrap();
    fs::write(src.join("db/t.ibd"), b"x").unwrap();
    let status = dir.path().join("status.json");
    fs::write(
        &status,
        r#"{"format":1,"flavor":"mariadb","server_version":"10.11.6-MariaDB",
            "binlog_file":"mysql-bin.000042","binlog_pos":1234,"gtid":"0-1-77",
            "replica":null,"layout":{"datadir":"/var/lib/mysql/"},
            "lock":"ftwrl","locked_at":"2026-01-01T00:00:00Z","lock_attempts":1,
            "lock_wait_ms":3,"lock_hold_ms":40}"#,
    )
    .unwrap();
    let out = snap_tar(&[
        "--compress",
        "none",
        "--status-file",
        status.to_str().unwrap(),
        src.to_str().unwrap(),
    ]);
    out.expect_code(0);
    // Uncompressed: the very first header names the manifest.
    assert_eq!(
        &out.stdout[..archive::MANIFEST_PATH.len() + 1],
        format!("{}\0", archive::MANIFEST_PATH).as_bytes()
    );
    let verified = archive::verify(&out.stdout[..]).unwrap();
    let m: Manifest = verified.manifest;
    assert_eq!(m.format, archive::FORMAT);
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(m.host, host.trim());
    assert_eq!(m.tools["snap-tar"], env!("CARGO_PKG_VERSION"));
    assert!(
        m.created.ends_with('Z') && m.created.starts_with("20"),
        "{}",
        m.created
    );
    let status = m.status.unwrap();
    assert_eq!(status.binlog_file.as_deref(), Some("mysql-bin.000042"));
    assert_eq!(status.binlog_pos, Some(1234));
    assert_eq!(status.gtid.as_deref(), Some("0-1-77"));
    assert_eq!(status.layout.datadir.as_deref(), Some("/var/lib/mysql/"));
    assert!(m.layout.is_empty());
    // GNU tar reads the uncompressed form too.
    gnu_untar(&out.stdout, "-xf", &dir.path().join("plain"));
    assert_eq!(fs::read(dir.path().join("plain/db/t.ibd")).unwrap(), b"x");
}

#[test]
fn a_truncated_or_altered_archive_is_detected() {
    let dir = tempdir();
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), random_bytes(3 * MIB, 7)).unwrap();
    fs::write(src.join("b"), random_bytes(1000, 8)).unwrap();
    let gz = snap_tar(&[src.to_str().unwrap()]);
    gz.expect_code(0);
    verify_gz(&gz.stdout).unwrap();
    for cut in [100, gz.stdout.len() / 2, gz.stdout.len() - 30] {
        match verify_gz(&gz.stdout[..cut]) {
            Err(Invalid::Truncated(_)) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    // Cut cleanly at an entry boundary, just before the checksum list.
    let tar = gunzip(&gz.stdout);
    let at = find(&tar, archive::CHECKSUMS_PATH.as_bytes()).unwrap();
    let err = archive::verify(&tar[..at]).unwrap_err();
    assert!(matches!(err, Invalid::Truncated(_)), "{err}");
    assert!(err.to_string().contains("no checksum list"), "{err}");
    // One byte changed in b's data, found from b's own header (a search
    // for the name could land inside a's random bytes).
    let b = data_offset(&tar, "b");
    let mut altered = tar.clone();
    altered[b] ^= 1;
    match archive::verify(&altered[..]) {
        Err(Invalid::Corrupt(why)) => assert!(why.contains("'b' does not match"), "{why}"),
        other => panic!("a changed byte of b: {other:?}"),
    }
}

/// Where the data of the entry `name` starts in an uncompressed tar.
fn data_offset(tar: &[u8], name: &str) -> usize {
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let path = entry.path().unwrap();
        if path.strip_prefix("./").unwrap_or(&path) == std::path::Path::new(name) {
            return entry.raw_file_position() as usize;
        }
    }
    panic!("no entry {name}");
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Entry names of a gzip archive, as GNU tar lists them.
fn names(archive: &[u8]) -> Vec<String> {
    let out = run(Command::new("tar").args(["-tzf", "-"]), archive);
    out.expect_code(0);
    out.stdout_text().lines().map(String::from).collect()
}

#[test]
fn exclude_patterns_match_names_anywhere_or_whole_paths_and_a_restores_leftovers_go() {
    let dir = tempdir();
    let src = dir.path().join("src");
    // And what a restore onto a mount point left at the top: the previous
    // data, left out with no pattern asked for.
    for d in ["db1/tmp", "db2", "tmp", ".mysnap-old-20261203T000000Z/db1"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    for f in [
        ".mysnap-old-20261203T000000Z/ibdata1",
        ".mysnap-old-20261203T000000Z/db1/t1.ibd",
        "host.err",
        "db1/host.err",
        "db1/t1.ibd",
        "db1/t10.ibd",
        "db1/tmp/x",
        "db2/t1.ibd",
        "tmp/y",
        "keep",
    ] {
        fs::write(src.join(f), f).unwrap();
    }
    let out = snap_tar(&[
        "-x",
        "*.err",
        "--exclude",
        "db1/t?.ibd",
        "--exclude=tmp",
        src.to_str().unwrap(),
    ]);
    out.expect_code(0);
    let mut got = names(&out.stdout);
    got.sort();
    assert_eq!(
        got,
        [
            "db1/",
            "db1/t10.ibd",
            "db2/",
            "db2/t1.ibd",
            "keep",
            "mysnap/checksums.json",
            "mysnap/manifest.json"
        ]
    );
    assert_eq!(verify_gz(&out.stdout).unwrap().checksums.file_count, 3);
}

/// A tmpfs mounted on `at`, unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path) -> Mount {
        fs::create_dir_all(at).unwrap();
        let out = run(
            Command::new("mount").args(["-t", "tmpfs", "tmpfs"]).arg(at),
            b"",
        );
        out.expect_code(0);
        Mount(at.to_path_buf())
    }

    fn read_only(&self) {
        let out = run(
            Command::new("mount")
                .args(["-o", "remount,ro"])
                .arg(&self.0),
            b"",
        );
        out.expect_code(0);
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn layout_from_a_read_only_snapshot_mount_is_archived_and_mapped() {
    let dir = tempdir();
    let src = dir.path().join("datadir");
    fs::create_dir_all(src.join("db1")).unwrap();
    fs::write(src.join("db1/t.ibd"), b"table").unwrap();
    let mount = Mount::tmpfs(&dir.path().join("redo-snap"));
    fs::create_dir_all(mount.0.join("sub")).unwrap();
    fs::write(mount.0.join("ib_logfile0"), random_bytes(100_000, 3)).unwrap();
    fs::write(mount.0.join("sub/undo001"), b"undo").unwrap();
    fs::set_permissions(&mount.0, fs::Permissions::from_mode(0o750)).unwrap();

    // Writable: it could be the live filesystem.
    let layout = format!("/var/lib/mysql-redo={}", mount.0.display());
    let live = snap_tar(&["--include-layout", &layout, src.to_str().unwrap()]);
    live.expect_code(64);
    assert!(
        live.stderr.contains("read-only mount point"),
        "{}",
        live.stderr
    );
    assert!(live.stdout.is_empty());

    mount.read_only();
    let out = snap_tar(&["-L", &layout, src.to_str().unwrap()]);
    out.expect_code(0);
    let verified = verify_gz(&out.stdout).unwrap();
    assert_eq!(verified.manifest.layout.len(), 1);
    assert_eq!(verified.manifest.layout[0].original, "/var/lib/mysql-redo");
    assert_eq!(verified.manifest.layout[0].archived, "mysnap/layout/0");
    let listed: Vec<&str> = verified
        .checksums
        .files
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(
        listed,
        [
            "db1/t.ibd",
            "mysnap/layout/0/ib_logfile0",
            "mysnap/layout/0/sub/undo001"
        ]
    );
    let restored = dir.path().join("restored");
    gnu_untar(&out.stdout, "-xzf", &restored);
    let root = restored.join("mysnap/layout/0");
    assert_eq!(fs::read(root.join("sub/undo001")).unwrap(), b"undo");
    assert_eq!(fs::metadata(&root).unwrap().mode() & 0o7777, 0o750);
}

#[test]
fn a_plain_directory_is_refused_as_a_layout() {
    let dir = tempdir();
    let src = dir.path().join("datadir");
    fs::create_dir_all(src.join("redo")).unwrap();
    let layout = format!("/var/lib/redo={}", src.join("redo").display());
    let out = snap_tar(&["--include-layout", &layout, src.to_str().unwrap()]);
    out.expect_code(64);
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("not a read-only mount point"),
        "{}",
        out.stderr
    );
    for bad in ["relative=/tmp", "/no-equals-sign"] {
        let out = snap_tar(&["--include-layout", bad, src.to_str().unwrap()]);
        out.expect_code(64);
        assert!(out.stderr.contains("ORIGINAL"), "{}", out.stderr);
    }
}

#[test]
fn bad_input_exits_with_its_code_and_one_line() {
    let dir = tempdir();
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let file = dir.path().join("file");
    fs::write(&file, b"{").unwrap();
    // JSON, but not what mysql-lock-hold writes.
    let other = dir.path().join("other.json");
    fs::write(
        &other,
        br#"{"binlog_file": "mysql-bin.000042", "binlog_pos": "1234"}"#,
    )
    .unwrap();
    let d = src.to_str().unwrap();
    let f = file.to_str().unwrap();
    let o = other.to_str().unwrap();
    let missing = dir.path().join("missing");
    let m = missing.to_str().unwrap();
    let cases: [(&[&str], i32, &str); 10] = [
        (&[], 64, "missing DIR"),
        (&[d, d], 64, "unexpected argument"),
        (&["--bogus", d], 64, "bogus"),
        (&["--compress", "xz", d], 64, "gzip or none"),
        (&["--level", "0", d], 64, "--level"),
        (&[m], 66, "missing"),
        (&[f], 66, "not a directory"),
        (&["--status-file", m, d], 66, "status file"),
        (
            &["--status-file", f, d],
            65,
            "not a mysql-lock-hold status file",
        ),
        (
            &["--status-file", o, d],
            65,
            "not a mysql-lock-hold status file",
        ),
    ];
    for (args, code, says) in cases {
        let out = snap_tar(args);
        assert_eq!(out.code, code, "{args:?}: {}", out.stderr);
        assert_eq!(
            out.stderr.trim().lines().count(),
            1,
            "{args:?}: {}",
            out.stderr
        );
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn a_tree_holding_the_reserved_names_is_refused() {
    let dir = tempdir();
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("mysnap")).unwrap();
    fs::write(src.join(archive::MANIFEST_PATH), b"{}").unwrap();
    let out = snap_tar(&[src.to_str().unwrap()]);
    out.expect_code(65);
    assert!(out.stderr.contains("reserves"), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "refused before writing anything");
}

#[test]
fn a_closed_stdout_is_an_io_error() {
    let dir = tempdir();
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("big"), random_bytes(8 * MIB, 9)).unwrap();
    for compress in ["gzip", "none"] {
        let mut child = tool("snap-tar")
            .args(["--compress", compress, src.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(74), "{compress}: {stderr}");
        assert!(
            stderr.contains("cannot write the archive"),
            "{compress}: {stderr}"
        );
    }
}

/// A manifest as snap-tar wrote it before the status was typed: the
/// status file kept as a JSON value, so its keys came out sorted.
const OLD_MANIFEST: &str = r#"{
  "format": 1,
  "host": "db1",
  "created": "2026-11-23T01:02:05Z",
  "tools": {
    "snap-tar": "0.1.0"
  },
  "source": "/mnt/snap",
  "status": {
    "binlog_file": "mysql-bin.000043",
    "binlog_pos": 379,
    "flavor": "mariadb",
    "format": 1,
    "gtid": "0-1-18823",
    "layout": {
      "datadir": "/var/lib/mysql/",
      "innodb_data_file_path": "ibdata1:12M:autoextend",
      "innodb_data_home_dir": null,
      "innodb_log_group_home_dir": "./",
      "innodb_undo_directory": "./",
      "log_bin_basename": "/var/lib/mysql/mysql-bin"
    },
    "lock": "ftwrl",
    "lock_attempts": 1,
    "lock_hold_ms": 2210,
    "lock_wait_ms": 14,
    "locked_at": "2026-11-23T01:02:03.456Z",
    "replica": null,
    "server_id": 1,
    "server_uuid": null,
    "server_version": "10.11.6-MariaDB-0+deb12u1-log"
  },
  "layout": []
}"#;

/// A tar of `files` (name, data) after `manifest`, with their checksum
/// list last; names are written as given.
fn archive_of(manifest: &[u8], files: &[(&str, &[u8])]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let sums: Vec<serde_json::Value> = files
        .iter()
        .map(|(path, data)| {
            serde_json::json!({"path": path, "size": data.len(),
                "sha256": hex::encode(Sha256::digest(data))})
        })
        .collect();
    let total: usize = files.iter().map(|(_, data)| data.len()).sum();
    let checksums = serde_json::json!({"format": 1, "files": sums,
        "file_count": files.len(), "total_bytes": total});
    let checksums = serde_json::to_vec_pretty(&checksums).unwrap();
    let mut all = vec![(archive::MANIFEST_PATH, manifest)];
    all.extend_from_slice(files);
    all.push((archive::CHECKSUMS_PATH, &checksums));
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in all {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o640);
        header.set_mtime(1_700_000_000);
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// An archive from before the typed status restores, and its coordinates
/// come out as they went in.
#[test]
fn an_archive_with_the_old_manifest_still_restores() {
    let tar = archive_of(
        OLD_MANIFEST.as_bytes(),
        &[("ibdata1", b"system tablespace"), ("db/t.ibd", b"rows")],
    );
    let status = archive::verify(&tar[..]).unwrap().manifest.status.unwrap();
    assert_eq!(status.server_version, "10.11.6-MariaDB-0+deb12u1-log");
    let dir = tempdir();
    let datadir = dir.path().join("data");
    let out = run(
        tool("mysql-restore-dir")
            .arg("--datadir")
            .arg(&datadir)
            .args(["--no-defaults", "--no-server"]),
        &tar,
    );
    out.expect_code(0);
    let sql = out.stdout_text();
    assert!(
        sql.contains(
            "CHANGE MASTER TO MASTER_LOG_FILE = 'mysql-bin.000043', MASTER_LOG_POS = 379;"
        ),
        "{sql}"
    );
    assert!(
        sql.contains("SET GLOBAL gtid_slave_pos = '0-1-18823';"),
        "{sql}"
    );
    assert_eq!(fs::read(datadir.join("db/t.ibd")).unwrap(), b"rows");
    // Without --status-file, snap-tar wrote a null status.
    let start = OLD_MANIFEST.find("\"status\": {").unwrap();
    let end = OLD_MANIFEST.find("  \"layout\": []").unwrap();
    let no_status = OLD_MANIFEST.replace(&OLD_MANIFEST[start..end], "\"status\": null,\n");
    let tar = archive_of(no_status.as_bytes(), &[("ibdata1", b"x")]);
    assert_eq!(archive::verify(&tar[..]).unwrap().manifest.status, None);
}

/// Of two layout directories, --include-layout names one: its files are
/// restored, the other's verified and left out.
#[test]
fn a_layout_directory_not_named_is_verified_not_written() {
    let layout = r#""layout": [
    {"archived": "mysnap/layout/0", "original": "/var/lib/mysql-redo"},
    {"archived": "mysnap/layout/1", "original": "/var/lib/mysql-undo"}
  ]"#;
    let manifest = OLD_MANIFEST.replace(r#""layout": []"#, layout);
    let tar = archive_of(
        manifest.as_bytes(),
        &[
            ("ibdata1", b"system"),
            ("mysnap/layout/0/ib_logfile0", b"redo"),
            ("mysnap/layout/1/undo001", b"undo"),
        ],
    );
    let dir = tempdir();
    let (datadir, redo) = (dir.path().join("data"), dir.path().join("redo"));
    let include = format!("/var/lib/mysql-redo={}", redo.display());
    let out = run(
        tool("mysql-restore-dir")
            .arg("--datadir")
            .arg(&datadir)
            .args(["--no-defaults", "--no-server", "--include-layout", &include]),
        &tar,
    );
    out.expect_code(0);
    assert!(out.stderr.contains("/var/lib/mysql-undo"), "{}", out.stderr);
    assert_eq!(fs::read(redo.join("ib_logfile0")).unwrap(), b"redo");
    assert_eq!(fs::read(datadir.join("ibdata1")).unwrap(), b"system");
    assert!(!datadir.join("mysnap").exists());
    assert!(!dir.path().join("undo001").exists());
}

/// The one reader holds `verify` to the rules the restore keeps: a whole
/// archive, checksums and all, with a name that leaves its directory is
/// not a valid archive.
#[test]
fn verify_refuses_what_the_restore_refuses() {
    for (name, says) in [
        ("../evil", "unsafe path '../evil'"),
        ("/etc/evil", "unsafe path '/etc/evil'"),
        ("mysnap/layout/0/evil", "under no layout entry"),
    ] {
        let tar = archive_of(OLD_MANIFEST.as_bytes(), &[(name, b"x")]);
        match archive::verify(&tar[..]) {
            Err(Invalid::Corrupt(why)) => assert!(why.contains(says), "{name}: {why}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}
