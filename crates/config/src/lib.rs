//! config.yaml: schema, defaults, validation, intake regions and per-OS well-known paths.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
