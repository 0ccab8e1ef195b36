//! The child side: one phase, run in its own process so that its peak RSS is its own.
//!
//! A child prints exactly one result line on stdout (see [`RESULT_TAG`]); everything else it says
//! (per-step progress with timestamps) goes to stderr.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
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
use orgport_sqlite::{Access, SqliteEngine};
use rusqlite::Connection;

/// Starts the one line of stdout a child writes: `RESULT_TAG rows=… seconds=… hwm_kib=… …`.
pub const RESULT_TAG: &str = "ORGPORT-BENCH-RESULT";

/// The root key of the organisation every phase works on in the source database.
pub const SOURCE_ORG: i64 = 1;

/// What a phase reports besides rows, time and memory: `key=value` pairs without spaces.
type Extra = Vec<(&'static str, String)>;

/// `orgport-bench phase NAME --key value …`
pub fn run(args: &[String]) -> Result<()> {
    let (name, rest) = args.split_first().context("phase: missing the phase name")?;
    let opts = Opts::parse(rest)?;
    let start = Instant::now();
    let (rows, extra) = match name.as_str() {
        "export" => export_phase(&opts)?,
        "import" => import_phase(&opts)?,
        "verify" => verify_phase(&opts)?,
        "baseline" => baseline_phase(&opts)?,
        other => bail!("unknown phase `{other}`"),
    };
    let seconds = start.elapsed().as_secs_f64();
    let mut line = format!("{RESULT_TAG} rows={rows} seconds={seconds:.6} hwm_kib={}", peak_rss_kib()?);
    for (k, v) in extra {
        line.push_str(&format!(" {k}={v}"));
    }
    println!("{line}");
    Ok(())
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
    db: Option<PathBuf>,
    source: Option<PathBuf>,
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
                "--db" => o.db = Some(value.into()),
                "--source" => o.source = Some(value.into()),
                "--config" => o.config = Some(value.into()),
                "--archive" => o.archive = Some(value.into()),
                "--org" => o.org = Some(value.clone()),
                other => bail!("phase: unknown option `{other}`"),
            }
        }
        Ok(o)
    }

    fn db(&self) -> Result<&Path> {
        self.db.as_deref().context("phase: `--db` is required")
    }

    fn archive(&self) -> Result<&Path> {
        self.archive.as_deref().context("phase: `--archive` is required")
    }

    fn plan(&self, engine: &mut SqliteEngine) -> Result<Plan> {
        let path = self.config.as_deref().context("phase: `--config` is required")?;
        let config = Config::load(path)?;
        Ok(Plan::build(engine.introspect()?, &config, None, engine.capabilities())?)
    }
}

fn export_phase(o: &Opts) -> Result<(u64, Extra)> {
    let out = o.archive()?;
    let mut engine = SqliteEngine::open_path(o.db()?, Access::ReadOnly)?;
    let plan = o.plan(&mut engine)?;
    let spool = out.parent().context("the archive path has no directory")?;
    let options = ExportOptions { orgs: vec![SOURCE_ORG.to_string()], with_groups: BTreeSet::new(), spool_dir: Some(spool), jobs: 1 };
    let file = File::create(out).with_context(|| format!("creating `{}`", out.display()))?;
    let mut writer = BufWriter::new(file);
    let manifest = export(&mut engine, &plan, &options, &mut writer, &StepLog::new("export"))?;
    // Durable like the CLI's export (and like the commits of the other phases).
    writer.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let rows = manifest.tables.iter().map(|t| t.rows).sum();
    let tables = manifest.tables.iter().map(|t| format!("{}:{}", t.name, t.rows)).collect::<Vec<_>>().join(",");
    Ok((rows, vec![("bytes", std::fs::metadata(out)?.len().to_string()), ("tables", tables)]))
}

/// Opens the archive afresh for each pass, as the CLI does.
fn opener(path: &Path) -> impl Fn() -> orgport_core::Result<Box<dyn Read>> + '_ {
    move || {
        let file = File::open(path).map_err(|e| orgport_core::Error::io("cannot open archive", path, e))?;
        Ok(Box::new(BufReader::with_capacity(1 << 16, file)) as Box<dyn Read>)
    }
}

