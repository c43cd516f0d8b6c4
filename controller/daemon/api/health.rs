//! `/healthz`, `/metrics` and `GET /v1/sync`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use clusvc_core::api::{DisplayState, SyncStatus};
use clusvc_core::model::ServiceState;
use clusvc_store::{Store, keys};

use super::App;

pub(crate) fn sync_status<S: Store>(app: &App<S>) -> SyncStatus {
    app.sync.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The sync's state in one word: `off` (no manifests directory), `pending`
/// (no good sync yet), `failed` (the current tree is not applied) or `ok`.
fn sync_state(s: &SyncStatus) -> &'static str {
    match (&s.dir, &s.error, s.synced_at) {
        (None, None, _) => "off",
        (_, Some(_), _) => "failed",
        (_, None, None) => "pending",
        (_, None, Some(_)) => "ok",
    }
}

/// Liveness: 200 while the process serves; the body says how the sync is.
pub(crate) async fn healthz<S: Store>(State(app): State<Arc<App<S>>>) -> Response {
    let sync = sync_status(&app);
    let invalid = app.cache.read().invalid().clone();
    // Which server runs the controller (cluster servers elect one).
    let leader = app
        .store
        .get(clusvc_store::election::LEADER)
        .await
        .ok()
        .flatten()
        .map(|kv| {
            json!({
                "name": String::from_utf8_lossy(&kv.value),
                "epoch": kv.mod_revision,
            })
        });
    Json(json!({
        "status": "ok",
        "syncState": sync_state(&sync),
        "sync": sync,
        "invalidServices": invalid,
        "leader": leader,
    }))
    .into_response()
}

/// Readiness: 503 until the first good sync of the manifests directory and
/// while the store cannot be read.
pub(crate) async fn readyz<S: Store>(State(app): State<Arc<App<S>>>) -> Response {
    let sync = sync_status(&app);
    let store = app.store.get(keys::NEXT_ID).await;
    let mut not_ready = Vec::new();
    if sync.dir.is_some() && sync.synced_at.is_none() {
        not_ready.push("no good sync of the manifests directory yet".to_string());
    }
    if let Err(e) = &store {
        not_ready.push(format!("store unreadable: {e}"));
    }
    let status = if not_ready.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "ready": not_ready.is_empty(),
            "reasons": not_ready,
            "syncState": sync_state(&sync),
        })),
    )
        .into_response()
}

pub(crate) async fn sync<S: Store>(State(app): State<Arc<App<S>>>) -> Json<SyncStatus> {
    Json(sync_status(&app))
}

pub(crate) async fn metrics<S: Store>(State(app): State<Arc<App<S>>>) -> Response {
    // One pass over the records, no allocation per service (Prometheus
    // scrapes this; at 100,000 services it costs a few milliseconds).
    let states: BTreeMap<String, usize> = {
        let c = app.cache.read();
        let invalid = c.invalid();
        let mut m: BTreeMap<&'static str, usize> = BTreeMap::new();
        for (name, o) in &c.observed.services {
            let state = if !invalid.is_empty() && invalid.contains_key(name) {
                DisplayState::Invalid
            } else if o.state == ServiceState::Stopped && !o.frozen {
                // Only a stopped service's state depends on its spec.
                DisplayState::of(c.services().get(name), Some(o))
            } else {
                DisplayState::of(None, Some(o))
            };
            *m.entry(state.as_str()).or_default() += 1;
        }
        m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.controller.metrics().render(&states),
    )
        .into_response()
}
