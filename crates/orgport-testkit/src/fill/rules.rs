//! What a PostgreSQL schema says about valid rows beyond orgport's schema model: check
//! constraints, the predicates of partial unique indexes, enum labels and partition bounds. The
//! server judges candidate rows itself: each check is evaluated on literal rows, on a connection
//! of its own so that an expression it cannot evaluate does not abort the fill's transaction.

use std::collections::HashMap;

use anyhow::{Context, Result};
use orgport_core::engine::Engine;
use orgport_core::schema::Schema;
use orgport_core::value::{Value, ValueKind};
use orgport_postgres::literal;

use super::values::Shape;

/// A boolean expression over a table's columns that every row must not make false.
#[derive(Debug, Clone)]
pub(crate) struct Check {
    pub name: String,
    pub expr: String,
    /// Indexes into the table's written columns.
    pub columns: Vec<usize>,
}

#[derive(Default)]
pub(crate) struct Rules {
    /// Per table: check constraints, and the fit into some partition as one more check.
    pub checks: HashMap<usize, Vec<CheckDef>>,
    /// Per (table, column): enum labels or partition bounds.
    pub allowed: HashMap<(usize, String), Vec<String>>,
    /// Per (table, unique index name): the predicate of a partial unique index.
    pub predicates: HashMap<(usize, String), String>,
}

/// A check as read, columns by name.
#[derive(Debug, Clone)]
pub(crate) struct CheckDef {
    pub name: String,
    pub expr: String,
    pub columns: Vec<String>,
}

/// Qualified as orgport names tables: `public` tables unqualified.
fn table_index(schema: &Schema, nspname: &str, relname: &str) -> Option<usize> {
    let name = if nspname == "public" { relname.to_string() } else { format!("{nspname}.{relname}") };
    schema.tables.iter().position(|t| t.qualified() == name)
}

const CHECKS: &str = "
SELECT n.nspname::text, c.relname::text, con.conname::text, pg_get_constraintdef(con.oid),
       coalesce((SELECT json_agg(a.attname::text) FROM unnest(con.conkey) k(n)
                 JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n), '[]')
FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE con.contype = 'c' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1, 2, 3";

/// Labels of enum columns and of arrays of enums, in their declared order.
const ENUM_LABELS: &str = "
SELECT n.nspname::text, c.relname::text, a.attname::text, e.enumlabel::text
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_enum e ON e.enumtypid = CASE WHEN t.typtype = 'e' THEN t.oid ELSE t.typelem END
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1, 2, a.attnum, e.enumsortorder";

const PARTIAL_UNIQUE: &str = "
SELECT n.nspname::text, c.relname::text, ic.relname::text, pg_get_expr(i.indpred, i.indrelid)
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE i.indisunique AND i.indpred IS NOT NULL AND n.nspname NOT IN ('pg_catalog', 'information_schema')";

/// Partitions of partitioned tables that have no default partition: each partition's
/// constraint, and the bounds of a single-column key.
const PARTITIONS: &str = "
SELECT n.nspname::text, p.relname::text, a.attname::text, pg_get_expr(c.relpartbound, c.oid),
       pg_get_partition_constraintdef(c.oid)
FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid JOIN pg_class p ON p.oid = h.inhparent
JOIN pg_namespace n ON n.oid = p.relnamespace JOIN pg_partitioned_table pt ON pt.partrelid = p.oid
LEFT JOIN pg_attribute a ON a.attrelid = p.oid AND a.attnum = pt.partattrs[0] AND pt.partnatts = 1
WHERE p.relkind = 'p' AND NOT p.relispartition
  AND NOT EXISTS (SELECT 1 FROM pg_inherits d JOIN pg_class dc ON dc.oid = d.inhrelid
                  WHERE d.inhparent = p.oid AND pg_get_expr(dc.relpartbound, dc.oid) = 'DEFAULT')
ORDER BY 1, 2, c.relname";

