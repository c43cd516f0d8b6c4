//! `clusvc completion bash|zsh|fish|elvish|powershell` and `clusvc man`:
//! shell completions and the man page, generated from the command
//! definition so they never drift from it.

use std::io::Write as _;

use clap::CommandFactory;

use crate::app::{Cli, CliError};

/// Arguments of `completion`.
#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    /// The shell.
    shell: clap_complete::Shell,
}

/// Prints the completion script for a shell, e.g.
/// `clusvc completion bash > /etc/bash_completion.d/clusvc`.
pub fn completion(args: CompletionArgs) -> Result<u8, CliError> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "clusvc", &mut std::io::stdout());
    Ok(0)
}

/// Prints the man page (roff), e.g. `clusvc man > /usr/share/man/man1/clusvc.1`.
pub fn man() -> Result<u8, CliError> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|e| CliError::bad_input(format!("error: cannot render the man page: {e}")))?;
    std::io::stdout()
        .write_all(&out)
        .map_err(|e| CliError::bad_input(format!("error: {e}")))?;
    Ok(0)
}
