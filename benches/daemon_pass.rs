//! The controller's own full pass: every service reconciled once through
//! `Controller::reconcile_service` (the code path the runner takes), at
//! 1,000 / 10,000 / 50,000 running services with nothing to do, on the
//! embedded store. `cargo bench --bench daemon_pass [-- SIZES...]`.
//!
//! Each service is six resources on one of 16 members, running where it
//! should, checks off (a pass with checks is the agent's work, measured by
//! `--bench exec`). Reported: wall time and CPU time of the process for one
//! pass (CPU from getrusage, all threads).

use std::sync::Arc;
use std::time::{Duration, Instant};

use clusvc_agent::LocalAgent;
use clusvc_agent::events::Recorder;
use clusvc_agent::exec::Executor;
use clusvc_agent::fence::CommandFencer;
use clusvc_agent::resources::Host;
use clusvc_core::model::{Duration as ModelDuration, Object};
use clusvc_core::testkit::Cluster;
use clusvc_daemon::reconcile::{Controller, EventLog, Metrics, Settings};
use clusvc_store::embedded::Embedded;
use clusvc_store::{Store, Txn, Write, keys};

fn cpu_time() -> Duration {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(u.ru_utime) + tv(u.ru_stime)
}

async fn populate(store: &Embedded, services: usize) -> Vec<String> {
    let mut cluster = Cluster::synthetic(16, services);
    let mut ops = Vec::new();
    let mut names = Vec::new();
    for o in cluster.desired.objects() {
        let (key, value) = match &o {
            Object::Member(m) => (
                format!("{}{}", keys::MEMBERS, m.metadata.name),
                keys::encode(m),
            ),
            Object::Service(s) => {
                let mut s = s.clone();
                s.spec.check_interval = ModelDuration::from_secs(0);
                names.push(s.metadata.name.clone());
                (
                    format!("{}{}", keys::SERVICES, s.metadata.name),
                    keys::encode(&s),
                )
            }
        };
        ops.push(Write::Put {
            key,
            value,
            lease: None,
        });
    }
    for (name, o) in &mut cluster.observed.services {
        if let Some(spec) = &mut o.started_with {
            spec.check_interval = ModelDuration::from_secs(0);
        }
        ops.push(Write::Put {
            key: format!("{}{name}", keys::OBSERVED_SERVICES),
            value: keys::encode(o),
            lease: None,
        });
    }
    for m in cluster.desired.members().keys() {
        let lease = store.grant(Duration::from_secs(3600)).await.unwrap();
        ops.push(Write::Put {
            key: format!("{}{m}", keys::LEASES),
            value: b"alive".to_vec(),
            lease: Some(lease),
        });
    }
    for chunk in ops.chunks(5_000) {
        let r = store
            .txn(Txn {
                success: chunk.to_vec(),
                ..Txn::default()
            })
            .await
            .unwrap();
        assert!(r.succeeded);
    }
    names
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000, 50_000]
    } else {
        sizes
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for n in sizes {
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(Embedded::open(dir.path().join("store")).unwrap());
            let names = populate(&store, n).await;
            let events = Arc::new(EventLog::default());
            let host = Host::new("node000");
            let exec = Arc::new(Executor::new(Arc::new(host), Arc::new(Recorder::default())));
            let controller = Controller::new(
                store.clone(),
                vec![Arc::new(LocalAgent::new(exec))],
                Arc::new(CommandFencer::default()),
                events,
                Arc::new(Metrics::default()),
                Settings::default(),
            );
            let _watch = controller.load().await.unwrap();
            for round in 0..2 {
                let cpu0 = cpu_time();
                let t0 = Instant::now();
                for name in &names {
                    controller.reconcile_service(name).await.unwrap();
                }
                let (wall, cpu) = (t0.elapsed(), cpu_time() - cpu0);
                if round == 1 {
                    println!(
                        "full pass over {n} services: {:.1} ms wall, {:.1} ms CPU ({:.1} µs per service)",
                        wall.as_secs_f64() * 1e3,
                        cpu.as_secs_f64() * 1e3,
                        cpu.as_secs_f64() * 1e6 / n as f64
                    );
                }
            }
        });
    }
}
