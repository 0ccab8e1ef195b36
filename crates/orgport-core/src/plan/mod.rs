//! The plan: which tables belong to an organisation, which are shared, and how each is moved.
//!
//! Computed from the live schema plus `orgport.toml`. Every table gets a [`Role`]; owned tables get
//! their ownership edges (references one step closer to the root), referenced tables their
//! natural key, and every exported column its sensitivity. References are the declared foreign
//! keys, the configured `[[reference]]` entries and, with `infer_references = true`, those
//! inferred from column names and key types ([`Inference`]).

mod infer;
mod render;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Serialize;

use crate::config::{split_column_ref, Config, ConflictPolicy, Scalar, WhenValue};
use crate::engine::Capabilities;
use crate::error::{Error, Result};
use crate::schema::{Schema, Table};
use crate::value::ValueKind;

pub use infer::{Inference, InferredReference, NotInferred};
pub use render::Format;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The tenant root: one row per organisation.
    Root,
    /// Has a foreign-key path to the root: exported and recreated with new keys.
    Owned,
    /// Pointed at by exported rows: matched on the target by natural key, or created.
    Referenced,
    /// A lookup table: rows must already exist on the target with the same key.
    Keep,
    /// Hangs off a referenced table and is named in a sensitive group (a user's OTP devices):
    /// exported only with that group, recreated only for created parents.
    Dependent,
    /// Never exported; references into it are cut.
    Excluded,
    /// No path either way; never touched.
    Unrelated,
}

impl Role {
    pub fn is_exported(self) -> bool {
        matches!(self, Role::Root | Role::Owned | Role::Referenced | Role::Keep | Role::Dependent)
    }

    /// Rows of this role belong to one organisation and get new keys.
    pub fn is_owned(self) -> bool {
        matches!(self, Role::Root | Role::Owned)
    }
}

/// A reference from rows of one table to rows of another: a declared foreign key, one from the
/// configuration, or one inferred from names and types.
#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    pub from: usize,
    pub from_columns: Vec<String>,
    pub to: usize,
    pub to_columns: Vec<String>,
    /// Every referencing column may be NULL, so the reference can be cut.
    pub nullable: bool,
    pub deferrable: bool,
    /// Declared in the schema (false: from `[[reference]]` in the configuration, or inferred).
    pub declared: bool,
    /// The rows that hold this reference, when only some do (a polymorphic reference).
    pub condition: Option<Condition>,
    /// Why an inferred reference was assumed; None for declared and configured ones.
    pub evidence: Option<String>,
}

impl Edge {
    /// Every row holds a value for this reference: it alone can decide ownership.
    pub fn mandatory(&self) -> bool {
        !self.nullable && self.condition.is_none()
    }
}

/// Which rows of the referencing table hold a polymorphic reference.
#[derive(Debug, Clone, Serialize)]
pub struct Condition {
    /// The referencing table's column that tells the kind of target.
    pub column: String,
    pub test: ConditionTest,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionTest {
    /// The column holds this value (Rails' `commentable_type = 'Post'`).
    Equals(Scalar),
    /// The column refers, along edge `via`, to a row with these values (Django's content types).
    Refers { via: usize, values: BTreeMap<String, Scalar> },
}

#[derive(Debug, Clone, Serialize)]
pub struct TablePlan {
    pub role: Role,
    /// Distance from the root along ownership edges.
    pub depth: Option<usize>,
    /// Edges to tables one step closer to the root that decide whether a row is the
    /// organisation's: the one mandatory edge chosen (or configured under `[path]`), else every
    /// nullable candidate (a row belongs when one of them points at the organisation's row).
    pub ownership: Vec<usize>,
    /// Other edges one step closer to the root: checked like any reference that may cross tenants.
    pub other_paths: Vec<usize>,
    /// A self-reference along which ownership is inherited by rows that have no other path.
    pub self_edge: Option<usize>,
    /// The columns that identify a referenced row across instances.
    pub natural_key: Option<Vec<String>>,
    /// Sensitive column → its group.
    pub sensitive: BTreeMap<String, String>,
    /// The group the whole table belongs to, if any.
    pub group: Option<String>,
    pub on_conflict: BTreeMap<String, ConflictPolicy>,
    /// Column sets by which other rows refer to this table's rows, the primary key first.
    pub keysets: Vec<Vec<String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Warning {
    pub table: String,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: {}", self.table, self.message)
    }
}

/// How a cycle of foreign keys among exported tables is broken on import.
#[derive(Debug, Clone, Serialize)]
pub struct Cycle {
    pub tables: Vec<String>,
    pub broken_by: String,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub schema: Schema,
    pub root: usize,
    pub root_key: String,
    pub edges: Vec<Edge>,
    pub tables: Vec<TablePlan>,
    /// Exported tables, each after the tables it references (cycles broken at the root side).
    pub order: Vec<usize>,
    pub cycles: Vec<Cycle>,
    /// Nullable foreign keys the engine checks at every statement that may name a row written
    /// later (forward in `order`, or a self-reference): written as NULL, then updated before commit.
    pub null_then_update: Vec<usize>,
    /// Edges between owned tables that may point at another organisation's row.
    pub cross_tenant: Vec<usize>,
    /// Edges from exported tables into excluded ones.
    pub into_excluded: Vec<usize>,
    /// References inferred from names and types, listed whether or not the plan uses them.
    pub inference: Inference,
    pub warnings: Vec<Warning>,
    /// Stores of the organisations' files (`[files.*]`).
    pub files: Vec<crate::files::FileSet>,
}

const TENANT_COLUMNS: &[&str] =
    &["org_id", "organization_id", "organisation_id", "tenant_id", "account_id", "workspace_id", "team_id", "company_id"];

impl TablePlan {
    /// Every column of the key sets, once each, in key-set order.
    pub fn key_columns(&self) -> Vec<String> {
        let mut cols: Vec<String> = Vec::new();
        for c in self.keysets.iter().flatten() {
            if !cols.contains(c) {
                cols.push(c.clone());
            }
        }
        cols
    }

