//! What the operator changed through the admin API, kept on disk so that a restarted host runs
//! it again: the build that took over last (and the one before it, for a rollback), an app a
//! deploy started, and an app removed. The config file still names what a fresh host starts
//! with; for the same tenant and app, what is kept here wins.
//!
//! One folder per app: `<dir>/<tenant>/<app>/current/` (the `.wasm`, its enrich manifest when
//! it was deployed with one, and `deploy.json`), `previous/` likewise, or a `removed` marker.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::checkpoint::Delivery;
use crate::enrich::EnrichManifest;

/// Why a deploy could not be kept, or a kept one read back.
#[derive(Debug, thiserror::Error)]
#[error("{doing} {path}: {source}")]
pub struct KeepError {
    doing: &'static str,
    path: String,
    #[source]
    source: io::Error,
}

fn failed(doing: &'static str, path: &Path) -> impl FnOnce(io::Error) -> KeepError {
    let path = path.display().to_string();
    move |source| KeepError {
        doing,
        path,
        source,
    }
}

/// How a kept build runs: what it reads and with which guarantee, and what the operator saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    pub stream: String,
    pub delivery: Delivery,
    pub version: String,
    pub deployed_at_ms: i64,
}

/// One app as the operator left it.
#[derive(Debug, Clone, PartialEq)]
pub enum Kept {
    /// Run this build (its `.wasm`, an enrich manifest beside it when it had one).
    Build { wasm: PathBuf, placement: Placement },
    /// Removed by the operator: not started again until a deploy.
    Removed,
}

/// The deploys of one host.
pub struct Deployments {
    dir: PathBuf,
}

const WASM: &str = "app.wasm";
const PLACEMENT: &str = "deploy.json";
const REMOVED: &str = "removed";

impl Deployments {
    /// Kept under `dir`, made (readable by this user only) if missing.
    pub fn open(dir: &Path) -> Result<Self, KeepError> {
        std::fs::create_dir_all(dir).map_err(failed("creating", dir))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(failed("restricting", dir))?;
        }
        Ok(Self { dir: dir.into() })
    }

    /// Everything kept of one app: deleting it (host stopped) forgets what was deployed.
    pub fn folder(&self, tenant: &str, app: &str) -> PathBuf {
        self.dir.join(tenant).join(app)
    }

    /// A build took over (or started): it becomes `current`, the one running before it becomes
    /// `previous` (none kept: the build the config names was running).
    pub fn keep(
        &self,
        tenant: &str,
        app: &str,
        wasm: &[u8],
        manifest: Option<&Path>,
        placement: &Placement,
    ) -> Result<(), KeepError> {
        let dir = self.folder(tenant, app);
        let next = dir.join("next");
        remove_dir(&next)?;
        std::fs::create_dir_all(&next).map_err(failed("creating", &next))?;
        write(&next.join(WASM), wasm)?;
        if let Some(manifest) = manifest {
            let beside = EnrichManifest::path_beside(&next.join(WASM));
            std::fs::copy(manifest, &beside).map_err(failed("copying", manifest))?;
        }
        let json = serde_json::to_vec_pretty(placement).map_err(io::Error::from);
        write(
            &next.join(PLACEMENT),
            &json.map_err(failed("writing", &next))?,
        )?;
        let (current, previous) = (dir.join("current"), dir.join("previous"));
        remove_dir(&previous)?;
        if current.exists() {
            rename(&current, &previous)?;
        }
        rename(&next, &current)?;
        remove_file(&dir.join(REMOVED))
    }

    /// The build before took over again: `current` and `previous` trade places (with none
    /// kept before, the config's build runs after a restart, and `current` is kept as the one
    /// to roll back to).
    pub fn rolled_back(&self, tenant: &str, app: &str) -> Result<(), KeepError> {
        let dir = self.folder(tenant, app);
        let (current, previous, swap) =
            (dir.join("current"), dir.join("previous"), dir.join("swap"));
        remove_dir(&swap)?;
        if current.exists() {
            rename(&current, &swap)?;
        }
        if previous.exists() {
            rename(&previous, &current)?;
        }
        if swap.exists() {
            rename(&swap, &previous)?;
        }
        Ok(())
    }

    /// Removed by the operator: nothing of the app is started again until it is deployed.
    pub fn removed(&self, tenant: &str, app: &str) -> Result<(), KeepError> {
        let dir = self.folder(tenant, app);
        remove_dir(&dir)?;
        std::fs::create_dir_all(&dir).map_err(failed("creating", &dir))?;
        write(&dir.join(REMOVED), b"")
    }

    /// What was kept for one app, if anything.
    pub fn get(&self, tenant: &str, app: &str) -> Result<Option<Kept>, KeepError> {
        let dir = self.folder(tenant, app);
        if dir.join(REMOVED).exists() {
            return Ok(Some(Kept::Removed));
        }
        let current = dir.join("current");
        let placement = current.join(PLACEMENT);
        let text = match std::fs::read(&placement) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(failed("reading", &placement)(e)),
        };
        let placement: Placement = serde_json::from_slice(&text)
            .map_err(io::Error::from)
            .map_err(failed("reading", &placement))?;
        Ok(Some(Kept::Build {
            wasm: current.join(WASM),
            placement,
        }))
    }

    /// The build that ran before the current one, when one is kept: what a rollback after a
    /// restart goes back to.
    pub fn previous(&self, tenant: &str, app: &str) -> Option<PathBuf> {
        let wasm = self.folder(tenant, app).join("previous").join(WASM);
        wasm.is_file().then_some(wasm)
    }

    /// Every app kept, as (tenant, app, what), in name order.
    pub fn all(&self) -> Result<Vec<(String, String, Kept)>, KeepError> {
        let mut all = Vec::new();
        for tenant in names_in(&self.dir)? {
            for app in names_in(&self.dir.join(&tenant))? {
                if let Some(kept) = self.get(&tenant, &app)? {
                    all.push((tenant.clone(), app, kept));
                }
            }
        }
        Ok(all)
    }
}

