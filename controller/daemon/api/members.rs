//! `GET /v1/members[/NAME]`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};

use clusvc_core::api::{ApiError, ErrorCode, MemberState, MemberView};
use clusvc_core::model::ObservedMember;
use clusvc_store::{Compare, Store, Txn, Write, keys};

use super::{App, Rejection, Result, fail};
use crate::reconcile::Cache;

pub(crate) fn views(c: &Cache, only: Option<&str>) -> Vec<MemberView> {
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

/// `POST /v1/members/NAME/standby` and `.../unstandby`: drains a member at
/// run time (its services move away, nothing new is placed there) or
/// undoes it, without editing its manifest (`spec.standby` stays as it
/// is). Recorded in the member's observed record, which the controller
/// also writes (fencing): a compare-and-swap keeps both.
pub(crate) async fn standby<S: Store>(
    State(app): State<Arc<App<S>>>,
    Path((name, op)): Path<(String, String)>,
) -> Result<Json<MemberView>> {
    let on = match op.as_str() {
        "standby" => true,
        "unstandby" => false,
        _ => return Err(fail(ErrorCode::NotFound, "no such route")),
    };
    if app
        .store
        .get(&format!("{}{name}", keys::MEMBERS))
        .await?
        .is_none()
    {
        return Err(Rejection(ApiError::not_found("members", &name)));
    }
    let key = format!("{}{name}", keys::OBSERVED_MEMBERS);
    for _ in 0..16 {
        let kv = app.store.get(&key).await?;
        let rev = kv.as_ref().map_or(0, |kv| kv.mod_revision);
        let mut om: ObservedMember = kv
            .and_then(|kv| keys::decode(&key, &kv.value))
            .unwrap_or_default();
        om.standby = on;
        let compare = if rev == 0 {
            Compare::Missing(key.clone())
        } else {
            Compare::ModRevision(key.clone(), rev)
        };
        let t = app
            .store
            .txn(Txn {
                compare: vec![compare],
                success: vec![Write::Put {
                    key: key.clone(),
                    value: keys::encode(&om),
                    lease: None,
                }],
                failure: vec![],
            })
            .await?;
        if t.succeeded {
            // Shown at once (the cache catches up through its watch).
            let mut views = views(&app.cache.read(), Some(&name));
            let mut view = views
                .pop()
                .ok_or_else(|| Rejection(ApiError::not_found("members", &name)))?;
            view.observed.standby = on;
            if on && view.state == MemberState::Alive {
                view.state = MemberState::Standby;
            } else if !on && !view.desired.spec.standby && view.state == MemberState::Standby {
                view.state = MemberState::Alive;
            }
            return Ok(Json(view));
        }
    }
    Err(fail(
        ErrorCode::Conflict,
        "the member's record kept changing; retry",
    ))
}
