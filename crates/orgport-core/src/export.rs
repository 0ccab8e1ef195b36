//! Export: one organisation's rows, read from one consistent snapshot, into an archive.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::path::Path;

use crate::archive::{ArchiveWriter, ColumnManifest, CutReport, Manifest, TableManifest};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::files::{undo_copies, FilesExport, FilesOut};
use crate::keys::key_bytes;
use crate::plan::{Plan, Role};
use crate::progress::Progress;
use crate::readahead::ReadAhead;
use crate::select::{KeyColumn, Membership, Selection, TableQuery, TEST_ON_CLIENT};
use crate::value::{parse_uuid, Value, ValueKind};

pub struct ExportOptions<'a> {
    /// Root keys as the user typed them.
    pub orgs: Vec<String>,
    /// Sensitive groups to include.
    pub with_groups: BTreeSet<String>,
    /// Where the compressed rows wait for the manifest (beside the output file is best).
    pub spool_dir: Option<&'a Path>,
    /// Connections reading tables at once, sharing the snapshot where the engine can
    /// ([`Engine::snapshot_readers`]); 1 reads every table on the one connection.
    pub jobs: usize,
    /// The organisations' files (the plan's `[files.*]`); None exports the rows alone.
    pub files: Option<FilesExport<'a>>,
}

/// Turns the text of a key into a value of the column's kind.
pub fn parse_key(text: &str, kind: ValueKind) -> Result<Value> {
    match kind {
        ValueKind::Integer => {
            text.trim().parse::<i64>().map(Value::Int).map_err(|_| Error::Plan(format!("organisation key `{text}` is not an integer")))
        }
        // Kept as typed: engines that store UUIDs as text compare them exactly.
        ValueKind::Uuid => parse_uuid(text)
            .map(|_| Value::Text(text.to_string()))
            .ok_or_else(|| Error::Plan(format!("organisation key `{text}` is not a UUID"))),
        // An untyped column (SQLite) most often holds integer keys.
        ValueKind::Any => Ok(text.trim().parse::<i64>().map(Value::Int).unwrap_or_else(|_| Value::Text(text.to_string()))),
        _ => Ok(Value::Text(text.to_string())),
    }
}

/// The columns of table `t` that go into an archive with these groups.
pub fn exported_columns(plan: &Plan, t: usize, with: &BTreeSet<String>) -> (Vec<String>, BTreeMap<String, String>) {
    let mut withheld = BTreeMap::new();
    let mut cols = Vec::new();
    for c in &plan.table(t).columns {
        if c.generated {
            continue;
        }
        match plan.tables[t].sensitive.get(&c.name) {
            Some(g) if !with.contains(g) => {
                withheld.insert(c.name.clone(), g.clone());
            }
            _ => cols.push(c.name.clone()),
        }
    }
    (cols, withheld)
}

/// Whether table `t` is exported at all with these groups.
pub fn table_included(plan: &Plan, t: usize, with: &BTreeSet<String>) -> bool {
    let p = &plan.tables[t];
    p.role.is_exported() && p.group.as_ref().is_none_or(|g| with.contains(g))
}

/// Fails naming the first organisation (as the user typed it) that has no root row.
pub(crate) fn check_orgs_exist(engine: &mut dyn Engine, plan: &Plan, orgs: &[Value], typed: &[String]) -> Result<()> {
    let root = plan.table(plan.root);
    let key = std::slice::from_ref(&plan.root_key);
    for (org, text) in orgs.iter().zip(typed) {
        if engine.find_row(root, key, std::slice::from_ref(org), key)?.is_none() {
            return Err(Error::OrgNotFound { table: root.qualified(), key: text.clone() });
        }
    }
    Ok(())
}

pub fn export(
    engine: &mut dyn Engine,
    plan: &Plan,
    options: &ExportOptions,
    out: &mut dyn Write,
    progress: &dyn Progress,
) -> Result<Manifest> {
    let groups = plan.groups();
    for g in &options.with_groups {
        if !groups.contains(g) {
            let known: Vec<&str> = groups.iter().map(String::as_str).collect();
            return Err(Error::Config(format!(
                "unknown sensitive group `{g}` in `--with` (groups of this plan: {})",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            )));
        }
    }
    if options.orgs.is_empty() {
        return Err(Error::Plan("no organisation to export: pass `--org KEY`".into()));
    }
    let kind = plan.root_key_kind();
    let orgs: Vec<Value> = options.orgs.iter().map(|o| parse_key(o, kind)).collect::<Result<_>>()?;

    engine.begin_snapshot()?;
    let readers = if options.jobs > 1 { engine.snapshot_readers(options.jobs - 1) } else { Ok(Vec::new()) };
    let result = readers.and_then(|readers| export_in_snapshot(engine, readers, plan, options, &orgs, out, progress));
    let ended = engine.end();
    let manifest = result?;
    ended?;
    Ok(manifest)
}

