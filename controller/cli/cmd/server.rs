//! `clusvc server --store etcd:URL,...`: one of the API servers of a
//! cluster; the elected one runs the controller (see
//! `clusvc_daemon::server`).

use std::path::PathBuf;

use clusvc_daemon::server::ServerConfig;

use crate::app::CliError;
use crate::cmd::run::ApiArgs;

/// Arguments of `server`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store: etcd:URL[,URL...] (etcd:https://10.0.0.5:2379,https://10.0.0.6:2379).
    #[arg(long, value_name = "etcd:URL,...", env = "CLUSVC_STORE")]
    store: String,
    /// This server's name in the leader election [default: the host name].
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// CA certificate (PEM) of etcd's https:// endpoints.
    #[arg(long, value_name = "FILE")]
    etcd_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for etcd, when it requires one.
    #[arg(long, value_name = "FILE", requires_all = ["etcd_key", "etcd_ca_file"])]
    etcd_cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, value_name = "FILE", requires = "etcd_cert")]
    etcd_key: Option<PathBuf>,
    #[command(flatten)]
    api: ApiArgs,
}

/// Runs a server until interrupted.
pub fn run(args: Args) -> Result<u8, CliError> {
    clusvc_daemon::server::server(ServerConfig {
        api: args.api.config(),
        store: args.store,
        name: args.name,
        etcd_ca: args.etcd_ca_file,
        etcd_cert: args.etcd_cert.zip(args.etcd_key),
    })
    .map(|()| 0)
    .map_err(|e| CliError {
        code: e.exit_code(),
        message: format!("error: {e}"),
    })
}
