//! Errors: the server's own ([`Error`]: starting up), and what a request gets ([`ApiError`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    #[error("tokens file `{}`: {reason}", path.display())]
    Tokens { path: PathBuf, reason: String },

    #[error("TLS: `{}` {reason}", path.display())]
    Tls { path: PathBuf, reason: String },

    #[error("the server stopped")]
    Runtime(#[source] std::io::Error),
}

/// What every failed request gets as its body.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// What is wrong, in words; several lines when an error has causes, and a `hint:` line
    /// where the caller can act.
    pub(crate) error: String,
}

/// A request's failure: its status and a message that names what is wrong, sent as
/// `{"error": "..."}`. Messages come from orgport's errors, which never hold a credential.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

/// An error and its causes, one per line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str("\ncaused by: ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

impl From<orgport_core::Error> for ApiError {
    fn from(e: orgport_core::Error) -> ApiError {
        use orgport_core::Error as E;
        let status = match &e {
            // The archive fails its checks, or cannot go into this target as it is.
            E::Corrupt(_)
            | E::Encrypted { .. }
            | E::Decrypt(_)
            | E::UnsupportedVersion { .. }
            | E::Incompatible(_)
            | E::Unresolved(_)
            | E::Plan(_)
            | E::Config(_) => StatusCode::UNPROCESSABLE_ENTITY,
            // Values or objects of the target in the way, or the caller's own cancel.
            E::Conflicts(_) | E::ObjectsExist(_) | E::Cancelled => StatusCode::CONFLICT,
            E::OrgNotFound { .. } => StatusCode::NOT_FOUND,
            E::Storage { .. } => StatusCode::BAD_GATEWAY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut message = chain(&e);
        if let E::Encrypted { .. } = e {
            message.push_str("\nhint: the server decrypts archives with the identity file of `orgport serve --identity FILE`");
        }
        ApiError::new(status, message)
    }
}

impl From<orgport_engines::Error> for ApiError {
    fn from(e: orgport_engines::Error) -> ApiError {
        match e {
            orgport_engines::Error::Core(e) => e.into(),
            other => ApiError::internal(chain(&other)),
        }
    }
}
