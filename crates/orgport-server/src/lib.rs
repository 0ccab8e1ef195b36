//! orgport-server: export and import organisations over HTTP — a thin shell over `orgport-core`
//! that knows no command line.
//!
//! Endpoints, in Browsertrix's shape, every one but `/healthz` for superusers only
//! (`Authorization: Bearer TOKEN`, checked against the SHA-256 hashes of [`Tokens`]):
//! - `GET /healthz`: `{"status": "ok"}`, no token needed;
//! - `GET /openapi.json`: the OpenAPI 3.1 document of every endpoint ([`openapi`]), no token needed;
//! - `GET /api/orgs/{id}/export[?with=passwords,otp]`: the organisation's archive, streamed;
//! - `POST /api/orgs/import[?ignoreVersion=…&dryRun=…&async=…]`: an archive as the request body,
//!   imported as a new organisation; the import report as JSON, or `202 {"job": ID}` with `async=true`;
//! - `GET /api/jobs/{id}`: a job's state, progress, error or report; `DELETE /api/jobs/{id}` cancels it;
//!   `GET /api/jobs`: every job kept, newest first;
//! - `GET /api/orgs`: the database's organisations and the rows each owns;
//! - `GET /`: the admin page (no token to load it; it asks for one and calls the API with it).
//! - `GET /api/orgs/{id}/export/json` and `POST /api/orgs/import/json`: the same with the archive's
//!   JSON form; `?storageName=NAME` on both imports sends the archive's files to `[files.NAME]`.
//!
//! And in ZITADEL's shape (`zitadel.rs`): `POST /admin/v1/export` (several organisations, or all
//! but excluded ones, in one JSON archive, in the response and/or to a GCS object with the
//! request's service account) and `POST /admin/v1/import` (inline or from GCS), each with a
//! `timeout` past which the job is cancelled (504) and the target left as it was.
//!
//! The work runs on tokio's blocking threads (the core is synchronous), at most
//! [`Settings::max_jobs`] at once; more get 429. Errors are `{"error": "..."}` with a status that
//! says whose fault it is (400 request, 401/403 token, 404, 409 conflict, 413 too large,
//! 422 archive, 429 busy, 5xx server).
//!
//! ```no_run
//! # fn demo(tokens: orgport_server::Tokens) -> Result<(), Box<dyn std::error::Error>> {
//! let settings = orgport_server::Settings {
//!     db: "sqlite://app.db".into(),
//!     schemas: Vec::new(),
//!     config: orgport_core::config::Config::default(),
//!     root: Some("workspaces".into()),
//!     tokens,
//!     max_body: 1 << 30,
//!     max_jobs: 2,
//!     file_jobs: 8,
//!     reply_within: std::time::Duration::from_secs(120),
//!     open_store: &|url| orgport_objects::open_store(url, |name| std::env::var(name).ok()),
//!     encryption: orgport_server::Encryption::default(),
//! };
//! let server = orgport_server::Server::bind("127.0.0.1:0".parse()?, settings)?;
//! eprintln!("listening on {}://{}", server.scheme(), server.local_addr());
//! server.run()?;
//! # Ok(()) }
//! ```

mod admin;
mod auth;
mod error;
mod export;
mod import;
mod jobs;
mod jwt;
mod openapi;
mod tls;
mod zitadel;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use orgport_core::archive::crypt::{Identities, Recipients};
use orgport_core::config::Config;
use orgport_core::store::StoreOpener;

pub use auth::{Caller, Refused, Tokens};
pub use error::{ApiError, Error};
use jobs::Jobs;
pub use openapi::document as openapi;

/// Everything the server needs, resolved by the caller (the command line) into plain values.
pub struct Settings {
    /// The database every request works on.
    pub db: String,
    /// PostgreSQL: the schemas read (empty: every non-system schema).
    pub schemas: Vec<String>,
    /// The database's `orgport.toml`: tenancy, and the stores of its organisations' files.
    pub config: Config,
    /// The tenant root table, when the configuration names none (exports need one; an import
    /// takes the archive's).
    pub root: Option<String>,
    pub tokens: Tokens,
    /// The largest archive an import accepts, in bytes.
    pub max_body: u64,
    /// Exports and imports running at once.
    pub max_jobs: usize,
    /// Files copied or checked at once within one job.
    pub file_jobs: usize,
    /// How long an import request waits for its report; past it (and without a `timeout` of
    /// its own) the answer is 202 with the job's id, and the import goes on.
    pub reply_within: std::time::Duration,
    /// Opens the stores of files the configuration names (the caller knows the credentials).
    pub open_store: &'static StoreOpener<'static>,
    /// Who can read the archives exported, and what decrypts the archives imported.
    pub encryption: Encryption,
}

