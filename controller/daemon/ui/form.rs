//! The service form: its fields are named by the manifest path they set
//! (`metadata.name`, `spec.checkInterval`, `spec.filesystems[0].mountPoint`),
//! so the form becomes a manifest text, which is validated by the same
//! loader as `clusvc validate` and whose errors name the same paths: each
//! is shown next to the field of that name. The text is also what the
//! page shows for a GitOps repository, and what **Apply** sends.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use clusvc_core::model::{MemberRefs, Service};
use clusvc_manifest::{Input, Options};

/// A form with more rows than this of one kind is refused.
pub(crate) const MAX_ROWS: usize = 256;

/// A field of a resource row: (field, label, list-valued).
pub(crate) type Column = (&'static str, &'static str, bool);

/// The resource kinds, as their list fields, in start order, with a label
/// and each row's fields.
pub(crate) const KINDS: &[(&str, &str, &[Column])] = &[
    (
        "devices",
        "Block devices",
        &[("path", "Device path", false)],
    ),
    (
        "filesystems",
        "Filesystems",
        &[
            ("device", "Device", false),
            ("mountPoint", "Mount point", false),
            ("fsType", "Type", false),
            ("options", "Options (comma-separated)", true),
        ],
    ),
    (
        "nfsExports",
        "NFS exports",
        &[
            ("path", "Path", false),
            ("clients", "Clients (comma-separated)", true),
            ("options", "Options (comma-separated)", true),
        ],
    ),
    (
        "ipAddresses",
        "IP addresses",
        &[
            ("address", "Address (CIDR)", false),
            ("interface", "Interface", false),
        ],
    ),
    (
        "sambaShares",
        "Samba shares",
        &[("name", "Share name", false), ("path", "Path", false)],
    ),
    (
        "applications",
        "Applications",
        &[
            ("script", "User script", false),
            ("directory", "Script directory", false),
        ],
    ),
];

/// Scalar fields of `spec` that are numbers.
const NUMBERS: &[&str] = &["spec.recovery.maxRestarts"];

/// Fields that are comma-separated lists.
const LISTS: &[&str] = &["spec.placement.members"];

/// Fields that are check boxes (`on` when checked, absent otherwise).
const FLAGS: &[&str] = &[
    "spec.placement.ordered",
    "spec.placement.restricted",
    "spec.placement.failback",
];

/// A form that is not one (a field name that is no manifest path, too
/// many rows).
#[derive(Debug, thiserror::Error)]
pub(crate) enum FormError {
    /// A field this form does not have.
    #[error("unknown form field {0:?}")]
    UnknownField(String),
    /// Too many rows of a kind.
    #[error("more than {MAX_ROWS} rows of {0}")]
    TooManyRows(String),
}

/// One problem, at a field path (empty: the whole service).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Problem {
    pub path: String,
    pub message: String,
}

/// A form read: the manifest text it makes, and the row numbers of each
/// kind as the form numbered them (empty rows are left out of the
/// manifest, so `spec.filesystems[1]` may be the form's row 2).
#[derive(Debug)]
pub(crate) struct Read {
    pub yaml: String,
    rows: BTreeMap<String, Vec<usize>>,
}

fn list(v: &str) -> Value {
    Value::Array(
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Value::String(s.to_string()))
            .collect(),
    )
}

