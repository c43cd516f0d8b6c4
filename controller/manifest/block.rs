//! A fast reader for the plain block style manifests are nearly always
//! written in: block mappings and sequences indented with spaces, plain
//! and one-line quoted scalars, one-line flow sequences of scalars.
//!
//! It is the first try of loading's fast path and never the judge: on
//! anything outside that subset (tabs, anchors, tags, block scalars,
//! multi-line scalars, non-ASCII text, a scalar whose type a reader could
//! doubt such as `0644`, `1.5` or `yes`, a duplicate key, an error of any
//! kind) it gives up and serde-saphyr reads the text, placing every error.
//! What it accepts it reads as serde-saphyr does: the property test
//! `it_reads_what_it_accepts_as_serde_saphyr_does` checks the two against
//! each other on generated text.
//!
//! A YAML parser in general spends its time on what this subset leaves
//! out; this one is a scan of lines, about ten times faster on the
//! manifests of a large cluster.

use serde_json::{Map, Value};

use crate::yaml::{Limits, Pos};

/// Every document of `text` (each a mapping) with where it starts, or
/// `None`: read it with the full parser.
pub fn documents(text: &str, limits: &Limits) -> Option<Vec<(Pos, Value)>> {
    if text.len() > limits.bytes || !text.is_ascii() {
        return None;
    }
    // Control characters (tabs, carriage returns, ...) are the full
    // parser's to judge.
    if text.bytes().any(|b| (b < b' ' && b != b'\n') || b == 0x7f) {
        return None;
    }
    let mut docs = Vec::new();
    let mut lines = Vec::new();
    let mut reader = Reader {
        lines: Vec::new(),
        at: 0,
        // Stream start and end, as the parser counts events.
        events: 2,
        max_events: limits.events.saturating_sub(16),
    };
    for (i, raw) in text.split('\n').enumerate() {
        if let Some(rest) = raw.strip_prefix("---")
            && (rest.is_empty() || rest.starts_with(' '))
        {
            let rest = rest.trim_start_matches(' ');
            if !rest.is_empty() && !rest.starts_with('#') {
                return None;
            }
            end_document(&mut lines, &mut reader, &mut docs)?;
            continue;
        }
        if raw.starts_with("...") || raw.starts_with('%') {
            return None;
        }
        let text = raw.trim_start_matches(' ');
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        lines.push(Line {
            no: i + 1,
            indent: raw.len() - text.len(),
            text: text.trim_end_matches(' '),
        });
    }
    end_document(&mut lines, &mut reader, &mut docs)?;
    Some(docs)
}

/// Reads the document of `lines` (if any) into `docs`.
fn end_document<'a>(
    lines: &mut Vec<Line<'a>>,
    reader: &mut Reader<'a>,
    docs: &mut Vec<(Pos, Value)>,
) -> Option<()> {
    if lines.is_empty() {
        return Some(());
    }
    reader.lines = std::mem::take(lines);
    reader.at = 0;
    reader.events += 2;
    let first = reader.lines[0];
    let pos = Pos {
        line: first.no as u64,
        col: first.indent as u64 + 1,
    };
    let value = reader.node(first.indent, 1)?;
    if reader.at != reader.lines.len() || !value.is_object() {
        return None;
    }
    docs.push((pos, value));
    (docs.len() < MAX_DOCUMENTS).then_some(())
}

/// As many documents as the full parser is allowed.
const MAX_DOCUMENTS: usize = 10_000;
/// Nesting of collections, below the full parser's limit.
const MAX_DEPTH: usize = 30;

/// A line with content: its number, indentation and text (no indentation,
/// no trailing spaces).
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    no: usize,
    indent: usize,
    text: &'a str,
}

struct Reader<'a> {
    lines: Vec<Line<'a>>,
    at: usize,
    events: usize,
    max_events: usize,
}