/// One table of the export: what is read, and how its rows are judged.
struct TableExport {
    t: usize,
    columns: Vec<String>,
    withheld: BTreeMap<String, String>,
    query: TableQuery,
    /// References whose columns are all exported, with their positions.
    edges: Vec<(usize, Vec<usize>)>,
}

impl TableExport {
    fn new(
        plan: &Plan,
        selection: &Selection,
        t: usize,
        columns: Vec<String>,
        withheld: BTreeMap<String, String>,
        memberships: &[Membership],
    ) -> Self {
        let query = selection.export_query(t, &columns, memberships);
        let edges = plan
            .edges_from(t)
            .filter_map(|(i, e)| {
                let idx: Option<Vec<usize>> = e.from_columns.iter().map(|c| columns.iter().position(|x| x == c)).collect();
                idx.map(|idx| (i, idx))
            })
            .collect();
        TableExport { t, columns, withheld, query, edges }
    }

    fn manifest(&self, plan: &Plan) -> TableManifest {
        let table = plan.table(self.t);
        TableManifest {
            name: table.qualified(),
            role: plan.tables[self.t].role,
            columns: self
                .columns
                .iter()
                .filter_map(|c| table.column(c))
                .map(|c| ColumnManifest {
                    name: c.name.clone(),
                    declared_type: c.declared_type.clone(),
                    kind: c.kind,
                    nullable: c.nullable,
                })
                .collect(),
            primary_key: table.primary_key.clone(),
            rows: 0,
            sha256: String::new(),
            withheld: self.withheld.clone(),
        }
    }
}

/// The values of one key column in the organisation's selected rows: integers in a compressed
/// bitmap (a bit or two per key where keys are dense, as sequences make them), anything else by
/// its bytes.
#[derive(Default)]
struct KeySet {
    integers: roaring::RoaringTreemap,
    others: HashSet<Vec<u8>>,
}

impl KeySet {
    fn insert(&mut self, v: &Value) {
        match v {
            Value::Int(k) => {
                self.integers.insert(*k as u64);
            }
            Value::Null => {}
            other => {
                self.others.insert(key_bytes(std::slice::from_ref(other)));
            }
        }
    }

    fn contains(&self, v: &Value) -> bool {
        match v {
            Value::Int(k) => self.integers.contains(*k as u64),
            other => self.others.contains(&key_bytes(std::slice::from_ref(other))),
        }
    }
}

/// What the export reads, in order: a table's rows, or before the first table that needs them,
/// the keys its references are tested against.
enum Read {
    Keys(KeyColumn, TableQuery),
    /// An index into the tables.
    Table(usize),
}

/// Decides, row by row and table after table, which references are cut and which rows are left
/// out; what it leaves out of one table is cut from the tables written after it.
struct Judge<'a> {
    plan: &'a Plan,
    cuts: BTreeMap<(usize, usize, &'static str), u64>,
    /// Rows left out because they point at another organisation's row: their keys, per keyset,
    /// so rows pointing at them are cut too. Few in practice, so memory stays small.
    dropped: HashMap<(usize, Vec<String>), HashSet<Vec<u8>>>,
    key_sets: HashMap<KeyColumn, KeySet>,
}

