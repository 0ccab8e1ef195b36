//! Fills any schema with several organisations of synthetic rows, by following orgport's plan.
//!
//! [`fill`] introspects a database through orgport's engine, builds the [`Plan`] with a
//! configuration, and inserts, for each organisation, a root row and rows in every owned table,
//! parents first. Every reference the plan knows — declared foreign keys, configured and inferred
//! references, polymorphic ones by their discriminator — points at a row of the same
//! organisation, or of the pool of rows that organisations share (users, roles: the plan's
//! referenced and kept tables, and tables that NOT NULL references need but the plan excludes).
//! Nullable references are filled for most rows; those to tables filled later are set by an
//! `UPDATE` at the end.
//!
//! Values follow the column types (`values.rs`); unique keys (also partial ones, whose predicates
//! the server evaluates) are kept distinct; on PostgreSQL, check constraints and partition bounds
//! are satisfied by asking the server which of a few alternative values pass (`rules.rs`). A row
//! that cannot be made valid is left out and the reason reported, never silently.
//!
//! [`Filled`] records every row written, by table and organisation: what a test compares an
//! export with.

mod rules;
mod values;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use anyhow::{bail, Context, Result};
use orgport_core::config::{Config, Scalar};
use orgport_core::engine::{insert_statement, Engine};
use orgport_core::plan::{ConditionTest, Edge, Plan, Role};
use orgport_core::schema::Table;
use orgport_core::value::{Value, ValueKind};
use orgport_postgres::PostgresEngine;
use orgport_sqlite::{Access, SqliteEngine};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use rules::{first_passing, Check, Rules};
use values::{random_uuid, Shape, Slot};

/// How much to write.
#[derive(Debug, Clone)]
pub struct FillOptions {
    /// Organisations to create.
    pub orgs: usize,
    /// Rows per owned table and organisation, and rows of each shared table's pool.
    pub rows_per_table: usize,
    /// Seed of keys and coin flips; everything else depends only on the organisation's number.
    pub seed: u64,
    /// Number of the first organisation in generated text (`name_o4_1`): a second database
    /// filled from 4 holds other organisations than one filled from 1, and the same shared rows.
    pub first_org: usize,
    /// The tenant root, instead of the configuration's.
    pub root: Option<String>,
}

impl Default for FillOptions {
    fn default() -> Self {
        FillOptions { orgs: 3, rows_per_table: 3, seed: 42, first_org: 1, root: None }
    }
}

/// Every row the fill wrote.
#[derive(Debug, Clone)]
pub struct Filled {
    /// The root key of each organisation, in order.
    pub orgs: Vec<Value>,
    /// Tables with at least one row written, by qualified name.
    pub tables: BTreeMap<String, FilledTable>,
    /// Tables the fill could not write a single row to, with the reason.
    pub skipped: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct FilledTable {
    pub role: Role,
    /// The columns written, in the order of each row's values.
    pub columns: Vec<String>,
    pub rows: Vec<FilledRow>,
    /// Rows that could not be written, and the first reason.
    pub left_out: Option<(usize, String)>,
}

#[derive(Debug, Clone)]
pub struct FilledRow {
    /// The organisation (index into [`Filled::orgs`]) the row belongs to along its ownership
    /// references; None for shared rows and for owned rows that reached no organisation.
    pub org: Option<usize>,
    pub values: Vec<Value>,
}

impl FilledTable {
    /// The rows of organisation `org`.
    pub fn rows_of(&self, org: usize) -> impl Iterator<Item = &FilledRow> {
        self.rows.iter().filter(move |r| r.org == Some(org))
    }

    /// The value of `column` in `row`.
    pub fn value<'a>(&self, row: &'a FilledRow, column: &str) -> Option<&'a Value> {
        self.columns.iter().position(|c| c == column).map(|i| &row.values[i])
    }
}

impl Filled {
    /// Rows written for organisation `org` in `table`.
    pub fn count(&self, table: &str, org: usize) -> usize {
        self.tables.get(table).map_or(0, |t| t.rows_of(org).count())
    }

    /// One line per table: role, rows per organisation and shared, and what was left out.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (name, t) in &self.tables {
            let per_org: Vec<String> = (0..self.orgs.len()).map(|o| t.rows_of(o).count().to_string()).collect();
            let shared = t.rows.iter().filter(|r| r.org.is_none()).count();
            out.push_str(&format!("{name} ({:?}): {} per organisation, {shared} other", t.role, per_org.join("/")));
            if let Some((n, why)) = &t.left_out {
                out.push_str(&format!("; {n} left out: {why}"));
            }
            out.push('\n');
        }
        for (name, why) in &self.skipped {
            out.push_str(&format!("{name}: skipped: {why}\n"));
        }
        out
    }
}

