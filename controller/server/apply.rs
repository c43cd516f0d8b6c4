//! Server-side apply: validate the whole resulting desired state, then
//! write every change in one compare-and-swap transaction (all or nothing).
//! New services get their IDs here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::controller::keys;
use crate::model::{Member, Object, ObservedService, ServiceState, Timestamp, desired};
use crate::store::{Compare, Op, Store, Txn};

/// An apply request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyRequest {
    /// Members to create or update.
    #[serde(default)]
    pub members: Vec<Member>,
    /// Services to create or update.
    #[serde(default)]
    pub services: Vec<crate::model::Service>,
    /// Who applies (`apply`, `gitops:DIR`); recorded on the objects.
    #[serde(default = "default_source")]
    pub source: String,
    /// Remove objects of the same source that are not in the request.
    #[serde(default)]
    pub prune: bool,
    /// Validate and report, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Take over objects owned by another source.
    #[serde(default)]
    pub force: bool,
}

fn default_source() -> String {
    "apply".to_string()
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectResult {
    /// `member` or `service`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// `created`, `configured`, `unchanged` or `pruned`.
    pub result: String,
}

/// The outcome of an apply.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyResponse {
    /// Per object, in request order, then pruned ones.
    pub objects: Vec<ObjectResult>,
    /// Store revision after the write.
    pub revision: u64,
}

/// Why an apply was rejected.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The resulting state is invalid.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// An object belongs to another source.
    #[error("{0}")]
    Conflict(String),
    /// Another writer changed the objects meanwhile; retry.
    #[error("the objects changed during the apply; retry")]
    Raced,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

fn source_of(annotations: &BTreeMap<String, String>) -> Option<&str> {
    annotations.get(keys::SOURCE_ANNOTATION).map(String::as_str)
}

