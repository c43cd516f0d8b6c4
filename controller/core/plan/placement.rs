//! Where a service may run (eligibility) and where it should (preference).

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::model::{DesiredState, ObservedState, Placement, ServiceState, Timestamp};

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

/// The members of the cluster as the planner sees them, with the number of
/// services each holds (kept current while a plan is built).
pub struct Members<'a> {
    desired: &'a DesiredState,
    observed: &'a ObservedState,
    load: HashMap<&'a str, usize>,
    fenced: HashSet<&'a str>,
    /// When the latest failed stop on a live member happened.
    blocked_at: HashMap<&'a str, Timestamp>,
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
        let mut load: HashMap<&'a str, usize> = HashMap::new();
        let mut blocked_at: HashMap<&'a str, Timestamp> = HashMap::new();
        let mut blocked_members = HashSet::new();
        for svc in observed.services.values() {
            if let Some(m) = &svc.member {
                *load.entry(m.as_str()).or_default() += 1;
                if svc.state == ServiceState::Blocked && !svc.frozen {
                    blocked_members.insert(m.as_str());
                    if let Some(at) = svc.failure.as_ref().and_then(|f| f.at) {
                        let e = blocked_at.entry(m.as_str()).or_insert(at);
                        *e = (*e).max(at);
                    }
                }
            }
        }
        let fenced = blocked_members
            .into_iter()
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
            .collect();
        Self {
            desired,
            observed,
            load,
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
            *self.load.entry(t).or_default() += 1;
        }
    }
}