impl<'a> Reader<'a> {
    fn count(&mut self, events: usize) -> Option<()> {
        self.events += events;
        (self.events <= self.max_events).then_some(())
    }

    fn peek(&self) -> Option<Line<'a>> {
        self.lines.get(self.at).copied()
    }

    /// The block node whose first line is the current one, at `indent`.
    fn node(&mut self, indent: usize, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        if is_entry(self.lines[self.at].text) {
            self.sequence(indent, depth)
        } else {
            self.mapping(indent, depth)
        }
    }

    fn sequence(&mut self, indent: usize, depth: usize) -> Option<Value> {
        self.count(2)?;
        let mut items = Vec::new();
        while let Some(line) = self.peek() {
            if line.indent < indent || (line.indent == indent && !is_entry(line.text)) {
                break;
            }
            if line.indent > indent {
                return None;
            }
            let rest = &line.text[1..];
            let content = rest.trim_start_matches(' ');
            if content.is_empty() {
                self.at += 1;
                items.push(self.nested(indent, depth)?);
                continue;
            }
            if content.starts_with('#') {
                return None;
            }
            // `- key: value` / `- - item`: the entry's content is a node
            // whose first line starts at its own column.
            let column = indent + 1 + (rest.len() - content.len());
            if is_entry(content) || split_key(content).is_some() {
                self.lines[self.at] = Line {
                    no: line.no,
                    indent: column,
                    text: content,
                };
                items.push(self.node(column, depth + 1)?);
            } else {
                items.push(self.inline(content)?);
                self.at += 1;
                if self.peek().is_some_and(|l| l.indent > indent) {
                    return None;
                }
            }
        }
        Some(Value::Array(items))
    }

    fn mapping(&mut self, indent: usize, depth: usize) -> Option<Value> {
        self.count(2)?;
        let mut map = Map::new();
        while let Some(line) = self.peek() {
            if line.indent < indent {
                break;
            }
            if line.indent > indent || is_entry(line.text) {
                // A sequence entry at a mapping's indentation belongs to
                // the key before it, which took it (see below).
                return None;
            }
            let (key, rest) = split_key(line.text)?;
            if !matches!(plain(key)?, Value::String(_)) || key.starts_with("<<") {
                return None;
            }
            self.count(1)?;
            if map.contains_key(key) {
                return None;
            }
            let rest = rest.trim_start_matches(' ');
            let value = if rest.is_empty() || rest.starts_with('#') {
                self.at += 1;
                match self.peek() {
                    // A block sequence may sit at its key's indentation.
                    Some(next) if next.indent == indent && is_entry(next.text) => {
                        self.sequence(indent, depth + 1)?
                    }
                    _ => self.nested(indent, depth)?,
                }
            } else {
                let value = self.inline(rest)?;
                self.at += 1;
                if self.peek().is_some_and(|l| l.indent > indent) {
                    return None;
                }
                value
            };
            map.insert(key.to_owned(), value);
        }
        Some(Value::Object(map))
    }

    /// The value under a key or entry at `indent` with nothing after it on
    /// its line: the more indented block that follows, or null.
    fn nested(&mut self, indent: usize, depth: usize) -> Option<Value> {
        match self.peek() {
            Some(next) if next.indent > indent => self.node(next.indent, depth + 1),
            _ => {
                self.count(1)?;
                Some(Value::Null)
            }
        }
    }

    /// A value on the rest of a line: a scalar or a one-line flow
    /// collection, with an optional comment after it.
    fn inline(&mut self, text: &str) -> Option<Value> {
        match text.as_bytes()[0] {
            b'"' | b'\'' => {
                self.count(1)?;
                let (value, rest) = quoted(text)?;
                after_value(rest)?;
                Some(Value::String(value))
            }
            b'[' => {
                let close = text.find(']')?;
                after_value(&text[close + 1..])?;
                let inner = text[1..close].trim_matches(' ');
                self.count(2)?;
                if inner.is_empty() {
                    return Some(Value::Array(Vec::new()));
                }
                let mut items = Vec::new();
                for item in inner.split(',') {
                    let item = item.trim_matches(' ');
                    if item.is_empty() || item.contains(['[', '{', '}', '#', ':']) {
                        return None;
                    }
                    self.count(1)?;
                    items.push(if item.starts_with(['"', '\'']) {
                        let (value, rest) = quoted(item)?;
                        if !rest.is_empty() {
                            return None;
                        }
                        Value::String(value)
                    } else {
                        plain(item)?
                    });
                }
                Some(Value::Array(items))
            }
            b'{' => {
                let rest = text.strip_prefix('{')?.trim_start_matches(' ');
                let rest = rest.strip_prefix('}')?;
                after_value(rest)?;
                self.count(2)?;
                Some(Value::Object(Map::new()))
            }
            _ => {
                // A comment starts at a `#` after a space.
                let text = match text.find(" #") {
                    Some(i) => text[..i].trim_end_matches(' '),
                    None => text,
                };
                if text.contains(": ") || text.ends_with(':') {
                    return None;
                }
                self.count(1)?;
                plain(text)
            }
        }
    }
}

