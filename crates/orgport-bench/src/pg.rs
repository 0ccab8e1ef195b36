//! The PostgreSQL side of the bench: scratch databases on the server and the loader that fills
//! them with the rows of the generated SQLite databases.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use orgport_core::value::Value;
use orgport_postgres::{redact, URL_SCHEMES};
use postgres::{Client, NoTls};
use rusqlite::types::ValueRef;

use crate::{quote_ident, sqlite_tables};

/// The example schema in PostgreSQL's types, compiled in like the SQLite one in the testkit.
const SCHEMA_SQL: &str = include_str!("../../../examples/saas/schema.postgres.sql");

pub fn is_url(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| URL_SCHEMES.contains(&scheme))
}

pub fn connect(url: &str) -> Result<Client> {
    Client::connect(url, NoTls).with_context(|| format!("connecting to {}", redact(url)))
}

/// `url` naming database `name` instead of its own; the rest (user, host, parameters) is kept.
pub fn with_database(url: &str, name: &str) -> Result<String> {
    let (scheme, rest) =
        url.split_once("://").filter(|_| is_url(url)).with_context(|| format!("`{}` is not a postgres:// URL", redact(url)))?;
    let (location, query) = match rest.split_once('?') {
        Some((l, q)) => (l, format!("?{q}")),
        None => (rest, String::new()),
    };
    let authority = location.split_once('/').map_or(location, |(a, _)| a);
    Ok(format!("{scheme}://{authority}/{name}{query}"))
}

/// The databases one size of the bench creates on the server, dropped when this goes out of scope,
/// on the error paths too.
pub struct ScratchDatabases {
    server: String,
    prefix: String,
    created: Vec<String>,
}

impl ScratchDatabases {
    /// `server`: a URL whose user may create databases; `tag` makes the names of this run unique.
    pub fn new(server: &str, tag: &str) -> Self {
        ScratchDatabases { server: server.to_string(), prefix: format!("orgport_bench_{}_{tag}", std::process::id()), created: Vec::new() }
    }

    /// Creates database `<prefix>_<role>` with the example schema and no rows (not even the plans
    /// the schema file inserts, so that every row comes from the SQLite database loaded into it, or
    /// from the phase that writes to it). Returns its URL.
    pub fn create(&mut self, role: &str) -> Result<String> {
        let name = format!("{}_{role}", self.prefix);
        connect(&self.server)?
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .with_context(|| format!("creating database {name}"))?;
        self.created.push(name.clone());
        let url = with_database(&self.server, &name)?;
        connect(&url)?
            .batch_execute(&format!("{SCHEMA_SQL}\nDELETE FROM plans;"))
            .with_context(|| format!("creating the example schema in {name}"))?;
        Ok(url)
    }

    /// Ends every session on these databases: those of a phase that was killed, which the server
    /// would otherwise go on serving.
    pub fn end_sessions(&self) -> Result<()> {
        let ended: i64 = connect(&self.server)?
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = ANY($1) AND pid <> pg_backend_pid()",
                &[&self.created],
            )?
            .get(0);
        eprintln!("   ended {ended} server session(s) of the killed phase");
        Ok(())
    }

    /// Drops every database created so far; `WITH (FORCE)` also ends the session of a phase that
    /// was killed at its timeout.
    pub fn drop_all(&mut self) -> Result<()> {
        if self.created.is_empty() {
            return Ok(());
        }
        let mut client = connect(&self.server)?;
        while let Some(name) = self.created.pop() {
            client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&name)))
                .with_context(|| format!("dropping database {name}"))?;
        }
        Ok(())
    }
}

impl Drop for ScratchDatabases {
    fn drop(&mut self) {
        if let Err(e) = self.drop_all() {
            eprintln!("orgport-bench: warning: {e:#}; left on the server: {}", self.created.join(", "));
        }
    }
}

