//! Where things are: the workspace, the built artifacts, a per-run tenant and scratch folder, and
//! a way to run a command to completion with a deadline.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

/// The Cargo workspace root, so that tests find artifacts however `cargo test` was started.
pub fn workspace_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Cargo's target folder (honouring `CARGO_TARGET_DIR`), where `just test` puts what it builds.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_dir().join(dir),
        _ => workspace_dir().join("target"),
    }
}

fn built_artifact(var: &str, default: PathBuf, what: &str) -> Result<PathBuf> {
    let path = match std::env::var_os(var) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => default,
    };
    if !path.is_file() {
        bail!(
            "{what} not found at {}: run the tests with `just test` (it builds it first), \
             or point {var} at it",
            path.display()
        );
    }
    Ok(path)
}

/// The `.state` folder of the checkout whose `just up` started the services
/// (`MYSIMBDP_STATE_DIR` when set and not empty, else this workspace's).
pub fn state_dir() -> PathBuf {
    match std::env::var_os("MYSIMBDP_STATE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_dir().join(".state"),
    }
}

/// The platform binary under test: `$MYSIMBDP_BIN`, else `target/release/mysimbdp`.
pub fn mysimbdp_bin() -> Result<PathBuf> {
    built_artifact(
        "MYSIMBDP_BIN",
        target_dir().join("release").join("mysimbdp"),
        "the platform binary `mysimbdp`",
    )
}

/// The reference tenant app: `$REVIEWS_DAILY_WASM`, else the wasm32-wasip2 release build.
pub fn reviews_daily_wasm() -> Result<PathBuf> {
    tenant_app_wasm("reviews-daily")
}

/// A tenant app of this repository by crate name: `$<NAME>_WASM` (e.g. `HOSTILE_WASM`), else
/// the wasm32-wasip2 release build that `just build-apps` makes.
pub fn tenant_app_wasm(crate_name: &str) -> Result<PathBuf> {
    let file = crate_name.replace('-', "_");
    built_artifact(
        &format!("{}_WASM", file.to_uppercase()),
        target_dir()
            .join("wasm32-wasip2/release")
            .join(format!("{file}.wasm")),
        &format!("the {crate_name} component"),
    )
}

/// A tenant id no earlier run used (`t<unix ms>x<pid>x<n>`), so that runs never share topics,
/// keyspaces or consumer groups; it is a valid tenant id (letters and digits, at most 48).
pub fn unique_tenant_id() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("t{millis}x{}x{n}", std::process::id())
}

/// One test's world: its own tenant and a scratch folder `target/e2e/<tenant>/` for the
/// generated data, config files and logs, kept after the run for a post-mortem.
#[derive(Debug, Clone)]
pub struct TestEnv {
    pub tenant: String,
    pub scratch: PathBuf,
}

impl TestEnv {
    /// A fresh tenant and its (created) scratch folder.
    pub fn new() -> Result<Self> {
        let tenant = unique_tenant_id();
        let scratch = target_dir().join("e2e").join(&tenant);
        fs::create_dir_all(&scratch)
            .with_context(|| format!("cannot create the scratch folder {}", scratch.display()))?;
        Ok(Self { tenant, scratch })
    }

    /// A file in the scratch folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.scratch.join(name)
    }

    /// A tenant topic `<tenant>.<suffix>`, e.g. `topic("reviews")` or
    /// `topic("reviews-daily.late")`.
    pub fn topic(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.tenant)
    }
}

/// What a finished command left behind.
#[derive(Debug)]
pub struct CommandOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    /// Both streams, for a failure message.
    pub fn describe(&self) -> String {
        format!(
            "exit status: {}\n--- stdout (tail) ---\n{}\n--- stderr (tail) ---\n{}",
            self.status,
            tail_lines(&self.stdout, 40),
            tail_lines(&self.stderr, 40)
        )
    }

    /// Fails unless the command exited 0, showing what it printed.
    pub fn ensure_success(&self, what: &str) -> Result<()> {
        if !self.status.success() {
            bail!("{what} failed\n{}", self.describe());
        }
        Ok(())
    }
}

/// Runs `command` to completion with its output in `<scratch>/<name>.stdout|.stderr` (files, not
/// pipes, so a chatty child never blocks), killing it when `timeout` passes: a broken binary
/// fails the test instead of hanging it.
pub fn run_command(
    env: &TestEnv,
    name: &str,
    command: &mut Command,
    timeout: Duration,
) -> Result<CommandOutput> {
    let stdout_path = env.path(&format!("{name}.stdout"));
    let stderr_path = env.path(&format!("{name}.stderr"));
    let stdout = File::create(&stdout_path)
        .with_context(|| format!("cannot create {}", stdout_path.display()))?;
    let stderr = File::create(&stderr_path)
        .with_context(|| format!("cannot create {}", stderr_path.display()))?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("cannot start {command:?}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .context("cannot wait for a child process")?
        {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
            bail!(
                "{command:?} did not finish within {timeout:?}; killed it\n--- stderr (tail) ---\n{}",
                tail_lines(&stderr, 40)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let read = |path: &Path| -> Result<String> {
        let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    Ok(CommandOutput {
        status,
        stdout: read(&stdout_path)?,
        stderr: read(&stderr_path)?,
    })
}

/// The last `n` lines of `text`.
pub(crate) fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
