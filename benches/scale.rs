//! The whole `clusvc` process at cluster size, as an operator runs it:
//! `clusvc validate` of 100,000 services, and offline what-if plans
//! (`clusvc plan --offline`) at 16 x 1,000 (one member lost), 64 x 10,000
//! (one member lost, full per-resource observed state) and 256 x 100,000
//! (cold start: nothing runs). Each service has six resources, its
//! application a script (one shared file, as in a real tree); manifests
//! are files of 1,000 services. Reported per case: median and best wall
//! time of RUNS runs, and the peak RSS of the process.
//!
//! `cargo bench --bench scale [-- CASE... [--runs N]]`, CASE one of
//! `validate-100k`, `plan-16x1k`, `plan-64x10k`, `plan-256x100k`.

#[path = "gen/mod.rs"]
mod generate;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use generate::{bin, manifests, observed};

/// Runs the binary `runs` times; (median, best, peak RSS in MiB, stdout of
/// the last run).
fn time(args: &[&str], runs: usize, ok: &[i32]) -> (Duration, Duration, f64, String) {
    let mut times = Vec::new();
    let mut peak = 0.0f64;
    let mut last = String::new();
    for _ in 0..runs {
        let started = Instant::now();
        // Waited for with wait4 below (for its own rusage).
        #[allow(clippy::zombie_processes)]
        let mut child = Command::new(bin())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let read = |mut r: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = r.read_to_end(&mut v);
                v
            })
        };
        let stdout = read(Box::new(child.stdout.take().unwrap()));
        let stderr = read(Box::new(child.stderr.take().unwrap()));
        // wait4: this child's own peak RSS.
        let mut status = 0;
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: the child is ours and not yet waited for; the pointers are to locals.
        let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut u) };
        assert_eq!(pid, child.id() as i32);
        times.push(started.elapsed());
        let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
        let code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        };
        assert!(
            ok.contains(&code),
            "clusvc {args:?}: exit {code}: {}",
            String::from_utf8_lossy(&stderr)
        );
        peak = peak.max(u.ru_maxrss as f64 / 1024.0);
        last = String::from_utf8_lossy(&stdout).into_owned();
    }
    times.sort();
    (times[times.len() / 2], times[0], peak, last)
}

fn report(case: &str, (median, best, rss, _): &(Duration, Duration, f64, String)) {
    println!(
        "{case:<16} median {:>8.1} ms   best {:>8.1} ms   peak RSS {rss:>7.1} MiB",
        median.as_secs_f64() * 1e3,
        best.as_secs_f64() * 1e3
    );
}

fn main() {
    let mut cases: Vec<String> = Vec::new();
    let mut runs = 5;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).unwrap_or(5),
            "--bench" => {}
            c if !c.starts_with('-') => cases.push(c.to_string()),
            _ => {}
        }
    }
    if cases.is_empty() {
        cases = [
            "validate-100k",
            "plan-16x1k",
            "plan-64x10k",
            "plan-256x100k",
        ]
        .map(String::from)
        .to_vec();
    }
    let dir = tempfile::tempdir().unwrap();
    let script = generate::script(dir.path());
    let now = generate::now_rfc3339();
    println!("{runs} runs each, {}", bin());
    for case in &cases {
        match case.as_str() {
            "validate-100k" => {
                let m = manifests(dir.path(), 256, 100_000, &script);
                let r = time(&["validate", "-f", m.to_str().unwrap()], runs, &[0]);
                report(case, &r);
            }
            "plan-16x1k" | "plan-64x10k" => {
                let (members, services) = if case == "plan-16x1k" {
                    (16, 1_000)
                } else {
                    (64, 10_000)
                };
                let m = manifests(dir.path(), members, services, &script);
                let obs = observed(dir.path(), &m, members);
                let r = time(
                    &[
                        "plan",
                        "--offline",
                        "-f",
                        m.to_str().unwrap(),
                        "--observed",
                        obs.to_str().unwrap(),
                        "--now",
                        &now,
                    ],
                    runs,
                    &[1],
                );
                let moved = services.div_ceil(members);
                assert!(
                    r.3.contains(&format!("{moved} to relocate")),
                    "{case}: expected {moved} to relocate:\n{}",
                    r.3.lines().last().unwrap_or("")
                );
                report(case, &r);
            }
            "plan-256x100k" => {
                let m = manifests(dir.path(), 256, 100_000, &script);
                let r = time(
                    &[
                        "plan",
                        "--offline",
                        "-f",
                        m.to_str().unwrap(),
                        "--now",
                        &now,
                    ],
                    runs,
                    &[1],
                );
                assert!(
                    r.3.contains("100000 to start"),
                    "{case}:\n{}",
                    r.3.lines().last().unwrap_or("")
                );
                report(case, &r);
            }
            other => panic!("unknown case {other}"),
        }
    }
}
