//! Two real applications' schemas (structure only, `../shared/realworld`) filled with synthetic
//! organisations by the testkit's generator ([`orgport_testkit::fill`]), and one organisation
//! round-tripped with the real `orgport` binary on a real PostgreSQL server (see [`crate::pg`]):
//! Lago (billing: 138 tables, uuid keys, root `organizations`), Gisia (GitLab-like: bigint
//! keys, root `namespaces`, ownership inferred from column names) and Flagsmith (integer keys,
//! a generic relation by content type).
//!
//! Organisation 1 is exported, then imported into the database it came from (next to its
//! original and two others), into a fresh database holding two other organisations, and into an
//! empty one. Each time: the archive holds exactly the rows the generator wrote for organisation 1, table by
//! table; verify passes; every row that existed before is unchanged and the import added only
//! what its report says it created; and the root and a deeper table's rows equal their source
//! rows column by column.

use std::collections::BTreeMap;

use orgport_core::config::{Config, ConflictPolicy};
use orgport_core::plan::Role;
use orgport_core::value::{format_uuid, Value};
use orgport_testkit::fill::{fill, FillOptions, Filled};
use serde_json::Value as Json;

use crate::pg::*;
use crate::util::*;

/// One application: its structure, its configuration, and the rows compared field by field.
struct App {
    name: &'static str,
    structure: &'static str,
    /// Extensions the structure creates that PostgreSQL's own packages lack.
    extensions: &'static [&'static str],
    config: &'static str,
    root: &'static str,
    /// A table two or more references away from the root, compared row by row.
    deep: Deep,
}

struct Deep {
    table: &'static str,
    /// A generated text column that tells its rows apart: pairs a copy with its original.
    pairing_column: &'static str,
    /// Joins from the table (alias `x`) up to `root_key`, the expression that holds the root key.
    joins: &'static str,
    root_key: &'static str,
    /// Columns that hold keys or references: not compared.
    keys: &'static [&'static str],
}

const LAGO: App = App {
    name: "lago",
    structure: "lago_structure.sql",
    extensions: &["pg_partman"],
    config: "examples/lago/orgport.toml",
    root: "organizations",
    deep: Deep {
        table: "groups",
        pairing_column: "value",
        joins: "JOIN billable_metrics b ON b.id = x.billable_metric_id",
        root_key: "b.organization_id",
        keys: &["id", "billable_metric_id", "parent_group_id"],
    },
};

const GISIA: App = App {
    name: "gisia",
    structure: "gisia_structure.sql",
    extensions: &[],
    config: "examples/gisia/orgport.toml",
    root: "namespaces",
    deep: Deep {
        table: "merge_request_diff_files",
        pairing_column: "new_path",
        joins: "JOIN merge_request_diffs d ON d.id = x.merge_request_diff_id JOIN projects p ON p.id = d.project_id",
        root_key: "p.namespace_id",
        keys: &["merge_request_diff_id", "project_id"],
    },
};

/// Flagsmith's structure (its seeded data is `postgres.rs`'s): a generic relation whose kinds
/// are named by content type rows, which the generator must create in the shared pool.
const FLAGSMITH: App = App {
    name: "flagsmith",
    structure: "flagsmith_schema.sql",
    extensions: &[],
    config: "examples/flagsmith/orgport.toml",
    root: "organisations_organisation",
    deep: Deep {
        table: "multivariate_multivariatefeatureoption",
        pairing_column: "string_value",
        joins: "JOIN features_feature f ON f.id = x.feature_id JOIN projects_project p ON p.id = f.project_id",
        root_key: "p.organisation_id",
        keys: &["id", "feature_id"],
    },
};

#[test]
fn lago_org_1_round_trips_into_its_own_another_and_an_empty_instance() {
    round_trip(&LAGO);
}

#[test]
fn gisia_org_1_round_trips_into_its_own_another_and_an_empty_instance() {
    round_trip(&GISIA);
}

#[test]
fn flagsmith_org_1_round_trips_into_its_own_another_and_an_empty_instance() {
    round_trip(&FLAGSMITH);
}