    /// The values of key set `ks` in a row of [`TablePlan::key_columns`].
    pub fn keyset_values(&self, ks: usize, key_row: &[crate::value::Value]) -> Vec<crate::value::Value> {
        let all = self.key_columns();
        self.keysets[ks].iter().filter_map(|c| all.iter().position(|k| k == c).map(|i| key_row[i].clone())).collect()
    }

    /// Whether values of this column must never be shown: a sensitive column, or any column of a
    /// table that belongs to a sensitive group.
    pub fn is_sensitive(&self, column: &str) -> bool {
        self.group.is_some() || self.sensitive.contains_key(column)
    }
}

impl Role {
    /// Rows of this role are in the key map: references to them are rewritten.
    pub fn is_mapped(self) -> bool {
        matches!(self, Role::Root | Role::Owned | Role::Referenced | Role::Dependent)
    }
}

impl Plan {
    pub fn build(schema: Schema, config: &Config, root_override: Option<&str>, caps: Capabilities) -> Result<Plan> {
        let root_name = root_override
            .or(config.root.as_deref())
            .ok_or_else(|| Error::Plan("no tenant root table: pass `--root TABLE` or set `root` in orgport.toml".into()))?;
        let root = find_table(&schema, root_name, "root")?;
        let root_table = &schema.tables[root];
        let root_key = match root_table.primary_key.as_slice() {
            [one] => one.clone(),
            [] => return Err(Error::Plan(format!("root table `{root_name}` has no primary key"))),
            _ => {
                return Err(Error::Plan(format!(
                    "root table `{root_name}` has a composite primary key; orgport needs a single-column key to name organisations"
                )))
            }
        };

        let mut warnings = Vec::new();
        let mut edges = collect_edges(&schema, config, &mut warnings)?;
        let inference = infer::infer(&schema, &edges, config.infer_references);
        if inference.used {
            edges.extend(inference.references.iter().map(|r| r.edge(&schema)));
        }
        let n = schema.tables.len();
        let excluded = table_set(&schema, &config.exclude, "exclude")?;
        let keep = table_set(&schema, &config.keep, "keep")?;
        if excluded.contains(&root) || keep.contains(&root) {
            return Err(Error::Config(format!("the root table `{root_name}` cannot be excluded or kept")));
        }

        // Ownership: breadth-first from the root along references, child to parent.
        let mut depth: Vec<Option<usize>> = vec![None; n];
        depth[root] = Some(0);
        let mut queue = VecDeque::from([root]);
        while let Some(parent) = queue.pop_front() {
            for e in edges.iter().filter(|e| e.to == parent && e.from != parent) {
                if depth[e.from].is_none() && !excluded.contains(&e.from) && !keep.contains(&e.from) {
                    depth[e.from] = Some(depth[parent].unwrap_or(0) + 1);
                    queue.push_back(e.from);
                }
            }
        }

        let mut roles: Vec<Role> = (0..n)
            .map(|i| {
                if i == root {
                    Role::Root
                } else if excluded.contains(&i) {
                    Role::Excluded
                } else if keep.contains(&i) {
                    Role::Keep
                } else if depth[i].is_some() {
                    Role::Owned
                } else {
                    Role::Unrelated
                }
            })
            .collect();

        // Referenced: what exported rows point at, transitively.
        let mut queue: VecDeque<usize> = (0..n).filter(|&i| roles[i].is_owned()).collect();
        while let Some(t) = queue.pop_front() {
            for e in edges.iter().filter(|e| e.from == t) {
                if roles[e.to] == Role::Unrelated {
                    roles[e.to] = Role::Referenced;
                    queue.push_back(e.to);
                }
            }
        }

        // Sensitive groups: columns and whole tables.
        let mut sensitive: Vec<BTreeMap<String, String>> = vec![BTreeMap::new(); n];
        let mut table_group: Vec<Option<String>> = vec![None; n];
        for (group, items) in &config.sensitive {
            for item in items {
                if let Some(t) = schema.find(item) {
                    table_group[t] = Some(group.clone());
                    continue;
                }
                let (t, c) = resolve_column(&schema, item, &format!("sensitive.{group}"))?;
                sensitive[t].insert(c, group.clone());
            }
        }
        for t in 0..n {
            if roles[t] == Role::Unrelated && table_group[t].is_some() {
                let hangs_off_shared = edges.iter().any(|e| e.from == t && roles[e.to] == Role::Referenced);
                if hangs_off_shared {
                    roles[t] = Role::Dependent;
                }
            }
        }
        // Keys and references identify rows: withholding one would break the organisation apart.
        let is_key = |t: usize, c: &str| {
            schema.tables[t].primary_key.iter().any(|k| k == c)
                || edges
                    .iter()
                    .any(|e| (e.from == t && e.from_columns.iter().any(|x| x == c)) || (e.to == t && e.to_columns.iter().any(|x| x == c)))
        };
        for (t, cols) in sensitive.iter().enumerate() {
            if let Some((c, g)) = cols.iter().find(|(c, _)| is_key(t, c)) {
                return Err(Error::Config(format!(
                    "sensitive.{g}: `{}.{c}` is a key or a reference and cannot be withheld",
                    schema.tables[t].qualified()
                )));
            }
        }
        let mut not_sensitive = BTreeSet::new();
        for item in &config.not_sensitive {
            not_sensitive.insert(resolve_column(&schema, item, "not_sensitive")?);
        }
        for t in (0..n).filter(|&t| roles[t].is_exported() && table_group[t].is_none()) {
            for col in &schema.tables[t].columns {
                if sensitive[t].contains_key(&col.name) || not_sensitive.contains(&(t, col.name.clone())) || is_key(t, &col.name) {
                    continue;
                }
                if let Some(group) = guess_sensitive_group(&col.name) {
                    warnings.push(Warning {
                        table: schema.tables[t].qualified(),
                        message: format!(
                            "column `{}` looks secret: withheld as group `{group}` unless `--with {group}`; \
                             classify it under [sensitive] or `not_sensitive` in orgport.toml",
                            col.name
                        ),
                    });
                    sensitive[t].insert(col.name.clone(), group.to_string());
                }
            }
        }

        // Conflict policies.
        let mut on_conflict: Vec<BTreeMap<String, ConflictPolicy>> = vec![BTreeMap::new(); n];
        for (item, policy) in &config.on_conflict {
            let (t, c) = resolve_column(&schema, item, "on_conflict")?;
            on_conflict[t].insert(c, *policy);
        }

        // Natural keys of referenced tables.
        let mut natural: Vec<Option<Vec<String>>> = vec![None; n];
        for (name, cols) in &config.match_keys {
            let t = find_table(&schema, name, "match")?;
            for c in cols {
                if schema.tables[t].column(c).is_none() {
                    return Err(Error::Config(format!("match.{name}: table `{name}` has no column `{c}`")));
                }
            }
            natural[t] = Some(cols.clone());
        }
        for t in 0..n {
            let table = &schema.tables[t];
            match roles[t] {
                Role::Keep => {
                    if !table.primary_key.is_empty() {
                        natural[t] = Some(table.primary_key.clone());
                    } else if natural[t].is_none() {
                        natural[t] = guess_natural_key(table);
                    }
                    if natural[t].is_none() {
                        return Err(Error::Config(format!(
                            "keep: `{}` has neither a primary key nor a unique NOT NULL column set to find its rows by; \
                             name one under [match]",
                            table.qualified()
                        )));
                    }
                }
                Role::Referenced if natural[t].is_none() => {
                    natural[t] = guess_natural_key(table);
                    if natural[t].is_none() {
                        warnings.push(Warning {
                            table: table.qualified(),
                            message: "referenced table has no natural key (a unique NOT NULL column set): its rows are \
                                      always created on import; name one under [match] in orgport.toml"
                                .into(),
                        });
                    }
                }
                _ => {}
            }
        }

        // Tenant-looking columns that no reference explains.
        let root_singular = singular(&root_table.name);
        for (t, table) in schema.tables.iter().enumerate() {
            if roles[t].is_owned() || roles[t] == Role::Excluded {
                continue;
            }
            for col in &table.columns {
                let lower = col.name.to_lowercase();
                let tenantish = TENANT_COLUMNS.contains(&lower.as_str()) || lower == format!("{root_singular}_id");
                let explained = edges.iter().any(|e| e.from == t && e.from_columns.contains(&col.name));
                if tenantish && !explained {
                    let inferred = inference.references.iter().any(|r| r.from == t && r.column == col.name);
                    warnings.push(Warning {
                        table: table.qualified(),
                        message: format!(
                            "column `{}` looks like a reference to the root `{}` but has no foreign key, so the table \
                             is {}; declare it with [[reference]]{} or exclude the table",
                            col.name,
                            root_table.qualified(),
                            role_word(roles[t]),
                            if inferred { " (`orgport plan --format toml` prints the inferred one)" } else { "" }
                        ),
                    });
                }
            }
        }

        let mut tables: Vec<TablePlan> = (0..n)
            .map(|t| TablePlan {
                role: roles[t],
                depth: depth[t],
                ownership: Vec::new(),
                other_paths: Vec::new(),
                self_edge: None,
                natural_key: natural[t].clone(),
                sensitive: std::mem::take(&mut sensitive[t]),
                group: table_group[t].clone(),
                on_conflict: std::mem::take(&mut on_conflict[t]),
                keysets: Vec::new(),
            })
            .collect();

        let mut cross_tenant = Vec::new();
        let mut into_excluded = Vec::new();
        for (i, e) in edges.iter().enumerate() {
            if !roles[e.from].is_exported() {
                continue;
            }
            if roles[e.to] == Role::Excluded {
                into_excluded.push(i);
                if !e.nullable {
                    warnings.push(Warning {
                        table: schema.tables[e.from].qualified(),
                        message: format!(
                            "({}) is NOT NULL and refers to the excluded table `{}`: the values are imported as they \
                             are and must name rows that exist on the target",
                            e.from_columns.join(", "),
                            schema.tables[e.to].qualified()
                        ),
                    });
                }
                continue;
            }
            if roles[e.from] == Role::Owned {
                if e.from == e.to {
                    if tables[e.from].self_edge.is_none() {
                        tables[e.from].self_edge = Some(i);
                    }
                } else if roles[e.to].is_owned() && depth[e.to].map(|d| d + 1) == depth[e.from] {
                    tables[e.from].ownership.push(i);
                }
            }
            if roles[e.to].is_exported() {
                let keysets = &mut tables[e.to].keysets;
                if !keysets.contains(&e.to_columns) {
                    keysets.push(e.to_columns.clone());
                }
            }
        }
        choose_paths(&schema, config, &edges, &mut tables)?;
        for (i, e) in edges.iter().enumerate() {
            let from_owned = roles[e.from].is_owned() || roles[e.from] == Role::Referenced;
            let sole_ownership = tables[e.from].ownership == [i];
            if from_owned && roles[e.to].is_owned() && !sole_ownership {
                cross_tenant.push(i);
            }
        }
        for (t, plan) in tables.iter_mut().enumerate() {
            let pk = &schema.tables[t].primary_key;
            if !pk.is_empty() {
                plan.keysets.retain(|k| k != pk);
                plan.keysets.insert(0, pk.clone());
            }
        }

        let order = export_order(&schema, &edges, &tables);
        let cycles = find_cycles(&schema, &edges, &tables, &order, caps)?;
        let null_then_update = if caps.defer_all_foreign_keys { Vec::new() } else { forward_references(&edges, &order) };
        let files = crate::files::resolve(&schema, &roles, &config.files, |item, key| resolve_column(&schema, item, key))?;

        Ok(Plan {
            root,
            root_key,
            edges,
            tables,
            order,
            cycles,
            null_then_update,
            cross_tenant,
            into_excluded,
            inference,
            warnings,
            files,
            schema,
        })
    }

