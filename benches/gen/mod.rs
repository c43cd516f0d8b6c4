//! Generates the shapes the scale benchmarks plan: members, six-resource
//! services (their application a script, one shared file) in files of
//! 1,000, and the observed state of all of them running round-robin with
//! member 0 lost.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clusvc_core::model::{
    Object, ObservedMember, ObservedService, ObservedState, PlacementReason, ResourceStatus,
    ServiceState, Timestamp,
};

/// The binary under test: this build's, or `$CLUSVC_BIN` (to compare
/// two builds).
pub fn bin() -> String {
    std::env::var("CLUSVC_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_clusvc").to_string())
}

pub fn member(i: usize) -> String {
    format!("node{i:03}")
}

/// Manifests of `members` members and `services` services into `dir`
/// (members.yaml, then services-NNN.yaml of 1,000 each); returns the
/// directory.
pub fn manifests(dir: &Path, members: usize, services: usize, script: &Path) -> PathBuf {
    let out = dir.join(format!("m{members}x{services}"));
    std::fs::create_dir_all(&out).unwrap();
    let mut text = String::new();
    for m in 0..members {
        let _ = write!(
            text,
            "---\napiVersion: clusvc/v1\nkind: Member\nmetadata:\n  name: {}\nspec:\n  address: 10.0.{}.{}\n",
            member(m),
            m / 250,
            m % 250 + 1
        );
    }
    std::fs::write(out.join("members.yaml"), &text).unwrap();
    for (f, first) in (0..services).step_by(1_000).enumerate() {
        let mut text = String::new();
        for i in first..(first + 1_000).min(services) {
            let (a, b) = ((i / 250) % 250, i % 250 + 1);
            let _ = write!(
                text,
                "---
apiVersion: clusvc/v1
kind: Service
metadata:
  name: svc{i:06}
spec:
  checkInterval: 60s
  devices:
    - path: /dev/vg{i}/lv0
  filesystems:
    - device: /dev/vg{i}/lv0
      mountPoint: /srv/svc{i}
      fsType: ext4
      options: [noatime]
  nfsExports:
    - path: /srv/svc{i}
      clients: [10.0.0.0/8]
      options: [rw]
  ipAddresses:
    - address: 10.{}.{a}.{b}/16
  sambaShares:
    - name: share{i}
      path: /srv/svc{i}
  applications:
    - script: {}
",
                100 + i / 62_500,
                script.display()
            );
        }
        std::fs::write(out.join(format!("services-{f:03}.yaml")), text).unwrap();
    }
    out
}

/// `n` services named PREFIX0.., each `spec` (indented under `spec:`), in
/// files of `per_file` (a file has a size and event budget).
pub fn service_files(dir: &Path, n: usize, per_file: usize, spec: &str, prefix: &str) {
    std::fs::create_dir_all(dir).unwrap();
    for (f, first) in (0..n).step_by(per_file).enumerate() {
        let mut text = String::new();
        for i in first..(first + per_file).min(n) {
            let _ = write!(
                text,
                "---\napiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: {prefix}{i}\nspec:\n{spec}"
            );
        }
        std::fs::write(dir.join(format!("services-{f:03}.yaml")), text).unwrap();
    }
}

/// The observed state of every service running round-robin, with each
/// resource's status, and member 0 dead (its lease expired a minute
/// before `now`).
pub fn observed(dir: &Path, manifests: &Path, members: usize) -> PathBuf {
    let loaded = clusvc_manifest::load_paths(
        &[manifests.to_path_buf()],
        clusvc_manifest::Options {
            check_scripts: false,
            ..Default::default()
        },
    )
    .expect("the generated manifests are valid");
    let mut obs = ObservedState::default();
    for m in 0..members {
        obs.members.insert(member(m), ObservedMember::default());
    }
    let dead = obs.members.get_mut(&member(0)).unwrap();
    dead.alive = false;
    dead.lease_expired_at = Some(Timestamp::from_millis(NOW_MS - 60_000));
    for (i, o) in loaded.desired.objects().enumerate() {
        if let Object::Service(s) = o {
            let resources = s
                .spec
                .resources()
                .map(|r| (r.label(), ResourceStatus::Ok))
                .collect();
            obs.services.insert(
                s.metadata.name.clone(),
                ObservedService {
                    id: i as u64,
                    member: Some(member(i % members)),
                    state: ServiceState::Running,
                    resources,
                    placement_reason: Some(PlacementReason::Initial),
                    ..ObservedService::default()
                },
            );
        }
    }
    let path = dir.join(format!("observed-{members}.json"));
    std::fs::write(&path, serde_json::to_vec(&obs).unwrap()).unwrap();
    path
}

pub const NOW_MS: u64 = 1_800_000_000_000;

/// A trivial application script (root's, 0755) in `dir`.
pub fn script(dir: &Path) -> PathBuf {
    let script = dir.join("app_script");
    std::fs::write(
        &script,
        "#!/bin/bash\napp() { case $1 in start|stop|status) return 0;; esac; }\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script
}

/// `NOW_MS` as RFC 3339 (`plan --now`).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(NOW_MS))
        .to_string()
}
