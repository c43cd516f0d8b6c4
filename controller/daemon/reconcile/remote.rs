//! The agent of a member on another machine, seen from the controller: each
//! call records a work item in the store and waits for the agent (through
//! whichever server it talks to) to record what it did. The member's lease
//! going away while waiting makes the call fail as unreachable.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clusvc_agent::exec::{RunReport, ServiceRef, StepReport};
use clusvc_agent::remote::{Outcome, Task, WorkDone, WorkItem};
use clusvc_agent::resources::Verb;
use clusvc_agent::{Agent, BoxFuture, Error};
use clusvc_core::model::{ResourceStatus, Service, ServiceSpec};
use clusvc_core::plan::Step;
use clusvc_store::{Store, WatchEvent, keys};

/// A member's remote agent.
pub struct RemoteAgent<S: Store> {
    member: String,
    store: Arc<S>,
    seq: AtomicU64,
    incarnation: String,
    epoch: Arc<AtomicU64>,
    /// The member's lease as a watch of the store sees it (made on first
    /// use), so a wait ends as soon as the lease goes.
    lease: tokio::sync::OnceCell<tokio::sync::watch::Receiver<Option<u64>>>,
}

impl<S: Store> RemoteAgent<S> {
    /// The agent of `member`, reached through `store`.
    pub fn new(member: impl Into<String>, store: Arc<S>) -> Self {
        Self {
            member: member.into(),
            store,
            seq: AtomicU64::new(0),
            incarnation: format!(
                "{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis())
            ),
            epoch: Arc::default(),
            lease: tokio::sync::OnceCell::new(),
        }
    }

    /// The member's lease, kept current by a watch of its key.
    async fn lease_watch(&self) -> Option<tokio::sync::watch::Receiver<Option<u64>>> {
        let key = format!("{}{}", keys::LEASES, self.member);
        self.lease
            .get_or_try_init(|| async {
                let mut w = self.store.watch(&key).await?;
                let now = w
                    .initial
                    .iter()
                    .find(|kv| kv.key == key)
                    .and_then(|kv| kv.lease);
                let (tx, rx) = tokio::sync::watch::channel(now);
                tokio::spawn(async move {
                    while let Some((_, e)) = w.events.recv().await {
                        let lease = match &e {
                            WatchEvent::Put(kv) => kv.lease,
                            WatchEvent::Delete(_) => None,
                        };
                        if tx.send(lease).is_err() {
                            return;
                        }
                    }
                });
                Ok::<_, clusvc_store::Error>(rx)
            })
            .await
            .ok()
            .cloned()
    }

    /// Issues work under the controller's leadership epoch, read when each
    /// item is issued (agents refuse work of an older epoch than the newest
    /// they have seen).
    #[must_use]
    pub fn with_epoch(mut self, epoch: Arc<AtomicU64>) -> Self {
        self.epoch = epoch;
        self
    }

    fn next_id(&self) -> String {
        format!(
            "{}-{}-{}",
            self.epoch.load(Ordering::Relaxed),
            self.incarnation,
            self.seq.fetch_add(1, Ordering::Relaxed)
        )
    }

    async fn run(&self, svc: &ServiceRef, task: Task, limit: Duration) -> Result<Outcome, Error> {
        self.run_as(svc, task, limit, self.next_id()).await
    }

    /// The outcome of item `id` for `svc`, if it is the one issued now:
    /// recorded already, or awaited while the agent runs it.
    async fn adopt_item(
        &self,
        svc: &ServiceRef,
        id: &str,
        limit: Duration,
    ) -> Result<Option<Outcome>, Error> {
        let unreachable = || Error::Unreachable(self.member.clone());
        let work_key = format!("{}{}/{}", keys::WORK, self.member, svc.name);
        let result_key = format!("{}{}/{}", keys::RESULTS, self.member, svc.name);
        let lease_key = format!("{}{}", keys::LEASES, self.member);
        let mut watch = self
            .store
            .watch(&result_key)
            .await
            .map_err(|_| unreachable())?;
        let issued = self
            .store
            .get(&work_key)
            .await
            .map_err(|_| unreachable())?
            .and_then(|kv| serde_json::from_slice::<WorkItem>(&kv.value).ok());
        if issued.is_none_or(|w| w.id != id) {
            return Ok(None);
        }
        let recorded = watch
            .initial
            .iter()
            .filter_map(|kv| serde_json::from_slice::<WorkDone>(&kv.value).ok())
            .find(|d| d.id == id);
        let outcome = match recorded {
            Some(d) => d.outcome,
            None => {
                self.wait(id, &result_key, &lease_key, &mut watch, limit)
                    .await?
            }
        };
        Ok(Some(outcome))
    }

