//! The web console, `/ui/` on the daemon's TCP listener (`clusvc run
//! --listen`, `clusvc server`): server-rendered pages ([`pages`], maud), one
//! small script and one style sheet embedded in the binary, live updates
//! over Server-Sent Events from the controller's event stream.
//!
//! Security is the API's: a login with the API token (everything) or the
//! read token (read only) opens a [`session`]; every state-changing request
//! carries the session's CSRF token and must come from the console's own
//! origin; every action goes through the same code as the API route it
//! mirrors (apply, plan, operations, standby), so validation messages,
//! ownership rules and refusals are the same.

mod form;
mod pages;
pub(crate) mod session;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::Markup;

use clusvc_core::api::{
    ApplyRequest, DisplayState, GITOPS_SOURCE_PREFIX, MANIFEST_ANNOTATION, PlanRequest,
    SOURCE_ANNOTATION,
};
use clusvc_core::model::event::Level;
use clusvc_core::model::{ObservedService, RelocateRequest, Timestamp};
use clusvc_core::plan;
use clusvc_store::Store;

use crate::api::access::Identity;
use crate::api::{ApiJson, App};
use session::{Role, Session, Sessions};

/// Rows of the services table per page.
const PAGE: usize = 100;

/// Form bodies are small.
const MAX_FORM: usize = 1 << 20;

struct Ui<S: Store> {
    app: Arc<App<S>>,
    /// Served over TLS: cookies are `Secure`.
    secure: bool,
    /// Refusals are logged at most every 10 s per kind, with a count:
    /// wrong logins, cross-site posts, posts without the CSRF token.
    refused_logins: Throttle,
    refused_cross_site: Throttle,
    refused_csrf: Throttle,
}

impl<S: Store> Ui<S> {
    fn sessions(&self) -> &Sessions {
        &self.app.policy.sessions
    }
}

/// Logs a kind of line at most every 10 s, saying how many were held back
/// (a flood of wrong logins or cross-site posts does not flood the log).
#[derive(Default)]
struct Throttle {
    state: std::sync::Mutex<(Option<std::time::Instant>, u64)>,
}

impl Throttle {
    fn note(&self, what: &str) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.1 += 1;
        if s.0.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            tracing::info!(
                "console: refused {what} ({} refusals in the last 10 s)",
                s.1
            );
            *s = (Some(std::time::Instant::now()), 0);
        }
    }
}

type Shared<S> = State<Arc<Ui<S>>>;

/// The console's routes (outside the API's bearer-token middleware: the
/// console has its own sessions).
pub(crate) fn router<S: Store>(app: Arc<App<S>>, secure: bool) -> Router {
    let ui = Arc::new(Ui {
        app,
        secure,
        refused_logins: Throttle::default(),
        refused_cross_site: Throttle::default(),
        refused_csrf: Throttle::default(),
    });
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(overview::<S>))
        .route("/ui/login", get(login_page).post(login::<S>))
        .route("/ui/logout", post(logout::<S>))
        .route("/ui/events", get(events_page::<S>))
        .route("/ui/stream", get(stream::<S>))
        .route("/ui/new", get(new_form))
        .route("/ui/services/{name}", get(service_page::<S>))
        .route("/ui/services/{name}/edit", get(edit_form::<S>))
        .route(
            "/ui/services/{name}/ops/{op}",
            get(op_confirm::<S>).post(op_do::<S>),
        )
        .route(
            "/ui/members/{name}/{op}",
            get(member_confirm::<S>).post(member_do::<S>),
        )
        .route("/ui/form/check", post(form_check::<S>))
        .route("/ui/form/preview", post(form_preview::<S>))
        .route("/ui/form/apply", post(form_apply::<S>))
        .route("/ui/assets/{file}", get(asset))
        .route("/ui/{*rest}", get(no_page).post(no_page))
        .layer(middleware::from_fn_with_state(ui.clone(), guard::<S>))
        .layer(DefaultBodyLimit::max(MAX_FORM))
        .with_state(ui)
}

fn now() -> Timestamp {
    Timestamp::from_system(SystemTime::now())
}

fn page(status: StatusCode, m: Markup) -> Response {
    (status, Html(m.into_string())).into_response()
}

