//! A YAML document as a tree that remembers where every node came from.
//!
//! Manifests are parsed once, with serde-saphyr and a resource budget, into
//! [`Node`]s. The typed manifest structs are then deserialized from that tree
//! (through JSON values, so `serde_path_to_error` can name the failing field),
//! and every error, typed or semantic, is placed at the line and column of the
//! node its field path names.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A 1-based line and column in a source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct Pos {
    /// Line, from 1; 0 when unknown.
    pub line: u64,
    /// Column, from 1; 0 when unknown.
    pub col: u64,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// One YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the node starts.
    pub pos: Pos,
    /// What it holds.
    pub value: Value,
}

/// The content of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`, `~` or an empty value.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// An unsigned integer above `i64::MAX`.
    UInt(u64),
    /// A floating-point number.
    Float(f64),
    /// Any other scalar.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order, with each key's position.
    Map(Vec<(Key, Node)>),
}

/// A mapping key with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// Where the key starts.
    pub pos: Pos,
    /// The key as text (non-string scalar keys are rendered).
    pub name: String,
}

impl Node {
    /// The value at `key` when this node is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string at `key` when this node is a mapping holding a string there.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        match self.get(key).map(|n| &n.value) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// The position of the node named by a field path such as
    /// `spec.placement.members[1]`, or of the deepest node on the way that
    /// exists. With `key` true, a mapping entry resolves to its key rather
    /// than its value (used for "unknown field" errors).
    pub fn locate(&self, path: &str, key: bool) -> Pos {
        let mut node = self;
        let mut pos = self.pos;
        for seg in split_path(path) {
            match (seg, &node.value) {
                (Seg::Field(name), Value::Map(entries)) => {
                    match entries.iter().find(|(k, _)| k.name == name) {
                        Some((k, v)) => {
                            pos = if key { k.pos } else { v.pos };
                            node = v;
                        }
                        None => return pos,
                    }
                }
                (Seg::Index(i), Value::Seq(items)) => match items.get(i) {
                    Some(v) => {
                        pos = v.pos;
                        node = v;
                    }
                    None => return pos,
                },
                _ => return pos,
            }
        }
        pos
    }

    /// The JSON value of this node, for typed deserialization.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::UInt(u) => J::from(*u),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

enum Seg<'a> {
    Field(&'a str),
    Index(usize),
}

/// Splits `a.b[2].c` into segments. Keys containing dots are not addressable,
/// which only costs precision of the reported position, never correctness.
fn split_path(path: &str) -> impl Iterator<Item = Seg<'_>> {
    path.split('.').filter(|s| !s.is_empty()).flat_map(|part| {
        let (name, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        let field = (!name.is_empty()).then_some(Seg::Field(name));
        let indexes = rest
            .split(['[', ']'])
            .filter_map(|s| s.parse::<usize>().ok())
            .map(Seg::Index);
        field.into_iter().chain(indexes)
    })
}

/// Errors of the YAML stage.
#[derive(Debug, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct YamlError {
    /// Where the parser stopped.
    pub pos: Pos,
    /// What is wrong, without position.
    pub message: String,
}

/// Largest manifest file accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 4 << 20;

/// Largest observed state accepted (`plan --offline --observed`), in
/// bytes: 100,000 services with per-resource status take about 60 MiB.
pub const MAX_OBSERVED_BYTES: usize = 256 << 20;

/// What one kind of YAML input may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of text.
    pub bytes: usize,
    /// Parser events (and nodes).
    pub events: usize,
    /// What the input is, for messages.
    pub what: &'static str,
}

/// Manifests: 4 MiB and 200,000 events a file.
pub const MANIFEST: Limits = Limits {
    bytes: MAX_DOCUMENT_BYTES,
    events: 200_000,
    what: "manifest",
};

/// An observed state: sized for 100,000 services with per-resource status.
pub const OBSERVED: Limits = Limits {
    bytes: MAX_OBSERVED_BYTES,
    events: 40_000_000,
    what: "observed state",
};

/// Parses every document of a YAML stream, with limits that make alias bombs
/// and huge inputs fail fast instead of hanging or exhausting memory.
pub fn parse_documents(text: &str) -> Result<Vec<Node>, YamlError> {
    parse_documents_with(text, &MANIFEST)
}

/// [`parse_documents`] within `limits`.
/// The documents of a manifest as plain JSON values, each with where it
/// starts (no position per node: the fast path of loading, for input
/// that turns out valid; the same limits and rules as
/// [`parse_documents`], and the same values its nodes convert to). An
/// error means: take the full path (it may be no error there).
pub fn parse_plain_documents(text: &str) -> Result<Vec<(Pos, serde_json::Value)>, YamlError> {
    // Positions per node (serde-saphyr's `Spanned`) cost as much as the
    // parse, even for the document alone (it replays the document's
    // events): where each document starts is read off the text instead.
    if let Some(docs) = crate::block::documents(text, &MANIFEST) {
        return Ok(docs);
    }
    let docs: Vec<Option<serde_json::Value>> = parse_with(text, &MANIFEST)?;
    let starts = document_starts(text);
    if starts.len() != docs.len() || docs.iter().any(Option::is_none) {
        // A stream whose documents the scan cannot match up (a null
        // document): the caller takes the full path.
        return Err(YamlError {
            pos: Pos::default(),
            message: "documents not matched to their starts".into(),
        });
    }
    Ok(starts.into_iter().zip(docs.into_iter().flatten()).collect())
}

