//! The validated desired state, and the rules that make an input valid.
//!
//! [`DesiredState::from_objects`] builds one from input, validating it all,
//! so nothing downstream sees unvalidated input. The controller's cache adds
//! stored objects one by one with [`DesiredState::insert_validated`]: they
//! were validated with the whole state they joined before they were stored
//! (and are checked again, one by one, as they are loaded). Rules that need the filesystem (user
//! scripts) live with the manifest loader; everything here is pure.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::manifest::{Application, Member, Object, Service, ServiceSpec};
use super::net::{check_nfs_client, parse_cidr};
use super::resource::ResourceRef;

/// Largest `maxRestarts` accepted.
pub const MAX_RESTARTS_LIMIT: u32 = 100;

/// Longest duration a manifest may give (check interval, timeout, restart
/// window, fencing timeout): one year. Larger values are typos, and would
/// overflow the clocks they are added to.
pub const MAX_DURATION: super::Duration = super::Duration::from_secs(365 * 24 * 3600);

fn check_duration(d: super::Duration, path: &str, push: &mut impl FnMut(String, String)) {
    if d > MAX_DURATION {
        push(
            path.to_string(),
            format!("{d} is too long: at most 8760h (one year)"),
        );
    }
}

/// One validation problem: which input object, which field, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Index of the object in the input list.
    pub object: usize,
    /// Field path inside it, e.g. `spec.ipAddresses[0].address`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// Another object the problem involves (the first of a duplicate).
    pub other: Option<usize>,
}

impl Issue {
    fn new(object: usize, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            object,
            path: path.into(),
            message: message.into(),
            other: None,
        }
    }
}

/// Members and services that passed every rule, keyed by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesiredState {
    members: BTreeMap<String, Member>,
    services: BTreeMap<String, Service>,
}

/// Where the members that services name must be declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemberRefs {
    /// In the same input: it is the whole desired state (a manifests
    /// directory, `validate`, an offline plan).
    #[default]
    InInput,
    /// In the input or already in the store: the input is a part sent to a
    /// server (`apply -f`, an online `plan -f`), which checks the merged
    /// state before it stores anything.
    InInputOrStore,
}

impl DesiredState {
    /// Validates objects and builds the state; all problems are returned
    /// together and nothing is built when there is any.
    pub fn from_objects(objects: Vec<Object>) -> Result<Self, Vec<Issue>> {
        Self::from_objects_with(objects, MemberRefs::InInput)
    }

    /// [`DesiredState::from_objects`], with the members services name
    /// checked as `refs` says.
    pub fn from_objects_with(objects: Vec<Object>, refs: MemberRefs) -> Result<Self, Vec<Issue>> {
        let issues = check_with(&objects, refs);
        if !issues.is_empty() {
            return Err(issues);
        }
        let mut state = DesiredState::default();
        // Taken from the end, the list shrinking as it empties, so it and
        // the maps do not both hold every object at once.
        let mut objects = objects;
        while let Some(object) = objects.pop() {
            if objects.len() < objects.capacity() / 2 && objects.capacity() > 1024 {
                objects.shrink_to_fit();
            }
            match object {
                Object::Member(m) => {
                    state.members.insert(m.metadata.name.clone(), m);
                }
                Object::Service(s) => {
                    state.services.insert(s.metadata.name.clone(), s);
                }
            }
        }
        Ok(state)
    }

    /// Declared members by name.
    pub fn members(&self) -> &BTreeMap<String, Member> {
        &self.members
    }

    /// Declared services by name.
    pub fn services(&self) -> &BTreeMap<String, Service> {
        &self.services
    }

    /// Takes one object into a state it was validated with: the server
    /// validates the whole resulting state before it stores an apply, so
    /// the controller's cache adds stored objects one by one without
    /// validating (and holding) everything again.
    pub fn insert_validated(&mut self, object: Object) {
        match object {
            Object::Member(m) => {
                self.members.insert(m.metadata.name.clone(), m);
            }
            Object::Service(s) => {
                self.services.insert(s.metadata.name.clone(), s);
            }
        }
    }

