//! Status checks: due on each service's `checkInterval` while it runs on a
//! local member; a remote member's agent checks its services itself and
//! reports failures. A failed check marks the service failed for the next
//! reconcile to recover.

use tokio::time::Instant;

use clusvc_core::model::event::Level;
use clusvc_core::model::{Failure, Phase, ResourceStatus, ServiceState};
use clusvc_store::Store;

use clusvc_agent::remote::StatusReport;
use clusvc_core::model::ObservedService;

use super::{Controller, Error, lock, now};
use crate::runtime::Action;

/// How early a status check may run.
const CHECK_SLACK: std::time::Duration = std::time::Duration::from_millis(20);

impl<S: Store> Controller<S> {
    /// Next wake-up when nothing is to be done: the next status check.
    pub(super) fn after_steady(&self, name: &str) -> Action {
        let c = self.cache.read();
        let Some(o) = c.observed.services.get(name) else {
            return Action::AwaitChange;
        };
        // Only checks run here wake the service up; a remote member's agent
        // checks its services itself and reports failures. (A remote
        // service used to be requeued at a due time nothing moved on: after
        // its first interval it was reconciled again and again, without
        // end: 58% of a core at 10,000 services.)
        let local = o.member.as_ref().is_some_and(|m| self.checks_here(m));
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
            let member = o.member.clone().filter(|m| self.checks_here(m));
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
        let Some((member, o, interval)) = target else {
            return Ok(());
        };
        {
            let mut nc = lock(&self.next_check);
            let due = nc
                .entry(name.to_string())
                .or_insert_with(|| crate::runtime::after(interval));
            // A timer may fire a little before the time it was set for:
            // a check that early is due (else the service is reconciled
            // again and again until the last microseconds pass).
            if *due > Instant::now() + CHECK_SLACK {
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
        self.checked(name, &member, o, &report).await
    }

    /// Whether this controller runs the status checks of services on
    /// `member`: on a member whose agent runs in this process. A remote
    /// member's agent checks its services itself and reports only failures
    /// ([`Controller::remote_check_failed`]).
    fn checks_here(&self, member: &str) -> bool {
        self.agents
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(member)
            .is_some_and(|a| !a.is_remote())
    }

    /// A failed check an agent recorded under `/clusvc/status/MEMBER/SERVICE`:
    /// acted on, then removed (only that report: a newer one stays for its
    /// own turn), so it is acted on once and the keys do not pile up.
    pub(super) async fn take_status(&self, member: &str, kv: &clusvc_store::KeyValue) {
        if let Ok(status) = serde_json::from_slice::<StatusReport>(&kv.value) {
            self.remote_check_failed(member, status).await;
        }
        self.remove_as_read(kv).await;
    }

    /// A status check that failed on a remote member, as its agent reported
    /// it (recorded under `/clusvc/status/MEMBER/SERVICE`): acted on when
    /// it is about the service as it runs now (that member, that ID,
    /// running, not frozen).
    pub(super) async fn remote_check_failed(&self, member: &str, status: StatusReport) {
        let name = status.service.clone();
        let service_lock = self.lock_for(&name);
        let _guard = service_lock.lock().await;
        let o = self.cache.read().observed.services.get(&name).cloned();
        let Some(o) = o.filter(|o| {
            o.member.as_deref() == Some(member)
                && o.id == status.service_id
                && o.state == ServiceState::Running
                && !o.frozen
        }) else {
            return;
        };
        if let Err(e) = self.checked(&name, member, o, &status.report).await {
            tracing::warn!("recording the failed check of {name}: {e}");
        }
        self.sched.now(&name);
    }

    /// Records what a status check found.
    async fn checked(
        &self,
        name: &str,
        member: &str,
        mut o: ObservedService,
        report: &clusvc_agent::exec::RunReport,
    ) -> Result<(), Error> {
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

impl<S: Store> Controller<S> {
    /// Notes that `member`'s agent checked `services` and they passed (in
    /// memory only, like a local passing check).
    pub fn note_checked(&self, member: &str, services: &[String]) {
        let at = now();
        let mut c = self.cache.write();
        for name in services {
            if let Some(o) = c.observed.services.get_mut(name)
                && o.member.as_deref() == Some(member)
            {
                o.last_check = Some(at);
            }
        }
    }
}
