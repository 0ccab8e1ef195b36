//! A fault sweep in the manner of SQLite's I/O-error tests (issue 7, "Crashes and faults"): an
//! import through the library, on real SQLite and PostgreSQL and a real directory store, where
//! the k-th database write (a row's `INSERT`, a `COPY` chunk, an `UPDATE`, the commit), the k-th
//! read of the archive or the k-th object write fails, for k = 1, 2, … until an import runs to
//! the end without reaching k. Each k runs twice: the operation failing once, and failing for
//! good from there on. Every run must end in an error that carries the fault's message, with the
//! target's rows and objects exactly as they were, or in a complete import (verified).
//!
//! The faults are injected by wrappers around the real engine, store and archive reader (named
//! `Faulty…` below): nothing else here is simulated.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use orgport_core::engine::{insert_statement, Capabilities, Dialect, Engine};
use orgport_core::import::{import, FilesImport, ImportOptions};
use orgport_core::plan::Plan;
use orgport_core::schema::{Schema, Table};
use orgport_core::store::{ObjectInfo, ObjectStore, ObjectWriter};
use orgport_core::value::{Value, ValueKind};
use orgport_testkit::example::ExampleOptions;

use crate::crash::objects;
use crate::pg::{fresh_db, psql, server};
use crate::util::*;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Site {
    /// A write to the database: `execute`, `insert_rows` where the engine bulk-writes, `commit`.
    Write,
    /// A `read` of the archive.
    ArchiveRead,
    /// An object written to a store (`writer`, `copy_from`).
    ObjectPut,
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Once,
    ForGood,
}

/// The fault of one run: operation `at` (1-based) of `site` fails, and with `ForGood` every one
/// after it.
pub(crate) struct Fault {
    site: Site,
    at: usize,
    mode: Mode,
    seen: AtomicUsize,
    hit: AtomicBool,
}

const MESSAGE: &str = "injected fault";

impl Fault {
    fn new(site: Site, at: usize, mode: Mode) -> Arc<Fault> {
        Arc::new(Fault { site, at, mode, seen: AtomicUsize::new(0), hit: AtomicBool::new(false) })
    }

    /// No fault: only counts the operations of `site` (see [`Fault::seen`]).
    pub(crate) fn counting(site: Site) -> Arc<Fault> {
        Fault::new(site, usize::MAX, Mode::Once)
    }

    /// How many operations of its site ran.
    pub(crate) fn seen(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }

    /// Counts an operation of `site`; whether it fails.
    fn strikes(&self, site: Site) -> bool {
        if site != self.site {
            return false;
        }
        let n = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        let fails = match self.mode {
            Mode::Once => n == self.at,
            Mode::ForGood => n >= self.at,
        };
        self.hit.fetch_or(fails, Ordering::SeqCst);
        fails
    }

    fn check(&self, site: Site) -> orgport_core::Result<()> {
        match self.strikes(site) {
            true => Err(orgport_core::Error::engine("writing", io::Error::other(MESSAGE))),
            false => Ok(()),
        }
    }
}

/// The real engine, with `Site::Write` faults.
pub(crate) struct FaultyEngine {
    pub(crate) inner: Box<dyn Engine>,
    pub(crate) fault: Arc<Fault>,
}

