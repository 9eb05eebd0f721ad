//! What a new tenant does, from an empty folder, in each language: `app new`, `app build`,
//! `app test` on the generated sample, whose rows this test computes from the sample itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn mysimbdp(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mysimbdp"))
        .current_dir(dir)
        // Compiled code is kept beside the project, removed with it.
        .env("MYSIMBDP_CACHE_DIR", dir.join(".compiled"))
        .args(args)
        .output()
        .unwrap()
}

fn check(out: &Output, what: &str) -> String {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{what} failed:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// (reviews, average stars) per (product, day), from the sample's well-formed rows.
fn expected_from(sample: &str) -> BTreeMap<(String, String), (i64, f64)> {
    let mut sums: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for line in sample.lines().skip(1) {
        let cells: Vec<&str> = line.split('\t').collect();
        let Ok(stars) = cells[7].parse::<i64>() else {
            continue;
        };
        let day = format!("{}T00:00:00Z", cells[14]);
        let sum = sums.entry((cells[3].to_owned(), day)).or_default();
        sum.0 += 1;
        sum.1 += stars;
    }
    sums.into_iter()
        .map(|(k, (n, s))| (k, (n, s as f64 / n as f64)))
        .collect()
}

fn new_build_test(lang: &str) {
    let dir = Dir(std::env::temp_dir().join(format!("mysimbdp-new-{lang}-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let name = format!("first-{lang}");
    check(
        &mysimbdp(&dir.0, &["app", "new", &name, "--lang", lang]),
        "app new",
    );
    let project = dir.0.join(&name);
    let built = check(&mysimbdp(&project, &["app", "build"]), "app build");
    // Every SDK builds the newest contract.
    assert!(
        built.contains("implements mysimbdp:tenant@0.2.0"),
        "{built}"
    );
    let wasm = format!("{name}.wasm");
    let with_expect = mysimbdp(
        &project,
        &[
            "app",
            "test",
            "--app",
            &wasm,
            "--input",
            "sample.tsv",
            "--expect",
            "expected.csv",
        ],
    );
    check(&with_expect, "app test --expect");
    let json = check(
        &mysimbdp(
            &project,
            &[
                "app",
                "test",
                "--app",
                &wasm,
                "--input",
                "sample.tsv",
                "--format",
                "json",
            ],
        ),
        "app test --format json",
    );
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let sample = std::fs::read_to_string(project.join("sample.tsv")).unwrap();
    let expected = expected_from(&sample);
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), expected.len(), "{json}");
    for row in rows {
        let key = (
            row["product_id"].as_str().unwrap().to_owned(),
            row["window_start"].as_str().unwrap().to_owned(),
        );
        let (n, avg) = expected[&key];
        assert_eq!(row["reviews"].as_i64(), Some(n), "{row}");
        assert!(
            (row["avg_star_rating"].as_f64().unwrap() - avg).abs() < 1e-9,
            "{row}"
        );
        assert_eq!(row["final"], true);
    }
    let dead = doc["dead_letters"].as_array().unwrap();
    assert_eq!(dead.len(), 1, "{json}");
    assert!(dead[0]["reason"].as_str().unwrap().contains("star_rating"));
}

#[test]
fn a_rust_app_from_nothing_builds_and_passes_its_sample() {
    new_build_test("rust");
}

#[test]
fn a_python_app_from_nothing_builds_and_passes_its_sample() {
    new_build_test("python");
}

#[test]
fn a_javascript_app_from_nothing_builds_and_passes_its_sample() {
    new_build_test("js");
}

#[test]
fn a_project_that_breaks_the_contract_is_refused_with_the_deploy_words() {
    let dir = Dir(std::env::temp_dir().join(format!("mysimbdp-new-bad-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    check(
        &mysimbdp(&dir.0, &["app", "new", "bad", "--lang", "python"]),
        "app new",
    );
    let project = dir.0.join("bad");
    let app = project.join("app.py");
    // An output column named like one the platform adds itself.
    let text = std::fs::read_to_string(&app)
        .unwrap()
        .replace("    reviews: int\n", "    window_start: int\n");
    std::fs::write(&app, text).unwrap();
    let out = mysimbdp(&project, &["app", "build"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("bad.wasm describes itself wrongly"),
        "{stderr}"
    );
    assert!(stderr.contains("window_start"), "{stderr}");
}

#[test]
fn new_refuses_a_folder_in_use_and_a_bad_name() {
    let dir = Dir(std::env::temp_dir().join(format!("mysimbdp-new-used-{}", std::process::id())));
    std::fs::create_dir_all(dir.0.join("taken")).unwrap();
    std::fs::write(dir.0.join("taken/file"), "x").unwrap();
    let out = mysimbdp(&dir.0, &["app", "new", "taken"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists and is not empty"));
    let out = mysimbdp(&dir.0, &["app", "new", "Bad Name"]);
    assert!(!out.status.success());
}

/// An error raised in the app's `add` on one record: that record is quarantined and the reason
/// names the app's function and line.
fn error_names_the_line(lang: &str, file: &str, anchor: &str, raise: &str) {
    let dir =
        Dir(std::env::temp_dir().join(format!("mysimbdp-raise-{lang}-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    check(
        &mysimbdp(&dir.0, &["app", "new", "oops", "--lang", lang]),
        "app new",
    );
    let project = dir.0.join("oops");
    let source = std::fs::read_to_string(project.join(file)).unwrap();
    let at = source.find(anchor).unwrap() + anchor.len();
    let line = source[..at].lines().count() + raise.lines().count();
    std::fs::write(
        project.join(file),
        format!("{}{raise}{}", &source[..at], &source[at..]),
    )
    .unwrap();
    check(&mysimbdp(&project, &["app", "build"]), "app build");
    let out = mysimbdp(
        &project,
        &["app", "test", "--app", "oops.wasm", "--input", "sample.tsv"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    // Line 8 of the sample is its one-star review.
    let want = format!("one star is not allowed (at {file}:{line}, in add)");
    assert!(stdout.contains("line 8: quarantined"), "{stdout}");
    assert!(stdout.contains(&want), "{want} in:\n{stdout}");
}

#[test]
fn a_python_error_names_the_apps_line() {
    error_names_the_line(
        "python",
        "app.py",
        "def add(self, r: Review) -> None:\n",
        "        if r.star_rating == 1:\n            raise ValueError('one star is not allowed')\n",
    );
}

#[test]
fn a_javascript_error_names_the_apps_line() {
    error_names_the_line(
        "js",
        "app.js",
        "add(s, r) {\n",
        "    if (r.star_rating === 1) throw new Error('one star is not allowed');\n",
    );
}

#[test]
fn a_project_pinned_to_the_old_contract_is_told_how_to_move() {
    let dir = Dir(std::env::temp_dir().join(format!("mysimbdp-new-old-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    check(
        &mysimbdp(&dir.0, &["app", "new", "old", "--lang", "python"]),
        "app new",
    );
    let project = dir.0.join("old");
    let settings = project.join("pyproject.toml");
    let text = std::fs::read_to_string(&settings).unwrap();
    assert!(text.contains("wit/v0.2"), "{text}");
    std::fs::write(&settings, text.replace("wit/v0.2", "wit/v0.1")).unwrap();
    let out = mysimbdp(&project, &["app", "build"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("pyproject.toml's [tool.mysimbdp] wit")
            && stderr.contains("(mysimbdp:tenant@0.1.0), but the SDK builds mysimbdp:tenant@0.2.0")
            && stderr.contains("wit/v0.2"),
        "{stderr}"
    );
}

#[test]
fn a_python_app_declares_session_windows() {
    let dir = Dir(std::env::temp_dir().join(format!("mysimbdp-new-keys-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    check(
        &mysimbdp(&dir.0, &["app", "new", "keys", "--lang", "python"]),
        "app new",
    );
    let project = dir.0.join("keys");
    let app = project.join("app.py");
    let text = std::fs::read_to_string(&app)
        .unwrap()
        .replace(
            "on_update, seconds, tumbling",
            "on_update, seconds, session",
        )
        .replace("window=tumbling(days(1))", "window=session(days(3))");
    std::fs::write(&app, text).unwrap();
    let stdout = check(&mysimbdp(&project, &["app", "build"]), "app build");
    assert!(
        stdout.contains("implements mysimbdp:tenant@0.2.0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("key product_id, window session after a 259200000 ms gap"),
        "{stdout}"
    );
}
