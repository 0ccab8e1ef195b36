//! Property-based round trips over random schemas: a root table and a random DAG of owned tables
//! (foreign keys to the root or to earlier tables, random nullability, optional self-references,
//! integer / UUID text / composite primary keys, an optional shared `people` table matched by
//! e-mail), random data for 2–3 organisations in the source and 1–2 in the target. A random
//! organisation is exported, imported and verified (CLI and library); it must equal its source
//! field by field, and nothing else on the target may change.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use proptest::prelude::*;
use rusqlite::types::Value as V;

use crate::util::*;

#[derive(Debug, Clone, Copy)]
enum RootGen {
    Int,
    /// UUID text in a `TEXT` column.
    Text,
    /// UUID text in a `UUID` column.
    Uuid,
}

#[derive(Debug, Clone, Copy)]
enum KeyGen {
    Int,
    Uuid {
        declared_uuid: bool,
        upper: bool,
    },
    /// The owner's key plus a local counter.
    Composite,
}

#[derive(Debug, Clone)]
struct TableGen {
    key: KeyGen,
    /// Root (0) or an earlier table, modulo the number of candidates.
    owner: u8,
    owner_nullable: bool,
    /// More references to the root or earlier tables: (target, nullable, by the target's unique
    /// `tag` instead of its key where it has one).
    extras: Vec<(u8, bool, bool)>,
    self_ref: bool,
    /// A nullable reference to the shared `people` table.
    person: bool,
    unique_tag: bool,
    without_rowid: bool,
}

#[derive(Debug, Clone)]
struct Case {
    root: RootGen,
    tables: Vec<TableGen>,
    people: bool,
    src_orgs: usize,
    tgt_orgs: usize,
    pick: usize,
    seed: u64,
    /// Percentage of nullable, non-owning references that point at another organisation's row
    /// (to be cut on export).
    cross: u64,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    let root = prop_oneof![Just(RootGen::Int), Just(RootGen::Text), Just(RootGen::Uuid)];
    let key = prop_oneof![
        2 => Just(KeyGen::Int),
        2 => (any::<bool>(), any::<bool>()).prop_map(|(declared_uuid, upper)| KeyGen::Uuid { declared_uuid, upper }),
        1 => Just(KeyGen::Composite),
    ];
    let extra = (any::<u8>(), any::<bool>(), any::<bool>());
    let table = (
        key,
        any::<u8>(),
        any::<bool>(),
        proptest::collection::vec(extra, 0..=2),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(key, owner, owner_nullable, extras, self_ref, person, unique_tag, without_rowid)| TableGen {
            key,
            owner,
            owner_nullable,
            extras,
            self_ref,
            person,
            unique_tag,
            without_rowid,
        });
    let cross = prop_oneof![Just(0u64), Just(20u64)];
    (root, proptest::collection::vec(table, 1..=5), any::<bool>(), 2..=3usize, 1..=2usize, 0..3usize, any::<u64>(), cross).prop_map(
        |(root, tables, people, src_orgs, tgt_orgs, pick, seed, cross)| Case {
            root,
            tables,
            people,
            src_orgs,
            tgt_orgs,
            pick: pick % src_orgs,
            seed,
            cross,
        },
    )
}

/// SplitMix64: the data of a case comes from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn uuid(&mut self, upper: bool) -> String {
        let (a, b) = (self.next(), self.next());
        let h = format!("{a:016x}{b:016x}");
        let s = format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32]);
        if upper {
            s.to_uppercase()
        } else {
            s
        }
    }
    fn value(&mut self) -> V {
        const TEXTS: &[&str] = &["", "plain", "Zoë 🐢", "مرحبا", "e\u{301}", "NULL", "0", "tab\tnl\n"];
        match self.below(9) {
            0 => V::Null,
            1 => V::Integer(i64::MIN),
            2 => V::Integer(i64::MAX),
            3 => V::Integer(self.next() as i64),
            4 => V::Real(f64::from_bits(self.next() & 0x7fef_ffff_ffff_ffff | (self.next() & 1) << 63)),
            5 => V::Real(-0.0),
            6 => V::Text(TEXTS[self.below(TEXTS.len())].to_string()),
            7 => V::Blob((0..self.below(20)).map(|_| self.next() as u8).collect()),
            _ => V::Blob(Vec::new()),
        }
    }
}

/// One foreign key of a generated table.
#[derive(Debug, Clone)]
struct Fk {
    cols: Vec<String>,
    /// 0 = root, i = table `t{i}`, `PEOPLE` = people.
    to: usize,
    to_cols: Vec<String>,
    to_types: Vec<String>,
    nullable: bool,
}

