//! Running one action's command: by argv (never through a shell with
//! manifest text interpolated), in its own process group and, where cgroup2
//! is writable, its own cgroup ([`super::cgroup`]), optionally inside a
//! member's network and mount namespaces, with a deadline.
//!
//! At the deadline the whole group and cgroup get SIGTERM, then SIGKILL
//! after the grace period (`cgroup.kill`: a process that left the group by
//! `setsid` dies too); the action fails. Output is captured (bounded). After a
//! normal exit, processes the action left running (daemons it started) keep
//! running; their inherited output is read and discarded so they never get
//! SIGPIPE.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;

use super::cgroup::{self, ActionCgroup, Cgroups};
use super::spawn;

/// Most bytes kept of each output stream.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// How long output is drained after the command exits.
const DRAIN: Duration = Duration::from_millis(50);

/// How long a command runs before its exit is watched for apart from its
/// output's end.
const EXIT_WATCH: Duration = Duration::from_millis(20);

/// Errors running a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The deadline passed; the process group was killed.
    #[error("timed out after {}", clusvc_core::model::Duration::from(*.0))]
    Timeout(Duration),
    /// The program could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A namespace could not be opened.
    #[error("cannot open namespace {path}: {source}")]
    Namespace {
        /// The namespace file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Where a member's commands run: namespaces, and the parent of their
/// cgroups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    /// A network namespace file (`/run/netns/NAME`, `/proc/PID/ns/net`).
    pub net: Option<PathBuf>,
    /// A mount namespace file (`/proc/PID/ns/mnt`).
    pub mnt: Option<PathBuf>,
    /// Each action in its own cgroup under these; none = process groups
    /// only.
    pub cgroups: Option<std::sync::Arc<Cgroups>>,
}

/// A command to run.
#[derive(Debug, Clone)]
pub struct Command {
    argv: Vec<OsString>,
    /// What events call the command (default: the program).
    name: Option<String>,
    env: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
}

