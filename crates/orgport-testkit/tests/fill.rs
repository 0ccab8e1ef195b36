//! The generator on SQLite, with the example SaaS schema: every owned table filled for every
//! organisation, every reference within its organisation, the same rows for the same seed.

use std::path::{Path, PathBuf};

use orgport_core::config::Config;
use orgport_core::plan::Role;
use orgport_testkit::fill::{fill, FillOptions, Filled};
use rusqlite::Connection;

fn example(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/saas").join(file)
}

/// An empty database with the example's schema, filled.
fn fill_example(dir: &Path, name: &str, options: &FillOptions) -> (PathBuf, Filled) {
    let path = dir.join(name);
    let schema = std::fs::read_to_string(example("schema.sql")).expect("the example schema");
    Connection::open(&path).expect("a new database").execute_batch(&schema).expect("the schema");
    let config = Config::load(&example("orgport.toml")).expect("the example configuration");
    let filled = fill(&format!("sqlite://{}", path.display()), &config, options).expect("filling");
    (path, filled)
}

fn dump(path: &Path) -> Vec<String> {
    let conn = Connection::open(path).expect("open");
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("tables");
    let mut out = Vec::new();
    for table in tables {
        let sql = format!("SELECT * FROM \"{table}\"");
        let mut stmt = conn.prepare(&sql).expect("select");
        let n = stmt.column_count();
        let rows =
            stmt.query_map([], |r| (0..n).map(|i| r.get_ref(i).map(|v| format!("{v:?}"))).collect::<Result<Vec<_>, _>>()).expect("rows");
        for row in rows {
            out.push(format!("{table}: {}", row.expect("row").join(", ")));
        }
    }
    out.sort();
    out
}

#[test]
fn every_owned_table_is_filled_within_each_organisation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = FillOptions { orgs: 3, rows_per_table: 4, ..FillOptions::default() };
    let (path, filled) = fill_example(dir.path(), "saas.db", &options);
    assert!(filled.skipped.is_empty(), "{}", filled.summary());
    assert_eq!(filled.orgs.len(), 3);
    for (name, table) in &filled.tables {
        match table.role {
            Role::Root => (0..3).for_each(|o| assert_eq!(table.rows_of(o).count(), 1, "{name}")),
            Role::Owned => (0..3).for_each(|o| assert_eq!(table.rows_of(o).count(), 4, "{name}: {:?}", table.left_out)),
            _ => assert!(table.rows.iter().all(|r| r.org.is_none()), "{name}: shared rows belong to no organisation"),
        }
    }
    assert!(filled.tables["users"].rows.len() >= 4, "a pool of shared users");

    // References stay within the organisation: a task's project, a label's project and a
    // task's parent all belong to the task's workspace.
    let conn = Connection::open(&path).expect("open");
    let crossing: i64 = conn
        .query_row(
            "SELECT count(*) FROM tasks t JOIN projects p ON p.id = t.project_id
             LEFT JOIN tasks parent ON parent.id = t.parent_id LEFT JOIN projects pp ON pp.id = parent.project_id
             WHERE pp.workspace_id IS NOT NULL AND pp.workspace_id <> p.workspace_id",
            [],
            |r| r.get(0),
        )
        .expect("query");
    assert_eq!(crossing, 0, "a task's parent in another workspace");
    let key = |org: usize| match &filled.orgs[org] {
        orgport_core::value::Value::Int(i) => *i,
        other => panic!("{other:?}"),
    };
    let tasks = &filled.tables["tasks"];
    for row in tasks.rows_of(1) {
        let project = tasks.value(row, "project_id").expect("project_id").clone();
        let orgport_core::value::Value::Int(project) = project else { panic!("{project:?}") };
        let workspace: i64 = conn.query_row("SELECT workspace_id FROM projects WHERE id = ?1", [project], |r| r.get(0)).expect("project");
        assert_eq!(workspace, key(1), "task of organisation 2 in project {project}");
    }
    let foreign_keys: i64 = conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| r.get(0)).expect("check");
    assert_eq!(foreign_keys, 0);

    // The same options give the same rows.
    let (again, _) = fill_example(dir.path(), "again.db", &options);
    assert_eq!(dump(&path), dump(&again));
    let (other, _) = fill_example(dir.path(), "other.db", &FillOptions { seed: 7, ..options.clone() });
    assert_ne!(dump(&path), dump(&other), "another seed, other keys and coin flips");
}
