//! The library's error type: every variant names the file, key or item it is about.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path}: key `{key}`: {message}")]
    ConfigKey {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("{path}: {message}")]
    Json { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("{what} is not built yet in this version of mimicit")]
    NotBuilt { what: String },
    #[error("{0}")]
    Invalid(String),
    /// Another process is writing the run folder (see [`crate::lock`]).
    #[error(
        "{path}: in use by another writer ({holder}); wait for it to finish, or run again \
         without --no-wait to wait"
    )]
    Busy { path: PathBuf, holder: String },
    /// A flag value the command cannot take (`--batch 0`, `--size 0`, ...): bad usage, exit 2.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Extension to attach a path to `std::io::Result`s.
pub trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
