//! From files, directories and stdin to a validated [`DesiredState`].
//!
//! Stage one turns text into typed objects, collecting every error of every
//! document; stage two runs the model's rules and the script checks. An input
//! with any error yields the errors and no state.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

use clusvc_core::model::{API_VERSION, DesiredState, Member, MemberRefs, Object, Service};

use super::error::{Errors, ManifestError};
use super::yaml::{self, Node, Pos, Value};
use crate::scripts;

/// One manifest text and where it came from.
#[derive(Debug, Clone)]
pub struct Input {
    /// The name errors use: the path as given, or `-` for stdin.
    pub name: String,
    /// The YAML text.
    pub text: String,
    /// The directory `./` script paths are relative to; none for stdin.
    pub dir: Option<PathBuf>,
}

impl Input {
    /// An in-memory input (tests, API bodies).
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
            dir: None,
        }
    }
}

/// What loading checks besides syntax and the model's rules.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Read user scripts: they must exist and define a usable function.
    pub check_scripts: bool,
    /// Where the members services name must be declared: in the input
    /// (the default: it is the whole state), or in the input or the
    /// server's store (a part sent to a server, which checks the merge).
    pub member_refs: MemberRefs,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            check_scripts: true,
            member_refs: MemberRefs::InInput,
        }
    }
}

/// Where each object was declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Input name (shared by the objects of one input).
    pub file: std::sync::Arc<str>,
    /// Position of the document.
    pub pos: Pos,
}

/// A valid input: the state and where its objects came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated desired state.
    pub desired: DesiredState,
    /// `(kind, name)` -> origin, kind being `member` or `service`.
    pub origins: BTreeMap<(String, String), Origin>,
}

/// Reads manifest inputs: files, directories (recursively, `*.yaml` and
/// `*.yml`, sorted, hidden entries skipped) and `-` for stdin.
pub fn read_inputs(paths: &[PathBuf]) -> Result<Vec<Input>, Errors> {
    let mut inputs = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            match std::io::stdin()
                .take(yaml::MAX_DOCUMENT_BYTES as u64 + 1)
                .read_to_string(&mut text)
            {
                Ok(_) => inputs.push(Input::new("-", text)),
                Err(e) => errors.extend(Errors::single("-", format!("cannot read stdin: {e}")).0),
            }
            continue;
        }
        let mut files = Vec::new();
        match std::fs::metadata(path) {
            Ok(md) if md.is_dir() => {
                let mut walk = Walk::default();
                if let Err(e) = collect_dir(path, &mut files, &mut walk, 0) {
                    errors.extend(Errors::single(path.display().to_string(), e).0);
                }
            }
            Ok(_) => files.push(path.clone()),
            Err(e) => {
                errors.extend(
                    Errors::single(path.display().to_string(), format!("cannot read: {e}")).0,
                );
            }
        }
        for file in files {
            let read_so_far: usize = inputs.iter().map(|i| i.text.len()).sum();
            match read_file(&file, MAX_TREE_BYTES.saturating_sub(read_so_far)) {
                Ok(text) => inputs.push(Input {
                    name: file.display().to_string(),
                    text,
                    dir: file.parent().map(absolute),
                }),
                Err(e) => errors.extend(Errors::single(file.display().to_string(), e).0),
            }
        }
    }
    if errors.is_empty() {
        Ok(inputs)
    } else {
        Err(Errors(errors))
    }
}

/// The most a whole manifest tree may hold.
pub const MAX_TREE_BYTES: usize = 64 << 20;

