//! Verify: the imported organisation, re-read from the target, equals the archive.
//!
//! Nothing records which new key each archive row received, so rows are paired by content: a
//! row's signature is its values with new keys left out and references replaced by the keys of
//! the rows already paired. Tables are paired in archive order (parents first); references to
//! later tables and self-references are checked once every table is paired.

use std::collections::BTreeMap;
use std::io::Read;

use serde::Serialize;

use crate::archive::{codec, ArchiveReader, Manifest};
use crate::conditions::Conditions;
use crate::config::ConflictPolicy;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::export::parse_key;
use crate::files::FilesIn;
use crate::import::{keyset_id, map_tables, show, KeySource, Opener, TableMap};
use crate::keys::key_bytes;
use crate::plan::{Plan, Role};
use crate::progress::Progress;
use crate::scratch::Scratch;
use crate::select::Selection;
use crate::store::StoreOpener;
use crate::value::Value;

const MAX_LISTED: usize = 20;

#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    pub tables: BTreeMap<String, TableVerify>,
    /// Files of the archive found on the target with their size and checksum.
    pub files_equal: u64,
    pub differences: Vec<String>,
    pub difference_count: u64,
    /// Tables not compared, and why.
    pub skipped: Vec<String>,
}

impl VerifyReport {
    pub fn is_equal(&self) -> bool {
        self.difference_count == 0
    }

