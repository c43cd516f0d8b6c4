//! One server at scale: `cargo bench --features etcd --bench cluster_scale
//! [-- AGENTS SERVICES WINDOW_S]` (default 64 agents, 10,000 services, a
//! 60 s steady-state window).
//!
//! A one-member etcd (limits sized as docs/cluster.md advises), one
//! `clusvc server` on 127.0.0.1, AGENTS `clusvc agent` processes (one per
//! member, all in this network namespace: the controller does not care
//! where they run), and SERVICES seed-style script services checked every
//! 60 s, applied in one request. It reports:
//!
//! - the apply (one request) and the time until every service runs;
//! - steady state over the window: the server's CPU, etcd's writes per
//!   second (its revision: lease renewals do not raise it, so the target
//!   is 0), etcd's and the agents' CPU;
//! - RSS of the server, of the agents (largest and median) and of etcd;
//! - `GET /v1/services` (every service) latency, p50 and p99 of 20;
//! - a member lost at scale: `kill -9` of one agent until all its
//!   services run on the others.
//!
//! Needs etcd (Debian etcd-server). Figures go in the closing note and in
//! docs/cluster.md.

#[path = "../tests/common/mod.rs"]
#[allow(unused_macros)]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, EtcdCluster, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_clusvc");

/// CPU time of a process so far (user + system), in seconds.
fn cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // Fields 14 and 15 of stat(5), counted after the command's ")".
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

/// Resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

struct Agents(Vec<Option<Child>>);

