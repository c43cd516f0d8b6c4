//! `clusvc agent --member NAME --server URL[,URL...] --token-file F`: a
//! member's agent. It holds the member's lease through the servers (never
//! the store), failing over between them, and fences itself when no
//! renewal it sent was acknowledged for `--lease-ttl` minus a margin (see
//! `docs/cluster.md`).
//!
//! While it holds the lease it runs the work the controller records for
//! its member (steps, status checks, probes) with the execution engine and
//! reports each item by ID, never running one ID twice. When it fences
//! itself it stops every service it started, in stop order, at once, and
//! stays passive until it holds a lease again.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use clusvc_agent::events::Events;
use clusvc_agent::exec::{Executor, ServiceRef, StepReport};
use clusvc_agent::remote::{Outcome, Task, WorkDone, WorkItem, WorkList};
use clusvc_agent::resources::{Host, Verb};
use clusvc_core::api::agent::{HeartbeatRequest, HeartbeatResponse};
use clusvc_core::model::{ResourceStatus, ServiceSpec};
use clusvc_core::plan::{Op, Step};

use crate::app::{CliError, EXIT_UNREACHABLE};
use crate::client::{Client, Conn};

/// Arguments of `agent`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The member this agent runs on.
    #[arg(long, value_name = "NAME")]
    member: String,
    /// The servers, tried in order (`https://10.0.0.5:7450,https://10.0.0.6:7450`).
    #[arg(long, value_name = "URL", value_delimiter = ',', required = true)]
    server: Vec<String>,
    /// The member's agent token (the server's `--agent-tokens DIR/NAME.token`).
    #[arg(long, value_name = "FILE", env = "CLUSVC_TOKEN_FILE")]
    token_file: PathBuf,
    /// CA certificate(s) (PEM) to trust for https:// servers.
    #[arg(long, value_name = "FILE", env = "CLUSVC_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// The member's lease time to live.
    #[arg(long, default_value = "5s")]
    lease_ttl: clusvc_core::model::Duration,
    /// Where the agent keeps its state (the seed scripts' `$DB`, actions in
    /// flight) [default: STATE-DIR/agent-MEMBER].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Keep the services when every member has lost the servers (each
    /// other member's agent confirms it, asked directly), instead of
    /// stopping them; see docs/cluster.md.
    #[arg(long, requires_all = ["peer_listen", "peer_token_file"])]
    failsafe: bool,
    /// Where this agent answers its peers (failsafe), e.g. 10.0.0.11:7451.
    #[arg(long, value_name = "ADDR:PORT")]
    peer_listen: Option<std::net::SocketAddr>,
    /// Every other member's agent, NAME=HOST:PORT, comma-separated.
    #[arg(long, value_name = "NAME=ADDR:PORT", value_delimiter = ',', value_parser = super::failsafe::parse_peer)]
    peers: Vec<(String, std::net::SocketAddr)>,
    /// A token the members' agents share, for failsafe questions.
    #[arg(long, value_name = "FILE")]
    peer_token_file: Option<PathBuf>,
    /// Fault injection (tests): this agent's clock runs at RATE times real
    /// time, within the bound the timing argument allows (0.9 to 1.1), so
    /// every interval it measures (renewals, its fence deadline, its stop
    /// budget) lasts 1/RATE of it in real time.
    #[arg(long, hide = true, default_value_t = 1.0, value_name = "RATE")]
    fault_clock_rate: f64,
}

/// Clock-rate error the timing argument allows (docs/cluster.md): an
/// agent's measure of its intervals may be off by this fraction.
const MAX_CLOCK_RATE_ERROR: f64 = 0.1;

/// Services this agent started and has not stopped: what it stops when it
/// fences itself.
type Running = Arc<Mutex<BTreeMap<String, (ServiceRef, ServiceSpec)>>>;

/// Saves what runs here (synced), so a restarted agent still stops it
/// when it fences itself.
fn save_running(path: &std::path::Path, running: &BTreeMap<String, (ServiceRef, ServiceSpec)>) {
    let list: Vec<(String, u64, u64, &ServiceSpec)> = running
        .values()
        .map(|(svc, spec)| {
            (
                svc.name.clone(),
                svc.id,
                u64::try_from(svc.timeout.as_millis()).unwrap_or(u64::MAX),
                spec,
            )
        })
        .collect();
    write_synced(path, &serde_json::to_vec(&list).expect("specs serialize"));
}

fn load_running(path: &std::path::Path) -> BTreeMap<String, (ServiceRef, ServiceSpec)> {
    let Ok(text) = std::fs::read(path) else {
        return BTreeMap::new();
    };
    serde_json::from_slice::<Vec<(String, u64, u64, ServiceSpec)>>(&text)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, id, ms, spec)| {
            let svc = ServiceRef {
                name: name.clone(),
                id,
                timeout: Duration::from_millis(ms),
            };
            (name, (svc, spec))
        })
        .collect()
}

/// Logs the executor's events.
struct LogEvents;

impl Events for LogEvents {
    fn emit(&self, e: clusvc_core::model::event::Event) {
        if e.resource.is_empty() {
            tracing::info!("{}: {}", e.service, e.message);
        } else {
            tracing::info!("{}: {}: {}", e.service, e.resource, e.message);
        }
    }
}

/// What the watchdog thread needs: when the last acknowledged renewal was
/// sent, and whether the agent is active (holds a lease it trusts).
#[derive(Debug, Default)]
struct Lease {
    acked_sent: Option<Instant>,
    active: bool,
    /// Failsafe: every peer confirmed it lost the servers too; the
    /// services are kept until then (when peers are asked again).
    failsafe_until: Option<Instant>,
    /// The members the servers last named.
    members: Vec<String>,
}

