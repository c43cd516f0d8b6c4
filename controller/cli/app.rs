//! The command tree. Errors are reported once, here, with the exit codes of
//! SPEC §6: 0 success, 1 changes (plan, diff), 2 bad
//! input, 3 server unreachable.

use crate::client;
use crate::cmd::{
    agent, apply, completion, create, delete, describe, diff, events, get, member, operate, plan,
    run, schema, server, store, validate,
};
use clusvc_core::api::Operation;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Exit code for bad input.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code when plan or diff finds changes.
pub const EXIT_CHANGES: u8 = 1;
/// Exit code when the server cannot be reached.
pub const EXIT_UNREACHABLE: u8 = 3;

/// clusvc: a high-availability service manager for Linux clusters.
#[derive(Debug, Parser)]
#[command(name = "clusvc", version, about, propagate_version = true)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// A client command's own arguments and how it reaches the server.
#[derive(Debug, clap::Args)]
pub struct Remote<T: clap::Args> {
    /// The command's arguments.
    #[command(flatten)]
    pub args: T,
    /// `--server`, `--token-file`.
    #[command(flatten)]
    pub conn: client::Conn,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Output formats of listing commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Plain text (the default).
    Text,
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Single-machine daemon: API server, controller and local agent on an embedded store.
    Run(Box<run::Args>),
    /// Cluster API server on etcd: serves the API and agents; the elected one runs the controller.
    Server(Box<server::Args>),
    /// A member's agent: holds the member's lease through the servers and fences itself when it cannot.
    Agent(agent::Args),
    /// The watchdog `clusvc agent` starts: fences the member if the agent stops publishing deadlines.
    #[command(hide = true)]
    Watchdog(agent::WatchdogArgs),
    /// Create or update objects from manifests (`service/web created|configured|unchanged`).
    ///
    /// With --wait: exit 0 once everything converged, 1 if an applied service
    /// ended failed or blocked (its reason is printed) or the wait timed out.
    Apply(Remote<apply::ApplyArgs>),
    /// Diff manifests against the live desired state; exit 0 none, 1 some.
    Diff(Remote<Files>),
    /// Show the plan that would run; changes nothing. Exit 0 no change, 1 changes, 2 error.
    Plan(Remote<plan::Args>),
    /// List services, members or the GitOps sync status.
    Get(Remote<get::GetArgs>),
    /// Show a service or member: spec, resource status, recent events.
    Describe(Remote<describe::DescribeArgs>),
    /// Delete a service (stopped first) or a member.
    Delete(Remote<delete::DeleteArgs>),
    /// Move a service to another member (leaves no lasting constraint).
    Relocate(Remote<operate::RelocateArgs>),
    /// Drain a member at run time (`member standby NAME`) or undo it (`member unstandby NAME`).
    Member(Remote<member::Args>),
    /// Enable a service (and clear a failure).
    Enable(Remote<operate::ToggleArgs>),
    /// Disable a service: stop it and keep it stopped.
    Disable(Remote<operate::ToggleArgs>),
    /// Stop and start a service in place.
    Restart(Remote<operate::OpArgs>),
    /// Neither check nor change a service.
    Freeze(Remote<operate::OpArgs>),
    /// Undo freeze.
    Unfreeze(Remote<operate::OpArgs>),
    /// Forget a failure (failed or blocked) and retry.
    Clear(Remote<operate::OpArgs>),
    /// Create a service from a seed-style script (the seed's --add_service).
    Create(Remote<create::CreateArgs>),
    /// Show events; --follow keeps streaming.
    Events(Remote<events::EventsArgs>),
    /// Check manifests offline; exit 0 valid, 2 invalid.
    Validate(validate::Args),
    /// Print JSON Schemas of the manifest kinds, or write them with CRD-style YAML.
    Schema(schema::Args),
    /// Check or repair the embedded store, offline (stop the daemon first).
    Store(store::Args),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completion(completion::CompletionArgs),
    /// Print the man page (roff).
    Man,
}

/// Manifest paths given with `-f` (files, directories, `-` for stdin).
#[derive(Debug, Clone, clap::Args)]
pub struct Files {
    /// A manifest file, a directory (recursive) or - for stdin; repeatable.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    pub files: Vec<PathBuf>,
}

/// A failure at the command line's edge, with its exit code.
#[derive(Debug)]
pub struct CliError {
    /// Exit code.
    pub code: u8,
    /// What to print on stderr.
    pub message: String,
}

impl CliError {
    /// Bad input (exit 2).
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_BAD_INPUT,
            message: message.into(),
        }
    }
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // One prefix for every error the command line prints.
            let text = e.render().to_string();
            let text = text
                .strip_prefix("Error:")
                .map_or(text.clone(), |rest| format!("error:{rest}"));
            eprint!("{text}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    init_logging(cli.log_format);
    if !matches!(
        cli.command,
        Command::Run(_) | Command::Server(_) | Command::Agent(_) | Command::Watchdog(_)
    ) {
        // A client piped into `head` ends quietly, as Unix tools do.
        // SAFETY: resetting a signal disposition at startup, before any threads.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let result = match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Server(args) => server::run(*args),
        Command::Agent(args) => agent::run(args),
        Command::Watchdog(args) => agent::watchdog_process(args),
        Command::Apply(r) => r.conn.client().and_then(|c| apply::apply(&c, r.args)),
        Command::Diff(r) => r.conn.client().and_then(|c| diff::diff(&c, r.args)),
        Command::Plan(r) => plan::run(r.args, || r.conn.client()),
        Command::Get(r) => r.conn.client().and_then(|c| get::get(&c, r.args)),
        Command::Describe(r) => r.conn.client().and_then(|c| describe::describe(&c, r.args)),
        Command::Delete(r) => r.conn.client().and_then(|c| delete::delete(&c, r.args)),
        Command::Relocate(r) => r.conn.client().and_then(|c| operate::relocate(&c, r.args)),
        Command::Member(r) => r.conn.client().and_then(|c| member::run(&c, r.args)),
        Command::Enable(r) => r
            .conn
            .client()
            .and_then(|c| operate::toggle(&c, Operation::Enable, r.args)),
        Command::Disable(r) => r
            .conn
            .client()
            .and_then(|c| operate::toggle(&c, Operation::Disable, r.args)),
        Command::Restart(r) => r
            .conn
            .client()
            .and_then(|c| operate::operate(&c, Operation::Restart, r.args)),
        Command::Freeze(r) => r
            .conn
            .client()
            .and_then(|c| operate::operate(&c, Operation::Freeze, r.args)),
        Command::Unfreeze(r) => r
            .conn
            .client()
            .and_then(|c| operate::operate(&c, Operation::Unfreeze, r.args)),
        Command::Clear(r) => r
            .conn
            .client()
            .and_then(|c| operate::operate(&c, Operation::Clear, r.args)),
        Command::Create(r) => {
            if r.args.dry_run {
                create::create(None, r.args)
            } else {
                r.conn
                    .client()
                    .and_then(|c| create::create(Some(&c), r.args))
            }
        }
        Command::Events(r) => r.conn.client().and_then(|c| events::events(&c, r.args)),
        Command::Validate(args) => validate::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Store(args) => store::run(args),
        Command::Completion(args) => completion::completion(args),
        Command::Man => completion::man(),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("{}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLUSVC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
