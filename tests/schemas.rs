//! `crds/` matches the Rust types, and every manifest in `manifests/` and
//! `examples/` validates against those schemas.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn crds_are_up_to_date() {
    for (name, text) in clusvc_manifest::schema::files() {
        let path = root().join("crds").join(&name);
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == text,
            "crds/{name} is stale: run `cargo run -- schema --write crds/` and commit the result"
        );
    }
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
}

fn validator(stem: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join(format!("crds/{stem}.schema.json"))).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

#[test]
fn every_manifest_and_example_validates_against_the_schemas() {
    let member = validator("member");
    let service = validator("service");
    let mut files = Vec::new();
    yaml_files(&root().join("manifests"), &mut files);
    yaml_files(&root().join("examples"), &mut files);
    let mut docs = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let values: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for v in values {
            let kind = v["kind"].as_str().unwrap_or_default().to_string();
            let validator = match kind.as_str() {
                "Member" => &member,
                "Service" => &service,
                other => panic!("{}: unexpected kind {other:?}", file.display()),
            };
            let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{}: {errors:?}", file.display());
            docs += 1;
        }
        let first = text.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("# yaml-language-server: $schema="),
            "{} lacks the yaml-language-server schema line",
            file.display()
        );
    }
    assert!(docs >= 8, "only {docs} documents checked");
}

#[test]
fn the_schema_rejects_what_the_loader_rejects() {
    let service = validator("service");
    let bad = serde_json::json!({
        "apiVersion": "clusvc/v1", "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"timout": "5s", "checkInterval": "40 parsecs",
                 "recovery": {"maxRestarts": 1000},
                 "applications": [{"script": "/x", "ocf": "heartbeat:a"}]}
    });
    let errors: Vec<String> = service.iter_errors(&bad).map(|e| e.to_string()).collect();
    assert!(errors.len() >= 4, "{errors:?}");
}
