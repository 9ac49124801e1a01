//! mysql-restore-dir: restores a MySQL data directory from an archive on
//! stdin (or COMMAND's stdout). It unpacks and verifies beside DIR while
//! the server keeps serving, then stops the server, swaps by rename, and
//! starts it again, so the downtime does not grow with the data. Anything
//! that fails before the swap leaves DIR untouched; a server that fails to
//! start on the restored data gets its previous data back.

mod input;
mod replica;
mod server;
mod signals;
mod swap;
mod unpack;

use input::Input;
use mysnap::cli::{Args, Cli};
use mysnap::error::IoContext;
use mysnap::mysql::ConnectOptions;
use mysnap::progress::Progress;
use mysnap::units::{format_rate, format_size, parse_duration};
use mysnap::{Error, Exit, Result};
use nix::unistd::{Gid, Uid, User};
use replica::Coordinates;
use server::Control;
use signals::Signals;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use swap::{Datadir, Names};
use unpack::{Owner, Roots, Unpacked};

const SYNOPSIS: &str =
    "mysql-restore-dir [OPTIONS] --datadir DIR (--service NAME | --stop-cmd CMD --start-cmd CMD | --no-server) [-- COMMAND [ARGS...]]";
const ABOUT: &str = "Restores a MySQL/MariaDB data directory from an archive (snap-tar's, or a
plain tar with --no-manifest) read from stdin or from COMMAND's stdout. Unpacks
and verifies beside DIR while the server runs, then stops it, keeps DIR as
DIR.old-<UTC time>, swaps the restored data in, starts the server and waits
until it answers. Prints the replication coordinates the archive recorded.";

fn cli() -> Cli {
    let mut cli = Cli::new("mysql-restore-dir", SYNOPSIS, ABOUT);
    let opts = cli.opts();
    opts.optopt("d", "datadir", "the data directory to replace", "DIR");
    opts.optopt("", "service", "stop and start this systemd service", "NAME");
    opts.optopt("", "stop-cmd", "shell command that stops the server", "CMD");
    opts.optopt(
        "",
        "start-cmd",
        "shell command that starts the server (may return before it answers)",
        "CMD",
    );
    opts.optflag("", "no-server", "no server runs on DIR (a fresh machine)");
    opts.optopt(
        "",
        "wait",
        "how long to wait for the server to answer after the start (default: 300s)",
        "DURATION",
    );
    opts.optopt(
        "",
        "owner",
        "owner of the restored files (default: DIR's owner, else mysql)",
        "USER",
    );
    opts.optflag(
        "",
        "include-layout",
        "also restore the files the archive holds from outside the datadir",
    );
    opts.optopt(
        "",
        "coordinates-file",
        "also write the replication coordinates to FILE",
        "FILE",
    );
    opts.optflag(
        "",
        "as-replica",
        "remove the source's identity and replication state (new replica)",
    );
    opts.optflag(
        "",
        "no-manifest",
        "accept a plain tar without mysnap's manifest",
    );
    opts.optflag(
        "",
        "force",
        "restore over a non-datadir DIR, or a backup from a newer server",
    );
    opts.optopt("j", "jobs", "decompression threads (default: 2)", "N");
    mysnap::mysql::add_options(opts);
    cli
}

fn main() {
    mysnap::memory::keep_large_buffers_unpooled();
    mysnap::logging::init();
    // Signals are blocked before any thread starts, so every thread inherits it.
    let signals = Signals::block();
    mysnap::logging::exit(
        signals.and_then(|signals| cli().parse().and_then(|args| run(args, &signals))),
    );
}

struct Restore {
    datadir: Datadir,
    names: Names,
    control: Control,
    connect: ConnectOptions,
    wait: Duration,
    owner: Owner,
    stamp: String,
}

