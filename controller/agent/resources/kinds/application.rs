//! Applications: seed-style user scripts (SPEC §3), directories of them, and
//! OCF resource agents.
//!
//! A script action runs as `bash -c '<helper library>; source SCRIPT;
//! FUNCTION ACTION SERVICE_ID'`, where the library text is fixed and the
//! script, function, action and ID are passed as arguments: nothing from a
//! manifest is interpolated into shell text.

use std::path::{Path, PathBuf};

use clusvc_core::model::Application;
use clusvc_core::model::event::Level;
use clusvc_manifest::scripts;

use crate::resources::managed_file::write_atomic;
use crate::resources::{Command, Ctx, Error, Result, Verb};

/// The helper library every script action starts with.
pub const HELPER: &str = include_str!("helper.sh");

/// Start, stop or check an application.
pub async fn act(ctx: &Ctx<'_>, app: &Application, action: Verb) -> Result {
    if let Some(ocf) = &app.ocf {
        return run_ocf(ctx, ocf, app, action).await;
    }
    let scripts: Vec<(PathBuf, Option<&str>)> = if let Some(script) = &app.script {
        vec![(PathBuf::from(script), app.function.as_deref())]
    } else if let Some(dir) = &app.directory {
        if ctx.host.require_root_owned_scripts {
            scripts::check_root_owned(Path::new(dir)).map_err(|e| Error::Refused(e.to_string()))?;
        }
        let mut list: Vec<_> = scripts::list_directory(Path::new(dir))
            .map_err(|e| Error::Failed(format!("cannot list {dir}: {e}")))?
            .into_iter()
            .map(|p| (p, None))
            .collect();
        if action == Verb::Stop {
            list.reverse();
        }
        list
    } else {
        return Err(Error::Refused(
            "application has no script, directory or ocf".into(),
        ));
    };
    // Every script of a directory is checked before the first runs, so a
    // refusal means nothing was started.
    let mut checked = Vec::with_capacity(scripts.len());
    for (script, function) in &scripts {
        checked.push(ctx.host.scripts.check(ctx.host, script, *function).await?);
    }
    for (script, checked) in scripts.iter().map(|(s, _)| s).zip(checked) {
        run_script(ctx, script, &checked, action).await?;
    }
    Ok(())
}

/// How long a script that passed its checks is run without reading and
/// resolving it again.
const CHECKED_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// At most this many checked scripts are remembered.
const CHECKED_MAX: usize = 4096;

/// A script that passed its checks: the file bash sources, and its
/// function.
#[derive(Debug)]
pub(crate) struct Checked {
    at: std::time::Instant,
    /// The function the manifest named, if any.
    asked: Option<String>,
    /// What the ownership rule covered (none when the host does not
    /// require root's scripts).
    components: Vec<(PathBuf, bool)>,
    resolved: PathBuf,
    function: String,
}

/// Scripts that passed their checks in the last [`CHECKED_FOR`]. At
/// 100,000 services checked every 60 s the same few scripts are checked
/// 1,667 times a second. A pass is used again for a second without
/// resolving the path or reading the file again (the links on the path
/// are in directories only root may write, and bash reads the file
/// anyway), but the ownership rule is checked again on every run, by the
/// metadata of each directory and of the file: a script handed to a user
/// is refused at its next run, as before. A failure is never remembered.
#[derive(Debug, Default)]
pub(crate) struct ScriptCache(
    std::sync::Mutex<std::collections::HashMap<PathBuf, std::sync::Arc<Checked>>>,
);