impl Command {
    /// A program and its arguments.
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            name: None,
            env: Vec::new(),
            stdin: None,
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.argv.push(a.into());
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, k: impl Into<OsString>, v: impl Into<OsString>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// The program name, for messages.
    pub fn program(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        self.argv
            .first()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Names the command in events and logs (a script run through `bash`
    /// is called by the script's name, not `bash`).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// What a finished command produced.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// Signal, if it was killed by one.
    pub signal: Option<i32>,
    /// Captured stdout (at most [`MAX_OUTPUT`] bytes).
    pub stdout: String,
    /// Captured stderr (at most [`MAX_OUTPUT`] bytes).
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Output {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// "exited 3", "killed by signal 9", plus the last line of stderr.
    pub fn describe(&self) -> String {
        let status = match (self.code, self.signal) {
            (Some(c), _) => format!("exited {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            _ => "ended".to_string(),
        };
        match self.stderr.lines().rev().find(|l| !l.trim().is_empty()) {
            Some(line) => format!("{status}: {}", line.trim()),
            None => status,
        }
    }
}

fn open_ns(path: &Path) -> Result<OwnedFd, Error> {
    std::fs::File::open(path)
        .map(OwnedFd::from)
        .map_err(|source| Error::Namespace {
            path: path.to_path_buf(),
            source,
        })
}

/// Runs `cmd` with a deadline of `timeout`, killing its process group at
/// the deadline (SIGTERM, then SIGKILL after `grace`). Untracked: for
/// status checks and other commands whose result only this process wants
/// (a successor does not wait for it but kills what it left; see
/// [`cgroup`]).
pub async fn run(
    cmd: &Command,
    ns: &Namespaces,
    timeout: Duration,
    grace: Duration,
) -> Result<Output, Error> {
    run_tracked(cmd, ns, timeout, grace, None).await
}

/// Like [`run`], and while the command runs, a marker file named after its
/// process group in `track` records its deadline, so that after a crash of
/// this process [`await_orphans`] can let the action finish (or kill it at
/// its deadline) before anyone probes what it was doing.
pub async fn run_tracked(
    cmd: &Command,
    ns: &Namespaces,
    timeout: Duration,
    grace: Duration,
    track: Option<&Path>,
) -> Result<Output, Error> {
    let started = Instant::now();
    let net = ns.net.as_deref().map(open_ns).transpose()?;
    let mnt = ns.mnt.as_deref().map(open_ns).transpose()?;
    if cmd.argv.is_empty() {
        return Err(Error::Spawn {
            program: String::new(),
            source: std::io::Error::other("empty command"),
        });
    }
    let mut env = cmd.env.clone();
    // The marker is written before the spawn, under a token the action
    // carries in its environment, so a successor finds the action even if
    // this process dies between the spawn and learning its group.
    let deadline_ms = (std::time::SystemTime::now() + timeout + grace)
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let pending = track.map(|dir| {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let token = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let _ = std::fs::create_dir_all(dir);
        let path = dir.join(format!("{PENDING}{token}"));
        let _ = std::fs::write(&path, deadline_ms.to_string());
        env.push((ACTION_TAG.into(), token.into()));
        path
    });
    let pending = Marker(pending);
    let cgroups = ns.cgroups.clone();
    let make = if track.is_some() {
        Cgroups::create
    } else {
        Cgroups::create_check
    };
    let cg: Option<ActionCgroup<'_>> = match cgroups.as_deref().map(make) {
        Some(Ok(cg)) => Some(cg),
        Some(Err(e)) => {
            tracing::warn!(
                "cannot create a cgroup for {}: {e}; it runs in its process group only",
                cmd.program()
            );
            None
        }
        None => None,
    };
    // Started without copying this process (see `spawn`): in its own
    // process group, its cgroup and the member's namespaces.
    let mut child = spawn::spawn(
        &cmd.argv,
        &env,
        cmd.stdin.is_some(),
        spawn::Setup {
            cgroup_procs: cg.as_ref().map(ActionCgroup::procs_fd),
            net: net.as_ref().map(|f| f.as_raw_fd()),
            mnt: mnt.as_ref().map(|f| f.as_raw_fd()),
        },
    )
    .map_err(|source| Error::Spawn {
        program: cmd.program(),
        source,
    })?;
    drop((net, mnt));
    let pgid = Some(Pid::from_raw(child.id() as i32));
    let marker = match (track, pgid) {
        (Some(dir), Some(pgid)) => {
            let path = dir.join(pgid.as_raw().to_string());
            let cgroup = cg
                .as_ref()
                .map(|c| c.path().display().to_string())
                .unwrap_or_default();
            let _ = std::fs::write(&path, format!("{deadline_ms}\n{cgroup}"));
            Some(path)
        }
        _ => None,
    };
    let _marker = Marker(marker);
    drop(pending);
    if let (Some(input), Some(mut stdin)) = (cmd.stdin.clone(), child.stdin.take()) {
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = stdin.write_all(&input).await;
        });
    }
    // Output is read here while the command runs (no task per stream:
    // two spawns per status check were a tenth of the daemon's cost).
    let mut out = Stream::new(child.stdout.take());
    let mut err = Stream::new(child.stderr.take());
    let limit = tokio::time::sleep(timeout);
    let drain = tokio::time::sleep(Duration::from_secs(365 * 24 * 3600));
    // Its exit is watched for (a pidfd) only when its output has not ended
    // by then, or ended while it runs on: most checks have exited by the
    // end of their output, and one `waitpid` reaps them.
    let watch = tokio::time::sleep(EXIT_WATCH);
    tokio::pin!(limit, drain, watch);
    let mut status = None;
    let mut watching = false;
    loop {
        tokio::select! {
            s = child.wait(), if status.is_none() && watching => {
                status = Some(s.ok());
                // What is still open belongs to processes the action left
                // running: read for a moment, then take what came.
                drain.as_mut().reset(tokio::time::Instant::now() + DRAIN);
            }
            () = &mut watch, if !watching => watching = true,
            () = out.read(), if out.open() => {}
            () = err.read(), if err.open() => {}
            () = &mut limit, if status.is_none() => {
                kill_action(pgid, cg.as_ref(), grace).await;
                let _ = child.wait().await;
                out.discard();
                err.discard();
                return Err(Error::Timeout(timeout));
            }
            () = &mut drain, if status.is_some() => break,
        }
        if status.is_none() && !watching && !out.open() && !err.open() {
            match child.try_wait() {
                Ok(Some(s)) => status = Some(Some(s)),
                Ok(None) => watching = true,
                Err(_) => status = Some(None),
            }
        }
        if status.is_some() && !out.open() && !err.open() {
            break;
        }
    }
    let status = status.flatten();
    let (stdout, stderr) = (out.discard(), err.discard());
    use std::os::unix::process::ExitStatusExt;
    Ok(Output {
        code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        elapsed: started.elapsed(),
    })
}

/// Removes the in-flight marker when the action is over.
struct Marker(Option<PathBuf>);

impl Drop for Marker {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The environment variable that carries a tracked action's token.
pub const ACTION_TAG: &str = "CLUSVC_ACTION_TOKEN";

/// Prefix of the marker written before an action is spawned.
const PENDING: &str = "pending-";

/// Process groups of live processes carrying `token` (see [`ACTION_TAG`]).
fn tagged_groups(token: &str) -> Vec<Pid> {
    let want = format!("{ACTION_TAG}={token}");
    let mut groups = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return groups;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(env) = std::fs::read(p.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|v| v == want.as_bytes())
            && let Ok(pgid) = nix::unistd::getpgid(Some(Pid::from_raw(pid)))
            && !groups.contains(&pgid)
        {
            groups.push(pgid);
        }
    }
    groups
}

/// After a crash: waits for actions the previous process left running (their
/// markers in `track`) to end, killing each group at its recorded deadline;
/// then for tagged actions that left no marker (the process died between
/// spawning one and recording it).
pub async fn await_orphans(track: &Path) {
    let Ok(entries) = std::fs::read_dir(track) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(token) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(PENDING))
            .map(str::to_string)
        else {
            continue;
        };
        let deadline_ms: u128 = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        for pgid in tagged_groups(&token) {
            let _ = wait_group(pgid, deadline_ms).await;
        }
        let _ = std::fs::remove_file(&path);
    }
    await_marked(track).await;
}

