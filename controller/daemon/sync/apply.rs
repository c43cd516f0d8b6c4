//! Server-side apply, as a pure function plus a transaction:
//! [`plan_changes`] decides (conflicts with other sources, prune, new IDs,
//! validation of the whole resulting desired state) on what was read, and
//! [`Changes::into_txn`] turns the decision into one compare-and-swap
//! transaction, so the apply is all or nothing and a concurrent writer makes
//! it fail instead of being overwritten.

use std::collections::{BTreeMap, BTreeSet};

use clusvc_core::api::{
    Applied, ApplyRequest, ApplyResult, ENABLED_IN_SOURCE_ANNOTATION, ENABLED_OVERRIDE_ANNOTATION,
    ErrorCode, GITOPS_SOURCE_PREFIX, ObjectKind, ObjectResult, SOURCE_ANNOTATION,
};
use clusvc_core::model::{Object, ObservedService, Service, ServiceState, Timestamp, desired};
use clusvc_manifest::scripts;
use clusvc_store::{Compare, Revision, Store, Txn, Write, keys};

/// Largest stored object (etcd's request limit is 1.5 MiB).
pub const MAX_OBJECT_BYTES: usize = 1 << 20;

/// Why an apply was rejected.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The resulting state is invalid.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// Objects belong to another source.
    #[error("{}", .0.join("\n"))]
    Conflict(Vec<String>),
    /// `create` of objects that exist.
    #[error("{}", .0.join("\n"))]
    AlreadyExists(Vec<String>),
    /// Another writer changed the objects meanwhile; retry.
    #[error("the objects changed during the apply; retry")]
    Raced,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] clusvc_store::Error),
}

impl Error {
    /// The API error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Invalid(_) => ErrorCode::Invalid,
            Error::Conflict(_) | Error::AlreadyExists(_) | Error::Raced => ErrorCode::Conflict,
            Error::Store(_) => ErrorCode::Internal,
        }
    }
}

/// The stored desired objects an apply starts from.
#[derive(Debug, Clone, Default)]
pub struct Current {
    /// Objects with their store revisions.
    pub objects: BTreeMap<(ObjectKind, String), (Object, Revision)>,
    /// The next free service ID and the revision of its key (0: absent).
    pub next_id: (u64, Revision),
    /// Services (among those the request creates) that still have an
    /// observed record, e.g. deleted and still stopping: they keep their ID.
    pub recorded: BTreeSet<String>,
}

/// How to apply.
#[derive(Debug, Clone)]
pub struct Options {
    /// Who applies; recorded on the objects.
    pub source: String,
    /// Remove this source's objects that the request does not name.
    pub prune: bool,
    /// Take over objects a manifests directory owns.
    pub force: bool,
    /// Refuse objects that exist.
    pub create_only: bool,
    /// Let a prune with no objects remove everything of the source.
    pub allow_empty_prune: bool,
    /// The time new services are created at.
    pub now: Timestamp,
}

/// The decided changes.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// What happens to each object, in request order, then pruned ones.
    pub results: Vec<ObjectResult>,
    /// Conditions: every object read is unchanged, every created key absent.
    pub compare: Vec<Compare>,
    /// The writes.
    pub writes: Vec<Write>,
}

impl Changes {
    /// Whether anything is written.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// One transaction: all the writes if nothing changed since the read.
    pub fn into_txn(self) -> Txn {
        Txn {
            compare: self.compare,
            success: self.writes,
            failure: Vec::new(),
        }
    }
}

fn key_of(kind: ObjectKind, name: &str) -> String {
    match kind {
        ObjectKind::Member => format!("{}{name}", keys::MEMBERS),
        ObjectKind::Service => format!("{}{name}", keys::SERVICES),
    }
}

fn kind_of(o: &Object) -> ObjectKind {
    match o {
        Object::Member(_) => ObjectKind::Member,
        Object::Service(_) => ObjectKind::Service,
    }
}

fn annotations_mut(o: &mut Object) -> &mut BTreeMap<String, String> {
    match o {
        Object::Member(m) => &mut m.metadata.annotations,
        Object::Service(s) => &mut s.metadata.annotations,
    }
}

fn source_of(o: &Object) -> Option<&str> {
    let annotations = match o {
        Object::Member(m) => &m.metadata.annotations,
        Object::Service(s) => &s.metadata.annotations,
    };
    annotations.get(SOURCE_ANNOTATION).map(String::as_str)
}

