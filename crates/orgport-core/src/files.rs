//! An organisation's files: objects in the stores declared under `[files.NAME]`, found under the
//! organisation's key prefix and in key columns of its rows.
//!
//! Export embeds them in the archive or copies them to another store, recording each with its
//! size and SHA-256. Import writes them under the new organisation's prefix before the rows
//! commit — never over an existing object, each checked against its checksum — and removes
//! them again if the import fails.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};

use serde::Serialize;

use crate::archive::{EmbeddedFiles, FileEntry, FileSetManifest, Hashing, Manifest};
use crate::config::{FilesConfig, Outside};
use crate::error::{Error, Result};
use crate::plan::Role;
use crate::progress::Progress;
use crate::schema::Schema;
use crate::store::{ObjectStore, StoreOpener};
use crate::value::{format_uuid, Value, ValueKind};

/// A store of files as the plan knows it.
#[derive(Debug, Clone, Serialize)]
pub struct FileSet {
    pub name: String,
    pub store: String,
    /// Key prefix template, `{org}` standing for the root key.
    pub prefix: Option<String>,
    /// Each key column: table and column name.
    pub columns: Vec<(usize, String)>,
    /// What becomes of objects the columns name outside the prefix.
    pub outside: Outside,
}

impl FileSet {
    /// The key columns as `table.column`.
    pub fn column_names(&self, plan: &crate::plan::Plan) -> Vec<String> {
        self.columns.iter().map(|(t, c)| format!("{}.{c}", plan.name(*t))).collect()
    }
}

/// Checks `[files.*]` against the schema and the tables' roles.
pub(crate) fn resolve(
    schema: &Schema,
    roles: &[Role],
    config: &BTreeMap<String, FilesConfig>,
    resolve_column: impl Fn(&str, &str) -> Result<(usize, String)>,
) -> Result<Vec<FileSet>> {
    let mut sets = Vec::new();
    for (name, files) in config {
        let key = format!("files.{name}");
        match &files.prefix {
            Some(prefix) => check_template(prefix, &key)?,
            None if files.columns.is_empty() => {
                return Err(Error::Config(format!(
                    "[{key}] has neither `prefix` nor `columns`: nothing says which of its objects are an organisation's"
                )))
            }
            None if files.outside == Outside::Refuse => {
                return Err(Error::Config(format!("[{key}] has `outside = \"refuse\"` and no `prefix`: every object would be outside it")))
            }
            None => {}
        }
        let mut columns = Vec::new();
        for item in &files.columns {
            let (t, column) = resolve_column(item, &key)?;
            let table = &schema.tables[t];
            if !roles[t].is_owned() {
                return Err(Error::Config(format!(
                    "{key}: `{item}` is in `{}`, which is not an organisation's own table: its keys would name other organisations' files",
                    table.qualified()
                )));
            }
            let kind = table.column(&column).map(|c| c.kind);
            if !matches!(kind, Some(ValueKind::Text | ValueKind::Any)) {
                return Err(Error::Config(format!("{key}: `{item}` does not hold text, so it cannot hold object keys")));
            }
            columns.push((t, column));
        }
        sets.push(FileSet {
            name: name.clone(),
            store: files.store.clone(),
            prefix: files.prefix.clone(),
            columns,
            outside: files.outside,
        });
    }
    Ok(sets)
}

fn check_template(prefix: &str, key: &str) -> Result<()> {
    let problem = if !prefix.contains("{org}") {
        Some("has no `{org}`: every organisation's objects would match it")
    } else if prefix.replace("{org}", "").contains(['{', '}']) {
        Some("has a placeholder other than `{org}`")
    } else if prefix.ends_with("{org}") {
        // `1` would also match the keys of organisation 12.
        Some("ends with `{org}`: end it with a separator, as in `{org}/`")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Error::Config(format!("{key}: prefix `{prefix}` {problem}"))),
        None => Ok(()),
    }
}

/// The prefix of `org`'s objects.
pub fn render(template: &str, org: &Value) -> String {
    let text = match org {
        Value::Uuid(u) => format_uuid(u),
        other => other.as_str().map(str::to_string).unwrap_or_else(|| other.display()),
    };
    template.replace("{org}", &text)
}

/// Moves keys from the old organisations' prefixes to the new ones'; other keys stay as they are.
#[derive(Debug, Clone, Default)]
pub(crate) struct Relocation {
    prefixes: Vec<(String, String)>,
}

