//! Which archive rows hold a polymorphic reference, for import and verify.
//!
//! On export the server tests each row (see `select`); here the rows come from the archive, so a
//! condition is tested on the row's own values: a discriminator compared with the configured
//! value, or a reference to a type row compared with the archive's row of that type (type keys
//! differ between instances, as Django's content types do, and the import may create the type
//! rows). Type rows the archive lacks are looked up on the target instead.

use std::collections::HashMap;

use crate::archive::{ArchiveReader, Manifest};
use crate::config::Scalar;
use crate::engine::Engine;
use crate::error::Result;
use crate::import::Opener;
use crate::plan::{ConditionTest, Plan};
use crate::value::Value;

enum Test {
    Equals { position: usize, value: Scalar },
    /// The row's column must name the archive's type row of key `old` (None: the archive has no
    /// row of that type, so no row holds the reference).
    Archived { position: usize, old: Option<Value> },
    /// The row's column, followed along edge `via`, must name the target's row `target` (None:
    /// the target has no row of that type, so no row holds the reference).
    Refers { position: usize, via: usize, target: Option<Value> },
}

/// The tests of every conditional edge whose table is in the archive.
pub(crate) struct Conditions {
    tests: HashMap<usize, Test>,
}

impl Conditions {
    pub(crate) fn new(engine: &mut dyn Engine, plan: &Plan, manifest: &Manifest, open: &Opener) -> Result<Self> {
        let archived = archived_type_rows(plan, manifest, open)?;
        let mut tests = HashMap::new();
        for (e, edge) in plan.edges.iter().enumerate() {
            let Some(cond) = &edge.condition else { continue };
            let Some(tm) = manifest.tables.iter().find(|tm| plan.schema.find(&tm.name) == Some(edge.from)) else { continue };
            let Some(position) = tm.column_index(&cond.column) else { continue };
            let test = match &cond.test {
                ConditionTest::Equals(value) => Test::Equals { position, value: value.clone() },
                ConditionTest::Refers { .. } if archived.contains_key(&e) => Test::Archived { position, old: archived[&e].clone() },
                ConditionTest::Refers { via, values } => {
                    let key = plan.edges[*via].to_columns.clone();
                    let columns: Vec<String> = values.keys().cloned().collect();
                    let wanted: Vec<Value> = values.values().map(scalar_value).collect();
                    let found = engine.find_row(plan.table(plan.edges[*via].to), &columns, &wanted, &key[..1])?;
                    Test::Refers { position, via: *via, target: found.and_then(|row| row.into_iter().next()) }
                }
            };
            tests.insert(e, test);
        }
        Ok(Conditions { tests })
    }

    /// Whether archive `row` holds reference `edge`; `follow` maps an old key along an edge to
    /// the target's.
    pub(crate) fn holds(&self, edge: usize, row: &[Value], follow: &dyn Fn(usize, &[Value]) -> Result<Option<Value>>) -> Result<bool> {
        Ok(match self.tests.get(&edge) {
            None => true,
            Some(Test::Equals { position, value }) => scalar_matches(value, &row[*position]),
            Some(Test::Archived { position, old }) => old.as_ref() == Some(&row[*position]),
            Some(Test::Refers { target: None, .. }) => false,
            Some(Test::Refers { position, via, target: Some(target) }) => {
                let old = &row[*position];
                !old.is_null() && follow(*via, std::slice::from_ref(old))?.as_ref() == Some(target)
            }
        })
    }

    pub(crate) fn is_conditional(&self, edge: usize) -> bool {
        self.tests.contains_key(&edge)
    }
}

/// The archive row a type condition names: in archive table `table`, the configured values at
/// their positions, and the position of the key the condition's column holds.
struct TypeRow {
    table: usize,
    columns: Vec<(usize, Scalar)>,
    key: usize,
}

/// For each polymorphic edge whose type table is in the archive, the key of the archive's type
/// row with the configured values (None: the archive has none, so no row holds the reference).
fn archived_type_rows(plan: &Plan, manifest: &Manifest, open: &Opener) -> Result<HashMap<usize, Option<Value>>> {
    let mut wanted: HashMap<usize, TypeRow> = HashMap::new();
    for (e, edge) in plan.edges.iter().enumerate() {
        let Some(ConditionTest::Refers { via, values }) = edge.condition.as_ref().map(|c| &c.test) else { continue };
        let via = &plan.edges[*via];
        let Some(a) = manifest.tables.iter().position(|tm| plan.schema.find(&tm.name) == Some(via.to)) else { continue };
        let tm = &manifest.tables[a];
        let columns: Option<Vec<(usize, Scalar)>> = values.iter().map(|(c, v)| tm.column_index(c).map(|p| (p, v.clone()))).collect();
        let (Some(columns), Some(key)) = (columns, tm.column_index(&via.to_columns[0])) else { continue };
        wanted.insert(e, TypeRow { table: a, columns, key });
    }
    let mut found: HashMap<usize, Option<Value>> = wanted.keys().map(|&e| (e, None)).collect();
    let Some(last) = wanted.values().map(|w| w.table).max() else { return Ok(found) };
    let mut reader = ArchiveReader::open(open()?)?;
    while let Some((a, row)) = reader.next_row()? {
        if a > last {
            break;
        }
        for (e, w) in &wanted {
            if w.table == a && found[e].is_none() && w.columns.iter().all(|(p, v)| scalar_matches(v, &row[*p])) {
                found.insert(*e, Some(row[w.key].clone()));
            }
        }
    }
    Ok(found)
}

fn scalar_value(s: &Scalar) -> Value {
    match s {
        Scalar::Int(i) => Value::Int(*i),
        Scalar::Text(t) => Value::Text(t.clone()),
        Scalar::Bool(b) => Value::Bool(*b),
    }
}

/// A configured value against a stored one, whatever the column's storage (`1` = `"1"`).
fn scalar_matches(s: &Scalar, v: &Value) -> bool {
    match (s, v) {
        (Scalar::Bool(b), Value::Bool(x)) => b == x,
        (Scalar::Bool(b), Value::Int(x)) => i64::from(*b) == *x,
        (Scalar::Int(i), Value::Int(x)) => i == x,
        (_, Value::Null) => false,
        (s, v) => {
            let text = v.as_str().map(str::to_string).unwrap_or_else(|| v.display());
            match s {
                Scalar::Text(t) => *t == text,
                other => other.to_string() == text,
            }
        }
    }
}
