//! Serving the API on a listener, with bounds a hostile local user cannot
//! exhaust: a cap on connections in all, a smaller cap per peer (a uid on
//! the socket, an address on TCP) for everyone but the trusted (root, the
//! daemon's user, the admin group), and a deadline for each request head
//! (`header_read_timeout`, also between requests on a kept-alive
//! connection). A TCP connection counts against its address's cap only
//! until it sends a valid token (many clients behind one address are
//! fine once they authenticate). Connections over a cap are closed at
//! once, so they never hold a descriptor; the daemon's actions keep their
//! own headroom.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::access::{Peer, Policy};

/// The bounds of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once, in all.
    pub connections: usize,
    /// Connections open at once from one untrusted peer.
    pub per_peer: usize,
    /// A request head must arrive within this (and the next one, on a
    /// kept-alive connection).
    pub header_timeout: Duration,
}

impl Limits {
    /// The defaults for a process allowed `nofile` descriptors: a quarter of
    /// them (at most 4,096) for connections, 64 per untrusted peer, 10 s for
    /// a request head.
    pub fn for_nofile(nofile: u64) -> Self {
        let connections = usize::try_from((nofile / 4).clamp(64, 4096)).unwrap_or(64);
        Self {
            connections,
            per_peer: 64.min(connections / 4),
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// Raises the soft descriptor limit to the hard one; returns the result.
pub fn raise_nofile() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Err(_) => 1024,
    }
}

/// What counts as one peer for the per-peer cap.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PeerKey {
    Uid(u32),
    Addr(IpAddr),
}

/// Counts connections per peer; a slot is given back on drop.
#[derive(Default)]
struct PerPeer(Mutex<HashMap<PeerKey, usize>>);

struct Slot {
    map: Arc<PerPeer>,
    key: PeerKey,
}

impl PerPeer {
    fn take(self: &Arc<Self>, key: PeerKey, cap: usize) -> Option<Slot> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(key.clone()).or_default();
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Slot {
            map: self.clone(),
            key,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self.map.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

/// A listener the API is served on: accepts connections and says who is on
/// the other end.
pub trait Accept: Send + 'static {
    /// The connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The next connection and its peer.
    fn next(&mut self) -> impl Future<Output = (Self::Io, Peer)> + Send;
}

impl Accept for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;

    async fn next(&mut self) -> (Self::Io, Peer) {
        loop {
            match self.accept().await {
                Ok((s, _)) => {
                    let peer = super::access::unix_peer(&s);
                    return (s, peer);
                }
                Err(e) => accept_failed(e).await,
            }
        }
    }
}

impl Accept for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;

    async fn next(&mut self) -> (Self::Io, Peer) {
        loop {
            match self.accept().await {
                Ok((s, addr)) => {
                    let _ = s.set_nodelay(true);
                    return (s, Peer::Tcp(addr));
                }
                Err(e) => accept_failed(e).await,
            }
        }
    }
}

impl Accept for super::listen::TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

    async fn next(&mut self) -> (Self::Io, Peer) {
        let (s, addr) = self.accept_tls().await;
        (s, Peer::Tcp(addr))
    }
}

async fn accept_failed(e: std::io::Error) {
    // Out of descriptors and the like: back off instead of spinning.
    tracing::warn!("accepting a connection failed: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Serves `router` on `listener` until `stop` turns true; then stops
/// accepting, lets open requests finish and returns when all connections
/// are closed (the caller bounds that wait).
pub async fn serve<L: Accept>(
    mut listener: L,
    router: Router,
    policy: Policy,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let all = Arc::new(Semaphore::new(limits.connections));
    let per_peer = Arc::new(PerPeer::default());
    let mut refused_logged = tokio::time::Instant::now() - Duration::from_secs(60);
    loop {
        let (io, peer) = tokio::select! {
            c = listener.next() => c,
            _ = stop.wait_for(|s| *s) => break,
        };
        let Some(slots) = admit(&all, &per_peer, &policy, &peer, limits) else {
            // Closed at once; said now and then, not for every connection.
            if refused_logged.elapsed() >= Duration::from_secs(10) {
                refused_logged = tokio::time::Instant::now();
                tracing::warn!("refusing connections from {peer:?}: connection limit reached");
            }
            drop(io);
            continue;
        };
        let router = router.clone();
        let (permit, slot) = slots;
        let slot = Arc::new(Mutex::new(slot));
        let held = slot.clone();
        let policy = policy.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
            if matches!(peer, Peer::Tcp(_)) && super::access::holds_token(&policy, req.headers()) {
                // Authenticated: no longer held to its address's cap.
                held.lock().unwrap_or_else(|p| p.into_inner()).take();
            }
            req.extensions_mut().insert(ConnectInfo(peer.clone()));
            let mut router = router.clone();
            async move { tower_service::Service::call(&mut router, req).await }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(io), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop((permit, slot));
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A connection's slots: one of all, and one of its peer's unless trusted.
fn admit(
    all: &Arc<Semaphore>,
    per_peer: &Arc<PerPeer>,
    policy: &Policy,
    peer: &Peer,
    limits: Limits,
) -> Option<(OwnedSemaphorePermit, Option<Slot>)> {
    let permit = all.clone().try_acquire_owned().ok()?;
    let key = match peer {
        Peer::Unix { uid, gid, groups } if policy.is_admin(*uid, *gid, groups) => None,
        Peer::Unix { uid, .. } => Some(PeerKey::Uid(*uid)),
        Peer::Tcp(addr) => Some(PeerKey::Addr(addr.ip())),
        Peer::Unknown => Some(PeerKey::Uid(u32::MAX)),
    };
    let slot = match key {
        Some(k) => Some(per_peer.take(k, limits.per_peer)?),
        None => None,
    };
    Some((permit, slot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_peer_slots_are_capped_and_given_back() {
        let p = Arc::new(PerPeer::default());
        let a = p.take(PeerKey::Uid(7), 2).unwrap();
        let _b = p.take(PeerKey::Uid(7), 2).unwrap();
        assert!(p.take(PeerKey::Uid(7), 2).is_none());
        assert!(p.take(PeerKey::Uid(8), 2).is_some());
        drop(a);
        assert!(p.take(PeerKey::Uid(7), 2).is_some());
    }

    #[test]
    fn limits_leave_descriptors_for_actions() {
        let l = Limits::for_nofile(1024);
        assert_eq!((l.connections, l.per_peer), (256, 64));
        assert_eq!(Limits::for_nofile(1 << 20).connections, 4096);
    }
}
