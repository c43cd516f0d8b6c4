//! The controller: a level-triggered reconciler in the kube-runtime style.
//!
//! The [`crate::runtime`] decides when a service is reconciled;
//! [`Controller::reconcile`] reads desired and observed state from the
//! [`cache`], runs a due status check (`check.rs`), asks the pure planner for
//! the service's plan, executes it through the member's agent and the
//! [`Fencer`] (`execute.rs`), and records the result; it is not told why it
//! runs. An error becomes a requeue with exponential backoff
//! ([`Reconciler::error_policy`]). Operator requests ([`operate`]) and the
//! re-probe after a restart (`reprobe.rs`) write observed records the next
//! reconcile acts on.

pub mod cache;
mod check;
pub mod events;
mod execute;
pub mod metrics;
pub mod operate;
pub mod remote;
mod reprobe;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use clusvc_agent::Agent;
use clusvc_agent::exec::ServiceRef;
use clusvc_agent::fence::Fencer;
use clusvc_core::model::event::{Event, Level};
use clusvc_core::model::{ObservedService, ServiceSpec, Timestamp};
use clusvc_core::plan;
use clusvc_store::{KeyValue, Store, WatchEvent, keys};

use crate::runtime::{Action, Reconciler, Runner, Scheduler, runner::backoff};

pub use cache::{Cache, Reader, Touched};
pub use events::EventLog;
pub use metrics::Metrics;
pub use operate::{OperateError, Request};
pub use remote::RemoteAgent;

/// Controller errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] clusvc_store::Error),
    /// No agent runs on a member a step needs.
    #[error("no agent for member {0}")]
    NoAgent(String),
    /// An agent failed.
    #[error(transparent)]
    Agent(#[from] clusvc_agent::Error),
    /// Fencing failed.
    #[error("fencing {member} failed: {source}")]
    Fence {
        /// The member.
        member: String,
        /// What the fencer reported.
        source: clusvc_agent::fence::Error,
    },
}

/// A plan being carried out through remote agents (cluster mode),
/// recorded under `/clusvc/inflight/SERVICE` so that a controller that
/// takes over finishes it from where it stopped: the batch it was at is
/// adopted if it ran (its work item is `ID/INDEX`), the rest is carried out,
/// and nothing that succeeded is run again.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InFlight {
    /// Names the plan's work items.
    pub id: String,
    /// The plan.
    pub plan: plan::ServicePlan,
    /// Steps carried out so far (`plan.steps[..done]`).
    pub done: usize,
    /// The observed record before the plan began.
    pub before: Option<ObservedService>,
}

/// Makes the remote agent of a member.
pub type RemoteFactory = Box<dyn Fn(&str) -> Arc<dyn Agent> + Send + Sync>;

/// Controller settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Services reconciled in parallel.
    pub concurrency: usize,
    /// Local status checks run in parallel (apart from reconciles).
    pub check_concurrency: usize,
    /// Longest backoff after errors.
    pub max_backoff: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            concurrency: 4,
            check_concurrency: 32,
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// The controller.
pub struct Controller<S: Store> {
    store: Arc<S>,
    agents: std::sync::RwLock<HashMap<String, Arc<dyn Agent>>>,
    /// Makes the agent of a member that has none yet (cluster servers:
    /// every declared member is reached through its remote agent).
    remote: Option<RemoteFactory>,
    /// Whether this controller acts (it leads); a cluster server's
    /// controller only follows the store until it is elected.
    leading: std::sync::atomic::AtomicBool,
    /// Names this process's plans in flight (`INCARNATION-SEQ`).
    incarnation: String,
    flights: std::sync::atomic::AtomicU64,
    fencer: Arc<dyn Fencer>,
    cache: cache::Shared,
    sched: Arc<Scheduler>,
    /// When each local service's next status check is queued.
    checks: Arc<Scheduler>,
    /// Whether the status checks' loop runs; told to stop; stopped.
    checks_started: std::sync::atomic::AtomicBool,
    checks_stop: tokio::sync::Notify,
    checks_done: tokio::sync::Notify,
    /// Event log (shared with the agents' executors).
    pub events: Arc<EventLog>,
    /// Counters and gauges for `/metrics`.
    pub metrics: Arc<Metrics>,
    settings: Settings,
    /// Serialises reconciles and operator requests of one service.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// When each service's next status check is due.
    next_check: Mutex<HashMap<String, Instant>>,
    /// The last reason a service was held for, so it is reported once.
    last_hold: Mutex<HashMap<String, String>>,
    /// One fence at a time per member (single-flight).
    fence_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Operator requests being carried out (key and revision): each once,
    /// though the watch and a new leader's listing may both hand it on.
    taking: Mutex<std::collections::HashSet<(String, u64)>>,
}