impl ScriptCache {
    /// `script` checked (root's alone, when the host requires it) and its
    /// function resolved. What is not remembered is read off the runtime
    /// (a script on a file system that hangs must not stop every check).
    async fn check(
        &self,
        host: &crate::resources::host::Host,
        script: &Path,
        function: Option<&str>,
    ) -> Result<std::sync::Arc<Checked>> {
        let hit = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(script)
            .filter(|c| c.at.elapsed() < CHECKED_FOR && c.asked.as_deref() == function)
            .cloned();
        if let Some(c) = hit {
            if let Err(e) = scripts::recheck_root_owned(script, &c.components) {
                self.0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(script);
                return Err(Error::Refused(e.to_string()));
            }
            return Ok(c);
        }
        let (path, asked, root) = (
            script.to_path_buf(),
            function.map(str::to_string),
            host.require_root_owned_scripts,
        );
        let checked = tokio::task::spawn_blocking(move || check_now(&path, asked, root))
            .await
            .map_err(|e| Error::Failed(format!("checking {}: {e}", script.display())))??;
        let checked = std::sync::Arc::new(checked);
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CHECKED_MAX {
            cache.clear();
        }
        cache.insert(script.to_path_buf(), checked.clone());
        Ok(checked)
    }
}

/// Checks `script` now: its ownership (when `root` is required), its
/// function, and the file it leads to.
fn check_now(script: &Path, asked: Option<String>, root: bool) -> Result<Checked> {
    let components = if root {
        scripts::root_owned_components(script).map_err(|e| Error::Refused(e.to_string()))?
    } else {
        Vec::new()
    };
    let function =
        scripts::resolve(script, asked.as_deref()).map_err(|e| Error::Failed(e.to_string()))?;
    // bash sources the file the check resolved, not the link again: every
    // directory on both paths is root's, so what was checked is what runs.
    let resolved = if root {
        std::fs::canonicalize(script)
            .map_err(|e| Error::Refused(format!("cannot resolve {}: {e}", script.display())))?
    } else {
        script.to_path_buf()
    };
    Ok(Checked {
        at: std::time::Instant::now(),
        asked,
        components,
        resolved,
        function,
    })
}

/// Keeps the `$DB` file (`ID NAME` lines) listing every service this
/// process has run an action of: a service new to it is appended (one
/// line), and the file is written whole only when this process first
/// writes it or a service's name changed. (Written whole for every new
/// service, a cold start of N services cost N x N: at 100,000 services
/// nearly all of the daemon's CPU.) A reader never sees a half-written
/// line as an entry: the helpers read whole lines only.
fn service_db(ctx: &Ctx<'_>) -> Result<PathBuf> {
    let path = ctx.host.state_dir.join("services.db");
    let mut known = ctx.host.services.lock().unwrap_or_else(|p| p.into_inner());
    let current = known.get(&ctx.service_id).map(String::as_str);
    if current == Some(ctx.service) && path.exists() {
        return Ok(path);
    }
    let new = current.is_none();
    let written = ctx
        .host
        .db_written
        .load(std::sync::atomic::Ordering::Relaxed);
    known.insert(ctx.service_id, ctx.service.to_string());
    if new && written && path.exists() {
        use std::io::Write;
        let line = format!("{} {}\n", ctx.service_id, ctx.service);
        let appended = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if appended.is_ok() {
            return Ok(path);
        }
    }
    let text: String = known
        .iter()
        .map(|(id, name)| format!("{id} {name}\n"))
        .collect();
    write_atomic(&path, text.as_bytes())?;
    ctx.host
        .db_written
        .store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(path)
}

async fn run_script(ctx: &Ctx<'_>, script: &Path, checked: &Checked, action: Verb) -> Result {
    let Checked {
        resolved, function, ..
    } = checked;
    let db = service_db(ctx)?;
    let cmd = Command::new([
        "bash",
        "--noprofile",
        "--norc",
        "-c",
        HELPER,
        "clusvc-action",
    ])
    .arg(resolved)
    .arg(function)
    .arg(action.as_str())
    .arg(ctx.service_id.to_string())
    .env("CLUSVC_SERVICE", ctx.service)
    .env("CLUSVC_SERVICE_ID", ctx.service_id.to_string())
    .env("CLUSVC_MEMBER", &ctx.host.member)
    .env("CLUSVC_ACTION", action.as_str())
    .env("CLUSVC_DB", &db)
    .named(script.file_name().map_or_else(
        || script.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    ));
    let out = ctx.run_quiet(&cmd).await?;
    for line in out.stdout.lines() {
        match parse_log_line(line) {
            Some((level, msg)) => ctx.emit(level, msg),
            None if !line.trim().is_empty() => ctx.emit(Level::Info, line),
            None => {}
        }
    }
    let name = script
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("script");
    match out.code {
        Some(0) => Ok(()),
        _ => Err(Error::Failed(format!(
            "{name}: {function} {} {}",
            action.as_str(),
            out.describe()
        ))),
    }
}

