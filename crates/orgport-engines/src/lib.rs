//! orgport-engines: what a database URL and an `orgport.toml` open, for every front end (the
//! command line, the HTTP server) alike.
//!
//! [`open`] picks the engine by the URL's scheme (`sqlite://`, `postgres://`, `postgresql://`);
//! [`config`] loads the configuration named, else `./orgport.toml`, else none. Errors name the
//! URL without its password.
//!
//! ```no_run
//! let mut engine = orgport_engines::open("sqlite://app.db", &[], orgport_engines::Access::ReadOnly)?;
//! let config = orgport_engines::config(None)?;
//! let plan = orgport_core::plan::Plan::build(engine.introspect()?, &config, None, engine.capabilities())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;

use orgport_core::config::Config;
use orgport_core::engine::Engine;
pub use orgport_sqlite::Access;
use orgport_sqlite::SqliteEngine;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an engine or a configuration could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("`--schemas` is for PostgreSQL: a SQLite database has a single schema\nhint: leave `--schemas` out")]
    SchemasOnSqlite,

    /// `url` is shown without its password.
    #[error("unsupported database URL `{url}`\nhint: use `sqlite://PATH` or `postgres://USER:PASSWORD@HOST:PORT/DB`")]
    UnsupportedUrl { url: String },

    #[error("reading `orgport.toml` in the current directory")]
    DefaultConfig(#[source] orgport_core::Error),

    #[error(transparent)]
    Core(#[from] orgport_core::Error),
}

/// Opens the database `url` names. `schemas` (PostgreSQL) limits the schemas read; `access` is
/// SQLite's (PostgreSQL's reads are its snapshot transaction's `READ ONLY`).
pub fn open(url: &str, schemas: &[String], access: Access) -> Result<Box<dyn Engine>> {
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
    if orgport_sqlite::URL_SCHEMES.contains(&scheme) {
        if !schemas.is_empty() {
            return Err(Error::SchemasOnSqlite);
        }
        return Ok(Box::new(SqliteEngine::open(url, access)?));
    }
    if orgport_postgres::URL_SCHEMES.contains(&scheme) {
        return Ok(Box::new(orgport_postgres::PostgresEngine::open(url)?.with_schemas(schemas)));
    }
    Err(Error::UnsupportedUrl { url: redact(url) })
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    orgport_postgres::redact(url)
}

/// The configuration at `path`, else `./orgport.toml` if it exists, else the default (none).
pub fn config(path: Option<&Path>) -> Result<Config> {
    match path {
        Some(p) => Ok(Config::load(p)?),
        None if Path::new("orgport.toml").is_file() => Config::load(Path::new("orgport.toml")).map_err(Error::DefaultConfig),
        None => Ok(Config::default()),
    }
}
