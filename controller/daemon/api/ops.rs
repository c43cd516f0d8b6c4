//! `POST /v1/services/NAME/ops/OP`: operator requests. `enable` and
//! `disable` patch the service's spec (with a compare-and-swap); the others
//! are requests the controller records on the observed service.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};

use clusvc_core::api::{ApiError, ErrorCode, Operation, OperationRequest, OperationResult};
use clusvc_core::model::Service;
use clusvc_store::{Compare, Store, Txn, Write, keys};

use super::{App, Rejection, Result, fail};
use crate::reconcile::{OperateError, Request};

pub(crate) async fn post<S: Store>(
    State(app): State<Arc<App<S>>>,
    Path((name, op)): Path<(String, String)>,
    body: Option<Json<OperationRequest>>,
) -> Result<Json<OperationResult>> {
    let operation: Operation = op
        .parse()
        .map_err(|e: clusvc_core::api::UnknownOperation| {
            fail(ErrorCode::NotFound, e.to_string())
        })?;
    let to = body.and_then(|b| b.0.to);
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
            set_enabled(&app, &name, operation == Operation::Enable).await?;
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
        })?;
    Ok(Json(OperationResult {
        service: name,
        operation,
    }))
}

async fn set_enabled<S: Store>(app: &App<S>, name: &str, enabled: bool) -> Result<()> {
    let key = format!("{}{name}", keys::SERVICES);
    let kv = app
        .store
        .get(&key)
        .await?
        .ok_or_else(|| Rejection(ApiError::not_found("services", name)))?;
    let mut svc = keys::decode::<Service>(&key, &kv.value)
        .ok_or_else(|| fail(ErrorCode::Internal, "undecodable service"))?;
    if enabled {
        let _ = app.controller.operate(name, Request::Clear).await;
    }
    if svc.spec.enabled != enabled {
        svc.spec.enabled = enabled;
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
