//! `clusvc store check|repair [--state-dir DIR]`: the embedded store,
//! offline (the daemon must be stopped: both take the directory's lock).

use std::path::PathBuf;

use clusvc_core::api::paths;
use clusvc_store::repair::{self, End, Report, Snapshot};

use crate::app::CliError;

/// Arguments of `store`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    action: Action,
    /// The daemon's state directory (its store is STATE-DIR/store).
    #[arg(long, value_name = "DIR", env = "CLUSVC_STATE_DIR", global = true)]
    state_dir: Option<PathBuf>,
}

/// `check` or `repair`.
#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Read the snapshot and log and say whether the daemon can open them;
    /// change nothing. Exit 0 healthy, 1 damaged.
    Check,
    /// Copy the damaged files to STORE/damaged-TIME/, then rebuild the store
    /// from every record that still reads; say which revisions were lost.
    Repair,
}

/// Runs `store check|repair`.
pub fn run(args: Args) -> Result<u8, CliError> {
    let state = args.state_dir.unwrap_or_else(|| {
        // SAFETY: geteuid cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        paths::default_state_dir(
            root,
            std::env::var_os("XDG_STATE_HOME").map(PathBuf::from),
            std::env::var_os("HOME").map(PathBuf::from),
        )
    });
    let dir = state.join("store");
    if !dir.join("wal").exists() && !dir.join("snapshot").exists() {
        return Err(CliError::bad_input(format!(
            "error: no store in {} (--state-dir)",
            dir.display()
        )));
    }
    let failed = |e: clusvc_store::Error| CliError {
        code: 1,
        message: format!("error: {e}"),
    };
    match args.action {
        Action::Check => {
            let r = repair::check(&dir).map_err(failed)?;
            print_report(&r);
            if r.healthy() {
                println!("the store is healthy");
                Ok(0)
            } else {
                println!(
                    "the daemon refuses to start on this store; `clusvc store repair` keeps a copy of it and rebuilds it from what reads ({} keys at revision {})",
                    r.keys, r.revision
                );
                Ok(1)
            }
        }
        Action::Repair => {
            let done = repair::repair_with(&dir, restore_from_observed).map_err(failed)?;
            print_report(&done.report);
            match done.backup {
                None => println!("the store is healthy: nothing to repair"),
                Some(b) => {
                    println!("kept a copy of the damaged files in {}", b.display());
                    println!(
                        "rebuilt the store: {} keys at revision {}",
                        done.report.keys, done.report.revision
                    );
                    for f in &done.fixed {
                        println!("{f}");
                    }
                    if !done.report.gaps.is_empty()
                        || matches!(done.report.snapshot, Snapshot::Damaged(_))
                    {
                        println!(
                            "objects written in lost revisions may be stale or missing: apply your manifests again (a manifests directory resyncs by itself)"
                        );
                    }
                }
            }
            Ok(0)
        }
    }
}

/// Services that run (observed) but whose desired object was lost get it
/// back from the spec they were started with, so the first start after the
/// repair does not stop them as deleted; annotated so `describe` says so.
fn restore_from_observed(
    data: &mut std::collections::BTreeMap<String, clusvc_store::KeyValue>,
    revision: clusvc_store::Revision,
) -> Vec<String> {
    use clusvc_core::model::{ObservedService, Service};
    use clusvc_store::keys;
    let mut restored = Vec::new();
    let observed: Vec<(String, ObservedService)> = data
        .range(keys::OBSERVED_SERVICES.to_string()..)
        .take_while(|(k, _)| k.starts_with(keys::OBSERVED_SERVICES))
        .filter_map(|(k, kv)| {
            let name = k.strip_prefix(keys::OBSERVED_SERVICES)?.to_string();
            keys::try_decode::<ObservedService>(&kv.value)
                .ok()
                .map(|o| (name, o))
        })
        .collect();
    for (name, o) in observed {
        let key = format!("{}{name}", keys::SERVICES);
        if data.contains_key(&key) {
            continue;
        }
        let Some(spec) = o.started_with else {
            restored.push(format!(
                "service/{name} has state but no desired object, and no spec to restore it from: apply its manifest again, or delete it"
            ));
            continue;
        };
        let mut svc = Service::new(&name);
        svc.spec = spec;
        svc.metadata.annotations.insert(
            "clusvc.io/restored-by".into(),
            "store repair: its desired object was lost; apply its manifest again".into(),
        );
        data.insert(
            key.clone(),
            clusvc_store::KeyValue {
                key,
                value: keys::encode(&svc),
                create_revision: revision,
                mod_revision: revision,
                version: 1,
                lease: None,
            },
        );
        restored.push(format!(
            "restored service/{name} from the spec it runs with (its desired object was lost): apply its manifest again"
        ));
    }
    restored
}

fn print_report(r: &Report) {
    println!("store {}", r.dir.display());
    match &r.snapshot {
        Snapshot::Missing => println!("  snapshot: none"),
        Snapshot::Intact { revision, keys } => {
            println!("  snapshot: revision {revision}, {keys} keys")
        }
        Snapshot::Damaged(why) => println!("  snapshot: DAMAGED: {why}"),
    }
    if let Some((a, b)) = r.lost_with_snapshot {
        println!(
            "  lost with the snapshot: revisions {a}-{b} (what was written only before the log began)"
        );
    }
    println!(
        "  log: {} bytes, {} records read in order",
        r.log_bytes, r.records
    );
    match r.end {
        End::Clean => {}
        End::TornTail { bytes } => println!(
            "  log end: a cut-short last write ({bytes} bytes, never acknowledged); the next start cuts it"
        ),
        End::Corrupt { offset } => println!(
            "  log: DAMAGED at byte offset {offset}; {} intact records follow the damage",
            r.salvageable
        ),
    }
    for g in &r.gaps {
        let lost = match g.lost {
            Some((a, b)) if a == b => format!("revision {a} lost"),
            Some((a, b)) => format!("revisions {a}-{b} lost"),
            None if g.offset + g.bytes >= r.log_bytes => "what it held is lost".to_string(),
            None => "no revision lost".to_string(),
        };
        println!(
            "  unreadable: bytes {}..{} ({lost})",
            g.offset,
            g.offset + g.bytes
        );
    }
}
