//! The observed state that results when every step of a plan succeeds.
//!
//! Used for what-if chains, by the controller to record a service after its
//! steps succeeded, and by the planner's own invariants: planning the result
//! of a plan must give a plan without changes.

use crate::model::{
    DesiredState, ObservedService, ObservedState, ResourceStatus, Service, ServiceState, Timestamp,
};

use super::{Change, Plan, ServicePlan};

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
        match apply_service(service, next.services.get(&sp.service), sp, plan.now) {
            Some(o) => {
                next.services.insert(sp.service.clone(), o);
            }
            None => {
                next.services.remove(&sp.service);
            }
        }
    }
    next
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
