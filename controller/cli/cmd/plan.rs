//! `clusvc plan --offline -f PATH... [--observed PATH] [--fail-member NAME]...`

use std::path::PathBuf;
use std::time::SystemTime;

use clusvc_core::api::{PlanRequest, PlanResponse};
use clusvc_core::model::{MemberRefs, ObservedState, Timestamp};
use clusvc_core::plan;
use clusvc_manifest::{self as manifest, Options};

use crate::app::{CliError, EXIT_CHANGES, Output};

/// Arguments of `plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Manifests to plan as if applied (required with --offline).
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    files: Vec<PathBuf>,
    /// Plan without a server, against nothing running or `--observed`.
    #[arg(long)]
    offline: bool,
    /// Observed state (YAML or JSON) to plan against, with `--offline`: a
    /// file, or a directory whose files are merged (a member or service in
    /// two of them is an error).
    #[arg(long, value_name = "PATH", requires = "offline")]
    observed: Option<PathBuf>,
    /// Treat this member as dead (what-if); repeatable.
    #[arg(long = "fail-member", value_name = "NAME")]
    fail_member: Vec<String>,
    /// The time to plan for (RFC 3339); default now.
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
    /// Do not read user scripts.
    #[arg(long)]
    skip_script_checks: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

/// Prints the plan; exit 0 without changes, 1 with.
pub fn run(
    args: Args,
    client: impl FnOnce() -> Result<crate::client::Client, CliError>,
) -> Result<u8, CliError> {
    let mut options = Options {
        check_scripts: !args.skip_script_checks,
        ..Options::default()
    };
    if !args.offline {
        // The server plans the input merged with what it stores.
        options.member_refs = MemberRefs::InInputOrStore;
        let client = client()?;
        let (members, services) = if args.files.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            let l = manifest::load_paths(&args.files, options)
                .map_err(|e| CliError::bad_input(format!("{e}\nerror: the input is invalid")))?;
            (
                l.desired.members().values().cloned().collect(),
                l.desired.services().values().cloned().collect(),
            )
        };
        let resp: PlanResponse = client.post(
            "/v1/plan",
            &PlanRequest {
                members,
                services,
                fail_members: args.fail_member.clone(),
            },
        )?;
        match args.output {
            Output::Text => print!("{}", resp.text),
            Output::Json => println!(
                "{}",
                serde_json::to_string_pretty(&resp.plan).unwrap_or_default()
            ),
            Output::Yaml => print!(
                "{}",
                serde_saphyr::to_string(&resp.plan).unwrap_or_default()
            ),
        }
        return Ok(if resp.changes { EXIT_CHANGES } else { 0 });
    }
    if args.files.is_empty() {
        return Err(CliError::bad_input("error: --offline needs -f PATH"));
    }
    let loaded = manifest::load_paths(&args.files, options)
        .map_err(|e| CliError::bad_input(format!("{e}\nerror: the input is invalid")))?;
    let now = match &args.now {
        Some(t) => {
            Timestamp::parse(t).map_err(|e| CliError::bad_input(format!("error: --now: {e}")))?
        }
        None => Timestamp::from_system(SystemTime::now()),
    };
    let mut observed = match &args.observed {
        Some(path) => load_observed(path)?,
        None => ObservedState::default(),
    };
    for m in &args.fail_member {
        if !loaded.desired.members().contains_key(m) {
            return Err(CliError::bad_input(format!(
                "error: --fail-member: {m:?} is not a declared member"
            )));
        }
        observed.fail_member(m, now);
    }
    let plan = plan::plan(&loaded.desired, &observed, now);
    match args.output {
        Output::Text => print!("{plan}"),
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&plan).unwrap_or_default()
        ),
        Output::Yaml => print!("{}", serde_saphyr::to_string(&plan).unwrap_or_default()),
    }
    Ok(if plan.has_changes() { EXIT_CHANGES } else { 0 })
}

/// Reads `--observed`: a file, or every file of a directory merged (a
/// member or service in two files is an error naming both; nothing is
/// ignored).
fn load_observed(path: &std::path::Path) -> Result<ObservedState, CliError> {
    let inputs = manifest::load::read_observed_inputs(path)
        .map_err(|e| CliError::bad_input(e.to_string()))?;
    if inputs.is_empty() {
        return Err(CliError::bad_input(format!(
            "error: --observed {}: no observed state in it",
            path.display()
        )));
    }
    let mut merged = ObservedState::default();
    let mut from: std::collections::BTreeMap<(&str, String), &str> = Default::default();
    for input in &inputs {
        let one = manifest::load::decode_observed(input)
            .map_err(|e| CliError::bad_input(e.to_string()))?;
        for (name, m) in one.members {
            if let Some(first) = from.insert(("member", name.clone()), &input.name) {
                return Err(CliError::bad_input(format!(
                    "error: {}: member {name:?} is also in {first}",
                    input.name
                )));
            }
            merged.members.insert(name, m);
        }
        for (name, o) in one.services {
            if let Some(first) = from.insert(("service", name.clone()), &input.name) {
                return Err(CliError::bad_input(format!(
                    "error: {}: service {name:?} is also in {first}",
                    input.name
                )));
            }
            merged.services.insert(name, o);
        }
    }
    Ok(merged)
}
