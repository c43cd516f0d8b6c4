//! A configuration file clusvc owns, made of marked blocks, one per resource:
//!
//! ```text
//! # clusvc:begin KEY
//! ...
//! # clusvc:end KEY
//! ```
//!
//! Updates are read-modify-write under the member's file lock and replace
//! the file atomically (write, fsync, rename), so a reader (smbd, ganesha)
//! never sees half a file.

use std::io::Write;
use std::path::Path;

use crate::resources::{Error, Result};

fn begin(key: &str) -> String {
    format!("# clusvc:begin {key}")
}
fn end(key: &str) -> String {
    format!("# clusvc:end {key}")
}

/// The blocks of a file: `(key, body)`, in file order.
pub fn blocks(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(key) = line.strip_prefix("# clusvc:begin ") {
            cur = Some((key.to_string(), String::new()));
        } else if let Some(key) = line.strip_prefix("# clusvc:end ") {
            if let Some((k, body)) = cur.take()
                && k == key
            {
                out.push((k, body));
            }
        } else if let Some((_, body)) = cur.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// Reads the file (missing = empty).
pub fn read(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Error::Failed(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// The body of block `key`, if present.
pub fn get(path: &Path, key: &str) -> Result<Option<String>> {
    Ok(blocks(&read(path)?)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, b)| b))
}

/// Sets (`Some`) or removes (`None`) block `key`; returns whether the file
/// changed.
pub fn set(path: &Path, key: &str, body: Option<&str>) -> Result<bool> {
    let old = read(path)?;
    let mut kept: Vec<(String, String)> =
        blocks(&old).into_iter().filter(|(k, _)| k != key).collect();
    if let Some(b) = body {
        kept.push((key.to_string(), b.to_string()));
    }
    let mut text = String::from("# Managed by clusvc: do not edit; changes are overwritten.\n");
    for (k, b) in &kept {
        text.push_str(&begin(k));
        text.push('\n');
        text.push_str(b);
        if !b.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&end(k));
        text.push('\n');
    }
    if text == old {
        return Ok(false);
    }
    write_atomic(path, text.as_bytes())?;
    Ok(true)
}

/// Writes `data` to `path` atomically.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result {
    let fail = |e: std::io::Error| Error::Failed(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let tmp = path.with_extension(format!("clusvc-tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(fail)?;
    f.write_all(data).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_added_replaced_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.conf");
        assert!(set(&p, "a", Some("[a]\npath = /a\n")).unwrap());
        assert!(set(&p, "b", Some("[b]\npath = /b\n")).unwrap());
        assert!(!set(&p, "b", Some("[b]\npath = /b\n")).unwrap());
        assert_eq!(get(&p, "a").unwrap().unwrap(), "[a]\npath = /a\n");
        assert!(set(&p, "a", None).unwrap());
        assert_eq!(get(&p, "a").unwrap(), None);
        assert!(get(&p, "b").unwrap().is_some());
    }
}