    /// Drops a member; returns whether it was there.
    pub fn remove_member(&mut self, name: &str) -> bool {
        self.members.remove(name).is_some()
    }

    /// Drops a service; returns whether it was there.
    pub fn remove_service(&mut self, name: &str) -> bool {
        self.services.remove(name).is_some()
    }

    /// All objects, members first, each sorted by name.
    pub fn objects(&self) -> impl Iterator<Item = Object> + '_ {
        self.members
            .values()
            .cloned()
            .map(Object::Member)
            .chain(self.services.values().cloned().map(Object::Service))
    }
}

/// Every rule of SPEC §2 that needs no I/O.
pub fn check(objects: &[Object]) -> Vec<Issue> {
    check_with(objects, MemberRefs::InInput)
}

/// [`check`], with the members services name checked as `refs` says.
pub fn check_with(objects: &[Object], refs: MemberRefs) -> Vec<Issue> {
    let mut issues = Vec::new();
    let mut member_names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut service_names: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, object) in objects.iter().enumerate() {
        let name = object.name();
        if let Err(msg) = check_dns_label(name) {
            issues.push(Issue::new(i, "metadata.name", msg));
        }
        check_metadata(i, object, &mut issues);
        let names = match object {
            Object::Member(_) => &mut member_names,
            Object::Service(_) => &mut service_names,
        };
        if let Some(&first) = names.get(name) {
            issues.push(Issue {
                other: Some(first),
                ..Issue::new(
                    i,
                    "metadata.name",
                    format!("duplicate {} name {name:?}", object.kind_lower()),
                )
            });
        } else {
            names.insert(name, i);
        }
    }
    let mut claims = Claims::default();
    for (i, object) in objects.iter().enumerate() {
        match object {
            Object::Member(m) => check_member(i, m, &mut issues),
            Object::Service(s) => {
                let members = (refs == MemberRefs::InInput).then_some(&member_names);
                check_service(i, s, members, &mut issues);
                claims.claim(objects, i, &s.spec, &mut issues);
            }
        }
    }
    issues.sort_by_key(|issue| issue.object);
    issues
}

/// Longest label key (a prefix and `/` count; as Kubernetes).
pub const MAX_LABEL_KEY: usize = 253;
/// Longest label value (as Kubernetes).
pub const MAX_LABEL_VALUE: usize = 63;
/// Most labels on one object.
pub const MAX_LABELS: usize = 64;
/// Largest total of an object's annotation keys and values (as Kubernetes).
pub const MAX_ANNOTATIONS_BYTES: usize = 256 << 10;

fn check_metadata(i: usize, object: &Object, issues: &mut Vec<Issue>) {
    let meta = match object {
        Object::Member(m) => &m.metadata,
        Object::Service(s) => &s.metadata,
    };
    if meta.labels.len() > MAX_LABELS {
        issues.push(Issue::new(
            i,
            "metadata.labels",
            format!("{} labels: at most {MAX_LABELS}", meta.labels.len()),
        ));
    }
    for (k, v) in &meta.labels {
        if k.is_empty() || k.len() > MAX_LABEL_KEY {
            issues.push(Issue::new(
                i,
                "metadata.labels",
                format!("label key of {} bytes: 1 to {MAX_LABEL_KEY}", k.len()),
            ));
        }
        if v.len() > MAX_LABEL_VALUE {
            issues.push(Issue::new(
                i,
                format!("metadata.labels.{k}"),
                format!("value of {} bytes: at most {MAX_LABEL_VALUE}", v.len()),
            ));
        }
    }
    let total: usize = meta
        .annotations
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if total > MAX_ANNOTATIONS_BYTES {
        issues.push(Issue::new(
            i,
            "metadata.annotations",
            format!("{total} bytes: at most {MAX_ANNOTATIONS_BYTES} in all"),
        ));
    }
}

