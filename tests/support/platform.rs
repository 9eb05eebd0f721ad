//! A running `mysimbdp run` under test: its config file, its log, its admin API, and a clean or
//! brutal end.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::access::{cassandra_node, kafka_bootstrap, kafka_tls_bootstrap, platform_login_toml};
use crate::env::{mysimbdp_bin, reviews_daily_wasm, run_command, CommandOutput, TestEnv};

const READY_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);
/// An operator command waits for a take-over at a batch boundary (the platform waits 120 s).
const OPERATE_TIMEOUT: Duration = Duration::from_secs(150);

/// One `[[tenants.apps]]` entry: a component by path and the stream it reads.
#[derive(Debug, Clone)]
pub struct AppSpec {
    pub path: PathBuf,
    pub stream: String,
}

impl AppSpec {
    /// The reference app on the `reviews` stream.
    pub fn reviews_daily() -> Result<Self> {
        Ok(Self {
            path: reviews_daily_wasm()?,
            stream: "reviews".into(),
        })
    }
}

/// The config file of one platform process for one tenant, in the format of
/// `docs/interfaces.md`; the admin API gets a free loopback port and a random token, so that
/// parallel tests and leftovers of earlier runs never collide.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    pub tenant: String,
    pub apps: Vec<AppSpec>,
    /// `[kafka] partitions`, for the topics the platform creates.
    pub partitions: u32,
    pub admin_listen: String,
    pub token: String,
    /// Verbatim TOML put before everything else (root keys or whole tables), for options a
    /// later test needs; it must not repeat the tables written here.
    pub extra_toml: String,
    /// `delivery` of every app (`exactly-once` when unset, the platform's default).
    pub delivery: Option<String>,
    /// More `[cassandra]` keys, one `key = value` per line.
    pub cassandra_toml: String,
    /// `[admin] tls_cert` and `tls_key`: the admin API serves HTTPS.
    pub admin_tls: Option<(PathBuf, PathBuf)>,
    /// `[kafka] ca_file`: the platform reaches Kafka at its TLS listener, trusting this CA.
    pub kafka_ca: Option<PathBuf>,
    /// `[cassandra] ca_file`: the platform reaches Cassandra over TLS, trusting this CA.
    pub cassandra_ca: Option<PathBuf>,
}

impl PlatformConfig {
    /// A config for `tenant` running `apps`, with a fresh admin port and token.
    pub fn new(tenant: &str, apps: Vec<AppSpec>) -> Result<Self> {
        Ok(Self {
            tenant: tenant.to_owned(),
            apps,
            partitions: 4,
            admin_listen: format!("127.0.0.1:{}", free_loopback_port()?),
            token: random_token(),
            extra_toml: String::new(),
            delivery: None,
            cassandra_toml: String::new(),
            admin_tls: None,
            kafka_ca: None,
            cassandra_ca: None,
        })
    }

    /// The TOML text.
    pub fn to_toml(&self) -> String {
        let mut toml = String::new();
        if !self.extra_toml.is_empty() {
            toml.push_str(&self.extra_toml);
            toml.push_str("\n\n");
        }
        let (mut kafka_login, mut cassandra_login) = platform_login_toml();
        let ca_line = |ca: &PathBuf| format!("ca_file = {}\n", toml_string(&ca.to_string_lossy()));
        let mut bootstrap = kafka_bootstrap();
        if let Some(ca) = &self.kafka_ca {
            kafka_login.push_str(&ca_line(ca));
            bootstrap = kafka_tls_bootstrap();
        }
        if let Some(ca) = &self.cassandra_ca {
            cassandra_login.push_str(&ca_line(ca));
        }
        toml.push_str(&format!(
            "[kafka]\nbootstrap = {}\npartitions = {}\n{kafka_login}\n\
             [cassandra]\nnodes = [{}]\nreplication = 1\n{cassandra_login}{}\n\
             [admin]\nlisten = {}\ntoken = {}\n\n\
             [[tenants]]\nid = {}\n",
            toml_string(&bootstrap),
            self.partitions,
            toml_string(&cassandra_node()),
            self.cassandra_toml,
            toml_string(&self.admin_listen),
            toml_string(&self.token),
            toml_string(&self.tenant),
        ));
        if let Some((cert, key)) = &self.admin_tls {
            toml = toml.replace(
                "[[tenants]]\n",
                &format!(
                    "tls_cert = {}\ntls_key = {}\n\n[[tenants]]\n",
                    toml_string(&cert.to_string_lossy()),
                    toml_string(&key.to_string_lossy())
                ),
            );
        }
        for app in &self.apps {
            toml.push_str(&format!(
                "\n[[tenants.apps]]\npath = {}\nstream = {}\n",
                toml_string(&app.path.to_string_lossy()),
                toml_string(&app.stream)
            ));
            if let Some(delivery) = &self.delivery {
                toml.push_str(&format!("delivery = {}\n", toml_string(delivery)));
            }
        }
        toml
    }

