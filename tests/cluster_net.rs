//! The cluster on a real network: members in their own network namespaces
//! on a bridge, agents in them (`nsenter --net`), two servers on a real
//! etcd, a service with a floating IP address and a small HTTP
//! application. A checker samples every 20 ms which members hold the
//! address and which run the application, and fails the test on any moment
//! with two. The client namespace reaches the service through the address.

mod common;

use std::time::Duration;

use common::cluster::{Cluster, running_on};
use common::{EtcdCluster, wait_until};

const T: Duration = Duration::from_secs(30);

/// `kill -9` of the agent running the service: its watchdog stops it, the
/// lease expires, and another member takes the address and the
/// application; the client reaches it there.
#[test]
fn a_member_whose_agent_is_killed_loses_its_service_to_another() {
    require_root!();
    let Some(mut c) = Cluster::start() else {
        return;
    };
    c.apply_web();
    assert!(
        wait_until(T, || running_on(&c, "node1")),
        "{:?}\n{}",
        c.web(),
        c.logs()
    );
    assert_eq!(c.who().as_deref(), Some("node1"), "{}", c.logs());
    let checker = c.checker();
    c.kill_agent(0);
    assert!(
        wait_until(T, || c.who().is_some_and(|w| w != "node1")),
        "{:?}\n{}",
        c.web(),
        c.logs()
    );
    assert!(wait_until(T, || running_on(&c, "node2")), "{:?}", c.web());
    assert_eq!(c.who().as_deref(), Some("node2"));
    assert_eq!(c.web()["observed"]["placementReason"], "failover");
    assert!(!c.lan.member("node1").holds(&c.vip()));
    let samples = checker.finish();
    assert!(samples > 10, "{samples}");
    assert_eq!(
        c.server().get_json("/v1/members/node1")["state"],
        "dead",
        "{}",
        c.logs()
    );
}

/// A member cut off from the network: its agent cannot renew, stops the
/// service before its lease can expire, and only then does another member
/// start it (the checker sees no moment with two). Healed, the member comes
/// back alive and the service stays where it is.
#[test]
fn a_partitioned_member_stops_its_service_before_another_starts_it() {
    require_root!();
    let Some(c) = Cluster::start() else {
        return;
    };
    c.apply_web();
    assert!(
        wait_until(T, || running_on(&c, "node1")),
        "{:?}\n{}",
        c.web(),
        c.logs()
    );
    let checker = c.checker();
    c.lan.member("node1").link(false);
    assert!(
        wait_until(T, || running_on(&c, "node2")),
        "{:?}\n{}",
        c.web(),
        c.logs()
    );
    assert!(
        wait_until(T, || c.who().as_deref() == Some("node2")),
        "{}",
        c.logs()
    );
    let log = std::fs::read_to_string(c.agent_log("node1")).unwrap();
    assert!(log.contains("self-fencing node1: stopped web"), "{log}");
    assert!(!c.lan.member("node1").holds(&c.vip()));
    c.lan.member("node1").link(true);
    assert!(
        wait_until(T, || c.server().get_json("/v1/members/node1")["state"]
            == "alive"),
        "{}",
        c.logs()
    );
    // node1's agent holds a lease again and is active: the service stays
    // on node2 (no failback), with one owner throughout.
    assert!(
        wait_until(T, || std::fs::read_to_string(c.agent_log("node1"))
            .unwrap_or_default()
            .matches("holding lease")
            .count()
            >= 2),
        "{}",
        c.logs()
    );
    assert!(running_on(&c, "node2"), "{:?}", c.web());
    assert_eq!(c.who().as_deref(), Some("node2"));
    checker.finish();
}

/// A base for the demo's etcd ports (client E+1..E+3, peer E+11..E+13)
/// below the ephemeral port range, all six free now.
fn demo_etcd_base() -> u16 {
    let start = (std::process::id() % 1_000) as u16;
    (0..1_000u16)
        .map(|i| 20_000 + ((start + i) % 1_000) * 12)
        .find(|&e| {
            [1, 2, 3, 11, 12, 13]
                .iter()
                .all(|d| std::net::TcpListener::bind(("127.0.0.1", e + d)).is_ok())
        })
        .expect("a free range of ports for the demo's etcd")
}

