//! PostgreSQL: a real server (see [`crate::pg`]) and a real application's schema and data,
//! Flagsmith's (`../shared/realworld`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use orgport_core::archive::ArchiveReader;
use orgport_core::value::{format_uuid, Value};

use crate::pg::*;
use crate::util::*;

fn flagsmith_db(server: &str, name: &str) -> String {
    let url = fresh_db(server, name);
    let dump = realworld("flagsmith_seeded_2orgs.sql");
    psql(&url, &["-f", dump.to_str().expect("path")]);
    url
}

fn flagsmith_config() -> PathBuf {
    repo_root().join("examples/flagsmith/orgport.toml")
}

/// Every row of the archive, by table.
fn archive_rows(path: &Path) -> BTreeMap<String, Vec<Vec<Value>>> {
    let mut reader = ArchiveReader::open(std::fs::File::open(path).expect("archive")).expect("readable archive");
    let names: Vec<String> = reader.manifest().tables.iter().map(|t| t.name.clone()).collect();
    let mut out: BTreeMap<String, Vec<Vec<Value>>> = names.iter().map(|n| (n.clone(), Vec::new())).collect();
    while let Some((t, row)) = reader.next_row().expect("valid rows") {
        out.get_mut(&names[t]).expect("table").push(row.to_vec());
    }
    out
}

/// The largest `id` of every table that has an integer one: the rows that exist now.
fn existing_ids(url: &str) -> Vec<(String, i64)> {
    let union = psql(
        url,
        &["-c", "SELECT string_agg(format('SELECT %L, max(id) FROM %I', table_name, table_name), ' UNION ALL ' ORDER BY table_name) \
                 FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'id' AND data_type IN ('integer', 'bigint')"],
    );
    psql(url, &["-c", &union])
        .lines()
        .filter_map(|line| line.split_once('|'))
        .filter_map(|(table, max)| max.parse().ok().map(|m| (table.to_string(), m)))
        .collect()
}

/// An md5 of those rows, table by table: what an import must leave as it was.
fn digest(url: &str, ids: &[(String, i64)]) -> Vec<String> {
    ids.iter()
        .map(|(table, max)| {
            let sql = format!("SELECT md5(string_agg(t::text, ',' ORDER BY t.id)) FROM {table} t WHERE id <= {max}");
            format!("{table}: {}", psql(url, &["-c", &sql]))
        })
        .collect()
}

