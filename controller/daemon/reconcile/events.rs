//! The event log: what happened to each service and to the cluster, for
//! `describe` and `events`, and a broadcast for `events --follow`.
//!
//! History is bounded by count (the last [`KEEP_PER_SERVICE`] events of
//! each service and the last [`KEEP`] overall) and by age ([`MAX_AGE`]), and
//! with a state directory it is kept in `events.jsonl` there, so after a
//! restart `describe` still says why a service is where it is. The file is
//! appended to as events happen (a crash loses at most what the kernel had
//! not written; events are history, not state) and compacted to what is
//! kept when it has grown to twice that.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::sync::broadcast;

use clusvc_agent::events::Events;
use clusvc_core::model::Timestamp;
use clusvc_core::model::event::{Event, Level};

/// Events kept overall.
pub const KEEP: usize = 5_000;
/// Events kept per service, however busy the others are (`describe` shows
/// the last 20).
pub const KEEP_PER_SERVICE: usize = 20;
/// Events older than this are dropped.
pub const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Recent events and live subscribers.
pub struct EventLog {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Event>,
    /// Cluster servers: emitted events go to the store (through this), and
    /// every server [`EventLog::ingest`]s them from there.
    publisher: Mutex<Option<tokio::sync::mpsc::UnboundedSender<Event>>>,
}

#[derive(Default)]
struct Inner {
    /// Every kept event, oldest first, with a sequence number.
    all: VecDeque<(u64, Event)>,
    /// Per service: sequence numbers of its kept events.
    by_service: BTreeMap<String, VecDeque<(u64, Event)>>,
    seq: u64,
    file: Option<Persist>,
}

struct Persist {
    path: PathBuf,
    out: File,
    lines: usize,
}

impl Default for EventLog {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            tx: broadcast::channel(1024).0,
            publisher: Mutex::new(None),
        }
    }
}

fn now() -> Timestamp {
    Timestamp::from_system(SystemTime::now())
}

impl Inner {
    fn keep(&mut self, event: Event) {
        self.seq += 1;
        let seq = self.seq;
        if !event.service.is_empty() {
            let q = self.by_service.entry(event.service.clone()).or_default();
            q.push_back((seq, event.clone()));
            while q.len() > KEEP_PER_SERVICE {
                q.pop_front();
            }
        }
        self.all.push_back((seq, event));
        while self.all.len() > KEEP {
            self.all.pop_front();
        }
    }

    fn expire(&mut self) {
        let oldest = now().minus(MAX_AGE.into());
        let old = |e: &Event| e.at.is_some_and(|t| t < oldest);
        while self.all.front().is_some_and(|(_, e)| old(e)) {
            self.all.pop_front();
        }
        for q in self.by_service.values_mut() {
            while q.front().is_some_and(|(_, e)| old(e)) {
                q.pop_front();
            }
        }
        self.by_service.retain(|_, q| !q.is_empty());
    }

    /// Everything kept, oldest first, each event once.
    fn kept(&self) -> Vec<&Event> {
        let mut v: BTreeMap<u64, &Event> = self.all.iter().map(|(s, e)| (*s, e)).collect();
        for q in self.by_service.values() {
            v.extend(q.iter().map(|(s, e)| (*s, e)));
        }
        v.into_values().collect()
    }

    /// Rewrites the file with what is kept.
    fn compact(&mut self) -> std::io::Result<()> {
        let Some(p) = &self.file else { return Ok(()) };
        let path = p.path.clone();
        let tmp = path.with_extension("jsonl.tmp");
        let kept = self.kept();
        let lines = kept.len();
        {
            let mut f = std::io::BufWriter::new(
                OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)?,
            );
            for e in kept {
                serde_json::to_writer(&mut f, e)?;
                f.write_all(b"\n")?;
            }
            f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        let out = OpenOptions::new().append(true).open(&path)?;
        self.file = Some(Persist { path, out, lines });
        Ok(())
    }
}

