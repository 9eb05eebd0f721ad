//! Many tenants on one host: what an idle app costs (resident memory, threads, sockets, CPU),
//! how long the platform takes to start them, and, with 50 tenants each draining its own
//! stream of reviews at once, the total throughput and the slowest tenant against the median
//! one. Layouts: 1 tenant × 1 app (the baseline), 50 tenants × 1 app (reviews-daily), 10 tenants
//! × 5 apps (reviews-daily, reviews-lenient, reviews-sessions, ticks-epoch, and the hostile app
//! doing nothing), every app on its own topic. Run with `just bench` or
//! `cargo run --release -p mysimbdp-tests --bin bench-tenants [REVIEWS_PER_TENANT]` (needs Kafka
//! and Cassandra); prints one table per measure, and with `BENCH_TENANTS_JSON=FILE` writes them
//! to FILE, which `bench/report.py` turns into the many-tenants section and plots of
//! `bench/report.md`. 10 × 1 and 25 × 1 are measured idle too, for the curve of cost against
//! the number of apps.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mysimbdp_tests::{
    cassandra_builder, create_topic, generate_reviews, kafka_client, produce_command, run_command,
    tenant_app_wasm, AppSpec, Platform, PlatformConfig, Services, TestEnv,
};

/// The apps of one tenant in the 5-app layout: crate, app name, stream.
const FIVE: [(&str, &str, &str); 5] = [
    ("reviews_daily", "reviews-daily", "r1"),
    ("reviews_lenient", "reviews-lenient", "r2"),
    ("reviews_sessions", "reviews-sessions", "r3"),
    ("ticks_epoch", "ticks-epoch", "ticks"),
    ("hostile", "hostile", "orders"),
];

struct Layout {
    name: &'static str,
    tenants: usize,
    apps: usize,
}

/// One tenant's apps as (crate, app name, stream).
fn apps_of(layout: &Layout) -> Vec<(&'static str, &'static str, &'static str)> {
    if layout.apps == 1 {
        vec![("reviews_daily", "reviews-daily", "reviews")]
    } else {
        FIVE[..layout.apps].to_vec()
    }
}

fn toml_apps(apps: &[(&str, &str, &str)]) -> Result<Vec<AppSpec>> {
    apps.iter()
        .map(|(krate, _, stream)| {
            Ok(AppSpec {
                path: tenant_app_wasm(krate)?,
                stream: (*stream).into(),
            })
        })
        .collect()
}

/// The config of `tenants` tenants (ids `<base>x<i>`) with the same apps each.
fn config(
    base: &str,
    tenants: usize,
    apps: &[(&str, &str, &str)],
) -> Result<(PlatformConfig, Vec<String>)> {
    let ids: Vec<String> = (0..tenants).map(|i| format!("{base}x{i}")).collect();
    let specs = toml_apps(apps)?;
    let mut config = PlatformConfig::new(&ids[0], specs.clone())?;
    let mut extra = String::new();
    for id in &ids[1..] {
        extra.push_str(&format!("[[tenants]]\nid = \"{id}\"\n"));
        for app in &specs {
            extra.push_str(&format!(
                "[[tenants.apps]]\npath = \"{}\"\nstream = \"{}\"\n",
                app.path.display(),
                app.stream
            ));
        }
    }
    config.extra_toml = extra;
    Ok((config, ids))
}

/// What /proc says of a process: resident KiB, threads, sockets, CPU ticks.
struct Sample {
    rss_kib: u64,
    threads: usize,
    sockets: usize,
    ticks: u64,
}

fn sample(pid: u32) -> Result<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let sockets = std::fs::read_dir(format!("/proc/{pid}/fd"))?
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read_link(e.path())
                .map(|t| t.to_string_lossy().starts_with("socket:"))
                .unwrap_or(false)
        })
        .count();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Ok(Sample {
        rss_kib: field("VmRSS:"),
        threads: field("Threads:") as usize,
        sockets,
        ticks,
    })
}