impl Rules {
    pub fn read(engine: &mut dyn Engine, schema: &Schema) -> Result<Rules> {
        let mut rules = Rules::default();
        let text = |n: usize| vec![ValueKind::Text; n];
        let mut rows = |sql: &str, kinds: Vec<ValueKind>| -> Result<Vec<Vec<String>>> {
            let mut out = Vec::new();
            engine.query(sql, &[], &kinds, &mut |row| {
                out.push(row.iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect());
                Ok(())
            })?;
            Ok(out)
        };
        let mut check_kinds = text(4);
        check_kinds.push(ValueKind::Json);
        for r in rows(CHECKS, check_kinds).context("reading check constraints")? {
            let Some(t) = table_index(schema, &r[0], &r[1]) else {
                continue;
            };
            let expr = r[3].trim_end_matches(" NOT VALID").trim_start_matches("CHECK ").to_string();
            let columns: Vec<String> = serde_json::from_str(&r[4]).context("check constraint columns")?;
            rules.checks.entry(t).or_default().push(CheckDef { name: r[2].clone(), expr, columns });
        }
        for r in rows(ENUM_LABELS, text(4)).context("reading enum labels")? {
            if let Some(t) = table_index(schema, &r[0], &r[1]) {
                rules.allowed.entry((t, r[2].clone())).or_default().push(r[3].clone());
            }
        }
        for r in rows(PARTIAL_UNIQUE, text(4)).context("reading partial unique indexes")? {
            if let Some(t) = table_index(schema, &r[0], &r[1]) {
                rules.predicates.insert((t, r[2].clone()), r[3].clone());
            }
        }
        let mut fits: HashMap<usize, (Vec<String>, Vec<String>)> = HashMap::new();
        for r in rows(PARTITIONS, text(5)).context("reading partitions")? {
            let Some(t) = table_index(schema, &r[0], &r[1]) else {
                continue;
            };
            let (constraints, key) = fits.entry(t).or_default();
            constraints.push(format!("({})", r[4]));
            if !r[2].is_empty() {
                key.push(r[2].clone());
                rules.allowed.entry((t, r[2].clone())).or_default().extend(bound_values(&r[3]));
            }
        }
        for (t, (constraints, key)) in fits {
            let expr = constraints.join(" OR ");
            rules.checks.entry(t).or_default().push(CheckDef { name: "a partition for the row".into(), expr, columns: key });
        }
        Ok(rules)
    }
}

/// The literal values of `FOR VALUES IN ('a', 'b')` or the lower bound of
/// `FOR VALUES FROM ('x') TO ('y')`.
fn bound_values(bound: &str) -> Vec<String> {
    let Some(start) = bound.find('(') else {
        return Vec::new();
    };
    let inner = &bound[start + 1..];
    let inner = &inner[..inner.find(')').unwrap_or(inner.len())];
    inner
        .split(", ")
        .map(|v| v.trim().trim_matches('\'').replace("''", "'"))
        .filter(|v| v != "MINVALUE" && v != "MAXVALUE" && v != "NULL")
        .collect()
}

/// Asks the server which candidate rows pass every check, returning the first one's index and
/// whether each predicate holds for it. Each candidate holds a value per shape.
pub(crate) fn first_passing(
    evaluator: &mut dyn Engine,
    shapes: &[Shape],
    checks: &[&Check],
    predicates: &[&str],
    candidates: &[Vec<Value>],
) -> Result<Option<(usize, Vec<bool>)>> {
    const INDEX: &str = "orgport_fill_candidate";
    let names: Vec<String> = shapes.iter().map(|s| format!("\"{}\"", s.name.replace('"', "\"\""))).collect();
    let rows: Vec<String> = candidates
        .iter()
        .enumerate()
        .map(|(i, values)| {
            let cells: Vec<String> = values.iter().zip(shapes).map(|(v, s)| format!("{}::{}", literal(v), s.declared)).collect();
            format!("({i}, {})", cells.join(", "))
        })
        .collect();
    let outputs: Vec<String> = std::iter::once(format!("c.{INDEX}")).chain(predicates.iter().map(|p| format!("({p}) IS TRUE"))).collect();
    let conditions: Vec<String> = checks.iter().map(|c| format!("({}) IS NOT FALSE", c.expr)).collect();
    let sql = format!(
        "SELECT {} FROM (VALUES {}) AS c({INDEX}, {}) WHERE {} ORDER BY 1 LIMIT 1",
        outputs.join(", "),
        rows.join(", "),
        names.join(", "),
        if conditions.is_empty() { "true".into() } else { conditions.join(" AND ") }
    );
    let mut kinds = vec![ValueKind::Integer];
    kinds.extend(predicates.iter().map(|_| ValueKind::Boolean));
    let found = evaluator.query_one(&sql, &[], &kinds)?;
    Ok(found.map(|row| {
        let index = match row[0] {
            Value::Int(i) => i as usize,
            _ => 0,
        };
        (index, row[1..].iter().map(|v| matches!(v, Value::Bool(true))).collect())
    }))
}

#[cfg(test)]
mod tests {
    use super::bound_values;

    #[test]
    fn partition_bounds_give_the_values_a_row_may_take() {
        assert_eq!(bound_values("FOR VALUES IN ('Epic')"), ["Epic"]);
        assert_eq!(bound_values("FOR VALUES IN ('a', 'it''s')"), ["a", "it's"]);
        assert_eq!(bound_values("FOR VALUES FROM ('2024-01-01 00:00:00') TO ('2024-02-01 00:00:00')"), ["2024-01-01 00:00:00"]);
        assert_eq!(bound_values("FOR VALUES FROM (MINVALUE) TO (10)"), Vec::<String>::new());
    }
}
