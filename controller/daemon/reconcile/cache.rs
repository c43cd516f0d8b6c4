//! What the controller knows: desired objects, observed records and member
//! liveness, fed by a store watch (and by its own writes, at once, so a
//! reconcile never plans on a state older than what it wrote).
//!
//! Desired objects are held once, in a [`DesiredState`] updated per object:
//! they were validated, with the whole state they joined, before they were
//! stored (see `crate::sync::apply`), so they are not validated again here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use clusvc_core::api::agent::DEFAULT_LEASE_TTL_MS;
use clusvc_core::model::{
    DesiredState, Duration, Inventory, Member, Object, ObservedMember, ObservedService,
    ObservedState, Service, Timestamp, desired,
};
use clusvc_core::plan::placement::ClusterIndex;
use clusvc_store::keys::{self, decode};
use clusvc_store::{KeyValue, Revision, WatchEvent};

/// What a change touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touched {
    /// One service.
    Service(String),
    /// Members changed: every service may be affected.
    All,
    /// Nothing that matters.
    Nothing,
}

/// The controller's view.
#[derive(Default)]
pub struct Cache {
    desired: DesiredState,
    /// Observed state with member liveness filled in.
    pub observed: ObservedState,
    stored_members: BTreeMap<String, ObservedMember>,
    alive: BTreeSet<String>,
    lost_at: HashMap<String, Timestamp>,
    alive_since: HashMap<String, Timestamp>,
    /// Each member's lease time to live, in ms, as its lease key said.
    ttls: HashMap<String, u64>,
    /// When this server's controller began to lead.
    leading_since: Option<Timestamp>,
    inventories: BTreeMap<String, Inventory>,
    revs: HashMap<String, Revision>,
    seen: Revision,
    /// Stored services that do not decode or do not pass the rules any more
    /// (a hand-edited store, a rule tightened by an upgrade): held, not
    /// acted on, and reported. Name -> why.
    invalid: BTreeMap<String, String>,
    /// Per-member load, blocked services and IDs in use, kept current with
    /// every observed record, so planning one service is not O(services).
    index: ClusterIndex,
}

impl Cache {
    /// Applies a stored key (from the initial list, a watch, or our own write).
    pub fn put(&mut self, kv: &KeyValue) -> Touched {
        self.seen = self.seen.max(kv.mod_revision);
        if self
            .revs
            .get(&kv.key)
            .is_some_and(|r| *r >= kv.mod_revision)
        {
            return Touched::Nothing;
        }
        self.revs.insert(kv.key.clone(), kv.mod_revision);
        self.set(&kv.key, Some(&kv.value))
    }

    /// Applies a deletion at `rev`.
    pub fn delete(&mut self, key: &str, rev: Revision) -> Touched {
        self.seen = self.seen.max(rev);
        if self.revs.get(key).is_some_and(|r| *r > rev) {
            return Touched::Nothing;
        }
        self.revs.insert(key.to_string(), rev);
        self.set(key, None)
    }

    /// Applies a watch event.
    pub fn event(&mut self, rev: Revision, e: &WatchEvent) -> Touched {
        self.seen = self.seen.max(rev);
        match e {
            WatchEvent::Put(kv) => self.put(kv),
            WatchEvent::Delete(kv) => self.delete(&kv.key, rev),
        }
    }

    fn set(&mut self, key: &str, value: Option<&[u8]>) -> Touched {
        if let Some(name) = key.strip_prefix(keys::SERVICES) {
            self.invalid.remove(name);
            match value.map(keys::try_decode::<Service>) {
                Some(Ok(s)) => {
                    if let Some(why) = self.recheck(&s) {
                        tracing::error!("stored service {name} is invalid; holding it: {why}");
                        self.invalid.insert(name.to_string(), why);
                    }
                    self.desired.insert_validated(Object::Service(s));
                }
                Some(Err(e)) => {
                    // Kept out of the desired state but held: the controller
                    // must not take an unreadable object for a deleted one.
                    let why = format!("stored object does not decode: {e}");
                    tracing::error!("stored service {name} is invalid; holding it: {why}");
                    self.invalid.insert(name.to_string(), why);
                }
                None => {
                    self.desired.remove_service(name);
                }
            }
            Touched::Service(name.to_string())
        } else if let Some(name) = key.strip_prefix(keys::MEMBERS) {
            match value.and_then(|v| decode::<Member>(key, v)) {
                Some(m) => self.desired.insert_validated(Object::Member(m)),
                None => {
                    self.desired.remove_member(name);
                }
            }
            self.refresh_members();
            Touched::All
        } else if let Some(name) = key.strip_prefix(keys::OBSERVED_SERVICES) {
            let old = match value.and_then(|v| decode::<ObservedService>(key, v)) {
                Some(o) => {
                    self.index.add(&o);
                    self.observed.services.insert(name.to_string(), o)
                }
                None => self.observed.services.remove(name),
            };
            if let Some(old) = old {
                self.index.remove(&old);
            }
            Touched::Service(name.to_string())
        } else if let Some(name) = key.strip_prefix(keys::OBSERVED_MEMBERS) {
            match value.and_then(|v| decode::<ObservedMember>(key, v)) {
                Some(m) => self.stored_members.insert(name.to_string(), m),
                None => self.stored_members.remove(name),
            };
            self.refresh_members();
            Touched::All
        } else if let Some(name) = key.strip_prefix(keys::INVENTORY) {
            match value.and_then(|v| decode::<Inventory>(key, v)) {
                Some(i) => self.inventories.insert(name.to_string(), i),
                None => self.inventories.remove(name),
            };
            self.refresh_members();
            Touched::All
        } else if let Some(name) = key.strip_prefix(keys::LEASES) {
            if let Some(v) = value {
                // "AGENT-ID TTL-MS" (an agent's lease key).
                if let Some(ttl) = std::str::from_utf8(v)
                    .ok()
                    .and_then(|v| v.split(' ').nth(1))
                    .and_then(|t| t.parse::<u64>().ok())
                {
                    self.ttls.insert(name.to_string(), ttl);
                }
                if self.alive.insert(name.to_string()) {
                    self.alive_since.insert(
                        name.to_string(),
                        Timestamp::from_system(std::time::SystemTime::now()),
                    );
                }
                self.lost_at.remove(name);
            } else if self.alive.remove(name) {
                self.alive_since.remove(name);
                self.lost_at.insert(
                    name.to_string(),
                    Timestamp::from_system(std::time::SystemTime::now()),
                );
            }
            self.refresh_members();
            Touched::All
        } else {
            Touched::Nothing
        }
    }