/// Where each document of a YAML stream that has content starts: its
/// first content (not a blank line, a comment or a directive); documents
/// are delimited by `---` and `...` lines (a document marker cannot occur
/// inside a scalar). Empty documents are left out, as the parser leaves
/// them out.
fn document_starts(text: &str) -> Vec<Pos> {
    let mut starts = Vec::new();
    // The start of the current document, once its first content is seen.
    let mut open: Option<Option<Pos>> = None;
    let first_content = |line: &str, n: usize, from: usize| -> Option<Pos> {
        let rest = &line[from..];
        let trimmed = rest.trim_start();
        (!trimmed.is_empty() && !trimmed.starts_with('#')).then(|| Pos {
            line: n as u64,
            col: (from + rest.len() - trimmed.len() + 1) as u64,
        })
    };
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let marker =
            line.starts_with("---") && line[3..].chars().next().is_none_or(char::is_whitespace);
        if marker {
            if let Some(Some(start)) = open.take() {
                starts.push(start);
            }
            open = Some(first_content(line, n, 3));
            continue;
        }
        if line.starts_with("...") && line[3..].chars().next().is_none_or(char::is_whitespace) {
            if let Some(Some(start)) = open.take() {
                starts.push(start);
            }
            continue;
        }
        match &mut open {
            Some(start @ None) => *start = first_content(line, n, 0),
            Some(Some(_)) => {}
            None if !line.starts_with('%') => {
                if let Some(p) = first_content(line, n, 0) {
                    open = Some(Some(p));
                }
            }
            None => {}
        }
    }
    if let Some(Some(start)) = open {
        starts.push(start);
    }
    starts
}

pub fn parse_documents_with(text: &str, limits: &Limits) -> Result<Vec<Node>, YamlError> {
    let docs: Vec<Option<Node>> = parse_with(text, limits)?;
    Ok(docs.into_iter().flatten().collect())
}

/// Every document of `text` as a `T`, within `limits`.
fn parse_with<T: serde::de::DeserializeOwned>(
    text: &str,
    limits: &Limits,
) -> Result<Vec<T>, YamlError> {
    if text.len() > limits.bytes {
        return Err(YamlError {
            pos: Pos { line: 1, col: 1 },
            message: format!(
                "{} too large: {} bytes (limit {})",
                limits.what,
                text.len(),
                limits.bytes
            ),
        });
    }
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_events: limits.events,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_depth: 32,
            max_documents: 10_000,
            max_nodes: limits.events,
            max_total_scalar_bytes: limits.bytes,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 20_000,
            max_replay_stack_depth: 16,
        },
        duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::Error,
    };
    serde_saphyr::from_multiple_with_options(text, options).map_err(|e| {
            let inner = e.without_snippet();
            let pos = inner
                .location()
                .map(|l| Pos {
                    line: l.line(),
                    col: l.column(),
                })
                .unwrap_or_default();
            let message = match inner {
                serde_saphyr::Error::Budget { breach, .. } => format!(
                    "input exceeds the {} size limits ({breach:?}): too large, too deep, or too many aliases",
                    limits.what
                ),
                other => strip_location(&other.to_string()),
            };
            YamlError { pos, message }
        })
}

/// serde-saphyr appends " at line N column M" to messages; positions are
/// reported separately here.
fn strip_location(msg: &str) -> String {
    let first = msg.lines().next().unwrap_or(msg);
    match first.find(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first.to_string(),
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(d)?;
        Ok(Node {
            pos: Pos {
                line: spanned.referenced.line(),
                col: spanned.referenced.column(),
            },
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(d)?;
        let name = match spanned.value {
            Value::Str(s) => s,
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::UInt(u) => u.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Seq(_) | Value::Map(_) => {
                return Err(de::Error::custom("mapping keys must be scalars"));
            }
        };
        Ok(Key {
            pos: Pos {
                line: spanned.referenced.line(),
                col: spanned.referenced.column(),
            },
            name,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::UInt(v), Value::Int))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        u64::try_from(v)
            .map(|u| self.visit_u64::<E>(u).unwrap_or(Value::UInt(u)))
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries: Vec<(Key, Node)> = Vec::new();
        let mut seen: BTreeMap<String, Pos> = BTreeMap::new();
        while let Some(key) = map.next_key::<Key>()? {
            let value = map.next_value::<Node>()?;
            if let Some(first) = seen.insert(key.name.clone(), key.pos) {
                return Err(de::Error::custom(format!(
                    "duplicate key {:?} (first at line {})",
                    key.name, first.line
                )));
            }
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_point_at_values_and_keys() {
        let docs = parse_documents(
            "apiVersion: clusvc/v1\nkind: Service\nspec:\n  checkInterval: 40 parsecs\n  list: [a, b]\n---\nkind: Member\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(
            docs[0].locate("spec.checkInterval", false),
            Pos { line: 4, col: 18 }
        );
        assert_eq!(
            docs[0].locate("spec.checkInterval", true),
            Pos { line: 4, col: 3 }
        );
        assert_eq!(
            docs[0].locate("spec.list[1]", false),
            Pos { line: 5, col: 13 }
        );
        assert_eq!(docs[1].get_str("kind"), Some("Member"));
    }

    #[test]
    fn scalars_keep_their_types() {
        let docs = parse_documents("a: 40\nb: true\nc: '40'\nd: ~\ne: 1.5\n").unwrap();
        let j = docs[0].to_json();
        assert_eq!(
            j,
            serde_json::json!({"a": 40, "b": true, "c": "40", "d": null, "e": 1.5})
        );
    }

    #[test]
    fn alias_bomb_fails_fast() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..12 {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                format!("l{}", i - 1)
            };
            text.push_str(&format!(
                "l{i}: &l{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        let err = parse_documents(&text).unwrap_err();
        assert!(
            err.message.contains("budget") || err.message.contains("limit"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse_documents("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos.line, 3, "{err}");
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = parse_documents("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 1, "{err}");
    }
}
