//! Where a service may run (eligibility) and where it should (preference).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use crate::model::{
    DesiredState, ObservedService, ObservedState, Placement, ServiceState, Timestamp,
};

/// Why a member cannot take a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ineligible {
    /// Not declared as a member.
    Undeclared,
    /// Its lease expired.
    Dead,
    /// Drained by `spec.standby` or an operator.
    Standby,
    /// Outside a restricted failover domain.
    OutsideDomain,
}

impl fmt::Display for Ineligible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ineligible::Undeclared => "is not a declared member",
            Ineligible::Dead => "is dead",
            Ineligible::Standby => "is standby",
            Ineligible::OutsideDomain => "is outside the restricted member list",
        })
    }
}

/// No member can take a service; says why each member is out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoEligibleMember(pub Vec<String>);

impl fmt::Display for NoEligibleMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("no eligible member: no members are declared")
        } else {
            write!(f, "no eligible member: {}", self.0.join(", "))
        }
    }
}

/// What every service's observed record adds up to, per member: how many
/// services hold it (load), and its blocked services with the times their
/// stops failed; and the next free service ID. [`Members::new`] builds it in
/// one pass; a long-lived cache keeps it up to date record by record
/// ([`ClusterIndex::add`] / [`ClusterIndex::remove`]), so planning one
/// service does not walk every other one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterIndex {
    load: HashMap<String, usize>,
    /// Member -> blocked (not frozen) services there, and the failure times.
    blocked: HashMap<String, (usize, BTreeMap<Timestamp, usize>)>,
    /// Service IDs in use (with multiplicity).
    ids: BTreeMap<u64, usize>,
}

impl ClusterIndex {
    /// The index of an observed state.
    pub fn build(observed: &ObservedState) -> Self {
        let mut index = Self::default();
        for o in observed.services.values() {
            index.add(o);
        }
        index
    }

    /// Counts one service record in.
    pub fn add(&mut self, o: &ObservedService) {
        *self.ids.entry(o.id).or_default() += 1;
        let Some(m) = &o.member else { return };
        *self.load.entry(m.clone()).or_default() += 1;
        if o.state == ServiceState::Blocked && !o.frozen {
            let b = self.blocked.entry(m.clone()).or_default();
            b.0 += 1;
            if let Some(at) = o.failure.as_ref().and_then(|f| f.at) {
                *b.1.entry(at).or_default() += 1;
            }
        }
    }

    /// Counts one service record out (the exact record that was added).
    pub fn remove(&mut self, o: &ObservedService) {
        fn dec<K: Ord + Clone>(map: &mut BTreeMap<K, usize>, k: &K) {
            if let Some(n) = map.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    map.remove(k);
                }
            }
        }
        dec(&mut self.ids, &o.id);
        let Some(m) = &o.member else { return };
        if let Some(n) = self.load.get_mut(m) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.load.remove(m);
            }
        }
        if o.state == ServiceState::Blocked
            && !o.frozen
            && let Some(b) = self.blocked.get_mut(m)
        {
            b.0 = b.0.saturating_sub(1);
            if let Some(at) = o.failure.as_ref().and_then(|f| f.at) {
                dec(&mut b.1, &at);
            }
            if b.0 == 0 {
                self.blocked.remove(m);
            }
        }
    }

    /// The ID a new service gets: one past the highest in use.
    pub fn next_id(&self) -> u64 {
        self.ids
            .last_key_value()
            .map_or(0, |(id, _)| id.saturating_add(1))
    }
}

/// The members of the cluster as the planner sees them, with the number of
/// services each holds (kept current while a plan is built).
pub struct Members<'a> {
    desired: &'a DesiredState,
    observed: &'a ObservedState,
    /// Services per member, kept current while a plan is built.
    load: HashMap<String, usize>,
    fenced: HashSet<String>,
    /// When the latest failed stop on a live member happened.
    blocked_at: HashMap<String, Timestamp>,
}

impl<'a> Members<'a> {
    /// Counts the services that observed state puts on each member, and
    /// finds the live members this pass will fence: those where a stop
    /// failed (a blocked service) and fencing is configured and has not
    /// failed. A member about to be fenced counts as dead for the whole pass,
    /// so nothing is placed on it and everything on it fails over.
    ///
    /// A fence counts for one incident only: a member fenced before its
    /// latest failed stop is fenced again (see [`Members::incident_at`]).
    pub fn new(desired: &'a DesiredState, observed: &'a ObservedState) -> Self {
        Self::with_index(desired, observed, &ClusterIndex::build(observed))
    }

    /// As [`Members::new`], from an index of `observed` kept elsewhere:
    /// costs the number of members, not of services.
    pub fn with_index(
        desired: &'a DesiredState,
        observed: &'a ObservedState,
        index: &ClusterIndex,
    ) -> Self {
        let blocked_at = index
            .blocked
            .iter()
            .filter_map(|(m, (_, times))| times.last_key_value().map(|(t, _)| (m.clone(), *t)))
            .collect();
        let fenced = index
            .blocked
            .keys()
            .filter(|m| {
                desired
                    .members()
                    .get(*m)
                    .is_some_and(|d| d.spec.fencing.is_some())
                    && observed
                        .members
                        .get(*m)
                        .is_none_or(|o| o.alive && !o.fencing_failed)
            })
            .cloned()
            .collect();
        Self {
            desired,
            observed,
            load: index.load.clone(),
            fenced,
            blocked_at,
        }
    }

