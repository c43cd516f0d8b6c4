//! `GET /v1/services[/NAME]`.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use clusvc_core::api::{
    ApiError, DisplayState, ErrorCode, MAX_PAGE, SOURCE_ANNOTATION, ServicePage, ServiceView,
};
use clusvc_core::model::Timestamp;
use clusvc_store::Store;

use super::{ApiQuery, App, Rejection, Result};
use crate::reconcile::Cache;

/// The views of every service, or of one.
pub(crate) fn views(c: &Cache, only: Option<&str>) -> Vec<ServiceView> {
    let names: Vec<String> = match only {
        Some(n) => vec![n.to_string()],
        None => c.service_names().into_iter().collect(),
    };
    views_of(c, names)
}

/// The first `limit` services after `after` in name order (desired,
/// observed or held as invalid), and whether more follow: each of the
/// three sorted maps is read from `after` for at most `limit` names, so
/// a page costs the page, not the cluster.
pub(crate) fn page(c: &Cache, after: Option<&str>, limit: usize) -> (Vec<ServiceView>, bool) {
    use std::ops::Bound;
    let from = match after {
        Some(a) => Bound::Excluded(a.to_string()),
        None => Bound::Unbounded,
    };
    let range = (from, Bound::Unbounded);
    let mut names: std::collections::BTreeSet<&String> = std::collections::BTreeSet::new();
    names.extend(
        c.services()
            .range::<String, _>(range.clone())
            .take(limit + 1)
            .map(|(k, _)| k),
    );
    names.extend(
        c.observed
            .services
            .range::<String, _>(range.clone())
            .take(limit + 1)
            .map(|(k, _)| k),
    );
    names.extend(
        c.invalid()
            .range::<String, _>(range)
            .take(limit + 1)
            .map(|(k, _)| k),
    );
    let more = names.len() > limit;
    let names = names.into_iter().take(limit).cloned().collect();
    (views_of(c, names), more)
}

/// The restarts of a service within its restart window (`RESTARTS`).
pub(crate) fn recent_restarts(
    d: Option<&clusvc_core::model::Service>,
    o: Option<&clusvc_core::model::ObservedService>,
    now: Timestamp,
) -> usize {
    let window = d
        .map(|d| d.spec.recovery.restart_window)
        .unwrap_or_default();
    o.map_or(0, |o| {
        o.restarts
            .iter()
            .filter(|t| **t > now.minus(window))
            .count()
    })
}

fn views_of(c: &Cache, names: Vec<String>) -> Vec<ServiceView> {
    let now = Timestamp::from_system(SystemTime::now());
    names
        .into_iter()
        .filter_map(|name| {
            let d = c.services().get(&name);
            let o = c.observed.services.get(&name);
            let invalid = c.invalid().get(&name).cloned();
            if d.is_none() && o.is_none() && invalid.is_none() {
                return None;
            }
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
                restarts: recent_restarts(d, o, now),
                created_at: o.and_then(|o| o.created_at),
                source: d.and_then(|d| d.metadata.annotations.get(SOURCE_ANNOTATION).cloned()),
                desired: d.cloned(),
                observed: o.cloned(),
                name,
            })
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    limit: Option<usize>,
    #[serde(rename = "continue")]
    next: Option<String>,
}

/// Every service (a JSON array), or with `limit` one page of them
/// ([`ServicePage`]).
pub(crate) async fn list<S: Store>(
    State(app): State<Arc<App<S>>>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response> {
    let Some(limit) = q.limit else {
        if q.next.is_some() {
            return Err(Rejection(ApiError::new(
                ErrorCode::BadRequest,
                "continue: only with limit",
            )));
        }
        return Ok(Json(views(&app.cache.read(), None)).into_response());
    };
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Rejection(ApiError::new(
            ErrorCode::BadRequest,
            format!("limit: {limit} is outside 1..={MAX_PAGE}"),
        )));
    }
    if q.next
        .as_ref()
        .is_some_and(|n| n.is_empty() || n.len() > 253)
    {
        return Err(Rejection(ApiError::new(
            ErrorCode::BadRequest,
            "continue: not a token this server gave",
        )));
    }
    let (items, more) = page(&app.cache.read(), q.next.as_deref(), limit);
    let next = more.then(|| items.last().map(|v| v.name.clone())).flatten();
    Ok(Json(ServicePage { items, next }).into_response())
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
