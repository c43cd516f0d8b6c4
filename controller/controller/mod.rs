//! The controller: a level-triggered reconcile loop in the kube-runtime
//! style.
//!
//! A [`Scheduler`] keyed by service collapses duplicate wake-ups (store
//! watch events, status-check timers, action results, operator requests);
//! a runner takes due services, never two runs of one service at once and at
//! most `concurrency` in parallel. [`Controller::reconcile`] reads desired
//! and observed state, runs a due status check, asks the pure planner for
//! the service's plan, executes it through the member's [`Agent`], and
//! records the result; it is not told why it runs. An error becomes a
//! requeue with exponential backoff ([`Controller::error_policy`]).

pub mod cache;
pub mod events;
pub mod keys;
pub mod metrics;
pub mod scheduler;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::agent::Agent;
use crate::exec::{RunReport, ServiceRef};
use crate::model::event::{Event, Level};
use crate::model::{
    Failure, ObservedService, Phase, ResourceStatus, ServiceSpec, ServiceState, Timestamp,
};
use crate::plan::{self, Action as PlanAction, Op, ServicePlan, Step};
use crate::resources::Events;
use crate::resources::process;
use crate::store::{KeyValue, Store, WatchEvent};

pub use cache::{Cache, Touched};
pub use events::EventLog;
pub use metrics::Metrics;
pub use scheduler::Scheduler;

/// Controller errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// No agent runs on a member a step needs.
    #[error("no agent for member {0}")]
    NoAgent(String),
    /// An agent failed.
    #[error(transparent)]
    Agent(#[from] crate::agent::Error),
    /// Fencing failed.
    #[error("fencing {member} failed: {reason}")]
    Fence {
        /// The member.
        member: String,
        /// Why.
        reason: String,
    },
}

/// What to do after a reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Reconcile again after this long.
    Requeue(Duration),
    /// Wait for a change.
    AwaitChange,
}

/// Operator requests on a service (SPEC §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Move it, to a member or the best other one.
    Relocate(Option<String>),
    /// Stop and start it in place.
    Restart,
    /// Stop checking and changing it.
    Freeze,
    /// Undo `Freeze`.
    Unfreeze,
    /// Forget a failure (failed or blocked) and retry.
    Clear,
}

/// Controller settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Services reconciled in parallel.
    pub concurrency: usize,
    /// Longest backoff after errors.
    pub max_backoff: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            concurrency: 4,
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// The controller.
pub struct Controller<S: Store> {
    store: Arc<S>,
    agents: HashMap<String, Arc<dyn Agent>>,
    /// What it knows.
    pub cache: RwLock<Cache>,
    sched: Scheduler,
    /// Event log (shared with the agents' executors).
    pub events: Arc<EventLog>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    settings: Settings,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    running: Mutex<HashSet<String>>,
    dirty: Mutex<HashSet<String>>,
    next_check: Mutex<HashMap<String, Instant>>,
    backoff: Mutex<HashMap<String, Duration>>,
    last_hold: Mutex<HashMap<String, String>>,
}

fn now() -> Timestamp {
    Timestamp::from_system(SystemTime::now())
}

