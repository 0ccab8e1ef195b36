//! The organisations of a database: their keys, and how many rows each owns.

use crate::engine::Engine;
use crate::plan::{Plan, Role};
use crate::select::Selection;
use crate::value::Value;
use crate::Result;

/// An organisation and the rows it owns (its root row and every owned table's rows).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OrgSize {
    /// The root row's key, as `--org` takes it.
    pub key: String,
    pub rows: u64,
}

/// Every organisation's key (the root table's rows), in key order.
pub fn list_orgs(engine: &mut dyn Engine, plan: &Plan) -> Result<Vec<Value>> {
    let d = engine.dialect();
    let key = d.quote_ident(&plan.root_key);
    let sql = format!("SELECT {key} FROM {} ORDER BY {key}", d.table_ref(plan.table(plan.root)));
    let mut keys = Vec::new();
    engine.query(&sql, &[], &[plan.root_key_kind()], &mut |row| {
        keys.push(row[0].clone());
        Ok(())
    })?;
    Ok(keys)
}

/// Every organisation with the number of rows it owns, counted on the server from one snapshot
/// with the queries an export selects by: a read of every owned row, so as slow as the tables
/// are large.
pub fn org_sizes(engine: &mut dyn Engine, plan: &Plan) -> Result<Vec<OrgSize>> {
    engine.begin_snapshot()?;
    let result = sizes_in_snapshot(engine, plan);
    let ended = engine.end();
    let sizes = result?;
    ended?;
    Ok(sizes)
}

fn sizes_in_snapshot(engine: &mut dyn Engine, plan: &Plan) -> Result<Vec<OrgSize>> {
    let owned: Vec<usize> = plan.order.iter().copied().filter(|&t| matches!(plan.tables[t].role, Role::Root | Role::Owned)).collect();
    let mut sizes = Vec::new();
    for org in list_orgs(engine, plan)? {
        let selection = Selection::new(plan, engine.dialect(), std::slice::from_ref(&org));
        let mut rows = 0u64;
        for &t in &owned {
            let q = selection.count_query(t);
            rows += u64::try_from(engine.query_int(&q.sql, &q.params)?).unwrap_or(0);
        }
        sizes.push(OrgSize { key: key_text(&org), rows });
    }
    Ok(sizes)
}

/// A key as `--org` takes it: text unquoted.
fn key_text(key: &Value) -> String {
    key.as_str().map_or_else(|| key.display(), String::from)
}
