//! The SQL that selects an organisation's rows on the database server.
//!
//! Every query carries one `WITH RECURSIVE` clause with a common table expression per table that
//! other rows point at: the keys of that table's selected rows. A table's rows are selected by
//! semi-joins against its parents' expressions, so no key list ever travels from the client and
//! the engine streams the rows out.

use std::cell::RefCell;
use std::collections::BTreeSet;

use crate::engine::Dialect;
use crate::plan::{ConditionTest, Plan, Role};
use crate::value::{Value, ValueKind};

pub struct Selection<'a> {
    plan: &'a Plan,
    dialect: &'a dyn Dialect,
    /// Per table with an expression written so far: its definition, and the expressions it
    /// reads. A shared table can only be selected through expressions already written (a cycle
    /// of shared tables is followed one way).
    ctes: Vec<Option<(String, BTreeSet<usize>)>>,
    /// The tables with an expression, each after those it reads.
    cte_order: Vec<usize>,
    /// Expressions read by the SQL being written. A query carries only these: PostgreSQL
    /// materializes an expression read twice, even by one that the query never reads, and then
    /// plans the semi-joins against it blind.
    reading: RefCell<BTreeSet<usize>>,
    /// Per table: the columns of its expression, if it has one.
    keys: Vec<Option<Vec<String>>>,
    params: Vec<Value>,
}

/// The query for one table: its columns, then one flag per edge in `flagged`: NULL when the row
/// does not hold the reference, 1 when the referenced row is the organisation's, 0 when it is
/// not, and [`TEST_ON_CLIENT`] when the export must test it against a [`KeyColumn`].
pub struct TableQuery {
    pub sql: String,
    pub params: Vec<Value>,
    pub kinds: Vec<ValueKind>,
    pub flagged: Vec<usize>,
    /// How each flagged edge is tested.
    pub memberships: Vec<Membership>,
}

/// The flag of a reference that the export tests itself.
pub const TEST_ON_CLIENT: i64 = 2;

/// One integer column of a table, whose values in the selected rows the export holds so that
/// references to it are tested on the client.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyColumn {
    pub table: usize,
    pub column: String,
}

/// How the export learns whether a reference names one of the organisation's rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Membership {
    /// The server joins the referenced table's selected keys.
    Server,
    /// The client tests every reference against the key column's values. Cheaper than the join,
    /// whose hash of every selected key spills to disk for large organisations.
    Client(KeyColumn),
}

impl<'a> Selection<'a> {
    pub fn new(plan: &'a Plan, dialect: &'a dyn Dialect, orgs: &[Value]) -> Self {
        let n = plan.tables.len();
        let keys: Vec<Option<Vec<String>>> = (0..n)
            .map(|t| {
                let p = &plan.tables[t];
                let mut cols = if p.role.is_exported() && p.role != Role::Dependent { p.key_columns() } else { Vec::new() };
                if t == plan.root && !cols.contains(&plan.root_key) {
                    cols.insert(0, plan.root_key.clone());
                }
                (!cols.is_empty()).then_some(cols)
            })
            .collect();
        let mut sel = Selection {
            plan,
            dialect,
            ctes: vec![None; n],
            cte_order: Vec::new(),
            reading: RefCell::default(),
            keys,
            params: orgs.to_vec(),
        };
        for t in sel.definition_order() {
            if sel.keys[t].is_some() {
                let definition = sel.cte(t);
                let reads = sel.reading.take();
                sel.ctes[t] = Some((definition, reads));
                sel.cte_order.push(t);
            }
        }
        sel
    }

    /// `WITH RECURSIVE` and the expressions the SQL written since the last call reads, each after
    /// those it reads; then `body`.
    fn with(&self, body: String) -> String {
        let mut needed = self.reading.take();
        let mut todo: Vec<usize> = needed.iter().copied().collect();
        while let Some(t) = todo.pop() {
            for &d in self.ctes[t].as_ref().map(|(_, reads)| reads).into_iter().flatten() {
                if needed.insert(d) {
                    todo.push(d);
                }
            }
        }
        let parts: Vec<&str> = self
            .cte_order
            .iter()
            .filter(|t| needed.contains(t))
            .filter_map(|&t| self.ctes[t].as_ref().map(|(definition, _)| definition.as_str()))
            .collect();
        if parts.is_empty() {
            body
        } else {
            format!("WITH RECURSIVE {}\n{body}", parts.join(",\n"))
        }
    }

