//! Block devices: present as a block device node, with optional
//! activate/deactivate commands (LVM, XVM...).

use std::os::unix::fs::FileTypeExt;

use clusvc_core::model::Device;

use crate::resources::{Command, Ctx, Error, Result, Verb};

fn is_block(path: &str) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}

/// Start, stop or check a device.
pub async fn act(ctx: &Ctx<'_>, d: &Device, action: Verb) -> Result {
    match action {
        Verb::Start => {
            if !d.activate.is_empty() && !is_block(&d.path) {
                ctx.run_ok(&Command::new(&d.activate)).await?;
            }
            status(d)
        }
        Verb::Stop => {
            if !d.deactivate.is_empty() && is_block(&d.path) {
                ctx.run_ok(&Command::new(&d.deactivate)).await?;
            }
            Ok(())
        }
        Verb::Status => status(d),
    }
}

fn status(d: &Device) -> Result {
    if is_block(&d.path) {
        Ok(())
    } else if std::path::Path::new(&d.path).exists() {
        Err(Error::Failed(format!("{} is not a block device", d.path)))
    } else {
        Err(Error::Failed(format!("{} does not exist", d.path)))
    }
}
