//! Reading manifests: YAML with positions, typed decoding, validation and
//! script checks, into a [`crate::model::DesiredState`].

pub mod error;
pub mod load;
pub mod yaml;

pub use error::{Errors, ManifestError};
pub use load::{Input, Loaded, Options, load, load_paths, read_inputs};
