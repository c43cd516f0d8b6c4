//! The web console in a real browser: headless Chromium driven over
//! WebDriver (`chromedriver`, Debian `chromium-driver`) against a real
//! `clusvc run` with real seed-style scripts and a real manifests
//! directory. The WebDriver client is the few W3C commands the tests use,
//! over HTTP (ureq). Screenshots of each page are saved under
//! `target/tmp/web-console/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use common::{Daemon, wait_until};

const T: Duration = Duration::from_secs(30);

/// The W3C element key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver on a free port, and one browser session; both ended on
/// drop.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: ureq::Agent,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self
            .http
            .delete(&format!("{}/session/{}", self.base, self.session))
            .call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Starts chromedriver and headless Chromium at 1280x800 (or skips:
    /// under CI=true a missing browser fails).
    fn start() -> Option<Self> {
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let driver = which("chromedriver");
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            common::skip(
                "chromium and chromedriver are not installed (Debian: chromium chromium-driver)",
            );
            return None;
        };
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        assert!(
            wait_until(T, || http
                .get(&format!("{base}/status"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true)),
            "chromedriver did not come up"
        );
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,800"]
            }
        }}});
        let mut r = http
            .post(&format!("{base}/session"))
            .send_json(&caps)
            .unwrap();
        let v: Value = r.body_mut().read_json().unwrap();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_string();
        Some(Self {
            driver: child,
            base,
            session,
            http,
        })
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut r = match (method, body) {
            ("GET", _) => self.http.get(&url).call(),
            ("DELETE", _) => self.http.delete(&url).call(),
            (_, b) => self.http.post(&url).send_json(b.unwrap_or(json!({}))),
        }
        .unwrap();
        let v: Value = r
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_json()
            .unwrap();
        v["value"].clone()
    }

    fn go(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn find(&self, css: &str) -> Option<String> {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT].as_str().map(str::to_string)
    }

    fn must(&self, css: &str) -> String {
        let mut found = None;
        assert!(
            wait_until(T, || {
                found = self.find(css);
                found.is_some()
            }),
            "no element {css} on {}:\n{}",
            self.url(),
            self.text("body")
        );
        found.unwrap()
    }

    fn count(&self, css: &str) -> usize {
        self.cmd(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )
        .as_array()
        .map_or(0, Vec::len)
    }

    /// Clicks an element, found again if it went stale meanwhile (a
    /// live part of the page is replaced when the cluster changes).
    fn click(&self, css: &str) {
        let mut last = Value::Null;
        let clicked = wait_until(T, || {
            let e = self.must(css);
            last = self.cmd("POST", &format!("/element/{e}/click"), None);
            last.get("error").is_none()
        });
        assert!(clicked, "could not click {css}: {last}");
    }

    /// Replaces an input's text (typing it, so input events fire).
    fn fill(&self, css: &str, text: &str) {
        let e = self.must(css);
        self.cmd("POST", &format!("/element/{e}/clear"), None);
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn text(&self, css: &str) -> String {
        match self.find(css) {
            Some(e) => self
                .cmd("GET", &format!("/element/{e}/text"), None)
                .as_str()
                .unwrap_or_default()
                .to_string(),
            None => String::new(),
        }
    }

    fn js(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = decode_base64(b64.as_str().unwrap_or_default());
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-console");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Waits until the text of `css` contains `needle` (after a click
    /// that navigates, the old page may still be shown for a moment).
    fn wait_text(&self, css: &str, needle: &str) {
        assert!(
            wait_until(T, || self.text(css).contains(needle)),
            "{needle:?} not in {css} on {}:\n{}",
            self.url(),
            self.text("body")
        );
    }

    fn delete_cookies(&self) {
        self.cmd("DELETE", "/cookie", None);
    }
}

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(cmd))
            .find(|p| p.exists())
    })
}

fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter_map(val) {
        acc = (acc << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// A seed-style script whose start waits (bounded) for the file
/// `go.NAME` and whose status fails (printing hostile text) once its `up`
/// file is gone.
fn app_script(dir: &Path, name: &str) -> PathBuf {
    let d = dir.display();
    common::script(
        dir,
        name,
        &format!(
            "app() {{ up={d}/up.{name}; case $1 in start) for i in $(seq 400); do [ -e {d}/go.{name} ] && break; sleep 0.05; done; touch $up;; stop) rm -f $up;; status) [ -e $up ] || {{ echo '<script>window.pwned=1</script><img src=x> \u{202e}gnp.exe' >&2; exit 1; }};; esac; }}\n"
        ),
    )
}

fn login(b: &Browser, d: &Daemon, token: &str) {
    b.go(&format!("{}/ui/", d.url));
    b.must("#token");
    assert!(b.url().ends_with("/ui/login"), "{}", b.url());
    b.fill("#token", token);
    b.click("form[action='/ui/login'] button");
    b.must("#services");
}

/// Log in; the overview; the form (live validation, preview in start
/// order, apply, the overview turning `running` live); operations after
/// a confirmed plan; a failing check live in events (its hostile output
/// escaped); a GitOps service read-only; a read-only session; CSRF.
#[test]
fn the_console_in_a_real_browser() {
    let Some(b) = Browser::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    let owned = app_script(dir.path(), "owned_app");
    std::fs::write(dir.path().join("go.owned_app"), "").unwrap();
    std::fs::write(
        manifests.join("owned.yaml"),
        format!(
            "apiVersion: clusvc/v1\nkind: Member\nmetadata:\n  name: node1\nspec: {{}}\n---\napiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: owned\nspec:\n  checkInterval: 1s\n  applications:\n    - script: {}\n",
            owned.display()
        ),
    )
    .unwrap();
    let web = app_script(dir.path(), "web_app");
    let read_token = dir.path().join("read.token");
    std::fs::write(&read_token, "a-read-only-token-for-the-console\n").unwrap();
    std::fs::set_permissions(
        &read_token,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let d = Daemon::start(&[
        "--manifests",
        manifests.to_str().unwrap(),
        "--read-token-file",
        read_token.to_str().unwrap(),
    ]);

    // Logged out: the console asks for a token; a wrong one is refused.
    b.go(&format!("{}/ui/", d.url));
    b.must("#token");
    b.fill("#token", "wrong");
    b.click("form[action='/ui/login'] button");
    b.wait_text("main", "Wrong token");
    b.screenshot("login");
    login(&b, &d, &d.token);

    // The overview lists the GitOps service, running, live.
    assert!(
        wait_until(T, || b.text("#services").contains("owned")
            && b.text("#services").contains("running")),
        "{}",
        b.text("main")
    );
    assert!(b.text("#members").contains("node1"));
    assert!(b.text("#sync").contains(manifests.to_str().unwrap()));
    b.screenshot("overview");
    // At a phone's width nothing makes the page scroll sideways.
    b.cmd(
        "POST",
        "/window/rect",
        Some(json!({"width": 390, "height": 844})),
    );
    b.go(&format!("{}/ui/", d.url));
    b.must("#services");
    assert_eq!(
        b.js("return document.documentElement.scrollWidth <= window.innerWidth"),
        json!(true),
        "the overview is wider than a phone"
    );
    b.screenshot("overview-phone");
    b.cmd(
        "POST",
        "/window/rect",
        Some(json!({"width": 1280, "height": 800})),
    );

    // Hostile names are shown as text: typed into the form (the message
    // at the field names it) and in a URL.
    b.go(&format!("{}/ui/new", d.url));
    b.fill(
        "[name='metadata.name']",
        "<img src=x onerror=window.pwned=2>\u{202e}",
    );
    assert!(wait_until(T, || !b
        .text(".field-error[data-for='metadata.name']")
        .is_empty()));
    assert_eq!(b.count("main img"), 0);
    b.go(&format!(
        "{}/ui/services/%3Cscript%3Ewindow.pwned=3%3C%2Fscript%3E",
        d.url
    ));
    b.wait_text("main", "<script>window.pwned=3</script>");
    assert_eq!(b.js("return window.pwned === undefined"), json!(true));

    // The form: an invalid interval is shown next to its field as typed.
    b.go(&format!("{}/ui/new", d.url));
    b.fill("[name='metadata.name']", "web");
    b.fill("[name='spec.checkInterval']", "soon");
    assert!(
        wait_until(T, || !b
            .text(".field-error[data-for='spec.checkInterval']")
            .is_empty()),
        "no message at the field: {}",
        b.text("main")
    );
    let message = b.text(".field-error[data-for='spec.checkInterval']");
    b.js("window.scrollTo(0, 0)");
    b.screenshot("form-invalid");
    // The same message `clusvc validate` gives for it.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  checkInterval: soon\n",
    )
    .unwrap();
    let (code, _, err) = d.run(&["validate", "-f", bad.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains(&message), "form: {message:?}\nvalidate: {err}");
    b.fill("[name='spec.checkInterval']", "1s");
    assert!(wait_until(T, || b
        .text(".field-error[data-for='spec.checkInterval']")
        .is_empty()));
    // Preview: the steps in the fixed start order (devices, filesystems,
    // IP addresses, applications), whatever the rows' order of entry.
    b.fill(
        "[name='spec.applications[0].script']",
        web.to_str().unwrap(),
    );
    b.fill("[name='spec.ipAddresses[0].address']", "192.0.2.10/24");
    b.fill("[name='spec.filesystems[0].device']", "/dev/loop7");
    b.fill("[name='spec.filesystems[0].mountPoint']", "/mnt/web");
    b.fill("[name='spec.devices[0].path']", "/dev/loop7");
    b.click("#preview");
    assert!(wait_until(T, || b.text("#plan-preview").contains("start")));
    let plan = b.text("#plan-preview");
    let at = |what: &str| {
        plan.find(what)
            .unwrap_or_else(|| panic!("{what} not in the plan:\n{plan}"))
    };
    assert!(
        at("device /dev/loop7") < at("filesystem")
            && at("filesystem") < at("ip 192.0.2.10")
            && at("ip 192.0.2.10") < at("application"),
        "{plan}"
    );
    // The YAML it would apply is shown.
    assert!(wait_until(T, || b.text("#yaml").contains("name: web")));
    b.screenshot("form");
    // Apply without the demo resources: it starts, and the overview turns
    // it running without a reload.
    for f in [
        "spec.ipAddresses[0].address",
        "spec.filesystems[0].device",
        "spec.filesystems[0].mountPoint",
        "spec.devices[0].path",
    ] {
        b.fill(&format!("[name='{f}']"), "");
    }
    let (code, out, err) = d.run(&["get", "services"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("web"), "applied too early: {out}");
    // Apply (the new form's service, now without the demo resources): the
    // service page, then the overview shows it starting (its script waits
    // for `go.web_app`) and turns it running live, without a reload.
    b.go(&format!("{}/ui/new", d.url));
    b.fill("[name='metadata.name']", "web");
    b.fill("[name='spec.checkInterval']", "1s");
    b.fill(
        "[name='spec.applications[0].script']",
        web.to_str().unwrap(),
    );
    b.click("#apply");
    assert!(
        wait_until(T, || b.url().ends_with("/ui/services/web")),
        "{}\n{}",
        b.url(),
        b.text("main")
    );
    b.go(&format!("{}/ui/?q=web", d.url));
    b.wait_text("#services", "starting");
    b.js("window.notReloaded = true;");
    std::fs::write(dir.path().join("go.web_app"), "").unwrap();
    assert!(
        wait_until(T, || b.text("#services").contains("running")),
        "the overview did not turn web running live: {}",
        b.text("#services")
    );
    assert_eq!(
        b.js("return window.notReloaded === true"),
        json!(true),
        "the page was reloaded"
    );
    assert!(b.text("#services").contains("web"));

    // The service page; disable after confirming the plan.
    b.go(&format!("{}/ui/services/web", d.url));
    assert!(wait_until(T, || b.text("#status").contains("running")));
    assert!(b.text("#resources").contains("application"));
    b.screenshot("service");
    b.click("a[href='/ui/services/web/ops/disable']");
    b.wait_text("pre.plan", "stop on node1");
    b.screenshot("confirm");
    b.click("form button.primary");
    assert!(
        wait_until(T, || {
            b.go(&format!("{}/ui/services/web", d.url));
            b.text("#status").contains("disabled")
        }),
        "{}",
        b.text("main")
    );
    // Enable, then a failing check shows up live on the events page, its
    // script's output escaped.
    b.click("a[href='/ui/services/web/ops/enable']");
    b.must("pre.plan");
    b.click("form button.primary");
    assert!(wait_until(T, || {
        d.service("web").is_some_and(|s| s["state"] == "running")
    }));
    b.go(&format!("{}/ui/events", d.url));
    b.must("#events");
    b.js("window.notReloaded = true;");
    std::fs::remove_file(dir.path().join("up.web_app")).unwrap();
    assert!(
        wait_until(T, || b.text("#events").contains("status check")),
        "{}",
        b.text("#events")
    );
    assert_eq!(b.js("return window.notReloaded === true"), json!(true));
    assert!(
        b.text("#events")
            .contains("<script>window.pwned=1</script>")
    );
    assert_eq!(b.js("return window.pwned === undefined"), json!(true));
    assert_eq!(b.count("#events img"), 0, "markup from a script ran");
    // The right-to-left override is shown, not obeyed.
    assert!(
        b.text("#events").contains("<U+202E>gnp.exe"),
        "{}",
        b.text("#events")
    );
    b.screenshot("events");

    // A GitOps service is read-only, naming its file.
    b.go(&format!("{}/ui/services/owned", d.url));
    b.wait_text("main", "owned.yaml");
    assert_eq!(b.count("a[href='/ui/services/owned/ops/disable']"), 0);
    assert_eq!(b.count("a[href='/ui/services/owned/edit']"), 0);
    b.go(&format!("{}/ui/services/owned/edit", d.url));
    b.wait_text("main", "Read-only here");
    assert!(b.text("main").contains("owned.yaml"));
    assert_eq!(b.count("fieldset[disabled]"), b.count("fieldset"));

    // CSRF: a POST without the token, one from another origin, refused.
    let cookie = b.cmd("GET", "/cookie/clusvc_session", None)["value"]
        .as_str()
        .unwrap()
        .to_string();
    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let csrf = b
        .js("return document.querySelector('meta[name=csrf-token]').content")
        .as_str()
        .unwrap()
        .to_string();
    let post = |origin: Option<&str>, body: &str| {
        let mut r = http
            .post(&format!("{}/ui/services/web/ops/disable", d.url))
            .header("cookie", &format!("clusvc_session={cookie}"))
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send(body).unwrap().status().as_u16()
    };
    assert_eq!(post(None, "to="), 403, "no CSRF token");
    assert_eq!(
        post(Some("http://evil.example"), &format!("_csrf={csrf}")),
        403,
        "another origin"
    );
    // And from a page of another origin in the browser (its cookie is
    // not even sent: SameSite=Strict).
    b.go(&format!(
        "data:text/html,<form id=f method=post action='{}/ui/services/web/ops/disable'><input name=_csrf value='{csrf}'></form><script>document.getElementById('f').submit()</script>",
        d.url
    ));
    assert!(wait_until(T, || b.url().starts_with(&d.url)));
    assert!(
        wait_until(T, || {
            let t = b.text("main");
            t.contains("Refused") || t.contains("Logged out")
        }),
        "{}",
        b.text("body")
    );
    assert!(
        d.service("web")
            .is_some_and(|s| s["desired"]["spec"]["enabled"] != false),
        "a refused request changed the service"
    );
    // The same request with the token, from the console's origin, works.
    assert_eq!(
        post(Some(&d.url), &format!("_csrf={csrf}")),
        303,
        "the console's own request"
    );

    // A member goes to standby and back, each after its plan.
    b.go(&format!("{}/ui/", d.url));
    b.click("a[href='/ui/members/node1/standby']");
    b.wait_text("pre.plan", "owned");
    b.click("form button.primary");
    assert!(
        wait_until(T, || b.text("#members").contains("standby")
            && b.find("a[href='/ui/members/node1/unstandby']").is_some()),
        "{}",
        b.text("#members")
    );
    b.click("a[href='/ui/members/node1/unstandby']");
    b.must("pre.plan");
    b.click("form button.primary");
    assert!(wait_until(T, || b.text("#members").contains("alive")));

    // The read token reads the API and changes nothing through it.
    let reader = |method: &str, path: &str| {
        let url = format!("{}{path}", d.url);
        let auth = "Bearer a-read-only-token-for-the-console";
        match method {
            "GET" => http.get(&url).header("authorization", auth).call(),
            _ => http
                .post(&url)
                .header("authorization", auth)
                .header("content-type", "application/json")
                .send("{}"),
        }
        .unwrap()
        .status()
        .as_u16()
    };
    assert_eq!(reader("GET", "/v1/services"), 200);
    assert_eq!(reader("POST", "/v1/plan"), 200);
    assert_eq!(reader("POST", "/v1/apply"), 403);
    assert_eq!(reader("POST", "/v1/services/web/ops/restart"), 403);

    // A read-only session sees no buttons that would fail.
    b.go(&format!("{}/ui/", d.url));
    b.delete_cookies();
    login(&b, &d, "a-read-only-token-for-the-console");
    b.wait_text("header", "read-only");
    assert_eq!(b.count("a[href='/ui/new']"), 0);
    b.go(&format!("{}/ui/services/web", d.url));
    b.must("#status");
    assert_eq!(b.count(".ops"), 0);
    assert_eq!(b.count("a[href*='/ops/']"), 0);
    b.screenshot("read-only");
    // And whatever it sends is refused.
    let refused = b.js(
        "const f = new URLSearchParams({_csrf: document.querySelector('meta[name=csrf-token]').content}); \
         return fetch('/ui/services/web/ops/restart', {method: 'POST', body: f}).then(r => r.status)",
    );
    assert_eq!(refused, json!(403));
}

/// Over plain HTTP (no browser): a session's live streams are bounded and
/// end with the session; a reader may not have forms checked (that reads
/// scripts as root); the form names undeclared members at their field;
/// a service another caller applied is not editable here.
#[test]
fn console_sessions_streams_and_ownership_over_http() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().unwrap();
    let read_token = dir.path().join("read.token");
    std::fs::write(&read_token, "reader-token-0123456789\n").unwrap();
    std::fs::set_permissions(
        &read_token,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let d = Daemon::start(&["--read-token-file", read_token.to_str().unwrap()]);
    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let login = |token: &str| d.console_login(token);
    let (cookie, csrf) = login(&d.token);
    let addr = d.url.trim_start_matches("http://").to_string();
    // Streams: 8 per session; the 9th is refused.
    let open = || {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(T)).unwrap();
        write!(
            c,
            "GET /ui/stream HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\n\r\n"
        )
        .unwrap();
        let mut r = BufReader::new(c);
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        (status, r)
    };
    let mut streams = Vec::new();
    for _ in 0..8 {
        let (status, r) = open();
        assert!(status.contains(" 200 "), "{status}");
        streams.push(r);
    }
    let (status, _) = open();
    assert!(status.contains(" 429 "), "{status}");
    // The API still answers this address (streams of a session do not
    // count against its connection cap).
    assert_eq!(d.get_json("/v1/services"), json!([]));
    // Logging out ends them (at their next event or keep-alive).
    let r = http
        .post(&format!("{}/ui/logout", d.url))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .send(format!("_csrf={csrf}"))
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    // An event wakes every stream.
    let app = app_script(dir.path(), "ev_app");
    std::fs::write(dir.path().join("go.ev_app"), "").unwrap();
    let f = dir.path().join("ev.yaml");
    std::fs::write(
        &f,
        format!(
            "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: ev\nspec:\n  applications:\n    - script: {}\n",
            app.display()
        ),
    )
    .unwrap();
    let (code, _, err) = d.run(&["apply", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for mut r in streams {
        // Read to the end: the server closes the stream.
        let mut rest = Vec::new();
        let _ = std::io::Read::read_to_end(&mut r, &mut rest);
        let text = String::from_utf8_lossy(&rest);
        assert!(
            text.ends_with("0\r\n\r\n"),
            "the stream did not end: {text:?}"
        );
    }
    // A reader may not have a form checked.
    let (rcookie, rcsrf) = login("reader-token-0123456789");
    let r = http
        .post(&format!("{}/ui/form/check", d.url))
        .header("cookie", &rcookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .send(format!(
            "_csrf={rcsrf}&metadata.name=x&spec.applications%5B0%5D.script=/etc/shadow"
        ))
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // An admin's check names an undeclared member at its field.
    let (cookie, csrf) = login(&d.token);
    let check = |body: String| -> Value {
        http.post(&format!("{}/ui/form/check", d.url))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .send(body)
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    };
    let c = check(format!(
        "_csrf={csrf}&metadata.name=x&spec.placement.members=node1%2C+nodeX&spec.applications%5B0%5D.script={}",
        app.display()
    ));
    assert_eq!(c["problems"][0]["path"], "spec.placement.members", "{c}");
    assert!(
        c["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nodeX"),
        "{c}"
    );
    // A FIFO in a script's place is refused at once, by the form's check
    // and by apply (an open of it would wait for a writer, and froze the
    // daemon).
    let fifo = dir.path().join("fifo_app");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let c = check(format!(
        "_csrf={csrf}&metadata.name=f&spec.applications%5B0%5D.script={}",
        fifo.display()
    ));
    assert!(
        c["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not a regular file"),
        "{c}"
    );
    let f2 = dir.path().join("fifo.yaml");
    std::fs::write(
        &f2,
        format!(
            "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: f\nspec:\n  applications:\n    - script: {}\n",
            fifo.display()
        ),
    )
    .unwrap();
    let (code, _, err) = d.run(&["apply", "-f", f2.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("not a regular file"), "{err}");
    assert!(d.get_json("/v1/services").is_array(), "the API answers");
    // `ev` was applied by root with `clusvc apply`: not editable here.
    let edit = http
        .get(&format!("{}/ui/services/ev/edit", d.url))
        .header("cookie", &cookie)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(edit.contains("was applied by apply@root"), "{edit}");
    let c = check(format!(
        "_csrf={csrf}&metadata.name=ev&spec.applications%5B0%5D.script={}",
        app.display()
    ));
    assert_eq!(c["problems"][0]["path"], "metadata.name", "{c}");
}
