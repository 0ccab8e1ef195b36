//! Import: a new organisation from an archive, with new keys and every reference rewritten, in one
//! transaction.
//!
//! Three passes over the archive, all inside the write transaction so no other writer can take
//! the keys being allocated:
//! 1. allocate a key for every owned row, match shared rows by natural key (key map on disk);
//! 2. rewrite every row and find every unique value that already exists, applying each column's
//!    conflict policy — all problems are reported together, before the first write;
//! 3. write the rows. Foreign keys are checked at commit, so order and cycles do not matter.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use serde::Serialize;

use crate::archive::{codec, ArchiveReader, CutReport, Manifest};
use crate::conditions::Conditions;
use crate::config::ConflictPolicy;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::files::{key_columns, FilesIn};
use crate::keys::{key_bytes, regenerate, unusable};
use crate::plan::{Plan, Role};
use crate::progress::Progress;
use crate::scratch::Scratch;
use crate::store::StoreOpener;
use crate::value::{Value, ValueKind};

/// Opens the archive afresh for each pass.
pub type Opener<'a> = dyn Fn() -> Result<Box<dyn Read>> + 'a;

#[derive(Default)]
pub struct ImportOptions<'a> {
    pub dry_run: bool,
    /// Where the archive's files go; needed when it carries any.
    pub files: Option<FilesImport<'a>>,
}

/// How an import writes the organisations' files.
pub struct FilesImport<'a> {
    /// Opens the target's stores (the plan's `[files.*]`) and those files were copied to.
    pub open: &'a StoreOpener<'a>,
    /// Objects checked and copied at once.
    pub jobs: usize,
}

#[derive(Debug, Serialize)]
pub struct ImportReport {
    pub orgs: Vec<OrgMapping>,
    pub tables: BTreeMap<String, TableCounts>,
    pub renamed: Vec<Renamed>,
    pub cut: Vec<CutReport>,
    /// Files written (or, in a dry run, to be written), per store.
    pub files: Vec<FilesReport>,
    pub dry_run: bool,
}

#[derive(Debug, Serialize)]
pub struct FilesReport {
    pub name: String,
    /// The target store.
    pub store: String,
    pub files: u64,
    pub bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct OrgMapping {
    pub source: serde_json::Value,
    pub target: serde_json::Value,
}

#[derive(Debug, Default, Serialize)]
pub struct TableCounts {
    pub created: u64,
    pub matched: u64,
}

#[derive(Debug, Serialize)]
pub struct Renamed {
    pub table: String,
    pub column: String,
    /// Absent for sensitive columns.
    pub from: Option<String>,
    pub to: Option<String>,
}

/// A value as plain JSON, for reports.
pub fn value_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Float(f) => (*f).into(),
        Value::Uuid(u) => crate::value::format_uuid(u).into(),
        other => other.as_str().map(|s| s.to_string().into()).unwrap_or_else(|| other.display().into()),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Check,
    Recheck,
    Write,
}

/// Where a primary-key column's new value comes from.
#[derive(Clone, Copy)]
pub(crate) enum KeySource {
    /// The column is part of reference `edge`, rewritten with it (component `index`).
    Reference { edge: usize, index: usize },
    /// A new value allocated on the target.
    Allocate,
    /// Kept as is: it only distinguishes rows under a parent that changes.
    Keep,
}

#[derive(Clone)]
struct UniqueCheck {
    id: i64,
    columns: Vec<String>,
    positions: Vec<usize>,
    /// The column that gives way on a conflict, its position and policy.
    policy: Option<(String, usize, ConflictPolicy)>,
}

/// How one archive table lands in its target table.
pub(crate) struct TableMap {
    pub(crate) target: usize,
    pub(crate) role: Role,
    pub(crate) name: String,
    /// Reference edges of the target plan whose columns are all in the archive, with positions.
    pub(crate) edges: Vec<(usize, Vec<usize>)>,
    pub(crate) pk_positions: Vec<usize>,
    pub(crate) pk_sources: Vec<KeySource>,
    /// Keysets of the table with their positions (None when a column is not in the archive).
    pub(crate) keysets: Vec<Option<Vec<usize>>>,
    uniques: Vec<UniqueCheck>,
    /// Whether the check pass has anything to find in this table's rows; if not, the write pass
    /// finds the references it cannot follow.
    needs_check: bool,
    /// Whether the table's old keys go into the key map with their new values.
    in_key_map: bool,
    /// Columns withheld at export that the target needs a value for.
    fill: Vec<(String, ValueKind, bool)>,
    /// The archive's columns, then the filled ones: the order rows are written in.
    insert_columns: Vec<String>,
}

/// Followed references: (key set, old key) → (new key, whether the import created the row).
type FollowCache = HashMap<(i64, Vec<u8>), (Vec<Value>, bool)>;

struct Importer<'a> {
    engine: &'a mut dyn Engine,
    plan: &'a Plan,
    manifest: Manifest,
    maps: Vec<TableMap>,
    scratch: Scratch,
    counters: HashMap<(usize, usize), i64>,
    problems: Vec<String>,
    problem_count: usize,
    conflicts: Vec<String>,
    renamed: Vec<Renamed>,
    /// Archive tables with values replaced by a conflict policy; other tables skip the lookup.
    overridden: std::collections::HashSet<usize>,
    /// Archive tables whose integer keys were allocated one per row in archive order: the first
    /// new key, or None once a row broke the sequence. Their new keys need no lookup.
    sequential: HashMap<usize, Option<i64>>,
    /// Recently followed keys. Entries never change once written, and references cluster (a
    /// project's tasks follow each other), so a small bounded cache spares most lookups.
    cache: std::cell::RefCell<FollowCache>,
    /// A reference to a key set not mapped yet was met in the check pass.
    forward_misses: bool,
    cut: BTreeMap<(usize, usize), u64>,
    counts: BTreeMap<String, TableCounts>,
    /// Rows written but not yet sent, all of one archive table.
    batch: Batch,
    conditions: Conditions,
    /// The archive's files, when it carries any.
    files: Option<FilesIn>,
    /// Per archive table, its columns holding object keys: (position, file set).
    file_columns: Vec<Vec<(usize, usize)>>,
}

