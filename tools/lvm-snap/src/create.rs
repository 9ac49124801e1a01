//! Creating snapshots, fast enough to run under the read lock: one `lvs`
//! report checks everything first (the origins, the names, the free space),
//! then one `lvcreate` per volume.

use crate::lvm::{self, Name, Volume};
use crate::repair;
use mysnap::quantity::{format_size, parse_size};
use mysnap::signals::Signals;
use mysnap::{Error, Exit, Result};
use std::collections::BTreeMap;
use std::time::Instant;

/// How big a snapshot's copy-on-write space is: a size, or a share of the
/// origin's size as lvcreate's `-l 20%ORIGIN` says it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SnapshotSize {
    Bytes(u64),
    PercentOfOrigin(u32),
}

impl SnapshotSize {
    pub const DEFAULT: SnapshotSize = SnapshotSize::PercentOfOrigin(20);

    /// `10G`, `512M`, or `20%ORIGIN`.
    pub fn parse(text: &str) -> Result<SnapshotSize> {
        match text.to_ascii_uppercase().strip_suffix("%ORIGIN") {
            Some(percent) => match percent.parse() {
                Ok(p) if (1..=100).contains(&p) => Ok(SnapshotSize::PercentOfOrigin(p)),
                _ => Err(Error::usage(format!(
                    "'{text}': the share of the origin is 1%ORIGIN to 100%ORIGIN"
                ))),
            },
            None => match parse_size(text)? {
                0 => Err(Error::usage("a snapshot needs more than 0 bytes")),
                bytes => Ok(SnapshotSize::Bytes(bytes)),
            },
        }
    }

    /// Bytes for a snapshot of `origin`, rounded up to whole extents as
    /// lvcreate allocates them.
    pub fn bytes(self, origin: &Volume) -> u64 {
        let wanted = match self {
            SnapshotSize::Bytes(bytes) => bytes,
            SnapshotSize::PercentOfOrigin(p) => (origin.size * p as u64).div_ceil(100),
        };
        let extent = origin.extent_size.max(1);
        wanted.div_ceil(extent).max(1) * extent
    }
}

impl std::fmt::Display for SnapshotSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotSize::Bytes(bytes) => f.write_str(&format_size(*bytes)),
            SnapshotSize::PercentOfOrigin(p) => write!(f, "{p}%ORIGIN"),
        }
    }
}

/// What to snapshot, and how.
pub struct Request {
    pub origins: Vec<Name>,
    pub name: Option<String>,
    pub size: SnapshotSize,
    /// Tags for the new snapshots: lvm-snap's own and the run's.
    pub tags: Vec<String>,
    pub replace: bool,
}

impl Request {
    /// NAME for one volume; for several, NAME-LV for each; without
    /// --name, LV-snap.
    fn snapshot_name(&self, origin: &Name) -> Name {
        let lv = match &self.name {
            None => format!("{}-snap", origin.lv),
            Some(name) if self.origins.len() == 1 => name.clone(),
            Some(name) => format!("{name}-{}", origin.lv),
        };
        Name::in_group(&origin.vg, &lv)
    }
}

/// One snapshot to make.
#[derive(Debug)]
pub struct Planned {
    pub origin: Name,
    /// The origin's LV UUID, which the snapshot's tag names (see
    /// `lvm::origin_tag`).
    pub origin_uuid: String,
    pub snapshot: Name,
    pub bytes: u64,
    /// An old snapshot of that name, removed first (--replace).
    pub replaces: Option<Volume>,
}

