//! Executing a service's plan: progress is recorded before the steps, so a
//! crash leaves a state the next pass can finish from; resource steps go to
//! the member's agent in batches, fencing to the [`Fencer`], lease waits are
//! waited here; the first failure is recorded and ends the run.
//!
//! [`Fencer`]: clusvc_agent::fence::Fencer

use std::sync::atomic::Ordering;
use std::time::Duration;

use clusvc_agent::exec::RunReport;
use clusvc_agent::resources::Verb;
use clusvc_core::model::Timestamp;
use clusvc_core::model::event::Level;
use clusvc_core::model::{
    Failure, ObservedMember, ObservedService, Phase, PlacementReason, ResourceStatus, Service,
    ServiceSpec, ServiceState,
};
use clusvc_core::plan::{self, Change, Op, ServicePlan, Step};
use clusvc_store::{Compare, Store, Txn, Write, keys};

use super::{Controller, Error, InFlight, lock, now};

/// Whether a plan's progress is recorded (see [`InFlight`]).
pub(super) enum Flight {
    /// Local agents only: a restart re-probes instead.
    Untracked,
    /// A plan starting now.
    New(InFlight),
    /// A predecessor's plan, taken over.
    Resumed(InFlight),
}

impl<S: Store> Controller<S> {
    /// Executes a plan that changes something.
    pub(super) async fn execute(
        &self,
        name: &str,
        sp: &ServicePlan,
        service: Option<&Service>,
        prev: Option<&ObservedService>,
    ) -> Result<(), Error> {
        let level = match sp.change {
            Change::Relocate { .. } | Change::Restart { .. } => Level::Warning,
            _ => Level::Notice,
        };
        let revision = self.cache.read().seen();
        self.emit_event(
            name,
            sp.id,
            level,
            sp.to_string().lines().next().unwrap_or("").to_string(),
            Some((&sp.reason, revision)),
        );
        let spec = service.map(|s| &s.spec);
        let mut during = prev.cloned().unwrap_or_else(|| ObservedService {
            id: sp.id,
            ..ObservedService::default()
        });
        match &sp.change {
            Change::Start { to } => {
                during.state = ServiceState::Starting;
                during.member = Some(to.clone());
                during.started_with = spec.cloned();
            }
            Change::Stop { from } => {
                during.state = ServiceState::Stopping;
                during.member = Some(from.clone());
            }
            Change::Relocate { from, .. } => {
                during.state = ServiceState::Relocating;
                during.member = Some(from.clone());
            }
            Change::Restart { on } | Change::Reconfigure { on } => {
                during.state = ServiceState::Stopping;
                during.member = Some(on.clone());
            }
            Change::Forget | Change::Hold { .. } => {}
        }
        if sp.outcome.counts_restart {
            // The attempt counts toward `maxRestarts` whether or not it
            // succeeds, so a start that always fails reaches the limit.
            during.restarts.push(now());
        }
        if !matches!(sp.change, Change::Forget) {
            self.record(name, Some(&during)).await?;
        }
        // A plan that acts through remote agents is recorded, so that a
        // controller that takes over finishes it instead of planning anew.
        let remote = sp.steps.iter().any(|s| {
            matches!(s, Step::Resource { member, .. }
                if self.agent(member).is_some_and(|a| a.is_remote()))
        });
        let flight = remote.then(|| InFlight {
            id: format!(
                "{}-{}",
                self.incarnation,
                self.flights.fetch_add(1, Ordering::Relaxed)
            ),
            plan: sp.clone(),
            done: 0,
            before: prev.cloned(),
        });
        let flight = match flight {
            Some(f) => Flight::New(f),
            None => Flight::Untracked,
        };
        self.carry_out(name, sp, service, prev, during, flight)
            .await
    }

