//! A tenant's own app project, outside the platform's repository: `app new` writes one that
//! builds as generated, `app build` builds it in any language and checks it as a deploy would.

mod build;
mod new;

use std::path::{Path, PathBuf};

use anyhow::bail;

pub use build::{build, BuildArgs};
pub use new::{new, NewArgs};

/// The languages an app can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

/// The componentize-py release the Python SDK is built and tested with.
pub const COMPONENTIZE_PY: &str = "0.25.1";

/// The componentize-js release the JavaScript SDK is built and tested with.
pub const COMPONENTIZE_JS: &str = "0.23.0";

/// The contract the Python and JavaScript SDKs build against, as the Rust SDK does: the
/// newest. Apps built against an older version still load.
pub const GUEST_WIT: &str = "wit/v0.2";

/// The platform's checkout that holds the SDKs and the contract: `MYSIMBDP_ROOT`, else the
/// one this binary was built from.
pub fn platform_root() -> anyhow::Result<PathBuf> {
    let root = std::env::var_os("MYSIMBDP_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    let root = root.canonicalize().unwrap_or(root);
    if !root.join("guest-sdk/Cargo.toml").is_file() || !root.join(GUEST_WIT).is_dir() {
        bail!(
            "{} holds no mysimbdp SDK (guest-sdk/, wit/): set MYSIMBDP_ROOT to a checkout of the platform",
            root.display()
        );
    }
    Ok(root)
}

/// componentize-py as the project installs it (`scripts/guest-tools.sh`), or the one named by
/// `MYSIMBDP_COMPONENTIZE_PY`.
pub fn componentize_py(root: &Path) -> PathBuf {
    std::env::var_os("MYSIMBDP_COMPONENTIZE_PY")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".state/guest-tools/py/bin/componentize-py"))
}

/// componentize-js as the project installs it (`scripts/guest-tools.sh`), or the one named by
/// `MYSIMBDP_COMPONENTIZE_JS`.
pub fn componentize_js(root: &Path) -> PathBuf {
    std::env::var_os("MYSIMBDP_COMPONENTIZE_JS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".state/guest-tools/js/node_modules/.bin/componentize-js"))
}
