//! `clusvc get services|members|sync [NAME] [-o table|wide|yaml|json]`.

use clusvc_core::api::{ENABLED_OVERRIDE_ANNOTATION, MemberView, ServiceView, SyncStatus};

use super::Kind;
use crate::app::CliError;
use crate::client::Client;
use crate::output::{ListOutput, age, print_structured, print_table, table};

/// Arguments of `get`.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// services, members or sync.
    kind: Kind,
    /// One object.
    name: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = ListOutput::Table)]
    output: ListOutput,
}

/// `get`.
pub fn get(client: &Client, args: GetArgs) -> Result<u8, CliError> {
    match args.kind {
        Kind::Sync => {
            let s: SyncStatus = client.get("/v1/sync")?;
            if matches!(args.output, ListOutput::Json | ListOutput::Yaml) {
                print_structured(&s, args.output);
            } else {
                let mut t = table(&["DIR", "REVISION", "SYNCED", "OBJECTS", "ERROR"]);
                t.add_row(vec![
                    s.dir.clone().unwrap_or_else(|| "<none>".into()),
                    s.revision
                        .clone()
                        .map(|r| r.chars().take(12).collect())
                        .unwrap_or_else(|| "<none>".into()),
                    s.synced_at
                        .map(|t| format!("{} ago", age(Some(t))))
                        .unwrap_or_else(|| "never".into()),
                    s.objects.to_string(),
                    s.error.clone().unwrap_or_default(),
                ]);
                print_table(&t);
            }
            if s.error.is_some() {
                // A failing sync is not a successful `get`, so scripts can tell.
                return Ok(1);
            }
        }
        Kind::Services => {
            let list: Vec<ServiceView> = match &args.name {
                Some(n) => vec![client.get(&format!("/v1/services/{n}"))?],
                None => client.get("/v1/services")?,
            };
            if matches!(args.output, ListOutput::Json | ListOutput::Yaml) {
                if args.name.is_some() {
                    print_structured(&list[0], args.output);
                } else {
                    print_structured(&list, args.output);
                }
                return Ok(0);
            }
            let wide = args.output == ListOutput::Wide;
            let mut header = vec![
                "NAME",
                "ID",
                "STATE",
                "MEMBER",
                "LAST CHECK",
                "RESTARTS",
                "AGE",
            ];
            if wide {
                header.extend(["RESOURCES", "SOURCE", "OVERRIDE", "REASON"]);
            }
            let mut t = table(&header);
            for s in &list {
                let mut row = vec![
                    s.name.clone(),
                    s.id.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
                    s.state.to_string(),
                    s.member.clone().unwrap_or_else(|| "-".into()),
                    s.last_check
                        .map(|t| format!("{} ago", age(Some(t))))
                        .unwrap_or_else(|| "-".into()),
                    s.restarts.to_string(),
                    age(s.created_at),
                ];
                if wide {
                    row.push(
                        s.desired
                            .as_ref()
                            .map_or(0, |d| d.spec.resource_count())
                            .to_string(),
                    );
                    row.push(s.source.clone().unwrap_or_default());
                    row.push(override_of(s).unwrap_or_default());
                    row.push(
                        s.observed
                            .as_ref()
                            .and_then(|o| o.failure.as_ref())
                            .map(|f| {
                                format!("{} of {} failed: {}", f.phase.word(), f.resource, f.reason)
                            })
                            .unwrap_or_default(),
                    );
                }
                t.add_row(row);
            }
            if list.is_empty() {
                eprintln!("No services found.");
            } else {
                print_table(&t);
            }
        }
        Kind::Members => {
            let list: Vec<MemberView> = match &args.name {
                Some(n) => vec![client.get(&format!("/v1/members/{n}"))?],
                None => client.get("/v1/members")?,
            };
            if matches!(args.output, ListOutput::Json | ListOutput::Yaml) {
                print_structured(&list, args.output);
                return Ok(0);
            }
            let mut t = table(&["NAME", "STATE", "SERVICES", "ADDRESS"]);
            for m in &list {
                t.add_row(vec![
                    m.name.clone(),
                    m.state.to_string(),
                    m.services.to_string(),
                    m.desired.spec.address.clone().unwrap_or_default(),
                ]);
            }
            print_table(&t);
        }
    }
    Ok(0)
}

/// `enabled=false` when an operator forced `spec.enabled` on an object a
/// manifests directory owns.
pub fn override_of(s: &ServiceView) -> Option<String> {
    s.desired
        .as_ref()?
        .metadata
        .annotations
        .get(ENABLED_OVERRIDE_ANNOTATION)
        .map(|v| format!("enabled={v}"))
}
