//! orgport-bench: how fast, and in how much memory, orgport moves one organisation, next to a
//! plain copy of the same rows by the database itself, measured in the same run.
//!
//! ```sh
//! cargo run --release -p orgport-bench -- [--rows 100000,1000000] [--timeout 300] [--config FILE]
//! cargo run --release -p orgport-bench -- --engine postgres [--pg-url URL] [--rows …]
//! cargo run --release -p orgport-bench -- --files [--files-count 1000] [--file-mib 1] [--file-jobs 8]
//! ```
//!
//! `--files` measures an organisation's files instead (see `files.rs`): N objects copied store to
//! store in S3 by export and import, against a plain copy loop of the storage client.
//!
//! For each size N it generates, with `orgport-testkit`, a SQLite source database whose workspace 1
//! holds about N rows (2 workspaces of that shape) and a target with 2 other workspaces (ids 100,
//! 101, the generator's default shape). With `--engine postgres` (server from `--pg-url`, else
//! `ORGPORT_PG_URL`) both are loaded with `COPY` into new databases on that server
//! (`examples/saas/schema.postgres.sql`, dropped at the end) and the phases work there. Each phase
//! runs in its own child process (this binary, re-run as `orgport-bench phase NAME …`) so that the
//! peak RSS it reports (`VmHWM` at the child's exit) is that phase's alone:
//!
//! - `export`: workspace 1 of the source into an archive file (library `export`, read-only);
//! - `import`: that archive into the target (library `import`, not a dry run);
//! - `verify`: the imported workspace against the archive (library `verify`);
//! - SQLite's baseline, `baseline`: the same rows copied with
//!   `INSERT INTO main.t SELECT * FROM src.t WHERE …` into an empty database with the same schema,
//!   in one transaction, foreign keys on (checked at commit, as an import does);
//! - PostgreSQL's baselines: `copy_out`, the same rows written with
//!   `COPY (SELECT * FROM t WHERE …) TO STDOUT (FORMAT binary)`, one file per table, from one
//!   read-only snapshot; `copy_in`, those files loaded with `COPY t FROM STDIN (FORMAT binary)`
//!   into an empty database with the same schema (indexes and foreign keys in place), in one
//!   transaction. Export and verify are compared with `copy_out`, import with `copy_in`.
//!
//! Results go to stdout (with PostgreSQL, ending with one `bench: …` line for the largest size);
//! progress, with per-step timings, to stderr. A phase that runs longer than `--timeout` seconds is
//! killed and reported, and the phases that need it are skipped. Files go to a temporary
//! directory, removed at the end.

mod files;
mod pg;
mod phase;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use orgport_testkit::example::{create_example_db, ExampleOptions};

const DEFAULT_ROWS: &[u64] = &[100_000, 1_000_000];
const DEFAULT_TIMEOUT_SECS: u64 = 300;
const TASKS_PER_PROJECT: usize = 200;
/// Rows of workspace 1 outside its projects, roughly: the workspace, ~5 memberships and the users
/// they name, 3 gift cards, 3 redemptions, 2 API tokens, 5 event-log rows, its plan.
const FIXED_ROWS: u64 = 25;
const ORGPORT_PHASES: [&str; 3] = ["export", "import", "verify"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("phase") => phase::run(&args[1..]),
        _ if args.iter().any(|a| a == "--files") => files::bench(&args),
        _ => bench(&args),
    };
    if let Err(e) = result {
        eprintln!("orgport-bench: error: {e:#}");
        std::process::exit(1);
    }
}

struct Options {
    sizes: Vec<u64>,
    timeout: Duration,
    config: PathBuf,
    backend: Backend,
}

/// Where the organisation is exported from and imported into.
enum Backend {
    /// SQLite files; the baseline is `INSERT INTO … SELECT` between attached databases.
    Sqlite,
    /// Databases created on the PostgreSQL server at this URL; the baselines are `COPY` out and in.
    Postgres { server: String },
}

impl Backend {
    /// The baseline phases, run after orgport's.
    fn baselines(&self) -> &'static [&'static str] {
        match self {
            Backend::Sqlite => &["baseline"],
            Backend::Postgres { .. } => &["copy_out", "copy_in"],
        }
    }

    /// The baseline whose speed a phase is compared with: the one doing the same kind of work.
    fn reference(&self, phase: &str) -> &'static str {
        match self {
            Backend::Sqlite => "baseline",
            Backend::Postgres { .. } if matches!(phase, "import" | "copy_in") => "copy_in",
            Backend::Postgres { .. } => "copy_out",
        }
    }

    fn ratio_header(&self) -> &'static str {
        match self {
            Backend::Sqlite => "vs baseline",
            Backend::Postgres { .. } => "vs COPY",
        }
    }
}

