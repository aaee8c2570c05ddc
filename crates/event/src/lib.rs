//! The endpoint dialect: the typed, ECS-shaped event model every collector emits, with JSON (de)serialization. No I/O.
//!
//! Build an event with a constructor of [`Event`], fill the fields the collector knows,
//! serialize it once:
//!
//! ```
//! use agent_event::{Event, Process, Timestamp};
//!
//! let mut e = Event::process_created(
//!     Timestamp::from_unix(1_700_000_000, 123_000_000),
//!     Process { pid: Some(42), executable: "/usr/bin/id".into(), ..Process::default() },
//! );
//! e.tags.push("root_exec".into());
//! let json = e.to_json()?;
//! assert!(json.starts_with(r#"{"@timestamp":"2023-11-14T22:13:20.123Z","#));
//! assert_eq!(Event::from_json(&json)?, e);
//! # Ok::<(), agent_event::EventError>(())
//! ```
//!
//! Reading then writing any event of the dialect gives back the same JSON value, including
//! fields this model does not name and numbers beyond `f64` (`18446744073709551615`).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod builders;
mod model;
mod node;
mod timestamp;

pub use builders::{actions, codes, LogLevel, Outcome, PROVIDER};
pub use model::{
    Action, Agent, AgentUsage, Dns, DnsAnswer, DnsQuestion, Endpoint, ErrorInfo, Event, EventInfo,
    File, FileExt, FileOriginal, Group, Hashes, Host, HostOs, HostUsage, Log, Network, Process,
    ProcessGuids, Sekoiaio, Strings, Thread, User,
};
pub use node::Node;
pub use timestamp::{Timestamp, TimestampError};

/// Why an event could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Not JSON, or JSON that is not an object.
    #[error("invalid event JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl Event {
    /// The event as one line of JSON (no trailing newline).
    pub fn to_json(&self) -> Result<String, EventError> {
        Ok(serde_json::to_string(self)?)
    }

    /// Appends the event as JSON to `buf` (reuse one buffer on hot paths).
    pub fn write_json(&self, buf: &mut Vec<u8>) -> Result<(), EventError> {
        serde_json::to_writer(buf, self)?;
        Ok(())
    }

    /// Reads an event from JSON text.
    pub fn from_json(text: &str) -> Result<Event, EventError> {
        Ok(serde_json::from_str(text)?)
    }

    /// Reads an event from JSON bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Event, EventError> {
        Ok(serde_json::from_slice(bytes)?)
    }

    /// Reads an event from a JSON value.
    pub fn from_value(value: &serde_json::Value) -> Result<Event, EventError> {
        <Event as Node>::from_json(value).ok_or_else(|| {
            EventError::Json(serde::de::Error::custom("an event must be a JSON object"))
        })
    }

    /// The event as a JSON value.
    pub fn to_value(&self) -> Result<serde_json::Value, EventError> {
        Ok(serde_json::to_value(self)?)
    }
}
