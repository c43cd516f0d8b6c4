//! Execution costs on a real member (run as root; prints a note and exits
//! otherwise): the script runner's overhead over a bare `bash -c true`
//! (with and without a cgroup of its own),
//! native status checks (filesystem, IP, export), and a full start of a
//! six-kind service. `cargo bench --bench exec`.

#[path = "../tests/common/mod.rs"]
#[allow(unused_macros)]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clusvc_agent::events::Recorder;
use clusvc_agent::exec::{Executor, ServiceRef};
use clusvc_agent::resources::process::{self, Command, Namespaces};
use clusvc_agent::resources::{Host, Verb};
use clusvc_core::model::{Application, IpAddress, NfsExport, NfsServer, SambaShare, ServiceSpec};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    if !common::is_root() {
        eprintln!("exec benchmarks need root (namespaces, loop devices); skipped");
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    std::fs::create_dir_all("/var/lib/nfs").unwrap();
    if !std::path::Path::new("/var/lib/nfs/etab").exists() {
        std::fs::write("/var/lib/nfs/etab", "").unwrap();
    }
    let member = common::Netns::new("bm");
    let client = common::Netns::new("bc");
    common::veth(&member, "m0", "192.0.2.1/24", &client, "c0", "192.0.2.2/24");
    let mnt_ns = common::MountNs::new();
    let disk = common::Loop::ext4(16);
    let smbd = common::Smbd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::new("node1")
        .with_network_namespace(member.path())
        .with_mount_namespace_of(mnt_ns.pid());
    host.state_dir = dir.path().join("state");
    host.smb_conf = smbd.conf();
    host.samba_shares = smbd.shares();
    let exec = Executor::new(Arc::new(host), Arc::new(Recorder::default()));
    let script = dir.path().join("bench_app");
    std::fs::write(&script, "#!/bin/bash\napp() { return $SUCCESS; }\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mnt = dir.path().join("srv").display().to_string();
    let spec = ServiceSpec {
        devices: vec![common::spec::device(&disk.dev)],
        filesystems: vec![common::spec::ext4(&disk.dev, &mnt)],
        nfs_exports: vec![NfsExport {
            path: mnt.clone(),
            clients: vec!["192.0.2.0/24".into()],
            options: vec!["rw".into()],
            server: NfsServer::Kernel,
        }],
        ip_addresses: vec![IpAddress {
            address: "192.0.2.100/24".into(),
            interface: None,
        }],
        samba_shares: vec![SambaShare {
            name: "benchshare".into(),
            path: mnt.clone(),
            parameters: Default::default(),
        }],
        applications: vec![Application {
            script: Some(script.display().to_string()),
            ..Application::default()
        }],
        ..ServiceSpec::default()
    };
    let svc = ServiceRef {
        name: "bench".into(),
        id: 1,
        timeout: Duration::from_secs(30),
    };

    let mut g = c.benchmark_group("script_runner");
    g.bench_function("bare bash -c true", |b| {
        let cmd = Command::new(["bash", "-c", "true"]);
        b.iter(|| {
            rt.block_on(process::run(
                &cmd,
                &Namespaces::default(),
                Duration::from_secs(10),
                Duration::from_secs(1),
            ))
            .unwrap()
        })
    });
    let cgroups = Arc::new(
        clusvc_agent::resources::sys::cgroup::Cgroups::detect().expect("cgroup2 is writable"),
    );
    g.bench_function("bare bash -c true in its own cgroup", |b| {
        let cmd = Command::new(["bash", "-c", "true"]);
        let ns = Namespaces {
            cgroups: Some(cgroups.clone()),
            ..Namespaces::default()
        };
        b.iter(|| {
            rt.block_on(process::run(
                &cmd,
                &ns,
                Duration::from_secs(10),
                Duration::from_secs(1),
            ))
            .unwrap()
        })
    });
    g.bench_function("seed script status action", |b| {
        let app = spec.resources().last().unwrap();
        b.iter(|| {
            let r = rt.block_on(exec.act(&svc, app, Verb::Status));
            assert!(r.ok, "{r:?}");
        })
    });
    g.finish();

    let start = rt.block_on(exec.start(&svc, &spec));
    assert!(start.ok(), "{start:?}");
    for s in &start.steps {
        eprintln!(
            "{:>8.2} ms  {} {}",
            s.elapsed.as_secs_f64() * 1e3,
            s.verb.as_str(),
            s.resource
        );
    }
    let mut g = c.benchmark_group("native_status");
    for r in spec.resources().take(4) {
        let label = r.label();
        let name = label.split(' ').next().unwrap().to_string();
        g.bench_function(name, |b| {
            b.iter(|| {
                let rep = rt.block_on(exec.act(&svc, r, Verb::Status));
                assert!(rep.ok, "{rep:?}");
            })
        });
    }
    g.finish();
    let stop = rt.block_on(exec.stop(&svc, &spec));
    assert!(stop.ok(), "{stop:?}");

    let mut g = c.benchmark_group("service");
    g.sample_size(20);
    g.bench_function("full start of six kinds", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let r = rt.block_on(exec.start(&svc, &spec));
                total += t.elapsed();
                assert!(r.ok(), "{r:?}");
                let r = rt.block_on(exec.stop(&svc, &spec));
                assert!(r.ok(), "{r:?}");
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
