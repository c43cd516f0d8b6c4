//! Golden plan scenarios: each directory under `tests/scenarios/` holds a
//! desired tree (`desired.yaml`), an optional observed state
//! (`observed.yaml`) and `scenario.yaml` (the time, a description, members
//! to fail). The plan text is compared with an insta snapshot, and executing
//! the plan must converge: planning its result gives no changes.

use std::path::{Path, PathBuf};

use clusvc_core::model::{ObservedState, Timestamp};
use clusvc_core::plan::{plan, simulate};
use clusvc_manifest::{self as manifest, Input, Options};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Scenario {
    description: String,
    now: String,
    #[serde(default)]
    fail_members: Vec<String>,
}

fn scenario_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/scenarios exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn the_corpus_has_at_least_forty_scenarios() {
    assert!(scenario_dirs().len() >= 40, "{}", scenario_dirs().len());
}

/// Every scenario is checked; all failures are reported together, so one
/// failing scenario does not hide the others.
#[test]
fn golden_scenarios_plan_as_recorded_and_converge() {
    let failed: Vec<String> = scenario_dirs()
        .into_iter()
        .filter_map(|dir| {
            let name = dir.file_name().unwrap().to_str().unwrap().to_string();
            std::panic::catch_unwind(|| check_scenario(&dir))
                .is_err()
                .then_some(name)
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} scenario(s) failed (see above):\n  {}",
        failed.len(),
        failed.join("\n  ")
    );
}

fn check_scenario(dir: &Path) {
    {
        let name = dir.file_name().unwrap().to_str().unwrap().to_string();
        let scenario: Scenario =
            serde_saphyr::from_str(&std::fs::read_to_string(dir.join("scenario.yaml")).unwrap())
                .unwrap_or_else(|e| panic!("{name}/scenario.yaml: {e}"));
        let now = Timestamp::parse(&scenario.now).unwrap();
        let loaded = manifest::load_paths(
            &[dir.join("desired.yaml")],
            Options {
                check_scripts: false,
                ..Options::default()
            },
        )
        .unwrap_or_else(|e| panic!("{name}/desired.yaml:\n{e}"));
        let observed_path = dir.join("observed.yaml");
        let mut observed = if observed_path.exists() {
            let input = Input::new(
                format!("{name}/observed.yaml"),
                std::fs::read_to_string(&observed_path).unwrap(),
            );
            manifest::load::decode_as::<ObservedState>(&input).unwrap_or_else(|e| panic!("{e}"))
        } else {
            ObservedState::default()
        };
        for m in &scenario.fail_members {
            observed.fail_member(m, now);
        }
        let desired = &loaded.desired;
        let p = plan(desired, &observed, now);
        insta::with_settings!({
            description => scenario.description.clone(),
            omit_expression => true,
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!(name.clone(), p.to_string());
        });
        let after = simulate::apply(desired, &observed, &p);
        let again = plan(desired, &after, now);
        assert!(
            !again.has_changes(),
            "{name}: planning the executed plan's result is not empty:\n{again}"
        );
    }
}
