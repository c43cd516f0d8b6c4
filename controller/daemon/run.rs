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
use clusvc_store::Store;
use clusvc_store::embedded::Embedded;

use crate::api::access::{AdminGroup, Policy};
use crate::api::listen::{self, ServeError, TlsListener};
use crate::api::serve;
use crate::api::{self, App};
use crate::heartbeat;
use crate::reconcile::{Controller, EventLog, Metrics, Settings};
use crate::sync::{gitops, member};
use clusvc_core::api::{SyncStatus, paths};

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
    /// The API's Unix socket (default `/run/clusvc/clusvc.sock` for root,
    /// `STATE-DIR/clusvc.sock` otherwise).
    pub socket: Option<PathBuf>,
    /// Members of this group may write through the socket (default
    /// `clusvc` when that group exists; otherwise root only).
    pub admin_group: Option<String>,
    /// Users outside the admin group may read through the socket.
    pub allow_read_all: bool,
    /// A TCP address to serve the API on as well (token always; TLS off
    /// loopback).
    pub listen: Option<SocketAddr>,
    /// Bearer token file for TCP (default: `STATE-DIR/token`, created on
    /// first start).
    pub token_file: Option<PathBuf>,
    /// A read-only bearer token file for TCP (API reads and the web
    /// console's read-only role).
    pub read_token_file: Option<PathBuf>,
    /// TLS certificate chain (PEM) for the TCP listener.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP off loopback (warned about).
    pub insecure_no_tls: bool,
    /// A directory of member agent tokens, `MEMBER.token` each: the agent
    /// of MEMBER authenticates with it (over TCP) and may act only as
    /// MEMBER.
    pub agent_tokens: Option<PathBuf>,
    /// Services reconciled in parallel.
    pub concurrency: usize,
    /// Local status checks run in parallel.
    pub check_concurrency: usize,
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
    paths::default_state_dir(
        nix::unistd::geteuid().is_root(),
        std::env::var_os("XDG_STATE_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

/// The admin group: the one named (or numbered), which must exist, or
/// `clusvc` when it exists.
fn admin_group(name: Option<&str>) -> Result<Option<AdminGroup>, Error> {
    let lookup = |n: &str| {
        let by_name = nix::unistd::Group::from_name(n).ok().flatten();
        match (by_name, n.parse::<u32>()) {
            (Some(g), _) => Some(AdminGroup {
                name: g.name,
                gid: g.gid,
            }),
            // A numeric group id, named or not (as chown takes one).
            (None, Ok(gid)) => Some(AdminGroup {
                name: n.to_string(),
                gid: nix::unistd::Gid::from_raw(gid),
            }),
            (None, Err(_)) => None,
        }
    };
    match name {
        Some(n) => lookup(n)
            .map(Some)
            .ok_or_else(|| Error::AdminGroup(n.to_string())),
        None => Ok(lookup("clusvc")),
    }
}

/// The token of the TCP listener: the file given, or `STATE-DIR/token`,
/// created (0600, 32 random bytes in hex) when it does not exist yet.
fn tcp_token(config: &Config, state_dir: &std::path::Path) -> Result<(String, PathBuf), Error> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(f) = &config.token_file {
        return Ok((read_token(f)?, f.clone()));
    }
    let path = state_dir.join(paths::TOKEN_FILE);
    let create = |source| Error::TokenFile {
        path: path.clone(),
        source,
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
    {
        Ok(mut f) => {
            let mut bytes = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut r| r.read_exact(&mut bytes))
                .map_err(create)?;
            let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            f.write_all(format!("{token}\n").as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(create)?;
            tracing::info!("created the API token {}", path.display());
            Ok((token, path))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok((read_token(&path)?, path)),
        Err(e) => Err(create(e)),
    }
}

pub(crate) fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .map(|h| h.split('.').next().unwrap_or("").to_lowercase())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node1".to_string())
}

/// Reads the bearer token: a regular file (not a link) owned by the
/// daemon's user (or root) that only its owner may read, holding a
/// non-empty token. The checks are made on the opened file.
fn read_token(path: &std::path::Path) -> Result<String, Error> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let unsafe_token = |why: String| Error::Token {
        path: path.to_path_buf(),
        why,
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|source| match source.raw_os_error() {
            Some(libc::ELOOP) => unsafe_token("it is a symbolic link".into()),
            _ => Error::TokenFile {
                path: path.to_path_buf(),
                source,
            },
        })?;
    let md = f.metadata().map_err(|source| Error::TokenFile {
        path: path.to_path_buf(),
        source,
    })?;
    let me = nix::unistd::geteuid().as_raw();
    if !md.is_file() {
        return Err(unsafe_token("it is not a regular file".into()));
    }
    if md.uid() != me && md.uid() != 0 {
        return Err(unsafe_token(format!(
            "it belongs to uid {}, not to the daemon's user or root",
            md.uid()
        )));
    }
    if md.mode() & 0o077 != 0 {
        return Err(unsafe_token(format!(
            "it is readable or writable by others (mode {:o}); chmod 600 it",
            md.mode() & 0o777
        )));
    }
    let mut token = String::new();
    f.take(64 << 10)
        .read_to_string(&mut token)
        .map_err(|source| Error::TokenFile {
            path: path.to_path_buf(),
            source,
        })?;
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(unsafe_token("it is empty".into()));
    }
    Ok(token)
}

