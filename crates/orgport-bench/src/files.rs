//! `--files`: an organisation's files copied store to store by orgport, next to a plain copy loop
//! of the storage client over the same objects, with the same concurrency, in the same run.
//!
//! ```sh
//! cargo run --release -p orgport-bench -- --files [--files-count 1000] [--file-mib 1] [--file-jobs 8] [--timeout 300]
//! ```
//!
//! The S3 server is the one `ORGPORT_S3_ENDPOINT`, `ORGPORT_S3_ACCESS_KEY` and
//! `ORGPORT_S3_SECRET_KEY` name; without them the bench starts `scripts/storage.sh` (SeaweedFS on
//! loopback) in a directory of its own and stops it at the end. Setup, untimed: a source bucket
//! holding N objects of M MiB of random bytes under `1/`, a SQLite database whose organisation 1
//! names each of them in `attachments.object_key`, an `orgport.toml` declaring
//! `[files.uploads] store = "s3://SRC" prefix = "{org}/"`, and a target database (organisations 1
//! and 2) with its own `orgport.toml` and bucket. Then, each in its own child process (this
//! binary's `phase`, calling the library as `orgport` does) so that each reports its own peak RSS:
//!
//! - `client_copy`, export's baseline: list `1/`, then for each object GET it and PUT it into
//!   another bucket, `--file-jobs` at a time (`buffer_unordered`) — object_store, as any script
//!   would; `client_copy_transfer`, import's: the same loop over the objects the import copies,
//!   those export put in the transfer bucket (the server does not serve every object alike:
//!   each run is compared with a copy of the very objects it reads);
//! - `export`: `orgport export --files copy --files-to s3://TRANSFER` (CopyObject from the source
//!   bucket, then the copy read back for its size and SHA-256);
//! - `import`: that archive into the target database (a HEAD per file to refuse objects in the
//!   way, CopyObject from TRANSFER to the target bucket under the new organisation's prefix, the
//!   copy read back and checked against the archive's checksum; and the N rows, a small part);
//! - `server_copy`: object_store's `copy` (CopyObject) of each object within the source bucket;
//!   `server_copy_check`: the same followed by a GET and SHA-256 of the copy — orgport's requests
//!   without orgport.
//!
//! After each run the destination is checked — object count and sizes, and the bytes of three
//! objects against the source's — so that a run that did nothing is reported as failed, never as
//! fast. The buckets are removed at the end when the server is not the bench's own.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AwsAuthorizer, AwsCredential};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore as _, ObjectStoreExt as _, PutPayload};
use orgport_core::config::Config;
use orgport_core::export::{export, ExportOptions};
use orgport_core::files::{FilesExport, FilesMode};
use orgport_core::import::{import, FilesImport, ImportOptions};
use orgport_core::plan::Plan;
use orgport_core::store::ObjectStore;
use orgport_sqlite::{Access, SqliteEngine};
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use tokio::runtime::Runtime;

use crate::phase::{opener, Extra, StepLog};
use crate::{mib, path_arg, thousands, Measure, Outcome, PhaseRunner, DEFAULT_TIMEOUT_SECS};

/// The child phases of `--files`, in the order they run.
pub const PHASES: [&str; 6] = ["client_copy", "export", "client_copy_transfer", "import", "server_copy", "server_copy_check"];

/// The baseline a run is compared with: the client copy of the objects it copies (the source's
/// for export, the transfer bucket's for import).
fn reference(run: &str) -> Option<&'static str> {
    match run {
        "export" => Some("client_copy"),
        "import" => Some("client_copy_transfer"),
        _ => None,
    }
}
/// Child phase names: distinct from the row bench's.
const PHASE_PREFIX: &str = "files_";
/// The ratio the issue asks of orgport against the client copy.
const TARGET_RATIO: f64 = 0.8;
/// The source organisation's prefix and its objects' names.
const SOURCE_PREFIX: &str = "1/";
const SET: &str = "uploads";
const REGION: &str = "us-east-1";

fn object_name(i: usize) -> String {
    format!("file-{i:05}.bin")
}

struct FileOptions {
    count: usize,
    mib: usize,
    jobs: usize,
    timeout: Duration,
}