/// An operator's forced `spec.enabled` on an object of a manifests directory
/// survives the directory's syncs while the directory still says what it
/// said when the override was made; a change of that field lifts it.
fn keep_enabled_override(current: &Object, incoming: &mut Object) {
    let (Object::Service(cur), Object::Service(new)) = (current, incoming) else {
        return;
    };
    let ann = &cur.metadata.annotations;
    let (Some(forced), Some(in_source)) = (
        ann.get(ENABLED_OVERRIDE_ANNOTATION),
        ann.get(ENABLED_IN_SOURCE_ANNOTATION),
    ) else {
        return;
    };
    if ann.get(SOURCE_ANNOTATION) != new.metadata.annotations.get(SOURCE_ANNOTATION)
        || new.spec.enabled.to_string() != *in_source
    {
        return;
    }
    new.spec.enabled = forced == "true";
    for key in [ENABLED_OVERRIDE_ANNOTATION, ENABLED_IN_SOURCE_ANNOTATION] {
        new.metadata
            .annotations
            .insert(key.to_string(), ann[key].clone());
    }
}

/// Decides an apply of `incoming` onto `current`: pure, no store.
pub fn plan_changes(
    current: &Current,
    mut incoming: Vec<Object>,
    opts: &Options,
) -> Result<Changes, Error> {
    if opts.prune && incoming.is_empty() && !opts.allow_empty_prune {
        return Err(Error::Invalid(vec![format!(
            "no objects passed to apply with prune: it would delete every object of {}; pass allowEmptyPrune (clusvc apply --prune --allow-empty) to mean it",
            opts.source
        )]));
    }
    for o in &mut incoming {
        annotations_mut(o).insert(SOURCE_ANNOTATION.to_string(), opts.source.clone());
        if let Some((cur, _)) = current.objects.get(&(kind_of(o), o.name().to_string())) {
            keep_enabled_override(cur, o);
        }
    }
    if opts.create_only {
        let existing: Vec<String> = incoming
            .iter()
            .filter(|o| {
                current
                    .objects
                    .contains_key(&(kind_of(o), o.name().to_string()))
            })
            .map(|o| format!("{} \"{}\" already exists", kind_of(o).plural(), o.name()))
            .collect();
        if !existing.is_empty() {
            return Err(Error::AlreadyExists(existing));
        }
    }
    // Conflicts with objects another source owns: a manifests directory,
    // or another caller or label (`LABEL@CALLER`). Taking one over needs
    // --force, so a prune never removes what someone else applied.
    // Objects of the built-in sources (`local`, and `apply` from before
    // sources named their caller) are taken over silently.
    let conflicts: Vec<String> = incoming
        .iter()
        .filter_map(|o| {
            let (cur, _) = current.objects.get(&(kind_of(o), o.name().to_string()))?;
            let owner = source_of(cur)?;
            let gitops = owner.starts_with(GITOPS_SOURCE_PREFIX);
            let claimed = gitops || owner.contains('@');
            (owner != opts.source && claimed && !opts.force).then(|| {
                let hint = if gitops {
                    "change it there"
                } else {
                    "apply it with that caller and --source label"
                };
                format!(
                    "{}/{} is managed by {owner}; {hint}, or use --force to take it over",
                    kind_of(o),
                    o.name()
                )
            })
        })
        .collect();
    if !conflicts.is_empty() {
        return Err(Error::Conflict(conflicts));
    }
    // The resulting desired state, validated whole.
    let mut result: BTreeMap<(ObjectKind, String), &Object> = current
        .objects
        .iter()
        .map(|(k, (o, _))| (k.clone(), o))
        .collect();
    let keep: BTreeSet<(ObjectKind, String)> = incoming
        .iter()
        .map(|o| (kind_of(o), o.name().to_string()))
        .collect();
    let pruned: Vec<(ObjectKind, String)> = if opts.prune {
        current
            .objects
            .iter()
            .filter(|(k, (o, _))| source_of(o) == Some(opts.source.as_str()) && !keep.contains(*k))
            .map(|(k, _)| k.clone())
            .collect()
    } else {
        Vec::new()
    };
    for k in &pruned {
        result.remove(k);
    }
    for o in &incoming {
        result.insert((kind_of(o), o.name().to_string()), o);
    }
    let all: Vec<Object> = result.values().map(|o| (*o).clone()).collect();
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
    // The writes.
    let mut changes = Changes::default();
    let (first_id, ids_rev) = current.next_id;
    let mut next_id = first_id;
    for o in &incoming {
        let kind = kind_of(o);
        let name = o.name().to_string();
        let key = key_of(kind, &name);
        let applied = match current.objects.get(&(kind, name.clone())) {
            Some((cur, rev)) => {
                changes
                    .compare
                    .push(Compare::ModRevision(key.clone(), *rev));
                if cur == o {
                    Applied::Unchanged
                } else {
                    Applied::Configured
                }
            }
            None => {
                changes.compare.push(Compare::Missing(key.clone()));
                Applied::Created
            }
        };
        if applied != Applied::Unchanged {
            let value = match o {
                Object::Member(m) => keys::encode(m),
                Object::Service(s) => keys::encode(s),
            };
            if value.len() > MAX_OBJECT_BYTES {
                return Err(Error::Invalid(vec![format!(
                    "{kind}/{name}: the object is {} bytes stored: at most {MAX_OBJECT_BYTES}",
                    value.len()
                )]));
            }
            changes.writes.push(Write::Put {
                key,
                value,
                lease: None,
            });
        }
        if applied == Applied::Created
            && kind == ObjectKind::Service
            && !current.recorded.contains(&name)
        {
            let okey = format!("{}{name}", keys::OBSERVED_SERVICES);
            let record = ObservedService {
                id: next_id,
                state: ServiceState::Stopped,
                created_at: Some(opts.now),
                ..ObservedService::default()
            };
            next_id += 1;
            changes.compare.push(Compare::Missing(okey.clone()));
            changes.writes.push(Write::Put {
                key: okey,
                value: keys::encode(&record),
                lease: None,
            });
        }
        changes.results.push(ObjectResult {
            kind,
            name,
            result: applied,
        });
    }
    for (kind, name) in pruned {
        let key = key_of(kind, &name);
        let rev = current.objects[&(kind, name.clone())].1;
        changes.compare.push(Compare::ModRevision(key.clone(), rev));
        changes.writes.push(Write::Delete { key });
        changes.results.push(ObjectResult {
            kind,
            name,
            result: Applied::Pruned,
        });
    }
    if next_id != first_id {
        changes
            .compare
            .push(Compare::ModRevision(keys::NEXT_ID.to_string(), ids_rev));
        changes.writes.push(Write::Put {
            key: keys::NEXT_ID.to_string(),
            value: next_id.to_string().into_bytes(),
            lease: None,
        });
    }
    Ok(changes)
}