/// Opens the database at `url`, plans it with `config` and fills it; one transaction.
pub fn fill(url: &str, config: &Config, options: &FillOptions) -> Result<Filled> {
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
    let (mut engine, evaluator): (Box<dyn Engine>, Option<Box<dyn Engine>>) = if orgport_postgres::URL_SCHEMES.contains(&scheme) {
        (Box::new(PostgresEngine::open(url)?), Some(Box::new(PostgresEngine::open(url)?)))
    } else if orgport_sqlite::URL_SCHEMES.contains(&scheme) {
        (Box::new(SqliteEngine::open(url, Access::ReadWrite)?), None)
    } else {
        bail!("unsupported database URL `{}`", orgport_postgres::redact(url));
    };
    let schema = engine.introspect().context("reading the schema")?;
    let plan = Plan::build(schema, config, options.root.as_deref(), engine.capabilities()).context("planning the schema")?;
    let rules = match evaluator {
        Some(mut e) => {
            let rules = Rules::read(e.as_mut(), &plan.schema)?;
            Some((rules, e))
        }
        None => None,
    };
    Filler::new(engine.as_mut(), rules, &plan, options)?.run()
}

/// A reference from a row that waits for its target table: set by `UPDATE` at the end.
struct Pending {
    table: usize,
    row: usize,
    edge: usize,
    /// The organisation the row was written for.
    org: Option<usize>,
}

/// A row's values and the edges it leaves for later, or why it cannot be written.
type Candidate = std::result::Result<(Vec<Value>, Vec<usize>), Refusal>;

/// Why a candidate row cannot be written.
enum Refusal {
    /// Another attempt, with other parents, may succeed.
    Repeats(String),
    /// No attempt will.
    Impossible(String),
}

struct TableState {
    /// Written columns (generated ones are computed by the engine).
    shapes: Vec<Shape>,
    role: Role,
    rows: Vec<FilledRow>,
    /// The organisation each row was written for (None: a shared row).
    intended: Vec<Option<usize>>,
    /// Rows that others may reference, by organisation (None: shared rows).
    members: HashMap<Option<usize>, Vec<usize>>,
    /// Column positions of each unique key, with its partial index's predicate.
    uniques: Vec<(Vec<usize>, Option<String>)>,
    seen: Vec<HashSet<String>>,
    checks: Vec<Check>,
    /// The alternative each check column took in the last row that needed one: tried first.
    repairs: BTreeMap<usize, Value>,
    /// The first key value above the rows that existed: integer keys are allocated from here.
    key_base: HashMap<usize, i64>,
    /// Values this pool must hold, one row each (the type rows polymorphic references name).
    required: Vec<BTreeMap<String, Scalar>>,
    attempted: u64,
    left_out: Option<(usize, String)>,
}

struct Filler<'a> {
    engine: &'a mut dyn Engine,
    evaluator: Option<Box<dyn Engine>>,
    plan: &'a Plan,
    options: &'a FillOptions,
    rng: StdRng,
    tables: Vec<Option<TableState>>,
    pending: Vec<Pending>,
    skipped: BTreeMap<String, String>,
}

impl<'a> Filler<'a> {
    fn new(engine: &'a mut dyn Engine, rules: Option<(Rules, Box<dyn Engine>)>, plan: &'a Plan, options: &'a FillOptions) -> Result<Self> {
        if options.orgs == 0 || options.rows_per_table == 0 {
            bail!("--orgs and --rows-per-table must be at least 1");
        }
        let (rules, evaluator) = match rules {
            Some((r, e)) => (r, Some(e)),
            None => (Rules::default(), None),
        };
        let fill_set = tables_to_fill(plan);
        let mut required: HashMap<usize, Vec<BTreeMap<String, Scalar>>> = HashMap::new();
        for e in &plan.edges {
            if let Some(ConditionTest::Refers { via, values }) = e.condition.as_ref().map(|c| &c.test) {
                required.entry(plan.edges[*via].to).or_default().push(values.clone());
            }
        }
        let mut tables = Vec::new();
        for (t, table) in plan.schema.tables.iter().enumerate() {
            if !fill_set.contains(&t) {
                tables.push(None);
                continue;
            }
            let shapes: Vec<Shape> = table
                .columns
                .iter()
                .filter(|c| !c.generated)
                .map(|c| Shape::of(c, rules.allowed.get(&(t, c.name.clone())).cloned().unwrap_or_default()))
                .collect();
            let position = |name: &str| shapes.iter().position(|s| s.name == name);
            let mut uniques = Vec::new();
            if !table.primary_key.is_empty() {
                uniques.push((table.primary_key.iter().filter_map(|c| position(c)).collect(), None));
            }
            for u in &table.unique_keys {
                let predicate = u.name.as_ref().and_then(|n| rules.predicates.get(&(t, n.clone())).cloned());
                uniques.push((u.columns.iter().filter_map(|c| position(c)).collect(), predicate));
            }
            let checks = rules
                .checks
                .get(&t)
                .into_iter()
                .flatten()
                .map(|c| Check {
                    name: c.name.clone(),
                    expr: c.expr.clone(),
                    columns: c.columns.iter().filter_map(|n| position(n)).collect(),
                })
                .collect();
            tables.push(Some(TableState {
                seen: vec![HashSet::new(); uniques.len()],
                shapes,
                role: plan.tables[t].role,
                rows: Vec::new(),
                intended: Vec::new(),
                members: HashMap::new(),
                uniques,
                checks,
                repairs: BTreeMap::new(),
                key_base: HashMap::new(),
                required: required.remove(&t).unwrap_or_default(),
                attempted: 0,
                left_out: None,
            }));
        }
        Ok(Filler {
            engine,
            evaluator,
            plan,
            options,
            rng: StdRng::seed_from_u64(options.seed),
            tables,
            pending: Vec::new(),
            skipped: BTreeMap::new(),
        })
    }