impl Engine for FaultyEngine {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn dialect(&self) -> &'static dyn Dialect {
        self.inner.dialect()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn introspect(&mut self) -> orgport_core::Result<Schema> {
        self.inner.introspect()
    }
    fn begin_snapshot(&mut self) -> orgport_core::Result<()> {
        self.inner.begin_snapshot()
    }
    fn begin_write(&mut self) -> orgport_core::Result<()> {
        self.inner.begin_write()
    }
    fn commit(&mut self) -> orgport_core::Result<()> {
        self.fault.check(Site::Write)?;
        self.inner.commit()
    }
    fn end(&mut self) -> orgport_core::Result<()> {
        self.inner.end()
    }
    fn query(
        &mut self,
        sql: &str,
        params: &[Value],
        kinds: &[ValueKind],
        on_row: &mut dyn FnMut(&[Value]) -> orgport_core::Result<()>,
    ) -> orgport_core::Result<()> {
        self.inner.query(sql, params, kinds, on_row)
    }
    fn execute(&mut self, sql: &str, params: &[Value]) -> orgport_core::Result<u64> {
        self.fault.check(Site::Write)?;
        self.inner.execute(sql, params)
    }
    /// PostgreSQL's `COPY` chunks fail as one write each; engines without a bulk path write row
    /// by row through `execute`, each row a write of its own.
    fn insert_rows(&mut self, table: &Table, columns: &[String], rows: &[Vec<Value>]) -> orgport_core::Result<()> {
        if self.inner.name() == "postgres" {
            self.fault.check(Site::Write)?;
            return self.inner.insert_rows(table, columns, rows);
        }
        let sql = insert_statement(self.dialect(), table, columns);
        rows.iter().try_for_each(|row| self.execute(&sql, row).map(|_| ()))
    }
    fn max_key(&mut self, table: &Table, column: &str) -> orgport_core::Result<i64> {
        self.inner.max_key(table, column)
    }
    fn after_import(&mut self, table: &Table) -> orgport_core::Result<()> {
        self.fault.check(Site::Write)?;
        self.inner.after_import(table)
    }
}

/// The real store, with `Site::ObjectPut` faults.
pub(crate) struct FaultyStore {
    pub(crate) inner: Box<dyn ObjectStore>,
    pub(crate) fault: Arc<Fault>,
}

impl FaultyStore {
    fn refused(&self, key: &str) -> orgport_core::Error {
        orgport_core::Error::Storage { action: "write", location: format!("{}/{key}", self.inner.describe()), reason: MESSAGE.into() }
    }
}

impl ObjectStore for FaultyStore {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn reader(&self, key: &str) -> orgport_core::Result<Box<dyn Read + Send>> {
        self.inner.reader(key)
    }
    fn writer(&self, key: &str) -> orgport_core::Result<Box<dyn ObjectWriter>> {
        match self.fault.strikes(Site::ObjectPut) {
            true => Err(self.refused(key)),
            false => self.inner.writer(key),
        }
    }
    fn size(&self, key: &str) -> orgport_core::Result<Option<u64>> {
        self.inner.size(key)
    }
    fn check_key(&self, key: &str) -> orgport_core::Result<()> {
        self.inner.check_key(key)
    }
    fn list(&self, prefix: &str) -> orgport_core::Result<Vec<ObjectInfo>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> orgport_core::Result<()> {
        self.inner.delete(key)
    }
    fn copy_from(&self, source: &dyn ObjectStore, from: &str, to: &str) -> orgport_core::Result<bool> {
        match self.fault.strikes(Site::ObjectPut) {
            true => Err(self.refused(to)),
            false => self.inner.copy_from(source, from, to),
        }
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self.inner.as_any()
    }
}

/// The archive's bytes, with `Site::ArchiveRead` faults.
struct FaultyReader {
    inner: io::Cursor<Arc<[u8]>>,
    fault: Arc<Fault>,
}

impl Read for FaultyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.fault.strikes(Site::ArchiveRead) {
            true => Err(io::Error::other(MESSAGE)),
            false => {
                // Reads of at most 16 KiB: more of them, so the sweep reaches every section.
                let n = buf.len().min(16 * 1024);
                self.inner.read(&mut buf[..n])
            }
        }
    }
}

/// The error and every cause under it, as the command line prints them.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Where an import lands: a database and a store, and how to read back what they hold.
trait Landing {
    fn engine(&self) -> Box<dyn Engine>;
    fn rows(&self) -> Snapshot;
    fn store(&self) -> &Path;
    /// Back to the state before the first run (after an import that completed).
    fn reset(&mut self);
}

struct SqliteLanding {
    template: PathBuf,
    db: PathBuf,
    store: PathBuf,
}

