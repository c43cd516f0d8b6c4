//! Starting an action's process without copying the daemon.
//!
//! `fork()` copies the parent's page tables: with 100,000 services the
//! daemon spent more time copying itself than the checks took (a status
//! check every 60 s each is 1,667 spawns a second). This starts the child
//! as `posix_spawn` does, with `clone(CLONE_VM | CLONE_VFORK)`: the child
//! shares the parent's memory on a stack of its own until it calls
//! `execve`, while the calling thread waits. Between the two it makes only
//! system calls: default signal handling, joining the action's cgroup,
//! entering the member's namespaces, a process group of its own, the
//! standard streams, `execve`. A step that fails is reported with its errno
//! in the memory the two share until then (as glibc's `posix_spawn` does).
//!
//! The child is waited for through a pidfd (readable once it exits) and
//! reaped with `waitpid` on its pid only, so no other child is touched.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;

use tokio::io::unix::AsyncFd;

/// What the child does before `execve` besides its streams (file
/// descriptors the caller keeps open until [`spawn`] returns).
#[derive(Debug, Default, Clone, Copy)]
pub struct Setup {
    /// `cgroup.procs` of the action's cgroup, to join.
    pub cgroup_procs: Option<RawFd>,
    /// A network namespace to enter.
    pub net: Option<RawFd>,
    /// A mount namespace to enter.
    pub mnt: Option<RawFd>,
}

/// A started child: its pid (also its process group) and its streams.
#[derive(Debug)]
pub struct Child {
    pid: libc::pid_t,
    /// Opened when first waited for (most status checks have exited by
    /// the time their output ends, and are reaped without one: four system
    /// calls fewer each). Safe however late: the pid is ours until reaped.
    pidfd: Option<AsyncFd<OwnedFd>>,
    /// Whether the pidfd was asked for (a kernel before 5.3 has none).
    watched: bool,
    status: Option<ExitStatus>,
    /// Its standard input, when asked for.
    pub stdin: Option<tokio::net::unix::pipe::Sender>,
    /// Its standard output.
    pub stdout: Option<tokio::net::unix::pipe::Receiver>,
    /// Its standard error.
    pub stderr: Option<tokio::net::unix::pipe::Receiver>,
}

/// Which step before `execve` failed (reported with errno).
const STEPS: [&str; 7] = [
    "",
    "cannot join the action's cgroup",
    "cannot enter the network namespace",
    "cannot enter the mount namespace",
    "cannot start a process group",
    "cannot set up the standard streams",
    "cannot execute",
];

struct ChildArgs {
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    /// Where a step that failed writes (step, errno): the parent's memory,
    /// which the child shares until it executes.
    failure: *mut [i32; 2],
    cgroup: RawFd,
    net: RawFd,
    mnt: RawFd,
}

/// Reports `step` and the current errno, and exits.
///
/// # Safety
/// Only in the child, before `execve`, with `failure` the parent's.
unsafe fn fail(failure: *mut [i32; 2], step: i32) -> ! {
    // SAFETY: the parent waits (CLONE_VFORK) and reads it once we exit.
    unsafe {
        std::ptr::write_volatile(failure, [step, *libc::__errno_location()]);
        libc::_exit(127)
    }
}

/// The child, on its own stack, sharing the parent's memory: system calls
/// only (no allocation, no lock), as after `vfork`.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points at the parent's `ChildArgs`, alive while the
    // parent waits (CLONE_VFORK); every call below is a system call.
    unsafe {
        let a = &*(arg as *const ChildArgs);
        // Handlers the daemon installed would run on its memory: default
        // handling for those (ignored ones stay ignored, but SIGPIPE,
        // which Rust ignores), then no signal blocked.
        for sig in 1..libc::SIGRTMAX() {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && (old.sa_sigaction != libc::SIG_IGN || sig == libc::SIGPIPE)
                && old.sa_sigaction != libc::SIG_DFL
            {
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &new, std::ptr::null_mut());
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        if a.cgroup >= 0 && libc::write(a.cgroup, b"0".as_ptr().cast(), 1) != 1 {
            fail(a.failure, 1);
        }
        if a.net >= 0 && libc::setns(a.net, libc::CLONE_NEWNET) != 0 {
            fail(a.failure, 2);
        }
        if a.mnt >= 0 && libc::setns(a.mnt, libc::CLONE_NEWNS) != 0 {
            fail(a.failure, 3);
        }
        if libc::setpgid(0, 0) != 0 {
            fail(a.failure, 4);
        }
        if libc::dup2(a.stdin, 0) < 0 || libc::dup2(a.stdout, 1) < 0 || libc::dup2(a.stderr, 2) < 0
        {
            fail(a.failure, 5);
        }
        libc::execve(a.path, a.argv, a.envp);
        fail(a.failure, 6)
    }
}

