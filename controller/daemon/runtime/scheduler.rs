//! When each service is reconciled next: a delay queue keyed by service
//! where duplicate requests collapse and the earliest deadline wins.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The queue.
#[derive(Default)]
pub struct Scheduler {
    inner: Mutex<Inner>,
    notify: Notify,
}

#[derive(Default)]
struct Inner {
    queue: BTreeSet<(Instant, String)>,
    due: HashMap<String, Instant>,
}

impl Scheduler {
    /// Asks for a reconcile of `key` at `at` (or earlier if already asked).
    pub fn schedule(&self, key: &str, at: Instant) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match g.due.get(key).copied() {
            Some(existing) if existing <= at => return,
            Some(existing) => {
                g.queue.remove(&(existing, key.to_string()));
            }
            None => {}
        }
        g.due.insert(key.to_string(), at);
        g.queue.insert((at, key.to_string()));
        drop(g);
        self.notify.notify_one();
    }

    /// Asks for a reconcile now.
    pub fn now(&self, key: &str) {
        self.schedule(key, Instant::now());
    }

    /// Waits for the next due key and removes it from the queue.
    pub async fn next(&self) -> String {
        loop {
            let notified = self.notify.notified();
            let next = {
                let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
                match g.queue.first().cloned() {
                    Some((at, key)) if at <= Instant::now() => {
                        g.queue.pop_first();
                        g.due.remove(&key);
                        return key;
                    }
                    other => other.map(|(at, _)| at),
                }
            };
            match next {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Number of queued keys.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .due
            .len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn duplicates_collapse_and_the_earliest_deadline_wins() {
        let s = Scheduler::default();
        let t0 = Instant::now();
        s.schedule("a", t0 + Duration::from_secs(10));
        s.schedule("b", t0 + Duration::from_secs(5));
        s.schedule("a", t0 + Duration::from_secs(1));
        s.schedule("a", t0 + Duration::from_secs(20));
        assert_eq!(s.len(), 2);
        assert_eq!(s.next().await, "a");
        assert_eq!(Instant::now() - t0, Duration::from_secs(1));
        assert_eq!(s.next().await, "b");
        assert_eq!(Instant::now() - t0, Duration::from_secs(5));
        assert!(s.is_empty());
    }
}
