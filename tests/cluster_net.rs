//! The cluster on a real network: members in their own network namespaces
//! on a bridge, agents in them (`nsenter --net`), two servers on a real
//! etcd, a service with a floating IP address and a small HTTP
//! application. A checker samples every 20 ms which members hold the
//! address and which run the application, and fails the test on any moment
//! with two. The client namespace reaches the service through the address.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::lan::{Checker, Lan};
use common::{Daemon, EtcdCluster, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_clusvc");
const T: Duration = Duration::from_secs(30);
const MEMBERS: [&str; 3] = ["node1", "node2", "node3"];

/// A process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The cluster: network, etcd, two servers, an agent per member.
struct Cluster {
    dir: tempfile::TempDir,
    tokens: PathBuf,
    lan: Lan,
    _etcd: EtcdCluster,
    servers: Vec<Daemon>,
    agents: Vec<Option<Proc>>,
}

impl Cluster {
    fn start() -> Option<Self> {
        let etcd = EtcdCluster::start(1)?;
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o700)).unwrap();
        for m in MEMBERS {
            let t = tokens.join(format!("{m}.token"));
            std::fs::write(&t, format!("{m}-agent-secret\n")).unwrap();
            std::fs::set_permissions(&t, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let lan = Lan::new(&MEMBERS);
        let listen = format!("{}:0", lan.server_addr());
        let servers = ["s1", "s2"]
            .iter()
            .map(|n| {
                Daemon::server_on(
                    n,
                    &etcd.endpoints(),
                    &listen,
                    &[
                        "--agent-tokens",
                        tokens.to_str().unwrap(),
                        "--lease-ttl",
                        "2s",
                        // Plain HTTP on the test bridge (TLS is tested in
                        // security_e2e).
                        "--insecure-no-tls",
                    ],
                )
            })
            .collect();
        let mut c = Self {
            dir,
            tokens,
            lan,
            _etcd: etcd,
            servers,
            agents: MEMBERS.iter().map(|_| None).collect(),
        };
        for i in 0..MEMBERS.len() {
            c.start_agent(i);
        }
        Some(c)
    }

    /// Starts member `i`'s agent in its namespace.
    fn start_agent(&mut self, i: usize) {
        let m = &self.lan.members[i];
        let urls: Vec<&str> = self.servers.iter().map(|s| s.url.as_str()).collect();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.agent_log(&m.name))
            .unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net={}", m.ns.path().display()))
            .arg(BIN)
            .args([
                "agent",
                "--member",
                &m.name,
                "--lease-ttl",
                "2s",
                "--server",
            ])
            .arg(urls.join(","))
            .arg("--token-file")
            .arg(self.tokens.join(format!("{}.token", m.name)))
            .arg("--state-dir")
            .arg(self.dir.path().join(format!("agent-{}", m.name)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.agents[i] = Some(Proc(child));
    }

    fn agent_log(&self, member: &str) -> PathBuf {
        self.dir.path().join(format!("agent-{member}.log"))
    }

    /// `kill -9` of member `i`'s agent (its watchdog lives on).
    fn kill_agent(&mut self, i: usize) {
        self.agents[i] = None;
    }

    fn server(&self) -> &Daemon {
        &self.servers[0]
    }

    /// The floating address.
    fn vip(&self) -> String {
        format!("{}.50", self.lan.prefix)
    }

    /// Declares the members, waits until their agents hold leases, and
    /// applies `web` (preferring node1, then node2, then node3): the
    /// floating address and an HTTP server on it answering its member's
    /// name.
    fn apply_web(&self) {
        let dir = self.dir.path();
        let mut members = String::new();
        for m in MEMBERS {
            members.push_str(&format!(
                "apiVersion: clusvc/v1\nkind: Member\nmetadata:\n  name: {m}\nspec: {{}}\n---\n"
            ));
        }
        let f = dir.join("members.yaml");
        std::fs::write(&f, &members).unwrap();
        let (code, _, err) = self.server().run(&["apply", "-f", f.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        assert!(
            wait_until(T, || MEMBERS.iter().all(|m| {
                self.server().get_json(&format!("/v1/members/{m}"))["state"] == "alive"
            })),
            "{}",
            self.logs()
        );
        let vip = self.vip();
        let app = common::script(
            dir,
            "web_http",
            &format!(
                r#"# A process that has exited counts as gone even while nobody has
# reaped it yet (kill -0 succeeds on a zombie).
alive() {{ local st; st=$(cut -d' ' -f3 /proc/$1/stat 2>/dev/null); [ -n "$st" ] && [ "$st" != Z ]; }}
http() {{
    pidf={d}/app.$CLUSVC_MEMBER.pid
    www={d}/www.$CLUSVC_MEMBER
    case $1 in
    start)
        mkdir -p $www && echo $CLUSVC_MEMBER > $www/who
        (cd $www && exec /usr/bin/python3 -m http.server --bind {vip} 8080 </dev/null >/dev/null 2>&1) &
        echo $! > $pidf
        for i in $(seq 100); do (echo > /dev/tcp/{vip}/8080) 2>/dev/null && return 0; sleep 0.05; done
        return 1 ;;
    stop)
        [ -f $pidf ] && kill $(cat $pidf) 2>/dev/null
        for i in $(seq 100); do [ -f $pidf ] && alive $(cat $pidf) || break; sleep 0.02; done
        rm -f $pidf; return 0 ;;
    status)
        [ -f $pidf ] && alive $(cat $pidf) ;;
    esac
}}
"#,
                d = dir.display()
            ),
        );
        let f = dir.join("web.yaml");
        std::fs::write(
            &f,
            format!(
                "{members}apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  timeout: 10s\n  checkInterval: 1s\n  placement: {{members: [node1, node2, node3], failback: false}}\n  ipAddresses:\n    - address: {vip}/24\n  applications:\n    - script: {}\n",
                app.display()
            ),
        )
        .unwrap();
        let (code, _, err) = self.server().run(&["apply", "-f", f.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
    }

    /// Who answers on the floating address, from the client namespace.
    fn who(&self) -> Option<String> {
        self.lan.curl(
            &format!("http://{}:8080/who", self.vip()),
            Duration::from_millis(500),
        )
    }

    fn checker(&self) -> Checker {
        Checker::start(&self.lan, &self.vip(), self.dir.path())
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for s in &self.servers {
            out.push_str(&format!(
                "--- {}\n{}",
                s.log_path().display(),
                std::fs::read_to_string(s.log_path()).unwrap_or_default()
            ));
        }
        for m in MEMBERS {
            out.push_str(&format!(
                "--- agent {m}\n{}",
                std::fs::read_to_string(self.agent_log(m)).unwrap_or_default()
            ));
        }
        out
    }

    fn web(&self) -> serde_json::Value {
        self.server().service("web").unwrap_or_default()
    }
}

fn running_on(c: &Cluster, member: &str) -> bool {
    let w = c.web();
    w["state"] == "running" && w["member"] == member
}

/// `kill -9` of the agent running the service: its watchdog stops it, the
/// lease expires, and another member takes the address and the
/// application; the client reaches it there.
#[test]
fn a_member_whose_agent_is_killed_loses_its_service_to_another() {
    require_root!();
    let Some(mut c) = Cluster::start() else {
        return;
    };
    c.apply_web();
    assert!(
        wait_until(T, || running_on(&c, "node1")),
        "{:?}\n{}",
        c.web(),
        c.logs()
    );
    assert_eq!(c.who().as_deref(), Some("node1"), "{}", c.logs());
    let checker = c.checker();
    c.kill_agent(0);
    assert!(
        wait_until(T, || c.who().is_some_and(|w| w != "node1")),
        "{:?}\n{}",
        c.web(),
        c.logs()
    );
    assert!(wait_until(T, || running_on(&c, "node2")), "{:?}", c.web());
    assert_eq!(c.who().as_deref(), Some("node2"));
    assert_eq!(c.web()["observed"]["placementReason"], "failover");
    assert!(!c.lan.member("node1").holds(&c.vip()));
    let samples = checker.finish();
    assert!(samples > 10, "{samples}");
    assert_eq!(
        c.server().get_json("/v1/members/node1")["state"],
        "dead",
        "{}",
        c.logs()
    );
}

/// A member cut off from the network: its agent cannot renew, stops the
/// service before its lease can expire, and only then does another member
/// start it (the checker sees no moment with two). Healed, the member comes
/// back alive and the service stays where it is.
#[test]
fn a_partitioned_member_stops_its_service_before_another_starts_it() {
    require_root!();
    let Some(c) = Cluster::start() else {
        return;
    };
    c.apply_web();
    assert!(
        wait_until(T, || running_on(&c, "node1")),
        "{:?}\n{}",
        c.web(),
        c.logs()
    );
    let checker = c.checker();
    c.lan.member("node1").link(false);
    assert!(
        wait_until(T, || running_on(&c, "node2")),
        "{:?}\n{}",
        c.web(),
        c.logs()
    );
    assert!(
        wait_until(T, || c.who().as_deref() == Some("node2")),
        "{}",
        c.logs()
    );
    let log = std::fs::read_to_string(c.agent_log("node1")).unwrap();
    assert!(log.contains("self-fencing node1: stopped web"), "{log}");
    assert!(!c.lan.member("node1").holds(&c.vip()));
    c.lan.member("node1").link(true);
    assert!(
        wait_until(T, || c.server().get_json("/v1/members/node1")["state"]
            == "alive"),
        "{}",
        c.logs()
    );
    // node1's agent holds a lease again and is active: the service stays
    // on node2 (no failback), with one owner throughout.
    assert!(
        wait_until(T, || std::fs::read_to_string(c.agent_log("node1"))
            .unwrap_or_default()
            .matches("holding lease")
            .count()
            >= 2),
        "{}",
        c.logs()
    );
    assert!(running_on(&c, "node2"), "{:?}", c.web());
    assert_eq!(c.who().as_deref(), Some("node2"));
    checker.finish();
}