/// Runs the agent until killed.
pub fn run(args: Args) -> Result<u8, CliError> {
    let ttl = args.lease_ttl.get();
    if !(Duration::from_millis(clusvc_core::api::agent::MIN_LEASE_TTL_MS)
        ..=Duration::from_millis(clusvc_core::api::agent::MAX_LEASE_TTL_MS))
        .contains(&ttl)
    {
        return Err(CliError::bad_input(format!(
            "error: --lease-ttl {} is outside 1s..=60s",
            args.lease_ttl
        )));
    }
    // The agent gives up this much before the lease could expire.
    // (The timing argument is in docs/cluster.md: the agent gives up half
    // its lease early, and its stop is bounded by a quarter of it, so it
    // has stopped before the lease can expire and the controller acts.)
    let margin = ttl / 2;
    let rate = args.fault_clock_rate;
    if !(rate.is_finite() && (rate - 1.0).abs() <= MAX_CLOCK_RATE_ERROR) {
        return Err(CliError::bad_input(format!(
            "error: --fault-clock-rate {rate} is outside 0.9..=1.1"
        )));
    }
    // What this agent's clock measures as `d` lasts `d / rate` really.
    let own = |d: Duration| d.div_f64(rate);
    if rate != 1.0 {
        tracing::warn!("fault injection: this agent's clock runs at {rate} times real time");
    }
    let limit = own(ttl - margin);
    let every = own((ttl / 5).max(Duration::from_millis(100)));
    let conn = Conn {
        server: None,
        token_file: Some(args.token_file.clone()),
        ca_file: args.ca_file.clone(),
    };
    let clients: Vec<Client> = args
        .server
        .iter()
        .map(|s| Client::with_timeout(s, &conn, Some(every)))
        .collect::<Result<_, _>>()?;
    let incarnation = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let rt = runtime(2)?;
    let exec = Arc::new(executor(&args)?);
    let running_file = exec.host().state_dir.join("running.json");
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&exec.host().state_dir)
        .map_err(|e| CliError::bad_input(format!("error: cannot create the agent state: {e}")))?;
    // One agent per state directory.
    let Some(_lock) = try_lock(&exec.host().state_dir.join("agent.lock"))? else {
        return Err(CliError::bad_input(format!(
            "error: another agent runs with the state in {}",
            exec.host().state_dir.display()
        )));
    };
    let agent_id = agent_id(&exec.host().state_dir)?;
    let running: Running = Arc::new(Mutex::new(load_running(&running_file)));
    let deadline_file = exec.host().state_dir.join("deadline");
    record_cgroups(exec.as_ref());
    let scripts = Arc::new(Scripts::default());
    {
        let (scripts, ocf_root) = (scripts.clone(), exec.host().ocf_root.clone());
        std::thread::spawn(move || scripts.run(&ocf_root));
    }
    spawn_watchdog(&args, &exec.host().state_dir);
    let state = Arc::new((Mutex::new(Lease::default()), Condvar::new()));
    let serving = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let checks = Arc::new(Checks::default());
    let fence = || Fence {
        rt: rt.handle().clone(),
        exec: exec.clone(),
        running: running.clone(),
        file: running_file.clone(),
        budget: own(stop_budget(ttl)),
    };
    // Stops what ran under a lease that is gone when a fresh one is given.
    let fresh_fence = fence();
    let failsafe = match (&args.failsafe, &args.peer_listen, &args.peer_token_file) {
        (true, Some(listen), Some(token)) => {
            let token = std::fs::read_to_string(token)
                .map_err(|e| CliError::bad_input(format!("error: {}: {e}", token.display())))?
                .trim()
                .to_string();
            if token.is_empty() {
                return Err(CliError::bad_input("error: --peer-token-file is empty"));
            }
            // Longer than a peer's next question plus its bounded stop.
            let f = super::failsafe::Failsafe::new(&args.member, args.peers.clone(), token, ttl);
            let lost = {
                let state = state.clone();
                // Lost: no renewal acknowledged for a renewal period.
                Arc::new(move || {
                    let l = state.0.lock().unwrap_or_else(|p| p.into_inner());
                    l.acked_sent.is_none_or(|s| s.elapsed() >= every)
                }) as Arc<dyn Fn() -> bool + Send + Sync>
            };
            f.serve(*listen, lost)
                .map_err(|e| CliError::bad_input(format!("error: --peer-listen {listen}: {e}")))?;
            Some(f)
        }
        _ => None,
    };
    {
        let state = state.clone();
        let member = args.member.clone();
        let fence = fence();
        let failsafe = failsafe.clone().map(|f| FailsafePoll {
            peers: f,
            every,
            deadline_file: deadline_file.clone(),
        });
        std::thread::spawn(move || watchdog(&state, &member, limit, &fence, failsafe.as_ref()));
    }
    {
        let work_clients: Vec<Client> = args
            .server
            .iter()
            .map(|s| Client::with_timeout(s, &conn, Some(ttl + every)))
            .collect::<Result<_, _>>()?;
        let done_dir = exec.host().state_dir.join("done");
        std::fs::create_dir_all(&done_dir).map_err(|e| {
            CliError::bad_input(format!("error: cannot create {}: {e}", done_dir.display()))
        })?;
        let fence = fence();
        {
            let checks = checks.clone();
            let (rt, exec, running, state) = (
                rt.handle().clone(),
                exec.clone(),
                running.clone(),
                state.clone(),
            );
            let clients: Vec<Client> = args
                .server
                .iter()
                .map(|s| Client::with_timeout(s, &conn, Some(every)))
                .collect::<Result<_, _>>()?;
            let (member, serving) = (args.member.clone(), serving.clone());
            std::thread::spawn(move || {
                checks.run(&member, &rt, &exec, &running, &state, &clients, &serving)
            });
        }
        let worker = Worker {
            checks: checks.clone(),
            failsafe: failsafe.clone(),
            poll: ttl,
            serving: serving.clone(),
            fence,
            epochs: EpochGate::open(exec.host().state_dir.join("epoch")),
            member: args.member.clone(),
            done_dir,
            running_file,
            servers: args.server.clone(),
            clients: work_clients,
            rt: rt.handle().clone(),
            exec,
            running,
            state: state.clone(),
        };
        std::thread::spawn(move || worker.run());
    }
    tracing::info!(
        "agent of {} (incarnation {incarnation}): lease {ttl:?} through {}",
        args.member,
        args.server.join(", ")
    );
    let mut current = 0;
    // The lease this agent holds, as the servers last said.
    let mut held: Option<u64> = None;
    loop {
        let sent = Instant::now();
        let sent_mono = monotonic_ms();
        let (wanted_hash, inventory) = scripts.to_send();
        let req = HeartbeatRequest {
            member: args.member.clone(),
            agent_id: agent_id.clone(),
            incarnation: incarnation.clone(),
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            wanted_hash,
            inventory,
            checked: std::mem::take(&mut *checks.passed.lock().unwrap_or_else(|p| p.into_inner())),
        };
        let answer = clients[current].post::<_, HeartbeatResponse>("/v1/agent/heartbeat", &req);
        scripts.answered(req.inventory, answer.as_ref().ok());
        match answer {
            Ok(resp) => {
                // A fresh lease: the member had none (its lease expired, or
                // was replaced), so a controller may have taken it for dead
                // and moved its services. The server says whether one did
                // (decided atomically with the grant): if so, nothing it
                // ran under the old lease may go on: stop it first
                // (reported as failed once active, so the controller
                // recovers it); if not (the servers were away, and this
                // agent kept its services in failsafe mode), keep them.
                // Another lease than the one held, not said to be fresh
                // (the answer that was lost), counts as a fresh one
                // whose verdict is unknown: stop.
                let new_lease = resp.fresh || held.is_some_and(|h| h != resp.lease);
                let keep = resp.fresh && resp.keep;
                held = Some(resp.lease);
                let kept = fresh_fence
                    .running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .len();
                if new_lease && kept > 0 {
                    if keep {
                        tracing::info!(
                            "{}: a fresh lease, and no controller moved anything of {} meanwhile: keeping its {kept} services",
                            args.member,
                            args.member
                        );
                    } else {
                        tracing::warn!(
                            "{}: a fresh lease; stopping what ran under the old one before acting again",
                            args.member
                        );
                        fresh_fence.stop_all(&args.member);
                    }
                }
                let (lock, wake) = &*state;
                let mut l = lock.lock().unwrap_or_else(|p| p.into_inner());
                let was_active = l.active;
                // The watchdog process fences at the same deadline.
                publish_deadline(
                    &deadline_file,
                    sent_mono + u64::try_from(limit.as_millis()).unwrap_or(0),
                );
                l.acked_sent = Some(sent);
                l.failsafe_until = None;
                l.members = resp.members.clone();
                l.active = true;
                wake.notify_all();
                drop(l);
                if !was_active || new_lease {
                    tracing::info!(
                        "holding lease {} for {} through {}",
                        resp.lease,
                        args.member,
                        args.server[current]
                    );
                }
            }
            // Unreachable, or it cannot reach the store: try the next one.
            Err(e) if e.code == EXIT_UNREACHABLE || e.message.contains("store unavailable") => {
                let next = (current + 1) % clients.len();
                tracing::warn!(
                    "{}; trying {}",
                    e.message.lines().next().unwrap_or(""),
                    args.server[next]
                );
                current = next;
                serving.store(next, std::sync::atomic::Ordering::Relaxed);
            }
            Err(e) => {
                // A refused credential does not mend itself.
                tracing::error!(
                    "heartbeat refused by {}: {}",
                    args.server[current],
                    e.message
                );
                if e.message.contains("token") || e.message.contains("agent") {
                    return Err(e);
                }
            }
        }
        let spent = sent.elapsed();
        if spent < every {
            std::thread::sleep(every - spent);
        }
    }
}

