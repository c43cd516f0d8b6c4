//! clusvc-daemon: the server side of clusvc.
//!
//! # Layout
//!
//! - [`runtime`]: when to reconcile what: the scheduler.
//! - [`reconcile`]: the controller: cache, reconcile, events, metrics.
//! - [`sync`]: how desired state gets in: server-side apply and GitOps.
//! - [`api`]: the HTTP API.
//! - [`run`]: the composition root of `clusvc run`.

pub mod api;
pub mod heartbeat;
pub mod reconcile;
pub mod run;
pub mod runtime;
pub mod sync;