/// Rows on their way to the engine, sent in bulk: bounded in rows and bytes, so memory stays flat.
#[derive(Default)]
struct Batch {
    table: usize,
    rows: Vec<Vec<Value>>,
    bytes: usize,
}

impl Batch {
    const MAX_ROWS: usize = 5_000;
    const MAX_BYTES: usize = 4 << 20;

    fn is_full(&self) -> bool {
        self.rows.len() >= Self::MAX_ROWS || self.bytes >= Self::MAX_BYTES
    }
}

pub(crate) fn keyset_id(table: usize, keyset: usize) -> i64 {
    (table as i64) * 64 + keyset as i64
}

pub fn import(
    engine: &mut dyn Engine,
    plan: &Plan,
    open: &Opener,
    options: &ImportOptions,
    progress: &dyn Progress,
) -> Result<ImportReport> {
    let manifest = crate::archive::read_manifest(&mut open()?)?;
    let maps = map_tables(plan, &manifest)?;
    let conditions = Conditions::new(engine, plan, &manifest)?;
    let files = FilesIn::open(&manifest, &plan.files, options.files.as_ref().map(|f| f.open))?;
    let file_columns = key_columns(&manifest);
    let mut importer = Importer {
        engine,
        plan,
        manifest,
        maps,
        scratch: Scratch::new()?,
        counters: HashMap::new(),
        problems: Vec::new(),
        problem_count: 0,
        conflicts: Vec::new(),
        renamed: Vec::new(),
        overridden: Default::default(),
        sequential: HashMap::new(),
        cache: Default::default(),
        forward_misses: false,
        cut: BTreeMap::new(),
        counts: BTreeMap::new(),
        batch: Batch::default(),
        conditions,
        files,
        file_columns,
    };
    importer.engine.begin_write()?;
    let result = importer.run(open, options, progress);
    let result = match result {
        Ok(report) if !options.dry_run => importer.engine.commit().map(|()| report),
        Ok(report) => importer.engine.end().map(|()| report),
        Err(e) => {
            // The transaction is abandoned; its own error would hide the cause.
            let _ = importer.engine.end();
            Err(e)
        }
    };
    // Files are written before the commit: a failed import takes them away again.
    match (result, &importer.files, &options.files) {
        (Err(e), Some(files), Some(options)) => Err(files.abandon(e, options.open)),
        (Ok(report), Some(files), _) => {
            files.close_journals();
            Ok(report)
        }
        (result, _, _) => result,
    }
}