impl Relocation {
    /// `source` is the archive's template, `target` the target's (the source's when it has none).
    pub(crate) fn new(source: Option<&str>, target: Option<&str>, orgs: &[(Value, Value)]) -> Self {
        let Some(source) = source else { return Relocation::default() };
        let target = target.unwrap_or(source);
        Relocation { prefixes: orgs.iter().map(|(old, new)| (render(source, old), render(target, new))).collect() }
    }

    /// Where the organisations' keys move to.
    pub(crate) fn new_prefixes(&self) -> impl Iterator<Item = &str> {
        self.prefixes.iter().map(|(_, new)| new.as_str())
    }

    /// Whether `key` is under one of the old organisations' prefixes (and moves).
    pub(crate) fn is_inside(&self, key: &str) -> bool {
        self.prefixes.iter().any(|(old, _)| key.starts_with(old.as_str()))
    }

    pub(crate) fn key(&self, key: &str) -> String {
        for (old, new) in &self.prefixes {
            if let Some(rest) = key.strip_prefix(old.as_str()) {
                return format!("{new}{rest}");
            }
        }
        key.to_string()
    }

    pub(crate) fn value(&self, value: &Value) -> Value {
        match value {
            Value::Text(key) => Value::Text(self.key(key)),
            other => other.clone(),
        }
    }
}

/// Runs `work` on items `0..count` with up to `jobs` threads, handing each result to `done` on
/// the calling thread as it comes. The first error stops the rest from starting and is returned.
pub(crate) fn parallel<T: Send>(
    count: usize,
    jobs: usize,
    work: impl Fn(usize) -> Result<T> + Sync,
    mut done: impl FnMut(usize, T) -> Result<()>,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (send, receive) = mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, count.max(1)) {
            let (send, next, stop, work) = (send.clone(), &next, &stop, &work);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count || stop.load(Ordering::Relaxed) {
                    return;
                }
                let result = work(i);
                if result.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                if send.send((i, result)).is_err() {
                    return;
                }
            });
        }
        drop(send);
        let mut first_error = None;
        for (i, result) in receive {
            let handled = result.and_then(|value| if first_error.is_none() { done(i, value) } else { Ok(()) });
            if let Err(e) = handled {
                stop.store(true, Ordering::Relaxed);
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    })
}

/// Size and SHA-256 of an object, read through.
fn digest(store: &dyn ObjectStore, key: &str) -> Result<(u64, String)> {
    let mut hashing = Hashing::new(store.reader(key)?);
    io::copy(&mut hashing, &mut io::sink()).map_err(Error::stream)?;
    Ok(hashing.sum())
}

fn url(store: &dyn ObjectStore, key: &str) -> String {
    format!("{}/{key}", store.describe())
}

/// Copies `from` in `source` to `to` in `target` — on the service's side where both are on one,
/// else streamed through — and returns the size and SHA-256 of what arrived. When `expect` is
/// given and what arrived differs, the copy is removed (or never appears) and the error says so.
/// `landed` is called as soon as the object exists, so that a caller can remove it later.
pub(crate) fn copy_object(
    source: &dyn ObjectStore,
    from: &str,
    target: &dyn ObjectStore,
    to: &str,
    expect: Option<&FileEntry>,
    landed: &dyn Fn(),
) -> Result<(u64, String)> {
    let mismatch = |got: &(u64, String)| expect.is_some_and(|e| (e.size, e.sha256.as_str()) != (got.0, got.1.as_str()));
    let corrupt = || Error::Corrupt(format!("`{}` does not match the size and checksum the archive lists", url(source, from)));
    if target.copy_from(source, from, to)? {
        landed();
        // The service copied it: read the copy back, to check what the target holds.
        let got = digest(target, to)?;
        if mismatch(&got) {
            target.delete(to)?;
            return Err(corrupt());
        }
        return Ok(got);
    }
    let mut reader = Hashing::new(source.reader(from)?);
    let mut writer = target.writer(to)?;
    io::copy(&mut reader, &mut writer).map_err(Error::stream)?;
    let got = reader.sum();
    if mismatch(&got) {
        // Dropped unfinished: the object never appears.
        return Err(corrupt());
    }
    writer.finish()?;
    landed();
    Ok(got)
}

/// The objects of one store that belong to the exported organisations.
pub(crate) struct FilesOut<'a> {
    pub(crate) set: &'a FileSet,
    pub(crate) store: Box<dyn ObjectStore>,
    /// The key columns, `table.column`.
    pub(crate) column_names: Vec<String>,
    /// Keys met in the key columns, with the column that named them first.
    pub(crate) named: BTreeMap<String, String>,
}

