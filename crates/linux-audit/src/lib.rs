//! Linux audit collector: netlink client, rule compiler, record reassembly and normalization.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod proctable;
