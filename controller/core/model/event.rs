//! Events: what happened to a service, for operators (`clusvc events`,
//! `describe`). Plain data.

use serde::{Deserialize, Serialize};

use super::Timestamp;

/// Syslog-style severity, as seed scripts pass to `logAndPrint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// LOG_EMERG (0)
    Emerg,
    /// LOG_ALERT (1)
    Alert,
    /// LOG_CRIT (2)
    Crit,
    /// LOG_ERR (3)
    Err,
    /// LOG_WARNING (4)
    Warning,
    /// LOG_NOTICE (5)
    Notice,
    /// LOG_INFO (6)
    Info,
    /// LOG_DEBUG (7)
    Debug,
}

impl Level {
    /// From a syslog number; out of range is `Info`.
    pub fn from_syslog(n: u8) -> Self {
        match n {
            0 => Level::Emerg,
            1 => Level::Alert,
            2 => Level::Crit,
            3 => Level::Err,
            4 => Level::Warning,
            5 => Level::Notice,
            7 => Level::Debug,
            _ => Level::Info,
        }
    }
}

/// One event of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// When (filled by whoever records it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
    /// The service.
    pub service: String,
    /// Its ID.
    #[serde(default)]
    pub service_id: u64,
    /// The member it happened on.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub member: String,
    /// The resource label, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    /// Severity, as syslog levels.
    pub level: Level,
    /// What happened.
    pub message: String,
    /// For the start of a plan's work: why (the plan's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The store revision the controller had seen when it decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
}