fn parse_options(args: &[String]) -> Result<FileOptions> {
    let mut o = FileOptions { count: 1000, mib: 1, jobs: 8, timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS) };
    for (flag, value) in crate::flag_values(args, &["--files"], || {
        println!("usage: orgport-bench --files [--files-count N] [--file-mib M] [--file-jobs J] [--timeout SECS]");
        println!("  N objects of M MiB (default 1000 × 1) copied store to store in S3 by orgport export (--files copy)");
        println!("  and import, against a GET+PUT loop of object_store with the same concurrency J (default 8).");
        println!("  S3 server: $ORGPORT_S3_ENDPOINT, $ORGPORT_S3_ACCESS_KEY, $ORGPORT_S3_SECRET_KEY; when unset,");
        println!("  scripts/storage.sh is started in a private directory and stopped at the end.");
    })? {
        let number = |what: &str| -> Result<usize> {
            let n: usize = value.replace('_', "").parse().with_context(|| format!("bad {what} `{value}`"))?;
            ensure!(n > 0, "{what} must be at least 1");
            Ok(n)
        };
        match flag.as_str() {
            "--files" => {}
            "--files-count" => o.count = number("--files-count")?,
            "--file-mib" => o.mib = number("--file-mib")?,
            "--file-jobs" => o.jobs = number("--file-jobs")?,
            "--timeout" => o.timeout = Duration::from_secs(number("--timeout")? as u64),
            other => bail!("unknown option `{other}` with --files (try --files --help)"),
        }
    }
    ensure!(o.count < 100_000, "--files-count: at most 99999 objects");
    Ok(o)
}

/// The S3 server: named by the environment, or started here (and stopped when dropped).
struct Storage {
    endpoint: String,
    access_key: String,
    secret_key: String,
    /// `ORGPORT_STORAGE_DIR` of the servers this bench started.
    started: Option<PathBuf>,
}

fn storage_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/storage.sh")
}

