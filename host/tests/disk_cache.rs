//! Compiled code kept on disk: a second engine (a restarted platform) loads a known build from
//! the cache and runs it; a damaged cache file is dropped and the build compiled again.

mod common;

use mysimbdp_host::plugin::{Batch, Column, Limits, PluginEngine};

fn cache_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for engine in std::fs::read_dir(dir).unwrap() {
        for file in std::fs::read_dir(engine.unwrap().path()).unwrap() {
            files.push(file.unwrap().path());
        }
    }
    files
}

fn runs(engine: &PluginEngine) {
    let app = engine
        .load(&common::component("reviews-daily"), Limits::default())
        .unwrap();
    let mut instance = app.instantiate().unwrap();
    let batch = Batch {
        rows: 2,
        columns: vec![
            Column::Integers(vec![4, 2]),
            Column::Integers(vec![1, 0]),
            Column::Integers(vec![1, 1]),
        ],
    };
    instance.accumulate(&[0, 0], &batch).unwrap();
    let out = instance.emit(&[0], &app.spec.outputs).unwrap();
    assert!(
        matches!(&out.columns[0], Column::Doubles(v) if v == &[3.0]),
        "{:?}",
        out.columns
    );
}

#[test]
fn a_restarted_engine_loads_a_known_build_from_disk() {
    let dir = std::env::temp_dir().join(format!("mysimbdp-disk-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    runs(&PluginEngine::new().unwrap().with_disk_cache(&dir));
    let files = cache_files(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].to_string_lossy().ends_with(".cwasm"));
    let written = std::fs::metadata(&files[0]).unwrap().modified().unwrap();

    // A new engine (a restart) finds it: the file is read, not written again.
    runs(&PluginEngine::new().unwrap().with_disk_cache(&dir));
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().modified().unwrap(),
        written
    );

    // A damaged file is dropped and the build compiled again.
    std::fs::write(&files[0], b"not a compiled component").unwrap();
    runs(&PluginEngine::new().unwrap().with_disk_cache(&dir));
    assert!(std::fs::metadata(&files[0]).unwrap().len() > 1000);
    let _ = std::fs::remove_dir_all(&dir);
}
