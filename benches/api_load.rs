//! The API under load, against the real binary: `cargo bench --bench
//! api_load`.
//!
//! 20 writers each send 100 applies (creates, then updates, of their own 10
//! services, which the daemon also starts) while 10 clients follow the
//! event stream and a reader lists services in a loop. Reports the reads'
//! and the applies' latency (p50, p99, max), throughput and how many
//! applies were refused (a conflict only on the shared ID counter must
//! not be one).

#[path = "../tests/common/mod.rs"]
#[allow(unused_macros)]
mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WRITERS: usize = 20;
const APPLIES: usize = 100;
const WATCHERS: usize = 10;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(what: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "{what}: n={} p50={:.1} ms p99={:.1} ms max={:.1} ms",
        v.len(),
        percentile(&v, 0.50).as_secs_f64() * 1e3,
        percentile(&v, 0.99).as_secs_f64() * 1e3,
        v.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = common::script(dir.path(), "load_app", "app() { return 0; }\n");
    let d = common::Daemon::start(&["--concurrency", "4"]);
    let stop = Arc::new(AtomicBool::new(false));

    let mut watchers = Vec::new();
    let lines = Arc::new(AtomicUsize::new(0));
    for _ in 0..WATCHERS {
        let (agent, url, stop, lines) = (
            d.http(),
            format!("{}/v1/events?follow=true", d.url),
            stop.clone(),
            lines.clone(),
        );
        watchers.push(std::thread::spawn(move || {
            use std::io::BufRead;
            let resp = agent.get(&url).call().unwrap();
            let reader = std::io::BufReader::new(resp.into_body().into_reader());
            for line in reader.lines() {
                if line.is_err() || stop.load(Ordering::Relaxed) {
                    break;
                }
                lines.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    let reads = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let (agent, url, stop, reads) = (
            d.http(),
            format!("{}/v1/services", d.url),
            stop.clone(),
            reads.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let mut r = agent.get(&url).call().unwrap();
                let _ = r.body_mut().read_to_string().unwrap();
                assert_eq!(r.status(), 200);
                reads.lock().unwrap().push(t.elapsed());
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    let applies = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (agent, url, app, applies, refused) = (
                d.http(),
                format!("{}/v1/apply", d.url),
                app.display().to_string(),
                applies.clone(),
                refused.clone(),
            );
            std::thread::spawn(move || {
                for i in 0..APPLIES {
                    let body = serde_json::json!({"services": [{
                        "apiVersion": "clusvc/v1", "kind": "Service",
                        "metadata": {"name": format!("w{w}-s{}", i % 10),
                                     "labels": {"round": format!("r{i}")}},
                        "spec": {"checkInterval": "0s",
                                 "applications": [{"script": app}]}
                    }]});
                    let t = Instant::now();
                    let r = agent.post(&url).send_json(&body).unwrap();
                    applies.lock().unwrap().push(t.elapsed());
                    if r.status() != 200 {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let total = WRITERS * APPLIES;
    println!(
        "{total} applies by {WRITERS} writers with {WATCHERS} watchers in {:.2} s ({:.0} applies/s); refused: {}; event lines streamed: {}",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        refused.load(Ordering::Relaxed),
        lines.load(Ordering::Relaxed),
    );
    report("GET /v1/services under load", reads.lock().unwrap().clone());
    report("POST /v1/apply", applies.lock().unwrap().clone());
    drop(d); // the watchers' streams end with the daemon
    for w in watchers {
        let _ = w.join();
    }
}