    /// Owned tables by depth, then shared tables after every table that points at them.
    fn definition_order(&self) -> Vec<usize> {
        let plan = self.plan;
        let mut owned: Vec<usize> = (0..plan.tables.len()).filter(|&t| plan.tables[t].role.is_owned()).collect();
        owned.sort_by_key(|&t| (plan.tables[t].depth, t));
        let mut shared: Vec<usize> =
            (0..plan.tables.len()).filter(|&t| matches!(plan.tables[t].role, Role::Referenced | Role::Keep)).collect();
        let mut order = owned;
        while !shared.is_empty() {
            let referrers_placed = |t: usize, all: bool| {
                let mut from = plan.edges.iter().filter(|e| e.to == t && e.from != t && plan.tables[e.from].role.is_exported());
                let placed =
                    |e: &crate::plan::Edge| !matches!(plan.tables[e.from].role, Role::Referenced | Role::Keep) || order.contains(&e.from);
                if all {
                    from.all(placed)
                } else {
                    from.any(placed)
                }
            };
            // Every referrer placed; in a cycle of shared tables, one that organisation rows refer to.
            let next = shared
                .iter()
                .position(|&t| referrers_placed(t, true))
                .or_else(|| shared.iter().position(|&t| referrers_placed(t, false)))
                .unwrap_or(0);
            order.push(shared.remove(next));
        }
        order
    }

    fn q(&self, ident: &str) -> String {
        self.dialect.quote_ident(ident)
    }

    /// The name of table `t`'s expression, noted as read.
    fn cte_name(&self, t: usize) -> String {
        self.reading.borrow_mut().insert(t);
        format!("m{t}")
    }

    /// A column list for a `SELECT`.
    fn cols(&self, alias: &str, cols: &[String]) -> String {
        cols.iter().map(|c| format!("{alias}.{}", self.q(c))).collect::<Vec<_>>().join(", ")
    }

    /// A column or row value for the left of `IN`.
    fn tuple(&self, alias: &str, cols: &[String]) -> String {
        wrap(cols.iter().map(|c| format!("{alias}.{}", self.q(c))).collect())
    }

    /// The expression columns of `t` that hold `cols`.
    fn key_cols(&self, t: usize, cols: &[String]) -> String {
        let keys = self.keys[t].as_ref().expect("table has an expression");
        cols.iter().map(|c| format!("k{}", keys.iter().position(|k| k == c).expect("key column"))).collect::<Vec<_>>().join(", ")
    }

    /// `alias.cols IN (SELECT … FROM m_to)` for one edge, for the rows that hold it.
    fn in_cte(&self, alias: &str, edge: usize) -> String {
        let e = &self.plan.edges[edge];
        let test = format!(
            "{} IN (SELECT {} FROM {})",
            self.tuple(alias, &e.from_columns),
            self.key_cols(e.to, &e.to_columns),
            self.cte_name(e.to)
        );
        match self.condition(alias, edge) {
            Some(cond) => format!("({cond} AND {test})"),
            None => test,
        }
    }

    /// Whether a row (under `alias`) holds a polymorphic reference; None for ordinary ones.
    fn condition(&self, alias: &str, edge: usize) -> Option<String> {
        let cond = self.plan.edges[edge].condition.as_ref()?;
        let column = format!("{alias}.{}", self.q(&cond.column));
        Some(match &cond.test {
            ConditionTest::Equals(v) => format!("{column} = {}", v.sql()),
            ConditionTest::Refers { via, values } => {
                let via = &self.plan.edges[*via];
                let tests: Vec<String> = values.iter().map(|(c, v)| format!("k.{} = {}", self.q(c), v.sql())).collect();
                format!(
                    "{column} IN (SELECT k.{} FROM {} k WHERE {})",
                    self.q(&via.to_columns[0]),
                    self.dialect.own_rows(self.plan.table(via.to)),
                    tests.join(" AND ")
                )
            }
        })
    }