impl Fk {
    fn by_tag(&self) -> bool {
        self.to_cols == ["tag"]
    }
}

const PEOPLE: usize = usize::MAX;

#[derive(Debug, Clone)]
struct TableDef {
    name: String,
    key_cols: Vec<String>,
    key_types: Vec<String>,
    key: Option<KeyGen>,
    owner: Fk,
    extras: Vec<Fk>,
    self_ref: Option<Fk>,
    person: Option<Fk>,
    /// Distance to the root by the shortest reference path (orgport's depth).
    depth: usize,
    unique_tag: bool,
    without_rowid: bool,
}

impl TableDef {
    fn fks(&self) -> Vec<&Fk> {
        std::iter::once(&self.owner).chain(&self.extras).chain(&self.self_ref).chain(&self.person).collect()
    }
}

struct Schema {
    root_type: &'static str,
    /// Index 0 is the root.
    tables: Vec<TableDef>,
    people: bool,
}

fn build_schema(case: &Case) -> Schema {
    let root_type = match case.root {
        RootGen::Int => "INTEGER",
        RootGen::Text => "TEXT",
        RootGen::Uuid => "UUID",
    };
    let root = TableDef {
        name: "org".into(),
        key_cols: vec!["id".into()],
        key_types: vec![root_type.into()],
        key: None,
        owner: Fk { cols: vec![], to: 0, to_cols: vec![], to_types: vec![], nullable: false },
        extras: vec![],
        self_ref: None,
        person: None,
        depth: 0,
        unique_tag: false,
        without_rowid: false,
    };
    let mut tables = vec![root];
    let people = case.people && case.tables.iter().any(|t| t.person);
    for (i, g) in case.tables.iter().enumerate() {
        let i = i + 1;
        let owner = g.owner as usize % i;
        let owner_def = &tables[owner];
        let fk_to = |prefix: &str, to: &TableDef, to_index: usize, nullable: bool| Fk {
            cols: (0..to.key_cols.len()).map(|j| format!("{prefix}_{j}")).collect(),
            to: to_index,
            to_cols: to.key_cols.clone(),
            to_types: to.key_types.clone(),
            nullable,
        };
        let composite = matches!(g.key, KeyGen::Composite);
        let owner_fk = fk_to("o", owner_def, owner, g.owner_nullable && !composite);
        let (key_cols, key_types) = match g.key {
            KeyGen::Int => (vec!["id".to_string()], vec!["INTEGER".to_string()]),
            KeyGen::Uuid { declared_uuid, .. } => (vec!["id".to_string()], vec![if declared_uuid { "UUID" } else { "TEXT" }.to_string()]),
            KeyGen::Composite => {
                let mut cols = owner_fk.cols.clone();
                cols.push("n".into());
                let mut types = owner_def.key_types.clone();
                types.push("INTEGER".into());
                (cols, types)
            }
        };
        let extras: Vec<Fk> = g
            .extras
            .iter()
            .enumerate()
            .map(|(x, &(to, nullable, by_tag))| {
                let to = to as usize % i;
                if by_tag && tables[to].unique_tag {
                    Fk { cols: vec![format!("e{x}_tag")], to, to_cols: vec!["tag".into()], to_types: vec!["TEXT".into()], nullable }
                } else {
                    fk_to(&format!("e{x}"), &tables[to], to, nullable)
                }
            })
            .collect();
        let mut def = TableDef {
            name: format!("t{i}"),
            key_cols,
            key_types,
            key: Some(g.key),
            owner: owner_fk,
            extras,
            self_ref: None,
            person: (people && g.person).then(|| Fk {
                cols: vec!["person".into()],
                to: PEOPLE,
                to_cols: vec!["id".into()],
                to_types: vec!["INTEGER".into()],
                nullable: true,
            }),
            depth: 0,
            unique_tag: g.unique_tag,
            without_rowid: g.without_rowid,
        };
        if g.self_ref {
            def.self_ref = Some(Fk {
                cols: (0..def.key_cols.len()).map(|j| format!("s_{j}")).collect(),
                to: i,
                to_cols: def.key_cols.clone(),
                to_types: def.key_types.clone(),
                nullable: true,
            });
        }
        def.depth = 1 + def.fks().iter().filter(|f| f.to != PEOPLE && f.to != i).map(|f| tables[f.to].depth).min().unwrap_or(0);
        tables.push(def);
    }
    Schema { root_type, tables, people }
}