    pub fn table(&self, t: usize) -> &Table {
        &self.schema.tables[t]
    }

    pub fn name(&self, t: usize) -> String {
        self.schema.tables[t].qualified()
    }

    /// The kind of the root key, to parse `--org` values.
    pub fn root_key_kind(&self) -> ValueKind {
        self.table(self.root).column(&self.root_key).map(|c| c.kind).unwrap_or(ValueKind::Any)
    }

    /// The edges leaving table `t`.
    pub fn edges_from(&self, t: usize) -> impl Iterator<Item = (usize, &Edge)> {
        self.edges.iter().enumerate().filter(move |(_, e)| e.from == t)
    }

    /// Fails with every warning when `strict` is set.
    pub fn check_strict(&self, strict: bool) -> Result<()> {
        if strict && !self.warnings.is_empty() {
            return Err(Error::Strict(self.warnings.iter().map(|w| format!("warning: {w}")).collect()));
        }
        Ok(())
    }

    /// Every sensitive group a column or table of the plan belongs to.
    pub fn groups(&self) -> BTreeSet<String> {
        self.tables.iter().filter(|t| t.role.is_exported()).flat_map(|t| t.sensitive.values().cloned().chain(t.group.clone())).collect()
    }
}

/// One ownership edge per table where one is mandatory: a single semi-join selects the rows (an
/// `OR` of several makes engines remember every row they have matched), and a row belongs to one
/// organisation only. A mandatory reference wins over a nullable shorter path (a comment belongs to
/// its task's organisation even where its own `workspace_id` is NULL). Depths are then measured
/// along the chosen edges.
fn choose_paths(schema: &Schema, config: &Config, edges: &[Edge], tables: &mut [TablePlan]) -> Result<()> {
    let n = tables.len();
    let candidates: Vec<Vec<usize>> = (0..n)
        .map(|t| {
            let owned = tables[t].role == Role::Owned;
            (0..edges.len()).filter(|&i| owned && edges[i].from == t && edges[i].to != t && tables[edges[i].to].role.is_owned()).collect()
        })
        .collect();
    let mut configured = BTreeSet::new();
    for (name, columns) in &config.path {
        let t = find_table(schema, name, "path")?;
        let columns: Vec<String> = columns.items().iter().map(|c| c.to_string()).collect();
        let Some(&chosen) = candidates[t].iter().find(|&&e| edges[e].from_columns == columns) else {
            let known: Vec<String> = candidates[t].iter().map(|&e| format!("({})", edges[e].from_columns.join(", "))).collect();
            return Err(Error::Config(format!(
                "path.{name}: ({}) is not a reference from `{name}` to an owned table; its references: {}",
                columns.join(", "),
                if known.is_empty() { "none".into() } else { known.join(", ") }
            )));
        };
        if leads_to(tables, edges, edges[chosen].to, t) {
            return Err(Error::Config(format!(
                "path.{name}: ({}) leads back to `{name}`: ownership cannot go round a cycle",
                columns.join(", ")
            )));
        }
        tables[t].ownership = vec![chosen];
        configured.insert(t);
    }
    for t in 0..n {
        if tables[t].role != Role::Owned || configured.contains(&t) {
            continue;
        }
        if let Some(&mandatory) = tables[t].ownership.iter().find(|&&e| edges[e].mandatory()) {
            tables[t].ownership = vec![mandatory];
        } else if let Some(&longer) = candidates[t].iter().find(|&&e| edges[e].mandatory() && !leads_to(tables, edges, edges[e].to, t)) {
            tables[t].ownership = vec![longer];
        }
    }
    for t in 0..n {
        let chosen = tables[t].ownership.clone();
        tables[t].other_paths = candidates[t].iter().copied().filter(|e| !chosen.contains(e)).collect();
    }
    let mut depth: Vec<Option<usize>> = vec![None; n];
    for t in 0..n {
        ownership_depth(tables, edges, t, &mut depth);
    }
    for (plan, d) in tables.iter_mut().zip(depth) {
        if plan.role.is_owned() {
            plan.depth = d;
        }
    }
    Ok(())
}

/// Whether following ownership edges up from `from` reaches `target`.
fn leads_to(tables: &[TablePlan], edges: &[Edge], from: usize, target: usize) -> bool {
    let mut stack = vec![from];
    let mut seen = BTreeSet::new();
    while let Some(t) = stack.pop() {
        if t == target {
            return true;
        }
        if seen.insert(t) {
            stack.extend(tables[t].ownership.iter().map(|&e| edges[e].to));
        }
    }
    false
}

fn ownership_depth(tables: &[TablePlan], edges: &[Edge], t: usize, memo: &mut Vec<Option<usize>>) -> Option<usize> {
    if let Some(d) = memo[t] {
        return Some(d);
    }
    let d = match tables[t].role {
        Role::Root => 0,
        Role::Owned => {
            let mut d = 0;
            for &e in &tables[t].ownership {
                d = d.max(ownership_depth(tables, edges, edges[e].to, memo)? + 1);
            }
            d
        }
        _ => return None,
    };
    memo[t] = Some(d);
    Some(d)
}

fn role_word(role: Role) -> &'static str {
    match role {
        Role::Root => "the root",
        Role::Owned => "owned",
        Role::Referenced => "only referenced",
        Role::Keep => "a kept lookup table",
        Role::Dependent => "a dependent of a shared table",
        Role::Excluded => "excluded",
        Role::Unrelated => "unrelated (never exported)",
    }
}

