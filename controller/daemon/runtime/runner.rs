//! Runs a [`Reconciler`] on the keys a [`Scheduler`] hands out.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::Scheduler;

/// What to do with a key after it was reconciled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Reconcile it again after this long (zero: as soon as possible).
    Requeue(Duration),
    /// Nothing until something wakes it.
    AwaitChange,
}

/// The two functions a controller provides (kube-runtime's shape): one pass
/// for one key, and what to do when the pass failed. The reconciler is not
/// told why it runs.
pub trait Reconciler: Send + Sync + 'static {
    /// A failed pass.
    type Error: Display + Send + 'static;

    /// One pass for `key`.
    fn reconcile(
        self: Arc<Self>,
        key: String,
    ) -> impl Future<Output = Result<Action, Self::Error>> + Send;

    /// What to do after the `failures`-th consecutive failed pass of `key`
    /// (1 for the first).
    fn error_policy(&self, key: &str, error: &Self::Error, failures: u32) -> Action;
}

/// Exponential backoff: 1 s after the first failure, doubling, capped.
pub fn backoff(failures: u32, cap: Duration) -> Duration {
    let exp = failures.saturating_sub(1).min(30);
    Duration::from_secs(1).saturating_mul(1u32 << exp).min(cap)
}

/// Longest backoff after a panicked pass.
const PANIC_BACKOFF_CAP: Duration = Duration::from_secs(300);

/// Bounded, per-key-exclusive execution of a reconciler.
pub struct Runner {
    sched: Arc<Scheduler>,
    concurrency: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Keys being reconciled now.
    running: HashSet<String>,
    /// Keys woken while running: they run again right after.
    dirty: HashSet<String>,
    /// Consecutive failures per key.
    failures: HashMap<String, u32>,
}

