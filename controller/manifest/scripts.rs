//! User scripts on disk: listing `directory:` applications, resolving the
//! function a script's actions call (SPEC §3), and checking who may write
//! them. Shared by the manifest loader and the application handler.

use std::io::Read;
use std::path::{Path, PathBuf};

use clusvc_core::model::ServiceSpec;
use clusvc_core::model::script::{ResolveError, defined_functions, resolve_function};

/// Largest script read for function detection.
const MAX_SCRIPT_BYTES: u64 = 1 << 20;

/// The scripts a `directory:` application runs: executable regular files
/// and symlinks to them (followed) in the directory, sorted by name.
pub fn list_directory(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        // Regular files (symlinks followed) with an execute bit, as
        // run-parts takes them: a README or notes file beside the scripts
        // is not run.
        if std::fs::metadata(&path).is_ok_and(|m| {
            use std::os::unix::fs::PermissionsExt;
            m.is_file() && m.permissions().mode() & 0o111 != 0
        }) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Why a script cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// No such file.
    #[error("script {} does not exist", .0.display())]
    NotFound(PathBuf),
    /// It cannot be read.
    #[error("cannot read script {}: {source}", path.display())]
    Unreadable {
        /// The script.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A directory, device or FIFO where a script should be.
    #[error("script {} is not a regular file", .0.display())]
    NotRegular(PathBuf),
    /// No usable function.
    #[error("script {}: {source}", path.display())]
    Function {
        /// The script.
        path: PathBuf,
        /// What it defines instead.
        source: ResolveError,
    },
    /// A path component cannot be resolved or examined.
    #[error("cannot {what} {}: {source}", path.display())]
    Stat {
        /// `resolve` or `stat`.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Running as root, a component is owned by another user.
    #[error("refusing to run {} as root: {what} {} is owned by uid {uid}", script.display(), path.display())]
    NotRootOwned {
        /// The script.
        script: PathBuf,
        /// `script` or `directory`.
        what: &'static str,
        /// The component.
        path: PathBuf,
        /// Its owner.
        uid: u32,
    },
    /// Running as root, a component is writable by others.
    #[error("refusing to run {} as root: {what} {} is writable by {by} (mode {mode:o})", script.display(), path.display())]
    Writable {
        /// The script.
        script: PathBuf,
        /// `script` or `directory`.
        what: &'static str,
        /// The component.
        path: PathBuf,
        /// `everyone` or `its group`.
        by: &'static str,
        /// Its permission bits.
        mode: u32,
    },
}

/// The function a script's action calls: explicit, or resolved from its
/// name. Errors say what the script defines.
pub fn resolve(script: &Path, explicit: Option<&str>) -> Result<String, ScriptError> {
    let text = read_script(script)?;
    let name = script
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    resolve_function(name, explicit, &defined_functions(&text)).map_err(|source| {
        ScriptError::Function {
            path: script.to_path_buf(),
            source,
        }
    })
}

fn read_script(script: &Path) -> Result<String, ScriptError> {
    let unreadable = |source| ScriptError::Unreadable {
        path: script.to_path_buf(),
        source,
    };
    // Anything but a regular file is refused before it is opened (an open
    // of a FIFO waits for a writer; a device's open may act), and the open
    // itself does not block or take a terminal, in case the path was
    // swapped meanwhile (the opened file is checked again below).
    if std::fs::metadata(script).is_ok_and(|md| !md.is_file()) {
        return Err(ScriptError::NotRegular(script.to_path_buf()));
    }
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(script)
    }
    .map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ScriptError::NotFound(script.to_path_buf()),
        _ => unreadable(e),
    })?;
    let md = file.metadata().map_err(unreadable)?;
    if !md.is_file() {
        return Err(ScriptError::NotRegular(script.to_path_buf()));
    }
    let mut text = String::new();
    file.take(MAX_SCRIPT_BYTES)
        .read_to_string(&mut text)
        .map_err(unreadable)?;
    Ok(text)
}

/// Results of script checks within one load: many services run the same
/// script, which is read and checked once.
#[derive(Debug, Default)]
pub struct Memo {
    resolved: std::collections::HashMap<(PathBuf, Option<String>), Result<(), String>>,
}

impl Memo {
    fn check(&mut self, path: &Path, function: Option<&str>) -> Result<(), String> {
        self.resolved
            .entry((path.to_path_buf(), function.map(str::to_string)))
            .or_insert_with(|| {
                resolve(path, function)
                    .and_then(|_| check_trusted(path))
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .clone()
    }
}

/// Checks every script and directory of a service where the files can be
/// read; returns `(field path, message)` per problem. A file this process may
/// not read is skipped: the member that runs it checks it again.
pub fn check_service(spec: &ServiceSpec) -> Vec<(String, String)> {
    check_service_memo(spec, &mut Memo::default())
}

/// As [`check_service`], remembering results in `memo`.
pub fn check_service_memo(spec: &ServiceSpec, memo: &mut Memo) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, app) in spec.applications.iter().enumerate() {
        let sources = [&app.script, &app.directory, &app.ocf];
        if sources.iter().filter(|s| s.is_some()).count() != 1 {
            continue; // reported by the model's rules
        }
        if let Some(script) = &app.script {
            let path = Path::new(script);
            if !path.is_absolute() || is_permission_denied(path) {
                continue;
            }
            let field = format!("spec.applications[{i}].script");
            if let Err(e) = memo.check(path, app.function.as_deref()) {
                out.push((field, e));
            }
        }
        if let Some(dir) = &app.directory {
            let field = format!("spec.applications[{i}].directory");
            let path = Path::new(dir);
            if !path.is_absolute() {
                continue;
            }
            match std::fs::metadata(path) {
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => continue,
                Err(_) => out.push((field, format!("directory {dir} does not exist"))),
                Ok(md) if !md.is_dir() => {
                    out.push((field, format!("{dir} is not a directory")));
                }
                Ok(_) => match list_directory(path) {
                    Ok(scripts) if scripts.is_empty() => {
                        out.push((field, format!("directory {dir} holds no scripts")));
                    }
                    Ok(scripts) => {
                        if let Err(e) = check_trusted(path) {
                            out.push((field.clone(), e.to_string()));
                        }
                        for s in scripts {
                            if let Err(e) = memo.check(&s, None) {
                                out.push((field.clone(), e));
                            }
                        }
                    }
                    Err(e) => out.push((field, format!("cannot list {dir}: {e}"))),
                },
            }
        }
    }
    out
}

