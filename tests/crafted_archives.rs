//! Archives crafted to attack mysql-restore-dir, one test each, against the
//! real binary and a real MariaDB data directory. The target server is shut
//! down cleanly first, so its datadir is quiet and "changes nothing" can
//! mean byte for byte: every refusal leaves DIR, and the directory beside
//! it, exactly as they were, and the server starts on DIR afterwards. The
//! planted victims outside DIR must never change.

use mysnap_tests::mariadb::Mariadb;
use mysnap_tests::tool::{run, spawn, tool, Output};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use tar::EntryType::{self, *};

/// A MariaDB datadir whose server was shut down cleanly, with a victim
/// file beside it that an attack would like to rewrite.
struct Target {
    db: Mariadb,
    victim: PathBuf,
}

const VICTIM: &str = "/var/lib/mysql/binlog.000001\n";

fn sh(command: &str) {
    let status = Command::new("sh").args(["-c", command]).status().unwrap();
    assert!(status.success(), "{command} failed");
}

/// The shared target, one test at a time.
fn target() -> (&'static Target, MutexGuard<'static, ()>) {
    static TARGET: OnceLock<Target> = OnceLock::new();
    static SERIAL: Mutex<()> = Mutex::new(());
    let guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let target = TARGET.get_or_init(|| {
        let db = Mariadb::start();
        {
            use mysql::prelude::Queryable;
            let mut c = db.admin();
            c.query_drop("CREATE DATABASE crafted").unwrap();
            c.query_drop("CREATE TABLE crafted.items (id INT PRIMARY KEY) ENGINE=InnoDB")
                .unwrap();
            c.query_drop("INSERT INTO crafted.items VALUES (1), (2), (3)")
                .unwrap();
        }
        sh(&db.stop_cmd());
        let victim = db.dir.path().join("outside/victim");
        std::fs::create_dir_all(victim.parent().unwrap()).unwrap();
        std::fs::write(&victim, VICTIM).unwrap();
        Target { db, victim }
    });
    (target, guard)
}

/// Every entry under `dir`: type, mode, owner, size, mtime, and the
/// SHA-256 of a file's bytes or a symlink's target.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let what = if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
            "dir".to_string()
        } else if meta.file_type().is_symlink() {
            format!("-> {}", std::fs::read_link(&path).unwrap().display())
        } else {
            hex::encode(Sha256::digest(std::fs::read(&path).unwrap()))
        };
        out.insert(
            path.strip_prefix(dir).unwrap().to_path_buf(),
            format!(
                "{what} {:o} {}:{} {} {}.{}",
                meta.mode(),
                meta.uid(),
                meta.gid(),
                meta.len(),
                meta.mtime(),
                meta.mtime_nsec()
            ),
        );
    }
    out
}

/// The names beside DIR (in its parent), but the restore's lock file.
fn beside(target: &Target) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(target.db.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| !n.ends_with(".mysnap-restore.lock"))
        .collect();
    names.sort();
    names
}

/// A refusal comes before the unpack gets far: a restore still running
/// after this long is killed (exit 137), so a tool that hashes a
/// petabyte of holes fails the test instead of hanging it. The crafted
/// archives are a few KiB; the slack is for a cold start on a loaded
/// machine.
const REFUSAL_WITHIN: &str = "120";

/// `cmd` under timeout(1), with the environment `tool` gave it.
fn bounded(cmd: &mut Command) -> Command {
    let mut bounded = Command::new("timeout");
    bounded
        .args(["-s", "KILL", REFUSAL_WITHIN])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => bounded.env(key, value),
            None => bounded.env_remove(key),
        };
    }
    bounded
}

/// A restore onto the target, with its stop and start commands.
fn restore(target: &Target, extra: &[&str], archive: &[u8]) -> Output {
    let db = &target.db;
    run(
        &mut bounded(
            db.tool("mysql-restore-dir")
                .arg("--datadir")
                .arg(db.datadir())
                .args(["--stop-cmd", &db.stop_cmd(), "--start-cmd", &db.start_cmd()])
                .args(["--wait", "60s"])
                .args(extra),
        ),
        archive,
    )
}

