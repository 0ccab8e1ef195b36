//! The child side: one phase, run in its own process so that its peak RSS is its own.
//!
//! A child prints exactly one result line on stdout (see [`RESULT_TAG`]); everything else it says
//! (per-step progress with timestamps) goes to stderr.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use orgport_core::config::Config;
use orgport_core::engine::Engine;
use orgport_core::export::{export, ExportOptions};
use orgport_core::import::{import, ImportOptions};
use orgport_core::plan::Plan;
use orgport_core::progress::Progress;
use orgport_core::verify::verify;
use orgport_postgres::PostgresEngine;
use orgport_sqlite::{Access, SqliteEngine};
use postgres::IsolationLevel;
use rusqlite::Connection;

use crate::{pg, quote_ident};

/// Starts the one line of stdout a child writes: `RESULT_TAG rows=… seconds=… hwm_kib=… …`.
pub const RESULT_TAG: &str = "ORGPORT-BENCH-RESULT";

/// Connections the export reads on, as `orgport export` does by default.
const EXPORT_JOBS: usize = 1;

/// The root key of the organisation every phase works on in the source database.
pub const SOURCE_ORG: i64 = 1;

/// What a phase reports besides rows, time and memory: `key=value` pairs without spaces.
pub type Extra = Vec<(&'static str, String)>;

/// `orgport-bench phase NAME --key value …`
pub fn run(args: &[String]) -> Result<()> {
    let (name, rest) = args.split_first().context("phase: missing the phase name")?;
    let start = Instant::now();
    let (rows, extra) = match crate::files::phase_name(name) {
        Some(files) => crate::files::phase(files, rest)?,
        None => rows_phase(name, &Opts::parse(rest)?)?,
    };
    let seconds = start.elapsed().as_secs_f64();
    let mut line = format!("{RESULT_TAG} rows={rows} seconds={seconds:.6} hwm_kib={}", peak_rss_kib()?);
    for (k, v) in extra {
        line.push_str(&format!(" {k}={v}"));
    }
    println!("{line}");
    Ok(())
}

/// A phase of the row bench.
fn rows_phase(name: &str, opts: &Opts) -> Result<(u64, Extra)> {
    match name {
        "export" => export_phase(opts),
        "import" => import_phase(opts),
        "verify" => verify_phase(opts),
        "baseline" => baseline_phase(opts),
        "copy_out" => copy_out_phase(opts),
        "copy_in" => copy_in_phase(opts),
        other => bail!("unknown phase `{other}`"),
    }
}

/// The peak resident set size of this process so far (`VmHWM`), in KiB.
pub fn peak_rss_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/self/status")
}

#[derive(Default)]
struct Opts {
    /// A SQLite file or a PostgreSQL URL.
    db: Option<String>,
    source: Option<PathBuf>,
    /// Where the COPY baseline keeps its files, one per table.
    dir: Option<PathBuf>,
    config: Option<PathBuf>,
    archive: Option<PathBuf>,
    org: Option<String>,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Self> {
        let mut o = Opts::default();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it.next().with_context(|| format!("phase: `{flag}` needs a value"))?;
            match flag.as_str() {
                "--db" => o.db = Some(value.clone()),
                "--source" => o.source = Some(value.into()),
                "--dir" => o.dir = Some(value.into()),
                "--config" => o.config = Some(value.into()),
                "--archive" => o.archive = Some(value.into()),
                "--org" => o.org = Some(value.clone()),
                other => bail!("phase: unknown option `{other}`"),
            }
        }
        Ok(o)
    }

    fn db(&self) -> Result<&str> {
        self.db.as_deref().context("phase: `--db` is required")
    }

    fn dir(&self) -> Result<&Path> {
        self.dir.as_deref().context("phase: `--dir` is required")
    }

    /// The engine of `--db`: PostgreSQL for a URL, else SQLite.
    fn engine(&self, access: Access) -> Result<Box<dyn Engine>> {
        let db = self.db()?;
        Ok(if pg::is_url(db) { Box::new(PostgresEngine::open(db)?) } else { Box::new(SqliteEngine::open_path(Path::new(db), access)?) })
    }

    fn archive(&self) -> Result<&Path> {
        self.archive.as_deref().context("phase: `--archive` is required")
    }

    fn plan(&self, engine: &mut dyn Engine) -> Result<Plan> {
        let path = self.config.as_deref().context("phase: `--config` is required")?;
        let config = Config::load(path)?;
        Ok(Plan::build(engine.introspect()?, &config, None, engine.capabilities())?)
    }
}