impl FilesOut<'_> {
    /// Every object under the organisations' prefixes and every key named in a column, with its
    /// size; a named object that does not exist is an error naming the column.
    pub(crate) fn objects(&self, orgs: &[Value]) -> Result<Vec<(String, u64)>> {
        let mut found = BTreeMap::new();
        if let Some(template) = &self.set.prefix {
            let prefixes: Vec<String> = orgs.iter().map(|org| render(template, org)).collect();
            for prefix in &prefixes {
                for object in self.store.list(prefix)? {
                    found.insert(object.key, object.size);
                }
            }
            if self.set.outside == Outside::Refuse {
                if let Some((key, column)) = self.named.iter().find(|(key, _)| !prefixes.iter().any(|p| key.starts_with(p.as_str()))) {
                    return Err(Error::Plan(format!(
                        "`{column}` = `{key}` names an object outside the organisation's prefix `{template}`, \
                         and [files.{}] says `outside = \"refuse\"`",
                        self.set.name
                    )));
                }
            }
        }
        let missing: Vec<&String> = self.named.keys().filter(|k| !found.contains_key(*k)).collect();
        let store = self.store.as_ref();
        let sizes = Mutex::new(Vec::new());
        parallel(
            missing.len(),
            8,
            |i| store.size(missing[i]),
            |i, size| {
                let key = missing[i];
                match size {
                    Some(size) => {
                        sizes.lock().expect("not poisoned").push((key.clone(), size));
                        Ok(())
                    }
                    None => Err(Error::Plan(format!("`{}` = `{key}` names `{}`, which does not exist", self.named[key], url(store, key)))),
                }
            },
        )?;
        found.extend(sizes.into_inner().expect("not poisoned"));
        Ok(found.into_iter().collect())
    }
}

/// Files up to this size are held in memory while they wait for their turn in the archive or
/// for a writer, a few per thread; larger ones stream.
const BUFFERED: u64 = 1 << 20;

/// How files go with an export.
pub enum FilesMode<'a> {
    /// In the archive, after the rows.
    Embed,
    /// Copied to this store (`--files-to`), each set under its name.
    Copy(&'a dyn ObjectStore),
}

/// How an export takes the organisations' files.
pub struct FilesExport<'a> {
    pub mode: FilesMode<'a>,
    /// Opens the plan's stores.
    pub open: &'a StoreOpener<'a>,
    /// Objects copied at once.
    pub jobs: usize,
}

/// Appends a file to the archive; returns its size and SHA-256.
pub(crate) type Embed<'e> = dyn FnMut(&mut dyn Read) -> Result<(u64, String)> + 'e;

impl FilesOut<'_> {
    /// Writes this store's files for the archive; returns its part of the manifest. Objects
    /// copied are recorded in `copied` as they land.
    pub(crate) fn export(
        &self,
        orgs: &[Value],
        how: &FilesExport,
        embed: &mut Embed,
        copied: &Mutex<Vec<(String, String)>>,
        progress: &dyn Progress,
    ) -> Result<FileSetManifest> {
        let objects = self.objects(orgs)?;
        let source = self.store.as_ref();
        progress.begin("files", &self.set.name, Some(objects.len() as u64));
        let mut files = Vec::with_capacity(objects.len());
        let copied_to = match how.mode {
            FilesMode::Embed => {
                // The archive takes files one after the other; small ones are fetched ahead,
                // a few batches' worth of requests at a time, larger ones stream in their turn.
                for batch in objects.chunks(2 * how.jobs.max(1)) {
                    let mut fetched: Vec<Option<Vec<u8>>> = vec![None; batch.len()];
                    let fetch = |i: usize| match batch[i].1 <= BUFFERED {
                        true => {
                            let mut bytes = Vec::with_capacity(batch[i].1 as usize);
                            source.reader(&batch[i].0)?.read_to_end(&mut bytes).map_err(Error::stream)?;
                            Ok(Some(bytes))
                        }
                        false => Ok(None),
                    };
                    parallel(batch.len(), how.jobs, fetch, |i, bytes| {
                        fetched[i] = bytes;
                        Ok(())
                    })?;
                    for ((key, _), bytes) in batch.iter().zip(fetched) {
                        let (size, sha256) = match bytes {
                            Some(bytes) => embed(&mut bytes.as_slice())?,
                            None => embed(&mut source.reader(key)?)?,
                        };
                        files.push(FileEntry { key: key.clone(), size, sha256 });
                        progress.rows(1);
                        progress.bytes(size);
                    }
                }
                None
            }
            FilesMode::Copy(target) => {
                let target: &dyn ObjectStore = target;
                // Under the store's name, so that several stores share one destination.
                let under = format!("{}/", self.set.name);
                let location = format!("{}/{}", target.describe(), self.set.name);
                if let Some(first) = target.list(&under)?.first() {
                    return Err(Error::Storage {
                        action: "copy files to",
                        location: location.clone(),
                        reason: format!("it already holds objects (`{}`): choose an empty location", first.key),
                    });
                }
                files.resize(objects.len(), FileEntry { key: String::new(), size: 0, sha256: String::new() });
                let root = target.describe();
                parallel(
                    objects.len(),
                    how.jobs,
                    |i| {
                        let (key, to) = (&objects[i].0, format!("{under}{}", objects[i].0));
                        let landed = || copied.lock().expect("not poisoned").push((root.clone(), to.clone()));
                        copy_object(source, key, target, &to, None, &landed)
                    },
                    |i, (size, sha256)| {
                        files[i] = FileEntry { key: objects[i].0.clone(), size, sha256 };
                        progress.rows(1);
                        progress.bytes(size);
                        Ok(())
                    },
                )?;
                Some(location)
            }
        };
        progress.end();
        Ok(FileSetManifest {
            name: self.set.name.clone(),
            prefix: self.set.prefix.clone(),
            columns: self.column_names.clone(),
            copied_to,
            files,
        })
    }
}