impl Schema {
    fn ddl(&self) -> String {
        let mut sql = format!("CREATE TABLE org (id {} PRIMARY KEY NOT NULL, name TEXT NOT NULL, val);\n", self.root_type);
        if self.people {
            sql.push_str("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT);\n");
        }
        for (i, t) in self.tables.iter().enumerate().skip(1) {
            let mut cols: Vec<String> = Vec::new();
            let mut seen: Vec<String> = Vec::new();
            let composite = matches!(t.key, Some(KeyGen::Composite));
            if !composite {
                let ty = &t.key_types[0];
                cols.push(format!("id {ty} PRIMARY KEY{}", if ty == "INTEGER" { "" } else { " NOT NULL" }));
                seen.push("id".into());
            }
            let mut constraints = Vec::new();
            for fk in t.fks() {
                let to_name = if fk.to == PEOPLE { "people".to_string() } else { self.tables[fk.to].name.clone() };
                for (c, ty) in fk.cols.iter().zip(&fk.to_types) {
                    if !seen.contains(c) {
                        cols.push(format!("{c} {ty}{}", if fk.nullable { "" } else { " NOT NULL" }));
                        seen.push(c.clone());
                    }
                }
                constraints.push(format!("FOREIGN KEY ({}) REFERENCES {to_name}({})", fk.cols.join(", "), fk.to_cols.join(", ")));
            }
            if composite {
                cols.push("n INTEGER NOT NULL".into());
                constraints.insert(0, format!("PRIMARY KEY ({})", t.key_cols.join(", ")));
            }
            cols.push(format!("tag TEXT NOT NULL{}", if t.unique_tag { " UNIQUE" } else { "" }));
            cols.push("val".into());
            cols.extend(constraints);
            let rowid = if t.without_rowid { " WITHOUT ROWID" } else { "" };
            sql.push_str(&format!("CREATE TABLE t{i} (\n  {}\n){rowid};\n", cols.join(",\n  ")));
        }
        sql
    }

    /// The keys of the organisation's rows of table `i` (`?1` = root key), following owners.
    fn keys_sql(&self, i: usize) -> String {
        if i == 0 {
            return "SELECT id FROM org WHERE id = ?1".into();
        }
        let t = &self.tables[i];
        format!("SELECT {} FROM {} WHERE ({}) IN ({})", t.key_cols.join(", "), t.name, t.owner.cols.join(", "), self.keys_sql(t.owner.to))
    }

    fn rows_sql(&self, i: usize) -> String {
        let t = &self.tables[i];
        format!("SELECT * FROM {} WHERE ({}) IN ({})", t.name, t.owner.cols.join(", "), self.keys_sql(t.owner.to))
    }

    fn specs(&self) -> Vec<TableSpec> {
        let mut out = Vec::new();
        let users: Vec<String> = (1..self.tables.len())
            .filter(|&i| self.tables[i].person.is_some())
            .map(|i| format!("SELECT person FROM ({})", self.rows_sql(i)))
            .collect();
        if !users.is_empty() {
            out.push(
                spec("people", &format!("SELECT * FROM people WHERE id IN ({})", users.join(" UNION ")))
                    .fresh(&["id"])
                    .pair_by(&["email"])
                    .shared(),
            );
        }
        out.push(spec("org", "SELECT * FROM org WHERE id = ?1").fresh(&["id"]));
        for i in 1..self.tables.len() {
            let t = &self.tables[i];
            let mut s = spec(&t.name, &self.rows_sql(i)).pair_by(&["tag"]);
            if !matches!(t.key, Some(KeyGen::Composite)) {
                s = s.fresh(&["id"]);
            }
            for fk in t.fks() {
                let to = if fk.to == PEOPLE { "people".to_string() } else { self.tables[fk.to].name.clone() };
                s.refs.push(Ref { cols: fk.cols.clone(), table: to, to: fk.to_cols.clone() });
            }
            out.push(s);
        }
        out
    }
}

/// A generated row: its key and its tag.
type RowId = (Vec<V>, V);
/// A row's values by column.
type Columns = Vec<(String, V)>;

