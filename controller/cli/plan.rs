//! `clusvc plan --offline -f PATH... [--observed FILE] [--fail-member NAME]...`

use std::path::PathBuf;
use std::time::SystemTime;

use crate::manifest::{self, Options};
use crate::model::{ObservedState, Timestamp};
use crate::plan;

use super::{EXIT_CHANGES, EXIT_UNREACHABLE, Failure, Files, Output};

/// Arguments of `plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    files: Files,
    /// Plan without a server, against nothing running or `--observed`.
    #[arg(long)]
    offline: bool,
    /// Observed state (YAML) to plan against, with `--offline`.
    #[arg(long, value_name = "FILE", requires = "offline")]
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
pub fn run(args: Args) -> Result<u8, Failure> {
    if !args.offline {
        return Err(Failure {
            code: EXIT_UNREACHABLE,
            message: "error: live planning needs a running clusvc server; use --offline to plan without one".into(),
        });
    }
    let options = Options {
        check_scripts: !args.skip_script_checks,
    };
    let loaded = manifest::load_paths(&args.files.files, options)
        .map_err(|e| Failure::bad_input(format!("{e}\nerror: the input is invalid")))?;
    let now = match &args.now {
        Some(t) => {
            Timestamp::parse(t).map_err(|e| Failure::bad_input(format!("error: --now: {e}")))?
        }
        None => Timestamp::from_system(SystemTime::now()),
    };
    let mut observed = match &args.observed {
        Some(path) => {
            let inputs = manifest::read_inputs(std::slice::from_ref(path))
                .map_err(|e| Failure::bad_input(e.to_string()))?;
            manifest::load::decode_as::<ObservedState>(&inputs[0])
                .map_err(|e| Failure::bad_input(e.to_string()))?
        }
        None => ObservedState::default(),
    };
    for m in &args.fail_member {
        if !loaded.desired.members().contains_key(m) {
            return Err(Failure::bad_input(format!(
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
