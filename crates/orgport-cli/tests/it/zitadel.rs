//! The JSON endpoints and ZITADEL's shape of `orgport serve`: the seed's request bodies sent as
//! the seed writes them (only its organisation ids replaced by the example's), on SQLite, a real
//! PostgreSQL server and the GCS emulator; every round trip verified, every refusal leaving the
//! target as it was.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::pg::{fresh_db, psql, server};
use crate::serve::{setup, with_files, Serve};
use crate::servers::{gcs, Server};
use crate::util::*;

/// ZITADEL's documented request bodies, as the shell passes them to curl (`--data '…'`).
const SEED_EXPORT: &str = "{    \n    \"org_ids\": [ \"70669144072186707\", \"70671105999825752\" ],\n    \"excluded_org_ids\": [ ],\n    \"with_passwords\": true,\n    \"with_otp\": true,\n    \"timeout\": \"30s\",\n    \"response_output\": true\n}";
/// The import's `--data` word as the seed writes it, for a shell to expand: `'$(cat export.json)'`
/// stands outside the quotes.
const SEED_IMPORT_SHELL: &str = "'{\n        \"data_orgsv1\": '$(cat export.json)'\n}'";
/// With the documentation's stray `"` before the object.
const SEED_EXPORT_GCS: &str = "\t\"{\n    \"org_ids\":  [ \"70669144072186707\", \"70671105999825752\" ],\n    \"excluded_org_ids\": [ ],\n    \"with_passwords\": true,\n    \"with_otp\": true,\n    \"timeout\": \"10m\",\n    \"gcs_output\": {\n        \"path\": \"export.json\",\n        \"bucket\": \"caos-zitadel-exports\",\n        \"serviceaccount_json\": \"XXXX\"\n    }\n}";
const SEED_IMPORT_GCS: &str = "{\n    \"timeout\": \"10m\",\n    \"data_orgsv1_gcs\": {\n        \"path\": \"export.json\",\n        \"bucket\": \"caos-zitadel-exports\",\n        \"serviceaccount_json\": \"XXXX\"\n    }\n}";
/// The seed's organisation ids.
const SEED_IDS: [&str; 2] = ["70669144072186707", "70671105999825752"];

/// A seed body with the example's organisations 1 and 3 in place of the seed's ids.
fn with_ids(body: &str) -> String {
    body.replace(SEED_IDS[0], "1").replace(SEED_IDS[1], "3")
}

/// The import body the seed's shell command sends, `export.json` being in `dir`: bash expands
/// the word, which must stay one word (the JSON form has no blank outside its strings' escapes).
fn seed_import_body(dir: &Path) -> Vec<u8> {
    let script = format!("set -- {SEED_IMPORT_SHELL}; [ $# -eq 1 ] || exit 3; printf %s \"$1\"");
    let out = Command::new("bash").arg("-c").arg(&script).current_dir(dir).output().expect("bash");
    assert!(out.status.success(), "the shell split the body into several words: {:?}", out.status);
    out.stdout
}

