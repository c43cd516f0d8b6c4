//! Resource kinds and the fixed order they start and stop in (SPEC §1).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::manifest::{
    Application, Device, Filesystem, IpAddress, NfsExport, SambaShare, ServiceSpec,
};

/// A resource kind. The declaration order is the start order. The stop
/// order is its own column of the seed's table ([`Kind::STOP_ORDER`]), not
/// the reverse of the start order: samba shares stop after NFS exports,
/// although they start after IP addresses. Never configurable.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    /// Block devices and volumes.
    Device,
    /// Filesystems mounted for the service.
    Filesystem,
    /// NFS exports.
    NfsExport,
    /// IP addresses.
    Ip,
    /// Samba shares.
    SambaShare,
    /// User scripts and OCF agents.
    Application,
}

impl Kind {
    /// All kinds in start order.
    pub const START_ORDER: [Kind; 6] = [
        Kind::Device,
        Kind::Filesystem,
        Kind::NfsExport,
        Kind::Ip,
        Kind::SambaShare,
        Kind::Application,
    ];

    /// All kinds in stop order: the seed's (`clusvcmgrd`) stop table.
    pub const STOP_ORDER: [Kind; 6] = [
        Kind::Application,
        Kind::Ip,
        Kind::NfsExport,
        Kind::SambaShare,
        Kind::Filesystem,
        Kind::Device,
    ];

    /// Position in the start order (0 first).
    pub fn start_position(self) -> usize {
        Self::START_ORDER
            .iter()
            .position(|k| *k == self)
            .expect("every kind is in the start table")
    }

    /// Position in the stop order (0 first).
    pub fn stop_position(self) -> usize {
        Self::STOP_ORDER
            .iter()
            .position(|k| *k == self)
            .expect("every kind is in the stop table")
    }

