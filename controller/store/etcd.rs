//! The etcd backend (feature `etcd`): the [`Store`] trait on an etcd v3
//! cluster, for clusters that outgrow one server. Revisions, compare-and-
//! swap transactions, prefix watches and leases are etcd's own, so the
//! semantics are the embedded backend's (one contract suite runs against
//! both: `contract.rs`).
//!
//! Watches survive a broken stream or an etcd leader change: they resume
//! from the revision after the last event delivered. If that revision was
//! compacted meanwhile, the prefix is listed again and the difference is
//! delivered as puts and deletes, so a watcher's view still converges.

use std::collections::HashMap;
use std::time::Duration;

use etcd_client::{
    Client, Compare as EtcdCompare, CompareOp, ConnectOptions, DeleteOptions, EventType,
    GetOptions, KvClient, PutOptions, TxnOp, WatchClient, WatchOptions,
};
use tokio::sync::mpsc;

use super::{
    Compare, Error, KeyValue, LeaseId, Result, Revision, Store, Txn, TxnResult, Watch, WatchEvent,
    Write,
};

/// How long one request may take before it counts as a failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest answer taken from etcd (a list, or the events of one
/// transaction in a watch): gRPC's default of 4 MiB is less than the
/// events of one apply of 10,000 services.
const MAX_MESSAGE: usize = 256 << 20;

/// The etcd backend.
#[derive(Clone)]
pub struct Etcd {
    client: Client,
    kv: KvClient,
    watch: WatchClient,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Etcd")
    }
}

fn unavailable(e: etcd_client::Error) -> Error {
    let text = e.to_string();
    if text.contains("lease not found") {
        // The id is not in the message; callers know it.
        return Error::LeaseNotFound(0);
    }
    if text.contains("too many operations in txn request")
        || text.contains("request is too large")
        || text.contains("message length too large")
        || text.contains("larger than max")
    {
        return Error::TooLarge(format!("etcd: {text}"));
    }
    Error::Unavailable(format!("etcd: {text}"))
}

/// Whether a request failed before it reached any etcd member (the
/// client's balanced channel picked an endpoint that is down): safe to send
/// again, and the next try goes to another endpoint.
fn not_sent(e: &etcd_client::Error) -> bool {
    let text = e.to_string();
    text.contains("tcp connect error") || text.contains("error trying to connect")
}

/// Runs a request, sending it again (up to 5 times, 20 ms apart) while it
/// fails before reaching a member: one etcd member down must not fail
/// requests the others would answer.
async fn send<T, F, Fut>(mut op: F) -> std::result::Result<T, etcd_client::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
{
    let mut tries = 0;
    loop {
        match op().await {
            Err(e) if not_sent(&e) && tries < 5 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            r => return r,
        }
    }
}

fn kv_of(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision().max(0) as Revision,
        mod_revision: kv.mod_revision().max(0) as Revision,
        version: kv.version().max(0) as u64,
        lease: (kv.lease() != 0).then_some(kv.lease() as LeaseId),
    }
}

fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> Revision {
    header.map_or(0, |h| h.revision().max(0) as Revision)
}

impl Etcd {
    /// Connects to the cluster at these endpoints (`http://127.0.0.1:2379`;
    /// `https://` with a CA when `tls` is given).
    pub async fn connect(endpoints: &[String], tls: Option<Tls>) -> Result<Self> {
        let mut options = ConnectOptions::new()
            .with_timeout(REQUEST_TIMEOUT)
            .with_connect_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
        if let Some(t) = tls {
            let mut config = etcd_client::TlsOptions::new()
                .ca_certificate(etcd_client::Certificate::from_pem(t.ca));
            if let Some((cert, key)) = t.identity {
                config = config.identity(etcd_client::Identity::from_pem(cert, key));
            }
            options = options.with_tls(config);
        }
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(unavailable)?;
        let kv = client.kv_client().max_decoding_message_size(MAX_MESSAGE);
        let watch = client.watch_client().max_decoding_message_size(MAX_MESSAGE);
        let etcd = Self { client, kv, watch };
        // Fail now, not at the first use, when no endpoint answers.
        etcd.get("/clusvc/meta/ping").await?;
        Ok(etcd)
    }