    /// Writes the TOML to `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        fs::write(path, self.to_toml())
            .with_context(|| format!("cannot write the config {}", path.display()))
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A loopback port nobody listens on right now (bind port 0, read it, release it).
fn free_loopback_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
    Ok(listener.local_addr().context("no local address")?.port())
}

fn random_token() -> String {
    let word = || RandomState::new().build_hasher().finish();
    format!("{:016x}{:016x}", word(), word())
}

/// A running `mysimbdp run --config <file>`. Dropping it kills the process (SIGKILL) and reaps
/// it, so a failing test never leaves a platform behind; `stop()` is the graceful end.
pub struct Platform {
    child: Option<Child>,
    tenant: String,
    admin_url: String,
    token: String,
    config_path: PathBuf,
    log_path: PathBuf,
    agent: ureq::Agent,
}

impl Platform {
    /// Writes `config` to `<scratch>/<name>.toml` and starts the platform on it, stdout and stderr
    /// appended to `<scratch>/<name>.log` (appended, so a restarted platform continues the log).
    pub fn start(env: &TestEnv, name: &str, config: &PlatformConfig) -> Result<Self> {
        Self::start_with(env, name, config, &[])
    }

    /// As `start`, with more arguments to `mysimbdp run` (e.g. `--instance b`).
    pub fn start_with(
        env: &TestEnv,
        name: &str,
        config: &PlatformConfig,
        args: &[&str],
    ) -> Result<Self> {
        Self::spawn(env, name, config, args, &[])
    }

    /// As `start`, with environment variables for the process (e.g. `MYSIMBDP_CRASH_AT`).
    pub fn start_with_env(
        env: &TestEnv,
        name: &str,
        config: &PlatformConfig,
        vars: &[(&str, &str)],
    ) -> Result<Self> {
        Self::spawn(env, name, config, &[], vars)
    }

