//! A segmented-file ring of opaque records that survives crashes and network outages.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
