//! `clusvc apply -f ... [--prune] [--dry-run] [--wait]`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clusvc_core::api::{
    APPLY_SOURCE, ApplyRequest, ApplyResult, DisplayState, PlanRequest, PlanResponse, ServiceView,
};
use clusvc_core::model::ServiceState;

use super::load;
use crate::app::{CliError, Files};
use crate::client::Client;

/// Arguments of `apply`.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    files: Files,
    /// Delete objects previously applied with `apply` that are not in the input.
    #[arg(long)]
    prune: bool,
    /// Validate on the server and report; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Take over objects managed by a manifests directory.
    #[arg(long)]
    force: bool,
    /// Wait until the cluster has reconciled the change.
    #[arg(long)]
    wait: bool,
    /// Longest wait.
    #[arg(long, default_value = "5m")]
    timeout: clusvc_core::model::Duration,
}

/// `apply`.
pub fn apply(client: &Client, args: ApplyArgs) -> Result<u8, CliError> {
    let loaded = load(&args.files)?;
    let req = ApplyRequest {
        members: loaded.desired.members().values().cloned().collect(),
        services: loaded.desired.services().values().cloned().collect(),
        source: APPLY_SOURCE.into(),
        prune: args.prune,
        dry_run: args.dry_run,
        force: args.force,
    };
    let resp: ApplyResult = client.post("/v1/apply", &req)?;
    let suffix = if args.dry_run {
        " (server dry run)"
    } else {
        ""
    };
    for o in &resp.objects {
        println!("{}/{} {}{suffix}", o.kind, o.name, o.result);
    }
    if args.wait && !args.dry_run {
        wait_reconciled(client, resp.revision, args.timeout.get())?;
    }
    Ok(0)
}

/// Polls the live plan until it has no changes and nothing is in transition.
fn wait_reconciled(client: &Client, revision: u64, limit: Duration) -> Result<(), CliError> {
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let plan: PlanResponse = client.post("/v1/plan", &PlanRequest::default())?;
        let services: Vec<ServiceView> = client.get("/v1/services")?;
        let busy: Vec<&ServiceView> = services
            .iter()
            .filter(|s| {
                matches!(
                    s.state,
                    DisplayState::State(
                        ServiceState::Starting | ServiceState::Stopping | ServiceState::Relocating
                    )
                )
            })
            .collect();
        let caught_up = plan.revision >= revision;
        if caught_up && !plan.changes && busy.is_empty() {
            if tty {
                eprintln!(
                    "\rreconciled in {:.1}s{:30}",
                    started.elapsed().as_secs_f64(),
                    ""
                );
            } else {
                eprintln!("reconciled in {:.1}s", started.elapsed().as_secs_f64());
            }
            return Ok(());
        }
        let pending = plan.plan.services.iter().filter(|s| s.is_change()).count();
        let line = format!("waiting: {pending} planned, {} in progress", busy.len());
        if tty {
            eprint!("\r{line:60}");
        } else if line != last {
            eprintln!("{line}");
        }
        last = line;
        if started.elapsed() > limit {
            return Err(CliError {
                code: 1,
                message: format!(
                    "\nerror: not reconciled after {}",
                    clusvc_core::model::Duration::from(limit)
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
