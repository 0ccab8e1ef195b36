//! The trait every database engine implements, and the SQL dialect it speaks.
//!
//! The core builds SQL text through [`Dialect`] and drives the engine through a handful of
//! primitives: introspect, a read snapshot, a write transaction, `query` and `execute`. Engines
//! may override the bulk operations with faster native paths.

use crate::error::Result;
use crate::schema::{Schema, Table};
use crate::value::{Value, ValueKind};

/// Quoting and parameter syntax of an engine's SQL.
pub trait Dialect {
    fn quote_ident(&self, ident: &str) -> String {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }

    /// The table's name as it appears in a `FROM` clause.
    fn table_ref(&self, table: &Table) -> String {
        match &table.schema {
            Some(s) => format!("{}.{}", self.quote_ident(s), self.quote_ident(&table.name)),
            None => self.quote_ident(&table.name),
        }
    }

    /// The table as a source of its own rows only, in a query that reads them (PostgreSQL: `ONLY`
    /// before a table that others inherit from).
    fn own_rows(&self, table: &Table) -> String {
        self.table_ref(table)
    }

    /// The placeholder for the `n`-th parameter, starting at 1 (`?1`, `$1`).
    fn placeholder(&self, n: usize) -> String;

    /// What an `INSERT` says, between its columns and `VALUES`, to write explicit values into
    /// columns the engine always generates (PostgreSQL: `OVERRIDING SYSTEM VALUE`).
    fn override_generated(&self) -> Option<&'static str> {
        None
    }
}

/// What an engine can do, which changes how the plan breaks cycles.
#[derive(Debug, Clone, Copy, Default)]
pub struct Capabilities {
    /// Every foreign key can be checked at commit, whatever its declaration (SQLite's
    /// `PRAGMA defer_foreign_keys`), so cycles and forward references need no second pass.
    pub defer_all_foreign_keys: bool,
}

/// A connection to one database, source or target.
pub trait Engine {
    /// The engine's name as written in archives (`sqlite`, `postgres`).
    fn name(&self) -> &'static str;

    /// Static so that SQL can be built while the connection is busy streaming.
    fn dialect(&self) -> &'static dyn Dialect;

    fn capabilities(&self) -> Capabilities;

    fn introspect(&mut self) -> Result<Schema>;

    /// Starts a read-only transaction on one consistent snapshot; every query until
    /// [`Engine::end`] sees the same data and nothing is written.
    fn begin_snapshot(&mut self) -> Result<()>;

    /// More connections, each reading the snapshot this one holds in a read-only transaction of
    /// its own that ends when it is dropped: the export reads tables on them in parallel. None
    /// (the default) where the engine cannot share a snapshot. Called right after
    /// [`Engine::begin_snapshot`], before any query: an engine may begin the snapshot again.
    fn snapshot_readers(&mut self, _count: usize) -> Result<Vec<Box<dyn Engine + Send>>> {
        Ok(Vec::new())
    }

    /// Starts the import transaction. It must keep other writers from allocating keys until it
    /// ends, and defer foreign-key checks to commit where the engine allows it.
    fn begin_write(&mut self) -> Result<()>;

    fn commit(&mut self) -> Result<()>;

    /// Ends a snapshot or abandons a write transaction, leaving the database as it was.
    fn end(&mut self) -> Result<()>;

    /// Runs a query, decoding each column with the given kind, and hands every row to `on_row`
    /// as it arrives.
    fn query(&mut self, sql: &str, params: &[Value], kinds: &[ValueKind], on_row: &mut dyn FnMut(&[Value]) -> Result<()>) -> Result<()>;

    /// Runs a statement and returns the number of rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64>;

    /// Writes rows into `columns` of `table` inside the write transaction. The default sends one
    /// `INSERT` per row; engines with a bulk path override it (PostgreSQL: `COPY … FROM STDIN`).
    fn insert_rows(&mut self, table: &Table, columns: &[String], rows: &[Vec<Value>]) -> Result<()> {
        let sql = insert_statement(self.dialect(), table, columns);
        for row in rows {
            self.execute(&sql, row).map_err(|e| e.doing(&format!("cannot insert into `{}`", table.qualified())))?;
        }
        Ok(())
    }

