//! `/v1/agent/...`: what members' agents call (see `docs/cluster.md`).
//! Every route checks that the agent acts for its own member.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::{Extension, Json};

use clusvc_agent::remote::{StatusReport, WorkDone, WorkItem, WorkList};
use clusvc_core::api::ErrorCode;
use clusvc_core::api::agent::{
    HeartbeatRequest, HeartbeatResponse, MAX_INVENTORY, MAX_LEASE_TTL_MS, MIN_LEASE_TTL_MS,
};
use clusvc_core::model::Inventory;
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
    if req.agent_id.is_empty()
        || req.agent_id.len() > 128
        || !req
            .agent_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(fail(
            ErrorCode::Invalid,
            "agentId: 1 to 128 letters, digits or '-'",
        ));
    }
    if req.incarnation.len() > 128 {
        return Err(fail(
            ErrorCode::Invalid,
            "incarnation: at most 128 characters",
        ));
    }
    // Only a declared member is brought to life by its agent.
    if app
        .store
        .get(&format!("{}{}", keys::MEMBERS, req.member))
        .await?
        .is_none()
    {
        return Err(fail(
            ErrorCode::NotFound,
            format!(
                "member {} is not declared: apply its Member manifest first",
                req.member
            ),
        ));
    }
    if req.checked.len() > 100_000 {
        return Err(fail(ErrorCode::Invalid, "checked: at most 100000 services"));
    }
    let (wanted_hash, wanted) = wanted(&app);
    let wanted = (req.wanted_hash != wanted_hash).then(|| wanted.as_ref().clone());
    let key = format!("{}{}", keys::LEASES, req.member);
    // The lease key holds "AGENT-ID TTL-MS": the agent holding it, and the
    // time to live the lease was granted with.
    let holder = format!("{} {}", req.agent_id, req.ttl_ms);
    if let Some(kv) = app.store.get(&key).await?
        && let Some(lease) = kv.lease
    {
        let value = String::from_utf8_lossy(&kv.value).into_owned();
        let (id, ttl) = value.split_once(' ').unwrap_or((value.as_str(), ""));
        if id != req.agent_id {
            return Err(fail(
                ErrorCode::Conflict,
                format!(
                    "member {} is held by another agent until its lease expires",
                    req.member
                ),
            ));
        }
        if ttl != req.ttl_ms.to_string() {
            // The agent asks for another time to live (it was restarted
            // with another --lease-ttl): its lease must not outlive what
            // it counts on, nor expire under it. A new one replaces it
            // (the answer says fresh: the agent stops what it ran).
            tracing::info!(
                "member {}: the agent asks for a {} ms lease; replacing the lease of {ttl} ms",
                req.member,
                req.ttl_ms
            );
            match app.store.revoke(lease).await {
                Ok(()) | Err(clusvc_store::Error::LeaseNotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        } else {
            match app.store.keepalive(lease).await {
                Ok(()) => {
                    // Only the agent holding the lease says what the member has.
                    if let Some(inv) = &req.inventory {
                        record_inventory(&app, &req.member, inv).await?;
                    }
                    app.controller.note_checked(&req.member, &req.checked);
                    return Ok(Json(HeartbeatResponse {
                        lease,
                        fresh: false,
                        keep: true,
                        ttl_ms: req.ttl_ms,
                        wanted_hash,
                        wanted,
                        members: members(&app),
                    }));
                }
                Err(clusvc_store::Error::LeaseNotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    // No lease (first heartbeat, or the last one expired): a new one, and
    // the key created only if no other heartbeat created it meanwhile.
    // Whether the agent keeps what it runs is decided in the same
    // transaction, against the mark a controller sets (only while the
    // member has no lease) before it moves anything off the member: either
    // the mark came first (the agent stops everything; the mark is used
    // up) or the lease did (the controller finds it and moves nothing).
    let lease = app.store.grant(Duration::from_millis(req.ttl_ms)).await?;
    let vacated = format!("{}{}", keys::VACATED, req.member);
    let put = Write::Put {
        key: key.clone(),
        value: holder.into_bytes(),
        lease: Some(lease),
    };
    let kept = app
        .store
        .txn(Txn {
            compare: vec![
                Compare::Missing(key.clone()),
                Compare::Missing(vacated.clone()),
            ],
            success: vec![put.clone()],
            failure: vec![],
        })
        .await?
        .succeeded;
    let registered = kept
        || app
            .store
            .txn(Txn {
                compare: vec![Compare::Missing(key.clone())],
                success: vec![put, Write::Delete { key: vacated }],
                failure: vec![],
            })
            .await?
            .succeeded;
    if !registered {
        let _ = app.store.revoke(lease).await;
        return Err(fail(
            ErrorCode::Conflict,
            "another heartbeat of this member registered a lease at the same moment; retry",
        ));
    }
    if kept {
        tracing::info!("member {} registered (lease {lease})", req.member);
    } else {
        tracing::warn!(
            "member {} registered (lease {lease}) after a controller moved its services: its agent stops what it kept",
            req.member
        );
    }
    match &req.inventory {
        Some(inv) => record_inventory(&app, &req.member, inv).await?,
        // An agent's member is known to report its scripts: until it has
        // (within two heartbeats), it is not chosen to start anything.
        None => {
            let key = format!("{}{}", keys::INVENTORY, req.member);
            app.store
                .txn(Txn {
                    compare: vec![Compare::Missing(key.clone())],
                    success: vec![Write::Put {
                        key,
                        value: keys::encode(&Inventory::default()),
                        lease: None,
                    }],
                    failure: vec![],
                })
                .await?;
        }
    }
    Ok(Json(HeartbeatResponse {
        lease,
        fresh: true,
        keep: kept,
        ttl_ms: req.ttl_ms,
        wanted_hash,
        wanted,
        members: members(&app),
    }))
}

/// The scripts the services name now and their hash (worked out again
/// only when the store changed).
fn wanted<S: Store>(app: &App<S>) -> (u64, Arc<Vec<String>>) {
    use std::hash::{Hash, Hasher};
    let c = app.cache.read();
    let mut memo = app.wanted.lock().unwrap_or_else(|p| p.into_inner());
    if memo.revision != c.seen() || memo.list.is_empty() && memo.hash == 0 {
        let list: std::collections::BTreeSet<String> = c
            .services()
            .values()
            .flat_map(|s| s.spec.scripts())
            .collect();
        let list: Vec<String> = list.into_iter().collect();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        list.hash(&mut h);
        *memo = super::Wanted {
            revision: c.seen(),
            hash: h.finish().max(1),
            list: Arc::new(list),
        };
    }
    (memo.hash, memo.list.clone())
}

/// The declared members' names.
fn members<S: Store>(app: &App<S>) -> Vec<String> {
    app.cache.read().members().keys().cloned().collect()
}

/// Records what a member's agent has of the scripts, when it changed.
async fn record_inventory<S: Store>(app: &App<S>, member: &str, inv: &Inventory) -> Result<()> {
    // Bounded well under etcd's request size (1.5 MiB by default).
    let size: usize = inv
        .scripts
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, String::len) + 8)
        .sum();
    if inv.scripts.len() > MAX_INVENTORY
        || size > 512 << 10
        || inv.version.len() > 64
        || inv
            .scripts
            .iter()
            .any(|(k, v)| k.len() > 4096 || v.as_ref().is_some_and(|v| v.len() > 128))
    {
        return Err(fail(
            ErrorCode::Invalid,
            format!("inventory: at most {MAX_INVENTORY} entries and 512 KiB"),
        ));
    }
    let known = app
        .cache
        .read()
        .observed
        .members
        .get(member)
        .and_then(|m| m.inventory.clone());
    if known.as_ref() != Some(inv) {
        app.store
            .put(&format!("{}{member}", keys::INVENTORY), keys::encode(inv))
            .await?;
    }
    Ok(())
}

/// `?member=NAME&after=REV`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkQuery {
    member: String,
    #[serde(default)]
    after: u64,
    /// How long to wait for something new, in milliseconds (at most 20 s,
    /// the default): an agent waits about a lease, so a server that stops
    /// answering holds it no longer.
    wait: Option<u64>,
}

/// How long a work request waits for something new.
const LONG_POLL: Duration = Duration::from_secs(20);

fn items_after(kvs: &[clusvc_store::KeyValue], after: u64) -> Vec<WorkItem> {
    kvs.iter()
        .filter(|kv| kv.mod_revision > after)
        .filter_map(|kv| serde_json::from_slice::<WorkItem>(&kv.value).ok())
        .collect()
}

/// `GET /v1/agent/work`: the member's work items newer than `after`,
/// waiting up to 20 s for one (a long poll).
pub(crate) async fn work<S: Store>(
    State(app): State<Arc<App<S>>>,
    Extension(who): Extension<Identity>,
    super::ApiQuery(q): super::ApiQuery<WorkQuery>,
) -> Result<Json<WorkList>> {
    own_member(&who, &q.member)?;
    let prefix = format!("{}{}/", keys::WORK, q.member);
    let mut watch = app.store.watch(&prefix).await?;
    // An item whose result is recorded is done: never handed out again
    // (an agent that restarted asks from revision 0).
    let (results, _) = app
        .store
        .list(&format!("{}{}/", keys::RESULTS, q.member))
        .await?;
    let done: std::collections::HashSet<String> = results
        .iter()
        .filter_map(|kv| serde_json::from_slice::<WorkDone>(&kv.value).ok())
        .map(|d| d.id)
        .collect();
    let items: Vec<WorkItem> = items_after(&watch.initial, q.after)
        .into_iter()
        .filter(|i| !done.contains(&i.id))
        .collect();
    if !items.is_empty() {
        return Ok(Json(WorkList {
            revision: watch.revision,
            items,
        }));
    }
    let wait = q
        .wait
        .map_or(LONG_POLL, |ms| Duration::from_millis(ms).min(LONG_POLL));
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    let shutdown = app.shutdown.notified();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            ev = watch.events.recv() => match ev {
                Some((rev, clusvc_store::WatchEvent::Put(kv))) => {
                    let items = items_after(std::slice::from_ref(&kv), q.after);
                    if !items.is_empty() {
                        return Ok(Json(WorkList { revision: rev, items }));
                    }
                }
                Some(_) => {}
                None => break,
            },
            () = &mut deadline => break,
            () = &mut shutdown => break,
        }
    }
    Ok(Json(WorkList {
        revision: q.after.max(watch.revision),
        items: Vec::new(),
    }))
}