/// The demo cluster of `examples/cluster/` works as the README says: up,
/// the client reaches the service, a member's agent is killed, the client
/// reaches it on another member, down leaves nothing behind.
#[test]
fn the_demo_cluster_moves_its_service_when_a_member_dies() {
    require_root!();
    if EtcdCluster::start(1).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let prefix = common::unique("d");
    let net = format!("10.{}.77", 100 + std::process::id() % 100);
    // Its own etcd ports (another demo may run on the default ones), below
    // the ephemeral range (32768 and up), where the other tests' etcds and
    // outgoing connections take theirs, and checked free.
    let etcd_base = demo_etcd_base();
    let demo = |args: &[&str]| {
        let out = std::process::Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/cluster/demo.sh"
        ))
        .args(args)
        .env("DEMO_DIR", &demo_dir)
        .env("DEMO_NET", &net)
        .env("DEMO_PREFIX", &prefix)
        .env("DEMO_ETCD_BASE", etcd_base.to_string())
        .env("CLUSVC", env!("CARGO_BIN_EXE_clusvc"))
        .output()
        .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    struct Down<F: Fn(&[&str]) -> (bool, String)>(F);
    impl<F: Fn(&[&str]) -> (bool, String)> Drop for Down<F> {
        fn drop(&mut self) {
            let _ = (self.0)(&["down"]);
        }
    }
    let down = Down(demo);
    let (ok, out) = (down.0)(&["up"]);
    assert!(ok, "{out}");
    assert!(out.contains("hello from node1"), "{out}");
    let (ok, out) = (down.0)(&["kill", "node1"]);
    assert!(ok, "{out}");
    let mut last = String::new();
    assert!(
        wait_until(T, || {
            last = (down.0)(&["curl"]).1;
            last.contains("hello from node2")
        }),
        "{last}"
    );
    let (ok, out) = (down.0)(&["down"]);
    assert!(ok, "{out}");
    assert!(!demo_dir.exists());
}

/// `kill -9` of etcd's leader in steady state (three etcd members, agents
/// with a 5 s lease, longer than etcd takes to elect another leader):
/// nothing moves, no agent fences itself, checks go on.
#[test]
fn an_etcd_leader_killed_in_steady_state_moves_nothing() {
    require_root!();
    let Some(mut c) = Cluster::start_with(3, "5s") else {
        return;
    };
    c.apply_web();
    assert!(
        wait_until(T, || running_on(&c, "node1")),
        "{:?}\n{}",
        c.web(),
        c.logs()
    );
    let checker = c.checker();
    let leader = c.etcd.leader().expect("etcd has a leader");
    let killed_at = std::time::SystemTime::now();
    c.etcd.kill(leader);
    assert!(
        wait_until(T, || c.etcd.leader().is_some()),
        "no new etcd leader"
    );
    // Checks went on after the kill, on node1, with no restart. (A pass is
    // kept by the server the agent's heartbeat reached: an agent that
    // turned to the other server when etcd said "leader changed" tells
    // that one, so any server may show it.)
    let after_kill = |c: &Cluster| {
        c.servers.iter().any(|s| {
            let Ok(mut r) = s.http().get(format!("{}/v1/services/web", s.url)).call() else {
                return false; // a server that exited
            };
            r.body_mut()
                .read_json::<serde_json::Value>()
                .ok()
                .and_then(|w| {
                    w["lastCheck"]
                        .as_str()
                        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
                })
                .is_some_and(|t| t > killed_at + Duration::from_secs(1))
        })
    };
    assert!(
        wait_until(T, || after_kill(&c)),
        "{:?}\n{}",
        c.web(),
        c.logs()
    );
    assert!(running_on(&c, "node1"), "{:?}", c.web());
    assert_eq!(c.web()["restarts"], 0);
    assert_eq!(c.who().as_deref(), Some("node1"));
    for m in ["node1", "node2", "node3"] {
        let log = std::fs::read_to_string(c.agent_log(m)).unwrap_or_default();
        assert!(!log.contains("self-fencing"), "{m} fenced itself:\n{log}");
        assert_eq!(
            c.server().get_json(&format!("/v1/members/{m}"))["state"],
            "alive"
        );
    }
    checker.finish();
    c.etcd.restart(leader);
}

/// `kill -9` of etcd's leader and of the agent running the service at the
/// same moment: the service still moves, once, and never runs twice.
#[test]
fn an_etcd_leader_killed_during_a_failover_still_moves_the_service_once() {
    require_root!();
    let Some(mut c) = Cluster::start_with(3, "5s") else {
        return;
    };
    c.apply_web();
    assert!(
        wait_until(T, || running_on(&c, "node1")),
        "{:?}\n{}",
        c.web(),
        c.logs()
    );
    let checker = c.checker();
    let leader = c.etcd.leader().expect("etcd has a leader");
    c.kill_agent(0);
    c.etcd.kill(leader);
    assert!(
        wait_until(T, || c.who().as_deref() == Some("node2")),
        "{:?}\n{}",
        c.web(),
        c.logs()
    );
    assert!(wait_until(T, || running_on(&c, "node2")), "{:?}", c.web());
    assert_eq!(c.web()["observed"]["placementReason"], "failover");
    checker.finish();
}
