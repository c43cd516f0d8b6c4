//! What to do with one service: the decisions of SPEC §5.

use crate::model::{
    DesiredState, ObservedService, ObservedState, Phase, PlacementReason, RecoveryPolicy,
    ResourceStatus, Service, ServiceSpec, ServiceState, Timestamp,
};

use super::placement::Members;
use super::steps::{first_change, reconfigure, start_all, start_some, stop_all, stop_some};
use super::{Change, LEASE_GRACE, Outcome, ServicePlan, Step};

/// State shared by the decisions of one planning pass.
pub struct Context<'a> {
    desired: &'a DesiredState,
    observed: &'a ObservedState,
    now: Timestamp,
    members: Members<'a>,
    next_id: u64,
}

/// The empty spec, for deleted services whose started spec is unknown.
static EMPTY_SPEC: std::sync::LazyLock<ServiceSpec> =
    std::sync::LazyLock::new(ServiceSpec::default);

/// A plan under construction for one service.
struct Draft<'a> {
    name: &'a str,
    id: u64,
    steps: Vec<Step>,
}

impl Draft<'_> {
    fn finish(self, change: Change, reason: impl Into<String>, outcome: Outcome) -> ServicePlan {
        ServicePlan {
            service: self.name.to_string(),
            id: self.id,
            change,
            reason: reason.into(),
            steps: self.steps,
            outcome,
        }
    }
}

fn outcome(state: ServiceState, member: Option<&str>, why: Option<PlacementReason>) -> Outcome {
    Outcome {
        state,
        member: member.map(str::to_string),
        placement_reason: why,
        counts_restart: false,
        fenced: Vec::new(),
    }
}

/// Whether the state means the service holds (or may hold) resources on its member.
fn holds_member(state: ServiceState) -> bool {
    !matches!(state, ServiceState::Stopped | ServiceState::Disabled)
}

impl<'a> Context<'a> {
    /// Starts a planning pass.
    pub fn new(desired: &'a DesiredState, observed: &'a ObservedState, now: Timestamp) -> Self {
        let next_id = observed
            .services
            .values()
            .map(|s| s.id.saturating_add(1))
            .max()
            .unwrap_or(0);
        Self {
            desired,
            observed,
            now,
            members: Members::new(desired, observed),
            next_id,
        }
    }

    /// The plan of one service, or `None` when there is nothing to do or say.
    pub fn decide(&mut self, name: &'a str) -> Option<ServicePlan> {
        let desired = self.desired.services().get(name);
        let obs = self.observed.services.get(name);
        if obs.is_some_and(|o| o.frozen) {
            return None;
        }
        let id = match obs {
            Some(o) => o.id,
            None => {
                self.next_id += 1;
                self.next_id - 1
            }
        };
        let draft = Draft {
            name,
            id,
            steps: Vec::new(),
        };
        let at: Option<&'a str> = obs
            .filter(|o| holds_member(o.state))
            .and_then(|o| o.member.as_deref());
        let (desired, obs, at) = match (desired, obs, at) {
            (_, Some(o), Some(m)) => (desired, o, m),
            (Some(svc), _, None) => return self.place_stopped(draft, svc, obs),
            (None, _, None) => {
                return Some(draft.finish(
                    Change::Forget,
                    "deleted; not running",
                    outcome(ServiceState::Stopped, None, None),
                ));
            }
            (_, None, Some(_)) => unreachable!("a member comes from an observed record"),
        };
        match desired {
            None => {
                let spec = obs.started_with.as_ref().unwrap_or(&EMPTY_SPEC);
                Some(self.stop(draft, obs, spec, at, "deleted", ServiceState::Stopped))
            }
            Some(svc) => self.running(draft, svc, obs, at),
        }
    }