impl Storage {
    fn connect(work: &Path) -> Result<Storage> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let (Some(endpoint), Some(access_key), Some(secret_key)) =
            (var("ORGPORT_S3_ENDPOINT"), var("ORGPORT_S3_ACCESS_KEY"), var("ORGPORT_S3_SECRET_KEY"))
        {
            return Ok(Storage { endpoint, access_key, secret_key, started: None });
        }
        let dir = work.join("storage");
        eprintln!("orgport-bench: ORGPORT_S3_* not set: starting scripts/storage.sh (ORGPORT_STORAGE_DIR={})", dir.display());
        let output = Command::new("bash")
            .arg(storage_script())
            .arg("start")
            .env("ORGPORT_STORAGE_DIR", &dir)
            .env_remove("ORGPORT_S3_ACCESS_KEY")
            .env_remove("ORGPORT_S3_SECRET_KEY")
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .context("running scripts/storage.sh start")?;
        // From here on the servers may be running: stop them whatever happens next.
        let mut storage = Storage { endpoint: String::new(), access_key: String::new(), secret_key: String::new(), started: Some(dir) };
        ensure!(output.status.success(), "scripts/storage.sh start failed ({})", output.status);
        let printed = String::from_utf8_lossy(&output.stdout);
        let exported: BTreeMap<&str, &str> =
            printed.lines().filter_map(|l| l.strip_prefix("export ")).filter_map(|l| l.split_once('=')).collect();
        let get = |name: &str| exported.get(name).map(|v| v.to_string()).with_context(|| format!("scripts/storage.sh printed no {name}"));
        storage.endpoint = get("ORGPORT_S3_ENDPOINT")?;
        storage.access_key = get("ORGPORT_S3_ACCESS_KEY")?;
        storage.secret_key = get("ORGPORT_S3_SECRET_KEY")?;
        Ok(storage)
    }

    /// The variables orgport reads, for this process and the phases it starts.
    fn export_env(&self) {
        for (name, value) in [
            ("AWS_ACCESS_KEY_ID", self.access_key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.as_str()),
            ("AWS_REGION", REGION),
            ("AWS_ENDPOINT_URL_S3", self.endpoint.as_str()),
        ] {
            std::env::set_var(name, value);
        }
        for name in ["AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"] {
            std::env::remove_var(name);
        }
    }

    fn describe(&self) -> String {
        match &self.started {
            Some(_) => format!("SeaweedFS S3 on loopback at {} (started by the bench: scripts/storage.sh)", self.endpoint),
            None => format!("S3 at {} (ORGPORT_S3_ENDPOINT)", self.endpoint),
        }
    }

    /// A request with an empty body signed with object_store's SigV4 signer (object_store has no
    /// bucket API).
    async fn signed(&self, method: reqwest::Method, path: &str) -> Result<(reqwest::StatusCode, String)> {
        let url = format!("{}/{path}", self.endpoint.trim_end_matches('/'));
        let credential = AwsCredential { key_id: self.access_key.clone(), secret_key: self.secret_key.clone(), token: None };
        let mut request = object_store::client::HttpRequest::new(Bytes::new().into());
        *request.method_mut() = method.clone();
        *request.uri_mut() = url.parse().context("a bucket URL")?;
        AwsAuthorizer::new(&credential, "s3", REGION).try_authorize(&mut request, None).context("signing")?;
        let mut builder = reqwest::Client::new().request(method, &url);
        for (name, value) in request.headers() {
            builder = builder.header(name.as_str(), value.as_bytes());
        }
        let response = builder.send().await.with_context(|| format!("reaching {}", self.endpoint))?;
        let status = response.status();
        Ok((status, response.text().await.unwrap_or_default()))
    }

    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        let (status, body) = self.signed(reqwest::Method::PUT, bucket).await?;
        ensure!(status.is_success(), "creating bucket {bucket}: {status} {body}");
        Ok(())
    }

    /// Every object of the bucket, then the bucket (best effort).
    async fn remove_bucket(&self, bucket: &str) -> Result<()> {
        let client = s3_client(bucket)?;
        let listed: Vec<_> = client.list(None).try_collect().await?;
        stream::iter(listed)
            .map(|meta| {
                let client = &client;
                async move { client.delete(&meta.location).await }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<_>>()
            .await?;
        let (status, body) = self.signed(reqwest::Method::DELETE, bucket).await?;
        ensure!(status.is_success(), "removing bucket {bucket}: {status} {body}");
        Ok(())
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        let Some(dir) = &self.started else { return };
        let stopped = Command::new("bash").arg(storage_script()).arg("stop").env("ORGPORT_STORAGE_DIR", dir).stdin(Stdio::null()).status();
        match stopped {
            Ok(s) if s.success() => eprintln!("orgport-bench: storage servers stopped"),
            _ => eprintln!(
                "orgport-bench: could not stop the storage servers: run `ORGPORT_STORAGE_DIR={} bash scripts/storage.sh stop`",
                dir.display()
            ),
        }
    }
}

/// An object_store client of `bucket`, configured from the variables orgport reads, the way
/// orgport-objects configures its own (path-style requests, plain http allowed on a custom
/// endpoint, default client options).
fn s3_client(bucket: &str) -> Result<AmazonS3> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut builder = AmazonS3Builder::new().with_bucket_name(bucket).with_region(var("AWS_REGION").unwrap_or_else(|| REGION.into()));
    if let Some(endpoint) = var("AWS_ENDPOINT_URL_S3") {
        builder =
            builder.with_endpoint(&endpoint).with_virtual_hosted_style_request(false).with_allow_http(endpoint.starts_with("http://"));
    }
    if let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        builder = builder.with_access_key_id(id).with_secret_access_key(secret);
    }
    builder.build().with_context(|| format!("an S3 client for bucket {bucket}"))
}

fn runtime() -> Result<Runtime> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting a tokio runtime")
}

/// `1/` → the object_store path `1` (whose listing is everything under `1/`).
fn dir_path(prefix: &str) -> ObjectPath {
    ObjectPath::from(prefix.trim_end_matches('/'))
}

/// The buckets of one run.
struct Buckets {
    source: String,
    transfer: String,
    target: String,
    client: String,
    client_transfer: String,
}

impl Buckets {
    fn new() -> Self {
        let name = |role: &str| format!("orgport-bench-{}-{role}", std::process::id());
        Buckets {
            source: name("src"),
            transfer: name("transfer"),
            target: name("target"),
            client: name("client-copy"),
            client_transfer: name("client-copy-2"),
        }
    }

