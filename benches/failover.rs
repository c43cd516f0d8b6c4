//! Failover time on a real network, as root: `cargo bench --bench failover
//! [-- RUNS]` (default 20).
//!
//! Three members in network namespaces, two servers on etcd, agents with a
//! 2 s lease, the `web` service (a floating address and an HTTP
//! application). Each run `kill -9`s the agent of the member running it
//! and measures until the floating address answers HTTP from another
//! member, with the breakdown from the controller's own records:
//! detection (kill to the lease's expiry, as the controller saw it), plan
//! (expiry to the failover plan), grace and start (plan to `now running`),
//! and answer (to the first HTTP answer from the new member, polled every
//! 10 ms from the servers' side of the bridge). The killed agent is started
//! again before the next run; the ownership checker runs throughout.

#[path = "../tests/common/mod.rs"]
#[allow(unused_macros)]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime};

use common::cluster::{Cluster, MEMBERS, running_on};
use common::wait_until;

const T: Duration = Duration::from_secs(30);

/// Who answers HTTP on `addr` (one try, bounded).
fn who(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(100)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(300))).ok()?;
    s.write_all(b"GET /who HTTP/1.0\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    let (head, text) = body.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200")
        .then(|| text.trim().to_string())
}

fn at(v: &serde_json::Value) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(v.as_str()?).ok()
}

fn secs(a: SystemTime, b: SystemTime) -> f64 {
    b.duration_since(a)
        .map(|d| d.as_secs_f64())
        .unwrap_or_else(|e| -e.duration().as_secs_f64())
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    if !common::is_root() {
        eprintln!("the failover benchmark needs root (network namespaces)");
        std::process::exit(1);
    }
    let Some(mut c) = Cluster::start() else {
        std::process::exit(1);
    };
    c.apply_web();
    assert!(
        wait_until(T, || MEMBERS.iter().any(|m| running_on(&c, m))),
        "{}",
        c.logs()
    );
    let vip: SocketAddr = format!("{}:8080", c.vip()).parse().unwrap();
    let checker = c.checker();
    let (mut total, mut detect, mut plan, mut start, mut answer) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    println!("run  from   to     total  detect  plan   grace+start  answer (s)");
    for run in 0..runs {
        let from = c.web()["member"].as_str().unwrap().to_string();
        assert!(
            wait_until(T, || who(vip).as_deref() == Some(from.as_str())),
            "{}",
            c.logs()
        );
        let i = MEMBERS.iter().position(|m| *m == from).unwrap();
        let killed_at = SystemTime::now();
        let t0 = Instant::now();
        c.kill_agent(i);
        let mut to = String::new();
        assert!(
            wait_until(T, || match who(vip) {
                Some(w) if w != from => {
                    to = w;
                    true
                }
                _ => false,
            }),
            "run {run}: no other member answered\n{}",
            c.logs()
        );
        let answered_after = t0.elapsed().as_secs_f64();
        let answered_at = killed_at + Duration::from_secs_f64(answered_after);
        // The controller's records of this failover (the last one lands
        // just after the application answers).
        let mut records = None;
        let mut events = Vec::new();
        wait_until(T, || {
            let expired = at(
                &c.server().get_json(&format!("/v1/members/{from}"))["observed"]["leaseExpiredAt"],
            );
            events = c.server().events_json("web");
            let after_kill = |e: &&serde_json::Value| at(&e["at"]).is_some_and(|t| t >= killed_at);
            let planned = events
                .iter()
                .filter(after_kill)
                .find(|e| {
                    e["message"]
                        .as_str()
                        .is_some_and(|m| m.contains(&format!("{from} -> ")))
                })
                .and_then(|e| at(&e["at"]));
            let running = events
                .iter()
                .filter(after_kill)
                .find(|e| e["message"] == "now running")
                .and_then(|e| at(&e["at"]));
            records = expired.zip(planned).zip(running);
            records.is_some()
        });
        let Some(((expired, planned), running)) = records else {
            panic!("run {run}: the controller's records are incomplete: {events:#?}");
        };
        let row = [
            answered_after,
            secs(killed_at, expired),
            secs(expired, planned),
            secs(planned, running),
            secs(running, answered_at),
        ];
        println!(
            "{run:>3}  {from}  {to}  {:>5.2}  {:>6.2}  {:>5.2}  {:>11.2}  {:>6.2}",
            row[0], row[1], row[2], row[3], row[4]
        );
        total.push(row[0]);
        detect.push(row[1]);
        plan.push(row[2]);
        start.push(row[3]);
        answer.push(row[4]);
        // The member comes back for the next run.
        c.start_agent(i);
        assert!(
            wait_until(T, || {
                c.server().get_json(&format!("/v1/members/{from}"))["state"] == "alive"
            }),
            "{}",
            c.logs()
        );
    }
    let samples = checker.finish();
    println!();
    for (what, v) in [
        ("failover (kill -9 to HTTP answer)", &total),
        ("  detection (to lease expiry)", &detect),
        ("  plan (expiry to plan)", &plan),
        ("  grace + start", &start),
        ("  answer (running to first answer)", &answer),
    ] {
        println!(
            "{what}: p50 {:.2} s, p99 {:.2} s, max {:.2} s",
            percentile(v, 0.5),
            percentile(v, 0.99),
            v.iter().copied().fold(0.0, f64::max)
        );
    }
    println!("{runs} runs; ownership checker: {samples} samples, never two owners");
}
