//! Server-side apply and delete.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{Member, Service};

/// An apply request: the objects, and how to apply them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplyRequest {
    /// Members to create or update.
    #[serde(default)]
    pub members: Vec<Member>,
    /// Services to create or update.
    #[serde(default)]
    pub services: Vec<Service>,
    /// A label for the client (`apply` by default, `clusvc apply --source
    /// NAME`). The server records the objects under `LABEL@CALLER`
    /// (`apply@root`, `ci@token`), so a prune removes only what the same
    /// caller applied with the same label; manifests directories' sources
    /// (`gitops:DIR`) cannot be named.
    #[serde(default = "default_source")]
    pub source: String,
    /// Remove objects of the same source that are not in the request.
    #[serde(default)]
    pub prune: bool,
    /// Validate and report, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Take over objects owned by another source.
    #[serde(default)]
    pub force: bool,
    /// With `prune` and no objects: prune everything of this source anyway
    /// (refused otherwise, as `kubectl apply` refuses no objects).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_empty_prune: bool,
    /// Fail with a conflict if any of the objects exists (`clusvc create`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_only: bool,
}

fn default_source() -> String {
    super::APPLY_SOURCE.to_string()
}

/// The kinds of objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    /// A `Member`.
    Member,
    /// A `Service`.
    Service,
}

impl ObjectKind {
    /// `member` or `service`, as in `service/web`.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Member => "member",
            ObjectKind::Service => "service",
        }
    }

    /// The plural of API paths and not-found messages: `services`.
    pub fn plural(self) -> &'static str {
        match self {
            ObjectKind::Member => "members",
            ObjectKind::Service => "services",
        }
    }

    /// From the plural of an API path.
    pub fn from_plural(s: &str) -> Option<Self> {
        match s {
            "members" => Some(ObjectKind::Member),
            "services" => Some(ObjectKind::Service),
            _ => None,
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an apply did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Applied {
    /// It did not exist and was created.
    Created,
    /// It existed and was changed.
    Configured,
    /// It existed as given.
    Unchanged,
    /// It was removed because its source no longer declares it.
    Pruned,
}

impl Applied {
    /// The word `clusvc apply` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Applied::Created => "created",
            Applied::Configured => "configured",
            Applied::Unchanged => "unchanged",
            Applied::Pruned => "pruned",
        }
    }
}

impl fmt::Display for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectResult {
    /// Its kind.
    pub kind: ObjectKind,
    /// Its name.
    pub name: String,
    /// What the apply did.
    pub result: Applied,
}

/// The outcome of an apply.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyResult {
    /// Per object, in request order, then pruned ones.
    pub objects: Vec<ObjectResult>,
    /// Store revision after the write (or of the state validated against,
    /// for a dry run or an apply that changed nothing).
    pub revision: u64,
}

/// The answer to a delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    /// The kind deleted.
    pub kind: ObjectKind,
    /// The name deleted.
    pub name: String,
}
