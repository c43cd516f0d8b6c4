//! clusvc: a high-availability service manager for Linux clusters.
//!
//! # Layout
//!
//! - [`model`]: manifests, the validated [`model::DesiredState`] and the
//!   [`model::ObservedState`]. Pure data and rules.
//! - [`plan`]: the pure planner `plan(desired, observed, now) -> Plan`, its
//!   text rendering and a simulator that applies a plan to an observed state.
//! - [`manifest`]: reading YAML files, directories and stdin into a
//!   `DesiredState`, with `file:line:col` errors.
//! - [`schema`]: JSON Schemas and CRD-style documents generated from the types.
//! - [`cli`]: the `clusvc` command line.
//!
//! Dependencies point one way: `cli` -> {`manifest`, `plan`, `schema`};
//! `manifest` -> `model`; `plan` -> `model`. `model` and `plan` do no I/O,
//! read no clock and use no async runtime.

pub mod agent;
pub mod cli;
pub mod controller;
pub mod exec;
pub mod manifest;
pub mod model;
pub mod plan;
pub mod resources;
pub mod schema;
pub mod scriptfile;
pub mod server;
pub mod store;
pub mod testkit;