/// Whether a request comes from the console's own pages: browsers send
/// `Sec-Fetch-Site` and `Origin` on cross-site requests, and the console
/// refuses both unless they name this origin.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            origin
                .split_once("://")
                .is_some_and(|(_, rest)| !host.is_empty() && rest == host)
        }
    }
}

/// `application/x-www-form-urlencoded` pairs.
fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    fn decode(s: &[u8]) -> String {
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            match s[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < s.len() => {
                    let hex = std::str::from_utf8(&s[i + 1..i + 3])
                        .ok()
                        .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
                    match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut it = p.splitn(2, |b| *b == b'=');
            let k = decode(it.next().unwrap_or_default());
            let v = decode(it.next().unwrap_or_default());
            (k, v)
        })
        .collect()
}

/// The middleware: a session for every page but the login and the
/// assets; for every `POST`, the console's own origin and (with a
/// session) its CSRF token, in the form's `_csrf` field or the
/// `X-CSRF-Token` header. Every answer carries the console's security
/// headers.
async fn guard<S: Store>(State(ui): Shared<S>, request: Request, next: Next) -> Response {
    let mut response = check(&ui, request, next).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn check<S: Store>(ui: &Ui<S>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let post = request.method() == Method::POST;
    if post && !same_origin(request.headers()) {
        ui.refused_cross_site
            .note(&format!("a cross-site POST (last: {path})"));
        return page(
            StatusCode::FORBIDDEN,
            pages::error(None, "Refused", "cross-site request refused"),
        );
    }
    if path == "/ui/login" || path.starts_with("/ui/assets/") || path == "/ui" {
        return next.run(request).await;
    }
    let Some(session) = ui.sessions().of(request.headers()) else {
        if post || path == "/ui/stream" {
            return page(
                StatusCode::UNAUTHORIZED,
                pages::error(None, "Logged out", "log in again"),
            );
        }
        return Redirect::to("/ui/login").into_response();
    };
    let mut request = request;
    if post {
        let header_token = request
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
            return page(
                StatusCode::PAYLOAD_TOO_LARGE,
                pages::error(Some(&session), "Too large", "the form is too large"),
            );
        };
        let form_token = parse_form(&bytes)
            .into_iter()
            .find(|(k, _)| k == "_csrf")
            .map(|(_, v)| v);
        let given = header_token.or(form_token).unwrap_or_default();
        if !session::same(&given, &session.csrf) {
            ui.refused_csrf.note(&format!(
                "a POST without the session's CSRF token (last: {path})"
            ));
            return page(
                StatusCode::FORBIDDEN,
                pages::error(
                    Some(&session),
                    "Refused",
                    "missing or wrong CSRF token: reload the page and try again",
                ),
            );
        }
        // Changes need the admin role (logout excepted); so does checking
        // a form (it reads scripts as root).
        if !session.admin() && path != "/ui/logout" {
            return page(
                StatusCode::FORBIDDEN,
                pages::error(Some(&session), "Read-only", "this session may only read"),
            );
        }
        request = Request::from_parts(parts, Body::from(bytes));
    }
    request.extensions_mut().insert(session);
    next.run(request).await
}

async fn login_page() -> Response {
    page(StatusCode::OK, pages::login(None))
}

