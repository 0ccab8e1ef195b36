//! The schema of a PostgreSQL database, from the system catalogs.

use std::collections::HashMap;

use orgport_core::schema::{Column, ForeignKey, Schema, Table, UniqueKey};
use orgport_core::value::ValueKind;
use postgres::Client;

/// Ordinary and partitioned tables of every non-system schema, or of the schemas listed in `$1`;
/// partitions are reached through their parent. Views, materialized views and foreign tables are
/// never written, so not listed. Tables that inherit from another (not as partitions) are tables
/// of their own.
const TABLES: &str = "
SELECT c.oid, n.nspname::text, c.relname::text,
       EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class child ON child.oid = i.inhrelid
               WHERE i.inhparent = c.oid AND NOT child.relispartition)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
  AND ($1::text[] IS NULL OR n.nspname = ANY($1))
ORDER BY n.nspname, c.relname";

/// The names of `$1` that are no schema of the database, and the schemas there are.
const MISSING_SCHEMAS: &str = "
SELECT ARRAY(SELECT s FROM unnest($1::text[]) s WHERE s NOT IN (SELECT nspname FROM pg_namespace)),
       ARRAY(SELECT nspname::text FROM pg_namespace
             WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\\_%' ORDER BY 1)";

/// A domain's kind is its base type's, through any domains it is declared over.
const COLUMNS: &str = "
WITH RECURSIVE domain_base(domain, typname, typtype, typbasetype) AS (
    SELECT oid, typname, typtype, typbasetype FROM pg_type WHERE typtype = 'd'
  UNION ALL
    SELECT b.domain, t.typname, t.typtype, t.typbasetype
    FROM domain_base b JOIN pg_type t ON t.oid = b.typbasetype WHERE b.typtype = 'd'
)
SELECT a.attrelid, a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attgenerated <> '', a.attidentity::text,
       coalesce(base.typname, t.typname)::text
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN domain_base base ON base.domain = t.oid AND base.typtype <> 'd'
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attrelid = ANY($1)
ORDER BY a.attrelid, a.attnum";

/// A foreign key into a partitioned table also has one internal copy per partition (its
/// `conparentid` is set): only the declared one counts.
const CONSTRAINTS: &str = "
SELECT con.conrelid, con.contype::text, con.conname::text, con.condeferrable,
       ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i),
       fn.nspname::text, fc.relname::text,
       ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i)
FROM pg_constraint con
LEFT JOIN pg_class fc ON fc.oid = con.confrelid
LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
WHERE con.contype IN ('p', 'u', 'f') AND con.conrelid = ANY($1) AND con.conparentid = 0
ORDER BY con.conrelid, con.conname";

/// Unique indexes that back no constraint; partial ones noted with their predicate, expression
/// ones skipped.
const UNIQUE_INDEXES: &str = "
SELECT i.indrelid, ic.relname::text, pg_get_expr(i.indpred, i.indrelid), 0 = ANY(i.indkey::int2[]),
       ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o)
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE i.indisunique AND NOT i.indisprimary AND i.indrelid = ANY($1)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
ORDER BY i.indrelid, ic.relname";

/// `public` is the default namespace: its tables go unqualified, as applications name them.
fn namespace(nspname: &str) -> Option<String> {
    (nspname != "public").then(|| nspname.to_string())
}

/// Of `schemas`, those the database does not have, and the ones it has.
pub fn missing_schemas(client: &mut Client, schemas: &[String]) -> Result<(Vec<String>, Vec<String>), postgres::Error> {
    let row = client.query_one(MISSING_SCHEMAS, &[&schemas])?;
    Ok((row.get(0), row.get(1)))
}

