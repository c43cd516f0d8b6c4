//! Where a service may run (eligibility) and where it should (preference).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::rc::Rc;

use crate::model::{
    DesiredState, ObservedService, ObservedState, Placement, ServiceSpec, ServiceState, Timestamp,
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

/// A script a member's agent reported it lacks, or has not reported on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptGap {
    /// Reported missing.
    Lacks(String),
    /// Not reported on yet (the report comes within two heartbeats).
    Unreported(String),
}

impl fmt::Display for ScriptGap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScriptGap::Lacks(s) => write!(f, "lacks {s}"),
            ScriptGap::Unreported(s) => write!(f, "has not reported whether it has {s} yet"),
        }
    }
}

/// No member can take a service; says why each member is out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoEligibleMember(pub Vec<String>);

const WAITING_FOR: &str = "waiting for ";

impl NoEligibleMember {
    /// Whether the choice only waits for members to report their scripts
    /// (it will be made within a heartbeat or two).
    pub fn is_waiting(&self) -> bool {
        self.0.len() == 1 && self.0[0].starts_with(WAITING_FOR)
    }
}

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
    /// Declared members by (services held, name), the least loaded
    /// first: choosing among the members a service does not list costs
    /// a walk to the first that may take it, not a look at every member.
    by_load: BTreeSet<(usize, &'a str)>,
    /// Declared members whose agents report scripts.
    reporting: Vec<&'a str>,
    /// Per script, the reporting members without it: `true` when the
    /// agent has not reported on it yet, `false` when it lacks it
    /// (worked out once per script and pass).
    gaps: RefCell<HashMap<String, Rc<HashMap<&'a str, bool>>>>,
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
        let load = index.load.clone();
        let by_load = desired
            .members()
            .keys()
            .map(|n| (load.get(n).copied().unwrap_or(0), n.as_str()))
            .collect();
        let reporting = desired
            .members()
            .keys()
            .filter(|n| {
                observed
                    .members
                    .get(*n)
                    .is_some_and(|o| o.inventory.is_some())
            })
            .map(String::as_str)
            .collect();
        Self {
            desired,
            observed,
            load,
            fenced,
            blocked_at,
            by_load,
            reporting,
            gaps: RefCell::default(),
        }
    }

    /// The reporting members without `script` (see `gaps`).
    fn gaps_of(&self, script: &str) -> Rc<HashMap<&'a str, bool>> {
        if let Some(g) = self.gaps.borrow().get(script) {
            return g.clone();
        }
        let observed = self.observed;
        let g: Rc<HashMap<&'a str, bool>> = Rc::new(
            self.reporting
                .iter()
                .filter_map(|&m| {
                    let inv = observed.members.get(m)?.inventory.as_ref()?;
                    match inv.scripts.get(script) {
                        Some(Some(_)) => None,
                        Some(None) => Some((m, false)),
                        None => Some((m, true)),
                    }
                })
                .collect(),
        );
        self.gaps.borrow_mut().insert(script.to_string(), g.clone());
        g
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

    /// A script (or script directory, or OCF agent) `spec` runs that
    /// `member`'s agent reported it lacks: such a member is never chosen
    /// to start the service (what already runs there is left alone).
    ///
    /// An agent that reports scripts but has not reported on one yet (a
    /// service that names a new script; the answer comes within two
    /// heartbeats) is not chosen either, so a service never lands where
    /// its script is missing; a member with no report at all (the member
    /// of `clusvc run`) is not held to one.
    pub fn lacks_script(&self, spec: &ServiceSpec, member: &str) -> Option<ScriptGap> {
        let inv = self.observed.members.get(member)?.inventory.as_ref()?;
        spec.scripts().find_map(|s| match inv.scripts.get(&s) {
            Some(Some(_)) => None,
            Some(None) => Some(ScriptGap::Lacks(s)),
            None => Some(ScriptGap::Unreported(s)),
        })
    }

    /// Why `member` cannot start `spec`: ineligible, or lacking a script.
    pub fn cannot_start(&self, spec: &ServiceSpec, member: &str) -> Option<String> {
        if let Some(why) = self.ineligible(&spec.placement, member) {
            return Some(why.to_string());
        }
        self.lacks_script(spec, member).map(|g| g.to_string())
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
    ///
    /// The members the placement lists are looked at one by one; of the
    /// others (all of the same rank) the least loaded that may take the
    /// service is found by walking the members in load order, so a cold
    /// start of N services on M members costs about N log M, not N x M.
    pub fn best(
        &self,
        spec: &ServiceSpec,
        exclude: Option<&str>,
    ) -> Result<&'a str, NoEligibleMember> {
        let placement = &spec.placement;
        let gaps: Vec<Rc<HashMap<&'a str, bool>>> = if self.reporting.is_empty() {
            Vec::new()
        } else {
            spec.scripts().map(|s| self.gaps_of(&s)).collect()
        };
        // As `lacks_script`: the first script with a gap decides;
        // `Some(true)` is "not reported yet".
        let gap = |name: &str| gaps.iter().find_map(|g| g.get(name).copied());
        let open = |name: &str| Some(name) != exclude && self.ineligible(placement, name).is_none();
        let mut best: Option<(usize, usize, &'a str)> = None;
        // Members that may have the scripts but have not said yet: the
        // choice waits for a better-ranked one rather than passing it over.
        let mut unreported: Vec<(usize, &'a str)> = Vec::new();
        let listed = |name: &str| placement.members.iter().any(|p| p == name);
        for p in &placement.members {
            let Some((name, _)) = self.desired.members().get_key_value(p) else {
                continue;
            };
            let name = name.as_str();
            if !open(name) || unreported.iter().any(|(_, n)| *n == name) {
                continue;
            }
            let rank = Self::rank(placement, name);
            match gap(name) {
                Some(true) => unreported.push((rank, name)),
                Some(false) => {}
                None => {
                    let key = (rank, self.load.get(name).copied().unwrap_or(0), name);
                    if best.is_none_or(|b| key < b) {
                        best = Some(key);
                    }
                }
            }
        }
        if !placement.restricted {
            let rank = placement.members.len();
            for &(load, name) in &self.by_load {
                if best.is_some_and(|(r, _, _)| r < rank) {
                    break;
                }
                if !listed(name) && open(name) && gap(name).is_none() {
                    if best.is_none_or(|b| (rank, load, name) < b) {
                        best = Some((rank, load, name));
                    }
                    break;
                }
            }
            let mut seen = HashSet::new();
            for g in &gaps {
                for &name in g.keys() {
                    if seen.insert(name) && !listed(name) && open(name) && gap(name) == Some(true) {
                        unreported.push((rank, name));
                    }
                }
            }
        }
        // Named in the order of names, as a scan of every member would.
        unreported.sort_unstable_by_key(|(_, n)| *n);
        match best {
            _ if !unreported.is_empty()
                && best.is_none_or(|(rank, _, _)| unreported.iter().any(|(r, _)| *r <= rank)) =>
            {
                let waiting: Vec<&str> = unreported.iter().map(|(_, n)| *n).collect();
                Err(NoEligibleMember(vec![format!(
                    "{WAITING_FOR}{} to report its scripts",
                    waiting.join(", ")
                )]))
            }
            Some((_, _, name)) => Ok(name),
            None => Err(NoEligibleMember(self.why_none(spec, exclude))),
        }
    }

    /// Why no member can take `spec`: each member and what keeps it out
    /// (written only when shown).
    fn why_none(&self, spec: &ServiceSpec, exclude: Option<&str>) -> Vec<String> {
        let mut why = Vec::new();
        for name in self.desired.members().keys() {
            let name = name.as_str();
            if Some(name) == exclude {
                why.push(format!("{name} is the member it leaves"));
            } else if let Some(reason) = self.ineligible(&spec.placement, name) {
                why.push(format!("{name} {reason}"));
            } else if let Some(gap) = self.lacks_script(spec, name) {
                why.push(format!("{name} {gap}"));
            }
        }
        why
    }

    /// Records that a service left `from` and/or now runs on `to`.
    pub fn moved(&mut self, from: Option<&'a str>, to: Option<&'a str>) {
        if let Some(f) = from
            && let Some(n) = self.load.get_mut(f)
        {
            let old = *n;
            *n = old.saturating_sub(1);
            if self.by_load.remove(&(old, f)) {
                self.by_load.insert((*n, f));
            }
        }
        if let Some(t) = to {
            let n = self.load.entry(t.to_string()).or_default();
            let old = *n;
            *n += 1;
            if self.by_load.remove(&(old, t)) {
                self.by_load.insert((*n, t));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Failure, Phase};

    /// Agents' script reports: a member that lacks a script is never
    /// chosen; one that has not reported yet is waited for when it ranks
    /// better; one with no report at all (`clusvc run`'s) is not held.
    #[test]
    fn placement_follows_the_agents_script_reports() {
        use crate::model::{Inventory, ObservedMember};
        let objects: Vec<crate::model::Object> = ["a", "b", "c"]
            .iter()
            .map(|n| {
                crate::model::Object::Member(
                    serde_json::from_value(serde_json::json!({
                        "apiVersion": "clusvc/v1", "kind": "Member",
                        "metadata": {"name": n}, "spec": {}
                    }))
                    .unwrap(),
                )
            })
            .collect();
        let desired = DesiredState::from_objects(objects).unwrap();
        let spec: ServiceSpec = serde_json::from_value(serde_json::json!({
            "placement": {"members": ["a", "b", "c"], "ordered": true},
            "applications": [{"script": "/opt/app.sh"}]
        }))
        .unwrap();
        let inv = |has: Option<bool>| ObservedMember {
            inventory: Some(Inventory {
                version: "1".into(),
                scripts: match has {
                    Some(true) => [("/opt/app.sh".to_string(), Some("crc32:1".to_string()))].into(),
                    Some(false) => [("/opt/app.sh".to_string(), None)].into(),
                    None => Default::default(),
                },
            }),
            ..ObservedMember::default()
        };
        let choose = |a: ObservedMember, b: ObservedMember, c: ObservedMember| {
            let observed = ObservedState {
                members: [("a".into(), a), ("b".into(), b), ("c".into(), c)].into(),
                ..ObservedState::default()
            };
            Members::new(&desired, &observed)
                .best(&spec, None)
                .map(str::to_string)
                .map_err(|e| e.to_string())
        };
        // a lacks it: b.
        assert_eq!(
            choose(inv(Some(false)), inv(Some(true)), inv(Some(true))),
            Ok("b".into())
        );
        // a has not said yet: wait for it rather than pass it over.
        let waiting = choose(inv(None), inv(Some(true)), inv(Some(true))).unwrap_err();
        assert!(
            waiting.contains("waiting for a to report its scripts"),
            "{waiting}"
        );
        // ... but not for a worse-ranked one.
        assert_eq!(
            choose(inv(Some(true)), inv(None), inv(None)),
            Ok("a".into())
        );
        // No report at all: not held to one.
        assert_eq!(
            choose(ObservedMember::default(), inv(Some(true)), inv(Some(true))),
            Ok("a".into())
        );
        // Nobody has it.
        let none = choose(inv(Some(false)), inv(Some(false)), inv(Some(false))).unwrap_err();
        assert!(none.contains("a lacks /opt/app.sh"), "{none}");
    }

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

    /// `best` walks members in load order and looks only at the listed
    /// ones by name; a scan of every member (as it was) must choose the
    /// same, through a run of moves that change the loads.
    mod against_a_scan {
        use super::*;
        use crate::model::{Inventory, ObservedMember};
        use proptest::prelude::*;

        const SCRIPTS: [&str; 2] = ["/opt/a.sh", "/opt/b.sh"];

        fn scan(
            m: &Members<'_>,
            spec: &ServiceSpec,
            exclude: Option<&str>,
        ) -> Result<String, String> {
            let placement = &spec.placement;
            let mut best: Option<(usize, usize, &str)> = None;
            let mut unreported = Vec::new();
            for name in m.desired.members().keys() {
                let name = name.as_str();
                if Some(name) == exclude || m.ineligible(placement, name).is_some() {
                    continue;
                }
                if let Some(gap) = m.lacks_script(spec, name) {
                    if let ScriptGap::Unreported(_) = gap {
                        unreported.push((Members::rank(placement, name), name));
                    }
                    continue;
                }
                let key = (
                    Members::rank(placement, name),
                    m.load.get(name).copied().unwrap_or(0),
                    name,
                );
                if best.is_none_or(|b| key < b) {
                    best = Some(key);
                }
            }
            if !unreported.is_empty()
                && best.is_none_or(|(rank, _, _)| unreported.iter().any(|(r, _)| *r <= rank))
            {
                let waiting: Vec<&str> = unreported.iter().map(|(_, n)| *n).collect();
                return Err(format!("waiting for {}", waiting.join(", ")));
            }
            best.map(|(_, _, n)| n.to_string())
                .ok_or_else(|| "none".to_string())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn best_chooses_as_a_scan_of_every_member_does(
                members in proptest::collection::vec((0u8..4, 0u8..4, 0u8..4, 0usize..4), 1..8),
                list in proptest::collection::vec(0usize..9, 0..4),
                ordered in any::<bool>(),
                restricted in any::<bool>(),
                two_scripts in any::<bool>(),
                exclude in proptest::option::of(0usize..8),
                moves in proptest::collection::vec((proptest::option::of(0usize..8), proptest::option::of(0usize..8)), 0..6),
            ) {
                let name = |i: usize| format!("m{i}");
                let objects: Vec<crate::model::Object> = (0..members.len())
                    .map(|i| {
                        crate::model::Object::Member(
                            serde_json::from_value(serde_json::json!({
                                "apiVersion": "clusvc/v1", "kind": "Member",
                                "metadata": {"name": name(i)}, "spec": {}
                            }))
                            .unwrap(),
                        )
                    })
                    .collect();
                let desired = DesiredState::from_objects(objects).unwrap();
                let mut observed = ObservedState::default();
                let mut index = ClusterIndex::default();
                for (i, &(state, a, b, load)) in members.iter().enumerate() {
                    // 0: a script present, 1: lacking, 2: not reported, 3: no reports at all.
                    let report = |k: u8, s: &str| match k {
                        0 => Some((s.to_string(), Some("crc32:1".to_string()))),
                        1 => Some((s.to_string(), None)),
                        _ => None,
                    };
                    let inventory = (a != 3).then(|| Inventory {
                        version: "1".into(),
                        scripts: [report(a, SCRIPTS[0]), report(b, SCRIPTS[1])].into_iter().flatten().collect(),
                    });
                    observed.members.insert(name(i), ObservedMember {
                        alive: state != 1,
                        standby: state == 2,
                        inventory,
                        ..ObservedMember::default()
                    });
                    index.load.insert(name(i), load);
                }
                let scripts: Vec<_> = SCRIPTS[..if two_scripts { 2 } else { 1 }]
                    .iter()
                    .map(|s| serde_json::json!({"script": s}))
                    .collect();
                let spec: ServiceSpec = serde_json::from_value(serde_json::json!({
                    "placement": {
                        "members": list.iter().map(|&i| name(i)).collect::<Vec<_>>(),
                        "ordered": ordered,
                        "restricted": restricted,
                    },
                    "applications": scripts,
                }))
                .unwrap();
                let exclude = exclude.map(name);
                let mut m = Members::with_index(&desired, &observed, &index);
                let names: Vec<&str> = desired.members().keys().map(String::as_str).collect();
                let pick = |i: Option<usize>| i.and_then(|i| names.get(i).copied());
                for step in 0..=moves.len() {
                    let ours = m.best(&spec, exclude.as_deref()).map(str::to_string).map_err(|e| {
                        if e.is_waiting() {
                            e.0[0].trim_end_matches(" to report its scripts").to_string()
                        } else {
                            "none".to_string()
                        }
                    });
                    prop_assert_eq!(ours, scan(&m, &spec, exclude.as_deref()), "after {} moves", step);
                    if let Some(&(from, to)) = moves.get(step) {
                        m.moved(pick(from), pick(to));
                    }
                }
            }
        }
    }
}
