//! Removing snapshots: safe to repeat, and safe in `ExecStopPost=`, where
//! it may run after anything at all went wrong.

use crate::lvm::{self, Name, Volume};
use crate::{dm, mount};
use mysnap::{Error, Exit, Result};

/// Unmounts a snapshot wherever it is mounted, then removes it.
pub fn remove_snapshot(snapshot: &Volume) -> Result<()> {
    if let Some(device) = snapshot.device {
        for point in mount::mount_points(device)? {
            mount::unmount(&point)?;
            log::info!("unmounted {} from {}", snapshot.name, point.display());
        }
    }
    lvm::remove(&snapshot.name)?;
    log::info!("removed {}", snapshot.name);
    Ok(())
}

/// `remove`: the named snapshots, or with no names every snapshot carrying
/// the run tag. With a run tag, a snapshot without it is left alone: it
/// belongs to another run. One already gone is not an error.
pub fn remove(names: &[Name], run_tag: Option<&str>) -> Result<()> {
    let snapshots = if names.is_empty() {
        let tag = run_tag.expect("the caller asks for names or a tag");
        lvm::report(&format!("@{tag}"))?.unwrap_or_default()
    } else {
        let mut found = Vec::new();
        for name in names {
            let volumes = lvm::report(&name.vg)?.unwrap_or_default();
            dm::resume_suspended(&volumes)?;
            match volumes.into_iter().find(|v| v.name == *name) {
                None => log::info!("{name} is already gone"),
                Some(v) if !v.is_snapshot() => {
                    return Err(Error::new(
                        Exit::DataErr,
                        format!("{name} is not a snapshot: not removing it"),
                    ))
                }
                Some(v) => found.push(v),
            }
        }
        found
    };
    let mut failed = None;
    for snapshot in snapshots {
        if let Some(tag) = run_tag {
            if !snapshot.carries(tag) {
                log::warn!(
                    "{} is not tagged {tag}: another run's, left alone",
                    snapshot.name
                );
                continue;
            }
        }
        if let Err(e) = remove_snapshot(&snapshot) {
            log::error!("{e}");
            failed = Some(e);
        }
    }
    failed.map_or(Ok(()), Err)
}
