//! Imports killed with SIGKILL at random moments (issue 7, "Crashes and faults"), in the manner of
//! SQLite's crash tests: the real binary imports an organisation into SQLite and into PostgreSQL
//! and is killed after a random delay, 100 times per engine. After each kill the target must hold
//! exactly the rows it held before, or those rows plus the complete organisation, which `verify`
//! then checks row by row against the archive.
//!
//! With the organisation's files (into SQLite with a directory store, into PostgreSQL with an S3
//! bucket and with a GCS bucket: 30 runs each), every kill is followed by `import --cleanup`:
//! then no object of an import that did not commit is left, none that was there has changed, and
//! no import's note remains.
//!
//! The delays spread over one import's whole run (start-up, both passes, the files, the commit);
//! each run's seed and delay are printed, `ORGPORT_CRASH_SEED` replays a sequence and
//! `ORGPORT_CRASH_RUNS` sets the number of runs of every test.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use orgport_testkit::example::ExampleOptions;

use crate::pg::{fresh_db, psql, server};
use crate::servers::{gcs, s3, Host, Place, Server};
use crate::util::*;

/// `ORGPORT_CRASH_RUNS`, else `default`.
fn runs(default: usize) -> usize {
    std::env::var("ORGPORT_CRASH_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// The database an import is killed on.
enum Target {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Target {
    /// The organisations (the root table's keys).
    fn orgs(&self) -> Vec<String> {
        let sql = "SELECT id FROM workspaces ORDER BY id";
        match self {
            Target::Sqlite(path) => rows(&open(path), sql, &[]).iter().map(|r| r[0].key_text()).collect(),
            Target::Postgres(url) => psql(url, &["-c", sql]).lines().map(str::to_string).collect(),
        }
    }

    fn url(&self) -> String {
        match self {
            Target::Sqlite(path) => url(path),
            Target::Postgres(url) => url.clone(),
        }
    }

    /// Every row of every table, sorted. A killed PostgreSQL client's transaction may still be
    /// ending on the server (or committing, if the kill came after `COMMIT` was sent): wait
    /// until no other session is left, so the state read is the final one.
    fn rows(&self) -> Snapshot {
        match self {
            Target::Sqlite(path) => snapshot(path),
            Target::Postgres(url) => {
                let others = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()";
                let started = Instant::now();
                while psql(url, &["-c", others]) != "0" {
                    assert!(started.elapsed() < Duration::from_secs(30), "the killed import's session never ended");
                    std::thread::sleep(Duration::from_millis(20));
                }
                pg_rows(url)
            }
        }
    }
}

/// PostgreSQL's rows as text, one cell per row (`t::text` is exact for every type the example
/// uses), separated by ASCII's unit and record separators so no value can split them.
pub(crate) fn pg_rows(url: &str) -> Snapshot {
    let tables = psql(url, &["-c", "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"]);
    let union: Vec<String> = tables.lines().map(|t| format!("SELECT {}, t::text FROM {} t", quote_literal(t), quote(t))).collect();
    let mut snapshot: Snapshot = tables.lines().map(|t| (t.to_string(), Vec::new())).collect();
    let out = psql(url, &["-F", "\x1f", "-R", "\x1e", "-c", &union.join(" UNION ALL ")]);
    for record in out.split('\x1e').filter(|r| !r.is_empty()) {
        let (table, row) = record.split_once('\x1f').expect("table and row");
        snapshot.get_mut(table).expect("a listed table").push(vec![Cell::text(row)]);
    }
    snapshot.values_mut().for_each(|rows| rows.sort());
    snapshot
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The seed of this run's delays: `ORGPORT_CRASH_SEED`, else the clock.
fn seed() -> u64 {
    std::env::var("ORGPORT_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("a clock after 1970").as_nanos() as u64
    })
}

/// xorshift64*: enough to spread delays, and replayable from the printed seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// How the runs ended.
#[derive(Default, Debug)]
struct Tally {
    /// Killed, and the target held exactly what it held before.
    unchanged: usize,
    /// Killed after the commit: the organisation is there, complete.
    committed_then_killed: usize,
    /// Finished before the kill.
    finished: usize,
    /// Objects of killed imports that `import --cleanup` removed.
    removed: usize,
    /// What killed writes left (a directory's temporary files) that it removed.
    leftovers: usize,
}

fn import_command(work: &Work, target: &Target, config: &Path, archive: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("orgport"));
    cmd.current_dir(work.path(".")).envs(work.env.iter().map(|(k, v)| (k, v)));
    let (db, config, archive) = (target.url(), config.display().to_string(), archive.display().to_string());
    cmd.args(["import", "--db", &db, "--config", &config, "--in", &archive, "--json"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// A store's objects and their bytes.
pub(crate) fn objects(store: &Path) -> BTreeMap<String, Vec<u8>> {
    let store = orgport_objects::open_store(&format!("file://{}", store.display()), |_| None).expect("the store");
    let keys = store.list("").expect("listing the store");
    keys.into_iter()
        .map(|o| {
            let mut bytes = Vec::new();
            store.reader(&o.key).expect("an object").read_to_end(&mut bytes).expect("reading an object");
            (o.key, bytes)
        })
        .collect()
}

/// With `files` (the target's store of files), every run ends with `import --cleanup`, and the
/// store must then hold its objects before the run, plus, if the organisation arrived, its files
/// (which `verify` reads back), and no import's note.
fn kill_imports_at_random(work: &Work, target: &Target, config: &Path, archive: &Path, files: Option<(Host, &Place)>, runs: usize) {
    let what = format!(
        "{}{}",
        target.url().split(':').next().unwrap_or("?"),
        files.map_or("", |(host, _)| match host {
            Host::Local => " with files in a directory",
            Host::Remote(server) if server.scheme() == "s3" => " with files in S3",
            Host::Remote(_) => " with files in GCS",
        })
    );
    // One import run to the end gives the span the kills spread over (and a first organisation).
    let started = Instant::now();
    let out = import_command(work, target, config, archive).output().expect("running orgport");
    assert!(out.status.success(), "the undisturbed import failed: {}", String::from_utf8_lossy(&out.stderr));
    let span = started.elapsed();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    let files_per_org = report["files"][0]["files"].as_u64().unwrap_or(0) as usize;
    assert!(files.is_none() || files_per_org > 0, "the archive carries no file: {report}");
    let seed = seed();
    println!("crash: {what}: seed {seed}, one import takes {span:?}");
    let mut rng = Rng(seed | 1);
    let mut tally = Tally::default();
    let (mut before, mut orgs_before) = (target.rows(), target.orgs());
    let mut objects_before = files.map(|(host, place)| host.objects(place));
    for run in 0..runs {
        // Up to 1.2 spans: some kills come after the end, to check the finished case too.
        let delay = Duration::from_micros(rng.below(span.as_micros() as u64 * 6 / 5));
        let at = format!("run {run} (seed {seed}, delay {delay:?})");
        let mut child = import_command(work, target, config, archive).spawn().expect("starting orgport");
        std::thread::sleep(delay);
        let finished = matches!(child.try_wait(), Ok(Some(_)));
        child.kill().ok();
        let out = child.wait_with_output().expect("waiting for orgport");
        let (after, orgs_after) = (target.rows(), target.orgs());
        let objects_after = files.map(|(host, place)| {
            let db = target.url();
            let cleanup = work.run(&["import", "--cleanup", "--db", &db, "--config", &config.display().to_string(), "--json"]);
            let report = cleanup.ok().json();
            tally.removed += report["removed"].as_array().expect("removed objects").len();
            tally.leftovers += report["leftovers"].as_u64().expect("leftovers") as usize;
            let after = host.objects(place);
            let before = objects_before.as_ref().expect("objects before");
            let changed: Vec<&String> = before.keys().filter(|key| after.get(*key) != before.get(*key)).collect();
            assert!(changed.is_empty(), "{at}: objects that were there changed or are gone: {changed:?}");
            let notes: Vec<&String> = after.keys().filter(|k| k.starts_with(orgport_core::journal::PREFIX)).collect();
            assert!(notes.is_empty(), "{at}: notes of imports remain after the cleanup: {notes:?}");
            after
        });
        let added = added_rows(&before, &after).unwrap_or_else(|e| panic!("{at}: rows that were there changed:\n{e}"));
        let new_orgs: Vec<&String> = orgs_after.iter().filter(|o| !orgs_before.contains(o)).collect();
        let new_objects: Vec<&String> = match (&objects_before, &objects_after) {
            (Some(before), Some(after)) => after.keys().filter(|k| !before.contains_key(*k)).collect(),
            _ => Vec::new(),
        };
        match new_orgs.len() {
            0 => {
                assert!(!(finished && out.status.success()), "{at}: a finished import added no organisation");
                assert!(added.values().all(Vec::is_empty), "{at}: a killed import left rows: {added:?}");
                assert!(new_objects.is_empty(), "{at}: objects of the killed import remain: {new_objects:?}");
                tally.unchanged += 1;
            }
            1 => {
                let org = new_orgs[0].clone();
                if files.is_some() {
                    let prefix = format!("{org}/");
                    let stray: Vec<&&String> = new_objects.iter().filter(|k| !k.starts_with(&prefix)).collect();
                    assert!(stray.is_empty(), "{at}: objects outside the new organisation's prefix: {stray:?}");
                    assert_eq!(new_objects.len(), files_per_org, "{at}: the new organisation's objects");
                }
                let db = target.url();
                work.run(&[
                    "verify",
                    "--db",
                    &db,
                    "--config",
                    &config.display().to_string(),
                    "--in",
                    &archive.display().to_string(),
                    "--org",
                    &org,
                ])
                .ok();
                if finished && out.status.success() {
                    tally.finished += 1;
                } else {
                    tally.committed_then_killed += 1;
                }
            }
            n => panic!("{at}: {n} organisations appeared"),
        }
        (before, orgs_before, objects_before) = (after, orgs_after, objects_after);
    }
    println!("crash: {what}: {runs} runs: {tally:?}");
    assert!(tally.unchanged > 0, "no kill came before the commit: {tally:?}");
}

fn archive_of_org_1(work: &Work) -> (PathBuf, PathBuf) {
    let source =
        work.example("source.db", &ExampleOptions { orgs: 2, tasks_per_project: 40, chain_depth: 100, ..ExampleOptions::default() });
    let config = example_config();
    let archive = work.path("org-1.orgport");
    work.export(&source, Some(&config), None, &["1"], &[], &archive).ok();
    (archive, config)
}

/// A target holding two organisations of its own.
fn target_db(work: &Work) -> PathBuf {
    let options = ExampleOptions { orgs: 2, first_org: 100, seed: 7, ..ExampleOptions::default() };
    work.example("target.db", &options)
}

/// The example's configuration with a local store of files.
pub(crate) fn files_config(work: &Work, name: &str, store: &Path) -> PathBuf {
    std::fs::create_dir_all(store).expect("a store directory");
    work.config(name, &example_config_with_files(store))
}

#[test]
fn sqlite_imports_killed_at_random_leave_the_target_as_it_was_or_complete() {
    let work = Work::new();
    let (archive, config) = archive_of_org_1(&work);
    let db = target_db(&work);
    kill_imports_at_random(&work, &Target::Sqlite(db), &config, &archive, None, runs(100));
}

#[test]
fn postgres_imports_killed_at_random_leave_the_target_as_it_was_or_complete() {
    let Some(server) = server() else { return };
    let work = Work::new();
    let (archive, config) = archive_of_org_1(&work);
    let db = postgres_target(&server, "crash");
    kill_imports_at_random(&work, &Target::Postgres(db), &config, &archive, None, runs(100));
}

/// Organisation 1 of the example with 40 files in a directory, some large enough that kills
/// land while they are written, exported with its files embedded.
fn archive_with_files(work: &Work) -> PathBuf {
    let source = work.example("source.db", &ExampleOptions { orgs: 2, tasks_per_project: 4, ..ExampleOptions::default() });
    let source_store = Host::Local.new_place(work, "source-files");
    for i in 0..40u64 {
        Host::Local.put(&source_store, &format!("1/f/{i}.bin"), &random_bytes(i, if i % 8 == 0 { 400_000 } else { 3_000 }));
    }
    let source_config = work.config("source.toml", &example_config_with_store(&source_store.url));
    let archive = work.path("org-1.orgport");
    work.export(&source, Some(&source_config), None, &["1"], &[], &archive).ok();
    archive
}

/// A new store of `host` for the target's files, holding an object of its own (outside every
/// organisation's prefix, which the sequence of organisation keys never reaches), and the
/// target's configuration naming it.
fn target_store(work: &Work, host: Host) -> (Place, PathBuf) {
    let store = host.new_place(work, "target-files");
    host.put(&store, "own/kept.bin", b"the target's own");
    let config = work.config("target.toml", &example_config_with_store(&store.url));
    (store, config)
}

/// A new PostgreSQL database with the example's schema.
fn postgres_target(server: &str, name: &str) -> String {
    let db = fresh_db(server, name);
    psql(&db, &["-f", repo_root().join("examples/saas/schema.postgres.sql").to_str().expect("path")]);
    db
}

/// With files: after each kill `import --cleanup` must leave no object of an import that did
/// not commit, and touch none of one that did.
#[test]
fn sqlite_imports_with_files_killed_at_random_leave_no_object_after_cleanup() {
    let work = Work::new();
    let archive = archive_with_files(&work);
    let (store, config) = target_store(&work, Host::Local);
    kill_imports_at_random(&work, &Target::Sqlite(target_db(&work)), &config, &archive, Some((Host::Local, &store)), runs(100));
}

/// The same into PostgreSQL, with the files in a bucket of `server` (S3 or GCS).
fn postgres_imports_with_files_in(server: &dyn Server) {
    let Some(pg) = crate::pg::server() else { return };
    let mut work = Work::new();
    let host = Host::Remote(server);
    work.env = host.env();
    let archive = archive_with_files(&work);
    let (store, config) = target_store(&work, host);
    let db = postgres_target(&pg, &format!("crash_files_{}", server.scheme()));
    kill_imports_at_random(&work, &Target::Postgres(db), &config, &archive, Some((host, &store)), runs(30));
}

#[test]
fn postgres_imports_with_files_in_s3_killed_at_random_leave_no_object_after_cleanup() {
    if let Some(s3) = s3() {
        postgres_imports_with_files_in(&s3);
    }
}

#[test]
fn postgres_imports_with_files_in_gcs_killed_at_random_leave_no_object_after_cleanup() {
    if let Some(gcs) = gcs() {
        postgres_imports_with_files_in(&gcs);
    }
}
