//! Where the events of actions go (script messages, command output,
//! failures): the daemon's event log, or a [`Recorder`] in tests and tools.

use std::sync::Mutex;

use clusvc_core::model::event::Event;

/// Receives the events of actions (script messages, command output,
/// failures).
pub trait Events: Send + Sync {
    /// Records one event.
    fn emit(&self, event: Event);
}

/// An [`Events`] that keeps everything in memory (tests, short-lived tools).
#[derive(Debug, Default)]
pub struct Recorder(Mutex<Vec<Event>>);

impl Recorder {
    /// Everything recorded so far.
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Events for Recorder {
    fn emit(&self, event: Event) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(event);
    }
}
