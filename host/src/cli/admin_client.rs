//! `mysimbdp app …` and `mysimbdp tenant …`: commands against a running platform's admin API.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

#[derive(clap::Args)]
pub struct Admin {
    /// The platform's admin address.
    #[arg(long, default_value = "http://127.0.0.1:9180")]
    admin: String,
    /// A file holding the token (the operator's, or a tenant's for its own apps); without it,
    /// the token is read from MYSIMBDP_ADMIN_TOKEN. Never given on the command line, where
    /// other users could read it.
    #[arg(long)]
    token_file: Option<std::path::PathBuf>,
}

impl Admin {
    fn token(&self) -> anyhow::Result<String> {
        let token = match &self.token_file {
            Some(file) => std::fs::read_to_string(file)
                .with_context(|| format!("reading the token from {}", file.display()))?,
            None => std::env::var("MYSIMBDP_ADMIN_TOKEN")
                .context("no token: set MYSIMBDP_ADMIN_TOKEN or give --token-file")?,
        };
        let token = token.trim().to_owned();
        if token.is_empty() {
            bail!("the token is empty");
        }
        Ok(token)
    }
}

#[derive(clap::Args)]
pub struct TenantTarget {
    #[arg(long)]
    tenant: String,
    #[command(flatten)]
    direct: Direct,
    #[command(flatten)]
    admin: Admin,
}

/// Straight to Kafka and Cassandra instead of through the admin API.
#[derive(clap::Args)]
pub struct Direct {
    /// The platform's config file: with it, the command logs in to Kafka and Cassandra as the
    /// platform does (its passwords from the environment or files, as the file says) and needs
    /// no running platform or admin token; an operator sets tenants up before the first start.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

#[derive(clap::Args)]
pub struct TenantList {
    #[command(flatten)]
    direct: Direct,
    #[command(flatten)]
    admin: Admin,
}

#[derive(clap::Subcommand)]
pub enum TenantCommand {
    /// Give a tenant its credentials (operator only): an admin token that sees and steers that
    /// tenant's apps only, and, where the platform logs in to them, a Kafka user with ACLs on
    /// its own topics and groups and a Cassandra role that reads its own keyspace. Printed once
    /// as `KEY=value` lines (a file the tenant can source); the platform keeps only digests.
    Add(TenantTarget),
    /// Replace all of a tenant's secrets: the old ones stop working (the token within seconds
    /// on every host).
    Rotate(TenantTarget),
    /// Revoke a tenant's token, Kafka user and ACLs and Cassandra role; its data stays.
    Remove(TenantTarget),
    /// The tenants that have credentials.
    List(TenantList),
    /// Create a tenant's input stream (topic `<tenant>.<stream>`) unless it exists, as the
    /// platform (operator only): tenants may write their streams but not create topics. An
    /// app's start creates its stream too.
    Stream {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        stream: String,
        /// Partitions of the new topic; an existing topic is left as it is.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..=1024))]
        partitions: i32,
        #[command(flatten)]
        direct: Direct,
        #[command(flatten)]
        admin: Admin,
    },
}

#[derive(clap::Args)]
pub struct Target {
    #[arg(long)]
    tenant: String,
    #[arg(long)]
    app: String,
    #[command(flatten)]
    admin: Admin,
}

#[derive(clap::Subcommand)]
pub enum AppCommand {
    /// Show an app's version, state, counters and whether it has caught up with its input.
    Status(Target),
    /// Every app on the platform, with its status.
    List(Admin),
    /// Compile a new version of an app and let it take over at a batch boundary, carrying the
    /// state of its open windows (refused when the state version differs, unless --reset-state);
    /// an app the tenant does not run yet starts on --stream.
    Deploy {
        #[arg(long)]
        tenant: String,
        /// The new version's `.wasm` on this machine: its bytes are uploaded to the platform.
        #[arg(long)]
        path: std::path::PathBuf,
        /// Start every open window fresh instead of carrying its state.
        #[arg(long)]
        reset_state: bool,
        /// For a new app: the tenant's stream it reads (topic `<tenant>.<stream>`).
        #[arg(long)]
        stream: Option<String>,
        /// For a new app: exactly-once (default), at-least-once or at-most-once.
        #[arg(long, default_value = "exactly-once")]
        delivery: String,
        #[command(flatten)]
        admin: Admin,
    },
    /// Emit every open window of an app as final, then unload it.
    Remove(Target),
    /// Let the version that ran before the last deploy take over again.
    Rollback {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        reset_state: bool,
    },
    /// Stop reading an app's input: it waits in Kafka (shown as lag) until `app resume`; open
    /// windows and checkpoints are kept.
    Pause(Target),
    /// Read an app's input again after `app pause`.
    Resume(Target),
    /// Run an app on a sample file in this process, through the platform's own decode, event
    /// time, windows and sandbox, with no Kafka or Cassandra: the rows it would write, the late
    /// and dead-letter records with their reasons, and what differs from an expected file.
    Test(super::app_test::TestArgs),
    /// Start an app project in a folder of its own (Rust or Python): the app, its manifest, a
    /// sample input, the rows expected from it, and a README.
    New(super::project::NewArgs),
    /// Build a project's component with the pinned tools of its language, and check it against
    /// the contract as a deploy would.
    Build(super::project::BuildArgs),
    /// Process all input up to the topic's current end, then emit and close every window.
    Drain {
        #[command(flatten)]
        target: Target,
        /// Wait until the drain is done.
        #[arg(long)]
        wait: bool,
        /// Longest wait, in seconds.
        #[arg(long, default_value_t = 900)]
        timeout: u64,
    },
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
}

fn request(admin: &Admin, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let url = format!("{}{path}", admin.admin.trim_end_matches('/'));
    let agent = agent();
    let auth = format!("Bearer {}", admin.token()?);
    let response = match (method, body) {
        ("DELETE", _) => agent.delete(&url).header("Authorization", &auth).call(),
        ("POST", Some(body)) => agent
            .post(&url)
            .header("Authorization", &auth)
            .send_json(body),
        ("POST", None) => agent.post(&url).header("Authorization", &auth).send_empty(),
        _ => agent.get(&url).header("Authorization", &auth).call(),
    }
    .with_context(|| format!("reaching the admin API at {url}"))?;
    answer(&url, response)
}

/// The JSON of an answer, or its error as the reason.
fn answer(url: &str, response: ureq::http::Response<ureq::Body>) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response
        .into_body()
        .read_json()
        .with_context(|| format!("reading the answer of {url}"))?;
    if !status.is_success() {
        bail!(
            "{url}: {status}: {}",
            body.get("error")
                .and_then(Value::as_str)
                .unwrap_or("no reason given")
        );
    }
    Ok(body)
}

