//! What the controller knows: desired objects, observed records and member
//! liveness, fed by a store watch (and by its own writes, at once, so a
//! reconcile never plans on a state older than what it wrote).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::model::{
    DesiredState, Member, Object, ObservedMember, ObservedService, ObservedState, Service,
    Timestamp,
};
use crate::store::{KeyValue, Revision, WatchEvent};

use super::keys::{self, decode};

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
    members: BTreeMap<String, Member>,
    services: BTreeMap<String, Service>,
    /// Observed state with member liveness filled in.
    pub observed: ObservedState,
    stored_members: BTreeMap<String, ObservedMember>,
    alive: BTreeSet<String>,
    lost_at: HashMap<String, Timestamp>,
    revs: HashMap<String, Revision>,
    desired: Option<Arc<DesiredState>>,
    seen: Revision,
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
            self.desired = None;
            match value.and_then(|v| decode::<Service>(key, v)) {
                Some(s) => self.services.insert(name.to_string(), s),
                None => self.services.remove(name),
            };
            Touched::Service(name.to_string())
        } else if let Some(name) = key.strip_prefix(keys::MEMBERS) {
            self.desired = None;
            match value.and_then(|v| decode::<Member>(key, v)) {
                Some(m) => self.members.insert(name.to_string(), m),
                None => self.members.remove(name),
            };
            self.refresh_members();
            Touched::All
        } else if let Some(name) = key.strip_prefix(keys::OBSERVED_SERVICES) {
            match value.and_then(|v| decode::<ObservedService>(key, v)) {
                Some(o) => self.observed.services.insert(name.to_string(), o),
                None => self.observed.services.remove(name),
            };
            Touched::Service(name.to_string())
        } else if let Some(name) = key.strip_prefix(keys::OBSERVED_MEMBERS) {
            match value.and_then(|v| decode::<ObservedMember>(key, v)) {
                Some(m) => self.stored_members.insert(name.to_string(), m),
                None => self.stored_members.remove(name),
            };
            self.refresh_members();
            Touched::All
        } else if let Some(name) = key.strip_prefix(keys::LEASES) {
            if value.is_some() {
                self.alive.insert(name.to_string());
                self.lost_at.remove(name);
            } else if self.alive.remove(name) {
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

    /// Recomputes observed members: declared ones are alive when their lease key exists.
    fn refresh_members(&mut self) {
        let mut out = BTreeMap::new();
        for name in self.members.keys().chain(self.stored_members.keys()) {
            let mut m = self.stored_members.get(name).cloned().unwrap_or_default();
            m.alive = self.alive.contains(name);
            if !m.alive {
                m.lease_expired_at = m.lease_expired_at.or(self.lost_at.get(name).copied());
            } else {
                m.lease_expired_at = None;
            }
            out.insert(name.clone(), m);
        }
        self.observed.members = out;
    }

    /// The desired state (rebuilt after changes).
    pub fn desired(&mut self) -> Arc<DesiredState> {
        if let Some(d) = &self.desired {
            return d.clone();
        }
        let objects: Vec<Object> = self
            .members
            .values()
            .cloned()
            .map(Object::Member)
            .chain(self.services.values().cloned().map(Object::Service))
            .collect();
        let d = match DesiredState::from_objects(objects) {
            Ok(d) => d,
            Err(issues) => {
                // Writes are validated before they are stored; this is a bug or a
                // hand-edited store. Keep going with what validates on its own.
                tracing::error!("stored desired state is invalid: {issues:?}");
                DesiredState::default()
            }
        };
        let d = Arc::new(d);
        self.desired = Some(d.clone());
        d
    }

    /// Desired services (raw).
    pub fn services(&self) -> &BTreeMap<String, Service> {
        &self.services
    }

    /// Desired members (raw).
    pub fn members(&self) -> &BTreeMap<String, Member> {
        &self.members
    }

    /// Names of every service known, desired or observed.
    pub fn service_names(&self) -> BTreeSet<String> {
        self.services
            .keys()
            .chain(self.observed.services.keys())
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
