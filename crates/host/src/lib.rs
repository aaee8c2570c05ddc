//! Host facts (agent id, hostname, IPs, OS, boot id, user and group names) and file hashing with a cache.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