    fn client(&self) -> Client {
        self.client.clone()
    }

    fn kv(&self) -> KvClient {
        self.kv.clone()
    }
}

/// TLS settings of the connection to etcd.
#[derive(Debug, Clone)]
pub struct Tls {
    /// The CA (PEM) that signed etcd's certificates.
    pub ca: Vec<u8>,
    /// A client certificate and key (PEM), when etcd asks for one.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

fn compare(c: &Compare) -> EtcdCompare {
    match c {
        Compare::ModRevision(k, r) => {
            EtcdCompare::mod_revision(k.as_str(), CompareOp::Equal, *r as i64)
        }
        Compare::Value(k, v) => EtcdCompare::value(k.as_str(), CompareOp::Equal, v.clone()),
        Compare::Exists(k) => EtcdCompare::create_revision(k.as_str(), CompareOp::Greater, 0),
        Compare::Missing(k) => EtcdCompare::create_revision(k.as_str(), CompareOp::Equal, 0),
    }
}

fn op(w: &Write) -> TxnOp {
    match w {
        Write::Put { key, value, lease } => TxnOp::put(
            key.as_str(),
            value.clone(),
            lease.map(|l| PutOptions::new().with_lease(l as i64)),
        ),
        Write::Delete { key } => TxnOp::delete(key.as_str(), None),
        Write::DeletePrefix { prefix } => {
            TxnOp::delete(prefix.as_str(), Some(DeleteOptions::new().with_prefix()))
        }
    }
}

/// etcd refuses a transaction that writes one key twice; the embedded
/// store applies writes in order. Keep the last write of each key (and a
/// prefix delete before the puts that follow it, which etcd accepts only
/// when they do not overlap: those puts are applied in a second step of
/// the same meaning, see [`split_overlaps`]).
fn last_write_wins(writes: &[Write]) -> Vec<Write> {
    let mut out: Vec<Write> = Vec::new();
    for w in writes {
        if let Write::Put { key, .. } | Write::Delete { key } = w {
            out.retain(
                |o| !matches!(o, Write::Put { key: k, .. } | Write::Delete { key: k } if k == key),
            );
        }
        out.push(w.clone());
    }
    out
}

/// Whether a prefix delete in `writes` covers a key another write names
/// (etcd: "duplicate key given in txn request").
fn split_overlaps(writes: &[Write]) -> bool {
    let prefixes: Vec<&str> = writes
        .iter()
        .filter_map(|w| match w {
            Write::DeletePrefix { prefix } => Some(prefix.as_str()),
            _ => None,
        })
        .collect();
    writes.iter().any(|w| match w {
        Write::Put { key, .. } | Write::Delete { key } => {
            prefixes.iter().any(|p| key.starts_with(p))
        }
        Write::DeletePrefix { .. } => false,
    })
}

impl Store for Etcd {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let resp = send(|| async { self.kv().get(key, None).await })
            .await
            .map_err(unavailable)?;
        Ok(resp.kvs().first().map(kv_of))
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision)> {
        let resp = send(|| async {
            self.kv()
                .get(prefix, Some(GetOptions::new().with_prefix()))
                .await
        })
        .await
        .map_err(unavailable)?;
        Ok((
            resp.kvs().iter().map(kv_of).collect(),
            revision_of(resp.header()),
        ))
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResult> {
        let success = last_write_wins(&txn.success);
        let failure = last_write_wins(&txn.failure);
        if split_overlaps(&success) || split_overlaps(&failure) {
            return Err(Error::Unavailable(
                "etcd: a transaction may not delete a prefix and write a key under it".into(),
            ));
        }
        let t = etcd_client::Txn::new()
            .when(txn.compare.iter().map(compare).collect::<Vec<_>>())
            .and_then(success.iter().map(op).collect::<Vec<_>>())
            .or_else(failure.iter().map(op).collect::<Vec<_>>());
        // Sent again only when it never reached a member (not applied).
        let resp = send(|| async { self.kv().txn(t.clone()).await })
            .await
            .map_err(unavailable)?;
        Ok(TxnResult {
            succeeded: resp.succeeded(),
            revision: revision_of(resp.header()),
        })
    }

    async fn watch(&self, prefix: &str) -> Result<Watch> {
        let (initial, revision) = self.list(prefix).await?;
        let (tx, events) = mpsc::unbounded_channel();
        let known: HashMap<String, KeyValue> = initial
            .iter()
            .map(|kv| (kv.key.clone(), kv.clone()))
            .collect();
        tokio::spawn(follow(
            self.watch.clone(),
            self.kv(),
            prefix.to_string(),
            revision,
            known,
            tx,
        ));
        Ok(Watch {
            initial,
            revision,
            events,
        })
    }

    async fn grant(&self, ttl: Duration) -> Result<LeaseId> {
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let resp = send(|| async { self.client().lease_grant(secs.max(1) as i64, None).await })
            .await
            .map_err(unavailable)?;
        Ok(resp.id() as LeaseId)
    }

    async fn keepalive(&self, lease: LeaseId) -> Result<()> {
        let (mut keeper, mut stream) =
            send(|| async { self.client().lease_keep_alive(lease as i64).await })
                .await
                .map_err(unavailable)?;
        keeper.keep_alive().await.map_err(unavailable)?;
        match tokio::time::timeout(REQUEST_TIMEOUT, stream.message()).await {
            Ok(Ok(Some(r))) if r.ttl() > 0 => Ok(()),
            Ok(Ok(Some(_))) => Err(Error::LeaseNotFound(lease)),
            Ok(Ok(None)) => Err(Error::Unavailable("etcd: keep-alive stream ended".into())),
            Ok(Err(e)) => Err(match unavailable(e) {
                Error::LeaseNotFound(_) => Error::LeaseNotFound(lease),
                e => e,
            }),
            Err(_) => Err(Error::Unavailable("etcd: keep-alive timed out".into())),
        }
    }

    async fn revoke(&self, lease: LeaseId) -> Result<()> {
        match send(|| async { self.client().lease_revoke(lease as i64).await }).await {
            Ok(_) => Ok(()),
            Err(e) => Err(match unavailable(e) {
                Error::LeaseNotFound(_) => Error::LeaseNotFound(lease),
                e => e,
            }),
        }
    }
}

/// Longest pause before a broken or refused watch is made again.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Delivers the changes under `prefix` after `from`, across broken streams
/// and compactions, until the receiver is dropped.
async fn follow(
    mut client: WatchClient,
    mut kv: KvClient,
    prefix: String,
    mut from: Revision,
    mut known: HashMap<String, KeyValue>,
    tx: mpsc::UnboundedSender<(Revision, WatchEvent)>,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        if tx.is_closed() {
            return;
        }
        let options = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_start_revision(from as i64 + 1);
        let mut stream = match client.watch(prefix.as_str(), Some(options)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("etcd watch of {prefix} failed: {e}; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        loop {
            let msg = tokio::select! {
                m = stream.message() => m,
                () = tx.closed() => return,
            };
            let resp = match msg {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(
                        "etcd watch of {prefix} broke: {e}; resuming at {} in {backoff:?}",
                        from + 1
                    );
                    // Not at once: a stream that breaks on every try
                    // (an answer too large, a member refusing) must not
                    // become a loop hammering etcd.
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    break;
                }
            };
            if !resp.events().is_empty() {
                // Progress: the next break starts from a short pause.
                backoff = Duration::from_millis(50);
            }
            if resp.compact_revision() > 0 {
                // History we needed is gone: list again and deliver the
                // difference.
                tracing::warn!(
                    "etcd compacted past revision {from} of the watch on {prefix}; listing it again"
                );
                if relist(&mut kv, &prefix, &mut from, &mut known, &tx)
                    .await
                    .is_err()
                {
                    tokio::time::sleep(backoff).await;
                }
                break;
            }
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                let rev = kv.mod_revision().max(0) as Revision;
                let event = match ev.event_type() {
                    EventType::Put => {
                        let kv = kv_of(kv);
                        known.insert(kv.key.clone(), kv.clone());
                        WatchEvent::Put(kv)
                    }
                    EventType::Delete => {
                        let key = String::from_utf8_lossy(kv.key()).into_owned();
                        let last = ev.prev_kv().map(kv_of).or_else(|| known.get(&key).cloned());
                        known.remove(&key);
                        WatchEvent::Delete(last.unwrap_or(KeyValue {
                            key,
                            value: Vec::new(),
                            create_revision: 0,
                            mod_revision: rev,
                            version: 0,
                            lease: None,
                        }))
                    }
                };
                from = from.max(rev);
                if tx.send((rev, event)).is_err() {
                    return;
                }
            }
        }
    }
}