/// Reads what an apply of `incoming` starts from.
async fn read_current<S: Store>(store: &S, incoming: &[Object]) -> Result<Current, Error> {
    let (members, _) = store.list(keys::MEMBERS).await?;
    let (services, _) = store.list(keys::SERVICES).await?;
    let next_id = match store.get(keys::NEXT_ID).await? {
        Some(kv) => (
            String::from_utf8_lossy(&kv.value)
                .trim()
                .parse::<u64>()
                .unwrap_or(0),
            kv.mod_revision,
        ),
        None => (0, 0),
    };
    let mut current = Current {
        next_id,
        ..Current::default()
    };
    for kv in &members {
        if let Some(m) = keys::decode::<clusvc_core::model::Member>(&kv.key, &kv.value) {
            current.objects.insert(
                (ObjectKind::Member, m.metadata.name.clone()),
                (Object::Member(m), kv.mod_revision),
            );
        }
    }
    for kv in &services {
        if let Some(s) = keys::decode::<Service>(&kv.key, &kv.value) {
            current.objects.insert(
                (ObjectKind::Service, s.metadata.name.clone()),
                (Object::Service(s), kv.mod_revision),
            );
        }
    }
    // New services that still have an observed record (a service deleted
    // while it was stopping keeps it until it stopped).
    let new: Vec<&str> = incoming
        .iter()
        .filter_map(|o| match o {
            Object::Service(s)
                if !current
                    .objects
                    .contains_key(&(ObjectKind::Service, s.metadata.name.clone())) =>
            {
                Some(s.metadata.name.as_str())
            }
            _ => None,
        })
        .collect();
    if new.len() > FEW {
        // One list instead of a round trip per service.
        let (records, _) = store.list(keys::OBSERVED_SERVICES).await?;
        let recorded: std::collections::BTreeSet<&str> = records
            .iter()
            .filter_map(|kv| kv.key.strip_prefix(keys::OBSERVED_SERVICES))
            .collect();
        for name in new {
            if recorded.contains(name) {
                current.recorded.insert(name.to_string());
            }
        }
    } else {
        for name in new {
            let okey = format!("{}{name}", keys::OBSERVED_SERVICES);
            if store.get(&okey).await?.is_some() {
                current.recorded.insert(name.to_string());
            }
        }
    }
    Ok(current)
}