impl Drop for Agents {
    fn drop(&mut self) {
        for c in self.0.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Services by state, and how many each member runs.
fn census(server: &Daemon) -> (usize, usize, std::collections::BTreeMap<String, usize>) {
    let list = server.get_json("/v1/services");
    let items = list.as_array().cloned().unwrap_or_default();
    let mut on = std::collections::BTreeMap::new();
    let mut running = 0;
    for s in &items {
        if s["state"] == "running" {
            running += 1;
            *on.entry(s["member"].as_str().unwrap_or("").to_string())
                .or_insert(0) += 1;
        }
    }
    (items.len(), running, on)
}

/// Services running, from `/metrics` (cheap: polling the full list of
/// 10,000 services would load the server being measured).
fn running(server: &Daemon) -> usize {
    let Ok(mut r) = server.http().get(format!("{}/metrics", server.url)).call() else {
        return 0;
    };
    r.body_mut()
        .read_to_string()
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("clusvc_services{state=\"running\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits (polling every second) until `f` holds; false after `limit`.
fn wait_slowly(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    false
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let agents_n = args.first().copied().unwrap_or(64) as usize;
    let services_n = args.get(1).copied().unwrap_or(10_000) as usize;
    let window = Duration::from_secs(args.get(2).copied().unwrap_or(60));
    let Some(etcd) = EtcdCluster::start(1) else {
        std::process::exit(1);
    };
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o700)).unwrap();
    let members: Vec<String> = (0..agents_n).map(|i| format!("m{i:03}")).collect();
    for m in &members {
        let t = tokens.join(format!("{m}.token"));
        std::fs::write(&t, format!("{m}-agent-secret-0123456789\n")).unwrap();
        std::fs::set_permissions(&t, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // The controller's parallelism (`--concurrency`, default 4) from
    // CLUSVC_SCALE_CONCURRENCY.
    let concurrency = std::env::var("CLUSVC_SCALE_CONCURRENCY").unwrap_or_else(|_| "4".into());
    let server = Daemon::server(
        "s1",
        &etcd.endpoints(),
        &[
            "--agent-tokens",
            tokens.to_str().unwrap(),
            "--concurrency",
            &concurrency,
        ],
    );
    let mut agents = Agents(Vec::new());
    for m in &members {
        let log = std::fs::File::create(dir.path().join(format!("{m}.log"))).unwrap();
        agents.0.push(Some(
            Command::new(BIN)
                .args(["agent", "--member", m, "--server", &server.url])
                .arg("--token-file")
                .arg(tokens.join(format!("{m}.token")))
                .arg("--state-dir")
                .arg(dir.path().join(format!("agent-{m}")))
                .env("CLUSVC_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        ));
    }
    let manifest = |name: &str, text: String| {
        let f = dir.path().join(name);
        std::fs::write(&f, text).unwrap();
        f
    };
    let m = manifest(
        "members.yaml",
        members
            .iter()
            .map(|m| {
                format!("apiVersion: clusvc/v1\nkind: Member\nmetadata:\n  name: {m}\nspec: {{}}\n")
            })
            .collect::<Vec<_>>()
            .join("---\n"),
    );
    let (code, _, err) = server.run(&["apply", "-f", m.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        wait_until(Duration::from_secs(60), || {
            server
                .get_json("/v1/members")
                .as_array()
                .is_some_and(|v| v.iter().filter(|m| m["state"] == "alive").count() == agents_n)
        }),
        "not every agent holds a lease"
    );
    let app = common::script(dir.path(), "bench_app", "app()\n{\n\treturn 0\n}\n");
    // One file per 1,000 services (a file is bounded to 200,000 YAML
    // events), one request for the directory.
    let sdir = dir.path().join("services");
    std::fs::create_dir(&sdir).unwrap();
    for (k, chunk) in (0..services_n).collect::<Vec<_>>().chunks(1000).enumerate() {
        let text = chunk
            .iter()
            .map(|i| {
                format!(
                    "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: svc{i:06}\nspec:\n  checkInterval: 60s\n  applications:\n    - script: {}\n",
                    app.display()
                )
            })
            .collect::<Vec<_>>()
            .join("---\n");
        std::fs::write(sdir.join(format!("services-{k:03}.yaml")), text).unwrap();
    }
    println!(
        "{agents_n} agents, {services_n} services (checks every 60 s), one server on etcd, --concurrency {concurrency}"
    );
    let t0 = Instant::now();
    let (code, _, err) = server.run(&["apply", "-f", sdir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let applied = t0.elapsed();
    println!("apply (one request): {:.2} s", applied.as_secs_f64());
    let mut last = Instant::now();
    assert!(
        wait_slowly(Duration::from_secs(3600), || {
            let running = running(&server);
            if last.elapsed() > Duration::from_secs(30) {
                println!("  {:>5.0} s: {running} running", t0.elapsed().as_secs_f64());
                last = Instant::now();
            }
            running == services_n
        }) && census(&server).1 == services_n,
        "not every service came up; server log: {}",
        server.log_path().display()
    );
    let all_running = t0.elapsed();
    println!(
        "every service running {:.1} s after the apply ({:.0} starts/s)",
        all_running.as_secs_f64(),
        services_n as f64 / all_running.as_secs_f64()
    );
    // Let the last results and the first round of checks settle.
    std::thread::sleep(Duration::from_secs(10));
    let pids: Vec<u32> = agents.0.iter().flatten().map(Child::id).collect();
    let (s0, e0, r0) = (
        cpu(server.pid()),
        cpu(etcd.pid(0)),
        etcd.revision().unwrap(),
    );
    let a0: f64 = pids.iter().map(|p| cpu(*p)).sum();
    std::thread::sleep(window);
    let w = window.as_secs_f64();
    let (s1, e1, r1) = (
        cpu(server.pid()),
        cpu(etcd.pid(0)),
        etcd.revision().unwrap(),
    );
    let a1: f64 = pids.iter().map(|p| cpu(*p)).sum();
    println!("steady state over {w:.0} s:");
    println!("  server CPU: {:.2}% of one core", 100.0 * (s1 - s0) / w);
    println!(
        "  etcd writes: {} revisions, {:.2}/s (lease renewals are not writes)",
        r1 - r0,
        (r1 - r0) as f64 / w
    );
    println!("  etcd CPU: {:.2}% of one core", 100.0 * (e1 - e0) / w);
    println!(
        "  agents' CPU: {:.2}% of one core in all ({:.3}% each)",
        100.0 * (a1 - a0) / w,
        100.0 * (a1 - a0) / w / agents_n as f64
    );
    let rss: Vec<f64> = pids.iter().map(|p| rss_mib(*p)).collect();
    println!(
        "RSS: server {:.1} MiB, agent median {:.1} MiB / largest {:.1} MiB, etcd {:.1} MiB",
        rss_mib(server.pid()),
        percentile(&rss, 0.5),
        rss.iter().copied().fold(0.0, f64::max),
        rss_mib(etcd.pid(0))
    );
    let mut lat = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let v = server.get_json("/v1/services");
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(v.as_array().map_or(0, Vec::len), services_n);
    }
    println!(
        "GET /v1/services ({services_n} services): p50 {:.0} ms, p99 {:.0} ms",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    // A member lost at scale.
    let (_, _, on) = census(&server);
    let victim = members[0].clone();
    let moved = on.get(&victim).copied().unwrap_or(0);
    let t1 = Instant::now();
    if let Some(mut c) = agents.0[0].take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    assert!(
        wait_slowly(Duration::from_secs(1800), || {
            running(&server) == services_n && {
                let (_, running, on) = census(&server);
                running == services_n && !on.contains_key(&victim)
            }
        }),
        "the lost member's services did not come up elsewhere"
    );
    println!(
        "member lost (kill -9 of its agent, lease 5 s): its {moved} services run on others after {:.1} s",
        t1.elapsed().as_secs_f64()
    );
    // The agents' watchdogs (a killed agent's lives on until it fences).
    drop(agents);
    let _ = Command::new("pkill")
        .args(["-9", "-f", &dir.path().display().to_string()])
        .status();
}
