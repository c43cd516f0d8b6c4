//! The manifest kinds, field for field as SPEC §2 writes them.
//!
//! These types are what YAML deserializes into; they are checked by
//! [`crate::model::desired`] before anything else sees them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Duration;
use super::scalar::ScalarString;

/// The only API version this release understands.
pub const API_VERSION: &str = "clusvc/v1";

/// `apiVersion: clusvc/v1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum ApiVersion {
    /// `clusvc/v1`
    #[default]
    #[serde(rename = "clusvc/v1")]
    V1,
}

/// `kind: Member`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum MemberKind {
    /// The only value.
    #[default]
    Member,
}

/// `kind: Service`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum ServiceKind {
    /// The only value.
    #[default]
    Service,
}

/// Name and labels of an object.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// A DNS label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters), unique per kind.
    pub name: String,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Free-form annotations (tools record provenance here).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Metadata {
    /// Metadata with just a name.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// A machine that can run services.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "Member")]
pub struct Member {
    /// Always `clusvc/v1`.
    pub api_version: ApiVersion,
    /// Always `Member`.
    pub kind: MemberKind,
    /// The member's name and labels.
    pub metadata: Metadata,
    /// What the member is and how to fence it.
    #[serde(default)]
    pub spec: MemberSpec,
}

/// The declared properties of a member.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberSpec {
    /// Informational address, or the agent's endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// `true` drains the member: no service may run here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub standby: bool,
    /// How to power off or isolate this member when it is lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fencing: Option<Fencing>,
}

/// A fencing command, run by argv.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fencing {
    /// Program (absolute path) and arguments.
    pub command: Vec<String>,
    /// Limit for one fencing attempt.
    #[serde(default = "default_fencing_timeout")]
    pub timeout: Duration,
}

fn default_fencing_timeout() -> Duration {
    Duration::from_secs(30)
}

/// A named group of resources that runs on one member at a time.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "Service")]
pub struct Service {
    /// Always `clusvc/v1`.
    pub api_version: ApiVersion,
    /// Always `Service`.
    pub kind: ServiceKind,
    /// The service's name and labels.
    pub metadata: Metadata,
    /// What to run and where.
    #[serde(default)]
    pub spec: ServiceSpec,
}

/// The declared properties of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    /// `false`: stop it and keep it stopped.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Interval of status checks; `0s` disables them.
    #[serde(default = "default_check_interval")]
    pub check_interval: Duration,
    /// Limit for one action of one resource.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// Where the service may run.
    #[serde(default)]
    pub placement: Placement,
    /// What to do when a check or a start fails.
    #[serde(default)]
    pub recovery: Recovery,
    /// Block devices (start position 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    /// Filesystems (start position 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filesystems: Vec<Filesystem>,
    /// NFS exports (start position 3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nfs_exports: Vec<NfsExport>,
    /// Floating IP addresses (start position 4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<IpAddress>,
    /// Samba shares (start position 5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samba_shares: Vec<SambaShare>,
    /// User scripts and OCF agents (start position 6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applications: Vec<Application>,
}

fn yes() -> bool {
    true
}
fn default_check_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_timeout() -> Duration {
    Duration::from_secs(60)
}

impl Default for ServiceSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            check_interval: default_check_interval(),
            timeout: default_timeout(),
            placement: Placement::default(),
            recovery: Recovery::default(),
            devices: Vec::new(),
            filesystems: Vec::new(),
            nfs_exports: Vec::new(),
            ip_addresses: Vec::new(),
            samba_shares: Vec::new(),
            applications: Vec::new(),
        }
    }
}

/// The failover domain of a service.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Placement {
    /// Preferred members; empty means any member.
    #[serde(default)]
    pub members: Vec<String>,
    /// Prefer earlier members in the list.
    #[serde(default)]
    pub ordered: bool,
    /// Never run outside the list.
    #[serde(default)]
    pub restricted: bool,
    /// Return to a more preferred member when it is back after a failover.
    #[serde(default)]
    pub failback: bool,
}

