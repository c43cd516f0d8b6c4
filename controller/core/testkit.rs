//! Synthetic clusters for benchmarks and tests: a sentence per scenario
//! (`Cluster::synthetic(16, 1_000).with_dead_member(0)`), no YAML.

use std::collections::BTreeMap;

use crate::model::{
    Application, DesiredState, Device, Filesystem, IpAddress, Member, NfsExport, Object,
    ObservedMember, ObservedService, ObservedState, PlacementReason, ResourceStatus, SambaShare,
    Service, ServiceSpec, ServiceState, Timestamp,
};

/// A desired and an observed state that agree: every service runs.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Desired state.
    pub desired: DesiredState,
    /// Observed state.
    pub observed: ObservedState,
    /// The time the cluster is observed at.
    pub now: Timestamp,
}

/// The member name for index `i`.
pub fn member_name(i: usize) -> String {
    format!("node{i:03}")
}

/// A service with one resource of each of the six kinds.
pub fn six_resource_spec(i: usize) -> ServiceSpec {
    let (a, b) = ((i / 250) % 250, i % 250 + 1);
    ServiceSpec {
        devices: vec![Device {
            path: format!("/dev/vg{i}/lv0"),
            activate: vec![],
            deactivate: vec![],
        }],
        filesystems: vec![Filesystem {
            device: format!("/dev/vg{i}/lv0"),
            mount_point: format!("/srv/svc{i}"),
            fs_type: Some("ext4".into()),
            options: vec!["noatime".into()],
            fsck: false,
            force_unmount: false,
        }],
        nfs_exports: vec![NfsExport {
            path: format!("/srv/svc{i}"),
            clients: vec!["10.0.0.0/8".into()],
            options: vec!["rw".into()],
            server: Default::default(),
        }],
        ip_addresses: vec![IpAddress {
            address: format!("10.{}.{a}.{b}/16", 100 + i / 62_500),
            interface: None,
        }],
        samba_shares: vec![SambaShare {
            name: format!("share{i}"),
            path: format!("/srv/svc{i}"),
            parameters: BTreeMap::new(),
        }],
        applications: vec![Application {
            ocf: Some(format!("heartbeat:app{i}")),
            ..Application::default()
        }],
        ..ServiceSpec::default()
    }
}

impl Cluster {
    /// `members` members and `services` six-resource services, all running,
    /// spread round-robin, each observed with the spec it runs.
    pub fn synthetic(members: usize, services: usize) -> Self {
        let mut objects = Vec::with_capacity(members + services);
        let mut observed = ObservedState::default();
        for m in 0..members {
            objects.push(Object::Member(Member::new(member_name(m))));
            observed
                .members
                .insert(member_name(m), ObservedMember::default());
        }
        for s in 0..services {
            let name = format!("svc{s:05}");
            let spec = six_resource_spec(s);
            let resources = spec
                .resources()
                .map(|r| (r.label(), ResourceStatus::Ok))
                .collect();
            observed.services.insert(
                name.clone(),
                ObservedService {
                    id: s as u64,
                    member: Some(member_name(s % members.max(1))),
                    state: ServiceState::Running,
                    resources,
                    started_with: Some(spec.clone()),
                    placement_reason: Some(PlacementReason::Initial),
                    ..ObservedService::default()
                },
            );
            let mut svc = Service::new(name);
            svc.spec = spec;
            objects.push(Object::Service(svc));
        }
        let desired = DesiredState::from_objects(objects).expect("synthetic cluster is valid");
        Self {
            desired,
            observed,
            now: Timestamp::from_millis(1_800_000_000_000),
        }
    }

    /// Marks member `i` dead, its lease expired a minute ago.
    pub fn with_dead_member(mut self, i: usize) -> Self {
        let at = Timestamp::from_millis(self.now.as_millis() - 60_000);
        self.observed.fail_member(&member_name(i), at);
        self
    }
}
