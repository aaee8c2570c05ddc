//! The endpoint dialect: the typed, ECS-shaped event model every collector emits, with JSON (de)serialization. No I/O.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
