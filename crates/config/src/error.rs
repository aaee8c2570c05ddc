//! Errors and warnings from loading config.yaml, each pointing at the file, line and column.

use std::fmt;
use std::path::PathBuf;

use crate::intake::IntakeUrlError;
use crate::proxy::ProxyUrlError;

/// A 1-based position in config.yaml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Line, starting at 1.
    pub line: usize,
    /// Column, starting at 1.
    pub column: usize,
}

/// One problem found in a config file: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file name as given to the loader (a path, or a label such as `<stdin>`).
    pub file: String,
    /// Where in the file, when known.
    pub location: Option<Location>,
    /// What is wrong, starting with the key it concerns (`HTTPProxyURL: ...`).
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some(Location { line, column }) => write!(
                f,
                "{}: line {line}, column {column}: {}",
                self.file, self.message
            ),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Something that does not stop the agent but that the user should fix (for example
/// unknown keys, which are ignored rather than silently dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The file name as given to the loader.
    pub file: String,
    /// Where in the file, when known.
    pub location: Option<Location>,
    /// What to look at.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some(Location { line, column }) => write!(
                f,
                "{}: line {line}, column {column}: warning: {}",
                self.file, self.message
            ),
            None => write!(f, "{}: warning: {}", self.file, self.message),
        }
    }
}

/// Why a config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Not valid YAML (parsing stops there), or one key with a value of the wrong type.
    #[error("{0}")]
    Parse(Problem),
    /// Well-formed YAML whose values are not acceptable (several wrong types, or values
    /// of the right type that cannot be used); every problem found is listed.
    #[error("{}", join(.0))]
    Invalid(Vec<Problem>),
    /// The configuration could not be written as YAML.
    #[error("cannot write the configuration as YAML: {0}")]
    Serialize(#[source] serde_yaml::Error),
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigError {
    /// The problems found in the file (empty for read and serialization errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Parse(p) => std::slice::from_ref(p),
            ConfigError::Invalid(ps) => ps,
            ConfigError::Read { .. } | ConfigError::Serialize(_) => &[],
        }
    }
}

/// A setting whose value cannot be used, with the key it concerns. `config check` reports
/// it (with file, line and column) and the agent refuses to start on it, with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    /// `HTTPProxyURL`.
    #[error("HTTPProxyURL: {0}")]
    Proxy(#[source] ProxyUrlError),
    /// `IntakeURL`.
    #[error("IntakeURL: {0}")]
    IntakeUrl(#[source] IntakeUrlError),
    /// `UpdateURL`.
    #[error("UpdateURL: {0}")]
    UpdateUrl(#[source] IntakeUrlError),
}
