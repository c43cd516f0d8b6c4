//! Cluster servers on a real etcd (`clusvc server --store etcd:...`): every
//! server serves the API and the members' agents, one elected server runs
//! the controller, and when it dies another takes over and finishes what
//! it was doing without running a step twice.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Daemon, EtcdCluster, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_clusvc");
const T: Duration = Duration::from_secs(30);

/// A process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A token directory with node2's and node3's agent tokens.
fn tokens(dir: &Path) -> PathBuf {
    let tokens = dir.join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o700)).unwrap();
    for m in ["node2", "node3"] {
        let t = tokens.join(format!("{m}.token"));
        std::fs::write(&t, format!("{m}-agent-secret\n")).unwrap();
        std::fs::set_permissions(&t, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    tokens
}

/// Two servers on `etcd`, with a 2 s leadership lease.
fn servers(etcd: &EtcdCluster, tokens: &Path) -> Vec<Daemon> {
    ["s1", "s2"]
        .iter()
        .map(|n| {
            Daemon::server(
                n,
                &etcd.endpoints(),
                &[
                    "--agent-tokens",
                    tokens.to_str().unwrap(),
                    "--lease-ttl",
                    "2s",
                ],
            )
        })
        .collect()
}

/// The name of the server that leads, as `server` sees it.
fn leader(server: &Daemon) -> Option<String> {
    let h = server.get_json("/healthz");
    h["leader"]["name"].as_str().map(str::to_string)
}

/// The index in `servers` of the leader, once there is one.
fn wait_leader(servers: &[Daemon], names: &[&str]) -> usize {
    let mut found = None;
    assert!(
        wait_until(T, || {
            found = leader(&servers[0])
                .and_then(|l| names.iter().position(|n| *n == l))
                .filter(|&i| servers[i].pid() != 0);
            found.is_some()
        }),
        "no server was elected"
    );
    found.unwrap()
}

/// `clusvc agent` for `member` through every server.
fn agent(dir: &Path, tokens: &Path, member: &str, servers: &[&Daemon]) -> Proc {
    let urls: Vec<&str> = servers.iter().map(|s| s.url.as_str()).collect();
    Proc(
        Command::new(BIN)
            .args(["agent", "--member", member, "--lease-ttl", "2s", "--server"])
            .arg(urls.join(","))
            .arg("--token-file")
            .arg(tokens.join(format!("{member}.token")))
            .arg("--state-dir")
            .arg(dir.join(format!("agent-{member}")))
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join(format!("agent-{member}.log")))
                    .unwrap(),
            )
            .spawn()
            .unwrap(),
    )
}

/// Members node2 and node3, and service `web` preferring node2 then node3,
/// with two applications; every start and stop is logged to `actions` as
/// `MEMBER VERB APP`. The second application's start on node3 waits
/// (bounded) for the file `go`.
fn manifest(dir: &Path) -> PathBuf {
    let actions = dir.join("actions");
    let go = dir.join("go");
    let mut scripts = Vec::new();
    for app in ["one", "two"] {
        let wait = if app == "two" {
            format!(
                "if [ \"$CLUSVC_MEMBER\" = node3 ]; then for i in $(seq 400); do [ -e {g} ] && break; sleep 0.05; done; fi; ",
                g = go.display()
            )
        } else {
            String::new()
        };
        scripts.push(common::script(
            dir,
            &format!("{app}_app"),
            &format!(
                "app() {{ up={d}/up.$CLUSVC_MEMBER.{app}; case $1 in start) echo \"$CLUSVC_MEMBER start {app} begin\" >> {a}; {wait}touch $up; echo \"$CLUSVC_MEMBER start {app}\" >> {a};; stop) rm -f $up; echo \"$CLUSVC_MEMBER stop {app}\" >> {a};; status) [ -e $up ];; esac; }}\n",
                d = dir.display(),
                a = actions.display(),
            ),
        ));
    }
    let f = dir.join("web.yaml");
    let mut text = String::new();
    for m in ["node2", "node3"] {
        text.push_str(&format!(
            "apiVersion: clusvc/v1\nkind: Member\nmetadata:\n  name: {m}\nspec: {{}}\n---\n"
        ));
    }
    std::fs::write(dir.join("members.yaml"), &text).unwrap();
    text.push_str(&format!(
        "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  timeout: 30s\n  checkInterval: 1s\n  placement: {{members: [node2, node3], ordered: true, failback: false}}\n  applications:\n    - script: {}\n    - script: {}\n",
        scripts[0].display(),
        scripts[1].display()
    ));
    std::fs::write(&f, text).unwrap();
    f
}