    /// The rules a stored service must still pass, with the members it
    /// names (cheap: one object against the members).
    fn recheck(&self, s: &Service) -> Option<String> {
        let objects: Vec<Object> = self
            .desired
            .members()
            .values()
            .cloned()
            .map(Object::Member)
            .chain(std::iter::once(Object::Service(s.clone())))
            .collect();
        let service_at = objects.len() - 1;
        let issues: Vec<String> = desired::check(&objects)
            .into_iter()
            .filter(|i| i.object == service_at)
            .map(|i| format!("{}: {}", i.path, i.message))
            .collect();
        (!issues.is_empty()).then(|| issues.join("; "))
    }

    /// The index of the observed services (see [`ClusterIndex`]).
    pub fn index(&self) -> &ClusterIndex {
        &self.index
    }

    /// Services held because their stored object is invalid, with why.
    pub fn invalid(&self) -> &BTreeMap<String, String> {
        &self.invalid
    }

    /// Recomputes observed members: declared ones are alive when their lease key exists.
    fn refresh_members(&mut self) {
        let mut out = BTreeMap::new();
        for name in self
            .desired
            .members()
            .keys()
            .chain(self.stored_members.keys())
        {
            let mut m = self.stored_members.get(name).cloned().unwrap_or_default();
            m.alive = self.alive.contains(name);
            m.rejoin_until = None;
            if !m.alive {
                let lost = self.lost_at.get(name).copied();
                m.lease_expired_at = m.lease_expired_at.or(lost);
                // A member not seen to go while this controller led: its
                // agent gets a lease's time from the election to come back.
                if let Some(since) = self.leading_since {
                    let ttl = self.ttls.get(name).copied().unwrap_or(DEFAULT_LEASE_TTL_MS);
                    let rejoin = since.plus(Duration::from_millis(ttl));
                    if lost.is_none_or(|l| l < rejoin) {
                        m.rejoin_until = Some(rejoin);
                    }
                }
            } else {
                m.lease_expired_at = None;
            }
            m.alive_since = self.alive_since.get(name).copied();
            m.inventory = self.inventories.get(name).cloned();
            out.insert(name.clone(), m);
        }
        self.observed.members = out;
    }

    /// Records that this server's controller began to lead (see
    /// [`ObservedMember::rejoin_until`]).
    pub(crate) fn lead_from(&mut self, at: Timestamp) {
        self.leading_since = Some(at);
        self.refresh_members();
    }

    /// The desired state.
    pub fn desired(&self) -> &DesiredState {
        &self.desired
    }

    /// Desired services.
    pub fn services(&self) -> &BTreeMap<String, Service> {
        self.desired.services()
    }

    /// Desired members.
    pub fn members(&self) -> &BTreeMap<String, Member> {
        self.desired.members()
    }

    /// Names of every service known, desired or observed.
    pub fn service_names(&self) -> BTreeSet<String> {
        self.services()
            .keys()
            .chain(self.observed.services.keys())
            .chain(self.invalid.keys())
            .cloned()
            .collect()
    }

    /// Records that the store was seen at `rev`.
    pub fn note_revision(&mut self, rev: Revision) {
        self.seen = self.seen.max(rev);
    }

    /// The highest store revision seen.
    pub fn seen(&self) -> Revision {
        self.seen
    }

    /// The store revision of a key as cached.
    pub fn revision_of(&self, key: &str) -> Revision {
        self.revs.get(key).copied().unwrap_or(0)
    }
}

/// The cache, shared: the controller writes it, everyone else reads it
/// through a [`Reader`] (kube's reflector `Store`).
#[derive(Default, Clone)]
pub struct Shared(Arc<RwLock<Cache>>);

impl Shared {
    /// Reads the cache (the guard blocks the controller's writes: hold it briefly).
    pub fn read(&self) -> RwLockReadGuard<'_, Cache> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes (the controller only).
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Cache> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }

    /// A read-only handle.
    pub fn reader(&self) -> Reader {
        Reader(self.0.clone())
    }
}

/// A read-only handle on the controller's cache, for the API.
#[derive(Clone)]
pub struct Reader(Arc<RwLock<Cache>>);

impl Reader {
    /// Reads. Hold the guard briefly: the controller waits for it.
    pub fn read(&self) -> RwLockReadGuard<'_, Cache> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }
}