/// Reads an observed state (`plan --offline --observed PATH`): a file, a
/// pipe (`<(clusvc get observed -o json)`), `-` for stdin, or every
/// `*.yaml`, `*.yml` and `*.json` file of a directory (sorted, hidden ones
/// skipped), each at most [`yaml::MAX_OBSERVED_BYTES`].
pub fn read_observed_inputs(path: &Path) -> Result<Vec<Input>, Errors> {
    let limit = yaml::MAX_OBSERVED_BYTES;
    let read = |name: String, r: &mut dyn Read| -> Result<Input, Errors> {
        let mut bytes = Vec::new();
        r.take(limit as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Errors::single(&name, format!("cannot read: {e}")))?;
        if bytes.len() > limit {
            return Err(Errors::single(
                &name,
                format!("observed state too large: more than {limit} bytes"),
            ));
        }
        let text = String::from_utf8(bytes)
            .map_err(|_| Errors::single(&name, "not UTF-8 text".to_string()))?;
        Ok(Input::new(&name, text))
    };
    if path.as_os_str() == "-" {
        return Ok(vec![read("-".into(), &mut std::io::stdin())?]);
    }
    let name = path.display().to_string();
    let md =
        std::fs::metadata(path).map_err(|e| Errors::single(&name, format!("cannot read: {e}")))?;
    if !md.is_dir() {
        let mut f = std::fs::File::open(path)
            .map_err(|e| Errors::single(&name, format!("cannot read: {e}")))?;
        return Ok(vec![read(name, &mut f)?]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| Errors::single(&name, format!("cannot read: {e}")))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !n.starts_with('.')
                && [".yaml", ".yml", ".json"].iter().any(|x| n.ends_with(x))
                && p.is_file()
        })
        .collect();
    files.sort();
    let mut inputs = Vec::new();
    for f in files {
        let fname = f.display().to_string();
        let mut file = std::fs::File::open(&f)
            .map_err(|e| Errors::single(&fname, format!("cannot read: {e}")))?;
        inputs.push(read(fname, &mut file)?);
    }
    Ok(inputs)
}

/// Decodes one observed-state input: JSON (as `clusvc get observed -o
/// json` writes it) or YAML, within the observed state's own limits.
pub fn decode_observed(input: &Input) -> Result<clusvc_core::model::ObservedState, Errors> {
    if input.text.trim_start().starts_with('{') {
        return serde_json::from_str(&input.text).map_err(|e| {
            Errors(vec![ManifestError {
                file: input.name.clone(),
                pos: Pos {
                    line: e.line() as u64,
                    col: e.column() as u64,
                },
                path: String::new(),
                message: e
                    .to_string()
                    .split(" at line ")
                    .next()
                    .unwrap_or("")
                    .to_string(),
            }])
        });
    }
    decode_as_with(input, &yaml::OBSERVED)
}

/// The most files a tree may hold.
pub const MAX_TREE_FILES: usize = 100_000;

/// The deepest a tree may nest.
pub const MAX_TREE_DEPTH: usize = 32;

/// Reads one manifest file: only a regular file (checked on the opened
/// file, so a FIFO, a device like `/dev/zero` or a file swapped after the
/// check is refused), at most [`yaml::MAX_DOCUMENT_BYTES`] and what is left
/// of the tree's budget.
fn read_file(path: &Path, budget: usize) -> Result<String, String> {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking, so opening a FIFO does not wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot read: {e}"))?;
    let md = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !md.is_file() {
        return Err("not a regular file: only regular files are read".to_string());
    }
    let limit = yaml::MAX_DOCUMENT_BYTES.min(budget);
    if md.len() > limit as u64 {
        return Err(if limit < yaml::MAX_DOCUMENT_BYTES {
            format!("the manifest tree exceeds {MAX_TREE_BYTES} bytes (the limit of a whole tree)")
        } else {
            format!(
                "file too large: {} bytes (limit {})",
                md.len(),
                yaml::MAX_DOCUMENT_BYTES
            )
        });
    }
    let mut text = String::new();
    file.take(limit as u64 + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read: {e}"))?;
    if text.len() > limit {
        return Err(format!(
            "file grew past its limit while read ({limit} bytes)"
        ));
    }
    Ok(text)
}

/// Directories already walked (device and inode: a symlink loop is walked
/// once) and files found.
#[derive(Default)]
struct Walk {
    seen: std::collections::HashSet<(u64, u64)>,
    files: usize,
}

fn collect_dir(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    walk: &mut Walk,
    depth: usize,
) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    if depth > MAX_TREE_DEPTH {
        return Err(format!(
            "directories nest deeper than {MAX_TREE_DEPTH} at {}",
            dir.display()
        ));
    }
    let md = std::fs::metadata(dir).map_err(|e| format!("cannot read directory: {e}"))?;
    if !walk.seen.insert((md.dev(), md.ino())) {
        return Ok(()); // a directory reached again through a link
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read directory: {e}"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_dir(&path, out, walk, depth + 1)?;
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            walk.files += 1;
            if walk.files > MAX_TREE_FILES {
                return Err(format!("more than {MAX_TREE_FILES} manifest files"));
            }
            out.push(path);
        }
    }
    Ok(())
}