    fn all(&self) -> [&str; 5] {
        [&self.source, &self.transfer, &self.target, &self.client, &self.client_transfer]
    }
}

pub fn bench(args: &[String]) -> Result<()> {
    let opts = parse_options(args)?;
    let exe = std::env::current_exe().context("finding this binary")?;
    let dir = tempfile::Builder::new().prefix("orgport-bench-files-").tempdir().context("creating the work directory")?;
    eprintln!("orgport-bench: work directory {}", dir.path().display());
    // Declared after `dir`, so dropped (servers stopped) before the directory is removed.
    let storage = Storage::connect(dir.path())?;
    storage.export_env();
    let rt = runtime()?;
    let buckets = Buckets::new();
    let result = run(&rt, &storage, &buckets, &opts, &exe, dir.path());
    if storage.started.is_none() {
        // Someone else's server: leave nothing behind.
        for bucket in buckets.all() {
            if let Err(e) = rt.block_on(storage.remove_bucket(bucket)) {
                eprintln!("orgport-bench: {e:#}");
            }
        }
    }
    drop(rt);
    drop(storage);
    let report = result?;
    dir.close().context("removing the work directory")?;
    if report.guard_failed {
        bail!("a run's result did not check out (see FAILED above)");
    }
    Ok(())
}

struct Report {
    guard_failed: bool,
}