/// A restore into the new directory `datadir` of a fresh machine.
fn restore_fresh(datadir: &Path, extra: &[&str], archive: &[u8]) -> Output {
    run(
        tool("mysql-restore-dir")
            .arg("--datadir")
            .arg(datadir)
            .args(["--no-defaults", "--no-server"])
            .args(extra),
        archive,
    )
}

/// Restores `archive` onto the target and asserts the refusal: exit
/// `code`, one line on stderr that says `says`, DIR and its surroundings
/// byte-identical, the victim untouched.
fn assert_refused(archive: &[u8], extra: &[&str], code: i32, says: &str) {
    let (target, _serial) = target();
    let dir = target.db.datadir();
    let (before, around) = (snapshot(&dir), beside(target));
    let out = restore(target, extra, archive);
    out.expect_code(code);
    out.expect_one_line(says);
    assert!(snapshot(&dir) == before, "DIR changed:\n{}", out.stderr);
    assert_eq!(beside(target), around, "something was left beside DIR");
    assert_eq!(std::fs::read_to_string(&target.victim).unwrap(), VICTIM);
}

/// One entry of a crafted archive.
struct Entry<'a> {
    name: &'a str,
    kind: EntryType,
    data: &'a [u8],
    link: Option<&'a str>,
    mode: u32,
}

fn file<'a>(name: &'a str, data: &'a [u8]) -> Entry<'a> {
    Entry {
        name,
        kind: Regular,
        data,
        link: None,
        mode: 0o644,
    }
}

fn dir(name: &str) -> Entry<'_> {
    Entry {
        name,
        kind: Directory,
        data: b"",
        link: None,
        mode: 0o755,
    }
}

fn link<'a>(name: &'a str, kind: EntryType, to: &'a str) -> Entry<'a> {
    Entry {
        name,
        kind,
        data: b"",
        link: Some(to),
        mode: 0o777,
    }
}

/// A gzip'd tar of `entries`, names and link targets written as given
/// (the tar crate's setters refuse `..`, which is the point here).
fn crafted(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for e in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(e.kind);
        header.set_size(e.data.len() as u64);
        header.set_mode(e.mode);
        header.set_mtime(1_700_000_000);
        let gnu = header.as_gnu_mut().unwrap();
        gnu.name[..e.name.len()].copy_from_slice(e.name.as_bytes());
        if let Some(to) = e.link {
            gnu.linkname[..to.len()].copy_from_slice(to.as_bytes());
        }
        header.set_cksum();
        builder.append(&header, e.data).unwrap();
    }
    gzip(&builder.into_inner().unwrap())
}

fn gzip(tar: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, tar).unwrap();
    gz.finish().unwrap()
}

const NO_MANIFEST: &[&str] = &["--no-manifest"];

#[test]
fn an_absolute_path_is_refused() {
    let archive = crafted(&[file("/tmp/mysnap-crafted-absolute", b"x")]);
    assert_refused(&archive, NO_MANIFEST, 65, "unsafe path");
    assert!(!Path::new("/tmp/mysnap-crafted-absolute").exists());
}

#[test]
fn a_dot_dot_path_is_refused() {
    let archive = crafted(&[file("../outside/victim", b"owned")]);
    assert_refused(&archive, NO_MANIFEST, 65, "unsafe path '../outside/victim'");
}

/// `a -> .`, `b -> a/..`, `c -> b/..`: each target looks inside by its
/// names, yet `c` is two levels up, and the binlog index's rewrite would
/// follow `mysql-bin.index -> c/outside/victim` out of the datadir.
#[test]
fn a_chain_of_symlinks_out_of_the_datadir_is_refused() {
    let archive = crafted(&[
        file("binlog.000001", b"\xfebin"),
        link("a", Symlink, "."),
        link("b", Symlink, "a/.."),
        link("c", Symlink, "b/.."),
        link("mysql-bin.index", Symlink, "c/outside/victim"),
    ]);
    assert_refused(
        &archive,
        NO_MANIFEST,
        65,
        "through another symlink of the archive",
    );
}

#[test]
fn a_file_written_through_an_archive_symlink_is_refused() {
    let archive = crafted(&[dir("t"), link("d", Symlink, "t"), file("d/planted", b"x")]);
    assert_refused(
        &archive,
        NO_MANIFEST,
        65,
        "'d/planted' would be written through a symlink",
    );
}

