//! One file per command. Client commands talk to the server through
//! [`crate::client`] with the wire types of `clusvc_core::api`; offline
//! commands (`validate`, `schema`, `plan --offline`, `create --dry-run`)
//! read manifests with `clusvc_manifest`.

pub mod agent;
pub mod apply;
pub mod completion;
pub mod create;
pub mod delete;
pub mod describe;
pub mod diff;
pub mod events;
pub mod failsafe;
pub mod get;
pub mod member;
pub mod operate;
pub mod plan;
pub mod run;
pub mod schema;
pub mod server;
pub mod store;
pub mod validate;

use clusvc_core::model::MemberRefs;
use clusvc_manifest::{self as manifest, Options};

use crate::app::{CliError, Files};

/// Reads `-f` inputs; invalid input is bad input (exit 2), nothing applied.
/// Services may name members the input does not declare: the server
/// checks them against its stored members, as kubectl leaves references to
/// the API server.
pub fn load(files: &Files) -> Result<manifest::Loaded, CliError> {
    let options = Options {
        member_refs: MemberRefs::InInputOrStore,
        ..Options::default()
    };
    manifest::load_paths(&files.files, options).map_err(|e| {
        CliError::bad_input(format!(
            "{e}\nerror: the input is invalid; nothing was applied"
        ))
    })
}

/// What `get` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Services (`service`, `svc`).
    #[value(alias = "service", alias = "svc")]
    Services,
    /// Members (`member`).
    #[value(alias = "member")]
    Members,
    /// The GitOps sync status.
    Sync,
    /// The observed state (for `plan --offline --observed`): JSON, or YAML
    /// with `-o yaml`.
    Observed,
}

/// What `describe` and `delete` take: a service or a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ObjectKind {
    /// A service (`service`, `services`, `svc`).
    #[value(alias = "services", alias = "svc")]
    Service,
    /// A member (`member`, `members`).
    #[value(alias = "members")]
    Member,
}
