//! Cluster mode against the real binaries: a member's agent (`clusvc
//! agent`) holds its member's lease through the server with its own
//! credential, which lets it act only as that member, and fences itself
//! before its lease can expire when it cannot renew.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Daemon, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_clusvc");
const T: Duration = Duration::from_secs(20);

/// A server accepting agents, with node2's agent token.
fn server(dir: &Path) -> (Daemon, PathBuf) {
    let tokens = dir.join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o700)).unwrap();
    let token = tokens.join("node2.token");
    std::fs::write(&token, "node2-agent-secret\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    // node3 has a token but is not declared.
    let node3 = tokens.join("node3.token");
    std::fs::write(&node3, "node3-agent-secret\n").unwrap();
    std::fs::set_permissions(&node3, std::fs::Permissions::from_mode(0o600)).unwrap();
    let d = Daemon::start(&["--agent-tokens", tokens.to_str().unwrap()]);
    let member = dir.join("node2.yaml");
    std::fs::write(
        &member,
        "apiVersion: clusvc/v1\nkind: Member\nmetadata:\n  name: node2\nspec: {}\n",
    )
    .unwrap();
    let (code, _, err) = d.run(&["apply", "-f", member.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    (d, token)
}

/// A process killed on drop, so a failing test leaves no agent behind.
struct Proc(Child);

impl std::ops::Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `clusvc agent` for node2, its log in `log`.
fn agent(d: &Daemon, token: &Path, log: &Path) -> Proc {
    Proc(
        Command::new(BIN)
            .args([
                "agent",
                "--member",
                "node2",
                "--lease-ttl",
                "2s",
                "--server",
            ])
            .arg(format!("http://127.0.0.1:9,{}", d.url))
            .arg("--token-file")
            .arg(token)
            // Its own state, beside its log (not the default one, which
            // tests running at the same time would share).
            .arg("--state-dir")
            .arg(log.with_file_name("agent-state"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// Applies service `name`, restricted to node2 (declared in the same
/// input), whose script's `app` function runs `cases` (a `case $1` body).
fn place_on_node2(d: &Daemon, dir: &Path, name: &str, cases: &str) {
    let app = common::script(
        dir,
        &format!("{name}_app"),
        &format!("app() {{ case $1 in {cases} esac; }}\n"),
    );
    let f = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &f,
        format!(
            "apiVersion: clusvc/v1\nkind: Member\nmetadata:\n  name: node2\nspec: {{}}\n---\napiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  checkInterval: 1s\n  placement: {{members: [node2], restricted: true}}\n  applications:\n    - script: {}\n",
            app.display()
        ),
    )
    .unwrap();
    let (code, _, err) = d.run(&["apply", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
}

fn member_state(d: &Daemon, name: &str) -> String {
    d.get_json(&format!("/v1/members/{name}"))["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// A counter or gauge from `/metrics` (0 when absent).
fn metric(d: &Daemon, name: &str) -> u64 {
    let mut r = d.http().get(format!("{}/metrics", d.url)).call().unwrap();
    r.body_mut()
        .read_to_string()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

fn log_has(log: &Path, what: &str) -> bool {
    std::fs::read_to_string(log).is_ok_and(|t| t.contains(what))
}

#[test]
fn an_agent_holds_its_members_lease_as_that_member_only() {
    let dir = tempfile::tempdir().unwrap();
    let (d, token) = server(dir.path());
    let log = dir.path().join("agent.log");
    let mut a = agent(&d, &token, &log);
    // It fails over from the dead first URL to the server.
    assert!(
        wait_until(T, || log_has(&log, "holding lease")),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(log_has(&log, "trying http://127.0.0.1:"));
    assert_eq!(member_state(&d, "node2"), "alive");
    // Killed: the member is dead once its lease expires.
    a.kill().unwrap();
    a.wait().unwrap();
    assert!(wait_until(T, || member_state(&d, "node2") == "dead"));
    // Back: alive again.
    let mut a = agent(&d, &token, &log);
    assert!(wait_until(T, || member_state(&d, "node2") == "alive"));
    let _ = a.kill();
    let _ = a.wait();

    // The agent's credential: its member's heartbeat only.
    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let beat = |bearer: &str, member: &str| {
        http.post(&format!("{}/v1/agent/heartbeat", d.url))
            .header("Authorization", &format!("Bearer {bearer}"))
            .send_json(serde_json::json!({"member": member, "agentId": "test", "incarnation": "t", "ttlMs": 2000}))
            .unwrap()
            .status()
            .as_u16()
    };
    // While the agent's lease is live, no other agent (another ID) may
    // hold the member.
    assert_eq!(beat("node2-agent-secret", "node2"), 409);
    assert!(wait_until(T, || member_state(&d, "node2") == "dead"));
    assert_eq!(beat("node2-agent-secret", "node2"), 200);
    assert_eq!(beat("node2-agent-secret", "node1"), 403);
    // An agent token of a member not declared brings nothing to life.
    assert_eq!(beat("node3-agent-secret", "node3"), 404);
    assert_eq!(beat("wrong", "node2"), 401);
    // The admin token is not an agent's.
    assert_eq!(beat(&d.token, "node2"), 403);
    // Nor can the agent read or write objects.
    let r = http
        .get(&format!("{}/v1/services", d.url))
        .header("Authorization", "Bearer node2-agent-secret")
        .call()
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .post(&format!("{}/v1/apply", d.url))
        .header("Authorization", "Bearer node2-agent-secret")
        .send_json(serde_json::json!({"services": []}))
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[test]
fn an_agent_that_cannot_renew_fences_itself_before_its_lease_expires() {
    let dir = tempfile::tempdir().unwrap();
    let (d, token) = server(dir.path());
    let log = dir.path().join("agent.log");
    let mut a = agent(&d, &token, &log);
    assert!(wait_until(T, || log_has(&log, "holding lease")));
    // The server stops answering (SIGSTOP): no renewal is acknowledged.
    let pid = nix::unistd::Pid::from_raw(d.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let fenced = wait_until(T, || log_has(&log, "self-fencing node2"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = a.kill();
    let _ = a.wait();
    assert!(fenced, "{text}");
    // It gave up well before the 2 s lease could expire: at half of it,
    // measured from when the last acknowledged renewal was sent.
    let waited: f64 = text
        .lines()
        .find_map(|l| l.split("no renewal acknowledged for ").nth(1))
        .and_then(|r| r.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        (1.0..1.5).contains(&waited),
        "fenced after {waited} s\n{text}"
    );
}

/// A service placed on node2 is started by node2's agent (the controller
/// records the work, the agent runs it and reports by ID), checked there,
/// and stopped by the agent when it fences itself.
#[test]
fn a_members_agent_runs_its_services_and_stops_them_when_it_fences_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (d, token) = server(dir.path());
    let log = dir.path().join("agent.log");
    // node2's agent, on its state, its log appended (across restarts).
    let restart = || {
        Proc(
            Command::new(BIN)
                .args([
                    "agent",
                    "--member",
                    "node2",
                    "--lease-ttl",
                    "5s",
                    "--server",
                ])
                .arg(&d.url)
                .arg("--token-file")
                .arg(&token)
                .arg("--state-dir")
                .arg(dir.path().join("agent-state"))
                .stdout(Stdio::null())
                .stderr(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&log)
                        .unwrap(),
                )
                .spawn()
                .unwrap(),
        )
    };
    let mut a = restart();
    assert!(wait_until(T, || log_has(&log, "holding lease")));
    let mark = dir.path().join("up-on-node2");
    let starts = dir.path().join("starts");
    place_on_node2(
        &d,
        dir.path(),
        "remote",
        &format!(
            "start) echo \"$CLUSVC_MEMBER\" > {m}; echo x >> {s};; stop) rm -f {m};; status) [ -e {m} ];;",
            m = mark.display(),
            s = starts.display()
        ),
    );
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        d.wait_state("remote", "running", T),
        "{:?}\n{}",
        d.service("remote"),
        log_text()
    );
    assert_eq!(d.service("remote").unwrap()["member"], "node2");
    // The agent ran it, as node2.
    assert_eq!(std::fs::read_to_string(&mark).unwrap().trim(), "node2");
    // Checks run there too: the check fails once the mark is gone, and the
    // controller restarts it (through the agent) — the mark is back.
    std::fs::remove_file(&mark).unwrap();
    assert!(wait_until(T, || mark.exists()), "{}", log_text());
    // ... and the restart's result is recorded.
    assert!(wait_until(T, || {
        d.service("remote")
            .is_some_and(|s| s["restarts"] == 1 && s["state"] == "running")
    }));
    // The agent restarts (kill -9), within its 5 s lease (a longer gap
    // would rightly count as the member's death): what it ran and
    // reported is not run again, and it still knows what runs here.
    a.kill().unwrap();
    a.wait().unwrap();
    let count = || {
        std::fs::read_to_string(&starts)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let before = count();
    let mut a = restart();
    assert!(wait_until(T, || log_text()
        .matches("holding lease")
        .count()
        >= 2));
    // Checks go on through the new agent (its own check results arrive).
    let checked = d.service("remote").unwrap()["lastCheck"].clone();
    assert!(wait_until(T, || d.service("remote").unwrap()["lastCheck"] != checked));
    // ... and a passing remote check costs the controller nothing: over
    // two more check intervals it does not reconcile the service again
    // and again (it used to, without end, once its first interval passed).
    let reconciles = || metric(&d, "clusvc_reconciles_total");
    let (r0, mut seen) = (reconciles(), 0);
    let mut last = d.service("remote").unwrap()["lastCheck"].clone();
    assert!(wait_until(T, || {
        let now = d.service("remote").unwrap()["lastCheck"].clone();
        if now != last {
            seen += 1;
            last = now;
        }
        seen >= 2
    }));
    let spent = reconciles() - r0;
    assert!(
        spent <= 4,
        "{spent} reconciles in two check intervals of a steady service"
    );
    assert_eq!(
        count(),
        before,
        "a start ran again after the agent restarted\n{}",
        log_text()
    );
    assert!(mark.exists());
    // The server stops answering: the agent fences itself and stops it.
    let pid = nix::unistd::Pid::from_raw(d.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let stopped = wait_until(T, || {
        !mark.exists() && log_has(&log, "self-fencing node2: stopped remote")
    });
    // The agent is restarted before any server heard of the fence (CI's
    // chaos run: the record said running on node1 for good, and nothing
    // ran). What it stopped is reported by the next agent, which starts
    // it again through the controller.
    let _ = a.kill();
    let _ = a.wait();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert!(stopped, "{}", log_text());
    let before = count();
    let _a = restart();
    assert!(
        wait_until(T, || mark.exists() && count() == before + 1),
        "what the fence stopped was not started again\n{:?}\n{}",
        d.service("remote"),
        log_text()
    );
    assert!(d.wait_state("remote", "running", T));
    let events = d.run(&["events", "remote"]).1;
    assert!(
        events.contains("stopped when the agent fenced itself"),
        "{events}"
    );
}

/// `kill -9` of the agent still fences the member: its watchdog, a process
/// apart, stops what runs there by the deadline the agent last published,
/// and then ends.
#[test]
fn the_watchdog_fences_the_member_when_its_agent_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let (d, token) = server(dir.path());
    let log = dir.path().join("agent.log");
    let state = dir.path().join("agent-state");
    let spawn = || {
        Command::new(BIN)
            .args([
                "agent",
                "--member",
                "node2",
                "--lease-ttl",
                "2s",
                "--server",
            ])
            .arg(&d.url)
            .arg("--token-file")
            .arg(&token)
            .arg("--state-dir")
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap()
    };
    let mut a = Proc(spawn());
    assert!(wait_until(T, || log_has(&log, "holding lease")));
    let mark = dir.path().join("up-on-node2");
    place_on_node2(
        &d,
        dir.path(),
        "wd",
        &format!(
            "start) touch {m};; stop) rm -f {m};; status) [ -e {m} ];;",
            m = mark.display()
        ),
    );
    assert!(d.wait_state("wd", "running", T));
    assert!(mark.exists());
    // The watchdog of this agent state.
    let watchdog = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
            .any(|c| {
                let c = String::from_utf8_lossy(&c).replace('\0', " ");
                c.contains(" watchdog ") && c.contains(state.to_str().unwrap())
            })
    };
    assert!(watchdog(), "no watchdog process");
    a.kill().unwrap();
    a.wait().unwrap();
    // Within the lease (2 s; the deadline is 1 s after the last
    // acknowledged renewal was sent), the service is stopped there.
    assert!(
        wait_until(T, || !mark.exists()),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(log_has(
        &log,
        "watchdog: the agent of node2 published no newer deadline"
    ));
    // Nothing runs, no agent: the watchdog ends.
    assert!(wait_until(T, || !watchdog()), "the watchdog did not end");
    assert!(wait_until(T, || member_state(&d, "node2") == "dead"));
}

/// Two agents never act as one member: a second one on the same state is
/// refused at start, one with other state is refused by the server while
/// the first holds the lease; and a result is accepted only for the item
/// issued.
#[test]
fn one_agent_per_member_and_only_issued_results() {
    let dir = tempfile::tempdir().unwrap();
    let (d, token) = server(dir.path());
    let log = dir.path().join("agent.log");
    let start = |state: &str, log: &Path| {
        Command::new(BIN)
            .args([
                "agent",
                "--member",
                "node2",
                "--lease-ttl",
                "5s",
                "--server",
            ])
            .arg(&d.url)
            .arg("--token-file")
            .arg(&token)
            .arg("--state-dir")
            .arg(dir.path().join(state))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap()
    };
    let mut first = Proc(start("a", &log));
    assert!(wait_until(T, || log_has(&log, "holding lease")));
    let same = start("a", &dir.path().join("same.log"))
        .wait_with_output()
        .unwrap();
    assert_eq!(same.status.code(), Some(2));
    assert!(log_has(
        &dir.path().join("same.log"),
        "another agent runs with the state"
    ));
    let other_log = dir.path().join("other.log");
    let other = start("b", &other_log).wait_with_output().unwrap();
    assert_ne!(other.status.code(), Some(0));
    assert!(
        log_has(&other_log, "is held by another agent"),
        "{}",
        std::fs::read_to_string(&other_log).unwrap_or_default()
    );
    // A result for an item never issued is refused.
    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    for service in ["remote", "..", "nothing"] {
        let r = http
            .post(&format!("{}/v1/agent/done", d.url))
            .header("Authorization", "Bearer node2-agent-secret")
            .send_json(serde_json::json!({
                "member": "node2", "service": service, "id": "forged",
                "outcome": {"kind": "failed", "message": "x"}
            }))
            .unwrap();
        assert_eq!(r.status(), 409, "{service}");
    }
    let _ = first.kill();
    let _ = first.wait();
}

/// After the server was away long enough for the agent to fence itself,
/// the service comes back on its member soon after (the controller sees
/// the lease replaced instead of waiting out the work item's limit).
#[test]
fn a_fenced_member_gets_its_service_back_when_the_server_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (d, token) = server(dir.path());
    let log = dir.path().join("agent.log");
    let mut a = Proc(
        Command::new(BIN)
            .args([
                "agent",
                "--member",
                "node2",
                "--lease-ttl",
                "2s",
                "--server",
            ])
            .arg(&d.url)
            .arg("--token-file")
            .arg(&token)
            .arg("--state-dir")
            .arg(dir.path().join("agent-state"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    assert!(wait_until(T, || log_has(&log, "holding lease")));
    let mark = dir.path().join("up");
    place_on_node2(
        &d,
        dir.path(),
        "back",
        &format!(
            "start) touch {m};; stop) rm -f {m};; status) [ -e {m} ];;",
            m = mark.display()
        ),
    );
    assert!(d.wait_state("back", "running", T));
    let pid = nix::unistd::Pid::from_raw(d.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    assert!(wait_until(T, || !mark.exists()), "the agent did not fence");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    // Back on node2 well within the 130 s a work item may wait.
    let back = wait_until(T, || mark.exists());
    let _ = a.kill();
    let _ = a.wait();
    assert!(
        back,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// An agent killed in the middle of a start resumes it when it comes back:
/// the step that had succeeded is not run again, the interrupted one is
/// run (it never finished), and the result reaches the controller.
#[test]
fn an_agent_restarted_in_the_middle_of_a_start_does_not_redo_a_finished_step() {
    let dir = tempfile::tempdir().unwrap();
    let (d, token) = server(dir.path());
    let log = dir.path().join("agent.log");
    let state = dir.path().join("agent-state");
    let spawn = || {
        Proc(
            Command::new(BIN)
                .args(["agent", "--member", "node2", "--lease-ttl", "5s"])
                .arg("--server")
                .arg(&d.url)
                .arg("--token-file")
                .arg(&token)
                .arg("--state-dir")
                .arg(&state)
                .stdout(Stdio::null())
                .stderr(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&log)
                        .unwrap(),
                )
                .spawn()
                .unwrap(),
        )
    };
    let mut a = spawn();
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_until(T, || log_has(&log, "holding lease")),
        "{}",
        log_text()
    );
    let first = dir.path().join("first-starts");
    let second = dir.path().join("second-starts");
    let go = dir.path().join("go");
    let up1 = dir.path().join("up1");
    let up2 = dir.path().join("up2");
    let one = common::script(
        dir.path(),
        "one_app",
        &format!(
            "app() {{ case $1 in start) echo x >> {f}; touch {u};; stop) rm -f {u};; status) [ -e {u} ];; esac; }}\n",
            f = first.display(),
            u = up1.display()
        ),
    );
    // The second start waits (bounded) for the test to let it finish.
    let two = common::script(
        dir.path(),
        "two_app",
        &format!(
            "app() {{ case $1 in start) echo x >> {f}; for i in $(seq 200); do [ -e {g} ] && break; sleep 0.05; done; [ -e {g} ] && touch {u};; stop) rm -f {u};; status) [ -e {u} ];; esac; }}\n",
            f = second.display(),
            g = go.display(),
            u = up2.display()
        ),
    );
    let f = dir.path().join("two-steps.yaml");
    std::fs::write(
        &f,
        format!(
            "apiVersion: clusvc/v1\nkind: Member\nmetadata:\n  name: node2\nspec: {{}}\n---\napiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: twostep\nspec:\n  timeout: 30s\n  placement: {{members: [node2], restricted: true}}\n  applications:\n    - script: {}\n    - script: {}\n",
            one.display(),
            two.display()
        ),
    )
    .unwrap();
    let (code, _, err) = d.run(&["apply", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let lines = |p: &Path| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .count()
    };
    // The second step is running: the first one has succeeded.
    assert!(wait_until(T, || lines(&second) == 1), "{}", log_text());
    assert_eq!(lines(&first), 1);
    a.kill().unwrap();
    a.wait().unwrap();
    std::fs::write(&go, "").unwrap();
    let _a = spawn();
    assert!(
        d.wait_state("twostep", "running", T),
        "{:?}\n{}",
        d.service("twostep"),
        log_text()
    );
    assert!(log_text().contains("resuming"), "{}", log_text());
    assert_eq!(
        lines(&first),
        1,
        "the first start ran twice\n{}",
        log_text()
    );
    assert_eq!(lines(&second), 2, "{}", log_text());
    assert!(up1.exists() && up2.exists());
}

/// A self-fencing stop is bounded: a stop script that hangs is cut off at
/// a quarter of the lease, and every process the agent's actions started
/// (here a daemon in its own session) is killed.
#[test]
fn a_self_fencing_stop_that_hangs_is_cut_off_and_what_it_started_is_killed() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let (d, token) = server(dir.path());
    let log = dir.path().join("agent.log");
    let mut a = agent(&d, &token, &log);
    assert!(wait_until(T, || log_has(&log, "holding lease")));
    let pidf = dir.path().join("daemon.pid");
    place_on_node2(
        &d,
        dir.path(),
        "hangs",
        &format!(
            "start) setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > {p};; stop) sleep 100;; status) kill -0 $(cat {p});;",
            p = pidf.display()
        ),
    );
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(d.wait_state("hangs", "running", T), "{}", text());
    let pid: i32 = std::fs::read_to_string(&pidf)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let alive = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| !r.trim_start().starts_with('Z'))
        })
    };
    assert!(alive(pid));
    let spid = nix::unistd::Pid::from_raw(d.pid() as i32);
    nix::sys::signal::kill(spid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let killed = wait_until(T, || !alive(pid));
    nix::sys::signal::kill(spid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let _ = a.kill();
    let _ = a.wait();
    assert!(killed, "{}", text());
    assert!(text().contains("took longer than 500ms"), "{}", text());
}

/// The agent is killed, its watchdog stops the service, and the agent is
/// back before the member's lease expired (so the controller never saw the
/// member die): the agent reports what the watchdog stopped, and the
/// controller starts it again.
#[test]
fn what_the_watchdog_stopped_is_started_again_when_the_agent_returns_within_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    let (d, token) = server(dir.path());
    let log = dir.path().join("agent.log");
    let mut a = agent(&d, &token, &log);
    assert!(wait_until(T, || log_has(&log, "holding lease")));
    let mark = dir.path().join("up");
    place_on_node2(
        &d,
        dir.path(),
        "wdback",
        &format!(
            "start) touch {m};; stop) rm -f {m};; status) [ -e {m} ];;",
            m = mark.display()
        ),
    );
    assert!(d.wait_state("wdback", "running", T));
    a.kill().unwrap();
    a.wait().unwrap();
    assert!(
        wait_until(T, || !mark.exists()),
        "the watchdog did not fence"
    );
    let _a = agent(&d, &token, &log);
    assert!(
        wait_until(T, || mark.exists()),
        "{:?}\n{}",
        d.service("wdback"),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(wait_until(T, || d
        .service("wdback")
        .is_some_and(|s| s["state"] == "running" && s["restarts"] == 1)));
}

/// A fresh lease says whether a controller acted on the member's loss
/// meanwhile (decided in the grant's transaction, against the mark the
/// controller sets before it moves anything): an agent whose member lost
/// its lease keeps what it runs when nothing was moved (failsafe mode,
/// when the servers were away) and stops it when something was.
#[test]
fn a_fresh_lease_says_whether_anything_of_the_member_was_moved() {
    let dir = tempfile::tempdir().unwrap();
    let (d, token) = server(dir.path());
    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let beat = || -> serde_json::Value {
        let mut r = http
            .post(&format!("{}/v1/agent/heartbeat", d.url))
            .header("Authorization", "Bearer node2-agent-secret")
            .send_json(serde_json::json!({"member": "node2", "agentId": "test", "incarnation": "t", "ttlMs": 2000}))
            .unwrap();
        assert_eq!(r.status(), 200);
        r.body_mut().read_json().unwrap()
    };
    let verdict = |v: &serde_json::Value| (v["fresh"].as_bool(), v["keep"].as_bool());
    // The first lease, and a renewal: nothing to stop.
    assert_eq!(verdict(&beat()), (Some(true), Some(true)));
    assert_eq!(verdict(&beat()), (Some(false), Some(true)));
    // Expired with nothing of node2 to move: a fresh lease that keeps.
    assert!(wait_until(T, || member_state(&d, "node2") == "dead"));
    assert_eq!(verdict(&beat()), (Some(true), Some(true)));
    assert!(wait_until(T, || member_state(&d, "node2") == "dead"));

    // A real agent runs a service on node2, then is killed with its
    // watchdog's deadline (kill -9): the controller, once the lease
    // expired, stops the service there (node2 is its only member).
    let log = dir.path().join("agent.log");
    let mut a = agent(&d, &token, &log);
    assert!(wait_until(T, || log_has(&log, "holding lease")));
    place_on_node2(&d, dir.path(), "moved", "start|stop|status) true;;");
    assert!(d.wait_state("moved", "running", T));
    a.kill().unwrap();
    a.wait().unwrap();
    assert!(wait_until(T, || member_state(&d, "node2") == "dead"));
    assert!(
        wait_until(T, || d.get_json("/v1/services/moved")["state"] != "running"),
        "{}",
        d.get_json("/v1/services/moved")
    );
    // The next lease tells whoever holds it to stop what it kept, once.
    assert_eq!(verdict(&beat()), (Some(true), Some(false)));
    assert_eq!(verdict(&beat()), (Some(false), Some(true)));
}