#[test]
fn flagsmith_org_1_round_trips_into_an_instance_that_holds_other_orgs() {
    let Some(server) = server() else { return };
    let work = Work::new();
    let source = flagsmith_db(&server, "fs_source");
    let archive = work.path("org1.orgport");
    let config = flagsmith_config();
    let config = config.to_str().expect("path");
    work.run(&[
        "export",
        "--db",
        &source,
        "--config",
        config,
        "--org",
        "1",
        "--with",
        "passwords,secrets",
        "--out",
        archive.to_str().expect("path"),
    ])
    .ok();
    let rows = archive_rows(&archive);

    // The rows of org 1's foreign-key closure, table by table.
    let closure = std::fs::read_to_string(realworld("flagsmith_org1_fkclosure_rows.txt")).expect("closure list");
    let mut expected = 0;
    for line in closure.lines().filter(|l| l.contains(": ")) {
        let (table, n) = line.split_once(": ").expect("table: n");
        let n: usize = n.trim().parse().expect("count");
        expected += n;
        assert_eq!(rows.get(table).map(Vec::len), Some(n), "rows of `{table}` in the archive");
    }
    assert_eq!(expected, 80);

    // Everything Flagsmith's own exporter writes for org 1 is in the archive, found by uuid where
    // the object has one, else counted.
    let flagsmith: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(realworld("flagsmith-org1-export.json")).expect("export")).expect("json");
    assert_eq!(flagsmith.len(), 67);
    let mut per_table: BTreeMap<String, usize> = BTreeMap::new();
    for object in &flagsmith {
        let model = object["model"].as_str().expect("model");
        let table = match model {
            "traits.trait" => "environments_trait".to_string(),
            "identities.identity" => "environments_identity".to_string(),
            other => other.replace('.', "_"),
        };
        *per_table.entry(table.clone()).or_default() += 1;
        if let Some(uuid) = object["fields"]["uuid"].as_str() {
            let found = rows[&table].iter().flatten().any(|v| matches!(v, Value::Uuid(u) if format_uuid(u) == uuid));
            assert!(found, "{model} {uuid} is not in the archive");
        }
    }
    for (table, n) in per_table {
        assert!(rows.get(&table).map_or(0, Vec::len) >= n, "`{table}`: Flagsmith exports {n} rows");
    }

    // Into an instance that holds organisations 1 and 2: a new organisation, verified, with the
    // existing rows untouched and the sequences past the new keys.
    let target = flagsmith_db(&server, "fs_target");
    let ids = existing_ids(&target);
    let before = digest(&target, &ids);
    let out = work.run(&["import", "--db", &target, "--config", config, "--in", archive.to_str().expect("path"), "--json"]);
    let report = out.ok().json();
    let new_org = new_org(&report);
    assert!(new_org.parse::<i64>().expect("integer key") > 2);
    work.run(&["verify", "--db", &target, "--config", config, "--in", archive.to_str().expect("path"), "--org", &new_org]).ok();
    assert_eq!(digest(&target, &ids), before, "rows that existed before the import changed");

    // Metadata's generic relation (`object_id` by `content_type_id`) follows its feature: the new
    // organisation's metadata names the new organisation's copy of the source's feature.
    let metadata_feature = |url: &str, org: &str| {
        psql(
            url,
            &[
                "-c",
                &format!(
                    "SELECT f.name || '@' || p.organisation_id FROM metadata_metadata m \
                 JOIN metadata_metadatamodelfield mf ON mf.id = m.model_field_id \
                 JOIN metadata_metadatafield fld ON fld.id = mf.field_id \
                 JOIN django_content_type ct ON ct.id = m.content_type_id AND ct.model = 'feature' \
                 JOIN features_feature f ON f.id = m.object_id JOIN projects_project p ON p.id = f.project_id \
                 WHERE fld.organisation_id = {org} ORDER BY m.id"
                ),
            ],
        )
    };
    let source_metadata = metadata_feature(&source, "1");
    assert!(source_metadata.ends_with("@1"), "org 1's metadata names a feature: {source_metadata}");
    assert_eq!(metadata_feature(&target, &new_org), source_metadata.replace("@1", &format!("@{new_org}")));
    // History tables are excluded (their rows copy live ids without foreign keys).
    assert!(rows.keys().all(|t| !t.contains("_historical")), "history tables in the archive");
    let next: i64 =
        psql(&target, &["-c", "SELECT nextval(pg_get_serial_sequence('organisations_organisation', 'id'))"]).parse().expect("nextval");
    assert!(next > new_org.parse::<i64>().expect("key"), "the sequence was left behind the imported key");
    let names = psql(&target, &["-c", "SELECT string_agg(name, ',' ORDER BY id) FROM organisations_organisation"]);
    assert_eq!(names, "Acme,Globex,Acme");
}

#[test]
fn a_failed_postgres_import_leaves_the_target_as_it_was() {
    let Some(server) = server() else { return };
    let work = Work::new();
    let source = flagsmith_db(&server, "fs_fail_source");
    let archive = work.path("org1.orgport");
    let config = flagsmith_config();
    work.run(&[
        "export",
        "--db",
        &source,
        "--config",
        config.to_str().expect("path"),
        "--org",
        "1",
        "--out",
        archive.to_str().expect("path"),
    ])
    .ok();
    // Without the conflict policies, the uuids of org 1 collide with the ones on the target.
    let target = flagsmith_db(&server, "fs_fail_target");
    let ids = existing_ids(&target);
    let before = digest(&target, &ids);
    let bare = work.config("bare.toml", "root = \"organisations_organisation\"\n");
    work.run(&["import", "--db", &target, "--config", bare.to_str().expect("path"), "--in", archive.to_str().expect("path")])
        .fails_with(&["already exist", "organisations_organisation", "uuid"]);
    assert_eq!(digest(&target, &ids), before);
    assert_eq!(existing_ids(&target), ids, "new rows were left behind");
    let count = psql(&target, &["-c", "SELECT count(*) FROM organisations_organisation"]);
    assert_eq!(count, "2");
}

#[test]
fn a_wrong_password_is_a_clear_error_that_does_not_echo_it() {
    let Some(server) = server() else { return };
    let work = Work::new();
    let (scheme_host, db) = server.rsplit_once('/').expect("URL");
    let host = scheme_host.rsplit_once('@').map(|(_, h)| h).expect("user@host");
    let bad = format!("postgres://nobody:canary-s3cret@{host}/{db}");
    let out = work.run(&["plan", "--db", &bad, "--root", "x"]);
    out.fails_with(&["cannot connect", "nobody"]);
    assert!(!out.stderr.contains("canary-s3cret") && !out.stdout.contains("canary-s3cret"), "the password was printed: {}", out.stderr);
}