/// Reads the form's fields (`_csrf` and other `_` fields are skipped).
pub(crate) fn read(fields: &[(String, String)]) -> Result<Read, FormError> {
    let mut spec = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut name = String::new();
    let mut enabled = true;
    // kind -> row -> field -> value
    let mut rows: BTreeMap<&str, BTreeMap<usize, Map<String, Value>>> = BTreeMap::new();
    let mut scalars: Vec<(&str, Value)> = Vec::new();
    for (k, v) in fields {
        if k.starts_with('_') {
            continue;
        }
        // Kept from the edited object (hidden fields) as they were: not
        // trimmed, and with the CRLF a browser submits for LF undone.
        if let Some(key) = k.strip_prefix("metadata.labels.") {
            labels.insert(key.to_string(), Value::String(v.replace("\r\n", "\n")));
            continue;
        }
        if let Some(key) = k.strip_prefix("metadata.annotations.") {
            annotations.insert(key.to_string(), Value::String(v.replace("\r\n", "\n")));
            continue;
        }
        let v = v.trim();
        if k == "metadata.name" {
            name = v.to_string();
            continue;
        }
        if k == "spec.enabled" {
            enabled = v != "false";
            continue;
        }
        if let Some(rest) = k.strip_prefix("spec.")
            && let Some((kind, rest)) = rest.split_once('[')
            && let Some((idx, field)) = rest.split_once("].")
            && let Some((_, _, fields_of)) = KINDS.iter().find(|(n, _, _)| *n == kind)
            && let Some((field, _, is_list)) = fields_of.iter().find(|(f, _, _)| *f == field)
        {
            let idx: usize = idx
                .parse()
                .map_err(|_| FormError::UnknownField(k.clone()))?;
            if idx >= MAX_ROWS {
                return Err(FormError::TooManyRows(kind.to_string()));
            }
            let kind = KINDS.iter().find(|(n, _, _)| *n == kind).expect("found").0;
            let row = rows.entry(kind).or_default().entry(idx).or_default();
            if !v.is_empty() {
                let value = if *is_list {
                    list(v)
                } else {
                    Value::String(v.to_string())
                };
                row.insert(field.to_string(), value);
            }
            continue;
        }
        let path = [
            "spec.checkInterval",
            "spec.timeout",
            "spec.recovery.policy",
            "spec.recovery.maxRestarts",
            "spec.recovery.restartWindow",
            "spec.placement.members",
            "spec.placement.ordered",
            "spec.placement.restricted",
            "spec.placement.failback",
        ]
        .into_iter()
        .find(|p| p == k)
        .ok_or_else(|| FormError::UnknownField(k.clone()))?;
        if v.is_empty() {
            continue;
        }
        let value = if NUMBERS.contains(&path) {
            v.parse::<u64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(v.to_string()))
        } else if LISTS.contains(&path) {
            list(v)
        } else if FLAGS.contains(&path) {
            Value::Bool(true)
        } else {
            Value::String(v.to_string())
        };
        scalars.push((path, value));
    }
    if !enabled {
        spec.insert("enabled".into(), Value::Bool(false));
    }
    for (path, value) in scalars {
        let parts: Vec<&str> = path.trim_start_matches("spec.").split('.').collect();
        match parts.as_slice() {
            [one] => {
                spec.insert((*one).to_string(), value);
            }
            [group, field] => {
                let g = spec
                    .entry((*group).to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = g {
                    m.insert((*field).to_string(), value);
                }
            }
            _ => {}
        }
    }
    let mut numbering = BTreeMap::new();
    for (kind, _, _) in KINDS {
        let Some(kind_rows) = rows.remove(kind) else {
            continue;
        };
        let kept: Vec<(usize, Map<String, Value>)> = kind_rows
            .into_iter()
            .filter(|(_, r)| !r.is_empty())
            .collect();
        if kept.is_empty() {
            continue;
        }
        numbering.insert(kind.to_string(), kept.iter().map(|(i, _)| *i).collect());
        spec.insert(
            kind.to_string(),
            Value::Array(kept.into_iter().map(|(_, r)| Value::Object(r)).collect()),
        );
    }
    let mut doc = Map::new();
    doc.insert("apiVersion".into(), "clusvc/v1".into());
    doc.insert("kind".into(), "Service".into());
    let mut meta = Map::new();
    meta.insert("name".into(), Value::String(name));
    if !labels.is_empty() {
        meta.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    doc.insert("metadata".into(), Value::Object(meta));
    doc.insert("spec".into(), Value::Object(spec));
    let yaml = serde_saphyr::to_string(&Value::Object(doc)).unwrap_or_default();
    Ok(Read {
        yaml,
        rows: numbering,
    })
}

impl Read {
    /// A path of the manifest as the form names it (row numbers as the
    /// form's).
    fn form_path(&self, path: &str) -> String {
        for (kind, numbers) in &self.rows {
            let prefix = format!("spec.{kind}[");
            if let Some(rest) = path.strip_prefix(&prefix)
                && let Some((idx, tail)) = rest.split_once(']')
                && let Ok(i) = idx.parse::<usize>()
                && let Some(orig) = numbers.get(i)
            {
                return format!("{prefix}{orig}]{tail}");
            }
        }
        path.to_string()
    }

    /// A message with the manifest paths in it numbered as the form's
    /// rows (`also at spec.ipAddresses[0]` names the form's row).
    fn form_paths_in(&self, message: &str) -> String {
        let mut out = String::with_capacity(message.len());
        let mut rest = message;
        while let Some(at) = rest.find("spec.") {
            out.push_str(&rest[..at]);
            let tail = &rest[at..];
            let end = tail.find(']').map_or(0, |i| i + 1);
            let candidate = &tail[..end];
            if end > 0 && candidate.contains('[') {
                out.push_str(&self.form_path(candidate));
                rest = &tail[end..];
            } else {
                out.push_str("spec.");
                rest = &tail[5..];
            }
        }
        out.push_str(rest);
        out
    }

    /// Validates the text as `clusvc validate` would (scripts read;
    /// members may be declared in the store): the service, or every
    /// problem at its form path.
    pub fn validate(&self) -> Result<Service, Vec<Problem>> {
        let options = Options {
            check_scripts: true,
            member_refs: MemberRefs::InInputOrStore,
        };
        match clusvc_manifest::load(&[Input::new("form", self.yaml.clone())], options) {
            Ok(loaded) => loaded
                .desired
                .services()
                .values()
                .next()
                .cloned()
                .ok_or_else(|| {
                    vec![Problem {
                        path: String::new(),
                        message: "the form declares no service".into(),
                    }]
                }),
            Err(errors) => Err(errors
                .0
                .into_iter()
                .map(|e| Problem {
                    path: self.form_path(&e.path),
                    message: self.form_paths_in(&e.message),
                })
                .collect()),
        }
    }
}

/// The form's fields for an existing service (to edit it).
pub(crate) fn fields_of(svc: &Service) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    let s = &svc.spec;
    f.insert("metadata.name".into(), svc.metadata.name.clone());
    for (k, v) in &svc.metadata.labels {
        f.insert(format!("metadata.labels.{k}"), v.clone());
    }
    for (k, v) in &svc.metadata.annotations {
        // The ones the server sets (the source, ...) are its own.
        if !SERVER_ANNOTATIONS.contains(&k.as_str()) {
            f.insert(format!("metadata.annotations.{k}"), v.clone());
        }
    }
    f.insert("spec.enabled".into(), s.enabled.to_string());
    f.insert("spec.checkInterval".into(), s.check_interval.to_string());
    f.insert("spec.timeout".into(), s.timeout.to_string());
    let value = serde_json::to_value(s).unwrap_or_default();
    if let Some(r) = value.get("recovery") {
        for k in ["policy", "maxRestarts", "restartWindow"] {
            if let Some(v) = r.get(k) {
                f.insert(format!("spec.recovery.{k}"), scalar(v));
            }
        }
    }
    f.insert(
        "spec.placement.members".into(),
        s.placement.members.join(", "),
    );
    for (k, on) in [
        ("ordered", s.placement.ordered),
        ("restricted", s.placement.restricted),
        ("failback", s.placement.failback),
    ] {
        if on {
            f.insert(format!("spec.placement.{k}"), "on".into());
        }
    }
    for (kind, _, fields) in KINDS {
        if let Some(Value::Array(rows)) = value.get(*kind) {
            for (i, row) in rows.iter().enumerate() {
                for (field, _, _) in *fields {
                    if let Some(v) = row.get(*field) {
                        f.insert(format!("spec.{kind}[{i}].{field}"), scalar(v));
                    }
                }
            }
        }
    }
    f
}