fn parse_options(args: &[String]) -> Result<Options> {
    let mut o = Options {
        sizes: DEFAULT_ROWS.to_vec(),
        timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
        config: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/saas/orgport.toml"),
        backend: Backend::Sqlite,
    };
    let mut engine = "sqlite".to_string();
    let mut pg_url = None;
    for (flag, value) in flag_values(args, &[], || {
        println!("usage: orgport-bench [--engine sqlite|postgres] [--pg-url URL] [--rows N[,N…]] [--timeout SECS] [--config FILE]");
        println!("       orgport-bench --files [--files-count N] [--file-mib M] [--file-jobs J] [--timeout SECS]   (see --files --help)");
        println!("  --engine   sqlite (default): SQLite files, against INSERT … SELECT between them;");
        println!("             postgres: databases created (and dropped) on a PostgreSQL server, against COPY");
        println!("  --pg-url   that server, postgres://USER@HOST:PORT/DB, as a user who may create databases");
        println!("             (default: $ORGPORT_PG_URL)");
        println!("  --rows     organisation sizes in rows (default 100000,1000000; 1e5 and 100k also work)");
        println!("  --timeout  seconds after which a phase is killed and reported (default {DEFAULT_TIMEOUT_SECS})");
        println!("  --config   orgport.toml of the example schema (default examples/saas/orgport.toml)");
    })? {
        match flag.as_str() {
            "--rows" => o.sizes = value.split(',').map(parse_count).collect::<Result<_>>()?,
            "--timeout" => o.timeout = Duration::from_secs(value.parse().with_context(|| format!("bad --timeout `{value}`"))?),
            "--config" => o.config = value.into(),
            "--engine" => engine = value,
            "--pg-url" => pg_url = Some(value),
            other => bail!("unknown option `{other}` (try --help)"),
        }
    }
    if o.sizes.is_empty() {
        bail!("--rows names no size");
    }
    o.config = o.config.canonicalize().with_context(|| format!("configuration `{}`", o.config.display()))?;
    o.backend = match engine.as_str() {
        "sqlite" if pg_url.is_some() => bail!("--pg-url goes with --engine postgres"),
        "sqlite" => Backend::Sqlite,
        "postgres" => {
            let server = pg_url
                .or_else(|| std::env::var("ORGPORT_PG_URL").ok().filter(|u| !u.is_empty()))
                .context("--engine postgres needs a server: pass --pg-url URL or set ORGPORT_PG_URL")?;
            if !pg::is_url(&server) {
                bail!("--pg-url `{}` is not a postgres:// URL", orgport_postgres::redact(&server));
            }
            Backend::Postgres { server }
        }
        other => bail!("unknown engine `{other}` (sqlite or postgres)"),
    };
    Ok(o)
}

/// The `--flag value` and `--flag=value` pairs of `args`; a flag in `bare` takes no value (its
/// pair's value is empty). `-h` or `--help` runs `help` and exits.
fn flag_values(args: &[String], bare: &[&str], help: impl Fn()) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (flag.as_str(), None),
        };
        if matches!(flag, "-h" | "--help") {
            help();
            std::process::exit(0);
        }
        let value = match inline {
            _ if bare.contains(&flag) => String::new(),
            Some(v) => v,
            None => it.next().with_context(|| format!("`{flag}` needs a value"))?.clone(),
        };
        pairs.push((flag.to_string(), value));
    }
    Ok(pairs)
}

/// `100000`, `100_000`, `1e5`, `100k`, `1m`.
fn parse_count(s: &str) -> Result<u64> {
    let t = s.trim().replace('_', "").to_lowercase();
    let (num, mult) = match t.strip_suffix('k') {
        Some(n) => (n.to_string(), 1e3),
        None => match t.strip_suffix('m') {
            Some(n) => (n.to_string(), 1e6),
            None => (t.clone(), 1.0),
        },
    };
    let v: f64 = num.parse().with_context(|| format!("bad row count `{s}`"))?;
    let n = (v * mult).round();
    if !(1.0..=1e12).contains(&n) {
        bail!("row count `{s}` out of range");
    }
    Ok(n as u64)
}