/// Waits for a process group to end, killing it at `deadline_ms`; returns
/// whether it had to be killed.
async fn wait_group(pgid: Pid, deadline_ms: u128) -> bool {
    loop {
        if killpg(pgid, None).is_err() {
            return false;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        if now >= deadline_ms {
            let _ = killpg(pgid, Signal::SIGKILL);
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn await_marked(track: &Path) {
    let Ok(entries) = std::fs::read_dir(track) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let pgid = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<i32>().ok());
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut lines = text.lines();
        let deadline_ms: u128 = lines
            .next()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        let cgroup = lines.next().filter(|c| !c.is_empty()).map(PathBuf::from);
        if let Some(pgid) = pgid.map(Pid::from_raw)
            && wait_group(pgid, deadline_ms).await
            && let Some(cg) = &cgroup
        {
            cgroup::kill_path(cg, Duration::from_secs(5)).await;
        }
        let _ = std::fs::remove_file(&path);
    }
}

/// [`await_orphans`] for a member's agent state.
pub async fn await_orphans_of(host: &super::host::Host) {
    await_orphans(&host.state_dir.join("inflight")).await;
}

/// One output stream of a command: read while it runs, keeping the first
/// [`MAX_OUTPUT`] bytes.
struct Stream {
    pipe: Option<tokio::net::unix::pipe::Receiver>,
    kept: Vec<u8>,
}

impl Stream {
    fn new(pipe: Option<tokio::net::unix::pipe::Receiver>) -> Self {
        Self {
            pipe,
            kept: Vec::new(),
        }
    }

    /// Whether it may still bring something.
    fn open(&self) -> bool {
        self.pipe.is_some()
    }

    /// Reads what is there (cancel-safe: nothing read is lost when the
    /// future is dropped before it completes); closed at end of file.
    async fn read(&mut self) {
        let Some(pipe) = self.pipe.as_mut() else {
            return std::future::pending().await;
        };
        let mut buf = [0u8; 4096];
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => self.pipe = None,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(self.kept.len());
                self.kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }

    /// What was kept; a pipe still open (held by processes the action left
    /// running) is read and discarded until its end in a task of its own.
    fn discard(&mut self) -> Vec<u8> {
        if let Some(mut pipe) = self.pipe.take() {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                while matches!(pipe.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
        std::mem::take(&mut self.kept)
    }
}

/// SIGTERM to the group and everything in the cgroup, then SIGKILL once
/// `grace` has passed (at once when they are already gone); returns when
/// the cgroup is empty.
async fn kill_action(pgid: Option<Pid>, cg: Option<&ActionCgroup<'_>>, grace: Duration) {
    let group_alive = || pgid.is_some_and(|g| killpg(g, None).is_ok());
    if let Some(g) = pgid {
        let _ = killpg(g, Signal::SIGTERM);
    }
    if let Some(cg) = cg {
        cg.signal(Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && (group_alive() || cg.is_some_and(ActionCgroup::populated)) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(g) = pgid {
        let _ = killpg(g, Signal::SIGKILL);
    }
    if let Some(cg) = cg {
        cg.kill(Duration::from_secs(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_ns() -> Namespaces {
        Namespaces::default()
    }

    #[tokio::test]
    async fn captures_output_and_exit_code() {
        let out = run(
            &Command::new(["bash", "-c", "echo out; echo err >&2; exit 3"]),
            &no_ns(),
            Duration::from_secs(5),
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.describe(), "exited 3: err");
    }

    #[tokio::test]
    async fn arguments_are_never_interpreted_by_a_shell() {
        let out = run(
            &Command::new(["echo", "$(touch /tmp/clusvc-never)", ";", "rm", "-rf", "/"]),
            &no_ns(),
            Duration::from_secs(5),
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        assert_eq!(out.stdout, "$(touch /tmp/clusvc-never) ; rm -rf /\n");
        assert!(!Path::new("/tmp/clusvc-never").exists());
    }

    #[tokio::test]
    async fn a_daemon_left_running_does_not_block_the_action() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > {}; echo started", pidfile.display());
        let out = run(
            &Command::new(["bash", "-c", &script]),
            &no_ns(),
            Duration::from_secs(5),
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        assert!(out.success());
        assert_eq!(out.stdout, "started\n");
        assert!(out.elapsed < Duration::from_secs(2), "{:?}", out.elapsed);
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok(),
            "daemon survived"
        );
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

#[cfg(test)]
mod orphan_tests {
    use super::*;

    #[tokio::test]
    async fn an_action_spawned_before_its_group_was_recorded_is_still_awaited() {
        let dir = tempfile::tempdir().unwrap();
        let track = dir.path().join("inflight");
        std::fs::create_dir_all(&track).unwrap();
        // As a process that died between spawning and recording the group
        // leaves it: only the pending marker, and the tagged action.
        let far = (std::time::SystemTime::now() + Duration::from_secs(30))
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        std::fs::write(track.join("pending-t1"), far.to_string()).unwrap();
        // An orphan: its parent (sh) is gone, init reaps it.
        use std::os::unix::process::CommandExt as _;
        let status = std::process::Command::new("sh")
            .args(["-c", "sleep 0.5 &"])
            .env(ACTION_TAG, "t1")
            .process_group(0)
            .status()
            .unwrap();
        assert!(status.success());
        let started = std::time::Instant::now();
        await_orphans(&track).await;
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(300),
            "did not wait for the tagged action ({waited:?})"
        );
        assert!(
            waited < Duration::from_secs(10),
            "waited for the deadline ({waited:?})"
        );
        assert!(std::fs::read_dir(&track).unwrap().next().is_none());
    }
}
