//! `clusvc server --store etcd:URL,...`: one of several API servers on one
//! etcd cluster (see `docs/cluster.md`). Every server serves the API and
//! handles members' agents; one of them, elected through a lease on the
//! store, runs the controller. Until it is elected a server's controller
//! only follows the store (its cache is warm when it takes over); its
//! writes are guarded by its leadership epoch ([`Lead`]), and a server that
//! loses leadership exits (to be restarted as a follower), as
//! kube-controller-manager does.
//!
//! Operator requests made through any server are recorded in the store
//! (`/clusvc/requests/SERVICE`) and carried out by the leader; the leader's
//! events are recorded in the store (`/clusvc/events/`, the newest
//! [`EVENTS_KEPT`]) and every server shows them.

// Without the etcd store most of this is compiled out.
#![cfg_attr(not(feature = "etcd"), allow(unused_imports, dead_code))]

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clusvc_agent::fence::CommandFencer;
use clusvc_agent::{Agent, BoxFuture};
use clusvc_core::api::SyncStatus;
use clusvc_core::model::event::Event;
use clusvc_store::election::{self, Lead};
use clusvc_store::{Store, WatchEvent, keys};

use crate::api::{App, Operations};
use crate::reconcile::{
    Controller, EventLog, Metrics, OperateError, RemoteAgent, Request, Settings,
};
use crate::run::{self, Error};
use crate::sync::gitops;

/// Events kept in the store.
pub const EVENTS_KEPT: usize = 1_000;

/// How long an operator request made through this server waits for the
/// leader to take it.
const REQUEST_WAIT: Duration = Duration::from_secs(10);

/// What `clusvc server` is asked to do.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The API (socket, TCP, TLS, tokens, agents' tokens) and the
    /// controller's settings, as `clusvc run` takes them (its member and
    /// resource options are not used: a server runs no resources).
    pub api: run::Config,
    /// `etcd:URL[,URL...]`.
    pub store: String,
    /// This server's name in the election (default: the host name).
    pub name: Option<String>,
    /// CA (PEM) of etcd's certificates, for `https://` endpoints.
    pub etcd_ca: Option<PathBuf>,
    /// Client certificate and key (PEM) for etcd, when it asks for one.
    pub etcd_cert: Option<(PathBuf, PathBuf)>,
}

/// Runs a server until interrupted (or until it loses leadership).
pub fn server(config: ServerConfig) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    rt.block_on(serve(config))
}

/// The etcd endpoints of `etcd:URL,URL`.
fn endpoints(store: &str) -> Result<Vec<String>, Error> {
    let list = store
        .strip_prefix("etcd:")
        .ok_or_else(|| Error::StoreUrl(store.to_string()))?;
    let urls: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect();
    if urls.is_empty()
        || urls
            .iter()
            .any(|u| !(u.starts_with("http://") || u.starts_with("https://")))
    {
        return Err(Error::StoreUrl(store.to_string()));
    }
    Ok(urls)
}

#[cfg(not(feature = "etcd"))]
async fn serve(config: ServerConfig) -> Result<(), Error> {
    endpoints(&config.store)?;
    Err(Error::NoEtcd)
}

