//! Compiled components kept on disk, keyed by the SHA-256 of the `.wasm` and by the engine's
//! settings, so that a restart or a redeploy of a known build does not compile again (a Python
//! or JavaScript app takes ~8 s). Only the platform writes here, from what it compiled itself:
//! a tenant's bytes are always compiled, never loaded as machine code.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use wasmtime::component::Component;
use wasmtime::Engine;

/// The most the folder of one engine configuration holds; the least recently written files go
/// first (a Python component compiles to ~34 MB).
const MAX_BYTES: u64 = 1 << 30;

/// A folder of compiled components for one engine configuration.
pub struct DiskCache {
    dir: PathBuf,
}

impl DiskCache {
    /// The cache under `root`, in a subfolder named by the engine's settings and wasmtime's
    /// version: another configuration never reads this one's code.
    pub fn new(root: &Path, engine: &Engine) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let dir = root.join(format!("engine-{:016x}", hasher.finish()));
        Self { dir }
    }

    /// `MYSIMBDP_CACHE_DIR`, else `$XDG_CACHE_HOME/mysimbdp`, else `~/.cache/mysimbdp`; `None`
    /// when none can be named (the cache is then off).
    pub fn default_root() -> Option<PathBuf> {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        if let Some(dir) = var("MYSIMBDP_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        if let Some(dir) = var("XDG_CACHE_HOME") {
            return Some(PathBuf::from(dir).join("mysimbdp"));
        }
        var("HOME").map(|home| PathBuf::from(home).join(".cache/mysimbdp"))
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}.cwasm"))
    }

    /// The component compiled earlier from the `.wasm` with this digest, if any. A file that
    /// does not load (cut short, another build) is removed and compiled again.
    pub fn load(&self, engine: &Engine, digest: &str) -> Option<Component> {
        let path = self.path(digest);
        if !path.is_file() {
            return None;
        }
        // SAFETY: the files here are written only by `store` below, from `Component::serialize`
        // of code this platform compiled, under a name no tenant chooses; wasmtime checks that
        // the file was made by a compatible engine before using it.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "dropping an unusable compiled component");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Keeps a compiled component for next time; a failure to write only costs a compile later.
    pub fn store(&self, component: &Component, digest: &str) {
        let result = (|| -> std::io::Result<()> {
            let bytes = component.serialize().map_err(std::io::Error::other)?;
            std::fs::create_dir_all(&self.dir)?;
            let temp = self
                .dir
                .join(format!(".{digest}.{}.tmp", std::process::id()));
            let mut file = std::fs::File::create(&temp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            // Whole files only: a reader never sees one half written.
            std::fs::rename(&temp, self.path(digest))?;
            self.trim(MAX_BYTES)
        })();
        if let Err(error) = result {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot keep the compiled component on disk");
        }
    }

    /// Removes the oldest compiled files until the folder holds at most `max` bytes.
    fn trim(&self, max: u64) -> std::io::Result<()> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_file() && entry.path().extension().is_some_and(|e| e == "cwasm") {
                files.push((meta.modified()?, meta.len(), entry.path()));
            }
        }
        files.sort();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        for (_, len, path) in files {
            if total <= max {
                break;
            }
            std::fs::remove_file(&path)?;
            total -= len;
        }
        Ok(())
    }
}
