//! What to watch and how: watch specs, options and pattern validation.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::Error;

/// One configured log source: files matching `pattern` are shipped to `intake_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSpec {
    /// Glob over file paths: `*`, `?` and `[a-z]` classes; `*` does not cross `/`.
    /// `**` is rejected with [`Error::RecursiveGlob`].
    pub pattern: String,
    /// Intake the lines of matching files are routed to.
    pub intake_key: String,
}

/// Tuning knobs of the tailer; [`Options::default`] is what the agent ships with.
#[derive(Debug, Clone)]
pub struct Options {
    /// On the very first start (no checkpoint file yet), start existing files at their end.
    /// Files that appear later, and files without a checkpoint on later starts, are always
    /// read from their beginning.
    pub start_at_end: bool,
    /// Longest line delivered in one piece; longer lines are split into pieces of this
    /// size (each piece has [`crate::LogLine::complete`] `false` except the last) and counted.
    pub max_line_len: usize,
    /// At most this many files are held open; further matches wait for a free slot.
    pub max_open_files: usize,
    /// How often the patterns are re-expanded (new files, rotation). At most 2 s.
    pub poll_interval: Duration,
    /// At most this many lines are passed to one [`crate::LineSink::deliver`] call.
    pub max_batch_lines: usize,
    /// A checkpoint is written (durably) once this many lines were accepted since the
    /// last one. In between, each accepted delivery is journalled (see
    /// [`Options::duplicate_bound`]).
    pub checkpoint_max_lines: u64,
    /// A checkpoint is written (durably) at least this often while anything changed.
    pub checkpoint_interval: Duration,
    /// A file whose path no longer leads to it (renamed away or deleted) is kept open
    /// until it has not grown for this long, then its last partial line is flushed.
    pub rotated_grace: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            start_at_end: true,
            max_line_len: 1 << 20,
            max_open_files: 256,
            poll_interval: Duration::from_secs(1),
            max_batch_lines: 1024,
            checkpoint_max_lines: 50_000,
            // Durable writes (file and directory fsync): what a power loss repeats is what
            // was accepted since the last one, at most a second of lines. A crash of the
            // process repeats far less (the journal carries positions forward after each
            // delivery), so this interval only trades power-loss duplicates against fsyncs:
            // at 200 ms they were 7 % of the agent's CPU at 1 000 lines/s (docs/bench).
            checkpoint_interval: Duration::from_secs(1),
            rotated_grace: Duration::from_secs(2),
        }
    }
}

impl Options {
    /// Upper bound on lines delivered again after the process is killed (SIGKILL, a
    /// crash): the delivery it died in or right after, whose lines the sink may hold
    /// while the journal does not record them yet; at most `max_batch_lines` lines.
    /// Every accepted delivery is journalled with one `write(2)` (no fsync), and the
    /// journal survives the process in the page cache.
    pub fn duplicate_bound(&self) -> u64 {
        self.max_batch_lines as u64
    }

    /// Upper bound on lines delivered again after a power loss or reboot (with the
    /// sink's data durable): the journal is not trusted across boots, so everything
    /// accepted since the last durable checkpoint write, fewer than
    /// `checkpoint_max_lines + max_batch_lines` lines (or `checkpoint_interval` of them).
    pub fn power_loss_duplicate_bound(&self) -> u64 {
        self.checkpoint_max_lines + self.max_batch_lines as u64 - 1
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.max_line_len == 0 {
            return Err(Error::InvalidOption("max_line_len must be > 0"));
        }
        if self.max_open_files == 0 {
            return Err(Error::InvalidOption("max_open_files must be > 0"));
        }
        if self.max_batch_lines == 0 {
            return Err(Error::InvalidOption("max_batch_lines must be > 0"));
        }
        if self.checkpoint_max_lines == 0 {
            return Err(Error::InvalidOption("checkpoint_max_lines must be > 0"));
        }
        if self.poll_interval.is_zero() || self.poll_interval > Duration::from_secs(2) {
            return Err(Error::InvalidOption("poll_interval must be in (0, 2s]"));
        }
        Ok(())
    }
}

/// Checks a pattern the way the tailer will use it; config validation calls this too.
pub fn validate_pattern(pattern: &str) -> Result<glob::Pattern, Error> {
    if pattern.is_empty() {
        return Err(Error::EmptyPattern);
    }
    if pattern.contains("**") {
        return Err(Error::RecursiveGlob {
            pattern: pattern.to_owned(),
        });
    }
    glob::Pattern::new(pattern).map_err(|source| Error::InvalidPattern {
        pattern: pattern.to_owned(),
        source,
    })
}

/// Options under which `*` and `?` never match `/`.
pub(crate) fn match_options() -> glob::MatchOptions {
    glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    }
}

/// The deepest directory of `pattern` that contains no wildcard: watched for new files.
pub(crate) fn literal_dir(pattern: &str) -> PathBuf {
    let mut dir = PathBuf::new();
    let path = Path::new(pattern);
    let mut components = path.components().peekable();
    while let Some(component) = components.next() {
        if components.peek().is_none() {
            break; // the last component names files, not a directory
        }
        if let Component::Normal(part) = component {
            if part.to_string_lossy().contains(['*', '?', '[']) {
                break;
            }
        }
        dir.push(component);
    }
    if dir.as_os_str().is_empty() {
        dir.push(".");
    }
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_recursive_and_broken_patterns() {
        assert!(matches!(
            validate_pattern("/var/log/**/x.log"),
            Err(Error::RecursiveGlob { .. })
        ));
        assert!(matches!(
            validate_pattern("/var/log/[a-"),
            Err(Error::InvalidPattern { .. })
        ));
        assert!(matches!(validate_pattern(""), Err(Error::EmptyPattern)));
        assert!(validate_pattern("/var/log/nginx/*[a-z].log").is_ok());
    }

    #[test]
    fn star_does_not_cross_directories() {
        let p = validate_pattern("/var/log/*.log").unwrap();
        assert!(p.matches_with("/var/log/a.log", match_options()));
        assert!(!p.matches_with("/var/log/sub/a.log", match_options()));
    }

    #[test]
    fn literal_dir_stops_at_first_wildcard() {
        assert_eq!(
            literal_dir("/var/log/nginx/*.log"),
            Path::new("/var/log/nginx")
        );
        assert_eq!(literal_dir("/var/log/*/access.log"), Path::new("/var/log"));
        assert_eq!(literal_dir("x.log"), Path::new("."));
    }

    #[test]
    fn default_options_are_valid() {
        Options::default().validate().unwrap();
        let bad = Options {
            poll_interval: Duration::from_secs(3),
            ..Options::default()
        };
        assert!(bad.validate().is_err());
    }
}
