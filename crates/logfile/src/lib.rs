//! Glob-based log file tailing with checkpoints and rotation handling.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