fn find_table(schema: &Schema, name: &str, key: &str) -> Result<usize> {
    schema.find(name).ok_or_else(|| Error::Config(format!("{key}: no table `{name}` in the database")))
}

/// Tables named in a list; a name with `*` names every table it matches, at least one.
fn table_set(schema: &Schema, names: &[String], key: &str) -> Result<BTreeSet<usize>> {
    let mut set = BTreeSet::new();
    for name in names {
        if !name.contains('*') {
            set.insert(find_table(schema, name, key)?);
            continue;
        }
        let matching: Vec<usize> = (0..schema.tables.len()).filter(|&t| glob_matches(name, &schema.tables[t].qualified())).collect();
        if matching.is_empty() {
            return Err(Error::Config(format!("{key}: `{name}` matches no table in the database")));
        }
        set.extend(matching);
    }
    Ok(set)
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

fn resolve_column(schema: &Schema, item: &str, key: &str) -> Result<(usize, String)> {
    let (t, c) = split_column_ref(item).ok_or_else(|| Error::Config(format!("{key}: `{item}` is not of the form `table.column`")))?;
    let ti = find_table(schema, t, key)?;
    if schema.tables[ti].column(c).is_none() {
        return Err(Error::Config(format!("{key}: table `{t}` has no column `{c}`")));
    }
    Ok((ti, c.to_string()))
}

/// Why a foreign key's table is unknown: most often it lies in a namespace introspection left out.
fn unknown_reference(schema: &Schema, referenced: &str) -> String {
    let left_out = schema.namespaces.as_ref().and_then(|read| {
        let (namespace, _) = referenced.split_once('.')?;
        (!read.iter().any(|r| r == namespace)).then_some((namespace, read))
    });
    match left_out {
        Some((namespace, read)) => format!(
            "foreign key to `{referenced}` ignored: its schema `{namespace}` is not among the schemas read ({}); \
             add it to `--schemas` to follow the reference",
            read.join(", ")
        ),
        None => format!("foreign key to unknown table `{referenced}` ignored"),
    }
}

fn collect_edges(schema: &Schema, config: &Config, warnings: &mut Vec<Warning>) -> Result<Vec<Edge>> {
    let mut edges = Vec::new();
    for (from, table) in schema.tables.iter().enumerate() {
        for fk in &table.foreign_keys {
            let Some(to) = schema.find(&fk.referenced_table) else {
                warnings.push(Warning { table: table.qualified(), message: unknown_reference(schema, &fk.referenced_table) });
                continue;
            };
            let to_columns =
                if fk.referenced_columns.is_empty() { schema.tables[to].primary_key.clone() } else { fk.referenced_columns.clone() };
            edges.push(Edge {
                from,
                nullable: fk.columns.iter().all(|c| table.column(c).is_some_and(|c| c.nullable)),
                from_columns: fk.columns.clone(),
                to,
                to_columns,
                deferrable: fk.deferrable,
                declared: true,
                condition: None,
                evidence: None,
            });
        }
    }
    let mut conditions = Vec::new();
    for (i, r) in config.reference.iter().enumerate() {
        let key = format!("reference[{i}]");
        let from: Vec<(usize, String)> = r.from.items().iter().map(|s| resolve_column(schema, s, &key)).collect::<Result<_>>()?;
        let to: Vec<(usize, String)> = r.to.items().iter().map(|s| resolve_column(schema, s, &key)).collect::<Result<_>>()?;
        let same_table = |cols: &[(usize, String)]| cols.iter().all(|(t, _)| *t == cols[0].0);
        if from.len() != to.len() || from.is_empty() || !same_table(&from) || !same_table(&to) {
            return Err(Error::Config(format!("{key}: `from` and `to` must name the same number of columns, each side in one table")));
        }
        let target = &schema.tables[to[0].0];
        let to_cols: Vec<String> = to.iter().map(|(_, c)| c.clone()).collect();
        let unique = target.primary_key == to_cols || target.unique_keys.iter().any(|u| !u.partial && u.columns == to_cols);
        if !unique {
            return Err(Error::Config(format!(
                "{key}: `{}`({}) is neither the primary key nor a unique key, so it cannot identify the referenced row",
                target.qualified(),
                to_cols.join(", ")
            )));
        }
        let table = &schema.tables[from[0].0];
        edges.push(Edge {
            from: from[0].0,
            nullable: from.iter().all(|(_, c)| table.column(c).is_some_and(|c| c.nullable)),
            from_columns: from.into_iter().map(|(_, c)| c).collect(),
            to: to[0].0,
            to_columns: to.into_iter().map(|(_, c)| c).collect(),
            deferrable: false,
            declared: false,
            condition: None,
            evidence: None,
        });
        if let Some(when) = &r.when {
            conditions.push((edges.len() - 1, when, key));
        }
    }
    // After every edge exists: a condition may follow a reference declared further down.
    for (e, when, key) in conditions {
        edges[e].condition = Some(resolve_condition(schema, &edges, e, when, &key)?);
    }
    Ok(edges)
}

fn resolve_condition(schema: &Schema, edges: &[Edge], e: usize, when: &BTreeMap<String, WhenValue>, key: &str) -> Result<Condition> {
    let table = &schema.tables[edges[e].from];
    let mut entries = when.iter();
    let (Some((column, value)), None) = (entries.next(), entries.next()) else {
        return Err(Error::Config(format!("{key}.when: name exactly one column of `{}`", table.qualified())));
    };
    if table.column(column).is_none() {
        return Err(Error::Config(format!("{key}.when: table `{}` has no column `{column}`", table.qualified())));
    }
    let test = match value {
        WhenValue::Scalar(v) => ConditionTest::Equals(v.clone()),
        WhenValue::Row(values) => {
            let via = edges
                .iter()
                .position(|x| x.from == edges[e].from && x.from_columns == [column.clone()] && x.condition.is_none())
                .ok_or_else(|| {
                    Error::Config(format!(
                        "{key}.when: `{}.{column}` refers to no table (no foreign key or [[reference]] from it), \
                         so it cannot be matched against a row's values",
                        table.qualified()
                    ))
                })?;
            let kinds = &schema.tables[edges[via].to];
            if let Some(missing) = values.keys().find(|c| kinds.column(c).is_none()) {
                return Err(Error::Config(format!("{key}.when.{column}: table `{}` has no column `{missing}`", kinds.qualified())));
            }
            ConditionTest::Refers { via, values: values.clone() }
        }
    };
    Ok(Condition { column: column.clone(), test })
}

fn guess_sensitive_group(column: &str) -> Option<&'static str> {
    let c = column.to_lowercase();
    // `created_by_api_key_id` names a row, not a secret.
    if c.ends_with("_id") {
        return None;
    }
    if c.contains("password") || c.contains("passwd") {
        Some("passwords")
    } else if c.contains("otp") {
        Some("otp")
    } else if ["secret", "token", "private_key", "api_key"].iter().any(|p| c.contains(p)) {
        Some("secrets")
    } else {
        None
    }
}

