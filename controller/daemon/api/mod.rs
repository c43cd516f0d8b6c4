//! The HTTP/JSON API (`/v1/...`), `/healthz`, `/readyz` and `/metrics`
//! (SPEC §7), one
//! file per resource. Request and answer bodies are the wire types of
//! [`clusvc_core::api`]; every failure answers an [`ApiError`] with the
//! status of its code.
//!
//! It listens on a Unix socket by default and, when asked, on TCP; who may
//! do what is decided in [`access`], the listeners are made in [`listen`].
//! Request bodies are size-limited.

pub mod access;
mod agent;
mod events;
pub(crate) mod health;
pub mod listen;
pub(crate) mod members;
pub(crate) mod objects;
pub(crate) mod ops;
pub(crate) mod plan;
pub mod serve;
pub(crate) mod services;

use std::sync::{Arc, Mutex};

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use clusvc_core::api::{ApiError, ErrorCode, SyncStatus};
use clusvc_store::Store;

use clusvc_agent::BoxFuture;

use crate::reconcile::{Controller, EventLog, Metrics, OperateError, Reader, Request as OpRequest};

/// Largest request body.
pub const MAX_BODY: usize = 16 << 20;

/// Largest body of `/v1/apply` and `/v1/plan`, which carry whole desired
/// states: 100,000 services in one request, as `clusvc apply -f DIR` sends
/// them, take about 40 MiB of JSON.
pub const MAX_OBJECTS_BODY: usize = 256 << 20;

/// What the API asks of the controller: its event log and metrics, and
/// operator requests (carried out by this server's controller, or, on a
/// cluster server, recorded for the leader's).
pub trait Operations: Send + Sync {
    /// The event log.
    fn events(&self) -> &Arc<EventLog>;
    /// Counters and gauges.
    fn metrics(&self) -> &Arc<Metrics>;
    /// Notes that `member`'s agent checked `services` and they passed.
    fn note_checked(&self, member: &str, services: &[String]);
    /// Carries out (or hands on) an operator request.
    fn operate<'a>(
        &'a self,
        name: &'a str,
        request: OpRequest,
    ) -> BoxFuture<'a, std::result::Result<(), OperateError>>;
}

impl<S: Store> Operations for Controller<S> {
    fn events(&self) -> &Arc<EventLog> {
        &self.events
    }

    fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    fn note_checked(&self, member: &str, services: &[String]) {
        Controller::note_checked(self, member, services);
    }

    fn operate<'a>(
        &'a self,
        name: &'a str,
        request: OpRequest,
    ) -> BoxFuture<'a, std::result::Result<(), OperateError>> {
        Box::pin(Controller::operate(self, name, request))
    }
}

/// State shared by the handlers.
pub struct App<S: Store> {
    /// The store.
    pub store: Arc<S>,
    /// The controller (operator requests, events, metrics).
    pub controller: Arc<dyn Operations>,
    /// What the controller knows, read-only.
    pub cache: Reader,
    /// Who may do what.
    pub policy: access::Policy,
    /// GitOps sync status.
    pub sync: Arc<Mutex<SyncStatus>>,
    /// Notified when the server shuts down: open streams end.
    pub shutdown: Arc<tokio::sync::Notify>,
    /// The scripts the services name (for agents' inventories), worked out
    /// once per store revision.
    pub wanted: Mutex<Wanted>,
}

/// The scripts the services name, as of a store revision, and their hash.
#[derive(Debug, Default)]
pub struct Wanted {
    revision: u64,
    hash: u64,
    list: Arc<Vec<String>>,
}

/// An [`ApiError`] as a response.
#[derive(Debug)]
pub(crate) struct Rejection(pub ApiError);

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.0)).into_response()
    }
}

impl From<clusvc_store::Error> for Rejection {
    fn from(e: clusvc_store::Error) -> Self {
        let code = match e {
            clusvc_store::Error::Unavailable(_) => ErrorCode::Unavailable,
            clusvc_store::Error::TooLarge(_) => ErrorCode::BadRequest,
            _ => ErrorCode::Internal,
        };
        Rejection(ApiError::new(code, e.to_string()))
    }
}

/// A handler's result.
pub(crate) type Result<T, E = Rejection> = std::result::Result<T, E>;

pub(crate) fn fail(code: ErrorCode, message: impl Into<String>) -> Rejection {
    Rejection(ApiError::new(code, message))
}

/// A JSON body whose rejections (malformed, wrong types, wrong content
/// type) answer an [`ApiError`] like every other failure.
pub(crate) struct ApiJson<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request(req: Request, state: &S) -> std::result::Result<Self, Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|t| t.trim() == "application/json")
            });
        if !json {
            return Err(fail(
                ErrorCode::BadRequest,
                "expected a body with Content-Type: application/json",
            ));
        }
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| fail(ErrorCode::from_status(e.status().as_u16()), e.body_text()))?;
        // The documented object, not something serde could read field by
        // field (a bare array is no request).
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(fail(
                ErrorCode::BadRequest,
                "the request body must be a JSON object",
            ));
        }
        serde_json::from_slice(&body).map(ApiJson).map_err(|e| {
            let code = match e.classify() {
                serde_json::error::Category::Data => ErrorCode::Invalid,
                _ => ErrorCode::BadRequest,
            };
            fail(code, format!("invalid request body: {e}"))
        })
    }
}

/// A query string whose rejections answer an [`ApiError`].
pub(crate) struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> std::result::Result<Self, Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(fail(ErrorCode::BadRequest, e.body_text())),
        }
    }
}

async fn no_route() -> Rejection {
    fail(ErrorCode::NotFound, "no such route")
}

async fn no_method() -> Rejection {
    fail(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
}

/// `GET /v1/observed`: the observed state as this server knows it (the
/// input of `plan --offline --observed`, to replay a live cluster).
async fn observed<S: Store>(
    axum::extract::State(app): axum::extract::State<Arc<App<S>>>,
) -> Json<clusvc_core::model::ObservedState> {
    Json(app.cache.read().observed.clone())
}

/// The API router.
pub fn router<S: Store>(app: Arc<App<S>>) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz::<S>))
        .route("/readyz", get(health::readyz::<S>))
        .route("/metrics", get(health::metrics::<S>))
        .route("/v1/services", get(services::list::<S>))
        .route("/v1/services/{name}", get(services::get::<S>))
        .route("/v1/services/{name}/ops/{op}", post(ops::post::<S>))
        .route("/v1/members", get(members::list::<S>))
        .route("/v1/members/{name}", get(members::get::<S>))
        .route("/v1/members/{name}/{op}", post(members::standby::<S>))
        .route(
            "/v1/objects/{kind}/{name}",
            axum::routing::delete(objects::delete::<S>),
        )
        .route(
            "/v1/apply",
            post(objects::apply::<S>).layer(DefaultBodyLimit::max(MAX_OBJECTS_BODY)),
        )
        .route(
            "/v1/plan",
            post(plan::post::<S>).layer(DefaultBodyLimit::max(MAX_OBJECTS_BODY)),
        )
        .route("/v1/events", get(events::get::<S>))
        .route("/v1/sync", get(health::sync::<S>))
        .route("/v1/observed", get(observed::<S>))
        .route("/v1/agent/heartbeat", post(agent::heartbeat::<S>))
        .route("/v1/agent/work", get(agent::work::<S>))
        .route("/v1/agent/done", post(agent::done::<S>))
        .route("/v1/agent/status", post(agent::status::<S>))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(middleware::from_fn_with_state(
            app.clone(),
            access::authorize::<S>,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}
