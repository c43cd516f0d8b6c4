//! The README's command session runs as written: every `$ clusvc ...` line
//! of its "A session" and pull-request blocks, in order, against a daemon
//! started as the README says (member `node1`, a scratch state directory),
//! exits 0 (or 1 for a plan with changes), and prints the lines the README
//! shows (timestamps, ages and elided parts aside).

mod common;

use common::Daemon;

/// The `$ clusvc ...` commands of the fenced block after `marker`, each
/// with the output lines the README shows for it.
fn session(readme: &str, marker: &str) -> Vec<(String, Vec<String>)> {
    let start = readme
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} not in README"));
    let block = &readme[start..];
    let block = &block[block.find("```").unwrap() + 3..];
    let block = &block[block.find('\n').unwrap() + 1..];
    let block = &block[..block.find("```").unwrap()];
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in block.lines() {
        if let Some(cmd) = line.strip_prefix("$ ") {
            out.push((cmd.to_string(), Vec::new()));
        } else if let Some((_, shown)) = out.last_mut() {
            shown.push(line.to_string());
        }
    }
    out
}

/// Whether an output line matches what the README shows, where `...`
/// elides anything and times and ages vary.
fn matches(shown: &str, real: &str) -> bool {
    let norm = |s: &str| {
        s.split_whitespace()
            .map(|w| {
                if w.chars().next().is_some_and(|c| c.is_ascii_digit())
                    && (w.contains('T') || w.ends_with('s') || w.ends_with('m'))
                {
                    "<t>".to_string()
                } else {
                    w.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    if let Some((head, _)) = shown.split_once("...") {
        return norm(real).starts_with(norm(head).trim_end());
    }
    norm(shown) == norm(real)
}

fn run_block(d: &Daemon, marker: &str) {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let commands = session(&readme, marker);
    assert!(commands.len() >= 2, "{marker}: {commands:?}");
    for (cmd, shown) in commands {
        let args: Vec<&str> = cmd.split_whitespace().collect();
        assert_eq!(args[0], "clusvc", "{cmd}");
        let (code, stdout, stderr) = d.run(&args[1..]);
        let expected_code = if args[1] == "plan" { 1 } else { 0 };
        assert_eq!(code, expected_code, "{cmd}\n{stdout}\n{stderr}");
        let real: Vec<&str> = stdout.lines().collect();
        for (i, line) in shown.iter().enumerate() {
            if line.trim() == "..." {
                break;
            }
            // Events depend on timing: their lines are checked loosely.
            if args[1] == "events" {
                assert!(!real.is_empty(), "{cmd}: no events");
                break;
            }
            assert!(
                real.get(i).is_some_and(|r| matches(line, r)),
                "{cmd}: line {i} differs\nREADME: {line}\nreal:   {}\n{stdout}",
                real.get(i).copied().unwrap_or("<none>")
            );
        }
    }
}

#[test]
fn the_readme_session_runs_as_written() {
    let d = Daemon::start(&[]);
    run_block(&d, "A session, from the repository root");
    run_block(&d, "A pull-request check for a GitOps repository");
}