/// Rows one project of the generator holds with `tasks` tasks: itself, 4 labels, the tasks,
/// `position % 3` task labels per task and an attachment on every tenth task.
fn rows_per_project(tasks: usize) -> u64 {
    let task_labels: usize = (0..tasks).map(|p| p % 3).sum();
    let attachments = (0..tasks).filter(|p| p % 10 == 0).count();
    (1 + 4 + tasks + task_labels + attachments) as u64
}

/// Projects per workspace so that workspace 1 holds about `n` rows.
fn projects_for(n: u64) -> usize {
    let per = rows_per_project(TASKS_PER_PROJECT);
    (n.saturating_sub(FIXED_ROWS) as f64 / per as f64).round().max(1.0) as usize
}

/// What a child reported.
#[derive(Clone, Debug, Default)]
struct Measure {
    rows: u64,
    seconds: f64,
    peak_kib: u64,
    extra: Vec<(String, String)>,
}

impl Measure {
    fn get(&self, key: &str) -> Option<&str> {
        self.extra.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.rows as f64 / self.seconds
        } else {
            0.0
        }
    }
}

#[derive(Clone, Debug)]
enum Outcome {
    Done(Measure),
    Failed(String),
    TimedOut(f64),
    Skipped(String),
}

struct SizeRun {
    n: u64,
    projects: usize,
    source_rows: u64,
    outcomes: Vec<(&'static str, Outcome)>,
}

impl SizeRun {
    fn done(&self, phase: &str) -> Option<&Measure> {
        self.outcomes.iter().find_map(|(p, o)| match o {
            Outcome::Done(m) if *p == phase => Some(m),
            _ => None,
        })
    }

    /// A phase's speed (rows/s) over that of the baseline it is compared with.
    fn ratio(&self, backend: &Backend, phase: &str) -> Option<f64> {
        let base = self.done(backend.reference(phase))?.rate();
        (base > 0.0).then(|| self.done(phase).map(|m| m.rate() / base)).flatten()
    }

