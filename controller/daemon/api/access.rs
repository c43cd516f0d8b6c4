//! Who may call the API. Whoever can write objects can run code as root,
//! so every request is authorised by who is on the other end:
//!
//! - **Unix socket**: the kernel says who connected (`SO_PEERCRED`, and
//!   `SO_PEERGROUPS` for the supplementary groups, as they were at
//!   `connect`). Root, the daemon's own user and members of the admin
//!   group (primary or supplementary) may do anything;
//!   anyone else gets 403, or may read (`GET`, and `POST /v1/plan`, which
//!   changes nothing) with `--allow-read-all`.
//! - **TCP** (plain or TLS): a bearer token, always, loopback included,
//!   compared in constant time.
//!
//! The caller's [`Identity`] goes into the request's extensions: apply
//! records objects under a source derived from it.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use nix::unistd::{Gid, Uid, User};

use clusvc_core::api::ErrorCode;
use clusvc_store::Store;

use super::{App, fail};

/// The other end of a connection.
#[derive(Debug, Clone)]
pub enum Peer {
    /// A local process on the Unix socket, as the kernel reports it.
    Unix {
        /// Its effective user.
        uid: u32,
        /// Its effective group.
        gid: u32,
        /// Its supplementary groups.
        groups: Vec<u32>,
    },
    /// A TCP client.
    Tcp(SocketAddr),
    /// A connection whose credentials could not be read: refused.
    Unknown,
}

/// Who is on the other end of a socket connection, as the kernel says.
pub(crate) fn unix_peer(stream: &tokio::net::UnixStream) -> Peer {
    use std::os::fd::AsRawFd;
    match stream.peer_cred() {
        Ok(c) => Peer::Unix {
            uid: c.uid(),
            gid: c.gid(),
            groups: peer_groups(stream.as_raw_fd()),
        },
        Err(e) => {
            tracing::warn!("cannot read the peer credentials of a connection: {e}");
            Peer::Unknown
        }
    }
}

/// `SO_PEERGROUPS` (Linux 4.13) of the generic socket ABI; the `libc`
/// crate does not export it. Architectures with their own socket ABI
/// (mips, sparc) get no supplementary groups: only the primary one counts.
const SO_PEERGROUPS: Option<libc::c_int> = if cfg!(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "riscv64",
    target_arch = "powerpc64",
    target_arch = "s390x",
    target_arch = "loongarch64"
)) {
    Some(59)
} else {
    None
};

/// The supplementary groups of the process that connected, as they were
/// when it connected (empty where the kernel cannot tell).
fn peer_groups(fd: std::os::fd::RawFd) -> Vec<u32> {
    let Some(option) = SO_PEERGROUPS else {
        return Vec::new();
    };
    let mut groups = vec![0u32; 64];
    // The kernel caps a process's groups at 65,536.
    for _ in 0..2 {
        let mut len = libc::socklen_t::try_from(groups.len() * 4).unwrap_or(0);
        // SAFETY: the buffer holds `len` bytes and outlives the call.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let len = usize::try_from(len).unwrap_or(0) / 4;
        if r == 0 {
            groups.truncate(len);
            return groups;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::ERANGE) || len > 65_536 {
            break;
        }
        groups.resize(len, 0);
    }
    Vec::new()
}

/// Who a request comes from, once authorised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A local user on the socket (`root`, `alice`, or `uid:1001` when the
    /// user has no name).
    User(String),
    /// The holder of the daemon's bearer token.
    Token,
    /// The holder of the read-only token (`GET`s and plans only).
    Reader,
    /// The agent of a member (its member's token): `/v1/agent/` only, as
    /// that member only.
    Agent(String),
}

impl Identity {
    /// How the identity is written in sources and logs: the user name,
    /// `token`, or `agent:MEMBER`.
    pub fn name(&self) -> String {
        match self {
            Identity::User(n) => n.clone(),
            Identity::Token => "token".into(),
            Identity::Reader => "reader".into(),
            Identity::Agent(m) => format!("agent:{m}"),
        }
    }
}