fn round_trip(app: &App) {
    let Some(server) = server() else { return };
    let work = Work::new();
    let config_path = repo_root().join(app.config);
    let config = Config::load(&config_path).expect("the example configuration");
    let config_arg = config_path.to_str().expect("path");

    let source = load(&server, app, "src");
    let filled = fill(&source, &config, &FillOptions { orgs: 3, rows_per_table: 3, seed: 1, ..FillOptions::default() })
        .unwrap_or_else(|e| panic!("filling {}: {e:#}", app.name));
    assert!(filled.skipped.is_empty(), "{}: tables the generator could not fill:\n{}", app.name, filled.summary());
    let org = key_text(&filled.orgs[0]);
    let archive = work.path(&format!("{}-org1.orgport", app.name));
    let archive_arg = archive.to_str().expect("path");
    // With its secrets, as a move between instances wants them (withholding is tested elsewhere):
    // the copy next to its original needs new ones where they are unique.
    work.run(&["export", "--db", &source, "--config", config_arg, "--org", &org, "--with", "passwords,secrets", "--out", archive_arg]).ok();
    let manifest = work.manifest(&archive);
    archive_holds_what_was_written(app, &manifest, &filled);

    // Into the instance it came from, next to its original and two other organisations.
    let report = import_and_verify(&work, &source, config_arg, archive_arg);
    let copy = new_org(&report);
    same_rows(app, &config, (&source, &org), (&source, &copy), &manifest, &report);

    // Into another instance that holds two other organisations and the same shared rows.
    let target = load(&server, app, "tgt");
    fill(&target, &config, &FillOptions { orgs: 2, rows_per_table: 3, seed: 2, first_org: 4, root: None })
        .unwrap_or_else(|e| panic!("filling the target of {}: {e:#}", app.name));
    let report = import_and_verify(&work, &target, config_arg, archive_arg);
    let copy = new_org(&report);
    same_rows(app, &config, (&source, &org), (&target, &copy), &manifest, &report);

    // Into an empty instance, where every shared row is created.
    let empty = load(&server, app, "empty");
    let report = import_and_verify(&work, &empty, config_arg, archive_arg);
    assert!(
        report["tables"].as_object().expect("tables").values().all(|t| t["matched"] == 0),
        "{}: rows matched in an empty instance",
        app.name
    );
    let copy = new_org(&report);
    same_rows(app, &config, (&source, &org), (&empty, &copy), &manifest, &report);

    // Kept only when something failed, for a look.
    for db in [&source, &target, &empty] {
        let name = db.rsplit_once('/').map(|(_, n)| n).expect("a database name");
        psql(&server, &["-c", &format!("DROP DATABASE {name}")]);
    }
}

/// A fresh database with the application's structure.
fn load(server: &str, app: &App, suffix: &str) -> String {
    let url = fresh_db(server, &format!("rw_{}_{suffix}", app.name));
    for extension in app.extensions {
        let available = psql(&url, &["-c", &format!("SELECT count(*) FROM pg_available_extensions WHERE name = '{extension}'")]);
        assert_eq!(available, "1", "{}'s structure needs the `{extension}` extension: `bash scripts/pg.sh start` installs it", app.name);
    }
    psql(&url, &["-f", realworld(app.structure).to_str().expect("path")]);
    url
}

fn key_text(key: &Value) -> String {
    match key {
        Value::Uuid(u) => format_uuid(u),
        Value::Int(i) => i.to_string(),
        other => panic!("unexpected root key {other:?}"),
    }
}