fn absolute(p: &Path) -> PathBuf {
    let p = if p.as_os_str().is_empty() {
        Path::new(".")
    } else {
        p
    };
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// One input after stage one: its typed objects (with the document each
/// came from, for positions) and its errors.
#[derive(Debug)]
struct Parsed {
    /// Hash and length of the text it was parsed from.
    key: (u64, usize),
    /// The input's directory (relative script paths resolve against it).
    dir: Option<PathBuf>,
    /// Each object, with the index of its document among the input's
    /// documents and where the document starts. The document trees are
    /// not kept (they cost ten times the objects): an error found later
    /// parses its input again to place itself.
    objects: Vec<(Object, usize, Pos)>,
    errors: Vec<ManifestError>,
}

/// Stage-one results kept between loads of the same inputs (a watched
/// manifests directory): an input whose text is unchanged is not parsed
/// again, so a commit that changes one file of a large tree costs that
/// file. The rules across objects and the script checks always run on the
/// whole result.
#[derive(Debug, Default)]
pub struct ParseCache {
    inputs: std::collections::HashMap<String, std::sync::Arc<Parsed>>,
}

impl ParseCache {
    /// Inputs held.
    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }
}

fn text_key(text: &str) -> (u64, usize) {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    (h.finish(), text.len())
}

/// Stage one for one input: YAML with positions, then typed objects.
fn parse_input(input: &Input) -> Parsed {
    parse_valid_input(input).unwrap_or_else(|| parse_input_placed(input))
}

/// The fast path of stage one, for an input whose every document decodes
/// as is (nearly always): documents as plain values, no position per
/// node (they cost as much as the parse). Any problem, and it gives up:
/// the full path finds and places every problem.
fn parse_valid_input(input: &Input) -> Option<Parsed> {
    let docs = yaml::parse_plain_documents(&input.text).ok()?;
    let mut objects = Vec::with_capacity(docs.len());
    for (index, (pos, json)) in docs.into_iter().enumerate() {
        // As `decode` checks them.
        if json.get("apiVersion")?.as_str()? != API_VERSION {
            return None;
        }
        let mut object = match json.get("kind")?.as_str()? {
            "Member" => Object::Member(serde_json::from_value(json).ok()?),
            "Service" => Object::Service(serde_json::from_value(json).ok()?),
            _ => return None,
        };
        resolve_relative_scripts(&mut object, input.dir.as_deref());
        objects.push((object, index, pos));
    }
    Some(Parsed {
        key: text_key(&input.text),
        dir: input.dir.clone(),
        objects,
        errors: Vec::new(),
    })
}

/// Stage one with every node's position, collecting every problem.
fn parse_input_placed(input: &Input) -> Parsed {
    let mut parsed = Parsed {
        key: text_key(&input.text),
        dir: input.dir.clone(),
        objects: Vec::new(),
        errors: Vec::new(),
    };
    let docs = match yaml::parse_documents(&input.text) {
        Ok(docs) => docs,
        Err(e) => {
            parsed.errors.push(ManifestError {
                file: input.name.clone(),
                pos: e.pos,
                path: String::new(),
                message: e.message,
            });
            return parsed;
        }
    };
    for (index, doc) in docs.iter().enumerate() {
        let (object, problems) = decode(doc);
        parsed
            .errors
            .extend(problems.into_iter().map(|(path, key, msg)| ManifestError {
                file: input.name.clone(),
                pos: doc.locate(&path, key),
                path: path.to_string(),
                message: msg,
            }));
        if let Some(mut object) = object {
            resolve_relative_scripts(&mut object, input.dir.as_deref());
            parsed.objects.push((object, index, doc.pos));
        }
    }
    parsed
}

/// Loads and validates inputs into one desired state.
pub fn load(inputs: &[Input], options: Options) -> Result<Loaded, Errors> {
    // No cache to fill: the parsed objects are moved, not copied.
    load_with(inputs, options, None)
}