#[cfg(feature = "etcd")]
async fn serve(config: ServerConfig) -> Result<(), Error> {
    use clusvc_store::etcd::{Etcd, Tls};
    let urls = endpoints(&config.store)?;
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|source| Error::TokenFile {
            path: p.clone(),
            source,
        })
    };
    let tls = match &config.etcd_ca {
        Some(ca) => Some(Tls {
            ca: read(ca)?,
            identity: match &config.etcd_cert {
                Some((c, k)) => Some((read(c)?, read(k)?)),
                None => None,
            },
        }),
        None => None,
    };
    if config.etcd_cert.is_none() {
        // Whoever can write to the store decides what every member runs as
        // root: etcd must know who its clients are.
        tracing::warn!(
            "etcd is used without a client certificate (--etcd-cert/--etcd-key): anyone who can reach {} can change what runs as root on every member, unless etcd authenticates its clients otherwise; run etcd with --client-cert-auth and give the servers a client certificate",
            urls.join(",")
        );
    }
    let api_setup = run::prepare_api(&config.api).await?;
    let store = Arc::new(Etcd::connect(&urls, tls).await?);
    let name = config.name.clone().unwrap_or_else(run::hostname);
    let lead = Arc::new(Lead::new(store.clone()));
    let epoch = Arc::new(AtomicU64::new(0));
    let events = Arc::new(EventLog::default());
    let metrics = Arc::new(Metrics::default());
    // An etcd leader election (or a member restarting) makes the store
    // unavailable for a moment: a server starting then waits it out
    // rather than exiting.
    let unavailable = |e: &Error| {
        matches!(
            e,
            Error::Store(clusvc_store::Error::Unavailable(_))
                | Error::Controller(crate::reconcile::Error::Store(
                    clusvc_store::Error::Unavailable(_)
                ))
        )
    };
    retry_unavailable("reading the events", unavailable, || {
        share_events(store.clone(), events.clone(), &name)
    })
    .await?;
    let factory = {
        let (lead, epoch) = (lead.clone(), epoch.clone());
        Box::new(move |member: &str| {
            Arc::new(RemoteAgent::new(member, lead.clone()).with_epoch(epoch.clone()))
                as Arc<dyn Agent>
        })
    };
    let controller = Controller::for_cluster(
        lead.clone(),
        factory,
        Arc::new(CommandFencer::default()),
        events.clone(),
        metrics.clone(),
        Settings {
            concurrency: config.api.concurrency,
            ..Settings::default()
        },
    );
    retry_unavailable("reading the cluster's state", unavailable, || async {
        controller.follow().await.map_err(Error::from)
    })
    .await?;
    let sync = Arc::new(Mutex::new(SyncStatus::default()));
    let ttl = config.api.lease_ttl.get();
    {
        let (store, controller, sync, events) = (
            store.clone(),
            controller.clone(),
            sync.clone(),
            events.clone(),
        );
        let manifests = config.api.manifests.clone();
        let resync = config.api.resync.get();
        let name = name.clone();
        tokio::spawn(async move {
            let won = election::campaign(store.clone(), &name, ttl).await;
            lead.elect(won.epoch);
            epoch.store(won.epoch, std::sync::atomic::Ordering::SeqCst);
            tracing::info!(
                "{name} leads (epoch {}): the controller acts from now on",
                won.epoch
            );
            if let Err(e) = controller.lead().await {
                tracing::error!("the controller could not start: {e}; exiting");
                std::process::exit(1);
            }
            if let Some(dir) = manifests {
                let dir = std::path::absolute(&dir).unwrap_or(dir);
                let mut cache = clusvc_manifest::ParseCache::default();
                gitops::sync_once(store.as_ref(), &dir, &sync, events.as_ref(), &mut cache).await;
                if let Err(e) = gitops::spawn(
                    store.clone(),
                    dir,
                    sync,
                    events as Arc<dyn clusvc_agent::events::Events>,
                    resync,
                    cache,
                ) {
                    tracing::error!("cannot watch the manifests: {e}");
                }
            }
            won.lost().await;
            lead.depose();
            tracing::error!(
                "{name} lost leadership (epoch {}): exiting, so that it starts again as a follower",
                won.epoch
            );
            std::process::exit(1);
        });
    }
    let shutdown = Arc::new(tokio::sync::Notify::new());
    let policy = run::policy_of(&api_setup, config.api.allow_read_all);
    let app = Arc::new(App {
        store: store.clone(),
        shutdown: shutdown.clone(),
        cache: controller.reader(),
        controller: Arc::new(ClusterOps {
            controller,
            store: store.clone(),
        }),
        policy,
        sync,
        wanted: Mutex::default(),
    });
    run::serve_api(
        app,
        api_setup,
        shutdown,
        &format!("clusvc server {name}, store etcd:{}", urls.join(",")),
    )
    .await
}

/// Events written in one transaction at most: with the deletes of as many
/// old ones, within etcd's default `--max-txn-ops` (128).
const EVENTS_PER_TXN: usize = 60;

