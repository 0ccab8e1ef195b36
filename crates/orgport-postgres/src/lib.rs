//! orgport-postgres: the PostgreSQL engine.
//!
//! [`PostgresEngine`] connects with a `postgres://user:pass@host:port/db` URL and implements
//! [`orgport_core::engine::Engine`]: introspection from the catalogs (every schema but the
//! system ones), a `REPEATABLE READ, READ ONLY` snapshot for export, a transaction with deferrable
//! constraints deferred for import, and sequences moved past every imported key.
//!
//! Every result is read through `COPY (…) TO STDOUT` in text format and every value is sent as a
//! literal, so any column type — enums, domains, arrays, extension types — travels as its exact
//! text and the server does the typing.
//!
//! ```no_run
//! use orgport_core::engine::Engine;
//! let mut engine = orgport_postgres::PostgresEngine::open("postgres://app@127.0.0.1/app")?;
//! let schema = engine.introspect()?;
//! # Ok::<(), orgport_core::Error>(())
//! ```

mod copy;
pub use copy::write_row as write_copy_row;
mod introspect;
mod tls;

use std::io::{BufRead, Write};

use orgport_core::engine::{short_sql, Capabilities, Dialect, Engine};
use orgport_core::schema::{Schema, Table};
use orgport_core::value::{format_uuid, Value, ValueKind};
use orgport_core::{Error, Result};
use postgres::Client;

/// URL schemes this engine answers to.
pub const URL_SCHEMES: &[&str] = &["postgres", "postgresql"];

pub struct PostgresDialect;

impl Dialect for PostgresDialect {
    fn placeholder(&self, n: usize) -> String {
        format!("${n}")
    }

    fn override_generated(&self) -> Option<&'static str> {
        Some("OVERRIDING SYSTEM VALUE")
    }

    /// Without `ONLY`, a table others inherit from returns their rows as its own.
    fn own_rows(&self, table: &Table) -> String {
        match table.has_children {
            true => format!("ONLY {}", self.table_ref(table)),
            false => self.table_ref(table),
        }
    }
}

static DIALECT: PostgresDialect = PostgresDialect;

pub struct PostgresEngine {
    /// None while a [`CopyJob`] holds the connection.
    client: Option<Client>,
    /// Rows being written by a `COPY … FROM STDIN` on a thread of its own, so the server parses
    /// and checks one batch while the import prepares the next.
    copy: Option<CopyJob>,
    /// Where the database is, for messages: the URL without its password.
    name: String,
    /// The URL as given, to open more connections; never shown.
    url: String,
    /// The schemas introspection reads; all but the system ones when None.
    schemas: Option<Vec<String>>,
}

struct CopyJob {
    statement: String,
    table: String,
    rows: std::sync::mpsc::SyncSender<Vec<u8>>,
    done: std::thread::JoinHandle<(Client, Result<(), postgres::Error>)>,
}

impl CopyJob {
    /// Takes the connection and streams into one `COPY` every chunk sent until the sender is dropped.
    fn start(mut client: Client, statement: String, table: String) -> CopyJob {
        // Two chunks in flight: enough to keep both sides busy, little memory.
        let (rows, chunks) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
        let copy = statement.clone();
        let done = std::thread::spawn(move || {
            let result = (|| {
                let mut writer = client.copy_in(copy.as_str())?;
                for chunk in chunks {
                    // A failed write means the server ended the COPY: `finish` says why.
                    if writer.write_all(&chunk).is_err() {
                        break;
                    }
                }
                writer.finish().map(|_| ())
            })();
            (client, result)
        });
        CopyJob { statement, table, rows, done }
    }
}