/// The largest `.wasm` the CLI reads; the platform has its own, smaller limit.
const MAX_LOCAL_WASM: u64 = 1 << 30;

/// Reads a local `.wasm`: a regular file only, so a device or a FIFO is refused, not read.
fn read_wasm(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let shown = path.display();
    let file = std::fs::File::open(path).with_context(|| format!("opening {shown}"))?;
    let meta = file
        .metadata()
        .with_context(|| format!("reading {shown}"))?;
    if !meta.is_file() {
        bail!("{shown} is not a regular file");
    }
    let mut bytes = Vec::new();
    file.take(MAX_LOCAL_WASM + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {shown}"))?;
    if bytes.len() as u64 > MAX_LOCAL_WASM {
        bail!("{shown} is larger than {MAX_LOCAL_WASM} bytes");
    }
    Ok(bytes)
}

/// Uploads a `.wasm` to `POST /apps/{tenant}/deploy`, the options as query parameters.
fn upload(
    admin: &Admin,
    tenant: &str,
    bytes: &[u8],
    options: &[(&str, &str)],
) -> anyhow::Result<Value> {
    let url = format!("{}/apps/{tenant}/deploy", admin.admin.trim_end_matches('/'));
    let response = agent()
        .post(&url)
        .header("Authorization", &format!("Bearer {}", admin.token()?))
        .content_type("application/wasm")
        .query_pairs(options.iter().copied())
        .send(bytes)
        .with_context(|| format!("uploading to the admin API at {url}"))?;
    answer(&url, response)
}

fn app_request(
    target: &Target,
    method: &str,
    suffix: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let path = format!("/apps/{}/{}{suffix}", target.tenant, target.app);
    request(&target.admin, method, &path, body)
}

fn print(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Runs a `mysimbdp tenant` command: through the admin API, or with `--config` straight
/// against Kafka and Cassandra.
pub fn run_tenant(command: TenantCommand) -> anyhow::Result<()> {
    use super::tenant::{self as direct, Action};
    let (target, method, query, action) = match &command {
        TenantCommand::Add(t) => (t, "POST", "?replace=false", issue(t, false)),
        TenantCommand::Rotate(t) => (t, "POST", "?replace=true", issue(t, true)),
        TenantCommand::Remove(t) => (t, "DELETE", "", Action::Revoke { tenant: &t.tenant }),
        TenantCommand::List(list) => {
            let answer = match &list.direct.config {
                Some(config) => direct::run(config, Action::List)?,
                None => request(&list.admin, "GET", "/tenants", None)?,
            };
            for tenant in answer["tenants"].as_array().into_iter().flatten() {
                println!("{}", tenant.as_str().unwrap_or_default());
            }
            return Ok(());
        }
        TenantCommand::Stream {
            tenant,
            stream,
            partitions,
            direct: Direct { config },
            admin,
        } => {
            let topic = match config {
                Some(config) => direct::create_stream(config, tenant, stream, *partitions)?,
                None => {
                    let path =
                        format!("/tenants/{tenant}/streams/{stream}?partitions={partitions}");
                    let answer = request(admin, "POST", &path, None)?;
                    answer["topic"].as_str().unwrap_or_default().to_owned()
                }
            };
            println!("{topic}");
            return Ok(());
        }
    };
    let answer = match &target.direct.config {
        Some(config) => direct::run(config, action)?,
        None => {
            let path = format!("/tenants/{}/token{query}", target.tenant);
            request(&target.admin, method, &path, None)?
        }
    };
    if answer["token"].is_string() {
        eprintln!(
            "the credentials of tenant `{}` (shown once; give them to the tenant, e.g. as a \
             file to source: `set -a; . <file>`):",
            target.tenant
        );
        print!("{}", credentials_env(&answer));
    } else {
        println!("the credentials of tenant `{}` are revoked", target.tenant);
    }
    Ok(())
}

fn issue(target: &TenantTarget, replace: bool) -> super::tenant::Action<'_> {
    super::tenant::Action::Issue {
        tenant: &target.tenant,
        replace,
    }
}

/// A tenant's credentials from the admin API's answer, as `KEY=value` lines: the variables
/// `mysimbdp app`, `mysimbdp produce` and the tenant's own clients read.
fn credentials_env(answer: &Value) -> String {
    let fields = [
        ("MYSIMBDP_ADMIN_TOKEN", &answer["token"]),
        ("MYSIMBDP_KAFKA_BOOTSTRAP", &answer["kafka"]["bootstrap"]),
        (
            "MYSIMBDP_KAFKA_SASL_MECHANISM",
            &answer["kafka"]["mechanism"],
        ),
        ("MYSIMBDP_KAFKA_USER", &answer["kafka"]["user"]),
        ("MYSIMBDP_KAFKA_PASSWORD", &answer["kafka"]["password"]),
        ("MYSIMBDP_CASSANDRA_USER", &answer["cassandra"]["role"]),
        (
            "MYSIMBDP_CASSANDRA_PASSWORD",
            &answer["cassandra"]["password"],
        ),
    ];
    fields
        .iter()
        .filter_map(|(key, value)| value.as_str().map(|v| format!("{key}={v}\n")))
        .collect()
}

pub fn run(command: AppCommand) -> anyhow::Result<()> {
    match command {
        AppCommand::Test(args) => super::app_test::run(args)?,
        AppCommand::New(args) => super::project::new(args)?,
        AppCommand::Build(args) => super::project::build(args)?,
        AppCommand::Status(target) => print(&app_request(&target, "GET", "", None)?)?,
        AppCommand::List(admin) => print(&request(&admin, "GET", "/apps", None)?)?,
        AppCommand::Deploy {
            tenant,
            path,
            reset_state,
            stream,
            delivery,
            admin,
        } => {
            let bytes = read_wasm(&path)?;
            let mut options = vec![
                ("reset_state", if reset_state { "true" } else { "false" }),
                ("delivery", delivery.as_str()),
            ];
            if let Some(stream) = &stream {
                options.push(("stream", stream.as_str()));
            }
            let answer = upload(&admin, &tenant, &bytes, &options)?;
            print_answer(&answer);
        }
        AppCommand::Remove(target) => {
            let answer = app_request(&target, "POST", "/remove", None)?;
            print_answer(&answer);
        }
        AppCommand::Pause(target) => {
            let answer = app_request(&target, "POST", "/pause", None)?;
            print_answer(&answer);
        }
        AppCommand::Resume(target) => {
            let answer = app_request(&target, "POST", "/resume", None)?;
            print_answer(&answer);
        }
        AppCommand::Rollback {
            target,
            reset_state,
        } => {
            let body = serde_json::json!({ "reset_state": reset_state });
            let answer = app_request(&target, "POST", "/rollback", Some(body))?;
            print_answer(&answer);
        }
        AppCommand::Drain {
            target,
            wait,
            timeout,
        } => {
            app_request(&target, "POST", "/drain", None)?;
            if !wait {
                eprintln!("drain requested; `mysimbdp app status` shows when it is done");
                return Ok(());
            }
            let deadline = Instant::now() + Duration::from_secs(timeout);
            loop {
                // The platform answers when the state changes (or after `wait`), so the wait
                // ends when the drain does, without asking again and again meanwhile.
                let wait = deadline
                    .saturating_duration_since(Instant::now())
                    .as_secs()
                    .clamp(1, 60);
                let asked = Instant::now();
                let query = format!("?until=drained&timeout={wait}");
                let status = app_request(&target, "GET", &query, None)?;
                match status.get("state").and_then(Value::as_str) {
                    Some("drained") => {
                        println!("{}", serde_json::to_string_pretty(&status)?);
                        return Ok(());
                    }
                    Some("failed") => bail!("the app failed: {}", status["last_error"]),
                    Some(state @ ("stopped" | "removed")) => {
                        bail!("the app was {state} before its drain ended")
                    }
                    _ if Instant::now() > deadline => {
                        bail!("not drained after {timeout} s: {status}")
                    }
                    // A platform that answered at once did not wait (an older one): ask
                    // again a little later rather than at once.
                    _ if asked.elapsed() < Duration::from_millis(50) => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// An action's answer: what was done, and on stderr what the platform warns of (a change it
/// could not keep for its next start).
fn print_answer(answer: &serde_json::Value) {
    println!("{}", answer["result"].as_str().unwrap_or_default());
    if let Some(warning) = answer["warning"].as_str() {
        eprintln!("warning: {warning}");
    }
}
