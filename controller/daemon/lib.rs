//! clusvc-daemon: the server side of clusvc.
//!
//! # Layout
//!
//! - [`runtime`]: when each key is reconciled: the [`runtime::Scheduler`]
//!   (a delay queue where duplicates collapse) and the [`runtime::Runner`]
//!   (bounded concurrency, never two runs of one key, re-run of a key woken
//!   meanwhile, errors to the reconciler's `error_policy`). Knows nothing of
//!   services.
//! - [`reconcile`]: the controller, a [`runtime::Reconciler`]: its cache of
//!   the store (one `DesiredState`, updated per object; a read-only
//!   [`reconcile::Reader`] for the API), `reconcile` (check, plan, execute,
//!   record), status checks, plan execution through agents and the
//!   `Fencer`, operator requests, the re-probe after a restart, events and
//!   metrics.
//! - [`sync`]: how desired state gets into the store: server-side apply
//!   (`plan_changes`, a pure decision, then one transaction) and GitOps.
//! - [`api`]: the HTTP API, one file per resource, on the wire types of
//!   `clusvc_core::api`.
//! - [`heartbeat`]: the local agent's lease.
//! - [`run`]: the composition root of `clusvc run`: the one place that wires
//!   a store, agents, a fencer, the controller, the sync and the API.
//! - [`server`]: the composition root of `clusvc server` (cluster mode):
//!   etcd, the election, a controller that follows until elected, remote
//!   agents, operator requests and events through the store.
//!
//! Dependencies: `api` -> {`reconcile` (read-only), `sync`}; `sync` ->
//! store; `reconcile` -> `runtime`, `clusvc-agent`, `clusvc-store`,
//! `clusvc_core::plan`; `runtime` -> tokio only. This crate -> {`clusvc-agent`,
//! `clusvc-store`, `clusvc-manifest`} -> `clusvc-core`.

pub mod api;
pub mod heartbeat;
pub mod reconcile;
pub mod run;
pub mod runtime;
pub mod server;
pub mod sync;
mod ui;
