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

use super::{ApiJson, App, Result, fail};

pub(crate) async fn post<S: Store>(
    State(app): State<Arc<App<S>>>,
    ApiJson(req): ApiJson<PlanRequest>,
) -> Result<Json<PlanResponse>> {
    let now = Timestamp::from_system(SystemTime::now());
    let what_if = !(req.members.is_empty() && req.services.is_empty());
    if !what_if && req.fail_members.is_empty() {
        // The live plan, read in place: no copy of the state.
        let c = app.cache.read();
        let p = plan::plan(c.desired(), &c.observed, now);
        let seen = c.seen();
        drop(c);
        return Ok(Json(PlanResponse {
            text: p.to_string(),
            changes: p.has_changes(),
            plan: p,
            revision: seen,
        }));
    }
    // A what-if: copy what it changes, then plan without holding the
    // controller's cache.
    let (mut objects, mut observed, seen) = {
        let c = app.cache.read();
        let objects: BTreeMap<(ObjectKind, String), Object> = if what_if {
            c.desired()
                .objects()
                .map(|o| ((kind(&o), o.name().to_string()), o))
                .collect()
        } else {
            BTreeMap::new()
        };
        (objects, c.observed.clone(), c.seen())
    };
    for m in &req.fail_members {
        observed.fail_member(m, now);
    }
    let p = if what_if {
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
        plan::plan(&desired, &observed, now)
    } else {
        let c = app.cache.read();
        plan::plan(c.desired(), &observed, now)
    };
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