/// A close-on-exec pipe whose ends are above the standard streams (so
/// `dup2` onto 0, 1 or 2 always makes a new descriptor).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both are new descriptors we own.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((high(r)?, high(w)?))
}

fn high(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor we own.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Makes our end of a pipe non-blocking (a pipe from `pipe2` has no other
/// status flag to keep).
fn nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn cstring(s: &[u8]) -> io::Result<CString> {
    CString::new(s)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in an argument"))
}

/// The program's path: as given when it names a directory, else the
/// first executable file of that name along `path` (as `execvp`).
fn resolve(program: &OsStr, path: Option<&OsStr>) -> io::Result<PathBuf> {
    if program.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(program));
    }
    let path = path.unwrap_or(OsStr::new(
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ));
    for dir in std::env::split_paths(path) {
        let candidate = dir.join(program);
        let Ok(c) = cstring(candidate.as_os_str().as_bytes()) else {
            continue;
        };
        // SAFETY: access on a valid C string.
        if unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 && candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(io::Error::new(io::ErrorKind::NotFound, "not found on PATH"))
}

/// The daemon's own environment, read once (it does not change while the
/// daemon runs): `NAME=VALUE` strings, and the names.
fn base_env() -> &'static [(OsString, CString)] {
    static BASE: std::sync::OnceLock<Vec<(OsString, CString)>> = std::sync::OnceLock::new();
    BASE.get_or_init(|| {
        std::env::vars_os()
            .filter_map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                Some((k, CString::new(kv).ok()?))
            })
            .collect()
    })
}

/// Programs found along a PATH, by (name, PATH): at one status check per
/// service a minute, `bash` was looked for in every PATH directory
/// thousands of times a second. An entry whose program is gone is dropped
/// when its `execve` fails.
type Found = std::collections::HashMap<(OsString, Option<OsString>), PathBuf>;

static FOUND: std::sync::Mutex<Option<Found>> = std::sync::Mutex::new(None);

/// [`resolve`], remembered.
fn resolved(program: &OsStr, path: Option<&OsStr>) -> io::Result<PathBuf> {
    if program.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(program));
    }
    let key = (program.to_os_string(), path.map(OsStr::to_os_string));
    if let Some(p) = FOUND
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|f| f.get(&key))
    {
        return Ok(p.clone());
    }
    let found = resolve(program, path)?;
    let mut f = FOUND.lock().unwrap_or_else(|p| p.into_inner());
    let f = f.get_or_insert_with(Found::new);
    if f.len() >= 256 {
        f.clear();
    }
    f.insert(key, found.clone());
    Ok(found)
}

/// Forgets where `program` was found (its `execve` failed).
fn forget(program: &OsStr) {
    if let Some(f) = FOUND.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        f.retain(|(name, _), _| name != program);
    }
}

/// `/dev/null`, open once, for the standard input of commands given none.
fn dev_null() -> io::Result<RawFd> {
    static NULL: std::sync::OnceLock<OwnedFd> = std::sync::OnceLock::new();
    if let Some(fd) = NULL.get() {
        return Ok(fd.as_raw_fd());
    }
    let fd = high(std::fs::File::open("/dev/null")?.into())?;
    Ok(NULL.get_or_init(|| fd).as_raw_fd())
}

/// Starts `argv` with the daemon's environment plus `env`, stdin a pipe
/// (`with_stdin`) or `/dev/null`, stdout and stderr pipes, after `setup`.
pub fn spawn(
    argv: &[OsString],
    env: &[(OsString, OsString)],
    with_stdin: bool,
    setup: Setup,
) -> io::Result<Child> {
    match spawn_once(argv, env, with_stdin, setup) {
        // Where the program was found may be stale (it moved): looked for
        // again, once.
        Err(Failed { exec: true, .. })
            if argv.first().is_some_and(|p| !p.as_bytes().contains(&b'/')) =>
        {
            forget(&argv[0]);
            spawn_once(argv, env, with_stdin, setup).map_err(|f| f.error)
        }
        r => r.map_err(|f| f.error),
    }
}

/// The step of [`STEPS`] that is `execve`.
const EXEC_STEP: i32 = 6;

/// Why [`spawn_once`] failed, and whether it was `execve`.
struct Failed {
    error: io::Error,
    exec: bool,
}

impl From<io::Error> for Failed {
    fn from(error: io::Error) -> Self {
        Self { error, exec: false }
    }
}

