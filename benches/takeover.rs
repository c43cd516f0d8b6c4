//! Controller takeover: `cargo bench --features etcd --bench takeover
//! [-- RUNS]` (default 20).
//!
//! A one-member etcd, two `clusvc server`s with a 2 s leadership lease,
//! one agent and one service. Each run `kill -9`s the server that leads
//! and, at once, asks the survivor to freeze (or unfreeze) the service: an
//! operator request only the controller carries out. It measures from the
//! kill until the survivor leads (its `/healthz` names it) and until the
//! request took effect (the service's observed `frozen` flag flipped): the
//! controller acts again. The killed server is started again (as a
//! follower) before the next run. Target: p99 <= lease TTL + 1 s.

#[path = "../tests/common/mod.rs"]
#[allow(unused_macros)]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, EtcdCluster, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_clusvc");
const T: Duration = Duration::from_secs(30);

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

/// The name of the server `d` says leads.
fn leader(d: &Daemon) -> Option<String> {
    let mut r = d.http().get(format!("{}/healthz", d.url)).call().ok()?;
    let v: serde_json::Value = r.body_mut().read_json().ok()?;
    v["leader"]["name"].as_str().map(str::to_string)
}

/// Whether the service is frozen, as its observed state says (the flag is
/// left out when false).
fn frozen(d: &Daemon) -> Option<bool> {
    let s = d.service("svc")?;
    Some(s["observed"]["frozen"].as_bool().unwrap_or(false))
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    let Some(etcd) = EtcdCluster::start(1) else {
        std::process::exit(1);
    };
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o700)).unwrap();
    let token = tokens.join("node1.token");
    std::fs::write(&token, "node1-agent-secret-0123456789\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let extra = [
        "--agent-tokens",
        tokens.to_str().unwrap(),
        "--lease-ttl",
        "2s",
    ];
    // Fixed ports: a server started again keeps the URL the agent has.
    let on = |name: &str| {
        let listen = format!("127.0.0.1:{}", common::free_port());
        Daemon::server_on(name, &etcd.endpoints(), &listen, &extra)
    };
    let mut servers = [on("s1"), on("s2")];
    let urls = format!("{},{}", servers[0].url, servers[1].url);
    let mut agent = Command::new(BIN)
        .args(["agent", "--member", "node1", "--lease-ttl", "2s"])
        .args(["--server", &urls])
        .arg("--token-file")
        .arg(&token)
        .arg("--state-dir")
        .arg(dir.path().join("agent"))
        .env("CLUSVC_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("agent.log")).unwrap())
        .spawn()
        .unwrap();
    let app = common::script(dir.path(), "svc_app", "app()\n{\n\treturn 0\n}\n");
    let f = dir.path().join("objects.yaml");
    std::fs::write(
        &f,
        format!(
            "apiVersion: clusvc/v1\nkind: Member\nmetadata:\n  name: node1\nspec: {{}}\n---\n\
             apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: svc\nspec:\n  applications:\n    - script: {}\n",
            app.display()
        ),
    )
    .unwrap();
    let (code, _, err) = servers[0].run(&["apply", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        wait_until(T, || servers[0]
            .service("svc")
            .is_some_and(|s| s["state"] == "running")),
        "svc did not start"
    );
    let (mut elected, mut acted) = (Vec::new(), Vec::new());
    println!("run  killed  survivor  leads (s)  acts (s)");
    for run in 0..runs {
        let mut lead = None;
        assert!(wait_until(T, || {
            lead = leader(&servers[0]).or_else(|| leader(&servers[1]));
            lead.is_some()
        }));
        let lead = lead.unwrap();
        let (k, s) = if lead == "s1" { (0, 1) } else { (1, 0) };
        let want = !frozen(&servers[s]).unwrap_or(false);
        let t0 = Instant::now();
        servers[k].kill9();
        // The request goes in at once; only the new controller carries
        // it out.
        let verb = if want { "freeze" } else { "unfreeze" };
        let mut request = servers[s].cli().args([verb, "svc"]).spawn().unwrap();
        let survivor = if s == 0 { "s1" } else { "s2" };
        let mut led = None;
        assert!(
            wait_until(T, || {
                if led.is_none() && leader(&servers[s]).as_deref() == Some(survivor) {
                    led = Some(t0.elapsed());
                }
                frozen(&servers[s]) == Some(want)
            }),
            "run {run}: the survivor did not carry out the request; its log:\n{}",
            std::fs::read_to_string(servers[s].log_path()).unwrap_or_default()
        );
        let act = t0.elapsed();
        let led = led.unwrap_or(act);
        let _ = request.wait();
        println!(
            "{run:>3}  {lead:>6}  {survivor:>8}  {:>9.2}  {:>8.2}",
            led.as_secs_f64(),
            act.as_secs_f64()
        );
        elected.push(led.as_secs_f64());
        acted.push(act.as_secs_f64());
        // The killed server comes back, as a follower.
        servers[k].crash_and_restart();
        assert!(servers[k].runs());
    }
    let _ = agent.kill();
    let _ = agent.wait();
    println!();
    for (what, v) in [
        ("takeover (kill -9 to the survivor leading)", &elected),
        ("acting (kill -9 to the request carried out)", &acted),
    ] {
        println!(
            "{what}: p50 {:.2} s, p99 {:.2} s, max {:.2} s",
            percentile(v, 0.5),
            percentile(v, 0.99),
            v.iter().copied().fold(0.0, f64::max)
        );
    }
    println!("{runs} runs; lease TTL 2 s; target p99 <= 3 s");
    // The agent's watchdog.
    let _ = Command::new("pkill")
        .args(["-9", "-f", &dir.path().display().to_string()])
        .status();
}
