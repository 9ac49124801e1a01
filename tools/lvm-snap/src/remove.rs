//! Removing snapshots: safe to repeat, and safe in `ExecStopPost=`, where
//! it may run after anything at all went wrong: each group is repaired
//! first (repair.rs), and what a killed lvcreate left is removed too.

use crate::lvm::{self, Name, Volume};
use crate::{mount, repair};
use mysnap::{Error, Exit, Result};
use std::collections::BTreeSet;

/// A volume that lvm-snap may remove: a snapshot, or what a killed lvcreate
/// left of one: a volume that never became a snapshot, with both tags that
/// `create` gives its snapshots as lvcreate makes them (lvm-snap's, and the
/// `mysnap-origin:` tag naming the origin), that is no origin, and that
/// nothing holds open. A tag is only a label anyone can set, so a tagged
/// volume that is an origin, mounted or in use is never taken for a
/// leftover, whatever `--tag` or a name says; nor is a plain volume that
/// someone tagged `mysnap` by hand.
pub fn removable(volume: &Volume) -> bool {
    volume.is_snapshot()
        || volume.carries(lvm::TAG)
            && volume.tagged_origin().is_some()
            && !volume.is_origin()
            && !volume.is_open()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<Volume> {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        lvm::parse_report(&std::fs::read(path).unwrap()).unwrap()
    }

    /// The same report with one volume's lv_attr and tags replaced.
    fn altered(name: &str, lv: &str, attr: &str, tags: &str) -> Vec<Volume> {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        for row in json["report"][0]["lv"].as_array_mut().unwrap() {
            if row["lv_name"] == lv {
                row["lv_attr"] = attr.into();
                row["lv_tags"] = tags.into();
            }
        }
        lvm::parse_report(json.to_string().as_bytes()).unwrap()
    }

    fn find<'a>(volumes: &'a [Volume], lv: &str) -> &'a Volume {
        volumes.iter().find(|v| v.name.lv == lv).unwrap()
    }

    #[test]
    fn only_snapshots_and_true_leftovers_are_removable() {
        // What a killed lvcreate left (recorded in the VM): tagged, plain,
        // not open; lvcreate gives it the origin tag too, which this
        // recording predates.
        let mut killed = fixture("killed/origin-suspended/lvs.json");
        let left = killed.iter_mut().find(|v| v.name.lv == "db-snap").unwrap();
        assert!(
            !removable(left),
            "tagged mysnap by hand, without the origin tag"
        );
        left.tags.push(lvm::origin_tag("NO7sKk-origin"));
        assert!(removable(find(&killed, "db-snap")));
        assert!(!removable(find(&killed, "db")), "an untagged origin");
        let fresh = fixture("lvs-fresh.json");
        assert!(removable(find(&fresh, "data-snap")));
        // A tag anyone can set does not make a volume in use removable.
        let tags = "mysnap,mysnap-run:k71-KILL";
        let mounted = altered(
            "killed/origin-suspended/lvs.json",
            "scratch",
            "-wi-ao----",
            tags,
        );
        assert!(!removable(find(&mounted, "scratch")), "tagged but mounted");
        let origin = altered("lvs-fresh.json", "data", "owi-a-s---", "mysnap");
        assert!(!removable(find(&origin, "data")), "tagged but an origin");
    }
}