async fn login<S: Store>(State(ui): Shared<S>, body: Bytes) -> Response {
    let token = parse_form(&body)
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let policy = &ui.app.policy;
    let role = if policy
        .token
        .as_deref()
        .is_some_and(|t| session::same(&token, t))
    {
        Some(Role::Admin)
    } else if policy
        .read_token
        .as_deref()
        .is_some_and(|t| session::same(&token, t))
    {
        Some(Role::Reader)
    } else {
        None
    };
    let Some(role) = role else {
        ui.refused_logins.note("a login with a wrong token");
        return page(StatusCode::UNAUTHORIZED, pages::login(Some("Wrong token.")));
    };
    let id = ui.sessions().open(role);
    let secure = if ui.secure { "; Secure" } else { "" };
    let cookie = format!(
        "{}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        session::COOKIE,
        session::LIFETIME.as_secs()
    );
    let mut r = Redirect::to("/ui/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn logout<S: Store>(State(ui): Shared<S>, headers: HeaderMap) -> Response {
    if let Some(id) = session::cookie_of(&headers) {
        ui.sessions().close(id);
    }
    let mut r = Redirect::to("/ui/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("clusvc_session=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind): (&'static str, &'static str) = match file.as_str() {
        "console.js" => (
            include_str!("assets/console.js"),
            "text/javascript; charset=utf-8",
        ),
        "console.css" => (
            include_str!("assets/console.css"),
            "text/css; charset=utf-8",
        ),
        "favicon.svg" => (FAVICON, "image/svg+xml"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

async fn overview<S: Store>(
    State(ui): Shared<S>,
    axum::Extension(session): axum::Extension<Session>,
    Query(q): Query<pages::ListQuery>,
) -> Response {
    let now = now();
    let c = ui.app.cache.read();
    let members = crate::api::members::views(&c, None);
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut rows = Vec::new();
    let needle = q.q.to_lowercase();
    let invalid = c.invalid();
    let names = c.service_names();
    let total = names.len();
    for name in names {
        let d = c.services().get(&name);
        let o = c.observed.services.get(&name);
        let state = if invalid.contains_key(&name) {
            DisplayState::Invalid
        } else {
            DisplayState::of(d, o)
        }
        .as_str();
        *counts.entry(state).or_default() += 1;
        if !q.state.is_empty() && q.state != state {
            continue;
        }
        let member = o.and_then(|o| o.member.clone());
        if !needle.is_empty()
            && !name.to_lowercase().contains(&needle)
            && !member
                .as_deref()
                .is_some_and(|m| m.to_lowercase().contains(&needle))
        {
            continue;
        }
        rows.push(pages::Row {
            id: o.map(|o| o.id),
            state,
            member,
            last_check: o.and_then(|o| o.last_check),
            restarts: crate::api::services::recent_restarts(d, o, now),
            created_at: o.and_then(|o| o.created_at),
            name,
        });
    }
    drop(c);
    match q.sort.as_str() {
        "id" => rows.sort_by_key(|r| r.id),
        "state" => rows.sort_by(|a, b| a.state.cmp(b.state)),
        "member" => rows.sort_by(|a, b| a.member.cmp(&b.member)),
        "lastCheck" => rows.sort_by_key(|r| std::cmp::Reverse(r.last_check)),
        "restarts" => rows.sort_by_key(|r| std::cmp::Reverse(r.restarts)),
        "age" => rows.sort_by_key(|r| r.created_at),
        _ => {}
    }
    let matched = rows.len();
    let index = q.page_index().min(matched.div_ceil(PAGE).max(1) - 1);
    let from = index * PAGE;
    let shown: Vec<pages::Row> = rows.drain(from..(from + PAGE).min(matched)).collect();
    let sync = crate::api::health::sync_status(&ui.app);
    let warnings: Vec<_> = ui
        .app
        .controller
        .events()
        .recent(None, 500)
        .into_iter()
        .filter(|e| e.level <= Level::Warning)
        .collect();
    let warnings = &warnings[warnings.len().saturating_sub(10)..];
    page(
        StatusCode::OK,
        pages::overview(
            &session, now, &members, &counts, total, &shown, matched, PAGE, index, &q, &sync,
            warnings,
        ),
    )
}

#[derive(Debug, Default, serde::Deserialize)]
struct EventsQuery {
    #[serde(default)]
    service: String,
    #[serde(default)]
    level: String,
}

fn worst_level(word: &str) -> Option<Level> {
    serde_json::from_value(serde_json::Value::String(word.to_string())).ok()
}

async fn events_page<S: Store>(
    State(ui): Shared<S>,
    axum::Extension(session): axum::Extension<Session>,
    Query(q): Query<EventsQuery>,
) -> Response {
    let service = q.service.trim();
    let worst = worst_level(&q.level);
    let events: Vec<_> = ui
        .app
        .controller
        .events()
        .recent((!service.is_empty()).then_some(service), 2000)
        .into_iter()
        .filter(|e| worst.is_none_or(|w| e.level <= w))
        .collect();
    let events = &events[events.len().saturating_sub(200)..];
    page(
        StatusCode::OK,
        pages::events_page(&session, events, now(), service, &q.level),
    )
}

/// `GET /ui/stream`: Server-Sent Events, one `change` per controller event
/// (its service's name as data), and a comment every 15 s to keep the
/// connection open. Pages refresh their live parts on each. At most
/// [`session::MAX_STREAMS`] per session; a stream ends with its session
/// (logout, expiry).
async fn stream<S: Store>(
    State(ui): Shared<S>,
    axum::Extension(session): axum::Extension<Session>,
) -> Response {
    let Some(place) = ui.sessions().stream(&session) else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "too many live streams for this session",
        )
            .into_response();
    };
    let mut rx = ui.app.controller.events().subscribe();
    let shutdown = ui.app.shutdown.clone();
    let ui = ui.clone();
    let (tx, mut out) = tokio::sync::mpsc::channel::<Result<String, Infallible>>(16);
    tokio::spawn(async move {
        let _place = place;
        if tx.send(Ok("retry: 2000\n\n".into())).await.is_err() {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut quiet = 0u32;
        loop {
            // The session is looked at every second: a stream ends within
            // a second of its session.
            let next = tokio::select! {
                e = rx.recv() => Some(e),
                _ = tick.tick() => {
                    if ui.sessions().get(&session.id).is_none() {
                        return;
                    }
                    quiet += 1;
                    if quiet < 15 {
                        continue;
                    }
                    None
                }
                () = shutdown.notified() => return,
            };
            quiet = 0;
            if ui.sessions().get(&session.id).is_none() {
                return;
            }
            let msg = match next {
                Some(Ok(e)) => {
                    // The data is one line: a JSON string.
                    format!(
                        "event: change\ndata: {}\n\n",
                        serde_json::to_string(&e.service).unwrap_or_default()
                    )
                }
                Some(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                    "event: change\ndata: \"\"\n\n".to_string()
                }
                Some(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return,
                None => ": keep-alive\n\n".to_string(),
            };
            if tx.send(Ok(msg)).await.is_err() {
                return;
            }
        }
    });
    let body = futures_util::stream::poll_fn(move |cx| out.poll_recv(cx));
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// The console's source (`ui`, recorded as `ui@token`).
const SOURCE: &str = "ui";

/// Who owns a service, as the console sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    /// The console may apply it: its own, or a source apply takes over
    /// silently (`local`, `apply` of earlier versions), or none.
    Console,
    /// A manifests directory: the file.
    Gitops(String),
    /// Another caller's source (`apply@root`): changed by that caller.
    Other(String),
}

fn owner_of(svc: &clusvc_core::model::Service) -> Owner {
    let ann = &svc.metadata.annotations;
    let Some(owner) = ann.get(SOURCE_ANNOTATION) else {
        return Owner::Console;
    };
    if let Some(dir) = owner.strip_prefix(GITOPS_SOURCE_PREFIX) {
        return Owner::Gitops(match ann.get(MANIFEST_ANNOTATION) {
            Some(f) => format!("{dir}/{f}"),
            None => dir.to_string(),
        });
    }
    let mine = format!("{SOURCE}@{}", Identity::Token.name());
    if *owner == mine || owner == "local" || owner == "apply" {
        Owner::Console
    } else {
        Owner::Other(owner.clone())
    }
}

/// Why the console does not edit a service (none: it may).
fn not_editable(svc: &clusvc_core::model::Service) -> Option<String> {
    match owner_of(svc) {
        Owner::Gitops(file) => Some(format!(
            "service/{} is managed by a manifests directory: change it in {file}",
            svc.metadata.name
        )),
        Owner::Other(source) => Some(format!(
            "service/{} was applied by {source}: change it with clusvc apply as that caller (or take it over there with --force)",
            svc.metadata.name
        )),
        Owner::Console => {
            let fields = form::unsupported(svc);
            (!fields.is_empty()).then(|| {
                format!(
                    "service/{} sets fields this form does not have ({}): change its manifest with clusvc apply",
                    svc.metadata.name,
                    fields.join(", ")
                )
            })
        }
    }
}

fn not_found(session: &Session, name: &str) -> Response {
    page(
        StatusCode::NOT_FOUND,
        pages::error(
            Some(session),
            "Not found",
            &format!("services \"{name}\" not found"),
        ),
    )
}

async fn service_page<S: Store>(
    State(ui): Shared<S>,
    axum::Extension(session): axum::Extension<Session>,
    Path(name): Path<String>,
) -> Response {
    let now = now();
    let c = ui.app.cache.read();
    let Some(view) = crate::api::services::views(&c, Some(&name)).pop() else {
        drop(c);
        return not_found(&session, &name);
    };
    let spec = view
        .observed
        .as_ref()
        .and_then(|o| o.started_with.clone())
        .or_else(|| view.desired.as_ref().map(|d| d.spec.clone()))
        .unwrap_or_default();
    let statuses = view.observed.as_ref().map(|o| &o.resources);
    let resources: Vec<(String, String)> = spec
        .resources()
        .map(|r| {
            let label = pages::visible(&r.label()).into_owned();
            let status = statuses
                .and_then(|s| s.get(&r.label()))
                .and_then(|s| serde_json::to_value(s).ok())
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "-".into());
            (label, status)
        })
        .collect();
    let all_members: Vec<String> = c.desired().members().keys().cloned().collect();
    let eligible: Vec<(String, String)> = view
        .desired
        .as_ref()
        .map(|d| d.spec.placement.members.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            let st = crate::api::members::views(&c, Some(&m))
                .pop()
                .map_or("undeclared", |v| v.state.as_str());
            (m, st.to_string())
        })
        .collect();
    let plan = plan::plan_one_indexed(c.desired(), &c.observed, c.index(), now, &name)
        .map_or_else(|| "Nothing to do.".to_string(), |p| p.to_string());
    let plan = pages::visible(&plan).into_owned();
    drop(c);
    let events = ui.app.controller.events().recent(Some(&name), 50);
    let yaml = view
        .desired
        .as_ref()
        .map(|d| pages::visible(&serde_saphyr::to_string(d).unwrap_or_default()).into_owned())
        .unwrap_or_default();
    let owner = view.desired.as_ref().map(owner_of);
    let gitops = match &owner {
        Some(Owner::Gitops(file)) => Some(file.clone()),
        _ => None,
    };
    let not_editable = view.desired.as_ref().and_then(not_editable);
    let state = view.state.as_str();
    let p = pages::ServicePage {
        name: &name,
        state,
        view: &view,
        resources,
        eligible,
        plan,
        events: &events,
        yaml,
        gitops,
        not_editable,
        members: all_members,
    };
    page(StatusCode::OK, pages::service(&session, &p, now))
}

#[derive(Debug, Default, serde::Deserialize)]
struct OpQuery {
    #[serde(default)]
    to: String,
}

/// What an operation would do to a service, planned on a copy.
fn op_plan<S: Store>(ui: &Ui<S>, name: &str, op: &str, to: &str) -> Result<String, String> {
    let c = ui.app.cache.read();
    let mut desired = c.desired().clone();
    let mut observed = c.observed.clone();
    drop(c);
    let o: &mut ObservedService = observed
        .services
        .get_mut(name)
        .ok_or_else(|| format!("services \"{name}\" not found"))?;
    match op {
        "relocate" => {
            o.relocate = Some(RelocateRequest {
                to: (!to.is_empty()).then(|| to.to_string()),
            });
        }
        "restart" => o.restart_requested = true,
        "freeze" => o.frozen = true,
        "unfreeze" => o.frozen = false,
        "clear" => o.clear_failure(),
        "enable" | "disable" => {
            // Enabling also clears a failure (as the operation does).
            if op == "enable" {
                o.clear_failure();
            }
            let mut svc = desired
                .services()
                .get(name)
                .cloned()
                .ok_or_else(|| format!("services \"{name}\" not found"))?;
            svc.spec.enabled = op == "enable";
            desired.insert_validated(clusvc_core::model::Object::Service(svc));
        }
        _ => return Err(format!("unknown operation {op:?}")),
    }
    let frozen_note = match op {
        "freeze" => "\n(frozen: neither checked nor changed until unfrozen)",
        _ => "",
    };
    Ok(pages::visible(
        &plan::plan_one(&desired, &observed, now(), name).map_or_else(
            || format!("Nothing to do.{frozen_note}"),
            |p| format!("{p}{frozen_note}"),
        ),
    )
    .into_owned())
}

async fn op_confirm<S: Store>(
    State(ui): Shared<S>,
    axum::Extension(session): axum::Extension<Session>,
    Path((name, op)): Path<(String, String)>,
    Query(q): Query<OpQuery>,
) -> Response {
    if !session.admin() {
        return page(
            StatusCode::FORBIDDEN,
            pages::error(Some(&session), "Read-only", "this session may only read"),
        );
    }
    let back = format!("/ui/services/{}", pages::encode(&name));
    let what = if op == "relocate" && !q.to.is_empty() {
        format!("relocate {name} to {}", q.to)
    } else {
        format!("{op} {name}")
    };
    match op_plan(&ui, &name, &op, &q.to) {
        Ok(plan) => page(
            StatusCode::OK,
            pages::confirm(
                &session,
                &what,
                &back,
                &format!("{back}/ops/{}", pages::encode(&op)),
                &plan,
                &[("to", &q.to)],
                None,
            ),
        ),
        Err(e) => page(
            StatusCode::NOT_FOUND,
            pages::error(Some(&session), "Cannot do that", &e),
        ),
    }
}

async fn op_do<S: Store>(
    State(ui): Shared<S>,
    axum::Extension(session): axum::Extension<Session>,
    Path((name, op)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let to = parse_form(&body)
        .into_iter()
        .find(|(k, _)| k == "to")
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty());
    let req = serde_json::json!({ "to": to });
    let body = if op == "relocate" {
        Bytes::from(req.to_string())
    } else {
        Bytes::new()
    };
    match crate::api::ops::post(
        State(ui.app.clone()),
        Path((name.clone(), op.clone())),
        body,
    )
    .await
    {
        Ok(_) => Redirect::to(&format!("/ui/services/{}", pages::encode(&name))).into_response(),
        Err(e) => page(
            StatusCode::from_u16(e.0.code.status()).unwrap_or(StatusCode::BAD_REQUEST),
            pages::error(Some(&session), "Refused", &e.0.message),
        ),
    }
}

async fn member_confirm<S: Store>(
    State(ui): Shared<S>,
    axum::Extension(session): axum::Extension<Session>,
    Path((name, op)): Path<(String, String)>,
) -> Response {
    if !session.admin() {
        return page(
            StatusCode::FORBIDDEN,
            pages::error(Some(&session), "Read-only", "this session may only read"),
        );
    }
    if op != "standby" && op != "unstandby" {
        return page(
            StatusCode::NOT_FOUND,
            pages::error(Some(&session), "Not found", "no such operation"),
        );
    }
    let c = ui.app.cache.read();
    let desired = c.desired().clone();
    let mut observed = c.observed.clone();
    drop(c);
    let Some(m) = observed.members.get_mut(&name) else {
        if !desired.members().contains_key(&name) {
            return page(
                StatusCode::NOT_FOUND,
                pages::error(
                    Some(&session),
                    "Not found",
                    &format!("members \"{name}\" not found"),
                ),
            );
        }
        // Undeclared in the observed state: alive, not standby.
        observed.members.insert(
            name.clone(),
            clusvc_core::model::ObservedMember {
                alive: true,
                standby: op == "standby",
                ..Default::default()
            },
        );
        return member_page(&session, &name, &op, &desired, &observed);
    };
    m.standby = op == "standby";
    member_page(&session, &name, &op, &desired, &observed)
}

fn member_page(
    session: &Session,
    name: &str,
    op: &str,
    desired: &clusvc_core::model::DesiredState,
    observed: &clusvc_core::model::ObservedState,
) -> Response {
    let plan = plan::plan(desired, observed, now());
    let text = if plan.has_changes() {
        pages::visible(
            &plan
                .services
                .iter()
                .filter(|s| s.is_change())
                .map(|s| s.to_string())
                .collect::<String>(),
        )
        .into_owned()
    } else {
        "Nothing moves.".to_string()
    };
    let url = format!("/ui/members/{}/{}", pages::encode(name), pages::encode(op));
    page(
        StatusCode::OK,
        pages::confirm(
            session,
            &format!("{op} member {name}"),
            "/ui/",
            &url,
            &text,
            &[],
            None,
        ),
    )
}

async fn member_do<S: Store>(
    State(ui): Shared<S>,
    axum::Extension(session): axum::Extension<Session>,
    Path((name, op)): Path<(String, String)>,
) -> Response {
    match crate::api::members::standby(State(ui.app.clone()), Path((name, op))).await {
        Ok(_) => Redirect::to("/ui/").into_response(),
        Err(e) => page(
            StatusCode::from_u16(e.0.code.status()).unwrap_or(StatusCode::BAD_REQUEST),
            pages::error(Some(&session), "Refused", &e.0.message),
        ),
    }
}

async fn new_form(axum::Extension(session): axum::Extension<Session>) -> Response {
    if !session.admin() {
        return page(
            StatusCode::FORBIDDEN,
            pages::error(Some(&session), "Read-only", "this session may only read"),
        );
    }
    let fields = BTreeMap::new();
    let yaml = form::read(&[]).map(|r| r.yaml).unwrap_or_default();
    page(
        StatusCode::OK,
        pages::form(&session, "New service", &fields, &[], &yaml, None, true),
    )
}

async fn edit_form<S: Store>(
    State(ui): Shared<S>,
    axum::Extension(session): axum::Extension<Session>,
    Path(name): Path<String>,
) -> Response {
    let svc = ui.app.cache.read().services().get(&name).cloned();
    let Some(svc) = svc else {
        return not_found(&session, &name);
    };
    let fields = form::fields_of(&svc);
    let read: Vec<(String, String)> = fields.clone().into_iter().collect();
    let yaml = form::read(&read).map(|r| r.yaml).unwrap_or_default();
    let read_only = if session.admin() {
        not_editable(&svc)
    } else {
        Some("this session may only read".to_string())
    };
    page(
        StatusCode::OK,
        pages::form(
            &session,
            &format!("Edit service {name}"),
            &fields,
            &[],
            &yaml,
            read_only.as_deref(),
            false,
        ),
    )
}

/// The outcome of checking a form: its manifest, and its problems.
#[derive(serde::Serialize)]
struct Checked {
    yaml: String,
    problems: Vec<form::Problem>,
}

/// Reads and validates a form (off the async runtime: it reads scripts,
/// which may sit on a slow file system), then checks what needs the
/// server's state: that it may edit the service, and that the members it
/// names are declared.
async fn checked<S: Store>(
    ui: &Ui<S>,
    body: Bytes,
) -> (Checked, Option<clusvc_core::model::Service>) {
    let done = tokio::task::spawn_blocking(move || {
        let fields = parse_form(&body);
        match form::read(&fields) {
            Err(e) => (
                Checked {
                    yaml: String::new(),
                    problems: vec![form::Problem {
                        path: String::new(),
                        message: e.to_string(),
                    }],
                },
                None,
            ),
            Ok(read) => match read.validate() {
                Ok(svc) => (
                    Checked {
                        yaml: read.yaml,
                        problems: vec![],
                    },
                    Some(svc),
                ),
                Err(problems) => (
                    Checked {
                        yaml: read.yaml,
                        problems,
                    },
                    None,
                ),
            },
        }
    })
    .await;
    let (mut c, svc) = done.unwrap_or_else(|e| {
        (
            Checked {
                yaml: String::new(),
                problems: vec![form::Problem {
                    path: String::new(),
                    message: format!("the check failed: {e}"),
                }],
            },
            None,
        )
    });
    c.yaml = pages::visible(&c.yaml).into_owned();
    for p in &mut c.problems {
        p.message = pages::visible(&p.message).into_owned();
    }
    let Some(svc) = svc else {
        return (c, None);
    };
    let cache = ui.app.cache.read();
    if let Some(existing) = cache.services().get(&svc.metadata.name)
        && let Some(why) = not_editable(existing)
    {
        c.problems.push(form::Problem {
            path: "metadata.name".into(),
            message: why,
        });
    }
    let undeclared: Vec<&str> = svc
        .spec
        .placement
        .members
        .iter()
        .filter(|m| !cache.desired().members().contains_key(*m))
        .map(String::as_str)
        .collect();
    if !undeclared.is_empty() {
        c.problems.push(form::Problem {
            path: "spec.placement.members".into(),
            message: pages::visible(&format!("undeclared member(s): {}", undeclared.join(", ")))
                .into_owned(),
        });
    }
    drop(cache);
    let ok = c.problems.is_empty();
    (c, ok.then_some(svc))
}

/// `POST /ui/form/check`: the form's manifest and problems, as JSON (the
/// page's script shows each problem next to its field as you type).
async fn form_check<S: Store>(State(ui): Shared<S>, body: Bytes) -> Response {
    let (c, _) = checked(&ui, body).await;
    axum::Json(c).into_response()
}

/// `POST /ui/form/preview`: the plan the form's service would get (a
/// what-if on the server's state, as `clusvc plan -f`), as text.
async fn form_preview<S: Store>(State(ui): Shared<S>, body: Bytes) -> Response {
    let (c, svc) = checked(&ui, body).await;
    let Some(svc) = svc else {
        let text: Vec<String> = c
            .problems
            .iter()
            .map(|p| {
                if p.path.is_empty() {
                    p.message.clone()
                } else {
                    format!("{}: {}", p.path, p.message)
                }
            })
            .collect();
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            pages::visible(&format!("Invalid:\n{}", text.join("\n"))).into_owned(),
        )
            .into_response();
    };
    let name = svc.metadata.name.clone();
    let req = PlanRequest {
        services: vec![svc],
        ..PlanRequest::default()
    };
    match crate::api::plan::post(State(ui.app.clone()), ApiJson(req)).await {
        Ok(axum::Json(resp)) => {
            let text = resp
                .plan
                .service(&name)
                .map_or_else(|| "Nothing to do.".to_string(), |p| p.to_string());
            pages::visible(&text).into_owned().into_response()
        }
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            pages::visible(&e.0.message).into_owned(),
        )
            .into_response(),
    }
}

