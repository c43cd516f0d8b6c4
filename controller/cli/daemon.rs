//! `clusvc run`: the single-machine daemon (API server + controller + local
//! agent, embedded store).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::agent::{Agent, LocalAgent};
use crate::controller::{Controller, EventLog, Metrics, Settings, keys};
use crate::exec::Executor;
use crate::model::{Member, Object};
use crate::resources::{Events, Host};
use crate::server::{self, App, gitops};
use crate::store::embedded::Embedded;
use crate::store::{Op, Store, Txn};

use super::Failure;

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
    lease_ttl: crate::model::Duration,
    /// Full resync interval of the manifests directory.
    #[arg(long, default_value = "30s")]
    resync: crate::model::Duration,
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

/// Runs until interrupted.
pub fn run(args: Args) -> Result<u8, Failure> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::bad_input(format!("error: cannot start the runtime: {e}")))?;
    rt.block_on(serve(args))
}

async fn serve(args: Args) -> Result<u8, Failure> {
    let fail = |m: String| Failure {
        code: 1,
        message: format!("error: {m}"),
    };
    let token = match &args.token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| {
                    Failure::bad_input(format!("error: cannot read {}: {e}", f.display()))
                })?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let listener = server::bind(args.listen, token.as_deref())
        .await
        .map_err(|e| Failure::bad_input(format!("error: {e}")))?;
    let state_dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
    let store = Arc::new(Embedded::open(state_dir.join("store")).map_err(|e| fail(e.to_string()))?);
    let member = args.member.clone().unwrap_or_else(hostname);
    let events = Arc::new(EventLog::default());
    let metrics = Arc::new(Metrics::default());
    let mut host = Host::new(&member);
    if let Some(ns) = &args.member_netns {
        host = host.with_network_namespace(ns);
    }
    if let Some(pid) = args.member_mount_ns_of {
        host = host.with_mount_namespace_of(pid);
    }
    if let Some(p) = &args.smb_conf {
        host.smb_conf = p.clone();
    }
    if let Some(p) = &args.samba_shares {
        host.samba_shares = p.clone();
    }
    if let Some(p) = &args.ganesha_exports {
        host.ganesha_exports = p.clone();
    }
    if let Some(p) = &args.ganesha_pid {
        host.ganesha_pid = p.clone();
    }
    host.state_dir = state_dir.join("agent");
    if !nix::unistd::geteuid().is_root() {
        host.ha_rsctmp = state_dir.join("rsctmp");
    }
    let exec = Arc::new(Executor::new(
        Arc::new(host),
        events.clone() as Arc<dyn Events>,
    ));
    let agent: Arc<dyn Agent> = Arc::new(LocalAgent::new(exec));
    declare_member(store.as_ref(), &member)
        .await
        .map_err(fail)?;
    heartbeat(
        store.clone(),
        member.clone(),
        args.lease_ttl.get(),
        metrics.clone(),
    )
    .await
    .map_err(fail)?;
    return_freed_memory();
    let sync = Arc::new(Mutex::new(gitops::SyncStatus::default()));
    if let Some(dir) = &args.manifests {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        // The first sync happens before the controller starts, so what the
        // tree declares is in place before anything is planned.
        gitops::sync_once(store.as_ref(), &dir, &sync, events.as_ref()).await;
        gitops::spawn(
            store.clone(),
            dir,
            sync.clone(),
            events.clone() as Arc<dyn Events>,
            args.resync.get(),
        )
        .map_err(fail)?;
    }
    let controller = Controller::new(
        store.clone(),
        vec![agent],
        events.clone(),
        metrics.clone(),
        Settings {
            concurrency: args.concurrency,
            ..Settings::default()
        },
    );
    controller.start().await.map_err(|e| fail(e.to_string()))?;
    let app = Arc::new(App {
        store: store.clone(),
        controller,
        token,
        sync,
    });
    tracing::info!(
        "clusvc run: member {member}, state in {}, API on http://{}",
        state_dir.display(),
        args.listen
    );
    eprintln!(
        "clusvc: member {member}; API on http://{}; state in {}",
        args.listen,
        state_dir.display()
    );
    axum::serve(listener, server::router(app))
        .with_graceful_shutdown(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("signal handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        })
        .await
        .map_err(|e| fail(e.to_string()))?;
    Ok(0)
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

/// Declares this machine as a member when nothing declares it yet.
async fn declare_member<S: Store>(store: &S, member: &str) -> Result<(), String> {
    let key = format!("{}{member}", keys::MEMBERS);
    if store.get(&key).await.map_err(|e| e.to_string())?.is_some() {
        return Ok(());
    }
    let mut m = Member::new(member);
    if crate::model::desired::check(&[Object::Member(m.clone())])
        .iter()
        .any(|i| i.path == "metadata.name")
    {
        return Err(format!(
            "member name {member:?} is not a DNS label; pass --member NAME"
        ));
    }
    m.metadata
        .annotations
        .insert(keys::SOURCE_ANNOTATION.to_string(), "local".to_string());
    store
        .txn(Txn {
            compare: vec![crate::store::Compare::Missing(key.clone())],
            success: vec![Op::Put {
                key,
                value: keys::encode(&m),
                lease: None,
            }],
            failure: vec![],
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Keeps this member's lease alive.
async fn heartbeat<S: Store>(
    store: Arc<S>,
    member: String,
    ttl: Duration,
    metrics: Arc<Metrics>,
) -> Result<(), String> {
    let key = format!("{}{member}", keys::LEASES);
    let register = {
        let store = store.clone();
        let key = key.clone();
        move || {
            let store = store.clone();
            let key = key.clone();
            async move {
                let lease = store.grant(ttl).await.map_err(|e| e.to_string())?;
                store
                    .txn(Txn {
                        success: vec![Op::Put {
                            key,
                            value: b"alive".to_vec(),
                            lease: Some(lease),
                        }],
                        ..Txn::default()
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(lease)
            }
        }
    };
    let mut lease = register().await?;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(ttl / 3).await;
            match store.keepalive(lease).await {
                Ok(()) => {
                    metrics
                        .lease_renewals
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::warn!("lease of {member} lost ({e}); registering again");
                    if let Ok(l) = register().await {
                        lease = l;
                    }
                }
            }
        }
    });
    Ok(())
}
