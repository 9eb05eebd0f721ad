//! One host against two: the same tenants' input read by one platform process, then by two
//! sharing every app's partitions through its consumer group, side by side. Both hosts run on
//! this machine's cores, so the measure is what a second host costs and how the work splits,
//! not added capacity. Each run starts its hosts, waits until every app's partitions are
//! shared out, pauses every app, writes every tenant's reviews, and times from the resume until
//! each tenant's records were processed, and until a checkpoint committed them (the sums over
//! the hosts, from their status): no rebalance during the timed part, so no record is read
//! twice.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use mysimbdp_tests::{create_topic, generate_reviews, Platform, TestEnv};
use serde_json::Value;

use super::{
    answering, config, cpu_ticks, sample, send_reviews, slowest, slowest_share, spread, HZ,
};

const APP: &str = "reviews-daily";
const PARTITIONS: usize = 4;

/// One run with `hosts` platform processes.
pub struct HostsRun {
    pub hosts: usize,
    /// Each tenant's seconds from the resume until its reviews were processed.
    pub seconds_per_tenant: Vec<f64>,
    /// Each tenant's seconds from the resume until a checkpoint committed its reviews (their
    /// rows written, their offsets committed).
    pub committed_per_tenant: Vec<f64>,
    pub total_s: f64,
    /// Per host: CPU seconds over the timed part, peak resident MiB, partitions owned.
    pub cpu_s: Vec<f64>,
    pub peak_rss_mib: Vec<f64>,
    pub partitions: Vec<usize>,
}

/// Every app's status on each host, by tenant.
fn statuses(hosts: &[Platform]) -> Result<Vec<BTreeMap<String, Value>>> {
    hosts.iter().map(statuses_on).collect()
}

fn statuses_on(host: &Platform) -> Result<BTreeMap<String, Value>> {
    let (code, body) = host.admin_request("GET", "/apps")?;
    ensure!(code == 200, "GET /apps answered {code}: {body}");
    let all: Vec<Value> = serde_json::from_str(&body).context("GET /apps: not JSON")?;
    Ok(all
        .into_iter()
        .filter(|s| s["app"] == APP)
        .filter_map(|s| Some((s["tenant"].as_str()?.to_owned(), s)))
        .collect())
}

fn owned(status: Option<&Value>) -> usize {
    status
        .and_then(|s| s["partitions"].as_array())
        .map_or(0, Vec::len)
}

/// Asks every app on every host to pause or resume.
fn each_app(hosts: &[Platform], ids: &[String], action: &str) -> Result<()> {
    for host in hosts {
        for id in ids {
            let (code, body) = host.admin_request("POST", &format!("/apps/{id}/{APP}/{action}"))?;
            ensure!((200..300).contains(&code), "{action} {id}: {code} {body}");
        }
    }
    Ok(())
}

