//! `clusvc validate -f PATH...`

use clusvc_manifest::{self as manifest, Options};

use crate::app::{CliError, Files};

/// Arguments of `validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    files: Files,
    /// Do not read user scripts (for checks on a machine without them).
    #[arg(long)]
    skip_script_checks: bool,
}

/// Prints what is valid, or every error with its position.
pub fn run(args: Args) -> Result<u8, CliError> {
    let options = Options {
        check_scripts: !args.skip_script_checks,
        ..Options::default()
    };
    let loaded = manifest::load_paths(&args.files.files, options).map_err(|e| {
        CliError::bad_input(format!(
            "{e}\nerror: the input is invalid; nothing was applied"
        ))
    })?;
    let d = &loaded.desired;
    println!(
        "valid: {} member(s), {} service(s)",
        d.members().len(),
        d.services().len()
    );
    Ok(0)
}