impl Runner {
    /// A runner taking keys from `sched`, at most `concurrency` at once.
    pub fn new(sched: Arc<Scheduler>, concurrency: usize) -> Arc<Self> {
        Arc::new(Self {
            sched,
            concurrency: concurrency.max(1),
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs until the task is dropped.
    pub async fn run<R: Reconciler>(self: Arc<Self>, reconciler: Arc<R>) {
        let permits = Arc::new(Semaphore::new(self.concurrency));
        loop {
            let key = self.sched.next().await;
            {
                let mut st = self.state();
                if st.running.contains(&key) {
                    st.dirty.insert(key);
                    continue;
                }
                st.running.insert(key.clone());
            }
            let permit = permits.clone().acquire_owned().await.expect("never closed");
            let this = self.clone();
            let reconciler = reconciler.clone();
            tokio::spawn(async move {
                // The pass runs as its own task: a panic in it is one failed
                // pass of this key, never a stuck key or a dead loop.
                let pass = tokio::spawn(reconciler.clone().reconcile(key.clone())).await;
                let failed = || {
                    let mut st = this.state();
                    let n = st.failures.entry(key.clone()).or_default();
                    *n = n.saturating_add(1);
                    *n
                };
                let action = match pass {
                    Ok(Ok(a)) => {
                        this.state().failures.remove(&key);
                        a
                    }
                    Ok(Err(e)) => {
                        let failures = failed();
                        reconciler.error_policy(&key, &e, failures)
                    }
                    Err(panic) => {
                        let failures = failed();
                        let after = backoff(failures, PANIC_BACKOFF_CAP);
                        tracing::error!(
                            "reconcile of {key} panicked ({panic}); retrying in {}s",
                            after.as_secs()
                        );
                        Action::Requeue(after)
                    }
                };
                drop(permit);
                let again = {
                    let mut st = this.state();
                    st.running.remove(&key);
                    st.dirty.remove(&key)
                };
                if again {
                    this.sched.now(&key);
                }
                if let Action::Requeue(after) = action {
                    this.sched.schedule(&key, crate::runtime::after(after));
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio::time::Instant;

    use super::*;

    /// Records runs; each run takes `work` of (paused) time; fails when asked.
    #[derive(Default)]
    struct Probe {
        work: Duration,
        fail: bool,
        in_flight: Mutex<HashMap<String, u32>>,
        max_per_key: AtomicU32,
        total_in_flight: AtomicU32,
        max_total: AtomicU32,
        runs: Mutex<Vec<(String, Duration)>>,
        start: Mutex<Option<Instant>>,
    }

    impl Reconciler for Probe {
        type Error = String;

        async fn reconcile(self: Arc<Self>, key: String) -> Result<Action, String> {
            let t0 = *self.start.lock().unwrap().get_or_insert_with(Instant::now);
            self.runs
                .lock()
                .unwrap()
                .push((key.clone(), Instant::now() - t0));
            let n = {
                let mut m = self.in_flight.lock().unwrap();
                let n = m.entry(key.clone()).or_default();
                *n += 1;
                *n
            };
            self.max_per_key.fetch_max(n, Ordering::SeqCst);
            let total = self.total_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_total.fetch_max(total, Ordering::SeqCst);
            tokio::time::sleep(self.work).await;
            self.total_in_flight.fetch_sub(1, Ordering::SeqCst);
            *self.in_flight.lock().unwrap().get_mut(&key).unwrap() -= 1;
            if self.fail {
                Err("boom".into())
            } else {
                Ok(Action::AwaitChange)
            }
        }

        fn error_policy(&self, _key: &str, _error: &String, failures: u32) -> Action {
            Action::Requeue(backoff(failures, Duration::from_secs(8)))
        }
    }

    fn start(probe: Arc<Probe>, concurrency: usize) -> Arc<Scheduler> {
        let sched = Arc::new(Scheduler::default());
        let runner = Runner::new(sched.clone(), concurrency);
        tokio::spawn(runner.run(probe));
        sched
    }

    async fn settle() {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn never_runs_one_key_twice_at_once_and_reruns_a_key_woken_meanwhile() {
        let probe = Arc::new(Probe {
            work: Duration::from_secs(1),
            ..Probe::default()
        });
        let sched = start(probe.clone(), 4);
        sched.now("a");
        settle().await;
        // Woken three times during its run: one more run, after it.
        for _ in 0..3 {
            sched.now("a");
            settle().await;
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        settle().await;
        tokio::time::advance(Duration::from_secs(5)).await;
        settle().await;
        let runs = probe.runs.lock().unwrap().clone();
        assert_eq!(probe.max_per_key.load(Ordering::SeqCst), 1);
        assert_eq!(runs.len(), 2, "{runs:?}");
        assert!(runs[1].1 >= Duration::from_secs(1), "{runs:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn runs_at_most_concurrency_keys_at_once() {
        let probe = Arc::new(Probe {
            work: Duration::from_secs(1),
            ..Probe::default()
        });
        let sched = start(probe.clone(), 2);
        for k in ["a", "b", "c", "d", "e"] {
            sched.now(k);
        }
        for _ in 0..10 {
            settle().await;
            tokio::time::advance(Duration::from_millis(500)).await;
        }
        settle().await;
        assert_eq!(probe.runs.lock().unwrap().len(), 5);
        assert_eq!(probe.max_total.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_exponentially_up_to_the_cap() {
        let probe = Arc::new(Probe {
            fail: true,
            ..Probe::default()
        });
        let sched = start(probe.clone(), 1);
        sched.now("a");
        for _ in 0..40 {
            settle().await;
            tokio::time::advance(Duration::from_millis(500)).await;
        }
        let at: Vec<u64> = probe
            .runs
            .lock()
            .unwrap()
            .iter()
            .map(|(_, t)| t.as_secs())
            .collect();
        // 0, +1, +2, +4, +8, +8 ...
        assert_eq!(at, [0, 1, 3, 7, 15], "{at:?}");
    }

    /// Panics on key "bad", succeeds on the others.
    struct Panicky(Mutex<Vec<String>>);

    impl Reconciler for Panicky {
        type Error = String;

        async fn reconcile(self: Arc<Self>, key: String) -> Result<Action, String> {
            self.0.lock().unwrap().push(key.clone());
            if key == "bad" {
                panic!("boom");
            }
            Ok(Action::AwaitChange)
        }

        fn error_policy(&self, _key: &str, _error: &String, _failures: u32) -> Action {
            Action::AwaitChange
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_pass_is_a_failed_pass_retried_with_backoff_not_a_stuck_key() {
        let probe = Arc::new(Panicky(Mutex::new(Vec::new())));
        let sched = Arc::new(Scheduler::default());
        tokio::spawn(Runner::new(sched.clone(), 2).run(probe.clone()));
        sched.now("bad");
        sched.now("good");
        for _ in 0..20 {
            settle().await;
            tokio::time::advance(Duration::from_millis(500)).await;
        }
        let runs = probe.0.lock().unwrap().clone();
        let bad = runs.iter().filter(|k| *k == "bad").count();
        assert!(runs.contains(&"good".to_string()), "{runs:?}");
        // 0 s, then 1, 2, 4 s of backoff within 10 s.
        assert!((3..=5).contains(&bad), "{runs:?}");
        // Woken again, a key that panicked runs again (it is not stuck).
        sched.now("good");
        settle().await;
        assert_eq!(
            probe
                .0
                .lock()
                .unwrap()
                .iter()
                .filter(|k| *k == "good")
                .count(),
            2
        );
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let cap = Duration::from_secs(60);
        assert_eq!(backoff(1, cap), Duration::from_secs(1));
        assert_eq!(backoff(3, cap), Duration::from_secs(4));
        assert_eq!(backoff(7, cap), cap);
        assert_eq!(backoff(u32::MAX, cap), cap);
    }
}
