//! Console sessions: a login with a token opens one; the browser holds
//! only its random ID, in an `HttpOnly`, `SameSite=Strict` cookie (also
//! `Secure` over TLS). Each session has its own CSRF token, which every
//! state-changing request must carry. Sessions live in this server's
//! memory (a restart logs everyone out) and are bounded in number and
//! age.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};

/// The cookie's name.
pub(crate) const COOKIE: &str = "clusvc_session";

/// How long a session lasts after its login.
pub(crate) const LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// At most this many sessions of each role; the oldest of the role goes
/// first (so logins with the read token never end an admin's session).
const MAX_PER_ROLE: usize = 2048;

/// At most this many live streams (`/ui/stream`) per session.
pub(crate) const MAX_STREAMS: usize = 8;

/// At most this many live streams of all the sessions of a role, so the
/// readers' streams cannot take every connection the server accepts.
pub(crate) const MAX_ROLE_STREAMS: usize = 256;

/// What a session may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Everything the API token may do.
    Admin,
    /// Read only (the read token): no button that would change anything
    /// is shown, and every change is refused.
    Reader,
}

/// One logged-in browser.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// What it may do.
    pub role: Role,
    /// The token its state-changing requests carry.
    pub csrf: String,
    /// Its ID (the cookie's value).
    pub id: String,
    created: Instant,
    streams: Arc<AtomicUsize>,
}

/// A live stream of a session; gives its places back when dropped.
pub(crate) struct Stream(Arc<AtomicUsize>, Arc<AtomicUsize>);

impl Drop for Stream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
        self.1.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Takes a place under `max`, if one is left.
fn take(n: &AtomicUsize, max: usize) -> bool {
    n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |k| {
        (k < max).then_some(k + 1)
    })
    .is_ok()
}

impl Session {
    /// Whether it may change things.
    pub fn admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// The sessions of this server.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    /// Live streams of the admins' sessions, and of the readers'.
    role_streams: [Arc<AtomicUsize>; 2],
}

/// 32 random bytes from the kernel, in hex.
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 32];
    let mut filled = 0;
    while filled < bytes.len() {
        // SAFETY: the pointer and length describe the unfilled part of
        // `bytes`, which lives across the call.
        let n = unsafe {
            libc::getrandom(bytes[filled..].as_mut_ptr().cast(), bytes.len() - filled, 0)
        };
        if n > 0 {
            filled += n as usize;
        } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            // getrandom(2) without flags blocks until the pool is ready and
            // does not fail otherwise on Linux >= 3.17.
            panic!("getrandom failed: {}", std::io::Error::last_os_error());
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sessions({})", self.lock().len())
    }
}

/// The session cookie's value in a request.
pub(crate) fn cookie_of(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session: its ID (for the cookie).
    pub fn open(&self, role: Role) -> String {
        let id = random_id();
        let session = Session {
            role,
            csrf: random_id(),
            id: id.clone(),
            created: Instant::now(),
            streams: Arc::default(),
        };
        let mut map = self.lock();
        map.retain(|_, s| s.created.elapsed() < LIFETIME);
        if map.values().filter(|s| s.role == role).count() >= MAX_PER_ROLE
            && let Some(oldest) = map
                .iter()
                .filter(|(_, s)| s.role == role)
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(id.clone(), session);
        id
    }

    /// The live session of an ID.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.lock();
        match map.get(id) {
            Some(s) if s.created.elapsed() < LIFETIME => Some(s.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    /// The live session a request's cookie names.
    pub fn of(&self, headers: &HeaderMap) -> Option<Session> {
        cookie_of(headers).and_then(|id| self.get(id))
    }

    /// A place for one more live stream of a session, if it has one left.
    pub fn stream(&self, session: &Session) -> Option<Stream> {
        let role = &self.role_streams[usize::from(session.role == Role::Reader)];
        if !take(role, MAX_ROLE_STREAMS) {
            return None;
        }
        if !take(&session.streams, MAX_STREAMS) {
            role.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Stream(session.streams.clone(), role.clone()))
    }

    /// Ends a session.
    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// Equality whose time does not depend on where the inputs differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    crate::api::access::constant_time_eq(a.as_bytes(), b.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_open_get_close_and_are_bounded() {
        let s = Sessions::default();
        let id = s.open(Role::Reader);
        assert_eq!(id.len(), 64);
        let got = s.get(&id).unwrap();
        assert_eq!(got.role, Role::Reader);
        assert_ne!(got.csrf, id);
        assert!(s.get("nosuch").is_none());
        s.close(&id);
        assert!(s.get(&id).is_none());
        let admin = s.open(Role::Admin);
        let first = s.open(Role::Reader);
        for _ in 0..MAX_PER_ROLE {
            s.open(Role::Reader);
        }
        assert_eq!(s.lock().len(), MAX_PER_ROLE + 1);
        assert!(s.get(&first).is_none(), "the oldest reader went first");
        assert!(s.get(&admin).is_some(), "readers never evict an admin");
    }

    #[test]
    fn streams_per_session_are_bounded_and_given_back() {
        let s = Sessions::default();
        let id = s.open(Role::Reader);
        let session = s.get(&id).unwrap();
        let held: Vec<Stream> = (0..MAX_STREAMS)
            .map(|_| s.stream(&session).unwrap())
            .collect();
        assert!(s.stream(&session).is_none());
        drop(held);
        assert!(s.stream(&session).is_some());
        // All the readers' sessions together are bounded too; an admin
        // still gets a stream.
        let mut held = Vec::new();
        for _ in 0..MAX_ROLE_STREAMS / MAX_STREAMS + 1 {
            let id = s.open(Role::Reader);
            let r = s.get(&id).unwrap();
            held.extend((0..MAX_STREAMS).filter_map(|_| s.stream(&r)));
        }
        assert_eq!(held.len(), MAX_ROLE_STREAMS);
        let admin = s.get(&s.open(Role::Admin)).unwrap();
        assert!(s.stream(&admin).is_some());
    }

    #[test]
    fn ids_differ() {
        assert_ne!(random_id(), random_id());
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