impl Landing for SqliteLanding {
    fn engine(&self) -> Box<dyn Engine> {
        Box::new(orgport_sqlite::SqliteEngine::open_path(&self.db, orgport_sqlite::Access::ReadWrite).expect("the target"))
    }
    fn rows(&self) -> Snapshot {
        snapshot(&self.db)
    }
    fn store(&self) -> &Path {
        &self.store
    }
    fn reset(&mut self) {
        std::fs::copy(&self.template, &self.db).expect("a fresh target");
    }
}

struct PostgresLanding {
    server: String,
    template: String,
    db: String,
    store: PathBuf,
    resets: usize,
}

impl Landing for PostgresLanding {
    fn engine(&self) -> Box<dyn Engine> {
        orgport_engines::open(&self.db, &[], orgport_engines::Access::ReadWrite).expect("the target")
    }
    fn rows(&self) -> Snapshot {
        crate::crash::pg_rows(&self.db)
    }
    fn store(&self) -> &Path {
        &self.store
    }
    fn reset(&mut self) {
        self.resets += 1;
        let name = format!("{}_{}", self.template.rsplit('/').next().expect("a name"), self.resets);
        psql(&self.server, &["-c", &format!("CREATE DATABASE {name} TEMPLATE {}", self.template.rsplit('/').next().expect("a name"))]);
        self.db = format!("{}/{name}", self.server.rsplit_once('/').expect("a URL").0);
    }
}

#[derive(Default, Debug)]
struct Tally {
    runs: usize,
    failed_cleanly: usize,
    completed: usize,
}

/// Sweeps k over one site in one mode; the runs it made.
fn sweep(landing: &mut dyn Landing, plan: &Plan, archive: &Arc<[u8]>, site: Site, mode: Mode, tally: &mut Tally) {
    let rows_before = landing.rows();
    let objects_before = objects(landing.store());
    for at in 1.. {
        assert!(at < 5_000, "{site:?} {mode:?}: the import never ran to the end");
        let fault = Fault::new(site, at, mode);
        let open = {
            let (archive, fault) = (archive.clone(), fault.clone());
            move || -> orgport_core::Result<Box<dyn Read>> {
                Ok(Box::new(FaultyReader { inner: io::Cursor::new(archive.clone()), fault: fault.clone() }))
            }
        };
        let stores = {
            let fault = fault.clone();
            move |url: &str| -> orgport_core::Result<Box<dyn ObjectStore>> {
                let inner = orgport_objects::open_store(url, |_| None)?;
                Ok(Box::new(FaultyStore { inner, fault: fault.clone() }))
            }
        };
        let options = ImportOptions { dry_run: false, files: Some(FilesImport { open: &stores, jobs: 2 }) };
        let mut engine = FaultyEngine { inner: landing.engine(), fault: fault.clone() };
        let result = import(&mut engine, plan, &open, &options, &orgport_core::progress::Quiet);
        drop(engine);
        tally.runs += 1;
        let what = format!("{site:?} {mode:?} at {at}");
        match result {
            Err(e) => {
                let text = chain(&e);
                assert!(fault.hit.load(Ordering::SeqCst), "{what}: failed without the fault: {text}");
                assert!(text.contains(MESSAGE), "{what}: the error does not say what failed: {text}");
                // A read that failed is not damaged data.
                assert!(!text.contains("corrupt") && !text.contains("damaged"), "{what}: a failed read reported as damage: {text}");
                assert!(landing.rows() == rows_before, "{what}: the failed import changed rows: {text}");
                assert!(objects(landing.store()) == objects_before, "{what}: the failed import changed the store: {text}");
                tally.failed_cleanly += 1;
            }
            Ok(report) => {
                let org = json_key(&report.orgs[0].target);
                let mut engine = landing.engine();
                let stores = |url: &str| orgport_objects::open_store(url, |_| None);
                let plain = || -> orgport_core::Result<Box<dyn Read>> { Ok(Box::new(io::Cursor::new(archive.clone()))) };
                let verified =
                    orgport_core::verify::verify(engine.as_mut(), plan, &plain, &[org], Some(&stores), 2, &orgport_core::progress::Quiet)
                        .expect("verify runs");
                assert!(verified.is_equal(), "{what}: the import reported success, and verify found {:?}", verified.differences);
                assert!(verified.files_equal > 0, "{what}: no file verified");
                tally.completed += 1;
                let finished = !fault.hit.load(Ordering::SeqCst);
                // Back to the start: the store loses the new organisation's objects.
                let added: Vec<String> = objects(landing.store()).into_keys().filter(|k| !objects_before.contains_key(k)).collect();
                added.iter().for_each(|k| std::fs::remove_file(landing.store().join(k)).expect("removing an imported object"));
                landing.reset();
                if finished {
                    return;
                }
            }
        }
    }
}