/// Every owned table's rows of organisation 1 are in the archive, as many as the generator
/// wrote, and no other owned table is.
fn archive_holds_what_was_written(app: &App, manifest: &Json, filled: &Filled) {
    let archived: BTreeMap<String, u64> = manifest["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .filter(|t| t["role"] == "owned" || t["role"] == "root")
        .map(|t| (t["name"].as_str().expect("name").to_string(), t["rows"].as_u64().expect("rows")))
        .collect();
    let written: BTreeMap<String, u64> = filled
        .tables
        .iter()
        .filter(|(_, t)| matches!(t.role, Role::Owned | Role::Root))
        .map(|(name, _)| (name.clone(), filled.count(name, 0) as u64))
        .collect();
    assert_eq!(archived, written, "{}: rows per owned table, archive against what the generator wrote", app.name);
    let total: u64 = written.values().sum();
    assert!(written.len() > 50 && total > 150, "{}: only {} owned tables, {total} rows", app.name, written.len());
}

fn import_and_verify(work: &Work, db: &str, config: &str, archive: &str) -> Json {
    let before = row_digests(db);
    let report = work.run(&["import", "--db", db, "--config", config, "--in", archive, "--json"]).ok().json();
    work.run(&["verify", "--db", db, "--config", config, "--in", archive, "--org", &new_org(&report)]).ok();
    only_added(&before, &row_digests(db), &report);
    report
}

/// The md5 of every row, by table (partitioned tables through their parent).
fn row_digests(db: &str) -> BTreeMap<String, Vec<String>> {
    let union = psql(
        db,
        &[
            "-c",
            "SELECT string_agg(format('SELECT %L, md5(t::text) FROM %s t', c.oid::regclass::text, c.oid::regclass), ' UNION ALL ') \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'",
        ],
    );
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in psql(db, &["-c", &union]).lines() {
        let (table, digest) = line.split_once('|').expect("table|md5");
        out.entry(table.to_string()).or_default().push(digest.to_string());
    }
    out
}

/// Every row that existed is still there, unchanged, and each table gained exactly the rows the
/// import says it created.
fn only_added(before: &BTreeMap<String, Vec<String>>, after: &BTreeMap<String, Vec<String>>, report: &Json) {
    let mut created_total = 0;
    for (table, rows) in after {
        let mut remaining: BTreeMap<&str, i64> = BTreeMap::new();
        for digest in rows {
            *remaining.entry(digest).or_default() += 1;
        }
        for digest in before.get(table).into_iter().flatten() {
            let left = remaining.entry(digest).or_default();
            *left -= 1;
            assert!(*left >= 0, "`{table}`: a row that existed before the import changed or disappeared (md5 {digest})");
        }
        let added: i64 = remaining.values().sum();
        let created = report["tables"][table.as_str()]["created"].as_i64().unwrap_or(0);
        assert_eq!(added, created, "`{table}`: rows added against rows the import created");
        created_total += created;
    }
    assert!(created_total > 0, "the import created nothing");
    for table in before.keys() {
        assert!(after.contains_key(table), "`{table}`: every row that existed before the import disappeared");
    }
}

/// The root's row and one deeper table's rows of the copy equal their source rows, column by
/// column: keys and references aside (the deeper rows must reach the copy's root), withheld and
/// regenerated values aside (a regenerated secret is not reported), suffixed values as the
/// import's report says.
/// `original` and `copy` are each a database and a root key.
fn same_rows(app: &App, config: &Config, original: (&str, &str), copy: (&str, &str), manifest: &Json, report: &Json) {
    let not_compared = |table: &str| -> Vec<String> {
        let t = manifest["tables"].as_array().expect("tables").iter().find(|t| t["name"] == table).expect("table in the archive");
        let withheld = t["withheld"].as_object().into_iter().flat_map(|w| w.keys().cloned());
        let regenerated = config
            .on_conflict
            .iter()
            .filter(|(_, policy)| **policy == ConflictPolicy::Regenerate)
            .filter_map(|(column, _)| column.strip_prefix(&format!("{table}.")).map(str::to_string));
        withheld.chain(regenerated).collect()
    };
    let renamed = |table: &str, column: &str, from: &Json| -> Option<Json> {
        report["renamed"]
            .as_array()?
            .iter()
            .find(|r| r["table"] == table && r["column"] == column && r["from"] == *from)
            .map(|r| r["to"].clone())
    };
    let compare = |table: &str, original: &serde_json::Map<String, Json>, copied: &serde_json::Map<String, Json>, skip: &[String]| {
        assert_eq!(original.len(), copied.len());
        let mut compared = 0;
        for (column, value) in original {
            if skip.contains(column) {
                continue;
            }
            let expected = renamed(table, column, value).unwrap_or_else(|| value.clone());
            assert_eq!(copied[column], expected, "{}: `{table}.{column}` of the copy", app.name);
            compared += 1;
        }
        assert!(compared >= 4, "{}: only {compared} columns of `{table}` compared", app.name);
    };

    let root_row = |db: &str, key: &str| one_json(db, &format!("SELECT to_jsonb(x) FROM {} x WHERE id = '{key}'", app.root));
    let mut skip = not_compared(app.root);
    skip.push("id".into());
    compare(app.root, &root_row(original.0, original.1), &root_row(copy.0, copy.1), &skip);

    let d = &app.deep;
    let deep_rows = |db: &str, key: &str| -> BTreeMap<String, serde_json::Map<String, Json>> {
        let sql =
            format!("SELECT coalesce(jsonb_agg(to_jsonb(x)), '[]') FROM {} x {} WHERE {}::text = '{key}'", d.table, d.joins, d.root_key);
        let rows: Vec<Json> = serde_json::from_str(&psql(db, &["-c", &sql])).expect("json rows");
        rows.into_iter()
            .map(|r| {
                let r = r.as_object().expect("a row").clone();
                (r[d.pairing_column].as_str().expect("the pairing column").to_string(), r)
            })
            .collect()
    };
    let originals = deep_rows(original.0, original.1);
    let copies = deep_rows(copy.0, copy.1);
    assert!(!originals.is_empty(), "{}: organisation 1 has no `{}` rows", app.name, d.table);
    assert_eq!(
        originals.keys().collect::<Vec<_>>(),
        copies.keys().collect::<Vec<_>>(),
        "{}: `{}` rows reaching the copy's root",
        app.name,
        d.table
    );
    let mut skip = not_compared(d.table);
    skip.extend(d.keys.iter().map(|k| k.to_string()));
    for (name, original) in &originals {
        compare(d.table, original, &copies[name], &skip);
    }
}

fn one_json(db: &str, sql: &str) -> serde_json::Map<String, Json> {
    let text = psql(db, &["-c", sql]);
    let value: Json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    value.as_object().unwrap_or_else(|| panic!("no row for {sql}")).clone()
}
