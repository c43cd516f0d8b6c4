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
