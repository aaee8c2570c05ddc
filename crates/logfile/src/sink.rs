//! The hand-over point between the tailer and the rest of the agent.

use std::path::Path;

/// One line (or one piece of an over-long line) read from a log file.
///
/// `bytes` are the raw bytes of the file, exactly as written, without the terminating
/// `\n`. Nothing is decoded or replaced: `\r` stays, invalid UTF-8 stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLine<'a> {
    /// Intake key of the [`crate::WatchSpec`] the file matched.
    pub intake_key: &'a str,
    /// Path the file was found under when the line was read.
    pub path: &'a Path,
    /// Raw line bytes, terminator removed.
    pub bytes: &'a [u8],
    /// `false` when the line was cut at `max_line_len` (more pieces follow) or flushed
    /// without a terminator because its file was rotated away or truncated.
    pub complete: bool,
}

/// Receiver of lines. Called synchronously from the tailer thread.
///
/// `deliver` must return `Ok` only once the lines are durably handed over (for the agent:
/// appended to the ring); checkpoints only ever cover accepted lines. Blocking in
/// `deliver` is how backpressure reaches the tailer. On `Err` the tailer stops and
/// returns [`crate::Error::Sink`]; the batch will be read again after a restart.
/// Likewise a batch the process dies inside `deliver` with was never accepted: whatever
/// part of it the sink had already stored is delivered again after the restart.
pub trait LineSink {
    /// The sink's own failure type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Takes a batch of lines, all from the same file, in file order.
    fn deliver(&mut self, lines: &[LogLine<'_>]) -> Result<(), Self::Error>;
}