#[test]
fn an_archive_from_sqlite_imports_into_postgres_and_back() {
    let Some(server) = server() else { return };
    let work = Work::new();
    let source = work.example("source.db", &orgport_testkit::example::ExampleOptions { chain_depth: 50, ..Default::default() });
    let config = example_config();
    let archive = work.path("from-sqlite.orgport");
    work.export(&source, Some(&config), None, &["1"], &[], &archive).ok();

    let pg = fresh_db(&server, "saas_pg");
    let ddl = repo_root().join("examples/saas/schema.postgres.sql");
    psql(&pg, &["-f", ddl.to_str().expect("path")]);
    let config_arg = config.to_str().expect("path");
    let archive_arg = archive.to_str().expect("path");
    let report = work.run(&["import", "--db", &pg, "--config", config_arg, "--in", archive_arg, "--json"]).ok().json();
    let org = new_org(&report);
    work.run(&["verify", "--db", &pg, "--config", config_arg, "--in", archive_arg, "--org", &org]).ok();
    let manifest = work.manifest(&archive);
    let tasks = manifest["tables"].as_array().expect("tables").iter().find(|t| t["name"] == "tasks").expect("tasks")["rows"].clone();
    assert_eq!(psql(&pg, &["-c", "SELECT count(*) FROM tasks"]), tasks.to_string());

    // And back: the organisation exported from PostgreSQL imports into SQLite and verifies.
    let back = work.path("from-postgres.orgport");
    work.run(&["export", "--db", &pg, "--config", config_arg, "--org", &org, "--out", back.to_str().expect("path")]).ok();
    let target =
        work.example("target.db", &orgport_testkit::example::ExampleOptions { orgs: 2, first_org: 100, seed: 7, ..Default::default() });
    let report = work.import_json(&target, Some(&config), &back);
    let again = new_org(&report);
    work.verify(&target, Some(&config), &back, &[&again]).ok();
    work.verify(&target, Some(&config), &archive, &[&again]).ok();
}

#[test]
fn the_url_may_leave_the_server_to_the_pg_environment_variables() {
    let Some(server) = server() else { return };
    let work = Work::new();
    let db = fresh_db(&server, "pg_env");
    let ddl = repo_root().join("examples/saas/schema.postgres.sql");
    psql(&db, &["-f", ddl.to_str().expect("path")]);
    // postgres://postgres@127.0.0.1:PORT/NAME → host, port and user from the environment.
    let rest = db.split_once('@').map(|(_, r)| r).expect("user@host");
    let (host_port, name) = rest.split_once('/').expect("host/db");
    let (host, port) = host_port.split_once(':').expect("host:port");
    let out = orgport(&work.path("."))
        .args(["plan", "--db", &format!("postgres:///{name}"), "--root", "workspaces", "--format", "json"])
        .env("PGHOST", host)
        .env("PGPORT", port)
        .env("PGUSER", "postgres")
        .output()
        .expect("running orgport");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(plan["root"], "workspaces");
}