/// Applies a request.
pub async fn apply<S: Store>(store: &S, req: ApplyRequest) -> Result<ApplyResponse, Error> {
    let (existing_members, _) = store.list(keys::MEMBERS).await?;
    let (existing_services, _) = store.list(keys::SERVICES).await?;
    let (next_id_kv, ids_rev) = match store.get(keys::NEXT_ID).await? {
        Some(kv) => (
            String::from_utf8_lossy(&kv.value)
                .trim()
                .parse::<u64>()
                .unwrap_or(0),
            kv.mod_revision,
        ),
        None => (0, 0),
    };
    let mut current: BTreeMap<(String, String), (Object, u64)> = BTreeMap::new();
    for kv in &existing_members {
        if let Some(m) = keys::decode::<Member>(&kv.key, &kv.value) {
            current.insert(
                ("member".into(), m.metadata.name.clone()),
                (Object::Member(m), kv.mod_revision),
            );
        }
    }
    for kv in &existing_services {
        if let Some(s) = keys::decode::<crate::model::Service>(&kv.key, &kv.value) {
            current.insert(
                ("service".into(), s.metadata.name.clone()),
                (Object::Service(s), kv.mod_revision),
            );
        }
    }
    let mut incoming: Vec<Object> = req
        .members
        .into_iter()
        .map(Object::Member)
        .chain(req.services.into_iter().map(Object::Service))
        .collect();
    for o in &mut incoming {
        let ann = match o {
            Object::Member(m) => &mut m.metadata.annotations,
            Object::Service(s) => &mut s.metadata.annotations,
        };
        ann.insert(keys::SOURCE_ANNOTATION.to_string(), req.source.clone());
    }
    // Conflicts with objects another source owns.
    let mut conflicts = Vec::new();
    for o in &incoming {
        if let Some((cur, _)) = current.get(&(o.kind_lower().to_string(), o.name().to_string())) {
            let owner = match cur {
                Object::Member(m) => source_of(&m.metadata.annotations),
                Object::Service(s) => source_of(&s.metadata.annotations),
            };
            if let Some(owner) = owner
                && owner != req.source
                && owner.starts_with("gitops:")
                && !req.force
            {
                conflicts.push(format!(
                    "{}/{} is managed by {owner}; change it there, or use --force",
                    o.kind_lower(),
                    o.name()
                ));
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(Error::Conflict(conflicts.join("\n")));
    }
    // The resulting desired state.
    let mut result: BTreeMap<(String, String), Object> = current
        .iter()
        .map(|(k, (o, _))| (k.clone(), o.clone()))
        .collect();
    let mut pruned = Vec::new();
    if req.prune {
        let keep: std::collections::BTreeSet<(String, String)> = incoming
            .iter()
            .map(|o| (o.kind_lower().to_string(), o.name().to_string()))
            .collect();
        for (k, (o, _)) in &current {
            let owner = match o {
                Object::Member(m) => source_of(&m.metadata.annotations),
                Object::Service(s) => source_of(&s.metadata.annotations),
            };
            if owner == Some(req.source.as_str()) && !keep.contains(k) {
                pruned.push(k.clone());
                result.remove(k);
            }
        }
    }
    for o in &incoming {
        result.insert(
            (o.kind_lower().to_string(), o.name().to_string()),
            o.clone(),
        );
    }
    let all: Vec<Object> = result.values().cloned().collect();
    let issues = desired::check(&all);
    if !issues.is_empty() {
        return Err(Error::Invalid(
            issues
                .iter()
                .map(|i| {
                    format!(
                        "{}/{}: {}: {}",
                        all[i.object].kind_lower(),
                        all[i.object].name(),
                        i.path,
                        i.message
                    )
                })
                .collect(),
        ));
    }
    let mut script_errors = Vec::new();
    for o in &incoming {
        if let Object::Service(s) = o {
            for (path, msg) in crate::scriptfile::check_service(&s.spec) {
                script_errors.push(format!("service/{}: {path}: {msg}", s.metadata.name));
            }
        }
    }
    if !script_errors.is_empty() {
        return Err(Error::Invalid(script_errors));
    }
    // Changes.
    let mut txn = Txn::default();
    let mut objects = Vec::new();
    let mut next_id = next_id_kv;
    let now = Timestamp::from_system(std::time::SystemTime::now());
    for o in &incoming {
        let k = (o.kind_lower().to_string(), o.name().to_string());
        let key = match o {
            Object::Member(_) => format!("{}{}", keys::MEMBERS, o.name()),
            Object::Service(_) => format!("{}{}", keys::SERVICES, o.name()),
        };
        let value = match o {
            Object::Member(m) => keys::encode(m),
            Object::Service(s) => keys::encode(s),
        };
        let result = match current.get(&k) {
            Some((cur, rev)) => {
                txn.compare.push(Compare::ModRevision(key.clone(), *rev));
                if cur == o { "unchanged" } else { "configured" }
            }
            None => {
                txn.compare.push(Compare::Missing(key.clone()));
                "created"
            }
        };
        if result != "unchanged" {
            txn.success.push(Op::Put {
                key,
                value,
                lease: None,
            });
        }
        if result == "created"
            && let Object::Service(s) = o
        {
            let okey = format!("{}{}", keys::OBSERVED_SERVICES, s.metadata.name);
            if store.get(&okey).await?.is_none() {
                let record = ObservedService {
                    id: next_id,
                    state: ServiceState::Stopped,
                    created_at: Some(now),
                    ..ObservedService::default()
                };
                next_id += 1;
                txn.compare.push(Compare::Missing(okey.clone()));
                txn.success.push(Op::Put {
                    key: okey,
                    value: keys::encode(&record),
                    lease: None,
                });
            }
        }
        objects.push(ObjectResult {
            kind: k.0,
            name: k.1,
            result: result.to_string(),
        });
    }
    for (kind, name) in pruned {
        let key = if kind == "member" {
            format!("{}{name}", keys::MEMBERS)
        } else {
            format!("{}{name}", keys::SERVICES)
        };
        let rev = current[&(kind.clone(), name.clone())].1;
        txn.compare.push(Compare::ModRevision(key.clone(), rev));
        txn.success.push(Op::Delete { key });
        objects.push(ObjectResult {
            kind,
            name,
            result: "pruned".to_string(),
        });
    }
    if next_id != next_id_kv {
        txn.compare
            .push(Compare::ModRevision(keys::NEXT_ID.to_string(), ids_rev));
        txn.success.push(Op::Put {
            key: keys::NEXT_ID.to_string(),
            value: next_id.to_string().into_bytes(),
            lease: None,
        });
    }
    if req.dry_run || txn.success.is_empty() {
        let (_, revision) = store.list(keys::NEXT_ID).await?;
        return Ok(ApplyResponse { objects, revision });
    }
    let r = store.txn(txn).await?;
    if !r.succeeded {
        return Err(Error::Raced);
    }
    Ok(ApplyResponse {
        objects,
        revision: r.revision,
    })
}
