//! Work for a member's agent on another machine, as the store and the
//! agent API carry it (see `docs/cluster.md`): the server records a
//! [`WorkItem`] under `/clusvc/work/MEMBER/SERVICE`; the member's agent
//! runs it with its own [`crate::exec::Executor`] and reports a
//! [`WorkDone`], which the server records under
//! `/clusvc/result/MEMBER/SERVICE`. Items carry IDs: an agent never runs
//! one ID twice.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use clusvc_core::model::{ResourceStatus, ServiceSpec};
use clusvc_core::plan::Step;

use crate::exec::{RunReport, ServiceRef};

/// One piece of work for one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkItem {
    /// Unique across servers and restarts.
    pub id: String,
    /// The leadership epoch of the controller that issued it: an agent
    /// refuses work from an epoch older than the newest it has seen (a
    /// deposed controller's).
    #[serde(default)]
    pub epoch: u64,
    /// The service.
    pub service: String,
    /// Its ID (`CLUSVC_SERVICE_ID`).
    pub service_id: u64,
    /// Limit for one action of one resource, in milliseconds.
    pub timeout_ms: u64,
    /// What to do.
    pub task: Task,
}

impl WorkItem {
    /// The service as the executor knows it.
    pub fn service_ref(&self) -> ServiceRef {
        ServiceRef {
            name: self.service.clone(),
            id: self.service_id,
            timeout: Duration::from_millis(self.timeout_ms),
        }
    }
}

/// What a work item asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Task {
    /// Run these plan steps in order; `spec` is the service's spec, which
    /// the agent keeps to stop the service if it must fence itself.
    Execute {
        /// The steps.
        steps: Vec<Step>,
        /// The spec.
        spec: Option<ServiceSpec>,
    },
    /// A status check.
    Check {
        /// The spec.
        spec: ServiceSpec,
    },
    /// The status of every resource.
    Probe {
        /// The spec.
        spec: ServiceSpec,
    },
}

/// The answer to `GET /v1/agent/work`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkList {
    /// Ask for what comes after this next time.
    pub revision: u64,
    /// The member's items newer than what was asked.
    pub items: Vec<WorkItem>,
}

/// `POST /v1/agent/done`: what a work item did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkDone {
    /// The agent's member.
    pub member: String,
    /// The service.
    pub service: String,
    /// The item's ID.
    pub id: String,
    /// What came of it.
    pub outcome: Outcome,
}

/// What came of a work item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Outcome {
    /// The report of steps or a check.
    Report {
        /// The report.
        report: RunReport,
    },
    /// Each resource's status.
    Probe {
        /// (resource label, status).
        statuses: Vec<(String, ResourceStatus)>,
    },
    /// It could not be run (e.g. the steps name another member).
    Failed {
        /// Why.
        message: String,
    },
}

/// `POST /v1/agent/status`: a status check that failed on the member. The
/// agent checks the services it runs itself, on their `checkInterval`, and
/// reports only failures, so a steady cluster writes nothing for checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusReport {
    /// The agent's member.
    pub member: String,
    /// The service.
    pub service: String,
    /// Its ID, as the agent started it.
    pub service_id: u64,
    /// The check's report (it has a failed step).
    pub report: RunReport,
}
