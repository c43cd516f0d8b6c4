//! The embedded store: a sorted map in memory, made durable by a
//! write-ahead log in the state directory.
//!
//! Every transaction that writes is appended to `wal` as one record
//! (length, CRC-32, payload) and the log is `fdatasync`ed before the
//! transaction is applied and acknowledged, so an acknowledged write
//! survives `kill -9` or power loss. On open, `snapshot` is loaded and the
//! log replayed; a torn last record (a write cut short, never acknowledged)
//! is cut off, and a record that fails its checksum with more log after it
//! stops the open with an error naming the offset: acknowledged writes are
//! never dropped silently.
//! When the log grows past a limit it is folded into a new snapshot
//! (written aside, fsynced, renamed).
//!
//! Leases live in memory: after a restart the keys that were attached to a
//! lease are gone, as if the lease had expired (their holders re-register).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::mpsc;

use super::{
    Compare, Error, KeyValue, LeaseId, Result, Revision, Store, Txn, TxnResult, Watch, WatchEvent,
    Write,
};

/// Log size that triggers a snapshot.
const COMPACT_AT: u64 = 32 << 20;

/// How long opening waits for the directory's lock.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// The embedded backend.
#[derive(Clone)]
pub struct Embedded {
    inner: Arc<Mutex<Inner>>,
    _lock: Arc<File>,
}

/// Takes the directory's exclusive lock: two processes writing one log would
/// corrupt it (and could each run the same services).
pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    use std::os::fd::AsRawFd;
    let path = dir.join("lock");
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    // A child that a crashed holder forked keeps the lock until it execs
    // (a few milliseconds while it joins its cgroup): wait that long, not
    // for a live holder.
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    let r = loop {
        // SAFETY: flock on a descriptor we own.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r == 0 || std::time::Instant::now() >= deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if r != 0 {
        let holder = std::fs::read_to_string(&path).unwrap_or_default();
        return Err(Error::Unavailable(format!(
            "state directory {} is in use by another clusvc (pid {})",
            dir.display(),
            holder.trim()
        )));
    }
    f.set_len(0).map_err(io(&path))?;
    let _ = write!(f, "{}", std::process::id());
    Ok(f)
}

struct Lease {
    ttl: Duration,
    deadline: Instant,
    keys: BTreeSet<String>,
}

type Watcher = (String, mpsc::UnboundedSender<(Revision, WatchEvent)>);

struct Inner {
    dir: PathBuf,
    data: BTreeMap<String, KeyValue>,
    rev: Revision,
    wal: File,
    wal_len: u64,
    leases: HashMap<LeaseId, Lease>,
    next_lease: LeaseId,
    watchers: Vec<Watcher>,
    /// Set when a failed append could not be undone: the log may end in
    /// a partial record, so nothing more is acknowledged until a restart
    /// (which cuts a torn tail) or a repair.
    read_only: Option<String>,
}

pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

// --- encoding -----------------------------------------------------------

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.0.get(..4)?;
        self.0 = &self.0[4..];
        Some(u32::from_le_bytes(b.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.0.get(..8)?;
        self.0 = &self.0[8..];
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = self.u32()? as usize;
        let b = self.0.get(..n)?.to_vec();
        self.0 = &self.0[n..];
        Some(b)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?).ok()
    }
}

fn encode_ops(rev: Revision, ops: &[Write]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&rev.to_le_bytes());
    for op in ops {
        match op {
            Write::Put { key, value, lease } => {
                p.push(1);
                put_bytes(&mut p, key.as_bytes());
                put_bytes(&mut p, value);
                p.extend_from_slice(&lease.unwrap_or(0).to_le_bytes());
            }
            Write::Delete { key } => {
                p.push(2);
                put_bytes(&mut p, key.as_bytes());
            }
            Write::DeletePrefix { prefix } => {
                p.push(3);
                put_bytes(&mut p, prefix.as_bytes());
            }
        }
    }
    p
}

pub(crate) fn decode_ops(p: &[u8]) -> Option<(Revision, Vec<Write>)> {
    let mut r = Reader(p);
    let rev = r.u64()?;
    let mut ops = Vec::new();
    while !r.0.is_empty() {
        ops.push(match r.u8()? {
            1 => {
                let key = r.string()?;
                let value = r.bytes()?;
                let lease = r.u64()?;
                Write::Put {
                    key,
                    value,
                    lease: (lease != 0).then_some(lease),
                }
            }
            2 => Write::Delete { key: r.string()? },
            3 => Write::DeletePrefix {
                prefix: r.string()?,
            },
            _ => return None,
        });
    }
    Some((rev, ops))
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 8);
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    f.extend_from_slice(payload);
    f
}

