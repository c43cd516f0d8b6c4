//! Status checks: due on each service's `checkInterval` while it runs on a
//! local member; a remote member's agent checks its services itself and
//! reports failures. A failed check marks the service failed for the next
//! reconcile to recover.
//!
//! Local checks run apart from the reconcile loop, from their own queue and
//! with their own bound (`--check-concurrency`): a passing check costs no
//! reconcile and no plan (at 100,000 services checked every 60 s that was
//! 1,667 passes a second), and checks never hold the reconcile loop's
//! places while a failover waits for one. Only a failed check wakes the
//! service's reconcile.

use std::sync::Arc;

use futures_util::FutureExt;
use tokio::time::Instant;

use clusvc_core::model::event::Level;
use clusvc_core::model::{Failure, Phase, ResourceStatus, ServiceSpec, ServiceState};
use clusvc_store::{Store, keys};
use std::sync::atomic::Ordering;

use clusvc_agent::remote::StatusReport;
use clusvc_core::model::ObservedService;

use super::{Controller, Error, lock, now};
use crate::runtime::Action;

/// How early a status check may run.
const CHECK_SLACK: std::time::Duration = std::time::Duration::from_millis(20);

/// How long a stopping daemon waits for the status checks under way.
const CHECKS_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

impl<S: Store> Controller<S> {
    /// Next wake-up when nothing is to be done: none (the service's next
    /// status check is queued, when it runs on a local member; a remote
    /// member's agent checks its services itself and reports failures).
    pub(super) fn after_steady(&self, name: &str) -> Action {
        self.queue_check(name);
        Action::AwaitChange
    }

    /// What to check of a service, when it is checked here: it runs,
    /// enabled and not frozen, on a member whose agent runs in this
    /// process, with a check interval. (One rule for queueing and for
    /// running a check: a service queued but not checked would be handed
    /// back again and again.)
    fn check_target(
        &self,
        c: &super::cache::Cache,
        name: &str,
    ) -> Option<(String, u64, Option<ServiceSpec>, std::time::Duration)> {
        let (o, s) = (c.observed.services.get(name)?, c.services().get(name)?);
        let interval = s.spec.check_interval.get();
        let member = o.member.clone().filter(|m| self.checks_here(m))?;
        (o.state == ServiceState::Running && !o.frozen && s.spec.enabled && !interval.is_zero())
            .then(|| (member, o.id, o.started_with.clone(), interval))
    }

    /// Queues the service's next status check when it is checked here.
    pub(super) fn queue_check(&self, name: &str) {
        if self.check_target(&self.cache.read(), name).is_none() {
            return;
        }
        let due = lock(&self.next_check)
            .get(name)
            .copied()
            .unwrap_or_else(Instant::now);
        self.checks.schedule(name, due);
    }

