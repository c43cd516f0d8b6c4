//! Samba shares: a `[share]` section in the include file clusvc manages
//! (smb.conf must `include` it), then `smbcontrol smbd reload-config`.
//! Status: the share is defined in that file.

use clusvc_core::model::SambaShare;

use crate::resources::managed_file;
use crate::resources::{Command, Ctx, Error, Result, Verb};

fn key(ctx: &Ctx<'_>, s: &SambaShare) -> String {
    format!("{} {}", ctx.service, s.name.to_lowercase())
}

fn section(s: &SambaShare) -> Result<String> {
    let bad = |v: &str| v.contains(['\n', '\r', '\0']);
    if bad(&s.name) || bad(&s.path) {
        return Err(Error::Refused(format!(
            "share {:?} contains a line break",
            s.name
        )));
    }
    let mut text = format!("[{}]\n\tpath = {}\n", s.name, s.path);
    for (k, v) in &s.parameters {
        if bad(k) || bad(v.as_str()) || k.contains(['=', '[', ']']) {
            return Err(Error::Refused(format!(
                "parameter {k:?} of share {:?} is not a single line",
                s.name
            )));
        }
        text.push_str(&format!("\t{k} = {v}\n"));
    }
    Ok(text)
}

async fn reload(ctx: &Ctx<'_>) -> Result {
    let conf = ctx.host.smb_conf.display().to_string();
    ctx.run_ok(&Command::new([
        "smbcontrol",
        "-s",
        &conf,
        "smbd",
        "reload-config",
    ]))
    .await
    .map(drop)
}

/// Start, stop or check a share.
pub async fn act(ctx: &Ctx<'_>, s: &SambaShare, action: Verb) -> Result {
    let path = &ctx.host.samba_shares;
    let key = key(ctx, s);
    match action {
        Verb::Status => {
            let want = section(s)?;
            match managed_file::get(path, &key)? {
                Some(body) if body == want => Ok(()),
                Some(_) => Err(Error::Failed(format!(
                    "share {} is defined differently",
                    s.name
                ))),
                None => Err(Error::Failed(format!("share {} is not defined", s.name))),
            }
        }
        Verb::Start => {
            let body = section(s)?;
            let changed = {
                let _guard = ctx.host.file_lock.lock().await;
                managed_file::set(path, &key, Some(&body))?
            };
            if changed {
                reload(ctx).await?;
            }
            Ok(())
        }
        Verb::Stop => {
            let changed = {
                let _guard = ctx.host.file_lock.lock().await;
                managed_file::set(path, &key, None)?
            };
            if changed {
                reload(ctx).await?;
            }
            Ok(())
        }
    }
}