    async fn run_as(
        &self,
        svc: &ServiceRef,
        task: Task,
        limit: Duration,
        id: String,
    ) -> Result<Outcome, Error> {
        let unreachable = || Error::Unreachable(self.member.clone());
        let epoch = self.epoch.load(Ordering::Relaxed);
        let item = WorkItem {
            id: id.clone(),
            epoch,
            service: svc.name.clone(),
            service_id: svc.id,
            timeout_ms: u64::try_from(svc.timeout.as_millis()).unwrap_or(u64::MAX),
            task,
        };
        let result_key = format!("{}{}/{}", keys::RESULTS, self.member, svc.name);
        let lease_key = format!("{}{}", keys::LEASES, self.member);
        // Watch for the result before the work is visible. The store may
        // be briefly unavailable (etcd electing a leader): retried within
        // the item's time, never taken for the agent's silence.
        let deadline = tokio::time::Instant::now() + limit;
        let mut watch = retry(deadline, || self.store.watch(&result_key))
            .await
            .map_err(|_| unreachable())?;
        let work_key = format!("{}{}/{}", keys::WORK, self.member, svc.name);
        let bytes = serde_json::to_vec(&item).expect("work items serialize");
        retry(deadline, || self.store.put(&work_key, bytes.clone()))
            .await
            .map_err(|_| unreachable())?;
        let outcome = self
            .wait(&id, &result_key, &lease_key, &mut watch, limit)
            .await;
        if outcome.is_err() {
            // Given up on: withdraw the item, so an agent that comes back
            // does not run it later.
            let _ = self
                .store
                .txn(clusvc_store::Txn {
                    compare: vec![clusvc_store::Compare::Value(work_key, bytes)],
                    success: vec![clusvc_store::Write::Delete {
                        key: format!("{}{}/{}", keys::WORK, self.member, svc.name),
                    }],
                    failure: vec![],
                })
                .await;
        }
        outcome
    }

    async fn wait(
        &self,
        id: &str,
        result_key: &str,
        lease_key: &str,
        watch: &mut clusvc_store::Watch,
        limit: Duration,
    ) -> Result<Outcome, Error> {
        let unreachable = || Error::Unreachable(self.member.clone());
        // The lease the member holds now: another one later means the agent
        // lost it (fenced) meanwhile, and this item may never be answered.
        let deadline = tokio::time::Instant::now() + limit;
        let lease_now = retry(deadline, || self.store.get(lease_key))
            .await
            .map_err(|_| unreachable())?
            .and_then(|kv| kv.lease);
        let mut lease_changes = self.lease_watch().await;
        loop {
            let tick = tokio::time::sleep(Duration::from_millis(500));
            let lease_changed = async {
                let Some(rx) = lease_changes.as_mut() else {
                    return std::future::pending().await;
                };
                if rx.changed().await.is_err() {
                    return std::future::pending().await;
                }
                *rx.borrow()
            };
            tokio::select! {
                lease = lease_changed => {
                    if lease.is_none() || lease != lease_now {
                        return Err(unreachable());
                    }
                }
                ev = watch.events.recv() => match ev {
                    Some((_, WatchEvent::Put(kv))) if kv.key == result_key => {
                        if let Ok(done) = serde_json::from_slice::<WorkDone>(&kv.value)
                            && done.id == *id
                        {
                            return Ok(done.outcome);
                        }
                    }
                    Some(_) => {}
                    None => {
                        // The watch broke (the store's trouble, not the
                        // agent's): watch again, and look for the result.
                        *watch = retry(deadline, || self.store.watch(result_key))
                            .await
                            .map_err(|_| unreachable())?;
                        let recorded = watch
                            .initial
                            .iter()
                            .filter_map(|kv| serde_json::from_slice::<WorkDone>(&kv.value).ok())
                            .find(|d| d.id == *id);
                        if let Some(done) = recorded {
                            return Ok(done.outcome);
                        }
                    }
                },
                () = tick => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(unreachable());
                    }
                    // A store that does not answer says nothing of the lease.
                    if let Ok(kv) = self.store.get(lease_key).await {
                        let lease = kv.and_then(|kv| kv.lease);
                        if lease.is_none() || lease != lease_now {
                            return Err(unreachable());
                        }
                    }
                }
            }
        }
    }

    async fn spec_of(&self, service: &str) -> Option<ServiceSpec> {
        let kv = self
            .store
            .get(&format!("{}{service}", keys::SERVICES))
            .await
            .ok()
            .flatten()?;
        keys::try_decode::<Service>(&kv.value).ok().map(|s| s.spec)
    }
}

/// Runs a store operation until it succeeds or `deadline` passes (the store
/// may be unavailable for a moment, e.g. while etcd elects a leader).
async fn retry<T, F, Fut>(deadline: tokio::time::Instant, mut op: F) -> clusvc_store::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = clusvc_store::Result<T>>,
{
    let mut pause = Duration::from_millis(50);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e @ clusvc_store::Error::Unavailable(_))
                if tokio::time::Instant::now() + pause < deadline =>
            {
                tracing::debug!("store unavailable ({e}); retrying in {pause:?}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(e),
        }
    }
}