fn export_phase(o: &Opts) -> Result<(u64, Extra)> {
    let out = o.archive()?;
    let mut engine = o.engine(Access::ReadOnly)?;
    let plan = o.plan(engine.as_mut())?;
    let spool = out.parent().context("the archive path has no directory")?;
    let options = ExportOptions {
        orgs: vec![SOURCE_ORG.to_string()],
        with_groups: BTreeSet::new(),
        spool_dir: Some(spool),
        jobs: EXPORT_JOBS,
        files: None,
    };
    let file = File::create(out).with_context(|| format!("creating `{}`", out.display()))?;
    let mut writer = BufWriter::new(file);
    let manifest = export(engine.as_mut(), &plan, &options, &mut writer, &StepLog::new("export"))?;
    // Durable like the CLI's export (and like the commits of the other phases).
    writer.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let rows = manifest.tables.iter().map(|t| t.rows).sum();
    let tables = manifest.tables.iter().map(|t| format!("{}:{}", t.name, t.rows)).collect::<Vec<_>>().join(",");
    Ok((rows, vec![("bytes", std::fs::metadata(out)?.len().to_string()), ("tables", tables)]))
}

/// Opens the archive afresh for each pass, as the CLI does.
pub fn opener(path: &Path) -> impl Fn() -> orgport_core::Result<Box<dyn Read>> + '_ {
    move || {
        let file = File::open(path).map_err(|e| orgport_core::Error::io("cannot open archive", path, e))?;
        Ok(Box::new(BufReader::with_capacity(1 << 16, file)) as Box<dyn Read>)
    }
}

fn import_phase(o: &Opts) -> Result<(u64, Extra)> {
    let mut engine = o.engine(Access::ReadWrite)?;
    let plan = o.plan(engine.as_mut())?;
    let open = opener(o.archive()?);
    let report = import(engine.as_mut(), &plan, &open, &ImportOptions::default(), &StepLog::new("import"))?;
    let rows = report.tables.values().map(|c| c.created + c.matched).sum();
    let target = report.orgs.first().context("the import report names no organisation")?;
    let org = match target.target.as_i64() {
        Some(i) => i.to_string(),
        None => target.target.as_str().map(str::to_string).unwrap_or_else(|| target.target.to_string()),
    };
    let matched: u64 = report.tables.values().map(|c| c.matched).sum();
    Ok((rows, vec![("org", org), ("matched", matched.to_string())]))
}

fn verify_phase(o: &Opts) -> Result<(u64, Extra)> {
    let org = o.org.clone().context("phase: `--org` is required")?;
    let mut engine = o.engine(Access::ReadOnly)?;
    let plan = o.plan(engine.as_mut())?;
    let open = opener(o.archive()?);
    let report = verify(engine.as_mut(), &plan, &open, &[org], None, 1, &StepLog::new("verify"))?;
    for d in &report.differences {
        eprintln!("  [verify] difference: {d}");
    }
    let rows = report.tables.values().map(|t| t.archive_rows).sum();
    Ok((rows, vec![("differences", report.difference_count.to_string())]))
}

/// The SQLite baseline: the same organisation's rows copied with `INSERT INTO … SELECT` from the
/// source, attached to a database with the target's schema, in one transaction with the foreign
/// keys checked at commit (as an import does).
fn baseline_phase(o: &Opts) -> Result<(u64, Extra)> {
    let source = o.source.as_deref().context("phase: `--source` is required")?;
    let conn = Connection::open(o.db()?)?;
    conn.execute_batch("PRAGMA foreign_keys = ON;")?;
    conn.execute("ATTACH DATABASE ?1 AS src", [source.to_string_lossy()])?;
    conn.execute_batch("BEGIN IMMEDIATE; PRAGMA defer_foreign_keys = ON;")?;
    let copied = each_table("baseline", "src.", |table, select| {
        let sql = format!("INSERT INTO main.{} {select}", quote_ident(table));
        Ok(conn.execute(&sql, []).with_context(|| format!("baseline: {sql}"))? as u64)
    })?;
    conn.execute_batch("COMMIT;").context("baseline: commit")?;
    Ok(copied)
}