/// `failure`, once the objects an unfinished export or import wrote are removed again; those
/// that could not be are named after it.
pub(crate) fn undo_copies(failure: Error, copies: Vec<(String, String)>, open: &StoreOpener) -> Error {
    match remove_copies(copies, open) {
        Ok(()) => failure,
        Err(cleanup) => with_cleanup(failure, cleanup),
    }
}

fn with_cleanup(failure: Error, cleanup: Error) -> Error {
    Error::Plan(format!("{failure}\n{cleanup}"))
}

/// Removes objects, best effort: the first failure is reported, with how many objects remain.
fn remove_copies(copies: Vec<(String, String)>, open: &StoreOpener) -> Result<()> {
    let mut stores: BTreeMap<String, Box<dyn ObjectStore>> = BTreeMap::new();
    let mut left = Vec::new();
    let mut first = None;
    for (location, key) in copies {
        if !stores.contains_key(&location) {
            match open(&location) {
                Ok(store) => {
                    stores.insert(location.clone(), store);
                }
                Err(e) => {
                    first.get_or_insert(e);
                    left.push(format!("{location}/{key}"));
                    continue;
                }
            }
        }
        if let Err(e) = stores[&location].delete(&key) {
            first.get_or_insert(e);
            left.push(format!("{location}/{key}"));
        }
    }
    match first {
        None => Ok(()),
        Some(e) => Err(Error::Plan(format!(
            "{} object(s) written before the failure could not be removed ({e}); remove them by hand: {}",
            left.len(),
            abridged(left).join(", ")
        ))),
    }
}

/// The first 20 of a list for a message, then how many more: enough to act on, one screen.
fn abridged(mut list: Vec<String>) -> Vec<String> {
    const SHOWN: usize = 20;
    if list.len() > SHOWN {
        let more = list.len() - SHOWN;
        list.truncate(SHOWN);
        list.push(format!("… and {more} more"));
    }
    list
}

/// Per archive table, its columns holding object keys: (position, file set of the manifest).
pub(crate) fn key_columns(manifest: &Manifest) -> Vec<Vec<(usize, usize)>> {
    manifest
        .tables
        .iter()
        .map(|table| {
            let mut columns = Vec::new();
            for (s, set) in manifest.files.iter().enumerate() {
                for named in &set.columns {
                    let column = named.strip_prefix(table.name.as_str()).and_then(|rest| rest.strip_prefix('.'));
                    if let Some(p) = column.and_then(|c| table.column_index(c)) {
                        columns.push((p, s));
                    }
                }
            }
            columns
        })
        .collect()
}

/// One file of the archive on its way to the target.
struct Landing {
    set: usize,
    to: String,
    /// Outside the organisations' prefixes: its key stays (see [`Outside`]).
    outside: bool,
    /// An identical object is there already, shared: nothing to write, nothing to remove.
    present: bool,
}