/// Copies every row of the SQLite database at `sqlite` into the PostgreSQL database at `url`
/// (same tables and columns), moves the sequences past the loaded keys and refreshes the
/// statistics. Returns the number of rows loaded.
pub fn load_from_sqlite(sqlite: &Path, url: &str) -> Result<u64> {
    let start = Instant::now();
    let source = rusqlite::Connection::open_with_flags(sqlite, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut client = connect(url)?;
    let mut tx = client.transaction()?;
    let mut total = 0;
    // sqlite_master lists the tables in the schema's creation order: parents first, except for
    // references that are deferrable in the PostgreSQL schema too, so one transaction suffices.
    for table in sqlite_tables(&source)? {
        let columns: Vec<String> = source
            .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?
            .query_map([&table], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let columns = columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
        let q = quote_ident(&table);
        let mut writer = tx.copy_in(&format!("COPY {q} ({columns}) FROM STDIN")).with_context(|| format!("COPY into {table}"))?;
        let mut select = source.prepare(&format!("SELECT {columns} FROM {q}"))?;
        let width = select.column_count();
        let mut rows = select.query([])?;
        let mut line = Vec::new();
        let mut values = Vec::with_capacity(width);
        while let Some(row) = rows.next()? {
            line.clear();
            values.clear();
            for i in 0..width {
                values.push(value_of(row.get_ref(i)?));
            }
            orgport_postgres::write_copy_row(&values, &mut line);
            writer.write_all(&line).with_context(|| format!("COPY into {table}"))?;
        }
        total += writer.finish().with_context(|| format!("COPY into {table}"))?;
    }
    tx.commit().context("committing the load")?;
    move_sequences(&mut client)?;
    // VACUUM sets the hint bits and the visibility map now, so that neither the export nor the
    // COPY baseline, whichever reads the fresh rows first, pays for it.
    client.batch_execute("VACUUM (ANALYZE)").context("VACUUM (ANALYZE)")?;
    eprintln!("   loaded {total} rows into {} in {:.1}s", redact(url), start.elapsed().as_secs_f64());
    Ok(total)
}

/// A SQLite value as orgport carries it. SQLite's values already are what PostgreSQL's input
/// functions of the example's types accept: integers for bigint, numeric and boolean (0/1), reals
/// for double precision and numeric, text for text, json, uuid, date and timestamp, blobs for bytea.
fn value_of(value: ValueRef) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

/// Moves every serial and identity sequence past the largest key loaded, as an application that
/// had inserted those rows would have.
fn move_sequences(client: &mut Client) -> Result<()> {
    let columns = client.query(
        "SELECT format('%I', table_name), column_name, format('%I', column_name) FROM information_schema.columns \
         WHERE table_schema = current_schema() AND (column_default LIKE 'nextval(%' OR is_identity = 'YES')",
        &[],
    )?;
    for c in columns {
        let (table, column, quoted): (String, String, String) = (c.get(0), c.get(1), c.get(2));
        client
            .execute(
                &format!("SELECT setval(pg_get_serial_sequence($1, $2), max({quoted})) FROM {table} HAVING max({quoted}) IS NOT NULL"),
                &[&table, &column],
            )
            .with_context(|| format!("moving the sequence of {table}.{column}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use orgport_testkit::example::{create_example_db, ExampleOptions};

    use super::*;

    #[test]
    fn the_loader_copies_every_row_and_value_and_moves_the_sequences() {
        // scripts/test.sh always sets it (and the CLI's tests fail in CI without it).
        let Some(server) = std::env::var("ORGPORT_PG_URL").ok().filter(|u| !u.is_empty()) else {
            eprintln!("notice: ORGPORT_PG_URL is not set; the loader test is skipped (run `bash scripts/test.sh`)");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let sqlite = dir.path().join("saas.db");
        create_example_db(&sqlite, &ExampleOptions { chain_depth: 5, ..ExampleOptions::default() }).unwrap();
        let mut databases = ScratchDatabases::new(&server, "loader_test");
        let url = databases.create("src").unwrap();
        let loaded = load_from_sqlite(&sqlite, &url).unwrap();

        let lite = rusqlite::Connection::open(&sqlite).unwrap();
        let mut pg = connect(&url).unwrap();
        assert_eq!(loaded, crate::count_rows(&sqlite).unwrap());
        // The same SQL in both: counts, and sums that change if a byte of a blob or a character of
        // a text (tabs, newlines, quotes, emoji) is lost, or an extreme integer clipped.
        let mut checks: Vec<String> =
            sqlite_tables(&lite).unwrap().iter().map(|t| format!("SELECT count(*) FROM {}", quote_ident(t))).collect();
        checks.extend(
            [
                "SELECT sum(length(content)) FROM attachments",
                "SELECT sum(length(title)) + sum(length(\"Created By Name\")) FROM tasks",
                "SELECT sum(length(CAST(metadata AS text))) FROM tasks",
                "SELECT max(amount_cents) FROM gift_cards",
                "SELECT count(*) FROM tasks WHERE done AND estimate > 0.09 AND parent_id IS NOT NULL",
                "SELECT count(*) FROM projects WHERE archived AND budget >= 0",
            ]
            .map(String::from),
        );
        for sql in checks {
            let expected: i64 = lite.query_row(&sql, [], |r| r.get(0)).unwrap();
            let got: i64 = pg.query_one(sql.as_str(), &[]).unwrap().get(0);
            assert_eq!(got, expected, "{sql}");
        }
        let logo: Vec<u8> = pg.query_one("SELECT logo FROM workspaces WHERE id = 1", &[]).unwrap().get(0);
        assert_eq!(logo, (0..=255).collect::<Vec<u8>>());
        let above: bool =
            pg.query_one("SELECT nextval(pg_get_serial_sequence('tasks', 'id')) > (SELECT max(id) FROM tasks)", &[]).unwrap().get(0);
        assert!(above, "the tasks sequence was not moved past the loaded keys");

        drop(pg);
        databases.drop_all().unwrap();
        let left: i64 =
            connect(&server).unwrap().query_one("SELECT count(*) FROM pg_database WHERE datname LIKE '%loader_test%'", &[]).unwrap().get(0);
        assert_eq!(left, 0);
    }

    #[test]
    fn the_database_is_replaced_and_the_rest_kept() {
        assert_eq!(with_database("postgres://u:p@h:5432/postgres", "x").unwrap(), "postgres://u:p@h:5432/x");
        assert_eq!(with_database("postgresql://h?sslmode=disable", "x").unwrap(), "postgresql://h/x?sslmode=disable");
        assert!(with_database("sqlite:///tmp/a.db", "x").is_err());
    }
}