fn run(rt: &Runtime, storage: &Storage, buckets: &Buckets, o: &FileOptions, exe: &Path, dir: &Path) -> Result<Report> {
    let size = o.mib << 20;
    let t = Instant::now();
    eprintln!("\n== setup: {} objects × {} MiB under s3://{}/{SOURCE_PREFIX}", o.count, o.mib, buckets.source);
    rt.block_on(async {
        for bucket in buckets.all() {
            storage.create_bucket(bucket).await?;
            // The first write to a new bucket may wait for the server to make room (SeaweedFS
            // grows volumes for the bucket's collection, about a second): not the runs' to pay.
            let client = s3_client(bucket)?;
            let warm = ObjectPath::from("warm-up");
            client.put(&warm, PutPayload::from(vec![0u8; size])).await.with_context(|| format!("writing to bucket {bucket}"))?;
            client.delete(&warm).await?;
        }
        let source = s3_client(&buckets.source)?;
        stream::iter(0..o.count)
            .map(|i| {
                let source = &source;
                async move {
                    // Distinct random bytes per object, the same in every run.
                    let mut bytes = vec![0u8; size];
                    rand::rngs::StdRng::seed_from_u64(i as u64).fill_bytes(&mut bytes);
                    let path = ObjectPath::from(format!("{SOURCE_PREFIX}{}", object_name(i)));
                    source.put(&path, PutPayload::from(bytes)).await.with_context(|| format!("uploading {path}"))
                }
            })
            .buffer_unordered(o.jobs.max(8))
            .try_collect::<Vec<_>>()
            .await
    })?;
    eprintln!("   uploaded in {:.1}s", t.elapsed().as_secs_f64());

    let (source_db, target_db) = (dir.join("source.db"), dir.join("target.db"));
    create_db(&source_db, &[1, 2], o.count)?;
    create_db(&target_db, &[1, 2], 0)?;
    let (source_toml, target_toml) = (dir.join("source.toml"), dir.join("target.toml"));
    std::fs::write(&source_toml, config_text(&buckets.source))?;
    std::fs::write(&target_toml, config_text(&buckets.target))?;
    let archive = dir.join("org1.orgport");
    let jobs = o.jobs.to_string();

    let phases = PhaseRunner { exe, dir, timeout: o.timeout, config: String::new(), after_kill: &|| Ok(()) };
    let phase = |name: &str, args: &[&str]| phases.run(&format!("{PHASE_PREFIX}{name}"), args);
    let guard = |outcome: Outcome, check: &dyn Fn(&Measure) -> Result<String>| match outcome {
        Outcome::Done(m) => match check(&m) {
            Ok(note) => {
                eprintln!("   checked: {note}");
                Outcome::Done(m)
            }
            Err(e) => Outcome::Failed(format!("check: {e:#}")),
        },
        other => other,
    };
    let copied = |bucket: &str, prefix: &str| {
        let (bucket, prefix) = (bucket.to_string(), prefix.to_string());
        move |_: &Measure| rt.block_on(check_copy(&buckets.source, &bucket, &prefix, o.count, size))
    };

    let mut outcomes: Vec<(&'static str, Outcome)> = Vec::new();
    let client = phase("client_copy", &["--from", &buckets.source, "--prefix", SOURCE_PREFIX, "--to", &buckets.client, "--jobs", &jobs])?;
    outcomes.push(("client_copy", guard(client, &copied(&buckets.client, SOURCE_PREFIX))));

    let transfer = format!("s3://{}", buckets.transfer);
    let exported = phase(
        "export",
        &[
            "--db",
            &path_arg(&source_db),
            "--config",
            &path_arg(&source_toml),
            "--archive",
            &path_arg(&archive),
            "--to",
            &transfer,
            "--jobs",
            &jobs,
        ],
    )?;
    let transferred = format!("{SET}/{SOURCE_PREFIX}");
    let exported = guard(exported, &copied(&buckets.transfer, &transferred));
    let client_transfer = match &exported {
        Outcome::Done(_) => {
            let copy = phase(
                "client_copy_transfer",
                &["--from", &buckets.transfer, "--prefix", &transferred, "--to", &buckets.client_transfer, "--jobs", &jobs],
            )?;
            guard(copy, &copied(&buckets.client_transfer, &transferred))
        }
        _ => Outcome::Skipped("no objects in the transfer bucket".into()),
    };
    let imported = match &exported {
        Outcome::Done(_) => {
            let imported = phase(
                "import",
                &["--db", &path_arg(&target_db), "--config", &path_arg(&target_toml), "--archive", &path_arg(&archive), "--jobs", &jobs],
            )?;
            guard(imported, &|m: &Measure| {
                let org = m.get("org").context("the import reported no new organisation")?;
                let prefix = format!("{org}/");
                let rows: i64 = rusqlite::Connection::open(&target_db)?.query_row(
                    "SELECT count(*) FROM attachments WHERE org_id = ?1 AND object_key LIKE ?2 || '%'",
                    rusqlite::params![org.parse::<i64>()?, prefix],
                    |r| r.get(0),
                )?;
                ensure!(
                    rows as usize == o.count,
                    "the target database has {rows} attachment rows of organisation {org} under `{prefix}`, not {}",
                    o.count
                );
                let objects = rt.block_on(check_copy(&buckets.source, &buckets.target, &prefix, o.count, size))?;
                Ok(format!("{objects}; {rows} rows of organisation {org} name them"))
            })
        }
        _ => Outcome::Skipped("no archive".into()),
    };
    outcomes.push(("export", exported));
    outcomes.push(("client_copy_transfer", client_transfer));
    outcomes.push(("import", imported));

    for (name, under, check) in [("server_copy", "server-copy/", false), ("server_copy_check", "server-check/", true)] {
        let mut args = vec!["--bucket", &buckets.source, "--prefix", SOURCE_PREFIX, "--under", under, "--jobs", &jobs];
        if check {
            args.extend(["--check", "sha256"]);
        }
        let outcome = phase(name, &args)?;
        outcomes.push((name, guard(outcome, &copied(&buckets.source, &format!("{under}{SOURCE_PREFIX}")))));
    }

    Ok(print_report(o, storage, &outcomes))
}

/// One organisation table and its attachments, each naming an object of the organisation.
fn create_db(path: &Path, orgs: &[i64], attachments: usize) -> Result<()> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "CREATE TABLE orgs (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE attachments (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES orgs (id), object_key TEXT NOT NULL);",
    )?;
    let tx = conn.transaction()?;
    for org in orgs {
        tx.execute("INSERT INTO orgs (id, name) VALUES (?1, ?2)", rusqlite::params![org, format!("organisation {org}")])?;
    }
    {
        let mut insert = tx.prepare("INSERT INTO attachments (org_id, object_key) VALUES (1, ?1)")?;
        for i in 0..attachments {
            insert.execute([format!("{SOURCE_PREFIX}{}", object_name(i))])?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn config_text(bucket: &str) -> String {
    format!("root = \"orgs\"\n\n[files.{SET}]\nstore = \"s3://{bucket}\"\nprefix = \"{{org}}/\"\ncolumns = [\"attachments.object_key\"]\n")
}

/// `count` objects of `size` bytes under `prefix` of `bucket`, and three of them equal, byte for
/// byte, to the source's.
async fn check_copy(source: &str, bucket: &str, prefix: &str, count: usize, size: usize) -> Result<String> {
    let dest = s3_client(bucket)?;
    let listed: Vec<_> = dest.list(Some(&dir_path(prefix))).try_collect().await?;
    let wrong: Vec<_> = listed.iter().filter(|m| m.size != size as u64).collect();
    ensure!(listed.len() == count, "s3://{bucket}/{prefix} holds {} objects, not {count}", listed.len());
    ensure!(wrong.is_empty(), "{} objects in s3://{bucket}/{prefix} are not {size} bytes (`{}`)", wrong.len(), wrong[0].location);
    let source = s3_client(source)?;
    for i in [0, count / 2, count - 1] {
        let name = object_name(i);
        let theirs = source.get(&ObjectPath::from(format!("{SOURCE_PREFIX}{name}"))).await?.bytes().await?;
        let ours = dest.get(&ObjectPath::from(format!("{prefix}{name}"))).await?.bytes().await?;
        ensure!(theirs == ours, "s3://{bucket}/{prefix}{name} differs from the source object");
    }
    Ok(format!("{count} objects of {size} bytes in s3://{bucket}/{prefix}, 3 equal to the source's"))
}

fn print_report(o: &FileOptions, storage: &Storage, outcomes: &[(&'static str, Outcome)]) -> Report {
    let done = |name: &str| {
        outcomes.iter().find_map(|(p, outcome)| match outcome {
            Outcome::Done(m) if *p == name => Some(m),
            _ => None,
        })
    };
    let total_mib = (o.count * o.mib) as f64;
    // Time over time: the baseline's seconds over the run's, for the same objects.
    let ratio = |name: &str| Some(done(reference(name)?)?.seconds / done(name)?.seconds);
    println!();
    println!(
        "orgport-bench --files — {} objects × {} MiB ({} MiB), copied store to store, {} at a time, {} build",
        thousands(o.count as u64),
        o.mib,
        thousands(total_mib as u64),
        o.jobs,
        if cfg!(debug_assertions) { "DEBUG" } else { "release" }
    );
    println!("storage: {}", storage.describe());
    println!("each run in its own process; ratio = the client copy's seconds / orgport's, for the same objects (target ≥ {TARGET_RATIO}×)");
    println!("  {:<20} {:>9} {:>9} {:>10} {:>34} {:>13}", "run", "seconds", "MiB/s", "objects/s", "vs client copy", "peak RSS MiB");
    let mut guard_failed = false;
    for (p, outcome) in outcomes {
        match outcome {
            Outcome::Done(m) => {
                let r = ratio(p).zip(reference(p)).map(|(r, of)| format!("{r:.3}× (of {of})")).unwrap_or_else(|| "-".into());
                println!(
                    "  {:<20} {:>9.2} {:>9.1} {:>10.1} {:>34} {:>13.1}",
                    p,
                    m.seconds,
                    mib(m.get("bytes").and_then(|b| b.parse().ok()).unwrap_or(0)) / m.seconds,
                    m.rows as f64 / m.seconds,
                    r,
                    m.peak_kib as f64 / 1024.0
                );
            }
            Outcome::Failed(why) => {
                guard_failed = true;
                println!("  {p:<20} FAILED ({why})");
            }
            Outcome::TimedOut(s) => println!("  {p:<20} TIMED OUT after {s:.0}s (killed)"),
            Outcome::Skipped(why) => println!("  {p:<20} skipped ({why})"),
        }
    }
    println!("per object: client_copy* GET + PUT (the bytes through the client); export CopyObject to the transfer bucket");
    println!("  + GET of the copy hashed (SHA-256); import one LIST of the new prefix (objects in the way) + CopyObject + GET hashed and");
    println!(
        "  checked, and the {} attachment rows (a small part); server_copy CopyObject; server_copy_check CopyObject + GET hashed",
        o.count
    );
    println!("  (client_copy and export read the source's objects, client_copy_transfer and import the transfer bucket's)");
    let show = |v: Option<f64>, decimals: usize| v.map_or("n/a".to_string(), |v| format!("{v:.decimals$}"));
    let rate = |name: &str| done(name).map(|m| total_mib / m.seconds);
    let peak = ["export", "import"].iter().map(|p| done(p).map(|m| m.peak_kib as f64 / 1024.0)).reduce(|a, b| Some(a?.max(b?))).flatten();
    let against =
        |name: &str| ratio(name).map_or("n/a".to_string(), |r| format!("{r:.3}× ({})", if r >= TARGET_RATIO { "met" } else { "missed" }));
    println!();
    println!(
        "target (issue): orgport ≥ {TARGET_RATIO}× the client copy of the same objects: export {}, import {}",
        against("export"),
        against("import")
    );
    println!(
        "bench: files_export_vs_client_copy={} files_import_vs_client_copy={} export_mib_s={} import_mib_s={} client_copy_mib_s={} client_copy_transfer_mib_s={} server_copy_mib_s={} peak_rss_mib={} objects={} file_mib={} jobs={}",
        show(ratio("export"), 3),
        show(ratio("import"), 3),
        show(rate("export"), 1),
        show(rate("import"), 1),
        show(rate("client_copy"), 1),
        show(rate("client_copy_transfer"), 1),
        show(rate("server_copy"), 1),
        show(peak, 0),
        o.count,
        o.mib,
        o.jobs,
    );
    Report { guard_failed }
}

// ---- The child side: `orgport-bench phase files_NAME --key value …` ----

/// Whether `name` is a child phase of `--files`; its name without the prefix.
pub fn phase_name(name: &str) -> Option<&str> {
    name.strip_prefix(PHASE_PREFIX).filter(|n| PHASES.contains(n))
}

/// Runs a child phase; returns the objects copied and `bytes=…` with the rest it reports.
pub fn phase(name: &str, args: &[String]) -> Result<(u64, Extra)> {
    let mut flags = BTreeMap::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("phase: `{flag}` needs a value"))?;
        flags.insert(flag.trim_start_matches("--").to_string(), value.clone());
    }
    let get = |key: &str| flags.get(key).map(String::as_str).with_context(|| format!("phase {name}: `--{key}` is required"));
    let jobs: usize = get("jobs")?.parse().context("--jobs")?;
    match name {
        "export" => export_phase(Path::new(get("db")?), Path::new(get("config")?), Path::new(get("archive")?), get("to")?, jobs),
        "import" => import_phase(Path::new(get("db")?), Path::new(get("config")?), Path::new(get("archive")?), jobs),
        "client_copy" | "client_copy_transfer" => client_copy_phase(get("from")?, get("prefix")?, get("to")?, jobs),
        "server_copy" | "server_copy_check" => {
            server_copy_phase(get("bucket")?, get("prefix")?, get("under")?, jobs, flags.contains_key("check"))
        }
        other => bail!("unknown files phase `{other}`"),
    }
}

/// Opens a store as `orgport` does: configured by this process's environment.
fn open_files_store(url: &str) -> orgport_core::Result<Box<dyn ObjectStore>> {
    orgport_objects::open_store(url, |name| std::env::var(name).ok())
}

fn plan(engine: &mut SqliteEngine, config: &Path) -> Result<Plan> {
    use orgport_core::engine::Engine as _;
    let config = Config::load(config)?;
    Ok(Plan::build(engine.introspect()?, &config, None, engine.capabilities())?)
}

/// `orgport export --db DB --config CONFIG --org 1 --files copy --files-to TO --file-jobs JOBS
/// --out ARCHIVE`, through the library as the command does.
fn export_phase(db: &Path, config: &Path, archive: &Path, to: &str, jobs: usize) -> Result<(u64, Extra)> {
    let mut engine = SqliteEngine::open_path(db, Access::ReadOnly)?;
    let plan = plan(&mut engine, config)?;
    let to = open_files_store(to)?;
    let spool = archive.parent().context("the archive path has no directory")?;
    let options = ExportOptions {
        orgs: vec!["1".into()],
        with_groups: BTreeSet::new(),
        spool_dir: Some(spool),
        jobs: 1,
        files: Some(FilesExport { mode: FilesMode::Copy(to.as_ref()), open: &open_files_store, jobs }),
    };
    let mut out = BufWriter::new(File::create(archive).with_context(|| format!("creating `{}`", archive.display()))?);
    let manifest = export(&mut engine, &plan, &options, &mut out, &StepLog::new("export"))?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let files: Vec<_> = manifest.files.iter().flat_map(|set| &set.files).collect();
    let bytes: u64 = files.iter().map(|f| f.size).sum();
    let rows: u64 = manifest.tables.iter().map(|t| t.rows).sum();
    Ok((files.len() as u64, vec![("bytes", bytes.to_string()), ("db_rows", rows.to_string())]))
}

/// `orgport import --db DB --config CONFIG --in ARCHIVE --file-jobs JOBS`.
fn import_phase(db: &Path, config: &Path, archive: &Path, jobs: usize) -> Result<(u64, Extra)> {
    let mut engine = SqliteEngine::open_path(db, Access::ReadWrite)?;
    let plan = plan(&mut engine, config)?;
    let options = ImportOptions { dry_run: false, files: Some(FilesImport { open: &open_files_store, jobs }) };
    let report = import(&mut engine, &plan, &opener(archive), &options, &StepLog::new("import"))?;
    let target = &report.orgs.first().context("the import report names no organisation")?.target;
    let org = target.as_i64().map(|i| i.to_string()).unwrap_or_else(|| target.to_string());
    let files: u64 = report.files.iter().map(|f| f.files).sum();
    let bytes: u64 = report.files.iter().map(|f| f.bytes).sum();
    let rows: u64 = report.tables.values().map(|c| c.created + c.matched).sum();
    Ok((files, vec![("bytes", bytes.to_string()), ("db_rows", rows.to_string()), ("org", org)]))
}

/// The baseline: every object under `prefix` of bucket `from` read (GET) and written (PUT) to
/// the same key in bucket `to`, `jobs` at a time.
fn client_copy_phase(from: &str, prefix: &str, to: &str, jobs: usize) -> Result<(u64, Extra)> {
    let (from, to) = (s3_client(from)?, s3_client(to)?);
    runtime()?.block_on(async {
        let listed: Vec<_> = from.list(Some(&dir_path(prefix))).try_collect().await?;
        let count = listed.len() as u64;
        let bytes = stream::iter(listed)
            .map(|meta| {
                let (from, to) = (&from, &to);
                async move {
                    let data = from.get(&meta.location).await?.bytes().await?;
                    let n = data.len() as u64;
                    to.put(&meta.location, PutPayload::from(data)).await?;
                    Ok::<_, object_store::Error>(n)
                }
            })
            .buffer_unordered(jobs)
            .try_fold(0u64, |total, n| async move { Ok(total + n) })
            .await?;
        Ok((count, vec![("bytes", bytes.to_string())]))
    })
}

/// Every object under `prefix` of `bucket` copied on the server (CopyObject) to `under` +
/// its key in the same bucket, `jobs` at a time; with `check`, each copy then read back and
/// hashed, as orgport checks its copies.
fn server_copy_phase(bucket: &str, prefix: &str, under: &str, jobs: usize, check: bool) -> Result<(u64, Extra)> {
    let store = Arc::new(s3_client(bucket)?);
    runtime()?.block_on(async {
        let listed: Vec<_> = store.list(Some(&dir_path(prefix))).try_collect().await?;
        let count = listed.len() as u64;
        let bytes = stream::iter(listed)
            .map(|meta| {
                let store = &store;
                async move {
                    let to = ObjectPath::from(format!("{under}{}", meta.location));
                    store.copy(&meta.location, &to).await?;
                    if !check {
                        return Ok::<_, object_store::Error>(meta.size);
                    }
                    let mut chunks = store.get(&to).await?.into_stream();
                    let (mut hasher, mut n) = (Sha256::new(), 0u64);
                    while let Some(chunk) = chunks.next().await {
                        let chunk = chunk?;
                        hasher.update(&chunk);
                        n += chunk.len() as u64;
                    }
                    std::hint::black_box(hasher.finalize());
                    Ok(n)
                }
            })
            .buffer_unordered(jobs)
            .try_fold(0u64, |total, n| async move { Ok(total + n) })
            .await?;
        Ok((count, vec![("bytes", bytes.to_string())]))
    })
}