    fn spawn(
        env: &TestEnv,
        name: &str,
        config: &PlatformConfig,
        args: &[&str],
        vars: &[(&str, &str)],
    ) -> Result<Self> {
        let binary = mysimbdp_bin()?;
        let config_path = env.path(&format!("{name}.toml"));
        config.write(&config_path)?;
        let log_path = env.path(&format!("{name}.log"));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open the log {}", log_path.display()))?;
        let log_err = log.try_clone().context("cannot share the log file")?;
        let child = Command::new(&binary)
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .with_context(|| format!("cannot start {} run", binary.display()))?;
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(HTTP_TIMEOUT))
                .build(),
        );
        Ok(Self {
            child: Some(child),
            tenant: config.tenant.clone(),
            admin_url: format!("http://{}", config.admin_listen),
            token: config.token.clone(),
            config_path,
            log_path,
            agent,
        })
    }

    /// The admin API's base URL, e.g. `http://127.0.0.1:41234`.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// The admin API's bearer token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The config file the platform was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The file that holds the platform's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The process id, while the process has not been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last `lines` lines of the platform's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        read_tail(&self.log_path, lines)
            .unwrap_or_else(|e| format!("(cannot read {}: {e:#})", self.log_path.display()))
    }

    /// `None` while the process runs, its exit status once it has ended.
    pub fn exit_status(&mut self) -> Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(child) => child.try_wait().context("cannot poll the platform process"),
            None => bail!("the platform process was already reaped"),
        }
    }

    fn ensure_running(&mut self, while_doing: &str) -> Result<()> {
        if let Some(status) = self.exit_status()? {
            bail!(
                "the platform exited ({status}) while {while_doing}\n--- platform log (tail) ---\n{}",
                self.log_tail(60)
            );
        }
        Ok(())
    }

    /// Sends one admin request (`GET` or `POST`, empty body) to `path` with the bearer token; returns
    /// the HTTP status and the body text, whatever the status.
    pub fn admin_request(&self, method: &str, path: &str) -> Result<(u16, String)> {
        self.admin_request_as(&self.token, method, path)
    }

    /// An admin request carrying `token` (a tenant's, say) instead of the operator's.
    pub fn admin_request_as(&self, token: &str, method: &str, path: &str) -> Result<(u16, String)> {
        let url = format!("{}{path}", self.admin_url);
        let auth = format!("Bearer {token}");
        let response = match method {
            "GET" => self.agent.get(&url).header("Authorization", &auth).call(),
            "POST" => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send_empty(),
            other => bail!("unsupported admin method {other}"),
        };
        let mut response = response.with_context(|| format!("{method} {url} failed"))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .with_context(|| format!("{method} {url}: cannot read the body"))?;
        Ok((status, body))
    }

    fn app_path(&self, app: &str) -> String {
        format!("/apps/{}/{app}", self.tenant)
    }

    /// `mysimbdp app ARGS…` against this platform, as an operator runs it (the token in the
    /// environment); its output is kept in the scratch folder under `name`.
    pub fn operate(&self, env: &TestEnv, name: &str, args: &[&str]) -> Result<CommandOutput> {
        let mut all = vec!["app"];
        all.extend_from_slice(args);
        self.command_as(env, name, self.token(), &all)
    }

    /// `mysimbdp ARGS…` against this platform's admin API with `token` in the environment.
    pub fn command_as(
        &self,
        env: &TestEnv,
        name: &str,
        token: &str,
        args: &[&str],
    ) -> Result<CommandOutput> {
        let mut command = Command::new(mysimbdp_bin()?);
        command
            .args(args)
            .args(["--admin", self.admin_url()])
            .env("MYSIMBDP_ADMIN_TOKEN", token);
        run_command(env, name, &mut command, OPERATE_TIMEOUT)
    }

    /// The status JSON of any tenant's app on this platform; any status but 200 is an error.
    pub fn status_of(&self, tenant: &str, app: &str) -> Result<Value> {
        let path = format!("/apps/{tenant}/{app}");
        let (status, body) = self.admin_request("GET", &path)?;
        if status != 200 {
            bail!("GET {path} answered {status}: {body}");
        }
        serde_json::from_str(&body).with_context(|| format!("GET {path}: not JSON: {body}"))
    }

    /// `GET /apps/<tenant>/<app>`: the app's status JSON; any status but 200 is an error.
    pub fn status(&self, app: &str) -> Result<Value> {
        self.status_of(&self.tenant, app)
    }

    /// `POST /apps/<tenant>/<app>/drain`: process the input up to its current end, then close
    /// every window; any status but 2xx is an error.
    pub fn drain(&self, app: &str) -> Result<()> {
        let path = format!("{}/drain", self.app_path(app));
        let (status, body) = self.admin_request("POST", &path)?;
        if !(200..300).contains(&status) {
            bail!("POST {path} answered {status}: {body}");
        }
        Ok(())
    }

    /// `POST /apps/<tenant>/<app>/<action>` (e.g. `pause`, `resume`); returns the worker's
    /// answer in words; any status but 2xx is an error.
    pub fn act(&self, app: &str, action: &str) -> Result<String> {
        let path = format!("{}/{action}", self.app_path(app));
        let (status, body) = self.admin_request("POST", &path)?;
        if !(200..300).contains(&status) {
            bail!("POST {path} answered {status}: {body}");
        }
        let answer: Value = serde_json::from_str(&body)
            .with_context(|| format!("POST {path}: not JSON: {body}"))?;
        Ok(answer["result"].as_str().unwrap_or_default().to_owned())
    }

    /// Polls the app's status until `done` holds for it and returns that status; fails at
    /// `timeout`, on `state == "failed"` or if the process exits, saying what it waited for.
    pub fn wait_until(
        &mut self,
        app: &str,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let tenant = self.tenant.clone();
        let status = self.wait_for_app(&tenant, app, what, timeout, |s| {
            s["state"] == "failed" || done(s)
        })?;
        if status["state"] == "failed" {
            bail!(
                "{app} failed while {what}: {status}\n--- platform log (tail) ---\n{}",
                self.log_tail(60)
            );
        }
        Ok(status)
    }

    /// Waits until this host owns `partitions` of the app's input partitions: a test that
    /// pauses the app or times its input starts from a settled assignment.
    pub fn wait_owning(&mut self, app: &str, partitions: usize) -> Result<Value> {
        self.wait_until(
            app,
            &format!("owning {partitions} partitions"),
            Duration::from_secs(120),
            |s| s["partitions"].as_array().map_or(0, Vec::len) == partitions,
        )
    }

    /// Polls any tenant's app until `done` holds for its status (whatever its state) and
    /// returns that status; fails at `timeout` or if the process exits.
    pub fn wait_for_app(
        &mut self,
        tenant: &str,
        app: &str,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            self.ensure_running(what)?;
            let status = self.status_of(tenant, app)?;
            if done(&status) {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{tenant}/{app}: {what}: not within {timeout:?}; last status {status}\n\
                     --- platform log (tail) ---\n{}",
                    self.log_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The peak resident memory of the process so far (`VmHWM`), in bytes.
    pub fn peak_memory(&self) -> Result<u64> {
        let pid = self
            .pid()
            .context("the platform process was already reaped")?;
        let path = format!("/proc/{pid}/status");
        let status = fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .with_context(|| format!("no VmHWM in {path}"))?;
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("cannot read `{line}` in {path}"))?;
        Ok(kib * 1024)
    }

    /// Polls `GET /apps/<tenant>/<app>` until it answers 200 (at most 120 s): the platform has
    /// loaded the app and its admin API is up. Fails early if the process exits.
    pub fn wait_ready(&mut self, app: &str) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.ensure_running(&format!("waiting for {app} to be ready"))?;
            let last = match self.admin_request("GET", &self.app_path(app)) {
                Ok((200, _)) => return Ok(()),
                Ok((status, body)) => format!("HTTP {status}: {body}"),
                Err(error) => format!("{error:#}"),
            };
            if Instant::now() >= deadline {
                bail!(
                    "{app} was not ready within {READY_TIMEOUT:?} (last answer: {last})\n\
                     --- platform log (tail) ---\n{}",
                    self.log_tail(60)
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Polls the app's status until `state == "drained"` and returns that status; fails at
    /// `timeout`, on `state == "failed"` or if the process exits, with the last status and log.
    pub fn wait_drained(&mut self, app: &str, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            self.ensure_running(&format!("waiting for {app} to drain"))?;
            let last = match self.status(app) {
                Ok(status) => match status.get("state").and_then(Value::as_str) {
                    Some("drained") => return Ok(status),
                    Some("failed") => bail!(
                        "{app} failed while draining: {status}\n--- platform log (tail) ---\n{}",
                        self.log_tail(60)
                    ),
                    _ => status.to_string(),
                },
                Err(error) => format!("{error:#}"),
            };
            if Instant::now() >= deadline {
                bail!(
                    "{app} was not drained within {timeout:?}; last status: {last}\n\
                     --- platform log (tail) ---\n{}",
                    self.log_tail(60)
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Graceful stop: SIGTERM (through `kill`, no libc), then waits up to 60 s for the exit and
    /// returns its status; on timeout the error carries the log and `Drop` kills the process.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        let pid = match self.pid() {
            Some(pid) => pid,
            None => bail!("the platform process was already reaped"),
        };
        if let Some(status) = self.exit_status()? {
            bail!(
                "the platform had already exited ({status}) before SIGTERM\n\
                 --- platform log (tail) ---\n{}",
                self.log_tail(60)
            );
        }
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .context("cannot run `kill -TERM`")?;
        if !sent.success() {
            bail!("`kill -TERM {pid}` failed: {sent}");
        }
        self.wait_exit(STOP_TIMEOUT)
            .context("the platform did not stop after SIGTERM")
    }

    /// Waits up to `timeout` for the process to end on its own (e.g. at a crash point) and
    /// returns its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status()? {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!(
                    "the platform did not end within {timeout:?}\n--- platform log (tail) ---\n{}",
                    self.log_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The offset each partition resumed from, as the platform's log says
    /// ("resumed from checkpoint partition=P offset=O"), the last word for each partition.
    pub fn resumed_offsets(&self) -> Result<std::collections::BTreeMap<i32, i64>> {
        let log = fs::read(&self.log_path)
            .with_context(|| format!("cannot read {}", self.log_path.display()))?;
        let text = strip_ansi(&String::from_utf8_lossy(&log));
        let field = |line: &str, name: &str| -> Option<i64> {
            let at = line.find(&format!(" {name}="))? + name.len() + 2;
            let digits: String = line[at..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '-')
                .collect();
            digits.parse().ok()
        };
        Ok(text
            .lines()
            .filter(|line| line.contains("resumed from checkpoint"))
            .filter_map(|line| Some((field(line, "partition")? as i32, field(line, "offset")?)))
            .collect())
    }

    /// Waits until the log says where each partition of `committed` resumed, and checks that
    /// it is exactly the committed offset: a restart re-reads only what the last commit did
    /// not cover.
    pub fn wait_resumed_at(&self, committed: &std::collections::BTreeMap<i32, i64>) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let resumed = self.resumed_offsets()?;
            for (partition, offset) in &resumed {
                if let Some(want) = committed.get(partition) {
                    if offset != want {
                        bail!(
                            "partition {partition} resumed from offset {offset}, but the last \
                             commit named {want}"
                        );
                    }
                }
            }
            if committed.keys().all(|p| resumed.contains_key(p)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "not every committed partition resumed ({committed:?}); the log says \
                     {resumed:?}\n{}",
                    self.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Crash: SIGKILL and reap, as a power cut would; for crash/restart tests.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("cannot kill the platform")?;
            child.wait().context("cannot reap the platform")?;
        }
        Ok(())
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The text without terminal colour codes (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The last `lines` lines of a file, reading at most its last 256 KiB.
fn read_tail(path: &Path, lines: usize) -> Result<String> {
    const MAX: u64 = 256 * 1024;
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(MAX)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(crate::env::tail_lines(
        &String::from_utf8_lossy(&bytes),
        lines,
    ))
}
