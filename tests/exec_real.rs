//! Real resources on a member, as root: a loop device, ext4 mounted in a
//! private mount namespace, an export in the kernel export table, floating
//! IPs in a member network namespace reached from another, a Samba share
//! served by a real smbd, nfs-ganesha, OCF agents, and scripts. Every test
//! builds its own namespaces and cleans up.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clusvc_agent::events::Recorder;
use clusvc_agent::exec::{Executor, RunReport, ServiceRef};
use clusvc_agent::resources::Host;
use clusvc_core::model::{
    Application, Filesystem, IpAddress, NfsExport, NfsServer, SambaShare, ScalarString, ServiceSpec,
};
use common::{Ganesha, Loop, MountNs, Netns, Smbd, spec};

/// A member (netns + mount namespace) and a client netns on one link:
/// member 192.0.2.1/24 on `m0`, client 192.0.2.2/24 on `c0`.
struct Site {
    member: Netns,
    client: Netns,
    mnt: MountNs,
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Self {
        let member = Netns::new("m");
        let client = Netns::new("c");
        common::veth(&member, "m0", "192.0.2.1/24", &client, "c0", "192.0.2.2/24");
        Self {
            member,
            client,
            mnt: MountNs::new(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn host(&self) -> Host {
        let mut host = Host::new("node1")
            .with_network_namespace(self.member.path())
            .with_mount_namespace_of(self.mnt.pid());
        host.state_dir = self.dir.path().join("state");
        host.ha_rsctmp = self.dir.path().join("rsctmp");
        host.kill_grace = Duration::from_secs(1);
        host
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
}

fn executor(host: Host) -> (Executor, Arc<Recorder>) {
    let events = Arc::new(Recorder::default());
    (Executor::new(Arc::new(host), events.clone()), events)
}

fn svc(name: &str) -> ServiceRef {
    ServiceRef {
        name: name.into(),
        id: 5,
        timeout: Duration::from_secs(30),
    }
}

fn script(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/bash\n{body}")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.display().to_string()
}

fn order(report: &RunReport) -> Vec<String> {
    report
        .steps
        .iter()
        .map(|s| {
            format!(
                "{}{} {}",
                if s.rollback { "rollback " } else { "" },
                s.verb.as_str(),
                s.resource
            )
        })
        .collect()
}

fn etab_has(path: &str) -> bool {
    std::fs::read_to_string("/var/lib/nfs/etab")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split('\t').next() == Some(path))
}

fn ensure_etab() {
    std::fs::create_dir_all("/var/lib/nfs").unwrap();
    if !Path::new("/var/lib/nfs/etab").exists() {
        std::fs::write("/var/lib/nfs/etab", "").unwrap();
    }
}

fn app(script: String) -> Application {
    spec::script(script)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_kinds_start_in_order_serve_and_stop_leaving_nothing() {
    require_root!();
    ensure_etab();
    let site = Site::new();
    let disk = Loop::ext4(16);
    let smbd = Smbd::start();
    let mut host = site.host();
    host.smb_conf = smbd.conf();
    host.samba_shares = smbd.shares();
    let (exec, events) = executor(host);

    let mnt = site.path("srv");
    let mnt_s = mnt.display().to_string();
    let calls = site.path("calls");
    let pidfile = site.path("http.pid");
    let share = common::unique("sh");
    let rec = script(
        site.dir.path(),
        "content_files",
        &format!(
            "files() {{ echo \"files $1\" >> {calls}; [ \"$1\" = start ] && echo served-from-ext4 > {mnt}/hello.txt; return $SUCCESS; }}\n",
            calls = calls.display(),
            mnt = mnt_s
        ),
    );
    let web = script(
        site.dir.path(),
        "web_http",
        &format!(
            r#"http() {{
    echo "http $1" >> {calls}
    case $1 in
    start)
        cd {mnt} && python3 -m http.server --bind 192.0.2.100 8080 >/dev/null 2>&1 &
        echo $! > {pid}
        for i in $(seq 100); do (echo > /dev/tcp/192.0.2.100/8080) 2>/dev/null && return $SUCCESS; sleep 0.05; done
        return $FAIL ;;
    stop)
        [ -f {pid} ] && kill $(cat {pid}) 2>/dev/null; rm -f {pid}; return $SUCCESS ;;
    status)
        [ -f {pid} ] && kill -0 $(cat {pid}) 2>/dev/null ;;
    esac
}}
"#,
            calls = calls.display(),
            mnt = mnt_s,
            pid = pidfile.display()
        ),
    );
    let spec = ServiceSpec {
        devices: vec![spec::device(&disk.dev)],
        filesystems: vec![Filesystem {
            device: disk.dev.clone(),
            mount_point: mnt_s.clone(),
            fs_type: Some("ext4".into()),
            options: vec!["noatime".into()],
            fsck: true,
            force_unmount: true,
        }],
        nfs_exports: vec![NfsExport {
            path: mnt_s.clone(),
            clients: vec!["192.0.2.0/24".into()],
            options: vec!["rw".into(), "sync".into(), "no_subtree_check".into()],
            server: NfsServer::Kernel,
        }],
        ip_addresses: vec![
            IpAddress {
                address: "192.0.2.100/24".into(),
                interface: None,
            },
            IpAddress {
                address: "192.0.2.101/24".into(),
                interface: Some("m0".into()),
            },
        ],
        samba_shares: vec![SambaShare {
            name: share.clone(),
            path: mnt_s.clone(),
            parameters: [("read only".to_string(), ScalarString("no".into()))]
                .into_iter()
                .collect(),
        }],
        applications: vec![app(rec), app(web)],
        ..ServiceSpec::default()
    };
    let s = svc("fileserver");
    let start = exec.start(&s, &spec).await;
    assert!(start.ok(), "{start:#?}");
    assert_eq!(
        order(&start),
        [
            format!("start device {}", disk.dev),
            format!("start filesystem {mnt_s}"),
            format!("start nfs export {mnt_s}"),
            "start ip 192.0.2.100/24".to_string(),
            "start ip 192.0.2.101/24".to_string(),
            format!("start samba share {share}"),
            "start application content_files".to_string(),
            "start application web_http".to_string(),
        ]
    );
    assert!(
        site.mnt.is_mounted(&mnt_s),
        "not mounted in the member's namespace"
    );
    assert!(
        !std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&mnt_s),
        "the mount leaked into the test's namespace"
    );
    assert!(etab_has(&mnt_s));
    assert!(site.member.has_addr("192.0.2.100") && site.member.has_addr("192.0.2.101"));
    let body = site
        .client
        .cmd(&["curl", "-s", "-m", "5", "http://192.0.2.100:8080/hello.txt"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&body.stdout), "served-from-ext4\n");
    assert!(smbd.list().contains(&share), "{:?}", smbd.list());
    let check = exec.check(&s, &spec).await;
    assert!(check.ok(), "{check:#?}");
    // Command output is captured into the service's events.
    assert!(
        events
            .events()
            .iter()
            .any(|e| e.message.starts_with("fsck: ") && e.message.contains(&disk.dev)),
        "{:#?}",
        events.events()
    );

    let stop = exec.stop(&s, &spec).await;
    assert!(stop.ok(), "{stop:#?}");
    // The seed's stop table, not the reverse of the start order: samba
    // shares stop after NFS exports although they start after IP addresses.
    let table = [
        "application",
        "ip",
        "nfs export",
        "samba share",
        "filesystem",
        "device",
    ];
    let mut expected: Vec<(usize, std::cmp::Reverse<usize>, String)> = order(&start)
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let line = l.replacen("start", "stop", 1);
            let kind = table
                .iter()
                .position(|k| line.starts_with(&format!("stop {k} ")))
                .unwrap();
            (kind, std::cmp::Reverse(i), line)
        })
        .collect();
    expected.sort();
    let expected: Vec<String> = expected.into_iter().map(|(_, _, l)| l).collect();
    assert_eq!(order(&stop), expected);
    let pos = |prefix: &str| order(&stop).iter().position(|l| l.starts_with(prefix));
    assert!(pos("stop nfs export") < pos("stop samba share"));
    assert!(pos("stop ip") < pos("stop nfs export"));
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        "files start\nhttp start\nfiles status\nhttp status\nhttp stop\nfiles stop\n"
    );
    assert!(!site.mnt.is_mounted(&mnt_s), "mount left behind");
    assert!(!etab_has(&mnt_s), "export left behind");
    assert!(!site.member.has_addr("192.0.2.100") && !site.member.has_addr("192.0.2.101"));
    assert!(!smbd.list().contains(&share), "share left behind");
    assert!(disk.detach(), "loop device still busy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ganesha_export_is_served_then_gone() {
    require_root!();
    let site = Site::new();
    let ganesha = Ganesha::start(&site.member);
    let mut host = site.host();
    host.ganesha_exports = ganesha.exports();
    host.ganesha_pid = ganesha.pid_file();
    let (exec, _) = executor(host);
    let export = site.path("export");
    std::fs::create_dir_all(&export).unwrap();
    std::fs::write(export.join("visible.txt"), "x").unwrap();
    let spec = ServiceSpec {
        nfs_exports: vec![NfsExport {
            path: export.display().to_string(),
            clients: vec!["192.0.2.0/24".into()],
            options: vec!["rw".into()],
            server: NfsServer::Ganesha,
        }],
        ..ServiceSpec::default()
    };
    let url = format!("nfs://192.0.2.1{}?version=4", export.display());
    let listed = || {
        let out = site.client.cmd(&["nfs-ls", &url]).output().unwrap();
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("visible.txt")
    };
    assert!(!listed());
    let s = svc("nfs");
    assert!(exec.start(&s, &spec).await.ok());
    assert!(exec.check(&s, &spec).await.ok());
    assert!(
        common::wait_until(Duration::from_secs(10), listed),
        "export not served"
    );
    assert!(exec.stop(&s, &spec).await.ok());
    assert!(exec.check(&s, &spec).await.failed.is_some());
    assert!(
        common::wait_until(Duration::from_secs(10), || !listed()),
        "export still served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocf_ipaddr2_and_filesystem_agents_manage_real_resources() {
    require_root!();
    let site = Site::new();
    let disk = Loop::ext4(16);
    let (exec, _) = executor(site.host());
    let mnt = site.path("ocfmnt").display().to_string();
    std::fs::create_dir_all(&mnt).unwrap();
    let params = |kv: &[(&str, &str)]| {
        kv.iter()
            .map(|(k, v)| (k.to_string(), ScalarString(v.to_string())))
            .collect()
    };
    let spec = ServiceSpec {
        applications: vec![
            Application {
                ocf: Some("heartbeat:IPaddr2".into()),
                parameters: params(&[("ip", "192.0.2.150"), ("cidr_netmask", "24"), ("nic", "m0")]),
                ..Application::default()
            },
            Application {
                ocf: Some("heartbeat:Filesystem".into()),
                parameters: params(&[
                    ("device", &disk.dev),
                    ("directory", &mnt),
                    ("fstype", "ext4"),
                ]),
                ..Application::default()
            },
        ],
        ..ServiceSpec::default()
    };
    let s = svc("ocf");
    let start = exec.start(&s, &spec).await;
    assert!(start.ok(), "{start:#?}");
    assert!(site.member.has_addr("192.0.2.150"));
    assert!(site.mnt.is_mounted(&mnt));
    assert!(exec.check(&s, &spec).await.ok());
    let stop = exec.stop(&s, &spec).await;
    assert!(stop.ok(), "{stop:#?}");
    assert!(!site.member.has_addr("192.0.2.150"));
    assert!(!site.mnt.is_mounted(&mnt));
    let check = exec.check(&s, &spec).await;
    assert!(
        check
            .reason()
            .unwrap()
            .starts_with("heartbeat:IPaddr2 monitor exited 7 (OCF_NOT_RUNNING)"),
        "{check:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_check_stops_at_the_first_failure() {
    require_root!();
    let site = Site::new();
    let disk = Loop::ext4(16);
    let (exec, _) = executor(site.host());
    let mnt = site.path("data").display().to_string();
    let calls = site.path("status-calls");
    let rec = |name: &str| {
        script(
            site.dir.path(),
            &format!("app_{name}"),
            &format!(
                "{name}() {{ echo \"{name} $1\" >> {}; return $SUCCESS; }}\n",
                calls.display()
            ),
        )
    };
    let spec = ServiceSpec {
        devices: vec![spec::device(&disk.dev)],
        filesystems: vec![spec::ext4(&disk.dev, &mnt)],
        applications: vec![app(rec("one")), app(rec("two"))],
        ..ServiceSpec::default()
    };
    let s = svc("data");
    assert!(exec.start(&s, &spec).await.ok());
    assert!(exec.check(&s, &spec).await.ok());
    // Break the filesystem behind clusvc's back.
    assert!(site.mnt.run(&["umount", &mnt]));
    std::fs::write(&calls, "").unwrap();
    let check = exec.check(&s, &spec).await;
    assert_eq!(check.failed, Some(1));
    assert_eq!(
        order(&check),
        [
            format!("status device {}", disk.dev),
            format!("status filesystem {mnt}")
        ]
    );
    assert_eq!(
        check.reason(),
        Some(format!("{mnt} is not mounted").as_str())
    );
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        "",
        "applications were checked"
    );
    assert!(exec.stop(&s, &spec).await.ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_start_in_the_middle_is_rolled_back_in_stop_order() {
    require_root!();
    ensure_etab();
    let site = Site::new();
    let disk = Loop::ext4(16);
    // The floating address already answers from the client: the start must refuse it.
    common::sh(&[
        "ip",
        "-n",
        &site.client.name,
        "addr",
        "add",
        "192.0.2.77/24",
        "dev",
        "c0",
    ]);
    let (exec, _) = executor(site.host());
    let mnt = site.path("rollback").display().to_string();
    let spec = ServiceSpec {
        devices: vec![spec::device(&disk.dev)],
        filesystems: vec![spec::ext4(&disk.dev, &mnt)],
        nfs_exports: vec![NfsExport {
            path: mnt.clone(),
            clients: vec!["192.0.2.0/24".into()],
            options: vec!["ro".into()],
            server: NfsServer::Kernel,
        }],
        ip_addresses: vec![IpAddress {
            address: "192.0.2.77/24".into(),
            interface: None,
        }],
        applications: vec![app(script(
            site.dir.path(),
            "never_run",
            "run() { exit 1; }\n",
        ))],
        ..ServiceSpec::default()
    };
    let report = exec.start(&svc("rb"), &spec).await;
    assert_eq!(report.failed, Some(3));
    let reason = report.reason().unwrap();
    assert!(
        reason.starts_with("refused: 192.0.2.77 already answers on m0 from "),
        "{reason}"
    );
    assert_eq!(
        order(&report),
        [
            format!("start device {}", disk.dev),
            format!("start filesystem {mnt}"),
            format!("start nfs export {mnt}"),
            "start ip 192.0.2.77/24".to_string(),
            // The address was refused before it was added: nothing to undo.
            format!("rollback stop nfs export {mnt}"),
            format!("rollback stop filesystem {mnt}"),
            format!("rollback stop device {}", disk.dev),
        ]
    );
    assert!(!site.mnt.is_mounted(&mnt));
    assert!(!etab_has(&mnt));
    assert!(!site.member.has_addr("192.0.2.77"));
    assert!(disk.detach());
}
