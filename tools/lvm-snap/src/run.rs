//! `run`: a snapshot's whole life around one COMMAND. Mount it, run
//! COMMAND in it, check that it never overflowed, unmount it and remove it,
//! whatever happens on the way.

use crate::create::{self, Request};
use crate::lvm::{self, Name, Volume};
use crate::{mount, remove};
use mysnap::error::IoContext;
use mysnap::signals::Signals;
use mysnap::{child, Error, Exit, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Uses the snapshot `request` names (one origin), or makes one when it
/// names an origin; runs COMMAND on it; removes it.
pub fn run(request: Request, command: &[String], signals: &Signals) -> Result<()> {
    let target = &request.origins[0];
    let volume = crate::repair::repair(&target.vg)?
        .unwrap_or_default()
        .into_iter()
        .find(|v| v.name == *target)
        .ok_or_else(|| Error::new(Exit::NoInput, format!("no logical volume {target}")))?;
    let snapshot = if volume.is_snapshot() {
        volume
    } else {
        let made = create::create(&request, signals)?;
        lvm::find(&made[0])?
            .ok_or_else(|| Error::new(Exit::Software, format!("{} vanished once made", made[0])))?
    };
    let outcome = use_snapshot(&snapshot, command, signals);
    let removed = remove::remove_snapshot(&snapshot);
    if let Err(e) = &removed {
        if outcome.is_err() {
            log::error!("{e}");
        }
    }
    outcome.and(removed)
}

fn use_snapshot(snapshot: &Volume, command: &[String], signals: &Signals) -> Result<()> {
    if snapshot.is_invalid() {
        return Err(overflowed(&snapshot.name));
    }
    if !snapshot.is_active() {
        return Err(Error::new(
            Exit::NoInput,
            format!("{} is not active", snapshot.name),
        ));
    }
    signals.check()?;
    let dir = private_dir()?;
    let outcome = mount::mount(Path::new(&snapshot.path()), &dir).and_then(|fs| {
        log::info!("mounted {} ({fs}) on {}", snapshot.name, dir.display());
        let ran = run_command(&dir, command, signals);
        let checked = check_overflow(&snapshot.name);
        let unmounted = mount::unmount(&dir);
        // The overflow matters most: COMMAND's output is not a backup.
        checked.and(ran).and(unmounted)
    });
    if let Err(e) = std::fs::remove_dir(&dir) {
        log::warn!("cannot remove {}: {e}", dir.display());
    }
    outcome
}

/// COMMAND in the mount point, with its path in MYSNAP_SNAPDIR; its
/// stdout is ours, untouched.
fn run_command(dir: &Path, argv: &[String], signals: &Signals) -> Result<()> {
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .current_dir(dir)
        .env("MYSNAP_SNAPDIR", dir)
        .stdout(Stdio::inherit());
    let mut running = child::spawn_command(&mut command)?;
    let status = signals.wait_child(&mut running, None, &mut |_| {})?.status;
    signals.check()?;
    child::check(argv, status)
}

fn check_overflow(name: &Name) -> Result<()> {
    let snapshot = lvm::find(name)?
        .ok_or_else(|| Error::new(Exit::Software, format!("{name} vanished while in use")))?;
    if snapshot.is_invalid() {
        return Err(overflowed(name));
    }
    if let Some(percent) = snapshot.percent {
        log::info!("{name} was {percent:.1}% full at the end");
    }
    Ok(())
}

fn overflowed(name: &Name) -> Error {
    Error::new(
        Exit::DataErr,
        format!(
            "{name} overflowed: its copy of the origin is lost, so what was read from it is \
             no backup; give the snapshot more --size"
        ),
    )
}

/// A fresh directory, mode 0700, under $RUNTIME_DIRECTORY (systemd's
/// RuntimeDirectory=) or the temporary directory.
fn private_dir() -> Result<PathBuf> {
    let base = std::env::var_os("RUNTIME_DIRECTORY")
        .and_then(|dirs| {
            let dirs = dirs.to_string_lossy().to_string();
            dirs.split(':').next().map(PathBuf::from)
        })
        .unwrap_or_else(std::env::temp_dir);
    nix::unistd::mkdtemp(&base.join("lvm-snap.XXXXXX"))
        .map_err(std::io::Error::from)
        .ctx(format!("cannot make a mount point in {}", base.display()))
}