/// The smallest unique set of NOT NULL columns other than the primary key; a primary key that the
/// engine does not generate is natural too.
fn guess_natural_key(table: &Table) -> Option<Vec<String>> {
    let not_null = |cols: &[String]| cols.iter().all(|c| table.column(c).is_some_and(|c| !c.nullable));
    let unique = table
        .unique_keys
        .iter()
        .filter(|u| !u.partial && not_null(&u.columns) && u.columns != table.primary_key)
        .min_by_key(|u| u.columns.len())
        .map(|u| u.columns.clone());
    unique.or_else(|| {
        let pk = &table.primary_key;
        let generated = pk.iter().any(|c| table.column(c).is_some_and(|c| c.auto_increment || matches!(c.kind, ValueKind::Integer)));
        (!pk.is_empty() && !generated).then(|| pk.clone())
    })
}

fn singular(name: &str) -> String {
    let lower = name.to_lowercase();
    lower.strip_suffix('s').map(str::to_string).unwrap_or(lower)
}

/// Parents before children; within a cycle, the table nearest the root first. Tarjan's algorithm
/// emits a component only after every component it references, which is that order.
fn export_order(schema: &Schema, edges: &[Edge], tables: &[TablePlan]) -> Vec<usize> {
    let n = schema.tables.len();
    let exported = |t: usize| tables[t].role.is_exported();
    let adj: Vec<Vec<usize>> = (0..n)
        .map(|t| edges.iter().filter(|e| e.from == t && e.to != t && exported(t) && exported(e.to)).map(|e| e.to).collect())
        .collect();
    let mut order = Vec::new();
    for mut component in strongly_connected(&adj) {
        component.retain(|&t| exported(t));
        component.sort_by_key(|&t| (tables[t].depth.unwrap_or(usize::MAX), t));
        order.extend(component);
    }
    order
}

