//! orgport-sqlite: the SQLite engine, the embedded default.
//!
//! [`SqliteEngine`] opens a database file named by a `sqlite://` URL and implements
//! [`orgport_core::engine::Engine`]: introspection from `sqlite_master` and the `PRAGMA`s, a
//! read transaction for export, and an `IMMEDIATE` transaction with foreign-key checks deferred
//! to commit for import.
//!
//! ```no_run
//! use orgport_core::engine::Engine;
//! let mut engine = orgport_sqlite::SqliteEngine::open("sqlite://app.db", orgport_sqlite::Access::ReadOnly)?;
//! let schema = engine.introspect()?;
//! # Ok::<(), orgport_core::Error>(())
//! ```

mod introspect;
mod value;

use std::path::{Path, PathBuf};

use orgport_core::engine::{short_sql, Capabilities, Dialect, Engine};
use orgport_core::schema::{Schema, Table};
use orgport_core::value::{Value, ValueKind};
use orgport_core::{Error, Result};
use rusqlite::{Connection, OpenFlags};

/// URL schemes this engine answers to.
pub const URL_SCHEMES: &[&str] = &["sqlite"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Export, plan and verify: the file is opened read-only and cannot be changed.
    ReadOnly,
    ReadWrite,
}

pub struct SqliteDialect;

impl Dialect for SqliteDialect {
    fn placeholder(&self, n: usize) -> String {
        format!("?{n}")
    }
}

static DIALECT: SqliteDialect = SqliteDialect;

pub struct SqliteEngine {
    conn: Connection,
    path: PathBuf,
}

/// The file path of a `sqlite://PATH` URL (`sqlite:///abs/path.db` is absolute).
pub fn url_path(url: &str) -> Result<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| Error::Plan(format!("`{url}` is not a SQLite URL (expected `sqlite://PATH`)")))?;
    if rest.is_empty() {
        return Err(Error::Plan(format!("`{url}` names no file")));
    }
    Ok(PathBuf::from(rest.split('?').next().unwrap_or(rest)))
}

impl SqliteEngine {
    pub fn open(url: &str, access: Access) -> Result<Self> {
        let path = url_path(url)?;
        Self::open_path(&path, access)
    }

    pub fn open_path(path: &Path, access: Access) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::Plan(format!("SQLite database `{}` does not exist", path.display())));
        }
        let flags = match access {
            Access::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
            Access::ReadWrite => OpenFlags::SQLITE_OPEN_READ_WRITE,
        } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| Error::engine(format!("cannot open SQLite database `{}`", path.display()), e))?;
        // An import keeps an insert and a few lookups per table prepared.
        conn.set_prepared_statement_cache_capacity(512);
        // The semi-joins of an export build temporary key sets: on disk, so memory stays flat
        // however large the organisation (the bundled build keeps them in memory by default).
        conn.pragma_update(None, "temp_store", "FILE").map_err(|e| Error::engine("cannot set `temp_store`", e))?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| Error::engine("cannot set the busy timeout", e))?;
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
            .map_err(|e| Error::engine(format!("`{}` is not a readable SQLite database", path.display()), e))?;
        Ok(SqliteEngine { conn, path: path.to_path_buf() })
    }

    /// Up to ten rows whose references point nowhere, as `table` row N → `parent`.
    fn foreign_key_violations(&self) -> Vec<String> {
        let Ok(mut stmt) = self.conn.prepare("SELECT \"table\", rowid, parent FROM pragma_foreign_key_check LIMIT 10") else {
            return Vec::new();
        };
        let rows = stmt.query_map([], |r| {
            Ok(format!(
                "`{}` row {} refers to a missing `{}` row",
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?.unwrap_or(0),
                r.get::<_, String>(2)?
            ))
        });
        rows.map(|rows| rows.filter_map(|r| r.ok()).collect()).unwrap_or_default()
    }

    fn fail(&self, what: &str, e: rusqlite::Error) -> Error {
        Error::engine(format!("{what} ({})", self.path.display()), e)
    }
}