    fn peak_mib(&self, phase: &str) -> Option<f64> {
        self.done(phase).map(|m| m.peak_kib as f64 / 1024.0)
    }
}

fn bench(args: &[String]) -> Result<()> {
    let opts = parse_options(args)?;
    // Reach the server before generating anything, and name it in the report.
    let database = match &opts.backend {
        Backend::Sqlite => None,
        Backend::Postgres { server } => {
            // The durability settings weigh on import and copy_in: name them beside the figures.
            let row = pg::connect(server)?.query_one(
                "SELECT current_setting('server_version'), current_setting('fsync'), \
                 current_setting('synchronous_commit'), current_setting('shared_buffers')",
                &[],
            )?;
            let (version, fsync, commit, buffers): (String, String, String, String) = (row.get(0), row.get(1), row.get(2), row.get(3));
            Some(format!(
                "PostgreSQL {version} at {} (fsync={fsync}, synchronous_commit={commit}, shared_buffers={buffers})",
                orgport_postgres::redact(server)
            ))
        }
    };
    let exe = std::env::current_exe().context("finding this binary")?;
    let dir = tempfile::Builder::new().prefix("orgport-bench-").tempdir().context("creating the work directory")?;
    eprintln!("orgport-bench: work directory {}", dir.path().display());
    let mut runs = Vec::new();
    for &n in &opts.sizes {
        let sub = dir.path().join(format!("n{n}"));
        std::fs::create_dir(&sub)?;
        let run = bench_size(&exe, &opts, &sub, n)?;
        // Keep the disk use to one size at a time.
        std::fs::remove_dir_all(&sub)?;
        runs.push(run);
    }
    print_report(&opts, database.as_deref(), &runs);
    dir.close().context("removing the work directory")?;
    Ok(())
}

fn bench_size(exe: &Path, opts: &Options, dir: &Path, n: u64) -> Result<SizeRun> {
    let projects = projects_for(n);
    let source = dir.join("source.db");
    let target = dir.join("target.db");

    let t = Instant::now();
    eprintln!(
        "\n== N={n}: generating the source (2 workspaces × {projects} projects × {TASKS_PER_PROJECT} tasks, ~{} rows each)",
        projects as u64 * rows_per_project(TASKS_PER_PROJECT) + FIXED_ROWS
    );
    create_example_db(
        &source,
        &ExampleOptions { orgs: 2, projects_per_org: projects, tasks_per_project: TASKS_PER_PROJECT, ..ExampleOptions::default() },
    )?;
    let source_rows = count_rows(&source)?;
    eprintln!("   source: {source_rows} rows in all, {:.1}s, {:.0} MiB", t.elapsed().as_secs_f64(), mib(std::fs::metadata(&source)?.len()));
    // The target: two other workspaces, ids 100 and 101, the generator's default shape.
    create_example_db(&target, &ExampleOptions { orgs: 2, first_org: 100, ..ExampleOptions::default() })?;
    eprintln!("   target: {} rows", count_rows(&target)?);

    let config = path_arg(&opts.config);
    let outcomes = match &opts.backend {
        Backend::Sqlite => {
            // The baseline's destination: the same schema, empty. Even the lookup rows (plans) go,
            // so that the baseline copies the one plan the export writes and both move the same
            // row set.
            let baseline = dir.join("baseline.db");
            create_example_db(&baseline, &ExampleOptions { orgs: 0, users: 0, ..ExampleOptions::default() })?;
            rusqlite::Connection::open(&baseline)?.execute_batch("DELETE FROM plans; DELETE FROM search_cache;")?;
            eprintln!("   baseline destination: {} rows", count_rows(&baseline)?);
            // A killed child leaves nothing behind: SQLite rolls back its journal at the next open.
            let phases = PhaseRunner { exe, dir, timeout: opts.timeout, config, after_kill: &|| Ok(()) };
            let mut outcomes = phases.orgport(&path_arg(&source), &path_arg(&target))?;
            outcomes.push(("baseline", phases.run("baseline", &["--db", &path_arg(&baseline), "--source", &path_arg(&source)])?));
            outcomes
        }
        Backend::Postgres { server } => {
            // `base`, the COPY baseline's destination, stays empty like SQLite's.
            let mut databases = pg::ScratchDatabases::new(server, &n.to_string());
            let (src, tgt, base) = (databases.create("src")?, databases.create("tgt")?, databases.create("base")?);
            pg::load_from_sqlite(&source, &src)?;
            pg::load_from_sqlite(&target, &tgt)?;
            // The server goes on with a killed child's query: end it, lest it slow the next phases.
            let phases = PhaseRunner { exe, dir, timeout: opts.timeout, config, after_kill: &|| databases.end_sessions() };
            let mut outcomes = phases.orgport(&src, &tgt)?;
            let copies = dir.join("copy");
            std::fs::create_dir(&copies)?;
            let copy_out = phases.run("copy_out", &["--db", &src, "--dir", &path_arg(&copies)])?;
            let copy_in = match &copy_out {
                Outcome::Done(_) => phases.run("copy_in", &["--db", &base, "--dir", &path_arg(&copies)])?,
                _ => Outcome::Skipped("no COPY files".into()),
            };
            outcomes.extend([("copy_out", copy_out), ("copy_in", copy_in)]);
            databases.drop_all()?;
            outcomes
        }
    };
    Ok(SizeRun { n, projects, source_rows, outcomes })
}

fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Runs phases as children of this binary, in the work directory of one size.
struct PhaseRunner<'a> {
    exe: &'a Path,
    dir: &'a Path,
    timeout: Duration,
    config: String,
    /// Cleans up after a phase killed at its timeout.
    after_kill: &'a dyn Fn() -> Result<()>,
}

