//! `mysimbdp app …`: an operator's commands against a running platform's admin API.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

#[derive(clap::Args)]
pub struct Target {
    #[arg(long)]
    tenant: String,
    #[arg(long)]
    app: String,
    /// The platform's admin address.
    #[arg(long, default_value = "http://127.0.0.1:9180")]
    admin: String,
    /// The operator token.
    #[arg(long, env = "MYSIMBDP_ADMIN_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(clap::Subcommand)]
pub enum AppCommand {
    /// Show an app's version, state, counters and whether it has caught up with its input.
    Status(Target),
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

fn request(target: &Target, method: &str, path: &str) -> anyhow::Result<Value> {
    let url = format!(
        "{}/apps/{}/{}{path}",
        target.admin.trim_end_matches('/'),
        target.tenant,
        target.app
    );
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let auth = format!("Bearer {}", target.token);
    let response = match method {
        "POST" => agent.post(&url).header("Authorization", &auth).send_empty(),
        _ => agent.get(&url).header("Authorization", &auth).call(),
    }
    .with_context(|| format!("reaching the admin API at {url}"))?;
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

pub fn run(command: AppCommand) -> anyhow::Result<()> {
    match command {
        AppCommand::Status(target) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&request(&target, "GET", "")?)?
            );
        }
        AppCommand::Drain {
            target,
            wait,
            timeout,
        } => {
            request(&target, "POST", "/drain")?;
            if !wait {
                eprintln!("drain requested; `mysimbdp app status` shows when it is done");
                return Ok(());
            }
            let deadline = Instant::now() + Duration::from_secs(timeout);
            loop {
                let status = request(&target, "GET", "")?;
                match status.get("state").and_then(Value::as_str) {
                    Some("drained") => {
                        println!("{}", serde_json::to_string_pretty(&status)?);
                        return Ok(());
                    }
                    Some("failed") => bail!("the app failed: {}", status["last_error"]),
                    _ if Instant::now() > deadline => {
                        bail!("not drained after {timeout} s: {status}")
                    }
                    _ => std::thread::sleep(Duration::from_millis(500)),
                }
            }
        }
    }
    Ok(())
}
