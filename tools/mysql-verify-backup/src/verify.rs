//! One test restore, in order: choose the backup; make the scratch
//! directory; stream it with s3-get and unpack it there, checked against
//! its checksum list; start a throwaway server on it, which must finish
//! crash recovery; check every table; stop the server; record the result
//! (KEY.verified only when it passed) and the metrics; remove the scratch
//! directory unless --keep. Every failure after the scratch is made still
//! removes it (unless --keep) and still writes the metrics.

use crate::checks::{self, Found};
use crate::options::Options;
use crate::record::{self, ArchiveCheck, Run, TableCheck, Verified};
use mysnap::error::IoContext;
use mysnap::mysql::ConnectOptions;
use mysnap::progress::Progress;
use mysnap::restore::input::Input;
use mysnap::restore::private;
use mysnap::restore::programs::sibling;
use mysnap::restore::unpack::{self, Owner, Roots};
use mysnap::s3::backups::{self, SIDECAR, VERIFIED};
use mysnap::s3::{Client, ObjectInfo, S3Url};
use mysnap::signals::Signals;
use mysnap::{Error, Exit, Result};
use nix::unistd::{Gid, Uid, User};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Moment = chrono::DateTime<chrono::Utc>;

/// What a test restore found, up to where it stopped.
#[derive(Default)]
struct Progressed {
    taken: Option<Moment>,
    rto: Option<Duration>,
    files: u64,
    bytes: u64,
    found: Option<Found>,
}

pub fn run(options: &Options, signals: Arc<Signals>) -> Result<()> {
    let began = chrono::Utc::now();
    let clock = Instant::now();
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| Error::new(Exit::Software, format!("cannot start runtime: {e}")))?;
    let client = Client::new(&options.s3, &options.url.bucket)?;
    let backup = runtime.block_on(choose(&client, &options.url))?;
    let url = client.url(&backup.key);
    log::info!("test restore of {url} into {}", options.scratch.display());
    let scratch = Scratch::create(&options.scratch, options.keep)?;
    let mut progressed = Progressed {
        taken: backups::taken("", &backup),
        ..Progressed::default()
    };
    let outcome = test_restore(options, &url, &scratch, &signals, clock, &mut progressed);
    let finished = chrono::Utc::now();
    let found = progressed.found.as_ref();
    let verified = outcome.is_ok() && found.is_some_and(Found::passed);
    let mut outcome = outcome.and_then(|()| match found {
        Some(found) if !found.passed() => Err(failed_checks(found)),
        _ => Ok(()),
    });
    if verified {
        let found = found.expect("verified after the checks");
        let record = Verified {
            format: 1,
            backup: url.to_string(),
            started: began.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            finished: finished.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            host: nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_default(),
            server_version: found.version.clone(),
            rto_seconds: progressed.rto.map_or(0.0, |d| d.as_secs_f64()),
            duration_seconds: clock.elapsed().as_secs_f64(),
            archive: ArchiveCheck {
                files: progressed.files,
                bytes: progressed.bytes,
            },
            tables: TableCheck {
                schemas: found.schemas,
                listed: found.checked.len(),
                checked: found.checked.len(),
                failed: 0,
                results: found.checked.clone(),
            },
        };
        outcome = runtime.block_on(store(&client, &backup.key, &record));
        if outcome.is_ok() {
            log::info!(
                "{url} verified: {} tables in {} schemas checked, a server answered {:.1}s after \
                 the start; recorded in {}{VERIFIED}",
                found.checked.len(),
                found.schemas,
                record.rto_seconds,
                url
            );
        }
    }
    if let Some(path) = &options.metrics_file {
        let run = Run {
            finished,
            verified: verified && outcome.is_ok(),
            taken: progressed.taken,
            rto_seconds: progressed.rto.map(|d| d.as_secs_f64()),
            duration_seconds: clock.elapsed().as_secs_f64(),
            tables_checked: found.map_or(0, |f| f.checked.len()),
            tables_failed: found.map_or(0, |f| f.failed().count()),
        };
        if let Err(e) = record::write_metrics(path, &options.instance, &run) {
            log::error!("{}", e.message());
            outcome = outcome.and(Err(e));
        }
    }
    let left = scratch.finish();
    outcome.map_err(|e| Error::with_status(e.code(), format!("{}{left}", e.message())))
}

/// The checks that failed, as the error that ends the run.
fn failed_checks(found: &Found) -> Error {
    let mut what: Vec<String> = found
        .failed()
        .take(10)
        .map(|c| format!("{}.{}: {}", c.schema, c.table, c.result))
        .collect();
    if !found.missing.is_empty() {
        what.push(format!(
            "the archive holds files of tables the server does not know: {}",
            names(&found.missing)
        ));
    }
    if !found.unlisted.is_empty() {
        what.push(format!(
            "the server knows tables that no file of the archive holds: {}",
            names(&found.unlisted)
        ));
    }
    let failed = found.failed().count();
    for c in found.failed() {
        log::error!("{}.{}: {}", c.schema, c.table, c.result);
    }
    Error::new(
        Exit::DataErr,
        format!(
            "the backup does not verify: {failed} of {} tables failed their check{}: {}",
            found.checked.len(),
            if failed > 10 { " (the first 10)" } else { "" },
            what.join("; ")
        ),
    )
}