fn now() -> Timestamp {
    Timestamp::from_system(SystemTime::now())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<S: Store> Controller<S> {
    /// A controller over `store` driving `agents`, fencing through `fencer`.
    pub fn new(
        store: Arc<S>,
        agents: Vec<Arc<dyn Agent>>,
        fencer: Arc<dyn Fencer>,
        events: Arc<EventLog>,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            agents: std::sync::RwLock::new(
                agents
                    .into_iter()
                    .map(|a| (a.member().to_string(), a))
                    .collect(),
            ),
            remote: None,
            leading: std::sync::atomic::AtomicBool::new(false),
            incarnation: format!(
                "{}-{}",
                std::process::id(),
                SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis())
            ),
            flights: std::sync::atomic::AtomicU64::new(0),
            fencer,
            cache: cache::Shared::default(),
            sched: Arc::new(Scheduler::default()),
            checks: Arc::new(Scheduler::default()),
            checks_started: std::sync::atomic::AtomicBool::new(false),
            checks_stop: tokio::sync::Notify::new(),
            checks_done: tokio::sync::Notify::new(),
            events,
            metrics,
            settings,
            locks: Mutex::new(HashMap::new()),
            next_check: Mutex::new(HashMap::new()),
            last_hold: Mutex::new(HashMap::new()),
            fence_locks: Mutex::new(HashMap::new()),
            taking: Mutex::new(std::collections::HashSet::new()),
        })
    }

    /// A controller for a cluster server: members are reached through
    /// agents `remote` makes, and operator requests go through the store
    /// to whichever server leads.
    pub fn for_cluster(
        store: Arc<S>,
        remote: RemoteFactory,
        fencer: Arc<dyn Fencer>,
        events: Arc<EventLog>,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> Arc<Self> {
        let mut c = Arc::into_inner(Self::new(
            store,
            Vec::new(),
            fencer,
            events,
            metrics,
            settings,
        ))
        .expect("just made");
        c.remote = Some(remote);
        Arc::new(c)
    }

    /// The agent of `member`: a local one, or (cluster servers) its remote
    /// agent, made on first use.
    pub(crate) fn agent(&self, member: &str) -> Option<Arc<dyn Agent>> {
        if let Some(a) = self
            .agents
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(member)
        {
            return Some(a.clone());
        }
        let make = self.remote.as_ref()?;
        let a = make(member);
        Some(
            self.agents
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .entry(member.to_string())
                .or_insert(a)
                .clone(),
        )
    }

    /// A read-only handle on what the controller knows.
    pub fn reader(&self) -> Reader {
        self.cache.reader()
    }

    fn lock_for(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.locks)
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    fn emit(&self, service: &str, level: Level, message: String) {
        let id = self
            .cache
            .read()
            .observed
            .services
            .get(service)
            .map_or(0, |o| o.id);
        self.emit_with_id(service, id, level, message);
    }

    /// Emits an event of a service whose ID is known to the caller (a
    /// service being forgotten is no longer in the cache).
    fn emit_with_id(&self, service: &str, id: u64, level: Level, message: String) {
        self.emit_event(service, id, level, message, None);
    }

    /// Emits an event that starts a plan's work, with its reason and the
    /// revision it was decided at, so history says why a service moved.
    fn emit_event(
        &self,
        service: &str,
        id: u64,
        level: Level,
        message: String,
        decided: Option<(&str, u64)>,
    ) {
        clusvc_agent::events::Events::emit(
            self.events.as_ref(),
            Event {
                at: None,
                service: service.to_string(),
                service_id: id,
                member: String::new(),
                resource: String::new(),
                level,
                message,
                reason: decided.map(|(r, _)| r.to_string()),
                revision: decided.map(|(_, rev)| rev),
            },
        );
    }

    /// Loads the state, re-probes what runs on local members (a resource
    /// still up is not started twice), then runs the watch and the
    /// reconcile loop until the process ends.
    pub async fn start(self: &Arc<Self>) -> Result<(), Error> {
        self.follow().await?;
        self.lead().await
    }

    /// Loads the cache and keeps it current from the store, without acting
    /// (a cluster server that does not lead serves reads from it).
    pub async fn follow(self: &Arc<Self>) -> Result<(), Error> {
        let mut watch = self.load().await?;
        let this = self.clone();
        tokio::spawn(async move {
            while let Some((rev, e)) = watch.events.recv().await {
                if let (WatchEvent::Put(kv), Some(rest)) = (&e, e.key().strip_prefix(keys::STATUS))
                    && this.leading.load(Ordering::SeqCst)
                {
                    if let Some((member, _)) = rest.split_once('/') {
                        let (this, member, kv) = (this.clone(), member.to_string(), kv.clone());
                        tokio::spawn(async move { this.take_status(&member, &kv).await });
                    }
                    continue;
                }
                if let (WatchEvent::Put(kv), Some(name)) =
                    (&e, e.key().strip_prefix(keys::REQUESTS))
                    && this.leading.load(Ordering::SeqCst)
                {
                    let (this, name, kv) = (this.clone(), name.to_string(), kv.clone());
                    tokio::spawn(async move { this.take_request(&name, &kv).await });
                    continue;
                }
                let touched = this.cache.write().event(rev, &e);
                this.wake(touched);
            }
            tracing::error!("the store's watch ended: the controller's view is no longer current");
        });
        Ok(())
    }

    /// Starts acting: re-probes what runs on local members, carries out
    /// operator requests recorded meanwhile, and runs the reconcile loop
    /// until the process ends.
    pub async fn lead(self: &Arc<Self>) -> Result<(), Error> {
        self.cache.write().lead_from(now());
        self.reprobe().await?;
        self.resume_flights().await?;
        self.leading.store(true, Ordering::SeqCst);
        let (pending, _) = self.store.list(keys::REQUESTS).await?;
        for kv in pending {
            if let Some(name) = kv.key.strip_prefix(keys::REQUESTS) {
                let (this, name) = (self.clone(), name.to_string());
                tokio::spawn(async move { this.take_request(&name, &kv).await });
            }
        }
        // Failed checks agents reported while no controller led (a fence
        // during a store outage, a check failing during a takeover): acted
        // on now, not lost.
        let (reported, _) = self.store.list(keys::STATUS).await?;
        for kv in reported {
            if let Some((member, _)) = kv
                .key
                .strip_prefix(keys::STATUS)
                .and_then(|rest| rest.split_once('/'))
            {
                let (this, member) = (self.clone(), member.to_string());
                tokio::spawn(async move { this.take_status(&member, &kv).await });
            }
        }
        self.wake(Touched::All);
        let runner = Runner::new(self.sched.clone(), self.settings.concurrency);
        tokio::spawn(runner.run(self.clone()));
        self.start_checks();
        Ok(())
    }

    /// Finishes the plans a predecessor was carrying out through remote
    /// agents (each in its own task, holding its service's lock, so the
    /// reconcile loop plans it only afterwards).
    async fn resume_flights(self: &Arc<Self>) -> Result<(), Error> {
        let (flights, _) = self.store.list(keys::IN_FLIGHT).await?;
        for kv in flights {
            let Some(name) = kv.key.strip_prefix(keys::IN_FLIGHT).map(str::to_string) else {
                continue;
            };
            let Some(flight) = keys::decode::<InFlight>(&kv.key, &kv.value) else {
                continue;
            };
            let guard = self.lock_for(&name).lock_owned().await;
            let this = self.clone();
            tokio::spawn(async move {
                let _guard = guard;
                let (service, during) = {
                    let c = this.cache.read();
                    (
                        c.services().get(&name).cloned(),
                        c.observed.services.get(&name).cloned(),
                    )
                };
                let Some(during) = during else { return };
                let plan = flight.plan.clone();
                let before = flight.before.clone();
                this.emit_with_id(
                    &name,
                    plan.id,
                    Level::Notice,
                    format!(
                        "resuming the previous controller's plan ({}) after its first {} of {} steps",
                        plan.reason,
                        flight.done,
                        plan.steps.len()
                    ),
                );
                if let Err(e) = this
                    .carry_out(
                        &name,
                        &plan,
                        service.as_ref(),
                        before.as_ref(),
                        during,
                        execute::Flight::Resumed(flight),
                    )
                    .await
                {
                    this.emit(
                        &name,
                        Level::Warning,
                        format!("the previous controller's plan could not be finished: {e}; planning again"),
                    );
                }
            });
        }
        Ok(())
    }

    /// Carries out an operator request another server recorded (cluster
    /// mode), once: it is deleted (guarded) before it is carried out.
    async fn take_request(&self, name: &str, kv: &KeyValue) {
        let Ok(request) = serde_json::from_slice::<Request>(&kv.value) else {
            tracing::warn!("ignoring an unreadable operator request for {name}");
            let _ = self.store.delete(&kv.key).await;
            return;
        };
        let id = (kv.key.clone(), kv.mod_revision);
        if !lock(&self.taking).insert(id.clone()) {
            return;
        }
        // Carried out first, removed after: the server that recorded the
        // request answers its client once the removal reaches it, when what
        // the request changed has reached it too (a `restart --wait`
        // through another server saw the service before its restart).
        // A leader that dies in between leaves it to the next, which
        // carries it out again: every request is idempotent or, for a
        // restart, at worst done twice.
        if let Err(e) = self.operate(name, request.clone()).await {
            self.emit(
                name,
                Level::Warning,
                format!("operator request ({request}) not carried out: {e}"),
            );
        }
        self.remove_as_read(kv).await;
        lock(&self.taking).remove(&id);
    }

    /// Removes a key handed on through the store (an operator request, a
    /// failed check's report) once acted on: only the value read, so a
    /// newer one written meanwhile stays for its own turn. Best effort.
    async fn remove_as_read(&self, kv: &KeyValue) {
        let _ = self
            .store
            .txn(clusvc_store::Txn {
                compare: vec![clusvc_store::Compare::ModRevision(
                    kv.key.clone(),
                    kv.mod_revision,
                )],
                success: vec![clusvc_store::Write::Delete {
                    key: kv.key.clone(),
                }],
                failure: vec![],
            })
            .await;
    }

    /// Loads the cache from a snapshot of the store; returns the watch
    /// that continues from it. (Benchmarks call this and then
    /// [`Controller::reconcile_service`] directly.)
    pub async fn load(&self) -> Result<clusvc_store::Watch, Error> {
        let watch = self.store.watch(keys::ROOT).await?;
        let mut c = self.cache.write();
        for kv in &watch.initial {
            c.put(kv);
        }
        c.note_revision(watch.revision);
        Ok(watch)
    }

    fn wake(&self, touched: Touched) {
        match touched {
            Touched::Service(s) => self.sched.now(&s),
            Touched::All => {
                let names = self.cache.read().service_names();
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

    /// Writes an observed record (or deletes it) and applies it to the cache at once.
    async fn record(&self, name: &str, o: Option<&ObservedService>) -> Result<(), Error> {
        let key = format!("{}{name}", keys::OBSERVED_SERVICES);
        match o {
            Some(o) => {
                let value = keys::encode(o);
                let rev = self.store.put(&key, value.clone()).await?;
                self.cache.write().put(&KeyValue {
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
                self.cache.write().delete(&key, rev);
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

    /// One pass for one service: plan, execute, record (status checks run
    /// apart: see `check`).
    pub async fn reconcile_service(&self, name: &str) -> Result<Action, Error> {
        let service_lock = self.lock_for(name);
        let _guard = service_lock.lock().await;
        self.metrics.reconciles.fetch_add(1, Ordering::Relaxed);
        let invalid = self.cache.read().invalid().get(name).cloned();
        if let Some(why) = invalid {
            let fresh =
                lock(&self.last_hold).insert(name.to_string(), why.clone()) != Some(why.clone());
            if fresh {
                self.emit(
                    name,
                    Level::Err,
                    format!("held: its stored object is invalid ({why}); nothing is done to it until it is fixed (apply a valid object)"),
                );
            }
            return Ok(Action::AwaitChange);
        }
        let (sp, service, prev) = {
            let c = self.cache.read();
            let sp = plan::plan_one_indexed(c.desired(), &c.observed, c.index(), now(), name);
            (
                sp,
                c.services().get(name).cloned(),
                c.observed.services.get(name).cloned(),
            )
        };
        self.metrics.plans.fetch_add(1, Ordering::Relaxed);
        let Some(sp) = sp else {
            lock(&self.last_hold).remove(name);
            return Ok(self.after_steady(name));
        };
        if !sp.is_change() {
            if let Some(req) = prev.as_ref().and_then(|p| p.relocate.as_ref())
                && sp.retry_at.is_none()
            {
                // An accepted relocation that can no longer be carried out
                // expires: it must not linger as a lasting constraint.
                let mut o = prev.clone().expect("checked above");
                o.relocate = None;
                self.record(name, Some(&o)).await?;
                let to = req
                    .to
                    .as_deref()
                    .map(|t| format!(" to {t}"))
                    .unwrap_or_default();
                self.emit_with_id(
                    name,
                    sp.id,
                    Level::Warning,
                    format!("relocation request{to} expired: {}", sp.reason),
                );
                return Ok(self.after_steady(name));
            }
            let fresh = lock(&self.last_hold).insert(name.to_string(), sp.reason.clone())
                != Some(sp.reason.clone());
            if fresh {
                self.emit(name, Level::Warning, sp.to_string().trim_end().to_string());
            }
            if prev.is_none() {
                let o = plan::simulate::apply_service(service.as_ref(), None, &sp, now());
                self.record(name, o.as_ref()).await?;
            }
            if let Some(at) = sp.retry_at {
                // A recovery backoff: plan again when it ends.
                let wait = at.as_millis().saturating_sub(now().as_millis());
                return Ok(Action::Requeue(Duration::from_millis(wait)));
            }
            return Ok(self.after_steady(name));
        }
        // A dead member's lease (or the time its agent is given to come
        // back) is waited for before anything is recorded: the service is
        // shown as it was, and planned again then (or at once, should the
        // member come back).
        let waits = sp
            .steps
            .iter()
            .filter_map(|s| match s {
                plan::Step::AwaitLease { until, .. } => Some(until.as_millis()),
                _ => None,
            })
            .max()
            .map_or(0, |until| until.saturating_sub(now().as_millis()));
        if waits > 0 {
            let fresh = lock(&self.last_hold).insert(name.to_string(), sp.reason.clone())
                != Some(sp.reason.clone());
            if fresh {
                self.emit(name, Level::Notice, sp.to_string().trim_end().to_string());
            }
            return Ok(Action::Requeue(Duration::from_millis(waits)));
        }
        lock(&self.last_hold).remove(name);
        self.execute(name, &sp, service.as_ref(), prev.as_ref())
            .await?;
        Ok(Action::Requeue(Duration::ZERO))
    }

    /// Agents' members.
    pub fn local_members(&self) -> Vec<String> {
        self.agents
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }
}

impl<S: Store> Reconciler for Controller<S> {
    type Error = Error;

    async fn reconcile(self: Arc<Self>, key: String) -> Result<Action, Error> {
        self.reconcile_service(&key).await
    }

    /// An error becomes a requeue with exponential backoff (1 s, 2 s, ...,
    /// capped at `max_backoff`).
    fn error_policy(&self, service: &str, error: &Error, failures: u32) -> Action {
        let next = backoff(failures, self.settings.max_backoff);
        self.emit(
            service,
            Level::Err,
            format!("reconcile failed: {error}; retrying in {}s", next.as_secs()),
        );
        Action::Requeue(next)
    }
}
