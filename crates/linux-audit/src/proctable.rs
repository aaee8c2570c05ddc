//! The process table: built from /proc at start and kept current from audit events.
