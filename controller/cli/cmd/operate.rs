//! The operations: `relocate`, `enable`, `disable`, `restart`, `freeze`,
//! `unfreeze`, `clear`. Each is checked by the server at once (exit 2 with
//! the reason when it cannot be done); `--wait` waits for the outcome, as
//! `clusvcadm -r` does.

use std::time::{Duration, Instant};

use clusvc_core::api::{DisplayState, Operation, OperationRequest, OperationResult, ServiceView};
use clusvc_core::model::ServiceState;

use crate::app::CliError;
use crate::client::Client;

/// Arguments of `relocate`.
#[derive(Debug, clap::Args)]
pub struct RelocateArgs {
    /// The service.
    service: String,
    /// The member to move to; default the best other member.
    #[arg(long, value_name = "MEMBER")]
    to: Option<String>,
    #[command(flatten)]
    wait: WaitArgs,
}

/// Arguments of `enable` and `disable`.
#[derive(Debug, clap::Args)]
pub struct ToggleArgs {
    /// The service.
    service: String,
    /// Override `spec.enabled` of a service a manifests directory owns; the
    /// override stays across syncs until `enable`/`disable` returns to the
    /// directory's value or the directory changes that field.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    wait: WaitArgs,
}

/// Arguments of the other operations.
#[derive(Debug, clap::Args)]
pub struct OpArgs {
    /// The service.
    service: String,
    #[command(flatten)]
    wait: WaitArgs,
}

/// `--wait [--timeout]`.
#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// Wait for the outcome; exit 1 if the service ends failed or blocked,
    /// or the wait times out.
    #[arg(long)]
    wait: bool,
    /// Longest wait.
    #[arg(long, default_value = "5m", requires = "wait")]
    timeout: clusvc_core::model::Duration,
}

/// `relocate`.
pub fn relocate(client: &Client, args: RelocateArgs) -> Result<u8, CliError> {
    let request = OperationRequest {
        to: args.to,
        force: false,
    };
    send(
        client,
        Operation::Relocate,
        &args.service,
        request,
        &args.wait,
    )
}

/// `enable` and `disable`.
pub fn toggle(client: &Client, op: Operation, args: ToggleArgs) -> Result<u8, CliError> {
    let request = OperationRequest {
        to: None,
        force: args.force,
    };
    send(client, op, &args.service, request, &args.wait)
}

/// `restart`, `freeze`, `unfreeze`, `clear`.
pub fn operate(client: &Client, op: Operation, args: OpArgs) -> Result<u8, CliError> {
    send(
        client,
        op,
        &args.service,
        OperationRequest::default(),
        &args.wait,
    )
}

fn send(
    client: &Client,
    op: Operation,
    service: &str,
    request: OperationRequest,
    wait: &WaitArgs,
) -> Result<u8, CliError> {
    let before: ServiceView = client.get(&format!("/v1/services/{service}"))?;
    let to = request.to.clone();
    let _: OperationResult = client.post(&format!("/v1/services/{service}/ops/{op}"), &request)?;
    println!("service/{service} {}", op.done());
    if !wait.wait {
        return Ok(0);
    }
    wait_for(
        client,
        op,
        service,
        &before,
        to.as_deref(),
        wait.timeout.get(),
    )
}

/// Whether the operation's outcome is there: `Some(Ok)` done, `Some(Err)`
/// it ended failed or blocked, `None` not yet.
fn outcome(
    op: Operation,
    before: &ServiceView,
    now: &ServiceView,
    to: Option<&str>,
) -> Option<Result<(), String>> {
    let state = match now.state {
        DisplayState::State(s) => s,
        DisplayState::Pending => return None,
        DisplayState::Invalid => {
            return Some(Err(format!(
                "service/{} is invalid: {}",
                now.name,
                now.invalid.as_deref().unwrap_or("")
            )));
        }
    };
    let observed = now.observed.as_ref();
    if matches!(state, ServiceState::Failed | ServiceState::Blocked) && op != Operation::Freeze {
        let why = observed
            .and_then(|o| o.failure.as_ref())
            .map(|f| format!("{} of {} failed: {}", f.phase.word(), f.resource, f.reason))
            .unwrap_or_default();
        // A failure that was there before `clear` or `enable` is what they
        // are clearing: wait for the request to be taken.
        let cleared = matches!(op, Operation::Clear | Operation::Enable)
            && observed.and_then(|o| o.failure.as_ref())
                == before.observed.as_ref().and_then(|o| o.failure.as_ref());
        if !cleared {
            return Some(Err(format!("service/{} {state}: {why}", now.name)));
        }
        return None;
    }
    let done = match op {
        Operation::Relocate => {
            observed.is_some_and(|o| o.relocate.is_none())
                && state == ServiceState::Running
                && match to {
                    Some(t) => now.member.as_deref() == Some(t),
                    None => now.member != before.member,
                }
        }
        Operation::Restart => {
            observed.is_some_and(|o| !o.restart_requested) && state == ServiceState::Running
        }
        Operation::Enable | Operation::Clear => {
            matches!(state, ServiceState::Running)
                || (op == Operation::Clear
                    && now.desired.as_ref().is_some_and(|d| !d.spec.enabled)
                    && state == ServiceState::Disabled)
        }
        Operation::Disable => matches!(state, ServiceState::Disabled),
        Operation::Freeze => state == ServiceState::Frozen,
        Operation::Unfreeze => state != ServiceState::Frozen,
    };
    done.then_some(Ok(()))
}

fn wait_for(
    client: &Client,
    op: Operation,
    service: &str,
    before: &ServiceView,
    to: Option<&str>,
    limit: Duration,
) -> Result<u8, CliError> {
    let started = Instant::now();
    loop {
        let now: ServiceView = client.get(&format!("/v1/services/{service}"))?;
        match outcome(op, before, &now, to) {
            Some(Ok(())) => {
                let at = now
                    .member
                    .as_deref()
                    .map(|m| format!(" on {m}"))
                    .unwrap_or_default();
                eprintln!(
                    "service/{service} {}{at} after {:.1}s",
                    now.state,
                    started.elapsed().as_secs_f64()
                );
                return Ok(0);
            }
            Some(Err(why)) => {
                return Err(CliError {
                    code: 1,
                    message: format!("{why}\nerror: {op} of service/{service} did not succeed"),
                });
            }
            None => {}
        }
        if started.elapsed() > limit {
            return Err(CliError {
                code: 1,
                message: format!(
                    "error: service/{service} is {} after {}; {op} has not completed",
                    now.state,
                    clusvc_core::model::Duration::from(limit)
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
