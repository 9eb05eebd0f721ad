//! What the plugin tests share: where the compiled tenant apps are.

use std::path::PathBuf;

/// A tenant app's component, built by `just build-apps` (`just test` builds them first).
pub fn component(crate_name: &str) -> PathBuf {
    let file = format!("{}.wasm", crate_name.replace('-', "_"));
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm32-wasip2/release")
        .join(file);
    assert!(
        path.is_file(),
        "{} is missing: run `just build-apps`",
        path.display()
    );
    path
}