fn run(args: Args, signals: &Signals) -> Result<()> {
    args.operands(0, 0, "nothing")?;
    let dir = PathBuf::from(
        args.string("datadir")
            .ok_or_else(|| args.usage("--datadir DIR is required"))?,
    );
    let control = control(&args)?;
    let wait = args.value("wait", Duration::from_secs(300), parse_duration)?;
    let jobs = args.number("jobs", 2, 1, 64)?;
    let connect = ConnectOptions::from_args(&args, "mysql-restore-dir")?;
    let datadir = Datadir::inspect(&dir)?;
    check_target(&args, &datadir, &control)?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let names = datadir.names(&stamp);
    for taken in [&names.staging, &names.old] {
        if fs::symlink_metadata(taken).is_ok() {
            return Err(Error::new(
                Exit::CantCreate,
                format!(
                    "{} already exists: remove or rename it, then retry",
                    taken.display()
                ),
            ));
        }
    }
    let owner = owner(&args, &datadir)?;
    let target_version = match control {
        // The running server tells which version will open the data.
        Control::NoServer => None,
        _ => server::wait_ready(&connect, Duration::ZERO).ok(),
    };
    let restore = Restore {
        datadir,
        names,
        control,
        connect,
        wait,
        owner,
        stamp,
    };

    let started = Instant::now();
    let unpacked = match stage(&args, &restore, jobs, signals) {
        Ok(unpacked) => unpacked,
        Err(e) => {
            restore.remove_staging();
            return Err(e.context("nothing changed"));
        }
    };
    let prepared = prepare(&args, &restore, &unpacked, target_version.as_deref());
    if let Err(e) = prepared.and_then(|()| signals.check()) {
        restore.remove_staging();
        return Err(e.context("nothing changed"));
    }
    log::info!(
        files = unpacked.files, bytes = unpacked.bytes;
        "staged and verified {} files, {} in {:.1}s ({})",
        unpacked.files,
        format_size(unpacked.bytes),
        started.elapsed().as_secs_f64(),
        format_rate(unpacked.bytes, started.elapsed())
    );
    let downtime = restore.swap_and_start()?;
    log::info!(
        downtime_ms = downtime.as_millis() as u64;
        "server answered on the restored data; down for {:.1}s",
        downtime.as_secs_f64()
    );
    report_coordinates(&args, unpacked.manifest.as_ref())
}

/// Exactly one way to control the server.
fn control(args: &Args) -> Result<Control> {
    let service = args.string("service");
    let (stop, start) = (args.string("stop-cmd"), args.string("start-cmd"));
    let no_server = args.flag("no-server");
    let chosen = [
        service.is_some(),
        stop.is_some() || start.is_some(),
        no_server,
    ];
    if chosen.iter().filter(|&&c| c).count() != 1 {
        return Err(args.usage(
            "say how to control the server: --service NAME, --stop-cmd and --start-cmd, or --no-server",
        ));
    }
    Ok(match (service, stop, start) {
        (Some(name), _, _) => Control::Service(name),
        (_, Some(stop), Some(start)) => Control::Commands { stop, start },
        (_, Some(_), None) | (_, None, Some(_)) => {
            return Err(args.usage("--stop-cmd and --start-cmd go together"))
        }
        _ => Control::NoServer,
    })
}

/// Refuses a DIR that this restore must not replace.
fn check_target(args: &Args, datadir: &Datadir, control: &Control) -> Result<()> {
    let dir = datadir.dir.display();
    if !datadir.exists && !matches!(control, Control::NoServer) {
        return Err(Error::new(
            Exit::NoInput,
            format!("{dir} does not exist; for a fresh machine use --no-server"),
        ));
    }
    if datadir.exists && !datadir.empty && !datadir.is_datadir && !args.flag("force") {
        return Err(Error::usage(format!(
            "{dir} holds files but no MySQL data directory: check --datadir, or add --force"
        )));
    }
    Ok(())
}