/// The first half of the PostgreSQL baseline: the rows the SQLite baseline selects, written with
/// `COPY (SELECT …) TO STDOUT (FORMAT binary)` to one file per table, from one read-only
/// snapshot as the export reads them.
fn copy_out_phase(o: &Opts) -> Result<(u64, Extra)> {
    let dir = o.dir()?;
    let mut client = pg::connect(o.db()?)?;
    let mut tx = client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start()?;
    let copied = each_table("copy_out", "", |table, select| {
        let path = copy_file(dir, table);
        let mut out = BufWriter::new(File::create(&path).with_context(|| format!("creating `{}`", path.display()))?);
        let stream = tx.copy_out(&format!("COPY ({select}) TO STDOUT (FORMAT binary)")).with_context(|| format!("COPY out of {table}"))?;
        let tuples = copy_counting_tuples(stream, &mut out).with_context(|| format!("COPY out of {table}"))?;
        // Durable like the export's archive.
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(tuples)
    })?;
    tx.commit()?;
    Ok(copied)
}

/// The second half: those files into an empty database with the same schema, its indexes and
/// foreign keys in place, with `COPY … FROM STDIN (FORMAT binary)` in one transaction.
fn copy_in_phase(o: &Opts) -> Result<(u64, Extra)> {
    let dir = o.dir()?;
    let mut client = pg::connect(o.db()?)?;
    let mut tx = client.transaction()?;
    let copied = each_table("copy_in", "", |table, _| {
        let path = copy_file(dir, table);
        let mut file = File::open(&path).with_context(|| format!("opening `{}`", path.display()))?;
        let mut writer = tx.copy_in(&format!("COPY {} FROM STDIN (FORMAT binary)", quote_ident(table)))?;
        std::io::copy(&mut file, &mut writer).with_context(|| format!("COPY into {table}"))?;
        writer.finish().with_context(|| format!("COPY into {table}"))
    })?;
    tx.commit().context("copy_in: commit")?;
    Ok(copied)
}

fn copy_file(dir: &Path, table: &str) -> PathBuf {
    dir.join(format!("{table}.copy"))
}

/// Runs `copy(table, select)` for every table of the organisation's row set, parents first, each
/// as one logged step; returns the rows copied and the `tables=name:rows,…` field.
fn each_table(phase: &'static str, source_prefix: &str, mut copy: impl FnMut(&str, &str) -> Result<u64>) -> Result<(u64, Extra)> {
    let log = StepLog::new(phase);
    let mut rows = 0;
    let mut tables = Vec::new();
    for (table, select) in organisation_selects(source_prefix) {
        log.begin("copy", table, None);
        let n = copy(table, &select)?;
        log.rows(n);
        log.end();
        rows += n;
        tables.push(format!("{table}:{n}"));
    }
    Ok((rows, vec![("tables", tables.join(","))]))
}

/// One `SELECT * FROM <prefix>t WHERE <belongs to organisation SOURCE_ORG>` per table the export
/// writes, parents first, following the same foreign-key paths to the workspace. Users and the
/// plan are those the organisation's rows point at (the import matches them on the target; the
/// baselines copy them into their empty destination). The same SQL serves SQLite and PostgreSQL.
fn organisation_selects(prefix: &str) -> Vec<(&'static str, String)> {
    let org = SOURCE_ORG;
    let projects = format!("SELECT id FROM {prefix}projects WHERE workspace_id = {org}");
    let tasks = format!("SELECT id FROM {prefix}tasks WHERE project_id IN ({projects})");
    let select = |table: &'static str, filter: String| (table, format!("SELECT * FROM {prefix}{} WHERE {filter}", quote_ident(table)));
    let by_workspace = |table| select(table, format!("workspace_id = {org}"));
    vec![
        select("plans", format!("id IN (SELECT plan_id FROM {prefix}workspaces WHERE id = {org})")),
        select(
            "users",
            format!(
                "id IN (SELECT user_id FROM {prefix}memberships WHERE workspace_id = {org} \
                 UNION SELECT assignee_id FROM {prefix}tasks WHERE project_id IN ({projects}) \
                 UNION SELECT created_by FROM {prefix}api_tokens WHERE workspace_id = {org})"
            ),
        ),
        select("workspaces", format!("id = {org}")),
        by_workspace("memberships"),
        by_workspace("projects"),
        select("labels", format!("project_id IN ({projects})")),
        select("tasks", format!("project_id IN ({projects})")),
        select("task_labels", format!("task_id IN ({tasks})")),
        select("attachments", format!("task_id IN ({tasks})")),
        by_workspace("gift_cards"),
        by_workspace("redemptions"),
        by_workspace("api_tokens"),
        by_workspace("event-log"),
    ]
}

