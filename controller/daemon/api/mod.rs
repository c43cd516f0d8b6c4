//! The HTTP/JSON API (`/v1/...`), `/healthz`, `/readyz` and `/metrics`
//! (SPEC §7), one
//! file per resource. Request and answer bodies are the wire types of
//! [`clusvc_core::api`]; every failure answers an [`ApiError`] with the
//! status of its code.
//!
//! It binds 127.0.0.1 by default; listening elsewhere requires a bearer
//! token, and every request without it gets 401. Request bodies are
//! size-limited.

mod events;
mod health;
mod members;
mod objects;
mod ops;
mod plan;
mod services;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use clusvc_core::api::{ApiError, ErrorCode, SyncStatus};
use clusvc_store::Store;

use crate::reconcile::{Controller, Reader};

/// Largest request body.
pub const MAX_BODY: usize = 16 << 20;

/// State shared by the handlers.
pub struct App<S: Store> {
    /// The store.
    pub store: Arc<S>,
    /// The controller (operator requests, events, metrics).
    pub controller: Arc<Controller<S>>,
    /// What the controller knows, read-only.
    pub cache: Reader,
    /// Required bearer token, if any.
    pub token: Option<String>,
    /// GitOps sync status.
    pub sync: Arc<Mutex<SyncStatus>>,
    /// Notified when the server shuts down: open streams end.
    pub shutdown: Arc<tokio::sync::Notify>,
}

/// An [`ApiError`] as a response.
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

/// Equality whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

async fn auth<S: Store>(
    State(app): State<Arc<App<S>>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &app.token {
        // `Bearer` in any case (RFC 7235 schemes are case-insensitive); the
        // token compared in constant time.
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
            return fail(ErrorCode::Unauthorized, "missing or wrong bearer token").into_response();
        }
    }
    next.run(request).await
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
        .route(
            "/v1/objects/{kind}/{name}",
            axum::routing::delete(objects::delete::<S>),
        )
        .route("/v1/apply", post(objects::apply::<S>))
        .route("/v1/plan", post(plan::post::<S>))
        .route("/v1/events", get(events::get::<S>))
        .route("/v1/sync", get(health::sync::<S>))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
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
        /// The address asked for.
        addr: SocketAddr,
        /// The error of bind(2).
        source: std::io::Error,
    },
}

/// Checks the listen policy and binds.
pub async fn bind(
    addr: SocketAddr,
    token: Option<&str>,
) -> std::result::Result<tokio::net::TcpListener, ServeError> {
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(ServeError::NeedsToken(addr));
    }
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}
