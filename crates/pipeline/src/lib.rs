//! Plumbing shared by collectors and the agent: the routed record format stored in the
//! ring and the writer thread that serializes events into it.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod routed;
pub mod writer;

pub use routed::{RecordKind, RoutedError, RoutedRecord};
pub use writer::{run_writer, Control, OwnedLine, RecordStore, Stamp, WriterConfig, WriterStats};
