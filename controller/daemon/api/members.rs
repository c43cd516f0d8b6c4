//! `GET /v1/members[/NAME]`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};

use clusvc_core::api::{ApiError, MemberState, MemberView};
use clusvc_store::Store;

use super::{App, Rejection, Result};
use crate::reconcile::Cache;

fn views(c: &Cache, only: Option<&str>) -> Vec<MemberView> {
    c.members()
        .iter()
        .filter(|(n, _)| only.is_none_or(|o| o == n.as_str()))
        .map(|(name, m)| {
            let om = c.observed.members.get(name).cloned().unwrap_or_default();
            let state = if !om.alive {
                MemberState::Dead
            } else if m.spec.standby || om.standby {
                MemberState::Standby
            } else {
                MemberState::Alive
            };
            MemberView {
                name: name.clone(),
                state,
                services: c
                    .observed
                    .services
                    .values()
                    .filter(|o| o.member.as_deref() == Some(name))
                    .count(),
                desired: m.clone(),
                observed: om,
            }
        })
        .collect()
}

pub(crate) async fn list<S: Store>(State(app): State<Arc<App<S>>>) -> Json<Vec<MemberView>> {
    Json(views(&app.cache.read(), None))
}

pub(crate) async fn get<S: Store>(
    State(app): State<Arc<App<S>>>,
    Path(name): Path<String>,
) -> Result<Json<MemberView>> {
    views(&app.cache.read(), Some(&name))
        .pop()
        .map(Json)
        .ok_or_else(|| Rejection(ApiError::not_found("members", &name)))
}
