//! A cluster on a real network (see [`super::lan`]): etcd, two servers on
//! the bridge, an agent per member in its namespace, and the `web` service
//! (a floating address and an HTTP application answering its member's
//! name). Used by the cluster tests and the failover benchmark.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::lan::{Checker, Lan};
use super::{Daemon, EtcdCluster, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_clusvc");
const T: Duration = Duration::from_secs(30);
/// The members.
pub const MEMBERS: [&str; 3] = ["node1", "node2", "node3"];

/// A process killed on drop.
pub struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The cluster: network, etcd, two servers, an agent per member.
pub struct Cluster {
    /// Scratch space (scripts, agents' state, logs).
    pub dir: tempfile::TempDir,
    tokens: PathBuf,
    /// The network.
    pub lan: Lan,
    /// The etcd cluster.
    pub etcd: EtcdCluster,
    /// The agents' lease.
    ttl: String,
    /// The servers.
    pub servers: Vec<Daemon>,
    agents: Vec<Option<Proc>>,
}

impl Cluster {
    /// Starts everything (`None`: etcd is missing, a reported skip).
    pub fn start() -> Option<Self> {
        Self::start_with(1, "2s")
    }

    /// Starts everything on an etcd of `etcd_members`, agents with a lease
    /// of `ttl`.
    pub fn start_with(etcd_members: usize, ttl: &str) -> Option<Self> {
        let etcd = EtcdCluster::start(etcd_members)?;
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
        let servers = ["s1", "s2"]
            .iter()
            .map(|n| {
                // A fixed port: a server restarted keeps its URL, which
                // the agents were given.
                let listen = format!("{}:{}", lan.server_addr(), super::free_port());
                Daemon::server_on(
                    n,
                    &etcd.endpoints(),
                    &listen,
                    &[
                        "--agent-tokens",
                        tokens.to_str().unwrap(),
                        "--lease-ttl",
                        ttl,
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
            etcd,
            ttl: ttl.to_string(),
            servers,
            agents: MEMBERS.iter().map(|_| None).collect(),
        };
        for i in 0..MEMBERS.len() {
            c.start_agent(i);
        }
        Some(c)
    }

    /// Starts member `i`'s agent in its namespace.
    pub fn start_agent(&mut self, i: usize) {
        self.start_agent_with(i, &[]);
    }

    /// Starts member `i`'s agent with `extra` arguments (e.g. a clock-rate
    /// fault).
    pub fn start_agent_with(&mut self, i: usize, extra: &[&str]) {
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
                &self.ttl,
                "--server",
            ])
            .arg(urls.join(","))
            .arg("--token-file")
            .arg(self.tokens.join(format!("{}.token", m.name)))
            .arg("--state-dir")
            .arg(self.dir.path().join(format!("agent-{}", m.name)))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.agents[i] = Some(Proc(child));
    }

    /// Member's agent log.
    pub fn agent_log(&self, member: &str) -> PathBuf {
        self.dir.path().join(format!("agent-{member}.log"))
    }

    /// Whether member `i`'s agent runs.
    pub fn agent_runs(&mut self, i: usize) -> bool {
        self.agents[i]
            .as_mut()
            .is_some_and(|p| p.0.try_wait().ok().flatten().is_none())
    }

    /// `kill -9` of member `i`'s agent (its watchdog lives on).
    pub fn kill_agent(&mut self, i: usize) {
        self.agents[i] = None;
    }

    /// The first server.
    pub fn server(&self) -> &Daemon {
        // A server that lost its leadership exits (a supervisor restarts
        // it in production): ask one that is still running.
        self.servers
            .iter()
            .find(|s| {
                std::fs::read_to_string(format!("/proc/{}/stat", s.pid())).is_ok_and(|t| {
                    !t.rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                })
            })
            .unwrap_or(&self.servers[0])
    }

    /// The floating address.
    pub fn vip(&self) -> String {
        format!("{}.50", self.lan.prefix)
    }

    /// Declares the members, waits until their agents hold leases, and
    /// applies `web` (preferring node1, then node2, then node3): the
    /// floating address and an HTTP server on it answering its member's
    /// name.
    pub fn apply_web(&self) {
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
        let app = super::script(
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
                "{members}apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  timeout: 10s\n  checkInterval: 1s\n  placement: {{members: [node1, node2, node3], ordered: true, failback: false}}\n  ipAddresses:\n    - address: {vip}/24\n  applications:\n    - script: {}\n",
                app.display()
            ),
        )
        .unwrap();
        let (code, _, err) = self.server().run(&["apply", "-f", f.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
    }

    /// Who answers on the floating address, from the client namespace.
    pub fn who(&self) -> Option<String> {
        self.lan.curl(
            &format!("http://{}:8080/who", self.vip()),
            Duration::from_millis(500),
        )
    }

    /// The ownership checker on the floating address and the application.
    pub fn checker(&self) -> Checker {
        Checker::start(&self.lan, &self.vip(), self.dir.path())
    }

    /// Every server's and agent's log.
    pub fn logs(&self) -> String {
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

    /// The `web` service as the API shows it.
    pub fn web(&self) -> serde_json::Value {
        self.server().service("web").unwrap_or_default()
    }
}

/// Whether `web` runs on `member`.
pub fn running_on(c: &Cluster, member: &str) -> bool {
    let w = c.web();
    w["state"] == "running" && w["member"] == member
}

impl Drop for Cluster {
    /// The agents go first, then the applications they started: their
    /// scripts and state are in the scratch directory that goes with the
    /// cluster, so their watchdogs could not stop them.
    fn drop(&mut self) {
        for a in &mut self.agents {
            *a = None;
        }
        let _ = Command::new("pkill")
            .args(["-f", &format!("http.server --bind {} ", self.vip())])
            .status();
    }
}
