//! The observed state that results when every step of a plan succeeds.
//!
//! Used for what-if chains, by the controller to record a service after its
//! steps succeeded, and by the planner's own invariants: planning the result
//! of a plan must give a plan without changes.
//!
//! [`apply`] runs the steps against what is up where, as members would:
//! a service is recorded as running only if its steps left exactly its
//! desired resources up on its member and nothing anywhere else, so a plan
//! that forgets a start or a stop does not converge.

use std::collections::BTreeMap;

use crate::model::Phase;

use crate::model::{
    DesiredState, ObservedService, ObservedState, Resource, ResourceStatus, Service, ServiceState,
    Timestamp,
};

use super::{Change, Op, Plan, ServicePlan, Step};

/// Applies `plan` to `observed` as if all its steps succeeded at `plan.now`.
pub fn apply(desired: &DesiredState, observed: &ObservedState, plan: &Plan) -> ObservedState {
    let mut next = observed.clone();
    for sp in &plan.services {
        for m in &sp.outcome.fenced {
            let mo = next.members.entry(m.clone()).or_default();
            mo.alive = false;
            mo.fenced_at = Some(plan.now);
            mo.lease_expired_at.get_or_insert(plan.now);
        }
        let service = desired.services().get(&sp.service);
        let prev = next.services.get(&sp.service).cloned();
        match apply_service(service, prev.as_ref(), sp, plan.now) {
            Some(mut o) => {
                if let Some(svc) = service {
                    check_steps(observed, prev.as_ref(), svc, sp, &mut o);
                }
                next.services.insert(sp.service.clone(), o);
            }
            None => {
                next.services.remove(&sp.service);
            }
        }
    }
    next
}

/// What is up where: member -> resource label -> the definition it runs with.
type Up = BTreeMap<String, BTreeMap<String, Resource>>;

/// What a service has up before its plan: on its member (alive), the
/// resources not known to be stopped, as it was started.
fn up_before(observed: &ObservedState, prev: Option<&ObservedService>, svc: &Service) -> Up {
    let mut up = Up::new();
    let Some(o) = prev else { return up };
    let Some(m) = o.member.as_deref() else {
        return up;
    };
    if matches!(o.state, ServiceState::Stopped | ServiceState::Disabled) || !observed.is_alive(m) {
        // A dead member's agent stopped everything when its lease ran out.
        return up;
    }
    let spec = o.started_with.as_ref().unwrap_or(&svc.spec);
    let on = up.entry(m.to_string()).or_default();
    // What a status means depends on the work that recorded it, as the
    // executor records it: an interrupted or failed start knows what it
    // started (ok, or failed half way); an interrupted stop knows what it
    // stopped; otherwise everything is up.
    let start_failed = o.state == ServiceState::Starting
        || (o.state == ServiceState::Failed
            && o.failure.as_ref().is_some_and(|f| f.phase == Phase::Start));
    let stopping = matches!(o.state, ServiceState::Stopping | ServiceState::Relocating);
    for r in spec.resources() {
        let status = o.resources.get(&r.label()).copied().unwrap_or_default();
        let is_up = if start_failed {
            matches!(status, ResourceStatus::Ok | ResourceStatus::Failed)
        } else if stopping {
            status != ResourceStatus::Stopped
        } else {
            true
        };
        if is_up {
            on.insert(r.label(), r.to_owned());
        }
    }
    up
}

/// Replays the steps on what was up; when the plan claims the service runs
/// but the steps did not leave exactly its resources up on its member (and
/// nothing elsewhere), the record says so, so replanning shows a change.
fn check_steps(
    observed: &ObservedState,
    prev: Option<&ObservedService>,
    svc: &Service,
    sp: &ServicePlan,
    o: &mut ObservedService,
) {
    let mut up = up_before(observed, prev, svc);
    for step in &sp.steps {
        match step {
            Step::Resource {
                member,
                op: Op::Start,
                resource,
            } => {
                up.entry(member.clone())
                    .or_default()
                    .insert(resource.label(), resource.clone());
            }
            Step::Resource {
                member,
                op: Op::Stop,
                resource,
            } => {
                if let Some(on) = up.get_mut(member) {
                    on.remove(&resource.label());
                }
            }
            Step::Fence { member, .. }
            | Step::AwaitFence { member, .. }
            | Step::AwaitLease { member, .. } => {
                up.remove(member);
            }
        }
    }
    up.retain(|_, on| !on.is_empty());
    let want: BTreeMap<String, Resource> = svc
        .spec
        .resources()
        .map(|r| (r.label(), r.to_owned()))
        .collect();
    let consistent = match (&o.member, o.state) {
        (Some(m), ServiceState::Running) => {
            up.keys().all(|k| k == m) && up.get(m).cloned().unwrap_or_default() == want
        }
        (_, ServiceState::Running) => false,
        _ => true,
    };
    let leaked = match &o.member {
        None => !up.is_empty(),
        Some(_) => false,
    };
    if consistent && !leaked {
        return;
    }
    // Record what the steps really left: a start half done where the
    // service should run, or a stop half done where something still runs.
    let (m, on) = match &o.member {
        Some(m) => (m.clone(), up.get(m).cloned().unwrap_or_default()),
        None => {
            let (m, on) = up.into_iter().next().expect("leaked means something is up");
            (m, on)
        }
    };
    o.state = if o.member.is_some() {
        ServiceState::Starting
    } else {
        ServiceState::Stopping
    };
    o.member = Some(m);
    let started = o.started_with.clone().unwrap_or_else(|| svc.spec.clone());
    o.resources = started
        .resources()
        .map(|r| {
            let status = match on.get(&r.label()) {
                Some(def) if *def == r.to_owned() => ResourceStatus::Ok,
                Some(_) => ResourceStatus::Failed,
                None => ResourceStatus::Stopped,
            };
            (r.label(), status)
        })
        .collect();
    o.started_with = Some(started);
}

/// The record of one service after its plan succeeded, given its desired
/// object (`None`: deleted); `None` when the service is gone (deleted and
/// stopped).
pub fn apply_service(
    svc: Option<&Service>,
    prev: Option<&ObservedService>,
    sp: &ServicePlan,
    now: Timestamp,
) -> Option<ObservedService> {
    match (&sp.change, svc) {
        (Change::Forget, _) | (_, None) => return None,
        (Change::Hold { .. }, Some(_)) => {
            // A new service that cannot start yet still gets its record.
            return Some(prev.cloned().unwrap_or_else(|| ObservedService {
                id: sp.id,
                ..ObservedService::default()
            }));
        }
        _ => {}
    }
    let svc = svc.expect("matched above");
    let mut o = prev.cloned().unwrap_or_else(|| ObservedService {
        id: sp.id,
        ..ObservedService::default()
    });
    let out = &sp.outcome;
    let moved = o.member != out.member;
    o.state = out.state;
    o.member.clone_from(&out.member);
    o.relocate = None;
    o.restart_requested = false;
    if out.member.is_some() {
        o.started_with = Some(svc.spec.clone());
        o.resources = svc
            .spec
            .resources()
            .map(|r| (r.label(), ResourceStatus::Ok))
            .collect();
        o.failure = None;
        if out.placement_reason.is_some() {
            o.placement_reason = out.placement_reason;
        }
        if moved {
            o.restarts.clear();
        }
        if out.counts_restart {
            o.restarts.push(now);
        }
    } else {
        o.started_with = None;
        o.resources.clear();
        o.restarts.clear();
        o.placement_reason = None;
        if out.state != ServiceState::Failed {
            o.failure = None;
        }
    }
    Some(o)
}
