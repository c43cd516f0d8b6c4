//! `clusvc agent --member NAME --server URL[,URL...] --token-file F`: a
//! member's agent. It holds the member's lease through the servers (never
//! the store), failing over between them, and fences itself when no
//! renewal it sent was acknowledged for `--lease-ttl` minus a margin (see
//! `docs/cluster.md`).
//!
//! Today it keeps the lease and fences itself on time; running the work
//! the controller records for its member is being built (until then the
//! member's services run where `clusvc run` runs them).

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use clusvc_core::api::agent::{HeartbeatRequest, HeartbeatResponse};

use crate::app::{CliError, EXIT_UNREACHABLE};
use crate::client::{Client, Conn};

/// Arguments of `agent`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The member this agent runs on.
    #[arg(long, value_name = "NAME")]
    member: String,
    /// The servers, tried in order (`https://10.0.0.5:7450,https://10.0.0.6:7450`).
    #[arg(long, value_name = "URL", value_delimiter = ',', required = true)]
    server: Vec<String>,
    /// The member's agent token (the server's `--agent-tokens DIR/NAME.token`).
    #[arg(long, value_name = "FILE", env = "CLUSVC_TOKEN_FILE")]
    token_file: PathBuf,
    /// CA certificate(s) (PEM) to trust for https:// servers.
    #[arg(long, value_name = "FILE", env = "CLUSVC_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// The member's lease time to live.
    #[arg(long, default_value = "5s")]
    lease_ttl: clusvc_core::model::Duration,
}

/// What the watchdog thread needs: when the last acknowledged renewal was
/// sent, and whether the agent is active (holds a lease it trusts).
#[derive(Debug, Default)]
struct Lease {
    acked_sent: Option<Instant>,
    active: bool,
}

/// Runs the agent until killed.
pub fn run(args: Args) -> Result<u8, CliError> {
    let ttl = args.lease_ttl.get();
    if !(Duration::from_millis(clusvc_core::api::agent::MIN_LEASE_TTL_MS)
        ..=Duration::from_millis(clusvc_core::api::agent::MAX_LEASE_TTL_MS))
        .contains(&ttl)
    {
        return Err(CliError::bad_input(format!(
            "error: --lease-ttl {} is outside 1s..=60s",
            args.lease_ttl
        )));
    }
    // The agent gives up this much before the lease could expire.
    let margin = (ttl / 5).max(Duration::from_millis(200));
    let every = ttl / 3;
    let conn = Conn {
        server: None,
        token_file: Some(args.token_file.clone()),
        ca_file: args.ca_file.clone(),
    };
    let clients: Vec<Client> = args
        .server
        .iter()
        .map(|s| Client::with_timeout(s, &conn, Some(every)))
        .collect::<Result<_, _>>()?;
    let incarnation = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let state = Arc::new((Mutex::new(Lease::default()), Condvar::new()));
    {
        let state = state.clone();
        let member = args.member.clone();
        std::thread::spawn(move || watchdog(&state, &member, ttl - margin));
    }
    tracing::info!(
        "agent of {} (incarnation {incarnation}): lease {ttl:?} through {}",
        args.member,
        args.server.join(", ")
    );
    let mut current = 0;
    loop {
        let sent = Instant::now();
        let req = HeartbeatRequest {
            member: args.member.clone(),
            incarnation: incarnation.clone(),
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
        };
        match clients[current].post::<_, HeartbeatResponse>("/v1/agent/heartbeat", &req) {
            Ok(resp) => {
                let (lock, wake) = &*state;
                let mut l = lock.lock().unwrap_or_else(|p| p.into_inner());
                let was_active = l.active;
                l.acked_sent = Some(sent);
                l.active = true;
                wake.notify_all();
                drop(l);
                if !was_active || resp.fresh {
                    tracing::info!(
                        "holding lease {} for {} through {}",
                        resp.lease,
                        args.member,
                        args.server[current]
                    );
                }
            }
            Err(e) if e.code == EXIT_UNREACHABLE => {
                let next = (current + 1) % clients.len();
                tracing::warn!(
                    "{}; trying {}",
                    e.message.lines().next().unwrap_or(""),
                    args.server[next]
                );
                current = next;
            }
            Err(e) => {
                // A refused credential does not mend itself.
                tracing::error!(
                    "heartbeat refused by {}: {}",
                    args.server[current],
                    e.message
                );
                if e.message.contains("token") || e.message.contains("agent") {
                    return Err(e);
                }
            }
        }
        let spent = sent.elapsed();
        if spent < every {
            std::thread::sleep(every - spent);
        }
    }
}

/// Fences the member once `limit` has passed since the last acknowledged
/// renewal was sent, on time whatever the heartbeat loop is blocked on.
fn watchdog(state: &(Mutex<Lease>, Condvar), member: &str, limit: Duration) {
    let (lock, wake) = state;
    let mut l = lock.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        match (l.active, l.acked_sent) {
            (true, Some(sent)) => {
                let deadline = sent + limit;
                let now = Instant::now();
                if now >= deadline {
                    tracing::warn!(
                        "self-fencing {member}: no renewal acknowledged for {:?}; stopping all its services and staying passive until it holds a lease again",
                        now - sent
                    );
                    l.active = false;
                    continue;
                }
                l = wake
                    .wait_timeout(l, deadline - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            _ => {
                l = wake.wait(l).unwrap_or_else(|p| p.into_inner());
            }
        }
    }
}
