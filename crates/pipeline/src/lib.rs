//! Plumbing shared by collectors and the agent: the collector contract and its sinks, the
//! routed record format stored in the ring, the writer thread that serializes events into
//! it, the status schema, the periodic stats event and the agent log.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod agent_log;
pub mod collector;
pub mod monitor;
pub mod routed;
pub mod status;
pub mod writer;

pub use collector::{
    Collector, CollectorError, CollectorState, Overflow, Report, Sent, Sink, SinkError,
};
pub use monitor::Monitor;
pub use routed::{RecordKind, RoutedError, RoutedRecord};
pub use status::{CollectorStatus, RingStatus, ShipperStatus, Status};
pub use writer::{run_writer, Control, OwnedLine, RecordStore, Stamp, WriterConfig, WriterStats};