/// Waits until `GET /apps/<tenant>/<app>` answers 200 (the admin API may not be up yet).
fn answering(platform: &mut Platform, tenant: &str, app: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Ok((200, _)) = platform.admin_request("GET", &format!("/apps/{tenant}/{app}")) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{tenant}/{app} did not answer: {}", platform.log_tail(30));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts the platform and waits until every app answers; returns it with the seconds taken.
fn start_all(
    env: &TestEnv,
    name: &str,
    config: &PlatformConfig,
    ids: &[String],
    apps: &[(&str, &str, &str)],
) -> Result<(Platform, f64)> {
    let started = Instant::now();
    let mut platform = Platform::start(env, name, config)?;
    for id in ids {
        for (_, app, _) in apps {
            answering(&mut platform, id, app)?;
        }
    }
    Ok((platform, started.elapsed().as_secs_f64()))
}

/// Idle apps: the first start (keyspaces and tables created), the resources after it, the CPU
/// over 20 s, and a second start on the same config (the tables exist): seconds, sample, cores,
/// seconds.
fn idle(layout: &Layout) -> Result<(f64, Sample, f64, f64)> {
    let env = TestEnv::new()?;
    let apps = apps_of(layout);
    let (config, ids) = config(&env.tenant, layout.tenants, &apps)?;
    for id in &ids {
        for (_, _, stream) in &apps {
            create_topic(&format!("{id}.{stream}"), 4)?;
        }
    }
    let (mut platform, startup) = start_all(&env, layout.name, &config, &ids, &apps)?;
    let pid = platform.pid().context("no pid")?;
    std::thread::sleep(Duration::from_secs(5));
    let before = sample(pid)?;
    let window = 20.0;
    std::thread::sleep(Duration::from_secs_f64(window));
    let after = sample(pid)?;
    platform.stop()?;
    let hz = 100.0;
    let cores = (after.ticks - before.ticks) as f64 / hz / window;
    let again = format!("{}-again", layout.name);
    let (mut platform, restart) = start_all(&env, &again, &config, &ids, &apps)?;
    platform.stop()?;
    clean_up(&env.tenant)?;
    Ok((startup, after, cores, restart))
}

/// 50 tenants, each with `reviews` reviews already in its own topic, drained at once; returns
/// each tenant's seconds from the platform's launch to drained, and the total wall time.
fn busy(tenants: usize, reviews: u32) -> Result<(Vec<f64>, f64, f64, Sample)> {
    let env = TestEnv::new()?;
    let apps = [("reviews_daily", "reviews-daily", "reviews")];
    let (config, ids) = config(&env.tenant, tenants, &apps)?;
    let (tsv, _) = generate_reviews(&env, reviews, 11, &["--late", "0", "--malformed", "0"])?;
    for id in &ids {
        // The operator creates each tenant's stream; the tenant sends to it.
        create_topic(&format!("{id}.reviews"), 4)?;
        let mut produce = produce_command(id)?;
        produce
            .arg("--file")
            .arg::<&PathBuf>(&tsv)
            .args(["--tenant", id, "--partitions", "4"]);
        run_command(&env, "produce", &mut produce, Duration::from_secs(300))?
            .ensure_success("mysimbdp produce")?;
    }
    let launched = Instant::now();
    let mut platform = Platform::start(&env, "busy", &config)?;
    for id in &ids {
        answering(&mut platform, id, "reviews-daily")?;
        let (status, body) =
            platform.admin_request("POST", &format!("/apps/{id}/reviews-daily/drain"))?;
        if !(200..300).contains(&status) {
            bail!("drain {id}: {status} {body}");
        }
    }
    let all_started = launched.elapsed().as_secs_f64();
    let pid = platform.pid().context("no pid")?;
    let mut done: BTreeMap<String, f64> = BTreeMap::new();
    let mut peak = sample(pid)?;
    while done.len() < ids.len() {
        for id in &ids {
            if done.contains_key(id) {
                continue;
            }
            let status = platform.status_of(id, "reviews-daily")?;
            match status["state"].as_str() {
                Some("drained") => {
                    done.insert(id.clone(), launched.elapsed().as_secs_f64());
                }
                Some("failed") => bail!("{id} failed: {status}"),
                _ => {}
            }
        }
        let now = sample(pid)?;
        if now.rss_kib > peak.rss_kib {
            peak = now;
        }
        if launched.elapsed() > Duration::from_secs(1800) {
            bail!("not drained within 30 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let total = launched.elapsed().as_secs_f64();
    platform.stop()?;
    clean_up(&env.tenant)?;
    Ok((done.into_values().collect(), total, all_started, peak))
}

/// Deletes the topics and drops the keyspaces of the tenants whose ids start with `prefix`: a
/// run makes four topics per app, which a shared broker must not keep.
fn clean_up(prefix: &str) -> Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let admin: AdminClient<DefaultClientContext> = kafka_client()?.create()?;
    let metadata = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(60))?;
    let topics: Vec<String> = metadata
        .topics()
        .iter()
        .map(|t| t.name().to_owned())
        .filter(|t| t.starts_with(prefix) || t.starts_with(&format!("mysimbdp.{prefix}")))
        .collect();
    for chunk in topics.chunks(100) {
        let names: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(60)));
        runtime.block_on(admin.delete_topics(&names, &options))?;
    }
    runtime.block_on(async {
        let session = cassandra_builder()?.build().await?;
        let rows = session
            .query_unpaged("SELECT keyspace_name FROM system_schema.keyspaces", &[])
            .await?
            .into_rows_result()?;
        let names: Vec<String> = rows
            .rows::<(String,)>()?
            .filter_map(Result::ok)
            .map(|(n,)| n)
            .filter(|n| n.starts_with(prefix))
            .collect();
        for name in names {
            session
                .query_unpaged(format!("DROP KEYSPACE IF EXISTS {name}"), &[])
                .await?;
        }
        anyhow::Ok(())
    })?;
    eprintln!("cleaned up {} topics of {prefix}*", topics.len());
    Ok(())
}