    /// A service that runs nowhere.
    fn place_stopped(
        &mut self,
        mut draft: Draft<'a>,
        svc: &'a Service,
        obs: Option<&'a ObservedService>,
    ) -> Option<ServicePlan> {
        let spec = &svc.spec;
        if let Some(o) = obs
            && o.state == ServiceState::Failed
        {
            if !spec.enabled {
                return None;
            }
            let what = failure_text(o);
            return Some(draft.finish(
                Change::Hold {
                    state: ServiceState::Failed,
                },
                format!("{what}; run clusvc enable or clusvc clear to retry"),
                outcome(ServiceState::Failed, None, None),
            ));
        }
        if !spec.enabled {
            return None;
        }
        match self.members.best(&spec.placement, None) {
            Ok(to) => {
                start_all(to, spec, &mut draft.steps);
                self.members.moved(None, Some(to));
                let reason = if obs.is_some() {
                    "not running"
                } else {
                    "new service"
                };
                Some(draft.finish(
                    Change::Start { to: to.into() },
                    reason,
                    outcome(
                        ServiceState::Running,
                        Some(to),
                        Some(PlacementReason::Initial),
                    ),
                ))
            }
            Err(why) => Some(draft.finish(
                Change::Hold {
                    state: ServiceState::Stopped,
                },
                why,
                outcome(ServiceState::Stopped, None, None),
            )),
        }
    }

    /// A service that holds member `m`.
    fn running(
        &mut self,
        mut draft: Draft<'a>,
        svc: &'a Service,
        o: &'a ObservedService,
        m: &'a str,
    ) -> Option<ServicePlan> {
        let spec = &svc.spec;
        let running = o.started_with.as_ref().unwrap_or(spec);
        if !self.members.is_alive(m) {
            let why = if !self.members.is_being_fenced(m) {
                format!("member {m} is dead")
            } else if o.state == ServiceState::Blocked {
                format!("{} on {m}; fencing {m}", failure_text(o))
            } else {
                format!("member {m} is being fenced")
            };
            let fenced = self.vacate_dead(m, &mut draft.steps);
            self.members.moved(Some(m), None);
            let mut plan = if !spec.enabled {
                draft.finish(
                    Change::Stop { from: m.into() },
                    format!("{why}; service is disabled"),
                    outcome(ServiceState::Disabled, None, None),
                )
            } else {
                self.move_away(
                    draft,
                    spec,
                    m,
                    why,
                    ServiceState::Stopped,
                    PlacementReason::Failover,
                )
            };
            plan.outcome.fenced = fenced;
            return Some(plan);
        }
        if o.state == ServiceState::Blocked {
            return Some(self.blocked(draft, o, m));
        }
        if !spec.enabled {
            return Some(self.stop(draft, o, running, m, "disabled", ServiceState::Disabled));
        }
        if o.state == ServiceState::Failed {
            return Some(self.recover(draft, svc, o, running, m));
        }
        if let Some(why) = self.members.ineligible(&spec.placement, m) {
            stop_all(m, running, &mut draft.steps);
            self.members.moved(Some(m), None);
            return Some(self.move_away(
                draft,
                spec,
                m,
                format!("member {m} {why}"),
                ServiceState::Stopped,
                PlacementReason::Failover,
            ));
        }
        match o.state {
            ServiceState::Stopping | ServiceState::Relocating => {
                stop_some(
                    m,
                    running,
                    |r| o.resources.get(&r.label()) != Some(&ResourceStatus::Stopped),
                    &mut draft.steps,
                );
                self.members.moved(Some(m), None);
                let exclude = (o.state == ServiceState::Relocating).then_some(m);
                let what = if o.state == ServiceState::Relocating {
                    "relocation"
                } else {
                    "stop"
                };
                let target = self
                    .members
                    .best(&spec.placement, exclude)
                    .or_else(|_| self.members.best(&spec.placement, None));
                return Some(match target {
                    Ok(to) => {
                        start_all(to, spec, &mut draft.steps);
                        self.members.moved(None, Some(to));
                        let change = if to == m {
                            Change::Restart { on: m.into() }
                        } else {
                            Change::Relocate {
                                from: m.into(),
                                to: to.into(),
                            }
                        };
                        // Why the interrupted move began is not known: do
                        // not let failback bounce it back.
                        let reason = if to == m {
                            o.placement_reason
                        } else {
                            Some(PlacementReason::Recovery)
                        };
                        draft.finish(
                            change,
                            format!("resume interrupted {what}"),
                            outcome(ServiceState::Running, Some(to), reason),
                        )
                    }
                    Err(why) => draft.finish(
                        Change::Stop { from: m.into() },
                        format!("resume interrupted {what}; {why}"),
                        outcome(ServiceState::Stopped, None, None),
                    ),
                });
            }
            _ => {}
        }
        if let Some(req) = &o.relocate {
            return Some(self.manual_relocation(draft, spec, running, m, req.to.as_deref()));
        }
        if let Some(best) = self.failback_target(spec, o, m) {
            stop_all(m, running, &mut draft.steps);
            start_all(best, spec, &mut draft.steps);
            self.members.moved(Some(m), Some(best));
            return Some(draft.finish(
                Change::Relocate {
                    from: m.into(),
                    to: best.into(),
                },
                format!("failback to preferred member {best}"),
                outcome(
                    ServiceState::Running,
                    Some(best),
                    Some(PlacementReason::Failback),
                ),
            ));
        }
        if o.restart_requested {
            stop_all(m, running, &mut draft.steps);
            start_all(m, spec, &mut draft.steps);
            return Some(draft.finish(
                Change::Restart { on: m.into() },
                "restart requested",
                outcome(ServiceState::Running, Some(m), o.placement_reason),
            ));
        }
        if o.state == ServiceState::Starting {
            return Some(self.resume_start(draft, spec, o, running, m));
        }
        let from = first_change(running, spec)?;
        let old = running.resources().nth(from).map(|r| r.label());
        let new = spec.resources().nth(from).map(|r| r.label());
        let has = |s: &ServiceSpec, label: &str| s.resources().any(|r| r.label() == label);
        let why = match (old, new) {
            (Some(o), Some(n)) if o == n => format!("{n} changed"),
            (Some(o), Some(n)) if !has(spec, &o) && !has(running, &n) => {
                format!("{o} replaced by {n}")
            }
            (Some(o), _) if !has(spec, &o) => format!("{o} removed"),
            (_, Some(n)) if !has(running, &n) => format!("{n} added"),
            (_, Some(n)) => format!("{n} changed"),
            (Some(o), None) => format!("{o} removed"),
            (None, None) => "resources changed".to_string(),
        };
        reconfigure(m, running, spec, from, &mut draft.steps);
        Some(draft.finish(
            Change::Reconfigure { on: m.into() },
            why,
            outcome(ServiceState::Running, Some(m), o.placement_reason),
        ))
    }

