//! Repairing what a killed LVM command left half-done in a volume group.
//!
//! lvcreate -s changes device-mapper in steps: it makes the new devices
//! (the origin's `-real` layer, the snapshot's `-cow` and the snapshot)
//! and loads their tables, loads a snapshot-origin table into the origin
//! as its inactive table, suspends the origin, commits the new metadata,
//! and resumes everything, which swaps the new tables in. Killed between
//! two steps, it leaves the origin suspended (every write to the database
//! hangs), or with a table loaded that maps onto a device without one
//! (resuming it then fails every read and write), and devices no volume
//! uses. lvremove leaves the same kinds of state.
//!
//! The repair decides from what LVM committed, as LVM itself would build
//! the tables from it: under the group's lock (so no LVM command is
//! half-way), each device's expected table follows from the metadata (an
//! origin maps snapshot-origin, a snapshot maps snapshot, anything else a
//! plain mapping; a `-real` layer belongs to an origin, a `-cow` layer to a
//! snapshot). An inactive table that matches is what the killed command
//! meant to switch to after committing: it goes live (rolled forward). One
//! that does not match was loaded for metadata that was never committed:
//! it is dropped (rolled back). Then every suspended device resumes, lower
//! layers first, and devices that no volume accounts for, or that are left
//! without any table, are removed once nothing holds them open.
//!
//! Either way the origin ends with the table the metadata says it has, and
//! every change is one LVM makes itself: so the repair can itself be killed
//! at any point and run again. Devices of kinds lvm-snap does not make
//! (thin, raid, cache...) are never judged, only reported.
//!
//! Only lvm-snap's own devices are changed: the volumes that carry its tag
//! (a snapshot, or the plain volume that lvcreate commits first and turns
//! into one later), what their tables map onto (an origin's `-real`
//! layer names the origin), the origins of those snapshots (a plain
//! volume not yet a snapshot names its origin in a `mysnap-origin:` tag),
//! and the
//! other snapshots of such an origin (an origin resumes after all of its
//! snapshots). Any other suspended device of the group, which an admin
//! or another tool may have suspended on purpose, is left as it is and
//! said. Devices that no volume accounts for at all are removed once
//! nothing holds them: LVM's metadata, read under its lock, disowns them.

use crate::dm::{self, Device, Kind, Table};
use crate::lvm::{self, Name, Volume};
use crate::vglock::{self, VgLock};
use mysnap::{Error, Exit, Result};
use std::collections::{HashMap, HashSet};

/// Repairs volume group `vg` and returns its report, read under the same
/// lock (None: there is no such group).
pub fn repair(vg: &str) -> Result<Option<Vec<Volume>>> {
    let lock = VgLock::exclusive(vg)?;
    let devices = dm::devices()?;
    let Some(volumes) = lvm::report_locked(vg, &lock)? else {
        return Ok(None);
    };
    let Some(group) = volumes.first().map(|v| v.vg_uuid.replace('-', "")) else {
        return Ok(Some(volumes));
    };
    let ours: Vec<&Device> = devices
        .iter()
        .filter(|d| dm::parse_uuid(&d.uuid).is_some_and(|id| id.vg == group))
        .collect();
    // The common case costs one dmsetup: nothing half-done, nothing stray.
    if !ours.iter().any(|d| looks_wrong(d, &volumes)) {
        return Ok(Some(volumes));
    }
    let live = dm::tables(false, &ours)?;
    let inactive = if ours.iter().any(|d| d.inactive) {
        dm::tables(true, &ours)?
    } else {
        HashMap::new()
    };
    let plan = plan(&ours, &live, &inactive, &volumes);
    for warning in &plan.left {
        log::warn!("{warning}");
    }
    if !plan.steps.is_empty() {
        check_locking(vg)?;
        apply(vg, &plan.steps)?;
    }
    Ok(Some(volumes))
}