impl<S: Store> Controller<S> {
    /// A controller over `store` driving `agents`.
    pub fn new(
        store: Arc<S>,
        agents: Vec<Arc<dyn Agent>>,
        events: Arc<EventLog>,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            agents: agents
                .into_iter()
                .map(|a| (a.member().to_string(), a))
                .collect(),
            cache: RwLock::new(Cache::default()),
            sched: Scheduler::default(),
            events,
            metrics,
            settings,
            locks: Mutex::new(HashMap::new()),
            running: Mutex::new(HashSet::new()),
            dirty: Mutex::new(HashSet::new()),
            next_check: Mutex::new(HashMap::new()),
            backoff: Mutex::new(HashMap::new()),
            last_hold: Mutex::new(HashMap::new()),
        })
    }

    fn cache_mut(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.cache.write().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_for(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    fn emit(&self, service: &str, level: Level, message: String) {
        let id = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .observed
            .services
            .get(service)
            .map_or(0, |o| o.id);
        self.events.emit(Event {
            at: None,
            service: service.to_string(),
            service_id: id,
            member: String::new(),
            resource: String::new(),
            level,
            message,
        });
    }

    /// Loads the state, re-probes what runs on local members (a resource
    /// still up is not started twice), then runs the watch and the
    /// reconcile loop until the process ends.
    pub async fn start(self: &Arc<Self>) -> Result<(), Error> {
        let mut watch = self.store.watch(keys::ROOT).await?;
        {
            let mut c = self.cache_mut();
            for kv in &watch.initial {
                c.put(kv);
            }
            c.note_revision(watch.revision);
        }
        self.reprobe().await?;
        let this = self.clone();
        tokio::spawn(async move {
            while let Some((rev, e)) = watch.events.recv().await {
                let touched = this.cache_mut().event(rev, &e);
                this.wake(touched);
            }
        });
        self.wake(Touched::All);
        let this = self.clone();
        tokio::spawn(async move { this.run_loop().await });
        Ok(())
    }

    fn wake(&self, touched: Touched) {
        match touched {
            Touched::Service(s) => self.sched.now(&s),
            Touched::All => {
                let names = self
                    .cache
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .service_names();
                for n in names {
                    self.sched.now(&n);
                }
            }
            Touched::Nothing => {}
        }
    }

    /// Asks for a reconcile of a service now.
    pub fn trigger(&self, service: &str) {
        self.sched.now(service);
    }

    async fn run_loop(self: Arc<Self>) {
        let permits = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        loop {
            let key = self.sched.next().await;
            {
                let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
                if running.contains(&key) {
                    self.dirty
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(key);
                    continue;
                }
                running.insert(key.clone());
            }
            let permit = permits.clone().acquire_owned().await.expect("never closed");
            let this = self.clone();
            tokio::spawn(async move {
                let action = match this.reconcile(&key).await {
                    Ok(a) => {
                        this.backoff
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&key);
                        a
                    }
                    Err(e) => this.error_policy(&key, &e),
                };
                drop(permit);
                this.running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
                if this
                    .dirty
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key)
                {
                    this.sched.now(&key);
                }
                if let Action::Requeue(after) = action {
                    this.sched.schedule(&key, Instant::now() + after);
                }
            });
        }
    }

    /// An error becomes a requeue with exponential backoff (1 s, 2 s, ...).
    pub fn error_policy(&self, service: &str, error: &Error) -> Action {
        let mut b = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        let next = b.get(service).map_or(Duration::from_secs(1), |d| {
            (*d * 2).min(self.settings.max_backoff)
        });
        b.insert(service.to_string(), next);
        drop(b);
        self.emit(
            service,
            Level::Err,
            format!("reconcile failed: {error}; retrying in {}s", next.as_secs()),
        );
        Action::Requeue(next)
    }

    /// Writes an observed record (or deletes it) and applies it to the cache at once.
    async fn record(&self, name: &str, o: Option<&ObservedService>) -> Result<(), Error> {
        let key = format!("{}{name}", keys::OBSERVED_SERVICES);
        match o {
            Some(o) => {
                let value = keys::encode(o);
                let rev = self.store.put(&key, value.clone()).await?;
                self.cache_mut().put(&KeyValue {
                    key,
                    value,
                    create_revision: rev,
                    mod_revision: rev,
                    version: 1,
                    lease: None,
                });
            }
            None => {
                let rev = self.store.delete(&key).await?;
                self.cache_mut().delete(&key, rev);
            }
        }
        Ok(())
    }

    fn service_ref(name: &str, id: u64, spec: &ServiceSpec) -> ServiceRef {
        ServiceRef {
            name: name.to_string(),
            id,
            timeout: spec.timeout.get(),
        }
    }

    /// After a restart: what still runs on local members is probed, so the
    /// planner completes or rolls back half-done work instead of redoing it.
    async fn reprobe(&self) -> Result<(), Error> {
        for agent in self.agents.values() {
            agent.settle().await;
        }
        let todo: Vec<(String, ObservedService, ServiceSpec)> = {
            let mut c = self.cache_mut();
            let desired = c.desired();
            c.observed
                .services
                .iter()
                .filter(|(_, o)| {
                    o.member
                        .as_ref()
                        .is_some_and(|m| self.agents.contains_key(m))
                        && !matches!(o.state, ServiceState::Stopped | ServiceState::Disabled)
                })
                .filter_map(|(n, o)| {
                    let spec = o
                        .started_with
                        .clone()
                        .or_else(|| desired.services().get(n).map(|s| s.spec.clone()))?;
                    Some((n.clone(), o.clone(), spec))
                })
                .collect()
        };
        for (name, mut o, spec) in todo {
            let member = o.member.clone().expect("filtered");
            let agent = &self.agents[&member];
            let statuses = agent
                .probe(&Self::service_ref(&name, o.id, &spec), &spec)
                .await;
            let up = statuses
                .iter()
                .filter(|(_, s)| *s == ResourceStatus::Ok)
                .count();
            o.resources = statuses.into_iter().collect();
            o.state = match o.state {
                ServiceState::Running | ServiceState::Starting if up == o.resources.len() => {
                    ServiceState::Running
                }
                ServiceState::Running | ServiceState::Starting => ServiceState::Starting,
                other => other,
            };
            self.emit(
                &name,
                Level::Notice,
                format!(
                    "after restart: {up} of {} resources up on {member}; state {}",
                    o.resources.len(),
                    o.state
                ),
            );
            self.record(&name, Some(&o)).await?;
        }
        Ok(())
    }

    /// One pass for one service: check if due, plan, execute, record.
    pub async fn reconcile(&self, name: &str) -> Result<Action, Error> {
        let lock = self.lock_for(name);
        let _guard = lock.lock().await;
        self.metrics
            .reconciles
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.check_if_due(name).await?;
        let (sp, desired, prev) = {
            let mut c = self.cache_mut();
            let desired = c.desired();
            let sp = plan::plan_one(&desired, &c.observed, now(), name);
            (sp, desired, c.observed.services.get(name).cloned())
        };
        self.metrics
            .plans
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(sp) = sp else {
            self.last_hold
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(name);
            return Ok(self.after_steady(name));
        };
        if !sp.is_change() {
            let fresh = {
                let mut holds = self.last_hold.lock().unwrap_or_else(|p| p.into_inner());
                holds.insert(name.to_string(), sp.reason.clone()) != Some(sp.reason.clone())
            };
            if fresh {
                self.emit(name, Level::Warning, sp.to_string().trim_end().to_string());
            }
            if prev.is_none() {
                let o = plan::simulate::apply_service(&desired, None, &sp, now());
                self.record(name, o.as_ref()).await?;
            }
            return Ok(self.after_steady(name));
        }
        self.execute(name, &sp, &desired, prev.as_ref()).await?;
        Ok(Action::Requeue(Duration::ZERO))
    }

    /// Next wake-up when nothing is to be done: the next status check.
    fn after_steady(&self, name: &str) -> Action {
        let c = self.cache.read().unwrap_or_else(|p| p.into_inner());
        let Some(o) = c.observed.services.get(name) else {
            return Action::AwaitChange;
        };
        let local = o
            .member
            .as_ref()
            .is_some_and(|m| self.agents.contains_key(m));
        let interval = c
            .services()
            .get(name)
            .map(|s| s.spec.check_interval.get())
            .unwrap_or_default();
        if local && o.state == ServiceState::Running && !interval.is_zero() && !o.frozen {
            let due = self
                .next_check
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(name)
                .copied()
                .unwrap_or_else(Instant::now);
            Action::Requeue(due.saturating_duration_since(Instant::now()))
        } else {
            Action::AwaitChange
        }
    }

    /// Runs the service's status check when it runs here and the interval passed.
    async fn check_if_due(&self, name: &str) -> Result<(), Error> {
        let target = {
            let c = self.cache.read().unwrap_or_else(|p| p.into_inner());
            let (Some(o), Some(s)) = (c.observed.services.get(name), c.services().get(name)) else {
                return Ok(());
            };
            let interval = s.spec.check_interval.get();
            let member = o.member.clone().filter(|m| self.agents.contains_key(m));
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
            let mut nc = self.next_check.lock().unwrap_or_else(|p| p.into_inner());
            let due = nc
                .entry(name.to_string())
                .or_insert_with(|| Instant::now() + interval);
            if *due > Instant::now() {
                return Ok(());
            }
            *due = Instant::now() + interval;
        }
        let spec = o.started_with.clone().unwrap_or_default();
        let report = self.agents[&member]
            .check(&Self::service_ref(name, o.id, &spec), &spec)
            .await;
        for s in &report.steps {
            self.metrics.action("status", s.ok, s.elapsed.as_secs_f64());
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

    /// Executes a plan that changes something, recording progress so a
    /// crash leaves a state the next pass can finish from.
    async fn execute(
        &self,
        name: &str,
        sp: &ServicePlan,
        desired: &crate::model::DesiredState,
        prev: Option<&ObservedService>,
    ) -> Result<(), Error> {
        let level = match sp.action {
            PlanAction::Relocate { .. } | PlanAction::Restart { .. } => Level::Warning,
            _ => Level::Notice,
        };
        self.emit(
            name,
            level,
            sp.to_string().lines().next().unwrap_or("").to_string(),
        );
        let spec = desired.services().get(name).map(|s| &s.spec);
        let mut during = prev.cloned().unwrap_or_else(|| ObservedService {
            id: sp.id,
            ..ObservedService::default()
        });
        match &sp.action {
            PlanAction::Start { to } => {
                during.state = ServiceState::Starting;
                during.member = Some(to.clone());
                during.started_with = spec.cloned();
            }
            PlanAction::Stop { from } => {
                during.state = ServiceState::Stopping;
                during.member = Some(from.clone());
            }
            PlanAction::Relocate { from, .. } => {
                during.state = ServiceState::Relocating;
                during.member = Some(from.clone());
            }
            PlanAction::Restart { on } | PlanAction::Reconfigure { on } => {
                during.state = ServiceState::Stopping;
                during.member = Some(on.clone());
            }
            PlanAction::Forget | PlanAction::Hold { .. } => {}
        }
        if !matches!(sp.action, PlanAction::Forget) {
            self.record(name, Some(&during)).await?;
        }
        let svc_spec = spec.or(prev.and_then(|p| p.started_with.as_ref()));
        let sref = Self::service_ref(name, sp.id, svc_spec.unwrap_or(&ServiceSpec::default()));
        let mut i = 0;
        while i < sp.steps.len() {
            let step = &sp.steps[i];
            match step.op {
                Op::AwaitLease { until } => {
                    let wait = until.as_millis().saturating_sub(now().as_millis());
                    if wait > 0 {
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                    }
                    i += 1;
                }
                Op::Fence => {
                    self.fence(&step.member).await?;
                    i += 1;
                }
                Op::Start | Op::Stop => {
                    let member = &step.member;
                    let end = sp.steps[i..]
                        .iter()
                        .position(|s| &s.member != member || !matches!(s.op, Op::Start | Op::Stop))
                        .map_or(sp.steps.len(), |n| i + n);
                    let agent = self
                        .agents
                        .get(member)
                        .ok_or_else(|| Error::NoAgent(member.clone()))?;
                    let report = agent.execute(&sref, &sp.steps[i..end]).await?;
                    for s in &report.steps {
                        self.metrics.action(s.action, s.ok, s.elapsed.as_secs_f64());
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
        let done = plan::simulate::apply_service(desired, prev, sp, now());
        if let PlanAction::Relocate { .. } = sp.action
            && sp.outcome.placement_reason != Some(crate::model::PlacementReason::Manual)
        {
            self.metrics
                .failovers
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.record(name, done.as_ref()).await?;
        if let Some(interval) = spec.map(|s| s.check_interval.get())
            && !interval.is_zero()
        {
            self.next_check
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.to_string(), Instant::now() + interval);
        }
        self.emit(name, Level::Info, format!("now {}", sp.outcome.state));
        Ok(())
    }

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
            let st = match (s.action, s.ok) {
                ("start", true) => ResourceStatus::Ok,
                ("stop", true) => ResourceStatus::Stopped,
                _ => ResourceStatus::Failed,
            };
            o.resources.insert(s.resource.clone(), st);
        }
        let reason = report.reason().unwrap_or("failed").to_string();
        let phase = if step.op == Op::Start {
            Phase::Start
        } else {
            Phase::Stop
        };
        o.member = Some(step.member.clone());
        o.state = if phase == Phase::Stop {
            ServiceState::Blocked
        } else {
            ServiceState::Failed
        };
        if phase == Phase::Start {
            o.started_with = spec.cloned();
        }
        let label = step.resource.clone().unwrap_or_default();
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
                step.member
            ),
        );
        self.record(name, Some(&o)).await
    }

    async fn fence(&self, member: &str) -> Result<(), Error> {
        let fencing = {
            let c = self.cache.read().unwrap_or_else(|p| p.into_inner());
            c.members().get(member).and_then(|m| m.spec.fencing.clone())
        };
        let key = format!("{}{member}", keys::OBSERVED_MEMBERS);
        let mut om: crate::model::ObservedMember = self
            .store
            .get(&key)
            .await?
            .and_then(|kv| keys::decode(&key, &kv.value))
            .unwrap_or_default();
        let result = match fencing {
            None => Err("no fencing configured".to_string()),
            Some(f) => match process::run(
                &process::Command::new(&f.command),
                &process::Namespaces::default(),
                f.timeout.get(),
                Duration::from_secs(5),
            )
            .await
            {
                Ok(out) if out.success() => Ok(()),
                Ok(out) => Err(out.describe()),
                Err(e) => Err(e.to_string()),
            },
        };
        match result {
            Ok(()) => {
                om.fenced_at = Some(now());
                om.fencing_failed = false;
                self.store.put(&key, keys::encode(&om)).await?;
                Ok(())
            }
            Err(reason) => {
                om.fencing_failed = true;
                self.store.put(&key, keys::encode(&om)).await?;
                Err(Error::Fence {
                    member: member.to_string(),
                    reason,
                })
            }
        }
    }

    /// Carries out an operator request on a service.
    pub async fn operate(&self, name: &str, op: Operation) -> Result<(), String> {
        let lock = self.lock_for(name);
        let _guard = lock.lock().await;
        let mut o = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .observed
            .services
            .get(name)
            .cloned()
            .ok_or_else(|| format!("service {name:?} not found"))?;
        match &op {
            Operation::Relocate(to) => {
                if o.member.is_none() {
                    return Err(format!("service {name:?} is not running"));
                }
                o.relocate = Some(crate::model::RelocateRequest { to: to.clone() });
            }
            Operation::Restart => o.restart_requested = true,
            Operation::Freeze => o.frozen = true,
            Operation::Unfreeze => o.frozen = false,
            Operation::Clear => {
                match o.state {
                    ServiceState::Failed if o.member.is_none() => o.state = ServiceState::Stopped,
                    ServiceState::Failed => {}
                    ServiceState::Blocked => o.state = ServiceState::Stopping,
                    _ => {}
                }
                o.failure = None;
                o.restarts.clear();
            }
        }
        self.record(name, Some(&o))
            .await
            .map_err(|e| e.to_string())?;
        self.emit(
            name,
            Level::Notice,
            format!("operator: {op:?}").to_lowercase(),
        );
        self.sched.now(name);
        Ok(())
    }

    /// Agents' members.
    pub fn local_members(&self) -> Vec<String> {
        self.agents.keys().cloned().collect()
    }
}

impl<S: Store> Controller<S> {
    /// Handles a watch event outside the loop (tests).
    pub fn observe(&self, rev: crate::store::Revision, e: &WatchEvent) {
        let t = self.cache_mut().event(rev, e);
        self.wake(t);
    }
}
