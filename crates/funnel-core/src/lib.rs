//! Funnel's vocabulary: the records that flow into the engine (items, users, events)
//! and the values that flow through a request (candidates, slates, traces).
//!
//! This crate holds data types and their validation only. It does no I/O, knows no
//! storage format, no HTTP and no model.

mod event;
mod item;
mod slate;

pub use event::{Event, EventContext, EventKind};
pub use item::{Item, User};
pub use slate::{Candidate, ScoredItem, StageTrace, Trace};

/// Seconds since the Unix epoch (UTC). Every timestamp in Funnel uses this unit.
pub type Timestamp = i64;

/// A record as it is appended to the event log: catalog and user upserts share the log
/// with events so that one ordered log is the source of truth.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    Item(Item),
    User(User),
    Event(Event),
}

/// A record that failed validation: names the field and says what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {reason}")]
pub struct InvalidRecord {
    pub field: &'static str,
    pub reason: String,
}

impl InvalidRecord {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self { field, reason: reason.into() }
    }
}

/// Rejects empty ids and ids with control characters; they would break TSV/TREC output.
pub(crate) fn check_id(field: &'static str, id: &str) -> Result<(), InvalidRecord> {
    if id.is_empty() {
        return Err(InvalidRecord::new(field, "must not be empty"));
    }
    if id.len() > 512 {
        return Err(InvalidRecord::new(field, "longer than 512 bytes"));
    }
    if id.chars().any(char::is_control) {
        return Err(InvalidRecord::new(field, "contains a control character"));
    }
    Ok(())
}

pub(crate) fn check_finite(field: &'static str, value: f64) -> Result<(), InvalidRecord> {
    if value.is_finite() { Ok(()) } else { Err(InvalidRecord::new(field, "must be a finite number")) }
}
