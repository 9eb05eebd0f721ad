//! Many tenants on one host: what an idle app costs (resident memory, threads, sockets, CPU),
//! how long and how much CPU the platform takes to start them, and, with 50 tenants each
//! draining its own stream of reviews at once, the total throughput and the slowest tenant
//! against the median one. Layouts: 1 tenant × 1 app (the baseline), 50 tenants × 1 app (reviews-daily), 10 tenants
//! × 5 apps (reviews-daily, reviews-lenient, reviews-sessions, ticks-epoch, and the hostile app
//! doing nothing), every app on its own topic. Run with `just bench` or
//! `cargo run --release -p mysimbdp-tests --bin bench-tenants [REVIEWS_PER_TENANT]` (needs Kafka
//! and Cassandra); prints one table per measure, and with `BENCH_TENANTS_JSON=FILE` writes them
//! to FILE, which `bench/report.py` turns into the many-tenants section and plots of
//! `bench/report.md`. 10 × 1 and 25 × 1 are measured idle too, for the curve of cost against
//! the number of apps. `BENCH_RUNS` (default 3) repeats every measure; `BENCH_TENANTS_LAYOUTS`
//! (`1x1,10x1`, …, or `none`) picks the idle layouts and `BENCH_TENANTS_BUSY=0` skips the busy one. An idle
//! app's CPU is also split by the host's threads (from each thread's `schedstat`), to show what
//! wakes it. Each idle layout is then measured again once its apps hibernate (after the
//! default 60 s with nothing to do), with the time one record sent to a hibernating app takes
//! to be read. Last, 50 busy tenants are read by one host and by two (`hosts.rs`), side by side;
//! `BENCH_TENANTS_HOSTS` names the host counts (default `1,2`; `0` skips that). A JSON file
//! that exists keeps the sections not measured.

mod hosts;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mysimbdp_tests::{
    cassandra_builder, create_topic, generate_reviews, kafka_client, produce, produce_command,
    run_command, tenant_app_wasm, workspace_dir, AppSpec, Platform, PlatformConfig, Services,
    TestEnv,
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
    name: String,
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

/// What /proc says of a process: resident KiB, threads, sockets, CPU ticks, and each kind of
/// thread's CPU nanoseconds and times on a core.
struct Sample {
    rss_kib: u64,
    threads: usize,
    sockets: usize,
    ticks: u64,
    /// The CPU ticks of the Kafka broker `just up` started, when its pid file is there: what
    /// the apps' clients cost Kafka.
    kafka_ticks: Option<u64>,
    by_thread: BTreeMap<String, (u64, u64)>,
}

/// A thread's kind: its name without numbers (`rdk:broker3` → `rdk:broker`); the process's
/// first thread is `main`, and a thread named after its app (`<tenant>/<app>`, cut to 15
/// bytes by the kernel) is `app worker`.
fn thread_kind(name: &str, main: bool) -> String {
    if main {
        return "main".into();
    }
    if !["rdk:", "mysimbdp-", "tokio-"]
        .iter()
        .any(|p| name.starts_with(p))
    {
        return "app worker".into();
    }
    name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-' || c == '#')
        .to_owned()
}

/// CPU nanoseconds and times on a core per kind of thread, from `/proc/<pid>/task/*/schedstat`
/// (exact, where the process's ticks count 10 ms at a time). Threads that ended are not in it.
fn by_thread(pid: u32) -> Result<BTreeMap<String, (u64, u64)>> {
    let mut kinds: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))?.filter_map(|e| e.ok()) {
        let path = task.path();
        let (Ok(name), Ok(stat)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("schedstat")),
        ) else {
            continue;
        };
        let mut f = stat
            .split_whitespace()
            .map(|v| v.parse::<u64>().unwrap_or(0));
        let (ns, slices) = (f.next().unwrap_or(0), f.nth(1).unwrap_or(0));
        let main = task.file_name().to_str() == Some(&pid.to_string());
        let kind = kinds.entry(thread_kind(name.trim(), main)).or_default();
        kind.0 += ns;
        kind.1 += slices;
    }
    Ok(kinds)
}

