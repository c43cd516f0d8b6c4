//! `clusvc run`: the single-machine daemon (API server + controller + local
//! agent, embedded store).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clusvc_agent::events::Events;
use clusvc_agent::exec::Executor;
use clusvc_agent::fence::CommandFencer;
use clusvc_agent::resources::Host;
use clusvc_agent::{Agent, LocalAgent};
use clusvc_store::embedded::Embedded;

use crate::api::{self, App};
use crate::heartbeat;
use crate::reconcile::{Controller, EventLog, Metrics, Settings};
use crate::sync::{gitops, member};
use clusvc_core::api::SyncStatus;

/// What `clusvc run` is asked to do.
#[derive(Debug, Clone)]
pub struct Config {
    /// A manifests directory to keep in sync (GitOps).
    pub manifests: Option<PathBuf>,
    /// Where the embedded store and agent state live.
    pub state_dir: Option<PathBuf>,
    /// This machine's member name (declared automatically when the
    /// manifests do not declare it).
    pub member: Option<String>,
    /// API address.
    pub listen: SocketAddr,
    /// Bearer token file; required to listen on a non-loopback address.
    pub token_file: Option<PathBuf>,
    /// Services reconciled in parallel.
    pub concurrency: usize,
    /// Lease time-to-live of the local agent.
    pub lease_ttl: clusvc_core::model::Duration,
    /// Full resync interval of the manifests directory.
    pub resync: clusvc_core::model::Duration,
    /// Run this member's resource commands in this network namespace
    /// (`/run/netns/NAME`): for containers and tests.
    pub member_netns: Option<PathBuf>,
    /// Run this member's resource commands in the mount namespace of this
    /// process, reading mounts from its mountinfo.
    pub member_mount_ns_of: Option<u32>,
    /// smb.conf used to reload smbd.
    pub smb_conf: Option<PathBuf>,
    /// The Samba include file clusvc manages (smb.conf must include it).
    pub samba_shares: Option<PathBuf>,
    /// The nfs-ganesha include file clusvc manages.
    pub ganesha_exports: Option<PathBuf>,
    /// nfs-ganesha's pid file.
    pub ganesha_pid: Option<PathBuf>,
}

fn default_state_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/clusvc");
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("clusvc")
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .map(|h| h.split('.').next().unwrap_or("").to_lowercase())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node1".to_string())
}