    /// A start interrupted by a crash: start what is not up yet; if the spec
    /// changed meanwhile, take down what is up and start the new spec.
    fn resume_start(
        &mut self,
        mut draft: Draft<'a>,
        spec: &ServiceSpec,
        o: &'a ObservedService,
        running: &ServiceSpec,
        m: &'a str,
    ) -> ServicePlan {
        let up = |label: &str| o.resources.get(label) == Some(&ResourceStatus::Ok);
        if first_change(running, spec).is_some() {
            stop_some(
                m,
                running,
                |r| {
                    let st = o.resources.get(&r.label()).copied().unwrap_or_default();
                    matches!(st, ResourceStatus::Ok | ResourceStatus::Failed)
                },
                &mut draft.steps,
            );
            start_all(m, spec, &mut draft.steps);
        } else {
            start_some(m, spec, |r| !up(&r.label()), &mut draft.steps);
        }
        draft.finish(
            Change::Start { to: m.into() },
            "resume interrupted start",
            outcome(ServiceState::Running, Some(m), o.placement_reason),
        )
    }

    /// Stop where it runs (alive member), for a disabled or deleted service.
    fn stop(
        &mut self,
        mut draft: Draft<'a>,
        o: &'a ObservedService,
        running: &ServiceSpec,
        m: &'a str,
        why: &str,
        end: ServiceState,
    ) -> ServicePlan {
        let mut fenced = Vec::new();
        if !self.members.is_alive(m) {
            fenced = self.vacate_dead(m, &mut draft.steps);
        } else {
            self.leave(o, running, m, &mut draft.steps);
        }
        self.members.moved(Some(m), None);
        let mut plan = draft.finish(
            Change::Stop { from: m.into() },
            why,
            outcome(end, None, None),
        );
        plan.outcome.fenced = fenced;
        plan
    }