/// Services a fence (the agent's or its watchdog's) stopped, for the agent
/// to report once it holds a lease again: `STATE/fenced.json`, a list of
/// (name, ID), guarded by the lock of `running.json`.
const FENCED_FILE: &str = "fenced.json";

fn load_fenced(file: &Path) -> Vec<(String, u64)> {
    std::fs::read(file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// A failed check for a service a fence stopped.
fn fenced_report(member: &str, service: &str, id: u64) -> clusvc_agent::remote::StatusReport {
    clusvc_agent::remote::StatusReport {
        member: member.to_string(),
        service: service.to_string(),
        service_id: id,
        report: clusvc_agent::exec::RunReport {
            steps: vec![clusvc_agent::exec::StepReport {
                verb: Verb::Status,
                resource: format!("agent of {member}"),
                ok: false,
                reason: Some(
                    "stopped when the agent fenced itself (no lease renewal acknowledged)".into(),
                ),
                elapsed: Duration::ZERO,
                rollback: false,
                refused: false,
            }],
            failed: Some(0),
        },
    }
}

/// The agent's own status checks of the services it runs, each on its
/// `checkInterval`: a pass is told in the next heartbeat (kept in the
/// servers' memory, for `LAST CHECK`), a failure is reported at once
/// (`POST /v1/agent/status`, one write), once per failure; the controller
/// recovers the service. Nothing is written while checks pass.
#[derive(Default)]
struct Checks {
    /// Services that passed since the last heartbeat.
    passed: Mutex<Vec<String>>,
    /// Services an item acts on now (not checked meanwhile).
    acting: Mutex<HashSet<String>>,
    /// Failures reported, and when each service was last acted on.
    reported: Mutex<Reported>,
}

/// What the checks reported, and when items acted on the services.
#[derive(Default)]
struct Reported {
    /// Services whose failure was reported (not again until they run anew).
    failed: HashSet<String>,
    /// The last action on each service, as a number from `acts`: a check
    /// that began before it checked the instance before (its failure is
    /// not the one running now: a restart must not be followed by a
    /// second one for the old instance's failure).
    acted: std::collections::HashMap<String, u64>,
    /// Actions so far (never reused, so a pruned entry reads as changed).
    acts: u64,
}

/// What a failed check is, told when it ends.
#[derive(Debug, PartialEq)]
enum Failed {
    /// The first failure of the instance that runs now: reported.
    New,
    /// Already reported (not again until the service runs anew).
    Reported,
    /// An item acted on the service while it was checked: the check saw
    /// the instance before (or one mid-action), and is dropped.
    Stale,
}

/// Marks a service as acted on while alive.
struct Busy<'a>(&'a Checks, String);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0
            .acting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.1);
    }
}