impl PostgresEngine {
    pub fn open(url: &str) -> Result<Self> {
        let invalid = |e: String| Error::Plan(format!("`{}` is not a valid PostgreSQL URL: {e}", redact(url)));
        let (driver_url, tls) = tls::from_url(url).map_err(invalid)?;
        // Messages name the server by the URL without its TLS settings, which follow it.
        let name = redact(&driver_url);
        let mut config: postgres::Config =
            driver_url.parse().map_err(|e| Error::engine(format!("`{name}` is not a valid PostgreSQL URL"), server_error(e)))?;
        fill_from_environment(&mut config);
        config.ssl_mode(tls.mode.driver_mode());
        let connector = tls::connector(&tls).map_err(invalid)?;
        let mut client =
            config.connect(connector).map_err(|e| Error::engine(format!("cannot connect to {name} ({tls})"), server_error(e)))?;
        // Exact, stable text for every type: ISO dates in UTC, shortest exact floats, and string
        // literals without backslash escapes (the literals below rely on it).
        client
            .batch_execute(
                "SET DateStyle = ISO; SET TimeZone = 'UTC'; SET IntervalStyle = iso_8601; \
                 SET extra_float_digits = 3; SET standard_conforming_strings = on; SET bytea_output = hex",
            )
            .map_err(|e| Error::engine(format!("cannot set up the session on {name}"), server_error(e)))?;
        Ok(PostgresEngine { client: Some(client), copy: None, name, url: url.to_string(), schemas: None })
    }

    /// Limits introspection to these schemas (all when empty). References into other schemas are
    /// left out of the plan, which names their schema.
    pub fn with_schemas(mut self, schemas: &[String]) -> Self {
        self.schemas = (!schemas.is_empty()).then(|| schemas.to_vec());
        self
    }

    fn fail(&self, what: &str, e: postgres::Error) -> Error {
        Error::engine(format!("{what} ({})", self.name), server_error(e))
    }

    /// Ends a running `COPY` and takes the connection back; the COPY's error, if it failed.
    fn finish_copy(&mut self) -> Result<()> {
        let Some(job) = self.copy.take() else {
            return Ok(());
        };
        drop(job.rows);
        let (client, result) =
            job.done.join().map_err(|_| Error::Plan(format!("the connection to {} was lost: its COPY thread panicked", self.name)))?;
        self.client = Some(client);
        result.map_err(|e| Error::engine(format!("cannot insert into `{}`", job.table), server_error(e)))
    }

    /// The connection, once any `COPY` in flight has ended.
    fn client(&mut self) -> Result<&mut Client> {
        self.finish_copy()?;
        let name = &self.name;
        self.client.as_mut().ok_or_else(|| Error::Plan(format!("the connection to {name} was lost")))
    }
}

/// What the URL leaves out comes from the usual `PG*` variables, as with libpq.
fn fill_from_environment(config: &mut postgres::Config) {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if config.get_hosts().is_empty() {
        config.host(&var("PGHOST").unwrap_or_else(|| "localhost".into()));
    }
    if config.get_ports().is_empty() {
        if let Some(port) = var("PGPORT").and_then(|p| p.parse().ok()) {
            config.port(port);
        }
    }
    if config.get_user().is_none() {
        if let Some(user) = var("PGUSER") {
            config.user(&user);
        }
    }
    if config.get_password().is_none() {
        if let Some(password) = var("PGPASSWORD") {
            config.password(password);
        }
    }
    if config.get_dbname().is_none() {
        if let Some(db) = var("PGDATABASE") {
            config.dbname(&db);
        }
    }
}

/// A PostgreSQL error as the user sees it: the server's message and hint, never its DETAIL, which
/// may quote a row's values (a password hash, a token); other errors with their causes.
#[derive(Debug)]
pub struct ServerError(String);

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServerError {}

