//! `clusvc run`: the single-machine daemon. The flags map onto the daemon's
//! [`Config`]; everything else happens in `clusvc_daemon::run`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clusvc_core::model::Duration;
use clusvc_daemon::run::Config;

use crate::app::CliError;

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A manifests directory to keep in sync (GitOps).
    #[arg(long, value_name = "DIR")]
    manifests: Option<PathBuf>,
    /// Where the embedded store and agent state live.
    #[arg(long, value_name = "DIR", env = "CLUSVC_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// This machine's member name (declared automatically when the
    /// manifests do not declare it).
    #[arg(long, value_name = "NAME")]
    member: Option<String>,
    /// API address.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:7450")]
    listen: SocketAddr,
    /// Bearer token file; required to listen on a non-loopback address.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Services reconciled in parallel.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Lease time-to-live of the local agent.
    #[arg(long, default_value = "5s")]
    lease_ttl: Duration,
    /// Full resync interval of the manifests directory.
    #[arg(long, default_value = "30s")]
    resync: Duration,
    /// Run this member's resource commands in this network namespace
    /// (`/run/netns/NAME`): for containers and tests.
    #[arg(long, value_name = "PATH")]
    member_netns: Option<PathBuf>,
    /// Run this member's resource commands in the mount namespace of this
    /// process, reading mounts from its mountinfo.
    #[arg(long, value_name = "PID")]
    member_mount_ns_of: Option<u32>,
    /// smb.conf used to reload smbd.
    #[arg(long, value_name = "FILE")]
    smb_conf: Option<PathBuf>,
    /// The Samba include file clusvc manages (smb.conf must include it).
    #[arg(long, value_name = "FILE")]
    samba_shares: Option<PathBuf>,
    /// The nfs-ganesha include file clusvc manages.
    #[arg(long, value_name = "FILE")]
    ganesha_exports: Option<PathBuf>,
    /// nfs-ganesha's pid file.
    #[arg(long, value_name = "FILE")]
    ganesha_pid: Option<PathBuf>,
}

/// Runs the daemon until interrupted.
pub fn run(args: Args) -> Result<u8, CliError> {
    clusvc_daemon::run::run(Config {
        manifests: args.manifests,
        state_dir: args.state_dir,
        member: args.member,
        listen: args.listen,
        token_file: args.token_file,
        concurrency: args.concurrency,
        lease_ttl: args.lease_ttl,
        resync: args.resync,
        member_netns: args.member_netns,
        member_mount_ns_of: args.member_mount_ns_of,
        smb_conf: args.smb_conf,
        samba_shares: args.samba_shares,
        ganesha_exports: args.ganesha_exports,
        ganesha_pid: args.ganesha_pid,
    })
    .map(|()| 0)
    .map_err(|e| CliError {
        code: e.exit_code(),
        message: format!("error: {e}"),
    })
}