    fn base_predicate(&self, t: usize, alias: &str) -> String {
        let plan = self.plan;
        let p = &plan.tables[t];
        match p.role {
            Role::Root => {
                let marks: Vec<String> = (1..=self.params.len()).map(|i| self.dialect.placeholder(i)).collect();
                format!("{alias}.{} IN ({})", self.q(&plan.root_key), marks.join(", "))
            }
            Role::Owned => or(p.ownership.iter().map(|&e| self.in_cte(alias, e)).collect()),
            Role::Referenced | Role::Keep => {
                // One semi-join per referenced key, against the union of the referencing rows'
                // values: `IN` terms joined by OR would each become a subquery the server may scan
                // once per row of this table.
                let mut by_key: Vec<(&Vec<String>, Vec<String>)> = Vec::new();
                for (i, e) in plan.edges.iter().enumerate().filter(|(_, e)| e.to == t && e.from != t) {
                    let from_role = plan.tables[e.from].role;
                    let shared = matches!(from_role, Role::Referenced | Role::Keep);
                    if !from_role.is_exported() || from_role == Role::Dependent || (shared && self.ctes[e.from].is_none()) {
                        continue;
                    }
                    let from_alias = format!("s{}", e.from);
                    let mut wher = self.predicate(e.from, &from_alias);
                    if let Some(cond) = self.condition(&from_alias, i) {
                        wher = format!("{cond} AND {wher}");
                    }
                    let select = format!(
                        "SELECT {} FROM {} {from_alias} WHERE {wher}",
                        self.cols(&from_alias, &e.from_columns),
                        self.dialect.own_rows(plan.table(e.from)),
                    );
                    match by_key.iter_mut().find(|(key, _)| **key == e.to_columns) {
                        Some((_, selects)) => selects.push(select),
                        None => by_key.push((&e.to_columns, vec![select])),
                    }
                }
                or(by_key
                    .into_iter()
                    .map(|(key, selects)| format!("{} IN ({})", self.tuple(alias, key), selects.join(" UNION ")))
                    .collect())
            }
            Role::Dependent => or(plan
                .edges_from(t)
                .filter(|(_, e)| plan.tables[e.to].role == Role::Referenced)
                .map(|(i, _)| self.in_cte(alias, i))
                .collect()),
            Role::Excluded | Role::Unrelated => "1 = 0".into(),
        }
    }

    /// The self-reference along which rows of owned table `t` that name no owner inherit their
    /// parent row's: none where an ownership column is NOT NULL, as every row names its owner
    /// then, and the selection needs no recursion.
    fn inherited(&self, t: usize) -> Option<usize> {
        let p = &self.plan.tables[t];
        let orphans = p.ownership.iter().all(|&o| self.plan.edges[o].nullable);
        (p.role == Role::Owned && orphans).then_some(p.self_edge).flatten()
    }

    /// Whether a row of `t` (under `alias`) is selected.
    pub fn predicate(&self, t: usize, alias: &str) -> String {
        let p = &self.plan.tables[t];
        let via_expression = self.inherited(t).is_some() || matches!(p.role, Role::Referenced | Role::Keep);
        match (&self.keys[t], via_expression) {
            (Some(_), true) => {
                let first = &p.keysets[0];
                format!("{} IN (SELECT {} FROM {})", self.tuple(alias, first), self.key_cols(t, first), self.cte_name(t))
            }
            _ => self.base_predicate(t, alias),
        }
    }

    fn cte(&self, t: usize) -> String {
        let table = self.plan.table(t);
        let keys = self.keys[t].as_ref().expect("table has an expression");
        let names: Vec<String> = (0..keys.len()).map(|i| format!("k{i}")).collect();
        let select = |alias: &str| -> String { keys.iter().map(|k| format!("{alias}.{}", self.q(k))).collect::<Vec<_>>().join(", ") };
        let from = self.dialect.own_rows(table);
        let mut sql = format!(
            "{}({}) AS (SELECT {} FROM {from} x WHERE {}",
            self.cte_name(t),
            names.join(", "),
            select("x"),
            self.base_predicate(t, "x")
        );
        if let Some(se) = self.inherited(t) {
            // Rows without a path of their own inherit ownership from their parent row.
            let e = &self.plan.edges[se];
            let join: Vec<String> = e
                .from_columns
                .iter()
                .zip(&e.to_columns)
                .map(|(f, to)| format!("x.{} = p.k{}", self.q(f), keys.iter().position(|k| k == to).expect("key column")))
                .collect();
            let orphan: Vec<String> = self.plan.tables[t]
                .ownership
                .iter()
                .map(|&o| format!("x.{} IS NULL", self.q(&self.plan.edges[o].from_columns[0])))
                .collect();
            let mut cond = join;
            cond.extend(orphan);
            sql.push_str(&format!(" UNION SELECT {} FROM {from} x JOIN {} p ON {}", select("x"), self.cte_name(t), cond.join(" AND ")));
        }
        sql.push(')');
        sql
    }

    /// The query for `columns` of table `t`, in key order, without flags: what verify compares.
    pub fn rows_query(&self, t: usize, columns: &[String]) -> TableQuery {
        self.export_query(t, columns, &[])
    }

    /// The references of table `t` that may leave the organisation, and the polymorphic ones:
    /// their flag also tells whether the row holds them.
    pub fn flagged(&self, t: usize) -> Vec<usize> {
        self.plan
            .edges_from(t)
            .map(|(i, _)| i)
            .filter(|&i| self.plan.cross_tenant.contains(&i) || self.plan.edges[i].condition.is_some())
            .collect()
    }

    /// The values of `key.column` in the selected rows of `key.table`, in no particular order.
    pub fn key_query(&self, key: &KeyColumn) -> TableQuery {
        let table = self.plan.table(key.table);
        let kind = table.column(&key.column).map_or(ValueKind::Any, |c| c.kind);
        self.reading.take();
        let sql = self.with(format!(
            "SELECT x.{} FROM {} x WHERE {}",
            self.q(&key.column),
            self.dialect.own_rows(table),
            self.predicate(key.table, "x")
        ));
        TableQuery { sql, params: self.params.clone(), kinds: vec![kind], flagged: Vec::new(), memberships: Vec::new() }
    }