/// A snapshot that exists (its group repaired first), or exit 66; not an
/// origin, or exit 65.
pub fn snapshot(name: &Name) -> Result<Volume> {
    let volumes = repair(&name.vg)?.unwrap_or_default();
    let volume = volumes
        .into_iter()
        .find(|v| v.name == *name)
        .ok_or_else(|| Error::new(Exit::NoInput, format!("no snapshot {name}")))?;
    if !volume.is_snapshot() {
        return Err(Error::new(
            Exit::DataErr,
            format!("{name} is not a snapshot"),
        ));
    }
    Ok(volume)
}

fn looks_wrong(device: &Device, volumes: &[Volume]) -> bool {
    device.suspended
        || device.inactive
        || !device.live
        || matches!(expected(device, volumes), Expected::Orphan)
}

/// What the metadata says a device should map.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expected {
    Table(Kind),
    /// No volume accounts for it.
    Orphan,
    /// A layer lvm-snap does not know (a thin pool's, a cache's...).
    Unknown,
}

fn expected(device: &Device, volumes: &[Volume]) -> Expected {
    let Some(id) = dm::parse_uuid(&device.uuid) else {
        return Expected::Unknown;
    };
    let Some(volume) = volumes.iter().find(|v| v.lv_uuid.replace('-', "") == id.lv) else {
        return Expected::Orphan;
    };
    match id.layer {
        None if volume.is_origin() => Expected::Table(Kind::Origin),
        None if volume.is_snapshot() => Expected::Table(Kind::Snapshot),
        None => Expected::Table(Kind::Plain),
        Some("real") if volume.is_origin() => Expected::Table(Kind::Plain),
        Some("cow") if volume.is_snapshot() => Expected::Table(Kind::Plain),
        Some("real" | "cow") => Expected::Orphan,
        Some(_) => Expected::Unknown,
    }
}

/// One change to device-mapper, in the order it must be made.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Drop an inactive table that the metadata does not back.
    Clear(String),
    /// Resume; with `switch`, its inactive table goes live.
    Resume { name: String, switch: bool },
    /// Remove a device nothing holds open and no volume needs.
    Remove(String),
}

#[derive(Debug, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// What is wrong and stays so, said for the admin.
    pub left: Vec<String>,
}

/// Decides the repair of one group's devices from their tables and the
/// group's metadata; see the module's comment.
pub fn plan(
    devices: &[&Device],
    live: &HashMap<String, Table>,
    inactive: &HashMap<String, Table>,
    volumes: &[Volume],
) -> Plan {
    let mut plan = Plan::default();
    let owned = owned(devices, live, inactive, volumes);
    // Each device's tables once the clears and switches are made.
    let mut after: HashMap<&str, Vec<&Table>> = HashMap::new();
    let mut resume: Vec<(&Device, bool)> = Vec::new();
    let mut removable: Vec<&Device> = Vec::new();
    for &device in devices {
        let name = device.name.as_str();
        let live_table = live.get(name);
        let inactive_table = inactive.get(name).filter(|_| device.inactive);
        let expected = expected(device, volumes);
        if !owned.contains(name) {
            if device.suspended || device.inactive || expected == Expected::Orphan {
                plan.left.push(format!(
                    "{name} is suspended, has an inactive table or belongs to no volume, but it \
                     is none of lvm-snap's snapshots or their origins: left as it is (see \
                     'dmsetup info {name}')"
                ));
            }
            after.insert(name, live_table.into_iter().chain(inactive_table).collect());
            continue;
        }
        let judged = !matches!(expected, Expected::Unknown)
            && live_table
                .into_iter()
                .chain(inactive_table)
                .all(|t| t.kind() != Kind::Other);
        if !judged {
            if device.inactive {
                plan.left.push(format!(
                    "{name} has an inactive table that lvm-snap does not judge (not a snapshot's): \
                     see 'dmsetup table --inactive {name}'"
                ));
            } else if device.suspended {
                // A plain resume brings back the table it had: always safe.
                resume.push((device, false));
            }
            after.insert(name, live_table.into_iter().chain(inactive_table).collect());
            continue;
        }
        let switch = match (inactive_table, expected) {
            (Some(table), Expected::Table(kind)) => table.kind() == kind,
            _ => false,
        };
        if device.inactive && !switch {
            plan.steps.push(Step::Clear(name.to_string()));
        }
        let kept = if switch { inactive_table } else { live_table };
        if device.suspended || switch {
            resume.push((device, switch));
        }
        if expected == Expected::Orphan || kept.is_none() {
            removable.push(device);
        }
        after.insert(name, kept.into_iter().collect());
    }
    plan.steps.extend(
        resume_order(&resume, &after)
            .into_iter()
            .map(|(d, switch)| Step::Resume {
                name: d.name.clone(),
                switch,
            }),
    );
    let (removed, held) = removal_order(devices, live, inactive, &after, removable);
    plan.steps
        .extend(removed.into_iter().map(|d| Step::Remove(d.name.clone())));
    plan.left.extend(held.into_iter().map(|d| {
        format!(
            "{} is left: no volume needs it, but something holds it open ({} opens)",
            d.name, d.open
        )
    }));
    plan
}

