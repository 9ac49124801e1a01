//! The LVM command-line tools: one `lvs` JSON report tells everything about
//! a volume group (its free space too), and `lvcreate` / `lvremove` change it.

use mysnap::{Error, Exit, Result};
use serde::Deserialize;
use std::process::{Command, Output};

/// A logical volume named as LVM names it: `VG/LV`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    pub vg: String,
    pub lv: String,
}

impl Name {
    pub fn parse(text: &str) -> Result<Name> {
        let text = text.strip_prefix("/dev/").unwrap_or(text);
        match text.split_once('/') {
            Some((vg, lv)) if valid_name(vg) && valid_name(lv) => Ok(Name {
                vg: vg.to_string(),
                lv: lv.to_string(),
            }),
            _ => Err(Error::usage(format!(
                "'{text}' is not a logical volume name like vg0/mysql"
            ))),
        }
    }

    pub fn in_group(vg: &str, lv: &str) -> Name {
        Name {
            vg: vg.to_string(),
            lv: lv.to_string(),
        }
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.vg, self.lv)
    }
}

/// The characters LVM allows in VG and LV names; LVM itself rejects the
/// few reserved names and suffixes.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+_.-".contains(c))
}

/// Every snapshot lvm-snap makes carries this tag.
pub const TAG: &str = "mysnap";

/// The tag that names a snapshot's origin by its LV UUID. lvcreate
/// commits the new volume as a plain one first, with its tags: if it is
/// killed before the volume becomes a snapshot, this tag is what ties the
/// half-made snapshot, and so the origin it left suspended, to lvm-snap.
pub fn origin_tag(lv_uuid: &str) -> String {
    format!("{ORIGIN_TAG}{lv_uuid}")
}
const ORIGIN_TAG: &str = "mysnap-origin:";

/// The tag that names the run that made a snapshot.
pub fn run_tag(token: &str) -> String {
    format!("mysnap-run:{token}")
}

/// A token fits in an LVM tag: LVM allows these characters only.
pub fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 100
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+.-/=!:&#".contains(c))
}

/// One line of the report: a volume, with its group's free space.
#[derive(Debug, Clone)]
pub struct Volume {
    pub name: Name,
    pub vg_uuid: String,
    pub vg_free: u64,
    pub extent_size: u64,
    pub lv_uuid: String,
    attr: String,
    pub size: u64,
    /// The origin's LV name, for a snapshot.
    pub origin: Option<String>,
    pub tags: Vec<String>,
    /// How full a snapshot's copy-on-write space is, in percent.
    pub percent: Option<f64>,
    snapshot_invalid: bool,
    /// Device number of the active volume, as mountinfo shows it.
    pub device: Option<(u32, u32)>,
}

const FIELDS: &str = "vg_name,vg_uuid,vg_free,vg_extent_size,lv_name,lv_uuid,lv_attr,lv_size,\
origin,lv_tags,snap_percent,lv_snapshot_invalid,lv_kernel_major,lv_kernel_minor";

#[derive(Deserialize)]
struct Report {
    report: Vec<Section>,
}

#[derive(Deserialize)]
struct Section {
    #[serde(default)]
    lv: Vec<Row>,
}

/// A row as `lvs --reportformat json --units b --nosuffix` prints it: all strings.
#[derive(Deserialize)]
struct Row {
    vg_name: String,
    vg_uuid: String,
    vg_free: String,
    vg_extent_size: String,
    lv_name: String,
    lv_uuid: String,
    lv_attr: String,
    lv_size: String,
    origin: String,
    lv_tags: String,
    snap_percent: String,
    lv_snapshot_invalid: String,
    lv_kernel_major: String,
    lv_kernel_minor: String,
}

impl Volume {
    /// A copy-on-write snapshot (lv_attr's first letter `s`, or `S` when invalid).
    pub fn is_snapshot(&self) -> bool {
        self.attr.starts_with(['s', 'S'])
    }

    /// The origin of one snapshot or more (lv_attr's first letter `o`).
    pub fn is_origin(&self) -> bool {
        self.attr.starts_with(['o', 'O'])
    }

    /// An overflowed snapshot: its contents are lost.
    pub fn is_invalid(&self) -> bool {
        self.snapshot_invalid || self.attr.starts_with('S') || self.attr.chars().nth(4) == Some('I')
    }