/// What ends the valid prefix of a log.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LogEnd {
    /// The log ends cleanly.
    Clean,
    /// The last record is incomplete or fails its checksum and nothing
    /// follows it: a write that was cut short, never acknowledged.
    TornTail,
    /// A complete record fails its checksum and more of the log follows:
    /// damage in the middle, after which acknowledged writes may follow.
    Corrupt {
        /// Byte offset of the bad record.
        offset: usize,
        /// Bytes after it.
        following: usize,
    },
}

/// Classifies what stops [`unframe`] at `at`.
pub(crate) fn log_end(buf: &[u8], at: usize) -> LogEnd {
    let rest = buf.len() - at;
    if rest == 0 {
        return LogEnd::Clean;
    }
    if rest < 8 {
        return LogEnd::TornTail;
    }
    let len = u32::from_le_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
    let end = at + 8 + len;
    if end < buf.len() {
        return LogEnd::Corrupt {
            offset: at,
            following: buf.len() - end,
        };
    }
    // It claims to reach the end: a cut-short last write, unless its length
    // itself is damaged and a valid record starts further on.
    let valid_after = (at + 1..buf.len().saturating_sub(8)).any(|k| {
        let len = u32::from_le_bytes(buf[k..k + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(buf[k + 4..k + 8].try_into().unwrap());
        len > 0
            && buf
                .get(k + 8..k + 8 + len)
                .is_some_and(|p| crc32fast::hash(p) == crc)
    });
    if valid_after {
        return LogEnd::Corrupt {
            offset: at,
            following: buf.len() - at,
        };
    }
    // A whole last record whose checksum fails was written in full and
    // then damaged (it may have been acknowledged), unless its payload is
    // all zeros: what a file extended by an interrupted append holds.
    if end == buf.len() && buf[at + 8..].iter().any(|b| *b != 0) {
        return LogEnd::Corrupt {
            offset: at,
            following: 0,
        };
    }
    LogEnd::TornTail
}

/// Splits framed records; returns them and the length of the valid prefix.
pub(crate) fn unframe(buf: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while buf.len() - at >= 8 {
        let len = u32::from_le_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(buf[at + 4..at + 8].try_into().unwrap());
        let Some(payload) = buf.get(at + 8..at + 8 + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        out.push(payload);
        at += 8 + len;
    }
    (out, at)
}

pub(crate) fn encode_snapshot(rev: Revision, data: &BTreeMap<String, KeyValue>) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&rev.to_le_bytes());
    for kv in data.values().filter(|kv| kv.lease.is_none()) {
        put_bytes(&mut p, kv.key.as_bytes());
        put_bytes(&mut p, &kv.value);
        p.extend_from_slice(&kv.create_revision.to_le_bytes());
        p.extend_from_slice(&kv.mod_revision.to_le_bytes());
        p.extend_from_slice(&kv.version.to_le_bytes());
    }
    frame(&p)
}

pub(crate) fn decode_snapshot(buf: &[u8]) -> Result<(Revision, BTreeMap<String, KeyValue>)> {
    let (records, _) = unframe(buf);
    let p = records
        .first()
        .ok_or_else(|| Error::Corrupt("the snapshot fails its checksum".into()))?;
    let mut r = Reader(p);
    let bad = || Error::Corrupt("the snapshot is truncated".into());
    let rev = r.u64().ok_or_else(bad)?;
    let mut data = BTreeMap::new();
    while !r.0.is_empty() {
        let key = r.string().ok_or_else(bad)?;
        let value = r.bytes().ok_or_else(bad)?;
        let create_revision = r.u64().ok_or_else(bad)?;
        let mod_revision = r.u64().ok_or_else(bad)?;
        let version = r.u64().ok_or_else(bad)?;
        data.insert(
            key.clone(),
            KeyValue {
                key,
                value,
                create_revision,
                mod_revision,
                version,
                lease: None,
            },
        );
    }
    Ok((rev, data))
}

pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

// --- the store ----------------------------------------------------------

impl Embedded {
    /// Opens (or creates) the store in `dir`, recovering from its snapshot
    /// and log. Inside a tokio runtime, a task expires leases.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        // Every object is in here: readable by the daemon's user only.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io(&dir))?;
        }
        let lock = lock_dir(&dir)?;
        let snap_path = dir.join("snapshot");
        let (mut rev, mut data) = match std::fs::read(&snap_path) {
            Ok(buf) => decode_snapshot(&buf).map_err(|e| {
                Error::Corrupt(format!(
                    "{}: {e}. Nothing was changed. Run `clusvc store check` to see what reads, and \
                     `clusvc store repair` to rebuild the store from the log (it keeps a copy first)",
                    snap_path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, BTreeMap::new()),
            Err(e) => return Err(io(&snap_path)(e)),
        };
        let wal_path = dir.join("wal");
        let mut buf = Vec::new();
        if let Ok(mut f) = File::open(&wal_path) {
            f.read_to_end(&mut buf).map_err(io(&wal_path))?;
        }
        let (records, valid) = unframe(&buf);
        if let LogEnd::Corrupt { offset, following } = log_end(&buf, valid) {
            // Never cut acknowledged writes silently: refuse, and say where.
            return Err(Error::Corrupt(format!(
                "{}: the record at byte offset {offset} fails its checksum and {following} bytes of log follow it; \
                 this is damage, not a torn last write, and acknowledged writes may be in or after it. \
                 Nothing was changed. Run `clusvc store check` to see what reads, and `clusvc store repair` to \
                 rebuild the store from every intact record (it keeps a copy of the damaged files first)",
                wal_path.display()
            )));
        }
        for payload in records {
            let (r, ops) = decode_ops(payload)
                .ok_or_else(|| Error::Corrupt("log record does not decode".into()))?;
            if r <= rev {
                continue; // already in the snapshot
            }
            rev = r;
            apply_ops(&mut data, r, &ops, &mut Vec::new());
        }
        let wal = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&wal_path)
            .map_err(io(&wal_path))?;
        if (valid as u64) < buf.len() as u64 {
            // A torn tail: the write was never acknowledged.
            tracing::warn!(
                "{}: cutting a torn last write ({} bytes at byte offset {valid}, never acknowledged)",
                wal_path.display(),
                buf.len() - valid
            );
            wal.set_len(valid as u64).map_err(io(&wal_path))?;
            wal.sync_all().map_err(io(&wal_path))?;
        }
        let mut inner = Inner {
            dir: dir.clone(),
            data,
            rev,
            wal,
            wal_len: valid as u64,
            leases: HashMap::new(),
            next_lease: 1,
            watchers: Vec::new(),
            read_only: None,
        };
        // Leases do not survive a restart: drop what was attached to one.
        let leased: Vec<Write> = inner
            .data
            .values()
            .filter(|kv| kv.lease.is_some())
            .map(|kv| Write::Delete {
                key: kv.key.clone(),
            })
            .collect();
        if !leased.is_empty() {
            inner.commit(&leased)?;
        }
        let store = Self {
            inner: Arc::new(Mutex::new(inner)),
            _lock: Arc::new(lock),
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(expire_leases(Arc::downgrade(&store.inner)));
        }
        Ok(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current revision.
    pub fn revision(&self) -> Revision {
        self.lock().rev
    }
}

pub(crate) fn apply_ops(
    data: &mut BTreeMap<String, KeyValue>,
    rev: Revision,
    ops: &[Write],
    events: &mut Vec<WatchEvent>,
) {
    for op in ops {
        match op {
            Write::Put { key, value, lease } => {
                let kv = match data.get(key) {
                    Some(old) => KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: old.create_revision,
                        mod_revision: rev,
                        version: old.version + 1,
                        lease: *lease,
                    },
                    None => KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: rev,
                        mod_revision: rev,
                        version: 1,
                        lease: *lease,
                    },
                };
                data.insert(key.clone(), kv.clone());
                events.push(WatchEvent::Put(kv));
            }
            Write::Delete { key } => {
                if let Some(old) = data.remove(key) {
                    events.push(WatchEvent::Delete(old));
                }
            }
            Write::DeletePrefix { prefix } => {
                let keys: Vec<String> = data
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(prefix.as_str()))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in keys {
                    if let Some(old) = data.remove(&k) {
                        events.push(WatchEvent::Delete(old));
                    }
                }
            }
        }
    }
}

