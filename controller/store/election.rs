//! Leader election on the store, and writes guarded by leadership.
//!
//! Servers that share a store [`campaign`] for one key, [`LEADER`],
//! created only if missing and attached to the campaigner's lease: the
//! winner is the one whose create succeeded; the key's revision at that
//! moment is its **epoch**. It keeps the lease alive; when it cannot (the
//! store unreachable for longer than the TTL, the lease gone) it learns so
//! through [`Leadership::lost`] and must stop acting.
//!
//! [`Guarded`] wraps the store for the leader: every transaction also
//! compares the leader key's revision with the epoch, so once another
//! server has been elected, the old leader's writes fail
//! ([`Error::NotLeader`]) instead of racing the new one's.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::{
    Compare, Error, KeyValue, LeaseId, Result, Revision, Store, Txn, TxnResult, Watch, Write,
};

/// The election key.
pub const LEADER: &str = "/clusvc/leader";

/// Won leadership.
#[derive(Debug, Clone)]
pub struct Leadership {
    /// The leader key's revision when it was won: the term's epoch.
    pub epoch: Revision,
    /// The lease the leader key is attached to.
    pub lease: LeaseId,
    lost: watch::Receiver<bool>,
}

impl Leadership {
    /// Resolves once leadership is lost (the lease could not be renewed).
    pub async fn lost(&self) {
        let mut rx = self.lost.clone();
        let _ = rx.wait_for(|l| *l).await;
    }

    /// Whether it is already lost.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }
}

/// Campaigns until elected: tries to create [`LEADER`] as `name` on a new
/// lease of `ttl`; while another holds it, waits for it to go. Once
/// elected, renews the lease every `ttl / 3` in the background.
pub async fn campaign<S: Store>(store: Arc<S>, name: &str, ttl: Duration) -> Leadership {
    let mut backoff = Duration::from_millis(50);
    loop {
        match try_once(store.as_ref(), name, ttl).await {
            Ok(Some((epoch, lease))) => {
                let (tx, rx) = watch::channel(false);
                tokio::spawn(keep(store.clone(), lease, ttl, tx));
                tracing::info!("elected leader {name} (epoch {epoch})");
                return Leadership {
                    epoch,
                    lease,
                    lost: rx,
                };
            }
            Ok(None) => {
                // Someone leads: wait for the key to go (its holder's lease
                // expiring), watching it, then try again.
                backoff = Duration::from_millis(50);
                wait_for_vacancy(store.as_ref(), ttl).await;
            }
            Err(e) => {
                tracing::warn!("campaign for leadership failed: {e}; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ttl);
            }
        }
    }
}

async fn try_once<S: Store>(
    store: &S,
    name: &str,
    ttl: Duration,
) -> Result<Option<(Revision, LeaseId)>> {
    let lease = store.grant(ttl).await?;
    let t = store
        .txn(Txn {
            compare: vec![Compare::Missing(LEADER.into())],
            success: vec![Write::Put {
                key: LEADER.into(),
                value: name.as_bytes().to_vec(),
                lease: Some(lease),
            }],
            failure: vec![],
        })
        .await?;
    if t.succeeded {
        return Ok(Some((t.revision, lease)));
    }
    let _ = store.revoke(lease).await;
    Ok(None)
}

async fn wait_for_vacancy<S: Store>(store: &S, ttl: Duration) {
    let Ok(mut w) = store.watch(LEADER).await else {
        tokio::time::sleep(ttl / 3).await;
        return;
    };
    if !w.initial.iter().any(|kv| kv.key == LEADER) {
        return;
    }
    loop {
        // A re-check now and then covers a watch that broke silently.
        match tokio::time::timeout(ttl, w.events.recv()).await {
            Ok(Some((_, crate::WatchEvent::Delete(kv)))) if kv.key == LEADER => return,
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(_) => {
                if store.get(LEADER).await.is_ok_and(|k| k.is_none()) {
                    return;
                }
            }
        }
    }
}

/// Renews the leader's lease every `ttl / 3`; reports the loss once a
/// renewal is refused or none succeeded for `ttl` (measured from the time
/// the last successful one was sent).
async fn keep<S: Store>(store: Arc<S>, lease: LeaseId, ttl: Duration, lost: watch::Sender<bool>) {
    let mut last_sent_ok = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(ttl / 3).await;
        let sent = tokio::time::Instant::now();
        let renewed = tokio::time::timeout(ttl / 3, store.keepalive(lease)).await;
        match renewed {
            Ok(Ok(())) => last_sent_ok = sent,
            Ok(Err(Error::LeaseNotFound(_))) => {
                tracing::error!("leadership lost: the lease expired");
                let _ = lost.send(true);
                return;
            }
            Ok(Err(e)) => tracing::warn!("renewing the leadership lease failed: {e}"),
            Err(_) => tracing::warn!("renewing the leadership lease timed out"),
        }
        if last_sent_ok.elapsed() >= ttl {
            tracing::error!("leadership lost: no renewal succeeded for {ttl:?}");
            let _ = lost.send(true);
            return;
        }
    }
}