    /// Held open by someone: mounted, or in use by a process (lv_attr's
    /// sixth letter `o`).
    pub fn is_open(&self) -> bool {
        self.attr.chars().nth(5) == Some('o')
    }

    pub fn is_active(&self) -> bool {
        self.device.is_some()
    }

    pub fn carries(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// The LV UUID (without dashes) that an `origin_tag` names.
    pub fn tagged_origin(&self) -> Option<String> {
        self.tags
            .iter()
            .find_map(|t| t.strip_prefix(ORIGIN_TAG))
            .map(|uuid| uuid.replace('-', ""))
    }

    /// The device node LVM keeps for an active volume.
    pub fn path(&self) -> String {
        format!("/dev/{}/{}", self.name.vg, self.name.lv)
    }

    fn from_row(row: Row) -> Result<Volume> {
        let number = |field: &str, text: &str| -> Result<u64> {
            text.parse().map_err(|_| {
                Error::new(
                    Exit::Software,
                    format!("lvs reported {field} '{text}', not a byte count"),
                )
            })
        };
        let major: i64 = row.lv_kernel_major.parse().unwrap_or(-1);
        let minor: i64 = row.lv_kernel_minor.parse().unwrap_or(-1);
        Ok(Volume {
            vg_free: number("vg_free", &row.vg_free)?,
            extent_size: number("vg_extent_size", &row.vg_extent_size)?,
            size: number("lv_size", &row.lv_size)?,
            name: Name {
                vg: row.vg_name,
                lv: row.lv_name,
            },
            vg_uuid: row.vg_uuid,
            lv_uuid: row.lv_uuid,
            attr: row.lv_attr,
            origin: Some(row.origin).filter(|o| !o.is_empty()),
            tags: row
                .lv_tags
                .split(',')
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect(),
            percent: row.snap_percent.parse().ok(),
            snapshot_invalid: row.lv_snapshot_invalid == "snapshot invalid",
            device: (major >= 0 && minor >= 0).then_some((major as u32, minor as u32)),
        })
    }
}

/// Parses what `lvs --reportformat json` printed.
pub fn parse_report(json: &[u8]) -> Result<Vec<Volume>> {
    let report: Report = serde_json::from_slice(json).map_err(|e| {
        Error::new(
            Exit::Software,
            format!("cannot read the JSON report of lvs: {e}"),
        )
    })?;
    report
        .report
        .into_iter()
        .flat_map(|section| section.lv)
        .map(Volume::from_row)
        .collect()
}

/// The volumes of a group (hidden ones too), or None when there is no such
/// group. With a tag (`@tag`) instead of a group: the volumes that carry
/// it, in any group.
pub fn report(selection: &str) -> Result<Option<Vec<Volume>>> {
    report_with(selection, &[])
}

/// The same report, read while this process holds the group's lock: lvs
/// must not wait for it (LVM's write-priority locking would deadlock).
pub fn report_locked(vg: &str, _held: &crate::vglock::VgLock) -> Result<Option<Vec<Volume>>> {
    report_with(vg, &["--nolocking"])
}

fn report_with(selection: &str, options: &[&str]) -> Result<Option<Vec<Volume>>> {
    let mut args = vec![
        "lvs",
        "-a",
        "--reportformat",
        "json",
        "--units",
        "b",
        "--nosuffix",
        "-o",
        FIELDS,
    ];
    args.extend(options);
    args.push(selection);
    let output = run(&args)?;
    if output.status.success() {
        return parse_report(&output.stdout).map(Some);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains(&format!("Volume group \"{selection}\" not found")) {
        return Ok(None);
    }
    Err(failed("lvs", Exit::Unavailable, &output))
}

/// A volume by name, from a fresh report of its group.
pub fn find(name: &Name) -> Result<Option<Volume>> {
    Ok(report(&name.vg)?.and_then(|volumes| volumes.into_iter().find(|v| v.name == *name)))
}

/// `lvcreate -s`: a snapshot of `origin` of `bytes`, tagged with `tags`.
pub fn create_snapshot(origin: &Name, snapshot: &str, bytes: u64, tags: &[String]) -> Result<()> {
    let size = format!("{bytes}b");
    let origin = origin.to_string();
    let mut args = vec!["lvcreate", "-q", "-y", "-s", "-L", &size, "-n", snapshot];
    for tag in tags {
        args.extend(["--addtag", tag]);
    }
    args.push(&origin);
    let output = run(&args)?;
    if !output.status.success() {
        return Err(failed("lvcreate", Exit::CantCreate, &output));
    }
    Ok(())
}

pub fn remove(name: &Name) -> Result<()> {
    let output = run(&["lvremove", "-q", "-y", &name.to_string()])?;
    if !output.status.success() {
        return Err(failed("lvremove", Exit::IoErr, &output));
    }
    Ok(())
}

/// Runs an LVM tool to the end. It inherits this process's signal mask on
/// purpose: SIGTERM sent to the whole process group (systemd stopping the
/// unit) then cannot cut lvcreate off between suspending the origin and
/// resuming it. This process reads the signal once the tool is done.
fn run(args: &[&str]) -> Result<Output> {
    log::debug!("running {}", args.join(" "));
    Command::new(args[0])
        .args(&args[1..])
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            Error::new(
                Exit::Unavailable,
                format!("cannot run {} (is lvm2 installed?): {e}", args[0]),
            )
        })
}

