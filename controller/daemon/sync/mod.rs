//! How desired state gets into the store: server-side apply (`apply`), a
//! manifests directory (`gitops`), and the local member `clusvc run`
//! declares for itself (`member`).

pub mod apply;
pub mod gitops;
pub mod member;