fn names_in(dir: &Path) -> Result<Vec<String>, KeepError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(failed("listing", dir))? {
        let entry = entry.map_err(failed("listing", dir))?;
        if entry.path().is_dir() {
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
    }
    names.sort();
    Ok(names)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), KeepError> {
    std::fs::write(path, bytes).map_err(failed("writing", path))
}

fn rename(from: &Path, to: &Path) -> Result<(), KeepError> {
    std::fs::rename(from, to).map_err(failed("renaming", from))
}

fn remove_dir(dir: &Path) -> Result<(), KeepError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(failed("removing", dir)(e)),
        _ => Ok(()),
    }
}

fn remove_file(path: &Path) -> Result<(), KeepError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(failed("removing", path)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placement(version: &str) -> Placement {
        Placement {
            stream: "reviews".into(),
            delivery: Delivery::ExactlyOnce,
            version: version.into(),
            deployed_at_ms: 1,
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mysimbdp-deployed-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn kept_version(kept: &Deployments) -> Option<(String, Vec<u8>)> {
        match kept.get("acme", "daily").ok()?? {
            Kept::Build { wasm, placement } => Some((placement.version, std::fs::read(wasm).ok()?)),
            Kept::Removed => None,
        }
    }

    #[test]
    fn deploys_rollbacks_and_removals_are_read_back_as_the_operator_left_them() {
        let dir = scratch("cycle");
        let kept = Deployments::open(&dir).expect("a folder");
        assert_eq!(kept.get("acme", "daily").ok(), Some(None));
        kept.keep("acme", "daily", b"two", None, &placement("2.0.0"))
            .expect("kept");
        assert_eq!(kept_version(&kept), Some(("2.0.0".into(), b"two".to_vec())));
        kept.keep("acme", "daily", b"three", None, &placement("3.0.0"))
            .expect("kept");
        kept.rolled_back("acme", "daily").expect("rolled back");
        assert_eq!(kept_version(&kept), Some(("2.0.0".into(), b"two".to_vec())));
        kept.rolled_back("acme", "daily").expect("rolled forward");
        assert_eq!(
            kept_version(&kept),
            Some(("3.0.0".into(), b"three".to_vec()))
        );
        kept.removed("acme", "daily").expect("removed");
        assert_eq!(kept.get("acme", "daily").ok(), Some(Some(Kept::Removed)));
        kept.keep("acme", "daily", b"four", None, &placement("4.0.0"))
            .expect("kept");
        let all = kept.all().expect("listed");
        assert_eq!(all.len(), 1);
        assert_eq!(
            kept_version(&kept),
            Some(("4.0.0".into(), b"four".to_vec()))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_rollback_to_the_configs_build_keeps_nothing_current() {
        let dir = scratch("config");
        let kept = Deployments::open(&dir).expect("a folder");
        kept.keep("acme", "daily", b"two", None, &placement("2.0.0"))
            .expect("kept");
        kept.rolled_back("acme", "daily").expect("rolled back");
        assert_eq!(kept.get("acme", "daily").ok(), Some(None));
        kept.rolled_back("acme", "daily").expect("rolled forward");
        assert_eq!(kept_version(&kept), Some(("2.0.0".into(), b"two".to_vec())));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
