//! lvm-snap: LVM snapshots for backups, as small subcommands that compose.
//! `create` runs under mysql-lock-hold, `run` under s3-put; `remove` is safe
//! to repeat; overflowed snapshots and suspended origins are found and said.

mod create;
mod dm;
mod lvm;
mod mount;
mod remove;
mod repair;
mod run;
mod status;
mod vglock;

use create::{Request, SnapshotSize};
use lvm::Name;
use mysnap::cli::{Args, Cli};
use mysnap::signals::Signals;
use mysnap::{Error, Exit, Result};
use std::path::Path;

const SYNOPSIS: &str = "lvm-snap [OPTIONS] create VG/LV [VG/LV...]
       lvm-snap [OPTIONS] mount VG/SNAP DIR
       lvm-snap [OPTIONS] status VG/SNAP
       lvm-snap [OPTIONS] remove [VG/SNAP...]
       lvm-snap [OPTIONS] run VG/LV -- COMMAND [ARGS...]";
const ABOUT: &str =
    "create: snapshots the volumes (fast enough to run under mysql-lock-hold), tagged
  with the run's token, and prints their device paths.
mount: mounts a snapshot read-only with the options its filesystem needs.
status: says how full a snapshot is; exits 65 if it overflowed.
remove: unmounts and removes snapshots; a snapshot already gone is fine.
run: mounts the snapshot VG/LV names (or makes one when it names an origin),
  runs COMMAND in it with MYSNAP_SNAPDIR set, exits 65 if the snapshot
  overflowed, and unmounts and removes it in any case.";

fn cli() -> Cli {
    let mut cli = Cli::new("lvm-snap", SYNOPSIS, ABOUT);
    let opts = cli.opts();
    opts.optopt(
        "n",
        "name",
        "create, run: the snapshot's name (default: LV-snap; NAME-LV for several volumes)",
        "NAME",
    );
    opts.optopt(
        "L",
        "size",
        "create, run: copy-on-write space, as 10G or 20%ORIGIN (default: 20%ORIGIN)",
        "SIZE",
    );
    opts.optopt(
        "",
        "tag",
        "create, run: tag snapshots with this run token (default: $INVOCATION_ID); \
         remove: only snapshots with it",
        "TOKEN",
    );
    opts.optflag(
        "",
        "replace",
        "create, run: remove an existing snapshot of the same name first",
    );
    cli
}

/// SIGINT, SIGTERM and SIGHUP are blocked from the start and read when
/// lvm-snap is ready for them: never while an LVM tool runs (the tools
/// inherit the mask, see lvm.rs); while COMMAND runs they are passed on to
/// it, so that cleaning up always happens.
const STOPPING: [nix::sys::signal::Signal; 3] = [
    nix::sys::signal::Signal::SIGINT,
    nix::sys::signal::Signal::SIGTERM,
    nix::sys::signal::Signal::SIGHUP,
];

fn main() {
    // Before anything else, and before any thread: signals become events.
    let signals = Signals::block(&STOPPING, &[]);
    mysnap::logging::init();
    mysnap::logging::exit(
        signals.and_then(|signals| cli().parse().and_then(|args| dispatch(args, &signals))),
    );
}

