//! Plumbing shared by collectors and the agent: collector and sink traits, routing by intake key, stats.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
