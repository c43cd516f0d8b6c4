//! `clusvc member standby NAME` / `clusvc member unstandby NAME`: drain a
//! member at run time, or undo it (as `kubectl cordon`/`drain` and
//! `uncordon`), without editing its manifest.

use clusvc_core::api::MemberView;

use crate::app::CliError;
use crate::client::Client;

/// Arguments of `member`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    action: Action,
}

/// `member` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Drain a member: its services move to other members and nothing new
    /// is placed on it (until `unstandby`).
    Standby {
        /// The member.
        name: String,
    },
    /// Undo `standby` (a member whose manifest says `standby: true` stays
    /// standby).
    Unstandby {
        /// The member.
        name: String,
    },
}

/// Runs `member ...`.
pub fn run(client: &Client, args: Args) -> Result<u8, CliError> {
    let (name, op) = match &args.action {
        Action::Standby { name } => (name, "standby"),
        Action::Unstandby { name } => (name, "unstandby"),
    };
    let view: MemberView =
        client.post(&format!("/v1/members/{name}/{op}"), &serde_json::json!({}))?;
    println!("member/{} {op} (now {})", view.name, view.state);
    Ok(0)
}
