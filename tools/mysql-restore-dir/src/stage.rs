//! Staging: reads the archive, unpacks and verifies it under a root (the
//! datadir's staging directory, or DIR itself in place) and the staging
//! directories of the layout targets, and prepares the data for the
//! server. Nothing else changes; on failure the staging directories it
//! created are removed.

use crate::layout;
use crate::replica;
use crate::restore::{self, Live, Target};
use crate::server::{self, Control};
use crate::swap::{self, Datadir};
use mysnap::beneath::Root;
use mysnap::cli::Args;
use mysnap::error::IoContext;
use mysnap::progress::Progress;
use mysnap::restore::input::Input;
use mysnap::restore::unpack::{self, Owner, Roots, Unpacked};
use mysnap::signals::Signals;
use mysnap::{Error, Exit, Result};
use std::cell::RefCell;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// What the server told of its version before the restore, for the guard
/// against restoring a newer server's files.
pub enum TargetVersion {
    Known(String),
    /// Not told: it did not answer, or refused the query (why).
    Unknown(String),
    NoServer,
}

impl TargetVersion {
    /// Asks the running server, without waiting for it.
    pub fn ask(server: &Live) -> TargetVersion {
        if matches!(server.control, Control::NoServer) {
            return TargetVersion::NoServer;
        }
        match server::wait_ready(&server.connect, Duration::ZERO) {
            Ok(server::Ready::Version(version)) => TargetVersion::Known(version),
            Ok(server::Ready::Refused(why)) => TargetVersion::Unknown(why),
            Err(e) => TargetVersion::Unknown(e.message().to_string()),
        }
    }
}

pub struct Stager<'a> {
    pub args: &'a Args,
    pub jobs: usize,
    pub signals: Arc<Signals>,
    pub owner: Owner,
    pub stamp: String,
    /// The layout directories the command line allows replacing.
    pub mappings: Vec<layout::Mapping>,
    /// The datadir the data is for (not the staging root).
    pub datadir: PathBuf,
    pub version: TargetVersion,
}