/// User and system CPU ticks of a process.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    Ok(f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
}

/// The pid of the Kafka broker `deploy/local` started (`$MYSIMBDP_STATE_DIR/kafka.pid`).
fn kafka_pid() -> Option<u32> {
    let dir = match std::env::var("MYSIMBDP_STATE_DIR") {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_dir().join(".state"),
    };
    std::fs::read_to_string(dir.join("kafka.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
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
    let ticks = cpu_ticks(pid)?;
    Ok(Sample {
        rss_kib: field("VmRSS:"),
        threads: field("Threads:") as usize,
        sockets,
        ticks,
        kafka_ticks: kafka_pid().and_then(|kafka| cpu_ticks(kafka).ok()),
        by_thread: by_thread(pid)?,
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
) -> Result<(Platform, Startup)> {
    let started = Instant::now();
    let mut platform = Platform::start(env, name, config)?;
    for id in ids {
        for (_, app, _) in apps {
            answering(&mut platform, id, app)?;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_s = cpu_ticks(platform.pid().context("no pid")?)? as f64 / HZ;
    Ok((platform, Startup { seconds, cpu_s }))
}

/// From the platform's launch until every app answers: wall seconds, and the platform's CPU
/// seconds (Kafka logins, Cassandra schema, compiling the apps).
struct Startup {
    seconds: f64,
    cpu_s: f64,
}

/// One idle layout's measure: start-up and restart seconds, resources after start-up, cores
/// used over the window, and per kind of thread the cores and times on a core per second; then
/// the same once every app hibernates.
struct IdleRun {
    startup: Startup,
    restart: Startup,
    sample: Sample,
    cores: f64,
    kafka_cores: Option<f64>,
    by_thread: BTreeMap<String, (f64, f64)>,
    asleep: Asleep,
}

/// The idle layout once its apps hibernate (`runner.hibernate_after_ms`, 60 s by default):
/// how many did within `HIBERNATION_WAIT`, the resources and CPU then, and the seconds from
/// one record sent to a hibernating app until that app has read it.
struct Asleep {
    hibernated: usize,
    sample: Sample,
    cores: f64,
    kafka_cores: Option<f64>,
    by_thread: BTreeMap<String, (f64, f64)>,
    wake_s: f64,
}

/// Clock ticks per second of `/proc/<pid>/stat`.
const HZ: f64 = 100.0;

/// Kafka's cores between two samples `window` apart, when both found it.
fn kafka_cores(before: &Sample, after: &Sample, window: Duration) -> Option<f64> {
    let (b, a) = (before.kafka_ticks?, after.kafka_ticks?);
    Some(a.saturating_sub(b) as f64 / HZ / window.as_secs_f64())
}

/// How long the bench waits for every app to hibernate, from the end of the awake window.
const HIBERNATION_WAIT: Duration = Duration::from_secs(240);

/// Cores used between two samples `window` apart, in all and per kind of thread (cores, times
/// on a core per second).
fn usage(before: &Sample, after: &Sample, window: Duration) -> (f64, BTreeMap<String, (f64, f64)>) {
    let window = window.as_secs_f64();
    let cores = (after.ticks - before.ticks) as f64 / HZ / window;
    let by_thread = after
        .by_thread
        .iter()
        .map(|(kind, (ns, slices))| {
            let (ns0, slices0) = before.by_thread.get(kind).copied().unwrap_or_default();
            let used = ns.saturating_sub(ns0) as f64 / 1e9 / window;
            let woken = slices.saturating_sub(slices0) as f64 / window;
            (kind.clone(), (used, woken))
        })
        .collect();
    (cores, by_thread)
}

/// Waits until every app hibernates (or `HIBERNATION_WAIT` passes), measures the host over
/// `IDLE_WINDOW`, then sends one record to the first app and times its waking.
fn asleep(platform: &mut Platform, ids: &[String], apps: &[(&str, &str, &str)]) -> Result<Asleep> {
    let pid = platform.pid().context("no pid")?;
    let deadline = Instant::now() + HIBERNATION_WAIT;
    let hibernating = |platform: &Platform| -> Result<usize> {
        let mut n = 0;
        for id in ids {
            for (_, app, _) in apps {
                n += usize::from(platform.status_of(id, app)?["hibernating"] == true);
            }
        }
        Ok(n)
    };
    let mut hibernated = hibernating(platform)?;
    while hibernated < ids.len() * apps.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
        hibernated = hibernating(platform)?;
    }
    let (after, cores, kafka_cores, by_thread) = watch_idle(pid)?;
    let (_, app, stream) = apps[0];
    let sent = Instant::now();
    produce(
        &format!("{}.{stream}", ids[0]),
        [("wake".to_owned(), "{\"wake\": true}".to_owned())],
    )?;
    let wake_deadline = Instant::now() + Duration::from_secs(120);
    while platform.status_of(&ids[0], app)?["records_in"]
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        if Instant::now() > wake_deadline {
            bail!(
                "{}/{app} did not read a record sent to it while it hibernated",
                ids[0]
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(Asleep {
        hibernated,
        sample: after,
        cores,
        kafka_cores,
        by_thread,
        wake_s: sent.elapsed().as_secs_f64(),
    })
}

/// The process after 5 s to settle and then over `IDLE_WINDOW`: its last sample, the cores it
/// used, Kafka's, and its cores and times on a core per kind of thread.
type Watched = (Sample, f64, Option<f64>, BTreeMap<String, (f64, f64)>);

fn watch_idle(pid: u32) -> Result<Watched> {
    std::thread::sleep(Duration::from_secs(5));
    let before = sample(pid)?;
    std::thread::sleep(IDLE_WINDOW);
    let after = sample(pid)?;
    let (cores, by_thread) = usage(&before, &after, IDLE_WINDOW);
    let kafka_cores = kafka_cores(&before, &after, IDLE_WINDOW);
    Ok((after, cores, kafka_cores, by_thread))
}

/// How long an idle platform is watched: at 10 ms a tick, 30 s resolves 0.0003 cores.
const IDLE_WINDOW: Duration = Duration::from_secs(30);

/// Idle apps: the first start (keyspaces and tables created), the resources after it, the CPU
/// over `IDLE_WINDOW`, and a second start on the same config (the tables exist).
fn idle(layout: &Layout) -> Result<IdleRun> {
    let env = TestEnv::new()?;
    let apps = apps_of(layout);
    let (config, ids) = config(&env.tenant, layout.tenants, &apps)?;
    for id in &ids {
        for (_, _, stream) in &apps {
            create_topic(&format!("{id}.{stream}"), 4)?;
        }
    }
    let (mut platform, startup) = start_all(&env, &layout.name, &config, &ids, &apps)?;
    let pid = platform.pid().context("no pid")?;
    let (after, cores, kafka_cores, by_thread) = watch_idle(pid)?;
    let asleep = asleep(&mut platform, &ids, &apps)?;
    platform.stop()?;
    let again = format!("{}-again", layout.name);
    let (mut platform, restart) = start_all(&env, &again, &config, &ids, &apps)?;
    platform.stop()?;
    clean_up(&env.tenant)?;
    Ok(IdleRun {
        startup,
        restart,
        sample: after,
        cores,
        kafka_cores,
        by_thread,
        asleep,
    })
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
        send_reviews(&env, id, &tsv, 4)?;
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

/// The tenant `id` sends the reviews of `tsv` to its stream, as itself, over `partitions`.
fn send_reviews(env: &TestEnv, id: &str, tsv: &Path, partitions: usize) -> Result<()> {
    let mut produce = produce_command(id)?;
    produce
        .arg("--file")
        .arg(tsv)
        .args(["--tenant", id, "--partitions", &partitions.to_string()]);
    run_command(env, "produce", &mut produce, Duration::from_secs(300))?
        .ensure_success("mysimbdp produce")?;
    Ok(())
}

/// The slowest tenant's rate as a percentage of the median tenant's, from their seconds.
fn slowest_share(seconds: &[f64]) -> f64 {
    100.0 * median(seconds) / slowest(seconds)
}

/// The last tenant's time.
fn slowest(seconds: &[f64]) -> f64 {
    seconds.iter().copied().fold(f64::MIN, f64::max)
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

/// Notes when the figures in `json` were measured, and on which commit.
fn stamp(json: &mut serde_json::Value) {
    json["date"] = run_command_text("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).into();
    json["git"] = run_command_text("git", &["rev-parse", "--short", "HEAD"]).into();
}

/// The layouts named in `BENCH_TENANTS_LAYOUTS` (`<tenants>x<apps>`, comma-separated), all of
/// them when unset.
fn layouts() -> Result<Vec<Layout>> {
    let all = [(1, 1), (10, 1), (25, 1), (50, 1), (10, 5)];
    let wanted = std::env::var("BENCH_TENANTS_LAYOUTS").unwrap_or_default();
    let mut layouts = Vec::new();
    if wanted == "none" {
        return Ok(layouts);
    }
    for (tenants, apps) in all {
        let name = format!("{tenants}x{apps}");
        if wanted.is_empty() || wanted.split(',').any(|w| w.trim() == name) {
            layouts.push(Layout {
                name,
                tenants,
                apps,
            });
        }
    }
    if layouts.is_empty() {
        bail!("BENCH_TENANTS_LAYOUTS={wanted} names none of 1x1, 10x1, 25x1, 50x1, 10x5 (or none)");
    }
    Ok(layouts)
}

/// Per kind of thread: cores and times on a core per second.
fn threads_json(by_thread: &BTreeMap<String, (f64, f64)>) -> serde_json::Value {
    by_thread
        .iter()
        .map(|(k, (cores, woken))| {
            (
                k.clone(),
                serde_json::json!({"cores": cores, "woken_per_s": woken}),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// `min / median / max` of one measure over the runs.
fn spread(values: &[f64], digits: usize) -> String {
    let (min, max) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
    format!(
        "{min:.digits$} / {:.digits$} / {max:.digits$}",
        median(values)
    )
}

fn main() -> Result<()> {
    Services::check()?;
    let reviews: u32 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(6_000);
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .map(|r| r.parse())
        .transpose()
        .context("BENCH_RUNS must be a number of runs")?
        .unwrap_or(3)
        .max(1);
    let layouts = layouts()?;
    let mut idle_runs: Vec<Vec<IdleRun>> = layouts.iter().map(|_| Vec::new()).collect();
    for run in 0..runs {
        for (layout, measured) in layouts.iter().zip(&mut idle_runs) {
            eprintln!(
                "run {}/{runs}: {} × {} idle",
                run + 1,
                layout.tenants,
                layout.apps
            );
            measured.push(idle(layout)?);
        }
    }
    println!("min / median / max of {runs} runs");
    if !layouts.is_empty() {
        println!("| tenants × apps | first start-up (s) | restart (s) | start-up CPU (s): first; restart | resident MiB | threads | sockets | idle CPU (cores, 30 s) | Kafka's CPU meanwhile (cores) |");
        println!("|---|---|---|---|---|---|---|---|---|");
    }
    let mut idle_json = Vec::new();
    for (layout, measured) in layouts.iter().zip(&idle_runs) {
        let of = |f: &dyn Fn(&IdleRun) -> f64| measured.iter().map(f).collect::<Vec<f64>>();
        println!(
            "| {} × {} | {} | {} | {}; {} | {} | {} | {} | {} | {} |",
            layout.tenants,
            layout.apps,
            spread(&of(&|r| r.startup.seconds), 1),
            spread(&of(&|r| r.restart.seconds), 1),
            spread(&of(&|r| r.startup.cpu_s), 2),
            spread(&of(&|r| r.restart.cpu_s), 2),
            spread(&of(&|r| r.sample.rss_kib as f64 / 1024.0), 1),
            spread(&of(&|r| r.sample.threads as f64), 0),
            spread(&of(&|r| r.sample.sockets as f64), 0),
            spread(&of(&|r| r.cores), 4),
            spread(&of(&|r| r.kafka_cores.unwrap_or(f64::NAN)), 4),
        );
        idle_json.push(serde_json::json!({
            "tenants": layout.tenants, "apps_per_tenant": layout.apps,
            "runs": measured.iter().map(|r| serde_json::json!({
                "startup_s": r.startup.seconds, "restart_s": r.restart.seconds,
                "startup_cpu_s": r.startup.cpu_s, "restart_cpu_s": r.restart.cpu_s,
                "rss_mib": r.sample.rss_kib as f64 / 1024.0,
                "threads": r.sample.threads, "sockets": r.sample.sockets, "idle_cores": r.cores,
                "kafka_cores": r.kafka_cores,
                "by_thread": threads_json(&r.by_thread),
                "asleep": {
                    "hibernated": r.asleep.hibernated,
                    "rss_mib": r.asleep.sample.rss_kib as f64 / 1024.0,
                    "threads": r.asleep.sample.threads, "sockets": r.asleep.sample.sockets,
                    "idle_cores": r.asleep.cores, "kafka_cores": r.asleep.kafka_cores,
                    "wake_s": r.asleep.wake_s,
                    "by_thread": threads_json(&r.asleep.by_thread),
                },
            })).collect::<Vec<_>>(),
        }));
    }
    if !layouts.is_empty() {
        println!("\nonce every app hibernates (runner.hibernate_after_ms = 60000, the default):");
        println!("| tenants × apps | hibernated | resident MiB | threads | sockets | idle CPU (cores, 30 s) | Kafka's CPU meanwhile (cores) | record → read by a hibernating app (s) |");
        println!("|---|---|---|---|---|---|---|---|");
    }
    for (layout, measured) in layouts.iter().zip(&idle_runs) {
        let of = |f: &dyn Fn(&Asleep) -> f64| {
            measured.iter().map(|r| f(&r.asleep)).collect::<Vec<f64>>()
        };
        println!(
            "| {} × {} | {} | {} | {} | {} | {} | {} | {} |",
            layout.tenants,
            layout.apps,
            spread(&of(&|a| a.hibernated as f64), 0),
            spread(&of(&|a| a.sample.rss_kib as f64 / 1024.0), 1),
            spread(&of(&|a| a.sample.threads as f64), 0),
            spread(&of(&|a| a.sample.sockets as f64), 0),
            spread(&of(&|a| a.cores), 4),
            spread(&of(&|a| a.kafka_cores.unwrap_or(f64::NAN)), 4),
            spread(&of(&|a| a.wake_s), 2),
        );
    }
    // The split of an idle host's CPU, for the most tenants with one app each.
    let split = layouts
        .iter()
        .zip(&idle_runs)
        .filter(|(l, _)| l.apps == 1)
        .max_by_key(|(l, _)| l.tenants);
    if let Some((layout, measured)) = split {
        let apps = (layout.tenants * layout.apps) as f64;
        println!(
            "\nwhere an idle {} × {} host's CPU goes, per app, median of {runs} runs:",
            layout.tenants, layout.apps
        );
        println!("| thread | % of a core per app | times on a core per app per s |");
        println!("|---|---|---|");
        let kinds: std::collections::BTreeSet<&String> =
            measured.iter().flat_map(|r| r.by_thread.keys()).collect();
        for kind in kinds {
            let pick = |i: usize| -> Vec<f64> {
                measured
                    .iter()
                    .map(|r| {
                        r.by_thread
                            .get(kind)
                            .map_or(0.0, |v| if i == 0 { v.0 } else { v.1 })
                    })
                    .collect()
            };
            println!(
                "| {kind} | {:.4} | {:.2} |",
                100.0 * median(&pick(0)) / apps,
                median(&pick(1)) / apps
            );
        }
    }
    let mut busy_json = Vec::new();
    if std::env::var("BENCH_TENANTS_BUSY").as_deref() != Ok("0") {
        let tenants = 50;
        for run in 0..runs {
            eprintln!("run {}/{runs}: {tenants} busy tenants", run + 1);
            let (mut times, total, all_started, peak) = busy(tenants, reviews)?;
            times.sort_by(f64::total_cmp);
            let median = median(&times);
            let slowest = times[times.len() - 1];
            let all = f64::from(reviews) * tenants as f64;
            println!(
                "\nrun {}: {tenants} tenants × {reviews} reviews each ({all} in all), every tenant \
                 drained from the platform's launch: fastest {:.1} s, median {median:.1} s, \
                 slowest {slowest:.1} s; all in {total:.1} s = {:.0} records/s; the slowest tenant \
                 ran at {:.0}% of the median one's rate; every app was started (and draining) \
                 {all_started:.1} s after the launch, then all were drained {:.1} s later; peak \
                 resident {:.0} MiB, {} threads, {} sockets",
                run + 1,
                times[0],
                all / total,
                slowest_share(&times),
                total - all_started,
                peak.rss_kib as f64 / 1024.0,
                peak.threads,
                peak.sockets
            );
            busy_json.push(serde_json::json!({
                "tenants": tenants, "seconds_per_tenant": times, "total_s": total,
                "all_started_s": all_started, "peak_rss_mib": peak.rss_kib as f64 / 1024.0,
                "peak_threads": peak.threads, "peak_sockets": peak.sockets,
            }));
        }
    }
    let mut hosts_json = None;
    let host_counts: Vec<usize> = std::env::var("BENCH_TENANTS_HOSTS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .map(|n| n.trim().parse())
        .collect::<Result<_, _>>()
        .context("BENCH_TENANTS_HOSTS must be host counts such as 1,2 (or 0)")?;
    if !host_counts.contains(&0) {
        let tenants = 50;
        let mut measured = Vec::new();
        for run in 0..runs {
            for &n in &host_counts {
                eprintln!(
                    "run {}/{runs}: {tenants} busy tenants on {n} host(s)",
                    run + 1
                );
                measured.push(hosts::run(tenants, reviews, n)?);
            }
        }
        let mut json = hosts::report(tenants, reviews, &measured);
        stamp(&mut json);
        hosts_json = Some(json);
    }
    if let Some(path) = std::env::var_os("BENCH_TENANTS_JSON") {
        let path = PathBuf::from(path);
        // What this run did not measure stays as the file had it.
        let mut json: serde_json::Value = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .filter(serde_json::Value::is_object)
            .unwrap_or_else(|| serde_json::json!({}));
        if !idle_json.is_empty() || !busy_json.is_empty() {
            stamp(&mut json);
            json["runs"] = runs.into();
            json["idle_window_s"] = IDLE_WINDOW.as_secs().into();
            json["reviews_per_tenant"] = reviews.into();
        }
        if !idle_json.is_empty() {
            json["idle"] = idle_json.into();
        }
        if !busy_json.is_empty() {
            json["busy"] = busy_json.into();
        }
        if let Some(hosts) = hosts_json {
            json["hosts"] = hosts;
        }
        std::fs::write(&path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
