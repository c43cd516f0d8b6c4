//! The GitOps sync status.

use serde::{Deserialize, Serialize};

use crate::model::Timestamp;

/// The state of the sync of a manifests directory, for `/healthz` and
/// `clusvc get sync`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    /// The directory, when GitOps is on.
    pub dir: Option<String>,
    /// HEAD of the git work tree at the last good sync.
    pub revision: Option<String>,
    /// When the tree was last applied successfully.
    pub synced_at: Option<Timestamp>,
    /// Objects from the tree.
    pub objects: usize,
    /// Why the current tree is not applied (`file:line:col: ...`).
    pub error: Option<String>,
}