/// [`spawn`], once.
fn spawn_once(
    argv: &[OsString],
    env: &[(OsString, OsString)],
    with_stdin: bool,
    setup: Setup,
) -> Result<Child, Failed> {
    let (program, _) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    // The daemon's environment, each name given in `env` replaced.
    let given: Vec<CString> = env
        .iter()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            cstring(&kv)
        })
        .collect::<Result<_, _>>()?;
    let base = base_env();
    let path_var = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_os_str())
        .or_else(|| {
            base.iter()
                .find(|(k, _)| k == "PATH")
                .map(|(_, kv)| OsStr::from_bytes(&kv.as_bytes()["PATH=".len()..]))
        });
    let path = cstring(resolved(program, path_var)?.as_os_str().as_bytes())?;
    let args: Vec<CString> = argv
        .iter()
        .map(|a| cstring(a.as_bytes()))
        .collect::<Result<_, _>>()?;
    let mut env_ptrs: Vec<*const libc::c_char> = Vec::with_capacity(base.len() + given.len() + 1);
    env_ptrs.extend(
        base.iter()
            .filter(|(k, _)| !env.iter().any(|(g, _)| g == k))
            .map(|(_, kv)| kv.as_ptr()),
    );
    // A name given twice: the last one.
    for (i, kv) in given.iter().enumerate() {
        if !env[i + 1..].iter().any(|(g, _)| *g == env[i].0) {
            env_ptrs.push(kv.as_ptr());
        }
    }
    env_ptrs.push(std::ptr::null());
    let mut arg_ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    arg_ptrs.push(std::ptr::null());

    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (in_r, in_w) = if with_stdin {
        let (r, w) = pipe()?;
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    let mut failure = [0i32; 2];
    let args = ChildArgs {
        path: path.as_ptr(),
        argv: arg_ptrs.as_ptr(),
        envp: env_ptrs.as_ptr(),
        stdin: match &in_r {
            Some(r) => r.as_raw_fd(),
            None => dev_null()?,
        },
        stdout: out_w.as_raw_fd(),
        stderr: err_w.as_raw_fd(),
        failure: &mut failure,
        cgroup: setup.cgroup_procs.unwrap_or(-1),
        net: setup.net.unwrap_or(-1),
        mnt: setup.mnt.unwrap_or(-1),
    };
    // The child's stack (freed once it has exec'd or exited: the parent
    // waits for that).
    // (Not zeroed: only the child writes it, and zeroing 256 KiB was a
    // visible part of each spawn's cost.)
    const STACK: usize = 256 << 10;
    let mut stack: Vec<u8> = Vec::with_capacity(STACK);
    let top = (stack.as_mut_ptr() as usize + STACK) & !15;
    // SAFETY: all signals are blocked around clone so none is handled on
    // the child's side while it shares our memory (it unblocks after
    // resetting handlers); CLONE_VFORK suspends this thread until the
    // child has exec'd or exited, so `args`, the strings and the stack
    // outlive its use of them.
    let pid = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let pid = libc::clone(
            child_main,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &args as *const ChildArgs as *mut libc::c_void,
        );
        let e = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid < 0 {
            return Err(e.into());
        }
        pid
    };
    drop(stack);
    drop((out_w, err_w, in_r));
    // SAFETY: the child wrote it, if at all, before it exited; CLONE_VFORK
    // kept this thread waiting until then.
    let [step, errno] = unsafe { std::ptr::read_volatile(&failure) };
    if step != 0 {
        let mut status = 0;
        // SAFETY: reaps our child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let e = io::Error::from_raw_os_error(errno);
        let what = STEPS.get(step as usize).copied().unwrap_or("");
        let e = io::Error::new(e.kind(), format!("{what}: {e}"));
        return Err(Failed {
            error: e,
            exec: step == EXEC_STEP,
        });
    }
    let mut child = Child {
        pid,
        pidfd: None,
        watched: false,
        status: None,
        stdin: None,
        stdout: None,
        stderr: None,
    };
    // Unchecked: these are the pipes made above, non-blocking now (the
    // checked constructors ask the kernel again, twice per pipe).
    let streams = (|| -> io::Result<()> {
        nonblocking(&out_r)?;
        nonblocking(&err_r)?;
        if let Some(w) = in_w {
            nonblocking(&w)?;
            child.stdin = Some(tokio::net::unix::pipe::Sender::from_owned_fd_unchecked(w)?);
        }
        child.stdout = Some(tokio::net::unix::pipe::Receiver::from_owned_fd_unchecked(
            out_r,
        )?);
        child.stderr = Some(tokio::net::unix::pipe::Receiver::from_owned_fd_unchecked(
            err_r,
        )?);
        Ok(())
    })();
    if let Err(e) = streams {
        // Not left running unwatched: killed, and reaped by the drop.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        return Err(e.into());
    }
    Ok(child)
}