/// Runs a startup step again while the store is unavailable, for up to
/// [`STARTUP_PATIENCE`].
async fn retry_unavailable<T, Fut>(
    what: &str,
    unavailable: impl Fn(&Error) -> bool,
    mut step: impl FnMut() -> Fut,
) -> Result<T, Error>
where
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let deadline = tokio::time::Instant::now() + STARTUP_PATIENCE;
    let mut pause = Duration::from_millis(100);
    loop {
        match step().await {
            Err(e) if unavailable(&e) && tokio::time::Instant::now() + pause < deadline => {
                tracing::warn!("{what}: {e}; trying again in {pause:?}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            r => return r,
        }
    }
}

/// How long a starting server waits for an unavailable store.
const STARTUP_PATIENCE: Duration = Duration::from_secs(30);

/// Records the events this server's controller emits in the store (the
/// newest [`EVENTS_KEPT`] are kept) and shows every server's, this one's
/// included, as they arrive.
pub async fn share_events<S: Store>(
    store: Arc<S>,
    events: Arc<EventLog>,
    server: &str,
) -> Result<(), Error> {
    let mut watch = store.watch(keys::EVENTS).await?;
    let mut kept: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    for kv in &watch.initial {
        kept.push_back(kv.key.clone());
        if let Ok(e) = serde_json::from_slice::<Event>(&kv.value) {
            events.ingest(e);
        }
    }
    let shown = events.clone();
    tokio::spawn(async move {
        while let Some((_, e)) = watch.events.recv().await {
            if let WatchEvent::Put(kv) = e
                && let Ok(e) = serde_json::from_slice::<Event>(&kv.value)
            {
                shown.ingest(e);
            }
        }
    });
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    events.publish_to(tx);
    let server = server.to_string();
    tokio::spawn(async move {
        let mut seq = 0u64;
        while let Some(first) = rx.recv().await {
            // Whatever else is waiting goes in the same transaction: a
            // burst (10,000 services waiting at once) is a few hundred
            // writes, not 10,000, and does not delay the controller's own.
            let mut batch = vec![first];
            while batch.len() < EVENTS_PER_TXN {
                match rx.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
            let mut writes = Vec::with_capacity(batch.len() * 2);
            for e in batch {
                seq += 1;
                let ms = e.at.map_or(0, |t| t.as_millis());
                let key = format!("{}{ms:015}-{server}-{seq:012}", keys::EVENTS);
                writes.push(clusvc_store::Write::Put {
                    key: key.clone(),
                    value: serde_json::to_vec(&e).unwrap_or_default(),
                    lease: None,
                });
                kept.push_back(key);
            }
            while kept.len() > EVENTS_KEPT {
                if let Some(old) = kept.pop_front() {
                    writes.push(clusvc_store::Write::Delete { key: old });
                }
            }
            let txn = clusvc_store::Txn {
                success: writes,
                ..clusvc_store::Txn::default()
            };
            if let Err(err) = store.txn(txn).await {
                tracing::warn!("cannot record events in the store: {err}");
            }
        }
    });
    Ok(())
}

/// Operator requests on a cluster server: checked against what this
/// server knows, recorded in the store, carried out by the leader.
struct ClusterOps<S: Store> {
    controller: Arc<Controller<Lead<S>>>,
    store: Arc<S>,
}

impl<S: Store> ClusterOps<S> {
    async fn hand_on(&self, name: &str, request: Request) -> Result<(), OperateError> {
        self.controller.precheck(name, &request)?;
        let key = format!("{}{name}", keys::REQUESTS);
        let mut watch = self
            .store
            .watch(&key)
            .await
            .map_err(|e| OperateError::Controller(e.into()))?;
        self.store
            .put(
                &key,
                serde_json::to_vec(&request).expect("requests serialize"),
            )
            .await
            .map_err(|e| OperateError::Controller(e.into()))?;
        let taken = tokio::time::timeout(REQUEST_WAIT, async {
            while let Some((rev, e)) = watch.events.recv().await {
                if matches!(e, WatchEvent::Delete(_)) {
                    return Some(rev);
                }
            }
            None
        })
        .await;
        let Ok(Some(rev)) = taken else {
            return Err(OperateError::NoLeader(REQUEST_WAIT));
        };
        // The leader removes a request once it has carried it out: answer
        // when this server's view includes that (a client that reads next
        // sees the request's effect), within a bound.
        let reader = self.controller.reader();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while reader.read().seen() < rev && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}

impl<S: Store> Operations for ClusterOps<S> {
    fn events(&self) -> &Arc<EventLog> {
        &self.controller.events
    }

    fn metrics(&self) -> &Arc<Metrics> {
        &self.controller.metrics
    }

    fn note_checked(&self, member: &str, services: &[String]) {
        self.controller.note_checked(member, services);
    }

    fn operate<'a>(
        &'a self,
        name: &'a str,
        request: Request,
    ) -> BoxFuture<'a, Result<(), OperateError>> {
        Box::pin(self.hand_on(name, request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_are_etcd_endpoints() {
        assert_eq!(
            endpoints("etcd:http://127.0.0.1:2379, https://10.0.0.1:2379").unwrap(),
            ["http://127.0.0.1:2379", "https://10.0.0.1:2379"]
        );
        for bad in [
            "",
            "etcd:",
            "http://x",
            "etcd:127.0.0.1:2379",
            "consul:http://x",
        ] {
            let e = endpoints(bad).unwrap_err();
            assert!(e.to_string().contains("--store"), "{bad}: {e}");
        }
    }
}