    /// The key column that edge `e`'s references can be tested against on the client: a single
    /// integer column of a table with an expression.
    pub fn client_key(&self, e: usize) -> Option<KeyColumn> {
        let edge = &self.plan.edges[e];
        let integer = |t: usize, c: &String| self.plan.table(t).column(c).is_some_and(|c| c.kind == ValueKind::Integer);
        match (edge.from_columns.as_slice(), edge.to_columns.as_slice()) {
            ([from], [to]) if self.ctes[edge.to].is_some() && integer(edge.from, from) && integer(edge.to, to) => {
                Some(KeyColumn { table: edge.to, column: to.clone() })
            }
            _ => None,
        }
    }

    /// The query for `columns` of table `t`, flagging the references of [`Self::flagged`], each
    /// tested as `memberships` says.
    pub fn export_query(&self, t: usize, columns: &[String], memberships: &[Membership]) -> TableQuery {
        self.reading.take();
        let table = self.plan.table(t);
        let mut exprs: Vec<String> = columns.iter().map(|c| format!("x.{}", self.q(c))).collect();
        let mut kinds: Vec<ValueKind> = columns.iter().map(|c| table.column(c).map(|c| c.kind).unwrap_or(ValueKind::Any)).collect();
        let flagged = if memberships.is_empty() { Vec::new() } else { self.flagged(t) };
        // A flag tested on the server is an outer join rather than `IN (subquery)` in the select
        // list: a planner without statistics (a freshly loaded source, a standby) may rescan the
        // subquery per row. `DISTINCT` (a key set is unique anyway) makes the key set look small,
        // so the planner hashes it rather than the table's rows: PostgreSQL 15 piles the NULL
        // references of the rows it keeps for an outer join into one bucket and splits batches
        // without end.
        let mut joins = String::new();
        for (i, (&e, membership)) in flagged.iter().zip(memberships).enumerate() {
            let edge = &self.plan.edges[e];
            let mut unset: Vec<String> = edge.from_columns.iter().map(|c| format!("x.{} IS NULL", self.q(c))).collect();
            if let Some(cond) = self.condition("x", e) {
                unset.push(format!("NOT COALESCE({cond}, 1 = 0)"));
            }
            let alias = format!("f{i}");
            let found = match membership {
                Membership::Client(_) => format!("ELSE {TEST_ON_CLIENT}"),
                Membership::Server if self.ctes[edge.to].is_some() => {
                    let keys = self.key_cols(edge.to, &edge.to_columns);
                    let on: Vec<String> =
                        edge.from_columns.iter().zip(keys.split(", ")).map(|(c, k)| format!("x.{} = {alias}.{k}", self.q(c))).collect();
                    joins.push_str(&format!(
                        " LEFT JOIN (SELECT DISTINCT {keys} FROM {}) {alias} ON {}",
                        self.cte_name(edge.to),
                        on.join(" AND ")
                    ));
                    let first_key = keys.split(", ").next().unwrap_or("k0").to_string();
                    format!("WHEN {alias}.{first_key} IS NOT NULL THEN 1 ELSE 0")
                }
                // Not the organisation's table (excluded, unrelated): only whether the row holds it.
                Membership::Server => "ELSE 1".to_string(),
            };
            exprs.push(format!("CASE WHEN {} THEN NULL {found} END", unset.join(" OR ")));
            kinds.push(ValueKind::Integer);
        }
        let order = if table.primary_key.is_empty() {
            String::new()
        } else {
            let pk: Vec<String> = table.primary_key.iter().map(|c| format!("x.{}", self.q(c))).collect();
            format!(" ORDER BY {}", pk.join(", "))
        };
        let predicate = self.predicate(t, "x");
        let sql = self.with(format!("SELECT {} FROM {} x{joins} WHERE {predicate}{order}", exprs.join(", "), self.dialect.own_rows(table)));
        let memberships = memberships[..flagged.len()].to_vec();
        TableQuery { sql, params: self.params.clone(), kinds, flagged, memberships }
    }
}

fn wrap(list: Vec<String>) -> String {
    if list.len() == 1 {
        list.into_iter().next().unwrap_or_default()
    } else {
        format!("({})", list.join(", "))
    }
}

fn or(terms: Vec<String>) -> String {
    match terms.len() {
        0 => "1 = 0".into(),
        1 => terms.into_iter().next().unwrap_or_default(),
        _ => format!("({})", terms.join(" OR ")),
    }
}
