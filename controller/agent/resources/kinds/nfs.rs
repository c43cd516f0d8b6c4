//! NFS exports: the kernel server through `exportfs` (status from its export
//! table), or nfs-ganesha through an EXPORT block in the file clusvc manages
//! (the ganesha config must `%include` it) and a SIGHUP.

use clusvc_core::model::{NfsExport, NfsServer};

use crate::resources::managed_file;
use crate::resources::{Command, Ctx, Error, Result, Verb};

/// Start, stop or check an export.
pub async fn act(ctx: &Ctx<'_>, e: &NfsExport, action: Verb) -> Result {
    match e.server {
        NfsServer::Kernel => kernel(ctx, e, action).await,
        NfsServer::Ganesha => ganesha(ctx, e, action).await,
    }
}

/// Clients of `path` in the export table (`/var/lib/nfs/etab`).
fn exported_clients(ctx: &Ctx<'_>, path: &str) -> Result<Vec<String>> {
    let text = managed_file::read(&ctx.host.exports_etab)?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(p, _)| *p == path)
        .map(|(_, rest)| rest.split('(').next().unwrap_or("").to_string())
        .collect())
}

async fn kernel(ctx: &Ctx<'_>, e: &NfsExport, action: Verb) -> Result {
    let present = exported_clients(ctx, &e.path)?;
    match action {
        Verb::Status => match e.clients.iter().find(|c| !present.contains(c)) {
            None => Ok(()),
            Some(c) => Err(Error::Failed(format!("{} is not exported to {c}", e.path))),
        },
        Verb::Start => {
            for client in e.clients.iter().filter(|c| !present.contains(c)) {
                let mut cmd = Command::new(["exportfs", "-i"]);
                if !e.options.is_empty() {
                    cmd = cmd.arg("-o").arg(e.options.join(","));
                }
                ctx.run_ok(&cmd.arg(format!("{client}:{}", e.path))).await?;
            }
            Box::pin(kernel(ctx, e, Verb::Status)).await
        }
        Verb::Stop => {
            for client in e.clients.iter().filter(|c| present.contains(c)) {
                ctx.run_ok(&Command::new(["exportfs", "-u"]).arg(format!("{client}:{}", e.path)))
                    .await?;
            }
            Ok(())
        }
    }
}

fn export_id(path: &str) -> u32 {
    // FNV-1a: stable across runs and members.
    let mut h: u32 = 0x811c_9dc5;
    for b in path.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    100 + h % 60_000
}

fn export_block(e: &NfsExport) -> Result<String> {
    let safe = |v: &str| !v.contains(['"', ';', '{', '}', '\n', '\r', '\0']);
    if !safe(&e.path) || !e.clients.iter().all(|c| safe(c) && !c.contains(',')) {
        return Err(Error::Refused(format!(
            "export {} has characters nfs-ganesha's config cannot hold",
            e.path
        )));
    }
    let has = |o: &str| e.options.iter().any(|x| x == o);
    let access = if has("ro") { "RO" } else { "RW" };
    let squash = if has("no_root_squash") {
        "No_Root_Squash"
    } else if has("all_squash") {
        "All_Squash"
    } else {
        "Root_Squash"
    };
    Ok(format!(
        "EXPORT {{\n\tExport_Id = {id};\n\tPath = \"{path}\";\n\tPseudo = \"{path}\";\n\tProtocols = 4;\n\tTransports = TCP;\n\tAccess_Type = None;\n\tSquash = {squash};\n\tSecType = sys;\n\tFSAL {{\n\t\tName = VFS;\n\t}}\n\tCLIENT {{\n\t\tClients = {clients};\n\t\tAccess_Type = {access};\n\t}}\n}}\n",
        id = export_id(&e.path),
        path = e.path,
        clients = e.clients.join(", "),
    ))
}

async fn reload_ganesha(ctx: &Ctx<'_>) -> Result {
    let pidfile = &ctx.host.ganesha_pid;
    let pid: i32 = std::fs::read_to_string(pidfile)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| {
            Error::Failed(format!(
                "nfs-ganesha is not running (no pid in {})",
                pidfile.display()
            ))
        })?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .map_err(|e| Error::Failed(format!("cannot signal nfs-ganesha (pid {pid}): {e}")))
}

async fn ganesha(ctx: &Ctx<'_>, e: &NfsExport, action: Verb) -> Result {
    let file = &ctx.host.ganesha_exports;
    let key = format!("{} {}", ctx.service, e.path);
    match action {
        Verb::Status => match managed_file::get(file, &key)? {
            Some(body) if body == export_block(e)? => Ok(()),
            Some(_) => Err(Error::Failed(format!(
                "export {} is defined differently",
                e.path
            ))),
            None => Err(Error::Failed(format!("{} is not exported", e.path))),
        },
        Verb::Start | Verb::Stop => {
            let body = match action {
                Verb::Start => Some(export_block(e)?),
                _ => None,
            };
            let changed = {
                let _guard = ctx.host.file_lock.lock().await;
                managed_file::set(file, &key, body.as_deref())?
            };
            if changed {
                reload_ganesha(ctx).await?;
            }
            Ok(())
        }
    }
}
