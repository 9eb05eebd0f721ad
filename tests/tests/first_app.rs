//! What a new tenant does, for each language, from an empty folder outside the repository:
//! `app new`, `app build`, `app test` on the sample against its expected rows, then `app deploy`
//! to a running platform on real Kafka and Cassandra, and the rows checked in Cassandra against
//! what this test computes from the sample itself.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use mysimbdp_tests::{
    create_topic, days_from_civil, final_windows, mysimbdp_bin, produce_command, run_command,
    sum_column, AppSpec, Platform, PlatformConfig, Services, TestEnv, MS_PER_DAY, REVIEWS_DAILY,
};

const DRAIN_TIMEOUT: Duration = Duration::from_secs(5 * 60);
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

/// Removes the tenant's project folders, wherever the test stops.
struct Projects(PathBuf);

impl Drop for Projects {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The (product, day) windows of the sample's well-formed rows, and how many rows those are.
fn expected(sample: &Path) -> Result<(BTreeSet<(String, i64)>, i64)> {
    let text = std::fs::read_to_string(sample)?;
    let (mut windows, mut rows) = (BTreeSet::new(), 0);
    for line in text.lines().skip(1) {
        let cells: Vec<&str> = line.split('\t').collect();
        if cells[7].parse::<i64>().is_err() {
            continue;
        }
        let mut date = cells[14].split('-').map(str::parse::<i64>);
        let (y, m, d) = (
            date.next().context("year")??,
            date.next().context("month")??,
            date.next().context("day")??,
        );
        windows.insert((
            cells[3].to_owned(),
            days_from_civil(y, m as u32, d as u32) * MS_PER_DAY,
        ));
        rows += 1;
    }
    Ok((windows, rows))
}

#[test]
fn a_new_tenant_goes_from_an_empty_folder_to_rows_in_cassandra_in_each_language() -> Result<()> {
    Services::check()?;
    let env = TestEnv::new()?;
    let bin = mysimbdp_bin()?;
    let projects = Projects(std::env::temp_dir().join(format!("mysimbdp-first-{}", env.tenant)));
    std::fs::create_dir_all(&projects.0)?;
    let mut built = Vec::new();
    for lang in ["rust", "python", "js"] {
        let name = format!("first-{lang}");
        let dir = projects.0.join(&name);
        let steps: [(&str, Vec<&str>, &Path); 3] = [
            (
                "new",
                vec!["app", "new", &name, "--lang", lang],
                &projects.0,
            ),
            ("build", vec!["app", "build"], &dir),
            (
                "test",
                vec![
                    "app",
                    "test",
                    "--app",
                    "APP",
                    "--input",
                    "sample.tsv",
                    "--expect",
                    "expected.csv",
                ],
                &dir,
            ),
        ];
        let wasm = format!("{name}.wasm");
        for (step, args, cwd) in steps {
            let args: Vec<&str> = args
                .into_iter()
                .map(|a| if a == "APP" { wasm.as_str() } else { a })
                .collect();
            let mut command = Command::new(&bin);
            command.current_dir(cwd).args(&args);
            run_command(&env, &format!("{step}-{lang}"), &mut command, BUILD_TIMEOUT)?
                .ensure_success(&format!("app {step} ({lang})"))?;
        }
        built.push((name, dir.join(&wasm), dir.join("sample.tsv")));
    }

    // A running platform (with the reference app on the same stream), the sample as input.
    create_topic(&env.topic("reviews"), 4)?;
    let config = PlatformConfig::new(&env.tenant, vec![AppSpec::reviews_daily()?])?;
    let mut platform = Platform::start(&env, "platform", &config)?;
    platform.wait_ready(REVIEWS_DAILY)?;
    let sample = built[0].2.clone();
    let mut produce = produce_command(&env.tenant)?;
    produce
        .arg("--file")
        .arg(&sample)
        .args(["--tenant", &env.tenant]);
    run_command(&env, "produce", &mut produce, Duration::from_secs(120))?
        .ensure_success("produce")?;
    let (windows, rows) = expected(&sample)?;

    for (name, wasm, _) in &built {
        let path = wasm.to_string_lossy();
        let args = [
            "deploy",
            "--tenant",
            &env.tenant,
            "--path",
            &path,
            "--stream",
            "reviews",
        ];
        platform
            .operate(&env, &format!("deploy-{name}"), &args)?
            .ensure_success(&format!("app deploy {name}"))?;
        platform.wait_ready(name)?;
        platform.drain(name)?;
        platform.wait_drained(name, DRAIN_TIMEOUT)?;
        let table = name.replace('-', "_");
        let written = final_windows(&env.tenant, &table)?;
        ensure!(
            written == windows,
            "{name}: final windows {written:?}, expected {windows:?}"
        );
        let counted = sum_column(&env.tenant, &table, "reviews")?;
        ensure!(
            counted == rows,
            "{name}: {counted} reviews counted, {rows} expected"
        );
    }
    platform.stop()?;
    Ok(())
}
