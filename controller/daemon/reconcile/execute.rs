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

use super::{Controller, Error, lock, now};

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
        let svc_spec = spec.or(prev.and_then(|p| p.started_with.as_ref()));
        let sref = Self::service_ref(name, sp.id, svc_spec.unwrap_or(&ServiceSpec::default()));
        let mut i = 0;
        while i < sp.steps.len() {
            match &sp.steps[i] {
                Step::AwaitLease { until, .. } => {
                    let wait = until.as_millis().saturating_sub(now().as_millis());
                    if wait > 0 {
                        tokio::time::sleep(Duration::from_millis(wait)).await;
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
                        .agents
                        .get(member)
                        .ok_or_else(|| Error::NoAgent(member.clone()))?;
                    let report = agent.execute(&sref, &sp.steps[i..end]).await?;
                    for s in &report.steps {
                        self.metrics
                            .action(s.verb.as_str(), s.ok, s.elapsed.as_secs_f64());
                    }
                    if let Some(failed) = report.failed {
                        return self
                            .record_failure(name, &during, &sp.steps[i + failed], &report, spec)
                            .await;
                    }
                    i = end;
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
