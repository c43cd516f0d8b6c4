//! `clusvc delete service|member NAME` or `delete -f ...`.

use std::path::PathBuf;

use clusvc_core::api::Deleted;

use super::{ObjectKind, load};
use crate::app::{CliError, Files};
use crate::client::Client;

/// Arguments of `delete`.
#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// service or member (or use -f).
    kind: Option<ObjectKind>,
    /// The name.
    name: Option<String>,
    /// Delete the objects these manifests declare.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    files: Vec<PathBuf>,
    /// Delete objects a manifests directory owns (its next sync brings them
    /// back while the directory declares them).
    #[arg(long)]
    force: bool,
}

/// `delete`.
pub fn delete(client: &Client, args: DeleteArgs) -> Result<u8, CliError> {
    let mut targets: Vec<(String, String)> = Vec::new();
    if !args.files.is_empty() {
        let loaded = load(&Files { files: args.files })?;
        targets.extend(
            loaded
                .desired
                .services()
                .keys()
                .map(|n| ("services".to_string(), n.clone())),
        );
        targets.extend(
            loaded
                .desired
                .members()
                .keys()
                .map(|n| ("members".to_string(), n.clone())),
        );
    }
    match (args.kind, args.name) {
        (Some(ObjectKind::Service), Some(n)) => targets.push(("services".into(), n)),
        (Some(ObjectKind::Member), Some(n)) => targets.push(("members".into(), n)),
        (None, None) => {}
        _ => {
            return Err(CliError::bad_input(
                "error: use `delete service|member NAME` or `delete -f PATH`",
            ));
        }
    }
    for (kind, name) in targets {
        let force = if args.force { "?force=true" } else { "" };
        let _: Deleted = client.delete(&format!("/v1/objects/{kind}/{name}{force}"))?;
        println!("{}/{name} deleted", kind.trim_end_matches('s'));
    }
    Ok(0)
}
