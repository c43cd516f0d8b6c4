//! Status checks: due on each service's `checkInterval` while it runs on a
//! local member; a failed check marks the service failed for the next
//! reconcile to recover.

use tokio::time::Instant;

use clusvc_core::model::event::Level;
use clusvc_core::model::{Failure, Phase, ResourceStatus, ServiceState};
use clusvc_store::Store;

use super::{Controller, Error, lock, now};
use crate::runtime::Action;

impl<S: Store> Controller<S> {
    /// Next wake-up when nothing is to be done: the next status check.
    pub(super) fn after_steady(&self, name: &str) -> Action {
        let c = self.cache.read();
        let Some(o) = c.observed.services.get(name) else {
            return Action::AwaitChange;
        };
        let local = o.member.as_ref().is_some_and(|m| self.has_agent(m));
        let interval = c
            .services()
            .get(name)
            .map(|s| s.spec.check_interval.get())
            .unwrap_or_default();
        if local && o.state == ServiceState::Running && !interval.is_zero() && !o.frozen {
            let due = lock(&self.next_check)
                .get(name)
                .copied()
                .unwrap_or_else(Instant::now);
            Action::Requeue(due.saturating_duration_since(Instant::now()))
        } else {
            Action::AwaitChange
        }
    }

    /// Runs the service's status check when it runs here and the interval passed.
    pub(super) async fn check_if_due(&self, name: &str) -> Result<(), Error> {
        let target = {
            let c = self.cache.read();
            let (Some(o), Some(s)) = (c.observed.services.get(name), c.services().get(name)) else {
                return Ok(());
            };
            let interval = s.spec.check_interval.get();
            let member = o.member.clone().filter(|m| self.has_agent(m));
            match member {
                Some(m)
                    if o.state == ServiceState::Running
                        && !o.frozen
                        && s.spec.enabled
                        && !interval.is_zero() =>
                {
                    Some((m, o.clone(), interval))
                }
                _ => None,
            }
        };
        let Some((member, mut o, interval)) = target else {
            return Ok(());
        };
        {
            let mut nc = lock(&self.next_check);
            let due = nc
                .entry(name.to_string())
                .or_insert_with(|| crate::runtime::after(interval));
            if *due > Instant::now() {
                return Ok(());
            }
            *due = crate::runtime::after(interval);
        }
        let spec = o.started_with.clone().unwrap_or_default();
        let Some(agent) = self.agent(&member) else {
            return Ok(());
        };
        let report = agent
            .check(&Self::service_ref(name, o.id, &spec), &spec)
            .await;
        for s in &report.steps {
            self.metrics
                .action(s.verb.as_str(), s.ok, s.elapsed.as_secs_f64());
        }
        o.last_check = Some(now());
        if report.failed.is_none() {
            // A passing check changes nothing that must survive a restart:
            // its time is kept in memory only, so a steady cluster writes
            // nothing to the store (10,000 services checked every 10 s
            // would otherwise be 1,000 synced writes a second).
            if let Some(cached) = self.cache.write().observed.services.get_mut(name) {
                cached.last_check = o.last_check;
            }
            return Ok(());
        }
        if let Some(i) = report.failed {
            let step = &report.steps[i];
            o.state = ServiceState::Failed;
            o.resources
                .insert(step.resource.clone(), ResourceStatus::Failed);
            o.failure = Some(Failure {
                phase: Phase::Check,
                resource: step.resource.clone(),
                reason: step.reason.clone().unwrap_or_default(),
                at: o.last_check,
            });
            self.emit(
                name,
                Level::Err,
                format!(
                    "status check of {} failed on {member}: {}",
                    step.resource,
                    step.reason.as_deref().unwrap_or("")
                ),
            );
        }
        self.record(name, Some(&o)).await
    }
}
