//! The manifest reference (`docs/manifest.md`) names every field the
//! schemas in `crds/` define, so a new field cannot ship undocumented.

use std::path::Path;

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Follows a local `$ref` (`#/$defs/Name`).
fn resolve<'a>(schema: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.trim_start_matches("#/$defs/");
            &schema["$defs"][name]
        }
        None => v,
    }
}

/// Every field path of an object schema: `spec.devices[].path`.
fn paths(schema: &Value, v: &Value, prefix: &str, out: &mut Vec<String>) {
    let v = resolve(schema, v);
    // Optional fields are `anyOf: [{$ref}, {type: null}]`.
    if let Some(any) = v.get("anyOf").and_then(Value::as_array) {
        for a in any {
            paths(schema, a, prefix, out);
        }
        return;
    }
    if let Some(items) = v.get("items") {
        paths(schema, items, &format!("{prefix}[]"), out);
        return;
    }
    if let Some(props) = v.get("properties").and_then(Value::as_object) {
        for (name, p) in props {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            out.push(path.clone());
            paths(schema, p, &path, out);
        }
    }
}

#[test]
fn the_manifest_reference_documents_every_field() {
    let doc = std::fs::read_to_string(root().join("docs/manifest.md")).unwrap();
    let mut missing = Vec::new();
    for kind in ["member", "service"] {
        let text =
            std::fs::read_to_string(root().join(format!("crds/{kind}.schema.json"))).unwrap();
        let schema: Value = serde_json::from_str(&text).unwrap();
        let mut all = Vec::new();
        paths(&schema, &schema, "", &mut all);
        assert!(all.len() > 5, "{kind}: {all:?}");
        for p in all {
            // Objects are documented through their fields.
            let documented = doc.contains(&format!("`{p}`"))
                || doc.contains(&format!("`{p}.",))
                || doc.contains(&format!("`{p}[]"));
            if !documented {
                missing.push(format!("{kind}: {p}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/manifest.md does not document:\n{}",
        missing.join("\n")
    );
}