/// Checks the archive against the target schema and works out how each table lands.
pub(crate) fn map_tables(plan: &Plan, manifest: &Manifest) -> Result<Vec<TableMap>> {
    let mut diffs = Vec::new();
    let mut unkeyable = Vec::new();
    let mut maps = Vec::new();
    if plan.name(plan.root) != manifest.root_table && plan.table(plan.root).name != manifest.root_table {
        diffs.push(format!("the archive's root is `{}` but the target's plan uses `{}`", manifest.root_table, plan.name(plan.root)));
    }
    for tm in &manifest.tables {
        let Some(t) = plan.schema.find(&tm.name) else {
            diffs.push(format!("table `{}` is missing on the target", tm.name));
            continue;
        };
        let table = plan.table(t);
        let role = plan.tables[t].role;
        let same_kind = role == tm.role || (role.is_owned() && tm.role.is_owned());
        if !same_kind {
            diffs.push(format!("table `{}` is {:?} in the archive but {:?} in the target's plan", tm.name, tm.role, role).to_lowercase());
        }
        for c in &tm.columns {
            match table.column(&c.name) {
                None => diffs.push(format!("column `{}.{}` is missing on the target", tm.name, c.name)),
                Some(tc) if tc.generated => diffs.push(format!("column `{}.{}` is generated on the target", tm.name, c.name)),
                Some(tc) if !tc.kind.accepts(c.kind) => diffs.push(format!(
                    "column `{}.{}` is {} ({:?}) in the archive but {} ({:?}) on the target",
                    tm.name, c.name, c.declared_type, c.kind, tc.declared_type, tc.kind
                )),
                _ => {}
            }
        }
        let mut fill = Vec::new();
        for tc in &table.columns {
            if tc.generated || tm.column_index(&tc.name).is_some() {
                continue;
            }
            if tm.withheld.contains_key(&tc.name) {
                fill.push((tc.name.clone(), tc.kind, tc.nullable));
            } else if !tc.nullable && tc.default.is_none() && !tc.auto_increment {
                diffs.push(format!("column `{}.{}` is NOT NULL without a default on the target but not in the archive", tm.name, tc.name));
            }
        }
        let pos = |name: &str| tm.column_index(name);
        let edges: Vec<(usize, Vec<usize>)> = plan
            .edges_from(t)
            .filter_map(|(i, e)| e.from_columns.iter().map(|c| pos(c)).collect::<Option<Vec<_>>>().map(|p| (i, p)))
            .collect();
        // A row's identity: its primary key, else the first column set others refer to it by.
        let pk = if table.primary_key.is_empty() {
            plan.tables[t].keysets.first().cloned().unwrap_or_default()
        } else {
            table.primary_key.clone()
        };
        let pk_positions: Vec<usize> = pk.iter().filter_map(|c| pos(c)).collect();
        if pk_positions.len() != pk.len() && role != Role::Keep {
            diffs.push(format!("table `{}`: key columns ({}) are missing from the archive", tm.name, pk.join(", ")));
        }
        let exported = |e: usize| plan.tables[plan.edges[e].to].role.is_mapped();
        let mut pk_sources: Vec<KeySource> = pk
            .iter()
            .map(|c| {
                edges
                    .iter()
                    .find(|(e, _)| exported(*e) && plan.edges[*e].condition.is_none() && plan.edges[*e].from_columns.contains(c))
                    .map(|(e, _)| KeySource::Reference {
                        edge: *e,
                        index: plan.edges[*e].from_columns.iter().position(|x| x == c).unwrap_or(0),
                    })
                    .unwrap_or(KeySource::Keep)
            })
            .collect();
        // A shared row found by its primary key (a catalog's code) keeps it when created: a new
        // value would make another row of it, which no later import would find.
        let natural = !role.is_owned()
            && table.primary_key.first().is_some_and(|c| plan.tables[t].natural_key.as_ref().is_some_and(|n| n.contains(c)));
        let allocatable = !table.primary_key.is_empty() && !natural && !pk_sources.iter().any(|s| matches!(s, KeySource::Reference { .. }));
        if allocatable {
            if let Some(first) = pk_sources.first_mut() {
                *first = KeySource::Allocate;
            }
            let first = table.column(&pk[0]).expect("key column");
            if role.is_owned() && first.kind == ValueKind::Text && !first.takes_any_text {
                unkeyable.push(format!(
                    "table `{}`: its primary key `{}` ({}) cannot be given new values: integer keys are allocated, \
                     UUIDs and character strings regenerated; give the table such a key or exclude it",
                    tm.name, first.name, first.declared_type
                ));
            }
        }
        let keysets: Vec<Option<Vec<usize>>> =
            plan.tables[t].keysets.iter().map(|ks| ks.iter().map(|c| pos(c)).collect::<Option<Vec<_>>>()).collect();
        let mut uniques = Vec::new();
        // The primary key too: made of references to matched rows it can collide (checks skip new values).
        let mut candidates: Vec<&Vec<String>> = table.unique_keys.iter().filter(|u| !u.partial).map(|u| &u.columns).collect();
        if !table.primary_key.is_empty() {
            candidates.push(&table.primary_key);
        }
        for (i, cols) in candidates.into_iter().enumerate() {
            let Some(positions) = cols.iter().map(|c| pos(c)).collect::<Option<Vec<_>>>() else { continue };
            let policy = cols.iter().zip(&positions).find_map(|(c, &p)| plan.tables[t].on_conflict.get(c).map(|pol| (c.clone(), p, *pol)));
            uniques.push(UniqueCheck { id: keyset_id(t, i), columns: cols.clone(), positions, policy });
        }
        let mut insert_columns: Vec<String> = tm.columns.iter().map(|c| c.name.clone()).collect();
        insert_columns.extend(fill.iter().map(|(c, _, _)| c.clone()));
        // A unique value that holds a new key (allocated here, or a reference to a row that gets
        // one) cannot exist on the target: a table whose every unique key holds one, and that
        // nobody refers to by other columns, has nothing for the check pass to do.
        let always_new = |p: usize| {
            pk_positions.iter().zip(&pk_sources).any(|(&q, s)| q == p && matches!(s, KeySource::Allocate))
                || edges.iter().any(|(e, positions)| {
                    let edge = &plan.edges[*e];
                    positions.contains(&p) && edge.condition.is_none() && plan.tables[edge.to].role.is_owned()
                })
        };
        let needs_check = keysets.len() > 1 || uniques.iter().any(|u| !u.positions.iter().any(|&p| always_new(p)));
        // A key made only of references is rewritten with them; unless rows point at this table,
        // nothing needs it in the key map.
        let in_key_map =
            role != Role::Owned || pk_sources.iter().any(|s| matches!(s, KeySource::Allocate)) || plan.edges.iter().any(|e| e.to == t);
        maps.push(TableMap {
            target: t,
            role,
            name: table.qualified(),
            edges,
            pk_positions,
            pk_sources,
            keysets,
            uniques,
            needs_check,
            in_key_map,
            fill,
            insert_columns,
        });
    }
    if !diffs.is_empty() {
        return Err(Error::Incompatible(diffs));
    }
    if !unkeyable.is_empty() {
        return Err(Error::Unresolved(unkeyable));
    }
    Ok(maps)
}

const MAX_LISTED: usize = 50;