fn dispatch(args: Args, signals: &Signals) -> Result<()> {
    let operands = args.operands(
        1,
        usize::MAX,
        "a subcommand: create, mount, status, remove or run",
    )?;
    let (subcommand, operands) = operands.split_first().expect("one operand at least");
    let allowed: &[&str] = match subcommand.as_str() {
        "create" | "run" => &["name", "size", "tag", "replace"],
        "remove" => &["tag"],
        "mount" | "status" => &[],
        other => return Err(args.usage(format!("unknown subcommand '{other}'"))),
    };
    for option in ["name", "size", "tag", "replace"] {
        if args.flag(option) && !allowed.contains(&option) {
            return Err(args.usage(format!("{subcommand} takes no --{option}")));
        }
    }
    if (subcommand == "run") != args.command.is_some() {
        return Err(args.usage(match subcommand.as_str() {
            "run" => "run needs '-- COMMAND'".to_string(),
            _ => format!("{subcommand} runs no COMMAND"),
        }));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::new(
            Exit::NoPerm,
            "lvm-snap must run as root: LVM and mount(2) need it",
        ));
    }
    match subcommand.as_str() {
        "create" => {
            let request = request(&args, names(&args, operands, 1, usize::MAX, "VG/LV")?)?;
            for name in create::create(&request, signals)? {
                println!("/dev/{}/{}", name.vg, name.lv);
            }
            Ok(())
        }
        "run" => {
            let request = request(&args, names(&args, operands, 1, 1, "VG/LV")?)?;
            let command = args.command.as_deref().expect("checked above");
            run::run(request, command, signals)
        }
        "mount" => {
            count(&args, operands, 2, 2, "VG/SNAP and DIR")?;
            mount::mount_snapshot(&Name::parse(&operands[0])?, Path::new(&operands[1]))
        }
        "status" => status::status(&names(&args, operands, 1, 1, "VG/SNAP")?[0]),
        _ => {
            let tag = args.string("tag");
            if let Some(token) = &tag {
                check_token(&args, token)?;
            }
            let names = names(&args, operands, 0, usize::MAX, "")?;
            if names.is_empty() && tag.is_none() {
                return Err(args.usage("remove: name snapshots, or give --tag"));
            }
            remove::remove(&names, tag.map(|t| lvm::run_tag(&t)).as_deref())
        }
    }
}

/// The subcommand's operands, checked against how many it takes.
fn count(args: &Args, operands: &[String], min: usize, max: usize, what: &str) -> Result<()> {
    if operands.len() < min {
        return Err(args.usage(format!("missing {what}")));
    }
    if operands.len() > max {
        return Err(args.usage(format!("unexpected argument '{}'", operands[max])));
    }
    Ok(())
}

fn names(
    args: &Args,
    operands: &[String],
    min: usize,
    max: usize,
    what: &str,
) -> Result<Vec<Name>> {
    count(args, operands, min, max, what)?;
    operands.iter().map(|o| Name::parse(o)).collect()
}

fn check_token(args: &Args, token: &str) -> Result<()> {
    if lvm::valid_token(token) {
        return Ok(());
    }
    Err(args.usage(format!(
        "--tag '{token}': a token is letters, digits and _+.-/=!:&#, at most 100"
    )))
}

/// What `create` and `run` make: the options, with the run token from
/// --tag or systemd's $INVOCATION_ID.
fn request(args: &Args, origins: Vec<Name>) -> Result<Request> {
    let mut tags = vec![lvm::TAG.to_string()];
    let token = args.string("tag").or_else(|| {
        std::env::var("INVOCATION_ID")
            .ok()
            .filter(|t| !t.is_empty())
    });
    if let Some(token) = token {
        check_token(args, &token)?;
        tags.push(lvm::run_tag(&token));
    }
    Ok(Request {
        origins,
        name: args.string("name"),
        size: args.value("size", SnapshotSize::DEFAULT, SnapshotSize::parse)?,
        tags,
        replace: args.flag("replace"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exit code of a command line that must fail before touching LVM.
    fn code(argv: &[&str]) -> i32 {
        let argv = argv.iter().map(|a| a.to_string()).collect();
        let signals = Signals::block(&STOPPING, &[]).unwrap();
        let result = cli()
            .parse_from(argv)
            .and_then(|args| dispatch(args, &signals));
        result.unwrap_err().code()
    }

    #[test]
    fn usage_errors_exit_64_before_lvm_runs() {
        for argv in [
            &[][..],
            &["bogus"],
            &["mount", "vg0/snap"],
            &["mount", "vg0/snap", "/mnt", "extra"],
            &["status"],
            &["status", "vg0/a", "vg0/b"],
            &["status", "--size", "1G", "vg0/snap"],
            &["mount", "--replace", "vg0/snap", "/mnt"],
            &["remove", "--name", "x", "vg0/snap"],
            &["remove"],
            &["run", "vg0/data"],
            &["run", "vg0/a", "vg0/b", "--", "true"],
            &["create", "vg0/data", "--", "true"],
            &["create"],
            &["create", "data"],
            &["create", "vg0/data", "--size", "0"],
            &["create", "vg0/data", "--size", "150%ORIGIN"],
            &["create", "vg0/data", "--tag", "two words"],
            &["remove", "--tag", "", "vg0/snap"],
        ] {
            assert_eq!(code(argv), 64, "{argv:?}");
        }
    }
}