/// The names of the devices that are lvm-snap's to change; see the
/// module's comment.
fn owned(
    devices: &[&Device],
    live: &HashMap<String, Table>,
    inactive: &HashMap<String, Table>,
    volumes: &[Volume],
) -> HashSet<String> {
    let uuid = |v: &Volume| v.lv_uuid.replace('-', "");
    let mut lvs: HashSet<String> = HashSet::new();
    for volume in volumes.iter().filter(|v| v.carries(lvm::TAG)) {
        lvs.insert(uuid(volume));
        // Before it is a snapshot, only its tag names its origin.
        if let Some(origin) = volume.tagged_origin() {
            lvs.insert(origin);
        }
        if let Some(origin) = volumes
            .iter()
            .find(|o| Some(&o.name.lv) == volume.origin.as_ref())
        {
            lvs.insert(uuid(origin));
        }
    }
    let lv_of = |d: &Device| dm::parse_uuid(&d.uuid).map(|id| id.lv.to_string());
    loop {
        let before = lvs.len();
        // What an owned device's tables map onto: its layers, and through
        // a `-real` layer, the origin that the killed lvcreate was making.
        let uses: Vec<(u32, u32)> = devices
            .iter()
            .filter(|d| lv_of(d).is_some_and(|lv| lvs.contains(&lv)))
            .flat_map(|d| {
                live.get(&d.name)
                    .into_iter()
                    .chain(inactive.get(&d.name).filter(|_| d.inactive))
            })
            .flat_map(|t| t.uses.iter().copied())
            .collect();
        for device in devices.iter().filter(|d| uses.contains(&d.devno)) {
            if let Some(lv) = lv_of(device) {
                lvs.insert(lv);
            }
        }
        // An owned origin's other snapshots resume before it.
        let origins: Vec<&str> = volumes
            .iter()
            .filter(|v| lvs.contains(&uuid(v)))
            .map(|v| v.name.lv.as_str())
            .collect();
        let snapshots: Vec<String> = volumes
            .iter()
            .filter(|v| v.origin.as_deref().is_some_and(|o| origins.contains(&o)))
            .map(uuid)
            .collect();
        lvs.extend(snapshots);
        if lvs.len() == before {
            break;
        }
    }
    let mut owned: HashSet<String> = devices
        .iter()
        .filter(|d| lv_of(d).is_some_and(|lv| lvs.contains(&lv)))
        .map(|d| d.name.clone())
        .collect();
    // A device no volume accounts for is lvm-snap's to remove, unless
    // someone else's device maps onto it, directly or through another.
    let mut kept: Vec<&Device> = devices
        .iter()
        .copied()
        .filter(|d| !owned.contains(&d.name) && expected(d, volumes) != Expected::Orphan)
        .collect();
    loop {
        let more: Vec<&Device> = devices
            .iter()
            .copied()
            .filter(|d| !owned.contains(&d.name) && !kept.iter().any(|k| k.name == d.name))
            .filter(|d| {
                kept.iter().any(|k| {
                    live.get(&k.name)
                        .into_iter()
                        .chain(inactive.get(&k.name).filter(|_| k.inactive))
                        .any(|t| t.uses.contains(&d.devno))
                })
            })
            .collect();
        if more.is_empty() {
            break;
        }
        kept.extend(more);
    }
    owned.extend(
        devices
            .iter()
            .filter(|d| !kept.iter().any(|k| k.name == d.name))
            .map(|d| d.name.clone()),
    );
    owned
}