/// The server's age keys, and whether secrets may leave unencrypted.
#[derive(Default)]
pub struct Encryption {
    /// Every export is encrypted to these recipients (None: plain archives).
    pub recipients: Option<Recipients>,
    /// Encrypted archives posted for import are decrypted with these (None: they are refused).
    pub identities: Option<Identities>,
    /// An export that asks for sensitive groups (`with=`) without recipients is allowed;
    /// otherwise it gets 400.
    pub allow_plaintext_secrets: bool,
}

/// What every handler shares.
pub(crate) struct App {
    pub(crate) settings: Settings,
    pub(crate) jobs: Jobs,
}

/// The routes, for a caller that serves them itself.
pub fn router(settings: Settings) -> Router {
    let jobs = Jobs::new(settings.max_jobs);
    let app = Arc::new(App { settings, jobs });
    let api = Router::new()
        .route("/api/orgs/{id}/export", get(export::export))
        .route("/api/orgs/import", axum::routing::post(import::import))
        .route("/api/jobs/{id}", get(jobs::show).delete(jobs::cancel))
        .route("/api/orgs", get(admin::orgs))
        .route("/api/jobs", get(jobs::list))
        .route("/api/orgs/{id}/export/json", get(export::export_json))
        .route("/api/orgs/import/json", axum::routing::post(import::import_json))
        .route("/admin/v1/export", axum::routing::post(zitadel::export))
        .route("/admin/v1/import", axum::routing::post(zitadel::import))
        .route_layer(middleware::from_fn_with_state(app.clone(), auth::require_superuser))
        // Bodies are streamed and capped by the import itself (`max_body`).
        .layer(DefaultBodyLimit::disable())
        .with_state(app);
    Router::new()
        .route("/healthz", get(openapi::healthz))
        .route("/openapi.json", get(openapi::openapi))
        .merge(api)
        .merge(admin::page())
        .fallback(|| async { ApiError::new(axum::http::StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(middleware::from_fn(log))
}

/// One line per request on stderr: method, path (no query, no headers: never a token), status, time.
async fn log(request: Request, next: Next) -> Response {
    let (method, path, start) = (request.method().clone(), request.uri().path().to_string(), Instant::now());
    let response = next.run(request).await;
    eprintln!("{method} {path} {} {}ms", response.status().as_u16(), start.elapsed().as_millis());
    response
}

/// A bound listener and its routes.
pub struct Server {
    listener: std::net::TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Server {
    /// Binds `addr` (port 0: any free port; see [`Server::local_addr`]).
    pub fn bind(addr: SocketAddr, settings: Settings) -> Result<Server, Error> {
        let listener = std::net::TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?;
        listener.set_nonblocking(true).map_err(|source| Error::Bind { addr, source })?;
        Ok(Server { listener, router: router(settings), tls: None })
    }

    /// Serves HTTPS only, with the certificate chain in `cert` and its private key in `key` (PEM
    /// files); a plain HTTP request gets its connection closed.
    pub fn with_tls(mut self, cert: &std::path::Path, key: &std::path::Path) -> Result<Server, Error> {
        self.tls = Some(tls::config(cert, key)?);
        Ok(self)
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until the process ends, on a runtime of its own.
    pub fn run(self) -> Result<(), Error> {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("orgport-serve").build().map_err(Error::Runtime)?;
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(self.listener).map_err(Error::Runtime)?;
            match self.tls {
                Some(config) => tls::serve(listener, self.router, config).await,
                None => axum::serve(listener, self.router).await.map_err(Error::Runtime),
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(error::ErrorBody { error: self.message })).into_response();
        if self.status == axum::http::StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}