/// Organisation 1 of the example with six files (one streamed), and a target's plan.
fn archive_and_plan(work: &Work, engine: &mut dyn Engine, store: &Path) -> (Arc<[u8]>, Plan) {
    let source =
        work.example("source.db", &ExampleOptions { orgs: 2, tasks_per_project: 2, projects_per_org: 2, ..ExampleOptions::default() });
    let source_store = work.path("source-files");
    for (i, size) in [0usize, 700, 5_000, 20_000, 1_100_000, 64].into_iter().enumerate() {
        let path = source_store.join(format!("1/f/{i}.bin"));
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("a store directory");
        std::fs::write(path, random_bytes(i as u64, size)).expect("a source file");
    }
    let archive = work.path("org-1.orgport");
    work.export(&source, Some(&crate::crash::files_config(work, "source.toml", &source_store)), None, &["1"], &[], &archive).ok();
    let plan = plan_with(engine, &example_config_with_files(store));
    (bytes(&archive).into(), plan)
}

fn target_store(work: &Work) -> PathBuf {
    let store = work.path("target-files");
    std::fs::create_dir_all(store.join("100")).expect("a store directory");
    std::fs::write(store.join("100/own.bin"), b"the target's own").expect("a target file");
    store
}

fn sweep_all(landing: &mut dyn Landing, plan: &Plan, archive: &Arc<[u8]>, sites: &[Site], name: &str) {
    let mut tally = Tally::default();
    for &site in sites {
        for mode in [Mode::Once, Mode::ForGood] {
            sweep(landing, plan, archive, site, mode, &mut tally);
        }
    }
    println!("faults: {name}: {tally:?}");
    assert!(tally.failed_cleanly > 0 && tally.completed > 0, "{tally:?}");
}

#[test]
fn sqlite_every_failing_write_read_and_object_put_leaves_the_target_as_it_was() {
    let work = Work::new();
    let template = work.example(
        "target-template.db",
        &ExampleOptions { orgs: 2, first_org: 100, seed: 7, users: 5, tasks_per_project: 2, ..ExampleOptions::default() },
    );
    let db = work.copy(&template, "target.db");
    let mut landing = SqliteLanding { template, db, store: target_store(&work) };
    let (archive, plan) = archive_and_plan(&work, landing.engine().as_mut(), &landing.store);
    sweep_all(&mut landing, &plan, &archive, &[Site::Write, Site::ArchiveRead, Site::ObjectPut], "sqlite");
}

#[test]
fn postgres_every_failing_copy_chunk_and_write_leaves_the_target_as_it_was() {
    let Some(server) = server() else { return };
    let work = Work::new();
    let template = fresh_db(&server, "faults");
    psql(&template, &["-f", repo_root().join("examples/saas/schema.postgres.sql").to_str().expect("path")]);
    let mut landing = PostgresLanding { server, db: String::new(), template, store: target_store(&work), resets: 0 };
    landing.reset();
    let (archive, plan) = archive_and_plan(&work, landing.engine().as_mut(), &landing.store.clone());
    sweep_all(&mut landing, &plan, &archive, &[Site::Write], "postgres");
}
