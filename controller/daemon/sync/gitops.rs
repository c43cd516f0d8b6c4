//! GitOps: a manifests directory as the source of truth for the objects it
//! contains. File changes are picked up by a debounced watcher (git replaces
//! files by rename, so any batch means "re-read the tree") and a periodic
//! resync. A tree with any invalid file changes nothing: the last good state
//! stays and the error, with file and line, is reported in events,
//! `/healthz` and `clusvc get sync`. Objects removed from the tree are pruned.
//! When the directory is a git work tree, its HEAD commit is reported.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use clusvc_agent::events::Events;
use clusvc_core::model::Timestamp;
use clusvc_core::model::event::{Event, Level};
use clusvc_manifest::{self as manifest, Options, ParseCache};
use clusvc_store::Store;

use clusvc_core::api::{
    Applied, ApplyRequest, GITOPS_SOURCE_PREFIX, MANIFEST_ANNOTATION, SyncStatus,
};

use super::apply::{self, ScriptChecks};

/// The source name objects from `dir` carry.
pub fn source_for(dir: &Path) -> String {
    format!("{GITOPS_SOURCE_PREFIX}{}", dir.display())
}

fn git_head(dir: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Reads the tree and applies it (with prune); records the outcome. Files
/// unchanged since the last sync are not parsed again (`cache`).
pub async fn sync_once<S: Store>(
    store: &S,
    dir: &Path,
    status: &Mutex<SyncStatus>,
    events: &dyn Events,
    cache: &mut ParseCache,
) -> bool {
    let source = source_for(dir);
    let event = |level: Level, message: String| {
        events.emit(Event {
            at: None,
            service: String::new(),
            service_id: 0,
            member: String::new(),
            resource: String::new(),
            level,
            message,
            reason: None,
            revision: None,
        })
    };
    // Read off the async runtime: the tree and its scripts may sit on a
    // slow file system (a hung NFS mount would otherwise hold a worker).
    let taken = std::mem::take(cache);
    let root = dir.to_path_buf();
    let (result, kept) = tokio::task::spawn_blocking(move || {
        let mut taken = taken;
        let r = manifest::load_paths_cached(&[root], Options::default(), &mut taken);
        (r, taken)
    })
    .await
    .unwrap_or_else(|e| {
        (
            Err(manifest::Errors::single(
                dir.display().to_string(),
                format!("reading the tree failed: {e}"),
            )),
            ParseCache::default(),
        )
    });
    *cache = kept;
    let loaded = match result {
        Ok(l) => l,
        Err(errors) => {
            let text = errors.to_string();
            let changed = {
                let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
                let changed = s.error.as_deref() != Some(text.as_str());
                s.error = Some(text.clone());
                changed
            };
            if changed {
                event(
                    Level::Err,
                    format!(
                        "manifests in {} are invalid; nothing applied:\n{text}",
                        dir.display()
                    ),
                );
            }
            return false;
        }
    };
    // Each object names its file, so hints can say what to edit.
    let file_of = |kind: &str, name: &str| {
        loaded
            .origins
            .get(&(kind.to_string(), name.to_string()))
            .map(|o| {
                let f = Path::new(&*o.file);
                f.strip_prefix(dir).unwrap_or(f).display().to_string()
            })
    };
    let mut members: Vec<_> = loaded.desired.members().values().cloned().collect();
    for m in &mut members {
        if let Some(f) = file_of("member", &m.metadata.name) {
            m.metadata.annotations.insert(MANIFEST_ANNOTATION.into(), f);
        }
    }
    let mut services: Vec<_> = loaded.desired.services().values().cloned().collect();
    for s in &mut services {
        if let Some(f) = file_of("service", &s.metadata.name) {
            s.metadata.annotations.insert(MANIFEST_ANNOTATION.into(), f);
        }
    }
    let req = ApplyRequest {
        members,
        services,
        source,
        prune: true,
        dry_run: false,
        force: true,
        create_only: false,
        // An emptied tree (an unmounted directory, a bad checkout) must not
        // delete everything: it is reported as a sync error instead.
        allow_empty_prune: false,
    };
    let objects = req.members.len() + req.services.len();
    match apply::apply(store, req, ScriptChecks::AlreadyChecked).await {
        Ok(resp) => {
            let changed: Vec<String> = resp
                .objects
                .iter()
                .filter(|o| o.result != Applied::Unchanged)
                .map(|o| format!("{}/{} {}", o.kind, o.name, o.result))
                .collect();
            let head = git_head(dir);
            if !changed.is_empty() {
                event(
                    Level::Notice,
                    format!(
                        "synced {}{}: {}",
                        dir.display(),
                        head.as_deref()
                            .map(|h| format!(" at {h}"))
                            .unwrap_or_default(),
                        summarize(&changed)
                    ),
                );
            }
            let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
            s.dir = Some(dir.display().to_string());
            s.revision = head;
            s.synced_at = Some(Timestamp::from_system(SystemTime::now()));
            s.objects = objects;
            s.error = None;
            true
        }
        Err(e) => {
            let text = e.to_string();
            let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
            if s.error.as_deref() != Some(text.as_str()) {
                s.error = Some(text.clone());
                drop(s);
                event(
                    Level::Err,
                    format!("cannot apply {}: {text}", dir.display()),
                );
            }
            false
        }
    }
}

/// The manifests directory cannot be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {}: {source}", dir.display())]
pub struct WatchError {
    /// The directory.
    pub dir: PathBuf,
    /// The watcher's error.
    pub source: notify::Error,
}

/// The objects a sync changed, the first few by name and then a count, so
/// a tree of thousands does not make one event of thousands of names.
fn summarize(changed: &[String]) -> String {
    const SHOWN: usize = 20;
    if changed.len() <= SHOWN {
        return changed.join(", ");
    }
    format!(
        "{}, and {} more",
        changed[..SHOWN].join(", "),
        changed.len() - SHOWN
    )
}

/// Watches `dir` and keeps it synced until the process ends.
pub fn spawn<S: Store>(
    store: Arc<S>,
    dir: PathBuf,
    status: Arc<Mutex<SyncStatus>>,
    events: Arc<dyn Events>,
    resync: Duration,
    mut cache: ParseCache,
) -> Result<(), WatchError> {
    use notify::RecursiveMode;
    use notify_debouncer_full::new_debouncer;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut debouncer = new_debouncer(Duration::from_millis(50), None, move |res| {
        if let Ok(events) = res {
            // Any change, in the tree or in .git (a commit moves HEAD):
            // re-read the tree; unchanged objects write nothing. Reads are
            // not changes: the sync's own reading of the tree (open, close)
            // must not trigger the next sync, or it never stops.
            let events: Vec<notify_debouncer_full::DebouncedEvent> = events;
            if events
                .iter()
                .any(|e| !matches!(e.event.kind, notify::EventKind::Access(_)))
            {
                let _ = tx.send(());
            }
        }
    })
    .map_err(|source| WatchError {
        dir: dir.clone(),
        source,
    })?;
    debouncer
        .watch(&dir, RecursiveMode::Recursive)
        .map_err(|source| WatchError {
            dir: dir.clone(),
            source,
        })?;
    {
        let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
        s.dir = Some(dir.display().to_string());
    }
    tokio::spawn(async move {
        let _keep = debouncer;
        loop {
            sync_once(store.as_ref(), &dir, &status, events.as_ref(), &mut cache).await;
            tokio::select! {
                got = rx.recv() => {
                    if got.is_none() {
                        return;
                    }
                    while rx.try_recv().is_ok() {}
                }
                _ = tokio::time::sleep(resync) => {}
            }
        }
    });
    Ok(())
}
