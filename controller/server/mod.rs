//! The HTTP/JSON API (`/v1/...`), `/healthz` and `/metrics` (SPEC §7).
//!
//! It binds 127.0.0.1 by default; listening elsewhere requires a bearer
//! token, and every request without it gets 401. Request bodies are
//! size-limited.

pub mod apply;
pub mod gitops;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::controller::{Controller, Operation, keys};
use crate::model::{Member, ObservedService, Service, ServiceState, Timestamp};
use crate::store::{Store, Txn};

/// Largest request body.
pub const MAX_BODY: usize = 16 << 20;

/// State shared by the handlers.
pub struct App<S: Store> {
    /// The store.
    pub store: Arc<S>,
    /// The controller.
    pub controller: Arc<Controller<S>>,
    /// Required bearer token, if any.
    pub token: Option<String>,
    /// GitOps sync status.
    pub sync: Arc<Mutex<gitops::SyncStatus>>,
}

/// A service as `get` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    /// Name.
    pub name: String,
    /// ID.
    pub id: Option<u64>,
    /// State as operators see it.
    pub state: String,
    /// Where it runs.
    pub member: Option<String>,
    /// Last status check.
    pub last_check: Option<Timestamp>,
    /// Restarts in the current window.
    pub restarts: usize,
    /// Creation time.
    pub created_at: Option<Timestamp>,
    /// Who applied it.
    pub source: Option<String>,
    /// The desired object (absent when deleted and still stopping).
    pub desired: Option<Service>,
    /// The observed record.
    pub observed: Option<ObservedService>,
}

/// A member as `get` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// Name.
    pub name: String,
    /// `alive`, `dead` or `standby`.
    pub state: String,
    /// Services running there.
    pub services: usize,
    /// The desired object.
    pub desired: Member,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

fn display_state(desired: Option<&Service>, o: &ObservedService) -> String {
    if o.frozen {
        return "frozen".into();
    }
    if o.state == ServiceState::Stopped && desired.is_some_and(|d| !d.spec.enabled) {
        return "disabled".into();
    }
    o.state.to_string()
}

fn service_views<S: Store>(app: &App<S>, only: Option<&str>) -> Vec<ServiceView> {
    let c = app
        .controller
        .cache
        .read()
        .unwrap_or_else(|p| p.into_inner());
    let now = Timestamp::from_system(SystemTime::now());
    c.service_names()
        .into_iter()
        .filter(|n| only.is_none_or(|o| o == n))
        .map(|name| {
            let d = c.services().get(&name);
            let o = c.observed.services.get(&name);
            let window = d
                .map(|d| d.spec.recovery.restart_window)
                .unwrap_or_default();
            ServiceView {
                id: o.map(|o| o.id),
                state: match o {
                    Some(o) => display_state(d, o),
                    None => "pending".into(),
                },
                member: o.and_then(|o| o.member.clone()),
                last_check: o.and_then(|o| o.last_check),
                restarts: o.map_or(0, |o| {
                    o.restarts
                        .iter()
                        .filter(|t| **t > now.minus(window))
                        .count()
                }),
                created_at: o.and_then(|o| o.created_at),
                source: d
                    .and_then(|d| d.metadata.annotations.get(keys::SOURCE_ANNOTATION).cloned()),
                desired: d.cloned(),
                observed: o.cloned(),
                name,
            }
        })
        .collect()
}

async fn list_services<S: Store>(State(app): State<Arc<App<S>>>) -> Response {
    Json(service_views(&app, None)).into_response()
}

async fn get_service<S: Store>(
    State(app): State<Arc<App<S>>>,
    Path(name): Path<String>,
) -> Response {
    match service_views(&app, Some(&name)).pop() {
        Some(v) => Json(v).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("services \"{name}\" not found"),
        ),
    }
}

fn member_views<S: Store>(app: &App<S>, only: Option<&str>) -> Vec<MemberView> {
    let c = app
        .controller
        .cache
        .read()
        .unwrap_or_else(|p| p.into_inner());
    c.members()
        .iter()
        .filter(|(n, _)| only.is_none_or(|o| o == n.as_str()))
        .map(|(name, m)| {
            let om = c.observed.members.get(name).cloned().unwrap_or_default();
            let state = if !om.alive {
                "dead"
            } else if m.spec.standby || om.standby {
                "standby"
            } else {
                "alive"
            };
            MemberView {
                name: name.clone(),
                state: state.into(),
                services: c
                    .observed
                    .services
                    .values()
                    .filter(|o| o.member.as_deref() == Some(name))
                    .count(),
                desired: m.clone(),
            }
        })
        .collect()
}

async fn list_members<S: Store>(State(app): State<Arc<App<S>>>) -> Response {
    Json(member_views(&app, None)).into_response()
}