/// The import's side of the files: where each lands, and what was written.
pub(crate) struct FilesIn {
    targets: Vec<Box<dyn ObjectStore>>,
    sources: Vec<Option<Box<dyn ObjectStore>>>,
    /// The target's policy for each set's objects outside the prefix.
    outside: Vec<Outside>,
    relocations: Vec<Relocation>,
    /// Every file of the archive, set after set in manifest order; set `s` starts at `offsets[s]`.
    landings: Vec<Landing>,
    offsets: Vec<usize>,
    /// Objects written so far (store URL, key): removed if the import fails.
    pub(crate) written: Mutex<Vec<(String, String)>>,
    /// The notes of what is about to be written (target index, key), removed once the import
    /// has committed, or has removed its objects again: see [`crate::journal`].
    journals: Vec<(usize, String)>,
}

impl FilesIn {
    /// Opens the stores of every set of the archive: the target's (by name, from the target's
    /// configuration) and where copied files are. None for an archive without files.
    pub(crate) fn open(manifest: &Manifest, sets: &[FileSet], open: Option<&StoreOpener>) -> Result<Option<FilesIn>> {
        if manifest.files.is_empty() {
            return Ok(None);
        }
        let open = open.ok_or_else(|| Error::Config("the archive carries files, and no store was given for them".into()))?;
        let mut targets = Vec::new();
        let mut sources = Vec::new();
        let mut outside = Vec::new();
        for set in &manifest.files {
            let Some(target) = sets.iter().find(|s| s.name == set.name) else {
                return Err(Error::Config(format!(
                    "the archive carries {} file(s) of the store `{}`, which the target's orgport.toml does not declare: \
                     add a [files.{}] section naming where they go",
                    set.files.len(),
                    set.name,
                    set.name
                )));
            };
            targets.push(open(&target.store)?);
            sources.push(set.copied_to.as_deref().map(open).transpose()?);
            outside.push(target.outside);
        }
        Ok(Some(FilesIn {
            targets,
            sources,
            outside,
            relocations: Vec::new(),
            landings: Vec::new(),
            offsets: Vec::new(),
            written: Mutex::new(Vec::new()),
            journals: Vec::new(),
        }))
    }

    /// Where every file lands, now that the new organisations' keys are known.
    pub(crate) fn place(&mut self, manifest: &Manifest, sets: &[FileSet], orgs: &[(Value, Value)]) {
        self.relocations = manifest
            .files
            .iter()
            .map(|set| {
                let target = sets.iter().find(|s| s.name == set.name).and_then(|s| s.prefix.as_deref());
                Relocation::new(set.prefix.as_deref(), target, orgs)
            })
            .collect();
        self.landings.clear();
        self.offsets.clear();
        for (s, set) in manifest.files.iter().enumerate() {
            self.offsets.push(self.landings.len());
            let relocation = &self.relocations[s];
            self.landings.extend(set.files.iter().map(|file| Landing {
                set: s,
                to: relocation.key(&file.key),
                outside: !relocation.is_inside(&file.key),
                present: false,
            }));
        }
    }

