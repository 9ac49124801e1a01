//! The command line: its options, and what they ask for.

use crate::layout;
use crate::server::Control;
use crate::swap::Datadir;
use crate::until::Until;
use mysnap::cli::{Args, Cli};
use mysnap::error::IoContext;
use mysnap::mysql::ConnectOptions;
use mysnap::quantity::parse_duration;
use mysnap::restore::unpack::Owner;
use mysnap::{Error, Exit, Result};
use nix::unistd::{Gid, Uid, User};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

const SYNOPSIS: &str =
    "mysql-restore-dir [OPTIONS] --datadir DIR (--service NAME | --stop-cmd CMD --start-cmd CMD | --no-server) [--until TARGET --binlog-archive s3://BUCKET/PREFIX/] [-- COMMAND [ARGS...]]";
const ABOUT: &str = "Restores a MySQL/MariaDB data directory from an archive (snap-tar's, or a
plain tar with --no-manifest) read from stdin or from COMMAND's stdout. Unpacks
and verifies beside DIR while the server runs, then stops it, keeps DIR as
DIR.old-<UTC time>, swaps the restored data in, starts the server and waits
until it answers. Prints the replication coordinates the archive recorded.
With --until, then replays the binary log archived by mysql-binlog-archive from
those coordinates up to TARGET (mysql-binlog-replay): a point-in-time restore.
Whether the archive covers the range is checked before the server stops; if it
does not, nothing changes.";

pub fn cli() -> Cli {
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
    opts.optmulti(
        "",
        "include-layout",
        "also restore the archive's files from ORIGINAL outside the datadir, into TARGET (default: ORIGINAL); repeatable",
        "ORIGINAL[=TARGET]",
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
        "in-place",
        "stop the server first, then move DIR aside and unpack into it (longer downtime)",
    );
    opts.optflag(
        "",
        "force",
        "restore over a non-datadir DIR, or a backup from a newer server",
    );
    opts.optopt("j", "jobs", "decompression threads (default: 2)", "N");
    opts.optopt(
        "",
        "until",
        "then replay the binlog archive from the backup's coordinates up to a time, a GTID \
         (inclusive unless --exclusive) or FILE:POS; checked before the server stops",
        "TARGET",
    );
    opts.optopt(
        "",
        "binlog-archive",
        "with --until: where mysql-binlog-archive stores the binlog",
        "s3://BUCKET/PREFIX/",
    );
    opts.optopt(
        "",
        "binlog-epoch",
        "with --until: replay this epoch of the archive (needed when the backup's file is in more than one)",
        "NAME",
    );
    opts.optflag(
        "",
        "exclusive",
        "with a GTID --until: stop before that transaction",
    );
    opts.optopt(
        "",
        "mysqld",
        "with --until and --no-server: the server to start privately for the replay (default: mariadbd, else mysqld)",
        "PATH",
    );
    opts.optmulti(
        "",
        "mysqld-option",
        "with --until and --no-server: an option for that server, first on its command line; repeatable",
        "OPTION",
    );
    opts.optopt(
        "",
        "replay-tool",
        "with --until: the mysql-binlog-replay to run (default: beside this tool, else on PATH)",
        "PATH",
    );
    for (name, help, hint) in crate::until::S3_OPTIONS {
        opts.optopt("", name, help, hint);
    }
    mysnap::mysql::add_options(opts);
    cli
}

/// What the command line asks for.
pub struct Options {
    pub dir: PathBuf,
    pub control: Control,
    pub wait: Duration,
    pub jobs: usize,
    pub in_place: bool,
    pub connect: ConnectOptions,
    pub mappings: Vec<layout::Mapping>,
    /// --until: the replay after the restore.
    pub until: Option<Until>,
}

impl Options {
    pub fn from_args(args: &Args) -> Result<Options> {
        args.operands(0, 0, "nothing")?;
        let dir = PathBuf::from(
            args.string("datadir")
                .ok_or_else(|| args.usage("--datadir DIR is required"))?,
        );
        let control = control(args)?;
        let wait = args.value("wait", Duration::from_secs(300), parse_duration)?;
        Ok(Options {
            until: Until::from_args(args, &control, wait)?,
            control,
            wait,
            jobs: args.number("jobs", 2, 1, 64)?,
            in_place: args.flag("in-place"),
            connect: ConnectOptions::from_args(args, "mysql-restore-dir")?,
            mappings: layout::parse(&args.strings("include-layout"), &dir)?,
            dir,
        })
    }
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
pub fn check_target(args: &Args, datadir: &Datadir, control: &Control) -> Result<()> {
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
pub fn owner(args: &Args, datadir: &Datadir) -> Result<Owner> {
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