    /// The integer a one-value query returns; 0 for NULL or no row.
    fn query_int(&mut self, sql: &str, params: &[Value]) -> Result<i64> {
        Ok(match self.query_one(sql, params, &[ValueKind::Integer])?.as_deref() {
            Some([Value::Int(i)]) => *i,
            _ => 0,
        })
    }

    /// The largest value of an integer column; 0 for an empty table.
    fn max_value(&mut self, table: &Table, column: &str) -> Result<i64> {
        let d = self.dialect();
        let sql = format!("SELECT max({}) FROM {}", d.quote_ident(column), d.table_ref(table));
        self.query_int(&sql, &[])
    }

    /// The largest value of an integer key column, or of the engine's own counter for it if
    /// larger; new keys are allocated above it.
    fn max_key(&mut self, table: &Table, column: &str) -> Result<i64> {
        self.max_value(table, column)
    }

    /// The values of `output` of a row of `table` whose `columns` equal `values`, if there is
    /// one (none when a value is NULL, which equals nothing).
    fn find_row(&mut self, table: &Table, columns: &[String], values: &[Value], output: &[String]) -> Result<Option<Vec<Value>>> {
        if values.iter().any(Value::is_null) {
            return Ok(None);
        }
        let d = self.dialect();
        let conds: Vec<String> =
            columns.iter().enumerate().map(|(i, c)| format!("{} = {}", d.quote_ident(c), d.placeholder(i + 1))).collect();
        let outs: Vec<String> = output.iter().map(|c| d.quote_ident(c)).collect();
        let kinds: Vec<ValueKind> = output.iter().map(|c| table.column(c).map(|c| c.kind).unwrap_or(ValueKind::Any)).collect();
        let sql = format!("SELECT {} FROM {} WHERE {} LIMIT 1", outs.join(", "), d.table_ref(table), conds.join(" AND "));
        self.query_one(&sql, values, &kinds)
    }

    /// Called once per table the import wrote to, before commit: engines move their key counters
    /// (PostgreSQL sequences) past the keys written.
    fn after_import(&mut self, _table: &Table) -> Result<()> {
        Ok(())
    }

    /// Runs a query that returns at most one row.
    fn query_one(&mut self, sql: &str, params: &[Value], kinds: &[ValueKind]) -> Result<Option<Vec<Value>>> {
        let mut found = None;
        self.query(sql, params, kinds, &mut |row| {
            if found.is_none() {
                found = Some(row.to_vec());
            }
            Ok(())
        })?;
        Ok(found)
    }
}

/// `INSERT INTO table (columns) VALUES (placeholders)`. New keys are written explicitly, also
/// into columns the engine always generates.
pub fn insert_statement(d: &dyn Dialect, table: &Table, columns: &[String]) -> String {
    let writes_generated = columns.iter().any(|c| table.column(c).is_some_and(|c| c.always_generated));
    let overriding = match d.override_generated() {
        Some(clause) if writes_generated => format!(" {clause}"),
        _ => String::new(),
    };
    format!(
        "INSERT INTO {} ({}){overriding} VALUES ({})",
        d.table_ref(table),
        columns.iter().map(|c| d.quote_ident(c)).collect::<Vec<_>>().join(", "),
        (1..=columns.len()).map(|i| d.placeholder(i)).collect::<Vec<_>>().join(", ")
    )
}

/// The start of a statement for messages: the selected part, without the `WITH` prelude every
/// selection carries, at most 160 characters.
pub fn short_sql(sql: &str) -> String {
    let text = match sql.rsplit_once("\nSELECT") {
        Some((_, body)) => format!("SELECT{body}"),
        None => sql.to_string(),
    };
    if text.chars().count() > 160 {
        format!("{}…", text.chars().take(160).collect::<String>())
    } else {
        text
    }
}