impl Judge<'_> {
    /// Fills `row` with the exported values of a query row; false when the row is left out.
    fn judge(&mut self, table: &TableExport, values: &[Value], row: &mut Vec<Value>) -> bool {
        let plan = self.plan;
        let (t, ncols) = (table.t, table.columns.len());
        row.clear();
        row.extend_from_slice(&values[..ncols]);
        let mut keep_row = true;
        for (edge, idx) in &table.edges {
            let e = &plan.edges[*edge];
            if idx.iter().any(|&i| row[i].is_null()) {
                continue;
            }
            let flagged = table.query.flagged.iter().position(|f| f == edge);
            let flag = flagged.map(|k| (&values[ncols + k], &table.query.memberships[k]));
            if e.condition.is_some() && matches!(flag, Some((Value::Null, _))) {
                // A polymorphic reference this row does not hold.
                continue;
            }
            let reason = if plan.tables[e.to].role == Role::Excluded {
                Some("points into an excluded table")
            } else {
                let outside = match flag {
                    Some((Value::Int(TEST_ON_CLIENT), Membership::Client(key))) => {
                        !self.key_sets.get(key).is_some_and(|set| set.contains(&row[idx[0]]))
                    }
                    Some((flag, _)) => matches!(flag, Value::Int(0)),
                    None => false,
                };
                let gone = !self.dropped.is_empty()
                    && self.dropped.get(&(e.to, e.to_columns.clone())).is_some_and(|set| {
                        let key: Vec<Value> = idx.iter().map(|&i| row[i].clone()).collect();
                        set.contains(&key_bytes(&key))
                    });
                (outside || gone).then_some("points at another organisation's row")
            };
            let Some(reason) = reason else { continue };
            if e.nullable {
                for &i in idx {
                    row[i] = Value::Null;
                }
                *self.cuts.entry((t, *edge, reason)).or_default() += 1;
            } else if plan.tables[e.to].role == Role::Excluded {
                *self.cuts.entry((t, *edge, "points into an excluded table (kept: column is NOT NULL)")).or_default() += 1;
            } else {
                keep_row = false;
                *self.cuts.entry((t, *edge, reason)).or_default() += 1;
            }
        }
        if !keep_row {
            for ks in &plan.tables[t].keysets {
                let key: Option<Vec<Value>> =
                    ks.iter().map(|c| table.columns.iter().position(|x| x == c).map(|i| row[i].clone())).collect();
                if let Some(key) = key {
                    self.dropped.entry((t, ks.clone())).or_default().insert(key_bytes(&key));
                }
            }
        }
        keep_row
    }
}