/// Annotations the server sets itself (not carried by the form).
const SERVER_ANNOTATIONS: &[&str] = &[
    clusvc_core::api::SOURCE_ANNOTATION,
    clusvc_core::api::MANIFEST_ANNOTATION,
    clusvc_core::api::ENABLED_OVERRIDE_ANNOTATION,
    clusvc_core::api::ENABLED_IN_SOURCE_ANNOTATION,
];

/// What a service sets that the form has no field for (editing it here
/// would drop them): the form is read-only for it, naming them.
pub(crate) fn unsupported(svc: &Service) -> Vec<&'static str> {
    let s = &svc.spec;
    let mut out = Vec::new();
    if [
        s.devices.len(),
        s.filesystems.len(),
        s.nfs_exports.len(),
        s.ip_addresses.len(),
        s.samba_shares.len(),
        s.applications.len(),
    ]
    .into_iter()
    .any(|n| n >= MAX_ROWS)
    {
        out.push("more resources of a kind than the form has rows");
    }
    if s.devices
        .iter()
        .any(|d| !d.activate.is_empty() || !d.deactivate.is_empty())
    {
        out.push("device activate/deactivate commands");
    }
    if s.filesystems.iter().any(|f| f.fsck) {
        out.push("filesystem fsck");
    }
    if s.filesystems.iter().any(|f| f.force_unmount) {
        out.push("filesystem forceUnmount");
    }
    if s.nfs_exports
        .iter()
        .any(|e| e.server != clusvc_core::model::NfsServer::default())
    {
        out.push("NFS export server");
    }
    if s.samba_shares.iter().any(|x| !x.parameters.is_empty()) {
        out.push("Samba share parameters");
    }
    if s.applications.iter().any(|a| a.function.is_some()) {
        out.push("application function");
    }
    if s.applications.iter().any(|a| a.ocf.is_some()) {
        out.push("OCF applications");
    }
    if s.applications.iter().any(|a| !a.parameters.is_empty()) {
        out.push("application parameters");
    }
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(scalar).collect::<Vec<_>>().join(", "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// How many rows of a kind the form has for these fields (at least one
/// empty row, so a kind can be added without JavaScript).
pub(crate) fn rows_of(fields: &BTreeMap<String, String>, kind: &str) -> usize {
    let prefix = format!("spec.{kind}[");
    let used = fields
        .keys()
        .filter_map(|k| k.strip_prefix(&prefix))
        .filter_map(|r| r.split_once(']'))
        .filter_map(|(i, _)| i.parse::<usize>().ok())
        .max()
        .map_or(0, |m| m + 1);
    (used + 1).min(MAX_ROWS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_form_becomes_a_manifest_and_errors_name_the_form_rows() {
        let r = read(&f(&[
            ("_csrf", "x"),
            ("metadata.name", "web"),
            ("spec.checkInterval", "10s"),
            ("spec.placement.members", "a, b"),
            ("spec.placement.ordered", "on"),
            ("spec.recovery.maxRestarts", "3"),
            ("spec.ipAddresses[0].address", ""),
            ("spec.ipAddresses[1].address", "not-an-ip"),
        ]))
        .unwrap();
        assert!(r.yaml.contains("name: web"), "{}", r.yaml);
        assert!(r.yaml.contains("maxRestarts: 3"), "{}", r.yaml);
        assert!(r.yaml.contains("ordered: true"), "{}", r.yaml);
        let problems = r.validate().unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.path.starts_with("spec.ipAddresses[1]")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_bad_interval_is_reported_at_its_field() {
        let r = read(&f(&[
            ("metadata.name", "web"),
            ("spec.checkInterval", "soon"),
        ]))
        .unwrap();
        let problems = r.validate().unwrap_err();
        assert_eq!(problems[0].path, "spec.checkInterval", "{problems:?}");
    }

    #[test]
    fn unknown_fields_and_too_many_rows_are_refused() {
        assert!(matches!(
            read(&f(&[("spec.shell", "rm -rf /")])),
            Err(FormError::UnknownField(_))
        ));
        assert!(matches!(
            read(&f(&[("spec.devices[9999].path", "/dev/x")])),
            Err(FormError::TooManyRows(_))
        ));
        assert!(matches!(
            read(&f(&[("spec.devices[0].nosuch", "x")])),
            Err(FormError::UnknownField(_))
        ));
    }

    #[test]
    fn an_edited_service_fills_the_form_it_came_from() {
        let r = read(&f(&[
            ("metadata.name", "web"),
            ("spec.timeout", "30s"),
            ("spec.filesystems[0].device", "/dev/loop0"),
            ("spec.filesystems[0].mountPoint", "/mnt/web"),
            ("spec.filesystems[0].options", "ro, noatime"),
        ]))
        .unwrap();
        let svc = r.validate().unwrap();
        let fields = fields_of(&svc);
        assert_eq!(fields["spec.filesystems[0].mountPoint"], "/mnt/web");
        assert_eq!(fields["spec.filesystems[0].options"], "ro, noatime");
        assert_eq!(rows_of(&fields, "filesystems"), 2);
        assert_eq!(rows_of(&fields, "devices"), 1);
        let again: Vec<(String, String)> = fields.into_iter().collect();
        assert_eq!(read(&again).unwrap().validate().unwrap(), svc);
        assert!(unsupported(&svc).is_empty());
    }

    #[test]
    fn labels_and_own_annotations_survive_an_edit_and_unknown_fields_are_named() {
        let text = "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: web\n  labels:\n    tier: front\n  annotations:\n    team/owner: ops\nspec:\n  filesystems:\n    - device: /dev/loop0\n      mountPoint: /mnt/web\n      fsck: true\n";
        let loaded = clusvc_manifest::load(
            &[Input::new("t", text)],
            Options {
                check_scripts: false,
                member_refs: MemberRefs::InInputOrStore,
            },
        )
        .unwrap();
        let svc = loaded.desired.services()["web"].clone();
        assert_eq!(unsupported(&svc), vec!["filesystem fsck"]);
        let fields: Vec<(String, String)> = fields_of(&svc).into_iter().collect();
        let again = read(&fields).unwrap().validate().unwrap();
        assert_eq!(again.metadata.labels["tier"], "front");
        assert_eq!(again.metadata.annotations["team/owner"], "ops");
    }
}