/// How a failed service recovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecoveryPolicy {
    /// Restart on the same member up to `maxRestarts` within `restartWindow`, then relocate.
    #[default]
    Restart,
    /// Move to another member at once.
    Relocate,
    /// Stop and stay `failed` until an operator enables or clears it.
    Disable,
}

/// Recovery settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Recovery {
    /// `restart`, `relocate` or `disable`.
    #[serde(default)]
    pub policy: RecoveryPolicy,
    /// Restarts on one member within `restartWindow` before relocating (0 to 100).
    #[serde(default = "default_max_restarts")]
    #[schemars(range(min = 0, max = 100))]
    pub max_restarts: u32,
    /// The window in which restarts are counted.
    #[serde(default = "default_restart_window")]
    pub restart_window: Duration,
}

fn default_max_restarts() -> u32 {
    3
}
fn default_restart_window() -> Duration {
    Duration::from_secs(600)
}

impl Default for Recovery {
    fn default() -> Self {
        Self {
            policy: RecoveryPolicy::Restart,
            max_restarts: default_max_restarts(),
            restart_window: default_restart_window(),
        }
    }
}

/// A block device the service needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Device {
    /// Absolute path of the device node.
    pub path: String,
    /// Optional command (argv) that makes the device appear, e.g. an LVM activation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub activate: Vec<String>,
    /// Optional command (argv) run on stop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deactivate: Vec<String>,
}

/// A filesystem mounted for the service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Filesystem {
    /// The device to mount (absolute path, or `LABEL=`/`UUID=`).
    pub device: String,
    /// Absolute mount point; unique across services.
    pub mount_point: String,
    /// Filesystem type passed to mount (`-t`); omitted = let mount detect it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<String>,
    /// Mount options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Run `fsck -a` before mounting.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fsck: bool,
    /// Kill processes using the mount before unmounting.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force_unmount: bool,
}

/// Which NFS server exports a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NfsServer {
    /// The kernel server, through `exportfs`.
    #[default]
    Kernel,
    /// nfs-ganesha: an EXPORT block and a reload.
    Ganesha,
}

/// An NFS export.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NfsExport {
    /// Absolute path to export.
    pub path: String,
    /// Client specifications (hosts, networks, `*`); at least one.
    pub clients: Vec<String>,
    /// Export options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// `kernel` (default) or `ganesha`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub server: NfsServer,
}

/// A floating IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpAddress {
    /// Address with prefix length, e.g. `192.0.2.100/24`; unique across services.
    pub address: String,
    /// Interface; default: the interface on that subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
}

/// A Samba share.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SambaShare {
    /// Share name; unique across services.
    pub name: String,
    /// Absolute path to share.
    pub path: String,
    /// Extra smb.conf parameters for the share.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, ScalarString>,
}

/// A user application: a seed-style script, a directory of scripts, or an OCF agent.
/// Exactly one of `script`, `directory` and `ocf` is set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("oneOf" = [
    {"required": ["script"]},
    {"required": ["directory"]},
    {"required": ["ocf"]}
]))]
pub struct Application {
    /// A bash script defining a function taking `start|stop|status` and the service ID.
    /// Absolute, or `./`/`../` relative to the manifest file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// The function to call; default: resolved from the script's file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Every script in this directory, sorted by name, each its own application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// An OCF resource agent, `provider:type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocf: Option<String>,
    /// OCF parameters (`OCF_RESKEY_<name>`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, ScalarString>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// One manifest document of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// A `Member`.
    Member(Member),
    /// A `Service`.
    Service(Service),
}

impl Object {
    /// The object's name.
    pub fn name(&self) -> &str {
        match self {
            Object::Member(m) => &m.metadata.name,
            Object::Service(s) => &s.metadata.name,
        }
    }

    /// `member` or `service`, as kubectl-style references write it.
    pub fn kind_lower(&self) -> &'static str {
        match self {
            Object::Member(_) => "member",
            Object::Service(_) => "service",
        }
    }
}

impl Member {
    /// A member with defaults (for builders and tests).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            metadata: Metadata::named(name),
            ..Self::default()
        }
    }
}

impl Service {
    /// A service with defaults (for builders and tests).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            metadata: Metadata::named(name),
            ..Self::default()
        }
    }
}