/// The admin group: its members may change what the daemon runs.
#[derive(Debug, Clone)]
pub struct AdminGroup {
    /// Its name.
    pub name: String,
    /// Its id.
    pub gid: Gid,
}

/// The daemon's access rules.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// The bearer token TCP clients must send.
    pub token: Option<String>,
    /// A second TCP token that may only read (`--read-token-file`).
    pub read_token: Option<String>,
    /// The admin group, if any.
    pub admin_group: Option<AdminGroup>,
    /// Users outside the admin group may read.
    pub allow_read_all: bool,
    /// Each member's agent token: (member, token).
    pub agent_tokens: Vec<(String, String)>,
    /// The web console's sessions (a connection showing one is trusted
    /// like one showing a token).
    pub(crate) sessions: std::sync::Arc<crate::ui::session::Sessions>,
}

impl Policy {
    /// Whether a Unix peer may write: root, the daemon's own user, or a
    /// member (primary or supplementary) of the admin group.
    pub(crate) fn is_admin(&self, uid: u32, gid: u32, groups: &[u32]) -> bool {
        if uid == 0 || uid == nix::unistd::geteuid().as_raw() {
            return true;
        }
        self.admin_group.as_ref().is_some_and(|g| {
            let admin = g.gid.as_raw();
            gid == admin || groups.contains(&admin)
        })
    }
}

fn user_name(uid: u32) -> Option<String> {
    User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// Requests that change nothing.
fn is_read(method: &Method, path: &str) -> bool {
    matches!(*method, Method::GET | Method::HEAD) || (*method == Method::POST && path == "/v1/plan")
}

/// Equality whose time does not depend on where the inputs differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    // `Bearer` in any case (RFC 7235 schemes are case-insensitive).
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
}

/// Whether the request carries the API token, the read token, a member's
/// agent token or a live console session.
pub(crate) fn holds_token(policy: &Policy, headers: &HeaderMap) -> bool {
    let Some(given) = bearer(headers) else {
        return policy.sessions.of(headers).is_some();
    };
    let admin = [&policy.token, &policy.read_token]
        .into_iter()
        .flatten()
        .any(|t| constant_time_eq(given.as_bytes(), t.as_bytes()));
    admin
        || policy
            .agent_tokens
            .iter()
            .any(|(_, t)| constant_time_eq(given.as_bytes(), t.as_bytes()))
}