    fn run(mut self) -> Result<Filled> {
        let order = fill_order(self.plan, &self.tables, &mut self.skipped);
        self.engine.begin_write()?;
        let result = self.write(&order);
        if result.is_err() {
            let _ = self.engine.end();
        }
        result?;
        self.engine.commit().context("committing the rows")?;
        let mut filled = Filled { orgs: Vec::new(), tables: BTreeMap::new(), skipped: self.skipped };
        let root = self.plan.root;
        if let Some(state) = &self.tables[root] {
            let key = state.shapes.iter().position(|s| s.name == self.plan.root_key).context("the root key is not written")?;
            filled.orgs = state.rows.iter().map(|r| r.values[key].clone()).collect();
        }
        for (t, state) in self.tables.into_iter().enumerate() {
            let Some(state) = state else { continue };
            let name = self.plan.name(t);
            if state.rows.is_empty() {
                let why = state.left_out.map(|(_, why)| why).unwrap_or_else(|| "no row written".into());
                filled.skipped.entry(name).or_insert(why);
                continue;
            }
            filled.tables.insert(
                name,
                FilledTable {
                    role: state.role,
                    columns: state.shapes.iter().map(|s| s.name.clone()).collect(),
                    rows: state.rows,
                    left_out: state.left_out,
                },
            );
        }
        Ok(filled)
    }

    fn write(&mut self, order: &[usize]) -> Result<()> {
        for &t in order {
            self.fill_table(t).with_context(|| format!("filling `{}`", self.plan.name(t)))?;
        }
        let root = self.state(self.plan.root);
        if root.rows.len() != self.options.orgs {
            let why = root.left_out.as_ref().map(|(_, why)| why.as_str()).unwrap_or("its table is in a cycle of NOT NULL references");
            bail!(
                "only {} of {} root rows of `{}` could be written: {why}",
                root.rows.len(),
                self.options.orgs,
                self.plan.name(self.plan.root)
            );
        }
        self.resolve_pending()?;
        for &t in order {
            if self.state(t).rows.is_empty() {
                continue;
            }
            let table = self.plan.table(t).clone();
            self.engine.after_import(&table).with_context(|| format!("moving the sequences of `{}`", table.qualified()))?;
        }
        Ok(())
    }

    fn state(&self, t: usize) -> &TableState {
        self.tables[t].as_ref().expect("a table of the fill")
    }

    fn state_mut(&mut self, t: usize) -> &mut TableState {
        self.tables[t].as_mut().expect("a table of the fill")
    }

    fn fill_table(&mut self, t: usize) -> Result<()> {
        let table = self.plan.table(t).clone();
        // Integer keys continue above what the table holds.
        for (i, shape) in self.state(t).shapes.clone().iter().enumerate() {
            if shape.kind == ValueKind::Integer && table.primary_key.contains(&shape.name) {
                let max = self.engine.max_key(&table, &shape.name)?;
                self.state_mut(t).key_base.insert(i, max);
            }
        }
        let groups: Vec<(Option<usize>, usize)> = match self.state(t).role {
            Role::Root => (0..self.options.orgs).map(|o| (Some(o), 1)).collect(),
            Role::Owned => (0..self.options.orgs).map(|o| (Some(o), self.options.rows_per_table)).collect(),
            _ => vec![(None, self.options.rows_per_table.max(self.state(t).required.len()))],
        };
        for (org, count) in groups {
            for index in 0..count {
                self.fill_row(t, &table, org, index)?;
            }
        }
        Ok(())
    }

