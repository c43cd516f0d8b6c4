//! How desired state gets into the store: server-side apply and GitOps.

pub mod apply;
pub mod gitops;
