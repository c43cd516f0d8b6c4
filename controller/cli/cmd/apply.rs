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
    /// Delete objects you applied before with the same --source that are
    /// not in the input.
    #[arg(long)]
    prune: bool,
    /// With --prune and an input that declares nothing: prune every object
    /// of this source (refused otherwise).
    #[arg(long, requires = "prune")]
    allow_empty: bool,
    /// A label for this set of objects; the server records them as
    /// LABEL@YOU (`apply@root`), and --prune touches only those.
    #[arg(long, value_name = "LABEL", default_value = APPLY_SOURCE)]
    source: String,
    /// Validate on the server and report; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Take over objects managed by a manifests directory.
    #[arg(long)]
    force: bool,
    /// Wait until the cluster has reconciled the change; exit 1 if a service
    /// ended failed or blocked, or the wait timed out.
    #[arg(long)]
    wait: bool,
    /// Longest wait.
    #[arg(long, default_value = "5m")]
    timeout: clusvc_core::model::Duration,
}

/// `apply`.
pub fn apply(client: &Client, args: ApplyArgs) -> Result<u8, CliError> {
    let loaded = load(&args.files)?;
    let declared = loaded.desired.members().len() + loaded.desired.services().len();
    if declared == 0 && !args.allow_empty {
        return Err(CliError::bad_input(
            "error: no objects passed to apply (with --prune, --allow-empty prunes everything of this source)",
        ));
    }
    let req = ApplyRequest {
        members: loaded.desired.members().values().cloned().collect(),
        services: loaded.desired.services().values().cloned().collect(),
        source: args.source,
        prune: args.prune,
        dry_run: args.dry_run,
        force: args.force,
        create_only: false,
        allow_empty_prune: args.allow_empty,
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
        let names: Vec<String> = loaded.desired.services().keys().cloned().collect();
        return wait_reconciled(client, resp.revision, &names, args.timeout.get());
    }
    Ok(0)
}

/// Why a service of the apply did not converge: it is failed or blocked,
/// and no retry is pending.
fn not_converged(s: &ServiceView, plan: &PlanResponse) -> Option<String> {
    let DisplayState::State(state @ (ServiceState::Failed | ServiceState::Blocked)) = s.state
    else {
        return None;
    };
    let planned = plan.plan.service(&s.name);
    if planned.is_some_and(|p| p.retry_at.is_some() || p.is_change()) {
        return None; // a recovery is still coming
    }
    let why = s
        .observed
        .as_ref()
        .and_then(|o| o.failure.as_ref())
        .map(|f| {
            let mut t = format!("{} of {} failed", f.phase.word(), f.resource);
            if !f.reason.is_empty() {
                t.push_str(": ");
                t.push_str(&f.reason);
            }
            t
        })
        .or_else(|| planned.map(|p| p.reason.clone()))
        .unwrap_or_default();
    Some(format!("service/{} {state}: {why}", s.name))
}

/// Polls the live plan until it has no changes and nothing is in transition.
/// Exit 0 when every applied service converged, 1 when one ended failed or
/// blocked (as `kubectl wait` does when a condition is not met) or the wait
/// timed out.
fn wait_reconciled(
    client: &Client,
    revision: u64,
    names: &[String],
    limit: Duration,
) -> Result<u8, CliError> {
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
        let retrying = plan
            .plan
            .services
            .iter()
            .any(|p| p.retry_at.is_some() && names.contains(&p.service));
        if caught_up && !plan.changes && busy.is_empty() && !retrying {
            let failed: Vec<String> = services
                .iter()
                .filter(|s| names.contains(&s.name))
                .filter_map(|s| not_converged(s, &plan))
                .collect();
            if tty {
                eprint!("\r{:60}\r", "");
            }
            if !failed.is_empty() {
                return Err(CliError {
                    code: 1,
                    message: format!(
                        "{}\nerror: {} service(s) did not converge",
                        failed.join("\n"),
                        failed.len()
                    ),
                });
            }
            eprintln!("reconciled in {:.1}s", started.elapsed().as_secs_f64());
            return Ok(0);
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
