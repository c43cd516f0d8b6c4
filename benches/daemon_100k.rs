//! One controller with 100,000 services, measured against the real binary:
//! `cargo bench --bench daemon_100k [-- N] [--interval 60s] [--sample 60]`.
//!
//! Each service is one application, a trivial script (`app() { return 0;
//! }`), checked every 60 s. Reported:
//! - `clusvc apply -f DIR` of all of them in one request, CLI start to exit;
//! - the time until every one is running;
//! - steady state over a sample window: the daemon's RSS, its own CPU and
//!   its children's (the scripts: at 100,000 checks a minute, 1,667 bash
//!   processes a second, which is the scripts' cost, not the daemon's);
//! - `get services` paged: every page of 500 read in turn over the API, p50
//!   and p99 per request; and `clusvc get services` whole (all pages);
//! - `clusvc_reconciles_total` over the window (no loops: about one pass
//!   per service per interval).
//!
//! The daemon's full reconcile pass is `cargo bench --bench daemon_pass --
//! 100000`.

#[path = "gen/mod.rs"]
mod generate;

#[path = "../tests/common/mod.rs"]
#[allow(unused_macros)]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

fn write_services(dir: &Path, n: usize, script: &Path, interval: &str) {
    let spec = format!(
        "  checkInterval: {interval}\n  applications:\n    - script: {}\n",
        script.display()
    );
    generate::service_files(dir, n, 1_000, &spec, "svc");
}

fn proc_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// (own CPU, reaped children's CPU) of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = rest.split(' ').map(|x| x.parse().unwrap_or(0)).collect();
    (f[11] + f[12], f[13] + f[14])
}

fn metric(d: &common::Daemon, name: &str) -> f64 {
    let text = d
        .http()
        .get(format!("{}/metrics", d.url))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Status checks run (passed or failed).
const CHECKS: &str = "clusvc_actions_total{action=\"status\"";

fn running(d: &common::Daemon) -> u64 {
    metric(d, "clusvc_services{state=\"running\"}") as u64
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let n: usize = args
        .iter()
        .find_map(|a| a.replace('_', "").parse().ok())
        .unwrap_or(100_000);
    let interval = value("--interval").unwrap_or_else(|| "60s".into());
    let sample: u64 = value("--sample").map_or(60, |s| s.parse().unwrap());

    let dir = tempfile::tempdir().unwrap();
    let script = common::script(dir.path(), "bench_app", "app() { return 0; }\n");
    let manifests = dir.path().join("m");
    write_services(&manifests, n, &script, &interval);

    let d = common::Daemon::start(&[]);
    let pid = d.pid();
    let t = Instant::now();
    let (code, out, err) = d.run(&["apply", "-f", manifests.to_str().unwrap()]);
    let apply = t.elapsed();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().filter(|l| l.ends_with(" created")).count(), n);
    println!(
        "apply of {n} services in one request: {:.2} s (CLI start to exit)",
        apply.as_secs_f64()
    );
    // Polled once a second (a scrape costs the daemon a pass over every
    // record: polled every 10 ms it would be most of the load).
    let deadline = Instant::now() + Duration::from_secs(3_600);
    let mut last = running(&d);
    while last != n as u64 {
        assert!(
            Instant::now() < deadline,
            "{last} of {n} running after an hour"
        );
        std::thread::sleep(Duration::from_secs(1));
        last = running(&d);
    }
    println!(
        "  ... all {n} running {:.0} s after the apply returned (peak RSS {:.0} MiB)",
        t.elapsed().as_secs_f64() - apply.as_secs_f64(),
        proc_kb(pid, "VmHWM:") as f64 / 1024.0
    );

    // Steady state: every service checked at least once first.
    let interval_secs = humantime::parse_duration(&interval).unwrap().as_secs();
    std::thread::sleep(Duration::from_secs(interval_secs));
    let hz = 100.0;
    let (own0, kids0) = cpu_ticks(pid);
    let reconciles0 = metric(&d, "clusvc_reconciles_total");
    let checks0 = metric(&d, CHECKS);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(sample));
    let secs = t0.elapsed().as_secs_f64();
    let (own1, kids1) = cpu_ticks(pid);
    let reconciles = metric(&d, "clusvc_reconciles_total") - reconciles0;
    let checks = metric(&d, CHECKS) - checks0;
    println!(
        "steady state over {sample} s, checks every {interval}: RSS {:.0} MiB; daemon CPU {:.1}% of one core; its scripts {:.1}%; {:.0} reconciles ({:.2} per service per minute); {} running",
        proc_kb(pid, "VmRSS:") as f64 / 1024.0,
        (own1 - own0) as f64 / hz / secs * 100.0,
        (kids1 - kids0) as f64 / hz / secs * 100.0,
        reconciles,
        reconciles / n as f64 / secs * 60.0,
        running(&d),
    );
    // All of the daemon's CPU counted against the checks it ran: what one
    // check costs it, and so what 100,000 services checked every 60 s
    // (1,667 checks a second) cost, which a machine with fewer cores than
    // the scripts need cannot run at once.
    let per_check = (own1 - own0) as f64 / hz / checks;
    println!(
        "  {checks:.0} status checks ({:.0} a second): {:.0} us of daemon CPU each; at 1,667 checks a second (100,000 services every 60 s) {:.1}% of one core",
        checks / secs,
        per_check * 1e6,
        per_check * 1_667.0 * 100.0,
    );

    // get services, paged.
    let http = d.http();
    let mut times = Vec::new();
    let mut token: Option<String> = None;
    let mut seen = 0;
    loop {
        let mut url = format!("{}/v1/services?limit=500", d.url);
        if let Some(t) = &token {
            url.push_str("&continue=");
            url.push_str(t);
        }
        let t = Instant::now();
        let page: serde_json::Value = http
            .get(&url)
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        seen += page["items"].as_array().unwrap().len();
        match page["continue"].as_str() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    assert_eq!(seen, n);
    times.sort_by(f64::total_cmp);
    println!(
        "get services, pages of 500 over the API: {} requests, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        times.len(),
        pct(&times, 0.5),
        pct(&times, 0.99),
        times[times.len() - 1]
    );
    let t = Instant::now();
    let (code, out, err) = d.run(&["get", "services"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), n + 1);
    println!(
        "clusvc get services (a table of all {n}, fetched in pages of 500): {:.2} s",
        t.elapsed().as_secs_f64()
    );
}