/// Whether the server checks the scripts the request's services name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptChecks {
    /// Check them (requests from clients).
    Check,
    /// They were checked by the loader in this process (GitOps).
    AlreadyChecked,
}

/// Applies a request: read, decide, check scripts, write in one transaction.
pub async fn apply<S: Store>(
    store: &S,
    req: ApplyRequest,
    scripts_checked: ScriptChecks,
) -> Result<ApplyResult, Error> {
    let incoming: Vec<Object> = req
        .members
        .into_iter()
        .map(Object::Member)
        .chain(req.services.into_iter().map(Object::Service))
        .collect();
    let mut current = read_current(store, &incoming).await?;
    let opts = Options {
        source: req.source,
        prune: req.prune,
        force: req.force,
        create_only: req.create_only,
        allow_empty_prune: req.allow_empty_prune,
        now: Timestamp::from_system(std::time::SystemTime::now()),
    };
    let services: Vec<Service> = incoming
        .iter()
        .filter_map(|o| match o {
            Object::Service(s) => Some(s.clone()),
            Object::Member(_) => None,
        })
        .collect();
    let mut changes = plan_changes(&current, incoming.clone(), &opts)?;
    if scripts_checked == ScriptChecks::Check {
        // Off the async runtime: scripts may sit on a slow file system.
        let script_errors: Vec<String> = tokio::task::spawn_blocking(move || {
            services
                .iter()
                .flat_map(|s| {
                    scripts::check_service(&s.spec)
                        .into_iter()
                        .map(move |(path, msg)| {
                            format!("service/{}: {path}: {msg}", s.metadata.name)
                        })
                })
                .collect()
        })
        .await
        .unwrap_or_else(|e| vec![format!("checking the scripts failed: {e}")]);
        if !script_errors.is_empty() {
            return Err(Error::Invalid(script_errors));
        }
    }
    if req.dry_run || changes.is_empty() {
        let (_, revision) = store.list(keys::NEXT_ID).await?;
        return Ok(ApplyResult {
            objects: changes.results,
            revision,
        });
    }
    // A transaction that lost a race is decided again on what is stored
    // now, unless one of this request's own objects changed meanwhile (a
    // real conflict): concurrent creates of different services only share
    // the ID counter, and must not fail for it.
    for _ in 0..APPLY_RETRIES {
        let results = changes.results.clone();
        let r = store.txn(changes.into_txn()).await?;
        if r.succeeded {
            return Ok(ApplyResult {
                objects: results,
                revision: r.revision,
            });
        }
        let fresh = read_current(store, &incoming).await?;
        let ours_changed = incoming.iter().any(|o| {
            let k = (kind_of(o), o.name().to_string());
            current.objects.get(&k).map(|(_, rev)| *rev)
                != fresh.objects.get(&k).map(|(_, rev)| *rev)
        });
        if ours_changed {
            return Err(Error::Raced);
        }
        current = fresh;
        changes = plan_changes(&current, incoming.clone(), &opts)?;
        if changes.is_empty() {
            let (_, revision) = store.list(keys::NEXT_ID).await?;
            return Ok(ApplyResult {
                objects: changes.results,
                revision,
            });
        }
    }
    Err(Error::Raced)
}

/// Up to this many new services, their observed records are looked up one
/// by one; more, with one list.
const FEW: usize = 32;

/// How often an apply is decided again after losing a race on shared keys.
const APPLY_RETRIES: usize = 16;

#[cfg(test)]
mod tests {
    use clusvc_core::model::{Member, Placement};

    use super::*;