/// As [`load`], reusing (and refreshing) stage-one results in `cache`.
pub fn load_cached(
    inputs: &[Input],
    options: Options,
    cache: &mut ParseCache,
) -> Result<Loaded, Errors> {
    load_with(inputs, options, Some(cache))
}

fn load_with(
    inputs: &[Input],
    options: Options,
    cache: Option<&mut ParseCache>,
) -> Result<Loaded, Errors> {
    let empty = ParseCache::default();
    let known = cache.as_deref().unwrap_or(&empty);
    let mut fresh = std::collections::HashMap::with_capacity(inputs.len());
    let mut parsed: Vec<Option<std::sync::Arc<Parsed>>> = inputs
        .iter()
        .map(|input| match known.inputs.get(&input.name) {
            Some(p) if p.key == text_key(&input.text) && p.dir == input.dir => Some(p.clone()),
            _ => None,
        })
        .collect();
    // The inputs not cached are parsed on every core (files are
    // independent until the rules across objects).
    let todo: Vec<usize> = (0..inputs.len()).filter(|&i| parsed[i].is_none()).collect();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(todo.len());
    if workers > 1 {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let done: Vec<(usize, Parsed)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        let mut out = Vec::new();
                        loop {
                            let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(&i) = todo.get(k) else { break };
                            out.push((i, parse_input(&inputs[i])));
                        }
                        out
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("parsing does not panic"))
                .collect()
        });
        for (i, p) in done {
            parsed[i] = Some(std::sync::Arc::new(p));
        }
    } else {
        for i in todo {
            parsed[i] = Some(std::sync::Arc::new(parse_input(&inputs[i])));
        }
    }
    let parsed: Vec<std::sync::Arc<Parsed>> = parsed
        .into_iter()
        .map(|p| p.expect("every input parsed"))
        .collect();
    if let Some(cache) = cache {
        for (input, p) in inputs.iter().zip(&parsed) {
            fresh.insert(input.name.clone(), p.clone());
        }
        // Inputs gone from the tree are forgotten.
        cache.inputs = fresh;
    }
    let mut errors: Vec<ManifestError> = parsed.iter().flat_map(|p| p.errors.clone()).collect();
    // For each object: its input, its document's index and position.
    let places: Vec<(usize, usize, Pos)> = parsed
        .iter()
        .enumerate()
        .flat_map(|(i, p)| p.objects.iter().map(move |(_, d, pos)| (i, *d, *pos)))
        .collect();
    // Moved out of what no cache shares, copied from what one does.
    let objects: Vec<Object> = parsed
        .into_iter()
        .flat_map(|p| match std::sync::Arc::try_unwrap(p) {
            Ok(p) => p.objects.into_iter().map(|(o, _, _)| o).collect::<Vec<_>>(),
            Err(p) => p.objects.iter().map(|(o, _, _)| o.clone()).collect(),
        })
        .collect();
    // An error is placed by parsing its input again (once per input).
    let reparsed: std::cell::RefCell<std::collections::HashMap<usize, Vec<Node>>> =
        Default::default();
    let place = |object: usize, path: &str| -> ManifestError {
        let (input, doc, doc_pos) = places[object];
        let pos = reparsed
            .borrow_mut()
            .entry(input)
            .or_insert_with(|| yaml::parse_documents(&inputs[input].text).unwrap_or_default())
            .get(doc)
            .map_or(doc_pos, |d| d.locate(path, false));
        ManifestError {
            file: inputs[input].name.clone(),
            pos,
            path: path.to_string(),
            message: String::new(),
        }
    };
    if options.check_scripts {
        // Many services share a script: each is read and checked once.
        let mut memo = scripts::Memo::default();
        for (k, object) in objects.iter().enumerate() {
            if let Object::Service(s) = object {
                for (path, message) in scripts::check_service_memo(&s.spec, &mut memo) {
                    let mut e = place(k, &path);
                    e.message = message;
                    errors.push(e);
                }
            }
        }
    }
    let mut origins = BTreeMap::new();
    let files: Vec<std::sync::Arc<str>> = inputs.iter().map(|i| i.name.as_str().into()).collect();
    for (object, (input, _, pos)) in objects.iter().zip(&places) {
        origins.insert(
            (object.kind_lower().to_string(), object.name().to_string()),
            Origin {
                file: files[*input].clone(),
                pos: *pos,
            },
        );
    }
    // The model's rules, once: building the state is validating it.
    let desired = match DesiredState::from_objects_with(objects, options.member_refs) {
        Ok(d) if errors.is_empty() => d,
        Ok(_) => {
            errors.sort();
            errors.dedup();
            return Err(Errors(errors));
        }
        Err(issues) => {
            for issue in issues {
                let mut e = place(issue.object, &issue.path);
                e.message = issue.message;
                if let Some(other) = issue.other {
                    let first = place(other, "metadata.name");
                    e.message = format!(
                        "{} (first defined at {}:{}:{})",
                        e.message, first.file, first.pos.line, first.pos.col
                    );
                }
                errors.push(e);
            }
            errors.sort();
            errors.dedup();
            return Err(Errors(errors));
        }
    };
    Ok(Loaded { desired, origins })
}

