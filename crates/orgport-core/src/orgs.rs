//! The organisations of a database: their keys, and how many rows each owns.

use crate::engine::Engine;
use crate::export::parse_key;
use crate::plan::{Plan, Role};
use crate::select::Selection;
use crate::value::{Value, ValueKind};
use crate::{Error, Result};

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
    let sql = format!("SELECT {key} FROM {} ORDER BY {key}", d.own_rows(plan.table(plan.root)));
    let mut keys = Vec::new();
    engine.query(&sql, &[], &[plan.root_key_kind()], &mut |row| {
        keys.push(row[0].clone());
        Ok(())
    })?;
    Ok(keys)
}

/// Every organisation but the `excluded` ones (each of which must exist), for `export --all`:
/// their keys as `--org` takes them.
pub fn all_orgs_except(engine: &mut dyn Engine, plan: &Plan, excluded: &[String]) -> Result<Vec<String>> {
    let kind = plan.root_key_kind();
    let keys = list_orgs(engine, plan)?;
    // Keys compared as export reads them: `007` is 7 for an integer key, UUIDs in either case.
    let same = |listed: &Value, wanted: &Value| {
        listed == wanted || (kind == ValueKind::Uuid && key_text(listed).eq_ignore_ascii_case(&key_text(wanted)))
    };
    let mut wanted = Vec::new();
    for text in excluded {
        let value = parse_key(text, kind)?;
        if !keys.iter().any(|k| same(k, &value)) {
            return Err(Error::OrgNotFound { table: plan.table(plan.root).qualified(), key: text.clone() });
        }
        wanted.push(value);
    }
    let left: Vec<String> = keys.iter().filter(|k| !wanted.iter().any(|w| same(k, w))).map(key_text).collect();
    if left.is_empty() {
        return Err(Error::Plan(format!("no organisation of `{}` is left to export", plan.table(plan.root).qualified())));
    }
    Ok(left)
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