impl Inner {
    /// Logs, syncs and applies writes as one new revision; notifies watchers.
    fn commit(&mut self, ops: &[Write]) -> Result<Revision> {
        if ops.is_empty() {
            return Ok(self.rev);
        }
        if let Some(why) = &self.read_only {
            return Err(Error::Unavailable(format!(
                "the store is read-only: {why}; restart the daemon once the disk has room"
            )));
        }
        let rev = self.rev + 1;
        let record = frame(&encode_ops(rev, ops));
        let wal_path = self.dir.join("wal");
        let appended = self
            .wal
            .write_all(&record)
            .and_then(|()| self.wal.sync_data());
        if let Err(e) = appended {
            // Not acknowledged: undo it (a partial record must not sit
            // before later, acknowledged ones), or stop acknowledging.
            let undone = self
                .wal
                .set_len(self.wal_len)
                .and_then(|()| self.wal.sync_all());
            if let Err(undo) = undone {
                let why = format!(
                    "appending to {} failed ({e}) and the partial record could not be cut ({undo})",
                    wal_path.display()
                );
                tracing::error!("{why}");
                self.read_only = Some(why);
            } else {
                tracing::warn!(
                    "appending to {} failed ({e}); the write was not acknowledged and was undone",
                    wal_path.display()
                );
            }
            return Err(io(&wal_path)(e));
        }
        self.wal_len += record.len() as u64;
        self.rev = rev;
        let mut events = Vec::new();
        apply_ops(&mut self.data, rev, ops, &mut events);
        for e in &events {
            match e {
                WatchEvent::Put(kv) => {
                    if let Some(l) = kv.lease
                        && let Some(lease) = self.leases.get_mut(&l)
                    {
                        lease.keys.insert(kv.key.clone());
                    }
                }
                WatchEvent::Delete(kv) => {
                    if let Some(l) = kv.lease
                        && let Some(lease) = self.leases.get_mut(&l)
                    {
                        lease.keys.remove(&kv.key);
                    }
                }
            }
        }
        self.watchers.retain(|(prefix, tx)| {
            events
                .iter()
                .filter(|e| e.key().starts_with(prefix.as_str()))
                .all(|e| tx.send((rev, e.clone())).is_ok())
        });
        if self.wal_len > COMPACT_AT {
            self.snapshot()?;
        }
        Ok(rev)
    }

