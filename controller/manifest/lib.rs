//! clusvc-manifest: reading manifests into a validated
//! [`clusvc_core::model::DesiredState`].
//!
//! # Layout
//!
//! - [`yaml`]: YAML documents into a tree with positions (`file:line:col`),
//!   with size and nesting budgets.
//! - [`mod@load`]: files, directories and stdin -> typed objects -> the pure rules
//!   of `clusvc_core::model::desired` plus the script checks -> a
//!   `DesiredState`, with every error at once.
//! - [`scripts`]: user scripts on disk (function resolution, `directory:`
//!   listing, ownership checks), shared with the agent that runs them.
//! - [`schema`]: JSON Schemas and CRD-style documents generated from the
//!   model types.
//! - [`error`]: positioned errors.
//!
//! Dependencies: this crate -> `clusvc-core`.

mod block;
pub mod error;
pub mod load;
pub mod schema;
pub mod scripts;
pub mod yaml;

pub use error::{Errors, ManifestError};
pub use load::{
    Input, Loaded, Options, ParseCache, load, load_cached, load_paths, load_paths_cached,
    read_inputs,
};