impl Child {
    /// Its pid, which is also its process group.
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    /// Opens and registers its pidfd, once.
    fn watch(&mut self) -> io::Result<()> {
        if self.watched {
            return Ok(());
        }
        self.watched = true;
        // SAFETY: pidfd_open returns a new descriptor for our child, which
        // is not reaped yet (so its pid is still its own).
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, self.pid, 0) };
        if fd >= 0 {
            // SAFETY: as above.
            let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
            // SAFETY: the descriptor is ours and stays open as long as the
            // AsyncFd that owns it.
            self.pidfd = Some(
                unsafe { AsyncFd::register(fd) }.map_err(|e| io::Error::other(e.to_string()))?,
            );
        }
        Ok(())
    }

    /// Reaps it if it has exited, without waiting.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.try_reap()
    }

    fn try_reap(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = reap(self.pid)?;
        }
        Ok(self.status)
    }

    /// Waits for it to exit and reaps it (cancel-safe).
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        if !self.watched {
            if let Some(s) = self.try_reap()? {
                return Ok(s);
            }
            self.watch()?;
        }
        loop {
            match &self.pidfd {
                // Reaped once its pidfd says it exited (not asked on every
                // call: a caller that polls this among other futures would
                // make a system call each time).
                Some(fd) => {
                    let mut ready = fd.readable().await?;
                    match reap(self.pid)? {
                        Some(s) => {
                            self.status = Some(s);
                            return Ok(s);
                        }
                        None => ready.clear_ready(),
                    }
                }
                // No pidfd (a kernel before 5.3): poll.
                None => {
                    if let Some(s) = self.try_reap()? {
                        return Ok(s);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    }
}

/// Reaps `pid` (our child) if it has exited.
fn reap(pid: libc::pid_t) -> io::Result<Option<ExitStatus>> {
    let mut status = 0;
    // SAFETY: waits for our own child only.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((r == pid).then(|| ExitStatus::from_raw(status)))
}

impl Drop for Child {
    /// A child not waited for is reaped when it exits, not left a zombie.
    fn drop(&mut self) {
        if matches!(self.try_reap(), Ok(Some(_)) | Err(_)) {
            return;
        }
        let pid = self.pid;
        let reap = move || {
            let mut status = 0;
            // SAFETY: waits for our own child only.
            unsafe { libc::waitpid(pid, &mut status, 0) };
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(reap);
            }
            Err(_) => {
                std::thread::spawn(reap);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    async fn read_all(stream: Option<tokio::net::unix::pipe::Receiver>) -> String {
        let mut text = String::new();
        stream.unwrap().read_to_string(&mut text).await.unwrap();
        text
    }

    #[tokio::test]
    async fn it_runs_a_program_with_its_streams_and_exit_status() {
        let mut c = spawn(
            &os(&[
                "bash",
                "-c",
                "read x; echo \"out $x $CLUSVC_T\"; echo err >&2; exit 7",
            ]),
            &[("CLUSVC_T".into(), "t".into())],
            true,
            Setup::default(),
        )
        .unwrap();
        let mut stdin = c.stdin.take().unwrap();
        stdin.write_all(b"in\n").await.unwrap();
        drop(stdin);
        let out = read_all(c.stdout.take()).await;
        let err = read_all(c.stderr.take()).await;
        let status = c.wait().await.unwrap();
        assert_eq!(
            (out.as_str(), err.as_str(), status.code()),
            ("out in t\n", "err\n", Some(7))
        );
    }

    #[tokio::test]
    async fn the_child_leads_its_own_process_group_with_default_signals() {
        let mut c = spawn(
            &os(&[
                "bash",
                "-c",
                "ps -o pgid= -p $$; grep -E '^Sig(Blk|Ign)' /proc/$$/status",
            ]),
            &[],
            false,
            Setup::default(),
        )
        .unwrap();
        let out = read_all(c.stdout.take()).await;
        c.wait().await.unwrap();
        let pgid: u32 = out.lines().next().unwrap().trim().parse().unwrap();
        assert_eq!(pgid, c.id(), "{out}");
        // Nothing blocked; SIGPIPE (bit 13) not ignored.
        assert!(out.contains("SigBlk:\t0000000000000000"), "{out}");
        let ign = out
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:\t"))
            .unwrap();
        assert_eq!(
            u64::from_str_radix(ign, 16).unwrap() & (1 << 12),
            0,
            "{out}"
        );
    }

    #[tokio::test]
    async fn a_step_that_fails_is_an_error_with_its_cause() {
        let e = spawn(&os(&["/nonexistent/program"]), &[], false, Setup::default()).unwrap_err();
        assert!(e.to_string().contains("cannot execute"), "{e}");
        let e = spawn(&os(&["no-such-program-here"]), &[], false, Setup::default()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let e = spawn(
            &os(&["true"]),
            &[],
            false,
            Setup {
                net: Some(999_999),
                ..Setup::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("network namespace"), "{e}");
    }
}