/// Reads `DIR/MEMBER.token` for each member: each as safe as the API
/// token, each distinct.
fn agent_tokens(dir: &std::path::Path) -> Result<Vec<(String, String)>, Error> {
    check_dir(dir, "agent token directory")?;
    let mut out: Vec<(String, String)> = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| Error::TokenFile {
        path: dir.to_path_buf(),
        source,
    })?;
    for e in entries.flatten() {
        let path = e.path();
        let Some(member) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".token"))
            .map(str::to_string)
        else {
            continue;
        };
        let token = read_token(&path)?;
        if out.iter().any(|(_, t)| *t == token) {
            return Err(Error::Token {
                path,
                why: "another member's agent has the same token".into(),
            });
        }
        out.push((member, token));
    }
    out.sort();
    Ok(out)
}

/// A directory the daemon keeps files in must be its own: a real directory
/// (not a link), owned by the daemon's user or root, and not writable by
/// anyone else (unless sticky, like /tmp, where others cannot replace what
/// is ours). Otherwise another user could swap the files root writes for
/// links.
fn check_dir(dir: &std::path::Path, what: &'static str) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::symlink_metadata(dir).map_err(Error::Serve)?;
    let refuse = |why: String| Error::UnsafeDir {
        what,
        dir: dir.to_path_buf(),
        why,
    };
    if !md.is_dir() {
        return Err(refuse("it is not a directory (a link is refused)".into()));
    }
    let me = nix::unistd::geteuid().as_raw();
    if md.uid() != me && md.uid() != 0 {
        return Err(refuse(format!(
            "it belongs to uid {}, not to the daemon's user or root",
            md.uid()
        )));
    }
    let sticky = md.mode() & 0o1000 != 0;
    if md.mode() & 0o022 != 0 && !sticky {
        return Err(refuse(format!(
            "it is writable by group or others (mode {:o}); chmod go-w it",
            md.mode() & 0o777
        )));
    }
    Ok(())
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
    /// A listener was refused or could not be made.
    #[error(transparent)]
    Listen(#[from] ServeError),
    /// A directory the daemon writes in is not safe.
    #[error("refusing the {what} {}: {why}", dir.display())]
    UnsafeDir {
        /// Which directory.
        what: &'static str,
        /// The directory.
        dir: PathBuf,
        /// Why.
        why: String,
    },
    /// The admin group does not exist.
    #[error("the admin group {0:?} does not exist (--admin-group)")]
    AdminGroup(String),
    /// Only one of the TLS certificate and key was given.
    #[error("--tls-cert and --tls-key go together")]
    TlsPair,
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
    /// `--store` is not `etcd:URL[,URL...]`.
    #[error(
        "--store {0:?}: expected etcd:URL[,URL...] with http:// or https:// URLs (etcd:http://127.0.0.1:2379)"
    )]
    StoreUrl(String),
    /// This binary was built without the etcd backend.
    #[error(
        "this clusvc was built without etcd support: build it with `cargo build --release --features etcd`"
    )]
    NoEtcd,
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
            | Error::Listen(_)
            | Error::AdminGroup(_)
            | Error::UnsafeDir { .. }
            | Error::StoreUrl(_)
            | Error::NoEtcd
            | Error::TlsPair => 2,
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
    // (The action cgroups, when available, are in `host.ns.cgroups`.)
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
    match clusvc_agent::resources::sys::cgroup::Cgroups::detect() {
        Ok(c) => {
            tracing::info!(
                "each action runs in its own cgroup under {}",
                c.parent().display()
            );
            host.ns.cgroups = Some(Arc::new(c));
        }
        Err(e) if nix::unistd::geteuid().is_root() => tracing::warn!(
            "actions run in their process group only (a process that calls setsid escapes the kill at a timeout): {e}"
        ),
        Err(e) => tracing::info!("actions run in their process group only: {e}"),
    }
    host.state_dir = state_dir.join("agent");
    if !nix::unistd::geteuid().is_root() {
        host.ha_rsctmp = state_dir.join("rsctmp");
    }
    host
}