#[test]
fn a_symlink_out_of_the_datadir_is_refused() {
    let archive = crafted(&[link("t", Symlink, "../outside"), file("t/victim", b"owned")]);
    assert_refused(&archive, NO_MANIFEST, 65, "points outside");
}

#[test]
fn a_hard_link_out_of_the_datadir_is_refused() {
    let archive = crafted(&[link("h", Link, "../outside/victim")]);
    assert_refused(&archive, NO_MANIFEST, 65, "hard link 'h' points outside");
    let absolute = crafted(&[link("h", Link, "/etc/passwd")]);
    assert_refused(&absolute, NO_MANIFEST, 65, "hard link 'h' points outside");
}

#[test]
fn a_hard_link_to_a_directory_or_a_symlink_is_refused() {
    let to_dir = crafted(&[dir("t"), link("h", Link, "t")]);
    assert_refused(&to_dir, NO_MANIFEST, 65, "not a file in this archive");
    let to_link = crafted(&[link("s", Symlink, "x"), link("h", Link, "s")]);
    assert_refused(&to_link, NO_MANIFEST, 65, "not a file in this archive");
}

#[test]
fn a_name_that_appears_twice_is_refused() {
    let archive = crafted(&[file("t.ibd", b"one"), file("t.ibd", b"two")]);
    assert_refused(&archive, NO_MANIFEST, 65, "appears twice");
}

#[test]
fn a_lost_and_found_that_is_not_a_directory_is_refused() {
    let archive = crafted(&[file("ibdata1", b"x"), file("lost+found", b"x")]);
    assert_refused(&archive, NO_MANIFEST, 65, "lost+found must be a directory");
}

#[test]
fn names_of_an_earlier_restore_are_refused() {
    let archive = crafted(&[
        dir(".mysnap-old-20260101T000000Z"),
        file(".mysnap-old-20260101T000000Z/ibdata1", b"x"),
    ]);
    assert_refused(&archive, NO_MANIFEST, 65, "start with .mysnap-");
}

/// A GNU sparse entry: `data` at `offset` of a file of `real_size` bytes.
fn sparse(name: &str, real_size: u64, offset: u64, data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(GNUSparse);
    header.set_size(data.len() as u64);
    header.set_mode(0o640);
    header.set_mtime(1_700_000_000);
    let gnu = header.as_gnu_mut().unwrap();
    gnu.name[..name.len()].copy_from_slice(name.as_bytes());
    gnu.set_real_size(real_size);
    gnu.sparse[0].set_offset(offset);
    gnu.sparse[0].set_length(data.len() as u64);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, data).unwrap();
    gzip(&builder.into_inner().unwrap())
}

/// A map that claims 1 PiB, with 512 bytes of data at its end: refused
/// before a byte is hashed, within REFUSAL_WITHIN rather than days.
#[test]
fn a_sparse_map_of_a_petabyte_is_refused_at_once() {
    const PIB: u64 = 1 << 50;
    let archive = sparse("ibdata1", PIB, PIB - 512, &[7u8; 512]);
    assert_refused(
        &archive,
        NO_MANIFEST,
        74,
        "more than the whole filesystem of",
    );
}

/// A plain entry whose header claims 1 PiB of data, and then ends.
#[test]
fn a_declared_size_beyond_the_filesystem_is_refused() {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(Regular);
    header.set_size(1 << 50);
    header.set_mode(0o640);
    header.set_mtime(1_700_000_000);
    header.as_gnu_mut().unwrap().name[..7].copy_from_slice(b"ibdata1");
    header.set_cksum();
    let mut tar = header.as_bytes().to_vec();
    tar.extend_from_slice(&[0u8; 4096]);
    assert_refused(
        &gzip(&tar),
        NO_MANIFEST,
        74,
        "more than the whole filesystem of",
    );
}

/// Without --no-manifest a plain tar is refused at its first entry, before
/// anything is written: here a petabyte sparse map, which would otherwise
/// be judged by size (exit 74) before the missing manifest (exit 65).
#[test]
fn a_plain_tar_is_refused_before_its_first_entry_is_written() {
    const PIB: u64 = 1 << 50;
    let archive = sparse("ibdata1", PIB, PIB - 512, &[7u8; 512]);
    assert_refused(&archive, &[], 65, "not a mysnap archive");
}

