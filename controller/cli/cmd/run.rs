//! `clusvc run`: the single-machine daemon. The flags map onto the daemon's
//! [`Config`]; everything else happens in `clusvc_daemon::run`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clusvc_core::model::Duration;
use clusvc_daemon::run::Config;

use crate::app::CliError;

/// The API and controller options `run` and `server` share.
#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    /// A manifests directory to keep in sync (GitOps).
    #[arg(long, value_name = "DIR")]
    pub(crate) manifests: Option<PathBuf>,
    /// Where the embedded store and agent state live.
    #[arg(long, value_name = "DIR", env = "CLUSVC_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// The API's Unix socket [default: /run/clusvc/clusvc.sock as root,
    /// STATE-DIR/clusvc.sock otherwise].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Members of this group may change objects through the socket
    /// [default: clusvc, if that group exists; otherwise root only].
    #[arg(long, value_name = "GROUP")]
    admin_group: Option<String>,
    /// Let every local user read (get, describe, events, plan) through the
    /// socket; only root and the admin group may change anything.
    #[arg(long)]
    allow_read_all: bool,
    /// Serve the API on TCP as well (e.g. 127.0.0.1:7450; port 0 picks a
    /// free one): always with a bearer token, off loopback with TLS.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// The bearer token TCP clients must send [default: STATE-DIR/token,
    /// created on first start]; non-empty, readable by its owner only.
    #[arg(long, value_name = "FILE", requires = "listen")]
    token_file: Option<PathBuf>,
    /// A second token, for reading only: its holders may read through the
    /// API and the web console, and change nothing (same file rules as
    /// --token-file).
    #[arg(long, value_name = "FILE", requires = "listen")]
    read_token_file: Option<PathBuf>,
    /// TLS certificate chain (PEM) for --listen.
    #[arg(long, value_name = "FILE", requires_all = ["listen", "tls_key"])]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for --listen; not readable by others.
    #[arg(long, value_name = "FILE", requires_all = ["listen", "tls_cert"])]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback --listen address (the token and
    /// every object cross the network readable; logged as a warning).
    #[arg(long, requires = "listen", conflicts_with = "tls_cert")]
    insecure_no_tls: bool,
    /// Accept members' agents (`clusvc agent`) over --listen: a directory
    /// of MEMBER.token files (each readable by its owner only); the agent of
    /// MEMBER authenticates with its token and may act only as MEMBER.
    #[arg(long, value_name = "DIR", requires = "listen")]
    agent_tokens: Option<PathBuf>,
    /// Services reconciled in parallel.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Status checks of this member's services run in parallel (apart from
    /// reconciles; a check that hangs holds its place until its service's
    /// timeout).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=4096))]
    check_concurrency: u16,
    /// Lease time-to-live (`run`: of the local agent; `server`: of its
    /// leadership).
    #[arg(long, default_value = "5s")]
    lease_ttl: Duration,
    /// Full resync interval of the manifests directory.
    #[arg(long, default_value = "30s")]
    resync: Duration,
}

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    api: ApiArgs,
    /// This machine's member name (declared automatically when the
    /// manifests do not declare it).
    #[arg(long, value_name = "NAME")]
    member: Option<String>,
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

impl ApiArgs {
    /// The daemon's configuration with these options (and no member ones).
    pub fn config(self) -> Config {
        Config {
            manifests: self.manifests,
            state_dir: self.state_dir,
            member: None,
            socket: self.socket,
            admin_group: self.admin_group,
            allow_read_all: self.allow_read_all,
            listen: self.listen,
            token_file: self.token_file,
            read_token_file: self.read_token_file,
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            insecure_no_tls: self.insecure_no_tls,
            agent_tokens: self.agent_tokens,
            concurrency: self.concurrency,
            check_concurrency: usize::from(self.check_concurrency),
            lease_ttl: self.lease_ttl,
            resync: self.resync,
            member_netns: None,
            member_mount_ns_of: None,
            smb_conf: None,
            samba_shares: None,
            ganesha_exports: None,
            ganesha_pid: None,
        }
    }
}

/// Runs the daemon until interrupted.
pub fn run(args: Args) -> Result<u8, CliError> {
    clusvc_daemon::run::run(Config {
        member: args.member,
        member_netns: args.member_netns,
        member_mount_ns_of: args.member_mount_ns_of,
        smb_conf: args.smb_conf,
        samba_shares: args.samba_shares,
        ganesha_exports: args.ganesha_exports,
        ganesha_pid: args.ganesha_pid,
        ..args.api.config()
    })
    .map(|()| 0)
    .map_err(|e| CliError {
        code: e.exit_code(),
        message: format!("error: {e}"),
    })
}
