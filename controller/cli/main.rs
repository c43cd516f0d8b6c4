//! The `clusvc` binary: the command line of SPEC §6.
//!
//! # Layout
//!
//! - [`app`]: the command tree (clap), logging, and the one place errors
//!   become exit codes.
//! - [`client`]: the HTTP client of the client commands.
//! - `cmd/`: one file per command.
//! - [`output`]: tables, YAML and JSON output, ages.
//!
//! Dependencies: client commands use `clusvc-core`'s model and wire types
//! (`clusvc_core::api`) and `clusvc-manifest` to read `-f` inputs; only
//! `clusvc run` reaches into `clusvc-daemon`, through its composition root.

mod app;
mod client;
mod cmd;
mod output;
mod unix_http;

// mimalloc: loading 100,000 services is mostly small allocations, and
// glibc's malloc spent 40% of the time in them (and left more resident).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    app::main()
}