fn check_dns_label(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid name {name:?}: must be a DNS label (lowercase letters, digits and '-', at most 63 characters, starting and ending with a letter or digit)"
        ))
    }
}

fn check_member(i: usize, m: &Member, issues: &mut Vec<Issue>) {
    if let Some(address) = &m.spec.address
        && address.trim().is_empty()
    {
        issues.push(Issue::new(i, "spec.address", "must not be empty"));
    }
    if let Some(f) = &m.spec.fencing {
        match f.command.first() {
            None => issues.push(Issue::new(i, "spec.fencing.command", "must name a program")),
            Some(program) => {
                if let Err(msg) = check_absolute(program) {
                    issues.push(Issue::new(i, "spec.fencing.command[0]", msg));
                }
            }
        }
        check_duration(f.timeout, "spec.fencing.timeout", &mut |p, m| {
            issues.push(Issue::new(i, p, m))
        });
        if f.timeout.is_zero() {
            issues.push(Issue::new(
                i,
                "spec.fencing.timeout",
                "must be greater than 0s",
            ));
        }
    }
}

fn check_absolute(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("must not be empty".to_string());
    }
    if !path.starts_with('/') {
        return Err(format!("relative path {path:?}: must be absolute"));
    }
    if path.split('/').any(|c| c == "..") {
        return Err(format!("path {path:?} must not contain '..'"));
    }
    if path.contains('\0') || path.contains('\n') {
        return Err(format!("path {path:?} contains a control character"));
    }
    Ok(())
}

