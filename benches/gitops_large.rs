//! GitOps at size: a manifests directory of 10,000 services (20 files of
//! 500) in a git repository; one service changes in one file; the time from
//! before the file is written to the controller's first plan step for it.
//! `cargo bench --bench gitops_large [-- SERVICES]`.

#[path = "../tests/common/mod.rs"]
#[allow(unused_macros)]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

fn git(repo: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "user.name=b", "-c", "user.email=b@example.invalid"])
        .args(args)
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok, "git {args:?}");
}

fn file_text(first: usize, n: usize, app: &Path, enabled: Option<usize>) -> String {
    let mut text = String::new();
    for i in first..first + n {
        let on = enabled == Some(i);
        text.push_str(&format!(
            "---\napiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: g{i}\nspec:\n  enabled: {on}\n  checkInterval: 0s\n  applications:\n    - script: {}\n",
            app.display()
        ));
    }
    text
}

fn main() {
    let total: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.replace('_', "").parse().ok())
        .unwrap_or(10_000);
    let per_file = 500;
    let dir = tempfile::tempdir().unwrap();
    let app = common::script(dir.path(), "g_app", "app() { return 0; }\n");
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    for f in 0..total.div_ceil(per_file) {
        let first = f * per_file;
        let n = per_file.min(total - first);
        std::fs::write(
            repo.join(format!("services-{f:03}.yaml")),
            file_text(first, n, &app, None),
        )
        .unwrap();
    }
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "init"]);
    let d = common::Daemon::start(&["--manifests", repo.to_str().unwrap()]);
    assert!(common::wait_until(Duration::from_secs(300), || {
        d.get_json("/v1/services")
            .as_array()
            .is_some_and(|a| a.len() == total && a.iter().all(|s| s["state"] == "disabled"))
    }));
    let files = total.div_ceil(per_file);
    let mut samples = Vec::new();
    for round in 0..5 {
        // One service of a file is enabled (another one each round).
        let f = round % files;
        let n = per_file.min(total - f * per_file);
        let target = f * per_file + (round * 7 + n / 2) % n;
        let started = SystemTime::now();
        std::fs::write(
            repo.join(format!("services-{f:03}.yaml")),
            file_text(f * per_file, n, &app, Some(target)),
        )
        .unwrap();
        git(&repo, &["commit", "-qam", "enable one"]);
        let name = format!("g{target}");
        assert!(
            common::wait_until(Duration::from_secs(60), || d
                .service(&name)
                .is_some_and(|s| s["state"] == "running")),
            "{name}: {:?}\nsync: {}",
            d.service(&name).map(|s| s["state"].clone()),
            d.get_json("/v1/sync")
        );
        let at = d
            .events_json(&name)
            .iter()
            .find(|e| {
                e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(": start on "))
            })
            .and_then(|e| e["at"].as_str().map(str::to_string))
            .and_then(|t| humantime::parse_rfc3339_weak(&t).ok())
            .unwrap();
        samples.push(at.duration_since(started).unwrap_or_default().as_secs_f64() * 1e3);
    }
    samples.sort_by(f64::total_cmp);
    println!(
        "{total}-service tree, one service changed: write to first plan step median {:.0} ms, max {:.0} ms (5 changes)",
        samples[samples.len() / 2],
        samples[samples.len() - 1]
    );
}
