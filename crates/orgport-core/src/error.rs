//! The one error type of the core library.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop a plan, export, import or verify. Each variant names the object at
/// fault (table, column, key, file) so the message alone tells the user where to look.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(String),

    #[error("{0}")]
    Plan(String),

    #[error("the plan has {} warning(s) and `--strict` was given:\n{}", .0.len(), .0.join("\n"))]
    Strict(Vec<String>),

    #[error("archive is corrupt: {0}")]
    Corrupt(String),

    #[error("archive format version {found} is not supported (this orgport reads versions 1 to {supported})")]
    UnsupportedVersion { found: u32, supported: u32 },

    #[error("{context}")]
    Engine {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("the target schema does not match the archive:\n{}", .0.join("\n"))]
    Incompatible(Vec<String>),

    #[error("{} unique value(s) of the archive already exist on the target:\n{}", .0.len(), .0.join("\n"))]
    Conflicts(Vec<String>),

    #[error("{} object(s) the import would write already exist, and orgport does not overwrite objects:\n{}", .0.len(), .0.join("\n"))]
    ObjectsExist(Vec<String>),

    #[error("the archive cannot be imported:\n{}", .0.join("\n"))]
    Unresolved(Vec<String>),

    #[error("organisation {key} not found in `{table}`")]
    OrgNotFound { table: String, key: String },

    #[error("{action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An object store refused or failed: `location` is the object's URL (`s3://bucket/key`) and
    /// `reason` what went wrong, never a credential.
    #[error("cannot {action} `{location}`: {reason}")]
    Storage { action: &'static str, location: String, reason: String },

    #[error("{0}")]
    Stream(#[source] std::io::Error),

    /// The caller asked the work to stop ([`crate::progress::Progress::cancelled`]).
    #[error("cancelled: nothing was written")]
    Cancelled,

    #[error("scratch store: {0}")]
    Scratch(#[from] rusqlite::Error),
}

impl Error {
    /// Wraps an engine's error with what was being done.
    pub fn engine(context: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Engine { context: context.into(), source: Box::new(source) }
    }

    /// Puts what was being done in front of an engine error's context; other errors as they are.
    pub fn doing(self, what: &str) -> Self {
        match self {
            Error::Engine { context, source } => Error::Engine { context: format!("{what}: {context}"), source },
            other => other,
        }
    }

    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { action, path: path.into(), source }
    }

    /// A stream's error; an object store's, which reaches the core inside an I/O error from a
    /// `Read` or `Write`, comes out as itself.
    pub fn stream(e: std::io::Error) -> Self {
        match e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            true => *e.into_inner().and_then(|inner| inner.downcast::<Error>().ok()).expect("checked above"),
            false => Error::Stream(e),
        }
    }
}