/// A cycle through a foreign key checked at every statement (`orgs.default_team_id`), and a
/// self-reference of the same kind whose rows name later rows, more of them than one write batch
/// holds: written as NULL, then updated.
#[test]
fn references_checked_at_once_to_rows_written_later_are_set_after_the_rows() {
    let Some(server) = server() else { return };
    let work = Work::new();
    let db = fresh_db(&server, "nodefer");
    psql(
        &db,
        &[
            "-c",
            "CREATE TABLE orgs (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, default_team_id bigint);
                 CREATE TABLE teams (id bigserial PRIMARY KEY, org_id bigint NOT NULL REFERENCES orgs(id), name text NOT NULL);
                 ALTER TABLE orgs ADD FOREIGN KEY (default_team_id) REFERENCES teams(id);
                 CREATE TABLE items (id bigserial PRIMARY KEY, team_id bigint NOT NULL REFERENCES teams(id),
                                     next_id bigint REFERENCES items(id), label text NOT NULL);
                 INSERT INTO orgs (name) VALUES ('one'), ('two');
                 INSERT INTO teams (org_id, name) VALUES (1, 'red'), (1, 'blue'), (2, 'green');
                 UPDATE orgs SET default_team_id = 2 WHERE id = 1;
                 UPDATE orgs SET default_team_id = 3 WHERE id = 2;
                 INSERT INTO items (team_id, label) SELECT 1 + i % 2, 'item ' || i FROM generate_series(1, 12000) i;
                 INSERT INTO items (team_id, label) VALUES (3, 'other');
                 UPDATE items SET next_id = id + 1 WHERE id < 12000;
                 UPDATE items SET next_id = 1 WHERE id = 12000;",
        ],
    );
    let config = work.path("orgport.toml");
    std::fs::write(&config, "root = \"orgs\"\n[on_conflict]\n\"orgs.name\" = \"suffix\"\n").expect("config");
    let config = config.to_str().expect("path");
    let plan = work.run(&["plan", "--db", &db, "--config", config]);
    plan.ok();
    assert!(plan.stdout.contains("`orgs`(default_team_id) inserted as NULL, then updated"), "{}", plan.stdout);

    let archive = work.path("org1.orgport");
    work.run(&["export", "--db", &db, "--config", config, "--org", "1", "--out", archive.to_str().expect("path")]).ok();
    let report = work.run(&["import", "--db", &db, "--config", config, "--in", archive.to_str().expect("path"), "--json"]).ok().json();
    let new_org = new_org(&report);
    work.run(&["verify", "--db", &db, "--config", config, "--in", archive.to_str().expect("path"), "--org", &new_org]).ok();
    // The default team and every item's successor, by name, as in the source organisation.
    let shape = |org: &str| {
        psql(
            &db,
            &[
                "-c",
                &format!(
                    "SELECT (SELECT t.name FROM orgs o JOIN teams t ON t.id = o.default_team_id AND t.org_id = o.id WHERE o.id = {org}) \
                 || ':' || count(*) || ':' || md5(string_agg(i.label || '>' || n.label || '@' || t.name, ',' ORDER BY i.label)) \
                 FROM items i JOIN teams t ON t.id = i.team_id AND t.org_id = {org} \
                 JOIN items n ON n.id = i.next_id JOIN teams nt ON nt.id = n.team_id AND nt.org_id = {org}"
                ),
            ],
        )
    };
    let source = shape("1");
    assert!(source.starts_with("blue:12000:"), "{source}");
    assert_eq!(shape(&new_org), source);
}

#[test]
fn a_cycle_through_not_null_references_checked_at_once_is_refused_by_the_plan() {
    let Some(server) = server() else { return };
    let work = Work::new();
    let db = fresh_db(&server, "nocycle");
    psql(
        &db,
        &[
            "-c",
            "CREATE TABLE orgs (id bigserial PRIMARY KEY, owner_id bigint NOT NULL);
                 CREATE TABLE owners (id bigserial PRIMARY KEY, org_id bigint NOT NULL REFERENCES orgs(id));
                 ALTER TABLE orgs ADD FOREIGN KEY (owner_id) REFERENCES owners(id);",
        ],
    );
    work.run(&["plan", "--db", &db, "--root", "orgs"]).fails_with(&[
        "cannot be imported: `orgs`(owner_id) is NOT NULL and checked at once, but refers to `owners`, written after it",
        "DEFERRABLE",
    ]);
}

/// A row the server refuses in the middle of the bulk write (a CHECK only the target has): the
/// error names the table and the constraint but not the row's values, and every row written before
/// it is rolled back.
#[test]
fn a_row_refused_during_the_bulk_write_rolls_back_every_table() {
    let Some(server) = server() else { return };
    let work = Work::new();
    let source = work.example("source.db", &orgport_testkit::example::ExampleOptions { tasks_per_project: 40, ..Default::default() });
    let config = example_config();
    let archive = work.path("org.orgport");
    work.export(&source, Some(&config), None, &["1"], &[], &archive).ok();
    let pg = fresh_db(&server, "refused");
    psql(&pg, &["-f", repo_root().join("examples/saas/schema.postgres.sql").to_str().expect("path")]);
    // The first import lands; the second meets a constraint added in between.
    let args = ["import", "--db", &pg, "--config", config.to_str().expect("path"), "--in", archive.to_str().expect("path")];
    work.run(&args).ok();
    psql(&pg, &["-c", "ALTER TABLE tasks ADD CONSTRAINT short_titles CHECK (length(title) < 3) NOT VALID"]);
    let rows = |table: &str| {
        psql(
            &pg,
            &["-c", &format!("SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {table} t")],
        )
    };
    let tables = ["workspaces", "projects", "labels", "tasks", "users", "memberships"];
    let before: Vec<String> = tables.iter().map(|t| rows(t)).collect();
    let failed = work.run(&args);
    failed.fails_with(&["cannot insert into `tasks`", "short_titles"]);
    // The server's DETAIL quotes the refused row, which may hold secrets: never shown.
    assert!(!failed.stderr.contains("Failing row"), "{}", failed.stderr);
    assert_eq!(tables.iter().map(|t| rows(t)).collect::<Vec<_>>(), before, "rows were left behind");
}