/// `POST /ui/form/apply`: applies the form's service (as `clusvc apply`,
/// source `ui@token`) and shows it, or the form again with its problems.
async fn form_apply<S: Store>(
    State(ui): Shared<S>,
    axum::Extension(session): axum::Extension<Session>,
    body: Bytes,
) -> Response {
    let fields = parse_form(&body);
    let new = fields.iter().any(|(k, v)| k == "_new" && v == "1");
    let shown: BTreeMap<String, String> = fields
        .iter()
        .filter(|(k, _)| !k.starts_with('_'))
        .cloned()
        .collect();
    let title = if new { "New service" } else { "Edit service" };
    let (c, svc) = checked(&ui, body).await;
    let again = |problems: &[form::Problem], yaml: &str| {
        page(
            StatusCode::UNPROCESSABLE_ENTITY,
            pages::form(&session, title, &shown, problems, yaml, None, new),
        )
    };
    let Some(svc) = svc else {
        return again(&c.problems, &c.yaml);
    };
    let name = svc.metadata.name.clone();
    let req = ApplyRequest {
        services: vec![svc],
        source: SOURCE.into(),
        create_only: new,
        ..ApplyRequest::default()
    };
    match crate::api::objects::apply(
        State(ui.app.clone()),
        axum::Extension(Identity::Token),
        ApiJson(req),
    )
    .await
    {
        Ok(_) => Redirect::to(&format!("/ui/services/{}", pages::encode(&name))).into_response(),
        Err(e) => again(
            &[form::Problem {
                path: String::new(),
                message: pages::visible(&e.0.message).into_owned(),
            }],
            &c.yaml,
        ),
    }
}