impl Importer<'_> {
    fn problem(&mut self, msg: String) {
        self.problem_count += 1;
        if self.problems.len() < MAX_LISTED {
            self.problems.push(msg);
        }
    }

    fn run(&mut self, open: &Opener, options: &ImportOptions, progress: &dyn Progress) -> Result<ImportReport> {
        let reader = self.pass(open, progress, "allocate", Self::allocate)?;
        self.check_embedded(reader, progress)?;
        self.stop_on_problems()?;
        let orgs = self.new_orgs()?;
        let jobs = options.files.as_ref().map_or(1, |f| f.jobs);
        if let Some(files) = &mut self.files {
            files.place(&self.manifest, &self.plan.files, &orgs);
            files.check_landings(&self.manifest, jobs)?;
        }
        self.pass(open, progress, "check", Self::check)?;
        if self.forward_misses {
            self.pass(open, progress, "recheck", Self::recheck)?;
        }
        if !self.conflicts.is_empty() {
            return Err(Error::Conflicts(std::mem::take(&mut self.conflicts)));
        }
        self.stop_on_problems()?;
        let reader = self.pass(open, progress, "import", Self::write)?;
        self.stop_on_problems()?;
        self.send_batch()?;
        self.apply_deferred()?;
        for t in self.maps.iter().map(|m| m.target).collect::<Vec<_>>() {
            self.engine.after_import(self.plan.table(t))?;
        }
        if progress.cancelled() {
            return Err(Error::Cancelled);
        }
        if let (Some(files), false) = (&mut self.files, options.dry_run) {
            let new_keys: Vec<Value> = orgs.iter().map(|(_, new)| new.clone()).collect();
            files.open_journals(&self.plan.name(self.plan.root), &new_keys)?;
            let embedded = match self.manifest.embedded_files().next() {
                Some(_) => Some(reader.into_files()?),
                None => None,
            };
            files.write(&self.manifest, embedded, jobs, progress)?;
        }

        let orgs = orgs.iter().map(|(old, new)| OrgMapping { source: value_json(old), target: value_json(new) }).collect();
        let mut cut = self.manifest.cut.clone();
        for (&(t, e), &rows) in &self.cut {
            let edge = &self.plan.edges[e];
            cut.push(CutReport {
                table: self.plan.name(t),
                columns: edge.from_columns.clone(),
                to: self.plan.name(edge.to),
                reason: "points at a row that is not in the archive".into(),
                action: "cut".into(),
                rows,
            });
        }
        Ok(ImportReport {
            orgs,
            tables: std::mem::take(&mut self.counts),
            renamed: std::mem::take(&mut self.renamed),
            cut,
            files: self.files.as_ref().map(|files| files.report(&self.manifest)).unwrap_or_default(),
            dry_run: options.dry_run,
        })
    }

    /// Reads the embedded files after the first pass's rows, checking each one's size and
    /// checksum, so a damaged file stops the import before anything is written. The write pass
    /// checks them again as it writes them, from an archive opened afresh.
    fn check_embedded(&self, reader: ArchiveReader<Box<dyn Read>>, progress: &dyn Progress) -> Result<()> {
        let count = self.manifest.embedded_files().count();
        if count == 0 {
            return Ok(());
        }
        progress.begin("check files", "embedded in the archive", Some(count as u64));
        let mut files = reader.into_files()?;
        while let Some((s, f)) = files.copy_next(&mut std::io::sink())? {
            if progress.cancelled() {
                return Err(Error::Cancelled);
            }
            progress.rows(1);
            progress.bytes(self.manifest.files[s].files[f].size);
        }
        progress.end();
        Ok(())
    }

    /// Each organisation of the archive with its new root key, once the first pass allocated it.
    fn new_orgs(&self) -> Result<Vec<(Value, Value)>> {
        let root_ks = keyset_id(self.plan.root, 0);
        let mut orgs = Vec::new();
        for org in &self.manifest.orgs {
            let new = self.scratch.lookup_key(root_ks, &key_bytes(std::slice::from_ref(org)))?;
            let new = new.map(|(bytes, _)| codec::decode(&bytes, 1)).transpose().map_err(Error::Stream)?;
            orgs.push((org.clone(), new.and_then(|v| v.into_iter().next()).unwrap_or(Value::Null)));
        }
        Ok(orgs)
    }

    fn stop_on_problems(&mut self) -> Result<()> {
        if self.problem_count == 0 {
            return Ok(());
        }
        let mut list = std::mem::take(&mut self.problems);
        if self.problem_count > list.len() {
            list.push(format!("… and {} more", self.problem_count - list.len()));
        }
        Err(Error::Unresolved(list))
    }

    /// Reads every row of the archive, handing each with its table and ordinal to `step`;
    /// returns the reader, at the embedded files.
    fn pass(
        &mut self,
        open: &Opener,
        progress: &dyn Progress,
        phase: &str,
        step: fn(&mut Self, usize, u64, &[Value]) -> Result<()>,
    ) -> Result<ArchiveReader<Box<dyn Read>>> {
        let mut reader = ArchiveReader::open(open()?)?;
        same_archive(&self.manifest, reader.manifest())?;
        let mut current = usize::MAX;
        let mut ordinal = 0;
        while let Some((table, row)) = reader.next_row()? {
            if table != current {
                if current != usize::MAX {
                    progress.end();
                }
                current = table;
                ordinal = 0;
                let tm = &self.manifest.tables[table];
                progress.begin(phase, &tm.name, Some(tm.rows));
            }
            if progress.cancelled() {
                return Err(Error::Cancelled);
            }
            if let Err(e) = step(self, table, ordinal, row) {
                return Err(Self::damage(&mut reader).unwrap_or(e));
            }
            ordinal += 1;
            progress.rows(1);
        }
        if current != usize::MAX {
            progress.end();
        }
        Ok(reader)
    }

    /// After a row failed: the archive's own damage, if reading on finds any. A damaged archive
    /// (a forged row count reading into the next table) can make rows look like a problem of
    /// the target; its error names the real cause.
    fn damage(reader: &mut ArchiveReader<Box<dyn Read>>) -> Option<Error> {
        loop {
            match reader.next_row() {
                Ok(Some(_)) => {}
                Ok(None) => return None,
                Err(e) => return Some(e),
            }
        }
    }

    fn pick(row: &[Value], positions: &[usize]) -> Vec<Value> {
        positions.iter().map(|&p| row[p].clone()).collect()
    }

    fn lookup(&self, table: usize, keyset: usize, old: &[Value]) -> Result<Option<(Vec<Value>, bool)>> {
        const CACHE_ENTRIES: usize = 4096;
        let key = (keyset_id(table, keyset), key_bytes(old));
        if let Some(hit) = self.cache.borrow().get(&key) {
            return Ok(Some(hit.clone()));
        }
        let Some((bytes, created)) = self.scratch.lookup_key(key.0, &key.1)? else { return Ok(None) };
        let found = (codec::decode(&bytes, old.len()).map_err(Error::Stream)?, created);
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, found.clone());
        Ok(Some(found))
    }

    /// The new value of reference `edge` for these old values: None when the referenced row is not
    /// known to the import.
    fn follow(&self, edge: usize, old: &[Value]) -> Result<Option<(Vec<Value>, bool)>> {
        let e = &self.plan.edges[edge];
        match self.plan.tables[e.to].role {
            Role::Root | Role::Owned | Role::Referenced | Role::Dependent | Role::Keep => {
                let Some(ks) = self.plan.tables[e.to].keysets.iter().position(|k| *k == e.to_columns) else {
                    return Ok(None);
                };
                self.lookup(e.to, ks, old)
            }
            Role::Excluded | Role::Unrelated => Ok(Some((old.to_vec(), false))),
        }
    }

    fn new_key(&mut self, t: usize, col: usize, old: &Value) -> Result<Value> {
        if let Value::Int(_) = old {
            let table = self.plan.table(t);
            let last = match self.counters.get(&(t, col)) {
                Some(&n) => n,
                None => self.engine.max_key(table, &table.primary_key[col])?,
            };
            let next = last.checked_add(1).ok_or_else(|| {
                Error::Unresolved(vec![format!(
                    "table `{}`: no integer key is left above {last} in `{}` for new rows",
                    table.qualified(),
                    table.primary_key[col]
                )])
            })?;
            self.counters.insert((t, col), next);
            return Ok(Value::Int(next));
        }
        Ok(regenerate(old))
    }

    /// Whether a generated primary key is free: neither on the target nor given to another row.
    fn key_is_free(&mut self, t: usize, key: &[Value]) -> Result<bool> {
        let pk = self.plan.table(t).primary_key.clone();
        Ok(self.find(t, &pk, key, &pk[..1])?.is_none() && self.scratch.claim(-(t as i64) - 1, &key_bytes(key))?)
    }

    /// Gives the row a new primary key and records it in the key map.
    fn allocate_row(&mut self, a: usize, ordinal: u64, row: &[Value], created: bool) -> Result<bool> {
        let map = &self.maps[a];
        let (t, name) = (map.target, map.name.clone());
        if !map.in_key_map || map.pk_positions.is_empty() || map.pk_positions.len() != map.pk_sources.len() {
            return Ok(true);
        }
        let old = Self::pick(row, &map.pk_positions);
        let sources = map.pk_sources.clone();
        let edges = map.edges.clone();
        let mut new = Vec::with_capacity(old.len());
        let regenerated = sources.iter().zip(&old).any(|(s, v)| matches!(s, KeySource::Allocate) && !matches!(v, Value::Int(_)));
        for (i, source) in sources.iter().enumerate() {
            new.push(match *source {
                KeySource::Keep => old[i].clone(),
                KeySource::Allocate => self.new_key(t, i, &old[i])?,
                KeySource::Reference { edge, index } => {
                    let positions = &edges.iter().find(|(e, _)| *e == edge).expect("edge in archive").1;
                    match self.follow(edge, &Self::pick(row, positions))? {
                        Some((v, _)) => v[index].clone(),
                        None => {
                            self.problem(format!(
                                "table `{name}`: primary key {} refers to `{}` row that is not in the archive",
                                show(&old),
                                self.plan.name(self.plan.edges[edge].to)
                            ));
                            return Ok(false);
                        }
                    }
                }
            });
        }
        if regenerated {
            // Random keys of a short shape can collide: draw again until one is free.
            let mut attempts = 0;
            while !self.key_is_free(t, &new)? {
                attempts += 1;
                if attempts > 1000 {
                    return Err(Error::Unresolved(vec![format!(
                        "table `{name}`: no free primary key like {} after 1000 attempts",
                        show(&old)
                    )]));
                }
                for (i, source) in sources.iter().enumerate() {
                    if matches!(source, KeySource::Allocate) {
                        new[i] = regenerate(&old[i]);
                    }
                }
            }
        }
        self.scratch.map_key(keyset_id(t, 0), &key_bytes(&old), &codec::encode(&new), created)?;
        let in_sequence = match (sources.as_slice(), new.as_slice()) {
            ([KeySource::Allocate], [Value::Int(n)]) => {
                let first = *self.sequential.entry(a).or_insert(Some(*n - ordinal as i64));
                first.is_some_and(|f| f + ordinal as i64 == *n)
            }
            _ => false,
        };
        if !in_sequence {
            self.sequential.insert(a, None);
        }
        Ok(true)
    }

    /// Pass 1: keys for owned and created rows, matches for shared ones.
    fn allocate(&mut self, a: usize, ordinal: u64, row: &[Value]) -> Result<()> {
        self.conditions.observe(a, row);
        let (t, role) = (self.maps[a].target, self.maps[a].role);
        let name = self.maps[a].name.clone();
        match role {
            Role::Root | Role::Owned => {
                if self.allocate_row(a, ordinal, row, true)? {
                    self.counts.entry(name).or_default().created += 1;
                }
            }
            Role::Dependent => {
                if self.parents_created(a, row)? && self.allocate_row(a, ordinal, row, true)? {
                    self.counts.entry(name).or_default().created += 1;
                }
            }
            Role::Keep => {
                let natural = self.plan.tables[t].natural_key.clone().unwrap_or_default();
                let tm = &self.manifest.tables[a];
                let Some(positions) = natural.iter().map(|c| tm.column_index(c)).collect::<Option<Vec<_>>>() else {
                    self.problem(format!("kept table `{name}`: its key ({}) is not in the archive", natural.join(", ")));
                    return Ok(());
                };
                let values = Self::pick(row, &positions);
                if self.find(t, &natural, &values, &natural)?.is_some() {
                    // Kept rows keep their keys: every key set maps to itself.
                    for (ks, positions) in self.maps[a].keysets.iter().enumerate() {
                        if let Some(positions) = positions {
                            let old = Self::pick(row, positions);
                            self.scratch.map_key(keyset_id(t, ks), &key_bytes(&old), &codec::encode(&old), false)?;
                        }
                    }
                    self.counts.entry(name).or_default().matched += 1;
                } else {
                    self.problem(format!("kept table `{name}`: no row with ({}) = {} on the target", natural.join(", "), show(&values)));
                }
            }
            Role::Referenced => {
                if let Some(found) = self.match_shared(a, row)? {
                    map_found(&self.scratch, self.plan, &self.maps[a], row, &found)?;
                    self.counts.entry(name).or_default().matched += 1;
                } else if self.allocate_row(a, ordinal, row, true)? {
                    self.counts.entry(name).or_default().created += 1;
                }
            }
            Role::Excluded | Role::Unrelated => {}
        }
        Ok(())
    }

    /// Looks up a row on the target by the values of `columns`; returns the values of `output`.
    fn find(&mut self, t: usize, columns: &[String], values: &[Value], output: &[String]) -> Result<Option<Vec<Value>>> {
        self.engine.find_row(self.plan.table(t), columns, values, output)
    }

    /// A shared row's counterpart on the target, by natural key: the values of all its keysets.
    fn match_shared(&mut self, a: usize, row: &[Value]) -> Result<Option<Vec<Value>>> {
        let t = self.maps[a].target;
        let Some(natural) = self.plan.tables[t].natural_key.clone() else { return Ok(None) };
        let tm = &self.manifest.tables[a];
        let Some(positions) = natural.iter().map(|c| tm.column_index(c)).collect::<Option<Vec<_>>>() else {
            return Ok(None);
        };
        let mut values = Self::pick(row, &positions);
        // A natural key may contain references (a name unique per parent): compare rewritten.
        for (edge, edge_positions) in self.maps[a].edges.clone() {
            if !self.conditions.holds(edge, row) {
                continue;
            }
            for (k, p) in positions.iter().enumerate() {
                if let Some(j) = edge_positions.iter().position(|x| x == p) {
                    if let Some((new, _)) = self.follow(edge, &Self::pick(row, &edge_positions))? {
                        values[k] = new[j].clone();
                    }
                }
            }
        }
        self.find(t, &natural, &values, &self.plan.tables[t].key_columns())
    }

    fn parents_created(&self, a: usize, row: &[Value]) -> Result<bool> {
        for (edge, positions) in &self.maps[a].edges {
            if self.plan.tables[self.plan.edges[*edge].to].role == Role::Referenced {
                let old = Self::pick(row, positions);
                if old.iter().any(Value::is_null) || !self.conditions.holds(*edge, row) {
                    continue;
                }
                if !matches!(self.follow(*edge, &old)?, Some((_, true))) {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Whether this archive row becomes a row on the target.
    fn is_inserted(&self, a: usize, row: &[Value]) -> Result<bool> {
        let map = &self.maps[a];
        Ok(match map.role {
            Role::Root | Role::Owned => true,
            Role::Keep | Role::Excluded | Role::Unrelated => false,
            Role::Dependent => self.parents_created(a, row)?,
            Role::Referenced => match &map.keysets.first() {
                Some(Some(positions)) => {
                    matches!(self.lookup(map.target, 0, &Self::pick(row, positions))?, Some((_, true)))
                }
                _ => true,
            },
        })
    }

    /// The row with its new key and rewritten references, and which positions hold new values.
    /// Unresolvable references are reported (`report`) or cut.
    fn rewrite(&mut self, a: usize, ordinal: u64, row: &[Value], pass: Pass) -> Result<Option<(Vec<Value>, Vec<bool>)>> {
        let mut out = row.to_vec();
        let mut fresh = vec![false; row.len()];
        let t = self.maps[a].target;
        let pk_positions = self.maps[a].pk_positions.clone();
        if let Some(Some(first)) = self.sequential.get(&a) {
            out[pk_positions[0]] = Value::Int(first + ordinal as i64);
            fresh[pk_positions[0]] = true;
        } else if self.maps[a].in_key_map && !pk_positions.is_empty() && pk_positions.len() == self.maps[a].pk_sources.len() {
            if let Some((new, _)) = self.lookup(t, 0, &Self::pick(row, &pk_positions))? {
                for (k, &p) in pk_positions.iter().enumerate() {
                    fresh[p] = !matches!(self.maps[a].pk_sources[k], KeySource::Keep);
                    out[p] = new[k].clone();
                }
            }
        }
        for (edge, positions) in self.maps[a].edges.clone() {
            let old = Self::pick(row, &positions);
            if old.iter().any(Value::is_null) || !self.conditions.holds(edge, row) {
                continue;
            }
            match self.follow(edge, &old)? {
                Some((new, created)) => {
                    for (k, &p) in positions.iter().enumerate() {
                        out[p] = new[k].clone();
                        fresh[p] |= created || self.plan.tables[self.plan.edges[edge].to].role.is_owned();
                    }
                }
                None if self.plan.edges[edge].nullable => {
                    for &p in &positions {
                        out[p] = Value::Null;
                    }
                    if pass == Pass::Write {
                        *self.cut.entry((t, edge)).or_default() += 1;
                    }
                }
                // Other key sets are mapped as the check pass goes: one of a later row is
                // checked again once they all are.
                None if pass == Pass::Check
                    && self.plan.tables[self.plan.edges[edge].to].keysets.first() != Some(&self.plan.edges[edge].to_columns) =>
                {
                    self.forward_misses = true;
                }
                None => {
                    let e = &self.plan.edges[edge];
                    let msg = format!(
                        "table `{}`: ({}) = {} refers to a `{}` row that is neither in the archive nor on the target",
                        self.maps[a].name,
                        e.from_columns.join(", "),
                        show(&old),
                        self.plan.name(e.to)
                    );
                    self.problem(msg);
                    return Ok(None);
                }
            }
        }
        if let Some(files) = &self.files {
            for &(p, set) in &self.file_columns[a] {
                out[p] = files.relocation(set).value(&out[p]);
            }
        }
        Ok(Some((out, fresh)))
    }

    /// Pass 2: rewritten rows, their other keys, and unique values that collide on the target.
    fn check(&mut self, a: usize, ordinal: u64, row: &[Value]) -> Result<()> {
        if !self.maps[a].needs_check || !self.is_inserted(a, row)? {
            return Ok(());
        }
        let Some((mut new, fresh)) = self.rewrite(a, ordinal, row, Pass::Check)? else { return Ok(()) };
        let t = self.maps[a].target;
        for UniqueCheck { id, columns, positions, policy } in self.maps[a].uniques.clone() {
            let values = Self::pick(&new, &positions);
            if values.iter().any(Value::is_null) || positions.iter().any(|&p| fresh[p]) {
                continue;
            }
            let taken = self.find(t, &columns, &values, &columns[..1])?.is_some() || !self.scratch.claim(id, &key_bytes(&values))?;
            if !taken {
                continue;
            }
            let name = self.maps[a].name.clone();
            let sensitive = |c: &str| self.plan.tables[t].is_sensitive(c);
            match policy {
                Some((column, p, pol @ (ConflictPolicy::Suffix | ConflictPolicy::Regenerate))) => {
                    let original = new[p].clone();
                    let mut candidate = values.clone();
                    let k = positions.iter().position(|&x| x == p).unwrap_or(0);
                    for attempt in 2u64.. {
                        candidate[k] = match (pol, &original) {
                            (ConflictPolicy::Suffix, Value::Text(s)) => Value::Text(format!("{s}-{attempt}")),
                            _ => regenerate(&original),
                        };
                        let free = self.find(t, &columns, &candidate, &columns[..1])?.is_none();
                        if free && self.scratch.claim(id, &key_bytes(&candidate))? {
                            break;
                        }
                        if attempt > 10_000 {
                            return Err(Error::Plan(format!("table `{name}`: no free value for `{column}` after 10000 attempts")));
                        }
                    }
                    self.scratch.set_override(a, ordinal, &column, &codec::encode(&candidate[k..=k]))?;
                    self.overridden.insert(a);
                    new[p] = candidate[k].clone();
                    let hide = sensitive(&column);
                    self.renamed.push(Renamed {
                        table: name,
                        column: column.clone(),
                        from: (!hide).then(|| plain(&original)),
                        to: (!hide).then(|| plain(&candidate[k])),
                    });
                }
                _ => {
                    let shown = if columns.iter().any(|c| sensitive(c)) { "(sensitive value)".to_string() } else { show(&values) };
                    self.conflicts.push(format!(
                        "table `{name}`, unique ({}): {shown} already exists; \
                         hint: set `on_conflict.\"{name}.{}\"` to `suffix` or `regenerate` in orgport.toml",
                        columns.join(", "),
                        columns.last().map(String::as_str).unwrap_or_default()
                    ));
                }
            }
        }
        // Other key sets after the conflict policies: references follow the values written.
        for (ks, positions) in self.maps[a].keysets.clone().iter().enumerate().skip(1) {
            if let Some(positions) = positions {
                let old = Self::pick(row, positions);
                let created = Self::pick(&new, positions);
                self.scratch.map_key(keyset_id(t, ks), &key_bytes(&old), &codec::encode(&created), true)?;
            }
        }
        Ok(())
    }

    /// After the check pass, when a reference to another key set could not be followed yet.
    fn recheck(&mut self, a: usize, ordinal: u64, row: &[Value]) -> Result<()> {
        if self.is_inserted(a, row)? {
            self.rewrite(a, ordinal, row, Pass::Recheck)?;
        }
        Ok(())
    }

    /// Pass 3: the row as it is written.
    fn write(&mut self, a: usize, ordinal: u64, row: &[Value]) -> Result<()> {
        if !self.is_inserted(a, row)? {
            return Ok(());
        }
        // A reference that cannot be followed is a problem, reported with the others after the
        // pass; the transaction is then abandoned.
        let Some((mut new, _)) = self.rewrite(a, ordinal, row, Pass::Write)? else { return Ok(()) };
        if self.overridden.contains(&a) {
            let tm = &self.manifest.tables[a];
            for (column, bytes) in self.scratch.overrides(a, ordinal)? {
                if let Some(p) = tm.column_index(&column) {
                    new[p] = codec::decode(&bytes, 1).map_err(Error::Stream)?.remove(0);
                }
            }
        }
        self.defer_forward_references(a, ordinal, &mut new)?;
        for (_, kind, nullable) in &self.maps[a].fill {
            new.push(if *nullable { Value::Null } else { unusable(*kind) });
        }
        if self.batch.table != a {
            self.send_batch()?;
            self.batch.table = a;
        }
        self.batch.bytes +=
            new.iter().map(|v| 8 + if let Value::Blob(b) = v { b.len() } else { v.as_str().map_or(0, str::len) }).sum::<usize>();
        self.batch.rows.push(new);
        if self.batch.is_full() {
            self.send_batch()?;
        }
        Ok(())
    }

    /// References the engine would check before their row is written go in as NULL and are
    /// remembered, to be set by [`Importer::apply_deferred`] once every row is in.
    fn defer_forward_references(&mut self, a: usize, ordinal: u64, new: &mut [Value]) -> Result<()> {
        for (edge, positions) in &self.maps[a].edges {
            if !self.plan.null_then_update.contains(edge) {
                continue;
            }
            let values = Self::pick(new, positions);
            if values.iter().any(Value::is_null) {
                continue;
            }
            // A self-reference to a row allocated (so written) earlier needs no deferring.
            let e = &self.plan.edges[*edge];
            if let (true, Some(Some(first)), [Value::Int(k)]) = (e.from == e.to, self.sequential.get(&a), values.as_slice()) {
                if k - first < ordinal as i64 {
                    continue;
                }
            }
            let key = Self::pick(new, &self.maps[a].pk_positions);
            self.scratch.defer_update(a, *edge, &codec::encode(&key), &codec::encode(&values))?;
            for &p in positions {
                new[p] = Value::Null;
            }
        }
        Ok(())
    }

    /// Sets the references written as NULL, now that every row they name exists.
    fn apply_deferred(&mut self) -> Result<()> {
        const CHUNK: usize = 1000;
        let d = self.engine.dialect();
        let mut last = 0;
        loop {
            let chunk = self.scratch.deferred_after(last, CHUNK)?;
            for (id, a, edge, key, value) in &chunk {
                last = *id;
                let map = &self.maps[*a];
                let table = self.plan.table(map.target);
                let columns = &self.plan.edges[*edge].from_columns;
                let key_columns: Vec<&String> = map.pk_positions.iter().map(|&p| &self.manifest.tables[*a].columns[p].name).collect();
                let sets: Vec<String> =
                    columns.iter().enumerate().map(|(i, c)| format!("{} = {}", d.quote_ident(c), d.placeholder(i + 1))).collect();
                let wheres: Vec<String> = key_columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{} = {}", d.quote_ident(c), d.placeholder(columns.len() + i + 1)))
                    .collect();
                let sql = format!("UPDATE {} SET {} WHERE {}", d.table_ref(table), sets.join(", "), wheres.join(" AND "));
                let mut params = codec::decode(value, columns.len()).map_err(Error::Stream)?;
                params.extend(codec::decode(key, key_columns.len()).map_err(Error::Stream)?);
                let changed = self
                    .engine
                    .execute(&sql, &params)
                    .map_err(|e| e.doing(&format!("cannot set `{}`({})", map.name, columns.join(", "))))?;
                if changed != 1 {
                    return Err(Error::Plan(format!(
                        "table `{}`: setting ({}) changed {changed} rows instead of 1",
                        map.name,
                        columns.join(", ")
                    )));
                }
            }
            if chunk.len() < CHUNK {
                return Ok(());
            }
        }
    }

    fn send_batch(&mut self) -> Result<()> {
        if self.batch.rows.is_empty() {
            return Ok(());
        }
        let map = &self.maps[self.batch.table];
        // Engines name the table in their errors: with bulk writes, a failure may surface later.
        let result = self.engine.insert_rows(self.plan.table(map.target), &map.insert_columns, &self.batch.rows);
        self.batch.rows.clear();
        self.batch.bytes = 0;
        result
    }
}

/// Maps every key set of an archive row to those of the row found on the target for it (`found`
/// holds the table's key columns).
pub(crate) fn map_found(scratch: &Scratch, plan: &Plan, map: &TableMap, row: &[Value], found: &[Value]) -> Result<()> {
    let t = map.target;
    for (ks, positions) in map.keysets.iter().enumerate() {
        if let Some(positions) = positions {
            let old: Vec<Value> = positions.iter().map(|&p| row[p].clone()).collect();
            let new = plan.tables[t].keyset_values(ks, found);
            scratch.map_key(keyset_id(t, ks), &key_bytes(&old), &codec::encode(&new), false)?;
        }
    }
    Ok(())
}

/// Each pass reopens the archive: it must still be the one the first pass read.
pub(crate) fn same_archive(first: &Manifest, now: &Manifest) -> Result<()> {
    if first.data.sha256 != now.data.sha256 || first.tables.len() != now.tables.len() {
        return Err(Error::Corrupt("the archive changed while it was being read".into()));
    }
    Ok(())
}

/// A value as the user wrote it: text without quotes.
fn plain(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.display())
}

pub(crate) fn show(values: &[Value]) -> String {
    let parts: Vec<String> = values.iter().map(Value::display).collect();
    if parts.len() == 1 {
        parts.into_iter().next().unwrap_or_default()
    } else {
        format!("({})", parts.join(", "))
    }
}