/// The API's listeners and who may use them, made before anything else
/// is touched (bad input fails here).
pub(crate) struct Api {
    pub(crate) state_dir: PathBuf,
    pub(crate) admin_group: Option<AdminGroup>,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    pub(crate) token: Option<String>,
    pub(crate) read_token: Option<String>,
    tcp: Option<(tokio::net::TcpListener, PathBuf)>,
    pub(crate) agent_tokens: Vec<(String, String)>,
    socket: PathBuf,
    unix: tokio::net::UnixListener,
}

/// Checks the state directory and makes the API's listeners.
pub(crate) async fn prepare_api(config: &Config) -> Result<Api, Error> {
    let state_dir = config.state_dir.clone().unwrap_or_else(default_state_dir);
    if !state_dir.exists() {
        std::fs::create_dir_all(&state_dir).map_err(Error::Serve)?;
    }
    check_dir(&state_dir, "state directory")?;
    {
        // Others may pass through (to a socket kept here) but not list or
        // read: the files are private anyway.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o711))
            .map_err(Error::Serve)?;
    }
    let admin_group = admin_group(config.admin_group.as_deref())?;
    // TCP: bad input fails here, before anything is touched.
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) => Some(listen::tls_config(c, k)?),
        (None, None) => None,
        _ => return Err(Error::TlsPair),
    };
    let (token, tcp) = match config.listen {
        Some(addr) => {
            let (token, file) = tcp_token(config, &state_dir)?;
            let l = listen::bind_tcp(addr, true, tls.is_some(), config.insecure_no_tls).await?;
            (Some(token), Some((l, file)))
        }
        None => (None, None),
    };
    let read_token = match &config.read_token_file {
        Some(f) => Some(read_token(f)?),
        None => None,
    };
    if read_token.is_some() && read_token == token {
        return Err(Error::Token {
            path: config.read_token_file.clone().unwrap_or_default(),
            why: "it holds the API token itself; a read token must differ".into(),
        });
    }
    let agent_tokens = match &config.agent_tokens {
        Some(dir) => agent_tokens(dir)?,
        None => Vec::new(),
    };
    let socket = config
        .socket
        .clone()
        .unwrap_or_else(|| paths::default_socket(nix::unistd::geteuid().is_root(), &state_dir));
    if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(Error::Serve)?;
        }
        check_dir(dir, "socket's directory")?;
    }
    let unix = listen::bind_unix(
        &socket,
        admin_group.as_ref().map(|g| g.gid),
        config.allow_read_all,
    )?;
    Ok(Api {
        state_dir,
        admin_group,
        tls,
        token,
        read_token,
        tcp,
        agent_tokens,
        socket,
        unix,
    })
}

async fn serve(config: Config) -> Result<(), Error> {
    let api_setup = prepare_api(&config).await?;
    let state_dir = api_setup.state_dir.clone();
    let app_agent_tokens = api_setup.agent_tokens.clone();
    let store = Arc::new(Embedded::open(state_dir.join("store"))?);
    let member = config.member.clone().unwrap_or_else(hostname);
    let events = Arc::new(EventLog::open(state_dir.join("events.jsonl")).map_err(Error::Serve)?);
    let metrics = Arc::new(Metrics::default());
    let host = host_for(&config, &member, &state_dir);
    let cgroups = host.ns.cgroups.clone();
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
    // The members whose agents may connect are reached through the store.
    // This server leads alone: its epoch is the revision at which it says
    // so, newer than any earlier run's (agents refuse older work).
    let epoch = store
        .put(
            clusvc_store::election::LEADER,
            format!("clusvc run on {member}").into_bytes(),
        )
        .await?;
    let epoch = Arc::new(std::sync::atomic::AtomicU64::new(epoch));
    let mut agents = vec![agent];
    for (m, _) in &app_agent_tokens {
        if *m != member {
            agents.push(Arc::new(
                crate::reconcile::RemoteAgent::new(m.clone(), store.clone())
                    .with_epoch(epoch.clone()),
            ));
        }
    }
    let controller = Controller::new(
        store.clone(),
        agents,
        Arc::new(CommandFencer::default()),
        events.clone(),
        metrics.clone(),
        Settings {
            concurrency: config.concurrency,
            check_concurrency: config.check_concurrency,
            ..Settings::default()
        },
    );
    controller.start().await?;
    let shutdown = Arc::new(tokio::sync::Notify::new());
    let checks = controller.clone();
    let app = Arc::new(App {
        store: store.clone(),
        shutdown: shutdown.clone(),
        cache: controller.reader(),
        controller,
        policy: policy_of(&api_setup, config.allow_read_all),
        sync,
        wanted: Mutex::default(),
    });
    serve_api(
        app,
        api_setup,
        shutdown,
        &format!("clusvc run: member {member}"),
    )
    .await?;
    // The checks under way end before their cgroups are removed (one cut
    // off would be recorded as failed).
    checks.stop_checks().await;
    if let Some(c) = &cgroups {
        c.remove_empty();
    }
    Ok(())
}

