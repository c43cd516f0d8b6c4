//! The observed state that results when every step of a plan succeeds.
//!
//! Used for what-if chains and by the planner's own invariants: planning the
//! result of a plan must give a plan without changes.

use crate::model::{DesiredState, ObservedService, ObservedState, ResourceStatus, ServiceState};

use super::{Action, Plan};

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
        match sp.action {
            Action::Hold { .. } => {
                // A new service that cannot start yet still gets its record.
                if desired.services().contains_key(&sp.service) {
                    next.services
                        .entry(sp.service.clone())
                        .or_insert_with(|| ObservedService {
                            id: sp.id,
                            ..ObservedService::default()
                        });
                }
                continue;
            }
            Action::Forget => {
                next.services.remove(&sp.service);
                continue;
            }
            _ => {}
        }
        let Some(svc) = desired.services().get(&sp.service) else {
            next.services.remove(&sp.service);
            continue;
        };
        let o = next
            .services
            .entry(sp.service.clone())
            .or_insert_with(|| ObservedService {
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
                o.restarts.push(plan.now);
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
    }
    next
}