/// Declares node2 and node3 through `server` and waits until both agents
/// hold their leases (so that placement is decided with both alive).
fn declare_members(dir: &Path, server: &Daemon) {
    let (code, _, err) = server.run(&["apply", "-f", dir.join("members.yaml").to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(wait_until(T, || {
        ["node2", "node3"]
            .iter()
            .all(|m| server.get_json(&format!("/v1/members/{m}"))["state"] == "alive")
    }));
}

/// Waits until both agents have reported on the scripts the services
/// name (a member that has not is not chosen to start anything).
fn wait_scripts(server: &Daemon, scripts: usize) {
    assert!(wait_until(T, || {
        ["node2", "node3"].iter().all(|m| {
            server.get_json(&format!("/v1/members/{m}"))["observed"]["inventory"]["scripts"]
                .as_object()
                .is_some_and(|o| o.len() == scripts)
        })
    }));
}

fn actions(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("actions"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn count(dir: &Path, line: &str) -> usize {
    actions(dir).iter().filter(|l| *l == line).count()
}

fn runs_on(d: &Daemon, member: &str) -> bool {
    d.service("web")
        .is_some_and(|s| s["state"] == "running" && s["member"] == member)
}

fn logs(dir: &Path, servers: &[Daemon]) -> String {
    let mut out = String::new();
    for s in servers {
        out.push_str(&format!(
            "--- {}\n{}",
            s.log_path().display(),
            std::fs::read_to_string(s.log_path()).unwrap_or_default()
        ));
    }
    for m in ["node2", "node3"] {
        out.push_str(&format!(
            "--- agent {m}\n{}",
            std::fs::read_to_string(dir.join(format!("agent-{m}.log"))).unwrap_or_default()
        ));
    }
    out.push_str(&format!("--- actions\n{}\n", actions(dir).join("\n")));
    out
}

/// Two servers, one controller: what is applied through one is run by the
/// leader's controller; reads, events and operator requests work through
/// either server.
#[test]
fn two_servers_share_one_controller_and_either_takes_requests() {
    let Some(etcd) = EtcdCluster::start(1) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens(dir.path());
    let servers = servers(&etcd, &tokens);
    let l = wait_leader(&servers, &["s1", "s2"]);
    let follower = &servers[1 - l];
    let _a2 = agent(dir.path(), &tokens, "node2", &[&servers[0], &servers[1]]);
    let _a3 = agent(dir.path(), &tokens, "node3", &[&servers[1], &servers[0]]);
    let f = manifest(dir.path());
    std::fs::write(dir.path().join("go"), "").unwrap();
    declare_members(dir.path(), follower);
    // Applied through the follower: the leader runs it.
    let (code, _, err) = follower.run(&["apply", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        wait_until(T, || runs_on(&servers[0], "node2")
            && runs_on(&servers[1], "node2")),
        "{}",
        logs(dir.path(), &servers)
    );
    wait_scripts(follower, 2);
    // An operator request through the follower is carried out by the
    // leader.
    let (code, out, err) = follower.run(&["relocate", "web", "--to", "node3"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        wait_until(T, || runs_on(follower, "node3")),
        "{}",
        logs(dir.path(), &servers)
    );
    // The leader's events are shown by both servers.
    for s in &servers {
        let events = s.events("web");
        assert!(
            events
                .iter()
                .any(|e| e.contains("operator: relocate to node3")),
            "{events:?}"
        );
    }
    assert_eq!(count(dir.path(), "node2 start one"), 1);
    assert_eq!(count(dir.path(), "node3 start one"), 1);
    // `restart --wait` through the follower returns once the restart is
    // done (it returned at once, before the leader had begun it): with
    // `two`'s start on node3 held until `go` exists, it is still waiting
    // when that start begins, and returns after it ends.
    std::fs::remove_file(dir.path().join("go")).unwrap();
    let mut restart = follower
        .cli()
        .args(["restart", "web", "--wait", "--timeout", "30s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_until(T, || count(dir.path(), "node3 start two begin") == 2),
        "{}",
        logs(dir.path(), &servers)
    );
    assert!(
        restart.try_wait().unwrap().is_none(),
        "restart --wait returned before the restart was done"
    );
    std::fs::write(dir.path().join("go"), "").unwrap();
    let out = restart.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(dir.path(), "node3 start two"), 2);
    // Carried out and recorded, the work items and results are removed:
    // what an agent's work request reads stays as short as what is in
    // flight.
    assert!(
        wait_until(T, || etcd.count("/clusvc/work/") == Some(0)
            && etcd.count("/clusvc/result/") == Some(0)),
        "work {:?}, results {:?}",
        etcd.count("/clusvc/work/"),
        etcd.count("/clusvc/result/")
    );
    // The web console of the follower: members with their leases and
    // scripts, and a relocation back to node2 after its plan.
    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let (cookie, csrf) = follower.console_login(&follower.token);
    let get = |path: &str| {
        http.get(&format!("{}{path}", follower.url))
            .header("cookie", &cookie)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    };
    let overview = get("/ui/");
    assert!(
        overview.contains("node2")
            && overview.contains("lease held for")
            && overview.contains("2 of 2"),
        "{overview}"
    );
    let confirm = get("/ui/services/web/ops/relocate?to=node2");
    assert!(confirm.contains("relocate node3 -&gt; node2"), "{confirm}");
    let r = http
        .post(&format!("{}/ui/services/web/ops/relocate", follower.url))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .send(format!("_csrf={csrf}&to=node2"))
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert!(
        wait_until(T, || runs_on(follower, "node2")),
        "{}",
        logs(dir.path(), &servers)
    );
}

/// `kill -9` of the leading server in the middle of a relocation: the other
/// server is elected within the lease, resumes the plan (adopting the step
/// that was running, or its result), finishes the relocation, and no step
/// that had succeeded runs again.
#[test]
fn a_controller_killed_mid_relocation_is_replaced_and_no_step_runs_twice() {
    let Some(etcd) = EtcdCluster::start(1) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens(dir.path());
    let mut servers = servers(&etcd, &tokens);
    let l = wait_leader(&servers, &["s1", "s2"]);
    let _a2 = agent(dir.path(), &tokens, "node2", &[&servers[0], &servers[1]]);
    let _a3 = agent(dir.path(), &tokens, "node3", &[&servers[0], &servers[1]]);
    let f = manifest(dir.path());
    declare_members(dir.path(), &servers[l]);
    let (code, _, err) = servers[l].run(&["apply", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        wait_until(T, || runs_on(&servers[l], "node2")),
        "{}",
        logs(dir.path(), &servers)
    );
    wait_scripts(&servers[l], 2);
    let (code, out, err) = servers[l].run(&["relocate", "web", "--to", "node3"]);
    assert_eq!(code, 0, "{out}{err}");
    // node2 stopped it; node3 has started `one` and is in `two`'s start.
    assert!(
        wait_until(T, || count(dir.path(), "node3 start two begin") == 1),
        "{}",
        logs(dir.path(), &servers)
    );
    servers[l].kill9();
    let survivor = 1 - l;
    let names = ["s1", "s2"];
    assert!(
        wait_until(T, || leader(&servers[survivor]).as_deref()
            == Some(names[survivor])),
        "{}",
        logs(dir.path(), &servers)
    );
    std::fs::write(dir.path().join("go"), "").unwrap();
    assert!(
        wait_until(T, || runs_on(&servers[survivor], "node3")),
        "{:?}\n{}",
        servers[survivor].service("web"),
        logs(dir.path(), &servers)
    );
    let all = logs(dir.path(), &servers);
    for line in [
        "node2 start one",
        "node2 start two",
        "node2 stop two",
        "node2 stop one",
        "node3 start one",
        "node3 start two begin",
        "node3 start two",
    ] {
        assert_eq!(count(dir.path(), line), 1, "{line}\n{all}");
    }
    // The survivor resumed the plan where it was: it adopted the batch in
    // flight, or (when the agent had already handed that batch's result
    // to it) asked for the same item again and got the result without a
    // second run; either way no step ran twice (counted above).
    let events = servers[survivor].events("web");
    assert!(
        events
            .iter()
            .any(|e| e.contains("resuming the previous controller's plan")),
        "{events:?}\n{all}"
    );
}

/// `member standby` drains a member at run time (its service moves away),
/// through any server; `member unstandby` undoes it (no failback here, so
/// the service stays where it went).
#[test]
fn member_standby_drains_a_member_at_run_time_and_unstandby_undoes_it() {
    let Some(etcd) = EtcdCluster::start(1) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens(dir.path());
    let servers = servers(&etcd, &tokens);
    let l = wait_leader(&servers, &["s1", "s2"]);
    let follower = &servers[1 - l];
    let _a2 = agent(dir.path(), &tokens, "node2", &[&servers[0], &servers[1]]);
    let _a3 = agent(dir.path(), &tokens, "node3", &[&servers[0], &servers[1]]);
    let f = manifest(dir.path());
    std::fs::write(dir.path().join("go"), "").unwrap();
    declare_members(dir.path(), follower);
    let (code, _, err) = follower.run(&["apply", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(wait_until(T, || runs_on(follower, "node2")));
    wait_scripts(follower, 2);
    let (code, out, err) = follower.run(&["member", "standby", "node2"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "member/node2 standby (now standby)");
    assert!(
        wait_until(T, || runs_on(&servers[l], "node3")),
        "{}",
        logs(dir.path(), &servers)
    );
    assert_eq!(servers[l].get_json("/v1/members/node2")["state"], "standby");
    let (code, out, err) = follower.run(&["member", "unstandby", "node2"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "member/node2 unstandby (now alive)");
    assert!(wait_until(
        T,
        || servers[l].get_json("/v1/members/node2")["state"] == "alive"
    ));
    assert!(runs_on(&servers[l], "node3"));
    // An unknown member is an error that names it.
    let (code, _, err) = follower.run(&["member", "standby", "node9"]);
    assert_ne!(code, 0);
    assert!(err.contains("members \"node9\" not found"), "{err}");
}

/// Agents report which of the services' scripts their member has: a
/// member whose agent lacks one is never chosen (here the preferred one,
/// whose agent runs in a mount namespace where the scripts directory is an
/// empty tmpfs), and `get members` shows it.
#[test]
fn a_member_missing_a_script_is_never_chosen() {
    require_root!();
    let Some(etcd) = EtcdCluster::start(1) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens(dir.path());
    let servers = servers(&etcd, &tokens);
    wait_leader(&servers, &["s1", "s2"]);
    let s = &servers[0];
    let scripts = dir.path().join("scripts");
    std::fs::create_dir(&scripts).unwrap();
    let marks = dir.path().join("started-on");
    let app = common::script(
        &scripts,
        "only_app",
        &format!(
            "app() {{ case $1 in start) echo $CLUSVC_MEMBER >> {m};; stop) ;; status) ;; esac; }}\n",
            m = marks.display()
        ),
    );
    // node2's agent cannot see the scripts.
    let urls = format!("{},{}", servers[0].url, servers[1].url);
    let hidden = Proc(
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount -t tmpfs none {} && exec {BIN} agent --member node2 --lease-ttl 2s --server {urls} --token-file {} --state-dir {}",
                scripts.display(),
                tokens.join("node2.token").display(),
                dir.path().join("agent-node2").display()
            ))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("agent-node2.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let _a3 = agent(dir.path(), &tokens, "node3", &[&servers[0], &servers[1]]);
    manifest(dir.path());
    declare_members(dir.path(), s);
    let f = dir.path().join("only.yaml");
    std::fs::write(
        &f,
        format!(
            "{}apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: only\nspec:\n  placement: {{members: [node2, node3], ordered: true}}\n  applications:\n    - script: {}\n",
            std::fs::read_to_string(dir.path().join("members.yaml")).unwrap(),
            app.display()
        ),
    )
    .unwrap();
    let (code, _, err) = s.run(&["apply", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        wait_until(T, || s
            .service("only")
            .is_some_and(|v| v["state"] == "running" && v["member"] == "node3")),
        "{:?}\n{}",
        s.service("only"),
        logs(dir.path(), &servers)
    );
    assert_eq!(
        std::fs::read_to_string(&marks).unwrap().trim(),
        "node3",
        "started elsewhere first"
    );
    // `get members`: node2 has none of the one script, node3 has it.
    let mut out = String::new();
    let rows_are = |out: &mut String| {
        let (code, o, _) = s.run(&["get", "members"]);
        *out = o;
        let row = |m: &str| -> Vec<String> {
            out.lines()
                .find(|l| l.starts_with(m))
                .map(|l| l.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        code == 0
            && row("node2").get(4).map(String::as_str) == Some("0/1")
            && row("node3").get(4).map(String::as_str) == Some("1/1")
            && row("node3").get(5).map(String::as_str) == Some(env!("CARGO_PKG_VERSION"))
    };
    assert!(wait_until(T, || rows_are(&mut out)), "{out}");
    assert!(
        out.starts_with("NAME   STATE  SERVICES  LEASE AGE  SCRIPTS  VERSION"),
        "{out}"
    );
    drop(hidden);
}

/// Resumes a stopped process on drop (so a failing test leaves none
/// stopped).
struct Stopped(Vec<u32>);

impl Stopped {
    fn stop(pids: &[u32]) -> Self {
        for p in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*p as i32),
                nix::sys::signal::Signal::SIGSTOP,
            );
        }
        Self(pids.to_vec())
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*p as i32),
                nix::sys::signal::Signal::SIGCONT,
            );
        }
    }
}

/// node2's and node3's agents in failsafe mode, each talking to `servers`
/// of its own.
fn failsafe_agents(
    dir: &Path,
    tokens: &Path,
    node2_servers: &[&Daemon],
    node3_servers: &[&Daemon],
) -> (Proc, Proc) {
    let token = dir.join("peer.token");
    std::fs::write(&token, "peer-secret\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let p2 = common::free_port();
    let p3 = common::free_port();
    let peers = format!("node2=127.0.0.1:{p2},node3=127.0.0.1:{p3}");
    let spawn = |member: &str, port: u16, servers: &[&Daemon]| {
        let urls: Vec<&str> = servers.iter().map(|s| s.url.as_str()).collect();
        Proc(
            Command::new(BIN)
                .args(["agent", "--member", member, "--lease-ttl", "2s", "--server"])
                .arg(urls.join(","))
                .arg("--token-file")
                .arg(tokens.join(format!("{member}.token")))
                .arg("--state-dir")
                .arg(dir.join(format!("agent-{member}")))
                .args(["--failsafe", "--peer-listen", &format!("127.0.0.1:{port}")])
                .args(["--peers", &peers, "--peer-token-file"])
                .arg(&token)
                .stdout(Stdio::null())
                .stderr(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(dir.join(format!("agent-{member}.log")))
                        .unwrap(),
                )
                .spawn()
                .unwrap(),
        )
    };
    (
        spawn("node2", p2, node2_servers),
        spawn("node3", p3, node3_servers),
    )
}

fn agent_log(dir: &Path, member: &str) -> String {
    std::fs::read_to_string(dir.join(format!("agent-{member}.log"))).unwrap_or_default()
}

/// Failsafe mode: when every member has lost the servers (both servers
/// stopped), the agent running the service keeps it (its peer confirms it
/// lost them too) instead of fencing; when the servers return, nothing
/// moves.
#[test]
fn failsafe_keeps_the_services_when_every_member_lost_the_servers() {
    let Some(etcd) = EtcdCluster::start(1) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens(dir.path());
    let servers = servers(&etcd, &tokens);
    wait_leader(&servers, &["s1", "s2"]);
    let both = [&servers[0], &servers[1]];
    let (_a2, _a3) = failsafe_agents(dir.path(), &tokens, &both, &both);
    let f = manifest(dir.path());
    std::fs::write(dir.path().join("go"), "").unwrap();
    declare_members(dir.path(), &servers[0]);
    let (code, _, err) = servers[0].run(&["apply", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        wait_until(T, || runs_on(&servers[0], "node2")),
        "{}",
        logs(dir.path(), &servers)
    );
    let up = dir.path().join("up.node2.one");
    assert!(up.exists());
    {
        let _stopped = Stopped::stop(&[servers[0].pid(), servers[1].pid()]);
        assert!(
            wait_until(T, || agent_log(dir.path(), "node2")
                .contains("all 1 peers lost the servers too")),
            "{}",
            agent_log(dir.path(), "node2")
        );
        // Two leases' time without servers: still kept, never fenced.
        assert!(
            !wait_until(Duration::from_secs(4), || agent_log(dir.path(), "node2")
                .contains("self-fencing")),
            "{}",
            agent_log(dir.path(), "node2")
        );
        assert!(up.exists());
    }
    // The servers are back (the one that led while stopped lost its
    // leadership and exits; the other takes over): the agents renew, the
    // service stays.
    let ask = |path: &str| {
        servers.iter().find_map(|s| {
            s.http()
                .get(format!("{}{path}", s.url))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_json::<serde_json::Value>().ok())
        })
    };
    assert!(
        wait_until(T, || ask("/v1/members/node2")
            .is_some_and(|m| m["state"] == "alive")),
        "{}",
        logs(dir.path(), &servers)
    );
    // Its lease is fresh (the old one expired with no server to renew
    // it), but no controller moved anything meanwhile: the grant says so,
    // and the agent keeps the service instead of stopping it.
    assert!(
        wait_until(T, || {
            agent_log(dir.path(), "node2").contains(
            "a fresh lease, and no controller moved anything of node2 meanwhile: keeping its 1 services"
        )
        }),
        "{}",
        logs(dir.path(), &servers)
    );
    assert!(
        !agent_log(dir.path(), "node2").contains("stopping what ran under the old one"),
        "{}",
        logs(dir.path(), &servers)
    );
    let web = ask("/v1/services/web").unwrap_or_default();
    assert!(
        web["state"] == "running" && web["member"] == "node2",
        "{web:?}\n{}",
        logs(dir.path(), &servers)
    );
    assert_eq!(count(dir.path(), "node2 start one"), 1);
    assert_eq!(count(dir.path(), "node2 stop one"), 0);
}

/// Failsafe mode, but a peer still reaches a server: the agent that lost
/// them fences itself (as without failsafe), and the service moves to the
/// peer only after it stopped.
#[test]
fn failsafe_fences_when_a_peer_still_reaches_the_servers() {
    let Some(etcd) = EtcdCluster::start(1) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens(dir.path());
    let servers = servers(&etcd, &tokens);
    wait_leader(&servers, &["s1", "s2"]);
    // node2 knows only s1; node3 knows both.
    let (_a2, _a3) = failsafe_agents(
        dir.path(),
        &tokens,
        &[&servers[0]],
        &[&servers[0], &servers[1]],
    );
    let f = manifest(dir.path());
    std::fs::write(dir.path().join("go"), "").unwrap();
    declare_members(dir.path(), &servers[1]);
    let (code, _, err) = servers[1].run(&["apply", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        wait_until(T, || runs_on(&servers[1], "node2")),
        "{}",
        logs(dir.path(), &servers)
    );
    let _stopped = Stopped::stop(&[servers[0].pid()]);
    assert!(
        wait_until(T, || agent_log(dir.path(), "node2")
            .contains("self-fencing node2")),
        "{}",
        agent_log(dir.path(), "node2")
    );
    assert!(
        agent_log(dir.path(), "node2").contains("failsafe: node3 still reaches the servers"),
        "{}",
        agent_log(dir.path(), "node2")
    );
    // s2 (elected if s1 led) moves it to node3, after node2 stopped it.
    assert!(
        wait_until(T, || runs_on(&servers[1], "node3")),
        "{:?}\n{}",
        servers[1].service("web"),
        logs(dir.path(), &servers)
    );
    let a = actions(dir.path());
    let stopped = a.iter().position(|l| l == "node2 stop one").unwrap();
    let started = a.iter().position(|l| l == "node3 start one begin").unwrap();
    assert!(stopped < started, "{a:?}");
}

/// An agent restarted with another `--lease-ttl` gets a new lease of that
/// length (not a renewal of the old one under a wrong deadline), stops
/// what it ran under the old one, and the service ends on exactly one
/// member.
#[test]
fn an_agent_restarted_with_another_lease_ttl_never_leaves_a_second_owner() {
    let Some(etcd) = EtcdCluster::start(1) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens(dir.path());
    let servers = servers(&etcd, &tokens);
    wait_leader(&servers, &["s1", "s2"]);
    let both = [&servers[0], &servers[1]];
    let a2 = agent(dir.path(), &tokens, "node2", &both);
    let _a3 = agent(dir.path(), &tokens, "node3", &both);
    let f = manifest(dir.path());
    std::fs::write(dir.path().join("go"), "").unwrap();
    declare_members(dir.path(), &servers[0]);
    let (code, _, err) = servers[0].run(&["apply", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        wait_until(T, || runs_on(&servers[0], "node2")),
        "{}",
        logs(dir.path(), &servers)
    );
    drop(a2);
    let urls: Vec<&str> = both.iter().map(|s| s.url.as_str()).collect();
    let _a2 = Proc(
        Command::new(BIN)
            .args([
                "agent",
                "--member",
                "node2",
                "--lease-ttl",
                "6s",
                "--server",
            ])
            .arg(urls.join(","))
            .arg("--token-file")
            .arg(tokens.join("node2.token"))
            .arg("--state-dir")
            .arg(dir.path().join("agent-node2"))
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(dir.path().join("agent-node2.log"))
                    .unwrap(),
            )
            .spawn()
            .unwrap(),
    );
    assert!(
        wait_until(T, || agent_log(dir.path(), "node2")
            .contains("node2: a fresh lease")),
        "{}",
        logs(dir.path(), &servers)
    );
    let up = |m: &str| dir.path().join(format!("up.{m}.one")).exists();
    assert!(
        wait_until(T, || {
            servers[0]
                .service("web")
                .is_some_and(|w| w["state"] == "running")
                && (up("node2") != up("node3"))
        }),
        "{:?}\n{}",
        servers[0].service("web"),
        logs(dir.path(), &servers)
    );
    assert!(!(up("node2") && up("node3")));
}

/// `kill -9` of the server an agent talks to while the agent is in the
/// middle of a step: the agent finishes the step, reports it through the
/// other server, and nothing runs twice. (The killed server is a follower:
/// the controller does not move.)
#[test]
fn an_agent_whose_server_dies_mid_work_finishes_through_the_other() {
    let Some(etcd) = EtcdCluster::start(1) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens(dir.path());
    let mut servers = servers(&etcd, &tokens);
    let l = wait_leader(&servers, &["s1", "s2"]);
    let f_ = 1 - l;
    let _a2 = agent(dir.path(), &tokens, "node2", &[&servers[l], &servers[f_]]);
    // node3's agent talks to the follower first.
    let _a3 = agent(dir.path(), &tokens, "node3", &[&servers[f_], &servers[l]]);
    let f = manifest(dir.path());
    declare_members(dir.path(), &servers[l]);
    let (code, _, err) = servers[l].run(&["apply", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        wait_until(T, || runs_on(&servers[l], "node2")),
        "{}",
        logs(dir.path(), &servers)
    );
    wait_scripts(&servers[l], 2);
    let (code, out, err) = servers[l].run(&["relocate", "web", "--to", "node3"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        wait_until(T, || count(dir.path(), "node3 start two begin") == 1),
        "{}",
        logs(dir.path(), &servers)
    );
    servers[f_].kill9();
    std::fs::write(dir.path().join("go"), "").unwrap();
    assert!(
        wait_until(T, || runs_on(&servers[l], "node3")),
        "{}",
        logs(dir.path(), &servers)
    );
    assert_eq!(
        count(dir.path(), "node3 start one"),
        1,
        "{}",
        logs(dir.path(), &servers)
    );
    assert_eq!(
        count(dir.path(), "node3 start two"),
        1,
        "{}",
        logs(dir.path(), &servers)
    );
    assert_eq!(count(dir.path(), "node2 start one"), 1);
    // It keeps running there, checked through the surviving server.
    let checked = servers[l].service("web").unwrap()["lastCheck"].clone();
    assert!(wait_until(
        T,
        || servers[l].service("web").unwrap()["lastCheck"] != checked
    ));
    assert!(runs_on(&servers[l], "node3"));
}

/// A check that fails while no controller leads (the agent's report lands
/// in the store; the servers that could act are stopped or not yet
/// elected) is acted on by the next leader when it takes over, not lost:
/// the service is restarted, and the report is removed once acted on.
#[test]
fn a_failed_check_reported_while_no_controller_leads_is_acted_on_by_the_next() {
    let Some(etcd) = EtcdCluster::start(1) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens(dir.path());
    // A long leadership lease: the report is in the store well before the
    // follower may lead.
    let mut servers: Vec<Daemon> = ["s1", "s2"]
        .iter()
        .map(|n| {
            Daemon::server(
                n,
                &etcd.endpoints(),
                &[
                    "--agent-tokens",
                    tokens.to_str().unwrap(),
                    "--lease-ttl",
                    "10s",
                ],
            )
        })
        .collect();
    let l = wait_leader(&servers, &["s1", "s2"]);
    let f_ = 1 - l;
    let _a2 = agent(dir.path(), &tokens, "node2", &[&servers[l], &servers[f_]]);
    let _a3 = agent(dir.path(), &tokens, "node3", &[&servers[l], &servers[f_]]);
    let f = manifest(dir.path());
    std::fs::write(dir.path().join("go"), "").unwrap();
    declare_members(dir.path(), &servers[l]);
    let (code, _, err) = servers[l].run(&["apply", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        wait_until(T, || runs_on(&servers[l], "node2")),
        "{}",
        logs(dir.path(), &servers)
    );
    // The leader stops acting (SIGSTOP: it keeps its leadership lease for
    // up to 10 s); the check of `two` fails on node2, and node2's agent
    // reports it through the follower.
    let pid = nix::unistd::Pid::from_raw(servers[l].pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    std::fs::remove_file(dir.path().join("up.node2.two")).unwrap();
    let reported = wait_until(T, || etcd.count("/clusvc/status/") == Some(1));
    // The leader dies; the follower is elected once its lease expires.
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    servers[l].kill9();
    assert!(reported, "{}", logs(dir.path(), &servers));
    assert!(
        wait_until(Duration::from_secs(40), || leader(&servers[f_]).as_deref()
            == Some(["s1", "s2"][f_])),
        "{}",
        logs(dir.path(), &servers)
    );
    // The new leader acts on the report: `two` is started again.
    assert!(
        wait_until(T, || dir.path().join("up.node2.two").exists()
            || dir.path().join("up.node3.two").exists()),
        "{}",
        logs(dir.path(), &servers)
    );
    assert!(
        wait_until(T, || servers[f_]
            .service("web")
            .is_some_and(|s| s["state"] == "running" && s["restarts"] == 1)),
        "{:?}\n{}",
        servers[f_].service("web"),
        logs(dir.path(), &servers)
    );
    assert!(wait_until(T, || etcd.count("/clusvc/status/") == Some(0)));
}

/// A remote agent's status check in flight while the service is restarted
/// checked the instance before: when it ends failed (after the restart),
/// its failure is dropped, not reported, so the new instance is not
/// restarted a second time for the old one's failure.
#[test]
fn a_check_in_flight_across_a_restart_is_not_reported_for_the_new_instance() {
    let Some(etcd) = EtcdCluster::start(1) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens(dir.path());
    let servers = servers(&etcd, &tokens);
    let l = wait_leader(&servers, &["s1", "s2"]);
    let s = &servers[l];
    let _a2 = agent(dir.path(), &tokens, "node2", &[&servers[0], &servers[1]]);
    // While `hold` exists, a status check marks `checking`, waits for
    // `hold` to go, and fails.
    let d = dir.path().display();
    let app = common::script(
        dir.path(),
        "slow_check_app",
        &format!(
            "app() {{ case $1 in start) echo start >> {d}/starts;; stop) ;; status) if [ -e {d}/hold ]; then touch {d}/checking; while [ -e {d}/hold ]; do sleep 0.05; done; exit 1; fi;; esac; }}\n"
        ),
    );
    let members = dir.path().join("members.yaml");
    std::fs::write(
        &members,
        "apiVersion: clusvc/v1\nkind: Member\nmetadata:\n  name: node2\nspec: {}\n",
    )
    .unwrap();
    let (code, _, err) = s.run(&["apply", "-f", members.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(wait_until(T, || s.get_json("/v1/members/node2")["state"] == "alive"));
    let f = dir.path().join("web.yaml");
    std::fs::write(
        &f,
        format!(
            "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  timeout: 30s\n  checkInterval: 1s\n  placement: {{members: [node2]}}\n  applications:\n    - script: {}\n",
            app.display()
        ),
    )
    .unwrap();
    let (code, _, err) = s.run(&["apply", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        wait_until(T, || runs_on(s, "node2")),
        "{}",
        logs(dir.path(), &servers)
    );
    let starts = || {
        std::fs::read_to_string(dir.path().join("starts"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert_eq!(starts(), 1);
    // A check begins and holds; the operator restarts the service
    // meanwhile (the agent does not check it mid-action, and this check
    // is in flight across the whole restart).
    std::fs::write(dir.path().join("hold"), "").unwrap();
    assert!(wait_until(T, || dir.path().join("checking").exists()));
    let (code, out, err) = s.run(&["restart", "web", "--wait", "--timeout", "30s"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(starts(), 2);
    // The held check ends, failed: the agent drops it.
    std::fs::remove_file(dir.path().join("hold")).unwrap();
    assert!(
        wait_until(T, || agent_log(dir.path(), "node2").contains("is dropped")),
        "{}\n{}",
        agent_log(dir.path(), "node2"),
        logs(dir.path(), &servers)
    );
    // Nothing was reported: no failure, no restart for it, and the next
    // checks pass.
    let last = s.service("web").unwrap()["lastCheck"].clone();
    assert!(wait_until(T, || s.service("web").unwrap()["lastCheck"] != last));
    let web = s.service("web").unwrap();
    assert_eq!(web["state"], "running", "{web}");
    assert!(web["observed"]["failure"].is_null(), "{web}");
    assert_eq!(starts(), 2);
    assert!(!agent_log(dir.path(), "node2").contains("status check failed"));
}

/// With agents: a manual relocation leaves no constraint behind (a later
/// failure of the member it went to still fails over normally), and
/// failback after a failover brings the service back to the preferred
/// member when its agent returns.
#[test]
fn a_relocation_leaves_no_constraint_and_failback_follows_a_failover() {
    let Some(etcd) = EtcdCluster::start(1) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens(dir.path());
    let servers = servers(&etcd, &tokens);
    let l = wait_leader(&servers, &["s1", "s2"]);
    let s = &servers[l];
    let both = [&servers[0], &servers[1]];
    let mut a2 = Some(agent(dir.path(), &tokens, "node2", &both));
    let mut a3 = Some(agent(dir.path(), &tokens, "node3", &both));
    let f = manifest(dir.path());
    // The same service, with failback.
    let text = std::fs::read_to_string(&f)
        .unwrap()
        .replace("failback: false", "failback: true");
    std::fs::write(&f, text).unwrap();
    std::fs::write(dir.path().join("go"), "").unwrap();
    declare_members(dir.path(), s);
    let (code, _, err) = s.run(&["apply", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        wait_until(T, || runs_on(s, "node2")),
        "{}",
        logs(dir.path(), &servers)
    );
    wait_scripts(s, 2);
    // The operator moves it to node3; failback does not undo that.
    let (code, out, err) = s.run(&["relocate", "web", "--to", "node3"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        wait_until(T, || runs_on(s, "node3")),
        "{}",
        logs(dir.path(), &servers)
    );
    // node3's agent dies: the service fails over to node2 (no constraint
    // to node3 is left from the relocation).
    a3.take();
    assert!(
        wait_until(T, || runs_on(s, "node2")),
        "{:?}\n{}",
        s.service("web"),
        logs(dir.path(), &servers)
    );
    // node3 returns; then node2's agent dies: over to node3.
    a3 = Some(agent(dir.path(), &tokens, "node3", &both));
    assert!(wait_until(T, || s.get_json("/v1/members/node3")["state"] == "alive"));
    a2.take();
    assert!(
        wait_until(T, || runs_on(s, "node3")),
        "{:?}\n{}",
        s.service("web"),
        logs(dir.path(), &servers)
    );
    // node2 returns: failback brings the service home.
    a2 = Some(agent(dir.path(), &tokens, "node2", &both));
    assert!(
        wait_until(T, || runs_on(s, "node2")),
        "{:?}\n{}",
        s.service("web"),
        logs(dir.path(), &servers)
    );
    assert!(a2.is_some() && a3.is_some());
}