/// Tables read on several connections sharing one snapshot (`pg_export_snapshot`) make the same
/// archive as one connection reading them all: same tables, rows and checksums.
#[test]
fn readers_sharing_the_snapshot_export_the_same_rows_as_one_connection() {
    let Some(server) = server() else { return };
    let work = Work::new();
    let source = flagsmith_db(&server, "fs_jobs");
    let config = flagsmith_config();
    let tables = |jobs: &str| {
        let archive = work.path(&format!("jobs{jobs}.orgport"));
        let args = ["export", "--db", &source, "--config", config.to_str().expect("path"), "--org", "1", "--jobs", jobs];
        let out = work.run(&[&args[..], &["--out", archive.to_str().expect("path")]].concat());
        out.ok();
        if jobs != "1" {
            assert!(out.stderr.contains(&format!("reading tables on {jobs} connections sharing one snapshot")), "{}", out.stderr);
        }
        let manifest = work.manifest(&archive);
        let tables: Vec<String> =
            manifest["tables"].as_array().expect("tables").iter().map(|t| format!("{} {} {}", t["name"], t["rows"], t["sha256"])).collect();
        tables
    };
    let one = tables("1");
    assert!(one.len() > 20, "test setup: Flagsmith exports many tables: {one:?}");
    assert_eq!(tables("4"), one);
}

/// An archive from SQLite whose column does not fit the PostgreSQL column it meets: refused before
/// any write, naming the column and both types.
#[test]
fn a_column_whose_type_does_not_map_is_refused_before_any_write() {
    let Some(server) = server() else { return };
    let work = Work::new();
    let source = work.example("source.db", &orgport_testkit::example::ExampleOptions { tasks_per_project: 3, ..Default::default() });
    let config = example_config();
    let archive = work.path("org.orgport");
    work.export(&source, Some(&config), None, &["1"], &[], &archive).ok();
    let pg = fresh_db(&server, "nomap");
    psql(&pg, &["-f", repo_root().join("examples/saas/schema.postgres.sql").to_str().expect("path")]);
    psql(&pg, &["-c", "ALTER TABLE tasks ALTER COLUMN title TYPE bigint USING 0"]);
    let args = ["import", "--db", &pg, "--config", config.to_str().expect("path"), "--in", archive.to_str().expect("path")];
    work.run(&args).fails_with(&["does not match the archive", "column `tasks.title` is TEXT", "bigint (Integer) on the target"]);
    let total =
        psql(&pg, &["-c", "SELECT (SELECT count(*) FROM workspaces) + (SELECT count(*) FROM users) + (SELECT count(*) FROM tasks)"]);
    assert_eq!(total, "0", "rows were written");
}

/// A fresh database made of `sql`.
fn db_of(server: &str, name: &str, sql: &str) -> String {
    let db = fresh_db(server, name);
    psql(&db, &["-c", sql]);
    db
}

/// Imports the archive into `db`, verifies it, and returns the new organisation's key.
fn import_and_verify(work: &Work, db: &str, config: &str, archive: &str) -> String {
    let report = work.run(&["import", "--db", db, "--config", config, "--in", archive, "--json"]).ok().json();
    let org = new_org(&report);
    work.run(&["verify", "--db", db, "--config", config, "--in", archive, "--org", &org]).ok();
    org
}