/// Reads and validates paths in one go.
pub fn load_paths(paths: &[PathBuf], options: Options) -> Result<Loaded, Errors> {
    let inputs = read_inputs(paths)?;
    load(&inputs, options)
}

/// As [`load_paths`], reusing stage-one results in `cache`.
pub fn load_paths_cached(
    paths: &[PathBuf],
    options: Options,
    cache: &mut ParseCache,
) -> Result<Loaded, Errors> {
    let inputs = read_inputs(paths)?;
    load_cached(&inputs, options, cache)
}

/// A problem found while decoding one document: field path, whether the
/// position is the key's, message.
type Problem = (String, bool, String);

/// Reads `apiVersion` and `kind` first, then the typed object; returns the
/// object (repaired when it had field errors) and the problems.
fn decode(doc: &Node) -> (Option<Object>, Vec<Problem>) {
    if !matches!(doc.value, Value::Map(_)) {
        return (
            None,
            vec![(
                String::new(),
                false,
                "expected a mapping with apiVersion, kind, metadata and spec".into(),
            )],
        );
    }
    let mut problems = Vec::new();
    match doc.get("apiVersion").map(|n| &n.value) {
        None => problems.push((String::new(), false, "missing field \"apiVersion\"".into())),
        Some(Value::Str(v)) if v == API_VERSION => {}
        Some(v) => problems.push((
            "apiVersion".into(),
            false,
            format!(
                "unsupported apiVersion {} (expected {API_VERSION})",
                scalar_text(v)
            ),
        )),
    }
    let kind = match doc.get("kind").map(|n| &n.value) {
        None => {
            problems.push((String::new(), false, "missing field \"kind\"".into()));
            None
        }
        Some(Value::Str(k)) if k == "Member" || k == "Service" => Some(k.as_str()),
        Some(v) => {
            problems.push((
                "kind".into(),
                false,
                format!(
                    "unknown kind {} (expected Member or Service)",
                    scalar_text(v)
                ),
            ));
            None
        }
    };
    if !problems.is_empty() {
        return (None, problems);
    }
    match kind {
        Some("Member") => {
            let (m, p) = typed_repaired::<Member>(doc);
            (m.map(Object::Member), p)
        }
        _ => {
            let (s, p) = typed_repaired::<Service>(doc);
            (s.map(Object::Service), p)
        }
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("{s:?}"),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Seq(_) => "a sequence".into(),
        Value::Map(_) => "a mapping".into(),
    }
}

/// Most errors reported for one document.
const MAX_ERRORS_PER_DOCUMENT: usize = 50;

/// Deserializes a typed object, collecting every field error: after each
/// error the offending field is removed and decoding is retried, so one typo
/// does not hide the next.
fn typed<T: DeserializeOwned>(doc: &Node) -> Result<T, Vec<Problem>> {
    match typed_repaired::<T>(doc) {
        (Some(v), problems) if problems.is_empty() => Ok(v),
        (_, problems) => Err(problems),
    }
}