fn names(list: &[checks::Name]) -> String {
    let shown: Vec<String> = list
        .iter()
        .take(10)
        .map(|(s, t)| format!("{s}.{t}"))
        .collect();
    let more = list.len().saturating_sub(10);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// The backup to verify: KEY, or the newest complete one under PREFIX
/// (one with its sidecar), by the time its name records.
async fn choose(client: &Client, url: &S3Url) -> Result<ObjectInfo> {
    if !url.key.is_empty() && !url.key.ends_with('/') {
        let object = client
            .head(&url.key)
            .await?
            .ok_or_else(|| Error::new(Exit::NoInput, format!("{url}: no such backup")))?;
        if client
            .head(&format!("{}{SIDECAR}", url.key))
            .await?
            .is_none()
        {
            return Err(Error::new(
                Exit::DataErr,
                format!("{url} has no {SIDECAR} sidecar: it is incomplete, and nothing checks it"),
            ));
        }
        return Ok(object);
    }
    let listed = client.list(&url.key).await?;
    let keys: std::collections::BTreeSet<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    let complete: Vec<ObjectInfo> = backups::backups(&url.key, listed.clone())
        .into_iter()
        .filter(|o| keys.contains(format!("{}{SIDECAR}", o.key).as_str()))
        .collect();
    complete
        .into_iter()
        .filter_map(|o| Some((backups::taken(&url.key, &o)?, o)))
        .max_by(|a, b| (a.0, &a.1.key).cmp(&(b.0, &b.1.key)))
        .map(|(_, o)| o)
        .ok_or_else(|| Error::new(Exit::NoInput, format!("no complete backup under {url}")))
}

/// Stores `KEY.verified`.
async fn store(client: &Client, key: &str, record: &Verified) -> Result<()> {
    let body = serde_json::to_vec_pretty(record).expect("a record serializes");
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    client
        .put_object(
            &format!("{key}{VERIFIED}"),
            bytes::Bytes::from(body),
            &headers,
        )
        .await
        .map(|_| ())
        .map_err(|e| e.context("the backup verified, but its record could not be stored"))
}

/// The scratch directory: made fresh (mode 0700), removed at the end
/// unless --keep.
struct Scratch {
    dir: PathBuf,
    keep: bool,
}

impl Scratch {
    fn create(dir: &Path, keep: bool) -> Result<Scratch> {
        if let Some(parent) = dir.parent().filter(|p| !p.exists()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .ctx(format!("creating {}", parent.display()))?;
            // 0755 whatever the umask (the unit's is 0077): the server's
            // user must pass through it.
            std::fs::set_permissions(parent, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .ctx(format!("chmod {}", parent.display()))?;
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                let why = if e.kind() == std::io::ErrorKind::AlreadyExists {
                    "it exists (a run with --keep, or one that was killed, left it): remove it"
                        .to_string()
                } else {
                    e.to_string()
                };
                Error::new(
                    Exit::CantCreate,
                    format!("scratch directory {}: {why}", dir.display()),
                )
            })?;
        Ok(Scratch {
            dir: dir.to_path_buf(),
            keep,
        })
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Removes it, unless kept; says what is left, for the message.
    fn finish(self) -> String {
        if self.keep {
            log::info!("--keep: left {}", self.dir.display());
            return String::new();
        }
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => String::new(),
            Err(e) => format!(
                " (and {} could not be removed: {e}; remove it before the next run)",
                self.dir.display()
            ),
        }
    }
}

/// Whose the restored files are: as root --owner, else mysql, else the
/// archive's own; as anyone else, their own.
fn owner(given: Option<&str>) -> Result<Owner> {
    if !Uid::effective().is_root() {
        return Ok(Owner(Some((Uid::effective(), Gid::effective()))));
    }
    let name = given.unwrap_or("mysql");
    match User::from_name(name).ok().flatten() {
        Some(user) => Ok(Owner(Some((user.uid, user.gid)))),
        None if given.is_some() => Err(Error::usage(format!("--owner: no user '{name}'"))),
        None => Ok(Owner(None)),
    }
}

/// Refuses a scratch directory that the server's user cannot reach: an
/// ancestor that does not let it search (a 0700 directory of root's).
fn reachable(scratch: &Path, uid: Uid, gid: Gid) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    for dir in scratch.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(dir) else {
            continue;
        };
        let search = if meta.uid() == uid.as_raw() {
            0o100
        } else if meta.gid() == gid.as_raw() {
            0o010
        } else {
            0o001
        };
        if meta.mode() & search == 0 {
            let user = User::from_uid(uid)
                .ok()
                .flatten()
                .map_or_else(|| uid.to_string(), |u| u.name);
            return Err(Error::new(
                Exit::CantCreate,
                format!(
                    "scratch directory {}: the server's user {user} cannot reach it ({} is mode \
                     {:04o}): give a --scratch it can reach, such as one under /var/tmp",
                    scratch.display(),
                    dir.display(),
                    meta.mode() & 0o7777
                ),
            ));
        }
    }
    Ok(())
}