fn import_phase(o: &Opts) -> Result<(u64, Extra)> {
    let mut engine = SqliteEngine::open_path(o.db()?, Access::ReadWrite)?;
    let plan = o.plan(&mut engine)?;
    let open = opener(o.archive()?);
    let report = import(&mut engine, &plan, &open, &ImportOptions { dry_run: false }, &StepLog::new("import"))?;
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
    let mut engine = SqliteEngine::open_path(o.db()?, Access::ReadOnly)?;
    let plan = o.plan(&mut engine)?;
    let open = opener(o.archive()?);
    let report = verify(&mut engine, &plan, &open, &[org], &StepLog::new("verify"))?;
    for d in &report.differences {
        eprintln!("  [verify] difference: {d}");
    }
    let rows = report.tables.values().map(|t| t.archive_rows).sum();
    Ok((rows, vec![("differences", report.difference_count.to_string())]))
}

/// The baseline: the same organisation's rows copied with `INSERT INTO … SELECT` from the source,
/// attached to a database with the target's schema, in one transaction with the foreign keys
/// checked at commit (as an import does).
fn baseline_phase(o: &Opts) -> Result<(u64, Extra)> {
    let source = o.source.as_deref().context("phase: `--source` is required")?;
    let conn = Connection::open(o.db()?)?;
    conn.execute_batch("PRAGMA foreign_keys = ON;")?;
    conn.execute("ATTACH DATABASE ?1 AS src", [source.to_string_lossy()])?;
    conn.execute_batch("BEGIN IMMEDIATE; PRAGMA defer_foreign_keys = ON;")?;
    let log = StepLog::new("baseline");
    let mut rows = 0;
    let mut tables = Vec::new();
    for (table, sql) in baseline_statements() {
        log.begin("copy", table, None);
        let n = conn.execute(&sql, [SOURCE_ORG]).with_context(|| format!("baseline: {sql}"))? as u64;
        log.rows(n);
        log.end();
        rows += n;
        tables.push(format!("{table}:{n}"));
    }
    conn.execute_batch("COMMIT;").context("baseline: commit")?;
    Ok((rows, vec![("tables", tables.join(","))]))
}

/// One `INSERT INTO main.t SELECT * FROM src.t WHERE <belongs to org ?1>` per table the export
/// writes, parents first, following the same foreign-key paths to the workspace. Users and the
/// plan are those the organisation's rows point at (the import matches them on the target; here
/// they are copied into the empty destination).
fn baseline_statements() -> Vec<(&'static str, String)> {
    let projects = "SELECT id FROM src.projects WHERE workspace_id = ?1";
    let tasks = format!("SELECT id FROM src.tasks WHERE project_id IN ({projects})");
    let by_ws = |t: &'static str| (t, format!("INSERT INTO main.{t} SELECT * FROM src.{t} WHERE workspace_id = ?1"));
    vec![
        ("plans", "INSERT INTO main.plans SELECT * FROM src.plans WHERE id IN (SELECT plan_id FROM src.workspaces WHERE id = ?1)".to_string()),
        (
            "users",
            format!(
                "INSERT INTO main.users SELECT * FROM src.users WHERE id IN (\
                 SELECT user_id FROM src.memberships WHERE workspace_id = ?1 \
                 UNION SELECT assignee_id FROM src.tasks WHERE project_id IN ({projects}) \
                 UNION SELECT created_by FROM src.api_tokens WHERE workspace_id = ?1)"
            ),
        ),
        ("workspaces", "INSERT INTO main.workspaces SELECT * FROM src.workspaces WHERE id = ?1".to_string()),
        by_ws("memberships"),
        by_ws("projects"),
        ("labels", format!("INSERT INTO main.labels SELECT * FROM src.labels WHERE project_id IN ({projects})")),
        ("tasks", format!("INSERT INTO main.tasks SELECT * FROM src.tasks WHERE project_id IN ({projects})")),
        ("task_labels", format!("INSERT INTO main.task_labels SELECT * FROM src.task_labels WHERE task_id IN ({tasks})")),
        ("attachments", format!("INSERT INTO main.attachments SELECT * FROM src.attachments WHERE task_id IN ({tasks})")),
        by_ws("gift_cards"),
        by_ws("redemptions"),
        by_ws("api_tokens"),
        ("event-log", "INSERT INTO main.\"event-log\" SELECT * FROM src.\"event-log\" WHERE workspace_id = ?1".to_string()),
    ]
}

/// Progress as timestamped lines on stderr: one per finished step (phase, table, rows, seconds),
/// and one every few seconds during a long step, so a slow run shows where its time goes.
struct StepLog {
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
    fn new(name: &'static str) -> Self {
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
