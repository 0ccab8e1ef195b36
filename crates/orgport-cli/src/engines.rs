//! Opens the engine a URL names, and the configuration beside it.

use std::path::Path;

use anyhow::{bail, Context, Result};
use orgport_core::config::Config;
use orgport_core::engine::Engine;
use orgport_sqlite::{Access, SqliteEngine};

use crate::Source;

pub fn open(source: &Source, access: Access) -> Result<Box<dyn Engine>> {
    let url = source.db.as_str();
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
    if orgport_sqlite::URL_SCHEMES.contains(&scheme) {
        if !source.schemas.is_empty() {
            bail!("`--schemas` is for PostgreSQL: a SQLite database has a single schema\nhint: leave `--schemas` out");
        }
        return Ok(Box::new(SqliteEngine::open(url, access)?));
    }
    if orgport_postgres::URL_SCHEMES.contains(&scheme) {
        // Read-only access is the snapshot transaction's: `READ ONLY`.
        return Ok(Box::new(orgport_postgres::PostgresEngine::open(url)?.with_schemas(&source.schemas)));
    }
    bail!(
        "unsupported database URL `{}`\nhint: use `sqlite://PATH` or `postgres://USER:PASSWORD@HOST:PORT/DB`",
        orgport_postgres::redact(url)
    )
}

/// The configuration named by `--config`, else `./orgport.toml` if it exists, else none.
pub fn config(path: Option<&Path>) -> Result<Config> {
    match path {
        Some(p) => Ok(Config::load(p)?),
        None if Path::new("orgport.toml").is_file() => {
            Config::load(Path::new("orgport.toml")).context("reading `orgport.toml` in the current directory")
        }
        None => Ok(Config::default()),
    }
}