impl Checks {
    fn busy(&self, service: &str) -> Busy<'_> {
        self.acting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(service.to_string());
        // It runs anew: a later failure is a new one, and a check in
        // flight now is about the instance before.
        let mut r = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        r.acts += 1;
        let n = r.acts;
        r.acted.insert(service.to_string(), n);
        r.failed.remove(service);
        drop(r);
        Busy(self, service.to_string())
    }

    /// A check of `service` begins: the last action on it (to compare
    /// when the check ends), or none while an item acts on it (not
    /// checked then). The action is read before `acting`, so an item
    /// that begins between the two is seen by one or the other.
    fn begin_check(&self, service: &str) -> Option<u64> {
        let since = self
            .reported
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .acted
            .get(service)
            .copied()
            .unwrap_or(0);
        let acting = self
            .acting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(service);
        (!acting).then_some(since)
    }

    /// A check of `service` that began after action `since` failed: to
    /// report or not (one lock, so an item that begins now is either
    /// before this, and the failure is stale, or after, and it clears it).
    fn failed(&self, service: &str, since: u64) -> Failed {
        let mut r = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        if r.acted.get(service).copied().unwrap_or(0) != since {
            Failed::Stale
        } else if r.failed.insert(service.to_string()) {
            Failed::New
        } else {
            Failed::Reported
        }
    }

    /// A failure that could not be reported: reported again at the next
    /// check.
    fn unreported(&self, service: &str) {
        self.reported
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .failed
            .remove(service);
    }

    /// Forgets the services that no longer run here (none is being
    /// checked: only running ones are).
    fn forget(&self, running: &HashSet<&str>) {
        let mut r = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        r.acted.retain(|name, _| running.contains(name.as_str()));
        r.failed.retain(|name| running.contains(name.as_str()));
    }

    /// Reports a failed check to a server (the heartbeat's first).
    fn send(
        &self,
        clients: &[Client],
        serving: &std::sync::atomic::AtomicUsize,
        status: &clusvc_agent::remote::StatusReport,
    ) -> bool {
        let first = serving.load(std::sync::atomic::Ordering::Relaxed);
        (0..clients.len()).any(|k| {
            clients[(first + k) % clients.len()]
                .post::<_, serde_json::Value>("/v1/agent/status", status)
                .is_ok()
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        member: &str,
        rt: &tokio::runtime::Handle,
        exec: &Executor,
        running: &Running,
        state: &(Mutex<Lease>, Condvar),
        clients: &[Client],
        serving: &std::sync::atomic::AtomicUsize,
    ) {
        let mut due: std::collections::HashMap<String, Instant> = std::collections::HashMap::new();
        loop {
            std::thread::sleep(Duration::from_millis(100));
            if !state.0.lock().unwrap_or_else(|p| p.into_inner()).active {
                continue;
            }
            // What a fence stopped (this agent's, one before a restart, or
            // the watchdog's while the agent was down) is reported as a
            // failed check. Each entry leaves the file only once a server
            // took it: at least once, never lost to a restart.
            let state_dir = &exec.host().state_dir;
            let file = state_dir.join(FENCED_FILE);
            let fenced = load_fenced(&file);
            if !fenced.is_empty() {
                // One started here again since the fence is not reported:
                // the controller knew it had stopped (it started it).
                let again: HashSet<String> = running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .keys()
                    .cloned()
                    .collect();
                let sent: Vec<(String, u64)> = fenced
                    .into_iter()
                    .filter(|(name, id)| {
                        again.contains(name)
                            || self.send(clients, serving, &fenced_report(member, name, *id))
                    })
                    .collect();
                let _lock = lock_file(&state_dir.join("running.lock"));
                let mut left = load_fenced(&file);
                for done in &sent {
                    if let Some(i) = left.iter().position(|e| e == done) {
                        left.remove(i);
                    }
                }
                if left.is_empty() {
                    let _ = std::fs::remove_file(&file);
                } else {
                    write_synced(&file, &serde_json::to_vec(&left).unwrap_or_default());
                }
            }
            let services: Vec<(ServiceRef, ServiceSpec)> = running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .cloned()
                .collect();
            let names: HashSet<&str> = services.iter().map(|(s, _)| s.name.as_str()).collect();
            due.retain(|name, _| names.contains(name.as_str()));
            self.forget(&names);
            for (svc, spec) in &services {
                let interval = spec.check_interval.get();
                if interval.is_zero() {
                    continue;
                }
                let next = *due
                    .entry(svc.name.clone())
                    .or_insert_with(|| Instant::now() + interval);
                if Instant::now() < next {
                    continue;
                }
                let Some(since) = self.begin_check(&svc.name) else {
                    continue;
                };
                due.insert(svc.name.clone(), Instant::now() + interval);
                let report = rt.block_on(exec.check(svc, spec));
                if report.failed.is_none() {
                    self.passed
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(svc.name.clone());
                    continue;
                }
                match self.failed(&svc.name, since) {
                    Failed::New => {}
                    Failed::Reported => continue,
                    Failed::Stale => {
                        tracing::info!(
                            "{}: a status check that failed while the service was acted on is dropped (it checked the instance before): {}",
                            svc.name,
                            report.reason().unwrap_or("")
                        );
                        continue;
                    }
                }
                tracing::warn!(
                    "{}: status check failed: {}",
                    svc.name,
                    report.reason().unwrap_or("")
                );
                let status = clusvc_agent::remote::StatusReport {
                    member: member.to_string(),
                    service: svc.name.clone(),
                    service_id: svc.id,
                    report,
                };
                if !self.send(clients, serving, &status) {
                    // Reported again at the next check.
                    self.unreported(&svc.name);
                }
            }
        }
    }
}

/// What this member has of the scripts the services name: the servers say
/// which (in heartbeat answers, when the list changed); a thread works out
/// each one's checksum (again every 30 s, so an edited script shows) and
/// the next heartbeat carries the inventory when it changed.
#[derive(Default)]
struct Scripts {
    state: Mutex<ScriptsState>,
    wake: Condvar,
}

#[derive(Default)]
struct ScriptsState {
    wanted_hash: u64,
    wanted: Option<Vec<String>>,
    /// Worked out, not yet acknowledged by a server.
    pending: Option<clusvc_core::model::Inventory>,
    /// Last acknowledged.
    sent: Option<clusvc_core::model::Inventory>,
}

impl Scripts {
    fn lock(&self) -> std::sync::MutexGuard<'_, ScriptsState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The list hash and the inventory to send with the next heartbeat.
    fn to_send(&self) -> (u64, Option<clusvc_core::model::Inventory>) {
        let s = self.lock();
        (s.wanted_hash, s.pending.clone())
    }

    /// After a heartbeat: what was sent is acknowledged (or stays pending);
    /// a new list is taken in.
    fn answered(
        &self,
        sent: Option<clusvc_core::model::Inventory>,
        answer: Option<&HeartbeatResponse>,
    ) {
        let mut s = self.lock();
        let Some(answer) = answer else { return };
        if sent.is_some() && s.pending == sent {
            s.sent = s.pending.take();
        }
        if let Some(list) = &answer.wanted {
            s.wanted_hash = answer.wanted_hash;
            s.wanted = Some(list.clone());
            self.wake.notify_all();
        }
    }

    fn run(&self, ocf_root: &Path) {
        loop {
            let wanted = {
                let mut s = self.lock();
                while s.wanted.is_none() {
                    s = self.wake.wait(s).unwrap_or_else(|p| p.into_inner());
                }
                s.wanted.clone().unwrap_or_default()
            };
            let inv = clusvc_core::model::Inventory {
                version: env!("CARGO_PKG_VERSION").to_string(),
                scripts: wanted
                    .iter()
                    .take(clusvc_core::api::agent::MAX_INVENTORY)
                    .map(|w| (w.clone(), checksum(w, ocf_root)))
                    .collect(),
            };
            {
                let mut s = self.lock();
                if s.sent.as_ref() != Some(&inv) {
                    s.pending = Some(inv);
                }
                // Again in 30 s, or at once when the list changes.
                let _ = self
                    .wake
                    .wait_timeout(s, Duration::from_secs(30))
                    .unwrap_or_else(|p| p.into_inner());
            }
        }
    }
}

/// `crc32:HEX` of a script, of a script directory (its scripts' names and
/// checksums, in order) or of an OCF agent (`ocf:PROVIDER:TYPE`); `None`
/// when this member lacks it.
fn checksum(what: &str, ocf_root: &Path) -> Option<String> {
    fn file(p: &Path) -> Option<u32> {
        use std::io::Read;
        let f = std::fs::File::open(p).ok()?;
        if !f.metadata().ok()?.is_file() {
            return None;
        }
        let mut h = crc32fast::Hasher::new();
        let mut buf = vec![0u8; 64 << 10];
        let mut r = f.take(16 << 20);
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => h.update(&buf[..n]),
                Err(_) => return None,
            }
        }
        Some(h.finalize())
    }
    let sum = if let Some(ocf) = what.strip_prefix("ocf:") {
        let (provider, kind) = ocf.split_once(':')?;
        file(&ocf_root.join("resource.d").join(provider).join(kind))?
    } else {
        let p = Path::new(what);
        if p.is_dir() {
            let mut h = crc32fast::Hasher::new();
            for s in clusvc_manifest::scripts::list_directory(p).ok()? {
                h.update(s.file_name()?.as_encoded_bytes());
                h.update(&file(&s)?.to_le_bytes());
            }
            h.finalize()
        } else {
            file(p)?
        }
    };
    Some(format!("crc32:{sum:08x}"))
}

