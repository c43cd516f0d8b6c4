//! The runtime: when each key is reconciled, and how runs are bounded. It
//! knows nothing of services or plans, as kube-runtime's `scheduler` and
//! `runner` know nothing of Kubernetes objects.
//!
//! - [`scheduler`]: a delay queue keyed by name; duplicate requests collapse
//!   and the earliest deadline wins.
//! - [`runner`]: takes due keys from the scheduler and runs the
//!   [`Reconciler`] on them: at most `concurrency` at once, never two runs
//!   of one key, a key woken during its run runs again after it, and an
//!   error becomes a requeue chosen by the reconciler's `error_policy`.

pub mod runner;
pub mod scheduler;

pub use runner::{Action, Reconciler, Runner};
pub use scheduler::Scheduler;

/// `now + d`, saturating far in the future instead of overflowing (a
/// duration from a stored object is bounded by validation, but time
/// arithmetic must not be able to panic whatever it is given).
pub fn after(d: std::time::Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + std::time::Duration::from_secs(30 * 365 * 24 * 3600))
}
