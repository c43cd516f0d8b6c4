//! `POST /v1/apply` and `DELETE /v1/objects/KIND/NAME`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};

use clusvc_core::api::{ApiError, ApplyRequest, ApplyResult, Deleted, ErrorCode, ObjectKind};
use clusvc_store::{Store, keys};

use super::{ApiJson, App, Rejection, Result, fail};
use crate::sync::apply::{self, ScriptChecks};

pub(crate) async fn apply<S: Store>(
    State(app): State<Arc<App<S>>>,
    ApiJson(req): ApiJson<ApplyRequest>,
) -> Result<Json<ApplyResult>> {
    apply::apply(app.store.as_ref(), req, ScriptChecks::Check)
        .await
        .map(Json)
        .map_err(|e| fail(e.code(), e.to_string()))
}

pub(crate) async fn delete<S: Store>(
    State(app): State<Arc<App<S>>>,
    Path((kind, name)): Path<(String, String)>,
) -> Result<Json<Deleted>> {
    let Some(kind) = ObjectKind::from_plural(&kind) else {
        return Err(fail(ErrorCode::NotFound, format!("unknown kind {kind:?}")));
    };
    let key = match kind {
        ObjectKind::Service => format!("{}{name}", keys::SERVICES),
        ObjectKind::Member => format!("{}{name}", keys::MEMBERS),
    };
    if app.store.get(&key).await?.is_none() {
        return Err(Rejection(ApiError::not_found(kind.plural(), &name)));
    }
    if kind == ObjectKind::Member {
        let placed: Vec<String> = app
            .cache
            .read()
            .services()
            .values()
            .filter(|s| s.spec.placement.members.contains(&name))
            .map(|s| s.metadata.name.clone())
            .collect();
        if !placed.is_empty() {
            return Err(fail(
                ErrorCode::Conflict,
                format!(
                    "member {name} is named in the placement of: {}",
                    placed.join(", ")
                ),
            ));
        }
    }
    app.store.delete(&key).await?;
    Ok(Json(Deleted { kind, name }))
}