/// Fences the member once `limit` has passed since the last acknowledged
/// renewal was sent, on time whatever the heartbeat loop is blocked on.
fn watchdog(
    state: &(Mutex<Lease>, Condvar),
    member: &str,
    limit: Duration,
    fence: &Fence,
    failsafe: Option<&FailsafePoll>,
) {
    let (lock, wake) = state;
    let mut l = lock.lock().unwrap_or_else(|p| p.into_inner());
    let mut kept = false;
    loop {
        match (l.active, l.acked_sent) {
            (true, Some(sent)) => {
                let deadline = (sent + limit).max(l.failsafe_until.unwrap_or(sent));
                let now = Instant::now();
                // Failsafe: ask the peers before the deadline (again every
                // 100 ms until they all confirm or the deadline passes), so
                // a yes is published before the watchdog process acts on
                // the old deadline.
                if let Some(f) = failsafe
                    && now + f.lead() >= deadline
                    && now < deadline
                {
                    let members = l.members.clone();
                    drop(l);
                    let answer = f.peers.all_lost(&members, Duration::from_millis(200));
                    l = lock.lock().unwrap_or_else(|p| p.into_inner());
                    if l.acked_sent != Some(sent) {
                        kept = false;
                        continue; // renewed meanwhile
                    }
                    match answer {
                        Ok(n) => {
                            if !kept {
                                tracing::warn!(
                                    "failsafe: no renewal acknowledged, but all {n} peers lost the servers too; keeping {member}'s services"
                                );
                            }
                            kept = true;
                            // Asked again after a renewal period.
                            let keep = f.lead() + f.every;
                            l.failsafe_until = Some(Instant::now() + keep);
                            publish_deadline(
                                &f.deadline_file,
                                monotonic_ms() + u64::try_from(keep.as_millis()).unwrap_or(0),
                            );
                        }
                        Err(why) => {
                            if Instant::now() + Duration::from_millis(100) >= deadline {
                                tracing::warn!("failsafe: {why}; {member} fences itself");
                                l.failsafe_until = None;
                                let wait = deadline.saturating_duration_since(Instant::now());
                                l = wake
                                    .wait_timeout(l, wait)
                                    .unwrap_or_else(|p| p.into_inner())
                                    .0;
                                if l.acked_sent == Some(sent) {
                                    // Past the deadline: fence below.
                                    l.failsafe_until = Some(sent + limit);
                                }
                            } else {
                                l = wake
                                    .wait_timeout(l, Duration::from_millis(100))
                                    .unwrap_or_else(|p| p.into_inner())
                                    .0;
                            }
                        }
                    }
                    continue;
                }
                if now >= deadline {
                    kept = false;
                    tracing::warn!(
                        "self-fencing {member}: no renewal acknowledged for {:?}; stopping all its services and staying passive until it holds a lease again",
                        now - sent
                    );
                    l.active = false;
                    wake.notify_all();
                    drop(l);
                    fence.stop_all(member);
                    l = lock.lock().unwrap_or_else(|p| p.into_inner());
                    continue;
                }
                let wake_at = match failsafe {
                    Some(f) => deadline.checked_sub(f.lead()).unwrap_or(now).max(now),
                    None => deadline,
                };
                l = wake
                    .wait_timeout(l, (wake_at - now).max(Duration::from_millis(1)))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            _ => {
                l = wake.wait(l).unwrap_or_else(|p| p.into_inner());
            }
        }
    }
}

/// What the fencing thread needs for the failsafe mode.
struct FailsafePoll {
    peers: Arc<super::failsafe::Failsafe>,
    /// How long a yes keeps the services (a fifth of the lease).
    every: Duration,
    deadline_file: PathBuf,
}

impl FailsafePoll {
    /// How long before the deadline the peers are first asked.
    fn lead(&self) -> Duration {
        2 * self.every
    }
}

/// This agent's ID: random, made once and kept in its state directory.
fn agent_id(state: &std::path::Path) -> Result<String, CliError> {
    use std::io::Read;
    let path = state.join("agent-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim().to_string();
        if !id.is_empty() {
            return Ok(id);
        }
    }
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| CliError::bad_input(format!("error: /dev/urandom: {e}")))?;
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(id.as_bytes()))
    }
    .map_err(|e| CliError::bad_input(format!("error: cannot write {}: {e}", path.display())))?;
    Ok(id)
}

/// Starts the watchdog process (in its own process group, so that signals
/// to the agent's group do not reach it); a watchdog already watching this
/// state carries on instead.
fn spawn_watchdog(args: &Args, state: &std::path::Path) {
    use std::os::unix::process::CommandExt;
    let Ok(exe) = std::env::current_exe() else {
        tracing::error!("cannot find this program to start the watchdog");
        return;
    };
    let root = state.parent().unwrap_or(state);
    let spawned = std::process::Command::new(exe)
        .args(["watchdog", "--member", &args.member, "--state-dir"])
        .arg(root)
        .arg("--lease-ttl")
        .arg(args.lease_ttl.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .process_group(0)
        .spawn();
    match spawned {
        // Reaped when it ends (at once, when another watchdog watches).
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(e) => {
            tracing::error!("cannot start the watchdog: {e}; only the agent itself will fence")
        }
    }
}

/// The executor for this member, as `clusvc run`'s local agent has one.
fn executor(args: &Args) -> Result<Executor, CliError> {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let state = args.state_dir.clone().unwrap_or_else(|| {
        clusvc_core::api::paths::default_state_dir(
            root,
            std::env::var_os("XDG_STATE_HOME").map(PathBuf::from),
            std::env::var_os("HOME").map(PathBuf::from),
        )
        .join(format!("agent-{}", args.member))
    });
    // What runs here and what the agent did are its business alone.
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&state)
        .map_err(|e| {
            CliError::bad_input(format!("error: cannot create {}: {e}", state.display()))
        })?;
    let mut host = Host::new(&args.member);
    host.state_dir = state.join("agent");
    if !root {
        host.ha_rsctmp = state.join("rsctmp");
    }
    match clusvc_agent::resources::sys::cgroup::Cgroups::detect() {
        Ok(c) => host.ns.cgroups = Some(Arc::new(c)),
        Err(e) => tracing::info!("actions run in their process group only: {e}"),
    }
    Ok(Executor::new(Arc::new(host), Arc::new(LogEvents)))
}

/// How long a self-fencing stop may take before what it has not stopped is
/// killed: a quarter of the lease (see docs/cluster.md).
fn stop_budget(ttl: Duration) -> Duration {
    ttl / 4
}