    /// The word used in plan text (`start ip 192.0.2.100/24`).
    pub fn word(self) -> &'static str {
        match self {
            Kind::Device => "device",
            Kind::Filesystem => "filesystem",
            Kind::NfsExport => "nfs export",
            Kind::Ip => "ip",
            Kind::SambaShare => "samba share",
            Kind::Application => "application",
        }
    }

    /// The manifest field holding resources of this kind.
    pub fn field(self) -> &'static str {
        match self {
            Kind::Device => "devices",
            Kind::Filesystem => "filesystems",
            Kind::NfsExport => "nfsExports",
            Kind::Ip => "ipAddresses",
            Kind::SambaShare => "sambaShares",
            Kind::Application => "applications",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// A borrowed resource of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceRef<'a> {
    /// A device.
    Device(&'a Device),
    /// A filesystem.
    Filesystem(&'a Filesystem),
    /// An NFS export.
    NfsExport(&'a NfsExport),
    /// An IP address.
    Ip(&'a IpAddress),
    /// A Samba share.
    SambaShare(&'a SambaShare),
    /// An application.
    Application(&'a Application),
}

/// An owned resource, as plan steps carry it to the executor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Resource {
    /// A device.
    Device(Device),
    /// A filesystem.
    Filesystem(Filesystem),
    /// An NFS export.
    NfsExport(NfsExport),
    /// An IP address.
    Ip(IpAddress),
    /// A Samba share.
    SambaShare(SambaShare),
    /// An application.
    Application(Application),
}

impl ResourceRef<'_> {
    /// Its kind.
    pub fn kind(self) -> Kind {
        match self {
            ResourceRef::Device(_) => Kind::Device,
            ResourceRef::Filesystem(_) => Kind::Filesystem,
            ResourceRef::NfsExport(_) => Kind::NfsExport,
            ResourceRef::Ip(_) => Kind::Ip,
            ResourceRef::SambaShare(_) => Kind::SambaShare,
            ResourceRef::Application(_) => Kind::Application,
        }
    }

    /// What identifies it within its kind: path, mount point, address, share
    /// or script name.
    pub fn ident(self) -> String {
        match self {
            ResourceRef::Device(d) => d.path.clone(),
            ResourceRef::Filesystem(f) => f.mount_point.clone(),
            ResourceRef::NfsExport(e) => e.path.clone(),
            ResourceRef::Ip(i) => i.address.clone(),
            ResourceRef::SambaShare(s) => s.name.clone(),
            ResourceRef::Application(a) => application_ident(a),
        }
    }

    /// `kind ident`, unique within a service: `ip 192.0.2.100/24`.
    pub fn label(self) -> String {
        format!("{} {}", self.kind().word(), self.ident())
    }

    /// An owned copy.
    pub fn to_owned(self) -> Resource {
        match self {
            ResourceRef::Device(d) => Resource::Device(d.clone()),
            ResourceRef::Filesystem(f) => Resource::Filesystem(f.clone()),
            ResourceRef::NfsExport(e) => Resource::NfsExport(e.clone()),
            ResourceRef::Ip(i) => Resource::Ip(i.clone()),
            ResourceRef::SambaShare(s) => Resource::SambaShare(s.clone()),
            ResourceRef::Application(a) => Resource::Application(a.clone()),
        }
    }
}

impl Resource {
    /// A borrowed view.
    pub fn as_ref(&self) -> ResourceRef<'_> {
        match self {
            Resource::Device(d) => ResourceRef::Device(d),
            Resource::Filesystem(f) => ResourceRef::Filesystem(f),
            Resource::NfsExport(e) => ResourceRef::NfsExport(e),
            Resource::Ip(i) => ResourceRef::Ip(i),
            Resource::SambaShare(s) => ResourceRef::SambaShare(s),
            Resource::Application(a) => ResourceRef::Application(a),
        }
    }

    /// Its kind.
    pub fn kind(&self) -> Kind {
        self.as_ref().kind()
    }

    /// `kind ident`.
    pub fn label(&self) -> String {
        self.as_ref().label()
    }
}

/// Orders resources given in start order (as a service lists them) for
/// stopping: kinds by the stop table, several of a kind in reverse of the
/// order given.
pub fn in_stop_order<'a>(
    start_order: impl Iterator<Item = ResourceRef<'a>>,
) -> impl Iterator<Item = ResourceRef<'a>> + Clone {
    let mut v: Vec<(usize, ResourceRef<'a>)> = start_order.enumerate().collect();
    v.sort_by_key(|(i, r)| (r.kind().stop_position(), std::cmp::Reverse(*i)));
    v.into_iter().map(|(_, r)| r)
}

/// The application's display name: the script's file name, `dir/` for a
/// directory, `ocf:provider:type` for an agent.
fn application_ident(a: &Application) -> String {
    if let Some(script) = &a.script {
        base_name(script).to_string()
    } else if let Some(dir) = &a.directory {
        format!("{}/", base_name(dir.trim_end_matches('/')))
    } else if let Some(ocf) = &a.ocf {
        format!("ocf:{ocf}")
    } else {
        "(none)".to_string()
    }
}

/// The last path component.
pub fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

impl ServiceSpec {
    /// The scripts, script directories and OCF agents (`ocf:PROVIDER:TYPE`)
    /// its applications run: what a member must have to take it.
    pub fn scripts(&self) -> impl Iterator<Item = String> + '_ {
        self.applications.iter().filter_map(|a| {
            a.script
                .clone()
                .or_else(|| a.directory.clone())
                .or_else(|| a.ocf.as_ref().map(|o| format!("ocf:{o}")))
        })
    }

    /// Every resource in start order: kinds in the fixed order, several of a
    /// kind in manifest order.
    pub fn resources(&self) -> impl DoubleEndedIterator<Item = ResourceRef<'_>> + Clone {
        self.devices
            .iter()
            .map(ResourceRef::Device)
            .chain(self.filesystems.iter().map(ResourceRef::Filesystem))
            .chain(self.nfs_exports.iter().map(ResourceRef::NfsExport))
            .chain(self.ip_addresses.iter().map(ResourceRef::Ip))
            .chain(self.samba_shares.iter().map(ResourceRef::SambaShare))
            .chain(self.applications.iter().map(ResourceRef::Application))
    }

    /// Every resource in stop order: kinds in the stop table's order,
    /// several of a kind in reverse manifest order.
    pub fn resources_in_stop_order(&self) -> impl Iterator<Item = ResourceRef<'_>> + Clone {
        in_stop_order(self.resources())
    }

    /// How many resources the service has.
    pub fn resource_count(&self) -> usize {
        self.devices.len()
            + self.filesystems.len()
            + self.nfs_exports.len()
            + self.ip_addresses.len()
            + self.samba_shares.len()
            + self.applications.len()
    }

    /// The manifest field path of the resource at start position `i`
    /// (`spec.ipAddresses[1]`).
    pub fn resource_path(&self, mut i: usize) -> String {
        let lens = [
            self.devices.len(),
            self.filesystems.len(),
            self.nfs_exports.len(),
            self.ip_addresses.len(),
            self.samba_shares.len(),
            self.applications.len(),
        ];
        for (kind, len) in Kind::START_ORDER.iter().zip(lens) {
            if i < len {
                return format!("spec.{}[{i}]", kind.field());
            }
            i -= len;
        }
        "spec".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_follow_the_fixed_start_order() {
        let spec = ServiceSpec {
            applications: vec![Application {
                script: Some("/x/new_application".into()),
                ..Application::default()
            }],
            ip_addresses: vec![IpAddress {
                address: "192.0.2.100/24".into(),
                interface: None,
            }],
            devices: vec![Device {
                path: "/dev/loop7".into(),
                activate: vec![],
                deactivate: vec![],
            }],
            ..ServiceSpec::default()
        };
        let labels: Vec<_> = spec.resources().map(|r| r.label()).collect();
        assert_eq!(
            labels,
            [
                "device /dev/loop7",
                "ip 192.0.2.100/24",
                "application new_application"
            ]
        );
        assert_eq!(spec.resource_path(1), "spec.ipAddresses[0]");
    }

    #[test]
    fn resources_stop_by_the_seeds_stop_table() {
        let share = |n: &str| SambaShare {
            name: n.into(),
            path: "/srv".into(),
            parameters: Default::default(),
        };
        let spec = ServiceSpec {
            devices: vec![Device {
                path: "/dev/loop7".into(),
                activate: vec![],
                deactivate: vec![],
            }],
            nfs_exports: vec![NfsExport {
                path: "/srv".into(),
                clients: vec!["*".into()],
                options: vec![],
                server: Default::default(),
            }],
            ip_addresses: vec![IpAddress {
                address: "192.0.2.100/24".into(),
                interface: None,
            }],
            samba_shares: vec![share("a"), share("b")],
            applications: vec![Application {
                script: Some("/x/app".into()),
                ..Application::default()
            }],
            ..ServiceSpec::default()
        };
        let labels: Vec<_> = spec.resources_in_stop_order().map(|r| r.label()).collect();
        assert_eq!(
            labels,
            [
                "application app",
                "ip 192.0.2.100/24",
                "nfs export /srv",
                "samba share b",
                "samba share a",
                "device /dev/loop7"
            ]
        );
        assert_eq!(Kind::SambaShare.start_position(), 4);
        assert_eq!(Kind::SambaShare.stop_position(), 3);
    }
}