impl EventLog {
    /// An event log kept in `path` (`events.jsonl`), loading what an
    /// earlier run kept there. A line that does not parse (a torn last
    /// line after a crash) is skipped.
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut inner = Inner::default();
        match File::open(&path) {
            Ok(f) => {
                for line in BufReader::new(f).lines() {
                    if let Ok(e) = serde_json::from_str::<Event>(&line?) {
                        inner.keep(e);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        inner.expire();
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)?;
        // Files of earlier versions were 0644.
        {
            use std::os::unix::fs::PermissionsExt;
            out.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        inner.file = Some(Persist {
            path,
            out,
            lines: 0,
        });
        inner.compact()?;
        Ok(Self {
            inner: Mutex::new(inner),
            tx: broadcast::channel(1024).0,
            publisher: Mutex::new(None),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Recent events, oldest first, of one service or all.
    pub fn recent(&self, service: Option<&str>, limit: usize) -> Vec<Event> {
        let g = self.lock();
        let q = match service {
            Some(s) => match g.by_service.get(s) {
                Some(q) => q,
                None => return Vec::new(),
            },
            None => &g.all,
        };
        let skip = q.len().saturating_sub(limit);
        q.iter().skip(skip).map(|(_, e)| e.clone()).collect()
    }

    /// Sends emitted events to `tx` (which records them in the store)
    /// instead of keeping them here: they come back through
    /// [`EventLog::ingest`], on every server alike.
    pub fn publish_to(&self, tx: tokio::sync::mpsc::UnboundedSender<Event>) {
        *self.publisher.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    }

    /// Keeps and broadcasts an event recorded elsewhere (the store).
    pub fn ingest(&self, event: Event) {
        self.keep_and_send(event);
    }

    /// Live events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

impl Events for EventLog {
    fn emit(&self, mut event: Event) {
        // Resource-level events are logged where they happen; controller
        // and cluster events are logged here.
        if event.resource.is_empty() {
            let who = if event.service.is_empty() {
                "cluster".to_string()
            } else {
                format!("service/{}", event.service)
            };
            let who = if event.message.starts_with(&who) {
                String::new()
            } else {
                format!("{who}: ")
            };
            match event.level {
                Level::Emerg | Level::Alert | Level::Crit | Level::Err => {
                    tracing::error!("{who}{}", event.message)
                }
                Level::Warning => tracing::warn!("{who}{}", event.message),
                Level::Debug => tracing::debug!("{who}{}", event.message),
                _ => tracing::info!("{who}{}", event.message),
            }
        }
        if event.at.is_none() {
            event.at = Some(now());
        }
        if let Some(tx) = &*self.publisher.lock().unwrap_or_else(|p| p.into_inner()) {
            let _ = tx.send(event);
            return;
        }
        self.keep_and_send(event);
    }
}

impl EventLog {
    fn keep_and_send(&self, event: Event) {
        let mut g = self.lock();
        if let Some(p) = &mut g.file {
            let mut line = serde_json::to_vec(&event).unwrap_or_default();
            line.push(b'\n');
            if let Err(e) = p.out.write_all(&line) {
                tracing::warn!("cannot record an event in {}: {e}", p.path.display());
            }
            p.lines += 1;
        }
        g.keep(event.clone());
        // Compact when the file holds twice what is kept (and at least
        // 10,000 lines more): amortized, the rewrite costs a constant per
        // event however many services there are.
        let kept = g.all.len() + g.by_service.values().map(VecDeque::len).sum::<usize>();
        let too_long = g.file.as_ref().is_some_and(|p| p.lines > 2 * kept + 10_000);
        if too_long {
            g.expire();
            if let Err(e) = g.compact() {
                tracing::warn!("cannot compact the event log: {e}");
            }
        }
        drop(g);
        let _ = self.tx.send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(service: &str, message: &str) -> Event {
        Event {
            at: None,
            service: service.into(),
            service_id: 3,
            member: String::new(),
            resource: String::new(),
            level: Level::Info,
            message: message.into(),
            reason: None,
            revision: None,
        }
    }

    #[test]
    fn history_survives_a_reopen_and_a_quiet_service_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        {
            let log = EventLog::open(&path).unwrap();
            log.emit(event("quiet", "started once"));
            for i in 0..KEEP + 10 {
                log.emit(event("noisy", &format!("n{i}")));
            }
        }
        // A torn last line, as a crash can leave.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"at":"#).unwrap();
        drop(f);
        let log = EventLog::open(&path).unwrap();
        let quiet = log.recent(Some("quiet"), 10);
        assert_eq!(quiet.len(), 1);
        assert_eq!(quiet[0].message, "started once");
        assert_eq!(quiet[0].service_id, 3);
        assert_eq!(log.recent(Some("noisy"), 1_000).len(), KEEP_PER_SERVICE);
        assert_eq!(log.recent(None, usize::MAX).len(), KEEP);
        // The file was compacted to what is kept.
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines <= KEEP + 1, "{lines}");
    }
}
