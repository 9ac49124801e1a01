//! snap-tar: archive a directory (a mounted snapshot's data files) as a tar
//! on stdout, compressed in parallel, with a manifest first and a checksum
//! list last.

mod archive;
mod compress;
mod layout;
mod sparse;
mod walk;

use archive::Archiver;
use compress::{Compress, Output};
use layout::Layout;
use mysnap::archive::{LayoutEntry, Manifest, FORMAT, LAYOUT_DIR};
use mysnap::cli::{Args, Cli};
use mysnap::error::IoContext;
use mysnap::progress::Progress;
use mysnap::quantity::{format_rate, format_size};
use mysnap::status::Status;
use mysnap::{Error, Exit, Result};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use walk::Excludes;

const SYNOPSIS: &str = "snap-tar [OPTIONS] DIR";
const ABOUT: &str =
    "Writes a tar archive of DIR to stdout, gzip-compressed in parallel as independent
members. The first entry is mysnap/manifest.json (host, time, versions, the lock's
coordinates from --status-file, the layout); the last, mysnap/checksums.json
(SHA-256 of every file), marks the archive complete. Sparse files keep their holes.";

fn cli() -> Cli {
    let mut cli = Cli::new("snap-tar", SYNOPSIS, ABOUT);
    let opts = cli.opts();
    opts.optmulti(
        "x",
        "exclude",
        "leave out paths matching PATTERN (a glob; without '/' it matches names at any depth)",
        "PATTERN",
    );
    opts.optopt(
        "j",
        "jobs",
        "compression threads (default: the number of CPUs)",
        "N",
    );
    opts.optopt("l", "level", "gzip level 1-9 (default: 6)", "N");
    opts.optopt("", "compress", "gzip or none (default: gzip)", "METHOD");
    opts.optopt(
        "s",
        "status-file",
        "mysql-lock-hold's status file, put into the manifest",
        "FILE",
    );
    opts.optmulti(
        "L",
        "include-layout",
        "also archive the snapshot mounted at SNAPSHOT_MOUNT, restored to ORIGINAL",
        "ORIGINAL=SNAPSHOT_MOUNT",
    );
    cli
}

fn main() {
    mysnap::logging::init();
    mysnap::logging::exit(cli().parse().and_then(run));
}

fn run(args: Args) -> Result<()> {
    let dir = PathBuf::from(&args.operands(1, 1, "DIR")?[0]);
    let compress = match args.string("compress").as_deref() {
        None | Some("gzip") => Compress::Gzip {
            level: args.number("level", 6, 1, 9)?,
            jobs: args.number("jobs", cpus(), 1, 256)?,
        },
        Some("none") => Compress::None,
        Some(other) => {
            return Err(args.usage(format!("--compress '{other}': expected gzip or none")))
        }
    };
    let excludes = Excludes::new(&args.matches.opt_strs("exclude"))?;
    let layouts = args
        .matches
        .opt_strs("include-layout")
        .iter()
        .map(|l| Layout::parse(l))
        .collect::<Result<Vec<_>>>()?;
    let status = args
        .string("status-file")
        .map(|f| Status::read_file(Path::new(&f)))
        .transpose()?;
    if !std::fs::metadata(&dir)
        .ctx(format!("cannot archive {}", dir.display()))?
        .is_dir()
    {
        return Err(Error::new(
            Exit::NoInput,
            format!("{}: not a directory", dir.display()),
        ));
    }
    if std::io::stdout().is_terminal() {
        return Err(Error::usage(
            "refusing to write an archive to a terminal; redirect stdout or pipe it to s3-put",
        ));
    }
    reserve_names(&dir)?;
    let manifest = manifest(&dir, status, &layouts);
    let mut total = walk::total_size(&dir, &excludes)?;
    for layout in &layouts {
        total += walk::total_size(&layout.mount, &excludes)?;
    }
    let (out, written) = Output::stdout(compress)?;
    let mut archiver = Archiver::new(out, &manifest, Progress::new("archived", Some(total)))?;
    walk::walk(&dir, Path::new(""), &excludes, &mut |e| archiver.add(e))?;
    for (layout, entry) in layouts.iter().zip(&manifest.layout) {
        let prefix = PathBuf::from(&entry.archived);
        let root = std::fs::symlink_metadata(&layout.mount)
            .ctx(format!("cannot stat {}", layout.mount.display()))?;
        archiver.add(walk::Entry {
            name: prefix.clone(),
            path: layout.mount.clone(),
            meta: root,
        })?;
        walk::walk(&layout.mount, &prefix, &excludes, &mut |e| archiver.add(e))?;
    }
    let files = archiver.files();
    let elapsed = archiver.elapsed();
    archiver.finish()?.finish()?;
    let stored = written.load(std::sync::atomic::Ordering::Relaxed);
    log::info!(
        files = files, bytes = total, archive_bytes = stored;
        "archived {} in {files} files as {} in {:.1} s ({})",
        format_size(total),
        format_size(stored),
        elapsed.as_secs_f64(),
        format_rate(total, elapsed)
    );
    Ok(())
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn manifest(dir: &Path, status: Option<Status>, layouts: &[Layout]) -> Manifest {
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().to_string())
        .unwrap_or_default();
    Manifest {
        format: FORMAT,
        host,
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        tools: [(
            "snap-tar".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        )]
        .into(),
        source: dir.display().to_string(),
        status,
        layout: layouts
            .iter()
            .enumerate()
            .map(|(n, l)| LayoutEntry {
                archived: format!("{LAYOUT_DIR}/{n}"),
                original: l.original.clone(),
            })
            .collect(),
    }
}

/// DIR's own files must not take the names the format reserves.
fn reserve_names(dir: &Path) -> Result<()> {
    for name in [
        mysnap::archive::MANIFEST_PATH,
        mysnap::archive::CHECKSUMS_PATH,
        LAYOUT_DIR,
    ] {
        if std::fs::symlink_metadata(dir.join(name)).is_ok() {
            return Err(Error::new(
                Exit::DataErr,
                format!(
                    "{} holds {name}, a name snap-tar reserves for itself",
                    dir.display()
                ),
            ));
        }
    }
    Ok(())
}
