//! The console's HTML, rendered on the server with maud (which escapes
//! every value it inserts). Names are wrapped in `<bdi>` so a right-to-left
//! mark in one cannot reorder the text around it. States are words, not
//! only colours.

use std::collections::BTreeMap;

use maud::{DOCTYPE, Markup, html};

use clusvc_core::api::{MemberView, SyncStatus};
use clusvc_core::model::Timestamp;
use clusvc_core::model::event::Event;

use super::form::{KINDS, Problem, rows_of};
use super::session::Session;

/// The page around every view.
pub(crate) fn layout(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(s) = session {
                    meta name="csrf-token" content=(s.csrf);
                }
                title { (title) " - clusvc" }
                link rel="stylesheet" href="/ui/assets/console.css";
                link rel="icon" href="/ui/assets/favicon.svg" type="image/svg+xml";
                script src="/ui/assets/console.js" defer {}
            }
            body {
                header {
                    nav aria-label="Main" {
                        a href="/ui/" class="brand" { "clusvc" }
                        @if let Some(s) = session {
                            a href="/ui/" { "Overview" }
                            a href="/ui/events" { "Events" }
                            @if s.admin() {
                                a href="/ui/new" { "New service" }
                            } @else {
                                span class="role" { "read-only" }
                            }
                            form method="post" action="/ui/logout" class="logout" {
                                input type="hidden" name="_csrf" value=(s.csrf);
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main id="main" { (body) }
            }
        }
    }
}

/// The login form.
pub(crate) fn login(error: Option<&str>) -> Markup {
    layout(
        "Log in",
        None,
        html! {
            h1 { "Log in" }
            p { "Paste the daemon's API token (" code { "STATE-DIR/token" } ", or the file given with " code { "--token-file" } "), or its read-only token (" code { "--read-token-file" } ")." }
            @if let Some(e) = error {
                p class="error" role="alert" { (e) }
            }
            form method="post" action="/ui/login" {
                label for="token" { "Token" }
                input id="token" name="token" type="password" autocomplete="current-password" required autofocus;
                button type="submit" { "Log in" }
            }
        },
    )
}

/// Untrusted text (script output, messages) with its invisible
/// direction controls shown as `<U+202E>`: a right-to-left override in a
/// script's output cannot reverse what follows it on the page.
pub(crate) fn visible(s: &str) -> std::borrow::Cow<'_, str> {
    let control = |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !s.chars().any(control) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| {
                if control(c) {
                    format!("<U+{:04X}>", c as u32)
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// A timestamp as an age (`12s`, `5m`, `3h`, `2d`), with the exact time
/// in its title.
pub(crate) fn ago(t: Option<Timestamp>, now: Timestamp) -> Markup {
    let Some(t) = t else {
        return html! { span { "-" } };
    };
    let s = now.as_millis().saturating_sub(t.as_millis()) / 1000;
    let text = if s < 120 {
        format!("{s}s")
    } else if s < 7200 {
        format!("{}m", s / 60)
    } else if s < 172_800 {
        format!("{}h", s / 3600)
    } else {
        format!("{}d", s / 86400)
    };
    let exact = serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    html! { time datetime=(exact) title=(exact) { (text) } }
}

/// A state word, styled by its class (and readable without colour).
pub(crate) fn state(word: &str) -> Markup {
    html! { span class={ "state state-" (word) } { (word) } }
}

/// One row of the services table.
pub(crate) struct Row {
    pub name: String,
    pub id: Option<u64>,
    pub state: &'static str,
    pub member: Option<String>,
    pub last_check: Option<Timestamp>,
    pub restarts: usize,
    pub created_at: Option<Timestamp>,
}

/// The overview's query: filter, sort, page.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub sort: String,
    /// The page asked for (a number from 1; anything else is the first).
    #[serde(default)]
    pub page: String,
}

impl ListQuery {
    /// The page index asked for, from 0.
    pub fn page_index(&self) -> usize {
        self.page.parse::<usize>().unwrap_or(1).saturating_sub(1)
    }

    fn href(&self, page: usize, sort: Option<&str>) -> String {
        let number = if page > 0 {
            (page + 1).to_string()
        } else {
            String::new()
        };
        let s = url_form(&[
            ("q", self.q.as_str()),
            ("state", self.state.as_str()),
            ("sort", sort.unwrap_or(&self.sort)),
            ("page", number.as_str()),
        ]);
        if s.is_empty() {
            "/ui/".to_string()
        } else {
            format!("/ui/?{s}")
        }
    }
}

/// `a=b&c=d`, percent-encoded.
pub(crate) fn url_form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes a path segment or query value.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The overview.
#[allow(clippy::too_many_arguments)]
pub(crate) fn overview(
    session: &Session,
    now: Timestamp,
    members: &[MemberView],
    counts: &BTreeMap<&'static str, usize>,
    total: usize,
    rows: &[Row],
    matched: usize,
    page_size: usize,
    page: usize,
    query: &ListQuery,
    sync: &SyncStatus,
    warnings: &[Event],
) -> Markup {
    let pages = matched.div_ceil(page_size).max(1);
    let sorts = [
        ("name", "Name"),
        ("id", "ID"),
        ("state", "State"),
        ("member", "Member"),
        ("lastCheck", "Last check"),
        ("restarts", "Restarts"),
        ("age", "Age"),
    ];
    layout(
        "Overview",
        Some(session),
        html! {
            h1 { "Cluster overview" }
            section id="counts" data-live aria-label="Services by state" {
                p {
                    a href="/ui/" { (total) " services" }
                    @for (word, n) in counts {
                        " · "
                        a href={ "/ui/?state=" (word) } { (state(word)) " " (n) }
                    }
                }
            }
            div class="columns" {
                section id="members" data-live aria-labelledby="members-h" {
                    h2 id="members-h" { "Members" }
                    table {
                        thead { tr { th scope="col" { "Name" } th scope="col" { "State" } th scope="col" { "Services" } th scope="col" { "Lease / fencing" } th scope="col" { "Scripts" } @if session.admin() { th scope="col" { "Actions" } } } }
                        tbody {
                            @for m in members {
                                tr {
                                    td { bdi { (m.name) } }
                                    td { (state(m.state.as_str())) }
                                    td { (m.services) }
                                    td {
                                        @if let Some(t) = m.observed.lease_expired_at { "lease expired " (ago(Some(t), now)) " ago" }
                                        @else if m.observed.alive {
                                            "lease held"
                                            @if let Some(t) = m.observed.alive_since { " for " (ago(Some(t), now)) }
                                        }
                                        @if m.observed.standby { "; standby" }
                                        @if let Some(t) = m.observed.fenced_at { "; fenced " (ago(Some(t), now)) " ago" }
                                        @if m.observed.fencing_failed { "; fencing failed" }
                                    }
                                    td {
                                        @match &m.observed.inventory {
                                            Some(inv) => {
                                                @let missing = inv.scripts.values().filter(|v| v.is_none()).count();
                                                (inv.scripts.len() - missing) " of " (inv.scripts.len())
                                                @if missing > 0 { " (" (missing) " missing)" }
                                            }
                                            None => { "local" }
                                        }
                                    }
                                    @if session.admin() {
                                        td {
                                            @let op = if m.observed.standby { "unstandby" } else { "standby" };
                                            a href={ "/ui/members/" (encode(&m.name)) "/" (op) } { (op) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                section id="sync" data-live aria-labelledby="sync-h" {
                    h2 id="sync-h" { "GitOps sync" }
                    @match &sync.dir {
                        None => { p { "No manifests directory is watched." } }
                        Some(dir) => { dl {
                            dt { "Directory" } dd { code { (dir) } }
                            dt { "Revision" } dd { (sync.revision.as_deref().unwrap_or("-")) }
                            dt { "Last good sync" } dd { (ago(sync.synced_at, now)) " ago, " (sync.objects) " objects" }
                            @if let Some(e) = &sync.error {
                                dt { "Error" } dd class="error" { pre { (visible(e)) } }
                            }
                        } }
                    }
                }
            }
            section id="warnings" data-live aria-labelledby="warnings-h" {
                h2 id="warnings-h" { "Recent warnings" }
                (events_list(warnings, now))
            }
            section aria-labelledby="services-h" {
                h2 id="services-h" { "Services" }
                form method="get" action="/ui/" class="filter" role="search" {
                    label for="q" { "Filter" }
                    input id="q" name="q" type="search" value=(query.q) placeholder="name or member";
                    label for="state-filter" { "State" }
                    select id="state-filter" name="state" {
                        option value="" { "any" }
                        @for word in counts.keys() {
                            option value=(word) selected[query.state == *word] { (word) }
                        }
                    }
                    input type="hidden" name="sort" value=(query.sort);
                    button type="submit" { "Apply filter" }
                }
                div id="services" data-live {
                    p class="muted" { (matched) " matching of " (total) "; page " (page + 1) " of " (pages) }
                    table class="services" {
                        thead {
                            tr {
                                @for (key, label) in sorts {
                                    th scope="col" aria-sort=(if query.sort == key || (query.sort.is_empty() && key == "name") { if matches!(key, "lastCheck" | "restarts") { "descending" } else { "ascending" } } else { "none" }) {
                                        a href=(query.href(0, Some(key))) { (label) }
                                    }
                                }
                            }
                        }
                        tbody {
                            @for r in rows {
                                tr {
                                    td { a href={ "/ui/services/" (encode(&r.name)) } { bdi { (r.name) } } }
                                    td { (r.id.map(|i| i.to_string()).unwrap_or_else(|| "-".into())) }
                                    td { (state(r.state)) }
                                    td { bdi { (r.member.as_deref().unwrap_or("-")) } }
                                    td { (ago(r.last_check, now)) }
                                    td { (r.restarts) }
                                    td { (ago(r.created_at, now)) }
                                }
                            }
                        }
                    }
                    nav aria-label="Pages" class="pages" {
                        @if page > 0 {
                            a href=(query.href(page - 1, None)) rel="prev" { "Previous" }
                        }
                        @if page + 1 < pages {
                            a href=(query.href(page + 1, None)) rel="next" { "Next" }
                        }
                    }
                }
            }
        },
    )
}

/// Events, newest first.
pub(crate) fn events_list(events: &[Event], now: Timestamp) -> Markup {
    html! {
        @if events.is_empty() {
            p class="muted" { "None." }
        } @else {
            ol class="events" reversed {
                @for e in events.iter().rev() {
                    li class={ "level-" (level(e)) } {
                        (ago(e.at, now)) " "
                        span class="level" { (level(e)) } " "
                        @if e.service.is_empty() {
                            "cluster: "
                        } @else {
                            a href={ "/ui/services/" (encode(&e.service)) } { bdi { (e.service) } } ": "
                        }
                        bdi class="message" { (visible(&e.message)) }
                    }
                }
            }
        }
    }
}

fn level(e: &Event) -> String {
    serde_json::to_value(e.level)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The events page.
pub(crate) fn events_page(
    session: &Session,
    events: &[Event],
    now: Timestamp,
    service: &str,
    worst: &str,
) -> Markup {
    let levels = [
        ("", "any"),
        ("err", "errors and worse"),
        ("warning", "warnings and worse"),
        ("notice", "notices and worse"),
    ];
    layout(
        "Events",
        Some(session),
        html! {
            h1 { "Events" }
            form method="get" action="/ui/events" class="filter" {
                label for="service" { "Service" }
                input id="service" name="service" type="search" value=(service);
                label for="level" { "Severity" }
                select id="level" name="level" {
                    @for (v, l) in levels {
                        option value=(v) selected[worst == v] { (l) }
                    }
                }
                button type="submit" { "Filter" }
            }
            section id="events" data-live aria-live="polite" {
                (events_list(events, now))
            }
        },
    )
}

/// What the service page shows.
pub(crate) struct ServicePage<'a> {
    pub name: &'a str,
    pub state: &'static str,
    pub view: &'a clusvc_core::api::ServiceView,
    pub resources: Vec<(String, String)>,
    pub eligible: Vec<(String, String)>,
    pub plan: String,
    pub events: &'a [Event],
    pub yaml: String,
    /// The manifests file that owns it (read-only here).
    pub gitops: Option<String>,
    /// Why the form does not edit it.
    pub not_editable: Option<String>,
    pub members: Vec<String>,
}

/// A service.
pub(crate) fn service(session: &Session, p: &ServicePage<'_>, now: Timestamp) -> Markup {
    let v = p.view;
    let o = v.observed.as_ref();
    // Only the operations that apply now (a read-only session sees none).
    let frozen = o.is_some_and(|o| o.frozen);
    let enabled = v.desired.as_ref().is_some_and(|d| d.spec.enabled);
    let failed = o.is_some_and(|o| o.failure.is_some()) || matches!(p.state, "failed" | "blocked");
    let mut ops: Vec<&str> = Vec::new();
    if p.gitops.is_none() {
        ops.push(if enabled { "disable" } else { "enable" });
    }
    if p.state == "running" {
        ops.push("restart");
    }
    ops.push(if frozen { "unfreeze" } else { "freeze" });
    if failed {
        ops.push("clear");
    }
    let relocate = p.state == "running" && p.members.len() > 1;
    layout(
        p.name,
        Some(session),
        html! {
            h1 { "Service " bdi { (p.name) } }
            section id="status" data-live aria-label="Status" {
                dl class="facts" {
                    dt { "State" } dd { (state(p.state)) }
                    dt { "Member" } dd { bdi { (v.member.as_deref().unwrap_or("-")) } }
                    dt { "ID" } dd { (v.id.map(|i| i.to_string()).unwrap_or_else(|| "-".into())) }
                    dt { "Last check" } dd { (ago(v.last_check, now)) }
                    dt { "Restarts" } dd { (v.restarts) }
                    @if let Some(f) = o.and_then(|o| o.failure.as_ref()) {
                        dt { "Failure" } dd class="error" { bdi { (visible(&f.resource)) ": " (visible(&f.reason)) } }
                    }
                    @if let Some(i) = &v.invalid {
                        dt { "Invalid" } dd class="error" { bdi { (visible(i)) } }
                    }
                }
            }
            @if let Some(file) = &p.gitops {
                p class="notice" role="note" { "Managed by " code { (file) } ": read-only here; change it there." }
            } @else if let Some(why) = &p.not_editable {
                p class="notice" role="note" { "Not editable here: " (why) "." }
            }
            @if session.admin() {
                section id="ops" data-live aria-labelledby="ops-h" {
                    h2 id="ops-h" { "Operations" }
                    div class="ops" {
                        @for op in &ops {
                            a class="button" href={ "/ui/services/" (encode(p.name)) "/ops/" (op) } { (op) }
                        }
                        @if relocate {
                            form method="get" action={ "/ui/services/" (encode(p.name)) "/ops/relocate" } class="inline" {
                                label for="to" { "Relocate to" }
                                select id="to" name="to" {
                                    option value="" { "the best other member" }
                                    @for m in &p.members {
                                        @if v.member.as_deref() != Some(m.as_str()) {
                                            option value=(m) { (m) }
                                        }
                                    }
                                }
                                button type="submit" { "relocate" }
                            }
                        }
                        @if p.not_editable.is_none() {
                            a class="button" href={ "/ui/services/" (encode(p.name)) "/edit" } { "edit" }
                        }
                    }
                }
            }
            section id="resources" data-live aria-labelledby="res-h" {
                h2 id="res-h" { "Resources, in start order" }
                @if p.resources.is_empty() {
                    p class="muted" { "None." }
                } @else {
                    table {
                        thead { tr { th scope="col" { "#" } th scope="col" { "Resource" } th scope="col" { "Status" } } }
                        tbody {
                            @for (i, (label, status)) in p.resources.iter().enumerate() {
                                tr { td { (i + 1) } td { code { (label) } } td { (state(status)) } }
                            }
                        }
                    }
                }
            }
            section id="placement" data-live aria-labelledby="pl-h" {
                h2 id="pl-h" { "Placement" }
                p { "Why here: " (o.and_then(|o| o.placement_reason.as_ref()).map(|r| r.to_string()).unwrap_or_else(|| "-".into())) }
                @if p.eligible.is_empty() {
                    p { "Any member." }
                } @else {
                    ol class="eligible" {
                        @for (m, s) in &p.eligible {
                            li { bdi { (m) } " " (state(s)) }
                        }
                    }
                }
                h3 { "Restarts on this member" }
                @match o.map(|o| &o.restarts) {
                    Some(r) if !r.is_empty() => { ol { @for t in r { li { (ago(Some(*t), now)) " ago" } } } }
                    _ => { p class="muted" { "None." } }
                }
            }
            section id="plan" data-live aria-labelledby="plan-h" {
                h2 id="plan-h" { "Plan now" }
                pre { (p.plan) }
            }
            section id="events" data-live aria-labelledby="ev-h" {
                h2 id="ev-h" { "Events" }
                (events_list(p.events, now))
            }
            section aria-labelledby="spec-h" {
                h2 id="spec-h" { "Manifest" }
                pre class="yaml" { (p.yaml) }
            }
        },
    )
}

/// A confirmation: what the operation would do, then the button.
pub(crate) fn confirm(
    session: &Session,
    what: &str,
    back: &str,
    action: &str,
    plan: &str,
    hidden: &[(&str, &str)],
    error: Option<&str>,
) -> Markup {
    let what = visible(what);
    layout(
        &what,
        Some(session),
        html! {
            h1 { (what) }
            @if let Some(e) = error {
                p class="error" role="alert" { (e) }
            }
            h2 { "The plan" }
            pre class="plan" { (plan) }
            form method="post" action=(action) {
                input type="hidden" name="_csrf" value=(session.csrf);
                @for (k, v) in hidden {
                    input type="hidden" name=(k) value=(v);
                }
                button type="submit" class="primary" { "Confirm: " (what) }
                " "
                a href=(back) { "Cancel" }
            }
        },
    )
}

/// An error page.
pub(crate) fn error(session: Option<&Session>, title: &str, message: &str) -> Markup {
    layout(
        title,
        session,
        html! {
            h1 { (title) }
            p class="error" role="alert" { (visible(message)) }
            p { a href="/ui/" { "Back to the overview" } }
        },
    )
}

/// The service form.
pub(crate) fn form(
    session: &Session,
    title: &str,
    fields: &BTreeMap<String, String>,
    problems: &[Problem],
    yaml: &str,
    read_only: Option<&str>,
    new: bool,
) -> Markup {
    let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
    let msg = |k: &str| -> Markup {
        let text: Vec<&str> = problems
            .iter()
            .filter(|p| p.path == k)
            .map(|p| p.message.as_str())
            .collect();
        html! { p class="field-error" data-for=(k) id={ "err-" (k) } aria-live="polite" { (text.join("; ")) } }
    };
    let input = |k: &str, label: &str, hint: &str| -> Markup {
        html! {
            div class="field" {
                label for=(k) { (label) }
                input id=(k) name=(k) type="text" value=(get(k)) placeholder=(hint) aria-describedby={ "err-" (k) } readonly[!new && k == "metadata.name"];
                (msg(k))
            }
        }
    };
    let check = |k: &str, label: &str| -> Markup {
        html! {
            div class="field check" {
                input id=(k) name=(k) type="checkbox" checked[!get(k).is_empty()] aria-describedby={ "err-" (k) };
                label for=(k) { (label) }
            }
            (msg(k))
        }
    };
    // Every path the page has a place for; other problems go on top.
    let mut slots: Vec<String> = [
        "metadata.name",
        "spec.enabled",
        "spec.checkInterval",
        "spec.timeout",
        "spec.recovery",
        "spec.recovery.policy",
        "spec.recovery.maxRestarts",
        "spec.recovery.restartWindow",
        "spec.placement",
        "spec.placement.members",
        "spec.placement.ordered",
        "spec.placement.restricted",
        "spec.placement.failback",
    ]
    .map(String::from)
    .to_vec();
    for (kind, _, cols) in KINDS {
        for i in 0..rows_of(fields, kind) {
            slots.push(format!("spec.{kind}[{i}]"));
            slots.extend(cols.iter().map(|(c, _, _)| format!("spec.{kind}[{i}].{c}")));
        }
    }
    let general: Vec<&Problem> = problems
        .iter()
        .filter(|p| !slots.contains(&p.path))
        .collect();
    layout(
        title,
        Some(session),
        html! {
            h1 { (title) }
            @if let Some(why) = read_only {
                p class="notice" role="note" { "Read-only here: " (why) "." }
            }
            div id="form-errors" role="alert" {
                @for p in &general {
                    p class="error" { @if !p.path.is_empty() { code { (p.path) } ": " } (p.message) }
                }
            }
            form id="service-form" method="post" action="/ui/form/apply" {
                input type="hidden" name="_csrf" value=(session.csrf);
                input type="hidden" name="_new" value=(if new { "1" } else { "" });
                @for (k, v) in fields {
                    @if k.starts_with("metadata.labels.") || k.starts_with("metadata.annotations.") {
                        input type="hidden" name=(k) value=(v);
                    }
                }
                fieldset disabled[read_only.is_some()] {
                    legend { "Service" }
                    (input("metadata.name", "Name", "web"))
                    div class="field" {
                        label for="spec.enabled" { "Enabled" }
                        select id="spec.enabled" name="spec.enabled" {
                            option value="true" selected[get("spec.enabled") != "false"] { "yes" }
                            option value="false" selected[get("spec.enabled") == "false"] { "no" }
                        }
                        (msg("spec.enabled"))
                    }
                    (input("spec.checkInterval", "Check interval", "30s"))
                    (input("spec.timeout", "Timeout (per action)", "60s"))
                    div class="field" {
                        label for="spec.recovery.policy" { "Recovery" }
                        select id="spec.recovery.policy" name="spec.recovery.policy" {
                            @for p in ["restart", "relocate", "disable"] {
                                option value=(p) selected[get("spec.recovery.policy") == p] { (p) }
                            }
                        }
                        (msg("spec.recovery.policy"))
                    }
                    (input("spec.recovery.maxRestarts", "Max restarts", "3"))
                    (input("spec.recovery.restartWindow", "Restart window", "10m"))
                    (input("spec.placement.members", "Members (in preference order, comma-separated)", "node1, node2"))
                    (check("spec.placement.ordered", "Ordered (prefer the first member listed)"))
                    (check("spec.placement.restricted", "Restricted (only the members listed)"))
                    (check("spec.placement.failback", "Failback (return to a preferred member)"))
                    (msg("spec.placement"))
                    (msg("spec.recovery"))
                }
                @for (kind, label, cols) in KINDS {
                    fieldset class="rows" data-kind=(kind) disabled[read_only.is_some()] {
                        legend { (label) }
                        @for i in 0..rows_of(fields, kind) {
                            (row(kind, cols, i, fields, problems))
                        }
                        template { (row(kind, cols, usize::MAX, fields, problems)) }
                        button type="button" class="add-row" data-kind=(kind) { "Add " (label.to_lowercase()) " row" }
                    }
                }
                @if read_only.is_none() {
                    div class="actions" {
                        button type="button" id="preview" { "Preview" }
                        button type="submit" class="primary" id="apply" { "Apply" }
                    }
                }
            }
            section aria-labelledby="preview-h" {
                h2 id="preview-h" { "Plan preview" }
                pre id="plan-preview" aria-live="polite" { "Press Preview to see the plan." }
            }
            section aria-labelledby="yaml-h" {
                h2 id="yaml-h" { "Manifest (for a GitOps repository)" }
                pre id="yaml" class="yaml" { (yaml) }
            }
        },
    )
}

/// One row of a resource kind; `usize::MAX` is the template row
/// (`__i__` replaced by the script).
fn row(
    kind: &str,
    cols: &[super::form::Column],
    i: usize,
    fields: &BTreeMap<String, String>,
    problems: &[Problem],
) -> Markup {
    let idx = if i == usize::MAX {
        "__i__".to_string()
    } else {
        i.to_string()
    };
    let row_path = format!("spec.{kind}[{idx}]");
    let row_msgs: Vec<&str> = problems
        .iter()
        .filter(|p| p.path == row_path)
        .map(|p| p.message.as_str())
        .collect();
    html! {
        div class="row" {
            @for (col, label, _) in cols {
                @let k = format!("spec.{kind}[{idx}].{col}");
                @let msgs: Vec<&str> = problems.iter().filter(|p| p.path == k).map(|p| p.message.as_str()).collect();
                div class="field" {
                    label for=(k) { (label) " " span class="visually-hidden" { "(row " (idx) ")" } }
                    input id=(k) name=(k) type="text" value=(fields.get(&k).map(String::as_str).unwrap_or("")) aria-describedby={ "err-" (k) };
                    p class="field-error" data-for=(k) id={ "err-" (k) } aria-live="polite" { (msgs.join("; ")) }
                }
            }
            p class="field-error" data-for=(row_path) { (row_msgs.join("; ")) }
        }
    }
}