fn failed(tool: &str, code: Exit, output: &Output) -> Error {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    Error::new(
        code,
        format!(
            "{tool} {}: {}",
            mysnap::child::describe(output.status),
            said.join("; ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<Volume> {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        parse_report(&std::fs::read(path).unwrap()).unwrap()
    }

    fn volume<'a>(volumes: &'a [Volume], lv: &str) -> &'a Volume {
        volumes.iter().find(|v| v.name.lv == lv).unwrap()
    }

    #[test]
    fn a_fresh_snapshot_and_its_origin() {
        let volumes = fixture("lvs-fresh.json");
        assert_eq!(volumes.len(), 3);
        let origin = volume(&volumes, "data");
        assert!(!origin.is_snapshot());
        assert_eq!(origin.size, 300 << 20);
        assert_eq!(origin.vg_free, 612 << 20);
        assert_eq!(origin.extent_size, 4 << 20);
        assert_eq!(origin.device, Some((253, 0)));
        let snap = volume(&volumes, "data-snap");
        assert!(snap.is_snapshot() && !snap.is_invalid() && snap.is_active());
        assert_eq!(snap.origin.as_deref(), Some("data"));
        assert_eq!(snap.size, 8 << 20);
        assert_eq!(snap.percent, Some(6.3));
        assert!(snap.carries(TAG));
        assert!(snap.carries(&run_tag("0123456789abcdef0123456789abcdef")));
        assert!(!snap.carries(&run_tag("another")));
        assert_eq!(snap.path(), "/dev/vg0/data-snap");
        let logs = volume(&volumes, "my-logs");
        assert!(!logs.is_snapshot() && logs.tags.is_empty() && logs.percent.is_none());
    }

    #[test]
    fn an_overflowed_snapshot_is_invalid() {
        let volumes = fixture("lvs-overflowed.json");
        let snap = volume(&volumes, "data-snap");
        assert!(snap.is_snapshot() && snap.is_invalid());
        assert_eq!(snap.percent, Some(100.0));
        assert!(!volume(&volumes, "data").is_invalid());
    }

    #[test]
    fn inactive_volumes_have_no_device() {
        let volumes = fixture("lvs-inactive.json");
        let snap = volume(&volumes, "data-snap");
        assert!(snap.is_snapshot() && !snap.is_active() && !snap.is_invalid());
        assert_eq!(snap.percent, None);
    }

    #[test]
    fn a_report_that_is_not_json_is_an_error() {
        assert_eq!(
            parse_report(b"  Volume group not found")
                .unwrap_err()
                .code(),
            70
        );
        let empty = br#"{"report": [{"lv": []}]}"#;
        assert!(parse_report(empty).unwrap().is_empty());
    }

    #[test]
    fn names() {
        let name = Name::parse("vg0/mysql").unwrap();
        assert_eq!((name.vg.as_str(), name.lv.as_str()), ("vg0", "mysql"));
        assert_eq!(
            Name::parse("/dev/vg0/my-logs").unwrap().to_string(),
            "vg0/my-logs"
        );
        for bad in [
            "mysql", "vg0/", "/mysql", "vg0/a/b", "vg0/-x", "vg0/a b", "vg0/..",
        ] {
            assert_eq!(Name::parse(bad).unwrap_err().code(), 64, "{bad}");
        }
        assert!(valid_token("4f6c2e0d9b8a47c1a3e5f7d9b1c3e5f7"));
        assert!(!valid_token("with space") && !valid_token(""));
    }
}