/// A block sequence entry: `-` alone or followed by a space.
fn is_entry(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// `key: rest` or `key:` (rest empty): the key is everything before the
/// first `: ` or a final `:`.
fn split_key(text: &str) -> Option<(&str, &str)> {
    let at = match text.find(": ") {
        Some(i) => i,
        None if text.ends_with(':') => text.len() - 1,
        None => return None,
    };
    let key = &text[..at];
    // A comment or quote before the colon: not this subset's.
    if key.is_empty() || key.contains(" #") || key.ends_with(' ') {
        return None;
    }
    Some((key, &text[at + 1..]))
}

/// What may follow a value on its line: nothing, or a comment.
fn after_value(rest: &str) -> Option<()> {
    if rest.is_empty() {
        return Some(());
    }
    let trimmed = rest.trim_start_matches(' ');
    (trimmed.len() < rest.len() && trimmed.starts_with('#')).then_some(())
}

/// A one-line quoted scalar at the start of `text` (no escapes in double
/// quotes) and what follows it.
fn quoted(text: &str) -> Option<(String, &str)> {
    let quote = text.as_bytes()[0];
    let body = &text[1..];
    if quote == b'"' {
        let end = body.find('"')?;
        let value = &body[..end];
        if value.contains('\\') {
            return None;
        }
        return Some((value.to_owned(), &body[end + 1..]));
    }
    let mut value = String::new();
    let mut rest = body;
    loop {
        let end = rest.find('\'')?;
        value.push_str(&rest[..end]);
        rest = &rest[end + 1..];
        match rest.strip_prefix('\'') {
            Some(more) => {
                value.push('\'');
                rest = more;
            }
            None => return Some((value, rest)),
        }
    }
}

/// A plain scalar as YAML's core schema types it, or `None` where this
/// reader declines to judge (floats, octal and hex, dates, the words of
/// YAML 1.1's booleans, anything starting with an indicator).
fn plain(text: &str) -> Option<Value> {
    let first = text.as_bytes()[0];
    match text {
        "null" | "~" => return Some(Value::Null),
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        _ => {}
    }
    if first.is_ascii_digit() {
        if text.bytes().all(|b| b.is_ascii_digit()) {
            if text.len() > 1 && first == b'0' {
                return None;
            }
            let n: i64 = text.parse().ok()?;
            return Some(Value::from(n));
        }
        // A string only if no number, date or time could be read in it.
        if text.contains([':', '-'])
            || text
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b"xXoO._+ ".contains(&b))
        {
            return None;
        }
        return Some(Value::String(text.to_owned()));
    }
    if !(first.is_ascii_alphabetic() || first == b'/' || first == b'_' || first == b'$') {
        return None;
    }
    const WORDS: [&str; 13] = [
        "null", "true", "false", "yes", "no", "on", "off", "y", "n", "nan", "inf", "infinity",
        "none",
    ];
    if WORDS.iter().any(|w| text.eq_ignore_ascii_case(w)) {
        return None;
    }
    Some(Value::String(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::MANIFEST;

    fn read(text: &str) -> Option<Vec<Value>> {
        documents(text, &MANIFEST).map(|d| d.into_iter().map(|(_, v)| v).collect())
    }

    fn saphyr(text: &str) -> Option<Vec<Value>> {
        let docs: Vec<Option<Value>> = serde_saphyr::from_multiple(text).ok()?;
        docs.into_iter().collect()
    }

    #[test]
    fn it_reads_a_manifest() {
        let text = "---\napiVersion: clusvc/v1\nkind: Service\nmetadata:\n  name: web # the site\n  labels: {}\nspec:\n  checkInterval: 60s\n  restarts: 3\n  enabled: true\n  devices:\n  - path: /dev/vg0/lv0\n  filesystems:\n    - device: /dev/vg0/lv0\n      mountPoint: '/srv/it''s'\n      options: [noatime, \"ro\"]\n  ipAddresses:\n    -\n      address: 10.0.0.5/24\n---\n# nothing\n---\nkind: Member\n";
        let docs = documents(text, &MANIFEST).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].0, Pos { line: 2, col: 1 });
        assert_eq!(docs[1].0, Pos { line: 23, col: 1 });
        assert_eq!(
            Some(docs.into_iter().map(|(_, v)| v).collect()),
            saphyr(text)
        );
    }

    #[test]
    fn it_declines_what_it_does_not_judge() {
        for text in [
            "a: 0644\n",
            "a: 1.5\n",
            "a: yes\n",
            "a: 2001-12-14\n",
            "a: &x b\nc: *x\n",
            "a: |\n  text\n",
            "a: b\na: c\n",
            "a:\tb\n",
            "a: \"x\\ny\"\n",
            "a: b\n  c\n",
            "a: b\n b: c\n",
            "- a\n",
            "a: [b, [c]]\n",
            "a: caf\u{e9}\n",
            "%YAML 1.2\n---\na: b\n",
            "a: !!str b\n",
            "a:\n- b\n - c\n",
            "a: 10.0.0.1\n",
            "a: b: c\n",
        ] {
            assert_eq!(read(text), None, "{text:?}");
        }
    }

    mod differential {
        use super::*;
        use proptest::prelude::*;

        fn scalar() -> impl Strategy<Value = String> {
            prop_oneof![
                24 => "[a-z][a-z0-9/_.-]{1,6}",
                8 => "[1-9][0-9]{0,3}",
                8 => "[1-9][0-9]{0,2}(s|ms|m|h|/[0-9a-z]{1,3}|\\.[0-9]\\.[0-9]\\.[0-9]/[0-9]{1,2})",
                2 => "[0-9]{1,3}[smh./][0-9a-z]{0,3}",
                1 => "(true|false|null|~|yes|No|on|NULL|True|-1|\\.5|1e3|0x1f|0o7|\\.inf|10\\.0\\.0\\.1)",
                1 => "\"[a-z #:']{0,5}\"",
                1 => "'[a-z #:\"]{0,5}'",
                1 => "\\[[a-z0-9 ,\"]{0,8}\\]",
                1 => "[a-z]{1,3}(: | #|:|#)[a-z]{0,3}",
                1 => "(\\{\\}|\\{ \\}|\\[\\])",
            ]
        }

        #[derive(Debug, Clone)]
        enum Tree {
            Leaf(String),
            Map(Vec<(String, Tree)>),
            Seq(Vec<Tree>),
        }

        fn tree() -> impl Strategy<Value = Tree> {
            scalar()
                .prop_map(Tree::Leaf)
                .prop_recursive(4, 40, 4, |inner| {
                    prop_oneof![
                        proptest::collection::vec(("[a-z]{1,3}( [a-z])?", inner.clone()), 1..4)
                            .prop_map(Tree::Map),
                        proptest::collection::vec(inner, 1..4).prop_map(Tree::Seq),
                    ]
                })
        }

        fn bit(style: &mut u64) -> bool {
            *style = style
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (*style >> 33) & 1 == 1
        }

        /// Block style with a choice at every turn (`style` bits):
        /// sequences under keys indented or not, compact `- key:` entries
        /// or not, indentation of 2 or 3, comments.
        fn render(t: &Tree, indent: usize, style: &mut u64, out: &mut String) {
            let pad = " ".repeat(indent);
            match t {
                Tree::Leaf(s) => out.push_str(&format!("{pad}{s}\n")),
                Tree::Map(entries) => {
                    for (k, v) in entries {
                        match v {
                            Tree::Leaf(s) => out.push_str(&format!("{pad}{k}: {s}\n")),
                            Tree::Seq(_) if bit(style) => {
                                out.push_str(&format!("{pad}{k}:\n"));
                                render(v, indent, style, out);
                            }
                            _ => {
                                out.push_str(&format!(
                                    "{pad}{k}:{}\n",
                                    if bit(style) { " # c" } else { "" }
                                ));
                                let step = if bit(style) { 2 } else { 3 };
                                render(v, indent + step, style, out);
                            }
                        }
                    }
                }
                Tree::Seq(items) => {
                    for item in items {
                        match item {
                            Tree::Leaf(s) => out.push_str(&format!("{pad}- {s}\n")),
                            _ if bit(style) => {
                                let mut inner = String::new();
                                render(item, indent + 2, style, &mut inner);
                                // `- ` takes the place of the first line's
                                // indentation.
                                out.push_str(&format!("{pad}- {}", &inner[indent + 2..]));
                            }
                            _ => {
                                out.push_str(&format!("{pad}-\n"));
                                render(item, indent + 2, style, out);
                            }
                        }
                    }
                }
            }
        }

        fn text() -> impl Strategy<Value = String> {
            let doc = (
                proptest::collection::vec(("[a-z]{1,6}", tree()), 1..5),
                any::<u64>(),
            )
                .prop_map(|(entries, mut style)| {
                    let mut out = String::new();
                    render(&Tree::Map(entries), 0, &mut style, &mut out);
                    out
                });
            (
                proptest::collection::vec(doc, 1..3),
                proptest::option::weighted(
                    0.3,
                    (any::<prop::sample::Index>(), "[ :#\\-a\\[\\]\"']"),
                ),
            )
                .prop_map(|(docs, mutation)| {
                    let mut text = format!("---\n{}", docs.join("---\n# between\n\n---\n"));
                    // One character replaced: mostly invalid YAML, or
                    // another meaning.
                    if let Some((at, c)) = mutation {
                        let i = at.index(text.len());
                        text.replace_range(i..i + 1, &c);
                    }
                    text
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(5000))]
            #[test]
            fn it_reads_what_it_accepts_as_serde_saphyr_does(text in text()) {
                if let Some(ours) = read(&text) {
                    ACCEPTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    prop_assert_eq!(Some(ours), saphyr(&text), "{:?}", text);
                }
            }
        }

        static ACCEPTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

        /// Most generated texts are in the subset (else the property above
        /// says little).
        #[test]
        fn most_generated_texts_are_read() {
            use proptest::strategy::ValueTree;
            let mut runner = proptest::test_runner::TestRunner::deterministic();
            let strategy = text();
            let n = 2000;
            let read_ = (0..n)
                .filter(|_| read(&strategy.new_tree(&mut runner).unwrap().current()).is_some())
                .count();
            assert!(read_ * 3 > n, "{read_} of {n} read");
        }
    }
}
