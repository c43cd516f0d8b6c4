//! The core crate stays pure: no async runtime, no system calls, no clock,
//! no filesystem. Its planner is used by the dry-run exactly as by the
//! controller, and that only holds while it cannot reach the outside world.

use std::path::Path;
use std::process::Command;

/// Crates that would let the core do I/O or run async code.
const FORBIDDEN_CRATES: &[&str] = &[
    "tokio", "nix", "libc", "axum", "hyper", "mio", "notify", "ureq", "rustix",
];

/// Source text that reads the clock or touches the system.
const FORBIDDEN_TEXT: &[&str] = &[
    "std::fs",
    "std::process",
    "std::thread",
    "std::env",
    "std::net::TcpStream",
    "std::net::UdpSocket",
    "SystemTime::now",
    "Instant::now",
    "File::open",
    "tokio::",
];

#[test]
fn the_core_crate_depends_on_no_io_or_async_crate() {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-p",
            "clusvc-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(names.contains(&"clusvc-core"), "{tree}");
    for bad in FORBIDDEN_CRATES {
        assert!(
            !names.contains(bad),
            "clusvc-core depends on {bad}:\n{tree}"
        );
    }
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_core_sources_touch_no_clock_filesystem_or_process() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("controller/core");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(
        files.len() > 10,
        "found {} files under {root:?}",
        files.len()
    );
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        // Unit tests may use what they like.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for bad in FORBIDDEN_TEXT {
            for (n, line) in code.lines().enumerate() {
                if line.contains(bad) && !line.trim_start().starts_with("//") {
                    found.push(format!("{}:{}: {bad}", f.display(), n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "clusvc-core is not pure:\n{}",
        found.join("\n")
    );
}