async fn get_member<S: Store>(
    State(app): State<Arc<App<S>>>,
    Path(name): Path<String>,
) -> Response {
    match member_views(&app, Some(&name)).pop() {
        Some(v) => Json(v).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("members \"{name}\" not found"),
        ),
    }
}

async fn post_apply<S: Store>(
    State(app): State<Arc<App<S>>>,
    Json(req): Json<apply::ApplyRequest>,
) -> Response {
    match apply::apply(app.store.as_ref(), req).await {
        Ok(r) => Json(r).into_response(),
        Err(e @ apply::Error::Invalid(_)) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        Err(e @ (apply::Error::Conflict(_) | apply::Error::Raced)) => {
            error(StatusCode::CONFLICT, e.to_string())
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn delete_object<S: Store>(
    State(app): State<Arc<App<S>>>,
    Path((kind, name)): Path<(String, String)>,
) -> Response {
    let prefix = match kind.as_str() {
        "services" => keys::SERVICES,
        "members" => keys::MEMBERS,
        _ => return error(StatusCode::NOT_FOUND, format!("unknown kind {kind:?}")),
    };
    let key = format!("{prefix}{name}");
    match app.store.get(&key).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("{kind} \"{name}\" not found"),
            );
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
    if kind == "members" {
        let c = app
            .controller
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let placed: Vec<String> = c
            .services()
            .values()
            .filter(|s| s.spec.placement.members.contains(&name))
            .map(|s| s.metadata.name.clone())
            .collect();
        if !placed.is_empty() {
            return error(
                StatusCode::CONFLICT,
                format!(
                    "member {name} is named in the placement of: {}",
                    placed.join(", ")
                ),
            );
        }
    }
    match app.store.delete(&key).await {
        Ok(_) => Json(json!({"deleted": format!("{}/{name}", kind.trim_end_matches('s'))}))
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// A live or what-if plan request.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanRequest {
    /// Objects to plan as if applied (none = the live desired state).
    #[serde(default)]
    pub members: Vec<Member>,
    /// Services to plan as if applied.
    #[serde(default)]
    pub services: Vec<Service>,
    /// Members to treat as dead.
    #[serde(default)]
    pub fail_members: Vec<String>,
}

async fn post_plan<S: Store>(
    State(app): State<Arc<App<S>>>,
    Json(req): Json<PlanRequest>,
) -> Response {
    let now = Timestamp::from_system(SystemTime::now());
    let (desired, mut observed, seen) = {
        let mut c = app
            .controller
            .cache
            .write()
            .unwrap_or_else(|p| p.into_inner());
        (c.desired(), c.observed.clone(), c.seen())
    };
    let desired = if req.members.is_empty() && req.services.is_empty() {
        desired
    } else {
        let mut objects: BTreeMap<(String, String), crate::model::Object> = desired
            .objects()
            .map(|o| ((o.kind_lower().to_string(), o.name().to_string()), o))
            .collect();
        for o in req
            .members
            .into_iter()
            .map(crate::model::Object::Member)
            .chain(req.services.into_iter().map(crate::model::Object::Service))
        {
            objects.insert((o.kind_lower().to_string(), o.name().to_string()), o);
        }
        match crate::model::DesiredState::from_objects(objects.into_values().collect()) {
            Ok(d) => Arc::new(d),
            Err(issues) => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    issues
                        .iter()
                        .map(|i| format!("{}: {}", i.path, i.message))
                        .collect::<Vec<_>>()
                        .join("\n"),
                );
            }
        }
    };
    for m in &req.fail_members {
        observed.fail_member(m, now);
    }
    let p = crate::plan::plan(&desired, &observed, now);
    Json(json!({"text": p.to_string(), "changes": p.has_changes(), "plan": p, "revision": seen}))
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
struct OpBody {
    #[serde(default)]
    to: Option<String>,
}

async fn post_op<S: Store>(
    State(app): State<Arc<App<S>>>,
    Path((name, op)): Path<(String, String)>,
    body: Option<Json<OpBody>>,
) -> Response {
    let to = body.and_then(|b| b.0.to);
    let operation = match op.as_str() {
        "relocate" => Operation::Relocate(to),
        "restart" => Operation::Restart,
        "freeze" => Operation::Freeze,
        "unfreeze" => Operation::Unfreeze,
        "clear" => Operation::Clear,
        "enable" | "disable" => return set_enabled(&app, &name, op == "enable").await,
        _ => return error(StatusCode::NOT_FOUND, format!("unknown operation {op:?}")),
    };
    match app.controller.operate(&name, operation).await {
        Ok(()) => Json(json!({"service": name, "operation": op})).into_response(),
        Err(e) => error(StatusCode::CONFLICT, e),
    }
}

async fn set_enabled<S: Store>(app: &App<S>, name: &str, enabled: bool) -> Response {
    let key = format!("{}{name}", keys::SERVICES);
    let kv = match app.store.get(&key).await {
        Ok(Some(kv)) => kv,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("services \"{name}\" not found"),
            );
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let Some(mut svc) = keys::decode::<Service>(&key, &kv.value) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "undecodable service");
    };
    if enabled {
        let _ = app.controller.operate(name, Operation::Clear).await;
    }
    if svc.spec.enabled != enabled {
        svc.spec.enabled = enabled;
        let txn = Txn {
            compare: vec![crate::store::Compare::ModRevision(
                key.clone(),
                kv.mod_revision,
            )],
            success: vec![crate::store::Op::Put {
                key,
                value: keys::encode(&svc),
                lease: None,
            }],
            failure: vec![],
        };
        match app.store.txn(txn).await {
            Ok(r) if r.succeeded => {}
            Ok(_) => return error(StatusCode::CONFLICT, "the service changed meanwhile; retry"),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
    Json(json!({"service": name, "operation": if enabled {"enable"} else {"disable"}}))
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
struct EventsQuery {
    service: Option<String>,
    #[serde(default)]
    follow: bool,
    limit: Option<usize>,
}

async fn get_events<S: Store>(
    State(app): State<Arc<App<S>>>,
    Query(q): Query<EventsQuery>,
) -> Response {
    let recent = app
        .controller
        .events
        .recent(q.service.as_deref(), q.limit.unwrap_or(200));
    let mut body = String::new();
    for e in &recent {
        body.push_str(&serde_json::to_string(e).unwrap_or_default());
        body.push('\n');
    }
    if !q.follow {
        return ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response();
    }
    let mut rx = app.controller.events.subscribe();
    let service = q.service.clone();
    let (tx, out) = tokio::sync::mpsc::channel::<Result<String, std::convert::Infallible>>(64);
    tokio::spawn(async move {
        if !body.is_empty() && tx.send(Ok(body)).await.is_err() {
            return;
        }
        loop {
            match rx.recv().await {
                Ok(e) if service.as_deref().is_none_or(|s| s == e.service) => {
                    let mut line = serde_json::to_string(&e).unwrap_or_default();
                    line.push('\n');
                    if tx.send(Ok(line)).await.is_err() {
                        return;
                    }
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            }
        }
    });
    let mut out = out;
    let stream = futures_util::stream::poll_fn(move |cx| out.poll_recv(cx));
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn healthz<S: Store>(State(app): State<Arc<App<S>>>) -> Response {
    let sync = app.sync.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Json(json!({"status": "ok", "sync": sync})).into_response()
}

async fn get_sync<S: Store>(State(app): State<Arc<App<S>>>) -> Response {
    let sync = app.sync.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Json(sync).into_response()
}

async fn metrics<S: Store>(State(app): State<Arc<App<S>>>) -> Response {
    let states: BTreeMap<String, usize> = {
        let c = app
            .controller
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let mut m = BTreeMap::new();
        for (name, o) in &c.observed.services {
            *m.entry(display_state(c.services().get(name), o))
                .or_default() += 1;
        }
        m
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.controller.metrics.render(&states),
    )
        .into_response()
}

async fn auth<S: Store>(
    State(app): State<Arc<App<S>>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &app.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        }
    }
    next.run(request).await
}

/// The API router.
pub fn router<S: Store>(app: Arc<App<S>>) -> Router {
    Router::new()
        .route("/healthz", get(healthz::<S>))
        .route("/metrics", get(metrics::<S>))
        .route("/v1/services", get(list_services::<S>))
        .route("/v1/services/{name}", get(get_service::<S>))
        .route("/v1/services/{name}/ops/{op}", post(post_op::<S>))
        .route("/v1/members", get(list_members::<S>))
        .route("/v1/members/{name}", get(get_member::<S>))
        .route(
            "/v1/objects/{kind}/{name}",
            axum::routing::delete(delete_object::<S>),
        )
        .route("/v1/apply", post(post_apply::<S>))
        .route("/v1/plan", post(post_plan::<S>))
        .route("/v1/events", get(get_events::<S>))
        .route("/v1/sync", get(get_sync::<S>))
        .layer(middleware::from_fn_with_state(app.clone(), auth::<S>))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A non-loopback listen address without a token.
    #[error(
        "refusing to listen on {0} without --token-file: only loopback addresses may be used without a token"
    )]
    NeedsToken(SocketAddr),
    /// Binding failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Checks the listen policy and binds.
pub async fn bind(
    addr: SocketAddr,
    token: Option<&str>,
) -> Result<tokio::net::TcpListener, ServeError> {
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(ServeError::NeedsToken(addr));
    }
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}