    /// Folds the log into a new snapshot.
    fn snapshot(&mut self) -> Result<()> {
        let tmp = self.dir.join("snapshot.tmp");
        let path = self.dir.join("snapshot");
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(&encode_snapshot(self.rev, &self.data))
            .map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        fsync_dir(&self.dir)?;
        let wal_path = self.dir.join("wal");
        self.wal.set_len(0).map_err(io(&wal_path))?;
        self.wal.sync_all().map_err(io(&wal_path))?;
        self.wal_len = 0;
        Ok(())
    }

    fn holds(&self, c: &Compare) -> bool {
        match c {
            Compare::ModRevision(k, r) => self.data.get(k).map_or(0, |kv| kv.mod_revision) == *r,
            Compare::Value(k, v) => self.data.get(k).is_some_and(|kv| &kv.value == v),
            Compare::Exists(k) => self.data.contains_key(k),
            Compare::Missing(k) => !self.data.contains_key(k),
        }
    }

    fn list(&self, prefix: &str) -> Vec<KeyValue> {
        self.data
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

async fn expire_leases(inner: Weak<Mutex<Inner>>) {
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let mut g = inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let expired: Vec<LeaseId> = g
            .leases
            .iter()
            .filter(|(_, l)| l.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(lease) = g.leases.remove(&id) {
                let ops: Vec<Write> = lease
                    .keys
                    .into_iter()
                    .map(|key| Write::Delete { key })
                    .collect();
                if let Err(e) = g.commit(&ops) {
                    tracing::error!("expiring lease {id}: {e}");
                }
            }
        }
    }
}

impl Store for Embedded {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.lock().data.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision)> {
        let g = self.lock();
        Ok((g.list(prefix), g.rev))
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResult> {
        let mut g = self.lock();
        let succeeded = txn.compare.iter().all(|c| g.holds(c));
        let ops = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        for op in ops {
            if let Write::Put { lease: Some(l), .. } = op
                && !g.leases.contains_key(l)
            {
                return Err(Error::LeaseNotFound(*l));
            }
        }
        let revision = g.commit(ops)?;
        Ok(TxnResult {
            succeeded,
            revision,
        })
    }

    async fn watch(&self, prefix: &str) -> Result<Watch> {
        let mut g = self.lock();
        let (tx, rx) = mpsc::unbounded_channel();
        g.watchers.push((prefix.to_string(), tx));
        Ok(Watch {
            initial: g.list(prefix),
            revision: g.rev,
            events: rx,
        })
    }