/// Fills a database with `orgs` organisations; returns their root keys.
fn fill(path: &Path, schema: &Schema, case: &Case, rng: &mut Rng, prefix: &str, orgs: usize) -> Vec<Cell> {
    let mut conn = rusqlite::Connection::open(path).expect("creating a database");
    conn.execute_batch(&schema.ddl()).unwrap_or_else(|e| panic!("{e}\n{}", schema.ddl()));
    conn.execute_batch("PRAGMA foreign_keys = ON;").unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute_batch("PRAGMA defer_foreign_keys = ON;").unwrap();
    let people_ids: Vec<i64> = if schema.people {
        // Source people p0–p5, target people p3–p8: some e-mails on both sides, other ids.
        let first = if prefix == "s" { 0 } else { 3 };
        let mut ids: Vec<i64> = (1..=6).collect();
        for k in (1..ids.len()).rev() {
            ids.swap(k, rng.below(k + 1));
        }
        for (k, id) in ids.iter().enumerate() {
            tx.execute(
                "INSERT INTO people VALUES (?1, ?2, ?3)",
                rusqlite::params![id, format!("p{}@example.test", first + k), format!("{prefix} person {k}")],
            )
            .unwrap();
        }
        ids
    } else {
        Vec::new()
    };
    let mut tag = 0;
    let mut int_keys: HashMap<usize, i64> = HashMap::new();
    let mut root_keys = Vec::new();
    // Per table, per organisation: each row's key and tag.
    let mut rows_of: Vec<Vec<Vec<RowId>>> = vec![Vec::new(); schema.tables.len()];
    // The value a reference takes to point at a row.
    let target_of = |fk: &Fk, row: &(Vec<V>, V)| -> Vec<V> {
        if fk.by_tag() {
            vec![row.1.clone()]
        } else {
            row.0.clone()
        }
    };
    for o in 0..orgs {
        let key = match case.root {
            RootGen::Int => V::Integer(o as i64 + 1),
            RootGen::Text | RootGen::Uuid => V::Text(rng.uuid(false)),
        };
        tx.execute("INSERT INTO org VALUES (?1, ?2, ?3)", rusqlite::params![key, format!("{prefix} org {o}"), rng.value()]).unwrap();
        root_keys.push(match &key {
            V::Integer(i) => Cell::Int(*i),
            V::Text(s) => Cell::Text(s.clone()),
            _ => unreachable!(),
        });
        rows_of[0].push(vec![(vec![key], V::Null)]);
        for i in 1..schema.tables.len() {
            let t = &schema.tables[i];
            let ownership: Vec<bool> =
                t.fks().iter().map(|f| f.to != PEOPLE && f.to != i && schema.tables[f.to].depth + 1 == t.depth).collect();
            let mut made: Vec<(Vec<V>, V, Columns)> = Vec::new();
            'rows: for _ in 0..rng.below(5) {
                let mut cols: Vec<(String, V)> = Vec::new();
                let set = |cols: &mut Vec<(String, V)>, c: &str, v: V| {
                    if !cols.iter().any(|(n, _)| n == c) {
                        cols.push((c.to_string(), v));
                    }
                };
                for (k, fk) in t.fks().into_iter().enumerate() {
                    if fk.to == PEOPLE {
                        let v = if rng.chance(50) { V::Null } else { V::Integer(people_ids[rng.below(people_ids.len())]) };
                        set(&mut cols, "person", v);
                        continue;
                    }
                    if fk.to == i {
                        continue; // self-references are set below
                    }
                    let pool = &rows_of[fk.to][o];
                    let is_owner = k == 0;
                    // A row must keep a path to its organisation along the plan's ownership
                    // references (orgport drops rows whose only path is a longer one: see
                    // shapes::a_row_owned_only_through_a_longer_path_is_exported).
                    let required = is_owner || ownership[k] || !fk.nullable;
                    let others: Vec<&(Vec<V>, V)> = rows_of[fk.to][..o].iter().flatten().collect();
                    let value: Vec<V> = if !required && rng.chance(30) {
                        vec![V::Null; fk.cols.len()]
                    } else if !required && !others.is_empty() && rng.chance(case.cross) {
                        // Another organisation's row: cut on export.
                        target_of(fk, others[rng.below(others.len())])
                    } else if pool.is_empty() {
                        if required {
                            continue 'rows;
                        }
                        vec![V::Null; fk.cols.len()]
                    } else {
                        target_of(fk, &pool[rng.below(pool.len())])
                    };
                    for (c, v) in fk.cols.iter().zip(value) {
                        set(&mut cols, c, v);
                    }
                }
                let key: Vec<V> = match t.key {
                    Some(KeyGen::Int) => {
                        let n = int_keys.entry(i).or_insert(0);
                        *n += 1;
                        vec![V::Integer(*n)]
                    }
                    Some(KeyGen::Uuid { upper, .. }) => vec![V::Text(rng.uuid(upper))],
                    _ => {
                        let n = int_keys.entry(i).or_insert(0);
                        *n += 1;
                        let mut k: Vec<V> = t.owner.cols.iter().map(|c| cols.iter().find(|(n, _)| n == c).unwrap().1.clone()).collect();
                        k.push(V::Integer(*n));
                        k
                    }
                };
                for (c, v) in t.key_cols.iter().zip(&key) {
                    set(&mut cols, c, v.clone());
                }
                tag += 1;
                let tag_value = V::Text(format!("{prefix}-{}-{tag}", t.name));
                set(&mut cols, "tag", tag_value.clone());
                set(&mut cols, "val", rng.value());
                made.push((key, tag_value, cols));
            }
            // Self-references: a forest in a random order, so a parent may have a greater key;
            // now and then a row of another organisation.
            if let Some(fk) = &t.self_ref {
                let mut order: Vec<usize> = (0..made.len()).collect();
                for k in (1..order.len()).rev() {
                    order.swap(k, rng.below(k + 1));
                }
                let others: Vec<Vec<V>> = rows_of[i][..o].iter().flatten().map(|r| r.0.clone()).collect();
                for (pos, &r) in order.iter().enumerate() {
                    let parent: Vec<V> = if !others.is_empty() && rng.chance(case.cross) {
                        others[rng.below(others.len())].clone()
                    } else if pos == 0 || rng.chance(30) {
                        vec![V::Null; fk.cols.len()]
                    } else {
                        made[order[rng.below(pos)]].0.clone()
                    };
                    for (c, v) in fk.cols.iter().zip(parent) {
                        made[r].2.push((c.clone(), v));
                    }
                }
            }
            for (_, _, cols) in &made {
                let names: Vec<&str> = cols.iter().map(|(c, _)| c.as_str()).collect();
                let sql = format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    t.name,
                    names.join(", "),
                    (1..=names.len()).map(|k| format!("?{k}")).collect::<Vec<_>>().join(", ")
                );
                tx.execute(&sql, rusqlite::params_from_iter(cols.iter().map(|(_, v)| v))).unwrap_or_else(|e| panic!("{e}: {sql} {cols:?}"));
            }
            rows_of[i].push(made.into_iter().map(|(k, tag, _)| (k, tag)).collect());
        }
    }
    tx.commit().expect("test setup: consistent foreign keys");
    root_keys
}