/// Like [`typed`], but also returns the object decoded once the bad fields
/// were dropped, so the semantic rules can report their problems too.
fn typed_repaired<T: DeserializeOwned>(doc: &Node) -> (Option<T>, Vec<Problem>) {
    let mut json = doc.to_json();
    let mut problems: Vec<Problem> = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    while problems.len() < MAX_ERRORS_PER_DOCUMENT {
        let err = match serde_path_to_error::deserialize::<_, T>(&json) {
            Ok(v) => return (Some(v), problems),
            Err(e) => e,
        };
        let segments: Vec<Segment> = err.path().iter().cloned().collect();
        let path = err.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = err.into_inner().to_string();
        let (message, key) = tidy_message(&message);
        // A required field reported missing because an earlier error
        // removed it is not a new problem.
        let cascade = message
            .strip_prefix("missing field ")
            .map(|f| f.trim_matches('"'))
            .is_some_and(|f| removed.contains(&join(&path, f)));
        if !cascade {
            problems.push((path.clone(), key, message));
        }
        if segments.is_empty() || !remove_at(&mut json, &segments) {
            break;
        }
        removed.push(path);
    }
    (None, problems)
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// Rewrites serde's wording into ours; says whether the position should be
/// the key's (unknown fields) rather than the value's.
fn tidy_message(msg: &str) -> (String, bool) {
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (field, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let expected = tail
            .trim_start_matches(", ")
            .replace('`', "")
            .replace("expected one of ", "expected one of: ")
            .replace("there are no fields", "no fields are allowed here");
        let expected = if expected.is_empty() {
            String::new()
        } else {
            format!(" ({expected})")
        };
        return (format!("unknown field \"{field}\"{expected}"), true);
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let field = rest.trim_end_matches('`');
        return (format!("missing field \"{field}\""), false);
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        let (v, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let expected = tail.trim_start_matches(", ").replace('`', "");
        return (format!("unknown value \"{v}\" ({expected})"), false);
    }
    let msg = msg
        .replace('`', "\"")
        .replace(
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        )
        .replace("expected u64", "expected a whole number");
    (msg, false)
}

/// Removes the value a path names; false when the path does not resolve.
fn remove_at(json: &mut serde_json::Value, segments: &[Segment]) -> bool {
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut cur = json;
    for seg in parents {
        let next = match (seg, cur) {
            (Segment::Map { key }, serde_json::Value::Object(m)) => m.get_mut(key),
            (Segment::Seq { index }, serde_json::Value::Array(a)) => a.get_mut(*index),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    match (last, cur) {
        (Segment::Map { key }, serde_json::Value::Object(m)) => m.remove(key).is_some(),
        (Segment::Seq { index }, serde_json::Value::Array(a)) if *index < a.len() => {
            a.remove(*index);
            true
        }
        _ => false,
    }
}

/// `./x` and `../x` script paths are relative to the manifest's directory
/// (kustomize-style), so a manifest and its scripts can live in one git tree.
/// Other relative paths stay as written and fail validation.
fn resolve_relative_scripts(object: &mut Object, dir: Option<&Path>) {
    let (Object::Service(s), Some(dir)) = (object, dir) else {
        return;
    };
    for app in &mut s.spec.applications {
        for p in [&mut app.script, &mut app.directory].into_iter().flatten() {
            if p.starts_with("./") || p.starts_with("../") {
                *p = normalize(&dir.join(&*p)).display().to_string();
            }
        }
    }
}

/// Lexically removes `.` and `..` components.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Decodes a single-document input into any type (the observed state, for
/// instance), with the same `file:line:col: path: message` errors.
pub fn decode_as<T: DeserializeOwned>(input: &Input) -> Result<T, Errors> {
    decode_as_with(input, &yaml::MANIFEST)
}

/// [`decode_as`] within `limits`.
pub fn decode_as_with<T: DeserializeOwned>(
    input: &Input,
    limits: &yaml::Limits,
) -> Result<T, Errors> {
    let err = |pos: Pos, path: &str, message: String| ManifestError {
        file: input.name.clone(),
        pos,
        path: path.to_string(),
        message,
    };
    let docs = yaml::parse_documents_with(&input.text, limits)
        .map_err(|e| Errors(vec![err(e.pos, "", e.message)]))?;
    match docs.as_slice() {
        [] => serde_json::from_value(serde_json::Value::Object(Default::default()))
            .map_err(|e| Errors(vec![err(Pos::default(), "", e.to_string())])),
        [doc] => typed::<T>(doc).map_err(|problems| {
            Errors(
                problems
                    .into_iter()
                    .map(|(path, key, msg)| err(doc.locate(&path, key), &path, msg))
                    .collect(),
            )
        }),
        [_, second, ..] => Err(Errors(vec![err(
            second.pos,
            "",
            "expected a single YAML document".into(),
        )])),
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    fn svc(name: &str) -> String {
        format!("apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: {name}\n")
    }

    #[test]
    fn an_unchanged_input_is_not_parsed_again_and_a_changed_one_is() {
        let no_scripts = Options {
            check_scripts: false,
            ..Options::default()
        };
        let mut cache = ParseCache::default();
        let a = Input::new("a.yaml", svc("a"));
        let b = Input::new("b.yaml", svc("b"));
        load_cached(&[a.clone(), b.clone()], no_scripts, &mut cache).unwrap();
        let first_a = cache.inputs["a.yaml"].clone();
        let first_b = cache.inputs["b.yaml"].clone();
        let b2 = Input::new("b.yaml", svc("c"));
        let loaded = load_cached(&[a, b2], no_scripts, &mut cache).unwrap();
        assert!(std::sync::Arc::ptr_eq(&first_a, &cache.inputs["a.yaml"]));
        assert!(!std::sync::Arc::ptr_eq(&first_b, &cache.inputs["b.yaml"]));
        let names: Vec<&String> = loaded.desired.services().keys().collect();
        assert_eq!(names, ["a", "c"]);
        // A file removed from the tree is forgotten.
        load_cached(&[Input::new("a.yaml", svc("a"))], no_scripts, &mut cache).unwrap();
        assert_eq!(cache.len(), 1);
    }
}

#[cfg(test)]
mod fast_path_tests {
    use super::*;

    /// The fast path (no position per node) gives what the full path
    /// gives: the same objects, at the same document positions, for every
    /// shape of stream; and it gives up on any problem.
    #[test]
    fn the_fast_path_agrees_with_the_full_one() {
        let svc = |name: &str| {
            format!(
                "apiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  applications:\n    - script: ./s\n"
            )
        };
        let member = "apiVersion: clusvc/v1\nkind: Member\nmetadata:\n  name: n1\nspec: {}\n";
        let texts = [
            svc("a"),
            format!("---\n{}", svc("a")),
            format!("# comment\n\n---\n# about a\n\n{}---\n{member}", svc("a")),
            format!("%YAML 1.2\n---\n{}...\n---\n{}", svc("a"), svc("b")),
            format!("{}---\n---\n{}", svc("a"), svc("b")),
            format!(
                "--- {{apiVersion: clusvc/v1, kind: Member, metadata: {{name: n2}}}}\n---\n{}",
                svc("b")
            ),
            format!(
                "{}---   # trailing comment\n  {}",
                svc("a"),
                member.replace('\n', "\n  ")
            ),
        ];
        for text in &texts {
            let input = Input {
                name: "t.yaml".into(),
                text: text.clone(),
                dir: Some(PathBuf::from("/etc/clusvc")),
            };
            let fast = parse_valid_input(&input)
                .unwrap_or_else(|| panic!("fast path gave up on:\n{text}"));
            let full = parse_input_placed(&input);
            assert!(full.errors.is_empty(), "{text}: {:?}", full.errors);
            assert_eq!(fast.objects, full.objects, "{text}");
        }
        // A null document: the full path, which places it.
        let nulls = Input::new("n.yaml", format!("---\n~\n---\n{}", svc("b")));
        assert!(parse_valid_input(&nulls).is_none());
        assert_eq!(
            parse_input(&nulls).objects,
            parse_input_placed(&nulls).objects
        );
        // Anything the full path reports, the fast path leaves to it.
        for bad in [
            "apiVersion: clusvc/v2\nkind: Member\nmetadata:\n  name: n1\n",
            "apiVersion: clusvc/v1\nkind: Thing\nmetadata:\n  name: n1\n",
            "apiVersion: clusvc/v1\nkind: Member\nmetadata:\n  name: n1\nspec:\n  bogus: 1\n",
            "apiVersion: clusvc/v1\nkind: Member\nmetadata: {name: n1}\nmetadata: {name: n2}\n",
            "- a list\n",
        ] {
            let input = Input::new("bad.yaml", bad);
            assert!(parse_valid_input(&input).is_none(), "{bad}");
            assert!(!parse_input_placed(&input).errors.is_empty(), "{bad}");
        }
    }
}