    async fn grant(&self, ttl: Duration) -> Result<LeaseId> {
        let mut g = self.lock();
        let id = g.next_lease;
        g.next_lease += 1;
        g.leases.insert(
            id,
            Lease {
                ttl,
                deadline: Instant::now() + ttl,
                keys: BTreeSet::new(),
            },
        );
        Ok(id)
    }

    async fn keepalive(&self, lease: LeaseId) -> Result<()> {
        let mut g = self.lock();
        let l = g
            .leases
            .get_mut(&lease)
            .ok_or(Error::LeaseNotFound(lease))?;
        l.deadline = Instant::now() + l.ttl;
        Ok(())
    }

    async fn revoke(&self, lease: LeaseId) -> Result<()> {
        let mut g = self.lock();
        let l = g.leases.remove(&lease).ok_or(Error::LeaseNotFound(lease))?;
        let ops: Vec<Write> = l
            .keys
            .into_iter()
            .map(|key| Write::Delete { key })
            .collect();
        g.commit(&ops)?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_the_store_contract() {
        let dir = tempfile::tempdir().unwrap();
        let s = Embedded::open(dir.path()).unwrap();
        crate::contract::all(&s, "/contract").await;
    }

    fn put(k: &str, v: &str) -> Write {
        Write::Put {
            key: k.into(),
            value: v.as_bytes().to_vec(),
            lease: None,
        }
    }

    #[tokio::test]
    async fn revisions_versions_and_prefix_lists() {
        let dir = tempfile::tempdir().unwrap();
        let s = Embedded::open(dir.path()).unwrap();
        let r1 = s.put("/a/1", b"x".to_vec()).await.unwrap();
        let r2 = s.put("/a/1", b"y".to_vec()).await.unwrap();
        s.put("/a/2", b"z".to_vec()).await.unwrap();
        s.put("/b/1", b"w".to_vec()).await.unwrap();
        assert_eq!((r1, r2), (1, 2));
        let kv = s.get("/a/1").await.unwrap().unwrap();
        assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (1, 2, 2));
        let (list, rev) = s.list("/a/").await.unwrap();
        assert_eq!(
            list.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(),
            ["/a/1", "/a/2"]
        );
        assert_eq!(rev, 4);
    }

    #[tokio::test]
    async fn a_second_open_of_one_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Embedded::open(dir.path()).unwrap();
        let err = Embedded::open(dir.path()).err().unwrap();
        assert!(
            err.to_string().contains("is in use by another clusvc"),
            "{err}"
        );
        drop(first);
        assert!(Embedded::open(dir.path()).is_ok());
    }

    #[tokio::test]
    async fn compare_and_swap() {
        let dir = tempfile::tempdir().unwrap();
        let s = Embedded::open(dir.path()).unwrap();
        let create = |v: &str| Txn {
            compare: vec![Compare::Missing("/k".into())],
            success: vec![put("/k", v)],
            failure: vec![],
        };
        assert!(s.txn(create("first")).await.unwrap().succeeded);
        assert!(!s.txn(create("second")).await.unwrap().succeeded);
        let kv = s.get("/k").await.unwrap().unwrap();
        assert_eq!(kv.value, b"first");
        let swap = Txn {
            compare: vec![Compare::ModRevision("/k".into(), kv.mod_revision)],
            success: vec![put("/k", "third")],
            failure: vec![],
        };
        assert!(s.txn(swap.clone()).await.unwrap().succeeded);
        assert!(
            !s.txn(swap).await.unwrap().succeeded,
            "stale revision must fail"
        );
    }