/// Organisation 1's archive in its JSON form, made by the command line: its path and text.
fn json_export(w: &Work, src: &Path) -> (std::path::PathBuf, String) {
    let path = w.path("org.json");
    w.export(src, Some(&example_config()), None, &["1"], &[], &path).ok();
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

/// The two new organisations of an import report, in the archive's order.
fn new_orgs(report: &Value) -> Vec<String> {
    report["orgs"].as_array().expect("orgs").iter().map(|o| json_key(&o["target"])).collect()
}

#[test]
fn the_seeds_inline_export_and_import_round_trip_two_organisations() {
    let w = Work::new();
    let (src, tgt, _) = setup(&w, 4);
    let source = Serve::start(&w, &src, None, &["--allow-plaintext-secrets"]);
    let target = Serve::start(&w, &tgt, None, &[]);
    let before_src = snapshot(&src);
    // The seed asks for passwords and OTP secrets: a server that neither encrypts nor was told
    // `--allow-plaintext-secrets` refuses.
    let strict = Serve::start(&w, &src, None, &[]);
    strict.post("/admin/v1/export", with_ids(SEED_EXPORT).into_bytes()).status(400).error(&["with_passwords", "--allow-plaintext-secrets"]);

    let exported = source.post("/admin/v1/export", with_ids(SEED_EXPORT).into_bytes());
    exported.status(200);
    assert_eq!(exported.headers["content-type"], "application/json");
    assert_eq!(snapshot(&src), before_src, "an export wrote to its source");
    let dir = w.path("curl");
    std::fs::create_dir_all(&dir).unwrap();
    let export = dir.join("export.json");
    std::fs::write(&export, &exported.body).unwrap();
    let manifest = w.manifest(&export);
    assert_eq!(manifest["orgs"], json!([{"int": 1}, {"int": 3}]));
    assert_eq!(manifest["with_groups"], json!(["otp", "passwords"]), "with_passwords and with_otp include the groups");

    let before = snapshot(&tgt);
    let report = target.post("/admin/v1/import", seed_import_body(&dir)).status(200).json();
    let orgs = new_orgs(&report);
    assert_eq!(orgs.len(), 2, "{report}");
    let org_refs: Vec<&str> = orgs.iter().map(String::as_str).collect();
    w.verify(&tgt, Some(&example_config()), &export, &org_refs).ok();
    assert_only_added(&before, &snapshot(&tgt));
    for (old, new) in [1, 3].iter().zip(&orgs) {
        assert_org_equal(&src, &Cell::Int(*old), &tgt, &Cell::Int(new.parse().unwrap()), &example_specs());
    }
    // All organisations but the excluded, with ids as numbers.
    let all = source.post("/admin/v1/export", br#"{"org_ids": [], "excluded_org_ids": [2], "response_output": true}"#.to_vec());
    all.status(200);
    let path = w.path("all.json");
    std::fs::write(&path, &all.body).unwrap();
    let manifest = w.manifest(&path);
    assert_eq!(manifest["orgs"], json!([{"int": 1}, {"int": 3}]));
    assert_eq!(manifest["with_groups"], json!([]));
    for serve in [&source, &target] {
        let log = serve.log();
        assert!(!log.contains(crate::serve::ROOT), "a token in the log:\n{log}");
    }
}

#[test]
fn bad_requests_get_400_naming_the_field_and_change_nothing() {
    let w = Work::new();
    let (src, _, _) = setup(&w, 2);
    let (_, archive) = json_export(&w, &src);
    let serve = Serve::start(&w, &src, None, &[]);
    let before = snapshot(&src);
    let cases: Vec<(&str, String, u16, &[&str])> = vec![
        ("/admin/v1/export", r#"{"org_idz": ["1"], "response_output": true}"#.into(), 400, &["unknown field `org_idz`"]),
        (
            "/admin/v1/export",
            r#"{"org_ids": ["1"], "with_passwords": "yes", "response_output": true}"#.into(),
            400,
            &["`with_passwords`", "expected a boolean"],
        ),
        ("/admin/v1/export", r#"{"org_ids": [true], "response_output": true}"#.into(), 400, &["`org_ids[0]`", "a string or an integer"]),
        (
            "/admin/v1/export",
            r#"{"org_ids": ["1"], "gcs_output": {"path": "x", "bucket": "b"}}"#.into(),
            400,
            &["`gcs_output`", "missing field `serviceaccount_json`"],
        ),
        ("/admin/v1/export", r#"{"org_ids": ["1"], "timeout": "soon", "response_output": true}"#.into(), 400, &["`timeout`", "`soon`"]),
        ("/admin/v1/export", r#"{"org_ids": ["1"]}"#.into(), 400, &["response_output", "gcs_output"]),
        ("/admin/v1/export", r#"{"org_ids": ["1"], "response_output": true"#.into(), 400, &["not valid", "EOF"]),
        ("/admin/v1/export", r#"{"org_ids": ["999"], "response_output": true}"#.into(), 404, &["organisation 999 not found"]),
        (
            "/admin/v1/export",
            r#"{"org_ids": ["1"], "gcs_output": {"path": "x", "bucket": "b", "serviceaccount_json": "not base64!"}}"#.into(),
            400,
            &["`gcs_output`", "not base64"],
        ),
        ("/admin/v1/import", r#"{"timeout": "10m"}"#.into(), 400, &["data_orgsv1"]),
        (
            "/admin/v1/import",
            format!(r#"{{"data_orgsv1": {archive}, "data_orgsv1_gcs": {{"path": "x", "bucket": "b", "serviceaccount_json": ""}}}}"#),
            400,
            &["one of"],
        ),
        ("/admin/v1/import", format!(r#"{{"data_orgsv1": {archive}, "dryRun": true}}"#), 400, &["unknown field `dryRun`"]),
        (
            "/admin/v1/import",
            r#"{"data_orgsv1": {"orgport_json": 1}}"#.into(),
            422,
            &["JSON archive is not valid", "missing field `tables`"],
        ),
        (
            "/admin/v1/import",
            format!(r#"{{"data_orgsv1": {}}}"#, archive.replacen("\"rows\":[[1,", "\"rows\":[[2,", 1)),
            422,
            &["do not match their checksum"],
        ),
    ];
    for (path, body, status, fragments) in cases {
        let reply = serve.post(path, body.clone().into_bytes());
        assert_eq!(reply.status, status, "{path} {body:.80}: {}", String::from_utf8_lossy(&reply.body));
        reply.error(fragments);
        assert_eq!(snapshot(&src), before, "{path} {body:.80}: the database changed");
    }
    // The documentation's stray quote is read past, with a warning.
    let lenient = serve.post("/admin/v1/export", b"\t\"{\"org_ids\": [\"1\"], \"response_output\": true}".to_vec());
    lenient.status(200);
    assert!(lenient.body.starts_with(b"{\"orgport_json\""));
    assert!(serve.log().contains("stray `\"`"), "{}", serve.log());

    let small = Serve::start(&w, &src, None, &["--max-body", "1KiB"]);
    small.post("/admin/v1/import", format!(r#"{{"data_orgsv1": {archive}}}"#).into_bytes()).status(413).error(&["larger than the limit"]);
    small.post("/api/orgs/import/json", archive.clone().into_bytes()).status(413).error(&["larger than the limit"]);
    assert_eq!(snapshot(&src), before);
}

/// An inline export in a body far larger than itself (256 MiB of blanks after it, which JSON
/// allows): the body is read as a stream from its spool file, twice, and never held whole, so
/// the server's peak memory stays far under the body's size.
#[test]
fn an_inline_import_body_is_streamed_not_held() {
    let w = Work::new();
    let (src, tgt, _) = setup(&w, 2);
    let (json_archive, archive) = json_export(&w, &src);
    let serve = Serve::start(&w, &tgt, None, &[]);
    let padding = 256 << 20;
    let mut body = format!(r#"{{"timeout": "10m", "data_orgsv1": {archive}"#).into_bytes();
    body.resize(body.len() + padding, b' ');
    body.push(b'}');
    let report = serve.post("/admin/v1/import", body).status(200).json();
    w.verify(&tgt, Some(&example_config()), &json_archive, &[&new_org(&report)]).ok();
    let rss = peak_rss_mib(serve.pid());
    eprintln!("zitadel inline import: a body of {} MiB, the server's peak RSS {rss} MiB", padding >> 20);
    assert!(rss < 128, "the server's peak RSS was {rss} MiB for a body of {} MiB", padding >> 20);
}

#[test]
fn a_timeout_cancels_the_work_and_leaves_the_target_as_it_was() {
    let w = Work::new();
    // Large enough that the import is caught running (three passes over 50 000 rows).
    let (src, tgt, _) = setup(&w, 5_000);
    let (json_archive, archive) = json_export(&w, &src);
    let serve = Serve::start(&w, &tgt, None, &[]);
    let before = snapshot(&tgt);
    let reply = serve.post("/admin/v1/import", format!(r#"{{"timeout": "300ms", "data_orgsv1": {archive}}}"#).into_bytes());
    reply.status(504).error(&["timeout of 300ms", "nothing was written"]);
    assert_eq!(snapshot(&tgt), before, "a timed-out import changed the target");
    // The job ended cancelled, its slot free: the same import with time enough succeeds.
    let report =
        serve.post("/admin/v1/import", format!(r#"{{"timeout": "10m", "data_orgsv1": {archive}}}"#).into_bytes()).status(200).json();
    w.verify(&tgt, Some(&example_config()), &json_archive, &[&new_org(&report)]).ok();

    let source = Serve::start(&w, &src, None, &[]);
    source
        .post("/admin/v1/export", br#"{"org_ids": ["1"], "timeout": "1ms", "response_output": true}"#.to_vec())
        .status(504)
        .error(&["timeout"]);
}

#[test]
fn the_json_endpoints_round_trip_files_into_the_store_storage_name_picks() {
    let w = Work::new();
    let (src, tgt, _) = setup(&w, 2);
    let (src_files, tgt_files, other_files) = (w.path("files-source"), w.path("files-target"), w.path("files-other"));
    let src_config = with_files(&w, "source.toml", &src_files);
    std::fs::create_dir_all(&other_files).unwrap();
    let tgt_config = w.config(
        "target.toml",
        &format!(
            "{}\n[files.uploads]\nstore = \"file://{}\"\nprefix = \"{{org}}/\"\n\n[files.other]\nstore = \"file://{}\"\nprefix = \"moved/{{org}}/\"\n",
            example_config_text(),
            tgt_files.display(),
            other_files.display()
        ),
    );
    std::fs::create_dir_all(tgt_files.join("x")).unwrap();
    std::fs::create_dir_all(src_files.join("1")).unwrap();
    std::fs::write(src_files.join("1/report.pdf"), random_bytes(3, 4000)).unwrap();
    let source = Serve::start(&w, &src, Some(&src_config), &[]);
    let target = Serve::start(&w, &tgt, Some(&tgt_config), &[]);
    let exported = source.get("/api/orgs/1/export/json");
    exported.status(200);
    assert_eq!(exported.headers["content-type"], "application/json");
    assert!(exported.headers["content-disposition"].to_str().unwrap().contains("org-1.json"));
    let archive = exported.body.clone();
    let path = w.path("api.json");
    std::fs::write(&path, &archive).unwrap();

    let before = snapshot(&tgt);
    target.post("/api/orgs/import/json?storageName=nope", archive.clone()).status(400).error(&["storageName `nope`", "[files.nope]"]);
    target
        .post("/api/orgs/import/json", b"{\"orgport_json\": 1, \"manifest\": 3}".to_vec())
        .status(422)
        .error(&["JSON archive is not valid", "expected struct Manifest"]);
    target.post("/api/orgs/import/json", archive[..archive.len() - 10].to_vec()).status(422).error(&["JSON archive is not valid"]);
    assert_eq!(snapshot(&tgt), before);

    let report = target.post("/api/orgs/import/json?storageName=other", archive.clone()).status(200).json();
    let org = new_org(&report);
    assert_eq!(bytes(&other_files.join(format!("moved/{org}/report.pdf"))), random_bytes(3, 4000));
    assert_eq!(dir_listing(&tgt_files), ["x"], "the store of the archive's name got nothing");
    assert_org_equal(&src, &Cell::Int(1), &tgt, &Cell::Int(org.parse().unwrap()), &example_specs());
    // Verified with a configuration in which `uploads` is where the files went.
    let verify_config = with_files(&w, "verify.toml", &other_files.join("moved"));
    let v = w.verify(&tgt, Some(&verify_config), &path, &[&org]);
    v.ok();
    assert!(v.stdout.contains("verified: 1 files"), "{}", v.stdout);
}

#[test]
fn the_seeds_gcs_export_and_import_round_trip_through_the_emulator() {
    let Some(gcs) = gcs() else { return };
    let w = Work::new();
    let (src, tgt, _) = setup(&w, 3);
    // The seed's bucket, made if this emulator lacks it.
    crate::servers::block_on(async {
        let url = format!("{}/storage/v1/b?project=orgport-test", gcs.endpoint);
        let _ = reqwest::Client::new().post(url).body(r#"{"name": "caos-zitadel-exports"}"#).send().await.expect("the emulator answers");
    });
    let env = gcs.env();
    let source = Serve::start_env(&w, &url(&src), Some(&example_config()), "", &["--allow-plaintext-secrets"], &env);
    let target = Serve::start_env(&w, &url(&tgt), Some(&example_config()), "", &[], &env);
    let report = source.post("/admin/v1/export", with_ids(SEED_EXPORT_GCS).into_bytes()).status(200).json();
    assert_eq!(report["gcs_output"], "gs://caos-zitadel-exports/export.json");
    let object = gcs.get("caos-zitadel-exports", "export.json").expect("the export in the bucket");
    let path = w.path("from-gcs.json");
    std::fs::write(&path, &object).unwrap();
    assert_eq!(w.manifest(&path)["orgs"], json!([{"int": 1}, {"int": 3}]));

    let before = snapshot(&tgt);
    let report = target.post("/admin/v1/import", SEED_IMPORT_GCS.as_bytes().to_vec()).status(200).json();
    let orgs = new_orgs(&report);
    let org_refs: Vec<&str> = orgs.iter().map(String::as_str).collect();
    w.verify(&tgt, Some(&example_config()), &path, &org_refs).ok();
    assert_only_added(&before, &snapshot(&tgt));
    for (old, new) in [1, 3].iter().zip(&orgs) {
        assert_org_equal(&src, &Cell::Int(*old), &tgt, &Cell::Int(new.parse().unwrap()), &example_specs());
    }
    // An object that is not there: the emulator's answer, and nothing written.
    let missing = SEED_IMPORT_GCS.replace("export.json", "no-such-export.json");
    let before = snapshot(&tgt);
    let reply = target.post("/admin/v1/import", missing.into_bytes());
    assert!(reply.status >= 400, "{}", String::from_utf8_lossy(&reply.body));
    reply.error(&["no-such-export.json"]);
    assert_eq!(snapshot(&tgt), before);
}

/// Every table's rows as text, in order: two databases compared field by field. But
/// `api_tokens`' UUID keys, which each import draws anew, and its tokens, withheld as secrets
/// and replaced by random values.
fn pg_tables(url: &str) -> Vec<String> {
    let tables = psql(url, &["-c", "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"]);
    tables
        .lines()
        .map(|t| {
            let row = if t == "api_tokens" { "(to_jsonb(x) - 'id' - 'token')::text" } else { "x::text" };
            let sql = format!("SELECT md5(coalesce(string_agg({row}, ',' ORDER BY {row}), '')) FROM \"{t}\" x");
            format!("{t}: {}", psql(url, &["-c", &sql]))
        })
        .collect()
}

#[test]
fn an_api_round_trip_on_postgres_equals_the_command_lines() {
    let Some(server) = server() else { return };
    let w = Work::new();
    let (src_sqlite, _, cli_sqlite_archive) = setup(&w, 4);
    drop(src_sqlite);
    let ddl = repo_root().join("examples/saas/schema.postgres.sql");
    let db = |name: &str| {
        let url = fresh_db(&server, name);
        psql(&url, &["-f", ddl.to_str().unwrap()]);
        url
    };
    let (src, tgt_api, tgt_cli) = (db("api_src"), db("api_tgt"), db("api_tgt_cli"));
    let config = example_config();
    let c = config.to_str().unwrap();
    // The source: the example's organisation 1, imported from SQLite.
    let report = w.run(&["import", "--db", &src, "--config", c, "--in", cli_sqlite_archive.to_str().unwrap(), "--json"]).ok().json();
    let org = new_org(&report);

    let source = Serve::start_url(&w, &src, Some(&config), "", &["--allow-plaintext-secrets"]);
    let target = Serve::start_url(&w, &tgt_api, Some(&config), "", &[]);
    let api_json = source.get(&format!("/api/orgs/{org}/export/json?with=passwords,otp")).status(200).body.clone();
    let api_path = w.path("api.json");
    std::fs::write(&api_path, &api_json).unwrap();
    let cli_path = w.path("cli-pg.orgport");
    w.run(&[
        "export",
        "--db",
        &src,
        "--config",
        c,
        "--org",
        &org,
        "--with",
        "passwords,otp",
        "--allow-plaintext-secrets",
        "--out",
        cli_path.to_str().unwrap(),
    ])
    .ok();
    let tables = |m: Value| m["tables"].clone();
    assert_eq!(tables(w.manifest(&api_path)), tables(w.manifest(&cli_path)), "the API's archive holds the command line's rows");

    let api_report = target.post("/api/orgs/import/json", api_json).status(200).json();
    let cli_report = w.run(&["import", "--db", &tgt_cli, "--config", c, "--in", cli_path.to_str().unwrap(), "--json"]).ok().json();
    assert_eq!(api_report, cli_report);
    let new = new_org(&api_report);
    w.run(&["verify", "--db", &tgt_api, "--config", c, "--in", api_path.to_str().unwrap(), "--org", &new]).ok();
    w.run(&["verify", "--db", &tgt_api, "--config", c, "--in", cli_path.to_str().unwrap(), "--org", &new]).ok();
    assert_eq!(pg_tables(&tgt_api), pg_tables(&tgt_cli), "the API's target differs from the command line's");

    // ZITADEL's shape on PostgreSQL: all but none, inline, into a third database.
    let tgt_z = db("api_tgt_z");
    let zitadel = Serve::start_url(&w, &tgt_z, Some(&config), "", &[]);
    let export = source
        .post(
            "/admin/v1/export",
            br#"{"org_ids": [], "excluded_org_ids": [], "with_passwords": true, "with_otp": true, "response_output": true}"#.to_vec(),
        )
        .status(200)
        .body
        .clone();
    let body = format!("{{\"data_orgsv1\": {}}}", String::from_utf8(export.clone()).unwrap());
    let report = zitadel.post("/admin/v1/import", body.into_bytes()).status(200).json();
    let path = w.path("z.json");
    std::fs::write(&path, &export).unwrap();
    w.run(&["verify", "--db", &tgt_z, "--config", c, "--in", path.to_str().unwrap(), "--org", &new_org(&report)]).ok();
    assert_eq!(pg_tables(&tgt_z), pg_tables(&tgt_cli));
}
