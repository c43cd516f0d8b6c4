//! The web console at cluster size, against the real binary:
//! `cargo bench --bench console [-- N]` (default 10,000 services).
//!
//! A `clusvc run` daemon gets N one-application services (checked every
//! 60 s) in one apply; once all run, each console request is made 30 times
//! over loopback with a logged-in session, and its time (request to last
//! byte: the server's time plus a loopback round trip) reported as p50,
//! p99 and max, with the bytes transferred (no compression). The first page
//! a browser loads is the overview plus its script and style sheet.

#[path = "gen/mod.rs"]
mod generate;

#[path = "../tests/common/mod.rs"]
#[allow(unused_macros)]
mod common;

use std::time::{Duration, Instant};

fn running(d: &common::Daemon) -> usize {
    let text = d
        .http()
        .get(&format!("{}/metrics", d.url))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("clusvc_services{state=\"running\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as usize
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let n: usize = args
        .iter()
        .find_map(|a| a.replace('_', "").parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let script = common::script(dir.path(), "bench_app", "app() { return 0; }\n");
    let manifests = dir.path().join("m");
    let spec = format!(
        "  checkInterval: 60s\n  applications:\n    - script: {}\n",
        script.display()
    );
    generate::service_files(&manifests, n, 1_000, &spec, "svc");
    let d = common::Daemon::start(&[]);
    let (code, _, err) = d.run(&["apply", "-f", manifests.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let deadline = Instant::now() + Duration::from_secs(1_800);
    while running(&d) < n {
        assert!(Instant::now() < deadline, "not all running");
        std::thread::sleep(Duration::from_secs(1));
    }
    println!("{n} services running");

    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let (cookie, csrf) = d.console_login(&d.token);
    let page = |path: &str| -> (u16, String) {
        let mut r = http
            .get(&format!("{}{path}", d.url))
            .header("cookie", &cookie)
            .call()
            .unwrap();
        let status = r.status().as_u16();
        (
            status,
            r.body_mut()
                .with_config()
                .limit(64 << 20)
                .read_to_string()
                .unwrap(),
        )
    };
    let (_, overview) = page("/ui/");
    let middle = format!("svc{}", n / 2);
    let form = format!(
        "_csrf={csrf}&metadata.name=new-one&spec.checkInterval=10s&spec.applications%5B0%5D.script={}",
        script.display()
    );
    let gets = [
        ("login page", "/ui/login".to_string()),
        ("overview (page 1)", "/ui/".to_string()),
        ("overview, page 50", "/ui/?page=49".to_string()),
        (
            "overview, filtered",
            format!("/ui/?q={}", &middle[..middle.len().min(5)]),
        ),
        ("overview, by last check", "/ui/?sort=lastCheck".to_string()),
        ("service page", format!("/ui/services/{middle}")),
        ("edit form", format!("/ui/services/{middle}/edit")),
        (
            "restart confirmation (plan)",
            format!("/ui/services/{middle}/ops/restart"),
        ),
        ("events", "/ui/events".to_string()),
        ("new service form", "/ui/new".to_string()),
    ];
    let runs = 30;
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>10}",
        "request", "p50 ms", "p99 ms", "max ms", "bytes"
    );
    let report = |name: &str, mut times: Vec<f64>, bytes: usize| {
        times.sort_by(f64::total_cmp);
        let p = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        println!(
            "{name:<28} {:>9.1} {:>9.1} {:>9.1} {bytes:>10}",
            p(0.5),
            p(0.99),
            times[times.len() - 1]
        );
    };
    for (name, path) in &gets {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..runs {
            let t = Instant::now();
            let (status, body) = page(path);
            times.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(status, 200, "{path}: {body}");
            bytes = body.len();
        }
        report(name, times, bytes);
    }
    for (name, path) in [
        ("form check (as typed)", "/ui/form/check"),
        ("form preview (what-if plan)", "/ui/form/preview"),
    ] {
        let mut times = Vec::new();
        let mut bytes = 0;
        let mut last = String::new();
        for _ in 0..runs {
            let t = Instant::now();
            let mut r = http
                .post(&format!("{}{path}", d.url))
                .header("cookie", &cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .send(&form)
                .unwrap();
            let body = r.body_mut().read_to_string().unwrap();
            times.push(t.elapsed().as_secs_f64() * 1e3);
            bytes = body.len();
            last = body;
        }
        report(name, times, bytes);
        println!("    answer: {}", last.trim().replace('\n', " | "));
    }
    let (_, js) = page("/ui/assets/console.js");
    let (_, css) = page("/ui/assets/console.css");
    println!(
        "first page transferred: overview {} + script {} + style sheet {} = {} bytes (uncompressed)",
        overview.len(),
        js.len(),
        css.len(),
        overview.len() + js.len() + css.len()
    );
}
