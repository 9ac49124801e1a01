//! Removing snapshots: safe to repeat, and safe in `ExecStopPost=`, where
//! it may run after anything at all went wrong: each group is repaired
//! first (repair.rs), and what a killed lvcreate left is removed too.

use crate::lvm::{self, Name, Volume};
use crate::{mount, repair};
use mysnap::{Error, Exit, Result};
use std::collections::BTreeSet;

/// A volume that lvm-snap may remove: a snapshot, or what a killed lvcreate
/// left of one (a volume with lvm-snap's tag that never became a snapshot).
pub fn removable(volume: &Volume) -> bool {
    volume.is_snapshot() || volume.carries(lvm::TAG)
}

/// Unmounts a snapshot wherever it is mounted, then removes it.
pub fn remove_snapshot(snapshot: &Volume) -> Result<()> {
    if let Some(device) = snapshot.device {
        for point in mount::mount_points(device)? {
            mount::unmount(&point)?;
            log::info!("unmounted {} from {}", snapshot.name, point.display());
        }
    }
    lvm::remove(&snapshot.name)?;
    if snapshot.is_snapshot() {
        log::info!("removed {}", snapshot.name);
    } else {
        log::warn!(
            "removed {}, which a killed lvcreate left before it became a snapshot",
            snapshot.name
        );
    }
    Ok(())
}

/// `remove`: the named snapshots, or with no names every volume carrying
/// the run tag. With a run tag, a snapshot without it is left alone: it
/// belongs to another run. One already gone is not an error.
pub fn remove(names: &[Name], run_tag: Option<&str>) -> Result<()> {
    let groups: BTreeSet<String> = if names.is_empty() {
        let tag = run_tag.expect("the caller asks for names or a tag");
        let tagged = lvm::report(&format!("@{tag}"))?.unwrap_or_default();
        tagged.into_iter().map(|v| v.name.vg).collect()
    } else {
        names.iter().map(|n| n.vg.clone()).collect()
    };
    let mut targets = Vec::new();
    for vg in &groups {
        let volumes = repair::repair(vg)?.unwrap_or_default();
        if names.is_empty() {
            let tag = run_tag.expect("checked above");
            targets.extend(
                volumes
                    .into_iter()
                    .filter(|v| v.carries(tag) && removable(v)),
            );
            continue;
        }
        for name in names.iter().filter(|n| n.vg == *vg) {
            match volumes.iter().find(|v| v.name == *name) {
                None => log::info!("{name} is already gone"),
                Some(v) if !removable(v) => {
                    return Err(Error::new(
                        Exit::DataErr,
                        format!("{name} is not a snapshot: not removing it"),
                    ))
                }
                Some(v) => targets.push(v.clone()),
            }
        }
    }
    let mut failed = None;
    let mut touched = BTreeSet::new();
    for volume in targets {
        if let Some(tag) = run_tag {
            if !volume.carries(tag) {
                log::warn!(
                    "{} is not tagged {tag}: another run's, left alone",
                    volume.name
                );
                continue;
            }
        }
        match remove_snapshot(&volume) {
            Ok(()) => {
                touched.insert(volume.name.vg.clone());
            }
            Err(e) => {
                log::error!("{e}");
                failed = Some(e);
            }
        }
    }
    // lvremove of what a killed lvcreate left can leave layers behind.
    for vg in touched {
        repair::repair(&vg)?;
    }
    failed.map_or(Ok(()), Err)
}