    /// Checks where every file would land before the first is written: keys a target store
    /// cannot hold (`../x` in a directory), files outside the prefix the target refuses or that
    /// would land among the new organisations' own objects, and objects already there. An
    /// identical object outside the prefix is shared (see [`Outside`]); any other is named.
    pub(crate) fn check_landings(&mut self, manifest: &Manifest, jobs: usize) -> Result<()> {
        let mut refused = Vec::new();
        for (i, landing) in self.landings.iter().enumerate() {
            let s = landing.set;
            self.targets[s].check_key(&landing.to)?;
            let (set, file) = (&manifest.files[s], &manifest.files[s].files[i - self.offsets[s]]);
            let among_new = || self.relocations[s].new_prefixes().find(|p| landing.to.starts_with(p));
            if landing.outside && self.outside[s] == Outside::Refuse {
                refused.push(format!(
                    "file `{}` of `{}` is outside the organisation's prefix, and the target's [files.{}] says `outside = \"refuse\"`",
                    file.key, set.name, set.name
                ));
            } else if let Some(prefix) = landing.outside.then(among_new).flatten() {
                refused.push(format!(
                    "file `{}` of `{}` is outside the organisation's prefix but would land under the new organisation's `{prefix}`",
                    file.key, set.name
                ));
            }
        }
        if !refused.is_empty() {
            return Err(Error::Unresolved(abridged(refused)));
        }
        // One listing per new prefix answers for the files under it; others are asked one by one.
        let mut listed: Vec<(usize, String, BTreeSet<String>)> = Vec::new();
        for (s, relocation) in self.relocations.iter().enumerate() {
            for new in relocation.new_prefixes() {
                let found = self.targets[s].list(new)?.into_iter().map(|o| o.key).collect();
                listed.push((s, new.to_string(), found));
            }
        }
        let under = |i: usize| {
            let landing = &self.landings[i];
            listed.iter().find(|(s, prefix, _)| *s == landing.set && landing.to.starts_with(prefix.as_str()))
        };
        let mut existing: Vec<usize> = Vec::new();
        let mut ask = Vec::new();
        for (i, landing) in self.landings.iter().enumerate() {
            match under(i) {
                Some((_, _, found)) if found.contains(&landing.to) => existing.push(i),
                Some(_) => {}
                None => ask.push(i),
            }
        }
        let mut shared = Vec::new();
        let (landings, targets) = (&self.landings, &self.targets);
        // Outside the prefix, an object found is read to see whether it is the archive's file.
        parallel(
            ask.len(),
            jobs,
            |k| {
                let landing = &landings[ask[k]];
                let target = targets[landing.set].as_ref();
                match target.size(&landing.to)? {
                    Some(_) if landing.outside => digest(target, &landing.to).map(Some),
                    Some(size) => Ok(Some((size, String::new()))),
                    None => Ok(None),
                }
            },
            |k, found| {
                let i = ask[k];
                let file = &manifest.files[landings[i].set].files[i - self.offsets[landings[i].set]];
                match found {
                    Some((size, sha256)) if landings[i].outside && size == file.size && sha256 == file.sha256 => shared.push(i),
                    Some(_) => existing.push(i),
                    None => {}
                }
                Ok(())
            },
        )?;
        for i in shared {
            self.landings[i].present = true;
        }
        if existing.is_empty() {
            return Ok(());
        }
        existing.sort_unstable();
        Err(Error::ObjectsExist(
            existing
                .into_iter()
                .map(|i| {
                    let landing = &self.landings[i];
                    let at = url(self.targets[landing.set].as_ref(), &landing.to);
                    match landing.outside {
                        true => format!("{at} (outside the organisation's prefix, with other content than the archive's file)"),
                        false => at,
                    }
                })
                .collect(),
        ))
    }

    /// Compares every file with the object where it landed; returns how many are equal and what
    /// differs.
    pub(crate) fn compare(&self, manifest: &Manifest, jobs: usize, progress: &dyn Progress) -> Result<(u64, Vec<String>)> {
        let (landings, targets) = (&self.landings, &self.targets);
        let entry = |i: usize| {
            let set = &manifest.files[landings[i].set];
            (set, &set.files[i - self.offsets[landings[i].set]])
        };
        let mut equal = 0;
        let mut differences = Vec::new();
        progress.begin("verify files", "", Some(landings.len() as u64));
        parallel(
            landings.len(),
            jobs,
            |i| {
                let target = targets[landings[i].set].as_ref();
                match target.size(&landings[i].to)? {
                    Some(_) => digest(target, &landings[i].to).map(Some),
                    None => Ok(None),
                }
            },
            |i, found| {
                let (set, file) = entry(i);
                let at = url(targets[landings[i].set].as_ref(), &landings[i].to);
                match found {
                    None => differences.push(format!("file `{}` of `{}` is missing: no object `{at}`", file.key, set.name)),
                    Some((size, sha256)) if size != file.size || sha256 != file.sha256 => differences.push(format!(
                        "file `{}` of `{}` differs: `{at}` has {size} bytes and SHA-256 {sha256}, the archive {} bytes and {}",
                        file.key, set.name, file.size, file.sha256
                    )),
                    Some((size, _)) => {
                        equal += 1;
                        progress.bytes(size);
                    }
                }
                progress.rows(1);
                Ok(())
            },
        )?;
        progress.end();
        Ok((equal, differences))
    }

    pub(crate) fn report(&self, manifest: &Manifest) -> Vec<crate::import::FilesReport> {
        manifest
            .files
            .iter()
            .zip(&self.targets)
            .map(|(set, target)| crate::import::FilesReport {
                name: set.name.clone(),
                store: target.describe(),
                files: set.files.len() as u64,
                bytes: set.files.iter().map(|f| f.size).sum(),
            })
            .collect()
    }

