//! `clusvc diff -f ...`: live desired objects against the input.

use clusvc_core::api::{MANIFEST_ANNOTATION, MemberView, SOURCE_ANNOTATION, ServiceView};

use super::load;
use crate::app::{CliError, EXIT_CHANGES, Files};
use crate::client::Client;

/// `diff -f`: live desired objects against the input; exit 1 when they differ.
pub fn diff(client: &Client, files: Files) -> Result<u8, CliError> {
    let loaded = load(&files)?;
    let live_services: Vec<ServiceView> = client.get("/v1/services")?;
    let live_members: Vec<MemberView> = client.get("/v1/members")?;
    let strip = |mut v: serde_json::Value| {
        if let Some(meta) = v.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            let empty = meta
                .get_mut("annotations")
                .and_then(|a| a.as_object_mut())
                .map(|a| {
                    a.remove(SOURCE_ANNOTATION);
                    a.remove(MANIFEST_ANNOTATION);
                    a.is_empty()
                });
            if empty == Some(true) {
                meta.remove("annotations");
            }
        }
        serde_saphyr::to_string(&v).unwrap_or_default()
    };
    let mut differs = false;
    let mut show = |kind: &str, name: &str, live: Option<String>, new: String| {
        let old = live.unwrap_or_default();
        if old != new {
            differs = true;
            let d = similar::TextDiff::from_lines(&old, &new);
            print!(
                "{}",
                d.unified_diff().header(
                    &format!("live/{kind}/{name}"),
                    &format!("new/{kind}/{name}")
                )
            );
        }
    };
    for m in loaded.desired.members().values() {
        let live = live_members
            .iter()
            .find(|l| l.name == m.metadata.name)
            .map(|l| strip(serde_json::to_value(&l.desired).unwrap_or_default()));
        show(
            "member",
            &m.metadata.name,
            live,
            strip(serde_json::to_value(m).unwrap_or_default()),
        );
    }
    for s in loaded.desired.services().values() {
        let live = live_services
            .iter()
            .find(|l| l.name == s.metadata.name)
            .and_then(|l| l.desired.as_ref())
            .map(|d| strip(serde_json::to_value(d).unwrap_or_default()));
        show(
            "service",
            &s.metadata.name,
            live,
            strip(serde_json::to_value(s).unwrap_or_default()),
        );
    }
    Ok(if differs { EXIT_CHANGES } else { 0 })
}
