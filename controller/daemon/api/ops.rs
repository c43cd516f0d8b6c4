//! `POST /v1/services/NAME/ops/OP`: operator requests. `enable` and
//! `disable` patch the service's spec (with a compare-and-swap); the others
//! are requests the controller records on the observed service.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};

use clusvc_core::api::{
    ApiError, ENABLED_IN_SOURCE_ANNOTATION, ENABLED_OVERRIDE_ANNOTATION, ErrorCode,
    GITOPS_SOURCE_PREFIX, MANIFEST_ANNOTATION, Operation, OperationRequest, OperationResult,
    SOURCE_ANNOTATION,
};
use clusvc_core::model::Service;
use clusvc_store::{Compare, Store, Txn, Write, keys};

use super::{App, Rejection, Result, fail};
use crate::reconcile::{OperateError, Request};

pub(crate) async fn post<S: Store>(
    State(app): State<Arc<App<S>>>,
    Path((name, op)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<OperationResult>> {
    let operation: Operation = op
        .parse()
        .map_err(|e: clusvc_core::api::UnknownOperation| {
            fail(ErrorCode::NotFound, e.to_string())
        })?;
    // The body is optional (`{}` or nothing for most operations).
    let body: OperationRequest = if body.iter().all(u8::is_ascii_whitespace) {
        OperationRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| fail(ErrorCode::BadRequest, format!("invalid request body: {e}")))?
    };
    let (to, force) = (body.to, body.force);
    if force && !matches!(operation, Operation::Enable | Operation::Disable) {
        return Err(fail(
            ErrorCode::BadRequest,
            format!("{operation} takes no --force"),
        ));
    }
    if to.is_some() && operation != Operation::Relocate {
        return Err(fail(
            ErrorCode::BadRequest,
            format!("{operation} takes no target member"),
        ));
    }
    let request = match operation {
        Operation::Relocate => Request::Relocate(to),
        Operation::Restart => Request::Restart,
        Operation::Freeze => Request::Freeze,
        Operation::Unfreeze => Request::Unfreeze,
        Operation::Clear => Request::Clear,
        Operation::Enable | Operation::Disable => {
            set_enabled(&app, &name, operation == Operation::Enable, force).await?;
            return Ok(Json(OperationResult {
                service: name,
                operation,
            }));
        }
    };
    app.controller
        .operate(&name, request)
        .await
        .map_err(|e| match e {
            OperateError::NotFound(_) | OperateError::UnknownMember(_) => {
                fail(ErrorCode::NotFound, e.to_string())
            }
            OperateError::Impossible(_) => fail(ErrorCode::Conflict, e.to_string()),
            OperateError::Controller(_) => fail(ErrorCode::Internal, e.to_string()),
            OperateError::NoLeader(_) => fail(ErrorCode::Unavailable, e.to_string()),
        })?;
    Ok(Json(OperationResult {
        service: name,
        operation,
    }))
}

/// What `enable`/`disable` do to a service's stored object: `None` when
/// nothing changes, or the refusal of a change a manifests directory owns.
fn toggle(svc: &mut Service, enabled: bool, force: bool) -> std::result::Result<bool, String> {
    let ann = &mut svc.metadata.annotations;
    let owner = ann.get(SOURCE_ANNOTATION).cloned().unwrap_or_default();
    if !owner.starts_with(GITOPS_SOURCE_PREFIX) {
        let changed = svc.spec.enabled != enabled;
        svc.spec.enabled = enabled;
        return Ok(changed);
    }
    // The directory's own value: the one recorded with an override, or the
    // live one when there is none.
    let in_source = match ann.get(ENABLED_IN_SOURCE_ANNOTATION) {
        Some(v) => v == "true",
        None => svc.spec.enabled,
    };
    if enabled == in_source {
        // Back to what the directory says: lift any override.
        let lifted = ann.remove(ENABLED_OVERRIDE_ANNOTATION).is_some();
        ann.remove(ENABLED_IN_SOURCE_ANNOTATION);
        let changed = svc.spec.enabled != enabled || lifted;
        svc.spec.enabled = enabled;
        return Ok(changed);
    }
    if !force {
        let dir = owner.trim_start_matches(GITOPS_SOURCE_PREFIX);
        let file = ann
            .get(MANIFEST_ANNOTATION)
            .map(|f| format!("{dir}/{f}"))
            .unwrap_or_else(|| dir.to_string());
        return Err(format!(
            "service/{} is managed by {owner}: set spec.enabled: {enabled} in {file}, or use --force to override it until the directory changes that field",
            svc.metadata.name
        ));
    }
    ann.insert(ENABLED_OVERRIDE_ANNOTATION.to_string(), enabled.to_string());
    ann.insert(
        ENABLED_IN_SOURCE_ANNOTATION.to_string(),
        in_source.to_string(),
    );
    svc.spec.enabled = enabled;
    Ok(true)
}

async fn set_enabled<S: Store>(app: &App<S>, name: &str, enabled: bool, force: bool) -> Result<()> {
    let key = format!("{}{name}", keys::SERVICES);
    let kv = app
        .store
        .get(&key)
        .await?
        .ok_or_else(|| Rejection(ApiError::not_found("services", name)))?;
    let mut svc = keys::decode::<Service>(&key, &kv.value)
        .ok_or_else(|| fail(ErrorCode::Internal, "undecodable service"))?;
    let changed = toggle(&mut svc, enabled, force).map_err(|why| fail(ErrorCode::Conflict, why))?;
    if enabled {
        let _ = app.controller.operate(name, Request::Clear).await;
    }
    if changed {
        let txn = Txn {
            compare: vec![Compare::ModRevision(key.clone(), kv.mod_revision)],
            success: vec![Write::Put {
                key,
                value: keys::encode(&svc),
                lease: None,
            }],
            failure: vec![],
        };
        if !app.store.txn(txn).await?.succeeded {
            return Err(fail(
                ErrorCode::Conflict,
                "the service changed meanwhile; retry",
            ));
        }
    }
    Ok(())
}
