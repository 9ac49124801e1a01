//! Device-mapper's view, through dmsetup: which devices exist, the tables
//! they hold (the live one, and an inactive one loaded to replace it at the
//! next resume), which are suspended, and how often each is held open.
//! And the three changes that repair.rs makes: clear, resume, remove.

use mysnap::{Error, Exit, Result};
use std::collections::HashMap;
use std::process::Command;

/// A device-mapper device, as `dmsetup info -c` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub name: String,
    pub uuid: String,
    /// A live table is present.
    pub live: bool,
    /// An inactive table is loaded, waiting for a resume to swap it in.
    pub inactive: bool,
    pub suspended: bool,
    /// Opens of the block device: mounts, processes, and the tables (live
    /// or inactive) of other devices that map onto it.
    pub open: u32,
    pub devno: (u32, u32),
}

const INFO: [&str; 7] = [
    "info",
    "-c",
    "--noheadings",
    "--separator",
    ";",
    "-o",
    "uuid,attr,open,major,minor,name",
];

/// Every device-mapper device.
pub fn devices() -> Result<Vec<Device>> {
    parse_info(&dmsetup(&INFO)?)
}

/// Parses `dmsetup info` with INFO's columns; the name comes last, as it
/// is the one column that could hold the separator.
pub fn parse_info(text: &str) -> Result<Vec<Device>> {
    text.lines()
        .filter(|line| line.contains(';'))
        .map(|line| {
            let bad = || {
                Error::new(
                    Exit::Software,
                    format!("dmsetup info printed '{line}', not uuid;attr;open;major;minor;name"),
                )
            };
            let fields: Vec<&str> = line.trim().splitn(6, ';').collect();
            let [uuid, attr, open, major, minor, name] = fields[..] else {
                return Err(bad());
            };
            let attr = attr.as_bytes();
            if attr.len() < 3 {
                return Err(bad());
            }
            Ok(Device {
                name: name.to_string(),
                uuid: uuid.to_string(),
                live: attr[0] == b'L',
                inactive: attr[1] == b'I',
                suspended: attr[2] == b's',
                open: open.parse().map_err(|_| bad())?,
                devno: (
                    major.parse().map_err(|_| bad())?,
                    minor.parse().map_err(|_| bad())?,
                ),
            })
        })
        .collect()
}

/// What a table maps: its targets' types and the devices it maps onto.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub targets: Vec<String>,
    pub uses: Vec<(u32, u32)>,
}

/// A table as far as snapshots are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// linear, striped, error, zero: what a plain volume or a layer maps.
    Plain,
    /// snapshot-origin: an origin that copies on write to its snapshots.
    Origin,
    /// snapshot: a snapshot's view.
    Snapshot,
    /// Anything else (thin, raid, cache, a merging snapshot...): lvm-snap
    /// makes none of them and judges none of them.
    Other,
}

impl Table {
    pub fn kind(&self) -> Kind {
        let has = |t: &str| self.targets.iter().any(|target| target == t);
        if has("snapshot-origin") {
            Kind::Origin
        } else if has("snapshot") {
            Kind::Snapshot
        } else if self
            .targets
            .iter()
            .all(|t| matches!(t.as_str(), "linear" | "striped" | "error" | "zero"))
        {
            Kind::Plain
        } else {
            Kind::Other
        }
    }
}

/// The live tables (or with `inactive`, the inactive ones) of `devices`,
/// by name; a device without one is absent.
pub fn tables(inactive: bool, devices: &[&Device]) -> Result<HashMap<String, Table>> {
    let mut args = vec!["table"];
    if inactive {
        args.push("--inactive");
    }
    let names: Vec<&str> = devices.iter().map(|d| d.name.as_str()).collect();
    Ok(parse_tables(&dmsetup(&args)?, &names))
}

/// Parses `dmsetup table`: "NAME: START LENGTH TARGET ARGS...", a line per
/// target, "NAME: " alone for a device without such a table. Only `names`
/// are read, so that another device's odd name cannot be misread as ours.
pub fn parse_tables(text: &str, names: &[&str]) -> HashMap<String, Table> {
    let mut tables: HashMap<String, Table> = HashMap::new();
    for line in text.lines() {
        let Some(name) = names.iter().find(|n| {
            line.strip_prefix(**n)
                .is_some_and(|rest| rest.starts_with(": ") || rest == ":")
        }) else {
            continue;
        };
        let mut words = line[name.len() + 1..].split_whitespace().skip(2);
        let Some(target) = words.next() else {
            continue;
        };
        let table = tables.entry(name.to_string()).or_default();
        table.targets.push(target.to_string());
        table.uses.extend(words.filter_map(parse_devno));
    }
    tables
}