    /// A store of `n` equal-sized records, closed: its directory, its
    /// log's path and the log's bytes.
    pub(crate) async fn closed_store_of(
        n: usize,
    ) -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Embedded::open(dir.path()).unwrap();
            for i in 0..n {
                s.put(&format!("/k/{i:02}"), vec![b'v'; 20]).await.unwrap();
            }
        }
        let wal = dir.path().join("wal");
        let bytes = std::fs::read(&wal).unwrap();
        (dir, wal, bytes)
    }

    #[tokio::test]
    async fn a_corrupt_record_in_the_middle_refuses_to_open_and_names_its_offset() {
        let (dir, wal, mut bytes) = closed_store_of(50).await;
        let record = bytes.len() / 50;
        let offset = 20 * record;
        bytes[offset + 12] ^= 0xff;
        std::fs::write(&wal, &bytes).unwrap();
        let err = Embedded::open(dir.path())
            .err()
            .expect("must refuse")
            .to_string();
        assert!(err.contains(&format!("byte offset {offset}")), "{err}");
        assert!(err.contains("Nothing was changed"), "{err}");
        // Nothing was cut.
        assert_eq!(std::fs::read(&wal).unwrap(), bytes);
    }

    #[tokio::test]
    async fn a_damaged_length_in_the_middle_is_not_taken_for_a_torn_tail() {
        let (dir, wal, mut bytes) = closed_store_of(20).await;
        let offset = 5 * (bytes.len() / 20);
        bytes[offset + 3] = 0x7f; // the length now reaches past the end
        std::fs::write(&wal, &bytes).unwrap();
        let err = Embedded::open(dir.path())
            .err()
            .expect("must refuse")
            .to_string();
        assert!(err.contains(&format!("byte offset {offset}")), "{err}");
    }

    #[tokio::test]
    async fn state_survives_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Embedded::open(dir.path()).unwrap();
            for i in 0..10 {
                s.put(&format!("/k/{i}"), vec![i as u8]).await.unwrap();
            }
            s.delete("/k/3").await.unwrap();
        }
        // A half-written record at the end (crash during append).
        let mut wal = OpenOptions::new()
            .append(true)
            .open(dir.path().join("wal"))
            .unwrap();
        wal.write_all(&[200, 0, 0, 0, 1, 2]).unwrap();
        drop(wal);
        let s = Embedded::open(dir.path()).unwrap();
        let (list, rev) = s.list("/k/").await.unwrap();
        assert_eq!(list.len(), 9);
        assert_eq!(rev, 11);
        s.put("/k/after", vec![1]).await.unwrap();
        drop(s);
        let s = Embedded::open(dir.path()).unwrap();
        assert!(s.get("/k/after").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn snapshots_fold_the_log() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Embedded::open(dir.path()).unwrap();
            s.put("/x", b"1".to_vec()).await.unwrap();
            s.lock().snapshot().unwrap();
            s.put("/y", b"2".to_vec()).await.unwrap();
        }
        let s = Embedded::open(dir.path()).unwrap();
        assert_eq!(s.get("/x").await.unwrap().unwrap().value, b"1");
        assert_eq!(s.get("/y").await.unwrap().unwrap().value, b"2");
        assert_eq!(s.revision(), 2);
    }

    #[tokio::test]
    async fn watches_see_changes_after_their_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let s = Embedded::open(dir.path()).unwrap();
        s.put("/w/a", b"1".to_vec()).await.unwrap();
        let mut w = s.watch("/w/").await.unwrap();
        assert_eq!(w.initial.len(), 1);
        s.put("/w/b", b"2".to_vec()).await.unwrap();
        s.put("/other", b"3".to_vec()).await.unwrap();
        s.delete("/w/a").await.unwrap();
        let (r1, e1) = w.events.recv().await.unwrap();
        let (r2, e2) = w.events.recv().await.unwrap();
        assert!(matches!(e1, WatchEvent::Put(ref kv) if kv.key == "/w/b"));
        assert!(matches!(e2, WatchEvent::Delete(ref kv) if kv.key == "/w/a"));
        assert!(r1 < r2);
    }

    #[tokio::test(start_paused = true)]
    async fn leased_keys_vanish_when_the_lease_expires() {
        let dir = tempfile::tempdir().unwrap();
        let s = Embedded::open(dir.path()).unwrap();
        let lease = s.grant(Duration::from_secs(2)).await.unwrap();
        s.txn(Txn {
            success: vec![Write::Put {
                key: "/members/n1".into(),
                value: b"alive".to_vec(),
                lease: Some(lease),
            }],
            ..Txn::default()
        })
        .await
        .unwrap();
        tokio::time::advance(Duration::from_millis(1500)).await;
        s.keepalive(lease).await.unwrap();
        tokio::time::advance(Duration::from_millis(1500)).await;
        tokio::task::yield_now().await;
        assert!(s.get("/members/n1").await.unwrap().is_some(), "kept alive");
        tokio::time::advance(Duration::from_millis(2100)).await;
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
        assert!(s.get("/members/n1").await.unwrap().is_none(), "expired");
        assert!(matches!(
            s.keepalive(lease).await,
            Err(Error::LeaseNotFound(_))
        ));
    }
}