/// Declared, immediately checked, nullable references to a table written later or to the same
/// table. (A NOT NULL one in a cycle is refused by [`find_cycles`] unless the cycle has another way out.)
fn forward_references(edges: &[Edge], order: &[usize]) -> Vec<usize> {
    let position = |t: usize| order.iter().position(|&x| x == t);
    (0..edges.len())
        .filter(|&i| {
            let e = &edges[i];
            let forward = matches!((position(e.from), position(e.to)), (Some(f), Some(t)) if t >= f);
            e.declared && !e.deferrable && e.nullable && forward
        })
        .collect()
}

/// Strongly connected components of two or more exported tables.
fn find_cycles(schema: &Schema, edges: &[Edge], tables: &[TablePlan], order: &[usize], caps: Capabilities) -> Result<Vec<Cycle>> {
    let n = schema.tables.len();
    let adj: Vec<Vec<usize>> = (0..n)
        .map(|t| {
            edges
                .iter()
                .filter(|e| e.from == t && e.to != t && tables[t].role.is_exported() && tables[e.to].role.is_exported())
                .map(|e| e.to)
                .collect()
        })
        .collect();
    let mut cycles = Vec::new();
    for component in strongly_connected(&adj) {
        if component.len() < 2 {
            continue;
        }
        let inside: Vec<&Edge> =
            edges.iter().filter(|e| e.from != e.to && component.contains(&e.from) && component.contains(&e.to)).collect();
        let name = |e: &Edge| format!("`{}`({})", schema.tables[e.from].qualified(), e.from_columns.join(", "));
        let broken_by = if caps.defer_all_foreign_keys {
            "foreign-key checks deferred to commit".to_string()
        } else {
            // Rows are written in `order`: only references to a later table need a way round.
            let position = |t: usize| order.iter().position(|&x| x == t);
            let forward: Vec<&&Edge> = inside.iter().filter(|e| e.declared && position(e.to) > position(e.from)).collect();
            if let Some(e) = forward.iter().find(|e| !e.deferrable && !e.nullable) {
                let names: Vec<String> = component.iter().map(|&t| schema.tables[t].qualified()).collect();
                return Err(Error::Plan(format!(
                    "cycle {} cannot be imported: {} is NOT NULL and checked at once, but refers to `{}`, written after it; \
                     make that foreign key DEFERRABLE or its columns nullable",
                    names.join(" → "),
                    name(e),
                    schema.tables[e.to].qualified()
                )));
            }
            let ways: Vec<String> = forward
                .iter()
                .map(|e| {
                    if e.deferrable {
                        format!("deferrable foreign key {} checked at commit", name(e))
                    } else {
                        format!("{} inserted as NULL, then updated", name(e))
                    }
                })
                .collect();
            if ways.is_empty() {
                "its references are not checked by the database".to_string()
            } else {
                ways.join("; ")
            }
        };
        cycles.push(Cycle { tables: component.iter().map(|&t| schema.tables[t].qualified()).collect(), broken_by });
    }
    Ok(cycles)
}

/// Tarjan's algorithm, iterative so that deep graphs cannot overflow the stack.
fn strongly_connected(adj: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = adj.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut out = Vec::new();
    let mut next = 0;
    for start in 0..n {
        if index[start] != usize::MAX {
            continue;
        }
        let mut work = vec![(start, 0usize)];
        while let Some(&(v, i)) = work.last() {
            if i == 0 && index[v] == usize::MAX {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = adj[v].get(i) {
                if let Some(top) = work.last_mut() {
                    top.1 += 1;
                }
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                component.sort_unstable();
                out.push(component);
            }
        }
    }
    out
}