/// Checks the request against the groups' reports (None: no such group)
/// before anything changes.
pub fn plan(
    request: &Request,
    groups: &BTreeMap<String, Option<Vec<Volume>>>,
) -> Result<Vec<Planned>> {
    let mut planned: Vec<Planned> = Vec::new();
    for origin_name in &request.origins {
        let volumes = groups
            .get(&origin_name.vg)
            .and_then(Option::as_ref)
            .ok_or_else(|| {
                Error::new(
                    Exit::NoInput,
                    format!("no volume group '{}'", origin_name.vg),
                )
            })?;
        let find = |name: &Name| volumes.iter().find(|v| v.name == *name);
        let origin = find(origin_name)
            .ok_or_else(|| Error::new(Exit::NoInput, format!("no logical volume {origin_name}")))?;
        if origin.is_snapshot() {
            return Err(Error::new(
                Exit::DataErr,
                format!("{origin_name} is a snapshot: name the volume it is a snapshot of"),
            ));
        }
        if !origin.is_active() {
            return Err(Error::new(
                Exit::NoInput,
                format!("{origin_name} is not active"),
            ));
        }
        let snapshot = request.snapshot_name(origin_name);
        if !lvm::valid_name(&snapshot.lv) {
            return Err(Error::usage(format!(
                "'{}' is not a valid LVM name",
                snapshot.lv
            )));
        }
        if planned.iter().any(|p| p.snapshot == snapshot) {
            return Err(Error::usage(format!(
                "two snapshots would be named {snapshot}: give each volume only once"
            )));
        }
        let replaces = match find(&snapshot) {
            None => None,
            Some(taken) if !crate::remove::removable(taken) => {
                return Err(Error::new(
                    Exit::CantCreate,
                    format!("{snapshot} exists and is not a snapshot: choose another --name"),
                ))
            }
            Some(taken) if request.replace => Some(taken.clone()),
            Some(taken) => {
                let what = match &taken.origin {
                    Some(origin) => format!("a snapshot of {}/{origin}", snapshot.vg),
                    None => "left by a killed lvcreate".to_string(),
                };
                return Err(Error::new(
                    Exit::CantCreate,
                    format!(
                        "{snapshot} exists ({what}): pass --replace, or remove it \
                         with 'lvm-snap remove {snapshot}'"
                    ),
                ));
            }
        };
        planned.push(Planned {
            origin: origin_name.clone(),
            origin_uuid: origin.lv_uuid.clone(),
            bytes: request.size.bytes(origin),
            snapshot,
            replaces,
        });
    }
    for (vg, volumes) in groups {
        check_space(
            request.size,
            vg,
            volumes.as_deref().unwrap_or_default(),
            &planned,
        )?;
    }
    Ok(planned)
}

/// The group must have room for its new snapshots (counting what the ones
/// they replace give back); if not, say how much is free and how much needed.
fn check_space(
    size: SnapshotSize,
    vg: &str,
    volumes: &[Volume],
    planned: &[Planned],
) -> Result<()> {
    let planned: Vec<&Planned> = planned.iter().filter(|p| p.origin.vg == vg).collect();
    let Some(group) = volumes.first() else {
        return Ok(());
    };
    let needed: u64 = planned.iter().map(|p| p.bytes).sum();
    let free = group.vg_free
        + planned
            .iter()
            .filter_map(|p| p.replaces.as_ref())
            .map(|old| old.size)
            .sum::<u64>();
    if needed <= free {
        return Ok(());
    }
    let each: Vec<String> = planned
        .iter()
        .map(|p| match size {
            SnapshotSize::Bytes(_) => format!("{}: {}", p.snapshot, format_size(p.bytes)),
            SnapshotSize::PercentOfOrigin(_) => {
                format!("{}: {size} = {}", p.snapshot, format_size(p.bytes))
            }
        })
        .collect();
    Err(Error::new(
        Exit::CantCreate,
        format!(
            "not enough free space in volume group {vg}: {} free, {} needed ({}); \
             give a smaller --size or free space in {vg}",
            format_size(free),
            format_size(needed),
            each.join(", ")
        ),
    ))
}