    /// Writes one row, trying other parents when a unique key would repeat.
    fn fill_row(&mut self, t: usize, table: &Table, org: Option<usize>, index: usize) -> Result<()> {
        let state = self.state_mut(t);
        state.attempted += 1;
        let slot = Slot {
            ordinal: state.attempted,
            tag: match org {
                Some(o) => format!("o{}_{}", self.options.first_org + o, index + 1),
                None => format!("p{}", index + 1),
            },
        };
        let mut refusal = String::new();
        for attempt in 0..4 {
            match self.candidate(t, org, index, attempt, &slot)? {
                Ok((values, pending)) => match self.insert(t, table, &values)? {
                    Ok(()) => {
                        self.accept(t, org, values, pending);
                        return Ok(());
                    }
                    Err(e) => {
                        refusal = e;
                        break;
                    }
                },
                Err(Refusal::Repeats(why)) => refusal = why,
                Err(Refusal::Impossible(why)) => {
                    refusal = why;
                    break;
                }
            }
        }
        let state = self.state_mut(t);
        match &mut state.left_out {
            Some((n, _)) => *n += 1,
            None => state.left_out = Some((1, refusal)),
        }
        Ok(())
    }

    /// The values of a new row of `t`, and the references it leaves for later.
    fn candidate(&mut self, t: usize, org: Option<usize>, index: usize, attempt: usize, slot: &Slot) -> Result<Candidate> {
        let plan = self.plan;
        let table = plan.table(t);
        let shapes = self.state(t).shapes.clone();
        let position = |name: &str| shapes.iter().position(|s| s.name == name);
        let keep_keys = self.state(t).role == Role::Keep;
        let mut values: Vec<Value> = Vec::with_capacity(shapes.len());
        for (i, shape) in shapes.iter().enumerate() {
            let value = match self.state(t).key_base.get(&i) {
                Some(base) => Value::Int(shape.bounded(base + slot.ordinal as i64)),
                None if keep_keys && shape.kind == ValueKind::Uuid => Value::Uuid(keep_uuid(&table.qualified(), slot.ordinal)),
                None => shape.generate(slot, &mut self.rng),
            };
            values.push(value);
        }
        if let Some(required) = self.state(t).required.get(index) {
            for (column, scalar) in required {
                if let Some(i) = position(column) {
                    values[i] = scalar_value(scalar, shapes[i].kind);
                }
            }
        }
        let mut assigned: BTreeSet<usize> = BTreeSet::new();
        let mut pending = Vec::new();
        let mut offers: BTreeMap<usize, Value> = BTreeMap::new();
        // Polymorphic references first: the kind chosen decides the discriminator, which a
        // type reference (`content_type_id`) must then agree with.
        let mut kinds: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
        for (e, edge) in plan.edges_from(t) {
            if edge.condition.is_some() {
                kinds.entry(edge.from_columns.clone()).or_default().push(e);
            }
        }
        for edges in kinds.values() {
            let usable: Vec<usize> = edges.iter().copied().filter(|&e| !self.candidates(org, &plan.edges[e], index).is_empty()).collect();
            if usable.is_empty() {
                continue;
            }
            let e = usable[(index + attempt) % usable.len()];
            let edge = &plan.edges[e];
            let Some(condition) = &edge.condition else {
                continue;
            };
            let Some(column) = position(&condition.column) else {
                continue;
            };
            match &condition.test {
                ConditionTest::Equals(scalar) => values[column] = scalar_value(scalar, shapes[column].kind),
                ConditionTest::Refers { via, values: wanted } => {
                    let via = &plan.edges[*via];
                    let Some(type_row) = self.row_with(via, wanted) else {
                        continue;
                    };
                    self.point(t, via, &type_row, &mut values, &mut assigned);
                }
            }
            assigned.insert(column);
            let target = self.candidates(org, edge, index);
            let chosen = target[(index + attempt) % target.len()].clone();
            self.point(t, edge, &chosen, &mut values, &mut assigned);
        }
        // Then every other reference, those that decide ownership and NOT NULL ones first.
        let ownership = &plan.tables[t].ownership;
        let mut edges: Vec<(usize, &Edge)> = plan.edges_from(t).filter(|(_, e)| e.condition.is_none()).collect();
        edges.sort_by_key(|(e, edge)| (!ownership.contains(e), edge.nullable));
        for (e, edge) in edges {
            let cols: Vec<usize> = edge.from_columns.iter().filter_map(|c| position(c)).collect();
            let target = self.tables[edge.to].as_ref();
            let later = target.is_some_and(|s| s.attempted == 0);
            let unavailable = target.is_none();
            if edge.nullable {
                let wanted = ownership.contains(&e) || self.rng.gen_bool(0.8);
                if !wanted || later || unavailable {
                    if wanted && later {
                        pending.push(e);
                    }
                    // The row it would have referred to, should a check want the reference.
                    let candidates = if later || unavailable { Vec::new() } else { self.candidates(org, edge, index) };
                    if let Some(chosen) = candidates.get((index + attempt) % candidates.len().max(1)) {
                        offers.extend(cols.iter().copied().zip(chosen.iter().cloned()));
                    }
                    for &c in &cols {
                        if !assigned.contains(&c) {
                            values[c] = Value::Null;
                        }
                    }
                    continue;
                }
            } else if later || unavailable {
                return Ok(Err(Refusal::Impossible(format!(
                    "({}) is NOT NULL and `{}` {}",
                    edge.from_columns.join(", "),
                    plan.name(edge.to),
                    if later { "is filled later" } else { "is not filled" }
                ))));
            }
            let mut candidates = self.candidates(org, edge, index);
            if edge.to == t && candidates.is_empty() && !edge.nullable {
                // A NOT NULL self-reference: the first row refers to itself.
                let own: Vec<Value> = edge.to_columns.iter().filter_map(|c| position(c).map(|i| values[i].clone())).collect();
                candidates.push(own);
            }
            candidates.retain(|row| cols.iter().zip(row).all(|(c, v)| !assigned.contains(c) || values[*c] == *v));
            if candidates.is_empty() {
                if edge.nullable {
                    for &c in &cols {
                        if !assigned.contains(&c) {
                            values[c] = Value::Null;
                        }
                    }
                    continue;
                }
                return Ok(Err(Refusal::Impossible(format!(
                    "({}) is NOT NULL and no `{}` row of the same organisation fits",
                    edge.from_columns.join(", "),
                    plan.name(edge.to)
                ))));
            }
            let chosen = candidates[(index + attempt) % candidates.len()].clone();
            self.point(t, edge, &chosen, &mut values, &mut assigned);
        }
        if let Err(refusal) = self.apply_checks(t, &mut values, &offers)? {
            return Ok(Err(refusal));
        }
        if let Some(why) = self.repeats(t, &values, None)? {
            return Ok(Err(Refusal::Repeats(why)));
        }
        Ok(Ok((values, pending)))
    }

