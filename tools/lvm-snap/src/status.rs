//! `status`: how full a snapshot is, and whether it overflowed.

use crate::lvm::Name;
use crate::repair;
use mysnap::{Error, Exit, Result};

/// How full the snapshot is, on stdout; exit 65 if it overflowed.
pub fn status(name: &Name) -> Result<()> {
    let snapshot = repair::snapshot(name)?;
    let origin = format!("{}/{}", name.vg, snapshot.origin.as_deref().unwrap_or("?"));
    if snapshot.is_invalid() {
        return Err(Error::new(
            Exit::DataErr,
            format!("{name} overflowed and is invalid: its copy of {origin} is lost"),
        ));
    }
    match snapshot.percent {
        Some(percent) => println!(
            "{name}: {percent:.2}% of {} used, snapshot of {origin}",
            mysnap::quantity::format_size(snapshot.size)
        ),
        None => println!("{name}: inactive snapshot of {origin}"),
    }
    Ok(())
}
