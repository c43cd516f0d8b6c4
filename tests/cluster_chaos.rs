//! A bounded random fault run on the cluster of `tests/cluster_net.rs`
//! (three members in network namespaces, two servers, a three-member etcd,
//! the floating address and the HTTP application), with the ownership
//! checker sampling every 20 ms throughout. Faults: an agent killed, an
//! agent restarted, an agent restarted with its clock running 5-10% fast
//! or slow (the documented bound; the agent's hidden `--fault-clock-rate`,
//! since one process's clock cannot be skewed here without libfaketime), a
//! member cut off, a member healed, a server killed (and started again, as
//! its supervisor would), an etcd member killed (one at a time; started
//! again at the next fault). At the end everything is healed and the
//! service must run and answer, having never had two owners.
//!
//! It prints its seed; `CLUSVC_CHAOS_SEED=N cargo test --all-features
//! --test cluster_chaos` replays that run; `CLUSVC_CHAOS_FAULTS=N` sets its
//! length (default 48, about a minute and a half here; `CLUSVC_CHAOS_FAULTS=500` is
//! a soak).

mod common;

use std::time::Duration;

use common::cluster::{Cluster, MEMBERS, running_on};
use common::wait_until;

/// xorshift64*: a small seeded generator, so a seed replays a run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn a_random_fault_run_never_has_two_owners_and_ends_with_the_service_running() {
    require_root!();
    let seed: u64 = std::env::var("CLUSVC_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    let faults: usize = std::env::var("CLUSVC_CHAOS_FAULTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(48);
    eprintln!(
        "chaos: seed {seed}, {faults} faults; replay: CLUSVC_CHAOS_SEED={seed} CLUSVC_CHAOS_FAULTS={faults} cargo test --all-features --test cluster_chaos"
    );
    let mut rng = Rng(seed);
    let Some(mut c) = Cluster::start_with(3, "3s") else {
        return;
    };
    c.apply_web();
    assert!(
        wait_until(Duration::from_secs(30), || MEMBERS
            .iter()
            .any(|m| running_on(&c, m))),
        "{}",
        c.logs()
    );
    let checker = c.checker();
    let mut cut = [false; 3];
    let mut etcd_down: Option<usize> = None;
    let mut history = Vec::new();
    for step in 0..faults {
        // The servers' supervisor: one that exited (it lost its
        // leadership) is started again.
        for s in c.servers.iter_mut() {
            if !s.runs() {
                s.crash_and_restart();
            }
        }
        if let Some(e) = etcd_down.take() {
            c.etcd.restart(e);
        }
        let i = rng.below(MEMBERS.len());
        let what = match rng.below(8) {
            0 => {
                c.kill_agent(i);
                format!("kill -9 the agent of {}", MEMBERS[i])
            }
            1 => {
                c.kill_agent(i);
                c.start_agent(i);
                format!("restart the agent of {}", MEMBERS[i])
            }
            2 => {
                c.lan.members[i].link(false);
                cut[i] = true;
                format!("cut {} off", MEMBERS[i])
            }
            3 => {
                c.lan.members[i].link(true);
                cut[i] = false;
                if !c.agent_runs(i) {
                    c.start_agent(i);
                }
                format!("heal {}", MEMBERS[i])
            }
            4 => {
                let s = rng.below(c.servers.len());
                c.servers[s].crash_and_restart();
                format!("kill -9 and restart server s{}", s + 1)
            }
            6 => {
                // Clock-rate skew within the documented bound (10%): the
                // agent restarts with a clock running fast or slow.
                let rate = ["0.9", "0.95", "1.05", "1.1"][rng.below(4)];
                c.kill_agent(i);
                c.start_agent_with(i, &["--fault-clock-rate", rate]);
                format!(
                    "restart the agent of {} with its clock at {rate}x",
                    MEMBERS[i]
                )
            }
            5 => {
                let e = rng.below(3);
                c.etcd.kill(e);
                etcd_down = Some(e);
                format!("kill -9 etcd member e{e}")
            }
            _ => {
                for j in 0..MEMBERS.len() {
                    if !c.agent_runs(j) {
                        c.start_agent(j);
                    }
                }
                "start every agent that is down".to_string()
            }
        };
        let pause = Duration::from_millis(300 + rng.below(2_700) as u64);
        eprintln!("chaos {step:>3}: {what}; then {pause:?}");
        history.push(what);
        // The fault schedule (not a synchronisation: the checker runs on).
        std::thread::sleep(pause);
    }
    // Heal everything; the service must run and answer.
    if let Some(e) = etcd_down.take() {
        c.etcd.restart(e);
    }
    for s in c.servers.iter_mut() {
        if !s.runs() {
            s.crash_and_restart();
        }
    }
    for (j, was_cut) in cut.iter().enumerate() {
        if *was_cut {
            c.lan.members[j].link(true);
        }
        if !c.agent_runs(j) {
            c.start_agent(j);
        }
    }
    let mut owner = String::new();
    assert!(
        wait_until(Duration::from_secs(60), || {
            let w = c.web();
            owner = w["member"].as_str().unwrap_or_default().to_string();
            w["state"] == "running" && c.who().as_deref() == Some(owner.as_str())
        }),
        "seed {seed}: the service did not end running\n{:?}\nfaults: {history:#?}\n{}",
        c.web(),
        c.logs()
    );
    let samples = checker.finish();
    eprintln!("chaos: seed {seed}: ends on {owner}; {samples} samples, never two owners");
}