/// The middleware: authorises the request or answers 401/403.
pub(crate) async fn authorize<S: Store>(
    State(app): State<std::sync::Arc<App<S>>>,
    headers: HeaderMap,
    mut request: Request,
    next: Next,
) -> Response {
    let policy = &app.policy;
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let peer = request
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|ConnectInfo(p)| p.clone());
    let identity = match peer {
        Some(Peer::Unix { uid, gid, groups }) => {
            let name = user_name(uid);
            let shown = name
                .as_ref()
                .map_or_else(|| format!("uid {uid}"), |n| format!("{n} (uid {uid})"));
            let who = name.unwrap_or_else(|| format!("uid:{uid}"));
            if policy.is_admin(uid, gid, &groups)
                || (policy.allow_read_all && is_read(&method, &path))
            {
                Identity::User(who)
            } else {
                let group = policy.admin_group.as_ref().map_or_else(
                    || "no admin group is configured (--admin-group)".to_string(),
                    |g| format!("not in the admin group {}", g.name),
                );
                let what = if policy.allow_read_all {
                    "may only read"
                } else {
                    "may not use this API"
                };
                tracing::info!("denied {method} {path} to {shown}: {group}");
                return fail(
                    ErrorCode::Forbidden,
                    format!("{shown} {what}: not root and {group}"),
                )
                .into_response();
            }
        }
        Some(Peer::Tcp(_)) => {
            let given = bearer(&headers);
            let admin = match (&policy.token, given) {
                (Some(token), Some(given)) => constant_time_eq(given.as_bytes(), token.as_bytes()),
                _ => false,
            };
            let agent = given.and_then(|g| {
                policy
                    .agent_tokens
                    .iter()
                    .find(|(_, t)| constant_time_eq(g.as_bytes(), t.as_bytes()))
                    .map(|(m, _)| m.clone())
            });
            let reader = match (&policy.read_token, given) {
                (Some(token), Some(given)) => constant_time_eq(given.as_bytes(), token.as_bytes()),
                _ => false,
            };
            match (admin, agent) {
                (true, _) => Identity::Token,
                (false, Some(member)) => Identity::Agent(member),
                (false, None) if reader => {
                    if !is_read(&method, &path) {
                        return fail(
                            ErrorCode::Forbidden,
                            "the read token may only read (GET, and POST /v1/plan)",
                        )
                        .into_response();
                    }
                    Identity::Reader
                }
                (false, None) => {
                    return fail(ErrorCode::Unauthorized, "missing or wrong bearer token")
                        .into_response();
                }
            }
        }
        // A router served without connection info (in-process tests) or a
        // connection whose credentials are unknown: nobody.
        Some(Peer::Unknown) | None => {
            return fail(ErrorCode::Unauthorized, "the caller cannot be identified")
                .into_response();
        }
    };
    // Agents use the agent routes, and only agents do.
    let agent_route = path.starts_with("/v1/agent/");
    match &identity {
        Identity::Agent(m) if !agent_route => {
            return fail(
                ErrorCode::Forbidden,
                format!("the agent credential of member {m} may only use /v1/agent/ routes"),
            )
            .into_response();
        }
        Identity::User(_) | Identity::Token | Identity::Reader if agent_route => {
            return fail(
                ErrorCode::Forbidden,
                "/v1/agent/ routes are for members' agents, with their member's token",
            )
            .into_response();
        }
        _ => {}
    }
    request.extensions_mut().insert(identity);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn root_and_the_daemons_user_are_admins_others_need_the_group() {
        let p = Policy::default();
        assert!(p.is_admin(0, 0, &[]));
        assert!(p.is_admin(nix::unistd::geteuid().as_raw(), 12345, &[]));
        let other = if nix::unistd::geteuid().is_root() {
            54321
        } else {
            0
        };
        if other != 0 {
            assert!(!p.is_admin(other, 54321, &[54321]));
            let g = Policy {
                admin_group: Some(AdminGroup {
                    name: "g".into(),
                    gid: Gid::from_raw(54321),
                }),
                ..Policy::default()
            };
            // Primary or supplementary group.
            assert!(g.is_admin(other, 54321, &[]));
            assert!(g.is_admin(other, 7, &[3, 54321]));
            assert!(!g.is_admin(other, 54322, &[1, 2]));
        }
    }

    /// A connection showing a live console session is trusted like one
    /// showing a token (its streams do not count against its address's
    /// connection cap); a stale or forged cookie is not.
    #[test]
    fn a_live_console_session_counts_as_a_token() {
        let policy = Policy::default();
        let id = policy.sessions.open(crate::ui::session::Role::Reader);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("a=b; clusvc_session={id}").parse().unwrap(),
        );
        assert!(holds_token(&policy, &h));
        policy.sessions.close(&id);
        assert!(!holds_token(&policy, &h));
        h.insert(header::COOKIE, "clusvc_session=forged".parse().unwrap());
        assert!(!holds_token(&policy, &h));
    }

    #[test]
    fn reads_are_gets_and_plans() {
        assert!(is_read(&Method::GET, "/v1/services"));
        assert!(is_read(&Method::POST, "/v1/plan"));
        assert!(!is_read(&Method::POST, "/v1/apply"));
        assert!(!is_read(&Method::DELETE, "/v1/objects/services/a"));
    }
}