fn export_in_snapshot(
    engine: &mut dyn Engine,
    readers: Vec<Box<dyn Engine + Send>>,
    plan: &Plan,
    options: &ExportOptions,
    orgs: &[Value],
    out: &mut dyn Write,
    progress: &dyn Progress,
) -> Result<Manifest> {
    check_orgs_exist(engine, plan, orgs, &options.orgs)?;
    // Opened before the rows are read, so that a wrong store or credentials fail early.
    let mut files_out: Vec<FilesOut> = match &options.files {
        Some(files) => plan
            .files
            .iter()
            .map(|set| Ok(FilesOut { set, store: (files.open)(&set.store)?, column_names: set.column_names(plan), named: BTreeMap::new() }))
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };

    let selection = Selection::new(plan, engine.dialect(), orgs);
    let included: Vec<usize> = plan.order.iter().copied().filter(|&t| table_included(plan, t, &options.with_groups)).collect();
    // Per table: the key columns whose values its rows give, as they stream, to the tests of
    // references in later tables.
    let mut collected: HashMap<usize, Vec<(usize, KeyColumn)>> = HashMap::new();
    // Key columns no earlier table gives are read on their own, just before they are needed.
    let mut reads: Vec<Read> = Vec::new();
    let mut tables: Vec<TableExport> = Vec::new();
    for (i, &t) in included.iter().enumerate() {
        let mut memberships = Vec::new();
        for e in selection.flagged(t) {
            let Some(key) = selection.client_key(e) else {
                memberships.push(Membership::Server);
                continue;
            };
            let streamed_before = tables
                .iter()
                .find(|earlier| earlier.t == key.table)
                .and_then(|earlier| earlier.columns.iter().position(|c| *c == key.column));
            match streamed_before {
                Some(p) => {
                    let list = collected.entry(key.table).or_default();
                    if !list.iter().any(|(_, k)| *k == key) {
                        list.push((p, key.clone()));
                    }
                }
                None if !reads.iter().any(|r| matches!(r, Read::Keys(k, _) if *k == key)) => {
                    reads.push(Read::Keys(key.clone(), selection.key_query(&key)));
                }
                None => {}
            }
            memberships.push(Membership::Client(key));
        }
        let (columns, withheld) = exported_columns(plan, t, &options.with_groups);
        tables.push(TableExport::new(plan, &selection, t, columns, withheld, &memberships));
        reads.push(Read::Table(i));
    }
    let queries: Vec<&TableQuery> = reads
        .iter()
        .map(|read| match read {
            Read::Keys(_, query) => query,
            Read::Table(i) => &tables[*i].query,
        })
        .collect();
    if !readers.is_empty() {
        progress.note(&format!("reading tables on {} connections sharing one snapshot", readers.len() + 1));
    }
    let readahead = ReadAhead::new(reads.len(), readers.len());
    let mut writer = ArchiveWriter::new(options.spool_dir)?;
    let mut judge = Judge { plan, cuts: BTreeMap::new(), dropped: HashMap::new(), key_sets: HashMap::new() };

    std::thread::scope(|scope| {
        for reader in readers {
            let (readahead, queries) = (&readahead, &queries);
            scope.spawn(move || readahead.work(reader, queries, options.spool_dir));
        }
        let written = (|| {
            for (i, read) in reads.iter().enumerate() {
                let query = queries[i];
                let spool = readahead.take(i)?;
                let read_rows = |on_row: &mut dyn FnMut(&[Value]) -> Result<()>| match spool {
                    Some(spool) => spool.replay(query.kinds.len(), on_row),
                    None => engine.query(&query.sql, &query.params, &query.kinds, on_row),
                };
                let table = match read {
                    Read::Keys(key, _) => {
                        progress.begin("keys of", &format!("{}.{}", plan.name(key.table), key.column), None);
                        let mut set = KeySet::default();
                        read_rows(&mut |values| {
                            set.insert(&values[0]);
                            progress.rows(1);
                            Ok(())
                        })?;
                        judge.key_sets.insert(key.clone(), set);
                        progress.end();
                        continue;
                    }
                    Read::Table(t) => &tables[*t],
                };
                writer.begin_table(table.manifest(plan));
                progress.begin("export", &plan.name(table.t), None);
                let mut row: Vec<Value> = Vec::with_capacity(table.columns.len());
                // Key sets a query of their own already filled are whole.
                let collect: Vec<&(usize, KeyColumn)> =
                    collected.get(&table.t).into_iter().flatten().filter(|(_, key)| !judge.key_sets.contains_key(key)).collect();
                for (_, key) in &collect {
                    judge.key_sets.insert(key.clone(), KeySet::default());
                }
                // Key columns of files: (set, position, `table.column`).
                let file_columns: Vec<(usize, usize, String)> = files_out
                    .iter()
                    .enumerate()
                    .flat_map(|(s, out)| out.set.columns.iter().map(move |(t, c)| (s, *t, c)))
                    .filter(|&(_, t, _)| t == table.t)
                    .filter_map(|(s, t, c)| Some((s, table.columns.iter().position(|x| x == c)?, format!("{}.{c}", plan.name(t)))))
                    .collect();
                read_rows(&mut |values: &[Value]| {
                    if progress.cancelled() {
                        return Err(Error::Cancelled);
                    }
                    for (position, key) in &collect {
                        if let Some(set) = judge.key_sets.get_mut(key) {
                            set.insert(&values[*position]);
                        }
                    }
                    if !judge.judge(table, values, &mut row) {
                        return Ok(());
                    }
                    for (s, p, column) in &file_columns {
                        if let Value::Text(key) = &row[*p] {
                            if !key.is_empty() && !files_out[*s].named.contains_key(key) {
                                files_out[*s].named.insert(key.clone(), column.clone());
                            }
                        }
                    }
                    progress.rows(1);
                    writer.write_row(&row)
                })?;
                writer.end_table();
                progress.end();
            }
            Ok::<(), Error>(())
        })();
        readahead.stop();
        written
    })?;
    let cuts = judge.cuts;

    let cut = cuts
        .into_iter()
        .map(|((t, e, reason), rows)| {
            let edge = &plan.edges[e];
            let left_out = !edge.nullable && !reason.starts_with("points into");
            CutReport {
                table: plan.name(t),
                columns: edge.from_columns.clone(),
                to: plan.name(edge.to),
                reason: reason.to_string(),
                action: if left_out {
                    "left out".into()
                } else if edge.nullable {
                    "cut".into()
                } else {
                    "kept".into()
                },
                rows,
            }
        })
        .collect();
    let mut manifest = Manifest {
        format_version: 0,
        orgport_version: env!("CARGO_PKG_VERSION").to_string(),
        created_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        source_engine: engine.name().to_string(),
        root_table: plan.name(plan.root),
        root_key: plan.root_key.clone(),
        orgs: orgs.to_vec(),
        with_groups: options.with_groups.iter().cloned().collect(),
        tables: Vec::new(),
        cut,
        data: Default::default(),
        files: Vec::new(),
    };
    let Some(files) = &options.files else { return writer.finish(manifest, out) };
    // Objects copied to `--files-to` are removed again if the archive is not written.
    let copied = std::sync::Mutex::new(Vec::new());
    let written = (|| {
        for set in &files_out {
            let mut embed = |input: &mut dyn std::io::Read| writer.embed_file(input);
            manifest.files.push(set.export(orgs, files, &mut embed, &copied, progress)?);
        }
        writer.finish(manifest, out)
    })();
    written.map_err(|e| undo_copies(e, copied.into_inner().expect("not poisoned"), files.open))
}