/// Records the cgroup this agent's actions run under (in
/// `STATE/cgroups`), so that a fence, the watchdog's after this agent died
/// included, can kill what they started.
fn record_cgroups(exec: &Executor) {
    let Some(c) = &exec.host().ns.cgroups else {
        return;
    };
    let file = exec.host().state_dir.join("cgroups");
    let mut known: Vec<String> = std::fs::read_to_string(&file)
        .unwrap_or_default()
        .lines()
        .filter(|l| Path::new(l).exists())
        .map(str::to_string)
        .collect();
    let mine = c.parent().display().to_string();
    if !known.contains(&mine) {
        known.push(mine);
    }
    write_synced(&file, known.join("\n").as_bytes());
}

/// What self-fencing needs: stop everything this agent started.
struct Fence {
    rt: tokio::runtime::Handle,
    exec: Arc<Executor>,
    running: Running,
    file: PathBuf,
    /// The stop's time budget: then what is left is killed.
    budget: Duration,
}

impl Fence {
    /// Stops everything recorded as running here, in stop order, and
    /// clears the record. The agent and its watchdog process may both try
    /// at once: a lock makes one do it and the other find nothing left.
    fn stop_all(&self, member: &str) {
        let _lock = lock_file(&self.file.with_extension("lock"));
        let mut services = load_running(&self.file);
        services.append(&mut std::mem::take(
            &mut *self.running.lock().unwrap_or_else(|p| p.into_inner()),
        ));
        if services.is_empty() {
            return;
        }
        // Reported as failed checks once the agent holds a lease again, so
        // the controller recovers them. On disk, synced: the agent that
        // fenced may be restarted (or be dead, when its watchdog fenced)
        // before it can tell any server.
        let file = self.file.with_file_name(FENCED_FILE);
        let mut all = load_fenced(&file);
        for (svc, _) in services.values() {
            let entry = (svc.name.clone(), svc.id);
            if !all.contains(&entry) {
                all.push(entry);
            }
        }
        write_synced(&file, &serde_json::to_vec(&all).unwrap_or_default());
        // Every service at once, each in stop order, within the budget.
        let all = async {
            let mut stops = tokio::task::JoinSet::new();
            for (svc, spec) in services.values().cloned() {
                let (exec, member) = (self.exec.clone(), member.to_string());
                stops.spawn(async move {
                    let report = exec.stop(&svc, &spec).await;
                    if report.ok() {
                        tracing::warn!("self-fencing {member}: stopped {}", svc.name);
                    } else {
                        tracing::error!(
                            "self-fencing {member}: stopping {} failed: {}",
                            svc.name,
                            report.reason().unwrap_or("")
                        );
                    }
                });
            }
            while stops.join_next().await.is_some() {}
        };
        if self
            .rt
            .block_on(async { tokio::time::timeout(self.budget, all).await })
            .is_err()
        {
            tracing::error!(
                "self-fencing {member}: the stop took longer than {:?}; killing every process the agent's actions started and removing the services' addresses",
                self.budget
            );
            self.rt.block_on(self.hard_stop(&services));
        }
        save_running(&self.file, &BTreeMap::new());
    }
}

impl Fence {
    /// What a stop that overran its budget leaves is ended by force: every
    /// process in the action cgroups of this agent's incarnations is
    /// killed, and the services' IP addresses are removed (mounts and
    /// exports cannot be forced safely: a `fencing` command covers them).
    async fn hard_stop(&self, services: &BTreeMap<String, (ServiceRef, ServiceSpec)>) {
        let file = self.exec.host().state_dir.join("cgroups");
        let parents = std::fs::read_to_string(&file).unwrap_or_default();
        for parent in parents.lines().map(Path::new) {
            let Ok(children) = std::fs::read_dir(parent) else {
                continue;
            };
            for child in children.flatten().filter(|c| c.path().is_dir()) {
                clusvc_agent::resources::sys::cgroup::kill_path(
                    &child.path(),
                    Duration::from_secs(1),
                )
                .await;
            }
        }
        for (svc, spec) in services.values() {
            for r in spec.resources() {
                if let clusvc_core::model::ResourceRef::Ip(_) = r {
                    let rep = self.exec.act(svc, r, Verb::Stop).await;
                    if !rep.ok {
                        tracing::error!(
                            "self-fencing: cannot remove {}: {}",
                            rep.resource,
                            rep.reason.unwrap_or_default()
                        );
                    }
                }
            }
        }
    }
}

/// A runtime with `threads` workers (they drive timers and child
/// processes while other threads block on it).
fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| CliError {
            code: 1,
            message: format!("error: cannot start the runtime: {e}"),
        })
}

/// The exclusive lock on `path` (created) if nobody holds it, released
/// when dropped; `None` while another process holds it.
fn try_lock(path: &std::path::Path) -> Result<Option<std::fs::File>, CliError> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| CliError::bad_input(format!("error: {}: {e}", path.display())))?;
    // SAFETY: flock on a descriptor we own.
    let free = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    Ok(free.then_some(f))
}

/// An exclusive lock on `path` (created), held until dropped.
fn lock_file(path: &std::path::Path) -> Option<std::fs::File> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ok()?;
    // SAFETY: flock on a descriptor we own.
    (unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0).then_some(f)
}

/// Milliseconds of CLOCK_MONOTONIC, which every process of this boot
/// shares (the agent and its watchdog compare deadlines on it).
fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1000
        + u64::try_from(ts.tv_nsec).unwrap_or(0) / 1_000_000
}

/// The newest controller epoch this agent has seen, kept on disk: work of
/// an older epoch is refused.
struct EpochGate {
    file: PathBuf,
    newest: u64,
}

impl EpochGate {
    fn open(file: PathBuf) -> Self {
        let newest = std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        Self { file, newest }
    }

    /// Admits work of `epoch` (recording it, synced, when it is newer than
    /// any seen), or refuses it with the newest epoch seen.
    fn admit(&mut self, epoch: u64) -> Result<(), u64> {
        if epoch < self.newest {
            return Err(self.newest);
        }
        if epoch > self.newest {
            write_synced(&self.file, epoch.to_string().as_bytes());
            self.newest = epoch;
        }
        Ok(())
    }
}

/// Writes a file atomically and durably (a temporary file, synced, renamed
/// over it); a failure is logged.
fn write_synced(path: &std::path::Path, bytes: &[u8]) {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path))
        // The rename itself survives a power loss once its directory is
        // synced.
        .and_then(|()| match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
            _ => Ok(()),
        });
    if let Err(e) = written {
        tracing::error!("cannot record {}: {e}", path.display());
    }
}

/// Publishes the fence deadline (CLOCK_MONOTONIC ms) for the watchdog.
fn publish_deadline(path: &std::path::Path, at_ms: u64) {
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, at_ms.to_string()).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

/// Arguments of the watchdog process (`clusvc agent` starts it).
#[derive(Debug, clap::Args)]
pub struct WatchdogArgs {
    /// The member.
    #[arg(long, value_name = "NAME")]
    member: String,
    /// The agent's state directory.
    #[arg(long, value_name = "DIR")]
    state_dir: PathBuf,
    /// The agent's lease time to live (the stop's budget is a quarter).
    #[arg(long, default_value = "5s")]
    lease_ttl: clusvc_core::model::Duration,
}