/// `POST /v1/agent/done`: records what a work item did.
pub(crate) async fn done<S: Store>(
    State(app): State<Arc<App<S>>>,
    Extension(who): Extension<Identity>,
    ApiJson(done): ApiJson<WorkDone>,
) -> Result<Json<serde_json::Value>> {
    own_member(&who, &done.member)?;
    if done.service.is_empty() || done.service.contains('/') {
        return Err(fail(ErrorCode::Invalid, "service: not a service name"));
    }
    // Only the result of the item issued for that service now.
    let work_key = format!("{}{}/{}", keys::WORK, done.member, done.service);
    let issued = app
        .store
        .get(&work_key)
        .await?
        .and_then(|kv| serde_json::from_slice::<WorkItem>(&kv.value).ok());
    if issued.as_ref().is_none_or(|w| w.id != done.id) {
        return Err(fail(
            ErrorCode::Conflict,
            format!(
                "no work item {} is issued to {} for service {}",
                done.id, done.member, done.service
            ),
        ));
    }
    // Write-once per item: the first result recorded for an item stands
    // (an agent that reports again after a lost answer sends the same).
    let key = format!("{}{}/{}", keys::RESULTS, done.member, done.service);
    let bytes = serde_json::to_vec(&done).expect("results serialize");
    if let Some(kv) = app.store.get(&key).await?
        && let Ok(prev) = serde_json::from_slice::<WorkDone>(&kv.value)
        && prev.id == done.id
    {
        if prev != done {
            return Err(fail(
                ErrorCode::Conflict,
                format!("a different result of {} is recorded already", done.id),
            ));
        }
        return Ok(Json(serde_json::json!({"recorded": done.id})));
    }
    app.store.put(&key, bytes).await?;
    Ok(Json(serde_json::json!({"recorded": done.id})))
}

/// `POST /v1/agent/status`: a status check that failed on the agent's
/// member; recorded for the controller, which acts on it if it is about
/// the service as it runs now.
pub(crate) async fn status<S: Store>(
    State(app): State<Arc<App<S>>>,
    Extension(who): Extension<Identity>,
    ApiJson(status): ApiJson<StatusReport>,
) -> Result<Json<serde_json::Value>> {
    own_member(&who, &status.member)?;
    if status.service.is_empty() || status.service.len() > 253 || status.service.contains('/') {
        return Err(fail(ErrorCode::Invalid, "service: not a service name"));
    }
    if status
        .report
        .failed
        .is_none_or(|i| i >= status.report.steps.len())
        || status.report.steps.len() > 1_000
    {
        return Err(fail(
            ErrorCode::Invalid,
            "report: a failed check names its failed step (at most 1000 steps)",
        ));
    }
    let key = format!("{}{}/{}", keys::STATUS, status.member, status.service);
    app.store
        .put(
            &key,
            serde_json::to_vec(&status).expect("reports serialize"),
        )
        .await?;
    Ok(Json(serde_json::json!({"recorded": status.service})))
}