/// Found by filling Gisia's schema: a withheld NOT NULL `jsonb` secret
/// (`ci_builds_metadata.secrets`) was written as plain text, which PostgreSQL refused.
#[test]
fn withheld_secrets_are_written_as_valid_values_of_their_type() {
    let Some(server) = server() else { return };
    let work = Work::new();
    let db = db_of(
        &server,
        "pg_withheld",
        "CREATE TABLE orgs (id serial PRIMARY KEY, name text NOT NULL); \
                 CREATE TABLE integrations (id serial PRIMARY KEY, org_id int NOT NULL REFERENCES orgs, \
                   settings jsonb NOT NULL, api_token text NOT NULL, verified boolean NOT NULL, rotated_at timestamptz NOT NULL); \
                 INSERT INTO orgs (name) VALUES ('acme'); \
                 INSERT INTO integrations (org_id, settings, api_token, verified, rotated_at) \
                   VALUES (1, '{\"key\": \"s3cret\"}', 't0ken', true, '2024-05-01 10:00:00+00')",
    );
    let config = work.config(
        "withheld.toml",
        "root = \"orgs\"\n[sensitive]\nsecrets = [\"integrations.settings\", \"integrations.api_token\", \"integrations.verified\", \"integrations.rotated_at\"]\n",
    );
    let (config, archive) = (config.to_str().expect("path"), work.path("org.orgport"));
    let archive = archive.to_str().expect("path");
    work.run(&["export", "--db", &db, "--config", config, "--org", "1", "--out", archive]).ok();
    let org = import_and_verify(&work, &db, config, archive);
    let row = psql(
        &db,
        &["-c", &format!("SELECT jsonb_typeof(settings), settings #>> '{{}}' LIKE '!orgport-withheld-%', api_token LIKE '!orgport-withheld-%', verified, rotated_at \
                          FROM integrations WHERE org_id = {org}")],
    );
    assert_eq!(row, "string|t|t|f|1970-01-01 00:00:00+00");
}

/// Found by filling Gisia's schema: `ci_builds.token_encrypted` is unique `WHERE token_encrypted
/// IS NOT NULL`. As a partial index it was not checked before writing, so a copy next to its
/// original failed at `COPY` with the server's duplicate-key error, and `on_conflict` could not
/// apply. Such a predicate leaves out only NULL keys: the index is as unique as a full one.
#[test]
fn a_unique_index_on_non_null_values_is_checked_and_resolved_before_writing() {
    let Some(server) = server() else { return };
    let work = Work::new();
    let db = db_of(
        &server,
        "pg_partial_unique",
        "CREATE TABLE orgs (id serial PRIMARY KEY, name text NOT NULL); \
                 CREATE TABLE builds (id serial PRIMARY KEY, org_id int NOT NULL REFERENCES orgs, job_token text); \
                 CREATE UNIQUE INDEX builds_job_token ON builds (job_token) WHERE (job_token IS NOT NULL); \
                 CREATE TABLE notes (id serial PRIMARY KEY, org_id int NOT NULL REFERENCES orgs, slug text NOT NULL, deleted_at timestamp); \
                 CREATE UNIQUE INDEX notes_slug ON notes (slug) WHERE (deleted_at IS NULL); \
                 INSERT INTO orgs (name) VALUES ('acme'); \
                 INSERT INTO builds (org_id, job_token) VALUES (1, 'tok-1'), (1, NULL); \
                 INSERT INTO notes (org_id, slug, deleted_at) VALUES (1, 'gone', now())",
    );
    let archive = work.path("org.orgport");
    let archive = archive.to_str().expect("path");
    let secrets = "root = \"orgs\"\nnot_sensitive = [\"builds.job_token\"]\n";
    let bare = work.config("bare.toml", secrets);
    work.run(&["export", "--db", &db, "--config", bare.to_str().expect("path"), "--org", "1", "--out", archive]).ok();
    work.run(&["import", "--db", &db, "--config", bare.to_str().expect("path"), "--in", archive]).fails_with(&[
        "unique value(s) of the archive already exist",
        "table `builds`, unique (job_token)",
        "on_conflict.\"builds.job_token\"",
    ]);
    let regenerate = work.config("regenerate.toml", &format!("{secrets}[on_conflict]\n\"builds.job_token\" = \"regenerate\"\n"));
    let org = import_and_verify(&work, &db, regenerate.to_str().expect("path"), archive);
    let tokens = psql(
        &db,
        &["-c", &format!("SELECT count(job_token), count(*) FILTER (WHERE job_token = 'tok-1') FROM builds WHERE org_id = {org}")],
    );
    assert_eq!(tokens, "1|0", "the copy's token was regenerated, its NULL kept");
    // A partial index that leaves out other rows is still not looked up: a soft-deleted slug
    // may repeat.
    assert_eq!(psql(&db, &["-c", &format!("SELECT count(*) FROM notes WHERE org_id = {org} AND slug = 'gone'")]), "1");
}