    /// The key-column rewrite of set `s` of the manifest.
    pub(crate) fn relocation(&self, s: usize) -> &Relocation {
        &self.relocations[s]
    }

    /// Notes in each target store, before the first object is written, which objects the import
    /// writes there and for which organisations: if the import is killed, `import --cleanup`
    /// finds them.
    pub(crate) fn open_journals(&mut self, root: &str, orgs: &[Value]) -> Result<()> {
        let id = crate::journal::new_id();
        for s in 0..self.targets.len() {
            let objects =
                self.landings[self.offsets[s]..].iter().take_while(|l| l.set == s).filter(|l| !l.present).map(|l| l.to.clone()).collect();
            let journal = crate::journal::Journal { root: root.to_string(), orgs: orgs.to_vec(), objects };
            let key = journal.write(self.targets[s].as_ref(), &format!("{id}-{s}"))?;
            self.journals.push((s, key));
        }
        Ok(())
    }

    /// Removes the notes: the import committed, or removed what it wrote. One left behind is
    /// harmless (`import --cleanup` sees the organisations exist and removes only the note).
    pub(crate) fn close_journals(&self) {
        for (s, key) in &self.journals {
            // With the note, its directory, if no other import's note is there.
            let _ = self.targets[*s].delete(key).and_then(|()| self.targets[*s].remove_leftovers(key));
        }
    }

    /// `failure`, once the objects written are removed again (and then the notes too); those
    /// that could not be are named after it, and their notes kept for `import --cleanup`.
    pub(crate) fn abandon(&self, failure: Error, open: &StoreOpener) -> Error {
        let written = std::mem::take(&mut *self.written.lock().expect("not poisoned"));
        match remove_copies(written, open) {
            Ok(()) => {
                self.close_journals();
                failure
            }
            Err(cleanup) => {
                let kept = "the import's note of them stays in the store: `orgport import --cleanup` removes them once the store answers";
                with_cleanup(failure, Error::Plan(format!("{cleanup}\n{kept}")))
            }
        }
    }

    /// Writes every file to its target: embedded ones from `embedded` in order, copied ones with
    /// `jobs` at a time.
    pub(crate) fn write(
        &self,
        manifest: &Manifest,
        embedded: Option<EmbeddedFiles<Box<dyn Read>>>,
        jobs: usize,
        progress: &dyn Progress,
    ) -> Result<()> {
        if let Some(mut embedded) = embedded {
            progress.begin("files", "embedded in the archive", Some(manifest.embedded_files().count() as u64));
            self.write_embedded(&mut embedded, jobs, progress)?;
            progress.end();
        }
        for (s, set) in manifest.files.iter().enumerate() {
            let Some(source) = &self.sources[s] else { continue };
            let target = self.targets[s].as_ref();
            progress.begin("files", &set.name, Some(set.files.len() as u64));
            let location = target.describe();
            parallel(
                set.files.len(),
                jobs,
                |f| {
                    let Landing { to, present, .. } = self.landing(s, f);
                    if *present {
                        return Ok((set.files[f].size, set.files[f].sha256.clone()));
                    }
                    let landed = || self.written.lock().expect("not poisoned").push((location.clone(), to.clone()));
                    copy_object(source.as_ref(), &set.files[f].key, target, to, Some(&set.files[f]), &landed)
                },
                |_, (size, _)| {
                    progress.rows(1);
                    progress.bytes(size);
                    Ok(())
                },
            )?;
            progress.end();
        }
        Ok(())
    }