    /// When the incident a fence of `member` must answer began: the later
    /// of its lease expiry and its latest failed stop; `None` when neither
    /// time is known (then any recorded fence counts).
    pub fn incident_at(&self, member: &str) -> Option<Timestamp> {
        let expired = self
            .observed
            .members
            .get(member)
            .and_then(|o| o.lease_expired_at);
        let blocked = self.blocked_at.get(member).copied();
        expired.max(blocked)
    }

    /// Whether this pass fences the (live) member because a stop failed there.
    pub fn is_being_fenced(&self, member: &str) -> bool {
        self.fenced.contains(member)
    }

    /// Whether a member's agent is alive, as observed (a member removed from
    /// the manifests may still run an agent that can stop its services), and
    /// is not about to be fenced.
    pub fn is_alive(&self, member: &str) -> bool {
        self.observed.is_alive(member) && !self.fenced.contains(member)
    }

    /// Whether `member` may run a service with this placement, and if not, why.
    pub fn ineligible(&self, placement: &Placement, member: &str) -> Option<Ineligible> {
        let Some(m) = self.desired.members().get(member) else {
            return Some(Ineligible::Undeclared);
        };
        let observed = self.observed.members.get(member);
        if !self.is_alive(member) {
            return Some(Ineligible::Dead);
        }
        if m.spec.standby || observed.is_some_and(|o| o.standby) {
            return Some(Ineligible::Standby);
        }
        if placement.restricted && !placement.members.iter().any(|p| p == member) {
            return Some(Ineligible::OutsideDomain);
        }
        None
    }

    /// Preference rank, lower is better: the list position when ordered, 0
    /// for any listed member when unordered, the list length for others.
    pub fn rank(placement: &Placement, member: &str) -> usize {
        match placement.members.iter().position(|p| p == member) {
            Some(i) if placement.ordered => i,
            Some(_) => 0,
            None => placement.members.len(),
        }
    }

    /// The best eligible member other than `exclude`: lowest rank, then
    /// fewest services, then name. On failure, says why each member is out.
    pub fn best(
        &self,
        placement: &Placement,
        exclude: Option<&str>,
    ) -> Result<&'a str, NoEligibleMember> {
        let mut best: Option<(usize, usize, &'a str)> = None;
        let mut why: Vec<String> = Vec::new();
        for name in self.desired.members().keys() {
            let name = name.as_str();
            if Some(name) == exclude {
                why.push(format!("{name} is the member it leaves"));
                continue;
            }
            if let Some(reason) = self.ineligible(placement, name) {
                why.push(format!("{name} {reason}"));
                continue;
            }
            let key = (
                Self::rank(placement, name),
                self.load.get(name).copied().unwrap_or(0),
                name,
            );
            if best.is_none_or(|b| key < b) {
                best = Some(key);
            }
        }
        match best {
            Some((_, _, name)) => Ok(name),
            None => Err(NoEligibleMember(why)),
        }
    }

    /// Records that a service left `from` and/or now runs on `to`.
    pub fn moved(&mut self, from: Option<&'a str>, to: Option<&'a str>) {
        if let Some(f) = from
            && let Some(n) = self.load.get_mut(f)
        {
            *n = n.saturating_sub(1);
        }
        if let Some(t) = to {
            *self.load.entry(t.to_string()).or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Failure, Phase};

    fn record(
        id: u64,
        member: Option<&str>,
        state: ServiceState,
        at: Option<u64>,
    ) -> ObservedService {
        ObservedService {
            id,
            member: member.map(str::to_string),
            state,
            failure: at.map(|ms| Failure {
                phase: Phase::Stop,
                resource: "x".into(),
                reason: String::new(),
                at: Some(Timestamp::from_millis(ms)),
            }),
            ..ObservedService::default()
        }
    }

    #[test]
    fn an_index_kept_record_by_record_equals_one_built_at_once() {
        let a = record(3, Some("n1"), ServiceState::Running, None);
        let b = record(7, Some("n1"), ServiceState::Blocked, Some(5));
        let b2 = record(7, Some("n2"), ServiceState::Running, None);
        let c = record(9, None, ServiceState::Stopped, None);
        let mut index = ClusterIndex::default();
        for o in [&a, &b, &c] {
            index.add(o);
        }
        assert_eq!(index.next_id(), 10);
        // b moves to n2 and runs; c is deleted.
        index.remove(&b);
        index.add(&b2);
        index.remove(&c);
        let mut observed = ObservedState::default();
        observed.services.insert("a".into(), a);
        observed.services.insert("b".into(), b2);
        assert_eq!(index, ClusterIndex::build(&observed));
        assert_eq!(index.next_id(), 8);
    }
}