/// The export needs nothing but `SELECT`: a role that may only read, in read-only transactions,
/// exports on several connections; and the import leaves the application's row triggers to fire.
#[test]
fn a_read_only_role_exports_and_the_import_fires_row_triggers() {
    let Some(server) = server() else { return };
    let work = Work::new();
    let db = db_of(
        &server,
        "readonly",
        "CREATE TABLE orgs (id bigserial PRIMARY KEY, name text NOT NULL);
         CREATE TABLE notes (id bigserial PRIMARY KEY, org_id bigint NOT NULL REFERENCES orgs(id), body text NOT NULL);
         CREATE TABLE note_log (note_id bigint NOT NULL, body text NOT NULL);
         CREATE FUNCTION log_note() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN INSERT INTO note_log VALUES (NEW.id, NEW.body); RETURN NEW; END $$;
         CREATE TRIGGER notes_logged AFTER INSERT ON notes FOR EACH ROW EXECUTE FUNCTION log_note();
         INSERT INTO orgs (name) VALUES ('one'), ('two');
         INSERT INTO notes (org_id, body) SELECT 1 + i % 2, 'note ' || i FROM generate_series(1, 40) i;
         DELETE FROM note_log;",
    );
    let role = format!("reader_{}", std::process::id());
    psql(
        &db,
        &[
            "-c",
            &format!(
                "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}; \
             ALTER ROLE {role} SET default_transaction_read_only = on"
            ),
        ],
    );
    let reader_url = db.replacen("postgres://postgres@", &format!("postgres://{role}@"), 1);
    assert_ne!(reader_url, db, "test setup: the server URL names the postgres user");
    let config = work.config("orgport.toml", "root = \"orgs\"\nexclude = [\"note_log\"]\n");
    let config = config.to_str().expect("path");
    let archive = work.path("org1.orgport");
    let archive = archive.to_str().expect("path");
    let out = work.run(&["export", "--db", &reader_url, "--config", config, "--org", "1", "--jobs", "3", "--out", archive]);
    out.ok();
    assert!(out.stderr.contains("reading tables on 3 connections"), "{}", out.stderr);
    let org = import_and_verify(&work, &db, config, archive);
    let logged = psql(&db, &["-c", &format!(
        "SELECT count(*) || ':' || count(*) FILTER (WHERE l.body = n.body) FROM note_log l JOIN notes n ON n.id = l.note_id WHERE n.org_id = {org}"
    )]);
    assert_eq!(logged, "20:20", "the trigger logged every imported note");
    psql(&db, &["-c", &format!("DROP OWNED BY {role}; DROP ROLE {role}")]);
}