    /// Sets the referencing columns of `edge` to the referenced values.
    fn point(&self, t: usize, edge: &Edge, target: &[Value], values: &mut [Value], assigned: &mut BTreeSet<usize>) {
        let shapes = &self.state(t).shapes;
        for (column, value) in edge.from_columns.iter().zip(target) {
            if let Some(i) = shapes.iter().position(|s| &s.name == column) {
                values[i] = value.clone();
                assigned.insert(i);
            }
        }
    }

    /// The referenced values (`edge.to_columns`) of every row `edge` may point at from a row of
    /// organisation `org`: the same organisation's rows of an owned table, else shared rows.
    fn candidates(&self, org: Option<usize>, edge: &Edge, index: usize) -> Vec<Vec<Value>> {
        let Some(target) = self.tables[edge.to].as_ref() else {
            return Vec::new();
        };
        let owner = if target.role.is_owned() {
            // Shared rows that must refer to an organisation's row spread over them.
            Some(org.unwrap_or(index % self.options.orgs))
        } else {
            None
        };
        let positions: Vec<usize> = edge.to_columns.iter().filter_map(|c| target.shapes.iter().position(|s| &s.name == c)).collect();
        let members = target.members.get(&owner).map(Vec::as_slice).unwrap_or_default();
        members
            .iter()
            .map(|&r| positions.iter().map(|&p| target.rows[r].values[p].clone()).collect::<Vec<Value>>())
            .filter(|v| !v.iter().any(Value::is_null))
            .collect()
    }

    /// The values `via` refers to of the first row of its target whose columns hold `wanted`:
    /// the type row a polymorphic reference names.
    fn row_with(&self, via: &Edge, wanted: &BTreeMap<String, Scalar>) -> Option<Vec<Value>> {
        let state = self.tables[via.to].as_ref()?;
        let key = &via.to_columns;
        state.rows.iter().find_map(|row| {
            let holds = wanted.iter().all(|(c, s)| {
                state.shapes.iter().position(|x| &x.name == c).is_some_and(|i| row.values[i] == scalar_value(s, state.shapes[i].kind))
            });
            holds
                .then(|| key.iter().filter_map(|k| state.shapes.iter().position(|s| &s.name == k).map(|i| row.values[i].clone())).collect())
        })
    }

