//! Plumbing shared by collectors and the agent: the routed record format stored in the
//! ring, collector and sink traits, routing by intake key, stats.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod routed;

pub use routed::{RecordKind, RoutedError, RoutedRecord};
