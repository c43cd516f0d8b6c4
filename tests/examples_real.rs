//! The shipped examples run for real through the executor: the seed sample
//! from its manifest, and the six-kind file server with its device, mount
//! point and interface mapped onto this machine's test resources.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clusvc_agent::events::Recorder;
use clusvc_agent::exec::{Executor, ServiceRef};
use clusvc_agent::resources::Host;
use clusvc_manifest::{self as manifest, Input, Options};

fn example(dir: &str, file: &str, replace: &[(&str, &str)]) -> clusvc_core::model::Service {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(dir);
    let mut text = std::fs::read_to_string(dir.join(file)).unwrap();
    for (from, to) in replace {
        text = text.replace(from, to);
    }
    let input = Input {
        name: file.to_string(),
        text,
        dir: Some(dir),
    };
    let loaded = manifest::load(&[input], Options::default()).unwrap();
    loaded.desired.services().values().next().unwrap().clone()
}

#[tokio::test]
async fn the_seed_sample_manifest_runs() {
    let dir = tempfile::tempdir().unwrap();
    let service = example("seed-sample", "userapp.yaml", &[]);
    let mut host = Host::new("node1");
    host.state_dir = dir.path().to_path_buf();
    let events = Arc::new(Recorder::default());
    let exec = Executor::new(Arc::new(host), events.clone());
    let svc = ServiceRef {
        name: service.metadata.name.clone(),
        id: 0,
        timeout: service.spec.timeout.get(),
    };
    assert_eq!(svc.timeout, Duration::from_secs(60));
    assert!(exec.start(&svc, &service.spec).await.ok());
    assert!(exec.check(&svc, &service.spec).await.ok());
    assert!(exec.stop(&svc, &service.spec).await.ok());
    let msgs: Vec<String> = events.events().into_iter().map(|e| e.message).collect();
    assert!(
        msgs.contains(&"Running test start script for service userapp".to_string()),
        "{msgs:?}"
    );
    assert!(msgs.contains(&"Running test stop script for service userapp".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nfs_samba_ip_example_runs_all_six_kinds() {
    require_root!();
    std::fs::create_dir_all("/var/lib/nfs").unwrap();
    if !Path::new("/var/lib/nfs/etab").exists() {
        std::fs::write("/var/lib/nfs/etab", "").unwrap();
    }
    let member = common::Netns::new("em");
    let client = common::Netns::new("ec");
    // The example names interface eth1 and the 192.0.2.0/24 subnet.
    common::veth(
        &member,
        "eth1",
        "192.0.2.1/24",
        &client,
        "c0",
        "192.0.2.2/24",
    );
    let mnt_ns = common::MountNs::new();
    let disk = common::Loop::ext4_with_dirs(16, &["projects"]);
    let smbd = common::Smbd::start();
    let dir = tempfile::tempdir().unwrap();
    let srv = dir.path().join("fileserver").display().to_string();
    let service = example(
        "nfs-samba-ip",
        "cluster.yaml",
        &[("/dev/loop7", &disk.dev), ("/srv/fileserver", &srv)],
    );
    let mut host = Host::new("nas1")
        .with_network_namespace(member.path())
        .with_mount_namespace_of(mnt_ns.pid());
    host.state_dir = dir.path().join("state");
    host.smb_conf = smbd.conf();
    host.samba_shares = smbd.shares();
    let events = Arc::new(Recorder::default());
    let exec = Executor::new(Arc::new(host), events.clone());
    let svc = ServiceRef {
        name: "fileserver".into(),
        id: 0,
        timeout: service.spec.timeout.get(),
    };
    let start = exec.start(&svc, &service.spec).await;
    assert!(start.ok(), "{start:#?}");
    let kinds: Vec<&str> = start
        .steps
        .iter()
        .map(|s| s.resource.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "device",
            "filesystem",
            "nfs",
            "ip",
            "ip",
            "samba",
            "application"
        ]
    );
    assert!(mnt_ns.is_mounted(&srv));
    assert!(member.has_addr("192.0.2.130") && member.has_addr("192.0.2.131"));
    assert!(smbd.list().contains(&"projects".to_string()));
    let ping = client
        .cmd(&["ping", "-c", "1", "-W", "2", "192.0.2.130"])
        .output()
        .unwrap();
    assert!(ping.status.success(), "floating IP does not answer");
    assert!(
        events
            .events()
            .iter()
            .any(|e| e.message == "fileserver fileserver: start on nas1"),
        "the example script did not run"
    );
    assert!(exec.check(&svc, &service.spec).await.ok());
    let stop = exec.stop(&svc, &service.spec).await;
    assert!(stop.ok(), "{stop:#?}");
    assert!(!mnt_ns.is_mounted(&srv));
    assert!(!member.has_addr("192.0.2.130"));
    assert!(!smbd.list().contains(&"projects".to_string()));
    assert!(disk.detach());
}