    /// Makes `values` pass the table's checks: each failing check's columns try their
    /// alternatives (and `offers`: references left NULL by chance), the combination that last
    /// worked first.
    fn apply_checks(&mut self, t: usize, values: &mut [Value], offers: &BTreeMap<usize, Value>) -> Result<Result<(), Refusal>> {
        let state = self.state(t);
        if state.checks.is_empty() || self.evaluator.is_none() {
            return Ok(Ok(()));
        }
        let shapes = state.shapes.clone();
        let checks = state.checks.clone();
        let generated = values.to_vec();
        let mut guess = values.to_vec();
        for (&c, v) in &state.repairs {
            guess[c] = v.clone();
        }
        let all: Vec<&Check> = checks.iter().collect();
        let evaluator = self.evaluator.as_deref_mut().expect("an evaluator");
        let name = self.plan.name(t);
        match first_passing(evaluator, &shapes, &all, &[], &[values.to_vec(), guess.clone()])
            .with_context(|| format!("evaluating the checks of `{name}`"))?
        {
            Some((0, _)) => return Ok(Ok(())),
            Some(_) => {
                values.clone_from_slice(&guess);
                return Ok(Ok(()));
            }
            None => {}
        }
        // One check at a time, its columns varied over their alternatives, every check held.
        for check in &checks {
            if first_passing(evaluator, &shapes, &[check], &[], &[values.to_vec()])?.is_some() {
                continue;
            }
            let choices: Vec<Vec<Value>> = check
                .columns
                .iter()
                .map(|&c| std::iter::once(values[c].clone()).chain(offers.get(&c).cloned()).chain(shapes[c].alternatives()).collect())
                .collect();
            let combinations = combinations(values, &check.columns, &choices, 512);
            match first_passing(evaluator, &shapes, &all, &[], &combinations)? {
                Some((i, _)) => values.clone_from_slice(&combinations[i]),
                None => {
                    // Passing this check alone may still be possible while another fails.
                    match first_passing(evaluator, &shapes, &[check], &[], &combinations)? {
                        Some((i, _)) => values.clone_from_slice(&combinations[i]),
                        None => {
                            return Ok(Err(Refusal::Impossible(format!(
                                "no value of ({}) tried satisfies check `{}`",
                                check.columns.iter().map(|&c| shapes[c].name.as_str()).collect::<Vec<_>>().join(", "),
                                check.name
                            ))))
                        }
                    }
                }
            }
        }
        if first_passing(evaluator, &shapes, &all, &[], &[values.to_vec()])?.is_none() {
            return Ok(Err(Refusal::Impossible("no combination tried satisfies every check".into())));
        }
        // Alternatives are the same for every row (NULL, a label, the default): worth trying
        // first on the next row. Generated values are not.
        let repairs: BTreeMap<usize, Value> = checks
            .iter()
            .flat_map(|c| c.columns.iter().copied())
            .filter(|&i| values[i] != generated[i])
            .map(|i| (i, values[i].clone()))
            .collect();
        self.state_mut(t).repairs = repairs;
        Ok(Ok(()))
    }