/// Copies a stream in COPY's binary format to `out`, counting its tuples on the way (the server
/// does not report the count of a `COPY … TO STDOUT`).
fn copy_counting_tuples(input: impl Read, out: &mut impl Write) -> Result<u64> {
    let mut stream = BufReader::with_capacity(1 << 16, Tee { input, out });
    // Signature (11 bytes), flags (4), length of the header extension (4), the extension.
    let mut header = [0u8; 19];
    stream.read_exact(&mut header)?;
    if &header[..11] != b"PGCOPY\n\xff\r\n\0" {
        bail!("not a binary COPY stream");
    }
    skip(&mut stream, u32::from_be_bytes([header[15], header[16], header[17], header[18]]) as usize)?;
    let mut tuples = 0;
    loop {
        let mut fields = [0u8; 2];
        stream.read_exact(&mut fields)?;
        // -1 is the trailer.
        let Ok(fields) = u16::try_from(i16::from_be_bytes(fields)) else {
            break;
        };
        for _ in 0..fields {
            let mut length = [0u8; 4];
            stream.read_exact(&mut length)?;
            // -1 is NULL, without data.
            skip(&mut stream, usize::try_from(i32::from_be_bytes(length)).unwrap_or(0))?;
        }
        tuples += 1;
    }
    // To the end of the stream, so that the COPY completes (and anything after the trailer is kept).
    std::io::copy(&mut stream, &mut std::io::sink())?;
    Ok(tuples)
}

/// A reader that also writes what it reads to `out`.
struct Tee<R, W> {
    input: R,
    out: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.input.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

fn skip(stream: &mut impl BufRead, mut n: usize) -> std::io::Result<()> {
    while n > 0 {
        let available = stream.fill_buf()?.len();
        if available == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let step = available.min(n);
        stream.consume(step);
        n -= step;
    }
    Ok(())
}

/// Progress as timestamped lines on stderr: one per finished step (phase, table, rows, seconds),
/// and one every few seconds during a long step, so a slow run shows where its time goes.
pub struct StepLog {
    name: &'static str,
    start: Instant,
    step: RefCell<Option<Step>>,
}

struct Step {
    what: String,
    start: Instant,
    rows: u64,
    last_report: Instant,
}

impl StepLog {
    pub fn new(name: &'static str) -> Self {
        StepLog { name, start: Instant::now(), step: RefCell::new(None) }
    }
}

impl Progress for StepLog {
    fn begin(&self, phase: &str, table: &str, _total: Option<u64>) {
        let now = Instant::now();
        *self.step.borrow_mut() = Some(Step { what: format!("{phase} {table}"), start: now, rows: 0, last_report: now });
    }

    fn rows(&self, n: u64) {
        let mut step = self.step.borrow_mut();
        let Some(s) = step.as_mut() else { return };
        let before = s.rows;
        s.rows += n;
        if before >> 16 != s.rows >> 16 && s.last_report.elapsed().as_secs() >= 10 {
            s.last_report = Instant::now();
            eprintln!(
                "  [{} +{:7.1}s] … {}: {} rows so far, {:.1}s in this step",
                self.name,
                self.start.elapsed().as_secs_f64(),
                s.what,
                s.rows,
                s.start.elapsed().as_secs_f64()
            );
        }
    }

    fn end(&self) {
        if let Some(s) = self.step.borrow_mut().take() {
            eprintln!(
                "  [{} +{:7.1}s] {:40} {:>9} rows {:8.3}s",
                self.name,
                self.start.elapsed().as_secs_f64(),
                s.what,
                s.rows,
                s.start.elapsed().as_secs_f64()
            );
        }
    }
}
