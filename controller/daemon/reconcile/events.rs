//! The event log: recent events in memory for `describe` and `events`, and
//! a broadcast for `events --follow`.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::broadcast;

use clusvc_agent::events::Events;
use clusvc_core::model::Timestamp;
use clusvc_core::model::event::Event;

/// Events kept.
const KEEP: usize = 5_000;

/// Recent events and live subscribers.
pub struct EventLog {
    recent: Mutex<VecDeque<Event>>,
    tx: broadcast::Sender<Event>,
}

impl Default for EventLog {
    fn default() -> Self {
        Self {
            recent: Mutex::new(VecDeque::new()),
            tx: broadcast::channel(1024).0,
        }
    }
}

impl EventLog {
    /// Recent events, oldest first, of one service or all.
    pub fn recent(&self, service: Option<&str>, limit: usize) -> Vec<Event> {
        let r = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<Event> = r
            .iter()
            .rev()
            .filter(|e| service.is_none_or(|s| e.service == s))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        out
    }

    /// Live events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

impl Events for EventLog {
    fn emit(&self, mut event: Event) {
        // Resource-level events are logged where they happen; controller
        // and cluster events are logged here.
        if event.resource.is_empty() {
            let who = if event.service.is_empty() {
                "cluster".to_string()
            } else {
                format!("service/{}", event.service)
            };
            let who = if event.message.starts_with(&who) {
                String::new()
            } else {
                who
            };
            let who = if who.is_empty() {
                who
            } else {
                format!("{who}: ")
            };
            match event.level {
                clusvc_core::model::event::Level::Emerg
                | clusvc_core::model::event::Level::Alert
                | clusvc_core::model::event::Level::Crit
                | clusvc_core::model::event::Level::Err => {
                    tracing::error!("{who}{}", event.message)
                }
                clusvc_core::model::event::Level::Warning => {
                    tracing::warn!("{who}{}", event.message)
                }
                clusvc_core::model::event::Level::Debug => {
                    tracing::debug!("{who}{}", event.message)
                }
                _ => tracing::info!("{who}{}", event.message),
            }
        }
        if event.at.is_none() {
            event.at = Some(Timestamp::from_system(std::time::SystemTime::now()));
        }
        let mut r = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if r.len() >= KEEP {
            r.pop_front();
        }
        r.push_back(event.clone());
        drop(r);
        let _ = self.tx.send(event);
    }
}