/// The tables of every schema, or of `only` these.
pub fn schema(client: &mut Client, only: Option<&[String]>) -> Result<Schema, postgres::Error> {
    let mut tables: Vec<Table> = Vec::new();
    let mut by_oid: HashMap<u32, usize> = HashMap::new();
    for row in client.query(TABLES, &[&only])? {
        by_oid.insert(row.get(0), tables.len());
        tables.push(Table {
            schema: namespace(row.get(1)),
            name: row.get(2),
            columns: Vec::new(),
            primary_key: Vec::new(),
            unique_keys: Vec::new(),
            foreign_keys: Vec::new(),
            has_children: row.get(3),
        });
    }
    let oids: Vec<u32> = by_oid.keys().copied().collect();
    for row in client.query(COLUMNS, &[&oids])? {
        let Some(&t) = by_oid.get(&row.get::<_, u32>(0)) else {
            continue;
        };
        let default: Option<String> = row.get(4);
        let identity: String = row.get(6);
        let serial = default.as_deref().is_some_and(|d| d.starts_with("nextval("));
        let declared: String = row.get(2);
        let base: &str = row.get(7);
        tables[t].columns.push(Column {
            name: row.get(1),
            kind: kind_of(base),
            takes_any_text: CHARACTER_TYPES.contains(&base),
            declared_type: declared,
            nullable: !row.get::<_, bool>(3),
            default,
            generated: row.get(5),
            auto_increment: !identity.is_empty() || serial,
            always_generated: identity == "a",
        });
    }
    for row in client.query(CONSTRAINTS, &[&oids])? {
        let Some(&t) = by_oid.get(&row.get::<_, u32>(0)) else {
            continue;
        };
        let kind: String = row.get(1);
        let columns: Vec<String> = row.get(4);
        match kind.as_str() {
            "p" => tables[t].primary_key = columns,
            "u" => tables[t].unique_keys.push(UniqueKey { name: Some(row.get(2)), columns, partial: false }),
            _ => {
                let target_schema: Option<String> = row.get(5);
                let target: Option<String> = row.get(6);
                // A table outside the schemas read is named with its schema, even `public`, so
                // that the plan can say which schema to add.
                let left_out = |s: &String| only.is_some_and(|only| !only.contains(s));
                let qualifier = target_schema.as_ref().and_then(|s| if left_out(s) { Some(s.clone()) } else { namespace(s) });
                let referenced_table = match (qualifier, target) {
                    (Some(s), Some(t)) => format!("{s}.{t}"),
                    (None, Some(t)) => t,
                    _ => continue,
                };
                tables[t].foreign_keys.push(ForeignKey {
                    name: Some(row.get(2)),
                    columns,
                    referenced_table,
                    referenced_columns: row.get(7),
                    deferrable: row.get(3),
                });
            }
        }
    }
    for row in client.query(UNIQUE_INDEXES, &[&oids])? {
        let Some(&t) = by_oid.get(&row.get::<_, u32>(0)) else {
            continue;
        };
        if row.get::<_, bool>(3) {
            continue;
        }
        let columns: Vec<String> = row.get(4);
        let predicate: Option<String> = row.get(2);
        let partial = predicate.is_some_and(|p| !only_not_null(&p, &columns));
        tables[t].unique_keys.push(UniqueKey { name: Some(row.get(1)), columns, partial });
    }
    Ok(Schema { tables, namespaces: only.map(<[String]>::to_vec) })
}

/// The types whose values are any string (of a length).
const CHARACTER_TYPES: &[&str] = &["text", "varchar", "bpchar", "char", "name", "citext"];

/// Whether a partial index's predicate only leaves out rows whose key holds a NULL (Rails'
/// `where: "token IS NOT NULL"`): such rows never conflict anyway, so the index is as unique
/// as a full one, and the import can look its values up before writing.
fn only_not_null(predicate: &str, columns: &[String]) -> bool {
    let bare: String = predicate.chars().filter(|c| !matches!(c, '(' | ')')).collect();
    bare.split(" AND ").all(|part| {
        part.trim().strip_suffix(" IS NOT NULL").is_some_and(|column| columns.iter().any(|c| c == column.trim().trim_matches('"')))
    })
}

/// The logical kind of a PostgreSQL type (a domain's base type; enums, arrays, intervals and
/// extension types travel as text).
fn kind_of(typname: &str) -> ValueKind {
    match typname {
        "int2" | "int4" | "int8" => ValueKind::Integer,
        "float4" | "float8" => ValueKind::Float,
        "numeric" => ValueKind::Decimal,
        "bool" => ValueKind::Boolean,
        "bytea" => ValueKind::Blob,
        "date" => ValueKind::Date,
        "time" | "timetz" => ValueKind::Time,
        "timestamp" => ValueKind::Timestamp,
        "timestamptz" => ValueKind::TimestampTz,
        "json" | "jsonb" => ValueKind::Json,
        "uuid" => ValueKind::Uuid,
        _ => ValueKind::Text,
    }
}

#[cfg(test)]
mod tests {
    use super::only_not_null;

    #[test]
    fn a_predicate_that_only_leaves_out_null_keys_keeps_the_index_unique() {
        let columns = ["token".to_string(), "timestamp".to_string()];
        assert!(only_not_null("(token IS NOT NULL)", &columns));
        assert!(only_not_null("((token IS NOT NULL) AND (\"timestamp\" IS NOT NULL))", &columns));
        assert!(!only_not_null("(deleted_at IS NULL)", &columns));
        assert!(!only_not_null("(other IS NOT NULL)", &columns), "a column outside the key");
        assert!(!only_not_null("((token IS NOT NULL) AND (kind = 2))", &columns));
    }
}