#[test]
fn a_device_or_fifo_is_refused() {
    let archive = crafted(&[Entry {
        name: "t/fifo",
        kind: Fifo,
        data: b"",
        link: None,
        mode: 0o644,
    }]);
    assert_refused(&archive, NO_MANIFEST, 65, "refused");
}

/// A valid snap-tar archive whose manifest says one of its layout
/// directories came from `original`.
fn with_layout(original: &Path) -> Vec<u8> {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    std::fs::create_dir_all(source.join("mysql")).unwrap();
    std::fs::write(source.join("ibdata1"), b"system tablespace").unwrap();
    // snap-tar takes a layout directory from a read-only mount, as a snapshot's.
    let snap = work.path().join("snap");
    std::fs::create_dir(&snap).unwrap();
    sh(&format!(
        "mount -t tmpfs -o size=4m tmpfs {}",
        snap.display()
    ));
    std::fs::write(snap.join("victim"), b"owned").unwrap();
    sh(&format!("mount -o remount,ro {}", snap.display()));
    let layout = format!("{}={}", original.display(), snap.display());
    let out = run(
        tool("snap-tar")
            .args(["--include-layout", &layout])
            .arg(&source),
        b"",
    );
    sh(&format!("umount {}", snap.display()));
    out.expect_code(0);
    out.stdout
}

/// The manifest alone never picks a directory to replace: an archive that
/// says its layout came from the victim's directory restores without
/// touching it, and a command line that names another directory is refused.
#[test]
fn layout_targets_come_from_the_command_line_only() {
    let (target, _serial) = target();
    let outside = target.victim.parent().unwrap().to_path_buf();
    let archive = with_layout(&outside);
    let fresh = tempfile::tempdir().unwrap();
    let datadir = fresh.path().join("data");
    let before = snapshot(&outside);
    let out = restore_fresh(&datadir, &[], &archive);
    out.expect_code(0);
    assert!(
        out.stderr.contains("verified but not restored"),
        "{}",
        out.stderr
    );
    assert!(
        snapshot(&outside) == before,
        "the manifest's layout target was replaced"
    );
    assert_eq!(
        std::fs::read(datadir.join("ibdata1")).unwrap(),
        b"system tablespace"
    );

    let other = fresh.path().join("data2");
    let out = restore_fresh(&other, &["--include-layout", "/srv/redo"], &archive);
    out.expect_code(65);
    assert!(
        out.stderr.contains("holds no files from there"),
        "{}",
        out.stderr
    );
    assert!(
        !other.exists(),
        "the refused restore left {}",
        other.display()
    );
    assert!(snapshot(&outside) == before);
}

