//! The `clusvc` binary: everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    clusvc::cli::main()
}
