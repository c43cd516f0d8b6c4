//! Bad input: each rule of SPEC §2 with its exact message and position, all
//! errors of an input together, nothing built from an invalid input, and
//! parser robustness (fuzzed with proptest).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use clusvc_manifest::{self as manifest, Input, Options};
use proptest::prelude::*;

const MEMBERS: &str = "apiVersion: clusvc/v1\nkind: Member\nmetadata:\n  name: node1\n---\napiVersion: clusvc/v1\nkind: Member\nmetadata:\n  name: node2\n";

fn service(name: &str, spec: &str) -> String {
    format!("apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

/// Errors for one input file `t.yaml` (plus the two members in `m.yaml`).
fn errors(text: &str) -> Vec<String> {
    let inputs = vec![Input::new("m.yaml", MEMBERS), Input::new("t.yaml", text)];
    match manifest::load(&inputs, Options::default()) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

fn one_error(text: &str) -> String {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    errs.into_iter().next().unwrap()
}

#[test]
fn invalid_duration_names_file_line_column_and_field() {
    assert_eq!(
        one_error(&service("web", "  checkInterval: 40 parsecs\n")),
        r#"t.yaml:6:18: spec.checkInterval: invalid duration "40 parsecs""#
    );
}

#[test]
fn bare_integer_durations_are_seconds() {
    assert!(errors(&service("web", "  checkInterval: 40\n  timeout: 1m30s\n")).is_empty());
}

#[test]
fn unknown_fields_point_at_the_key() {
    let e = one_error(&service("web", "  timout: 5s\n"));
    assert!(
        e.starts_with(r#"t.yaml:6:3: spec.timout: unknown field "timout" (expected one of: enabled, checkInterval, timeout"#),
        "{e}"
    );
}

#[test]
fn wrong_types_are_reported_with_the_field() {
    assert_eq!(
        one_error(&service("web", "  enabled: maybe\n")),
        r#"t.yaml:6:12: spec.enabled: invalid type: string "maybe", expected a boolean"#
    );
    assert_eq!(
        one_error(&service("web", "  recovery:\n    policy: retry\n")),
        r#"t.yaml:7:13: spec.recovery.policy: unknown value "retry" (expected one of restart, relocate, disable)"#
    );
}

#[test]
fn duplicate_names_point_at_both_definitions() {
    let text = format!(
        "{}---\n{}",
        service("web", "  {}\n"),
        service("web", "  {}\n")
    );
    assert_eq!(
        one_error(&text),
        r#"t.yaml:11:9: metadata.name: duplicate service name "web" (first defined at t.yaml:4:9)"#
    );
}

#[test]
fn names_must_be_dns_labels() {
    assert!(
        one_error(&service("Web_1", "  {}\n"))
            .starts_with(r#"t.yaml:4:9: metadata.name: invalid name "Web_1": must be a DNS label"#)
    );
}

#[test]
fn placement_on_an_undeclared_member_is_rejected() {
    assert_eq!(
        one_error(&service(
            "web",
            "  placement:\n    members: [node1, node9]\n"
        )),
        r#"t.yaml:7:22: spec.placement.members[1]: undeclared member "node9""#
    );
}

#[test]
fn restricted_placement_needs_members() {
    assert_eq!(
        one_error(&service("web", "  placement:\n    restricted: true\n")),
        "t.yaml:7:17: spec.placement.restricted: restricted placement needs a non-empty members list"
    );
}

#[test]
fn relative_paths_are_rejected() {
    assert_eq!(
        one_error(&service(
            "web",
            "  filesystems:\n    - device: /dev/loop7\n      mountPoint: srv/web\n"
        )),
        r#"t.yaml:8:19: spec.filesystems[0].mountPoint: relative path "srv/web": must be absolute"#
    );
}

#[test]
fn invalid_cidr_is_rejected() {
    assert_eq!(
        one_error(&service(
            "web",
            "  ipAddresses:\n    - address: 192.0.2.100/33\n"
        )),
        r#"t.yaml:7:16: spec.ipAddresses[0].address: invalid CIDR "192.0.2.100/33": prefix must be 0 to 32"#
    );
    assert_eq!(
        one_error(&service(
            "web",
            "  ipAddresses:\n    - address: 192.0.2.100\n"
        )),
        r#"t.yaml:7:16: spec.ipAddresses[0].address: invalid CIDR "192.0.2.100": expected ADDRESS/PREFIX, e.g. 192.0.2.100/24"#
    );
}

#[test]
fn max_restarts_is_bounded() {
    assert_eq!(
        one_error(&service("web", "  recovery:\n    maxRestarts: 101\n")),
        "t.yaml:7:18: spec.recovery.maxRestarts: 101 is out of range: must be 0 to 100"
    );
    assert_eq!(
        one_error(&service("web", "  recovery:\n    maxRestarts: -1\n")),
        r#"t.yaml:7:18: spec.recovery.maxRestarts: invalid value: integer "-1", expected a whole number from 0 to 4294967295"#
    );
}

#[test]
fn two_services_cannot_claim_one_ip_mount_point_or_share() {
    let a = service(
        "a",
        "  filesystems:\n    - {device: /dev/loop1, mountPoint: /srv/x}\n  ipAddresses:\n    - address: 192.0.2.5/24\n  sambaShares:\n    - {name: docs, path: /srv/x}\n",
    );
    let b = service(
        "b",
        "  filesystems:\n    - {device: /dev/loop2, mountPoint: /srv/x/}\n  ipAddresses:\n    - address: 192.0.2.5/16\n  sambaShares:\n    - {name: DOCS, path: /srv/y}\n",
    );
    let errs = errors(&format!("{a}---\n{b}"));
    assert_eq!(
        errs,
        [
            r#"t.yaml:19:40: spec.filesystems[0].mountPoint: mount point "/srv/x" is already claimed by another service (spec.filesystems[0].mountPoint) (first defined at t.yaml:4:9)"#,
            r#"t.yaml:21:16: spec.ipAddresses[0].address: IP address 192.0.2.5 is already claimed by another service (spec.ipAddresses[0].address) (first defined at t.yaml:4:9)"#,
            r#"t.yaml:23:14: spec.sambaShares[0].name: samba share name "docs" is already claimed by another service (spec.sambaShares[0].name) (first defined at t.yaml:4:9)"#,
        ]
    );
}

#[test]
fn application_needs_exactly_one_source() {
    assert_eq!(
        one_error(&service(
            "web",
            "  applications:\n    - script: /bin/true\n      ocf: heartbeat:x\n"
        )),
        "t.yaml:7:7: spec.applications[0]: exactly one of script, directory or ocf must be set"
    );
}

#[test]
fn wrong_api_version_and_kind_are_reported() {
    let errs = errors(
        "apiVersion: clusvc/v2\nkind: Service\nmetadata: {name: a}\n---\napiVersion: clusvc/v1\nkind: Pod\n---\nkind: Member\n",
    );
    assert_eq!(
        errs,
        [
            r#"t.yaml:1:13: apiVersion: unsupported apiVersion "clusvc/v2" (expected clusvc/v1)"#,
            r#"t.yaml:6:7: kind: unknown kind "Pod" (expected Member or Service)"#,
            r#"t.yaml:8:1: missing field "apiVersion""#,
        ]
    );
}

#[test]
fn yaml_syntax_errors_have_a_position() {
    let e = one_error("apiVersion: clusvc/v1\nkind: [Service\nmetadata: {}\n");
    assert!(e.starts_with("t.yaml:3:"), "{e}");
}

#[test]
fn all_errors_of_an_input_are_reported_together() {
    let text = service(
        "web",
        "  checkInterval: 40 parsecs\n  timout: 5s\n  placement:\n    members: [node9]\n  ipAddresses:\n    - address: 300.1.1.1/24\n  recovery:\n    maxRestarts: 500\n",
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 5, "{errs:#?}");
    let lines: Vec<&str> = errs.iter().map(|e| e.split(':').nth(1).unwrap()).collect();
    assert_eq!(lines, ["6", "7", "9", "11", "13"]);
}

fn temp_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("services")).unwrap();
    std::fs::write(dir.path().join("members.yaml"), MEMBERS).unwrap();
    dir
}

#[test]
fn a_directory_with_one_bad_file_yields_errors_and_no_state() {
    let dir = temp_tree();
    std::fs::write(dir.path().join("services/a.yaml"), service("a", "  {}\n")).unwrap();
    std::fs::write(
        dir.path().join("services/b.yml"),
        service("b", "  timeout: soon\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("services/notes.txt"), "not yaml: [").unwrap();
    let err = manifest::load_paths(&[dir.path().to_path_buf()], Options::default()).unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    let e = &err.0[0];
    assert!(e.file.ends_with("services/b.yml"), "{e}");
    assert_eq!(
        e.to_string().split_once(": ").unwrap().1,
        r#"spec.timeout: invalid duration "soon""#
    );

    std::fs::write(
        dir.path().join("services/b.yml"),
        service("b", "  timeout: 5s\n"),
    )
    .unwrap();
    let ok = manifest::load_paths(&[dir.path().to_path_buf()], Options::default()).unwrap();
    assert_eq!(ok.desired.services().len(), 2);
    assert_eq!(ok.desired.members().len(), 2);
}

fn script(dir: &std::path::Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn user_scripts_must_exist_and_define_a_usable_function() {
    let dir = temp_tree();
    let p = dir.path();
    script(p, "service_test", "test() {\n  return 0\n}\n");
    script(
        p,
        "apache_webserver",
        "helper() { :; }\nfunction other {\n :\n}\n",
    );
    script(p, "other_test", "test() {\n  return 0\n}\n");
    let text = service(
        "web",
        &format!(
            "  applications:\n    - script: {0}/service_test\n    - script: {0}/apache_webserver\n    - script: {0}/missing_x\n    - script: {0}/other_test\n      function: nope\n",
            p.display()
        ),
    );
    let errs: Vec<String> = errors(&text)
        .into_iter()
        .map(|e| e.replace(p.to_str().unwrap(), "<dir>"))
        .collect();
    assert_eq!(
        errs,
        [
            r#"t.yaml:8:15: spec.applications[1].script: script <dir>/apache_webserver: defines none of the functions "apache_webserver", "webserver", "apache" (it defines: helper, other)"#,
            "t.yaml:9:15: spec.applications[2].script: script <dir>/missing_x does not exist",
            r#"t.yaml:10:15: spec.applications[3].script: script <dir>/other_test: function "nope" is not defined in the script (it defines: test)"#,
        ]
    );
}

#[test]
fn script_paths_starting_with_dot_are_relative_to_the_manifest() {
    let dir = temp_tree();
    script(&dir.path().join("services"), "db_mysql", "mysql() { :; }\n");
    std::fs::write(
        dir.path().join("services/db.yaml"),
        service("db", "  applications:\n    - script: ./db_mysql\n"),
    )
    .unwrap();
    let ok = manifest::load_paths(&[dir.path().to_path_buf()], Options::default()).unwrap();
    let app = &ok.desired.services()["db"].spec.applications[0];
    let resolved = PathBuf::from(app.script.as_ref().unwrap());
    assert!(resolved.is_absolute());
    assert_eq!(resolved, dir.path().join("services/db_mysql"));
}

#[test]
fn script_directories_are_checked_entry_by_entry() {
    let dir = temp_tree();
    let d = dir.path().join("svc.d");
    std::fs::create_dir(&d).unwrap();
    script(&d, "web_apache", "apache() { :; }\n");
    script(&d, "bad_one", "nothing_here() { :; }\n");
    let text = service(
        "web",
        &format!("  applications:\n    - directory: {}\n", d.display()),
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains("bad_one: defines none of the functions"),
        "{}",
        errs[0]
    );
}

#[test]
fn oversized_and_deeply_nested_inputs_fail_fast() {
    let huge = format!("a: \"{}\"\n", "x".repeat(5 << 20));
    assert!(one_error(&huge).contains("manifest too large"));
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let e = one_error(&deep);
    assert!(e.starts_with("t.yaml:1:"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000),
        ..ProptestConfig::default()
    })]

    /// Arbitrary text never panics the loader; it is accepted or gets errors
    /// that carry a file name.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let r = manifest::load(&[Input::new("f.yaml", text)], Options { check_scripts: false, ..Options::default() });
        if let Err(e) = r {
            prop_assert!(!e.0.is_empty());
            prop_assert!(e.0.iter().all(|m| m.file == "f.yaml"));
        }
    }

    /// Mutations of a valid manifest never panic, and any error has a position.
    #[test]
    fn mutated_manifests_never_panic(
        cut in 0usize..600,
        insert in "[ -~\\n]{0,12}",
        drop in 0usize..8,
    ) {
        let base = std::fs::read_to_string(
            concat!(env!("CARGO_MANIFEST_DIR"), "/examples/nfs-samba-ip/cluster.yaml")
        ).unwrap();
        let cut = cut.min(base.len());
        let cut = (0..=cut).rev().find(|i| base.is_char_boundary(*i)).unwrap();
        let mut text = base[..cut].to_string();
        text.push_str(&insert);
        let rest = &base[cut..];
        let skip = (drop..=rest.len()).find(|i| rest.is_char_boundary(*i)).unwrap_or(rest.len());
        text.push_str(&rest[skip.min(rest.len())..]);
        let r = manifest::load(&[Input::new("f.yaml", text)], Options { check_scripts: false, ..Options::default() });
        if let Err(e) = r {
            prop_assert!(e.0.iter().all(|m| m.pos.line > 0 || m.message.contains("document")), "{e}");
        }
    }
}