/// Setuid and setgid bits never come back: a data directory needs none.
#[test]
fn setuid_and_setgid_bits_are_cleared() {
    let archive = crafted(&[
        Entry {
            name: "ibdata1",
            kind: Regular,
            data: b"x",
            link: None,
            mode: 0o4755,
        },
        Entry {
            name: "t",
            kind: Directory,
            data: b"",
            link: None,
            mode: 0o2775,
        },
        Entry {
            name: "t/sticky",
            kind: Directory,
            data: b"",
            link: None,
            mode: 0o1777,
        },
    ]);
    let fresh = tempfile::tempdir().unwrap();
    let datadir = fresh.path().join("data");
    let out = restore_fresh(&datadir, &["--no-manifest", "--owner", "root"], &archive);
    out.expect_code(0);
    assert!(
        out.stderr
            .contains("cleared the setuid or setgid bit of 2 entries"),
        "{}",
        out.stderr
    );
    let mode = |p: &str| {
        std::fs::metadata(datadir.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("ibdata1"), 0o755);
    assert_eq!(mode("t"), 0o775);
    assert_eq!(mode("t/sticky"), 0o1777, "the sticky bit stays");
}

/// The binary log index is rewritten after the unpack, and `--as-replica`
/// removes the cloned state: neither follows a symlink that the archive
/// made. An index that is a symlink to another file of the datadir is left
/// as it is, and so is that file, while a regular index beside it is
/// rewritten (the rewrite did run); a `relay-log.info` that is a symlink is
/// removed itself, and its target stays.
#[test]
fn the_steps_after_the_unpack_follow_no_symlink() {
    let line = b"/var/lib/mysql/binlog.000001\n";
    let archive = crafted(&[
        file("binlog.000001", b"x"),
        file("ibdata1", line),
        file("relay.index", line),
        link("binlog.index", Symlink, "ibdata1"),
        link("relay-log.info", Symlink, "ibdata1"),
    ]);
    let fresh = tempfile::tempdir().unwrap();
    let datadir = fresh.path().join("data");
    let out = restore_fresh(
        &datadir,
        &["--no-manifest", "--owner", "root", "--as-replica"],
        &archive,
    );
    out.expect_code(0);
    assert_eq!(
        std::fs::read(datadir.join("relay.index")).unwrap(),
        format!("{}\n", datadir.join("binlog.000001").display()).as_bytes(),
        "the regular index was rewritten"
    );
    assert_eq!(std::fs::read(datadir.join("ibdata1")).unwrap(), line);
    assert_eq!(
        std::fs::read_link(datadir.join("binlog.index")).unwrap(),
        Path::new("ibdata1"),
        "the symlinked index is left as it is"
    );
    assert!(
        std::fs::symlink_metadata(datadir.join("relay-log.info")).is_err(),
        "--as-replica removed the symlink: {}",
        out.stderr
    );
    assert!(out.stderr.contains("relay-log.info"), "{}", out.stderr);
}

/// A second restore of one DIR while the first runs exits 75 and
/// changes nothing; the first goes on. The first holds its lock while it
/// waits for the rest of its archive, which the test holds back.
#[test]
fn a_second_restore_of_one_datadir_waits_its_turn() {
    let fresh = tempfile::tempdir().unwrap();
    let datadir = fresh.path().join("data");
    let mut first_cmd = tool("mysql-restore-dir");
    first_cmd
        .arg("--datadir")
        .arg(&datadir)
        .args([
            "--no-defaults",
            "--no-server",
            "--no-manifest",
            "--",
            "sh",
            "-c",
        ])
        // Ends when the test says go, or when its directory is gone (a
        // failed test), so that nothing outlives the test.
        .arg(format!(
            "cat; while [ ! -e {0}/go ] && [ -d {0} ]; do sleep 0.05; done",
            fresh.path().display()
        ));
    let archive = crafted(&[file("ibdata1", b"first")]);
    let (first, feeder) = spawn(&mut first_cmd, archive.clone());
    let lock = fresh.path().join(".data.mysnap-restore.lock");
    // Wait on the state itself: the lock file exists and is held.
    let held = || {
        lock.exists()
            && !Command::new("flock")
                .args(["-n"])
                .arg(&lock)
                .arg("true")
                .status()
                .unwrap()
                .success()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !held() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first restore never took its lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = restore_fresh(
        &datadir,
        &["--no-manifest"],
        &crafted(&[file("ibdata1", b"second")]),
    );
    second.expect_code(75);
    second.expect_one_line("another mysql-restore-dir is restoring");
    std::fs::write(fresh.path().join("go"), b"").unwrap();
    let first = mysnap_tests::tool::finish(first, feeder);
    first.expect_code(0);
    assert_eq!(std::fs::read(datadir.join("ibdata1")).unwrap(), b"first");
}

/// After every refusal above, the server still starts on its datadir and
/// serves its rows. Named to run last of this file in name order is not
/// guaranteed, so it refuses one archive itself first.
#[test]
fn the_target_server_starts_after_a_refusal() {
    let archive = crafted(&[link("a", Symlink, "."), link("b", Symlink, "a/..")]);
    assert_refused(&archive, NO_MANIFEST, 65, "symlink");
    let (target, _serial) = target();
    sh(&target.db.start_cmd());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let rows = loop {
        if let Some(rows) = target.db.try_value("SELECT COUNT(*) FROM crafted.items") {
            break rows;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not come up"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(rows, "3");
    sh(&target.db.stop_cmd());
}
