//! `GET /v1/services[/NAME]`.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::extract::{Path, State};

use clusvc_core::api::{ApiError, DisplayState, SOURCE_ANNOTATION, ServiceView};
use clusvc_core::model::Timestamp;
use clusvc_store::Store;

use super::{App, Rejection, Result};
use crate::reconcile::Cache;

/// The views of every service, or of one.
pub(crate) fn views(c: &Cache, only: Option<&str>) -> Vec<ServiceView> {
    let now = Timestamp::from_system(SystemTime::now());
    let names: Vec<String> = match only {
        Some(n) => vec![n.to_string()],
        None => c.service_names().into_iter().collect(),
    };
    names
        .into_iter()
        .filter_map(|name| {
            let d = c.services().get(&name);
            let o = c.observed.services.get(&name);
            let invalid = c.invalid().get(&name).cloned();
            if d.is_none() && o.is_none() && invalid.is_none() {
                return None;
            }
            let window = d
                .map(|d| d.spec.recovery.restart_window)
                .unwrap_or_default();
            Some(ServiceView {
                id: o.map(|o| o.id),
                state: if invalid.is_some() {
                    DisplayState::Invalid
                } else {
                    DisplayState::of(d, o)
                },
                invalid,
                member: o.and_then(|o| o.member.clone()),
                last_check: o.and_then(|o| o.last_check),
                restarts: o.map_or(0, |o| {
                    o.restarts
                        .iter()
                        .filter(|t| **t > now.minus(window))
                        .count()
                }),
                created_at: o.and_then(|o| o.created_at),
                source: d.and_then(|d| d.metadata.annotations.get(SOURCE_ANNOTATION).cloned()),
                desired: d.cloned(),
                observed: o.cloned(),
                name,
            })
        })
        .collect()
}

pub(crate) async fn list<S: Store>(State(app): State<Arc<App<S>>>) -> Json<Vec<ServiceView>> {
    Json(views(&app.cache.read(), None))
}

pub(crate) async fn get<S: Store>(
    State(app): State<Arc<App<S>>>,
    Path(name): Path<String>,
) -> Result<Json<ServiceView>> {
    views(&app.cache.read(), Some(&name))
        .pop()
        .map(Json)
        .ok_or_else(|| Rejection(ApiError::not_found("services", &name)))
}
