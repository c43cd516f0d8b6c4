//! The wire types of the HTTP API (`/v1/...`), shared by the server and the
//! command line: what is sent is what is read, with no second copy of a
//! type on either side.
//!
//! | route | request | answer |
//! |---|---|---|
//! | `GET /v1/services[/NAME]` | | [`ServiceView`] (list or one) |
//! | `GET /v1/members[/NAME]` | | [`MemberView`] (list or one) |
//! | `POST /v1/apply` | [`ApplyRequest`] | [`ApplyResult`] |
//! | `DELETE /v1/objects/KIND/NAME` | | [`Deleted`] |
//! | `POST /v1/plan` | [`PlanRequest`] | [`PlanResponse`] |
//! | `POST /v1/services/NAME/ops/OP` | [`OperationRequest`] | [`OperationResult`] |
//! | `GET /v1/events[?service=&follow=&limit=]` | | NDJSON of [`crate::model::event::Event`] |
//! | `GET /v1/sync` | | [`SyncStatus`] |
//! | `POST /v1/agent/heartbeat` (agents only) | [`agent::HeartbeatRequest`] | [`agent::HeartbeatResponse`] |
//!
//! Every error answer is an [`ApiError`].

pub mod agent;
mod apply;
mod error;
mod ops;
pub mod paths;
mod plan;
mod sync;
mod views;

pub use apply::{Applied, ApplyRequest, ApplyResult, Deleted, ObjectKind, ObjectResult};
pub use error::{ApiError, ErrorCode};
pub use ops::{Operation, OperationRequest, OperationResult, UnknownOperation};
pub use plan::{PlanRequest, PlanResponse};
pub use sync::SyncStatus;
pub use views::{DisplayState, MAX_PAGE, MemberState, MemberView, ServicePage, ServiceView};

/// Annotation naming who applied an object (`apply`, `gitops:DIR`, `local`).
pub const SOURCE_ANNOTATION: &str = "clusvc.io/source";

/// Annotation naming the file of a manifests directory an object comes
/// from (relative to the directory), for hints that say what to edit.
pub const MANIFEST_ANNOTATION: &str = "clusvc.io/manifest";

/// Annotation holding an operator's forced `spec.enabled` (`"true"` or
/// `"false"`) on an object a manifests directory owns; kept across syncs
/// until `enable` or a change of that field in the directory lifts it.
pub const ENABLED_OVERRIDE_ANNOTATION: &str = "clusvc.io/enabled-override";

/// Annotation holding what the manifests directory said of `spec.enabled`
/// when the override was made.
pub const ENABLED_IN_SOURCE_ANNOTATION: &str = "clusvc.io/enabled-in-source";

/// The source of objects written by `clusvc apply` and `clusvc create`.
pub const APPLY_SOURCE: &str = "apply";

/// The prefix of the sources of manifests directories (`gitops:DIR`).
pub const GITOPS_SOURCE_PREFIX: &str = "gitops:";