    fn differ(&mut self, msg: String) {
        self.difference_count += 1;
        if self.differences.len() < MAX_LISTED {
            self.differences.push(msg);
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct TableVerify {
    pub archive_rows: u64,
    pub target_rows: u64,
    pub equal: u64,
}

/// How each column of a table takes part in the comparison.
#[derive(Clone, Copy, PartialEq)]
enum Compare {
    /// Compared as is.
    Plain,
    /// A new key: not comparable.
    Skip,
    /// The root's key: the archive's goes through the `--org` mapping, so each organisation
    /// pairs with its own copy even where two are alike in everything else.
    RootKey,
    /// A reference to a table already paired: the archive value goes through the key map.
    Mapped(usize),
    /// A reference checked after every table is paired.
    Later(usize),
    /// A value the import may have suffixed.
    Suffixed,
    /// An object key: the archive's moves to the new organisation's prefix (file set `.0`).
    Relocated(usize),
}

struct Verifier<'a> {
    plan: &'a Plan,
    /// The archive comes from another engine: numbers compare by their digits.
    cross_engine: bool,
    manifest: Manifest,
    maps: Vec<TableMap>,
    scratch: Scratch,
    compare: Vec<Vec<Compare>>,
    /// Per archive table, whether it pairs by ordinal (see [`Verifier::pairs_by_ordinal`]).
    ordered: Vec<bool>,
    /// Per archive table of shared rows, whether some could not be looked up by natural key
    /// (none, or NULL): the import created them, so they are paired by content.
    created_shared: Vec<bool>,
    conditions: Conditions,
    /// The archive's files, when it carries any.
    files: Option<FilesIn>,
    report: VerifyReport,
}

/// Compares the organisations `orgs` (their keys on the target, in the archive's order) with the
/// archive; `stores` opens the target's file stores when the archive carries files, which are
/// read back `file_jobs` at a time.
pub fn verify(
    engine: &mut dyn Engine,
    plan: &Plan,
    open: &Opener,
    orgs: &[String],
    stores: Option<&StoreOpener>,
    file_jobs: usize,
    progress: &dyn Progress,
) -> Result<VerifyReport> {
    let manifest = crate::archive::read_manifest(&mut open()?)?;
    if orgs.len() != manifest.orgs.len() {
        return Err(Error::Plan(format!(
            "the archive holds {} organisation(s); pass one `--org` for each, in the archive's order",
            manifest.orgs.len()
        )));
    }
    let maps = map_tables(plan, &manifest)?;
    let conditions = Conditions::new(engine, plan, &manifest)?;
    let kind = plan.root_key_kind();
    let new_orgs: Vec<Value> = orgs.iter().map(|o| parse_key(o, kind)).collect::<Result<_>>()?;
    let scratch = Scratch::new()?;
    for (old, new) in manifest.orgs.iter().zip(&new_orgs) {
        scratch.map_key(keyset_id(plan.root, 0), &key_bytes(std::slice::from_ref(old)), &codec::encode(std::slice::from_ref(new)), true)?;
    }
    let pairs: Vec<(Value, Value)> = manifest.orgs.iter().cloned().zip(new_orgs.iter().cloned()).collect();
    let mut files = FilesIn::open(&manifest, &plan.files, stores)?;
    if let Some(files) = &mut files {
        files.place(&manifest, &plan.files, &pairs);
    }
    engine.begin_snapshot()?;
    let cross_engine = manifest.source_engine != engine.name();
    let mut v = Verifier {
        plan,
        cross_engine,
        compare: Vec::new(),
        ordered: Vec::new(),
        created_shared: Vec::new(),
        manifest,
        maps,
        scratch,
        conditions,
        files,
        report: VerifyReport::default(),
    };
    let result = v.run(engine, open, &new_orgs, orgs, progress);
    let result = result.and_then(|()| v.check_files(file_jobs, progress));
    let ended = engine.end();
    result?;
    ended?;
    Ok(v.report)
}

impl Verifier<'_> {
    fn run(
        &mut self,
        engine: &mut dyn Engine,
        open: &Opener,
        new_orgs: &[Value],
        org_texts: &[String],
        progress: &dyn Progress,
    ) -> Result<()> {
        crate::export::check_orgs_exist(engine, self.plan, new_orgs, org_texts)?;
        self.compare = (0..self.maps.len()).map(|a| self.plan_comparison(a)).collect();
        self.ordered = (0..self.maps.len()).map(|a| self.pairs_by_ordinal(a)).collect();
        self.created_shared = vec![false; self.maps.len()];
        let selection = Selection::new(self.plan, engine.dialect(), new_orgs);
        let mut reader = ArchiveReader::open(open()?)?;
        crate::import::same_archive(&self.manifest, reader.manifest())?;
        // A second pass over the archive, a table behind the first: it hands the rows of a table
        // paired by ordinal to the comparison with the target's, so they need not be stored.
        let mut behind = ArchiveReader::open(open()?)?;
        let mut next = 0;
        let mut ordinal = 0u64;
        while let Some((a, row)) = reader.next_row()? {
            while next < a {
                self.finish_table(engine, next, &selection, &mut behind, progress)?;
                next += 1;
                ordinal = 0;
            }
            self.add_archive_row(engine, a, ordinal, row)?;
            ordinal += 1;
        }
        while next < self.maps.len() {
            self.finish_table(engine, next, &selection, &mut behind, progress)?;
            next += 1;
        }
        self.check_later()
    }

    fn plan_comparison(&self, a: usize) -> Vec<Compare> {
        let map = &self.maps[a];
        let tm = &self.manifest.tables[a];
        let mut out = vec![Compare::Plain; tm.columns.len()];
        for (k, &p) in map.pk_positions.iter().enumerate() {
            if matches!(map.pk_sources.get(k), Some(KeySource::Allocate)) {
                out[p] = if map.target == self.plan.root { Compare::RootKey } else { Compare::Skip };
            }
        }
        for (edge, positions) in &map.edges {
            let to = self.plan.edges[*edge].to;
            if !self.plan.tables[to].role.is_mapped() {
                continue;
            }
            // A polymorphic column's target varies by row: checked once every table is paired.
            let earlier = self.maps.iter().position(|m| m.target == to).is_some_and(|b| b < a) && !self.conditions.is_conditional(*edge);
            for &p in positions {
                out[p] = if earlier { Compare::Mapped(*edge) } else { Compare::Later(*edge) };
            }
        }
        for &(p, set) in &crate::files::key_columns(&self.manifest)[a] {
            out[p] = Compare::Relocated(set);
        }
        for (column, policy) in &self.plan.tables[map.target].on_conflict {
            if let Some(p) = tm.column_index(column) {
                match policy {
                    ConflictPolicy::Suffix => out[p] = Compare::Suffixed,
                    ConflictPolicy::Regenerate => out[p] = Compare::Skip,
                    ConflictPolicy::Fail => {}
                }
            }
        }
        out
    }

    /// The reference among those on `edge`'s columns that the archive row holds: `edge` itself
    /// unless it is polymorphic; None when the row holds none of them (its value was kept).
    fn holding_edge(&self, a: usize, edge: usize, row: &[Value]) -> Option<usize> {
        if !self.conditions.is_conditional(edge) {
            return Some(edge);
        }
        let columns = &self.plan.edges[edge].from_columns;
        self.maps[a]
            .edges
            .iter()
            .map(|&(other, _)| other)
            .find(|&other| self.plan.edges[other].from_columns == *columns && self.conditions.holds(other, row))
    }

    fn mapped(&self, edge: usize, old: &[Value]) -> Result<Option<Vec<Value>>> {
        let e = &self.plan.edges[edge];
        let Some(ks) = self.plan.tables[e.to].keysets.iter().position(|k| *k == e.to_columns) else {
            return Ok(None);
        };
        let found = self.scratch.lookup_key(keyset_id(e.to, ks), &key_bytes(old))?;
        found.map(|(bytes, _)| codec::decode(&bytes, old.len()).map_err(Error::Stream)).transpose()
    }

    /// The comparable values of an archive row (`archive` true) or a target row.
    fn comparable(&self, values: &[Value]) -> Vec<u8> {
        if self.cross_engine {
            crate::keys::cross_engine_bytes(values)
        } else {
            key_bytes(values)
        }
    }

    fn signature(&self, a: usize, row: &[Value], archive: bool) -> Result<Vec<u8>> {
        let mut sig = Vec::with_capacity(row.len());
        let compare = &self.compare[a];
        for (p, value) in row.iter().enumerate() {
            match compare[p] {
                Compare::Plain => sig.push(value.clone()),
                Compare::RootKey if archive => {
                    let found = self.scratch.lookup_key(keyset_id(self.plan.root, 0), &key_bytes(std::slice::from_ref(value)))?;
                    let new = found.map(|(bytes, _)| codec::decode(&bytes, 1).map_err(Error::Stream)).transpose()?;
                    sig.push(new.and_then(|n| n.into_iter().next()).unwrap_or(Value::Null));
                }
                Compare::Mapped(edge) if archive => {
                    let positions = &self.maps[a].edges.iter().find(|(e, _)| *e == edge).expect("edge").1;
                    let old: Vec<Value> = positions.iter().map(|&q| row[q].clone()).collect();
                    let k = positions.iter().position(|&q| q == p).unwrap_or(0);
                    let new = if old.iter().any(Value::is_null) { None } else { self.mapped(edge, &old)? };
                    // A reference the import could not follow was cut to NULL.
                    sig.push(new.map(|n| n[k].clone()).unwrap_or(Value::Null));
                }
                Compare::Relocated(set) if archive => sig.push(self.relocated(set, value)),
                Compare::Mapped(_) | Compare::RootKey | Compare::Relocated(_) => sig.push(value.clone()),
                Compare::Skip | Compare::Later(_) | Compare::Suffixed => {}
            }
        }
        Ok(self.comparable(&sig))
    }

    fn add_archive_row(&mut self, engine: &mut dyn Engine, a: usize, ordinal: u64, row: &[Value]) -> Result<()> {
        self.conditions.observe(a, row);
        self.report.tables.entry(self.maps[a].name.clone()).or_default().archive_rows += 1;
        match self.maps[a].role {
            Role::Root | Role::Owned if self.ordered[a] && self.checks_later(a) => {
                self.scratch.store_row(a as i64, ordinal, &codec::encode(row))
            }
            Role::Root | Role::Owned if self.ordered[a] => Ok(()),
            Role::Root | Role::Owned => {
                let sig = self.signature(a, row, true)?;
                self.scratch.add_pending(a, ordinal, &sig, &codec::encode(row))
            }
            Role::Referenced | Role::Keep => {
                if self.find_shared(engine, a, row)? {
                    return Ok(());
                }
                // Created by the import: paired by content among the rows the organisation
                // refers to, like an owned row.
                self.created_shared[a] = true;
                let sig = self.signature(a, row, true)?;
                self.scratch.add_pending(a, ordinal, &sig, &codec::encode(row))
            }
            _ => Ok(()),
        }
    }

    /// A shared row must exist on the target under its natural key (kept rows under their key).
    /// False when it has none to look up by (no natural key, or a NULL in it).
    fn find_shared(&mut self, engine: &mut dyn Engine, a: usize, row: &[Value]) -> Result<bool> {
        let t = self.maps[a].target;
        let tm = &self.manifest.tables[a];
        let Some(natural) = self.plan.tables[t].natural_key.clone() else {
            return Ok(false);
        };
        let Some(positions) = natural.iter().map(|c| tm.column_index(c)).collect::<Option<Vec<_>>>() else {
            return Ok(false);
        };
        let mut values: Vec<Value> = positions.iter().map(|&p| row[p].clone()).collect();
        if values.iter().any(Value::is_null) {
            // A NULL natural key matches nothing: the import created the row.
            return Ok(false);
        }
        // A natural key may contain references (a name unique per parent): looked up rewritten,
        // as the import did.
        for (edge, edge_positions) in self.maps[a].edges.clone() {
            if !self.conditions.holds(edge, row) {
                continue;
            }
            let old: Vec<Value> = edge_positions.iter().map(|&q| row[q].clone()).collect();
            let Some(new) = self.mapped(edge, &old)? else {
                continue;
            };
            for (k, p) in positions.iter().enumerate() {
                if let Some(j) = edge_positions.iter().position(|x| x == p) {
                    values[k] = new[j].clone();
                }
            }
        }
        match engine.find_row(self.plan.table(t), &natural, &values, &self.plan.tables[t].key_columns())? {
            Some(found) => {
                crate::import::map_found(&self.scratch, self.plan, &self.maps[a], row, &found)?;
                self.report.tables.entry(self.maps[a].name.clone()).or_default().equal += 1;
            }
            None => {
                let name = self.maps[a].name.clone();
                self.report.differ(format!("table `{name}`: no row with {} = {} on the target", natural.join(", "), show(&values)));
            }
        }
        Ok(true)
    }

    /// New integer keys are allocated in archive order, so the target's rows in key order pair
    /// with the archive's one by one; other tables are paired by signature.
    fn pairs_by_ordinal(&self, a: usize) -> bool {
        let map = &self.maps[a];
        matches!(map.pk_sources.as_slice(), [KeySource::Allocate])
            && self.manifest.tables[a].columns[map.pk_positions[0]].kind == crate::value::ValueKind::Integer
    }

    /// Whether some columns of table `a` are compared once every table is paired.
    fn checks_later(&self, a: usize) -> bool {
        self.compare[a].iter().any(|c| matches!(c, Compare::Later(_) | Compare::Suffixed))
    }

    /// Pairs the target's rows of table `a` with the archive's; `behind` is at table `a`'s rows
    /// and is left past them.
    fn finish_table(
        &mut self,
        engine: &mut dyn Engine,
        a: usize,
        selection: &Selection,
        behind: &mut ArchiveReader<Box<dyn Read>>,
        progress: &dyn Progress,
    ) -> Result<()> {
        let role = self.maps[a].role;
        let archive_rows = self.manifest.tables[a].rows;
        // Shared rows found by natural key are among the target's selected rows too.
        let ordered = self.ordered[a] && role.is_owned();
        let mut next_behind = || -> Result<Vec<Value>> {
            match behind.next_row()? {
                Some((b, row)) if b == a => Ok(row.to_vec()),
                _ => Err(Error::Corrupt(format!("table `{}` holds fewer rows than its manifest says", self.maps[a].name))),
            }
        };
        if !ordered {
            for _ in 0..archive_rows {
                next_behind()?;
            }
        }
        let name = self.maps[a].name.clone();
        if !role.is_owned() && !self.created_shared[a] {
            if role == Role::Dependent {
                self.report.skipped.push(format!("`{name}`: recreated only for created parents, not compared"));
            }
            return Ok(());
        }
        let t = self.maps[a].target;
        let tm = self.manifest.tables[a].clone();
        let columns: Vec<String> = tm.columns.iter().map(|c| c.name.clone()).collect();
        let query = selection.rows_query(t, &columns);
        progress.begin("verify", &name, Some(tm.rows));
        // Key maps only for tables others refer to; target rows kept only for later checks.
        let referenced = self.plan.edges.iter().any(|e| e.to == t);
        let keep_target = self.checks_later(a);
        let ncols = columns.len();
        let (mut target_rows, mut equal) = (0u64, 0u64);
        let mut unmatched_target: Vec<Vec<Value>> = Vec::new();
        let mut unmatched_count = 0u64;
        let mut differing: Vec<String> = Vec::new();
        {
            let this = &*self;
            let mut on_row = |values: &[Value]| -> Result<()> {
                let row = &values[..ncols];
                let ordinal = target_rows;
                target_rows += 1;
                progress.rows(1);
                let sig = this.signature(a, row, false)?;
                let paired = if ordered {
                    if ordinal < archive_rows {
                        let archive_row = next_behind()?;
                        if this.signature(a, &archive_row, true)? == sig {
                            equal += 1;
                        } else {
                            differing.push(this.describe(a, &name, ordinal, &archive_row, row, &columns));
                        }
                        Some((ordinal, archive_row))
                    } else {
                        None
                    }
                } else {
                    match this.scratch.take_pending(a, &sig)? {
                        Some(ordinal) => {
                            equal += 1;
                            let bytes = this.scratch.stored_row(a as i64, ordinal)?.unwrap_or_default();
                            Some((ordinal, codec::decode(&bytes, ncols).map_err(Error::Stream)?))
                        }
                        None => None,
                    }
                };
                let Some((ordinal, archive_row)) = paired else {
                    unmatched_count += 1;
                    if unmatched_target.len() < MAX_LISTED {
                        unmatched_target.push(row.to_vec());
                    }
                    return Ok(());
                };
                if referenced {
                    for (ks, positions) in this.maps[a].keysets.iter().enumerate() {
                        if let Some(positions) = positions {
                            let old: Vec<Value> = positions.iter().map(|&p| archive_row[p].clone()).collect();
                            let new: Vec<Value> = positions.iter().map(|&p| row[p].clone()).collect();
                            this.scratch.map_key(keyset_id(t, ks), &key_bytes(&old), &codec::encode(&new), true)?;
                        }
                    }
                }
                if keep_target {
                    this.scratch.store_row(-(a as i64) - 1, ordinal, &codec::encode(row))?;
                }
                Ok(())
            };
            engine.query(&query.sql, &query.params, &query.kinds, &mut on_row)?;
        }
        progress.end();
        let entry = self.report.tables.entry(name.clone()).or_default();
        entry.target_rows += target_rows;
        entry.equal += equal;
        for msg in differing {
            self.report.differ(msg);
        }
        let mut extra = unmatched_target.into_iter();
        let (missing, missing_count) = if ordered {
            let mut rows = Vec::new();
            for ordinal in target_rows..tm.rows {
                let row = next_behind()?;
                if rows.len() < MAX_LISTED {
                    rows.push((ordinal, codec::encode(&row)));
                }
            }
            (rows, tm.rows.saturating_sub(target_rows))
        } else {
            self.scratch.unmatched(a, MAX_LISTED)?
        };
        for (ordinal, bytes) in missing {
            let archive_row = codec::decode(&bytes, ncols).map_err(Error::Stream)?;
            let msg = match extra.next() {
                Some(other) => self.describe(a, &name, ordinal, &archive_row, &other, &columns),
                None => format!("table `{name}`: archive row {} is missing on the target", ordinal + 1),
            };
            self.report.differ(msg);
        }
        self.report.difference_count += missing_count.saturating_sub(MAX_LISTED as u64);
        let extra_count = unmatched_count.saturating_sub(missing_count);
        if extra_count > 0 && role.is_owned() {
            self.report.differ(format!("table `{name}`: {extra_count} row(s) on the target are not in the archive"));
        }
        Ok(())
    }

    /// An archive's object key where the import moved it.
    fn relocated(&self, set: usize, key: &Value) -> Value {
        self.files.as_ref().map_or_else(|| key.clone(), |files| files.relocation(set).value(key))
    }

    /// Every file of the archive against the object where the import put it.
    fn check_files(&mut self, jobs: usize, progress: &dyn Progress) -> Result<()> {
        let Some(files) = &self.files else {
            return Ok(());
        };
        let (equal, differences) = files.compare(&self.manifest, jobs, progress)?;
        self.report.files_equal = equal;
        for difference in differences {
            self.report.differ(difference);
        }
        Ok(())
    }

    /// An archive row and the target row that should equal it, with the columns that differ.
    fn describe(&self, a: usize, name: &str, ordinal: u64, archive: &[Value], target: &[Value], columns: &[String]) -> String {
        let diffs: Vec<String> = columns
            .iter()
            .enumerate()
            .filter(|(p, _)| match self.compare[a][*p] {
                Compare::Plain => archive[*p] != target[*p],
                Compare::Relocated(set) => self.relocated(set, &archive[*p]) != target[*p],
                _ => false,
            })
            .map(|(p, c)| {
                if self.plan.tables[self.maps[a].target].is_sensitive(c) {
                    format!("`{c}` differs (sensitive: values not shown)")
                } else {
                    format!("`{c}` is {} on the target, {} in the archive", target[p].display(), archive[p].display())
                }
            })
            .collect();
        if diffs.is_empty() {
            format!("table `{name}`: archive row {} differs from its target row in its references", ordinal + 1)
        } else {
            format!("table `{name}`, archive row {}: {}", ordinal + 1, diffs.join("; "))
        }
    }

    /// References to later tables and suffixed values, now that every table is paired.
    fn check_later(&mut self) -> Result<()> {
        for a in 0..self.maps.len() {
            let later: Vec<usize> =
                (0..self.compare[a].len()).filter(|&p| matches!(self.compare[a][p], Compare::Later(_) | Compare::Suffixed)).collect();
            if later.is_empty() || !self.maps[a].role.is_owned() {
                continue;
            }
            let name = self.maps[a].name.clone();
            let ncols = self.compare[a].len();
            for ordinal in 0..self.manifest.tables[a].rows {
                let (Some(archive), Some(target)) =
                    (self.scratch.stored_row(a as i64, ordinal)?, self.scratch.stored_row(-(a as i64) - 1, ordinal)?)
                else {
                    continue;
                };
                let archive = codec::decode(&archive, ncols).map_err(Error::Stream)?;
                let target = codec::decode(&target, ncols).map_err(Error::Stream)?;
                for &p in &later {
                    let column = &self.manifest.tables[a].columns[p].name;
                    // What the target should hold: a reference mapped to its new key.
                    let mut expected = archive[p].clone();
                    let ok = match self.compare[a][p] {
                        Compare::Later(edge) => {
                            let positions = &self.maps[a].edges.iter().find(|(e, _)| *e == edge).expect("edge").1;
                            let old: Vec<Value> = positions.iter().map(|&q| archive[q].clone()).collect();
                            let k = positions.iter().position(|&q| q == p).unwrap_or(0);
                            if let Some(edge) = self.holding_edge(a, edge, &archive).filter(|_| !old.iter().any(Value::is_null)) {
                                expected = self.mapped(edge, &old)?.map(|n| n[k].clone()).unwrap_or(Value::Null);
                            }
                            self.comparable(std::slice::from_ref(&expected)) == self.comparable(std::slice::from_ref(&target[p]))
                        }
                        _ => match (&archive[p], &target[p]) {
                            (Value::Text(old), Value::Text(new)) => {
                                new == old
                                    || new
                                        .strip_prefix(old.as_str())
                                        .and_then(|rest| rest.strip_prefix('-'))
                                        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
                            }
                            (x, y) => x == y,
                        },
                    };
                    if !ok {
                        let msg = if self.plan.tables[self.maps[a].target].is_sensitive(column) {
                            format!("table `{name}`, archive row {}: `{column}` differs (sensitive: values not shown)", ordinal + 1)
                        } else {
                            format!(
                                "table `{name}`, archive row {}: `{column}` is {} on the target, expected {}",
                                ordinal + 1,
                                target[p].display(),
                                expected.display()
                            )
                        };
                        self.report.differ(msg);
                    }
                }
            }
        }
        Ok(())
    }
}