/// `/ui/assets/favicon.svg`.
const FAVICON: &str = "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'><rect width='16' height='16' rx='3' fill='#0b5cad'/><path d='M4 8h8M8 4v8' stroke='#fff' stroke-width='2'/></svg>";

/// Any other `/ui/` path.
async fn no_page(axum::Extension(session): axum::Extension<Session>) -> Response {
    page(
        StatusCode::NOT_FOUND,
        pages::error(Some(&session), "Not found", "no such page"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_decode() {
        let pairs = parse_form(b"a=1&b=x+y%2Fz&c=%3Cscript%3E&d=%zz&e");
        assert_eq!(
            pairs,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y/z".into()),
                ("c".into(), "<script>".into()),
                ("d".into(), "%zz".into()),
                ("e".into(), String::new()),
            ]
        );
        assert!(parse_form(b"x=%").len() == 1);
        assert_eq!(parse_form(b"x=%+1")[0].1, "% 1");
    }

    #[test]
    fn direction_controls_are_shown_not_obeyed() {
        assert_eq!(pages::visible("plain"), "plain");
        assert_eq!(
            pages::visible("a\u{202e}gnp.exe\u{2066}"),
            "a<U+202E>gnp.exe<U+2066>"
        );
    }

    #[test]
    fn only_the_consoles_own_origin_may_post() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:7450"));
        assert!(same_origin(&h), "no Origin: a same-origin form or a tool");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:7450"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:7450"),
        );
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
    }
}