pub fn server_error(e: postgres::Error) -> ServerError {
    if let Some(db) = e.as_db_error() {
        let mut text = format!("{}: {}", db.severity(), db.message());
        if let Some(hint) = db.hint() {
            text.push_str(&format!(" (hint: {hint})"));
        }
        return ServerError(text);
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    ServerError(text)
}

/// The URL without its password (in the user part or a `password=` parameter), for messages.
pub fn redact(url: &str) -> String {
    let (address, query) = match url.split_once('?') {
        Some((address, query)) => (address, Some(query)),
        None => (url, None),
    };
    let address = match (address.find("://"), address.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let user = address[s + 3..at].split(':').next().unwrap_or("");
            format!("{}{user}{}", &address[..s + 3], &address[at..])
        }
        _ => address.to_string(),
    };
    match query {
        Some(query) => {
            let kept: Vec<&str> = query.split('&').filter(|p| !p.starts_with("password=")).collect();
            format!("{address}?{}", kept.join("&"))
        }
        None => address,
    }
}

/// A value as an SQL literal. Untyped string literals take the type of the column they meet, so
/// text goes into uuid, json, enum or timestamp columns without casts.
pub fn literal(v: &Value) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    match v {
        Value::Null => "NULL".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) if f.is_nan() => "'NaN'".into(),
        Value::Float(f) if f.is_infinite() => {
            if *f > 0.0 {
                "'Infinity'".into()
            } else {
                "'-Infinity'".into()
            }
        }
        Value::Float(f) => quote(&format!("{f:?}")),
        Value::Blob(b) => format!("'\\x{}'::bytea", hex::encode(b)),
        Value::Uuid(u) => quote(&format_uuid(u)),
        other => quote(other.as_str().unwrap_or_default()),
    }
}

/// The sequence a column's values come from, as SQL for a `regclass` (NULL if none): the one it
/// owns (serial, identity), else the one its default calls — a sequence several tables share, or
/// the parent's in a table that inherits from another.
fn sequence_of(table: &Table, column: &str) -> String {
    let t = literal(&Value::Text(DIALECT.table_ref(table)));
    let c = literal(&Value::Text(column.to_string()));
    format!(
        "coalesce(pg_get_serial_sequence({t}, {c})::regclass, \
         (SELECT dep.refobjid::regclass FROM pg_attrdef ad \
          JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum \
          JOIN pg_depend dep ON dep.classid = 'pg_attrdef'::regclass AND dep.objid = ad.oid \
               AND dep.refclassid = 'pg_class'::regclass \
          JOIN pg_class seq ON seq.oid = dep.refobjid AND seq.relkind = 'S' \
          WHERE ad.adrelid = {t}::regclass AND a.attname = {c} LIMIT 1))"
    )
}

/// The last value a sequence handed out, as SQL (NULL before its first).
fn last_value(sequence: &str) -> String {
    format!("(SELECT last_value FROM pg_sequences WHERE format('%I.%I', schemaname, sequencename)::regclass = {sequence})")
}

/// Replaces `$n` placeholders with literals, in one pass so that no inserted literal is read again
/// (a password hash holds `$` signs).
fn inline(sql: &str, params: &[Value]) -> String {
    let mut out = String::with_capacity(sql.len() + params.len() * 8);
    let mut chars = sql.char_indices().peekable();
    // Inside a string literal or a quoted identifier (which may hold a `'`), `$` is just text.
    let (mut in_string, mut in_ident) = (false, false);
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' if !in_ident => in_string = !in_string,
            '"' if !in_string => in_ident = !in_ident,
            _ => {}
        }
        if c == '$' && !in_string && !in_ident {
            let digits: String = sql[i + 1..].chars().take_while(char::is_ascii_digit).collect();
            if let Some(v) = digits.parse::<usize>().ok().and_then(|n| params.get(n.wrapping_sub(1))) {
                out.push_str(&literal(v));
                for _ in 0..digits.len() {
                    chars.next();
                }
                continue;
            }
        }
        out.push(c);
    }
    out
}

