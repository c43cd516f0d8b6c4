//! `POST /v1/plan`: the live plan, or a what-if plan with objects applied
//! and members failed in memory only.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::extract::State;

use clusvc_core::api::{ErrorCode, ObjectKind, PlanRequest, PlanResponse};
use clusvc_core::model::{DesiredState, Object, Timestamp};
use clusvc_core::plan;
use clusvc_store::Store;

use super::{App, Result, fail};

pub(crate) async fn post<S: Store>(
    State(app): State<Arc<App<S>>>,
    Json(req): Json<PlanRequest>,
) -> Result<Json<PlanResponse>> {
    let now = Timestamp::from_system(SystemTime::now());
    let c = app.cache.read();
    let seen = c.seen();
    let mut observed_copy = None;
    if !req.fail_members.is_empty() {
        let mut observed = c.observed.clone();
        for m in &req.fail_members {
            observed.fail_member(m, now);
        }
        observed_copy = Some(observed);
    }
    let observed = observed_copy.as_ref().unwrap_or(&c.observed);
    let p = if req.members.is_empty() && req.services.is_empty() {
        plan::plan(c.desired(), observed, now)
    } else {
        let mut objects: BTreeMap<(ObjectKind, String), Object> = c
            .desired()
            .objects()
            .map(|o| ((kind(&o), o.name().to_string()), o))
            .collect();
        for o in req
            .members
            .into_iter()
            .map(Object::Member)
            .chain(req.services.into_iter().map(Object::Service))
        {
            objects.insert((kind(&o), o.name().to_string()), o);
        }
        let desired =
            DesiredState::from_objects(objects.into_values().collect()).map_err(|issues| {
                fail(
                    ErrorCode::Invalid,
                    issues
                        .iter()
                        .map(|i| format!("{}: {}", i.path, i.message))
                        .collect::<Vec<_>>()
                        .join("\n"),
                )
            })?;
        plan::plan(&desired, observed, now)
    };
    drop(c);
    Ok(Json(PlanResponse {
        text: p.to_string(),
        changes: p.has_changes(),
        plan: p,
        revision: seen,
    }))
}

fn kind(o: &Object) -> ObjectKind {
    match o {
        Object::Member(_) => ObjectKind::Member,
        Object::Service(_) => ObjectKind::Service,
    }
}
