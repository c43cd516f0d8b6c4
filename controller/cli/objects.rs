//! Client commands: apply, diff, get, describe, delete, the operations,
//! create, events.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use comfy_table::{Table, presets};

use crate::manifest::{self, Options};
use crate::model::event::Event;
use crate::model::{Application, Service, Timestamp};
use crate::server::apply::{ApplyRequest, ApplyResponse};
use crate::server::gitops::SyncStatus;
use crate::server::{MemberView, ServiceView};

use super::client::Client;
use super::{EXIT_CHANGES, Failure, Files};

/// Output formats of listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListOutput {
    /// A table.
    Table,
    /// A table with more columns.
    Wide,
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

fn load(files: &Files) -> Result<manifest::Loaded, Failure> {
    manifest::load_paths(&files.files, Options::default()).map_err(|e| {
        Failure::bad_input(format!(
            "{e}\nerror: the input is invalid; nothing was applied"
        ))
    })
}

/// Arguments of `apply`.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    files: Files,
    /// Delete objects previously applied with `apply` that are not in the input.
    #[arg(long)]
    prune: bool,
    /// Validate on the server and report; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Take over objects managed by a manifests directory.
    #[arg(long)]
    force: bool,
    /// Wait until the cluster has reconciled the change.
    #[arg(long)]
    wait: bool,
    /// Longest wait.
    #[arg(long, default_value = "5m")]
    timeout: crate::model::Duration,
}

/// `apply`.
pub fn apply(client: &Client, args: ApplyArgs) -> Result<u8, Failure> {
    let loaded = load(&args.files)?;
    let req = ApplyRequest {
        members: loaded.desired.members().values().cloned().collect(),
        services: loaded.desired.services().values().cloned().collect(),
        source: "apply".into(),
        prune: args.prune,
        dry_run: args.dry_run,
        force: args.force,
    };
    let resp: ApplyResponse = client.post("/v1/apply", &req)?;
    let suffix = if args.dry_run {
        " (server dry run)"
    } else {
        ""
    };
    for o in &resp.objects {
        println!("{}/{} {}{suffix}", o.kind, o.name, o.result);
    }
    if args.wait && !args.dry_run {
        wait_reconciled(client, resp.revision, args.timeout.get())?;
    }
    Ok(0)
}