/// `members`: the declared members, or `None` when they are checked
/// elsewhere (by the server, against the merged state).
fn check_service(
    i: usize,
    s: &Service,
    members: Option<&BTreeMap<&str, usize>>,
    issues: &mut Vec<Issue>,
) {
    let spec = &s.spec;
    let mut push = |path: String, msg: String| issues.push(Issue::new(i, path, msg));
    check_duration(spec.check_interval, "spec.checkInterval", &mut push);
    check_duration(spec.timeout, "spec.timeout", &mut push);
    check_duration(
        spec.recovery.restart_window,
        "spec.recovery.restartWindow",
        &mut push,
    );
    if spec.timeout.is_zero() {
        push("spec.timeout".into(), "must be greater than 0s".into());
    }
    if spec.recovery.max_restarts > MAX_RESTARTS_LIMIT {
        push(
            "spec.recovery.maxRestarts".into(),
            format!(
                "{} is out of range: must be 0 to {MAX_RESTARTS_LIMIT}",
                spec.recovery.max_restarts
            ),
        );
    }
    if spec.recovery.restart_window.is_zero() {
        push(
            "spec.recovery.restartWindow".into(),
            "must be greater than 0s".into(),
        );
    }
    let placement = &spec.placement;
    for (j, m) in placement.members.iter().enumerate() {
        if members.is_some_and(|known| !known.contains_key(m.as_str())) {
            push(
                format!("spec.placement.members[{j}]"),
                format!("undeclared member {m:?}"),
            );
        }
        if placement.members[..j].contains(m) {
            push(
                format!("spec.placement.members[{j}]"),
                format!("member {m:?} is listed twice"),
            );
        }
    }
    if placement.restricted && placement.members.is_empty() {
        push(
            "spec.placement.restricted".into(),
            "restricted placement needs a non-empty members list".into(),
        );
    }

    for (j, d) in spec.devices.iter().enumerate() {
        if let Err(m) = check_absolute(&d.path) {
            push(format!("spec.devices[{j}].path"), m);
        }
        for (field, argv) in [("activate", &d.activate), ("deactivate", &d.deactivate)] {
            if let Some(program) = argv.first()
                && let Err(m) = check_absolute(program)
            {
                push(format!("spec.devices[{j}].{field}[0]"), m);
            }
        }
    }
    for (j, f) in spec.filesystems.iter().enumerate() {
        let by_tag = f.device.starts_with("LABEL=") || f.device.starts_with("UUID=");
        if !by_tag && let Err(m) = check_absolute(&f.device) {
            push(format!("spec.filesystems[{j}].device"), m);
        }
        if let Err(m) = check_absolute(&f.mount_point) {
            push(format!("spec.filesystems[{j}].mountPoint"), m);
        } else if f.mount_point == "/" {
            push(
                format!("spec.filesystems[{j}].mountPoint"),
                "must not be /".into(),
            );
        }
        if let Some(t) = &f.fs_type
            && (t.is_empty() || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'))
        {
            push(
                format!("spec.filesystems[{j}].fsType"),
                format!("invalid filesystem type {t:?}"),
            );
        }
        check_options(
            &f.options,
            &format!("spec.filesystems[{j}].options"),
            &mut push,
        );
    }
    for (j, e) in spec.nfs_exports.iter().enumerate() {
        if let Err(m) = check_absolute(&e.path) {
            push(format!("spec.nfsExports[{j}].path"), m);
        }
        if e.clients.is_empty() {
            push(
                format!("spec.nfsExports[{j}].clients"),
                "needs at least one client".into(),
            );
        }
        for (k, c) in e.clients.iter().enumerate() {
            if let Err(m) = check_nfs_client(c) {
                push(format!("spec.nfsExports[{j}].clients[{k}]"), m.to_string());
            }
        }
        check_options(
            &e.options,
            &format!("spec.nfsExports[{j}].options"),
            &mut push,
        );
    }
    for (j, ip) in spec.ip_addresses.iter().enumerate() {
        if let Err(m) = parse_cidr(&ip.address) {
            push(format!("spec.ipAddresses[{j}].address"), m.to_string());
        }
        if let Some(ifname) = &ip.interface
            && !valid_interface(ifname)
        {
            push(
                format!("spec.ipAddresses[{j}].interface"),
                format!("invalid interface name {ifname:?}"),
            );
        }
    }
    for (j, share) in spec.samba_shares.iter().enumerate() {
        let n = &share.name;
        if n.is_empty() || n.len() > 80 || n.chars().any(|c| "[]/\\\n\r\0".contains(c)) {
            push(
                format!("spec.sambaShares[{j}].name"),
                format!("invalid share name {n:?}"),
            );
        }
        if let Err(m) = check_absolute(&share.path) {
            push(format!("spec.sambaShares[{j}].path"), m);
        }
        for key in share.parameters.keys() {
            if key.trim().is_empty() || key.contains(['\n', '=', '[', ']']) {
                push(
                    format!("spec.sambaShares[{j}].parameters"),
                    format!("invalid parameter name {key:?}"),
                );
            }
        }
    }
    for (j, app) in spec.applications.iter().enumerate() {
        check_application(app, &format!("spec.applications[{j}]"), &mut push);
    }

    let mut labels: BTreeMap<String, usize> = BTreeMap::new();
    for (j, r) in spec.resources().enumerate() {
        let label = r.label();
        if let Some(first) = labels.insert(label.clone(), j) {
            labels.insert(label.clone(), first);
            push(
                spec.resource_path(j),
                format!(
                    "duplicate resource {label} (also at {})",
                    spec.resource_path(first)
                ),
            );
        }
    }
}

fn check_options(options: &[String], path: &str, push: &mut impl FnMut(String, String)) {
    for (k, o) in options.iter().enumerate() {
        if o.is_empty() || o.contains([',', ' ', '\n', '\0']) {
            push(
                format!("{path}[{k}]"),
                format!("invalid option {o:?}: one option per entry, no commas or spaces"),
            );
        }
    }
}

fn valid_interface(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

fn check_application(app: &Application, path: &str, push: &mut impl FnMut(String, String)) {
    let set = [&app.script, &app.directory, &app.ocf]
        .iter()
        .filter(|v| v.is_some())
        .count();
    if set != 1 {
        push(
            path.to_string(),
            "exactly one of script, directory or ocf must be set".into(),
        );
        return;
    }
    if let Some(script) = &app.script
        && let Err(m) = check_absolute(script)
    {
        push(format!("{path}.script"), m);
    }
    if let Some(dir) = &app.directory
        && let Err(m) = check_absolute(dir)
    {
        push(format!("{path}.directory"), m);
    }
    if app.function.is_some() && app.script.is_none() {
        push(format!("{path}.function"), "only valid with script".into());
    }
    if let Some(f) = &app.function
        && (f.is_empty()
            || !f
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
    {
        push(
            format!("{path}.function"),
            format!("invalid function name {f:?}"),
        );
    }
    if let Some(ocf) = &app.ocf {
        let ok = ocf.split_once(':').is_some_and(|(p, t)| {
            let part = |s: &str| {
                !s.is_empty()
                    && s != "."
                    && s != ".."
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            };
            part(p) && part(t)
        });
        if !ok {
            push(
                format!("{path}.ocf"),
                format!("invalid OCF agent {ocf:?}: expected provider:type, e.g. heartbeat:apache"),
            );
        }
    } else if !app.parameters.is_empty() {
        push(format!("{path}.parameters"), "only valid with ocf".into());
    }
    for key in app.parameters.keys() {
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            push(
                format!("{path}.parameters"),
                format!("invalid OCF parameter name {key:?}: letters, digits and _ only"),
            );
        }
    }
}

/// Cluster-wide uniqueness: one IP address, mount point or share name
/// belongs to at most one service. Each claim records its first claimant
/// (object, resource index) under a key borrowed from the objects; field
/// paths are written only for a conflict.
#[derive(Default)]
struct Claims<'a> {
    ips: BTreeMap<IpAddr, (usize, usize)>,
    mounts: BTreeMap<&'a str, (usize, usize)>,
    shares: BTreeMap<std::borrow::Cow<'a, str>, (usize, usize)>,
}

impl<'a> Claims<'a> {
    fn claim(
        &mut self,
        objects: &[Object],
        i: usize,
        spec: &'a ServiceSpec,
        issues: &mut Vec<Issue>,
    ) {
        for (j, r) in spec.resources().enumerate() {
            // (first claimant, its resource, the key as shown, field, what)
            let conflict = match r {
                ResourceRef::Ip(ip) => {
                    let Ok(c) = parse_cidr(&ip.address) else {
                        continue;
                    };
                    match self.ips.get(&c.addr) {
                        None => {
                            self.ips.insert(c.addr, (i, j));
                            None
                        }
                        Some(&(first, fj)) => (first != i)
                            .then(|| (first, fj, c.addr.to_string(), "address", "IP address")),
                    }
                }
                ResourceRef::Filesystem(f) => {
                    let key = f.mount_point.trim_end_matches('/');
                    match self.mounts.get(key) {
                        None => {
                            self.mounts.insert(key, (i, j));
                            None
                        }
                        Some(&(first, fj)) => (first != i)
                            .then(|| (first, fj, format!("{key:?}"), "mountPoint", "mount point")),
                    }
                }
                ResourceRef::SambaShare(share) => {
                    let key = if share.name.bytes().any(|b| !b.is_ascii_lowercase()) {
                        std::borrow::Cow::Owned(share.name.to_lowercase())
                    } else {
                        std::borrow::Cow::Borrowed(share.name.as_str())
                    };
                    match self.shares.get(&key) {
                        None => {
                            self.shares.insert(key, (i, j));
                            None
                        }
                        Some(&(first, fj)) => (first != i)
                            .then(|| (first, fj, format!("{key:?}"), "name", "samba share name")),
                    }
                }
                _ => None,
            };
            let Some((first, fj, key, field, what)) = conflict else {
                continue;
            };
            let first_path = match &objects[first] {
                Object::Service(s) => format!("{}.{field}", s.spec.resource_path(fj)),
                Object::Member(_) => String::new(),
            };
            issues.push(Issue {
                other: Some(first),
                ..Issue::new(
                    i,
                    format!("{}.{field}", spec.resource_path(j)),
                    format!("{what} {key} is already claimed by another service ({first_path})"),
                )
            });
        }
    }
}
