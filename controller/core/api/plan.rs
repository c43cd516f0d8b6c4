//! Live and what-if plans.

use serde::{Deserialize, Serialize};

use crate::model::{Member, Service};
use crate::plan::Plan;

/// A live or what-if plan request. With no objects, the live desired state
/// is planned.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanRequest {
    /// Members to plan as if applied.
    #[serde(default)]
    pub members: Vec<Member>,
    /// Services to plan as if applied.
    #[serde(default)]
    pub services: Vec<Service>,
    /// Members to treat as dead.
    #[serde(default)]
    pub fail_members: Vec<String>,
}

/// A plan as the server computed it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanResponse {
    /// The plan text (SPEC §5).
    pub text: String,
    /// Whether executing it changes anything.
    pub changes: bool,
    /// The plan itself.
    pub plan: Plan,
    /// The store revision the plan was computed at.
    pub revision: u64,
}