    /// Writes the embedded files, as the archive holds them one after the other. Small ones are
    /// read into memory, checked, and written by `jobs` threads, at most `jobs` of them waiting:
    /// one request each, so many small files are not written one round trip at a time. Larger
    /// ones stream from the archive to their object on this thread.
    fn write_embedded(&self, embedded: &mut EmbeddedFiles<Box<dyn Read>>, jobs: usize, progress: &dyn Progress) -> Result<()> {
        let (send, receive) = mpsc::sync_channel::<(usize, usize, Vec<u8>)>(jobs);
        let receive = Mutex::new(receive);
        let (report, reports) = mpsc::channel::<Result<u64>>();
        std::thread::scope(|scope| {
            for _ in 0..jobs.max(1) {
                let (receive, report) = (&receive, report.clone());
                scope.spawn(move || loop {
                    let Ok((s, f, bytes)) = receive.lock().expect("not poisoned").recv() else { return };
                    let written = self.land(s, f, &mut |out| out.write_all(&bytes).map_err(Error::stream));
                    if report.send(written.map(|()| bytes.len() as u64)).is_err() {
                        return;
                    }
                });
            }
            drop(report);
            let done = |result: Result<u64>| {
                let size = result?;
                progress.rows(1);
                progress.bytes(size);
                Ok::<(), Error>(())
            };
            let read = (|| {
                while let Some((s, f)) = embedded.peek() {
                    let size = embedded.manifest().files[s].files[f].size;
                    if size <= BUFFERED {
                        let mut bytes = Vec::with_capacity(size as usize);
                        embedded.copy_next(&mut bytes)?;
                        send.send((s, f, bytes)).map_err(|_| Error::Plan("the file writers stopped".into()))?;
                    } else {
                        self.land(s, f, &mut |out| embedded.copy_next(out).map(|_| ()))?;
                        done(Ok(size))?;
                    }
                    for result in reports.try_iter() {
                        done(result)?;
                    }
                }
                // Nothing may follow the last file.
                embedded.copy_next(&mut io::sink()).map(|_| ())
            })();
            drop(send);
            // Every queued file is written (and recorded, to be removed on failure) before the
            // first error is returned.
            let mut first = read.err();
            for result in reports {
                if let Err(e) = done(result) {
                    first.get_or_insert(e);
                }
            }
            first.map_or(Ok(()), Err)
        })
    }

    /// Writes file `f` of set `s` to its target with `write`, keeping it only if that succeeds.
    fn land(&self, s: usize, f: usize, write: &mut dyn FnMut(&mut dyn Write) -> Result<()>) -> Result<()> {
        let target = self.targets[s].as_ref();
        let Landing { to, present, .. } = self.landing(s, f);
        if *present {
            // Shared, and identical: the bytes are only read, and checked.
            return write(&mut io::sink());
        }
        let mut writer = target.writer(to)?;
        write(&mut writer)?;
        writer.finish()?;
        self.written.lock().expect("not poisoned").push((target.describe(), to.clone()));
        Ok(())
    }

    fn landing(&self, s: usize, f: usize) -> &Landing {
        &self.landings[self.offsets[s] + f]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_move_from_each_old_prefix_to_its_new_one_and_others_stay() {
        let orgs = [(Value::Int(1), Value::Int(7)), (Value::Int(12), Value::Int(8))];
        let moved = Relocation::new(Some("orgs/{org}/"), Some("tenants/{org}/files/"), &orgs);
        assert_eq!(moved.key("orgs/1/a.png"), "tenants/7/files/a.png");
        assert_eq!(moved.key("orgs/12/b/c.txt"), "tenants/8/files/b/c.txt");
        assert_eq!(moved.key("orgs/123/d"), "orgs/123/d");
        assert_eq!(moved.key("shared/logo.png"), "shared/logo.png");
        assert_eq!(moved.value(&Value::Null), Value::Null);
        let same = Relocation::new(Some("{org}/"), None, &orgs);
        assert_eq!(same.key("1/x"), "7/x");
        assert_eq!(Relocation::new(None, Some("{org}/"), &orgs).key("1/x"), "1/x");
    }

    #[test]
    fn a_prefix_template_must_name_the_organisation_and_end_apart_from_it() {
        assert!(check_template("{org}/", "files.u").is_ok());
        assert!(check_template("orgs/{org}-files/", "files.u").is_ok());
        for (bad, why) in [("uploads/", "has no `{org}`"), ("{org}", "ends with `{org}`"), ("{org}/{id}/", "other than `{org}`")] {
            let err = check_template(bad, "files.u").unwrap_err().to_string();
            assert!(err.contains(why) && err.contains("files.u"), "{bad}: {err}");
        }
    }

    #[test]
    fn parallel_work_hands_every_result_over_and_stops_at_the_first_error() {
        let mut seen = [false; 100];
        parallel(
            100,
            4,
            |i| Ok(i * 2),
            |i, v| {
                assert_eq!(v, i * 2);
                seen[i] = true;
                Ok(())
            },
        )
        .unwrap();
        assert!(seen.iter().all(|s| *s));
        let started = AtomicUsize::new(0);
        let err = parallel(
            10_000,
            2,
            |i| {
                started.fetch_add(1, Ordering::Relaxed);
                if i == 3 {
                    Err(Error::Plan("item 3 failed".into()))
                } else {
                    Ok(())
                }
            },
            |_, ()| Ok(()),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "item 3 failed");
        assert!(started.load(Ordering::Relaxed) < 10_000, "work went on after the error");
    }
}