    /// The unique key the row would repeat, if any (partial keys only where their predicate
    /// holds for the row; keys with a NULL never repeat). `only`: the keys that hold one of
    /// these columns.
    fn repeats(&mut self, t: usize, values: &[Value], only: Option<&[usize]>) -> Result<Option<String>> {
        let state = self.tables[t].as_ref().expect("a table of the fill");
        let predicates: Vec<&str> = state.uniques.iter().filter_map(|(_, p)| p.as_deref()).collect();
        let holds: Vec<bool> = match (&mut self.evaluator, predicates.is_empty()) {
            (Some(evaluator), false) => first_passing(evaluator.as_mut(), &state.shapes, &[], &predicates, &[values.to_vec()])
                .with_context(|| format!("evaluating the unique index predicates of `{}`", self.plan.name(t)))?
                .map(|(_, holds)| holds)
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let mut holds = holds.into_iter();
        for (u, (columns, predicate)) in state.uniques.iter().enumerate() {
            let applies = predicate.is_none() || holds.next().unwrap_or(true);
            let concerned = only.is_none_or(|only| columns.iter().any(|c| only.contains(c)));
            if !applies || !concerned || columns.iter().any(|&c| values[c].is_null()) {
                continue;
            }
            if state.seen[u].contains(&unique_text(columns, values)) {
                let names: Vec<&str> = columns.iter().map(|&c| state.shapes[c].name.as_str()).collect();
                return Ok(Some(format!("unique ({}) would repeat", names.join(", "))));
            }
        }
        Ok(None)
    }

    /// Inserts one row inside a savepoint: a row the database refuses is left out, the rest stays.
    fn insert(&mut self, t: usize, table: &Table, values: &[Value]) -> Result<Result<(), String>> {
        let columns: Vec<String> = self.state(t).shapes.iter().map(|s| s.name.clone()).collect();
        let sql = insert_statement(self.engine.dialect(), table, &columns);
        self.write_or_undo(&sql, values)
    }

    fn write_or_undo(&mut self, sql: &str, values: &[Value]) -> Result<Result<(), String>> {
        self.engine.execute("SAVEPOINT orgport_fill", &[])?;
        match self.engine.execute(sql, values) {
            Ok(_) => {
                self.engine.execute("RELEASE SAVEPOINT orgport_fill", &[])?;
                Ok(Ok(()))
            }
            Err(e) => {
                self.engine.execute("ROLLBACK TO SAVEPOINT orgport_fill", &[])?;
                Ok(Err(format!("the database refused it: {}", error_text(&e))))
            }
        }
    }

    /// Records a written row: its unique values, its organisation, and whether others may
    /// refer to it.
    fn accept(&mut self, t: usize, org: Option<usize>, values: Vec<Value>, pending: Vec<usize>) {
        let belongs = self.belongs(t, org, &values);
        let state = self.state_mut(t);
        state.remember(&values);
        let row = state.rows.len();
        let owned = state.role.is_owned();
        if !owned || belongs.is_some() {
            state.members.entry(belongs).or_default().push(row);
        }
        state.rows.push(FilledRow { org: belongs, values });
        state.intended.push(org);
        self.pending.extend(pending.into_iter().map(|edge| Pending { table: t, row, edge, org }));
    }

    /// The organisation a row of `t` belongs to: the root's own, or that of a row its ownership
    /// references (or its self-reference) point at.
    fn belongs(&self, t: usize, org: Option<usize>, values: &[Value]) -> Option<usize> {
        let plan = &self.plan.tables[t];
        match plan.role {
            Role::Root => org,
            Role::Owned => {
                let shapes = &self.state(t).shapes;
                let set = |e: usize| {
                    self.plan.edges[e]
                        .from_columns
                        .iter()
                        .all(|c| shapes.iter().position(|s| &s.name == c).is_some_and(|i| !values[i].is_null()))
                };
                (plan.ownership.iter().chain(plan.self_edge.iter()).any(|&e| set(e))).then_some(org).flatten()
            }
            _ => None,
        }
    }

    /// Sets the references that waited for a later table, each by `UPDATE`, where the row's
    /// checks and unique keys allow; then gives the rows whose ownership waited an organisation.
    fn resolve_pending(&mut self) -> Result<()> {
        for p in std::mem::take(&mut self.pending) {
            let edge = self.plan.edges[p.edge].clone();
            let table = self.plan.table(p.table).clone();
            let candidates = self.candidates(p.org, &edge, p.row);
            if table.primary_key.is_empty() || candidates.is_empty() {
                continue;
            }
            let before = self.state(p.table).rows[p.row].values.clone();
            let mut values = before.clone();
            let mut assigned = BTreeSet::new();
            self.point(p.table, &edge, &candidates[p.row % candidates.len()], &mut values, &mut assigned);
            let changed: Vec<usize> = assigned.into_iter().collect();
            if !self.passes_checks(p.table, &values)? || self.repeats(p.table, &values, Some(&changed))?.is_some() {
                continue;
            }
            let d = self.engine.dialect();
            let shapes = &self.state(p.table).shapes;
            let mut params = Vec::new();
            let mut sets = Vec::new();
            for &c in &changed {
                params.push(values[c].clone());
                sets.push(format!("{} = {}", d.quote_ident(&shapes[c].name), d.placeholder(params.len())));
            }
            let mut conditions = Vec::new();
            for key in &table.primary_key {
                let i = shapes.iter().position(|s| &s.name == key).context("a key column")?;
                params.push(before[i].clone());
                conditions.push(format!("{} = {}", d.quote_ident(key), d.placeholder(params.len())));
            }
            let sql = format!("UPDATE {} SET {} WHERE {}", d.table_ref(&table), sets.join(", "), conditions.join(" AND "));
            if self.write_or_undo(&sql, &params)?.is_ok() {
                let state = self.state_mut(p.table);
                state.remember(&values);
                state.rows[p.row].values = values;
            }
        }
        for t in 0..self.tables.len() {
            let Some(state) = &self.tables[t] else {
                continue;
            };
            let orgs: Vec<Option<usize>> = (0..state.rows.len())
                .map(|r| state.rows[r].org.or_else(|| self.belongs(t, state.intended[r], &state.rows[r].values)))
                .collect();
            for (row, org) in self.state_mut(t).rows.iter_mut().zip(orgs) {
                row.org = org;
            }
        }
        Ok(())
    }

    /// Whether the row passes every check of its table, as it is.
    fn passes_checks(&mut self, t: usize, values: &[Value]) -> Result<bool> {
        let state = self.tables[t].as_ref().expect("a table of the fill");
        let Some(evaluator) = self.evaluator.as_deref_mut() else {
            return Ok(true);
        };
        if state.checks.is_empty() {
            return Ok(true);
        }
        let checks: Vec<&Check> = state.checks.iter().collect();
        Ok(first_passing(evaluator, &state.shapes, &checks, &[], &[values.to_vec()])?.is_some())
    }
}

impl TableState {
    /// Takes note of a written row's unique values.
    fn remember(&mut self, values: &[Value]) {
        for (u, (columns, _)) in self.uniques.iter().enumerate() {
            if !columns.iter().any(|&c| values[c].is_null()) {
                self.seen[u].insert(unique_text(columns, values));
            }
        }
    }
}

/// Every exported table, and the tables their NOT NULL references need rows in.
fn tables_to_fill(plan: &Plan) -> BTreeSet<usize> {
    let mut set: BTreeSet<usize> = (0..plan.tables.len()).filter(|&t| plan.tables[t].role.is_exported()).collect();
    let mut queue: Vec<usize> = set.iter().copied().collect();
    while let Some(t) = queue.pop() {
        for (_, e) in plan.edges_from(t) {
            if !e.nullable && e.condition.is_none() && set.insert(e.to) {
                queue.push(e.to);
            }
        }
    }
    set
}

/// Tables after every table they refer to, in the plan's order where it allows; a cycle is
/// entered at a table whose NOT NULL references are satisfied. Tables in a cycle of NOT NULL
/// references are skipped.
fn fill_order(plan: &Plan, tables: &[Option<TableState>], skipped: &mut BTreeMap<String, String>) -> Vec<usize> {
    let filled: BTreeSet<usize> = (0..tables.len()).filter(|&t| tables[t].is_some()).collect();
    let rank: HashMap<usize, usize> = plan.order.iter().enumerate().map(|(i, &t)| (t, i)).collect();
    let priority = |t: &&usize| rank.get(*t).copied().unwrap_or(plan.order.len() + **t);
    let parents = |t: usize, mandatory_only: bool| -> BTreeSet<usize> {
        plan.edges_from(t)
            .filter(|(_, e)| e.to != t && filled.contains(&e.to) && (!mandatory_only || e.mandatory()))
            .map(|(_, e)| e.to)
            .collect()
    };
    let mut done = BTreeSet::new();
    let mut order = Vec::new();
    let mut remaining = filled.clone();
    while !remaining.is_empty() {
        let next = remaining
            .iter()
            .filter(|&&t| parents(t, false).is_subset(&done))
            .min_by_key(priority)
            .or_else(|| remaining.iter().filter(|&&t| parents(t, true).is_subset(&done)).min_by_key(priority))
            .copied();
        let Some(t) = next else {
            let names: Vec<String> = remaining.iter().map(|&t| plan.name(t)).collect();
            for &t in &remaining {
                skipped.insert(plan.name(t), format!("its NOT NULL references form a cycle among {}", names.join(", ")));
            }
            break;
        };
        order.push(t);
        done.insert(t);
        remaining.remove(&t);
    }
    order
}

/// A configured value as a value of a column of `kind`.
fn scalar_value(scalar: &Scalar, kind: ValueKind) -> Value {
    match (scalar, kind) {
        (Scalar::Int(i), ValueKind::Integer) => Value::Int(*i),
        (Scalar::Bool(b), ValueKind::Boolean) => Value::Bool(*b),
        (Scalar::Bool(b), ValueKind::Integer) => Value::Int(i64::from(*b)),
        (Scalar::Text(s), ValueKind::Integer) => s.parse().map(Value::Int).unwrap_or_else(|_| Value::Text(s.clone())),
        (Scalar::Text(s), _) => Value::Text(s.clone()),
        (other, _) => Value::Text(other.to_string()),
    }
}

/// The key of a kept (lookup) table's row: the same in every database, whatever the seed, so
/// that an archive's lookup keys exist on a target filled alike.
fn keep_uuid(table: &str, ordinal: u64) -> [u8; 16] {
    let name = table.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    random_uuid(&mut StdRng::seed_from_u64(name ^ ordinal))
}

fn unique_text(columns: &[usize], values: &[Value]) -> String {
    columns.iter().map(|&c| format!("{:?}", values[c])).collect::<Vec<_>>().join("\u{1f}")
}

/// Rows with the given columns set to each combination of their choices (the first choice of
/// each is the current value), fewest changes first, at most `cap`.
fn combinations(values: &[Value], columns: &[usize], choices: &[Vec<Value>], cap: usize) -> Vec<Vec<Value>> {
    let total: usize = choices.iter().map(Vec::len).product();
    let mut out: Vec<(usize, Vec<Value>)> = (0..total.min(cap * 8))
        .map(|n| {
            let (mut row, mut rest, mut changed) = (values.to_vec(), n, 0);
            for (k, &c) in columns.iter().enumerate() {
                let pick = rest % choices[k].len();
                rest /= choices[k].len();
                changed += usize::from(pick > 0);
                row[c] = choices[k][pick].clone();
            }
            (changed, row)
        })
        .collect();
    out.sort_by_key(|(changed, _)| *changed);
    out.into_iter().take(cap).map(|(_, row)| row).collect()
}

/// An error and its causes, each once.
fn error_text(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}