/// Reads the bearer token: a file only its owner may read, holding a
/// non-empty token.
fn read_token(path: &std::path::Path) -> Result<String, Error> {
    use std::os::unix::fs::MetadataExt;
    let unsafe_token = |why: String| Error::Token {
        path: path.to_path_buf(),
        why,
    };
    let md = std::fs::metadata(path).map_err(|source| Error::TokenFile {
        path: path.to_path_buf(),
        source,
    })?;
    if md.mode() & 0o077 != 0 {
        return Err(unsafe_token(format!(
            "it is readable or writable by others (mode {:o}); chmod 600 it",
            md.mode() & 0o777
        )));
    }
    let token = std::fs::read_to_string(path)
        .map_err(|source| Error::TokenFile {
            path: path.to_path_buf(),
            source,
        })?
        .trim()
        .to_string();
    if token.is_empty() {
        return Err(unsafe_token("it is empty".into()));
    }
    Ok(token)
}

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The async runtime could not be created.
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The token file could not be read.
    #[error("cannot read {path}: {source}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The token file is not safe to use.
    #[error("refusing the token file {}: {why}", path.display())]
    Token {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The listen address was refused or could not be bound.
    #[error(transparent)]
    Listen(#[from] api::ServeError),
    /// The local member could not be declared.
    #[error(transparent)]
    Member(#[from] member::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] clusvc_store::Error),
    /// The manifests directory cannot be watched.
    #[error(transparent)]
    Sync(#[from] gitops::WatchError),
    /// The controller could not start.
    #[error(transparent)]
    Controller(#[from] crate::reconcile::Error),
    /// Serving the API failed.
    #[error("serving the API failed: {0}")]
    Serve(#[source] std::io::Error),
}

impl Error {
    /// The process exit code: 2 for bad input (the runtime, the token file,
    /// the listen address), 1 otherwise (including a member name that is not
    /// a DNS label, as before).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Runtime(_)
            | Error::TokenFile { .. }
            | Error::Token { .. }
            | Error::Listen(_) => 2,
            _ => 1,
        }
    }
}

/// Runs until interrupted.
pub fn run(config: Config) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    rt.block_on(serve(config))
}

fn host_for(config: &Config, member: &str, state_dir: &std::path::Path) -> Host {
    let mut host = Host::new(member);
    if let Some(ns) = &config.member_netns {
        host = host.with_network_namespace(ns);
    }
    if let Some(pid) = config.member_mount_ns_of {
        host = host.with_mount_namespace_of(pid);
    }
    if let Some(p) = &config.smb_conf {
        host.smb_conf = p.clone();
    }
    if let Some(p) = &config.samba_shares {
        host.samba_shares = p.clone();
    }
    if let Some(p) = &config.ganesha_exports {
        host.ganesha_exports = p.clone();
    }
    if let Some(p) = &config.ganesha_pid {
        host.ganesha_pid = p.clone();
    }
    host.state_dir = state_dir.join("agent");
    if !nix::unistd::geteuid().is_root() {
        host.ha_rsctmp = state_dir.join("rsctmp");
    }
    host
}

async fn serve(config: Config) -> Result<(), Error> {
    let token = match &config.token_file {
        Some(f) => Some(read_token(f)?),
        None => None,
    };
    let listener = api::bind(config.listen, token.as_deref()).await?;
    let state_dir = config.state_dir.clone().unwrap_or_else(default_state_dir);
    let store = Arc::new(Embedded::open(state_dir.join("store"))?);
    let member = config.member.clone().unwrap_or_else(hostname);
    std::fs::create_dir_all(&state_dir).map_err(Error::Serve)?;
    let events = Arc::new(EventLog::open(state_dir.join("events.jsonl")).map_err(Error::Serve)?);
    let metrics = Arc::new(Metrics::default());
    let host = host_for(&config, &member, &state_dir);
    let exec = Arc::new(Executor::new(
        Arc::new(host),
        events.clone() as Arc<dyn Events>,
    ));
    let agent: Arc<dyn Agent> = Arc::new(LocalAgent::new(exec));
    member::declare_local(store.as_ref(), &member).await?;
    heartbeat::spawn(
        store.clone(),
        member.clone(),
        config.lease_ttl.get(),
        metrics.clone(),
    )
    .await?;
    return_freed_memory();
    let sync = Arc::new(Mutex::new(SyncStatus::default()));
    if let Some(dir) = &config.manifests {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        // The first sync happens before the controller starts, so what the
        // tree declares is in place before anything is planned.
        let mut cache = clusvc_manifest::ParseCache::default();
        gitops::sync_once(store.as_ref(), &dir, &sync, events.as_ref(), &mut cache).await;
        gitops::spawn(
            store.clone(),
            dir,
            sync.clone(),
            events.clone() as Arc<dyn Events>,
            config.resync.get(),
            cache,
        )?;
    }
    let controller = Controller::new(
        store.clone(),
        vec![agent],
        Arc::new(CommandFencer::default()),
        events.clone(),
        metrics.clone(),
        Settings {
            concurrency: config.concurrency,
            ..Settings::default()
        },
    );
    controller.start().await?;
    let shutdown = Arc::new(tokio::sync::Notify::new());
    let app = Arc::new(App {
        store: store.clone(),
        shutdown: shutdown.clone(),
        cache: controller.reader(),
        controller,
        token,
        sync,
    });
    // With `--listen 127.0.0.1:0` the kernel picks a free port: say which,
    // in the log and in `<state-dir>/address`, for whoever started us.
    let bound = listener.local_addr().map_err(Error::Serve)?;
    publish_address(&state_dir, bound).map_err(Error::Serve)?;
    tracing::info!(
        "clusvc run: member {member}, state in {}, API on http://{bound}",
        state_dir.display(),
    );
    eprintln!(
        "clusvc: member {member}; API on http://{bound}; state in {}",
        state_dir.display()
    );
    axum::serve(listener, api::router(app))
        .with_graceful_shutdown(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("signal handler");
            let signal = tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            tracing::info!(
                "{signal} received: shutting down (services keep running; the next start probes them)"
            );
            // Open streams (`events --follow`) end now; whatever still
            // holds a connection gets 2 s.
            shutdown.notify_waiters();
            tokio::spawn(async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                tracing::warn!("connections still open after 2 s; exiting");
                std::process::exit(0);
            });
        })
        .await
        .map_err(Error::Serve)?;
    Ok(())
}

/// Writes the bound API address to `<state-dir>/address` (atomically: a
/// reader sees the old file or the new one, never half of it).
fn publish_address(state_dir: &std::path::Path, addr: SocketAddr) -> std::io::Result<()> {
    let tmp = state_dir.join(".address.tmp");
    std::fs::write(&tmp, format!("http://{addr}\n"))?;
    std::fs::rename(&tmp, state_dir.join("address"))
}

/// Periodically hands memory freed after bursts (a large apply, a mass
/// start) back to the system: glibc keeps freed heap pages otherwise, and a
/// long-running daemon's RSS should reflect what it holds.
fn return_freed_memory() {
    #[cfg(target_env = "gnu")]
    tokio::spawn(async {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            // SAFETY: malloc_trim only releases free memory of the allocator.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    });
}