/// --owner, else the owner of the DIR being replaced, else the mysql user.
fn owner(args: &Args, datadir: &Datadir) -> Result<Owner> {
    if let Some(name) = args.string("owner") {
        let user = User::from_name(&name)
            .ok()
            .flatten()
            .ok_or_else(|| args.usage(format!("--owner: no user '{name}'")))?;
        return Ok(Owner(Some((user.uid, user.gid))));
    }
    if datadir.exists {
        let meta = fs::metadata(&datadir.dir).ctx(format!("{}", datadir.dir.display()))?;
        return Ok(Owner(Some((
            Uid::from_raw(meta.uid()),
            Gid::from_raw(meta.gid()),
        ))));
    }
    Ok(Owner(
        User::from_name("mysql")
            .ok()
            .flatten()
            .map(|u| (u.uid, u.gid)),
    ))
}

/// Unpacks and verifies the archive into the staging directory.
fn stage(args: &Args, restore: &Restore, jobs: usize, signals: &Signals) -> Result<Unpacked> {
    let staging = &restore.names.staging;
    fs::DirBuilder::new()
        .mode(0o700)
        .create(staging)
        .map_err(|e| {
            Error::new(
                Exit::CantCreate,
                format!("creating {}: {e}", staging.display()),
            )
        })?;
    let mut input = Input::open(args.command.as_deref(), jobs)?;
    log::debug!("archive compression: {}", input.compression.name());
    let include_layout = args.flag("include-layout");
    let stamp = restore.stamp.clone();
    let roots = Roots {
        datadir: staging.clone(),
        layout: Box::new(move |manifest| layout_roots(manifest, include_layout, &stamp)),
    };
    let mut progress = Progress::new("unpacked", None);
    let unpacked = unpack::unpack(&mut input, roots, restore.owner, signals, &mut progress);
    progress.finish();
    let unpacked = match unpacked {
        Ok(unpacked) => unpacked,
        Err(e) => return Err(input.fail(e)),
    };
    input.finish()?;
    unpacked.verify(!args.flag("no-manifest"))?;
    Ok(unpacked)
}