/// Runs one case; returns how many references were cut.
fn check_case(case: &Case) -> Result<usize, TestCaseError> {
    let schema = build_schema(case);
    let w = Work::new();
    let mut rng = Rng(case.seed);
    let src = w.path("src.db");
    let tgt = w.path("tgt.db");
    let src_orgs = fill(&src, &schema, case, &mut rng, "s", case.src_orgs);
    fill(&tgt, &schema, case, &mut rng, "t", case.tgt_orgs);
    let org = &src_orgs[case.pick];
    let ddl = schema.ddl();

    let archive = w.path("org.orgport");
    let out = w.export(&src, None, Some("org"), &[&org.key_text()], &[], &archive);
    prop_assert_eq!(out.code, 0, "export failed:\n{}\nschema:\n{}", out.stderr, ddl);
    let before = snapshot(&tgt);
    let out = w.import(&tgt, None, &archive, &["--json"]);
    prop_assert_eq!(out.code, 0, "import failed:\n{}\nschema:\n{}", out.stderr, ddl);
    let report = out.json();
    let new = new_org(&report);
    let v = w.verify(&tgt, None, &archive, &[&new]);
    prop_assert_eq!(v.code, 0, "verify failed:\n{}\n{}\nschema:\n{}", v.stdout, v.stderr, ddl);
    let lib = library_verify(&tgt, None, Some("org"), &archive, std::slice::from_ref(&new));
    prop_assert!(lib.is_equal(), "library verify: {:?}\nschema:\n{}", lib.differences, ddl);

    let new_cell = match org {
        Cell::Int(_) => Cell::Int(new.parse().unwrap()),
        _ => Cell::Text(new.clone()),
    };
    let paired = compare_org(&open(&src), org, &open(&tgt), &new_cell, &schema.specs())
        .map_err(|e| TestCaseError::fail(format!("{e}\nschema:\n{ddl}")))?;
    // Every reference to another organisation's row was cut, and the manifest says so.
    let mut cut_expected: BTreeMap<String, u64> = BTreeMap::new();
    for c in &paired.cuts {
        *cut_expected.entry(c.clone()).or_default() += 1;
    }
    let mut cut_reported: BTreeMap<String, u64> = BTreeMap::new();
    for c in w.manifest(&archive)["cut"].as_array().unwrap() {
        let cols: Vec<&str> = c["columns"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
        prop_assert_eq!(&c["action"], "cut");
        *cut_reported.entry(format!("{}.{}", c["table"].as_str().unwrap(), cols.join(","))).or_default() += c["rows"].as_u64().unwrap();
    }
    prop_assert_eq!(&cut_reported, &cut_expected, "cut references\nschema:\n{}", ddl);
    if case.cross == 0 {
        prop_assert!(paired.cuts.is_empty());
    }
    let added =
        added_rows(&before, &snapshot(&tgt)).map_err(|e| TestCaseError::fail(format!("other rows changed:\n{e}\nschema:\n{ddl}")))?;
    for (table, pairs) in &paired.pairs {
        if table != "people" {
            prop_assert_eq!(
                report["tables"][table.as_str()]["created"].as_u64().unwrap_or(0) as usize,
                pairs.len(),
                "`{}`: rows created",
                table
            );
        }
    }
    let created = report["tables"]["people"]["created"].as_u64().unwrap_or(0) as usize;
    for (table, rows) in &added {
        if table == "people" {
            prop_assert_eq!(rows.len(), created);
            continue;
        }
        let mut expected = paired.target_rows(table);
        expected.sort();
        prop_assert!(
            rows == &expected,
            "`{}`: added rows are not the new organisation's ({} vs {})\nschema:\n{}",
            table,
            rows.len(),
            expected.len(),
            ddl
        );
    }
    Ok(paired.cuts.len())
}

/// 16 cases keep the suite fast; `ORGPORT_PROP_CASES=500` explores further.
fn cases() -> u32 {
    std::env::var("ORGPORT_PROP_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(16)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_schemas_round_trip_and_leave_other_orgs_alone(case in case_strategy()) {
        check_case(&case)?;
    }
}

/// A fixed case with every feature at once, so the generator itself is exercised on every run.
#[test]
fn a_generated_schema_with_every_feature_round_trips() {
    let case = Case {
        root: RootGen::Int,
        tables: vec![
            TableGen {
                key: KeyGen::Int,
                owner: 0,
                owner_nullable: false,
                extras: vec![],
                self_ref: true,
                person: true,
                unique_tag: true,
                without_rowid: false,
            },
            TableGen {
                key: KeyGen::Composite,
                owner: 1,
                owner_nullable: false,
                extras: vec![(0, true, false), (1, true, true)],
                self_ref: true,
                person: false,
                unique_tag: false,
                without_rowid: true,
            },
            TableGen {
                key: KeyGen::Uuid { declared_uuid: true, upper: false },
                owner: 2,
                owner_nullable: true,
                extras: vec![(1, true, false), (2, false, false)],
                self_ref: true,
                person: true,
                unique_tag: false,
                without_rowid: false,
            },
            TableGen {
                key: KeyGen::Uuid { declared_uuid: false, upper: true },
                owner: 3,
                owner_nullable: false,
                extras: vec![(0, false, false)],
                self_ref: false,
                person: false,
                unique_tag: true,
                without_rowid: true,
            },
        ],
        people: true,
        src_orgs: 3,
        tgt_orgs: 2,
        pick: 2,
        seed: 8,
        cross: 60,
    };
    let schema = build_schema(&case);
    let ddl = schema.ddl();
    for part in ["PRIMARY KEY (o_0, n)", "UUID PRIMARY KEY", "s_0", "REFERENCES people(id)", "REFERENCES t1(tag)", "WITHOUT ROWID"] {
        assert!(ddl.contains(part), "{part} missing from\n{ddl}");
    }
    // The data is not empty: at least a few rows in most tables.
    let w = Work::new();
    let mut rng = Rng(case.seed);
    let p = w.path("probe.db");
    fill(&p, &schema, &case, &mut rng, "s", case.src_orgs);
    let conn = open(&p);
    let total: i64 = (1..=4).map(|i| count(&conn, &format!("SELECT count(*) FROM t{i}"), &[])).sum();
    assert!(total >= 8, "the generator made only {total} rows");
    let cuts = check_case(&case).unwrap_or_else(|e| panic!("{e}"));
    assert!(cuts > 0, "the fixed case should cut a reference to another organisation");
}
