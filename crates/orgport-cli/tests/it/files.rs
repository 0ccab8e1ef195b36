//! An organisation's files, declared under `[files.uploads]`: objects under its `{org}/` prefix
//! and keys in `attachments.object_key`, in a local directory, a bucket of the real S3 server
//! and one of the real GCS emulator (`servers`). Every test checks the objects with the
//! server's own client, byte by byte, and the rows field by field.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use crate::refusing::{forbidden, RefusingProxy};
use crate::serve::Serve;
use crate::servers::*;
use crate::util::*;

const SCHEMA: &str = "
    CREATE TABLE orgs (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
    CREATE TABLE attachments (
        id INTEGER PRIMARY KEY,
        org_id INTEGER NOT NULL REFERENCES orgs(id),
        name TEXT NOT NULL,
        object_key TEXT UNIQUE
    );";

/// Files of organisation 1 named by its rows; 100 more under its prefix that no row names.
const NAMED: usize = 200;
const UNNAMED: usize = 100;

/// Deterministic bytes of varying length (one file of each test is empty).
fn content(seed: usize) -> Vec<u8> {
    random_bytes(seed as u64, (seed * 7919) % 6000)
}

fn config(w: &Work, name: &str, store: &str) -> PathBuf {
    w.config(
        name,
        &format!("root = \"orgs\"\n[files.uploads]\nstore = \"{store}\"\nprefix = \"{{org}}/\"\ncolumns = [\"attachments.object_key\"]\n"),
    )
}

/// The source: organisations 1 and 2 with their files, organisation 1's named by
/// `attachments.object_key` (two rows name none, one names an object outside its prefix).
/// The target: organisations 1–3 of its own, each with a file, so the import creates 4.
struct Setup {
    w: Work,
    src: PathBuf,
    tgt: PathBuf,
    source: Place,
    target: Place,
    src_config: PathBuf,
    tgt_config: PathBuf,
}

fn setup(host: Host) -> Setup {
    let mut w = Work::new();
    w.env = host.env();
    let source = host.new_place(&w, "source-files");
    let mut sql = String::from(SCHEMA);
    sql.push_str("INSERT INTO orgs VALUES (1, 'one'), (2, 'two');");
    for i in 0..NAMED {
        let key = format!("1/att/{i:03}.bin");
        host.put(&source, &key, &content(i));
        sql.push_str(&format!("INSERT INTO attachments (org_id, name, object_key) VALUES (1, 'file {i}', '{key}');"));
    }
    // One larger than the part orgport reads into memory, so that it streams.
    host.put(&source, "1/thumbs/0.png", &random_bytes(7, 1_500_000));
    for i in 1..UNNAMED {
        host.put(&source, &format!("1/thumbs/{i}.png"), &content(1000 + i));
    }
    host.put(&source, "shared/logo-1.png", &content(5000));
    sql.push_str("INSERT INTO attachments (org_id, name, object_key) VALUES (1, 'logo', 'shared/logo-1.png'), (1, 'no file', NULL), (1, 'empty key', '');");
    for i in 0..20 {
        let key = format!("2/att/{i}.bin");
        host.put(&source, &key, &content(2000 + i));
        sql.push_str(&format!("INSERT INTO attachments (org_id, name, object_key) VALUES (2, 'file {i}', '{key}');"));
    }
    let src = w.db("source.db", &sql);
    let src_config = config(&w, "source.toml", &source.url);
    let (tgt, target, tgt_config) = new_target(host, &w, "target");
    Setup { w, src, tgt, source, target, src_config, tgt_config }
}

/// A target database with organisations 1–3 of its own, each with a file in a new store.
fn new_target(host: Host, w: &Work, name: &str) -> (PathBuf, Place, PathBuf) {
    let target = host.new_place(w, &format!("{name}-files"));
    let mut sql = String::from(SCHEMA);
    for org in 1..=3 {
        let key = format!("{org}/att/000.bin");
        host.put(&target, &key, format!("the target's own file of organisation {org}").as_bytes());
        sql.push_str(&format!(
            "INSERT INTO orgs VALUES ({org}, 'target {org}'); INSERT INTO attachments (org_id, name, object_key) VALUES ({org}, 'own', '{key}');"
        ));
    }
    let db = w.db(&format!("{name}.db"), &sql);
    let config = config(w, &format!("{name}.toml"), &target.url);
    (db, target, config)
}

/// Organisation 1's objects on the source, with the keys they must have on the target as
/// organisation `org`.
fn expected_on_target(host: Host, s: &Setup, org: i64) -> BTreeMap<String, Vec<u8>> {
    host.objects(&s.source)
        .into_iter()
        .filter(|(k, _)| k.starts_with("1/") || k == "shared/logo-1.png")
        .map(|(k, v)| (k.strip_prefix("1/").map_or(k.clone(), |rest| format!("{org}/{rest}")), v))
        .collect()
}

/// After a successful import as organisation `org` into `tgt` and `target`: the store holds its
/// own objects and organisation 1's under the new prefix, byte for byte; the rows name them.
fn assert_landed(host: Host, s: &Setup, (tgt, target): (&PathBuf, &Place), org: i64, target_before: &BTreeMap<String, Vec<u8>>) {
    let mut expected = target_before.clone();
    let moved = expected_on_target(host, s, org);
    assert_eq!(moved.len(), NAMED + UNNAMED + 1, "test setup");
    expected.extend(moved);
    let found = host.objects(target);
    assert_eq!(found.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "the target store's keys");
    for (key, bytes) in &expected {
        assert!(found[key] == *bytes, "`{key}` on the target differs from its source");
    }
    let source_rows = rows(&open(&s.src), "SELECT name, object_key FROM attachments WHERE org_id = 1 ORDER BY id", &[]);
    let target_rows = rows(&open(tgt), "SELECT name, object_key FROM attachments WHERE org_id = ?1 ORDER BY id", &[&org]);
    assert_eq!(source_rows.len(), target_rows.len());
    for (source, target) in source_rows.iter().zip(&target_rows) {
        assert_eq!(source[0], target[0], "name");
        let moved = match &source[1] {
            Cell::Text(k) if k.starts_with("1/") => Cell::Text(format!("{org}/{}", &k[2..])),
            other => other.clone(),
        };
        assert_eq!(target[1], moved, "object_key of `{}`", source[0].as_str());
    }
}

/// Export with files embedded, import, verify; then the same through `--files copy`.
fn round_trip(host: Host) {
    let s = setup(host);
    let target_before = host.objects(&s.target);
    let archive = s.w.path("org-1.orgport");
    let out = s.w.export(&s.src, Some(&s.src_config), None, &["1"], &[], &archive);
    out.ok();
    assert!(out.stderr.contains(&format!("files of `uploads`: {} (", NAMED + UNNAMED + 1)), "{}", out.stderr);
    let manifest = s.w.manifest(&archive);
    let listed = manifest["files"][0]["files"].as_array().expect("files in the manifest");
    assert_eq!(listed.len(), NAMED + UNNAMED + 1);
    assert!(listed.iter().all(|f| !f["key"].as_str().unwrap_or_default().starts_with("2/")), "organisation 2's files were exported");

    let report = s.w.import_json(&s.tgt, Some(&s.tgt_config), &archive);
    assert_eq!(new_org(&report), "4");
    assert_eq!(report["files"][0]["files"], (NAMED + UNNAMED + 1) as u64, "{report}");
    assert_landed(host, &s, (&s.tgt, &s.target), 4, &target_before);
    let verified = s.w.verify(&s.tgt, Some(&s.tgt_config), &archive, &["4"]);
    verified.ok();
    assert!(verified.stdout.contains(&format!("verified: {} files equal", NAMED + UNNAMED + 1)), "{}", verified.stdout);

    // A changed object is a difference.
    host.put(&s.target, "4/att/005.bin", b"changed on the target");
    let differs = s.w.verify(&s.tgt, Some(&s.tgt_config), &archive, &["4"]);
    assert_eq!(differs.code, 1, "{}", differs.stdout);
    assert!(differs.stdout.contains("file `1/att/005.bin` of `uploads` differs"), "{}", differs.stdout);

    // The same organisation through a transfer store, into another target.
    let transfer = host.new_place(&s.w, "transfer");
    let copied = s.w.path("org-1-copied.orgport");
    let base = format!("{}/exports/run-1", transfer.url);
    s.w.export(&s.src, Some(&s.src_config), None, &["1"], &["--files", "copy", "--files-to", &base], &copied).ok();
    let in_transfer = host.objects(&transfer);
    assert_eq!(in_transfer.len(), NAMED + UNNAMED + 1);
    assert!(in_transfer.contains_key("exports/run-1/uploads/1/att/000.bin"), "{:?}", in_transfer.keys().next());
    let total: u64 = in_transfer.values().map(|b| b.len() as u64).sum();
    let (embedded_len, copied_len) =
        (std::fs::metadata(&archive).expect("an archive").len(), std::fs::metadata(&copied).expect("an archive").len());
    assert!(
        copied_len + total <= embedded_len + 1000,
        "files were embedded in a copy-mode archive: {copied_len} + {total} bytes vs {embedded_len}"
    );
    let (tgt, target, tgt_config) = new_target(host, &s.w, "second");
    let before = host.objects(&target);
    let report = s.w.import_json(&tgt, Some(&tgt_config), &copied);
    assert_eq!(new_org(&report), "4");
    assert_landed(host, &s, (&tgt, &target), 4, &before);
    s.w.verify(&tgt, Some(&tgt_config), &copied, &["4"]).ok();
}

/// The same through `orgport serve`: organisation 1 exported over HTTP from a server whose
/// store is on the S3 (or GCS) server, with its files embedded, and imported over HTTP into
/// another server's store: the objects land byte for byte and verify.
fn api_round_trip(host: Host) {
    let s = setup(host);
    let target_before = host.objects(&s.target);
    let env = host.env();
    let source = Serve::start_env(&s.w, &url(&s.src), Some(&s.src_config), "", &[], &env);
    let target = Serve::start_env(&s.w, &url(&s.tgt), Some(&s.tgt_config), "", &[], &env);
    let archive = source.get("/api/orgs/1/export").status(200).body.clone();
    let report = target.post("/api/orgs/import", archive.clone()).status(200).json();
    assert_eq!(new_org(&report), "4");
    assert_eq!(report["files"][0]["files"], (NAMED + UNNAMED + 1) as u64, "{report}");
    assert_landed(host, &s, (&s.tgt, &s.target), 4, &target_before);
    let path = s.w.path("api.orgport");
    std::fs::write(&path, &archive).expect("the archive");
    let verified = s.w.verify(&s.tgt, Some(&s.tgt_config), &path, &["4"]);
    verified.ok();
    assert!(verified.stdout.contains(&format!("verified: {} files equal", NAMED + UNNAMED + 1)), "{}", verified.stdout);
}

#[test]
fn files_in_s3_round_trip_through_the_api() {
    if let Some(s3) = s3() {
        api_round_trip(Host::Remote(&s3));
    }
}

#[test]
fn files_in_gcs_round_trip_through_the_api() {
    if let Some(gcs) = gcs() {
        api_round_trip(Host::Remote(&gcs));
    }
}

#[test]
fn files_in_a_directory_round_trip_with_the_rows() {
    round_trip(Host::Local);
}

#[test]
fn files_in_s3_round_trip_with_the_rows() {
    if let Some(s3) = s3() {
        round_trip(Host::Remote(&s3));
    }
}

#[test]
fn files_in_gcs_round_trip_with_the_rows() {
    if let Some(gcs) = gcs() {
        round_trip(Host::Remote(&gcs));
    }
}

/// A file corrupted in the transfer store after some were copied, and an object already where a
/// file would land: clear errors, and neither the database nor the store holds anything new.
fn failures_leave_nothing_behind(host: Host) {
    let s = setup(host);
    let transfer = host.new_place(&s.w, "transfer");
    let archive = s.w.path("org-1.orgport");
    s.w.export(&s.src, Some(&s.src_config), None, &["1"], &["--files", "copy", "--files-to", &transfer.url], &archive).ok();
    let db_before = snapshot(&s.tgt);
    let store_before = host.objects(&s.target);

    // The 151st of 301 files: with one copy at a time, 150 are copied before it.
    let corrupted = "uploads/1/att/150.bin";
    let mut bytes = host.get(&transfer, corrupted).expect("the copied file");
    bytes[0] ^= 1;
    host.put(&transfer, corrupted, &bytes);
    let out = s.w.import(&s.tgt, Some(&s.tgt_config), &archive, &["--file-jobs", "1"]);
    out.fails_with(&[&format!("`{}/{corrupted}` does not match the size and checksum the archive lists", transfer.url)]);
    assert_eq!(snapshot(&s.tgt), db_before, "the failed import changed the database");
    assert_eq!(host.objects(&s.target), store_before, "the failed import left objects behind");
    let out = s.w.import(&s.tgt, Some(&s.tgt_config), &archive, &["--file-jobs", "8"]);
    out.fails_with(&["does not match the size and checksum"]);
    assert_eq!(host.objects(&s.target), store_before, "the failed import left objects behind");
    bytes[0] ^= 1;
    host.put(&transfer, corrupted, &bytes);

    // The last embedded file damaged: the 300 before it are written, then removed.
    let embedded = s.w.path("org-1-embedded.orgport");
    s.w.export(&s.src, Some(&s.src_config), None, &["1"], &[], &embedded).ok();
    let mut damaged = std::fs::read(&embedded).expect("the archive");
    *damaged.last_mut().expect("a byte") ^= 0x40;
    std::fs::write(&embedded, &damaged).expect("writing the archive");
    let out = s.w.import(&s.tgt, Some(&s.tgt_config), &embedded, &[]);
    out.fails_with(&["file `shared/logo-1.png` of `uploads` does not match its checksum"]);
    assert_eq!(snapshot(&s.tgt), db_before, "the failed import changed the database");
    assert_eq!(host.objects(&s.target), store_before, "the failed import left objects behind");

    // A dry run says what it would write, and writes nothing.
    let dry = s.w.import(&s.tgt, Some(&s.tgt_config), &archive, &["--dry-run", "--json"]);
    dry.ok();
    assert_eq!(dry.json()["files"][0]["files"], (NAMED + UNNAMED + 1) as u64, "{}", dry.stdout);
    assert_eq!(snapshot(&s.tgt), db_before);
    assert_eq!(host.objects(&s.target), store_before);

    // An object where a file would land: refused before anything is written, and left as it was.
    // (Under the new prefix, found by listing it; outside, asked for by key.)
    host.put(&s.target, "4/thumbs/7.png", b"in the way");
    host.put(&s.target, "shared/logo-1.png", b"in the way too");
    let store_before = host.objects(&s.target);
    let out = s.w.import(&s.tgt, Some(&s.tgt_config), &archive, &[]);
    out.fails_with(&[
        "2 object(s) the import would write already exist",
        &format!("{}/4/thumbs/7.png", s.target.url),
        &format!("{}/shared/logo-1.png", s.target.url),
    ]);
    assert_eq!(snapshot(&s.tgt), db_before);
    assert_eq!(host.objects(&s.target), store_before);
}

/// The object a row names outside the organisation's prefix (`shared/logo-1.png`) is shared: a
/// target holding it already, identical (an asset every instance has), keeps it as it is, even
/// when the import fails after writing the others; a target or source that says
/// `outside = "refuse"` refuses it before anything is written.
fn objects_outside_the_prefix_are_shared_or_refused(host: Host) {
    let s = setup(host);
    let archive = s.w.path("org-1.orgport");
    s.w.export(&s.src, Some(&s.src_config), None, &["1"], &[], &archive).ok();
    host.put(&s.target, "shared/logo-1.png", &host.get(&s.source, "shared/logo-1.png").expect("the shared object"));
    let (db_before, store_before) = (snapshot(&s.tgt), host.objects(&s.target));

    // The shared object is the last embedded file: damaged, it fails the import after the others
    // were written; they are removed, and the shared one stays.
    let mut damaged = bytes(&archive);
    *damaged.last_mut().expect("a byte") ^= 0x40;
    let damaged_path = s.w.path("damaged.orgport");
    std::fs::write(&damaged_path, damaged).expect("writing the archive");
    let out = s.w.import(&s.tgt, Some(&s.tgt_config), &damaged_path, &[]);
    out.fails_with(&["file `shared/logo-1.png` of `uploads` does not match its checksum"]);
    assert_eq!(snapshot(&s.tgt), db_before, "the failed import changed the database");
    assert_eq!(host.objects(&s.target), store_before, "the failed import changed the store");

    assert_eq!(new_org(&s.w.import_json(&s.tgt, Some(&s.tgt_config), &archive)), "4");
    assert_landed(host, &s, (&s.tgt, &s.target), 4, &store_before);
    s.w.verify(&s.tgt, Some(&s.tgt_config), &archive, &["4"]).ok();
    let (db_before, store_before) = (snapshot(&s.tgt), host.objects(&s.target));

    // A target that refuses objects outside the prefix, and a source that does.
    let refusing = |name: &str, store: &str| {
        let text = std::fs::read_to_string(config(&s.w, name, store)).expect("a config");
        std::fs::write(s.w.path(name), format!("{text}outside = \"refuse\"\n")).expect("a config");
        s.w.path(name)
    };
    let out = s.w.import(&s.tgt, Some(&refusing("refusing-target.toml", &s.target.url)), &archive, &[]);
    out.fails_with(&["file `shared/logo-1.png` of `uploads` is outside the organisation's prefix, and the target's [files.uploads] says `outside = \"refuse\"`"]);
    assert_eq!(snapshot(&s.tgt), db_before);
    assert_eq!(host.objects(&s.target), store_before);
    let refused = s.w.path("refused.orgport");
    let out = s.w.export(&s.src, Some(&refusing("refusing-source.toml", &s.source.url)), None, &["1"], &[], &refused);
    out.fails_with(&["`attachments.object_key` = `shared/logo-1.png` names an object outside the organisation's prefix `{org}/`"]);
    assert!(!refused.exists());
}

#[test]
fn objects_outside_the_prefix_in_a_directory_are_shared_or_refused() {
    objects_outside_the_prefix_are_shared_or_refused(Host::Local);
}

#[test]
fn objects_outside_the_prefix_in_s3_and_gcs_are_shared_or_refused() {
    let (Some(s3), Some(gcs)) = (s3(), gcs()) else { return };
    objects_outside_the_prefix_are_shared_or_refused(Host::Remote(&s3));
    objects_outside_the_prefix_are_shared_or_refused(Host::Remote(&gcs));
}

/// A row of organisation 1 naming `4/stray.bin`, another organisation's object on the source:
/// on a target where the import creates organisation 4, it would pose as one of its own
/// objects, and is refused before anything is written.
#[test]
fn an_object_outside_the_prefix_never_lands_among_the_new_organisations_own() {
    let s = setup(Host::Local);
    Host::Local.put(&s.source, "4/stray.bin", b"organisation 4's on the source");
    open(&s.src).execute_batch("INSERT INTO attachments (org_id, name, object_key) VALUES (1, 'stray', '4/stray.bin');").expect("a row");
    let archive = s.w.path("org-1.orgport");
    s.w.export(&s.src, Some(&s.src_config), None, &["1"], &[], &archive).ok();
    let (db_before, store_before) = (snapshot(&s.tgt), Host::Local.objects(&s.target));
    let out = s.w.import(&s.tgt, Some(&s.tgt_config), &archive, &[]);
    out.fails_with(&[
        "file `4/stray.bin` of `uploads` is outside the organisation's prefix but would land under the new organisation's `4/`",
    ]);
    assert_eq!(snapshot(&s.tgt), db_before);
    assert_eq!(Host::Local.objects(&s.target), store_before);
}

/// The target store starts refusing every request (403, its connections cut: the
/// fault-injecting proxy of `refusing`) after the import wrote some files: the import fails
/// naming the objects it could not remove, the database is as it was, and once the store
/// answers again `import --cleanup` leaves it as it was too.
fn a_store_refusing_mid_import(server: &dyn Server) {
    let host = Host::Remote(server);
    let s = setup(host);
    let archive = s.w.path("org-1.orgport");
    s.w.export(&s.src, Some(&s.src_config), None, &["1"], &[], &archive).ok();
    let (db_before, store_before) = (snapshot(&s.tgt), host.objects(&s.target));

    let (endpoint, refusal) = match server.scheme() {
        "s3" => (
            "AWS_ENDPOINT_URL_S3",
            forbidden("application/xml", "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"),
        ),
        _ => ("STORAGE_EMULATOR_HOST", forbidden("application/json", r#"{"error":{"code":403,"message":"Access denied"}}"#)),
    };
    let env = server.env();
    let upstream = env.iter().find(|(k, _)| k == endpoint).map(|(_, v)| v.trim_start_matches("http://").to_string());
    let proxy = RefusingProxy::start(&upstream.expect("the server's address"), refusal);
    let through_proxy = env.iter().map(|(k, v)| match k == endpoint {
        true => (k.clone(), v.replace(v.trim_start_matches("http://"), &proxy.address)),
        false => (k.clone(), v.clone()),
    });
    let (tgt, config, archive_path) = (url(&s.tgt), s.tgt_config.display().to_string(), archive.display().to_string());
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("orgport"))
        .current_dir(s.w.path("."))
        .envs(through_proxy)
        .args(["import", "--db", &tgt, "--config", &config, "--in", &archive_path, "--file-jobs", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("orgport");
    let started = std::time::Instant::now();
    while server.keys(&s.target.bucket).iter().filter(|k| k.starts_with("4/")).count() < 20 {
        assert!(started.elapsed() < std::time::Duration::from_secs(120), "the import wrote no files");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    proxy.refuse();
    let out: Out = child.wait_with_output().expect("orgport ran").into();
    let written: Vec<String> = host.objects(&s.target).into_keys().filter(|k| !store_before.contains_key(k)).collect();
    assert!(written.iter().filter(|k| k.starts_with("4/")).count() >= 20, "{written:?}\n{}", out.stderr);
    assert!(written.len() < NAMED + UNNAMED, "the import wrote every file before the refusal: {}", out.stderr);
    assert!(written.iter().all(|k| k.starts_with("4/") || k.starts_with(".orgport/imports/")), "{written:?}");
    out.fails_with(&["could not be removed", "`orgport import --cleanup` removes them"]);
    assert!(proxy.refused.load(std::sync::atomic::Ordering::SeqCst) > 0, "the proxy refused nothing");
    assert_eq!(snapshot(&s.tgt), db_before, "the refused import changed the database");

    let cleanup = s.w.run(&["import", "--cleanup", "--db", &tgt, "--config", &config, "--json"]);
    cleanup.ok();
    assert_eq!(host.objects(&s.target), store_before, "`import --cleanup` left objects: {}", cleanup.stdout);
}

#[test]
fn an_s3_store_refusing_mid_import_leaves_what_cleanup_removes() {
    if let Some(s3) = s3() {
        a_store_refusing_mid_import(&s3);
    }
}

#[test]
fn a_gcs_store_refusing_mid_import_leaves_what_cleanup_removes() {
    if let Some(gcs) = gcs() {
        a_store_refusing_mid_import(&gcs);
    }
}

#[test]
fn failed_imports_leave_no_file_behind_in_a_directory() {
    failures_leave_nothing_behind(Host::Local);
}

#[test]
fn failed_imports_leave_no_file_behind_in_s3() {
    if let Some(s3) = s3() {
        failures_leave_nothing_behind(Host::Remote(&s3));
    }
}

#[test]
fn failed_imports_leave_no_file_behind_in_gcs() {
    if let Some(gcs) = gcs() {
        failures_leave_nothing_behind(Host::Remote(&gcs));
    }
}

/// A row naming an object that does not exist fails the export, naming the column, the key and
/// the object; no archive appears, and nothing is left in the transfer store.
#[test]
fn a_missing_source_file_fails_the_export_by_name() {
    let s = setup(Host::Local);
    let missing = s.source.dir.as_ref().expect("a directory").join("1/att/007.bin");
    std::fs::remove_file(&missing).expect("removing a source file");
    let archive = s.w.path("org-1.orgport");
    let message = format!("`attachments.object_key` = `1/att/007.bin` names `{}/1/att/007.bin`, which does not exist", s.source.url);
    s.w.export(&s.src, Some(&s.src_config), None, &["1"], &[], &archive).fails_with(&[&message]);
    assert!(!archive.exists());
    let transfer = Host::Local.new_place(&s.w, "transfer");
    s.w.export(&s.src, Some(&s.src_config), None, &["1"], &["--files", "copy", "--files-to", &transfer.url], &archive)
        .fails_with(&[&message]);
    assert!(!archive.exists());
    assert!(Host::Local.objects(&transfer).is_empty());
}

/// Wrong S3 credentials for the files' store: one clear line, before any row is read, without the
/// secret.
#[test]
fn wrong_credentials_for_the_files_are_a_clear_error() {
    let Some(s3) = s3() else { return };
    let mut s = setup(Host::Remote(&s3));
    let wrong = "wrong-secret-key-77c1";
    s.w.env = s3.env().into_iter().map(|(k, v)| if k == "AWS_SECRET_ACCESS_KEY" { (k, wrong.to_string()) } else { (k, v) }).collect();
    let archive = s.w.path("org-1.orgport");
    let out = s.w.export(&s.src, Some(&s.src_config), None, &["1"], &[], &archive);
    out.fails_with(&["access denied", &s.source.url]);
    assert!(!out.stderr.contains(wrong) && !out.stderr.contains(&s3.secret_key), "{}", out.stderr);
    assert!(!archive.exists());
}

/// A target whose configuration does not declare the archive's store is told which section to
/// add, before anything is written.
#[test]
fn a_target_without_the_store_is_told_what_to_declare() {
    let s = setup(Host::Local);
    let archive = s.w.path("org-1.orgport");
    s.w.export(&s.src, Some(&s.src_config), None, &["1"], &[], &archive).ok();
    let bare = s.w.config("bare.toml", "root = \"orgs\"\n");
    let before = snapshot(&s.tgt);
    s.w.import(&s.tgt, Some(&bare), &archive, &[])
        .fails_with(&["carries 301 file(s) of the store `uploads`", "add a [files.uploads] section"]);
    assert_eq!(snapshot(&s.tgt), before);
}

/// The rows and files written, the commit fails (a NOT NULL reference into an excluded table
/// names a row the target lacks; the foreign key is checked at commit): the files written are
/// removed again.
fn a_failure_at_commit_takes_the_files_away(host: Host) {
    let mut w = Work::new();
    w.env = host.env();
    let source = host.new_place(&w, "source-files");
    let target = host.new_place(&w, "target-files");
    let schema = "
        CREATE TABLE orgs (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
        CREATE TABLE kinds (id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE attachments (
            id INTEGER PRIMARY KEY,
            org_id INTEGER NOT NULL REFERENCES orgs(id),
            kind_id INTEGER NOT NULL REFERENCES kinds(id),
            object_key TEXT
        );";
    let mut sql = format!("{schema} INSERT INTO orgs VALUES (1, 'one'); INSERT INTO kinds VALUES (1, 'plain'), (9, 'rare');");
    for i in 0..30 {
        let key = format!("1/{i}.bin");
        host.put(&source, &key, &content(i));
        let kind = if i == 29 { 9 } else { 1 };
        sql.push_str(&format!("INSERT INTO attachments (org_id, kind_id, object_key) VALUES (1, {kind}, '{key}');"));
    }
    let src = w.db("source.db", &sql);
    let tgt = w.db("target.db", &format!("{schema} INSERT INTO orgs VALUES (1, 'target'); INSERT INTO kinds VALUES (1, 'plain');"));
    let section = |store: &str| {
        format!("root = \"orgs\"\nexclude = [\"kinds\"]\n[files.uploads]\nstore = \"{store}\"\nprefix = \"{{org}}/\"\ncolumns = [\"attachments.object_key\"]\n")
    };
    let src_config = w.config("source.toml", &section(&source.url));
    let tgt_config = w.config("target.toml", &section(&target.url));
    let archive = w.path("org-1.orgport");
    w.export(&src, Some(&src_config), None, &["1"], &[], &archive).ok();
    let before = bytes(&tgt);
    let out = w.import(&tgt, Some(&tgt_config), &archive, &[]);
    out.fails_with(&["attachments"]);
    assert_same_bytes(&tgt, &before);
    assert!(host.objects(&target).is_empty(), "the failed import left objects behind: {:?}", host.objects(&target).keys());
}

#[test]
fn a_failure_at_commit_takes_the_files_away_from_a_directory() {
    a_failure_at_commit_takes_the_files_away(Host::Local);
}

#[test]
fn a_failure_at_commit_takes_the_files_away_from_s3_and_gcs() {
    let (Some(s3), Some(gcs)) = (s3(), gcs()) else { return };
    a_failure_at_commit_takes_the_files_away(Host::Remote(&s3));
    a_failure_at_commit_takes_the_files_away(Host::Remote(&gcs));
}

/// `[files.*]` mistakes are named by `plan`, before anything is read.
#[test]
fn mistakes_in_the_files_section_are_named() {
    let w = Work::new();
    let db =
        w.db("db.db", &format!("{SCHEMA} CREATE TABLE plans (id INTEGER PRIMARY KEY, logo_key TEXT); INSERT INTO orgs VALUES (1, 'one');"));
    let cases = [
        ("store = 'file:///x'\nprefix = '{org}/'\nbucket = 'b'", "unknown field `bucket`"),
        ("prefix = '{org}/'", "missing field `store`"),
        ("store = 'file:///x'", "[files.uploads] has neither `prefix` nor `columns`"),
        ("store = 'file:///x'\nprefix = 'uploads/'", "files.uploads: prefix `uploads/` has no `{org}`"),
        ("store = 'file:///x'\ncolumns = ['attachments.key']", "files.uploads: table `attachments` has no column `key`"),
        ("store = 'file:///x'\ncolumns = ['attachment.object_key']", "files.uploads: no table `attachment`"),
        ("store = 'file:///x'\ncolumns = ['attachments.org_id']", "`attachments.org_id` does not hold text"),
        ("store = 'file:///x'\ncolumns = ['plans.logo_key']", "`plans.logo_key` is in `plans`, which is not an organisation's own table"),
        ("store = 'file:///x'\ncolumns = ['attachments.object_key']\noutside = 'refuse'", "has `outside = \"refuse\"` and no `prefix`"),
        ("store = 'file:///x'\nprefix = '{org}/'\noutside = 'keep'", "unknown variant `keep`, expected `share` or `refuse`"),
    ];
    for (section, message) in cases {
        let config = w.config("bad.toml", &format!("root = 'orgs'\n[files.uploads]\n{section}\n"));
        let out = w.run(&["plan", "--db", &url(&db), "--config", &config.display().to_string()]);
        out.fails_with(&[message]);
    }
    let good = config(&w, "good.toml", "file:///srv/uploads");
    let out = w.run(&["plan", "--db", &url(&db), "--config", &good.display().to_string()]);
    out.ok();
    assert!(
        out.stdout.contains("uploads: objects of file:///srv/uploads under `{org}/`, and named by attachments.object_key"),
        "{}",
        out.stdout
    );
}

/// Files from a directory, copied to S3 at export and into GCS at import: no store can copy on
/// the service's side for another, so the bytes stream through orgport, checked on the way.
#[test]
fn files_move_across_services_streamed() {
    let (Some(s3), Some(gcs)) = (s3(), gcs()) else { return };
    let mut s = setup(Host::Local);
    s.w.env = s3.env().into_iter().chain(gcs.env()).collect();
    let transfer = Host::Remote(&s3).new_place(&s.w, "transfer");
    let target = Host::Remote(&gcs).new_place(&s.w, "target-gcs");
    let archive = s.w.path("org-1.orgport");
    s.w.export(&s.src, Some(&s.src_config), None, &["1"], &["--files", "copy", "--files-to", &transfer.url], &archive).ok();
    assert_eq!(Host::Remote(&s3).objects(&transfer).len(), NAMED + UNNAMED + 1);
    let tgt_config = config(&s.w, "gcs.toml", &target.url);
    let report = s.w.import_json(&s.tgt, Some(&tgt_config), &archive);
    assert_eq!(new_org(&report), "4");
    let expected = expected_on_target(Host::Local, &s, 4);
    assert!(Host::Remote(&gcs).objects(&target) == expected, "the files in GCS differ from the directory's");
    s.w.verify(&s.tgt, Some(&tgt_config), &archive, &["4"]).ok();
}

/// A relative `--files-to file://DIR` is made and recorded by its absolute path, so an import
/// run from another directory finds the files.
#[test]
fn a_relative_files_to_directory_is_recorded_absolute() {
    let s = setup(Host::Local);
    let archive = s.w.path("org-1.orgport");
    s.w.export(&s.src, Some(&s.src_config), None, &["1"], &["--files", "copy", "--files-to", "file://transfer/run-1"], &archive).ok();
    let manifest = s.w.manifest(&archive);
    let absolute = s.w.path("transfer/run-1").canonicalize().expect("the directory was made");
    assert_eq!(manifest["files"][0]["copied_to"], format!("file://{}/uploads", absolute.display()));
    assert_eq!(walk(&absolute, &absolute).len(), NAMED + UNNAMED + 1);
}

/// An encrypted archive in S3 carries the embedded files encrypted: none of their bytes in the
/// object, all of them on the target after an import with the identity. `--files copy` is not
/// covered by the archive's encryption, and export says so.
#[test]
fn an_encrypted_archive_in_s3_carries_its_files_encrypted() {
    let Some(s3) = s3() else { return };
    let host = Host::Remote(&s3);
    let s = setup(host);
    let (identity, recipient) = age_keys(&s.w, "ops.key");
    let (url, bucket) = s3.object("archives", "org-1.orgport");
    let exported = s.w.run(&[
        "export",
        "--db",
        &crate::util::url(&s.src),
        "--config",
        &s.src_config.display().to_string(),
        "--org",
        "1",
        "--encrypt-to",
        &recipient,
        "--out",
        &url,
    ]);
    exported.ok();
    let object = s3.get(&bucket, "org-1.orgport").expect("the archive object");
    assert!(object.starts_with(b"age-encryption.org/v1\n"), "not an age file");
    let large = random_bytes(7, 1_500_000);
    assert!(!object.windows(64).any(|w| w == &large[1000..1064]), "an embedded file's bytes are in clear");

    let target_before = host.objects(&s.target);
    let identity = identity.display().to_string();
    let config = s.tgt_config.display().to_string();
    let report =
        s.w.run(&["import", "--db", &crate::util::url(&s.tgt), "--config", &config, "--in", &url, "--identity", &identity, "--json"]);
    report.ok();
    assert_eq!(new_org(&report.json()), "4");
    assert_landed(host, &s, (&s.tgt, &s.target), 4, &target_before);
    let verified =
        s.w.run(&["verify", "--db", &crate::util::url(&s.tgt), "--config", &config, "--in", &url, "--org", "4", "--identity", &identity]);
    verified.ok();
    assert!(verified.stdout.contains(&format!("verified: {} files equal", NAMED + UNNAMED + 1)), "{}", verified.stdout);

    let transfer = host.new_place(&s.w, "transfer");
    let copied = s.w.path("copied.orgport");
    let out = s.w.export(
        &s.src,
        Some(&s.src_config),
        None,
        &["1"],
        &["--files", "copy", "--files-to", &transfer.url, "--encrypt-to", &recipient],
        &copied,
    );
    out.ok();
    assert!(
        out.stderr.contains(&format!(
            "warning: `--encrypt-to` encrypts the archive only: the files copied to `{}` (`--files copy`) are not encrypted",
            transfer.url
        )),
        "{}",
        out.stderr
    );
    assert_eq!(host.get(&transfer, "uploads/1/thumbs/0.png").as_deref(), Some(&large[..]), "the copied file is as it was");
}

/// An archive with a file whose key the target store cannot hold once moved under the new
/// organisation's prefix and the store's base path: the import fails before it writes anything
/// (no object, no note), naming the key and why, and the bucket and the database stay as they were.
fn a_key_the_target_cannot_hold_fails_before_any_write(source: Host, target: &dyn Server, base: &str, key: &str, why: &str) {
    let mut w = Work::new();
    w.env = source.env().into_iter().chain(target.env()).collect();
    let from = source.new_place(&w, "source-files");
    // A file that could land comes first, so that a check made only when writing would write it.
    source.put(&from, "1/a-first.bin", b"a key any store takes");
    source.put(&from, key, b"a key the target cannot hold");
    let src = w.db("source.db", &format!("{SCHEMA} INSERT INTO orgs VALUES (1, 'one');"));
    let src_config = config(&w, "source.toml", &from.url);
    let archive = w.path("org-1.orgport");
    w.export(&src, Some(&src_config), None, &["1"], &[], &archive).ok();
    assert_eq!(w.manifest(&archive)["files"][0]["files"].as_array().map(Vec::len), Some(2), "test setup");

    let host = Host::Remote(target);
    let to = host.new_place(&w, "target-files");
    host.put(&to, "own/file.bin", b"the target's own");
    // An object in the way of the first file too: a key is refused before objects in the way are
    // looked for, and so before anything is written (a check only when writing would report this
    // object, or write the first file).
    let first = match base {
        "" => "4/a-first.bin".to_string(),
        base => format!("{base}/4/a-first.bin"),
    };
    host.put(&to, &first, b"in the way");
    let tgt = w.db("target.db", &format!("{SCHEMA} INSERT INTO orgs VALUES (1, 't1'), (2, 't2'), (3, 't3');"));
    let store = match base {
        "" => to.url.clone(),
        base => format!("{}/{base}", to.url),
    };
    let tgt_config = config(&w, "target.toml", &store);
    let (db_before, objects_before) = (snapshot(&tgt), host.objects(&to));
    let moved = format!("4/{}", key.strip_prefix("1/").expect("a key of organisation 1"));
    let out = w.import(&tgt, Some(&tgt_config), &archive, &[]);
    out.fails_with(&[&format!("cannot write `{store}/{moved}`: invalid key `{moved}`: {why}")]);
    assert_eq!(snapshot(&tgt), db_before, "the failed import changed the database");
    assert_eq!(host.objects(&to), objects_before, "the failed import wrote to the bucket");
}

/// A key 1 026 bytes long with the base path: more than S3 and GCS take. The directory it comes
/// from holds it in components of at most 255 bytes.
fn a_key_too_long_fails_before_any_write(target: &dyn Server, service: &str) {
    let base = "b".repeat(60);
    let key = format!("1/{}", vec!["x".repeat(240); 4].join("/"));
    assert_eq!(base.len() + 1 + key.len(), 1026, "test setup");
    let why = format!("with the base path `{base}/` it is 1026 bytes long, and {service} takes names of at most 1024");
    a_key_the_target_cannot_hold_fails_before_any_write(Host::Local, target, &base, &key, &why);
}

#[test]
fn a_key_too_long_for_s3_fails_the_import_before_any_write() {
    if let Some(s3) = s3() {
        a_key_too_long_fails_before_any_write(&s3, "S3");
    }
}

#[test]
fn a_key_too_long_for_gcs_fails_the_import_before_any_write() {
    if let Some(gcs) = gcs() {
        a_key_too_long_fails_before_any_write(&gcs, "GCS");
    }
}

/// GCS holds `1/a//b.bin`; object_store, through which orgport reaches S3, would not address it
/// as it is: refused by name rather than written under another.
#[test]
fn a_key_s3_would_rename_fails_the_import_before_any_write() {
    let (Some(s3), Some(gcs)) = (s3(), gcs()) else { return };
    a_key_the_target_cannot_hold_fails_before_any_write(
        Host::Remote(&gcs),
        &s3,
        "",
        "1/a//b.bin",
        "it has an empty, `.` or `..` component",
    );
}

/// An import killed while writing a file into a directory leaves the object's hidden temporary
/// file and its note; `import --cleanup` removes both, and the directories that leaves empty
/// (`.orgport/imports/`, `.orgport/`, the new organisation's), and nothing else: not another
/// key's temporary file, not the target's own objects. The leftovers are made as a killed import
/// leaves them: a note as the import writes it, and a temporary file from the store's writer,
/// kept.
#[test]
fn cleanup_removes_what_killed_writes_left_in_a_directory() {
    let s = setup(Host::Local);
    let dir = s.target.dir.clone().expect("a directory");
    let before = walk(&dir, &dir);
    let store = orgport_objects::open_store(&s.target.url, |_| None).expect("the target store");
    let noted = ["4/att/000.bin", "4/att/001.bin", "4/thumbs/0.png"];
    // As the import notes them: the root table, the new organisations' keys, the keys.
    let note = serde_json::json!({ "root": "orgs", "orgs": [{ "int": 4 }], "objects": noted });
    let mut writer = store.writer(".orgport/imports/killed-0.json").expect("a note");
    writer.write_all(note.to_string().as_bytes()).expect("writing the note");
    writer.finish().expect("the note");
    // One object finished, one being written when the import was killed.
    let mut writer = store.writer("4/att/000.bin").expect("a writer");
    writer.write_all(b"finished").expect("writing");
    writer.finish().expect("an object");
    let partial = |key: &str| {
        let mut writer = store.writer(key).expect("a writer");
        writer.write_all(&[7; 100_000]).expect("writing");
        writer.flush().expect("flushing");
        std::mem::forget(writer);
    };
    partial("4/thumbs/0.png");
    // Another key's write in the same directory, which no note names: not the cleanup's.
    partial("4/thumbs/1.png");
    let hidden = |sub: &str| -> Vec<String> {
        std::fs::read_dir(dir.join(sub)).map_or(Vec::new(), |entries| {
            entries
                .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".orgport-partial-"))
                .collect()
        })
    };
    assert_eq!(hidden("4/thumbs").len(), 2, "test setup");

    let db = url(&s.tgt);
    let out = s.w.run(&["import", "--cleanup", "--db", &db, "--config", &s.tgt_config.display().to_string(), "--json"]);
    out.ok();
    let report = out.json();
    assert_eq!(report["journals"], 1, "{report}");
    assert_eq!(report["removed"], serde_json::json!([format!("{}/4/att/000.bin", s.target.url)]), "{report}");
    assert_eq!(report["leftovers"], 1, "{report}");
    assert!(!dir.join(".orgport").exists(), "`.orgport/` is left: {:?}", walk(&dir, &dir));
    assert!(!dir.join("4/att").exists(), "the emptied `4/att/` is left");
    let left = hidden("4/thumbs");
    assert_eq!(left.len(), 1, "{left:?}");
    std::fs::remove_file(dir.join("4/thumbs").join(&left[0])).expect("the other key's temporary file");
    let mut after = walk(&dir, &dir);
    after.sort();
    let mut before = before;
    before.sort();
    assert_eq!(after, before, "the target's own objects");
}
