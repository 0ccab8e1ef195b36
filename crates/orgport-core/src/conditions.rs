//! Which archive rows hold a polymorphic reference, for import and verify.
//!
//! On export the server tests each row (see `select`); here the rows come from the archive, so a
//! condition is tested on the row's own values: a discriminator is compared with the configured
//! value; a type column (Django's `content_type_id`) with the keys of the type rows that have the
//! configured values. Those keys are the source's, learned from the type rows the archive carries
//! (they come before the rows that point at them), since type keys differ between instances;
//! a type table that is not exported keeps its keys, so they are looked up on the target.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::archive::Manifest;
use crate::config::Scalar;
use crate::engine::Engine;
use crate::error::Result;
use crate::keys::key_bytes;
use crate::plan::{ConditionTest, Plan};
use crate::value::Value;

enum Test {
    Equals {
        position: usize,
        value: Scalar,
    },
    /// The row's column at `position` must hold one of `keys`.
    Refers {
        position: usize,
        keys: RefCell<Vec<Vec<u8>>>,
    },
}

/// Type rows of an archive table that decide conditions: for each, the positions of the
/// configured columns and their values, the position of the key, and the condition's edge.
struct TypeRows {
    columns: Vec<(usize, Scalar)>,
    key: usize,
    edge: usize,
}

/// The tests of every conditional edge whose table is in the archive.
pub(crate) struct Conditions {
    tests: HashMap<usize, Test>,
    /// By archive table.
    types: HashMap<usize, Vec<TypeRows>>,
}

impl Conditions {
    pub(crate) fn new(engine: &mut dyn Engine, plan: &Plan, manifest: &Manifest) -> Result<Self> {
        let archive_table = |t: usize| manifest.tables.iter().position(|tm| plan.schema.find(&tm.name) == Some(t));
        let mut tests = HashMap::new();
        let mut types: HashMap<usize, Vec<TypeRows>> = HashMap::new();
        for (e, edge) in plan.edges.iter().enumerate() {
            let Some(cond) = &edge.condition else {
                continue;
            };
            let Some(position) = archive_table(edge.from).and_then(|a| manifest.tables[a].column_index(&cond.column)) else {
                continue;
            };
            let test = match &cond.test {
                ConditionTest::Equals(value) => Test::Equals { position, value: value.clone() },
                ConditionTest::Refers { via, values } => {
                    let via = &plan.edges[*via];
                    let key = via.to_columns[0].clone();
                    let tm = archive_table(via.to).map(|a| (a, &manifest.tables[a]));
                    let columns: Option<Vec<(usize, Scalar)>> =
                        tm.and_then(|(_, tm)| values.iter().map(|(c, v)| tm.column_index(c).map(|p| (p, v.clone()))).collect());
                    let mut keys = Vec::new();
                    match (tm, columns, tm.and_then(|(_, tm)| tm.column_index(&key))) {
                        (Some((a, _)), Some(columns), Some(key)) => types.entry(a).or_default().push(TypeRows { columns, key, edge: e }),
                        _ => {
                            let names: Vec<String> = values.keys().cloned().collect();
                            let wanted: Vec<Value> = values.values().map(scalar_value).collect();
                            if let Some(found) = engine.find_row(plan.table(via.to), &names, &wanted, std::slice::from_ref(&key))? {
                                keys.push(key_bytes(&found[..1]));
                            }
                        }
                    }
                    Test::Refers { position, keys: RefCell::new(keys) }
                }
            };
            tests.insert(e, test);
        }
        Ok(Conditions { tests, types })
    }

    /// Learns from a row of archive table `a` the type keys it stands for; every row goes through
    /// here before the rows that may point at it.
    pub(crate) fn observe(&self, a: usize, row: &[Value]) {
        for rows in self.types.get(&a).into_iter().flatten() {
            if rows.columns.iter().all(|(p, v)| scalar_matches(v, &row[*p])) {
                if let Some(Test::Refers { keys, .. }) = self.tests.get(&rows.edge) {
                    keys.borrow_mut().push(key_bytes(std::slice::from_ref(&row[rows.key])));
                }
            }
        }
    }

    /// Whether archive `row` holds reference `edge`.
    pub(crate) fn holds(&self, edge: usize, row: &[Value]) -> bool {
        match self.tests.get(&edge) {
            None => true,
            Some(Test::Equals { position, value }) => scalar_matches(value, &row[*position]),
            Some(Test::Refers { position, keys }) => {
                let old = &row[*position];
                !old.is_null() && keys.borrow().contains(&key_bytes(std::slice::from_ref(old)))
            }
        }
    }

    pub(crate) fn is_conditional(&self, edge: usize) -> bool {
        self.tests.contains_key(&edge)
    }
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
