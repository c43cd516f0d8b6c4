//! `POST /v1/apply` and `DELETE /v1/objects/KIND/NAME`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};

use clusvc_core::api::{
    ApiError, ApplyRequest, ApplyResult, Deleted, ErrorCode, GITOPS_SOURCE_PREFIX,
    MANIFEST_ANNOTATION, ObjectKind, SOURCE_ANNOTATION,
};
use clusvc_core::model::Service;
use clusvc_store::{Compare, Store, Txn, Write, keys};

use super::access::Identity;
use super::{ApiJson, ApiQuery, App, Rejection, Result, fail};
use crate::sync::apply::{self, ScriptChecks};

/// The source a client's objects are recorded under: its label (`apply`
/// by default, `--source NAME`) and who it is, as in `apply@root`. A
/// client cannot name another caller's source or a manifests directory's,
/// so its prune touches only what it applied itself.
fn source_of(label: &str, who: &Identity) -> Result<String> {
    let valid = !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-');
    if !valid {
        return Err(fail(
            ErrorCode::Invalid,
            format!(
                "source: {label:?} is not a valid source label (lowercase letters, digits and '-', at most 63)"
            ),
        ));
    }
    Ok(format!("{label}@{}", who.name()))
}

pub(crate) async fn apply<S: Store>(
    State(app): State<Arc<App<S>>>,
    Extension(who): Extension<Identity>,
    ApiJson(mut req): ApiJson<ApplyRequest>,
) -> Result<Json<ApplyResult>> {
    req.source = source_of(&req.source, &who)?;
    let dry_run = req.dry_run;
    let result = apply::apply(app.store.as_ref(), req, ScriptChecks::Check)
        .await
        .map_err(|e| fail(e.code(), e.to_string()))?;
    // Read your writes: the answer waits (briefly) until this server's
    // view has the write, so a `get` right after an apply shows it.
    if !dry_run {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        while app.cache.read().seen() < result.revision && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }
    Ok(Json(result))
}

/// `?force=true`: delete an object a manifests directory owns.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteQuery {
    #[serde(default)]
    force: bool,
}

pub(crate) async fn delete<S: Store>(
    State(app): State<Arc<App<S>>>,
    Path((kind, name)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Result<Json<Deleted>> {
    let Some(kind) = ObjectKind::from_plural(&kind) else {
        return Err(fail(ErrorCode::NotFound, format!("unknown kind {kind:?}")));
    };
    let key = match kind {
        ObjectKind::Service => format!("{}{name}", keys::SERVICES),
        ObjectKind::Member => format!("{}{name}", keys::MEMBERS),
    };
    let Some(kv) = app.store.get(&key).await? else {
        return Err(Rejection(ApiError::not_found(kind.plural(), &name)));
    };
    // An object of a manifests directory is deleted there (the next sync
    // would bring it back), unless forced.
    let annotations = match kind {
        ObjectKind::Service => {
            keys::decode::<Service>(&key, &kv.value).map(|o| o.metadata.annotations)
        }
        ObjectKind::Member => keys::decode::<clusvc_core::model::Member>(&key, &kv.value)
            .map(|o| o.metadata.annotations),
    }
    .unwrap_or_default();
    if let Some(owner) = annotations.get(SOURCE_ANNOTATION)
        && owner.starts_with(GITOPS_SOURCE_PREFIX)
        && !q.force
    {
        let dir = owner.trim_start_matches(GITOPS_SOURCE_PREFIX);
        let file = annotations
            .get(MANIFEST_ANNOTATION)
            .map(|f| format!("{dir}/{f}"))
            .unwrap_or_else(|| dir.to_string());
        return Err(fail(
            ErrorCode::Conflict,
            format!(
                "{kind}/{name} is managed by {owner}: remove it from {file}, or use --force (the next sync brings it back while the file declares it)"
            ),
        ));
    }
    // One compare-and-swap: the object as read; for a member, also every
    // service as read and the service counter (no service may start naming
    // it between the check and the delete).
    let mut compare = vec![Compare::ModRevision(key.clone(), kv.mod_revision)];
    if kind == ObjectKind::Member {
        let (services, _) = app.store.list(keys::SERVICES).await?;
        let mut placed = Vec::new();
        for s in &services {
            compare.push(Compare::ModRevision(s.key.clone(), s.mod_revision));
            if let Some(svc) = keys::decode::<Service>(&s.key, &s.value)
                && svc.spec.placement.members.contains(&name)
            {
                placed.push(svc.metadata.name);
            }
        }
        if !placed.is_empty() {
            return Err(fail(
                ErrorCode::Conflict,
                format!(
                    "member {name} is named in the placement of: {}",
                    placed.join(", ")
                ),
            ));
        }
        let ids_rev = app
            .store
            .get(keys::NEXT_ID)
            .await?
            .map_or(0, |kv| kv.mod_revision);
        compare.push(Compare::ModRevision(keys::NEXT_ID.to_string(), ids_rev));
    }
    let done = app
        .store
        .txn(Txn {
            compare,
            success: vec![Write::Delete { key }],
            failure: vec![],
        })
        .await?;
    if !done.succeeded {
        return Err(fail(
            ErrorCode::Conflict,
            format!("{kind}/{name} changed meanwhile; retry"),
        ));
    }
    Ok(Json(Deleted { kind, name }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_is_the_label_at_the_caller() {
        let root = Identity::User("root".into());
        assert_eq!(source_of("apply", &root).unwrap(), "apply@root");
        assert_eq!(source_of("ci-2", &Identity::Token).unwrap(), "ci-2@token");
        for bad in ["", "gitops:/srv", "a@b", "Apply", "-a", &"a".repeat(64)] {
            assert!(source_of(bad, &root).is_err(), "{bad:?}");
        }
    }
}
