//! Manifest errors: `file:line:col: field.path: message`.

use std::fmt;

use super::yaml::Pos;

/// One problem in one input.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ManifestError {
    /// The input's name as the user gave it (`services/web.yaml`, `-` for stdin).
    pub file: String,
    /// Where in it.
    pub pos: Pos,
    /// The field path (`spec.checkInterval`); empty for document-level problems.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pos.line == 0 {
            // No position (an unreadable file): the path alone.
            write!(f, "{}: ", self.file)?;
        } else {
            write!(f, "{}:{}:{}: ", self.file, self.pos.line, self.pos.col)?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in an input, in file and line order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Errors(pub Vec<ManifestError>);

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl Errors {
    /// A single error without a document position (unreadable file, ...).
    pub fn single(file: impl Into<String>, message: impl Into<String>) -> Self {
        Errors(vec![ManifestError {
            file: file.into(),
            pos: Pos::default(),
            path: String::new(),
            message: message.into(),
        }])
    }
}
