//! Device-mapper's view: lvcreate suspends the origin while it inserts the
//! snapshot, and an lvcreate killed at that moment (SIGKILL, a crash)
//! leaves the origin suspended, so every write to the database hangs.
//! `status` and `remove` look for that and resume it.

use crate::lvm::Volume;
use mysnap::{Error, Exit, Result};
use std::process::Command;

/// The suspended devices of the volume group with `vg_uuid`, from
/// `dmsetup info -c --noheadings -o uuid,suspended`: the hidden layers
/// (`-real`, `-cow`) first, so that the top device resumes onto live ones.
pub fn suspended(info: &str, vg_uuid: &str) -> Vec<String> {
    let prefix = format!("LVM-{}", vg_uuid.replace('-', ""));
    let mut found: Vec<String> = info
        .lines()
        .filter_map(|line| line.trim().rsplit_once(':'))
        .filter(|(uuid, state)| uuid.starts_with(&prefix) && *state == "Suspended")
        .map(|(uuid, _)| uuid.to_string())
        .collect();
    found.sort_by_key(|uuid| !is_layer(uuid));
    found
}

/// LVM's device-mapper UUIDs: "LVM-", the VG's and the LV's UUIDs (32
/// characters each, no dashes), then "-real" or "-cow" for a hidden layer.
const LAYER_AT: usize = 4 + 32 + 32;

fn is_layer(uuid: &str) -> bool {
    uuid.len() > LAYER_AT
}

/// Which volume a device-mapper UUID belongs to, for messages: `vg0/data-real`.
fn describe(uuid: &str, volumes: &[Volume]) -> String {
    volumes
        .iter()
        .find_map(|v| {
            let lv_and_layer = uuid.get(4 + 32..)?;
            let layer = lv_and_layer.strip_prefix(&v.lv_uuid.replace('-', ""))?;
            Some(format!("{}{layer}", v.name))
        })
        .unwrap_or_else(|| uuid.to_string())
}

/// Resumes what a killed lvcreate left suspended in the group these
/// volumes belong to. Call after `lvs` has reported on the group: lvs waits
/// for the group's lock, so an LVM command that suspended a device for a
/// moment has finished and resumed it by then.
pub fn resume_suspended(volumes: &[Volume]) -> Result<()> {
    let Some(vg_uuid) = volumes.first().map(|v| &v.vg_uuid) else {
        return Ok(());
    };
    let info = dmsetup(&["info", "-c", "--noheadings", "-o", "uuid,suspended"])?;
    for uuid in suspended(&info, vg_uuid) {
        let what = describe(&uuid, volumes);
        dmsetup(&["resume", "-u", &uuid])
            .map_err(|e| e.context(format!("{what} is suspended (a killed lvcreate?)")))?;
        log::warn!("{what} was left suspended (a killed lvcreate?): resumed it");
    }
    Ok(())
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
                args[0],
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

    const VG_UUID: &str = "hqku3O-uROU-6uce-HkTY-MRUB-MLYB-rgdXCx";

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn finds_the_suspended_origin_of_one_group() {
        let info = fixture("dmsetup-info-suspended.txt");
        let found = suspended(&info, VG_UUID);
        assert_eq!(found.len(), 1);
        let volumes = crate::lvm::parse_report(fixture("lvs-fresh.json").as_bytes()).unwrap();
        assert_eq!(describe(&found[0], &volumes), "vg0/data");
        assert!(suspended(&info, "other-vg-uuid").is_empty());
        assert!(suspended("No devices found\n", VG_UUID).is_empty());
    }

    #[test]
    fn hidden_layers_resume_first() {
        let origin = format!(
            "LVM-{}{}",
            VG_UUID.replace('-', ""),
            "Urtigb3NpvLM35CZogGnIb3ioSvzBdSQ"
        );
        let info = format!("{origin}:Suspended\n{origin}-real:Suspended\n{origin}-cow:Active\n");
        let found = suspended(&info, VG_UUID);
        assert_eq!(found, [format!("{origin}-real"), origin]);
        let volumes = crate::lvm::parse_report(fixture("lvs-fresh.json").as_bytes()).unwrap();
        assert_eq!(describe(&found[0], &volumes), "vg0/data-real");
    }
}