/// Makes the snapshots. Once SIGTERM or SIGINT has arrived, it lets the
/// running lvcreate finish, removes what it made, and fails with 128 + N.
/// An lvcreate that fails, or is killed half-way, is undone at once: its
/// group repaired and its half-made snapshot removed.
pub fn create(request: &Request, signals: &Signals) -> Result<Vec<Name>> {
    let mut groups = BTreeMap::new();
    for origin in &request.origins {
        if !groups.contains_key(&origin.vg) {
            groups.insert(origin.vg.clone(), repair::repair(&origin.vg)?);
        }
    }
    let planned = plan(request, &groups)?;
    for old in planned.iter().filter_map(|p| p.replaces.as_ref()) {
        log::info!("replacing {}", old.name);
        crate::remove::remove_snapshot(old)?;
    }
    let mut created = Vec::new();
    for p in &planned {
        let made = signals.check().and_then(|()| {
            let started = Instant::now();
            let mut tags = request.tags.clone();
            tags.push(lvm::origin_tag(&p.origin_uuid));
            lvm::create_snapshot(&p.origin, &p.snapshot.lv, p.bytes, &tags)?;
            log::info!(
                "created {} of {} ({}) in {:.2} s",
                p.snapshot,
                p.origin,
                format_size(p.bytes),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        });
        if let Err(e) = made {
            let cleaned = clean_up_after(p, request);
            undo(&created);
            // lvcreate takes SIGTERM while it waits for the group's lock
            // (before it has suspended anything) and gives up: say why.
            let e = signals.check().err().unwrap_or(e);
            return Err(match cleaned {
                Ok(()) => e,
                Err(also) => e.context(format!("and undoing it failed ({also})")),
            });
        }
        created.push(p.snapshot.clone());
    }
    if let Err(e) = signals.check() {
        undo(&created);
        return Err(e);
    }
    Ok(created)
}

/// After an lvcreate that failed: the group repaired, and the volume it
/// was making removed if it got as far as making one. Only a volume with
/// this request's tags: the plan found the name free.
fn clean_up_after(planned: &Planned, request: &Request) -> Result<()> {
    let volumes = repair::repair(&planned.snapshot.vg)?.unwrap_or_default();
    let Some(made) = volumes.iter().find(|v| v.name == planned.snapshot) else {
        return Ok(());
    };
    if request.tags.iter().all(|t| made.carries(t)) {
        crate::remove::remove_snapshot(made)?;
        repair::repair(&planned.snapshot.vg)?;
    }
    Ok(())
}

fn undo(created: &[Name]) {
    for name in created {
        match lvm::remove(name) {
            Ok(()) => log::info!("removed {name} again"),
            Err(e) => log::error!("{name} stays behind: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(fixture: &str) -> BTreeMap<String, Option<Vec<Volume>>> {
        let path = format!("{}/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
        let volumes = lvm::parse_report(&std::fs::read(path).unwrap()).unwrap();
        BTreeMap::from([
            ("vg0".to_string(), Some(volumes)),
            ("vg9".to_string(), None),
        ])
    }

    fn request(origins: &[&str], name: Option<&str>, size: &str) -> Request {
        Request {
            origins: origins.iter().map(|o| Name::parse(o).unwrap()).collect(),
            name: name.map(String::from),
            size: SnapshotSize::parse(size).unwrap(),
            tags: vec![lvm::TAG.to_string()],
            replace: false,
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(
            SnapshotSize::parse("10G").unwrap(),
            SnapshotSize::Bytes(10 << 30)
        );
        assert_eq!(
            SnapshotSize::parse("20%origin").unwrap(),
            SnapshotSize::PercentOfOrigin(20)
        );
        for bad in ["0", "0%ORIGIN", "101%ORIGIN", "%ORIGIN", "20%VG", "ten"] {
            assert_eq!(SnapshotSize::parse(bad).unwrap_err().code(), 64, "{bad}");
        }
        let volumes = &groups("lvs-fresh.json")["vg0"];
        let data = &volumes.as_ref().unwrap()[0];
        // 20% of 300 MiB is 60 MiB, 15 extents of 4 MiB; 1 byte is one extent.
        assert_eq!(SnapshotSize::PercentOfOrigin(20).bytes(data), 60 << 20);
        assert_eq!(SnapshotSize::PercentOfOrigin(1).bytes(data), 4 << 20);
        assert_eq!(SnapshotSize::Bytes(1).bytes(data), 4 << 20);
        assert_eq!(SnapshotSize::Bytes(10 << 20).bytes(data), 12 << 20);
    }

    #[test]
    fn names_of_one_and_of_several() {
        let groups = groups("lvs-fresh.json");
        let one = plan(&request(&["vg0/my-logs"], Some("nightly"), "8M"), &groups).unwrap();
        assert_eq!(one[0].snapshot.to_string(), "vg0/nightly");
        let several = plan(
            &request(&["vg0/data", "vg0/my-logs"], Some("nightly"), "8M"),
            &groups,
        )
        .unwrap();
        let names: Vec<String> = several.iter().map(|p| p.snapshot.to_string()).collect();
        assert_eq!(names, ["vg0/nightly-data", "vg0/nightly-my-logs"]);
        let default = plan(&request(&["vg0/my-logs"], None, "8M"), &groups).unwrap();
        assert_eq!(default[0].snapshot.to_string(), "vg0/my-logs-snap");
        // In this report vg0/my-logs is not active.
        let inactive = plan(
            &request(&["vg0/my-logs"], None, "8M"),
            &self::groups("lvs-inactive.json"),
        );
        assert_eq!(inactive.unwrap_err().code(), 66);
    }

    #[test]
    fn refuses_a_taken_name_unless_replacing_a_snapshot() {
        let groups = groups("lvs-fresh.json");
        let taken = plan(&request(&["vg0/data"], None, "8M"), &groups).unwrap_err();
        assert_eq!(taken.code(), 73);
        assert!(taken.message().contains("vg0/data-snap exists"), "{taken}");
        let mut replace = request(&["vg0/data"], None, "8M");
        replace.replace = true;
        let planned = plan(&replace, &groups).unwrap();
        assert_eq!(planned[0].replaces.as_ref().unwrap().name.lv, "data-snap");
        let origin_name =
            plan(&request(&["vg0/data"], Some("my-logs"), "8M"), &groups).unwrap_err();
        assert_eq!(origin_name.code(), 73);
        assert!(origin_name.message().contains("is not a snapshot"));
    }

    #[test]
    fn refuses_short_space_with_figures() {
        let groups = groups("lvs-fresh.json");
        // 612 MiB free: 600 MiB fits, 616 MiB does not.
        plan(&request(&["vg0/my-logs"], None, "600M"), &groups).unwrap();
        let short = plan(
            &request(&["vg0/data", "vg0/my-logs"], Some("s"), "308M"),
            &groups,
        )
        .unwrap_err();
        assert_eq!(short.code(), 73);
        assert!(
            short.message().contains("612.0 MiB free, 616.0 MiB needed"),
            "{short}"
        );
        // Replacing gives the old snapshot's 8 MiB back.
        let mut replace = request(&["vg0/data"], None, "620M");
        replace.replace = true;
        plan(&replace, &groups).unwrap();
    }

    #[test]
    fn refuses_snapshots_of_snapshots_and_missing_volumes() {
        let groups = groups("lvs-fresh.json");
        assert_eq!(
            plan(&request(&["vg0/data-snap"], Some("x"), "8M"), &groups)
                .unwrap_err()
                .code(),
            65
        );
        assert_eq!(
            plan(&request(&["vg0/nosuch"], None, "8M"), &groups)
                .unwrap_err()
                .code(),
            66
        );
        assert_eq!(
            plan(&request(&["vg9/data"], None, "8M"), &groups)
                .unwrap_err()
                .code(),
            66
        );
        let twice = plan(
            &request(&["vg0/my-logs", "vg0/my-logs"], None, "8M"),
            &groups,
        );
        assert_eq!(twice.unwrap_err().code(), 64);
    }
}
