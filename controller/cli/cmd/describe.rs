//! `clusvc describe service|member NAME`.

use clusvc_core::api::{MemberView, ServiceView};
use clusvc_core::model::event::Event;

use super::ObjectKind;
use super::events::read_events;
use crate::app::CliError;
use crate::client::Client;

/// Arguments of `describe`.
#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    /// service or member.
    kind: ObjectKind,
    /// The name.
    name: String,
}

/// `describe`.
pub fn describe(client: &Client, args: DescribeArgs) -> Result<u8, CliError> {
    match args.kind {
        ObjectKind::Service => {
            let s: ServiceView = client.get(&format!("/v1/services/{}", args.name))?;
            println!("Name:        {}", s.name);
            println!(
                "ID:          {}",
                s.id.map(|i| i.to_string()).unwrap_or_default()
            );
            println!("State:       {}", s.state);
            println!(
                "Member:      {}",
                s.member.clone().unwrap_or_else(|| "<none>".into())
            );
            println!("Source:      {}", s.source.clone().unwrap_or_default());
            if let Some(o) = super::get::override_of(&s) {
                println!(
                    "Override:    {o} (forced; the manifests directory's value returns with `clusvc enable`/`disable` or when it changes spec.enabled)"
                );
            }
            if let Some(o) = &s.observed {
                if let Some(f) = &o.failure {
                    println!(
                        "Failure:     {} of {} failed: {}",
                        f.phase.word(),
                        f.resource,
                        f.reason
                    );
                }
                if let Some(r) = o.placement_reason {
                    println!("Placed by:   {r}");
                }
                println!("Restarts:    {}", s.restarts);
            }
            if let Some(d) = &s.desired {
                println!("Spec:");
                for line in serde_saphyr::to_string(&d.spec).unwrap_or_default().lines() {
                    println!("  {line}");
                }
                println!("Resources:");
                let statuses = s
                    .observed
                    .as_ref()
                    .map(|o| o.resources.clone())
                    .unwrap_or_default();
                for r in d.spec.resources() {
                    let label = r.label();
                    let st = statuses
                        .get(&label)
                        .map(|s| format!("{s:?}").to_lowercase())
                        .unwrap_or_else(|| "unknown".into());
                    println!("  {label:50} {st}");
                }
            }
            let events: Vec<Event> = read_events(client, Some(&args.name), 20)?;
            println!("Events:");
            for e in events {
                println!(
                    "  {}  {:7}  {}{}",
                    e.at.map(|t| t.to_string()).unwrap_or_default(),
                    format!("{:?}", e.level).to_lowercase(),
                    if e.resource.is_empty() {
                        String::new()
                    } else {
                        format!("{}: ", e.resource)
                    },
                    e.message
                );
            }
        }
        ObjectKind::Member => {
            let m: MemberView = client.get(&format!("/v1/members/{}", args.name))?;
            println!("Name:      {}", m.name);
            println!("State:     {}", m.state);
            println!("Services:  {}", m.services);
            println!("Spec:");
            for line in serde_saphyr::to_string(&m.desired.spec)
                .unwrap_or_default()
                .lines()
            {
                println!("  {line}");
            }
        }
    }
    Ok(0)
}
