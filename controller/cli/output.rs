//! How listings look: tables in kubectl's plain style, YAML and JSON, ages.

use std::time::SystemTime;

use comfy_table::{Table, presets};

use clusvc_core::model::Timestamp;

/// Output formats of listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListOutput {
    /// A table.
    Table,
    /// A table with more columns.
    Wide,
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

/// `42s`, `5m`, `3h`, `2d` since `t`; `<unknown>` without one.
pub fn age(t: Option<Timestamp>) -> String {
    let Some(t) = t else {
        return "<unknown>".into();
    };
    let now = Timestamp::from_system(SystemTime::now());
    let secs = now.as_millis().saturating_sub(t.as_millis()) / 1000;
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// Prints a value as JSON (`-o json`) or YAML (anything else).
pub fn print_structured<T: serde::Serialize>(v: &T, output: ListOutput) {
    match output {
        ListOutput::Json => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
        _ => print!("{}", serde_saphyr::to_string(v).unwrap_or_default()),
    }
}

/// A borderless table with this header.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header(header.to_vec());
    t
}

/// Prints a table the way kubectl does: no margin, no trailing spaces.
pub fn print_table(t: &Table) {
    let text = t.to_string();
    let margin = text.lines().all(|l| l.starts_with(' '));
    for line in text.lines() {
        let line = if margin { &line[1..] } else { line };
        println!("{}", line.trim_end());
    }
}
