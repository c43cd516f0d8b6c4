//! `/healthz`, `/metrics` and `GET /v1/sync`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use clusvc_core::api::{DisplayState, SyncStatus};
use clusvc_store::Store;

use super::App;

fn sync_status<S: Store>(app: &App<S>) -> SyncStatus {
    app.sync.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

pub(crate) async fn healthz<S: Store>(State(app): State<Arc<App<S>>>) -> Response {
    Json(json!({"status": "ok", "sync": sync_status(&app)})).into_response()
}

pub(crate) async fn sync<S: Store>(State(app): State<Arc<App<S>>>) -> Json<SyncStatus> {
    Json(sync_status(&app))
}

pub(crate) async fn metrics<S: Store>(State(app): State<Arc<App<S>>>) -> Response {
    let states: BTreeMap<String, usize> = {
        let c = app.cache.read();
        let mut m = BTreeMap::new();
        for (name, o) in &c.observed.services {
            *m.entry(DisplayState::of(c.services().get(name), Some(o)).to_string())
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
