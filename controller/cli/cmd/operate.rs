//! The operations: `relocate`, `enable`, `disable`, `restart`, `freeze`,
//! `unfreeze`, `clear`.

use clusvc_core::api::{Operation, OperationRequest, OperationResult};

use crate::app::CliError;
use crate::client::Client;

/// Arguments of the service operations.
#[derive(Debug, clap::Args)]
pub struct OpArgs {
    /// The service.
    service: String,
    /// With `relocate`: the member to move to.
    #[arg(long)]
    to: Option<String>,
}

/// Sends the operation; prints what was accepted.
pub fn operate(client: &Client, op: Operation, args: OpArgs) -> Result<u8, CliError> {
    let _: OperationResult = client.post(
        &format!("/v1/services/{}/ops/{op}", args.service),
        &OperationRequest { to: args.to },
    )?;
    println!("service/{} {}", args.service, op.done());
    Ok(0)
}