impl PhaseRunner<'_> {
    /// export, import and verify, from database `source` (a SQLite file or a PostgreSQL URL) to
    /// `target`, each skipped when the one before it did not complete.
    fn orgport(&self, source: &str, target: &str) -> Result<Vec<(&'static str, Outcome)>> {
        let archive = path_arg(&self.dir.join("org1.orgport"));
        let with_plan = |db: &str| {
            vec!["--db".to_string(), db.to_string(), "--config".into(), self.config.clone(), "--archive".into(), archive.clone()]
        };
        let export = self.run("export", &with_plan(source))?;
        let import = match &export {
            Outcome::Done(_) => self.run("import", &with_plan(target))?,
            _ => Outcome::Skipped("no archive".into()),
        };
        let verify = match &import {
            Outcome::Done(m) => {
                let org = m.get("org").context("import reported no new key")?;
                self.run("verify", &[with_plan(target), vec!["--org".into(), org.to_string()]].concat())?
            }
            _ => Outcome::Skipped("no import".into()),
        };
        Ok(vec![("export", export), ("import", import), ("verify", verify)])
    }

    /// Runs `orgport-bench phase NAME ARGS…` and waits for it, at most the timeout.
    fn run(&self, name: &str, args: &[impl AsRef<std::ffi::OsStr>]) -> Result<Outcome> {
        eprintln!("-- {name}");
        let start = Instant::now();
        let mut child = Command::new(self.exe)
            .arg("phase")
            .arg(name)
            .args(args)
            // The scratch stores of import and verify go to the work directory too.
            .env("TMPDIR", self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting the {name} phase"))?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let reader = std::thread::spawn(move || BufReader::new(stdout).lines().map_while(|l| l.ok()).collect::<Vec<String>>());
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break Some(status);
            }
            if start.elapsed() > self.timeout {
                eprintln!("   {name}: still running after {:.0}s: killing it (pid {})", self.timeout.as_secs_f64(), child.id());
                child.kill()?;
                child.wait()?;
                (self.after_kill)()?;
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let lines = reader.join().unwrap_or_default();
        let Some(status) = status else {
            return Ok(Outcome::TimedOut(start.elapsed().as_secs_f64()));
        };
        if !status.success() {
            return Ok(Outcome::Failed(format!("exit {status}")));
        }
        let line =
            lines.iter().find_map(|l| l.strip_prefix(phase::RESULT_TAG)).with_context(|| format!("the {name} phase printed no result"))?;
        let mut m = Measure::default();
        for field in line.split_whitespace() {
            let (k, v) = field.split_once('=').with_context(|| format!("bad result field `{field}`"))?;
            match k {
                "rows" => m.rows = v.parse()?,
                "seconds" => m.seconds = v.parse()?,
                "hwm_kib" => m.peak_kib = v.parse()?,
                _ => m.extra.push((k.to_string(), v.to_string())),
            }
        }
        eprintln!("   {name}: {} rows in {:.2}s, peak RSS {:.1} MiB", m.rows, m.seconds, m.peak_kib as f64 / 1024.0);
        Ok(Outcome::Done(m))
    }
}

/// Rows in every table of a database.
fn count_rows(path: &Path) -> Result<u64> {
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut total = 0u64;
    for t in sqlite_tables(&conn)? {
        total += conn.query_row(&format!("SELECT count(*) FROM {}", quote_ident(&t)), [], |r| r.get::<_, i64>(0))? as u64;
    }
    Ok(total)
}