/// One component of a script's path: owned by root, writable by no one
/// else (a sticky directory such as /tmp is fine: others cannot replace
/// root's entries there).
fn check_component(
    script: &Path,
    p: &Path,
    what: &'static str,
    md: &std::fs::Metadata,
    is_script: bool,
) -> Result<(), ScriptError> {
    use std::os::unix::fs::MetadataExt;
    let mode = md.mode();
    if md.uid() != 0 {
        return Err(ScriptError::NotRootOwned {
            script: script.to_path_buf(),
            what,
            path: p.to_path_buf(),
            uid: md.uid(),
        });
    }
    let group_w = mode & 0o020 != 0 && md.gid() != 0;
    let world_w = mode & 0o002 != 0;
    // With an access ACL the group bits are its mask: users and groups it
    // names may write when the mask lets them (root's group or not).
    let acl_w = mode & 0o020 != 0 && has_access_acl(p);
    let sticky = mode & 0o1000 != 0;
    // A sticky directory is protected: others cannot replace root's entries.
    let protected_dir = sticky && !is_script;
    if (group_w || world_w || acl_w) && !protected_dir {
        return Err(ScriptError::Writable {
            script: script.to_path_buf(),
            what,
            path: p.to_path_buf(),
            by: if world_w {
                "everyone"
            } else if group_w {
                "its group"
            } else {
                "the users and groups its ACL names"
            },
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// Whether `p` has a POSIX access ACL.
fn has_access_acl(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: valid NUL-terminated strings; a size query writes nothing.
    let n = unsafe {
        libc::getxattr(
            c.as_ptr(),
            c"system.posix_acl_access".as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    n >= 0
}

/// Running as root, the same ownership rule the agent applies before it
/// runs a script ([`check_root_owned`]), so an unsafe script is an invalid
/// manifest instead of a service that blocks at its first start.
fn check_trusted(path: &Path) -> Result<(), ScriptError> {
    if nix::unistd::geteuid().is_root() {
        check_root_owned(path)
    } else {
        Ok(())
    }
}

/// Whether this process may not read `path`, asked without opening it
/// (an open of a FIFO waits for a writer; a device's open may act).
fn is_permission_denied(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid NUL-terminated path; faccessat only reads it.
    let r = unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::R_OK, libc::AT_EACCESS) };
    r != 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::PermissionDenied
}

/// Why a script may not run as root: it, or a directory above it, can be
/// written by someone other than root.
pub fn check_root_owned(script: &Path) -> Result<(), ScriptError> {
    root_owned_components(script).map(|_| ())
}

/// [`check_root_owned`], returning what it checked: the directories of the
/// path as given, then the file the path leads to and its directories
/// (each with whether it is the script), for [`recheck_root_owned`].
pub fn root_owned_components(script: &Path) -> Result<Vec<(PathBuf, bool)>, ScriptError> {
    // The directories of the path as given hold the links that lead to the
    // script: whoever may write them may swap a link between this check
    // and the run, so they are held to the same rule.
    let mut components = Vec::new();
    let mut dir = script.parent();
    while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
        components.push((d.to_path_buf(), false));
        dir = d.parent();
    }
    recheck_root_owned(script, &components)?;
    let given = components.len();
    let canonical = std::fs::canonicalize(script).map_err(|source| ScriptError::Stat {
        what: "resolve",
        path: script.to_path_buf(),
        source,
    })?;
    let mut path = Some(canonical.as_path());
    let mut first = true;
    while let Some(p) = path {
        // (Without links the two paths share their directories: each is
        // checked once.)
        if first || !components[..given].iter().any(|(d, _)| d == p) {
            components.push((p.to_path_buf(), first));
        }
        first = false;
        path = p.parent();
    }
    recheck_root_owned(script, &components[given..])?;
    Ok(components)
}

/// Checks again, by their metadata, the components
/// [`root_owned_components`] found (without resolving the path again: the
/// links on it are in directories only root may write).
pub fn recheck_root_owned(
    script: &Path,
    components: &[(PathBuf, bool)],
) -> Result<(), ScriptError> {
    for (p, is_script) in components {
        let md = std::fs::metadata(p).map_err(|source| ScriptError::Stat {
            what: "stat",
            path: p.clone(),
            source,
        })?;
        let what = if *is_script { "script" } else { "directory" };
        check_component(script, p, what, &md, *is_script)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO in a script's place is refused at once (an open that waited
    /// for a writer would hang whoever checks the manifest).
    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("web_app");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            resolve(&fifo, None),
            Err(ScriptError::NotRegular(_))
        ));
    }
}