    /// Carries out a plan's steps from `flight.done` (0 without a flight)
    /// and records the outcome. `resumed`: a predecessor was carrying the
    /// plan out; the batch it was at is adopted if it ran. A recorded
    /// flight is removed however this ends.
    pub(super) async fn carry_out(
        &self,
        name: &str,
        sp: &ServicePlan,
        service: Option<&Service>,
        prev: Option<&ObservedService>,
        during: ObservedService,
        flight: Flight,
    ) -> Result<(), Error> {
        let (flight, resumed) = match flight {
            Flight::Untracked => (None, false),
            Flight::New(f) => (Some(f), false),
            Flight::Resumed(f) => (Some(f), true),
        };
        let flown = flight.is_some();
        if let Some(f) = &flight
            && !resumed
        {
            self.record_flight(name, Some(f)).await?;
        }
        let result = self
            .carry_out_steps(name, sp, service, prev, &during, flight, resumed)
            .await;
        if flown {
            let cleared = self.record_flight(name, None).await;
            if cleared.is_ok() {
                // The plan is carried out and recorded: its work items and
                // results are needed no more. Removing them keeps what an
                // agent's work request reads as short as what is in
                // flight (it read every item and result of the member's
                // services: 140 KB per request at 156 services each).
                let members: std::collections::BTreeSet<&str> =
                    sp.steps.iter().map(|s| s.member()).collect();
                for m in members {
                    if let Some(a) = self.agent(m) {
                        a.forget(name).await;
                    }
                }
            }
            result?;
            cleared
        } else {
            result
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn carry_out_steps(
        &self,
        name: &str,
        sp: &ServicePlan,
        service: Option<&Service>,
        prev: Option<&ObservedService>,
        during: &ObservedService,
        mut flight: Option<InFlight>,
        resumed: bool,
    ) -> Result<(), Error> {
        let spec = service.map(|s| &s.spec);
        let svc_spec = spec.or(prev.and_then(|p| p.started_with.as_ref()));
        let sref = Self::service_ref(name, sp.id, svc_spec.unwrap_or(&ServiceSpec::default()));
        let first = flight.as_ref().map_or(0, |f| f.done);
        let mut i = first;
        while i < sp.steps.len() {
            match &sp.steps[i] {
                Step::AwaitLease { member, until } => {
                    let wait = until.as_millis().saturating_sub(now().as_millis());
                    if wait > 0 {
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                    }
                    if !self.vacate(member).await? {
                        // Its agent came back first (and keeps what it
                        // ran): nothing is moved; what was recorded before
                        // the plan stands.
                        if let Some(p) = prev {
                            self.record(name, Some(p)).await?;
                        }
                        self.emit_with_id(
                            name,
                            sp.id,
                            Level::Notice,
                            format!("{member} came back before anything of it was moved: it keeps the service"),
                        );
                        return Ok(());
                    }
                    i += 1;
                }
                Step::Fence { member, incident } | Step::AwaitFence { member, incident } => {
                    self.fence(member, *incident).await?;
                    i += 1;
                }
                Step::Resource { member, .. } => {
                    // One batch per member: the agent runs them in order and
                    // rolls back a failed start itself.
                    let end = sp.steps[i..]
                        .iter()
                        .position(|s| !matches!(s, Step::Resource { member: m, .. } if m == member))
                        .map_or(sp.steps.len(), |n| i + n);
                    let agent = self
                        .agent(member)
                        .ok_or_else(|| Error::NoAgent(member.clone()))?;
                    let batch = &sp.steps[i..end];
                    let report = match &flight {
                        Some(f) => {
                            let work = format!("{}/{i}", f.id);
                            // The batch a predecessor was at: its report if
                            // it ran (waiting while it runs), never run twice.
                            let adopted = if resumed && i == first {
                                agent.adopt(&sref, &work).await?
                            } else {
                                None
                            };
                            match adopted {
                                Some(report) => {
                                    self.emit(
                                        name,
                                        Level::Notice,
                                        format!(
                                            "adopted steps {}..{end} of the previous controller's plan: they ran on {member}",
                                            i + 1
                                        ),
                                    );
                                    report
                                }
                                None => agent.execute_as(&sref, batch, &work).await?,
                            }
                        }
                        None => agent.execute(&sref, batch).await?,
                    };
                    for s in &report.steps {
                        self.metrics
                            .action(s.verb.as_str(), s.ok, s.elapsed.as_secs_f64());
                    }
                    if let Some(failed) = report.failed {
                        return self
                            .record_failure(name, during, &sp.steps[i + failed], &report, spec)
                            .await;
                    }
                    i = end;
                    if let Some(f) = &mut flight
                        && i < sp.steps.len()
                    {
                        f.done = i;
                        self.record_flight(name, Some(f)).await?;
                    }
                }
            }
        }
        let done = plan::simulate::apply_service(service, prev, sp, now());
        if let Change::Relocate { .. } = sp.change
            && sp.outcome.placement_reason != Some(PlacementReason::Manual)
        {
            self.metrics.failovers.fetch_add(1, Ordering::Relaxed);
        }
        self.record(name, done.as_ref()).await?;
        if let Some(interval) = spec.map(|s| s.check_interval.get())
            && !interval.is_zero()
        {
            lock(&self.next_check).insert(name.to_string(), crate::runtime::after(interval));
        }
        self.emit_with_id(
            name,
            sp.id,
            Level::Info,
            format!("now {}", sp.outcome.state),
        );
        Ok(())
    }

    /// Records (or removes) the plan being carried out for `name`.
    async fn record_flight(&self, name: &str, flight: Option<&InFlight>) -> Result<(), Error> {
        let key = format!("{}{name}", keys::IN_FLIGHT);
        match flight {
            Some(f) => self.store.put(&key, keys::encode(f)).await?,
            None => self.store.delete(&key).await?,
        };
        Ok(())
    }

    /// Records the first failed step: a failed start leaves the service
    /// `failed` (recovery follows), a failed stop `blocked`.
    async fn record_failure(
        &self,
        name: &str,
        during: &ObservedService,
        step: &Step,
        report: &RunReport,
        spec: Option<&ServiceSpec>,
    ) -> Result<(), Error> {
        let mut o = during.clone();
        for s in &report.steps {
            let st = match (s.verb, s.ok) {
                (Verb::Start, true) => ResourceStatus::Ok,
                (Verb::Stop, true) => ResourceStatus::Stopped,
                // Refused before it did anything: nothing to stop.
                (Verb::Start, false) if s.refused => ResourceStatus::Stopped,
                _ => ResourceStatus::Failed,
            };
            o.resources.insert(s.resource.clone(), st);
        }
        let reason = report.reason().unwrap_or("failed").to_string();
        let phase = match step.op() {
            Some(Op::Start) => Phase::Start,
            _ => Phase::Stop,
        };
        o.member = Some(step.member().to_string());
        o.state = match phase {
            Phase::Stop => ServiceState::Blocked,
            _ => ServiceState::Failed,
        };
        if phase == Phase::Start {
            o.started_with = spec.cloned();
        }
        let label = step.label().unwrap_or_default();
        o.failure = Some(Failure {
            phase,
            resource: label.clone(),
            reason: reason.clone(),
            at: Some(now()),
        });
        self.emit(
            name,
            Level::Err,
            format!(
                "{} of {label} failed on {}: {reason}",
                phase.word(),
                step.member()
            ),
        );
        self.record(name, Some(&o)).await
    }

    /// Marks a dead member as vacated (see [`keys::VACATED`]) before
    /// anything of it is moved, only while it has no lease: true when
    /// marked, false when its agent holds a lease again (it came back and
    /// keeps what it runs; the cache is told at once).
    async fn vacate(&self, member: &str) -> Result<bool, Error> {
        let lease = format!("{}{member}", keys::LEASES);
        let t = self
            .store
            .txn(Txn {
                compare: vec![Compare::Missing(lease.clone())],
                success: vec![Write::Put {
                    key: format!("{}{member}", keys::VACATED),
                    value: keys::encode(&now()),
                    lease: None,
                }],
                failure: vec![],
            })
            .await?;
        if !t.succeeded
            && let Some(kv) = self.store.get(&lease).await?
        {
            self.cache.write().put(&kv);
        }
        Ok(t.succeeded)
    }

    /// Marks a member as vacated whatever its lease (it is being fenced).
    async fn mark_vacated(&self, member: &str) -> Result<(), Error> {
        self.store
            .put(&format!("{}{member}", keys::VACATED), keys::encode(&now()))
            .await?;
        Ok(())
    }

    /// Fences a member once per incident, single-flight: of the services
    /// that need the fence (their plans carry `Fence` or `AwaitFence`), the
    /// first runs the command and records the outcome with a
    /// compare-and-swap; the others wait for it and share its result.
    async fn fence(&self, member: &str, incident: Option<Timestamp>) -> Result<(), Error> {
        let flight = lock(&self.fence_locks)
            .entry(member.to_string())
            .or_default()
            .clone();
        let _one_at_a_time = flight.lock().await;
        // The incident is the one the plan was made for: by now the blocked
        // services that made it are being stopped and no longer say so.
        let fencing = self
            .cache
            .read()
            .members()
            .get(member)
            .and_then(|m| m.spec.fencing.clone());
        let key = format!("{}{member}", keys::OBSERVED_MEMBERS);
        let read = self.store.get(&key).await?;
        let rev = read.as_ref().map_or(0, |kv| kv.mod_revision);
        let mut om: ObservedMember = read
            .and_then(|kv| keys::decode(&key, &kv.value))
            .unwrap_or_default();
        let answers = |t: Option<Timestamp>| t.is_some_and(|t| incident.is_some_and(|i| t >= i));
        if answers(om.fenced_at) {
            // Another service's plan fenced it for this incident already.
            return Ok(());
        }
        if om.fencing_failed && answers(om.fence_attempted_at) {
            return Err(Error::Fence {
                member: member.to_string(),
                source: clusvc_agent::fence::Error::Failed(
                    "the fence for this incident already failed".into(),
                ),
            });
        }
        if fencing.is_some() {
            // Whatever its agent still runs when it comes back is stopped.
            self.mark_vacated(member).await?;
        }
        let result = match &fencing {
            None => Err(clusvc_agent::fence::Error::NotConfigured),
            Some(f) => self.fencer.fence(member, f).await,
        };
        let done = now();
        om.fence_attempted_at = Some(done);
        om.fencing_failed = result.is_err();
        if result.is_ok() {
            om.fenced_at = Some(done);
        }
        let compare = if rev == 0 {
            Compare::Missing(key.clone())
        } else {
            Compare::ModRevision(key.clone(), rev)
        };
        let written = self
            .store
            .txn(Txn {
                compare: vec![compare],
                success: vec![Write::Put {
                    key: key.clone(),
                    value: keys::encode(&om),
                    lease: None,
                }],
                failure: vec![],
            })
            .await?;
        if !written.succeeded {
            // Someone else wrote the record meanwhile (an operator's
            // standby): write ours on top of theirs, keeping their fields.
            let mut now_om: ObservedMember = self
                .store
                .get(&key)
                .await?
                .and_then(|kv| keys::decode(&key, &kv.value))
                .unwrap_or_default();
            now_om.fence_attempted_at = om.fence_attempted_at;
            now_om.fencing_failed = om.fencing_failed;
            if om.fenced_at.is_some() {
                now_om.fenced_at = om.fenced_at;
            }
            self.store.put(&key, keys::encode(&now_om)).await?;
        }
        result.map_err(|source| Error::Fence {
            member: member.to_string(),
            source,
        })
    }
}