/// The watchdog: a process apart from the agent, so that `kill -9` of the
/// agent still fences the member. It stops everything recorded as running
/// once the deadline the agent last published has passed, and ends when
/// nothing runs, the deadline has passed and no agent is left.
pub fn watchdog_process(args: WatchdogArgs) -> Result<u8, CliError> {
    let agent_args = Args {
        member: args.member.clone(),
        server: Vec::new(),
        token_file: PathBuf::new(),
        ca_file: None,
        lease_ttl: args.lease_ttl,
        state_dir: Some(args.state_dir.clone()),
        failsafe: false,
        peer_listen: None,
        peers: Vec::new(),
        peer_token_file: None,
        fault_clock_rate: 1.0,
    };
    let exec = Arc::new(executor(&agent_args)?);
    let dir = exec.host().state_dir.clone();
    // One watchdog per agent state: a later one leaves.
    let Some(_lock) = try_lock(&dir.join("watchdog.lock"))? else {
        return Ok(0);
    };
    // A worker thread drives the timers and child processes while the
    // watchdog's own thread blocks on a stop.
    let rt = runtime(1)?;
    let fence = Fence {
        rt: rt.handle().clone(),
        exec,
        running: Arc::default(),
        file: dir.join("running.json"),
        budget: stop_budget(args.lease_ttl.get()),
    };
    let deadline_file = dir.join("deadline");
    let agent_lock_file = dir.join("agent.lock");
    tracing::info!("watchdog of {} watching {}", args.member, dir.display());
    loop {
        std::thread::sleep(WATCHDOG_TICK);
        let deadline: u64 = std::fs::read_to_string(&deadline_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        let passed = monotonic_ms() >= deadline;
        let runs = !load_running(&fence.file).is_empty();
        if passed && runs {
            tracing::warn!(
                "watchdog: the agent of {} published no newer deadline; fencing",
                args.member
            );
            fence.stop_all(&args.member);
        }
        // An agent runs with this state while it holds its lock.
        let agent_alive = matches!(try_lock(&agent_lock_file), Ok(None));
        if passed && !runs && !agent_alive {
            return Ok(0);
        }
    }
}

/// How often the watchdog looks at the deadline (part of the fencing time
/// budget, `STOP` in docs/cluster.md).
const WATCHDOG_TICK: Duration = Duration::from_millis(50);

/// Fetches the member's work and runs it while the agent is active.
struct Worker {
    member: String,
    /// Results recorded before they are reported, one file per service,
    /// and the steps of an item done so far (`SERVICE.progress`).
    done_dir: PathBuf,
    /// The newest controller epoch seen.
    epochs: EpochGate,
    /// Failsafe mode: no new work for a while after confirming to a peer.
    failsafe: Option<Arc<super::failsafe::Failsafe>>,
    /// How long a work request waits for something new.
    poll: Duration,
    /// The agent's own status checks (paused for a service while an item
    /// acts on it).
    checks: Arc<Checks>,
    /// The server the heartbeat loop reaches now.
    serving: Arc<std::sync::atomic::AtomicUsize>,
    /// What runs here, on disk.
    running_file: PathBuf,
    servers: Vec<String>,
    clients: Vec<Client>,
    rt: tokio::runtime::Handle,
    exec: Arc<Executor>,
    running: Running,
    state: Arc<(Mutex<Lease>, Condvar)>,
    fence: Fence,
}

impl Worker {
    fn active(&self) -> bool {
        self.state
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .active
    }

    fn wait_active(&self) {
        let (lock, wake) = &*self.state;
        let mut l = lock.lock().unwrap_or_else(|p| p.into_inner());
        while !l.active {
            l = wake.wait(l).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn run(mut self) {
        let mut after = 0;
        // Item IDs already run (the newest 10,000).
        let mut done: HashSet<String> = HashSet::new();
        let mut order: VecDeque<String> = VecDeque::new();
        loop {
            self.wait_active();
            // Wait about a lease for new work: a server that stops
            // answering holds this loop no longer than that.
            let path = format!(
                "/v1/agent/work?member={}&after={after}&wait={}",
                self.member,
                self.poll.as_millis()
            );
            // The server the heartbeats reach, when they moved on.
            let mut current =
                self.serving.load(std::sync::atomic::Ordering::Relaxed) % self.clients.len();
            let list: WorkList = match self.clients[current].get(&path) {
                Ok(l) => l,
                Err(e) => {
                    // (The heartbeat loop finds a server that answers.)
                    if e.code != EXIT_UNREACHABLE {
                        tracing::warn!("fetching work: {}", e.message);
                    }
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            };
            after = list.revision;
            for item in list.items {
                if done.contains(&item.id) {
                    continue;
                }
                if !self.active() {
                    // Fenced: answer at once instead of leaving the
                    // controller waiting; nothing is run.
                    let report = WorkDone {
                        member: self.member.clone(),
                        service: item.service.clone(),
                        id: item.id.clone(),
                        outcome: Outcome::Failed {
                            message: format!("the agent of {} is fenced", self.member),
                        },
                    };
                    self.report(&mut current, &report);
                    continue;
                }
                if let Some(refusal) = self.refuse_stale(&item) {
                    self.report(&mut current, &refusal);
                    continue;
                }
                // Run before a restart of this agent? Report what it did
                // then; never run it again.
                let report = match self.saved(&item) {
                    Some(saved) => saved,
                    None => {
                        let outcome = self.rt.block_on(self.run_item(&item));
                        if !self.active() {
                            // Fenced while it ran: nothing it started may stay.
                            self.fence.stop_all(&self.member);
                        }
                        let report = WorkDone {
                            member: self.member.clone(),
                            service: item.service.clone(),
                            id: item.id.clone(),
                            outcome,
                        };
                        self.save(&report);
                        let _ = std::fs::remove_file(self.progress_file(&item.service));
                        report
                    }
                };
                self.report(&mut current, &report);
                done.insert(item.id.clone());
                order.push_back(item.id);
                if order.len() > 10_000
                    && let Some(old) = order.pop_front()
                {
                    done.remove(&old);
                }
            }
        }
    }

    /// Work from a controller older than the newest one seen is answered
    /// as failed, not run: a deposed controller must not act through this
    /// agent.
    fn refuse_stale(&mut self, item: &WorkItem) -> Option<WorkDone> {
        let newest = self.epochs.admit(item.epoch).err()?;
        tracing::warn!(
            "refusing {} for {}: it is from controller epoch {}, older than epoch {newest}",
            item.id,
            item.service,
            item.epoch
        );
        Some(WorkDone {
            member: self.member.clone(),
            service: item.service.clone(),
            id: item.id.clone(),
            outcome: Outcome::Failed {
                message: format!(
                    "work from controller epoch {} is older than epoch {newest}, which this agent has seen",
                    item.epoch
                ),
            },
        })
    }

    fn progress_file(&self, service: &str) -> PathBuf {
        self.done_dir.join(format!("{service}.progress"))
    }

    /// The steps of `item` done before this agent restarted.
    fn progress(&self, item: &WorkItem) -> Vec<StepReport> {
        let Ok(text) = std::fs::read(self.progress_file(&item.service)) else {
            return Vec::new();
        };
        match serde_json::from_slice::<(String, Vec<StepReport>)>(&text) {
            Ok((id, steps)) if id == item.id => {
                tracing::info!(
                    "resuming {} for {} after its first {} steps, done before a restart",
                    item.id,
                    item.service,
                    steps.len()
                );
                steps
            }
            _ => Vec::new(),
        }
    }

    fn done_file(&self, service: &str) -> PathBuf {
        self.done_dir.join(format!("{service}.json"))
    }

    /// The result this agent recorded for `item` before it restarted.
    fn saved(&self, item: &WorkItem) -> Option<WorkDone> {
        let text = std::fs::read(self.done_file(&item.service)).ok()?;
        serde_json::from_slice::<WorkDone>(&text)
            .ok()
            .filter(|d| d.id == item.id)
    }

    /// Records a result on disk (synced) before it is reported.
    fn save(&self, done: &WorkDone) {
        let path = self.done_file(&done.service);
        write_synced(&path, &serde_json::to_vec(done).expect("results serialize"));
    }

    /// Reports a result, trying every server in turn a few times.
    fn report(&self, current: &mut usize, done: &WorkDone) {
        for _ in 0..(3 * self.clients.len()) {
            match self.clients[*current].post::<_, serde_json::Value>("/v1/agent/done", done) {
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(
                        "reporting {} to {}: {}",
                        done.id,
                        self.servers[*current],
                        e.message
                    );
                    *current = (*current + 1) % self.clients.len();
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    async fn run_item(&self, item: &WorkItem) -> Outcome {
        let svc = item.service_ref();
        match &item.task {
            Task::Execute { steps, spec } => {
                let _busy = self.checks.busy(&item.service);
                // This agent told a peer it had lost the servers: that peer
                // may still run its services until its next question and
                // bounded stop; nothing new runs here before then.
                if let Some(until) = self.failsafe.as_ref().and_then(|f| f.hold_until()) {
                    tracing::info!(
                        "failsafe: holding {} for {:?} (a peer may still be stopping)",
                        item.service,
                        until - Instant::now()
                    );
                    tokio::time::sleep_until(until.into()).await;
                }
                // What may start is recorded as running before it starts,
                // so a fence (the watchdog's after a crash included) stops
                // it.
                self.track(&svc, steps, spec.as_ref(), false);
                let done = self.progress(item);
                let file = self.progress_file(&item.service);
                let mut record = |so_far: &[StepReport]| {
                    let bytes = serde_json::to_vec(&(&item.id, so_far)).expect("reports serialize");
                    write_synced(&file, &bytes);
                };
                match self
                    .exec
                    .execute_resumed(&svc, steps, &done, &mut record)
                    .await
                {
                    Ok(report) => {
                        self.track(&svc, steps, spec.as_ref(), report.ok());
                        Outcome::Report { report }
                    }
                    Err(e) => Outcome::Failed {
                        message: e.to_string(),
                    },
                }
            }
            Task::Check { spec } => Outcome::Report {
                report: self.exec.check(&svc, spec).await,
            },
            Task::Probe { spec } => {
                let mut statuses = Vec::new();
                for r in spec.resources() {
                    let rep = self.exec.act(&svc, r, Verb::Status).await;
                    let st = if rep.ok {
                        ResourceStatus::Ok
                    } else {
                        ResourceStatus::Stopped
                    };
                    statuses.push((rep.resource, st));
                }
                if !statuses.is_empty() && statuses.iter().all(|(_, s)| *s == ResourceStatus::Ok) {
                    let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
                    running.insert(svc.name.clone(), (svc.clone(), spec.clone()));
                    save_running(&self.running_file, &running);
                }
                Outcome::Probe { statuses }
            }
        }
    }

    /// Remembers what runs here: a service after steps that started
    /// something, forgotten after steps that only stopped.
    fn track(&self, svc: &ServiceRef, steps: &[Step], spec: Option<&ServiceSpec>, ok: bool) {
        let starts = steps
            .iter()
            .any(|s| matches!(s, Step::Resource { op: Op::Start, .. }));
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let changed = match (starts, spec) {
            (true, Some(spec)) => {
                // Even a failed start may have left something up.
                let entry = (svc.clone(), spec.clone());
                running.insert(svc.name.clone(), entry.clone()) != Some(entry)
            }
            (false, _) if ok => running.remove(&svc.name).is_some(),
            _ => false,
        };
        if changed {
            save_running(&self.running_file, &running);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_of_an_older_epoch_is_refused_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("epoch");
        let mut gate = EpochGate::open(file.clone());
        assert_eq!(gate.admit(0), Ok(()));
        assert_eq!(gate.admit(7), Ok(()));
        assert_eq!(gate.admit(7), Ok(()));
        assert_eq!(gate.admit(5), Err(7));
        // The agent restarts: it still knows epoch 7.
        let mut gate = EpochGate::open(file);
        assert_eq!(gate.admit(6), Err(7));
        assert_eq!(gate.admit(9), Ok(()));
        assert_eq!(gate.admit(7), Err(9));
    }

    /// A check in flight across an action (a restart) saw the instance
    /// before: its failure is dropped, not reported for the new one; a
    /// failure is reported once per instance; none is checked mid-action.
    #[test]
    fn a_check_in_flight_across_an_action_is_not_reported() {
        let checks = Checks::default();
        // Checked, failed: reported once.
        let since = checks.begin_check("web").unwrap();
        assert_eq!(checks.failed("web", since), Failed::New);
        let since = checks.begin_check("web").unwrap();
        assert_eq!(checks.failed("web", since), Failed::Reported);
        // A check begins; the service is restarted meanwhile; the check
        // ends failed: stale.
        let since = checks.begin_check("web").unwrap();
        let busy = checks.busy("web");
        assert_eq!(checks.begin_check("web"), None, "not checked mid-action");
        drop(busy);
        assert_eq!(checks.failed("web", since), Failed::Stale);
        // The new instance's own failure is reported.
        let since = checks.begin_check("web").unwrap();
        assert_eq!(checks.failed("web", since), Failed::New);
        // Another service's action changes nothing for this one.
        let since = checks.begin_check("web").unwrap();
        drop(checks.busy("db"));
        assert_eq!(checks.failed("web", since), Failed::Reported);
        // Forgotten when it stopped running, then started again: a check
        // begun before is stale still (action numbers are never reused).
        let since = checks.begin_check("db").unwrap();
        checks.forget(&HashSet::from(["web"]));
        drop(checks.busy("db"));
        assert_eq!(checks.failed("db", since), Failed::Stale);
    }
}
