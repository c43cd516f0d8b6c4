//! The planner: a pure function from desired and observed state, and a point
//! in time, to the steps that bring the cluster to the desired state.
//!
//! It is used alike by the controller and by the dry-run `clusvc plan`: no
//! I/O, no clock, deterministic. One pipeline, one file per concern:
//! [`placement`] (where may and should a service run), [`decide`] (what to
//! do with one service), [`steps`] (resource steps in the fixed order),
//! [`render`] (the plan text of SPEC §5) and [`simulate`] (the observed
//! state that executing a plan produces).

pub mod decide;
pub mod placement;
pub mod render;
pub mod simulate;
pub mod step;
pub mod steps;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::model::{DesiredState, ObservedState, PlacementReason, ServiceState, Timestamp};

pub use step::{Op, Step};

/// The first retry of a failed service waits this long; each further one
/// twice as long, up to [`RETRY_BACKOFF_CAP`].
pub const RETRY_BACKOFF_BASE: crate::model::Duration = crate::model::Duration::from_secs(1);

/// The longest wait between two recovery attempts of one service.
pub const RETRY_BACKOFF_CAP: crate::model::Duration = crate::model::Duration::from_secs(60);

/// The wait before recovery attempt `n + 1` when `n` attempts were made
/// (none before the first).
pub fn retry_backoff(attempts: usize) -> crate::model::Duration {
    if attempts == 0 {
        return crate::model::Duration::from_secs(0);
    }
    let exp = u32::try_from(attempts - 1).unwrap_or(u32::MAX).min(20);
    let ms = RETRY_BACKOFF_BASE
        .as_millis()
        .saturating_mul(1u64 << exp)
        .min(RETRY_BACKOFF_CAP.as_millis());
    crate::model::Duration::from_millis(ms)
}

/// How long after a dead member's lease expired its services may start
/// elsewhere when it has no fencing. An agent gives up half its lease
/// before the lease can expire and its stop is bounded by a quarter of the
/// lease (then what is left is killed), so it has stopped a quarter of the
/// lease before the expiry; the grace is slack on top for clock-rate drift
/// and the watchdog's tick (the argument and its model check are in
/// docs/cluster.md).
pub const LEASE_GRACE: crate::model::Duration = crate::model::Duration::from_millis(250);

/// The plan for the whole cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The time the plan was computed for.
    pub now: Timestamp,
    /// One entry per service that changes or has something to report, by name.
    pub services: Vec<ServicePlan>,
    /// Counts for the summary line.
    pub summary: Summary,
}

impl Plan {
    /// Whether executing the plan changes anything.
    pub fn has_changes(&self) -> bool {
        self.services.iter().any(ServicePlan::is_change)
    }

    /// The plan of one service.
    pub fn service(&self, name: &str) -> Option<&ServicePlan> {
        self.services.iter().find(|s| s.service == name)
    }
}

/// The summary line's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Services to start.
    pub start: usize,
    /// Services to relocate.
    pub relocate: usize,
    /// Services to restart or reconfigure in place.
    pub restart: usize,
    /// Services to stop (and deleted services to forget).
    pub stop: usize,
    /// Services without steps.
    pub unchanged: usize,
}

/// What happens to one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Change {
    /// Start on a member.
    Start {
        /// The member it starts on.
        to: String,
    },
    /// Stop (or, for a dead member, wait for or fence it).
    Stop {
        /// Where it runs.
        from: String,
    },
    /// Stop on one member, then start on another.
    Relocate {
        /// The old member.
        from: String,
        /// The new member.
        to: String,
    },
    /// Stop and start again on the same member.
    Restart {
        /// The member.
        on: String,
    },
    /// Restart the changed resources and everything after them.
    Reconfigure {
        /// The member.
        on: String,
    },
    /// A deleted service that runs nowhere: drop its record.
    Forget,
    /// Nothing to do, but something to report (no eligible member, failed, blocked).
    Hold {
        /// The state it stays in.
        state: ServiceState,
    },
}

/// The plan of one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePlan {
    /// Service name.
    pub service: String,
    /// Service ID (a new service shows the ID it will get).
    pub id: u64,
    /// What happens (`action` on the wire).
    #[serde(rename = "action")]
    pub change: Change,
    /// Why, in words.
    pub reason: String,
    /// The steps, in execution order.
    pub steps: Vec<Step>,
    /// The state once the steps succeed.
    pub outcome: Outcome,
    /// For a service held back by a recovery backoff: when to plan it
    /// again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<Timestamp>,
}

impl ServicePlan {
    /// Whether executing it changes anything.
    pub fn is_change(&self) -> bool {
        !matches!(self.change, Change::Hold { .. })
    }
}

/// The observed state of a service after its steps succeed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// Its state.
    pub state: ServiceState,
    /// Where it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// Why it runs there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement_reason: Option<PlacementReason>,
    /// This is a recovery restart on the same member (counts against `maxRestarts`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub counts_restart: bool,
    /// Members fenced by the steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fenced: Vec<String>,
}

/// The plan of one service, as [`plan`] would decide it (placement still
/// counts every service's load). `None`: nothing to do or say.
pub fn plan_one(
    desired: &DesiredState,
    observed: &ObservedState,
    now: Timestamp,
    service: &str,
) -> Option<ServicePlan> {
    let mut ctx = decide::Context::new(desired, observed, now);
    ctx.decide(service)
}

/// As [`plan_one`], with an index of `observed` kept up to date by the
/// caller (the controller's cache): the cost no longer grows with the
/// number of services.
pub fn plan_one_indexed(
    desired: &DesiredState,
    observed: &ObservedState,
    index: &placement::ClusterIndex,
    now: Timestamp,
    service: &str,
) -> Option<ServicePlan> {
    let mut ctx = decide::Context::with_index(desired, observed, index, now);
    ctx.decide(service)
}

/// Computes the plan. Pure and deterministic: services are taken in name
/// order, and ties in placement are broken by member name.
pub fn plan(desired: &DesiredState, observed: &ObservedState, now: Timestamp) -> Plan {
    let mut ctx = decide::Context::new(desired, observed, now);
    let names: BTreeSet<&str> = desired
        .services()
        .keys()
        .map(String::as_str)
        .chain(observed.services.keys().map(String::as_str))
        .collect();
    let mut services = Vec::new();
    let mut summary = Summary::default();
    for name in names {
        match ctx.decide(name) {
            Some(sp) => {
                match &sp.change {
                    Change::Start { .. } => summary.start += 1,
                    Change::Relocate { .. } => summary.relocate += 1,
                    Change::Restart { .. } | Change::Reconfigure { .. } => summary.restart += 1,
                    Change::Stop { .. } | Change::Forget => summary.stop += 1,
                    Change::Hold { .. } => summary.unchanged += 1,
                }
                services.push(sp);
            }
            None => summary.unchanged += 1,
        }
    }
    Plan {
        now,
        services,
        summary,
    }
}
