//! What clusvc has seen: members alive or dead, where each service runs, the
//! last status of its resources, its restart history. Written by the
//! controller from agent reports, or by hand for what-if planning
//! (`clusvc plan --offline --observed FILE`).

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ServiceSpec, Timestamp};

/// The observed state of the whole cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObservedState {
    /// Members by name. A declared member missing here counts as alive.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub members: BTreeMap<String, ObservedMember>,
    /// Services by name, including deleted ones still running somewhere.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, ObservedService>,
}

/// What is known of one member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObservedMember {
    /// Whether its agent holds a live lease.
    #[serde(default = "yes")]
    pub alive: bool,
    /// When its lease expired (dead members).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expired_at: Option<Timestamp>,
    /// A dead member whose lease expired before the controller now leading
    /// could see it go (no server ran, or the controller had just been
    /// elected): its agent may have kept its services meanwhile (failsafe
    /// mode) and is given a lease's time from the election to come back
    /// before anything of it is moved. Until then its services stay put.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejoin_until: Option<Timestamp>,
    /// Drained by an operator at run time (in addition to `spec.standby`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub standby: bool,
    /// When it was last fenced successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fenced_at: Option<Timestamp>,
    /// The last fencing attempt failed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fencing_failed: bool,
    /// When the last fencing attempt ended (success or not), so services
    /// waiting on one fence share its result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence_attempted_at: Option<Timestamp>,
    /// What its agent reported having of the scripts services run
    /// (cluster members; none for a member whose agent runs in the server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<Inventory>,
    /// Since when it has held its current lease, as the server saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alive_since: Option<Timestamp>,
}

/// What a member's agent has of the scripts, script directories and OCF
/// agents the services name (see [`crate::model::ServiceSpec::scripts`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Inventory {
    /// The agent's version.
    #[serde(default)]
    pub version: String,
    /// Each one's checksum (`crc32:...`), or null where the member lacks it.
    #[serde(default)]
    pub scripts: BTreeMap<String, Option<String>>,
}

impl Inventory {
    /// Whether the member reported that it lacks `script` (one it has not
    /// reported on yet is not taken as lacking).
    pub fn lacks(&self, script: &str) -> bool {
        matches!(self.scripts.get(script), Some(None))
    }
}

fn yes() -> bool {
    true
}

impl Default for ObservedMember {
    fn default() -> Self {
        Self {
            alive: true,
            lease_expired_at: None,
            rejoin_until: None,
            inventory: None,
            alive_since: None,
            standby: false,
            fenced_at: None,
            fencing_failed: false,
            fence_attempted_at: None,
        }
    }
}

/// The states of SPEC §5.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    /// Not running anywhere.
    #[default]
    Stopped,
    /// A start is in progress.
    Starting,
    /// Running and passing its checks.
    Running,
    /// A stop is in progress.
    Stopping,
    /// A relocation is in progress.
    Relocating,
    /// A check or a start failed; with a member, recovery is pending; without,
    /// it waits for `clusvc enable` or `clusvc clear`.
    Failed,
    /// A stop failed: it may still hold resources on its member.
    Blocked,
    /// Stopped because it is disabled.
    Disabled,
    /// Frozen: neither checked nor changed.
    Frozen,
}

impl ServiceState {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Stopped => "stopped",
            ServiceState::Starting => "starting",
            ServiceState::Running => "running",
            ServiceState::Stopping => "stopping",
            ServiceState::Relocating => "relocating",
            ServiceState::Failed => "failed",
            ServiceState::Blocked => "blocked",
            ServiceState::Disabled => "disabled",
            ServiceState::Frozen => "frozen",
        }
    }
}

impl fmt::Display for ServiceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The last known status of one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResourceStatus {
    /// Started and passing its check.
    Ok,
    /// Its start or check failed.
    Failed,
    /// Stopped by a successful stop.
    Stopped,
    /// Not known (never started or not probed yet).
    #[default]
    Unknown,
}

/// Which action failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// A periodic status check.
    Check,
    /// A start.
    Start,
    /// A stop.
    Stop,
}

impl Phase {
    /// The word in reasons: "status check", "start", "stop".
    pub fn word(self) -> &'static str {
        match self {
            Phase::Check => "status check",
            Phase::Start => "start",
            Phase::Stop => "stop",
        }
    }
}

/// The last failure of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Failure {
    /// What failed.
    pub phase: Phase,
    /// The resource label, e.g. `ip 192.0.2.100/24`.
    pub resource: String,
    /// Why, in words.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// When it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
}

/// Why a service runs where it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlacementReason {
    /// First placement.
    Initial,
    /// Moved because its member died or became ineligible (standby, left
    /// the failover domain); failback may return it.
    Failover,
    /// Moved by recovery after failures on its member; failback does not
    /// return it there.
    Recovery,
    /// Moved by `clusvc relocate`.
    Manual,
    /// Returned to a preferred member.
    Failback,
}

impl PlacementReason {
    /// The lowercase word, as YAML and JSON write it.
    pub fn as_str(self) -> &'static str {
        match self {
            PlacementReason::Initial => "initial",
            PlacementReason::Failover => "failover",
            PlacementReason::Recovery => "recovery",
            PlacementReason::Manual => "manual",
            PlacementReason::Failback => "failback",
        }
    }
}

impl fmt::Display for PlacementReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pending `clusvc relocate` request; consumed when carried out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RelocateRequest {
    /// The member asked for; none = the best other member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// What is known of one service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObservedService {
    /// The service ID, assigned at creation, never reused while it exists.
    pub id: u64,
    /// The member holding it (running, failed there, blocked there, or in
    /// the middle of an action there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// Its state.
    #[serde(default)]
    pub state: ServiceState,
    /// Frozen by `clusvc freeze`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frozen: bool,
    /// Last status of each resource, by label.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, ResourceStatus>,
    /// The last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Restarts on the current member, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restarts: Vec<Timestamp>,
    /// The spec it was started with; absent = the desired one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_with: Option<ServiceSpec>,
    /// Why it runs where it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement_reason: Option<PlacementReason>,
    /// A pending manual relocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relocate: Option<RelocateRequest>,
    /// A pending `clusvc restart`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restart_requested: bool,
    /// When its status was last checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check: Option<Timestamp>,
    /// When the service was created (for AGE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
}

impl ObservedState {
    /// Whether a member is alive; undeclared in the observed state = alive.
    pub fn is_alive(&self, member: &str) -> bool {
        self.members.get(member).is_none_or(|m| m.alive)
    }

    /// Marks a member dead with its lease expired at `at` (what-if planning).
    pub fn fail_member(&mut self, member: &str, at: Timestamp) {
        let m = self.members.entry(member.to_string()).or_default();
        m.alive = false;
        m.lease_expired_at.get_or_insert(at);
    }
}

impl ObservedService {
    /// `clusvc clear` (and `enable`): forgets the failure and the restarts;
    /// a failed service that holds no member is stopped, a blocked one
    /// is stopping again (its stop is retried).
    pub fn clear_failure(&mut self) {
        match self.state {
            ServiceState::Failed if self.member.is_none() => self.state = ServiceState::Stopped,
            ServiceState::Blocked => self.state = ServiceState::Stopping,
            _ => {}
        }
        self.failure = None;
        self.restarts.clear();
    }
}