/// Polls the live plan until it has no changes and nothing is in transition.
fn wait_reconciled(client: &Client, revision: u64, limit: Duration) -> Result<(), Failure> {
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let plan: serde_json::Value = client.post("/v1/plan", &serde_json::json!({}))?;
        let services: Vec<ServiceView> = client.get("/v1/services")?;
        let busy: Vec<&ServiceView> = services
            .iter()
            .filter(|s| matches!(s.state.as_str(), "starting" | "stopping" | "relocating"))
            .collect();
        let changes = plan["changes"].as_bool().unwrap_or(true);
        let caught_up = plan["revision"].as_u64().unwrap_or(0) >= revision;
        if caught_up && !changes && busy.is_empty() {
            if tty {
                eprintln!(
                    "\rreconciled in {:.1}s{:30}",
                    started.elapsed().as_secs_f64(),
                    ""
                );
            } else {
                eprintln!("reconciled in {:.1}s", started.elapsed().as_secs_f64());
            }
            return Ok(());
        }
        let pending = plan["plan"]["services"]
            .as_array()
            .map(|a| a.iter().filter(|s| s["action"]["type"] != "hold").count())
            .unwrap_or(0);
        let line = format!("waiting: {pending} planned, {} in progress", busy.len());
        if tty {
            eprint!("\r{line:60}");
        } else if line != last {
            eprintln!("{line}");
        }
        last = line;
        if started.elapsed() > limit {
            return Err(Failure {
                code: 1,
                message: format!(
                    "\nerror: not reconciled after {}",
                    crate::model::Duration::from(limit)
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `diff -f`: live desired objects against the input; exit 1 when they differ.
pub fn diff(client: &Client, files: Files) -> Result<u8, Failure> {
    let loaded = load(&files)?;
    let live_services: Vec<ServiceView> = client.get("/v1/services")?;
    let live_members: Vec<MemberView> = client.get("/v1/members")?;
    let strip = |mut v: serde_json::Value| {
        if let Some(meta) = v.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            let empty = meta
                .get_mut("annotations")
                .and_then(|a| a.as_object_mut())
                .map(|a| {
                    a.remove(crate::controller::keys::SOURCE_ANNOTATION);
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

/// What `get` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Services.
    #[value(alias = "service", alias = "svc")]
    Services,
    /// Members.
    #[value(alias = "member")]
    Members,
    /// The GitOps sync status.
    Sync,
}

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

fn age(t: Option<Timestamp>) -> String {
    let Some(t) = t else {
        return "<unknown>".into();
    };
    let now = Timestamp::from_system(SystemTime::now());
    let secs = now.as_millis().saturating_sub(t.as_millis()) / 1000;
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn print_structured<T: serde::Serialize>(v: &T, output: ListOutput) {
    match output {
        ListOutput::Json => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
        _ => print!("{}", serde_saphyr::to_string(v).unwrap_or_default()),
    }
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header(header.to_vec());
    t
}

/// `get`.
pub fn get(client: &Client, args: GetArgs) -> Result<u8, Failure> {
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
                println!("{t}");
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
                header.extend(["RESOURCES", "SOURCE", "REASON"]);
            }
            let mut t = table(&header);
            for s in &list {
                let mut row = vec![
                    s.name.clone(),
                    s.id.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
                    s.state.clone(),
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
                println!("{t}");
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
                    m.state.clone(),
                    m.services.to_string(),
                    m.desired.spec.address.clone().unwrap_or_default(),
                ]);
            }
            println!("{t}");
        }
    }
    Ok(0)
}

/// Arguments of `describe`.
#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    /// service or member.
    kind: Kind,
    /// The name.
    name: String,
}

/// `describe`.
pub fn describe(client: &Client, args: DescribeArgs) -> Result<u8, Failure> {
    match args.kind {
        Kind::Services => {
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
                    println!("Placed by:   {r:?}");
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
        Kind::Members | Kind::Sync => {
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

fn read_events(
    client: &Client,
    service: Option<&str>,
    limit: usize,
) -> Result<Vec<Event>, Failure> {
    let path = match service {
        Some(s) => format!("/v1/events?service={s}&limit={limit}"),
        None => format!("/v1/events?limit={limit}"),
    };
    let mut out = Vec::new();
    client.stream_lines(&path, |line| {
        if let Ok(e) = serde_json::from_str::<Event>(line) {
            out.push(e);
        }
        true
    })?;
    Ok(out)
}

/// Arguments of `delete`.
#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// service or member (or use -f).
    kind: Option<Kind>,
    /// The name.
    name: Option<String>,
    /// Delete the objects these manifests declare.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    files: Vec<PathBuf>,
}

/// `delete`.
pub fn delete(client: &Client, args: DeleteArgs) -> Result<u8, Failure> {
    let mut targets: Vec<(String, String)> = Vec::new();
    if !args.files.is_empty() {
        let loaded = load(&Files { files: args.files })?;
        targets.extend(
            loaded
                .desired
                .services()
                .keys()
                .map(|n| ("services".to_string(), n.clone())),
        );
        targets.extend(
            loaded
                .desired
                .members()
                .keys()
                .map(|n| ("members".to_string(), n.clone())),
        );
    }
    match (args.kind, args.name) {
        (Some(Kind::Services), Some(n)) => targets.push(("services".into(), n)),
        (Some(Kind::Members), Some(n)) => targets.push(("members".into(), n)),
        (None, None) => {}
        _ => {
            return Err(Failure::bad_input(
                "error: use `delete service|member NAME` or `delete -f PATH`",
            ));
        }
    }
    for (kind, name) in targets {
        let _: serde_json::Value = client.delete(&format!("/v1/objects/{kind}/{name}"))?;
        println!("{}/{name} deleted", kind.trim_end_matches('s'));
    }
    Ok(0)
}

/// Arguments of the service operations.
#[derive(Debug, clap::Args)]
pub struct OpArgs {
    /// The service.
    service: String,
    /// With `relocate`: the member to move to.
    #[arg(long)]
    to: Option<String>,
}

/// relocate, enable, disable, restart, freeze, unfreeze, clear.
pub fn operate(client: &Client, op: &str, args: OpArgs) -> Result<u8, Failure> {
    let _: serde_json::Value = client.post(
        &format!("/v1/services/{}/ops/{op}", args.service),
        &serde_json::json!({"to": args.to}),
    )?;
    let past = match op {
        "relocate" => "relocation requested",
        "restart" => "restart requested",
        "enable" => "enabled",
        "disable" => "disabled",
        "freeze" => "frozen",
        "unfreeze" => "unfrozen",
        "clear" => "cleared",
        other => other,
    };
    println!("service/{} {past}", args.service);
    Ok(0)
}

/// Arguments of `create service`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Always `service`.
    #[arg(value_parser = ["service"])]
    kind: String,
    /// The service name.
    name: String,
    /// A seed-style user script.
    #[arg(long)]
    userscript: PathBuf,
    /// Status check interval.
    #[arg(long)]
    check_interval: Option<crate::model::Duration>,
    /// Limit for one action.
    #[arg(long)]
    timeout: Option<crate::model::Duration>,
    /// Print the manifest instead of creating it.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format with --dry-run.
    #[arg(short = 'o', long, value_enum, default_value_t = ListOutput::Yaml)]
    output: ListOutput,
}

/// `create service` (the seed's `--add_service`).
pub fn create(client: Option<&Client>, args: CreateArgs) -> Result<u8, Failure> {
    let script = std::path::absolute(&args.userscript).unwrap_or(args.userscript.clone());
    let mut svc = Service::new(&args.name);
    if let Some(c) = args.check_interval {
        svc.spec.check_interval = c;
    }
    if let Some(t) = args.timeout {
        svc.spec.timeout = t;
    }
    svc.spec.applications.push(Application {
        script: Some(script.display().to_string()),
        ..Application::default()
    });
    let text = serde_saphyr::to_string(&svc).unwrap_or_default();
    let input = manifest::Input::new("<create>", text.clone());
    manifest::load(&[input], Options::default())
        .map_err(|e| Failure::bad_input(format!("{e}\nerror: the service is invalid")))?;
    if args.dry_run {
        match args.output {
            ListOutput::Json => {
                println!("{}", serde_json::to_string_pretty(&svc).unwrap_or_default())
            }
            _ => print!("{text}"),
        }
        return Ok(0);
    }
    let client = client.expect("a client when not a dry run");
    let resp: ApplyResponse = client.post(
        "/v1/apply",
        &ApplyRequest {
            services: vec![svc],
            source: "apply".into(),
            ..ApplyRequest::default()
        },
    )?;
    for o in resp.objects {
        println!("{}/{} {}", o.kind, o.name, o.result);
    }
    Ok(0)
}

/// Arguments of `events`.
#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Only this service's events.
    service: Option<String>,
    /// Keep printing new events.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = ListOutput::Table)]
    output: ListOutput,
}

/// `events`.
pub fn events(client: &Client, args: EventsArgs) -> Result<u8, Failure> {
    let mut path = format!("/v1/events?follow={}", args.follow);
    if let Some(s) = &args.service {
        path.push_str(&format!("&service={s}"));
    }
    client.stream_lines(&path, |line| {
        match (args.output, serde_json::from_str::<Event>(line)) {
            (ListOutput::Json, _) => println!("{line}"),
            (_, Ok(e)) => println!(
                "{}  {:7}  {}  {}{}",
                e.at.map(|t| t.to_string()).unwrap_or_default(),
                format!("{:?}", e.level).to_lowercase(),
                if e.service.is_empty() {
                    "cluster".to_string()
                } else {
                    format!("service/{}", e.service)
                },
                if e.resource.is_empty() {
                    String::new()
                } else {
                    format!("{}: ", e.resource)
                },
                e.message.replace('\n', "\n    ")
            ),
            (_, Err(_)) => {}
        }
        true
    })?;
    Ok(0)
}