    fn opts(source: &str) -> Options {
        Options {
            source: source.into(),
            prune: false,
            force: false,
            create_only: false,
            allow_empty_prune: false,
            now: Timestamp::from_millis(1_000),
        }
    }

    fn owned(mut o: Object, source: &str) -> Object {
        annotations_mut(&mut o).insert(SOURCE_ANNOTATION.into(), source.into());
        o
    }

    fn current(objects: Vec<Object>, next_id: u64) -> Current {
        Current {
            objects: objects
                .into_iter()
                .enumerate()
                .map(|(i, o)| ((kind_of(&o), o.name().to_string()), (o, i as u64 + 1)))
                .collect(),
            next_id: (next_id, 7),
            recorded: BTreeSet::new(),
        }
    }

    fn results(c: &Changes) -> Vec<String> {
        c.results
            .iter()
            .map(|r| format!("{}/{} {}", r.kind, r.name, r.result))
            .collect()
    }

    #[test]
    fn new_services_get_the_next_ids_in_request_order() {
        let cur = current(vec![], 5);
        let c = plan_changes(
            &cur,
            vec![
                Object::Service(Service::new("b")),
                Object::Service(Service::new("a")),
            ],
            &opts("apply"),
        )
        .unwrap();
        assert_eq!(results(&c), ["service/b created", "service/a created"]);
        let ids: Vec<(String, u64)> = c
            .writes
            .iter()
            .filter_map(|w| match w {
                Write::Put { key, value, .. } if key.starts_with(keys::OBSERVED_SERVICES) => {
                    let o: ObservedService = serde_json::from_slice(value).unwrap();
                    Some((key.clone(), o.id))
                }
                _ => None,
            })
            .collect();
        assert_eq!(ids[0].1, 5);
        assert_eq!(ids[1].1, 6);
        assert!(c.writes.iter().any(
            |w| matches!(w, Write::Put { key, value, .. } if key == keys::NEXT_ID && value == b"7")
        ));
        assert!(
            c.compare
                .contains(&Compare::ModRevision(keys::NEXT_ID.into(), 7))
        );
    }

    #[test]
    fn an_unchanged_object_writes_nothing_but_is_compared() {
        let web = owned(Object::Service(Service::new("web")), "apply");
        let cur = current(vec![web.clone()], 1);
        let c = plan_changes(&cur, vec![web], &opts("apply")).unwrap();
        assert_eq!(results(&c), ["service/web unchanged"]);
        assert!(c.is_empty());
        assert_eq!(c.compare.len(), 1);
    }

    #[test]
    fn another_callers_objects_conflict_unless_forced_built_in_sources_do_not() {
        let mine = opts("apply@alice");
        for (owner, conflict) in [
            ("apply@root", true),
            ("ci@alice", true),
            ("apply@alice", false),
            ("local", false),
            ("apply", false),
        ] {
            let cur = current(vec![owned(Object::Service(Service::new("web")), owner)], 1);
            let r = plan_changes(&cur, vec![Object::Service(Service::new("web"))], &mine);
            assert_eq!(r.is_err(), conflict, "{owner}");
        }
    }

    #[test]
    fn objects_of_a_manifests_directory_conflict_unless_forced() {
        let web = owned(Object::Service(Service::new("web")), "gitops:/srv/m");
        let cur = current(vec![web], 1);
        let err = plan_changes(
            &cur,
            vec![Object::Service(Service::new("web"))],
            &opts("apply"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "service/web is managed by gitops:/srv/m; change it there, or use --force to take it over"
        );
        let forced = Options {
            force: true,
            ..opts("apply")
        };
        let c = plan_changes(&cur, vec![Object::Service(Service::new("web"))], &forced).unwrap();
        assert_eq!(results(&c), ["service/web configured"]);
    }

    #[test]
    fn prune_removes_only_this_sources_missing_objects() {
        let cur = current(
            vec![
                owned(Object::Service(Service::new("a")), "apply"),
                owned(Object::Service(Service::new("b")), "apply"),
                owned(Object::Service(Service::new("c")), "gitops:/m"),
            ],
            3,
        );
        let prune = Options {
            prune: true,
            ..opts("apply")
        };
        let c = plan_changes(&cur, vec![Object::Service(Service::new("a"))], &prune).unwrap();
        assert_eq!(results(&c), ["service/a unchanged", "service/b pruned"]);
        assert!(c.writes.iter().any(|w| matches!(
            w,
            Write::Delete { key } if key == &format!("{}b", keys::SERVICES)
        )));
    }

    #[test]
    fn the_whole_resulting_state_is_validated() {
        let mut svc = Service::new("web");
        svc.spec.placement = Placement {
            members: vec!["node9".into()],
            ..Placement::default()
        };
        let cur = current(vec![Object::Member(Member::new("node1"))], 0);
        let err = plan_changes(&cur, vec![Object::Service(svc)], &opts("apply")).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"service/web: spec.placement.members[0]: undeclared member "node9""#
        );
        assert_eq!(err.code(), ErrorCode::Invalid);
    }

