//! The shared harness: running `orgport`, reading SQLite files cell by cell (storage class
//! included), comparing an organisation on the source with its copy on the target field by field,
//! and taking archives apart.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use orgport_testkit::example::{create_example_db, ExampleOptions};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql};
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// Running orgport
// ---------------------------------------------------------------------------------------------

/// What one run of `orgport` did.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "orgport failed:\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    /// Exit code 1, with every fragment in the error output.
    #[track_caller]
    pub fn fails_with(&self, fragments: &[&str]) -> &Self {
        assert_eq!(self.code, 1, "expected exit code 1:\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        for f in fragments {
            assert!(self.stderr.contains(f), "the error does not mention {f:?}:\n{}", self.stderr);
        }
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// The `orgport` binary, run in `dir` (so no stray `orgport.toml` is picked up).
pub fn orgport(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("orgport").expect("the orgport binary");
    cmd.current_dir(dir).env("NO_COLOR", "1");
    cmd
}

pub fn run_in<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[S]) -> Out {
    output(orgport(dir).args(args))
}

fn output(cmd: &mut Command) -> Out {
    cmd.output().expect("running orgport").into()
}

impl From<std::process::Output> for Out {
    fn from(output: std::process::Output) -> Out {
        Out {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

pub fn url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

pub fn example_config() -> PathBuf {
    repo_root().join("examples/saas/orgport.toml")
}

pub fn example_config_text() -> String {
    std::fs::read_to_string(example_config()).expect("examples/saas/orgport.toml")
}

/// The example's orgport.toml with a `[files.uploads]` store in the local directory `store`,
/// each organisation's objects under `{org}/`.
pub fn example_config_with_files(store: &Path) -> String {
    example_config_with_store(&format!("file://{}", store.display()))
}

/// The example's orgport.toml with a `[files.uploads]` store at `url` (`file://`, `s3://`,
/// `gs://`), each organisation's objects under `{org}/`.
pub fn example_config_with_store(url: &str) -> String {
    format!("{}\n[files.uploads]\nstore = \"{url}\"\nprefix = \"{{org}}/\"\n", example_config_text())
}

/// The plan of `engine`'s database under the configuration `config`.
pub fn plan_with(engine: &mut dyn orgport_core::engine::Engine, config: &str) -> orgport_core::plan::Plan {
    let config = orgport_core::config::Config::parse(config).expect("configuration");
    let caps = engine.capabilities();
    let schema = engine.introspect().expect("introspect");
    orgport_core::plan::Plan::build(schema, &config, None, caps).expect("plan")
}

/// A temporary working directory with helpers for the usual commands.
pub struct Work {
    pub dir: TempDir,
    /// Environment variables every run gets (an object store's address and credentials).
    pub env: Vec<(String, String)>,
}

impl Work {
    pub fn new() -> Work {
        Work { dir: tempfile::tempdir().expect("temporary directory"), env: Vec::new() }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn run<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Out {
        output(orgport(self.dir.path()).envs(self.env.iter().map(|(k, v)| (k, v))).args(args))
    }

    /// Writes a configuration file and returns its path.
    pub fn config(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).expect("writing a configuration");
        p
    }

    /// Generates an example database.
    pub fn example(&self, name: &str, opts: &ExampleOptions) -> PathBuf {
        let p = self.path(name);
        create_example_db(&p, opts).expect("generating an example database");
        p
    }

    /// A database made of `sql`.
    pub fn db(&self, name: &str, sql: &str) -> PathBuf {
        let p = self.path(name);
        let conn = Connection::open(&p).expect("creating a database");
        conn.execute_batch(sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
        p
    }

    pub fn copy(&self, from: &Path, name: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::copy(from, &p).expect("copying a file");
        p
    }

    /// `orgport export` with a configuration, or with `--root` when `config` is None.
    pub fn export(&self, db: &Path, config: Option<&Path>, root: Option<&str>, orgs: &[&str], extra: &[&str], out: &Path) -> Out {
        let mut args: Vec<String> = vec!["export".into(), "--db".into(), url(db)];
        if let Some(c) = config {
            args.extend(["--config".into(), c.display().to_string()]);
        }
        if let Some(r) = root {
            args.extend(["--root".into(), r.into()]);
        }
        for o in orgs {
            args.extend(["--org".into(), (*o).into()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(["--out".into(), out.display().to_string()]);
        self.run(&args)
    }

    pub fn import(&self, db: &Path, config: Option<&Path>, archive: &Path, extra: &[&str]) -> Out {
        let mut args: Vec<String> = vec!["import".into(), "--db".into(), url(db)];
        if let Some(c) = config {
            args.extend(["--config".into(), c.display().to_string()]);
        }
        args.extend(["--in".into(), archive.display().to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        self.run(&args)
    }

    /// Imports with `--json`, asserts success and returns the report.
    #[track_caller]
    pub fn import_json(&self, db: &Path, config: Option<&Path>, archive: &Path) -> serde_json::Value {
        let out = self.import(db, config, archive, &["--json"]);
        out.ok();
        out.json()
    }

    pub fn verify(&self, db: &Path, config: Option<&Path>, archive: &Path, orgs: &[&str]) -> Out {
        let mut args: Vec<String> = vec!["verify".into(), "--db".into(), url(db)];
        if let Some(c) = config {
            args.extend(["--config".into(), c.display().to_string()]);
        }
        args.extend(["--in".into(), archive.display().to_string()]);
        for o in orgs {
            args.extend(["--org".into(), (*o).into()]);
        }
        self.run(&args)
    }

    pub fn inspect(&self, archive: &Path) -> Out {
        self.run(&["inspect".to_string(), "--in".into(), archive.display().to_string()])
    }

    /// The manifest as `orgport inspect` prints it (asserting success).
    #[track_caller]
    pub fn manifest(&self, archive: &Path) -> serde_json::Value {
        let out = self.inspect(archive);
        out.ok();
        out.json()
    }
}

/// A new age key pair: the identity file written in `w` (as `age-keygen` writes it) and the
/// recipient (`age1…`).
pub fn age_keys(w: &Work, name: &str) -> (PathBuf, String) {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let secret = age::secrecy::ExposeSecret::expose_secret(&identity.to_string()).to_string();
    let file = w.config(name, &format!("# created: by a test\n# public key: {recipient}\n{secret}\n"));
    (file, recipient)
}

/// The example database: source with three workspaces, target with two others and a smaller user
/// pool so that some users are matched by e-mail and others must be created.
pub fn example_pair(w: &Work) -> (PathBuf, PathBuf) {
    let src = w.example("source.db", &ExampleOptions { tasks_per_project: 8, ..ExampleOptions::default() });
    let tgt = w.example(
        "target.db",
        &ExampleOptions { orgs: 2, first_org: 100, seed: 7, users: 5, tasks_per_project: 6, ..ExampleOptions::default() },
    );
    (src, tgt)
}

/// The new key of the one organisation an import report names, as command-line text.
/// A plan's JSON without where its references came from (the inference section, each edge's
/// evidence): what must not change when inferred references are pasted as `[[reference]]`.
pub fn plan_decisions(plan: &serde_json::Value) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.remove("evidence");
                map.remove("inferred_references");
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut plan = plan.clone();
    strip(&mut plan);
    plan
}

pub fn new_org(report: &serde_json::Value) -> String {
    let orgs = report["orgs"].as_array().expect("orgs in the import report");
    assert_eq!(orgs.len(), 1, "one organisation expected in {report}");
    json_key(&orgs[0]["target"])
}

pub fn json_key(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        other => panic!("not a key: {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Cells: SQLite values with their storage class
// ---------------------------------------------------------------------------------------------

/// One stored value, exactly: the storage class and the bits (a REAL keeps its sign and NaN bits).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cell {
    Null,
    Int(i64),
    Real(u64),
    Text(String),
    Blob(Vec<u8>),
}

impl Cell {
    pub fn from_ref(v: ValueRef<'_>) -> Cell {
        match v {
            ValueRef::Null => Cell::Null,
            ValueRef::Integer(i) => Cell::Int(i),
            ValueRef::Real(f) => Cell::Real(f.to_bits()),
            ValueRef::Text(t) => Cell::Text(String::from_utf8(t.to_vec()).expect("UTF-8 text in a test database")),
            ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
        }
    }

    pub fn real(f: f64) -> Cell {
        Cell::Real(f.to_bits())
    }

    pub fn text(s: &str) -> Cell {
        Cell::Text(s.to_string())
    }

    pub fn storage_class(&self) -> &'static str {
        match self {
            Cell::Null => "null",
            Cell::Int(_) => "integer",
            Cell::Real(_) => "real",
            Cell::Text(_) => "text",
            Cell::Blob(_) => "blob",
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Cell::Null)
    }

    pub fn as_i64(&self) -> i64 {
        match self {
            Cell::Int(i) => *i,
            other => panic!("not an integer: {other:?}"),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Cell::Text(s) => s,
            other => panic!("not text: {other:?}"),
        }
    }

    /// The key as `orgport` takes it on the command line.
    pub fn key_text(&self) -> String {
        match self {
            Cell::Int(i) => i.to_string(),
            Cell::Text(s) => s.clone(),
            other => panic!("not a key: {other:?}"),
        }
    }
}

impl fmt::Debug for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Null => write!(f, "NULL"),
            Cell::Int(i) => write!(f, "{i}"),
            Cell::Real(bits) => write!(f, "{:?}r", f64::from_bits(*bits)),
            Cell::Text(s) if s.chars().count() > 80 => {
                write!(f, "{:?}… ({} chars)", s.chars().take(80).collect::<String>(), s.chars().count())
            }
            Cell::Text(s) => write!(f, "{s:?}"),
            Cell::Blob(b) if b.len() > 24 => write!(f, "x'{}…' ({} bytes)", hex(&b[..24]), b.len()),
            Cell::Blob(b) => write!(f, "x'{}'", hex(b)),
        }
    }
}

impl ToSql for Cell {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Cell::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Cell::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Cell::Real(bits) => ToSqlOutput::Borrowed(ValueRef::Real(f64::from_bits(*bits))),
            Cell::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Cell::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub type Row = Vec<Cell>;

pub fn open(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

/// Rows of a query, cell by cell, with the column names.
pub fn query(conn: &Connection, sql: &str, params: &[&dyn ToSql]) -> (Vec<String>, Vec<Row>) {
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{e}: {sql}"));
    let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let n = names.len();
    let rows = stmt
        .query_map(params, |r| (0..n).map(|i| r.get_ref(i).map(Cell::from_ref)).collect::<rusqlite::Result<Row>>())
        .unwrap_or_else(|e| panic!("{e}: {sql}"))
        .collect::<rusqlite::Result<Vec<Row>>>()
        .unwrap_or_else(|e| panic!("{e}: {sql}"));
    (names, rows)
}

pub fn rows(conn: &Connection, sql: &str, params: &[&dyn ToSql]) -> Vec<Row> {
    query(conn, sql, params).1
}

pub fn one(conn: &Connection, sql: &str, params: &[&dyn ToSql]) -> Cell {
    let r = rows(conn, sql, params);
    assert_eq!(r.len(), 1, "one row expected from {sql}, got {r:?}");
    r[0][0].clone()
}

pub fn count(conn: &Connection, sql: &str, params: &[&dyn ToSql]) -> i64 {
    one(conn, sql, params).as_i64()
}

pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Every row of every table (SQLite's own aside), sorted: a database's content, independent of
/// scan order.
pub type Snapshot = BTreeMap<String, Vec<Row>>;

pub fn snapshot(path: &Path) -> Snapshot {
    let conn = open(path);
    let tables: Vec<String> =
        rows(&conn, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name", &[])
            .into_iter()
            .map(|r| r[0].as_str().to_string())
            .collect();
    tables
        .into_iter()
        .map(|t| {
            let mut r = rows(&conn, &format!("SELECT * FROM {}", quote(&t)), &[]);
            r.sort();
            (t, r)
        })
        .collect()
}

/// What `after` holds in addition to `before`, per table; fails if any row of `before` is gone or
/// changed (a changed row shows as gone), or a table appeared or disappeared.
pub fn added_rows(before: &Snapshot, after: &Snapshot) -> Result<BTreeMap<String, Vec<Row>>, String> {
    let names_before: Vec<&String> = before.keys().collect();
    let names_after: Vec<&String> = after.keys().collect();
    if names_before != names_after {
        return Err(format!("tables changed: {names_before:?} → {names_after:?}"));
    }
    let mut problems = Vec::new();
    let mut added = BTreeMap::new();
    for (t, old) in before {
        let new = &after[t];
        let mut counts: HashMap<&Row, i64> = HashMap::new();
        for r in new {
            *counts.entry(r).or_default() += 1;
        }
        for r in old {
            match counts.get_mut(r) {
                Some(c) if *c > 0 => *c -= 1,
                _ => problems.push(format!("`{t}`: row {r:?} is gone or changed")),
            }
        }
        let mut extra: Vec<Row> = Vec::new();
        for r in new {
            if let Some(c) = counts.get_mut(r) {
                if *c > 0 {
                    *c -= 1;
                    extra.push(r.clone());
                }
            }
        }
        extra.sort();
        added.insert(t.clone(), extra);
    }
    if problems.is_empty() {
        Ok(added)
    } else {
        problems.truncate(30);
        Err(problems.join("\n"))
    }
}

/// Asserts nothing of `before` changed and returns the added rows.
#[track_caller]
pub fn assert_only_added(before: &Snapshot, after: &Snapshot) -> BTreeMap<String, Vec<Row>> {
    added_rows(before, after).unwrap_or_else(|e| panic!("rows that were on the target before the import changed:\n{e}"))
}

pub fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[track_caller]
pub fn assert_same_bytes(path: &Path, before: &[u8]) {
    let now = bytes(path);
    assert!(now == before, "`{}` changed ({} bytes before, {} after)", path.display(), before.len(), now.len());
}

/// Files in a directory, sorted (to see that nothing was left behind).
pub fn dir_listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).expect("listing").map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// The files under `dir`, as keys relative to `root`.
pub fn walk(root: &Path, dir: &Path) -> Vec<String> {
    let mut keys = Vec::new();
    for entry in std::fs::read_dir(dir).expect("listing") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            keys.extend(walk(root, &path));
        } else {
            keys.push(path.strip_prefix(root).expect("under the root").to_string_lossy().into_owned());
        }
    }
    keys
}

// ---------------------------------------------------------------------------------------------
// Field-by-field comparison of an organisation with its copy
// ---------------------------------------------------------------------------------------------

/// A reference from some columns of a table to columns of another compared table.
#[derive(Clone, Debug)]
pub struct Ref {
    pub cols: Vec<String>,
    pub table: String,
    pub to: Vec<String>,
}

pub fn r(cols: &[&str], table: &str, to: &[&str]) -> Ref {
    Ref { cols: strings(cols), table: table.into(), to: strings(to) }
}

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// How to find and compare one table's rows of an organisation.
#[derive(Clone, Debug)]
pub struct TableSpec {
    pub name: String,
    /// Selects the organisation's rows; `?1` is the root key.
    pub select: String,
    /// Columns holding new keys on the target: not compared.
    pub fresh: Vec<String>,
    /// References to compared tables: the source value is mapped through the pairing of the
    /// referenced table's rows; a reference to a row outside the organisation must be NULL (cut).
    pub refs: Vec<Ref>,
    /// Columns that identify a row (after mapping); rows with equal values must be identical.
    pub pair_by: Vec<String>,
    /// Columns left out of the comparison (checked by the test itself).
    pub ignore: Vec<String>,
    /// A shared table (users): rows are paired and only `pair_by` is compared.
    pub shared: bool,
}

pub fn spec(name: &str, select: &str) -> TableSpec {
    TableSpec {
        name: name.into(),
        select: select.into(),
        fresh: Vec::new(),
        refs: Vec::new(),
        pair_by: Vec::new(),
        ignore: Vec::new(),
        shared: false,
    }
}

impl TableSpec {
    pub fn fresh(mut self, cols: &[&str]) -> Self {
        self.fresh.extend(strings(cols));
        self
    }
    pub fn reference(mut self, cols: &[&str], table: &str, to: &[&str]) -> Self {
        self.refs.push(r(cols, table, to));
        self
    }
    pub fn pair_by(mut self, cols: &[&str]) -> Self {
        self.pair_by = strings(cols);
        self
    }
    pub fn ignore(mut self, cols: &[&str]) -> Self {
        self.ignore.extend(strings(cols));
        self
    }
    pub fn shared(mut self) -> Self {
        self.shared = true;
        self
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum How {
    Plain,
    Fresh,
    Ignore,
    Mapped(usize),
    Deferred(usize),
}

/// The outcome of a comparison: every source row paired with its target row.
#[derive(Default)]
pub struct Paired {
    pub columns: HashMap<String, Vec<String>>,
    /// Per table: (source row, target row).
    pub pairs: HashMap<String, Vec<(Row, Row)>>,
    /// `table.columns` of each reference that pointed outside the organisation (now NULL).
    pub cuts: Vec<String>,
    index: HashMap<(String, Vec<String>), HashMap<Row, Row>>,
}

impl Paired {
    pub fn col(&self, table: &str, column: &str) -> usize {
        self.columns[table].iter().position(|c| c == column).unwrap_or_else(|| panic!("no column {table}.{column}"))
    }

    /// The target rows of a table.
    pub fn target_rows(&self, table: &str) -> Vec<Row> {
        self.pairs.get(table).map(|p| p.iter().map(|(_, t)| t.clone()).collect()).unwrap_or_default()
    }

    pub fn source_rows(&self, table: &str) -> Vec<Row> {
        self.pairs.get(table).map(|p| p.iter().map(|(s, _)| s.clone()).collect()).unwrap_or_default()
    }

    /// The target row paired with the source row whose `column` is `value`.
    pub fn target_of(&self, table: &str, column: &str, value: &Cell) -> Option<Row> {
        let c = self.col(table, column);
        self.pairs[table].iter().find(|(s, _)| &s[c] == value).map(|(_, t)| t.clone())
    }

    /// Maps source values of `to` columns of `table` to the target's.
    fn map(&mut self, table: &str, to: &[String], values: &[Cell]) -> Option<Row> {
        let key = (table.to_string(), to.to_vec());
        if !self.index.contains_key(&key) {
            let idx: Vec<usize> = to.iter().map(|c| self.col(table, c)).collect();
            let mut m = HashMap::new();
            for (s, t) in &self.pairs[table] {
                let sv: Row = idx.iter().map(|&i| s[i].clone()).collect();
                let tv: Row = idx.iter().map(|&i| t[i].clone()).collect();
                m.insert(sv, tv);
            }
            self.index.insert(key.clone(), m);
        }
        self.index[&key].get(values).cloned()
    }
}

/// Compares the organisation `src_org` of `src` with the organisation `tgt_org` of `tgt`, table by
/// table in the order of `specs` (parents first; references to later tables and self-references
/// are checked at the end). Every compared column must be equal, storage class included.
pub fn compare_org(src: &Connection, src_org: &Cell, tgt: &Connection, tgt_org: &Cell, specs: &[TableSpec]) -> Result<Paired, String> {
    let mut paired = Paired::default();
    let mut problems: Vec<String> = Vec::new();
    let mut deferred: Vec<(String, Vec<How>)> = Vec::new();
    for spec in specs {
        let (names, src_rows) = query(src, &spec.select, &[src_org]);
        let (tnames, tgt_rows) = query(tgt, &spec.select, &[tgt_org]);
        assert_eq!(names, tnames, "`{}`: the source and target tables have different columns", spec.name);
        let how: Vec<How> = names
            .iter()
            .map(|c| {
                if spec.ignore.contains(c) {
                    return How::Ignore;
                }
                if let Some(i) = spec.refs.iter().position(|r| r.cols.contains(c)) {
                    let r = &spec.refs[i];
                    return if r.table != spec.name && paired.pairs.contains_key(&r.table) { How::Mapped(i) } else { How::Deferred(i) };
                }
                if spec.fresh.contains(c) {
                    return How::Fresh;
                }
                if spec.shared && !spec.pair_by.contains(c) {
                    return How::Ignore;
                }
                How::Plain
            })
            .collect();
        paired.columns.insert(spec.name.clone(), names.clone());
        let pos = |c: &str| names.iter().position(|n| n == c).unwrap_or_else(|| panic!("no column {}.{c}", spec.name));
        let pair_idx: Vec<usize> = spec.pair_by.iter().map(|c| pos(c)).collect();
        for &i in &pair_idx {
            assert!(matches!(how[i], How::Plain | How::Mapped(_)), "`{}`: cannot pair by {:?}", spec.name, names[i]);
        }
        // The source rows as they should appear on the target (fresh and deferred columns aside).
        let mut expected: Vec<Row> = Vec::with_capacity(src_rows.len());
        for row in &src_rows {
            let mut e = row.clone();
            for (i, h) in how.iter().enumerate() {
                if let How::Mapped(ri) = h {
                    let rf = &spec.refs[*ri];
                    let idx: Vec<usize> = rf.cols.iter().map(|c| pos(c)).collect();
                    let vals: Row = idx.iter().map(|&j| row[j].clone()).collect();
                    if vals.iter().any(Cell::is_null) {
                        continue;
                    }
                    let k = rf.cols.iter().position(|c| *c == names[i]).expect("ref column");
                    match paired.map(&rf.table, &rf.to, &vals) {
                        Some(new) => e[i] = new[k].clone(),
                        None => {
                            e[i] = Cell::Null;
                            let cut = format!("{}.{}", spec.name, rf.cols.join(","));
                            if k == 0 {
                                paired.cuts.push(cut);
                            }
                        }
                    }
                }
            }
            expected.push(e);
        }
        let mut buckets: HashMap<Row, Vec<usize>> = HashMap::new();
        for (ti, t) in tgt_rows.iter().enumerate() {
            let key: Row = pair_idx.iter().map(|&i| t[i].clone()).collect();
            buckets.entry(key).or_default().push(ti);
        }
        for list in buckets.values_mut() {
            list.reverse();
        }
        let compared: Vec<usize> = (0..names.len()).filter(|&i| matches!(how[i], How::Plain | How::Mapped(_))).collect();
        let mut src_groups: HashMap<Row, usize> = HashMap::new();
        let mut pairs = Vec::with_capacity(src_rows.len());
        for (si, e) in expected.iter().enumerate() {
            let key: Row = pair_idx.iter().map(|&i| e[i].clone()).collect();
            if let Some(&first) = src_groups.get(&key) {
                let same = compared.iter().all(|&i| expected[first][i] == e[i]);
                assert!(same, "`{}`: pairing by {:?} is ambiguous (test bug): {:?} vs {:?}", spec.name, spec.pair_by, expected[first], e);
            } else {
                src_groups.insert(key.clone(), si);
            }
            let Some(ti) = buckets.get_mut(&key).and_then(|l| l.pop()) else {
                problems.push(format!("`{}`: no row on the target for source row {:?} (expected {:?})", spec.name, src_rows[si], e));
                continue;
            };
            let t = &tgt_rows[ti];
            for &i in &compared {
                if e[i] != t[i] {
                    problems.push(format!(
                        "`{}`.{}: source {:?} ({}) expected as {:?} ({}), target has {:?} ({}) — source row {:?}",
                        spec.name,
                        names[i],
                        src_rows[si][i],
                        src_rows[si][i].storage_class(),
                        e[i],
                        e[i].storage_class(),
                        t[i],
                        t[i].storage_class(),
                        src_rows[si]
                    ));
                }
            }
            pairs.push((src_rows[si].clone(), t.clone()));
        }
        let extra: usize = buckets.values().map(Vec::len).sum();
        if extra > 0 {
            let sample: Vec<&Row> = buckets.values().flatten().take(3).map(|&i| &tgt_rows[i]).collect();
            problems
                .push(format!("`{}`: {extra} row(s) on the target that are not in the source organisation, e.g. {sample:?}", spec.name));
        }
        paired.pairs.insert(spec.name.clone(), pairs);
        if how.iter().any(|h| matches!(h, How::Deferred(_))) {
            deferred.push((spec.name.clone(), how));
        }
    }
    for (table, how) in deferred {
        let spec = specs.iter().find(|s| s.name == table).expect("spec");
        let names = paired.columns[&table].clone();
        let pairs = paired.pairs[&table].clone();
        for (i, h) in how.iter().enumerate() {
            let How::Deferred(ri) = h else { continue };
            let rf = spec.refs[*ri].clone();
            let idx: Vec<usize> = rf.cols.iter().map(|c| names.iter().position(|n| n == c).expect("ref column")).collect();
            let k = rf.cols.iter().position(|c| *c == names[i]).expect("ref column");
            for (s, t) in &pairs {
                let vals: Row = idx.iter().map(|&j| s[j].clone()).collect();
                let want = if vals.iter().any(Cell::is_null) {
                    s[i].clone()
                } else {
                    match paired.map(&rf.table, &rf.to, &vals) {
                        Some(new) => new[k].clone(),
                        None => {
                            if k == 0 {
                                paired.cuts.push(format!("{table}.{}", rf.cols.join(",")));
                            }
                            Cell::Null
                        }
                    }
                };
                if want != t[i] {
                    problems.push(format!(
                        "`{table}`.{}: source {:?} should be {:?} on the target, is {:?} — source row {s:?}",
                        names[i], s[i], want, t[i]
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(paired)
    } else {
        let n = problems.len();
        problems.truncate(40);
        Err(format!("{n} difference(s):\n{}", problems.join("\n")))
    }
}

#[track_caller]
pub fn assert_org_equal(src: &Path, src_org: &Cell, tgt: &Path, tgt_org: &Cell, specs: &[TableSpec]) -> Paired {
    compare_org(&open(src), src_org, &open(tgt), tgt_org, specs)
        .unwrap_or_else(|e| panic!("organisation {src_org:?} of the source differs from {tgt_org:?} on the target: {e}"))
}

/// The example schema, table by table, for [`compare_org`]. Sensitive columns that are withheld by
/// default (`api_tokens.token`) are left to the tests.
pub fn example_specs() -> Vec<TableSpec> {
    const PROJECTS: &str = "SELECT id FROM projects WHERE workspace_id = ?1";
    let tasks = format!("SELECT id FROM tasks WHERE project_id IN ({PROJECTS})");
    vec![
        spec(
            "users",
            &format!(
                "SELECT * FROM users WHERE id IN (SELECT user_id FROM memberships WHERE workspace_id = ?1 \
                 UNION SELECT assignee_id FROM tasks WHERE project_id IN ({PROJECTS}) \
                 UNION SELECT created_by FROM api_tokens WHERE workspace_id = ?1)"
            ),
        )
        .fresh(&["id"])
        .pair_by(&["email"])
        .shared(),
        spec("workspaces", "SELECT * FROM workspaces WHERE id = ?1").fresh(&["id"]).reference(&["default_project_id"], "projects", &["id"]),
        spec("projects", "SELECT * FROM projects WHERE workspace_id = ?1")
            .fresh(&["id"])
            .reference(&["workspace_id"], "workspaces", &["id"])
            .pair_by(&["name"]),
        spec("labels", &format!("SELECT * FROM labels WHERE project_id IN ({PROJECTS})"))
            .reference(&["project_id"], "projects", &["id"])
            .pair_by(&["project_id", "name"]),
        spec("tasks", &format!("SELECT * FROM tasks WHERE project_id IN ({PROJECTS})"))
            .fresh(&["id"])
            .reference(&["project_id"], "projects", &["id"])
            .reference(&["parent_id"], "tasks", &["id"])
            .reference(&["assignee_id"], "users", &["id"])
            .pair_by(&["project_id", "title"]),
        spec("task_labels", &format!("SELECT * FROM task_labels WHERE task_id IN ({tasks})"))
            .reference(&["task_id"], "tasks", &["id"])
            .reference(&["project_id", "label_name"], "labels", &["project_id", "name"])
            .pair_by(&["task_id", "project_id", "label_name"]),
        spec("attachments", &format!("SELECT * FROM attachments WHERE task_id IN ({tasks})"))
            .fresh(&["id"])
            .reference(&["task_id"], "tasks", &["id"])
            .pair_by(&["task_id", "file_name"]),
        spec("api_tokens", "SELECT * FROM api_tokens WHERE workspace_id = ?1")
            .fresh(&["id"])
            .reference(&["workspace_id"], "workspaces", &["id"])
            .reference(&["created_by"], "users", &["id"])
            .ignore(&["token"])
            .pair_by(&["created_by", "expires_at"]),
        spec("gift_cards", "SELECT * FROM gift_cards WHERE workspace_id = ?1")
            .fresh(&["id"])
            .reference(&["workspace_id"], "workspaces", &["id"])
            .pair_by(&["code"]),
        spec("redemptions", "SELECT * FROM redemptions WHERE workspace_id = ?1")
            .fresh(&["id"])
            .reference(&["workspace_id"], "workspaces", &["id"])
            .reference(&["gift_card_id"], "gift_cards", &["id"])
            .pair_by(&["amount_cents"]),
        spec("memberships", "SELECT * FROM memberships WHERE workspace_id = ?1")
            .reference(&["workspace_id"], "workspaces", &["id"])
            .reference(&["user_id"], "users", &["id"])
            .pair_by(&["user_id"]),
        spec("event-log", "SELECT * FROM \"event-log\" WHERE workspace_id = ?1")
            .reference(&["workspace_id"], "workspaces", &["id"])
            .pair_by(&["kind", "payload"]),
    ]
}

pub fn example_spec(name: &str) -> TableSpec {
    example_specs().into_iter().find(|s| s.name == name).expect("example table")
}

/// Replaces one table's spec.
pub fn with_spec(mut specs: Vec<TableSpec>, s: TableSpec) -> Vec<TableSpec> {
    let i = specs.iter().position(|x| x.name == s.name).expect("table in specs");
    specs[i] = s;
    specs
}

/// Checks that the rows added to the target are exactly the paired target rows of every compared
/// table (plus `extra_users` created users), and nothing else.
#[track_caller]
pub fn assert_added_exactly(added: &BTreeMap<String, Vec<Row>>, paired: &Paired, shared: &[(&str, usize)]) {
    for (table, rows) in added {
        if let Some((_, n)) = shared.iter().find(|(t, _)| t == table) {
            assert_eq!(rows.len(), *n, "`{table}`: rows created on the target");
            continue;
        }
        let mut expected = paired.target_rows(table);
        expected.sort();
        if !paired.pairs.contains_key(table) {
            assert!(rows.is_empty(), "`{table}` is not part of the organisation but got rows: {:?}", &rows[..rows.len().min(3)]);
            continue;
        }
        assert!(
            rows == &expected,
            "`{table}`: the rows added to the target are not exactly the new organisation's ({} added, {} expected)",
            rows.len(),
            expected.len()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Archives
// ---------------------------------------------------------------------------------------------

/// An archive taken apart: header fields, manifest JSON and compressed data.
pub struct Parts {
    pub version: u32,
    pub manifest: Vec<u8>,
    pub checksum: [u8; 32],
    pub data: Vec<u8>,
}

pub fn split_archive(bytes: &[u8]) -> Parts {
    assert_eq!(&bytes[..8], b"ORGPORT\0", "magic");
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    let len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let manifest = bytes[16..16 + len].to_vec();
    let checksum: [u8; 32] = bytes[16 + len..16 + len + 32].try_into().unwrap();
    let data = bytes[16 + len + 32..].to_vec();
    Parts { version, manifest, checksum, data }
}

impl Parts {
    pub fn manifest_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.manifest).expect("manifest JSON")
    }

    /// Header offsets: (start of manifest, start of checksum, start of data).
    pub fn offsets(&self) -> (usize, usize, usize) {
        (16, 16 + self.manifest.len(), 16 + self.manifest.len() + 32)
    }

    /// The archive again, with the manifest checksum recomputed when `fix_checksum`.
    pub fn join(&self, fix_checksum: bool) -> Vec<u8> {
        let sum = if fix_checksum { sha256(&self.manifest) } else { self.checksum };
        let mut out = Vec::new();
        out.extend_from_slice(b"ORGPORT\0");
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.manifest.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.manifest);
        out.extend_from_slice(&sum);
        out.extend_from_slice(&self.data);
        out
    }

    pub fn set_manifest(&mut self, m: &serde_json::Value) {
        self.manifest = serde_json::to_vec(m).expect("manifest JSON");
    }
}

/// Every row of an archive, decoded and checked by the library, per table name.
pub fn archive_rows(path: &Path) -> (orgport_core::archive::Manifest, BTreeMap<String, Vec<Vec<orgport_core::value::Value>>>) {
    let file = std::io::BufReader::new(std::fs::File::open(path).expect("archive"));
    let mut reader = orgport_core::archive::ArchiveReader::open(file).expect("a valid archive");
    let mut out: BTreeMap<String, Vec<Vec<orgport_core::value::Value>>> = BTreeMap::new();
    let names: Vec<String> = reader.manifest().tables.iter().map(|t| t.name.clone()).collect();
    for n in &names {
        out.entry(n.clone()).or_default();
    }
    while let Some((t, row)) = reader.next_row().expect("readable rows") {
        out.get_mut(&names[t]).expect("table").push(row.to_vec());
    }
    (reader.manifest().clone(), out)
}

/// SHA-256 (FIPS 180-4), to re-seal a manifest after editing it.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be,
        0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa,
        0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85,
        0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
        0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f,
        0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ];
    let mut h: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes(chunk[4 * i..4 * i + 4].try_into().unwrap());
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh.wrapping_add(s1).wrapping_add(ch).wrapping_add(K[i]).wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The library, for checks the command line does not expose
// ---------------------------------------------------------------------------------------------

/// `orgport_core::verify::verify` on a SQLite target, with the configuration text (or none).
pub fn library_verify(
    db: &Path,
    config: Option<&str>,
    root: Option<&str>,
    archive: &Path,
    orgs: &[String],
) -> orgport_core::verify::VerifyReport {
    use orgport_core::engine::Engine;
    let mut engine = orgport_sqlite::SqliteEngine::open_path(db, orgport_sqlite::Access::ReadOnly).expect("opening the target");
    let config = config.map(|t| orgport_core::config::Config::parse(t).expect("configuration")).unwrap_or_default();
    let caps = engine.capabilities();
    let plan = orgport_core::plan::Plan::build(engine.introspect().expect("introspect"), &config, root, caps).expect("plan");
    let path = archive.to_path_buf();
    let open = move || -> orgport_core::Result<Box<dyn std::io::Read>> {
        Ok(Box::new(std::io::BufReader::new(std::fs::File::open(&path).map_err(orgport_core::Error::Stream)?)))
    };
    orgport_core::verify::verify(&mut engine, &plan, &open, orgs, None, 1, &orgport_core::progress::Quiet).expect("verify runs")
}

#[test]
fn sha256_matches_known_vectors() {
    assert_eq!(hex(&sha256(b"")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(hex(&sha256(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    let long = vec![b'a'; 1000];
    assert_eq!(hex(&sha256(&long)), "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
}

/// The comparison itself must notice a changed storage class, a wrongly mapped reference, a
/// missing row and an extra row; identical data passes.
#[test]
fn compare_org_notices_differences() {
    let w = Work::new();
    let schema = "CREATE TABLE o (id INTEGER PRIMARY KEY);
                  CREATE TABLE n (id INTEGER PRIMARY KEY, o_id INTEGER NOT NULL REFERENCES o(id), parent INTEGER REFERENCES n(id), v, tag TEXT);";
    let src = w.db(
        "s.db",
        &format!(
            "{schema} INSERT INTO o VALUES (1); INSERT INTO n VALUES (1, 1, NULL, 7, 'a'), (2, 1, 1, 1.5, 'b'), (3, 1, 2, x'00', 'c');"
        ),
    );
    let good = format!(
        "{schema} INSERT INTO o VALUES (5); INSERT INTO n VALUES (11, 5, NULL, 7, 'a'), (12, 5, 11, 1.5, 'b'), (13, 5, 12, x'00', 'c');"
    );
    let specs = vec![
        spec("o", "SELECT * FROM o WHERE id = ?1").fresh(&["id"]),
        spec("n", "SELECT * FROM n WHERE o_id = ?1")
            .fresh(&["id"])
            .reference(&["o_id"], "o", &["id"])
            .reference(&["parent"], "n", &["id"])
            .pair_by(&["tag"]),
    ];
    let run = |name: &str, sql: &str| compare_org(&open(&src), &Cell::Int(1), &open(&w.db(name, sql)), &Cell::Int(5), &specs);
    let ok = run("good.db", &good).expect("identical organisations");
    assert_eq!(ok.pairs["n"].len(), 3);
    let variants = [
        ("class", good.replace("(11, 5, NULL, 7, 'a')", "(11, 5, NULL, '7', 'a')")),
        ("parent", good.replace("(13, 5, 12, x'00', 'c')", "(13, 5, 11, x'00', 'c')")),
        ("missing", good.replace(", (13, 5, 12, x'00', 'c')", "")),
        ("extra", good.replace("(13, 5, 12, x'00', 'c');", "(13, 5, 12, x'00', 'c'), (14, 5, NULL, NULL, 'd');")),
        ("float", good.replace("1.5", "1.5000000000000002")),
    ];
    for (name, sql) in variants {
        assert_ne!(sql, good, "{name}: test setup");
        assert!(run(&format!("{name}.db"), &sql).is_err(), "{name}: the comparison missed a difference");
    }
}

/// `len` bytes of a xorshift sequence from `seed`: the same for the same seed.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The peak resident memory of a process, from `/proc`.
pub fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process's status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib / 1024
}
