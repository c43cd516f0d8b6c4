//! `/v1/agent/...`: what members' agents call (see `docs/cluster.md`).
//! Every route checks that the agent acts for its own member.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::{Extension, Json};

use clusvc_core::api::ErrorCode;
use clusvc_core::api::agent::{
    HeartbeatRequest, HeartbeatResponse, MAX_LEASE_TTL_MS, MIN_LEASE_TTL_MS,
};
use clusvc_store::{Compare, Store, Txn, Write, keys};

use super::access::Identity;
use super::{ApiJson, App, Result, fail};

fn own_member(who: &Identity, member: &str) -> Result<()> {
    match who {
        Identity::Agent(m) if m == member => Ok(()),
        Identity::Agent(m) => Err(fail(
            ErrorCode::Forbidden,
            format!("the agent of member {m} cannot act for member {member}"),
        )),
        _ => Err(fail(ErrorCode::Forbidden, "agents only")),
    }
}

/// `POST /v1/agent/heartbeat`: renews the member's lease, or grants one
/// (and creates its liveness key) when it has none.
pub(crate) async fn heartbeat<S: Store>(
    State(app): State<Arc<App<S>>>,
    Extension(who): Extension<Identity>,
    ApiJson(req): ApiJson<HeartbeatRequest>,
) -> Result<Json<HeartbeatResponse>> {
    own_member(&who, &req.member)?;
    if !(MIN_LEASE_TTL_MS..=MAX_LEASE_TTL_MS).contains(&req.ttl_ms) {
        return Err(fail(
            ErrorCode::Invalid,
            format!(
                "ttlMs: {} is outside {MIN_LEASE_TTL_MS}..={MAX_LEASE_TTL_MS}",
                req.ttl_ms
            ),
        ));
    }
    let key = format!("{}{}", keys::LEASES, req.member);
    if let Some(kv) = app.store.get(&key).await?
        && let Some(lease) = kv.lease
    {
        match app.store.keepalive(lease).await {
            Ok(()) => {
                return Ok(Json(HeartbeatResponse {
                    lease,
                    fresh: false,
                    ttl_ms: req.ttl_ms,
                }));
            }
            Err(clusvc_store::Error::LeaseNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // No lease (first heartbeat, or the last one expired): a new one, and
    // the key created only if no other heartbeat created it meanwhile.
    let lease = app.store.grant(Duration::from_millis(req.ttl_ms)).await?;
    let t = app
        .store
        .txn(Txn {
            compare: vec![Compare::Missing(key.clone())],
            success: vec![Write::Put {
                key,
                value: req.incarnation.into_bytes(),
                lease: Some(lease),
            }],
            failure: vec![],
        })
        .await?;
    if !t.succeeded {
        let _ = app.store.revoke(lease).await;
        return Err(fail(
            ErrorCode::Conflict,
            "another heartbeat of this member registered a lease at the same moment; retry",
        ));
    }
    tracing::info!("member {} registered (lease {lease})", req.member);
    Ok(Json(HeartbeatResponse {
        lease,
        fresh: true,
        ttl_ms: req.ttl_ms,
    }))
}