/// A whole run's limit: every step's timeout twice over, plus slack.
fn limit_for(svc: &ServiceRef, steps: usize) -> Duration {
    svc.timeout
        .saturating_mul(2 * u32::try_from(steps.max(1)).unwrap_or(u32::MAX))
        .saturating_add(Duration::from_secs(10))
}

fn unreachable_report(member: &str) -> RunReport {
    RunReport {
        steps: vec![StepReport {
            verb: Verb::Status,
            resource: format!("agent of {member}"),
            ok: false,
            reason: Some(format!("the agent of {member} did not answer")),
            elapsed: Duration::ZERO,
            rollback: false,
            refused: true,
        }],
        failed: Some(0),
    }
}

impl<S: Store> Agent for RemoteAgent<S> {
    fn member(&self) -> &str {
        &self.member
    }

    fn execute<'a>(
        &'a self,
        svc: &'a ServiceRef,
        steps: &'a [Step],
    ) -> BoxFuture<'a, Result<RunReport, Error>> {
        Box::pin(async move {
            let id = self.next_id();
            self.execute_as(svc, steps, &id).await
        })
    }

    fn execute_as<'a>(
        &'a self,
        svc: &'a ServiceRef,
        steps: &'a [Step],
        work: &'a str,
    ) -> BoxFuture<'a, Result<RunReport, Error>> {
        Box::pin(async move {
            let spec = self.spec_of(&svc.name).await;
            let task = Task::Execute {
                steps: steps.to_vec(),
                spec,
            };
            let limit = limit_for(svc, steps.len());
            match self.run_as(svc, task, limit, work.to_string()).await? {
                Outcome::Report { report } => Ok(report),
                Outcome::Probe { .. } => Err(Error::Unreachable(self.member.clone())),
                Outcome::Failed { message } => {
                    tracing::warn!(
                        "agent of {} could not run the steps: {message}",
                        self.member
                    );
                    Err(Error::Unreachable(self.member.clone()))
                }
            }
        })
    }

    fn adopt<'a>(
        &'a self,
        svc: &'a ServiceRef,
        work: &'a str,
    ) -> BoxFuture<'a, Result<Option<RunReport>, Error>> {
        Box::pin(async move {
            // Bounded as the item itself was (its steps are not known here:
            // a generous count).
            let limit = limit_for(svc, 64);
            match self.adopt_item(svc, work, limit).await? {
                Some(Outcome::Report { report }) => Ok(Some(report)),
                Some(Outcome::Failed { message }) => {
                    tracing::info!(
                        "{work} for {} was not run by the agent of {}: {message}",
                        svc.name,
                        self.member
                    );
                    Ok(None)
                }
                Some(Outcome::Probe { .. }) | None => Ok(None),
            }
        })
    }

    fn check<'a>(&'a self, svc: &'a ServiceRef, spec: &'a ServiceSpec) -> BoxFuture<'a, RunReport> {
        Box::pin(async move {
            let task = Task::Check { spec: spec.clone() };
            let n = spec.resources().count();
            match self.run(svc, task, limit_for(svc, n)).await {
                Ok(Outcome::Report { report }) => report,
                _ => unreachable_report(&self.member),
            }
        })
    }

    fn settle(&self) -> BoxFuture<'_, ()> {
        // The agent settles its own crashed actions when it starts.
        Box::pin(async {})
    }

    fn is_remote(&self) -> bool {
        true
    }

    fn forget<'a>(&'a self, service: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let work_key = format!("{}{}/{service}", keys::WORK, self.member);
            let result_key = format!("{}{}/{service}", keys::RESULTS, self.member);
            let Ok(Some(kv)) = self.store.get(&work_key).await else {
                return;
            };
            // Only the item read (none is issued meanwhile: the service's
            // reconcile holds it); the agent keeps its own record of what
            // it ran, so a restarted agent runs none of it again.
            let _ = self
                .store
                .txn(clusvc_store::Txn {
                    compare: vec![clusvc_store::Compare::ModRevision(
                        work_key.clone(),
                        kv.mod_revision,
                    )],
                    success: vec![
                        clusvc_store::Write::Delete { key: work_key },
                        clusvc_store::Write::Delete { key: result_key },
                    ],
                    failure: vec![],
                })
                .await;
        })
    }

    fn probe<'a>(
        &'a self,
        svc: &'a ServiceRef,
        spec: &'a ServiceSpec,
    ) -> BoxFuture<'a, Vec<(String, ResourceStatus)>> {
        Box::pin(async move {
            let task = Task::Probe { spec: spec.clone() };
            let n = spec.resources().count();
            match self.run(svc, task, limit_for(svc, n)).await {
                Ok(Outcome::Probe { statuses }) => statuses,
                _ => spec
                    .resources()
                    .map(|r| (r.label(), ResourceStatus::Unknown))
                    .collect(),
            }
        })
    }
}
