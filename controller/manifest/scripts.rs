//! User scripts on disk: listing `directory:` applications, resolving the
//! function a script's actions call (SPEC §3), and checking who may write
//! them. Shared by the manifest loader and the application handler.

use std::io::Read;
use std::path::{Path, PathBuf};

use clusvc_core::model::ServiceSpec;
use clusvc_core::model::script::{defined_functions, resolve_function};

/// Largest script read for function detection.
const MAX_SCRIPT_BYTES: u64 = 1 << 20;

/// The scripts a `directory:` application runs: regular files and symlinks
/// (followed) in the directory, sorted by name.
pub fn list_directory(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// The function a script's action calls: explicit, or resolved from its
/// name. Errors say what the script defines.
pub fn resolve(script: &Path, explicit: Option<&str>) -> Result<String, String> {
    let text = read_script(script)?;
    let name = script
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    resolve_function(name, explicit, &defined_functions(&text))
        .map_err(|e| format!("script {}: {e}", script.display()))
}

fn read_script(script: &Path) -> Result<String, String> {
    let file = std::fs::File::open(script).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("script {} does not exist", script.display()),
        _ => format!("cannot read script {}: {e}", script.display()),
    })?;
    let md = file
        .metadata()
        .map_err(|e| format!("cannot read script {}: {e}", script.display()))?;
    if !md.is_file() {
        return Err(format!("script {} is not a regular file", script.display()));
    }
    let mut text = String::new();
    file.take(MAX_SCRIPT_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read script {}: {e}", script.display()))?;
    Ok(text)
}

/// Checks every script and directory of a service where the files can be
/// read; returns `(field path, message)` per problem. A file this process may
/// not read is skipped: the member that runs it checks it again.
pub fn check_service(spec: &ServiceSpec) -> Vec<(String, String)> {
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
            if let Err(e) = resolve(path, app.function.as_deref()) {
                out.push((format!("spec.applications[{i}].script"), e));
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
                        for s in scripts {
                            if let Err(e) = resolve(&s, None) {
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

fn is_permission_denied(path: &Path) -> bool {
    std::fs::File::open(path)
        .err()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
}

/// Why a script may not run as root: it, or a directory above it, can be
/// written by someone other than root.
pub fn check_root_owned(script: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let canonical = std::fs::canonicalize(script)
        .map_err(|e| format!("cannot resolve {}: {e}", script.display()))?;
    let mut path = Some(canonical.as_path());
    let mut first = true;
    while let Some(p) = path {
        let md = std::fs::metadata(p).map_err(|e| format!("cannot stat {}: {e}", p.display()))?;
        let mode = md.mode();
        let what = if first { "script" } else { "directory" };
        let sticky = mode & 0o1000 != 0;
        if md.uid() != 0 {
            return Err(format!(
                "refusing to run {} as root: {what} {} is owned by uid {}",
                script.display(),
                p.display(),
                md.uid()
            ));
        }
        let group_w = mode & 0o020 != 0 && md.gid() != 0;
        let world_w = mode & 0o002 != 0;
        let protected_dir = sticky && !first;
        if (group_w || world_w) && !protected_dir {
            return Err(format!(
                "refusing to run {} as root: {what} {} is writable by {} (mode {:o})",
                script.display(),
                p.display(),
                if world_w { "everyone" } else { "its group" },
                mode & 0o7777
            ));
        }
        first = false;
        path = p.parent();
    }
    Ok(())
}