/// Staging roots for the layout directories: beside each original, on its
/// filesystem. None when they are only verified, not restored.
fn layout_roots(
    manifest: &mysnap::archive::Manifest,
    include: bool,
    stamp: &str,
) -> Result<Option<Vec<(String, PathBuf)>>> {
    if !include {
        if !manifest.layout.is_empty() {
            log::warn!(
                "the archive holds files from outside the datadir ({}); \
                 they are verified but not restored without --include-layout",
                manifest
                    .layout
                    .iter()
                    .map(|l| l.original.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        return Ok(None);
    }
    let mut roots = Vec::new();
    for entry in &manifest.layout {
        let root = swap::sibling(Path::new(&entry.original), "restore", stamp);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&root)
            .map_err(|e| {
                Error::new(
                    Exit::CantCreate,
                    format!("creating {}: {e}", root.display()),
                )
            })?;
        roots.push((entry.archived.clone(), root));
    }
    Ok(Some(roots))
}

/// Everything between a verified stage and the swap: version check,
/// replica preparation, and making the staged data durable.
fn prepare(
    args: &Args,
    restore: &Restore,
    unpacked: &Unpacked,
    target_version: Option<&str>,
) -> Result<()> {
    let status = unpacked.manifest.as_ref().and_then(|m| m.status.as_ref());
    let backup_version = status
        .and_then(|s| s.get("server_version"))
        .and_then(|v| v.as_str());
    if let (Some(backup), Some(target)) = (backup_version, target_version) {
        if server::series(backup) > server::series(target) && !args.flag("force") {
            return Err(Error::new(
                Exit::Config,
                format!(
                    "the backup comes from {backup}, newer than this server's {target}: \
                     an older server may not read its files (--force restores anyway)"
                ),
            ));
        }
    }
    let old_datadir = status
        .and_then(|s| s.pointer("/layout/datadir"))
        .and_then(|v| v.as_str());
    replica::rewrite_indexes(&restore.names.staging, old_datadir, &restore.datadir.dir)?;
    if args.flag("as-replica") {
        let removed = replica::remove_cloned_state(&restore.names.staging)?;
        log::info!(
            "as a replica: removed {}",
            if removed.is_empty() {
                "nothing".to_string()
            } else {
                removed.join(", ")
            }
        );
    }
    swap::sync_filesystem(&restore.names.staging)?;
    swap::sync_dir(&restore.names.staging)
}

impl Restore {
    fn remove_staging(&self) {
        let _ = fs::remove_dir_all(&self.names.staging);
    }

    /// Stops the server, swaps, starts it. Returns the downtime. Signals
    /// stay blocked throughout, so the swap is never left half done.
    fn swap_and_start(&self) -> Result<Duration> {
        let dir = self.datadir.dir.display().to_string();
        if let Err(e) = self.control.stop() {
            self.remove_staging();
            return Err(e.context("nothing changed"));
        }
        let down = Instant::now();
        let kept = match self.datadir.swap(&self.names) {
            Ok(kept) => kept,
            Err(e) => {
                let restarted = self.control.start();
                self.remove_staging();
                return Err(e.context(format!(
                    "swap failed, {dir} left as it was ({})",
                    describe_restart(restarted)
                )));
            }
        };
        if let Some((uid, gid)) = self.owner.0 {
            nix::unistd::chown(&self.datadir.dir, Some(uid), Some(gid))
                .map_err(|e| Error::new(Exit::IoErr, format!("chown {dir}: {e}")))?;
        }
        if kept {
            log::info!("previous data kept in {}", self.names.old.display());
        }
        let started = self.control.start().and_then(|()| match self.control {
            Control::NoServer => Ok(String::new()),
            _ => server::wait_ready(&self.connect, self.wait),
        });
        match started {
            Ok(_) => Ok(down.elapsed()),
            Err(e) => Err(self.roll_back(e, kept)),
        }
    }

    /// The server did not come up on the restored data: set it aside,
    /// bring the previous data back, start the server on it.
    fn roll_back(&self, cause: Error, kept: bool) -> Error {
        let failed = self.names.failed.display();
        let _ = self.control.stop();
        if let Err(e) = self.datadir.swap_back(&self.names, kept) {
            return Error::new(
                Exit::Software,
                format!(
                    "{}; rolling back failed too: {}. Restored data: {}, previous: {}",
                    cause.message(),
                    e.message(),
                    self.datadir.dir.display(),
                    self.names.old.display()
                ),
            );
        }
        let restarted = self.control.start().and_then(|()| match self.control {
            Control::NoServer => Ok(String::new()),
            _ => server::wait_ready(&self.connect, self.wait),
        });
        Error::new(
            Exit::Unavailable,
            format!(
                "{}; rolled back: the restored data is in {failed}, the previous data is back in {} ({})",
                cause.message(),
                self.datadir.dir.display(),
                describe_restart(restarted.map(|_| ()))
            ),
        )
    }
}

fn describe_restart(result: Result<()>) -> String {
    match result {
        Ok(()) => "the server is running on it".to_string(),
        Err(e) => format!("but the server did not start: {}", e.message()),
    }
}

/// Prints the coordinates (and writes --coordinates-file).
fn report_coordinates(args: &Args, manifest: Option<&mysnap::archive::Manifest>) -> Result<()> {
    let coordinates = manifest
        .and_then(|m| m.status.as_ref())
        .map(Coordinates::from_status)
        .filter(|c| !c.is_empty());
    let text = match &coordinates {
        Some(c) => c.statements(),
        None => "-- the archive records no replication coordinates\n".to_string(),
    };
    print!("{text}");
    if let Some(file) = args.string("coordinates-file") {
        mysnap::private_file::write_atomically(Path::new(&file), text.as_bytes())
            .map_err(|e| e.context("--coordinates-file"))?;
    }
    Ok(())
}