    #[test]
    fn a_forced_enabled_override_survives_syncs_until_the_tree_changes_that_field() {
        let mut forced = Service::new("web");
        forced.spec.enabled = false;
        for (k, v) in [
            (SOURCE_ANNOTATION, "gitops:/m"),
            (ENABLED_OVERRIDE_ANNOTATION, "false"),
            (ENABLED_IN_SOURCE_ANNOTATION, "true"),
        ] {
            forced.metadata.annotations.insert(k.into(), v.into());
        }
        let cur = current(vec![Object::Service(forced)], 1);
        // The tree still says enabled: the override stays, nothing changes.
        let tree = Service::new("web");
        let c = plan_changes(
            &cur,
            vec![Object::Service(tree.clone())],
            &opts("gitops:/m"),
        )
        .unwrap();
        assert_eq!(results(&c), ["service/web unchanged"]);
        // The tree now says disabled itself: the override is lifted.
        let mut changed = tree;
        changed.spec.enabled = false;
        let c = plan_changes(&cur, vec![Object::Service(changed)], &opts("gitops:/m")).unwrap();
        assert_eq!(results(&c), ["service/web configured"]);
        let Write::Put { value, .. } = &c.writes[0] else {
            panic!("{:?}", c.writes)
        };
        let stored: Service = serde_json::from_slice(value).unwrap();
        assert!(!stored.spec.enabled);
        assert!(
            !stored
                .metadata
                .annotations
                .contains_key(ENABLED_OVERRIDE_ANNOTATION)
        );
    }

    #[test]
    fn an_empty_prune_is_refused_unless_asked_for() {
        let cur = current(vec![owned(Object::Service(Service::new("a")), "apply")], 1);
        let prune = Options {
            prune: true,
            ..opts("apply")
        };
        let err = plan_changes(&cur, vec![], &prune).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("no objects passed to apply with prune"),
            "{err}"
        );
        let allowed = Options {
            allow_empty_prune: true,
            ..prune
        };
        let c = plan_changes(&cur, vec![], &allowed).unwrap();
        assert_eq!(results(&c), ["service/a pruned"]);
    }

    #[test]
    fn create_refuses_an_existing_object() {
        let cur = current(
            vec![owned(Object::Service(Service::new("web")), "apply")],
            1,
        );
        let create = Options {
            create_only: true,
            ..opts("apply")
        };
        let err =
            plan_changes(&cur, vec![Object::Service(Service::new("web"))], &create).unwrap_err();
        assert_eq!(err.to_string(), r#"services "web" already exists"#);
        assert_eq!(err.code(), ErrorCode::Conflict);
    }

    #[test]
    fn a_recreated_service_that_is_still_recorded_keeps_its_record() {
        let mut cur = current(vec![], 4);
        cur.recorded.insert("web".into());
        let c = plan_changes(
            &cur,
            vec![Object::Service(Service::new("web"))],
            &opts("apply"),
        )
        .unwrap();
        assert_eq!(c.writes.len(), 1, "only the desired object: {:?}", c.writes);
    }

    #[test]
    fn the_transaction_carries_every_compare_and_write() {
        let cur = current(vec![], 0);
        let c = plan_changes(
            &cur,
            vec![Object::Member(Member::new("n1"))],
            &opts("apply"),
        )
        .unwrap();
        let (compare, writes) = (c.compare.clone(), c.writes.clone());
        let txn = c.into_txn();
        assert_eq!(txn.compare, compare);
        assert_eq!(txn.success, writes);
        assert!(txn.failure.is_empty());
    }
}