/// The store as the leader of `epoch` writes it: every transaction is
/// conditional on still being the leader.
#[derive(Debug)]
pub struct Guarded<S> {
    inner: Arc<S>,
    epoch: Revision,
}

impl<S> Guarded<S> {
    /// Guards `inner` with leadership of `epoch`.
    pub fn new(inner: Arc<S>, epoch: Revision) -> Self {
        Self { inner, epoch }
    }
}

impl<S: Store> Store for Guarded<S> {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.inner.get(key).await
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision)> {
        self.inner.list(prefix).await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResult> {
        if !txn.failure.is_empty() {
            // The failure branch would also run when only the guard fails.
            return Err(Error::Unavailable(
                "a guarded transaction cannot have a failure branch".into(),
            ));
        }
        let mut compare = vec![Compare::ModRevision(LEADER.into(), self.epoch)];
        compare.extend(txn.compare);
        let t = self
            .inner
            .txn(Txn {
                compare,
                success: txn.success,
                failure: vec![],
            })
            .await?;
        if !t.succeeded {
            let leader = self.inner.get(LEADER).await?;
            if leader.is_none_or(|kv| kv.mod_revision != self.epoch) {
                return Err(Error::NotLeader(self.epoch));
            }
        }
        Ok(t)
    }

    async fn watch(&self, prefix: &str) -> Result<Watch> {
        self.inner.watch(prefix).await
    }

    async fn grant(&self, ttl: Duration) -> Result<LeaseId> {
        self.inner.grant(ttl).await
    }

    async fn keepalive(&self, lease: LeaseId) -> Result<()> {
        self.inner.keepalive(lease).await
    }

    async fn revoke(&self, lease: LeaseId) -> Result<()> {
        self.inner.revoke(lease).await
    }
}

/// The store as a server that may become the leader writes it: before it
/// is elected (and after [`Lead::depose`]) every write fails with
/// [`Error::NotLeader`]; once [`Lead::elect`]ed, writes are [`Guarded`] by
/// its epoch. Reads always pass through. (A server builds its controller
/// over this before the election, so the controller's cache is warm when
/// it takes over.)
#[derive(Debug)]
pub struct Lead<S> {
    inner: Arc<S>,
    epoch: std::sync::atomic::AtomicU64,
}