fn s3_get(options: &Options) -> Result<PathBuf> {
    sibling(
        options.s3_get.clone(),
        "--s3-get",
        "s3-get",
        "",
        "mysql-verify-backup",
    )
}

fn test_restore(
    options: &Options,
    url: &S3Url,
    scratch: &Scratch,
    signals: &Arc<Signals>,
    clock: Instant,
    progressed: &mut Progressed,
) -> Result<()> {
    let owner = owner(options.owner.as_deref())?;
    if let Some((uid, gid)) = owner.0 {
        reachable(&scratch.dir, uid, gid)?;
    }
    let data = scratch.data();
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&data)
        .ctx(format!("creating {}", data.display()))?;
    let mut argv = vec![s3_get(options)?.to_string_lossy().into_owned()];
    argv.extend(options.s3_args.iter().cloned());
    argv.push(url.to_string());
    let mut input = Input::open(Some(&argv), options.jobs, signals.clone())?;
    let roots = Roots {
        datadir: data.clone(),
        // The layout directories are checked, not restored: only the
        // data directory is started.
        layout: Box::new(|_| Ok(None)),
        require_manifest: true,
    };
    let mut progress = Progress::new("unpacked", None);
    let unpacked = unpack::unpack(&mut input, roots, owner, signals, &mut progress);
    progress.finish();
    let unpacked = match unpacked {
        Ok(unpacked) => unpacked,
        Err(e) => return Err(input.fail(signals.check().err().unwrap_or(e))),
    };
    // s3-get's own exit (its sidecar check) and the archive's checksums:
    // a tampered archive fails here, before any server starts.
    input.finish()?;
    unpacked.verify(true)?;
    progressed.files = unpacked.files;
    progressed.bytes = unpacked.bytes;
    signals.check()?;
    if let Some((uid, gid)) = owner.0 {
        for dir in [&scratch.dir, &data] {
            nix::unistd::chown(dir.as_path(), Some(uid), Some(gid))
                .map_err(|e| Error::new(Exit::IoErr, format!("chown {}: {e}", dir.display())))?;
        }
    }
    let flavor = unpacked
        .manifest
        .as_ref()
        .and_then(|m| m.status.as_ref())
        .map(|s| s.flavor);
    let names: &[&str] = match flavor {
        Some(mysnap::status::Flavor::MySql) => &["mysqld"],
        _ => &["mariadbd", "mysqld"],
    };
    let spec = private::Spec {
        binary: private::find(options.mysqld.clone(), names, "the test restore")?,
        options: std::iter::once("--no-defaults".to_string())
            .chain(options.mysqld_options.iter().cloned())
            .collect(),
        extra: [
            "--skip-grant-tables",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=128M",
        ]
        .map(String::from)
        .to_vec(),
        wait: options.wait,
        purpose: "test restore",
    };
    let answers = |socket: &Path, _wait: Duration| -> Result<()> {
        ConnectOptions::private_socket(socket).connect().map(|_| ())
    };
    let server = spec.start(&data, answers, signals).map_err(|e| {
        // A server that will not start on the data failed the test.
        let code = if e.code() == Exit::Unavailable as i32 {
            Exit::DataErr as i32
        } else {
            e.code()
        };
        Error::with_status(
            code,
            format!("no server would run on the restored data: {}", e.message()),
        )
    })?;
    progressed.rto = Some(clock.elapsed());
    log::info!(
        "a server answers on the restored data, {:.1}s after the start",
        clock.elapsed().as_secs_f64()
    );
    let checked = checks::run(
        &ConnectOptions::private_socket(&server.socket()),
        &data,
        options.jobs,
    );
    let log = server.error_log();
    let stopped = server.stop(signals);
    if options.keep {
        let _ = std::fs::write(scratch.dir.join("mysqld-error.log"), &log);
    }
    let found = checked.inspect_err(|_| show_log(&log))?;
    if !found.passed() {
        show_log(&log);
    }
    progressed.found = Some(found);
    stopped
}

/// What the throwaway server's log says went wrong: its errors and
/// warnings (not InnoDB's hex dumps of a bad page), the first 20; else
/// its last lines.
fn show_log(log: &str) {
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("[ERROR]") || l.contains("[Warning]"))
        .take(20)
        .collect();
    let lines: Vec<&str> = if said.is_empty() {
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(10)..].to_vec()
    } else {
        said
    };
    for line in lines {
        log::error!("server: {line}");
    }
}