/// Who may do what through the API.
pub(crate) fn policy_of(api: &Api, allow_read_all: bool) -> Policy {
    Policy {
        token: api.token.clone(),
        read_token: api.read_token.clone(),
        admin_group: api.admin_group.clone(),
        allow_read_all,
        agent_tokens: api.agent_tokens.clone(),
        sessions: Default::default(),
    }
}

/// Serves the API on its listeners until SIGINT or SIGTERM.
pub(crate) async fn serve_api<S: clusvc_store::Store>(
    app: Arc<App<S>>,
    api_setup: Api,
    shutdown: Arc<tokio::sync::Notify>,
    what: &str,
) -> Result<(), Error> {
    let Api {
        state_dir,
        admin_group,
        tls,
        tcp,
        socket,
        unix,
        ..
    } = api_setup;
    let me = nix::unistd::geteuid();
    let owner = if me.is_root() {
        "root".to_string()
    } else {
        nix::unistd::User::from_uid(me).ok().flatten().map_or_else(
            || format!("root and uid {me}"),
            |u| format!("root and {}", u.name),
        )
    };
    let who = match &admin_group {
        Some(g) => format!("{owner} and group {}", g.name),
        None => format!("{owner} only"),
    };
    let mut api = vec![format!("unix:{} ({who})", socket.display())];
    let mut address = format!("unix:{}", socket.display());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let limits = serve::Limits::for_nofile(serve::raise_nofile());
    let policy = app.policy.clone();
    let mut servers = tokio::task::JoinSet::new();
    if let Some((tcp, token_file)) = tcp {
        // With `--listen 127.0.0.1:0` the kernel picks a free port: say
        // which, in the log and in `<state-dir>/address`.
        let bound = tcp.local_addr().map_err(Error::Serve)?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        address = format!("{scheme}://{bound}");
        api.push(format!(
            "{address} (token in {}; web console at {address}/ui/)",
            token_file.display()
        ));
        let router = api::router(app.clone()).merge(crate::ui::router(app.clone(), tls.is_some()));
        match tls {
            Some(config) => {
                let l = TlsListener::new(tcp, config).map_err(Error::Serve)?;
                servers.spawn(serve::serve(
                    l,
                    router,
                    policy.clone(),
                    limits,
                    stopped.clone(),
                ));
            }
            None => {
                servers.spawn(serve::serve(
                    tcp,
                    router,
                    policy.clone(),
                    limits,
                    stopped.clone(),
                ));
            }
        }
    }
    servers.spawn(serve::serve(
        unix,
        api::router(app),
        policy,
        limits,
        stopped.clone(),
    ));
    publish_address(&state_dir, &address).map_err(Error::Serve)?;
    let api = api.join(" and ");
    tracing::info!("{what}, state in {}, API on {api}", state_dir.display());
    eprintln!(
        "clusvc: {}; API on {api}; state in {}",
        what.strip_prefix("clusvc ").unwrap_or(what),
        state_dir.display()
    );
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        let signal = tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        tracing::info!(
            "{signal} received: shutting down (services keep running; the next start probes them)"
        );
        // Open streams (`events --follow`) end now; whatever still holds a
        // connection gets 2 s.
        shutdown.notify_waiters();
        let _ = stop.send(true);
        tokio::time::sleep(Duration::from_secs(2)).await;
        tracing::warn!("connections still open after 2 s; exiting");
        std::process::exit(0);
    });
    while servers.join_next().await.is_some() {}
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

/// Writes the API's address (the TCP URL, else `unix:PATH`) to
/// `<state-dir>/address` (atomically: a
/// reader sees the old file or the new one, never half of it).
fn publish_address(state_dir: &std::path::Path, address: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = state_dir.join(".address.tmp");
    let _ = std::fs::remove_file(&tmp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?
        .write_all(format!("{address}\n").as_bytes())?;
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