/// The order LVM resumes in: a device after the devices its table maps
/// onto, and an origin after its snapshots, so that no write reaches the
/// origin before every snapshot copies on write.
fn resume_order<'a>(
    resume: &[(&'a Device, bool)],
    after: &HashMap<&str, Vec<&Table>>,
) -> Vec<(&'a Device, bool)> {
    let kind = |device: &Device| after[device.name.as_str()].first().map(|t| t.kind());
    let waits = |device: &Device, pending: &[(&Device, bool)]| {
        let uses_pending = after[device.name.as_str()].iter().any(|t| {
            t.uses
                .iter()
                .any(|devno| pending.iter().any(|(p, _)| p.devno == *devno))
        });
        let snapshots_pending = kind(device) == Some(Kind::Origin)
            && pending.iter().any(|(p, _)| kind(p) == Some(Kind::Snapshot));
        uses_pending || snapshots_pending
    };
    let mut pending: Vec<(&Device, bool)> = resume.to_vec();
    let mut ordered = Vec::new();
    while !pending.is_empty() {
        let next = (0..pending.len())
            .find(|&i| !waits(pending[i].0, &pending))
            .unwrap_or(0);
        ordered.push(pending.remove(next));
    }
    ordered
}

/// Users before what they use: a device goes once nothing holds it open,
/// counting the opens that the remaining tables will still hold. Returns
/// the removals in order, and the devices that stay held.
fn removal_order<'a>(
    devices: &[&'a Device],
    live: &HashMap<String, Table>,
    inactive: &HashMap<String, Table>,
    after: &HashMap<&str, Vec<&Table>>,
    mut removable: Vec<&'a Device>,
) -> (Vec<&'a Device>, Vec<&'a Device>) {
    // Opens from outside the group's tables: mounts, processes, others' tables.
    let refs = |devno: (u32, u32), tables: &mut dyn Iterator<Item = &Table>| {
        tables.filter(|t| t.uses.contains(&devno)).count() as u32
    };
    let outside = |device: &Device| {
        let before = refs(
            device.devno,
            &mut devices.iter().flat_map(|d| {
                live.get(&d.name)
                    .into_iter()
                    .chain(inactive.get(&d.name).filter(|_| d.inactive))
            }),
        );
        device.open.saturating_sub(before)
    };
    let mut gone: Vec<&Device> = Vec::new();
    loop {
        let free = removable.iter().position(|candidate| {
            outside(candidate) == 0
                && refs(
                    candidate.devno,
                    &mut devices
                        .iter()
                        .filter(|d| {
                            !gone.iter().any(|g| g.name == d.name) && d.name != candidate.name
                        })
                        .flat_map(|d| after[d.name.as_str()].iter().copied()),
                ) == 0
        });
        match free {
            Some(i) => gone.push(removable.remove(i)),
            None => return (gone, removable),
        }
    }
}

/// The repair relies on LVM's file locks in their default place: with
/// lvmlockd, or another locking_dir, lvm-snap's lock would exclude nothing.
fn check_locking(vg: &str) -> Result<()> {
    let output = std::process::Command::new("lvmconfig")
        .args([
            "--typeconfig",
            "full",
            "global/locking_dir",
            "global/use_lvmlockd",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::new(Exit::Unavailable, format!("cannot run lvmconfig: {e}")))?;
    let config = String::from_utf8_lossy(&output.stdout);
    let dir = format!("locking_dir=\"{}\"", vglock::LOCKING_DIR);
    if output.status.success()
        && config.lines().any(|l| l.trim() == dir)
        && config.lines().any(|l| l.trim() == "use_lvmlockd=0")
    {
        return Ok(());
    }
    Err(Error::new(
        Exit::Config,
        format!(
            "volume group {vg} has devices that a killed LVM command left half-changed, but \
             lvm.conf does not use file locks in {} ({}): lvm-snap cannot exclude other LVM \
             commands there, so it does not repair them; see lvm-snap(1), REPAIR",
            vglock::LOCKING_DIR,
            config.split_whitespace().collect::<Vec<_>>().join(", ")
        ),
    ))
}

fn apply(vg: &str, steps: &[Step]) -> Result<()> {
    for step in steps {
        match step {
            Step::Clear(name) => {
                dm::clear(name)?;
                log::warn!(
                    "{name}: dropped the table that a killed LVM command had loaded for \
                     metadata it never committed"
                );
            }
            Step::Resume { name, switch: true } => {
                dm::resume(name)?;
                log::warn!(
                    "{name}: switched to the table that a killed LVM command had loaded and \
                     committed to the metadata"
                );
            }
            Step::Resume {
                name,
                switch: false,
            } => {
                dm::resume(name)?;
                log::warn!("{name} was left suspended (a killed LVM command?): resumed it");
            }
            Step::Remove(name) => match dm::remove(name) {
                Ok(()) => log::warn!(
                    "removed {name}, a device of volume group {vg} that no volume needs \
                     (left by a killed LVM command)"
                ),
                Err(e) => log::warn!("{e}: {name} stays"),
            },
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lvm::parse_report;

    type State = (
        Vec<Device>,
        HashMap<String, Table>,
        HashMap<String, Table>,
        Vec<Volume>,
    );

    /// A state recorded in the VM (tests/vm/lvm-snap.sh kills, with
    /// MYSNAP_KILL_STATES=1): `dmsetup info` and `table` (live and
    /// inactive) the moment lvcreate was killed, and the report of what LVM
    /// had committed.
    fn state(name: &str) -> State {
        let dir = format!("{}/fixtures/killed/{name}", env!("CARGO_MANIFEST_DIR"));
        let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).unwrap();
        let devices = dm::parse_info(&read("info.txt")).unwrap();
        let names: Vec<&str> = devices.iter().map(|d| d.name.as_str()).collect();
        let live = dm::parse_tables(&read("table.txt"), &names);
        let inactive = dm::parse_tables(&read("inactive.txt"), &names);
        let volumes = parse_report(read("lvs.json").as_bytes()).unwrap();
        (devices, live, inactive, volumes)
    }

    fn steps(name: &str) -> Vec<Step> {
        let (devices, live, inactive, volumes) = state(name);
        let refs: Vec<&Device> = devices.iter().collect();
        let plan = plan(&refs, &live, &inactive, &volumes);
        assert!(plan.left.is_empty(), "{name}: {:?}", plan.left);
        plan.steps
    }

    fn clear(n: &str) -> Step {
        Step::Clear(n.into())
    }
    fn resume(n: &str, switch: bool) -> Step {
        Step::Resume {
            name: n.into(),
            switch,
        }
    }
    fn remove(n: &str) -> Step {
        Step::Remove(n.into())
    }

    #[test]
    fn a_finished_snapshot_needs_nothing() {
        assert_eq!(steps("done"), []);
    }

    /// Killed as it suspended the origin's new -real layer: the origin is
    /// suspended with a snapshot-origin table loaded that maps onto -real,
    /// which has no live table; the metadata has no snapshot yet. A plain
    /// resume would have swapped that table in and failed every I/O.
    #[test]
    fn an_uncommitted_snapshot_is_rolled_back() {
        let half_made = [
            remove("vg0-db--snap"),
            remove("vg0-db--snap-cow"),
            remove("vg0-db-real"),
        ];
        let clears = [clear("vg0-db"), clear("vg0-db--snap"), clear("vg0-db-real")];
        let mut want = clears.to_vec();
        want.push(resume("vg0-db", false));
        want.extend(half_made.clone());
        assert_eq!(steps("origin-suspended"), want);
        // Before the suspend: the same, without the resume.
        let mut want = clears.to_vec();
        want.extend(half_made);
        assert_eq!(steps("preloaded"), want);
    }

    /// Killed after committing, before resuming: what the metadata says is
    /// loaded, and goes live as LVM would have done it: -real first, the
    /// snapshot before its origin.
    #[test]
    fn a_committed_snapshot_is_rolled_forward_in_lvm_s_order() {
        assert_eq!(
            steps("committed-suspended"),
            [
                resume("vg0-db-real", true),
                resume("vg0-db--snap", true),
                resume("vg0-db", true),
            ]
        );
        assert_eq!(steps("origin-resumes-last"), [resume("vg0-db", true)]);
    }

    /// Killed as it activated the new volume to wipe its start: the
    /// volume is committed as a plain one, and its table goes live for
    /// lvremove to take it away.
    #[test]
    fn a_loaded_plain_volume_goes_live() {
        assert_eq!(steps("wipe-device-loaded"), [resume("vg0-db--snap", true)]);
    }

    #[test]
    fn a_device_held_open_is_left_and_said() {
        let (mut devices, live, inactive, volumes) = state("preloaded");
        let cow = devices
            .iter_mut()
            .find(|d| d.name == "vg0-db--snap-cow")
            .unwrap();
        cow.open += 1; // mounted, say
        let refs: Vec<&Device> = devices.iter().collect();
        let plan = plan(&refs, &live, &inactive, &volumes);
        assert!(!plan.steps.contains(&remove("vg0-db--snap-cow")));
        assert!(plan.steps.contains(&remove("vg0-db-real")));
        assert_eq!(plan.left.len(), 1, "{:?}", plan.left);
        assert!(plan.left[0].starts_with("vg0-db--snap-cow is left"));
    }

    #[test]
    fn devices_of_other_kinds_are_not_judged() {
        let (devices, live, mut inactive, volumes) = state("origin-suspended");
        inactive.get_mut("vg0-db").unwrap().targets = vec!["thin".into()];
        let refs: Vec<&Device> = devices.iter().collect();
        let plan = plan(&refs, &live, &inactive, &volumes);
        assert!(!plan.steps.iter().any(|s| matches!(s,
            Step::Clear(n) | Step::Remove(n) | Step::Resume { name: n, .. } if n == "vg0-db")));
        assert!(plan
            .left
            .iter()
            .any(|l| l.starts_with("vg0-db has an inactive table")));
    }

    fn touched(plan: &Plan, name: &str) -> bool {
        plan.steps.iter().any(|s| {
            matches!(s, Step::Clear(n) | Step::Remove(n) | Step::Resume { name: n, .. } if n == name)
        })
    }

    /// An admin's own suspend of a volume that has nothing to do with
    /// lvm-snap stays: the repair says so and changes nothing there.
    #[test]
    fn a_suspended_volume_of_someone_else_is_left() {
        let (mut devices, live, inactive, volumes) = state("done");
        let scratch = devices
            .iter_mut()
            .find(|d| d.name == "vg0-scratch")
            .unwrap();
        scratch.suspended = true;
        let refs: Vec<&Device> = devices.iter().collect();
        let plan = plan(&refs, &live, &inactive, &volumes);
        assert_eq!(plan.steps, []);
        assert_eq!(plan.left.len(), 1, "{:?}", plan.left);
        assert!(
            plan.left[0].starts_with("vg0-scratch is suspended"),
            "{:?}",
            plan.left
        );
    }

    /// The same half-made snapshot, but made by someone else's lvcreate
    /// (no mysnap tag): its origin stays suspended with its loaded table,
    /// and nothing it holds is removed.
    #[test]
    fn a_half_made_snapshot_of_someone_else_is_left() {
        let (devices, live, inactive, mut volumes) = state("origin-suspended");
        for volume in &mut volumes {
            volume.tags.clear();
        }
        let refs: Vec<&Device> = devices.iter().collect();
        let plan = plan(&refs, &live, &inactive, &volumes);
        for name in ["vg0-db", "vg0-db--snap", "vg0-db--snap-cow", "vg0-db-real"] {
            assert!(!touched(&plan, name), "{name}: {:?}", plan.steps);
        }
        assert!(
            plan.left
                .iter()
                .any(|l| l.starts_with("vg0-db is suspended")),
            "{:?}",
            plan.left
        );
        assert!(
            plan.left.iter().any(|l| l.starts_with("vg0-db-real is")),
            "{:?}",
            plan.left
        );
        // With the tag, the very same state is lvm-snap's to roll back.
        let (_, _, _, volumes) = state("origin-suspended");
        assert!(touched(
            &super::plan(&refs, &live, &inactive, &volumes),
            "vg0-db"
        ));
    }

    /// A tagged snapshot makes its origin lvm-snap's, and so the origin's
    /// other snapshots, which must resume before it.
    #[test]
    fn a_suspended_origin_of_a_tagged_snapshot_resumes() {
        let (mut devices, live, inactive, volumes) = state("done");
        devices
            .iter_mut()
            .find(|d| d.name == "vg0-db")
            .unwrap()
            .suspended = true;
        let refs: Vec<&Device> = devices.iter().collect();
        let plan = plan(&refs, &live, &inactive, &volumes);
        assert_eq!(plan.steps, [resume("vg0-db", false)]);
        assert!(plan.left.is_empty(), "{:?}", plan.left);
    }

    /// Killed before the snapshot's own table was loaded: nothing maps
    /// from the tagged volume to the origin's -real layer, so only the
    /// volume's origin tag ties the suspended origin to lvm-snap (the kill
    /// sweep in the VM found these states at lvcreate's ioctls 56 to 62).
    #[test]
    fn the_origin_tag_ties_a_half_made_snapshot_to_its_origin() {
        let (mut devices, live, mut inactive, mut volumes) = state("origin-suspended");
        inactive.remove("vg0-db--snap");
        devices
            .iter_mut()
            .find(|d| d.name == "vg0-db--snap")
            .unwrap()
            .inactive = false;
        let refs: Vec<&Device> = devices.iter().collect();
        let untied = plan(&refs, &live, &inactive, &volumes);
        assert!(!touched(&untied, "vg0-db"), "{:?}", untied.steps);
        let origin = volumes
            .iter()
            .find(|v| v.name.lv == "db")
            .unwrap()
            .lv_uuid
            .clone();
        let snap = volumes.iter_mut().find(|v| v.name.lv == "db-snap").unwrap();
        snap.tags.push(lvm::origin_tag(&origin));
        let tied = plan(&refs, &live, &inactive, &volumes);
        assert!(tied.steps.contains(&clear("vg0-db")), "{:?}", tied.steps);
        assert!(
            tied.steps.contains(&resume("vg0-db", false)),
            "{:?}",
            tied.steps
        );
        assert!(
            tied.steps.contains(&clear("vg0-db-real")),
            "{:?}",
            tied.steps
        );
    }
}