/// Lists `prefix` and delivers what changed since `known` as events.
async fn relist(
    client: &mut KvClient,
    prefix: &str,
    from: &mut Revision,
    known: &mut HashMap<String, KeyValue>,
    tx: &mpsc::UnboundedSender<(Revision, WatchEvent)>,
) -> Result<()> {
    let resp = client
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .map_err(unavailable)?;
    let rev = revision_of(resp.header());
    let now: HashMap<String, KeyValue> = resp
        .kvs()
        .iter()
        .map(kv_of)
        .map(|kv| (kv.key.clone(), kv))
        .collect();
    for (k, old) in known.iter() {
        if !now.contains_key(k) {
            let _ = tx.send((rev, WatchEvent::Delete(old.clone())));
        }
    }
    for (k, kv) in &now {
        if known
            .get(k)
            .is_none_or(|o| o.mod_revision != kv.mod_revision)
        {
            let _ = tx.send((rev, WatchEvent::Put(kv.clone())));
        }
    }
    *known = now;
    *from = rev;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-member etcd on free loopback ports, in its own data
    /// directory; killed on drop.
    struct EtcdProcess {
        child: std::process::Child,
        url: String,
        _dir: tempfile::TempDir,
    }

    impl Drop for EtcdProcess {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// A one-member etcd on `data`, serving `url` (a fresh peer port).
    fn spawn_etcd(data: &std::path::Path, url: &str) -> std::process::Child {
        let peer = format!("http://127.0.0.1:{}", free_port());
        std::process::Command::new("etcd")
            .args(["--name", "t", "--data-dir"])
            .arg(data)
            .args(["--listen-client-urls", url, "--advertise-client-urls", url])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("t={peer}")])
            // Sized as docs/cluster.md advises for 10,000-service applies.
            .args(["--max-txn-ops", "25000", "--max-request-bytes", "10485760"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    /// `None` (and a note) where no etcd is installed; under `CI=true` a
    /// missing etcd fails the test.
    fn etcd() -> Option<EtcdProcess> {
        let installed = std::process::Command::new("etcd")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "etcd is not installed (Debian etcd-server), and CI=true allows no skipped test"
            );
            eprintln!("skipped: etcd is not installed (Debian etcd-server)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{}", free_port());
        let child = spawn_etcd(&dir.path().join("data"), &url);
        Some(EtcdProcess {
            child,
            url,
            _dir: dir,
        })
    }

    async fn connect(e: &EtcdProcess) -> Etcd {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            match Etcd::connect(std::slice::from_ref(&e.url), None).await {
                Ok(c) => return c,
                Err(err) if std::time::Instant::now() > deadline => {
                    panic!("etcd at {} did not come up: {err}", e.url)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keeps_the_store_contract() {
        let Some(e) = etcd() else { return };
        let s = connect(&e).await;
        crate::contract::all(&s, "/contract").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn elects_one_leader_and_fences_the_old_one() {
        let Some(e) = etcd() else { return };
        let s = std::sync::Arc::new(connect(&e).await);
        crate::election::tests::failover(s).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_transaction_over_etcds_limits_is_a_clear_error_and_writes_nothing() {
        // This etcd takes 25,000 operations and 10 MiB.
        let Some(e) = etcd() else { return };
        let s = connect(&e).await;
        let many = Txn {
            compare: vec![],
            success: (0..25_001)
                .map(|i| Write::Put {
                    key: format!("/big/{i}"),
                    value: b"x".to_vec(),
                    lease: None,
                })
                .collect(),
            failure: vec![],
        };
        let err = s.txn(many).await.unwrap_err();
        assert!(matches!(err, Error::TooLarge(_)), "{err:?}");
        assert!(err.to_string().contains("--max-txn-ops"), "{err}");
        let huge = Txn {
            compare: vec![],
            success: vec![Write::Put {
                key: "/big/huge".into(),
                value: vec![b'x'; 11 << 20],
                lease: None,
            }],
            failure: vec![],
        };
        let err = s.txn(huge).await.unwrap_err();
        assert!(matches!(err, Error::TooLarge(_)), "{err:?}");
        assert!(s.list("/big/").await.unwrap().0.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_watch_delivers_a_transaction_larger_than_grpcs_default_message() {
        // 100 keys of 60 KiB in one transaction: one watch answer of about
        // 6 MiB, over gRPC's default limit of 4 MiB (the events of an apply
        // of 10,000 services are about 5.5 MiB). The watch used to break
        // on it and be made again at once, forever.
        let Some(e) = etcd() else { return };
        let s = connect(&e).await;
        let mut w = s.watch("/big/").await.unwrap();
        let r = s
            .txn(Txn {
                compare: vec![],
                success: (0..100)
                    .map(|i| Write::Put {
                        key: format!("/big/{i:03}"),
                        value: vec![b'x'; 60 << 10],
                        lease: None,
                    })
                    .collect(),
                failure: vec![],
            })
            .await
            .unwrap();
        assert!(r.succeeded);
        for i in 0..100 {
            let (_, ev) = tokio::time::timeout(Duration::from_secs(10), w.events.recv())
                .await
                .expect("the watch delivered the transaction")
                .unwrap();
            assert_eq!(ev.key(), format!("/big/{i:03}"));
        }
        assert_eq!(s.list("/big/").await.unwrap().0.len(), 100);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_watch_resumes_after_etcd_restarts() {
        let Some(mut e) = etcd() else { return };
        let s = connect(&e).await;
        let mut w = s.watch("/r/").await.unwrap();
        s.put("/r/a", b"1".to_vec()).await.unwrap();
        let (_, first) = w.events.recv().await.unwrap();
        assert_eq!(first.key(), "/r/a");
        // Restart etcd on the same data and ports.
        let _ = e.child.kill();
        let _ = e.child.wait();
        e.child = spawn_etcd(&e._dir.path().join("data"), &e.url);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while s.put("/r/b", b"2".to_vec()).await.is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "etcd did not come back"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (_, second) = tokio::time::timeout(Duration::from_secs(20), w.events.recv())
            .await
            .expect("the watch resumed")
            .unwrap();
        assert_eq!(second.key(), "/r/b");
    }

    #[test]
    fn a_key_written_twice_keeps_its_last_write() {
        let put = |k: &str, v: &str| Write::Put {
            key: k.into(),
            value: v.into(),
            lease: None,
        };
        let w = last_write_wins(&[
            put("/a", "1"),
            Write::Delete { key: "/a".into() },
            put("/b", "2"),
            put("/a", "3"),
        ]);
        assert_eq!(w, vec![put("/b", "2"), put("/a", "3")]);
        assert!(split_overlaps(&[
            Write::DeletePrefix {
                prefix: "/x/".into()
            },
            put("/x/1", "v")
        ]));
        assert!(!split_overlaps(&[
            Write::DeletePrefix {
                prefix: "/x/".into()
            },
            put("/y/1", "v")
        ]));
    }
}