/// `tenants` tenants with `reviews` reviews each, read by `hosts` hosts.
pub fn run(tenants: usize, reviews: u32, hosts: usize) -> Result<HostsRun> {
    let env = TestEnv::new()?;
    let apps = [("reviews_daily", APP, "reviews")];
    let (tsv, _) = generate_reviews(&env, reviews, 11, &["--late", "0", "--malformed", "0"])?;
    // The same tenants on every host, each host with its own admin port; no app hibernates
    // while it is paused for the input to be written.
    let (_, ids) = config(&env.tenant, tenants, &apps)?;
    let configs = (0..hosts)
        .map(|_| {
            let (mut host_config, _) = config(&env.tenant, tenants, &apps)?;
            host_config.extra_toml = format!(
                "[runner]\nhibernate_after_ms = 3600000\n\n{}",
                host_config.extra_toml
            );
            Ok(host_config)
        })
        .collect::<Result<Vec<_>>>()?;
    for id in &ids {
        create_topic(&format!("{id}.reviews"), PARTITIONS as i32)?;
    }
    let mut platforms = Vec::new();
    for (i, host_config) in configs.iter().enumerate() {
        let instance = format!("h{i}");
        platforms.push(Platform::start_with(
            &env,
            &format!("host-{instance}"),
            host_config,
            &["--instance", &instance],
        )?);
    }
    for host in &mut platforms {
        for id in &ids {
            answering(host, id, APP)?;
        }
    }
    // Every app's partitions shared out: each host owns some, and together all of them.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let all = statuses(&platforms)?;
        let shared = ids.iter().all(|id| {
            let counts: Vec<usize> = all.iter().map(|s| owned(s.get(id))).collect();
            counts.iter().sum::<usize>() == PARTITIONS && counts.iter().all(|n| *n > 0)
        });
        if shared {
            break;
        }
        if Instant::now() > deadline {
            bail!("the hosts did not share out every app's partitions within 5 minutes");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    each_app(&platforms, &ids, "pause")?;
    for id in &ids {
        send_reviews(&env, id, &tsv, PARTITIONS)?;
    }
    let pids: Vec<u32> = platforms
        .iter()
        .map(|p| p.pid().context("no pid"))
        .collect::<Result<_>>()?;
    let partitions: Vec<usize> = statuses(&platforms)?
        .iter()
        .map(|s| ids.iter().map(|id| owned(s.get(id))).sum())
        .collect();
    let ticks_before: Vec<u64> = pids.iter().map(|p| cpu_ticks(*p)).collect::<Result<_>>()?;
    let mut peak_kib = vec![0u64; hosts];
    let resumed = Instant::now();
    each_app(&platforms, &ids, "resume")?;
    let mut done: BTreeMap<String, f64> = BTreeMap::new();
    let mut committed: BTreeMap<String, f64> = BTreeMap::new();
    while committed.len() < ids.len() {
        let all = statuses(&platforms)?;
        let count = |id: &String, field: &str| -> u64 {
            all.iter().filter_map(|s| s.get(id)?[field].as_u64()).sum()
        };
        for id in &ids {
            for (field, reached) in [
                ("records_processed", &mut done),
                ("records_committed", &mut committed),
            ] {
                if reached.contains_key(id) {
                    continue;
                }
                let count = count(id, field);
                if count >= u64::from(reviews) {
                    ensure!(
                        count == u64::from(reviews),
                        "{id}: {field} is {count}, for {reviews} reviews sent"
                    );
                    reached.insert(id.clone(), resumed.elapsed().as_secs_f64());
                }
            }
        }
        for (peak, pid) in peak_kib.iter_mut().zip(&pids) {
            *peak = (*peak).max(sample(*pid)?.rss_kib);
        }
        if resumed.elapsed() > Duration::from_secs(1800) {
            bail!("not processed within 30 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let total_s = resumed.elapsed().as_secs_f64();
    let cpu_s = pids
        .iter()
        .zip(&ticks_before)
        .map(|(pid, before)| Ok(cpu_ticks(*pid)?.saturating_sub(*before) as f64 / HZ))
        .collect::<Result<Vec<f64>>>()?;
    for host in &mut platforms {
        host.stop()?;
    }
    super::clean_up(&env.tenant)?;
    Ok(HostsRun {
        hosts,
        seconds_per_tenant: done.into_values().collect(),
        committed_per_tenant: committed.into_values().collect(),
        total_s,
        cpu_s,
        peak_rss_mib: peak_kib.iter().map(|k| *k as f64 / 1024.0).collect(),
        partitions,
    })
}

/// Prints the comparison and returns it as JSON.
pub fn report(tenants: usize, reviews: u32, runs: &[HostsRun]) -> Value {
    let all = f64::from(reviews) * tenants as f64;
    println!(
        "\none host against two ({tenants} tenants × {reviews} reviews, {PARTITIONS} partitions \
         each; from the resume of every app until each tenant's reviews were processed, and until \
         a checkpoint committed them), min / median / max of the runs:"
    );
    println!("| hosts | records/s | slowest tenant (% of the median's rate) | committed: records/s | committed: slowest tenant (%) | platform CPU s (all hosts) | µs a record | peak resident MiB per host | partitions per host |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut json = Vec::new();
    let mut counts: Vec<usize> = runs.iter().map(|r| r.hosts).collect();
    counts.sort_unstable();
    counts.dedup();
    for hosts in counts {
        let of: Vec<&HostsRun> = runs.iter().filter(|r| r.hosts == hosts).collect();
        let pick = |f: &dyn Fn(&HostsRun) -> f64| of.iter().map(|r| f(r)).collect::<Vec<f64>>();
        // Each run's hosts joined by `+`, the runs by `;`.
        let per_host = |values: &dyn Fn(&HostsRun) -> Vec<String>| {
            of.iter()
                .map(|r| values(r).join(" + "))
                .collect::<Vec<_>>()
                .join("; ")
        };
        println!(
            "| {hosts} | {} | {} | {} | {} | {} | {} | {} | {} |",
            spread(&pick(&|r| all / slowest(&r.seconds_per_tenant)), 0),
            spread(&pick(&|r| slowest_share(&r.seconds_per_tenant)), 0),
            spread(&pick(&|r| all / slowest(&r.committed_per_tenant)), 0),
            spread(&pick(&|r| slowest_share(&r.committed_per_tenant)), 0),
            spread(&pick(&|r| r.cpu_s.iter().sum()), 2),
            spread(&pick(&|r| 1e6 * r.cpu_s.iter().sum::<f64>() / all), 2),
            per_host(&|r| r.peak_rss_mib.iter().map(|v| format!("{v:.0}")).collect()),
            per_host(&|r| r.partitions.iter().map(ToString::to_string).collect()),
        );
        json.push(serde_json::json!({
            "hosts": hosts,
            "runs": of.iter().map(|r| serde_json::json!({
                "seconds_per_tenant": r.seconds_per_tenant,
                "committed_per_tenant": r.committed_per_tenant, "total_s": r.total_s,
                "cpu_s": r.cpu_s, "peak_rss_mib": r.peak_rss_mib, "partitions": r.partitions,
            })).collect::<Vec<_>>(),
        }));
    }
    serde_json::json!({
        "tenants": tenants, "reviews_per_tenant": reviews, "partitions": PARTITIONS,
        "by_hosts": json,
    })
}