impl Engine for SqliteEngine {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn dialect(&self) -> &'static dyn Dialect {
        &DIALECT
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { defer_all_foreign_keys: true }
    }

    fn introspect(&mut self) -> Result<Schema> {
        introspect::schema(&self.conn).map_err(|e| self.fail("cannot read the schema", e))
    }

    fn begin_snapshot(&mut self) -> Result<()> {
        // A deferred transaction takes its snapshot at the first read; read at once so every
        // later query sees the same data.
        self.conn
            .execute_batch("BEGIN DEFERRED; SELECT count(*) FROM sqlite_master;")
            .map_err(|e| self.fail("cannot start a read transaction", e))
    }

    fn begin_write(&mut self) -> Result<()> {
        // `foreign_keys` only takes effect outside a transaction; `defer_foreign_keys` only inside.
        self.conn
            .execute_batch("PRAGMA foreign_keys = ON; BEGIN IMMEDIATE; PRAGMA defer_foreign_keys = ON;")
            .map_err(|e| self.fail("cannot start the import transaction (is another process writing?)", e))
    }

    fn commit(&mut self) -> Result<()> {
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            // Deferred foreign keys are checked here: name the rows at fault before rolling back.
            let violations = self.foreign_key_violations();
            let _ = self.conn.execute_batch("ROLLBACK");
            let what = if violations.is_empty() {
                "the import was rolled back at commit".to_string()
            } else {
                format!("the import was rolled back at commit: {}", violations.join("; "))
            };
            return Err(self.fail(&what, e));
        }
        Ok(())
    }

    fn end(&mut self) -> Result<()> {
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("ROLLBACK").map_err(|e| self.fail("cannot roll back", e))?;
        }
        Ok(())
    }

    fn query(&mut self, sql: &str, params: &[Value], kinds: &[ValueKind], on_row: &mut dyn FnMut(&[Value]) -> Result<()>) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| Error::engine(format!("cannot prepare `{}`", short_sql(sql)), e))?;
        let params = value::params(params);
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(|e| Error::engine(format!("cannot run `{}`", short_sql(sql)), e))?;
        let mut buf = Vec::with_capacity(kinds.len());
        loop {
            let row = match rows.next() {
                Ok(Some(row)) => row,
                Ok(None) => return Ok(()),
                Err(e) => return Err(Error::engine(format!("cannot read the rows of `{}`", short_sql(sql)), e)),
            };
            buf.clear();
            for (i, kind) in kinds.iter().enumerate() {
                let raw = row.get_ref(i).map_err(|e| Error::engine("cannot read a column", e))?;
                let value = value::read(raw, *kind).map_err(|e| match e {
                    Error::Plan(msg) => {
                        let column = row.as_ref().column_name(i).unwrap_or("?").to_string();
                        Error::Plan(format!("column `{column}` of `{}`: {msg}", short_sql(sql)))
                    }
                    other => other,
                })?;
                buf.push(value);
            }
            on_row(&buf)?;
        }
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| Error::engine(format!("cannot prepare `{}`", short_sql(sql)), e))?;
        let params = value::params(params);
        let n = stmt.execute(rusqlite::params_from_iter(params.iter())).map_err(|e| Error::engine(e.to_string(), e))?;
        Ok(n as u64)
    }

    fn max_key(&mut self, table: &Table, column: &str) -> Result<i64> {
        let max = self.max_value(table, column)?;
        // AUTOINCREMENT never reuses a key, even one deleted since: stay above its counter too.
        let has_sequence = self.query_int("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_sequence'", &[])? > 0;
        let seq = if has_sequence {
            self.query_int("SELECT max(seq) FROM sqlite_sequence WHERE name = ?1", &[Value::Text(table.name.clone())])?
        } else {
            0
        };
        Ok(max.max(seq))
    }
}
