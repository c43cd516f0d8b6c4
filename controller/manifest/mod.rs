//! Reading manifests: YAML parsing with positions.
pub mod yaml;