    /// Starts the status checks' thread: a runtime of its own, on one
    /// thread, runs the checks (their processes, their output, their
    /// exits), so they neither wake the API's and reconciles' workers nor
    /// wait on them (the workers handing each check's events to one
    /// another cost 20 context switches a check).
    pub(super) fn start_checks(self: &Arc<Self>) {
        let local = self
            .agents
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .any(|a| !a.is_remote());
        if !local {
            // A cluster server: its members' agents check their services.
            return;
        }
        self.checks_started.store(true, Ordering::SeqCst);
        let main = tokio::runtime::Handle::current();
        let this = self.clone();
        let started = std::thread::Builder::new()
            .name("clusvc-checks".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(this.run_checks()),
                    Err(e) => {
                        tracing::warn!("status checks run with the controller: {e}");
                        main.spawn(this.run_checks());
                    }
                }
            });
        if let Err(e) = started {
            tracing::warn!("status checks run with the controller: {e}");
            tokio::spawn(self.clone().run_checks());
        }
    }

    /// Runs local status checks as they fall due, at most
    /// `check_concurrency` at once, each under its service's lock (never
    /// during an action on it). A failed check wakes the service's
    /// reconcile; a passing one queues the next.
    async fn run_checks(self: Arc<Self>) {
        let permits = Arc::new(tokio::sync::Semaphore::new(
            self.settings.check_concurrency.max(1),
        ));
        loop {
            let name = tokio::select! {
                name = self.checks.next() => name,
                () = self.checks_stop.notified() => break,
            };
            let permit = permits.clone().acquire_owned().await.expect("never closed");
            let this = self.clone();
            tokio::spawn(async move {
                let _permit = permit;
                // A service being acted on is checked after the action
                // (asked again in a second), not waited for here: a check
                // waiting out a long start would hold a place all along.
                let Ok(guard) = this.lock_for(&name).try_lock_owned() else {
                    this.checks
                        .schedule(&name, Instant::now() + std::time::Duration::from_secs(1));
                    return;
                };
                let checked = std::panic::AssertUnwindSafe(async {
                    let _guard = guard;
                    this.check_if_due(&name).await
                })
                .catch_unwind()
                .await;
                match checked {
                    Ok(Ok(false)) => this.queue_check(&name),
                    Ok(Ok(true)) => this.sched.now(&name),
                    Ok(Err(e)) => {
                        tracing::warn!("status check of {name}: {e}");
                        this.sched.now(&name);
                    }
                    Err(_) => {
                        tracing::error!("status check of {name} panicked");
                        this.sched.now(&name);
                    }
                }
            });
        }
        // Stopped (the daemon ends): the checks under way finish first, so
        // none is cut off (and recorded failed) by the shutdown.
        let all = u32::try_from(self.settings.check_concurrency.max(1)).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(CHECKS_DRAIN, permits.acquire_many(all)).await;
        self.checks_done.notify_one();
    }

    /// Stops starting status checks and waits (up to [`CHECKS_DRAIN`])
    /// for those under way.
    pub async fn stop_checks(&self) {
        if !self.checks_started.load(Ordering::SeqCst) {
            return;
        }
        let done = self.checks_done.notified();
        self.checks_stop.notify_one();
        let _ = tokio::time::timeout(CHECKS_DRAIN + CHECKS_DRAIN, done).await;
    }

    /// Runs the service's status check when it runs here and the interval
    /// passed; whether a failure was recorded.
    pub(super) async fn check_if_due(&self, name: &str) -> Result<bool, Error> {
        let target = self.check_target(&self.cache.read(), name);
        let Some((member, id, spec, interval)) = target else {
            return Ok(false);
        };
        let spec = spec.unwrap_or_default();
        {
            let mut nc = lock(&self.next_check);
            let due = nc
                .entry(name.to_string())
                .or_insert_with(|| crate::runtime::after(interval));
            // A timer may fire a little before the time it was set for:
            // a check that early is due (else the service is reconciled
            // again and again until the last microseconds pass).
            if *due > Instant::now() + CHECK_SLACK {
                return Ok(false);
            }
            *due = crate::runtime::after(interval);
        }
        let Some(agent) = self.agent(&member) else {
            return Ok(false);
        };
        let report = agent
            .check(&Self::service_ref(name, id, &spec), &spec)
            .await;
        if report.failed.is_none() {
            self.passed(name, &report);
            return Ok(false);
        }
        // The record as it is now (the same instance: this holds its lock).
        let o = self.cache.read().observed.services.get(name).cloned();
        let Some(o) = o.filter(|o| o.id == id && o.member.as_deref() == Some(member.as_str()))
        else {
            return Ok(false);
        };
        self.checked(name, &member, o, &report).await?;
        Ok(true)
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
    ///
    /// A report older than the service's record is dropped: the record was
    /// rewritten after the agent wrote it (a restart, a start after a fence,
    /// a relocation), so it is about an instance that no longer runs, and a
    /// service ID alone cannot tell the two apart (a fence's report that
    /// reached a server after the service was started again would restart a
    /// healthy service).
    pub(super) async fn take_status(&self, member: &str, kv: &clusvc_store::KeyValue) {
        if let Ok(status) = serde_json::from_slice::<StatusReport>(&kv.value) {
            self.remote_check_failed(member, status, kv.mod_revision)
                .await;
        }
        self.remove_as_read(kv).await;
    }

    /// A status check that failed on a remote member, as its agent reported
    /// it (recorded under `/clusvc/status/MEMBER/SERVICE`): acted on when
    /// it is about the service as it runs now (that member, that ID,
    /// running, not frozen).
    pub(super) async fn remote_check_failed(
        &self,
        member: &str,
        status: StatusReport,
        reported_at: clusvc_store::Revision,
    ) {
        let name = status.service.clone();
        let service_lock = self.lock_for(&name);
        let _guard = service_lock.lock().await;
        let recorded = self
            .cache
            .read()
            .revision_of(&format!("{}{name}", keys::OBSERVED_SERVICES));
        if recorded > reported_at {
            tracing::info!(
                "the failed check of {name} that {member} reported at revision {reported_at} is older than its record (revision {recorded}): dropped"
            );
            return;
        }
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

    /// Notes a passing check. It changes nothing that must survive a
    /// restart: its time is kept in memory only, so a steady cluster writes
    /// nothing to the store (10,000 services checked every 10 s would
    /// otherwise be 1,000 synced writes a second).
    fn passed(&self, name: &str, report: &clusvc_agent::exec::RunReport) {
        for s in &report.steps {
            self.metrics
                .action(s.verb.as_str(), s.ok, s.elapsed.as_secs_f64());
        }
        if let Some(cached) = self.cache.write().observed.services.get_mut(name) {
            cached.last_check = Some(now());
        }
    }

    /// Records what a status check found.
    async fn checked(
        &self,
        name: &str,
        member: &str,
        mut o: ObservedService,
        report: &clusvc_agent::exec::RunReport,
    ) -> Result<(), Error> {
        if report.failed.is_none() {
            self.passed(name, report);
            return Ok(());
        }
        for s in &report.steps {
            self.metrics
                .action(s.verb.as_str(), s.ok, s.elapsed.as_secs_f64());
        }
        o.last_check = Some(now());
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