    /// The steps that take a service off a live member, given what is up.
    fn leave(&self, o: &ObservedService, running: &ServiceSpec, m: &str, steps: &mut Vec<Step>) {
        let partial = matches!(
            (o.state, o.failure.as_ref().map(|f| f.phase)),
            (ServiceState::Failed, Some(Phase::Start))
        ) || matches!(o.state, ServiceState::Stopping | ServiceState::Relocating);
        if partial {
            stop_some(
                m,
                running,
                |r| {
                    let st = o.resources.get(&r.label()).copied().unwrap_or_default();
                    match o.state {
                        ServiceState::Failed => {
                            matches!(st, ResourceStatus::Ok | ResourceStatus::Failed)
                        }
                        _ => st != ResourceStatus::Stopped,
                    }
                },
                steps,
            );
        } else {
            stop_all(m, running, steps);
        }
    }

    /// Replaces the stop on a dead member: fence it where configured, else
    /// wait for its lease (plus grace). Returns the members fenced.
    fn vacate_dead(&self, m: &str, steps: &mut Vec<Step>) -> Vec<String> {
        let observed = self.observed.members.get(m);
        let expired = observed.and_then(|o| o.lease_expired_at);
        let already_fenced = observed
            .and_then(|o| o.fenced_at)
            .is_some_and(|f| expired.is_none_or(|e| f >= e));
        if already_fenced {
            return Vec::new();
        }
        let fencing = self
            .desired
            .members()
            .get(m)
            .and_then(|d| d.spec.fencing.as_ref());
        if fencing.is_some() && !observed.is_some_and(|o| o.fencing_failed) {
            steps.push(Step::Fence { member: m.into() });
            return vec![m.to_string()];
        }
        steps.push(Step::AwaitLease {
            member: m.into(),
            until: expired.unwrap_or(self.now).plus(LEASE_GRACE),
        });
        Vec::new()
    }

    /// After the service has left `m` (steps already in the draft): start it
    /// on the best other member, or stay in `stuck` with the reason.
    fn move_away(
        &mut self,
        mut draft: Draft<'a>,
        spec: &ServiceSpec,
        m: &'a str,
        why: String,
        stuck: ServiceState,
        reason: PlacementReason,
    ) -> ServicePlan {
        match self.members.best(&spec.placement, Some(m)) {
            Ok(to) => {
                start_all(to, spec, &mut draft.steps);
                self.members.moved(None, Some(to));
                draft.finish(
                    Change::Relocate {
                        from: m.into(),
                        to: to.into(),
                    },
                    why,
                    outcome(ServiceState::Running, Some(to), Some(reason)),
                )
            }
            Err(none) => draft.finish(
                Change::Stop { from: m.into() },
                format!("{why}; {none}"),
                outcome(stuck, None, None),
            ),
        }
    }

    /// A stop failed on a live member that cannot be fenced (members that
    /// can are treated as dead for the pass, see [`Members::new`]): hold.
    fn blocked(&mut self, draft: Draft<'a>, o: &'a ObservedService, m: &'a str) -> ServicePlan {
        let what = failure_text(o);
        let fence_failed = self
            .observed
            .members
            .get(m)
            .is_some_and(|mo| mo.fencing_failed);
        let hint = if fence_failed {
            "fencing failed"
        } else {
            "no fencing configured"
        };
        draft.finish(
            Change::Hold {
                state: ServiceState::Blocked,
            },
            format!("{what} on {m}; {hint}; fix it, then run clusvc clear"),
            outcome(ServiceState::Blocked, Some(m), o.placement_reason),
        )
    }