/// A hot standby is read-only: the export writes nothing there (no temporary tables, nothing to
/// set) and gives the same archive as from the primary.
#[test]
fn an_organisation_exports_from_a_hot_standby_as_from_its_primary() {
    let Some(_) = server() else { return };
    let work = Work::new();
    let primary = PrivateServer::start(&[], |_| String::new());
    psql(
        &primary.url,
        &[
            "-c",
            "CREATE TABLE orgs (id bigserial PRIMARY KEY, name text NOT NULL);
                 CREATE TABLE projects (id bigserial PRIMARY KEY, org_id bigint NOT NULL REFERENCES orgs(id), name text NOT NULL);
                 CREATE TABLE tasks (id bigserial PRIMARY KEY, project_id bigint NOT NULL REFERENCES projects(id),
                                     parent_id bigint REFERENCES tasks(id), title text NOT NULL);
                 INSERT INTO orgs (name) VALUES ('one'), ('two');
                 INSERT INTO projects (org_id, name) SELECT 1 + i % 2, 'project ' || i FROM generate_series(1, 10) i;
                 INSERT INTO tasks (project_id, title) SELECT 1 + i % 10, 'task ' || i FROM generate_series(1, 500) i;
                 UPDATE tasks SET parent_id = id - 1 WHERE id % 7 <> 0 AND id > 1;",
        ],
    );
    let standby = PrivateServer::standby_of(&primary);
    // Wait until the standby has replayed the rows.
    let replayed = (0..100).any(|_| {
        let ready = psql(&standby.url, &["-c", "SELECT pg_is_in_recovery() AND to_regclass('tasks') IS NOT NULL"]) == "t"
            && psql(&standby.url, &["-c", "SELECT count(*) FROM tasks WHERE parent_id IS NOT NULL"]) != "0";
        if !ready {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        ready
    });
    assert!(replayed, "the standby did not catch up");
    let tables = |url: &str, name: &str| {
        let archive = work.path(name);
        work.run(&["export", "--db", url, "--root", "orgs", "--org", "1", "--out", archive.to_str().expect("path")]).ok();
        let manifest = work.manifest(&archive);
        manifest["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .map(|t| format!("{} {} {}", t["name"], t["rows"], t["sha256"]))
            .collect::<Vec<_>>()
    };
    let from_primary = tables(&primary.url, "primary.orgport");
    assert!(from_primary.iter().any(|t| t.starts_with("\"tasks\" 250 ")), "{from_primary:?}");
    assert_eq!(tables(&standby.url, "standby.orgport"), from_primary);
}

/// References that leave the organisation, tested three ways: a self-reference to an integer key
/// (tested by the export against the table's keys, read before the table), a reference to a text
/// key (tested by the server), and an integer reference to a table read earlier (tested against
/// the keys it streamed, as `notes` is against `items`). Forward and backward self-references
/// stay; the foreign ones are cut.
const LEAVING_SCHEMA: &str = "
CREATE TABLE ws (id integer PRIMARY KEY, name text NOT NULL);
CREATE TABLE tags (code text PRIMARY KEY, ws_id integer NOT NULL REFERENCES ws(id));
CREATE TABLE boards (id integer PRIMARY KEY, ws_id integer NOT NULL REFERENCES ws(id));
CREATE TABLE items (
    id integer PRIMARY KEY,
    ws_id integer NOT NULL REFERENCES ws(id),
    parent_id integer REFERENCES items(id),
    tag_code text REFERENCES tags(code),
    board_id integer REFERENCES boards(id),
    body text NOT NULL
);
CREATE TABLE notes (id integer PRIMARY KEY, ws_id integer NOT NULL REFERENCES ws(id), item_id integer REFERENCES items(id));
INSERT INTO ws VALUES (1, 'one'), (2, 'two');
INSERT INTO tags VALUES ('a', 1), ('b', 2);
INSERT INTO boards VALUES (7, 1), (8, 2);
INSERT INTO items VALUES
    (5, 1, NULL, 'a', 7, 'of the other org'),
    (10, 2, 11, 'b', 8, 'own parent written later'),
    (11, 2, 5, 'a', 7, 'everything foreign'),
    (12, 2, 10, NULL, NULL, 'own parent written earlier');
INSERT INTO notes VALUES (1, 1, 5), (2, 2, 5), (3, 2, 11);
";

#[test]
fn references_leaving_the_organisation_are_cut_however_they_are_tested() {
    let w = Work::new();
    let sqlite = w.db("leaving.db", LEAVING_SCHEMA);
    let mut sources = vec![("sqlite", url(&sqlite), "1")];
    if let Some(server) = server() {
        let pg = fresh_db(&server, "leaving");
        psql(&pg, &["-c", LEAVING_SCHEMA]);
        sources.push(("postgres", pg.clone(), "1"));
        sources.push(("postgres", pg, "3"));
    }
    for (engine, db, jobs) in sources {
        let archive = w.path(&format!("leaving-{engine}-{jobs}.orgport"));
        w.run(&["export", "--db", &db, "--root", "ws", "--org", "2", "--jobs", jobs, "--out", archive.to_str().unwrap()]).ok();
        let rows = archive_rows(&archive);
        let items: Vec<String> = rows["items"].iter().map(|r| format!("{r:?}")).collect();
        let expected = [
            "[Int(10), Int(2), Int(11), Text(\"b\"), Int(8), Text(\"own parent written later\")]",
            "[Int(11), Int(2), Null, Null, Null, Text(\"everything foreign\")]",
            "[Int(12), Int(2), Int(10), Null, Null, Text(\"own parent written earlier\")]",
        ];
        assert_eq!(items, expected, "{engine}, --jobs {jobs}");
        let notes: Vec<String> = rows["notes"].iter().map(|r| format!("{r:?}")).collect();
        assert_eq!(notes, ["[Int(2), Int(2), Null]", "[Int(3), Int(2), Int(11)]"], "{engine}, --jobs {jobs}");
        let mut cut: Vec<String> = w.manifest(&archive)["cut"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                format!(
                    "{}.{} {} {}",
                    c["table"].as_str().unwrap(),
                    c["columns"][0].as_str().unwrap(),
                    c["action"].as_str().unwrap(),
                    c["rows"]
                )
            })
            .collect();
        cut.sort();
        assert_eq!(
            cut,
            ["items.board_id cut 1", "items.parent_id cut 1", "items.tag_code cut 1", "notes.item_id cut 1"],
            "{engine}, --jobs {jobs}"
        );
    }
}