/// The tables of a SQLite database, in the order the schema created them.
fn sqlite_tables(conn: &rusqlite::Connection) -> Result<Vec<String>> {
    Ok(conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// An SQL identifier quoted for SQLite and PostgreSQL alike.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// 1234567 → "1,234,567".
fn thousands(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Per-table counts of a `tables=name:rows,…` result field.
fn table_counts(m: &Measure) -> Vec<(String, u64)> {
    m.get("tables")
        .unwrap_or("")
        .split(',')
        .filter_map(|e| e.rsplit_once(':'))
        .filter_map(|(t, n)| Some((t.to_string(), n.parse().ok()?)))
        .collect()
}

fn print_report(opts: &Options, database: Option<&str>, runs: &[SizeRun]) {
    let backend = &opts.backend;
    println!();
    println!(
        "orgport-bench — workspace 1 of the example SaaS database (examples/saas), {} build",
        if cfg!(debug_assertions) { "DEBUG" } else { "release" }
    );
    if let Some(database) = database {
        println!("database: {database}, loaded from the generated SQLite files");
    }
    println!("config {}; timeout {}s per phase; each phase in its own process", opts.config.display(), opts.timeout.as_secs());
    for run in runs {
        println!();
        println!(
            "N = {} (source: 2 workspaces × {} projects × {TASKS_PER_PROJECT} tasks, {} rows in all; target: workspaces 100, 101, default shape)",
            thousands(run.n),
            run.projects,
            thousands(run.source_rows)
        );
        println!("  {:<9} {:>11} {:>9} {:>11} {:>12} {:>13}", "phase", "rows", "seconds", "rows/s", backend.ratio_header(), "peak RSS MiB");
        for (p, o) in &run.outcomes {
            match o {
                Outcome::Done(m) => {
                    let ratio = run.ratio(backend, p).map(|r| format!("{r:.3}×")).unwrap_or_else(|| "-".into());
                    println!(
                        "  {:<9} {:>11} {:>9.2} {:>11} {:>12} {:>13.1}",
                        p,
                        thousands(m.rows),
                        m.seconds,
                        thousands(m.rate().round() as u64),
                        ratio,
                        m.peak_kib as f64 / 1024.0
                    );
                }
                Outcome::Failed(why) => println!("  {p:<9} FAILED ({why})"),
                Outcome::TimedOut(s) => println!("  {p:<9} TIMED OUT after {s:.0}s (killed; see the step log on stderr)"),
                Outcome::Skipped(why) => println!("  {p:<9} skipped ({why})"),
            }
        }
        if let Some(e) = run.done("export") {
            if let Some(bytes) = e.get("bytes").and_then(|b| b.parse::<u64>().ok()) {
                println!("  archive: {:.1} MiB ({:.1} bytes/row)", mib(bytes), bytes as f64 / e.rows.max(1) as f64);
            }
        }
        if let Some(i) = run.done("import") {
            println!(
                "  import: new workspace {}, {} row(s) matched rather than created",
                i.get("org").unwrap_or("?"),
                i.get("matched").unwrap_or("?")
            );
        }
        if let Some(v) = run.done("verify") {
            match v.get("differences") {
                Some("0") => println!("  verify: equal"),
                Some(d) => println!("  verify: NOT EQUAL, {d} difference(s)"),
                None => {}
            }
        }
        let copy = backend.reference("export");
        if let (Some(e), Some(b)) = (run.done("export"), run.done(copy)) {
            let exported = table_counts(e);
            let copied = table_counts(b);
            let mut diffs = Vec::new();
            for (t, n) in &exported {
                match copied.iter().find(|(c, _)| c == t) {
                    Some((_, m)) if m == n => {}
                    Some((_, m)) => diffs.push(format!("{t} {n} exported / {m} copied")),
                    None => diffs.push(format!("{t} {n} exported / not copied")),
                }
            }
            for (t, m) in &copied {
                if !exported.iter().any(|(c, _)| c == t) {
                    diffs.push(format!("{t} not exported / {m} copied"));
                }
            }
            if diffs.is_empty() {
                println!("  row sets: export and {copy} agree table by table");
            } else {
                println!("  row sets differ: {}", diffs.join("; "));
            }
        }
    }
    // Sizes come in the order given; compare the extremes whatever it was.
    let (Some(small), Some(large)) = (runs.iter().min_by_key(|r| r.n), runs.iter().max_by_key(|r| r.n)) else {
        return;
    };
    if runs.len() >= 2 {
        println!();
        println!("memory flat? peak RSS at N={} vs N={}:", thousands(large.n), thousands(small.n));
        for &phase in ORGPORT_PHASES.iter().chain(backend.baselines()) {
            match (small.peak_mib(phase), large.peak_mib(phase)) {
                (Some(a), Some(b)) => println!("  {phase:<9} {a:8.1} MiB → {b:8.1} MiB   ratio {:.2}", b / a),
                _ => println!("  {phase:<9} n/a (phase did not complete at both sizes)"),
            }
        }
    }
    if let Backend::Postgres { .. } = backend {
        print_targets(backend, large);
    }
}

/// The issue's targets next to the largest size's figures, then the one summary line that ends
/// stdout.
fn print_targets(backend: &Backend, large: &SizeRun) {
    let ratio = |phase| large.ratio(backend, phase);
    // Only when all three completed: a phase killed early says nothing of its peak.
    let peak = ORGPORT_PHASES.iter().map(|p| large.peak_mib(p)).reduce(|a, b| Some(a?.max(b?))).flatten();
    let show = |value: Option<f64>, decimals: usize| value.map_or("n/a".to_string(), |v| format!("{v:.decimals$}"));
    let against = |value: Option<f64>, shown: fn(f64) -> String, met: fn(f64) -> bool| {
        value.map_or("n/a".to_string(), |v| format!("{} ({})", shown(v), if met(v) { "met" } else { "missed" }))
    };
    println!();
    println!("targets (issue): export ≥ 0.8× COPY, import ≥ 0.7× COPY, peak RSS ≤ 200 MiB and flat from 1e5 to 1e7 rows");
    println!(
        "  at N={}: export {}, import {}, peak RSS {}",
        thousands(large.n),
        against(ratio("export"), |r| format!("{r:.3}×"), |r| r >= 0.8),
        against(ratio("import"), |r| format!("{r:.3}×"), |r| r >= 0.7),
        against(peak, |p| format!("{p:.1} MiB"), |p| p <= 200.0),
    );
    println!(
        "bench: export_vs_copy={} import_vs_copy={} verify_vs_copy={} peak_rss_mib={} rows={}",
        show(ratio("export"), 3),
        show(ratio("import"), 3),
        show(ratio("verify"), 3),
        show(peak, 0),
        large.done("export").map_or("n/a".to_string(), |e| e.rows.to_string()),
    );
}
