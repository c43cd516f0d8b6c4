//! Correctness of the running daemon, each test a defect an operator hit:
//! deleting a service must not make the controller loop; a fence counts for
//! one incident only; a start that always fails is retried a bounded number
//! of times with backoff; a retried stop uses today's definition.

#[macro_use]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Daemon, script, wait_until};

const T: Duration = Duration::from_secs(30);

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn metric(d: &Daemon, name: &str) -> u64 {
    let mut r = d.http().get(&format!("{}/metrics", d.url)).call().unwrap();
    r.body_mut()
        .read_to_string()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing"))
}

fn apply(d: &Daemon, dir: &Path, yaml: &str) {
    let f = dir.join(format!("m{}.yaml", yaml.len()));
    write(&f, yaml);
    let (code, _, err) = d.run(&["apply", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

#[test]
fn a_deleted_service_is_forgotten_once_and_its_events_keep_its_id() {
    let d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    // Two services first, so the deleted one's ID (1) differs from the next
    // free ID (2) that the defect showed in its events.
    let app = script(dir.path(), "app", "app() { return 0; }\n");
    for name in ["first", "doomed"] {
        apply(
            &d,
            dir.path(),
            &format!(
                "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  checkInterval: 0s\n  applications:\n    - script: {}\n",
                app.display()
            ),
        );
        assert!(d.wait_state(name, "running", T));
    }
    let id = d.service("doomed").unwrap()["id"].as_u64().unwrap();
    assert_eq!(id, 1);
    let (code, _, err) = d.run(&["delete", "service", "doomed"]);
    assert_eq!(code, 0, "{err}");
    assert!(wait_until(T, || d.service("doomed").is_none()));
    // Quiescence is measured over a window: with nothing to do, the
    // controller must not keep planning (the defect: hundreds per second).
    let before = metric(&d, "clusvc_plans_total");
    let window = Instant::now();
    while window.elapsed() < Duration::from_millis(1500) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = metric(&d, "clusvc_plans_total");
    assert!(
        after - before <= 2,
        "the controller kept planning after the delete: {before} -> {after}"
    );
    let events = d.events_json("doomed");
    assert!(
        events.iter().any(|e| e["message"] == "now stopped"),
        "{events:#?}"
    );
    for e in &events {
        assert_eq!(e["serviceId"], id, "an event with another ID: {e}");
    }
    let forgets = events
        .iter()
        .filter(|e| e["message"].as_str().unwrap_or("").contains("delete"))
        .count();
    assert!(forgets <= 2, "forgotten more than once: {events:#?}");
}

#[test]
fn a_start_that_always_fails_is_tried_a_bounded_number_of_times_with_backoff() {
    let d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let attempts = dir.path().join("attempts");
    let app = script(
        dir.path(),
        "broken_app",
        &format!(
            "app() {{ case $1 in start) date +%s.%N >> {a}; return 1;; *) return 0;; esac; }}\n",
            a = attempts.display()
        ),
    );
    apply(
        &d,
        dir.path(),
        &format!(
            "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: broken\nspec:\n  recovery:\n    maxRestarts: 3\n    restartWindow: 10m\n  applications:\n    - script: {}\n",
            app.display()
        ),
    );
    // One member: after the limit it cannot relocate, so it ends failed.
    assert!(
        wait_until(T, || d
            .service("broken")
            .is_some_and(|s| s["state"] == "failed" && s["member"].is_null())),
        "{:?}",
        d.service("broken")
    );
    let times: Vec<f64> = std::fs::read_to_string(&attempts)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(times.len(), 4, "the first start and 3 restarts: {times:?}");
    // Restart 1 at once, then 1 s and 2 s of backoff.
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[1] >= 0.9 && gaps[2] >= 1.9, "no backoff: {gaps:?}");
    let events = d.events("broken");
    for n in 1..=3 {
        assert!(
            events
                .iter()
                .any(|e| e.contains(&format!("restart {n} of 3"))),
            "restart {n} of 3 missing: {events:#?}"
        );
    }
    assert!(
        events
            .iter()
            .any(|e| e.contains("restart limit reached (3 of 3 within 10m)")),
        "{events:#?}"
    );
    // And it stays failed: no further attempt.
    let settled = Instant::now();
    while settled.elapsed() < Duration::from_millis(1500) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(lines(&attempts), 4);
}

#[test]
fn a_second_failed_stop_on_a_fenced_member_is_fenced_again() {
    let d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let fences = dir.path().join("fences");
    let stop_fails = dir.path().join("stop-fails");
    let fence = script(
        dir.path(),
        "fence_node",
        &format!("echo \"$1\" >> {}\n", fences.display()),
    );
    let app = script(
        dir.path(),
        "sticky_app",
        &format!(
            "app() {{ case $1 in stop) [ ! -e {f} ];; *) return 0;; esac; }}\n",
            f = stop_fails.display()
        ),
    );
    apply(
        &d,
        dir.path(),
        &format!(
            "apiVersion: clusvc/v1\nkind: Member\nmetadata:\n  name: node1\nspec:\n  fencing:\n    command: [{}, node1]\n    timeout: 10s\n---\napiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: sticky\nspec:\n  checkInterval: 0s\n  applications:\n    - script: {}\n",
            fence.display(),
            app.display()
        ),
    );
    assert!(d.wait_state("sticky", "running", T));
    // Incident 1: the stop of a restart fails; the member is fenced.
    write(&stop_fails, "");
    let (code, _, err) = d.run(&["restart", "sticky"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        wait_until(T, || lines(&fences) == 1),
        "first fence: {:#?}",
        d.events("sticky")
    );
    // The service comes back on node1 (the only member, alive again).
    std::fs::remove_file(&stop_fails).unwrap();
    assert!(
        d.wait_state("sticky", "running", T),
        "{:?}",
        d.service("sticky")
    );
    // Incident 2: another failed stop needs its own fence.
    write(&stop_fails, "");
    let (code, _, err) = d.run(&["restart", "sticky"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        wait_until(T, || lines(&fences) == 2),
        "no second fence ({} fence(s)): {:#?}",
        lines(&fences),
        d.events("sticky")
    );
}

#[test]
fn clear_retries_a_blocked_stop_with_the_definition_as_it_is_now() {
    let d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    // `bad` cannot stop, `good` can; the fix is to point the service at
    // `good` (same script, same resource) and clear.
    let app = script(
        dir.path(),
        "two_ways",
        "bad() { case $1 in stop) return 1;; *) return 0;; esac; }\ngood() { return 0; }\n",
    );
    let svc = |function: &str, enabled: bool| {
        format!(
            "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  enabled: {enabled}\n  checkInterval: 0s\n  applications:\n    - script: {}\n      function: {function}\n",
            app.display()
        )
    };
    apply(&d, dir.path(), &svc("bad", true));
    assert!(d.wait_state("web", "running", T));
    apply(&d, dir.path(), &svc("bad", false));
    assert!(d.wait_state("web", "blocked", T), "{:?}", d.service("web"));
    apply(&d, dir.path(), &svc("good", false));
    let (code, _, err) = d.run(&["clear", "web"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        d.wait_state("web", "disabled", T),
        "{:?}\n{:#?}",
        d.service("web"),
        d.events("web")
    );
}

/// Deleting a service whose stop fails blocks it on its member, as a
/// failed stop blocks any service, instead of stopping it again at once
/// (it was retried about 300 times a second, 3 log lines each); `clear`
/// retries the stop, and once it succeeds the service is forgotten.
#[test]
fn a_deleted_service_whose_stop_fails_is_blocked_not_retried_in_a_loop() {
    let d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let stops = dir.path().join("stops");
    let fails = dir.path().join("stop-fails");
    let app = script(
        dir.path(),
        "stubborn_app",
        &format!(
            "app() {{ case $1 in stop) echo stop >> {s}; [ -e {f} ] && return 1; return 0;; *) return 0;; esac; }}\n",
            s = stops.display(),
            f = fails.display()
        ),
    );
    apply(
        &d,
        dir.path(),
        &format!(
            "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: gone\nspec:\n  checkInterval: 0s\n  applications:\n    - script: {}\n",
            app.display()
        ),
    );
    assert!(d.wait_state("gone", "running", T));
    write(&fails, "");
    let (code, _, err) = d.run(&["delete", "service", "gone"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        wait_until(T, || d
            .service("gone")
            .is_some_and(|s| s["state"] == "blocked")),
        "{:?}\n{:#?}",
        d.service("gone"),
        d.events("gone")
    );
    // The controller goes on with other work meanwhile: a service applied
    // now starts, and the failed stop was not tried again.
    let other = script(dir.path(), "other_app", "app() { return 0; }\n");
    apply(
        &d,
        dir.path(),
        &format!(
            "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: other\nspec:\n  checkInterval: 0s\n  applications:\n    - script: {}\n",
            other.display()
        ),
    );
    assert!(d.wait_state("other", "running", T));
    assert_eq!(lines(&stops), 1, "{:#?}", d.events("gone"));
    // Fixed and cleared: stopped once more, then forgotten.
    std::fs::remove_file(&fails).unwrap();
    let (code, _, err) = d.run(&["clear", "gone"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        wait_until(T, || d.service("gone").is_none()),
        "{:?}",
        d.service("gone")
    );
    assert_eq!(lines(&stops), 2);
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn an_unsafe_script_is_an_invalid_manifest_for_validate_and_apply() {
    require_root!();
    let d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let app = script(dir.path(), "open_app", "app() { return 0; }\n");
    chmod(&app, 0o777);
    let manifest = dir.path().join("svc.yaml");
    write(
        &manifest,
        &format!(
            "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: open\nspec:\n  applications:\n    - script: {}\n",
            app.display()
        ),
    );
    let expected = format!(
        "spec.applications[0].script: refusing to run {} as root: script {} is writable by everyone (mode 777)",
        app.display(),
        app.display()
    );
    for cmd in ["validate", "apply"] {
        let (code, _, err) = d.run(&[cmd, "-f", manifest.to_str().unwrap()]);
        assert_eq!(code, 2, "{cmd}: {err}");
        assert!(err.contains(&expected), "{cmd}: {err}");
    }
    // The server checks too, whoever sends the object.
    let body = serde_json::json!({"services": [{
        "apiVersion": "clusvc/v1", "kind": "Service",
        "metadata": {"name": "open"},
        "spec": {"applications": [{"script": app.display().to_string()}]}
    }]});
    let mut r = d
        .http()
        .post(&format!("{}/v1/apply", d.url))
        .send_json(&body)
        .unwrap();
    assert_eq!(r.status(), 422);
    let answer: serde_json::Value =
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(answer["code"], "invalid");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("writable by everyone"),
        "{answer}"
    );
    assert!(d.service("open").is_none());
}

#[test]
fn a_start_refused_for_an_unsafe_script_needs_no_stop() {
    require_root!();
    let d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    let app = script(
        dir.path(),
        "later_app",
        &format!(
            "app() {{ echo \"$1\" >> {}; return 0; }}\n",
            calls.display()
        ),
    );
    let yaml = |enabled: bool| {
        format!(
            "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: later\nspec:\n  enabled: {enabled}\n  recovery:\n    maxRestarts: 0\n  applications:\n    - script: {}\n",
            app.display()
        )
    };
    apply(&d, dir.path(), &yaml(false));
    assert!(d.wait_state("later", "disabled", T));
    // Made unsafe after it was accepted: the agent refuses to run it.
    chmod(&app, 0o777);
    let (code, _, err) = d.run(&["enable", "later"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        wait_until(T, || d
            .service("later")
            .is_some_and(|s| s["state"] == "failed" && s["member"].is_null())),
        "{:?}\n{:#?}",
        d.service("later"),
        d.events("later")
    );
    let events = d.events("later");
    assert!(
        events.iter().any(|e| e.contains("writable by everyone")),
        "{events:#?}"
    );
    assert!(
        !events.iter().any(|e| e.contains("stop failed")),
        "a refused start was stopped: {events:#?}"
    );
    assert_eq!(lines(&calls), 0, "the script ran");
}

#[test]
fn disable_of_a_service_the_manifests_directory_owns_is_refused_unless_forced() {
    let tree = tempfile::tempdir().unwrap();
    let starts = tree.path().join("starts");
    let app = script(
        tree.path(),
        "tree_app",
        &format!(
            "app() {{ case $1 in start) echo x >> {};; esac; return 0; }}\n",
            starts.display()
        ),
    );
    std::fs::create_dir_all(tree.path().join("services")).unwrap();
    write(
        &tree.path().join("services/web.yaml"),
        &format!(
            "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  checkInterval: 0s\n  applications:\n    - script: {}\n",
            app.display()
        ),
    );
    let d = Daemon::start(&[
        "--manifests",
        tree.path().to_str().unwrap(),
        "--resync",
        "1s",
    ]);
    assert!(d.wait_state("web", "running", T));
    assert_eq!(lines(&starts), 1);
    // Refused, with the file to edit; nothing is stopped.
    let (code, _, err) = d.run(&["disable", "web"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("services/web.yaml"), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(d.service("web").unwrap()["state"], "running");
    // Forced: it stops and stays stopped across syncs (resync every 1 s).
    let (code, _, err) = d.run(&["disable", "web", "--force", "--wait", "--timeout", "20s"]);
    assert_eq!(code, 0, "{err}");
    let sync_before = d.get_json("/v1/sync")["syncedAt"].clone();
    assert!(wait_until(T, || d.get_json("/v1/sync")["syncedAt"] != sync_before));
    assert!(wait_until(T, || d.get_json("/v1/sync")["syncedAt"] != sync_before));
    assert_eq!(d.service("web").unwrap()["state"], "disabled");
    assert_eq!(lines(&starts), 1, "a sync re-enabled it");
    let (_, wide, _) = d.run(&["get", "services", "-o", "wide"]);
    assert!(wide.contains("enabled=false"), "{wide}");
    let (_, describe, _) = d.run(&["describe", "service", "web"]);
    assert!(
        describe.contains("Override:    enabled=false"),
        "{describe}"
    );
    // enable returns to the directory's value without --force.
    let (code, _, err) = d.run(&["enable", "web", "--wait", "--timeout", "20s"]);
    assert_eq!(code, 0, "{err}");
    let (_, wide, _) = d.run(&["get", "services", "-o", "wide"]);
    assert!(!wide.contains("enabled=false"), "{wide}");
    // Runtime operations work on any service.
    let (code, _, err) = d.run(&["restart", "web", "--wait", "--timeout", "20s"]);
    assert_eq!(code, 0, "{err}");
    // Deleting it is changing the tree's object: refused, with the file.
    let (code, _, err) = d.run(&["delete", "service", "web"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("services/web.yaml"), "{err}");
    assert_eq!(d.service("web").unwrap()["state"], "running");
}

#[test]
fn operations_that_cannot_be_done_are_refused_at_once() {
    let d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let app = script(dir.path(), "op_app", "app() { return 0; }\n");
    apply(
        &d,
        dir.path(),
        &format!(
            "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  checkInterval: 0s\n  applications:\n    - script: {}\n",
            app.display()
        ),
    );
    assert!(d.wait_state("web", "running", T));
    let cases: [(&[&str], &str); 6] = [
        (
            &["relocate", "web", "--to", "node9"],
            "members \"node9\" not found",
        ),
        (
            &["relocate", "web", "--to", "node1"],
            "already runs on node1",
        ),
        (&["relocate", "web"], "no eligible member"),
        (&["restart", "nosuch"], "services \"nosuch\" not found"),
        (&["describe", "service", "nosuch"], "not found"),
        (&["delete", "service", "nosuch"], "not found"),
    ];
    for (args, want) in cases {
        let (code, _, err) = d.run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // A refused relocation leaves nothing behind.
    let svc = d.service("web").unwrap();
    assert!(svc["observed"]["relocate"].is_null(), "{svc}");
    let (code, _, _) = d.run(&["freeze", "web"]);
    assert_eq!(code, 0);
    let (code, _, err) = d.run(&["restart", "web"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("frozen"), "{err}");
    let (code, _, _) = d.run(&["unfreeze", "web"]);
    assert_eq!(code, 0);
    // `create` of an existing name is refused (as kubectl create).
    let (code, _, err) = d.run(&[
        "create",
        "service",
        "web",
        "--userscript",
        app.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("services \"web\" already exists"), "{err}");
    // --to belongs to relocate only.
    let (code, _, err) = d.run(&["enable", "web", "--to", "node1"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn apply_wait_exits_1_naming_a_service_that_ended_failed() {
    let d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let app = script(
        dir.path(),
        "never_app",
        "app() { case $1 in start) echo cannot start >&2; return 1;; *) return 0;; esac; }\n",
    );
    let f = dir.path().join("bad.yaml");
    write(
        &f,
        &format!(
            "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: never\nspec:\n  recovery:\n    maxRestarts: 1\n  applications:\n    - script: {}\n",
            app.display()
        ),
    );
    let (code, _, err) = d.run(&[
        "apply",
        "-f",
        f.to_str().unwrap(),
        "--wait",
        "--timeout",
        "60s",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("service/never failed: start of application never_app failed"),
        "{err}"
    );
    assert!(err.contains("did not converge"), "{err}");
}

#[test]
fn a_stored_service_that_fails_validation_is_held_and_nothing_is_stopped() {
    use clusvc_store::{Store, embedded::Embedded, keys};
    let mut d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let stops = dir.path().join("stops");
    let app = script(
        dir.path(),
        "kept_app",
        &format!(
            "app() {{ case $1 in stop) echo x >> {};; esac; return 0; }}\n",
            stops.display()
        ),
    );
    for name in ["good", "spoiled"] {
        apply(
            &d,
            dir.path(),
            &format!(
                "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  checkInterval: 0s\n  applications:\n    - script: {}\n",
                app.display()
            ),
        );
        assert!(d.wait_state(name, "running", T));
    }
    d.kill9();
    // As a hand-edited store or a rule tightened by an upgrade would: the
    // stored object of `spoiled` no longer validates (timeout 0s).
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Embedded::open(d.state.join("store")).unwrap();
        let key = format!("{}spoiled", keys::SERVICES);
        let kv = store.get(&key).await.unwrap().unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(&kv.value).unwrap();
        v["spec"]["timeout"] = "0s".into();
        store
            .put(&key, serde_json::to_vec(&v).unwrap())
            .await
            .unwrap();
    });
    d.crash_and_restart();
    assert!(
        d.wait_state("spoiled", "invalid", T),
        "{:?}",
        d.service("spoiled")
    );
    let spoiled = d.service("spoiled").unwrap();
    assert!(
        spoiled["invalid"]
            .as_str()
            .unwrap()
            .contains("spec.timeout: must be greater than 0s"),
        "{spoiled}"
    );
    assert_eq!(d.service("good").unwrap()["state"], "running");
    let health = d.get_json("/healthz");
    assert!(health["invalidServices"]["spoiled"].is_string(), "{health}");
    assert!(
        d.events("spoiled")
            .iter()
            .any(|e| e.contains("held: its stored object is invalid")),
        "{:#?}",
        d.events("spoiled")
    );
    assert_eq!(lines(&stops), 0, "something was stopped");
    // Fixed by applying a valid object: it is taken again.
    apply(
        &d,
        dir.path(),
        &format!(
            "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: spoiled\nspec:\n  checkInterval: 0s\n  timeout: 30s\n  applications:\n    - script: {}\n",
            app.display()
        ),
    );
    assert!(
        d.wait_state("spoiled", "running", T),
        "{:?}",
        d.service("spoiled")
    );
}

#[test]
fn every_error_answer_is_code_and_message() {
    let d = Daemon::start(&[]);
    let agent = d.http();
    let check = |mut r: ureq::http::Response<ureq::Body>, status: u16, code: &str| {
        assert_eq!(r.status(), status);
        let body: serde_json::Value =
            serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(body["code"], code, "{body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    };
    let url = |p: &str| format!("{}{p}", d.url);
    let apply_json = |body: &str| {
        agent
            .post(&url("/v1/apply"))
            .content_type("application/json")
            .send(body)
            .unwrap()
    };
    check(apply_json("{not json"), 400, "badRequest");
    check(apply_json(r#"{"services": 5}"#), 422, "invalid");
    check(
        // No content type: a bad request (each code has one status).
        agent.post(&url("/v1/apply")).send("{}").unwrap(),
        400,
        "badRequest",
    );
    check(
        agent.get(&url("/v1/events?limit=abc")).call().unwrap(),
        400,
        "badRequest",
    );
    check(
        agent.get(&url("/v1/nosuch")).call().unwrap(),
        404,
        "notFound",
    );
    check(
        agent.delete(&url("/v1/services")).call().unwrap(),
        405,
        "methodNotAllowed",
    );
    // A bare array is no request (serde would read it field by field).
    check(apply_json(r#"[[], [], "x", true]"#), 400, "badRequest");
    // Unknown request fields are errors: a typo must not turn a dry run
    // into a real apply.
    check(apply_json(r#"{"dry_run": true}"#), 422, "invalid");
    check(
        agent
            .post(&url("/v1/services/x/ops/explode"))
            .send_empty()
            .unwrap(),
        404,
        "notFound",
    );
}

#[test]
fn events_survive_a_restart_with_the_service_id_reason_and_revision() {
    let mut d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let app = script(dir.path(), "hist_app", "app() { return 0; }\n");
    apply(
        &d,
        dir.path(),
        &format!(
            "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: hist\nspec:\n  checkInterval: 0s\n  applications:\n    - script: {}\n",
            app.display()
        ),
    );
    assert!(d.wait_state("hist", "running", T));
    d.crash_and_restart();
    let events = d.events_json("hist");
    let start = events
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .unwrap_or("")
                .contains("start on node1")
        })
        .unwrap_or_else(|| panic!("the start is not in the history after a restart: {events:#?}"));
    assert_eq!(start["serviceId"], 0);
    assert_eq!(start["reason"], "not running");
    assert!(start["revision"].as_u64().is_some_and(|r| r > 0), "{start}");
    let (code, out, _) = d.run(&["describe", "service", "hist"]);
    assert_eq!(code, 0);
    assert!(out.contains("start on node1 (not running)"), "{out}");
}

#[test]
fn a_manifests_directory_is_not_synced_again_by_its_own_reading() {
    let tree = tempfile::tempdir().unwrap();
    let app = script(tree.path(), "quiet_app", "app() { return 0; }\n");
    write(
        &tree.path().join("web.yaml"),
        &format!(
            "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  checkInterval: 0s\n  applications:\n    - script: {}\n",
            app.display()
        ),
    );
    let d = Daemon::start(&["--manifests", tree.path().to_str().unwrap()]);
    assert!(d.wait_state("web", "running", T));
    // Reading the tree opens and closes its files; those are not changes.
    // (The defect: every sync's reads triggered the next, at full CPU.)
    let first = d.get_json("/v1/sync")["syncedAt"].clone();
    let window = Instant::now();
    while window.elapsed() < Duration::from_millis(2000) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        d.get_json("/v1/sync")["syncedAt"],
        first,
        "the tree was synced again with no change"
    );
}

#[test]
fn a_store_damaged_in_the_middle_stops_the_start_with_the_offset() {
    let mut d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let app = script(dir.path(), "wal_app", "app() { return 0; }\n");
    for i in 0..5 {
        apply(
            &d,
            dir.path(),
            &format!(
                "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: w{i}\nspec:\n  checkInterval: 0s\n  applications:\n    - script: {}\n",
                app.display()
            ),
        );
    }
    assert!(d.wait_state("w4", "running", T));
    d.kill9();
    let wal = d.state.join("store/wal");
    let mut bytes = std::fs::read(&wal).unwrap();
    // Damage the record that created w2's desired object: it fails its
    // checksum, and acknowledged records follow it.
    let needle = b"/clusvc/desired/service/w2";
    let offset = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("w2's desired object is in the log")
        + 3;
    bytes[offset] ^= 0xff;
    std::fs::write(&wal, &bytes).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clusvc"))
        .args([
            "run",
            "--member",
            "node1",
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
        ])
        .arg(&d.state)
        .arg("--socket")
        .arg(d.socket())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("fails its checksum") && err.contains("byte offset"),
        "{err}"
    );
    assert_eq!(std::fs::read(&wal).unwrap(), bytes, "the log was changed");
    assert!(err.contains("clusvc store repair"), "{err}");

    // `store check` says what reads, changing nothing (exit 1: damaged).
    let store = |verb: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_clusvc"))
            .args(["store", verb, "--state-dir"])
            .arg(&d.state)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, report) = store("check");
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains("DAMAGED at byte offset"), "{report}");
    assert!(report.contains("lost"), "{report}");
    assert_eq!(std::fs::read(&wal).unwrap(), bytes, "check changed the log");
    // `store repair` keeps the original and rebuilds from what reads.
    let (code, report) = store("repair");
    assert_eq!(code, Some(0), "{report}");
    assert!(
        report.contains("restored service/w2 from the spec it runs with"),
        "{report}"
    );
    let backup = report
        .lines()
        .find_map(|l| l.strip_prefix("kept a copy of the damaged files in "))
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(
        std::fs::read(Path::new(backup).join("wal")).unwrap(),
        bytes,
        "the copy is not the original"
    );
    assert_eq!(store("check").0, Some(0));
    // The daemon starts again; the services outside the damaged record are
    // there.
    d.crash_and_restart();
    let listed = d.get_json("/v1/services");
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    // Every service is still there: one whose desired object was in the
    // damaged record is restored from the spec it runs with, not stopped
    // as deleted.
    for i in 0..5 {
        assert!(
            names.contains(&format!("w{i}").as_str()),
            "{names:?}\n{report}"
        );
    }
    assert!(
        !d.events("w0")
            .iter()
            .chain(d.events("w1").iter())
            .any(|e| e.contains("deleted")),
        "a service was stopped as deleted"
    );
}

#[test]
fn prune_freeze_and_member_deletion_work_end_to_end() {
    let d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let healthy = dir.path().join("healthy");
    write(&healthy, "");
    let app = script(
        dir.path(),
        "pf_app",
        &format!(
            "app() {{ case $1 in status) [ -e {} ];; *) return 0;; esac; }}\n",
            healthy.display()
        ),
    );
    let svc = |name: &str| {
        format!(
            "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  checkInterval: 1s\n  applications:\n    - script: {}\n",
            app.display()
        )
    };
    let set = dir.path().join("set");
    std::fs::create_dir_all(&set).unwrap();
    write(&set.join("a.yaml"), &svc("a"));
    write(&set.join("b.yaml"), &svc("b"));
    let members = "apiVersion: clusvc/v1\nkind: Member\nmetadata:\n  name: node1\n---\napiVersion: clusvc/v1\nkind: Member\nmetadata:\n  name: node2\n";
    write(&set.join("m.yaml"), members);
    let (code, _, err) = d.run(&[
        "apply",
        "-f",
        set.to_str().unwrap(),
        "--wait",
        "--timeout",
        "30s",
    ]);
    assert_eq!(code, 0, "{err}");
    // --prune removes what this source applied and the input no longer has.
    std::fs::remove_file(set.join("b.yaml")).unwrap();
    let (code, out, err) = d.run(&["apply", "-f", set.to_str().unwrap(), "--prune"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("service/b pruned"), "{out}");
    assert!(wait_until(T, || d.service("b").is_none()));
    // An empty input with --prune would delete everything: refused.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (code, _, err) = d.run(&["apply", "-f", empty.to_str().unwrap(), "--prune"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no objects passed to apply"), "{err}");
    assert!(d.service("a").is_some());
    // Frozen: a failing check changes nothing until unfrozen.
    let (code, _, _) = d.run(&["freeze", "a"]);
    assert_eq!(code, 0);
    std::fs::remove_file(&healthy).unwrap();
    let window = Instant::now();
    while window.elapsed() < Duration::from_millis(2500) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(d.service("a").unwrap()["state"], "frozen");
    write(&healthy, "");
    let (code, _, _) = d.run(&["unfreeze", "a", "--wait", "--timeout", "20s"]);
    assert_eq!(code, 0);
    assert_eq!(d.service("a").unwrap()["state"], "running");
    // A member named in a placement cannot be deleted; an unnamed one can.
    write(
        &set.join("a.yaml"),
        &svc("a").replace("spec:\n", "spec:\n  placement: {members: [node1, node2]}\n"),
    );
    let (code, _, err) = d.run(&["apply", "-f", set.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = d.run(&["delete", "member", "node2"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("named in the placement of: a"), "{err}");
    write(&set.join("a.yaml"), &svc("a"));
    write(
        &set.join("m.yaml"),
        "apiVersion: clusvc/v1\nkind: Member\nmetadata:\n  name: node1\n",
    );
    let (code, _, err) = d.run(&["apply", "-f", set.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = d.run(&["delete", "member", "node2"]);
    assert_eq!((code, out.as_str()), (0, "member/node2 deleted\n"), "{err}");
}

/// A small deterministic generator for the crash tests' random moments;
/// the seed is printed so a failure can be replayed (`CLUSVC_TEST_SEED`).
fn seed() -> u64 {
    let s = std::env::var("CLUSVC_TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("seed: {s} (replay with CLUSVC_TEST_SEED={s})");
    s
}

fn next(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *state >> 33
}

#[test]
fn kill_9_during_concurrent_applies_loses_no_acknowledged_write() {
    let mut rng = seed();
    let mut d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let app = script(dir.path(), "cc_app", "app() { return 0; }\n");
    for round in 0..3 {
        let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut clients = Vec::new();
        for c in 0..4 {
            let (url, app, dir) = (
                format!("unix:{}", d.socket().display()),
                app.clone(),
                dir.path().to_path_buf(),
            );
            let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
            clients.push(std::thread::spawn(move || {
                for i in 0.. {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        return;
                    }
                    let name = format!("r{round}c{c}n{i}");
                    let f = dir.join(format!("{name}.yaml"));
                    std::fs::write(
                        &f,
                        format!(
                            "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  checkInterval: 0s\n  applications:\n    - script: {}\n",
                            app.display()
                        ),
                    )
                    .unwrap();
                    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clusvc"))
                        .args(["apply", "-f"])
                        .arg(&f)
                        .env("CLUSVC_SERVER", &url)
                        .output()
                        .unwrap();
                    if out.status.success()
                        && String::from_utf8_lossy(&out.stdout).contains("created")
                    {
                        acknowledged.lock().unwrap().push(name);
                    } else if out.status.code() == Some(3) {
                        return; // the daemon is gone
                    }
                }
            }));
        }
        // Kill at a random moment while requests are in flight.
        let delay = 200 + next(&mut rng) % 1500;
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(delay) {
            std::thread::sleep(Duration::from_millis(10));
        }
        d.kill9();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for c in clients {
            c.join().unwrap();
        }
        d.crash_and_restart();
        let listed = d.get_json("/v1/services");
        let listed = listed.as_array().unwrap();
        let names: Vec<&str> = listed.iter().map(|s| s["name"].as_str().unwrap()).collect();
        let acknowledged = acknowledged.lock().unwrap().clone();
        assert!(
            !acknowledged.is_empty(),
            "round {round}: nothing was acknowledged in {delay} ms"
        );
        for name in &acknowledged {
            assert!(
                names.contains(&name.as_str()),
                "round {round}: {name} was acknowledged but is gone"
            );
        }
        // Nothing half there: every service has its record and a unique ID.
        let mut ids: Vec<u64> = listed
            .iter()
            .map(|s| s["id"].as_u64().unwrap_or_else(|| panic!("no ID: {s}")))
            .collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "round {round}: two services share an ID");
    }
}

#[test]
fn kill_9_in_the_middle_of_a_multi_resource_start_starts_nothing_twice() {
    let mut d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let gate = dir.path().join("gate");
    let step = |name: &str, wait: bool| {
        let up = dir.path().join(format!("{name}.up"));
        script(
            dir.path(),
            name,
            &format!(
                "app() {{ case $1 in start) echo {name} >> {log}; {wait} touch {up}; return 0;; stop) rm -f {up}; return 0;; status) [ -e {up} ];; esac; }}\n",
                log = log.display(),
                up = up.display(),
                wait = if wait {
                    format!("while [ ! -e {} ]; do sleep 0.05; done;", gate.display())
                } else {
                    String::new()
                }
            ),
        )
    };
    let (first, second, third) = (
        step("first_app", false),
        step("second_app", true),
        step("third_app", false),
    );
    apply(
        &d,
        dir.path(),
        &format!(
            "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: multi\nspec:\n  checkInterval: 0s\n  applications:\n    - script: {}\n    - script: {}\n    - script: {}\n",
            first.display(),
            second.display(),
            third.display()
        ),
    );
    // The second start is under way (waiting at the gate): kill -9 now.
    assert!(wait_until(T, || std::fs::read_to_string(&log)
        .is_ok_and(|l| l.contains("second_app"))));
    d.kill9();
    // The orphaned action finishes while no daemon runs.
    write(&gate, "");
    d.crash_and_restart();
    assert!(
        d.wait_state("multi", "running", T),
        "{:?}\n{:#?}",
        d.service("multi"),
        d.events("multi")
    );
    let starts = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        starts, "first_app\nsecond_app\nthird_app\n",
        "each resource starts exactly once, in order"
    );
}

#[test]
fn four_services_blocked_on_one_member_share_one_fence() {
    let d = Daemon::start(&["--concurrency", "4"]);
    let dir = tempfile::tempdir().unwrap();
    let fences = dir.path().join("fences");
    let stop_fails = dir.path().join("stop-fails");
    // A fence that waits at a gate: every stop fails before it completes,
    // so all four failures are one incident (a stop that fails after a
    // fence is a new incident and needs a new fence).
    let gate = dir.path().join("gate");
    let fence = script(
        dir.path(),
        "slow_fence",
        &format!(
            "echo \"$1\" >> {}; for i in $(seq 1200); do [ -e {} ] && exit 0; sleep 0.05; done; exit 1\n",
            fences.display(),
            gate.display()
        ),
    );
    let app = script(
        dir.path(),
        "four_app",
        &format!(
            "app() {{ case $1 in stop) [ ! -e {f} ];; *) return 0;; esac; }}\n",
            f = stop_fails.display()
        ),
    );
    let mut yaml = format!(
        "apiVersion: clusvc/v1\nkind: Member\nmetadata:\n  name: node1\nspec:\n  fencing:\n    command: [{}, node1]\n    timeout: 90s\n",
        fence.display()
    );
    for i in 0..4 {
        yaml.push_str(&format!(
            "---\napiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: f{i}\nspec:\n  checkInterval: 0s\n  applications:\n    - script: {}\n",
            app.display()
        ));
    }
    apply(&d, dir.path(), &yaml);
    for i in 0..4 {
        assert!(d.wait_state(&format!("f{i}"), "running", T));
    }
    write(&stop_fails, "");
    let restarts: Vec<_> = (0..4)
        .map(|i| {
            let mut c = d.cli();
            c.args(["restart", &format!("f{i}")]);
            std::thread::spawn(move || c.output().unwrap().status.code())
        })
        .collect();
    for r in restarts {
        assert_eq!(r.join().unwrap(), Some(0));
    }
    assert!(wait_until(T, || lines(&fences) >= 1));
    // Every service waits on the fence: its stop failed (blocked), or its
    // member is already being fenced when its restart is planned.
    assert!(
        wait_until(T, || (0..4).all(|i| d.events(&format!("f{i}")).iter().any(
            |e| e.contains("fencing node1") || e.contains("node1 is being fenced")
        ))),
        "not every service waits on the fence: {:#?}",
        (0..4)
            .map(|i| d.events(&format!("f{i}")))
            .collect::<Vec<_>>()
    );
    write(&gate, "");
    std::fs::remove_file(&stop_fails).unwrap();
    for i in 0..4 {
        assert!(
            d.wait_state(&format!("f{i}"), "running", T),
            "{:?}",
            d.service(&format!("f{i}"))
        );
    }
    assert_eq!(
        lines(&fences),
        1,
        "one incident, one fence: {:#?}",
        (0..4)
            .map(|i| d.events(&format!("f{i}")))
            .collect::<Vec<_>>()
    );
}

#[test]
fn passing_status_checks_write_nothing_to_the_store() {
    let d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let app = script(dir.path(), "steady_app", "app() { return 0; }\n");
    for i in 0..3 {
        apply(
            &d,
            dir.path(),
            &format!(
                "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: s{i}\nspec:\n  checkInterval: 1s\n  applications:\n    - script: {}\n",
                app.display()
            ),
        );
    }
    for i in 0..3 {
        assert!(d.wait_state(&format!("s{i}"), "running", T));
    }
    let revision = |d: &Daemon| {
        let p: serde_json::Value = d
            .http()
            .post(&format!("{}/v1/plan", d.url))
            .send_json(serde_json::json!({}))
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        p["revision"].as_u64().unwrap()
    };
    // Let the first checks run, then measure a window of several checks.
    assert!(wait_until(T, || d
        .service("s2")
        .is_some_and(|s| !s["lastCheck"].is_null())));
    let before = revision(&d);
    let window = Instant::now();
    while window.elapsed() < Duration::from_millis(2500) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(d.service("s0").is_some_and(|s| !s["lastCheck"].is_null()));
    assert_eq!(revision(&d), before, "passing checks wrote to the store");
}

#[test]
fn extreme_durations_are_refused_and_do_not_crash_the_daemon() {
    let d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let app = script(dir.path(), "long_app", "app() { return 0; }\n");
    for field in [
        "timeout: 18446744073709551615",
        "checkInterval: 18446744073709551615",
        "recovery:\n    restartWindow: 100000000h",
    ] {
        let f = dir.path().join("long.yaml");
        write(
            &f,
            &format!(
                "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: long\nspec:\n  {field}\n  applications:\n    - script: {}\n",
                app.display()
            ),
        );
        let (code, _, err) = d.run(&["apply", "-f", f.to_str().unwrap()]);
        assert_eq!(code, 2, "{field}: {err}");
        assert!(
            err.contains("is too long: at most 8760h (one year)"),
            "{field}: {err}"
        );
    }
    // The daemon is fine and still serves.
    let (code, _, err) = d.run(&["get", "services"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_hostile_manifest_tree_is_refused_quickly_with_the_paths() {
    let tree = tempfile::tempdir().unwrap();
    let t = tree.path();
    write(
        &t.join("ok.yaml"),
        "apiVersion: clusvc/v1\nkind: Member\nmetadata:\n  name: node1\n",
    );
    // A FIFO (reading it would wait for a writer forever), a link to an
    // endless device, and two directory links back to the tree.
    let fifo = t.join("x.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink("/dev/zero", t.join("z.yaml")).unwrap();
    std::os::unix::fs::symlink(".", t.join("loop1")).unwrap();
    std::os::unix::fs::symlink(".", t.join("loop2")).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_clusvc"))
        .args(["validate", "-f"])
        .arg(t)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let done = wait_until(Duration::from_secs(10), || {
        child.try_wait().unwrap().is_some()
    });
    if !done {
        let _ = child.kill();
    }
    assert!(done, "validate hung on the tree ({:?})", started.elapsed());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("x.yaml: not a regular file"), "{err}");
    assert!(err.contains("z.yaml: not a regular file"), "{err}");
}

#[test]
fn oversized_labels_and_annotations_are_refused_with_the_field() {
    let d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let big = "v".repeat(64);
    let f = dir.path().join("labels.yaml");
    write(
        &f,
        &format!(
            "apiVersion: clusvc/v1\nkind: Member\nmetadata:\n  name: node1\n  labels: {{rack: {big}}}\n  annotations: {{note: {}}}\n",
            "a".repeat(300 << 10)
        ),
    );
    let (code, _, err) = d.run(&["apply", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("metadata.labels.rack: value of 64 bytes: at most 63"),
        "{err}"
    );
    assert!(err.contains("metadata.annotations: "), "{err}");
}

#[test]
fn concurrent_creates_of_different_services_all_succeed() {
    let d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let app = script(dir.path(), "par_app", "app() { return 0; }\n");
    let runs: Vec<_> = (0..10)
        .map(|i| {
            let f = dir.path().join(format!("p{i}.yaml"));
            write(
                &f,
                &format!(
                    "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: p{i}\nspec:\n  checkInterval: 0s\n  applications:\n    - script: {}\n",
                    app.display()
                ),
            );
            let mut c = d.cli();
            c.args(["apply", "-f"]).arg(&f);
            std::thread::spawn(move || c.output().unwrap())
        })
        .collect();
    for r in runs {
        let out = r.join().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The ID shows once the controller has recorded the service.
    let id = |i: usize| d.service(&format!("p{i}")).and_then(|s| s["id"].as_u64());
    assert!(wait_until(T, || (0..10).all(|i| id(i).is_some())));
    let ids: std::collections::BTreeSet<u64> = (0..10).filter_map(id).collect();
    assert_eq!(ids.len(), 10, "IDs must be unique: {ids:?}");
}

#[test]
fn sigterm_ends_the_daemon_within_two_seconds_despite_a_follower() {
    let d = Daemon::start(&[]);
    let mut follow = d
        .cli()
        .args(["events", "--follow"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Let the follower connect.
    assert!(wait_until(T, || {
        std::fs::read_dir("/proc").map(|_| true).unwrap_or(false)
    }));
    std::thread::sleep(Duration::from_millis(300));
    let pid = nix::unistd::Pid::from_raw(d.pid() as i32);
    let t0 = Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let gone = wait_until(Duration::from_secs(5), || {
        nix::sys::signal::kill(pid, None).is_err()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
    });
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(gone, "the daemon was still running 5 s after SIGTERM");
    assert!(
        t0.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t0.elapsed()
    );
}

#[test]
fn a_full_disk_loses_no_acknowledged_write() {
    require_root!();
    let base = tempfile::tempdir().unwrap();
    let state = base.path().join("state");
    std::fs::create_dir_all(state.join("store")).unwrap();
    let bin = env!("CARGO_BIN_EXE_clusvc");
    // The store on a 1 MiB tmpfs in a private mount namespace; the rest of
    // the state directory (address, events) stays visible here.
    let mut daemon = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs -o size=1m tmpfs {s}/store && exec {bin} run --member node1 --socket {s}/clusvc.sock --state-dir {s}",
            s = state.display()
        ))
        .env("CLUSVC_LOG", "warn")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let address = state.join("address");
    assert!(wait_until(T, || std::fs::read_to_string(&address)
        .is_ok_and(|a| a.ends_with('\n'))));
    let url = format!("unix:{}/clusvc.sock", state.display());
    let in_ns = |argv: &[&str]| {
        std::process::Command::new("nsenter")
            .args(["-t", &daemon.id().to_string(), "-m", "--"])
            .args(argv)
            .output()
            .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let app = script(dir.path(), "disk_app", "app() { return 0; }\n");
    let apply_one = |name: &str| -> bool {
        let f = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &f,
            format!(
                "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: {name}\n  annotations: {{pad: {}}}\nspec:\n  checkInterval: 0s\n  enabled: false\n  applications:\n    - script: {}\n",
                "x".repeat(4000),
                app.display()
            ),
        )
        .unwrap();
        std::process::Command::new(bin)
            .args(["apply", "-f"])
            .arg(&f)
            .env("CLUSVC_SERVER", &url)
            .output()
            .unwrap()
            .status
            .success()
    };
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        assert!(apply_one(&format!("before{i}")));
        acknowledged.push(format!("before{i}"));
    }
    // Fill the disk, then write until a write fails.
    let filler = format!("{}/store/filler", state.display());
    in_ns(&["dd", "if=/dev/zero", &format!("of={filler}"), "bs=4k"]);
    let mut refused = 0;
    for i in 0..50 {
        let name = format!("full{i}");
        if apply_one(&name) {
            acknowledged.push(name);
        } else {
            refused += 1;
        }
    }
    assert!(refused > 0, "the full disk refused nothing");
    // Room again: writes are acknowledged again, after the failed ones.
    in_ns(&["rm", "-f", &filler]);
    for i in 0..5 {
        let name = format!("after{i}");
        assert!(apply_one(&name), "{name} refused with room on the disk");
        acknowledged.push(name);
    }
    // What the store holds now, opened fresh elsewhere, has every
    // acknowledged write.
    let copy = base.path().join("copy");
    std::fs::create_dir_all(copy.join("store")).unwrap();
    let out = in_ns(&[
        "sh",
        "-c",
        &format!(
            "cp {s}/store/wal {s}/store/snapshot {c}/store/ 2>/dev/null; cp {s}/store/wal {c}/store/",
            s = state.display(),
            c = copy.display()
        ),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
    let names: Vec<String> = tokio::runtime::Runtime::new().unwrap().block_on(async {
        use clusvc_store::{Store, embedded::Embedded, keys};
        let store = Embedded::open(copy.join("store")).expect("the copied store opens");
        let (kvs, _) = store.list(keys::SERVICES).await.unwrap();
        kvs.iter()
            .map(|kv| kv.key.trim_start_matches(keys::SERVICES).to_string())
            .collect()
    });
    for name in &acknowledged {
        assert!(names.contains(name), "{name} was acknowledged but is lost");
    }
}

#[test]
fn a_link_in_a_directory_another_user_owns_is_refused_though_its_target_is_roots() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let target = script(dir.path(), "real_app", "app() { return 0; }\n");
    // The user who owns `theirs` could swap the link between the check and
    // the run; so it is refused however safe its target is.
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::symlink(&target, theirs.join("real_app")).unwrap();
    nix::unistd::chown(&theirs, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let f = dir.path().join("svc.yaml");
    write(
        &f,
        &format!(
            "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: linked\nspec:\n  applications:\n    - script: {}\n",
            theirs.join("real_app").display()
        ),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clusvc"))
        .args(["validate", "-f"])
        .arg(&f)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "directory {} is owned by uid 65534",
            theirs.display()
        )),
        "{err}"
    );
    // The same link in a directory of root's is fine (the seed's symlinked
    // script directories keep working).
    let ours = dir.path().join("ours");
    std::fs::create_dir(&ours).unwrap();
    std::os::unix::fs::symlink(&target, ours.join("real_app")).unwrap();
    write(
        &f,
        &format!(
            "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: linked\nspec:\n  applications:\n    - script: {}\n",
            ours.join("real_app").display()
        ),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clusvc"))
        .args(["validate", "-f"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
