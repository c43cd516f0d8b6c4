//! Operator requests on a service.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The operations of `clusvc relocate|enable|disable|restart|freeze|unfreeze|clear`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// Move it to another member (`to`, or the best other one).
    Relocate,
    /// Set `spec.enabled` and clear a failure.
    Enable,
    /// Unset `spec.enabled`: stop it and keep it stopped.
    Disable,
    /// Stop and start it in place.
    Restart,
    /// Neither check nor change it.
    Freeze,
    /// Undo `freeze`.
    Unfreeze,
    /// Forget a failure (failed or blocked) and retry.
    Clear,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 7] = [
        Operation::Relocate,
        Operation::Enable,
        Operation::Disable,
        Operation::Restart,
        Operation::Freeze,
        Operation::Unfreeze,
        Operation::Clear,
    ];

    /// The verb, as in the route `/v1/services/NAME/ops/VERB`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Relocate => "relocate",
            Operation::Enable => "enable",
            Operation::Disable => "disable",
            Operation::Restart => "restart",
            Operation::Freeze => "freeze",
            Operation::Unfreeze => "unfreeze",
            Operation::Clear => "clear",
        }
    }

    /// What the command line prints when it was accepted: `relocation requested`.
    pub fn done(self) -> &'static str {
        match self {
            Operation::Relocate => "relocation requested",
            Operation::Enable => "enabled",
            Operation::Disable => "disabled",
            Operation::Restart => "restart requested",
            Operation::Freeze => "frozen",
            Operation::Unfreeze => "unfrozen",
            Operation::Clear => "cleared",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown operation verb.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown operation {0:?}")]
pub struct UnknownOperation(pub String);

impl FromStr for Operation {
    type Err = UnknownOperation;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Operation::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| UnknownOperation(s.to_string()))
    }
}

/// The body of an operation request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperationRequest {
    /// With `relocate`: the member to move to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// With `enable`/`disable`: override what a manifests directory says.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// The answer to an accepted operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationResult {
    /// The service.
    pub service: String,
    /// The operation.
    pub operation: Operation,
}