impl Engine for PostgresEngine {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn dialect(&self) -> &'static dyn Dialect {
        &DIALECT
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { defer_all_foreign_keys: false }
    }

    fn introspect(&mut self) -> Result<Schema> {
        let schemas = self.schemas.clone();
        if let Some(schemas) = &schemas {
            let (missing, existing) =
                introspect::missing_schemas(self.client()?, schemas).map_err(|e| self.fail("cannot read the schemas", e))?;
            if !missing.is_empty() {
                return Err(Error::Plan(format!(
                    "no schema {} in {}; its schemas are: {}",
                    missing.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", "),
                    self.name,
                    existing.join(", ")
                )));
            }
        }
        introspect::schema(self.client()?, schemas.as_deref()).map_err(|e| self.fail("cannot read the schema", e))
    }

    fn begin_snapshot(&mut self) -> Result<()> {
        // Room to sort and hash an organisation's keys in memory rather than in temporary files.
        self.client()?
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL work_mem = '64MB'")
            .map_err(|e| self.fail("cannot start a read-only snapshot", e))
    }

    /// `pg_export_snapshot()` shares this transaction's snapshot with new connections. Where the
    /// server refuses to export one (some poolers, old standbys), none: the export reads on this
    /// connection alone, in a snapshot begun again (the refusal ends the transaction, and no
    /// savepoint can guard it: snapshots cannot be exported from a subtransaction).
    fn snapshot_readers(&mut self, count: usize) -> Result<Vec<Box<dyn Engine + Send>>> {
        let snapshot = match self.client()?.query_one("SELECT pg_export_snapshot()", &[]) {
            Ok(row) => row.get::<_, String>(0),
            Err(_) => {
                self.client()?.batch_execute("ROLLBACK").map_err(|e| self.fail("cannot roll back", e))?;
                self.begin_snapshot()?;
                return Ok(Vec::new());
            }
        };
        let begin = format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT {}; SET LOCAL work_mem = '64MB'",
            literal(&Value::Text(snapshot))
        );
        // As many as the server lets in (its connection limit may be near): fewer only cost time.
        let mut readers: Vec<Box<dyn Engine + Send>> = Vec::with_capacity(count);
        for _ in 0..count {
            let Ok(mut reader) = PostgresEngine::open(&self.url) else {
                break;
            };
            if reader.client()?.batch_execute(&begin).is_err() {
                break;
            }
            readers.push(Box::new(reader));
        }
        Ok(readers)
    }

    fn begin_write(&mut self) -> Result<()> {
        self.client()?.batch_execute("BEGIN; SET CONSTRAINTS ALL DEFERRED").map_err(|e| self.fail("cannot start the import transaction", e))
    }

    fn commit(&mut self) -> Result<()> {
        self.finish_copy().inspect_err(|_| {
            let _ = self.end();
        })?;
        let name = self.name.clone();
        let client = self.client()?;
        client.batch_execute("COMMIT").map_err(|e| {
            let _ = client.batch_execute("ROLLBACK");
            Error::engine(format!("the import was rolled back at commit ({name})"), server_error(e))
        })
    }

    fn end(&mut self) -> Result<()> {
        // A failed COPY has already aborted the transaction; the rollback below ends it.
        let _ = self.finish_copy();
        self.client()?.batch_execute("ROLLBACK").map_err(|e| self.fail("cannot roll back", e))
    }

    fn query(&mut self, sql: &str, params: &[Value], kinds: &[ValueKind], on_row: &mut dyn FnMut(&[Value]) -> Result<()>) -> Result<()> {
        let statement = format!("COPY ({}) TO STDOUT", inline(sql, params));
        let name = self.name.clone();
        let mut reader = std::io::BufReader::with_capacity(
            1 << 16,
            self.client()?
                .copy_out(statement.as_str())
                .map_err(|e| Error::engine(format!("cannot run `{}` ({name})", short_sql(sql)), server_error(e)))?,
        );
        let mut line = Vec::new();
        let mut row = Vec::with_capacity(kinds.len());
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(|e| Error::engine(format!("cannot read rows from {name}"), e))?;
            if n == 0 {
                return Ok(());
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            copy::parse_row(&line, kinds, &mut row).map_err(|msg| Error::Plan(format!("{msg} in a row of `{}`", short_sql(sql))))?;
            on_row(&row)?;
        }
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let statement = inline(sql, params);
        // The statement without its values, which may be secrets.
        self.client()?
            .execute(statement.as_str(), &[])
            .map_err(|e| Error::engine(format!("cannot run `{}`", short_sql(sql)), server_error(e)))
    }

    /// One `COPY … FROM STDIN` per table, fed batch by batch from the import while a thread
    /// streams it to the server: the server parses each value by its column's type, row triggers
    /// fire, and identity columns take the values given, as `OVERRIDING SYSTEM VALUE` would.
    fn insert_rows(&mut self, table: &Table, columns: &[String], rows: &[Vec<Value>]) -> Result<()> {
        let d = self.dialect();
        let statement =
            format!("COPY {} ({}) FROM STDIN", d.table_ref(table), columns.iter().map(|c| d.quote_ident(c)).collect::<Vec<_>>().join(", "));
        if self.copy.as_ref().is_none_or(|job| job.statement != statement) {
            self.finish_copy()?;
            let client = self.client.take().ok_or_else(|| Error::Plan(format!("the connection to {} was lost", self.name)))?;
            self.copy = Some(CopyJob::start(client, statement, table.qualified()));
        }
        let mut data = Vec::with_capacity(rows.len() * 64);
        for row in rows {
            copy::write_row(row, &mut data);
        }
        let sent = self.copy.as_ref().is_some_and(|job| job.rows.send(data).is_ok());
        if !sent {
            // The COPY ended early: its error says why.
            self.finish_copy()?;
            return Err(Error::Plan(format!("the COPY into `{}` ended before its rows were sent", table.qualified())));
        }
        Ok(())
    }

    fn max_key(&mut self, table: &Table, column: &str) -> Result<i64> {
        let max = self.max_value(table, column)?;
        // A serial or identity column hands out keys from its sequence: stay above it too.
        let last = self.query_int(&format!("SELECT {}", last_value(&sequence_of(table, column))), &[])?;
        Ok(max.max(last))
    }

    fn after_import(&mut self, table: &Table) -> Result<()> {
        // Move the sequence of every serial or identity column past the keys just written, so the
        // application's next insert does not collide.
        let d = self.dialect();
        for c in table.columns.iter().filter(|c| c.auto_increment) {
            let sql = format!(
                "SELECT setval(s, GREATEST((SELECT max({col}) FROM {t}), {last})) FROM (SELECT {seq}) q(s) WHERE s IS NOT NULL",
                col = d.quote_ident(&c.name),
                t = d.table_ref(table),
                last = last_value("s"),
                seq = sequence_of(table, &c.name),
            );
            self.client()?
                .batch_execute(&sql)
                .map_err(|e| self.fail(&format!("cannot move the sequence of `{}`", table.qualified()), e))?;
        }
        // Fresh statistics, so the planner does not take a bulk-loaded table for an empty one:
        // the application's queries and the next export both depend on them.
        self.client()?
            .batch_execute(&format!("ANALYZE {}", d.table_ref(table)))
            .map_err(|e| self.fail(&format!("cannot analyze `{}`", table.qualified()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_inlined_once_and_only_outside_quotes() {
        let sql = r#"SELECT "it's $1" FROM t WHERE a = $1 AND b = $2 AND c = '$1'"#;
        let out = inline(sql, &[Value::Text("x$2'y".into()), Value::Int(7)]);
        assert_eq!(out, r#"SELECT "it's $1" FROM t WHERE a = 'x$2''y' AND b = 7 AND c = '$1'"#);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://app:s3cret@db:5432/app"), "postgres://app@db:5432/app");
        assert_eq!(redact("postgres://db/app"), "postgres://db/app");
        assert_eq!(redact("postgres://db/app?password=s3cret&sslmode=require"), "postgres://db/app?sslmode=require");
    }
}