/// A command's output, trimmed; empty when it fails (a figure's label, not a figure).
fn run_command_text(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn main() -> Result<()> {
    Services::check()?;
    let reviews: u32 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(6_000);
    let layouts = [
        Layout {
            name: "1x1",
            tenants: 1,
            apps: 1,
        },
        Layout {
            name: "10x1",
            tenants: 10,
            apps: 1,
        },
        Layout {
            name: "25x1",
            tenants: 25,
            apps: 1,
        },
        Layout {
            name: "50x1",
            tenants: 50,
            apps: 1,
        },
        Layout {
            name: "10x5",
            tenants: 10,
            apps: 5,
        },
    ];
    println!("| tenants × apps | first start-up (s) | restart (s) | resident MiB | threads | sockets | idle CPU (cores, 20 s) |");
    println!("|---|---|---|---|---|---|---|");
    let mut base = None;
    let mut rows = Vec::new();
    let mut idle_json = Vec::new();
    for layout in &layouts {
        let (startup, s, cores, restart) = idle(layout)?;
        idle_json.push(serde_json::json!({
            "tenants": layout.tenants, "apps_per_tenant": layout.apps,
            "startup_s": startup, "restart_s": restart, "rss_mib": s.rss_kib as f64 / 1024.0,
            "threads": s.threads, "sockets": s.sockets, "idle_cores": cores,
        }));
        println!(
            "| {} × {} | {startup:.1} | {restart:.1} | {:.1} | {} | {} | {cores:.3} |",
            layout.tenants,
            layout.apps,
            s.rss_kib as f64 / 1024.0,
            s.threads,
            s.sockets
        );
        let apps = layout.tenants * layout.apps;
        if apps == 1 {
            base = Some((s.rss_kib, s.threads, s.sockets, cores));
        }
        rows.push((apps, s, cores));
    }
    if let Some((rss, threads, sockets, cores)) = base {
        println!("\nper idle app beyond the first:");
        println!("| apps | resident MiB per app | threads per app | sockets per app | CPU per app (cores) |");
        println!("|---|---|---|---|---|");
        for (apps, s, c) in rows.iter().filter(|r| r.0 > 1) {
            let n = (*apps - 1) as f64;
            println!(
                "| {apps} | {:.2} | {:.1} | {:.1} | {:.4} |",
                (s.rss_kib as f64 - rss as f64) / 1024.0 / n,
                (s.threads as f64 - threads as f64) / n,
                (s.sockets as f64 - sockets as f64) / n,
                (c - cores) / n
            );
        }
    }
    let tenants = 50;
    let (mut times, total, all_started, peak) = busy(tenants, reviews)?;
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let slowest = times[times.len() - 1];
    let all = f64::from(reviews) * tenants as f64;
    println!(
        "\n{tenants} tenants × {reviews} reviews each ({all} in all), every tenant drained from the \
         platform's launch: fastest {:.1} s, median {median:.1} s, slowest {slowest:.1} s; all in \
         {total:.1} s = {:.0} records/s; the slowest tenant ran at {:.0}% of the median one's \
         rate; every app was started (and draining) {all_started:.1} s after the launch, then \
         all were drained {:.1} s later; peak resident {:.0} MiB, {} threads, {} sockets",
        times[0],
        all / total,
        100.0 * median / slowest,
        total - all_started,
        peak.rss_kib as f64 / 1024.0,
        peak.threads,
        peak.sockets
    );
    if let Some(path) = std::env::var_os("BENCH_TENANTS_JSON") {
        let json = serde_json::json!({
            "date": run_command_text("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            "git": run_command_text("git", &["rev-parse", "--short", "HEAD"]),
            "reviews_per_tenant": reviews,
            "idle": idle_json,
            "busy": {
                "tenants": tenants, "seconds_per_tenant": times, "total_s": total,
                "all_started_s": all_started, "peak_rss_mib": peak.rss_kib as f64 / 1024.0,
                "peak_threads": peak.threads, "peak_sockets": peak.sockets,
            },
        });
        std::fs::write(&path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", PathBuf::from(&path).display()))?;
    }
    Ok(())
}