/// `\x1fLEVEL\x1fMESSAGE` as written by `logAndPrint`.
fn parse_log_line(line: &str) -> Option<(Level, &str)> {
    let rest = line.strip_prefix('\u{1f}')?;
    let (level, msg) = rest.split_once('\u{1f}')?;
    let n: u8 = level.trim().parse().unwrap_or(6);
    Some((Level::from_syslog(n), msg))
}

/// OCF exit codes, by name.
fn ocf_name(code: i32) -> &'static str {
    match code {
        0 => "OCF_SUCCESS",
        1 => "OCF_ERR_GENERIC",
        2 => "OCF_ERR_ARGS",
        3 => "OCF_ERR_UNIMPLEMENTED",
        4 => "OCF_ERR_PERM",
        5 => "OCF_ERR_INSTALLED (not installed)",
        6 => "OCF_ERR_CONFIGURED (misconfigured)",
        7 => "OCF_NOT_RUNNING",
        8 => "OCF_RUNNING_PROMOTED",
        9 => "OCF_FAILED_PROMOTED",
        _ => "unknown OCF exit code",
    }
}

async fn run_ocf(ctx: &Ctx<'_>, ocf: &str, app: &Application, action: Verb) -> Result {
    let (provider, kind) = ocf
        .split_once(':')
        .ok_or_else(|| Error::Refused(format!("invalid OCF agent {ocf:?}")))?;
    let agent = ctx
        .host
        .ocf_root
        .join("resource.d")
        .join(provider)
        .join(kind);
    if !agent.is_file() {
        return Err(Error::Failed(format!(
            "OCF agent {} is not installed",
            agent.display()
        )));
    }
    std::fs::create_dir_all(&ctx.host.ha_rsctmp).map_err(|e| {
        Error::Failed(format!(
            "cannot create {}: {e}",
            ctx.host.ha_rsctmp.display()
        ))
    })?;
    let verb = match action {
        Verb::Start => "start",
        Verb::Stop => "stop",
        Verb::Status => "monitor",
    };
    let mut cmd = Command::new([agent.as_os_str(), verb.as_ref()])
        .env("OCF_ROOT", &ctx.host.ocf_root)
        .env("OCF_FUNCTIONS_DIR", ctx.host.ocf_root.join("lib/heartbeat"))
        .env("OCF_RESOURCE_INSTANCE", format!("{}-{kind}", ctx.service))
        .env("OCF_RESOURCE_TYPE", kind)
        .env("OCF_RESOURCE_PROVIDER", provider)
        .env(
            "OCF_RESKEY_CRM_meta_timeout",
            ctx.timeout.as_millis().to_string(),
        )
        .env("HA_RSCTMP", &ctx.host.ha_rsctmp)
        .env("CLUSVC_SERVICE", ctx.service)
        .env("CLUSVC_MEMBER", &ctx.host.member)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    for (k, v) in &app.parameters {
        cmd = cmd.env(format!("OCF_RESKEY_{k}"), v.as_str());
    }
    let out = ctx.run_quiet(&cmd).await?;
    for line in out.stdout.lines().filter(|l| !l.trim().is_empty()) {
        ctx.emit(Level::Info, line);
    }
    match (action, out.code) {
        (_, Some(0)) => Ok(()),
        (Verb::Stop, Some(7)) => Ok(()),
        (_, Some(code)) => Err(Error::Failed(format!(
            "{ocf} {verb} exited {code} ({}){}",
            ocf_name(code),
            out.stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| format!(": {}", l.trim()))
                .unwrap_or_default()
        ))),
        (_, None) => Err(Error::Failed(format!("{ocf} {verb} {}", out.describe()))),
    }
}
