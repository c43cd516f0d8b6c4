//! `clusvc get services|members|sync|observed [NAME] [-o table|wide|yaml|json]`.

use clusvc_core::api::{
    ENABLED_OVERRIDE_ANNOTATION, MAX_PAGE, MemberView, ServicePage, ServiceView, SyncStatus,
};

use super::Kind;
use crate::app::CliError;
use crate::client::Client;
use crate::output::{ListOutput, age, print_structured, print_table, table};

/// Arguments of `get`.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// services, members, sync or observed.
    kind: Kind,
    /// One object.
    name: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = ListOutput::Table)]
    output: ListOutput,
    /// services: show at most this many (one page, in name order; the
    /// token for the next page is printed to stderr, or under `continue`
    /// with -o json|yaml). Without it every service is shown, fetched in
    /// pages of 500.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=MAX_PAGE as u64))]
    limit: Option<u64>,
    /// services: the page after the one that printed this token (with --limit).
    #[arg(long = "continue", value_name = "TOKEN", requires = "limit")]
    next: Option<String>,
}

/// Pages `get services` fetches when not given --limit.
const CHUNK: usize = 500;

/// A page of services from the server.
fn service_page(
    client: &Client,
    limit: usize,
    next: Option<&str>,
) -> Result<ServicePage, CliError> {
    let mut path = format!("/v1/services?limit={limit}");
    if let Some(n) = next {
        path.push_str("&continue=");
        path.push_str(&crate::client::encode_query(n));
    }
    client.get(&path)
}

/// `get`.
pub fn get(client: &Client, args: GetArgs) -> Result<u8, CliError> {
    match args.kind {
        Kind::Observed => {
            let o: serde_json::Value = client.get("/v1/observed")?;
            let output = match args.output {
                ListOutput::Yaml => ListOutput::Yaml,
                _ => ListOutput::Json,
            };
            print_structured(&o, output);
        }
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
            let mut next = None;
            let list: Vec<ServiceView> = match (&args.name, args.limit) {
                (Some(n), _) => vec![client.get(&format!("/v1/services/{n}"))?],
                (None, Some(limit)) => {
                    let page = service_page(client, limit as usize, args.next.as_deref())?;
                    if matches!(args.output, ListOutput::Json | ListOutput::Yaml) {
                        print_structured(&page, args.output);
                        return Ok(0);
                    }
                    next = page.next;
                    page.items
                }
                (None, None) => {
                    // In pages, so no one request holds the server long.
                    let mut all = Vec::new();
                    let mut token: Option<String> = None;
                    loop {
                        let page = service_page(client, CHUNK, token.as_deref())?;
                        all.extend(page.items);
                        match page.next {
                            Some(t) if token.as_ref() != Some(&t) => token = Some(t),
                            _ => break,
                        }
                    }
                    all
                }
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
            if let (Some(token), Some(limit)) = (next, args.limit) {
                eprintln!("More services: clusvc get services --limit {limit} --continue {token}");
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
            // LEASE AGE: how long it has held its lease (alive), or how
            // long ago the lease expired (dead). SCRIPTS: how many of the
            // scripts the services name its agent has ("-": no agent
            // report, e.g. the member of `clusvc run`).
            let wide = args.output == ListOutput::Wide;
            let mut header = vec![
                "NAME",
                "STATE",
                "SERVICES",
                "LEASE AGE",
                "SCRIPTS",
                "VERSION",
            ];
            if wide {
                header.push("ADDRESS");
            }
            let mut t = table(&header);
            for m in &list {
                let lease = match (m.observed.alive, m.observed.alive_since) {
                    (true, Some(since)) => crate::output::age(Some(since)),
                    (false, Some(_)) | (false, None) => match m.observed.lease_expired_at {
                        Some(at) => format!("expired {} ago", crate::output::age(Some(at))),
                        None => "-".to_string(),
                    },
                    (true, None) => "-".to_string(),
                };
                let (scripts, version) = match &m.observed.inventory {
                    Some(inv) => {
                        let have = inv.scripts.values().filter(|c| c.is_some()).count();
                        (format!("{have}/{}", inv.scripts.len()), inv.version.clone())
                    }
                    None => ("-".to_string(), "-".to_string()),
                };
                let mut row = vec![
                    m.name.clone(),
                    m.state.to_string(),
                    m.services.to_string(),
                    lease,
                    scripts,
                    version,
                ];
                if wide {
                    row.push(m.desired.spec.address.clone().unwrap_or_default());
                }
                t.add_row(row);
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
