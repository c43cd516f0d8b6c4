//! Filesystems: mount a device at a mount point (optional fsck), unmount
//! (optionally killing its users first); status from the member's mountinfo.

use std::os::unix::fs::MetadataExt;

use clusvc_core::model::Filesystem;
use clusvc_core::model::event::Level;

use crate::resources::mountinfo::{self, Mount};
use crate::resources::{Command, Ctx, Error, Result, Verb};

fn dev_numbers(path: &str) -> Option<(u32, u32)> {
    let rdev = std::fs::metadata(path).ok()?.rdev();
    Some((libc::major(rdev), libc::minor(rdev)))
}

fn mount_at(ctx: &Ctx<'_>, mount_point: &str) -> Result<Option<Mount>> {
    let text = std::fs::read_to_string(&ctx.host.mountinfo)
        .map_err(|e| Error::Failed(format!("cannot read {}: {e}", ctx.host.mountinfo.display())))?;
    Ok(mountinfo::find_in(&text, mount_point))
}

/// Ok when `f.device` is mounted at `f.mount_point`; otherwise why not.
pub fn status(ctx: &Ctx<'_>, f: &Filesystem) -> Result {
    match mount_at(ctx, &f.mount_point)?.as_ref() {
        None => Err(Error::Failed(format!("{} is not mounted", f.mount_point))),
        Some(m) if m.source == f.device || dev_numbers(&f.device) == Some(m.dev) => Ok(()),
        Some(m) => Err(Error::Failed(format!(
            "{} is mounted from {}, not {}",
            f.mount_point, m.source, f.device
        ))),
    }
}

fn mounted(ctx: &Ctx<'_>, f: &Filesystem) -> Result<bool> {
    Ok(mount_at(ctx, &f.mount_point)?.is_some())
}

/// Start, stop or check a filesystem.
pub async fn act(ctx: &Ctx<'_>, f: &Filesystem, action: Verb) -> Result {
    match action {
        Verb::Status => status(ctx, f),
        Verb::Start => {
            if status(ctx, f).is_ok() {
                return Ok(());
            }
            if mounted(ctx, f)? {
                return status(ctx, f);
            }
            if f.fsck {
                let out = ctx.run(&Command::new(["fsck", "-a", &f.device])).await?;
                // 0: clean, 1: errors corrected.
                if !matches!(out.code, Some(0 | 1)) {
                    return Err(Error::Failed(format!(
                        "fsck {} {}",
                        f.device,
                        out.describe()
                    )));
                }
            }
            ctx.run_ok(&Command::new(["mkdir", "-p", &f.mount_point]))
                .await?;
            let mut cmd = Command::new(["mount"]);
            if let Some(t) = &f.fs_type {
                cmd = cmd.arg("-t").arg(t);
            }
            if !f.options.is_empty() {
                cmd = cmd.arg("-o").arg(f.options.join(","));
            }
            cmd = cmd.arg(&f.device).arg(&f.mount_point);
            ctx.run_ok(&cmd).await?;
            status(ctx, f)
        }
        Verb::Stop => {
            if !mounted(ctx, f)? {
                return Ok(());
            }
            if f.force_unmount {
                let out = ctx
                    .run(&Command::new(["fuser", "-k", "-9", "-m", &f.mount_point]))
                    .await?;
                if out.success() {
                    ctx.emit(
                        Level::Notice,
                        format!("killed processes using {}", f.mount_point),
                    );
                }
            }
            ctx.run_ok(&Command::new(["umount", &f.mount_point]))
                .await?;
            if mounted(ctx, f)? {
                return Err(Error::Failed(format!("{} is still mounted", f.mount_point)));
            }
            Ok(())
        }
    }
}