impl<S> Lead<S> {
    /// Not the leader yet.
    pub fn new(inner: Arc<S>) -> Self {
        Self {
            inner,
            epoch: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Elected at `epoch`: writes are guarded by it from now on.
    pub fn elect(&self, epoch: Revision) {
        self.epoch.store(epoch, std::sync::atomic::Ordering::SeqCst);
    }

    /// No longer the leader: every write fails.
    pub fn depose(&self) {
        self.epoch.store(0, std::sync::atomic::Ordering::SeqCst);
    }

    /// The epoch of the current term (0 when not the leader).
    pub fn epoch(&self) -> Revision {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The store underneath.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }
}

impl<S: Store> Store for Lead<S> {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.inner.get(key).await
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision)> {
        self.inner.list(prefix).await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResult> {
        match self.epoch() {
            0 => Err(Error::NotLeader(0)),
            epoch => Guarded::new(self.inner.clone(), epoch).txn(txn).await,
        }
    }

    async fn watch(&self, prefix: &str) -> Result<Watch> {
        self.inner.watch(prefix).await
    }

    async fn grant(&self, ttl: Duration) -> Result<LeaseId> {
        self.inner.grant(ttl).await
    }

    async fn keepalive(&self, lease: LeaseId) -> Result<()> {
        self.inner.keepalive(lease).await
    }

    async fn revoke(&self, lease: LeaseId) -> Result<()> {
        self.inner.revoke(lease).await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One store, two campaigners: one wins; when it stops renewing, the
    /// other is elected within the TTL (plus the store's expiry slack), and
    /// the first one's guarded writes fail from then on.
    pub(crate) async fn failover<S: Store>(store: Arc<S>) {
        let ttl = Duration::from_secs(2);
        let a = campaign(store.clone(), "a", ttl).await;
        let ga = Guarded::new(store.clone(), a.epoch);
        ga.put("/e/x", b"from a".to_vec()).await.unwrap();
        // b waits while a leads.
        let b = tokio::spawn({
            let store = store.clone();
            async move { campaign(store, "b", ttl).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!b.is_finished(), "b was elected while a leads");
        // a dies: its lease is no longer renewed (revoke stands in for the
        // process ending; expiry is covered by the leases contract).
        store.revoke(a.lease).await.unwrap();
        let b = tokio::time::timeout(ttl + Duration::from_secs(5), b)
            .await
            .expect("b elected in time")
            .unwrap();
        assert!(b.epoch > a.epoch);
        // a's writes now fail; b's succeed.
        let err = ga.put("/e/x", b"late a".to_vec()).await.unwrap_err();
        assert!(matches!(err, Error::NotLeader(_)), "{err}");
        let gb = Guarded::new(store.clone(), b.epoch);
        gb.put("/e/x", b"from b".to_vec()).await.unwrap();
        assert_eq!(store.get("/e/x").await.unwrap().unwrap().value, b"from b");
        // A guarded compare that fails on its own is not a lost leadership.
        let t = gb
            .txn(Txn {
                compare: vec![Compare::Missing("/e/x".into())],
                success: vec![Write::Delete { key: "/e/x".into() }],
                failure: vec![],
            })
            .await
            .unwrap();
        assert!(!t.succeeded);
    }

    #[tokio::test]
    async fn the_embedded_store_elects_one_leader_and_fences_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(crate::embedded::Embedded::open(dir.path()).unwrap());
        failover(s).await;
    }

    #[tokio::test]
    async fn a_server_writes_only_while_it_leads() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(crate::embedded::Embedded::open(dir.path()).unwrap());
        let lead = Lead::new(s.clone());
        let err = lead.put("/e/x", b"early".to_vec()).await.unwrap_err();
        assert!(matches!(err, Error::NotLeader(0)), "{err}");
        let a = campaign(s.clone(), "a", Duration::from_secs(2)).await;
        lead.elect(a.epoch);
        lead.put("/e/x", b"leading".to_vec()).await.unwrap();
        assert_eq!(lead.get("/e/x").await.unwrap().unwrap().value, b"leading");
        // Another term begins (the old key gone, a new one made).
        s.revoke(a.lease).await.unwrap();
        let b = campaign(s.clone(), "b", Duration::from_secs(2)).await;
        assert!(b.epoch > a.epoch);
        let err = lead.put("/e/x", b"stale".to_vec()).await.unwrap_err();
        assert!(matches!(err, Error::NotLeader(_)), "{err}");
        lead.depose();
        assert!(matches!(
            lead.put("/e/x", b"deposed".to_vec()).await.unwrap_err(),
            Error::NotLeader(0)
        ));
        assert_eq!(s.get("/e/x").await.unwrap().unwrap().value, b"leading");
    }

    #[tokio::test]
    async fn a_leader_whose_lease_expires_learns_it_lost() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(crate::embedded::Embedded::open(dir.path()).unwrap());
        let ttl = Duration::from_millis(600);
        let a = campaign(s.clone(), "a", ttl).await;
        assert!(!a.is_lost());
        // The lease is taken away (as an expiry the holder did not see).
        s.revoke(a.lease).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), a.lost())
            .await
            .expect("the loss is noticed within a renewal period");
    }
}
