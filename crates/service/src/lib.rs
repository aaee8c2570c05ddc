//! Install, start, stop and uninstall the agent as a systemd, Windows SCM or launchd service.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