impl Stager<'_> {
    /// Unpacks, verifies and prepares the archive under `root`, creating
    /// it unless it is the datadir itself, and stages the layout
    /// directories the command line names beside each. Returns what was
    /// unpacked and the layout targets. A signal that arrived stops it.
    pub fn stage(&self, root: &Path) -> Result<(Unpacked, Vec<Target>)> {
        let created = root != self.datadir;
        if created {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(root)
                .map_err(|e| {
                    Error::new(
                        Exit::CantCreate,
                        format!("creating {}: {e}", root.display()),
                    )
                })?;
        }
        let layout = Rc::new(RefCell::new(Vec::new()));
        let result = self.unpack(root, &layout).and_then(|unpacked| {
            self.prepare(root, &unpacked)?;
            self.signals.check()?;
            Ok(unpacked)
        });
        let layout = layout.take();
        match result {
            Ok(unpacked) => Ok((unpacked, layout)),
            Err(e) => {
                let mut left = restore::remove_staging(&layout);
                if created {
                    left += &restore::remove(&[root]);
                }
                Err(Error::with_status(
                    e.code(),
                    format!("{}{left}", e.message()),
                ))
            }
        }
    }

    /// Unpacks and verifies the archive under `root`; the layout targets
    /// go into `layout` as the manifest names them.
    fn unpack(&self, root: &Path, layout: &Rc<RefCell<Vec<Target>>>) -> Result<Unpacked> {
        let mut input = Input::open(
            self.args.command.as_deref(),
            self.jobs,
            self.signals.clone(),
        )?;
        log::debug!("archive compression: {}", input.compression.name());
        let mappings = self.mappings.clone();
        let (stamp, targets) = (self.stamp.clone(), layout.clone());
        let roots = Roots {
            datadir: root.to_path_buf(),
            layout: Box::new(move |manifest| layout_roots(manifest, &mappings, &stamp, &targets)),
            require_manifest: !self.args.flag("no-manifest"),
        };
        let mut progress = Progress::new("unpacked", None);
        let unpacked = unpack::unpack(&mut input, roots, self.owner, &self.signals, &mut progress);
        progress.finish();
        let unpacked = match unpacked {
            Ok(unpacked) => unpacked,
            // A signal cuts the stream short: report the signal, not the cut.
            Err(e) => return Err(input.fail(self.signals.check().err().unwrap_or(e))),
        };
        input.finish()?;
        unpacked.verify(!self.args.flag("no-manifest"))?;
        // Owners are set before the swap, so nothing after it can fail.
        let layout = layout.borrow();
        let stagings: Vec<&Path> = layout.iter().map(|t| t.names.staging.as_path()).collect();
        if let Some((uid, gid)) = self.owner.0 {
            for dir in std::iter::once(root).chain(stagings.iter().copied()) {
                nix::unistd::chown(dir, Some(uid), Some(gid)).map_err(|e| {
                    Error::new(Exit::IoErr, format!("chown {}: {e}", dir.display()))
                })?;
            }
        }
        // The datadir's own root is synced by `prepare`, after its last change.
        for staging in stagings {
            swap::sync_filesystem(staging)?;
        }
        Ok(unpacked)
    }

    /// Everything between a verified stage under `root` and the swap:
    /// version check, binlog index paths, replica preparation, and making
    /// the data durable.
    fn prepare(&self, root: &Path, unpacked: &Unpacked) -> Result<()> {
        let force = self.args.flag("force");
        let status = unpacked.manifest.as_ref().and_then(|m| m.status.as_ref());
        let backup_version = status.map(|s| s.server_version.as_str());
        if let (Some(backup), TargetVersion::Unknown(why)) = (backup_version, &self.version) {
            if !force {
                log::warn!(
                    "cannot check that the server reads a backup from {backup}: it did not tell \
                     its version before the restore ({why}); restoring without the newer-version \
                     guard"
                );
            }
        }
        if let (Some(backup), TargetVersion::Known(target)) = (backup_version, &self.version) {
            if server::series(backup) > server::series(target) && !force {
                return Err(Error::new(
                    Exit::Config,
                    format!(
                        "the backup comes from {backup}, newer than this server's {target}: \
                         an older server may not read its files (--force restores anyway)"
                    ),
                ));
            }
        }
        let old_datadir = status.and_then(|s| s.layout.datadir.as_deref());
        let staged = Root::open(root).ctx(format!("opening {}", root.display()))?;
        replica::rewrite_indexes(&staged, old_datadir, &self.datadir)?;
        if self.args.flag("as-replica") {
            let removed = replica::remove_cloned_state(&staged)?;
            log::info!(
                "as a replica: removed {}",
                if removed.is_empty() {
                    "nothing".to_string()
                } else {
                    removed.join(", ")
                }
            );
        }
        swap::sync_filesystem(root)?;
        swap::sync_dir(root)
    }
}

/// Staging roots for the layout directories the command line named: beside
/// each target, on its filesystem (recorded in `targets` for the swap).
/// None when nothing of the layout is restored, only verified.
fn layout_roots(
    manifest: &mysnap::archive::Manifest,
    mappings: &[layout::Mapping],
    stamp: &str,
    targets: &RefCell<Vec<Target>>,
) -> Result<Option<Vec<(String, PathBuf)>>> {
    let layout::Resolved { chosen, skipped } = layout::resolve(&manifest.layout, mappings)?;
    if !skipped.is_empty() {
        log::warn!(
            "the archive holds files from outside the datadir ({}); they are verified \
             but not restored: --include-layout ORIGINAL[=TARGET] names each one to restore",
            layout::describe(&skipped.into_iter().cloned().collect::<Vec<_>>())
        );
    }
    if chosen.is_empty() {
        return Ok(None);
    }
    let mut roots = Vec::new();
    for (archived, target_dir) in chosen {
        let target = Target::new(Datadir::inspect(&target_dir)?, stamp)?;
        let staging = target.names.staging.clone();
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging)
            .map_err(|e| {
                Error::new(
                    Exit::CantCreate,
                    format!("creating {}: {e}", staging.display()),
                )
            })?;
        targets.borrow_mut().push(target);
        roots.push((archived, staging));
    }
    Ok(Some(roots))
}