fn parse_devno(word: &str) -> Option<(u32, u32)> {
    let (major, minor) = word.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// An LVM device's UUID: "LVM-", the group's and the volume's UUIDs (32
/// characters each, no dashes), and for a hidden layer "-real" or "-cow".
#[derive(Debug, PartialEq)]
pub struct LvmUuid<'a> {
    pub vg: &'a str,
    pub lv: &'a str,
    pub layer: Option<&'a str>,
}

pub fn parse_uuid(uuid: &str) -> Option<LvmUuid<'_>> {
    let ids = uuid.strip_prefix("LVM-")?;
    let (vg, rest) = (ids.get(..32)?, ids.get(32..)?);
    let lv = rest.get(..32)?;
    let layer = match &rest[32..] {
        "" => None,
        suffix => Some(suffix.strip_prefix('-')?),
    };
    Some(LvmUuid { vg, lv, layer })
}

/// Drops the inactive table: the next resume keeps the live one.
pub fn clear(name: &str) -> Result<()> {
    dmsetup(&["clear", name]).map(drop)
}

/// Resumes the device, swapping in its inactive table if it has one.
pub fn resume(name: &str) -> Result<()> {
    dmsetup(&["resume", name]).map(drop)
}

pub fn remove(name: &str) -> Result<()> {
    dmsetup(&["remove", name]).map(drop)
}

fn dmsetup(args: &[&str]) -> Result<String> {
    let output = Command::new("dmsetup")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::new(Exit::Unavailable, format!("cannot run dmsetup: {e}")))?;
    if !output.status.success() {
        return Err(Error::new(
            Exit::IoErr,
            format!(
                "dmsetup {} {}: {}",
                args.join(" "),
                mysnap::child::describe(output.status),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_columns() {
        let text = "LVM-z9yLMK2LmpyQQLoMHKxp0isggn2zCYpTrSXCJnL0UnkupFuawlV8qkIhcS8ApwFr;LIsw;1;253;0;vg0-db\n\
                    ;---w;0;253;1;empty\n";
        let devices = parse_info(text).unwrap();
        assert_eq!(devices.len(), 2);
        let db = &devices[0];
        assert!(db.live && db.inactive && db.suspended);
        assert_eq!(
            (db.open, db.devno, db.name.as_str()),
            (1, (253, 0), "vg0-db")
        );
        let empty = &devices[1];
        assert!(!empty.live && !empty.inactive && !empty.suspended && empty.uuid.is_empty());
        assert!(parse_info("No devices found\n").unwrap().is_empty());
        assert_eq!(parse_info("x;L;1;2\n").unwrap_err().code(), 70);
    }

    #[test]
    fn tables_and_their_kinds() {
        let text = "vg0-db: 0 614400 snapshot-origin 253:1\n\
                    vg0-db--snap: 0 614400 snapshot 253:1 253:2 P 8\n\
                    vg0-db--snap-cow: 0 81920 linear 254:0 616448\n\
                    vg0-db-real: \n\
                    other: 0 8 crypt aes 0 253:9 0\n";
        let names = ["vg0-db", "vg0-db--snap", "vg0-db--snap-cow", "vg0-db-real"];
        let tables = parse_tables(text, &names);
        assert_eq!(tables["vg0-db"].kind(), Kind::Origin);
        assert_eq!(tables["vg0-db"].uses, [(253, 1)]);
        assert_eq!(tables["vg0-db--snap"].kind(), Kind::Snapshot);
        assert_eq!(tables["vg0-db--snap"].uses, [(253, 1), (253, 2)]);
        assert_eq!(tables["vg0-db--snap-cow"].kind(), Kind::Plain);
        assert!(!tables.contains_key("vg0-db-real"), "no table");
        assert!(!tables.contains_key("other"), "not asked for");
        let thin = Table {
            targets: vec!["thin".into()],
            uses: vec![],
        };
        assert_eq!(thin.kind(), Kind::Other);
    }

    #[test]
    fn lvm_uuids() {
        let vg = "z9yLMK2LmpyQQLoMHKxp0isggn2zCYpT";
        let lv = "rSXCJnL0UnkupFuawlV8qkIhcS8ApwFr";
        let top = format!("LVM-{vg}{lv}");
        assert_eq!(
            parse_uuid(&top),
            Some(LvmUuid {
                vg,
                lv,
                layer: None
            })
        );
        assert_eq!(
            parse_uuid(&format!("{top}-real")).unwrap().layer,
            Some("real")
        );
        assert_eq!(parse_uuid(&format!("{top}x")), None);
        assert_eq!(parse_uuid("CRYPT-LUKS2-abc"), None);
        assert_eq!(parse_uuid("LVM-short"), None);
    }
}
