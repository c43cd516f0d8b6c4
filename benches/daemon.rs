//! Daemon figures, measured against the real binary: `cargo bench --bench daemon`.
//!
//! - `apply` of 1,000 services, end to end (CLI start to exit);
//! - manifest commit to the first plan step (GitOps event timestamp);
//! - daemon RSS with 10,000 services;
//! - steady-state CPU of the loop with 1,000 services whose checks are
//!   native (a block device), every 10 s.

#[path = "gen/mod.rs"]
mod generate;

#[path = "../tests/common/mod.rs"]
#[allow(unused_macros)]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

/// `n` services, 500 per file.
fn write_services(dir: &Path, n: usize, spec: &str, prefix: &str) {
    generate::service_files(dir, n, 500, spec, prefix);
}

fn proc_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn count_running(d: &common::Daemon) -> usize {
    d.get_json("/v1/services")
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "running")
        .count()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = common::script(dir.path(), "bench_app", "app() { return 0; }\n");

    // 1. apply of 1,000 services.
    let d = common::Daemon::start(&["--concurrency", "4"]);
    let m = dir.path().join("m1000");
    write_services(
        &m,
        1000,
        &format!(
            "  checkInterval: 0s\n  applications:\n    - script: {}\n",
            app.display()
        ),
        "svc",
    );
    let t = Instant::now();
    let (code, out, err) = d.run(&["apply", "-f", m.to_str().unwrap()]);
    let apply = t.elapsed();
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().filter(|l| l.ends_with(" created")).count(),
        1000
    );
    println!(
        "apply of 1,000 services: {:.0} ms (CLI start to exit)",
        apply.as_secs_f64() * 1e3
    );
    let t = Instant::now();
    assert!(common::wait_until(
        Duration::from_secs(300),
        || count_running(&d) == 1000
    ));
    println!(
        "  ... and all 1,000 running {:.1} s later (4 in parallel, one script each)",
        t.elapsed().as_secs_f64()
    );
    drop(d);

    // 2. commit to first plan step.
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let git = |args: &[&str]| {
        assert!(
            Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args(["-c", "user.name=b", "-c", "user.email=b@example.invalid"])
                .args(args)
                .output()
                .unwrap()
                .status
                .success()
        )
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("README"), "bench\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-qm", "init"]);
    let d = common::Daemon::start(&["--manifests", repo.to_str().unwrap()]);
    let mut samples = Vec::new();
    for i in 0..10 {
        // The clock starts before the file is written: the watcher's
        // debounce and the sync count.
        let committed = SystemTime::now();
        std::fs::write(
            repo.join(format!("s{i}.yaml")),
            format!(
                "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: c{i}\nspec:\n  checkInterval: 0s\n  applications:\n    - script: {}\n",
                app.display()
            ),
        )
        .unwrap();
        git(&["add", "."]);
        git(&["commit", "-qm", "add"]);
        let name = format!("c{i}");
        assert!(common::wait_until(Duration::from_secs(10), || d
            .service(&name)
            .is_some_and(|s| s["state"] == "running")));
        let events = d.events_json(&name);
        let first_step = events
            .iter()
            .find(|e| {
                e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(": start on "))
            })
            .and_then(|e| e["at"].as_str())
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .unwrap();
        let ms = first_step
            .duration_since(committed)
            .unwrap_or_default()
            .as_secs_f64()
            * 1e3;
        samples.push(ms);
    }
    samples.sort_by(f64::total_cmp);
    println!(
        "manifest commit to first plan step: median {:.0} ms, max {:.0} ms (10 commits; the clock starts before the file is written)",
        samples[samples.len() / 2],
        samples[samples.len() - 1]
    );
    drop(d);

    // 3. RSS with 10,000 services whose status is checked every 10 s (a
    // native check of a block device, so the checks themselves are cheap
    // and the figure is the daemon's own), peak and steady.
    let block = std::fs::read_dir("/sys/block")
        .ok()
        .and_then(|mut it| it.find_map(|e| e.ok()))
        .map(|e| format!("/dev/{}", e.file_name().to_string_lossy()))
        .filter(|b| Path::new(b).exists())
        .expect("a block device to check natively");
    let d = common::Daemon::start(&[]);
    let m = dir.path().join("m10000");
    write_services(
        &m,
        10_000,
        &format!("  checkInterval: 10s\n  devices:\n    - path: {block}\n"),
        "big",
    );
    let (code, _, err) = d.run(&["apply", "-f", m.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let pid = d.pid();
    assert!(common::wait_until(
        Duration::from_secs(600),
        || count_running(&d) == 10_000
    ));
    // The daemon returns memory freed after the burst every 10 s.
    std::thread::sleep(Duration::from_secs(12));
    println!(
        "daemon with 10,000 running services checked every 10 s: RSS {:.1} MB steady (peak {:.1} MB while starting them all)",
        proc_field(pid, "VmRSS:") as f64 / 1024.0,
        proc_field(pid, "VmHWM:") as f64 / 1024.0
    );
    drop(d);

    // 4. steady-state CPU with 1,000 native checks every 10 s.
    let block = std::fs::read_dir("/sys/block")
        .ok()
        .and_then(|mut it| it.find_map(|e| e.ok()))
        .map(|e| format!("/dev/{}", e.file_name().to_string_lossy()));
    let Some(block) = block.filter(|b| Path::new(b).exists()) else {
        println!("no block device to check natively; CPU figure skipped");
        return;
    };
    let d = common::Daemon::start(&[]);
    let m = dir.path().join("m1000dev");
    write_services(
        &m,
        1000,
        &format!("  checkInterval: 10s\n  devices:\n    - path: {block}\n"),
        "dev",
    );
    let (code, _, err) = d.run(&["apply", "-f", m.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(common::wait_until(
        Duration::from_secs(120),
        || count_running(&d) == 1000
    ));
    std::thread::sleep(Duration::from_secs(12));
    let pid = d.pid();
    let hz = 100.0;
    let (t0, c0) = (Instant::now(), cpu_ticks(pid));
    std::thread::sleep(Duration::from_secs(30));
    let (t1, c1) = (Instant::now(), cpu_ticks(pid));
    let pct = (c1 - c0) as f64 / hz / (t1 - t0).as_secs_f64() * 100.0;
    println!(
        "steady state, 1,000 services with native checks every 10 s: {pct:.2}% of one core (30 s sample; {} ticks)",
        c1 - c0
    );
}
