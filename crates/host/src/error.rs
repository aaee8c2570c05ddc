//! Errors of this crate.

use std::path::PathBuf;

/// Why a host fact could not be obtained or persisted.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Persisting a file failed (the step and the OS error are inside).
    #[error(transparent)]
    Persist(#[from] agent_os::ReplaceError),
    /// The operating system's random generator failed.
    #[error("the OS random generator failed: {0}")]
    Random(String),
    /// A system call failed.
    #[error("{call} failed: {source}")]
    Sys {
        /// Name of the call.
        call: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl HostError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        HostError::Io {
            path: path.into(),
            source,
        }
    }
}
