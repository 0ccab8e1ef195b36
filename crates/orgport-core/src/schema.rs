//! The schema model every engine's introspection produces and the plan reads.

use serde::Serialize;

use crate::value::ValueKind;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Schema {
    pub tables: Vec<Table>,
    /// The namespaces introspection was limited to (PostgreSQL schemas); None when it read all.
    pub namespaces: Option<Vec<String>>,
}

impl Schema {
    /// Finds a table by `name` or `schema.name`; an unqualified name matches in any schema when it
    /// is unambiguous.
    pub fn find(&self, name: &str) -> Option<usize> {
        if let Some(i) = self.tables.iter().position(|t| t.qualified() == name) {
            return Some(i);
        }
        let mut hits = self.tables.iter().enumerate().filter(|(_, t)| t.name == name);
        match (hits.next(), hits.next()) {
            (Some((i, _)), None) => Some(i),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Table {
    /// The namespace (PostgreSQL schema); `None` where the engine has one namespace.
    pub schema: Option<String>,
    pub name: String,
    pub columns: Vec<Column>,
    /// Primary-key columns in key order; empty for a table without a primary key.
    pub primary_key: Vec<String>,
    /// Unique constraints and unique indexes other than the primary key.
    pub unique_keys: Vec<UniqueKey>,
    pub foreign_keys: Vec<ForeignKey>,
    /// Other tables inherit from this one (PostgreSQL table inheritance, not partitioning): a
    /// plain read returns their rows too, so rows are read through [`Dialect::own_rows`].
    ///
    /// [`Dialect::own_rows`]: crate::engine::Dialect::own_rows
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub has_children: bool,
}

impl Table {
    /// `schema.name` or `name`: how tables are named in configuration, archives and messages.
    pub fn qualified(&self) -> String {
        match &self.schema {
            Some(s) => format!("{s}.{}", self.name),
            None => self.name.clone(),
        }
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Column {
    pub name: String,
    /// The type as the engine declares it (`VARCHAR(20)`, `jsonb`, …).
    pub declared_type: String,
    pub kind: ValueKind,
    pub nullable: bool,
    pub default: Option<String>,
    /// Computed by the engine; never exported nor written.
    pub generated: bool,
    /// The engine allocates values itself (SQLite rowid alias, PostgreSQL identity or serial).
    pub auto_increment: bool,
    /// The engine refuses explicit values unless told to take them (PostgreSQL
    /// `GENERATED ALWAYS AS IDENTITY`).
    pub always_generated: bool,
    /// Any string is a value of the column (character types), so a new key can be drawn in the
    /// shape of an old one. False where text stands for a stricter type (PostgreSQL enums, network
    /// addresses, ranges, …).
    pub takes_any_text: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct UniqueKey {
    pub name: Option<String>,
    pub columns: Vec<String>,
    /// A partial unique index: unique only where its predicate holds.
    pub partial: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ForeignKey {
    pub name: Option<String>,
    pub columns: Vec<String>,
    /// Qualified name of the referenced table.
    pub referenced_table: String,
    pub referenced_columns: Vec<String>,
    pub deferrable: bool,
}
