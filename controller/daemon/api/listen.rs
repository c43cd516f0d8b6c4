//! The API's listeners: the Unix socket (the default, authorised by peer
//! credentials), and optionally TCP, which always needs the token and, off
//! loopback, TLS.

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::unistd::Gid;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;

/// Why a listener cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A TCP listener with no token.
    #[error("refusing to listen on {0} without a token: every TCP listener needs --token-file")]
    NeedsToken(SocketAddr),
    /// A non-loopback TCP listener without TLS.
    #[error(
        "refusing to listen on {0} without TLS: give --tls-cert and --tls-key (or --insecure-no-tls, on purpose)"
    )]
    NeedsTls(SocketAddr),
    /// Binding failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The error of bind(2).
        source: io::Error,
    },
    /// Another daemon answers on the socket.
    #[error(
        "another clusvc daemon is serving {}: stop it, or give this one its own --socket",
        .0.display()
    )]
    SocketInUse(PathBuf),
    /// Something that is not a socket is where the socket goes.
    #[error("{} exists and is not a socket: refusing to replace it", .0.display())]
    NotASocket(PathBuf),
    /// The socket could not be created or given its owner and mode.
    #[error("cannot create the socket {}: {source}", path.display())]
    Socket {
        /// The socket's path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The certificate or key could not be used.
    #[error("TLS: {what} {}: {why}", path.display())]
    Tls {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

/// How long a socket that accepts connections may take to stop accepting
/// before it counts as another daemon's.
const STALE_WAIT: Duration = Duration::from_secs(2);

/// Whether a live process listens on the socket at `path`. A daemon killed
/// while starting an action leaves a child that holds a copy of its
/// descriptors until it executes (a few milliseconds while it joins its
/// cgroup): the kernel still accepts connections for it. So a socket that
/// accepts is asked again until [`STALE_WAIT`] has passed; one that stops
/// accepting was stale, one that keeps accepting belongs to a live daemon.
fn socket_answers(path: &Path) -> bool {
    let deadline = std::time::Instant::now() + STALE_WAIT;
    loop {
        if std::os::unix::net::UnixStream::connect(path).is_err() {
            return false;
        }
        if std::time::Instant::now() >= deadline {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Creates the Unix socket at `path`: mode 0660 (0666 with
/// `world_readable`, for `--allow-read-all`), group `group`. A stale socket
/// left by a crash is replaced; a live one is refused. The socket is
/// created under a temporary name and renamed into place once its owner
/// and mode are set, so nobody can connect while it is more open.
pub fn bind_unix(
    path: &Path,
    group: Option<Gid>,
    world_readable: bool,
) -> Result<tokio::net::UnixListener, ServeError> {
    let err = |source: io::Error| ServeError::Socket {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        std::fs::create_dir_all(dir).map_err(err)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(err)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.file_type().is_socket() => {
            if socket_answers(path) {
                return Err(ServeError::SocketInUse(path.to_path_buf()));
            }
            tracing::info!("removing the stale socket {}", path.display());
            std::fs::remove_file(path).map_err(err)?;
        }
        Ok(_) => return Err(ServeError::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let std_listener = std::os::unix::net::UnixListener::bind(&tmp).map_err(err)?;
    let set_up = || -> io::Result<()> {
        std::fs::set_permissions(
            &tmp,
            std::fs::Permissions::from_mode(if world_readable { 0o666 } else { 0o660 }),
        )?;
        if let Some(g) = group {
            nix::unistd::chown(&tmp, None, Some(g)).map_err(io::Error::from)?;
        }
        std::fs::rename(&tmp, path)?;
        std_listener.set_nonblocking(true)
    };
    if let Err(e) = set_up() {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    tokio::net::UnixListener::from_std(std_listener).map_err(err)
}

/// Binds a TCP listener after checking the policy: a token always, TLS off
/// loopback unless `insecure_no_tls`.
pub async fn bind_tcp(
    addr: SocketAddr,
    has_token: bool,
    has_tls: bool,
    insecure_no_tls: bool,
) -> Result<TcpListener, ServeError> {
    if !has_token {
        return Err(ServeError::NeedsToken(addr));
    }
    if !addr.ip().is_loopback() && !has_tls {
        if !insecure_no_tls {
            return Err(ServeError::NeedsTls(addr));
        }
        tracing::warn!(
            "--insecure-no-tls: the API on {addr} is plain HTTP; the token and every object cross the network readable"
        );
    }
    // A port in use may be held by a child a killed daemon was starting
    // (until it executes, as the Unix socket): asked again for a moment.
    let deadline = std::time::Instant::now() + STALE_WAIT;
    loop {
        match TcpListener::bind(addr).await {
            Err(e)
                if e.kind() == io::ErrorKind::AddrInUse && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            r => return r.map_err(|source| ServeError::Bind { addr, source }),
        }
    }
}

/// Reads a PEM certificate chain and private key into a server
/// configuration. A key file others may read is refused.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::os::unix::fs::MetadataExt;
    let bad = |what, path: &Path, why: String| ServeError::Tls {
        what,
        path: path.to_path_buf(),
        why,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| bad("certificate", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(bad(
            "certificate",
            cert,
            "no certificate in the file".into(),
        ));
    }
    let md = std::fs::metadata(key).map_err(|e| bad("key", key, e.to_string()))?;
    if md.mode() & 0o007 != 0 {
        return Err(bad(
            "key",
            key,
            format!(
                "it is readable or writable by others (mode {:o}); chmod o= it",
                md.mode() & 0o777
            ),
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| bad("key", key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("certificate", cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| bad("key", key, format!("does not fit the certificate: {e}")))?;
    Ok(Arc::new(config))
}

/// Most TLS handshakes in flight; more connections wait in the kernel's
/// backlog.
const MAX_HANDSHAKES: usize = 256;

/// Most handshakes in flight from one address.
const MAX_HANDSHAKES_PER_ADDR: usize = 8;

/// A handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// A TCP listener that hands out connections once their TLS handshake is
/// done. Handshakes run in their own tasks, bounded in number (in all and
/// per address) and in time, so a slow or silent client holds up nobody
/// else.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Serves TLS with `config` on `tcp`.
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let (tx, ready) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        let per_addr: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>> =
            Arc::default();
        tokio::spawn(async move {
            loop {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (stream, addr) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: back off.
                        tracing::warn!("accepting a TLS connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                {
                    let mut m = per_addr.lock().unwrap_or_else(|p| p.into_inner());
                    let n = m.entry(addr.ip()).or_default();
                    if *n >= MAX_HANDSHAKES_PER_ADDR {
                        continue; // closed at once
                    }
                    *n += 1;
                }
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                let per_addr = per_addr.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, addr)).await;
                        }
                        Ok(Err(e)) => tracing::debug!("TLS handshake with {addr} failed: {e}"),
                        Err(_) => tracing::debug!("TLS handshake with {addr} timed out"),
                    }
                    let mut m = per_addr.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(n) = m.get_mut(&addr.ip()) {
                        *n -= 1;
                        if *n == 0 {
                            m.remove(&addr.ip());
                        }
                    }
                    drop(permit);
                });
            }
        });
        Ok(Self { ready })
    }

    /// The next connection whose handshake is done.
    pub async fn accept_tls(&mut self) -> (TlsStream<TcpStream>, SocketAddr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept task ended (the runtime is shutting down).
            None => std::future::pending().await,
        }
    }
}