    /// A failed check or start on live member `m`: roll back, then recover
    /// per the service's policy.
    fn recover(
        &mut self,
        mut draft: Draft<'a>,
        svc: &'a Service,
        o: &'a ObservedService,
        running: &ServiceSpec,
        m: &'a str,
    ) -> ServicePlan {
        let spec = &svc.spec;
        let recovery = &spec.recovery;
        let what = failure_text(o);
        self.leave(o, running, m, &mut draft.steps);
        match recovery.policy {
            RecoveryPolicy::Disable => {
                self.members.moved(Some(m), None);
                draft.finish(
                    Change::Stop { from: m.into() },
                    format!("{what}; recovery policy is disable"),
                    outcome(ServiceState::Failed, None, None),
                )
            }
            RecoveryPolicy::Restart => {
                let since = self.now.minus(recovery.restart_window);
                let recent = o.restarts.iter().filter(|t| **t > since).count();
                let max = recovery.max_restarts as usize;
                let eligible = self.members.ineligible(&spec.placement, m).is_none();
                if recent < max
                    && eligible
                    && let Some(best) = self.failback_target(spec, o, m)
                {
                    // It is down anyway: restart where it prefers to be.
                    start_all(best, spec, &mut draft.steps);
                    self.members.moved(Some(m), Some(best));
                    return draft.finish(
                        Change::Relocate {
                            from: m.into(),
                            to: best.into(),
                        },
                        format!("{what}; restarting on preferred member {best} (failback)"),
                        outcome(
                            ServiceState::Running,
                            Some(best),
                            Some(PlacementReason::Failback),
                        ),
                    );
                }
                if recent < max && eligible {
                    start_all(m, spec, &mut draft.steps);
                    let mut plan = draft.finish(
                        Change::Restart { on: m.into() },
                        format!("{what}; restart {} of {max}", recent + 1),
                        outcome(ServiceState::Running, Some(m), o.placement_reason),
                    );
                    plan.outcome.counts_restart = true;
                    return plan;
                }
                self.members.moved(Some(m), None);
                let why = if eligible {
                    format!(
                        "{what}; restart limit reached ({recent} of {max} within {})",
                        recovery.restart_window
                    )
                } else {
                    format!("{what}; member {m} is no longer eligible")
                };
                self.move_away(
                    draft,
                    spec,
                    m,
                    why,
                    ServiceState::Failed,
                    PlacementReason::Recovery,
                )
            }
            RecoveryPolicy::Relocate => {
                self.members.moved(Some(m), None);
                self.move_away(
                    draft,
                    spec,
                    m,
                    what,
                    ServiceState::Failed,
                    PlacementReason::Recovery,
                )
            }
        }
    }

    /// The more preferred member a service placed by failover should return
    /// to, if failback is on and one is eligible.
    fn failback_target(&self, spec: &ServiceSpec, o: &ObservedService, m: &str) -> Option<&'a str> {
        if !spec.placement.failback || o.placement_reason != Some(PlacementReason::Failover) {
            return None;
        }
        let best = self.members.best(&spec.placement, None).ok()?;
        (Members::rank(&spec.placement, best) < Members::rank(&spec.placement, m)).then_some(best)
    }

    /// A pending `clusvc relocate [--to]`.
    fn manual_relocation(
        &mut self,
        mut draft: Draft<'a>,
        spec: &ServiceSpec,
        running: &ServiceSpec,
        m: &'a str,
        to: Option<&'a str>,
    ) -> ServicePlan {
        let target = match to {
            Some(t) if t == m => Err(format!("it already runs on {m}")),
            Some(t) => match self.members.ineligible(&spec.placement, t) {
                None => Ok(self
                    .desired
                    .members()
                    .get_key_value(t)
                    .map_or(t, |(k, _)| k.as_str())),
                Some(why) => Err(format!("member {t} {why}")),
            },
            None => self.members.best(&spec.placement, Some(m)),
        };
        match target {
            Ok(t) => {
                stop_all(m, running, &mut draft.steps);
                start_all(t, spec, &mut draft.steps);
                self.members.moved(Some(m), Some(t));
                draft.finish(
                    Change::Relocate {
                        from: m.into(),
                        to: t.into(),
                    },
                    "manual relocation",
                    outcome(
                        ServiceState::Running,
                        Some(t),
                        Some(PlacementReason::Manual),
                    ),
                )
            }
            Err(why) => draft.finish(
                Change::Hold {
                    state: ServiceState::Running,
                },
                format!("relocation request cannot be carried out: {why}"),
                outcome(ServiceState::Running, Some(m), None),
            ),
        }
    }
}

/// "status check of ip 192.0.2.100/24 failed: address missing".
fn failure_text(o: &ObservedService) -> String {
    match &o.failure {
        Some(f) if f.reason.is_empty() => format!("{} of {} failed", f.phase.word(), f.resource),
        Some(f) => format!("{} of {} failed: {}", f.phase.word(), f.resource, f.reason),
        None => format!("{} with no recorded failure", o.state),
    }
}
