//! clusvc-core: the pure core of clusvc.
//!
//! # Layout
//!
//! - [`model`]: the manifest kinds, the validated [`model::DesiredState`],
//!   the [`model::ObservedState`] and events. Data and the rules that make an
//!   input valid.
//! - [`plan`]: the planner `plan(desired, observed, now) -> Plan`, one file per
//!   decision under [`plan::decide`], the plan text, and a simulator that
//!   applies a plan's steps to an observed state.
//! - [`api`]: the wire types of the HTTP API, shared by the server and the
//!   command line.
//! - `testkit` (feature `testkit`): synthetic clusters for tests and
//!   benchmarks.
//!
//! Dependencies: `api` -> `plan` -> `model`. This crate does no I/O, reads
//! no clock and uses no async runtime: its `Cargo.toml` lists only serde,
//! schemars, humantime and thiserror, and `tests/purity.rs` at the
//! workspace root fails if that changes. It depends on no other clusvc
//! crate; every other crate but `clusvc-store` (which stores opaque JSON)
//! depends on it.

pub mod api;
pub mod model;
pub mod plan;
#[cfg(feature = "testkit")]
pub mod testkit;
