//! What a member's agent and a server say to each other
//! (`/v1/agent/...`, see `docs/cluster.md`). An agent authenticates with
//! its member's token and may act only as that member.

use serde::{Deserialize, Serialize};

/// Shortest lease an agent may ask for.
pub const MIN_LEASE_TTL_MS: u64 = 1_000;
/// Longest lease an agent may ask for.
pub const MAX_LEASE_TTL_MS: u64 = 60_000;
/// The lease an agent asks for unless told otherwise (`clusvc agent
/// --lease-ttl`); a new controller gives a member it has not heard from
/// this long to come back when it does not know its lease.
pub const DEFAULT_LEASE_TTL_MS: u64 = 5_000;

/// `POST /v1/agent/heartbeat`: keep the member's lease alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// The member the agent runs on (must be its token's).
    pub member: String,
    /// Identifies the agent (kept in its state directory across restarts):
    /// while the member's lease is live, only the agent holding it may
    /// renew it, so two agents never act as one member.
    pub agent_id: String,
    /// Identifies this run of the agent (a new one after each restart).
    pub incarnation: String,
    /// The lease time to live it asks for, in milliseconds
    /// ([`MIN_LEASE_TTL_MS`]..=[`MAX_LEASE_TTL_MS`]).
    pub ttl_ms: u64,
    /// The hash of the list of scripts it last received
    /// ([`HeartbeatResponse::wanted`]): the server sends the list again
    /// only when it changed.
    #[serde(default)]
    pub wanted_hash: u64,
    /// What it has of those scripts, when that changed since it last said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<crate::model::Inventory>,
    /// Services whose status check passed since the last heartbeat (the
    /// agent checks the services it runs; failures are reported at once,
    /// `POST /v1/agent/status`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checked: Vec<String>,
}

/// Most scripts an inventory may list.
pub const MAX_INVENTORY: usize = 10_000;

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatResponse {
    /// The store lease now holding the member's liveness key.
    pub lease: u64,
    /// The lease was granted by this heartbeat: the member had none (its
    /// previous lease, if any, expired; the agent must not go on running
    /// what it ran under the old one without being told to again).
    pub fresh: bool,
    /// With `fresh`: no controller acted on the member's loss while it had
    /// no lease (nothing it ran was moved, stopped or fenced), so it keeps
    /// what it runs. Decided in the same store transaction that grants the
    /// lease, against the mark a controller sets before it moves anything
    /// off a dead member: one of the two comes first.
    #[serde(default)]
    pub keep: bool,
    /// The time to live granted, in milliseconds.
    pub ttl_ms: u64,
    /// The hash of the scripts the services name now.
    #[serde(default)]
    pub wanted_hash: u64,
    /// The scripts, script directories and OCF agents (`ocf:P:T`) the
    /// services name, when the agent's `wantedHash` is not current: it
    /// reports what it has of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wanted: Option<Vec<String>>,
    /// The declared members (an agent in failsafe mode must hear from
    /// each of them).
    #[serde(default)]
    pub members: Vec<String>,
}
