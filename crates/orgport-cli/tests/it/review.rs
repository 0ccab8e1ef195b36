//! Regression tests for the findings of a review, one test per finding: references to unique
//! columns that are not the primary key, configured references, excluded and kept tables, tables
//! without a primary key, cycles between shared tables, secrets in messages, secret-looking keys,
//! failures at commit and non-ASCII identifiers.

use std::collections::BTreeSet;
use std::path::Path;

use orgport_testkit::example::ExampleOptions;

use crate::util::*;

fn example_source(w: &Work) -> std::path::PathBuf {
    w.example("source.db", &ExampleOptions { tasks_per_project: 3, ..ExampleOptions::default() })
}

/// `orgport plan` with a configuration (or `--root ws` when `config` is None).
fn plan(w: &Work, db: &Path, config: Option<&Path>, extra: &[&str]) -> Out {
    let mut args: Vec<String> = vec!["plan".into(), "--db".into(), url(db)];
    match config {
        Some(c) => args.extend(["--config".into(), c.display().to_string()]),
        None => args.extend(["--root".into(), "ws".into()]),
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    w.run(&args)
}

/// The plan's JSON description of one table.
fn plan_table(p: &serde_json::Value, name: &str) -> serde_json::Value {
    p["tables"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("no table {name} in the plan: {p}")).clone()
}

/// The sensitive columns the plan lists for a table (none when the entry is absent or empty).
fn sensitive_columns(t: &serde_json::Value) -> BTreeSet<String> {
    t["sensitive"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

fn no_foreign_key_violations(db: &Path) {
    let fk = rows(&open(db), "PRAGMA foreign_key_check", &[]);
    assert!(fk.is_empty(), "foreign keys broken in {}: {fk:?}", db.display());
}

// ---------------------------------------------------------------------------------------------
// 1. A suffixed unique column referenced by another table
// ---------------------------------------------------------------------------------------------

/// `workspace_aliases.workspace_slug` refers to `workspaces.slug` (unique, `suffix`). Cloning a
/// workspace into its own database suffixes the slug, and the alias must follow the new slug.
#[test]
fn a_reference_to_a_suffixed_unique_column_follows_the_new_value() {
    let w = Work::new();
    let db = example_source(&w);
    open(&db)
        .execute_batch(
            "CREATE TABLE workspace_aliases (id INTEGER PRIMARY KEY, workspace_slug TEXT NOT NULL REFERENCES workspaces(slug), alias TEXT NOT NULL);
             INSERT INTO workspace_aliases (workspace_slug, alias) SELECT slug, 'alias of ' || slug FROM workspaces ORDER BY id;",
        )
        .unwrap();
    let config = example_config();
    let archive = w.path("org-1.orgport");
    w.export(&db, Some(&config), None, &["1"], &[], &archive).ok();
    let (_, decoded) = archive_rows(&archive);
    assert_eq!(decoded["workspace_aliases"].len(), 1, "the alias of workspace 1 belongs to it");

    let before = snapshot(&db);
    let report = w.import_json(&db, Some(&config), &archive);
    let new: i64 = new_org(&report).parse().unwrap();
    w.verify(&db, Some(&config), &archive, &[&new.to_string()]).ok();

    let conn = open(&db);
    assert_eq!(one(&conn, "SELECT slug FROM workspaces WHERE id = ?1", &[&new]), Cell::text("ws-1-2"));
    let renamed: Vec<&serde_json::Value> = report["renamed"].as_array().unwrap().iter().filter(|r| r["column"] == "slug").collect();
    assert_eq!(renamed.len(), 1, "{report}");
    // The new alias points at the new workspace; the old one still at the old workspace.
    let aliases = rows(&conn, "SELECT workspace_slug, alias FROM workspace_aliases ORDER BY id", &[]);
    assert_eq!(aliases.len(), 4, "{aliases:?}");
    assert_eq!(aliases[3], vec![Cell::text("ws-1-2"), Cell::text("alias of ws-1")], "the new alias must name the new workspace");
    assert_eq!(aliases[0], vec![Cell::text("ws-1"), Cell::text("alias of ws-1")]);
    no_foreign_key_violations(&db);

    // Field by field: the slug was suffixed (and gift card codes regenerated); the alias is mapped
    // through the pairing of the workspaces, slug to slug.
    let specs = with_spec(example_specs(), example_spec("workspaces").ignore(&["slug"]));
    let mut specs = with_spec(specs, example_spec("gift_cards").ignore(&["code"]).pair_by(&["amount_cents"]));
    specs.insert(
        2,
        spec("workspace_aliases", "SELECT * FROM workspace_aliases WHERE workspace_slug IN (SELECT slug FROM workspaces WHERE id = ?1)")
            .fresh(&["id"])
            .reference(&["workspace_slug"], "workspaces", &["slug"])
            .pair_by(&["alias"]),
    );
    let paired = assert_org_equal(&db, &Cell::Int(1), &db, &Cell::Int(new), &specs);
    assert_eq!(paired.pairs["workspace_aliases"].len(), 1);
    let added = assert_only_added(&before, &snapshot(&db));
    assert_added_exactly(&added, &paired, &[("users", 0)]);
}

// ---------------------------------------------------------------------------------------------
// 2. A configured reference to columns that are not unique
// ---------------------------------------------------------------------------------------------

#[test]
fn a_configured_reference_to_a_non_unique_column_is_a_config_error() {
    let w = Work::new();
    let db = example_source(&w);
    open(&db)
        .execute_batch(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, workspace_id INTEGER NOT NULL REFERENCES workspaces(id), project_name TEXT, body TEXT);
             INSERT INTO notes VALUES (1, 1, (SELECT name FROM projects WHERE workspace_id = 1 ORDER BY id LIMIT 1), 'n');",
        )
        .unwrap();
    let bad = w.config(
        "bad.toml",
        "root = \"workspaces\"\nkeep = [\"plans\"]\n[[reference]]\nfrom = \"notes.project_name\"\nto = \"projects.name\"\n",
    );
    plan(&w, &db, Some(&bad), &[]).fails_with(&["reference[0]", "projects"]);
    let archive = w.path("notes.orgport");
    let listing = dir_listing(w.dir.path());
    w.export(&db, Some(&bad), None, &["1"], &[], &archive).fails_with(&["reference[0]", "projects"]);
    assert_eq!(dir_listing(w.dir.path()), listing, "a refused export leaves nothing behind");

    // The same reference through the unique (workspace_id, name) is accepted.
    let good = w.config(
        "good.toml",
        "root = \"workspaces\"\nkeep = [\"plans\"]\n[[reference]]\nfrom = [\"notes.workspace_id\", \"notes.project_name\"]\n\
         to = [\"projects.workspace_id\", \"projects.name\"]\n",
    );
    plan(&w, &db, Some(&good), &[]).ok();
}

// ---------------------------------------------------------------------------------------------
// 3 and 8. NOT NULL references into an excluded table
// ---------------------------------------------------------------------------------------------

fn excluded_schema(nullable: bool) -> String {
    let null = if nullable { "" } else { "NOT NULL" };
    format!(
        "CREATE TABLE ws (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE tax_rates (id INTEGER PRIMARY KEY, rate REAL NOT NULL);
         CREATE TABLE invoices (id INTEGER PRIMARY KEY, ws_id INTEGER NOT NULL REFERENCES ws(id), tax_rate_id INTEGER {null} REFERENCES tax_rates(id), total INTEGER NOT NULL);"
    )
}

const EXCLUDE_TAX_RATES: &str = "root = \"ws\"\nexclude = [\"tax_rates\"]\n";

#[test]
fn a_not_null_reference_into_an_excluded_table_is_a_plan_warning() {
    let w = Work::new();
    let config = w.config("exclude.toml", EXCLUDE_TAX_RATES);
    let db = w.db("warned.db", &excluded_schema(false));
    let out = plan(&w, &db, Some(&config), &["--format", "json"]);
    out.ok();
    let p = out.json();
    assert_eq!(plan_table(&p, "tax_rates")["role"], "excluded");
    let warnings = p["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|x| x["table"] == "invoices" && x["message"].as_str().unwrap_or("").contains("tax_rates")),
        "no warning about invoices.tax_rate_id → excluded tax_rates: {warnings:?}"
    );
    let text = plan(&w, &db, Some(&config), &[]);
    text.ok();
    assert!(text.stdout.contains("warning") && text.stdout.contains("tax_rates"), "{}", text.stdout);
    plan(&w, &db, Some(&config), &["--strict"]).fails_with(&["tax_rates"]);
    plan(&w, &db, Some(&config), &["--strict", "--format", "json"]).fails_with(&["tax_rates"]);

    // A nullable reference into the excluded table is simply cut: no warning.
    let lax = w.db("nullable.db", &excluded_schema(true));
    let out = plan(&w, &lax, Some(&config), &["--format", "json", "--strict"]);
    out.ok();
    assert_eq!(out.json()["warnings"], serde_json::json!([]));
}

/// The values of a NOT NULL reference into an excluded table are imported as they are; when the
/// target lacks the row, the deferred foreign key fails at commit: the error names the table and
/// the target is left exactly as it was. With the row present, the import succeeds.
#[test]
fn an_import_failing_at_commit_on_a_foreign_key_names_the_table_and_changes_nothing() {
    let w = Work::new();
    let config = w.config("exclude.toml", EXCLUDE_TAX_RATES);
    let src = w.db(
        "src.db",
        &format!(
            "{}
             INSERT INTO ws VALUES (1, 'one'), (2, 'two');
             INSERT INTO tax_rates VALUES (1, 0.2), (2, 0.1), (3, 0.055);
             INSERT INTO invoices VALUES (1, 1, 3, 100), (2, 1, 1, 200), (3, 2, 2, 300);",
            excluded_schema(false)
        ),
    );
    let archive = w.path("one.orgport");
    w.export(&src, Some(&config), None, &["1"], &[], &archive).ok();

    let tgt = w.db(
        "tgt.db",
        &format!(
            "{}
             INSERT INTO ws VALUES (1, 'target');
             INSERT INTO tax_rates VALUES (1, 0.2);
             INSERT INTO invoices VALUES (1, 1, 1, 5);",
            excluded_schema(false)
        ),
    );
    let before = bytes(&tgt);
    let out = w.import(&tgt, Some(&config), &archive, &[]);
    out.fails_with(&["invoices"]);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_same_bytes(&tgt, &before);

    // With the excluded row on the target, the same archive imports and verifies, the values as
    // they were.
    let ok = w.db(
        "ok.db",
        &format!(
            "{}
             INSERT INTO ws VALUES (1, 'target');
             INSERT INTO tax_rates VALUES (1, 0.2), (3, 0.055);",
            excluded_schema(false)
        ),
    );
    let new: i64 = new_org(&w.import_json(&ok, Some(&config), &archive)).parse().unwrap();
    w.verify(&ok, Some(&config), &archive, &[&new.to_string()]).ok();
    let specs = vec![
        spec("ws", "SELECT * FROM ws WHERE id = ?1").fresh(&["id"]),
        spec("invoices", "SELECT * FROM invoices WHERE ws_id = ?1").fresh(&["id"]).reference(&["ws_id"], "ws", &["id"]).pair_by(&["total"]),
    ];
    let paired = assert_org_equal(&src, &Cell::Int(1), &ok, &Cell::Int(new), &specs);
    assert_eq!(paired.pairs["invoices"].len(), 2);
    no_foreign_key_violations(&ok);
}

// ---------------------------------------------------------------------------------------------
// 4. Tables without a primary key referenced through a UNIQUE column
// ---------------------------------------------------------------------------------------------

const DOCS_SCHEMA: &str = "
CREATE TABLE ws (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE docs (uid TEXT NOT NULL UNIQUE, ws_id INTEGER NOT NULL REFERENCES ws(id), title TEXT);
CREATE TABLE comments (id INTEGER PRIMARY KEY, doc_uid TEXT NOT NULL REFERENCES docs(uid), ws_id INTEGER NOT NULL REFERENCES ws(id), body TEXT);
";

#[test]
fn an_owned_table_without_primary_key_referenced_by_a_unique_column_round_trips() {
    let w = Work::new();
    let src = w.db(
        "src.db",
        &format!(
            "{DOCS_SCHEMA}
             INSERT INTO ws VALUES (1, 'one'), (2, 'two');
             INSERT INTO docs VALUES ('d-1', 1, 'first'), ('d-2', 1, 'second'), ('d-3', 2, 'third');
             INSERT INTO comments VALUES (1, 'd-2', 1, 'on second'), (2, 'd-1', 1, 'on first'), (3, 'd-2', 1, 'again on second'),
                                         (4, 'd-3', 2, 'on third');"
        ),
    );
    let tgt = w.db(
        "tgt.db",
        &format!(
            "{DOCS_SCHEMA}
             INSERT INTO ws VALUES (1, 'target');
             INSERT INTO docs VALUES ('t-1', 1, 'target doc');
             INSERT INTO comments VALUES (1, 't-1', 1, 'target comment'), (2, 't-1', 1, 'another');"
        ),
    );
    let archive = w.path("one.orgport");
    w.export(&src, None, Some("ws"), &["1"], &[], &archive).ok();
    let (_, decoded) = archive_rows(&archive);
    assert_eq!((decoded["docs"].len(), decoded["comments"].len()), (2, 3));

    let before = snapshot(&tgt);
    let report = w.import_json(&tgt, None, &archive);
    let new: i64 = new_org(&report).parse().unwrap();
    w.verify(&tgt, None, &archive, &[&new.to_string()]).ok();
    let specs = vec![
        spec("ws", "SELECT * FROM ws WHERE id = ?1").fresh(&["id"]),
        spec("docs", "SELECT * FROM docs WHERE ws_id = ?1").reference(&["ws_id"], "ws", &["id"]).pair_by(&["uid"]),
        spec("comments", "SELECT * FROM comments WHERE ws_id = ?1")
            .fresh(&["id"])
            .reference(&["doc_uid"], "docs", &["uid"])
            .reference(&["ws_id"], "ws", &["id"])
            .pair_by(&["body"]),
    ];
    let paired = assert_org_equal(&src, &Cell::Int(1), &tgt, &Cell::Int(new), &specs);
    assert_eq!(paired.pairs["comments"].len(), 3);
    let added = assert_only_added(&before, &snapshot(&tgt));
    assert_added_exactly(&added, &paired, &[]);
    // Each new comment is on the document of the new workspace with the same title as at the source.
    let on = rows(
        &open(&tgt),
        "SELECT c.body, d.title, d.ws_id FROM comments c JOIN docs d ON d.uid = c.doc_uid WHERE c.ws_id = ?1 ORDER BY c.body",
        &[&new],
    );
    assert_eq!(
        on,
        vec![
            vec![Cell::text("again on second"), Cell::text("second"), Cell::Int(new)],
            vec![Cell::text("on first"), Cell::text("first"), Cell::Int(new)],
            vec![Cell::text("on second"), Cell::text("second"), Cell::Int(new)],
        ]
    );
    no_foreign_key_violations(&tgt);
}

const MEMBERS_SCHEMA: &str = "
CREATE TABLE ws (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE users (email TEXT NOT NULL UNIQUE, name TEXT);
CREATE TABLE members (ws_id INTEGER NOT NULL REFERENCES ws(id), user_email TEXT NOT NULL REFERENCES users(email), role TEXT NOT NULL);
";

#[test]
fn a_shared_table_without_primary_key_is_matched_or_created_by_its_unique_column() {
    let w = Work::new();
    let src = w.db(
        "src.db",
        &format!(
            "{MEMBERS_SCHEMA}
             INSERT INTO ws VALUES (1, 'one'), (2, 'two');
             INSERT INTO users VALUES ('a@x', 'Ann'), ('b@x', 'Bob'), ('c@x', NULL), ('d@x', 'Dee');
             INSERT INTO members VALUES (1, 'a@x', 'owner'), (1, 'b@x', 'member'), (1, 'c@x', 'member'), (2, 'd@x', 'owner');"
        ),
    );
    let tgt = w.db(
        "tgt.db",
        &format!(
            "{MEMBERS_SCHEMA}
             INSERT INTO ws VALUES (1, 'target');
             INSERT INTO users VALUES ('z@x', 'Zed'), ('b@x', 'Bob on the target');
             INSERT INTO members VALUES (1, 'z@x', 'owner'), (1, 'b@x', 'member');"
        ),
    );
    let plan_out = plan(&w, &src, None, &["--format", "json"]);
    plan_out.ok();
    let users = plan_table(&plan_out.json(), "users");
    assert_eq!((users["role"].clone(), users["natural_key"].clone()), (serde_json::json!("referenced"), serde_json::json!(["email"])));

    let archive = w.path("one.orgport");
    w.export(&src, None, Some("ws"), &["1"], &[], &archive).ok();
    let before = snapshot(&tgt);
    let report = w.import_json(&tgt, None, &archive);
    assert_eq!(report["tables"]["users"]["created"], 2, "{report}");
    assert_eq!(report["tables"]["users"]["matched"], 1, "{report}");
    let new: i64 = new_org(&report).parse().unwrap();
    w.verify(&tgt, None, &archive, &[&new.to_string()]).ok();

    let added = assert_only_added(&before, &snapshot(&tgt));
    // Created: Ann and c@x (its NULL name kept); Bob was matched and stays as the target had him.
    assert_eq!(added["users"], vec![vec![Cell::text("a@x"), Cell::text("Ann")], vec![Cell::text("c@x"), Cell::Null]]);
    let conn = open(&tgt);
    assert_eq!(
        rows(&conn, "SELECT email, name FROM users ORDER BY email", &[]),
        vec![
            vec![Cell::text("a@x"), Cell::text("Ann")],
            vec![Cell::text("b@x"), Cell::text("Bob on the target")],
            vec![Cell::text("c@x"), Cell::Null],
            vec![Cell::text("z@x"), Cell::text("Zed")],
        ]
    );
    let specs = vec![
        spec("users", "SELECT * FROM users WHERE email IN (SELECT user_email FROM members WHERE ws_id = ?1)").pair_by(&["email"]).shared(),
        spec("ws", "SELECT * FROM ws WHERE id = ?1").fresh(&["id"]),
        spec("members", "SELECT * FROM members WHERE ws_id = ?1")
            .reference(&["ws_id"], "ws", &["id"])
            .reference(&["user_email"], "users", &["email"])
            .pair_by(&["user_email"]),
    ];
    let paired = assert_org_equal(&src, &Cell::Int(1), &tgt, &Cell::Int(new), &specs);
    assert_added_exactly(&added, &paired, &[("users", 2)]);
    no_foreign_key_violations(&tgt);
}

// ---------------------------------------------------------------------------------------------
// 5. A cycle between two shared tables
// ---------------------------------------------------------------------------------------------

const COMPANIES_SCHEMA: &str = "
CREATE TABLE ws (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, company_id INTEGER REFERENCES companies(id));
CREATE TABLE companies (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, owner_id INTEGER REFERENCES users(id));
CREATE TABLE members (ws_id INTEGER NOT NULL REFERENCES ws(id), user_id INTEGER NOT NULL REFERENCES users(id), role TEXT NOT NULL,
                      PRIMARY KEY (ws_id, user_id));
";

#[test]
fn a_cycle_between_two_shared_tables_exports_imports_and_verifies() {
    let w = Work::new();
    let src = w.db(
        "src.db",
        &format!(
            "{COMPANIES_SCHEMA}
             INSERT INTO ws VALUES (1, 'one'), (2, 'two');
             INSERT INTO users VALUES (1, 'a@x', NULL), (2, 'b@x', NULL), (3, 'c@x', NULL), (4, 'd@x', NULL), (5, 'e@x', NULL);
             INSERT INTO companies VALUES (1, 'Acme', 1), (2, 'Beta', 3), (3, 'Gamma', 5);
             UPDATE users SET company_id = 1 WHERE id IN (1, 2);
             UPDATE users SET company_id = 2 WHERE id = 3;
             UPDATE users SET company_id = 3 WHERE id = 5;
             INSERT INTO members VALUES (1, 1, 'owner'), (1, 2, 'member'), (1, 3, 'member'), (1, 4, 'guest'), (2, 5, 'owner');"
        ),
    );
    // The target knows Acme (without owner) and b@x (without company).
    let tgt = w.db(
        "tgt.db",
        &format!(
            "{COMPANIES_SCHEMA}
             INSERT INTO ws VALUES (1, 'target');
             INSERT INTO companies VALUES (1, 'Acme', NULL);
             INSERT INTO users VALUES (1, 'z@x', 1), (2, 'b@x', NULL);
             INSERT INTO members VALUES (1, 1, 'owner');"
        ),
    );
    let plan_out = plan(&w, &src, None, &["--format", "json"]);
    plan_out.ok();
    let p = plan_out.json();
    assert_eq!(plan_table(&p, "users")["role"], "referenced");
    assert_eq!(plan_table(&p, "companies")["role"], "referenced");

    let archive = w.path("one.orgport");
    let export = w.export(&src, None, Some("ws"), &["1"], &[], &archive);
    export.ok();
    assert!(!export.stderr.to_lowercase().contains("circular"), "{}", export.stderr);
    let (_, decoded) = archive_rows(&archive);
    assert_eq!(decoded["users"].len(), 4, "the members of workspace 1");
    assert_eq!(decoded["companies"].len(), 2, "Acme and Beta, not Gamma");

    let before = snapshot(&tgt);
    let report = w.import_json(&tgt, None, &archive);
    let new: i64 = new_org(&report).parse().unwrap();
    w.verify(&tgt, None, &archive, &[&new.to_string()]).ok();
    assert_eq!(
        (report["tables"]["users"]["created"].clone(), report["tables"]["users"]["matched"].clone()),
        (3.into(), 1.into()),
        "{report}"
    );
    assert_eq!(
        (report["tables"]["companies"]["created"].clone(), report["tables"]["companies"]["matched"].clone()),
        (1.into(), 1.into()),
        "{report}"
    );

    let conn = open(&tgt);
    let users = rows(&conn, "SELECT u.email, c.name FROM users u LEFT JOIN companies c ON c.id = u.company_id ORDER BY u.email", &[]);
    assert_eq!(
        users,
        vec![
            vec![Cell::text("a@x"), Cell::text("Acme")],
            vec![Cell::text("b@x"), Cell::Null], // matched: as the target had it
            vec![Cell::text("c@x"), Cell::text("Beta")],
            vec![Cell::text("d@x"), Cell::Null],
            vec![Cell::text("z@x"), Cell::text("Acme")],
        ]
    );
    let companies = rows(&conn, "SELECT c.name, u.email FROM companies c LEFT JOIN users u ON u.id = c.owner_id ORDER BY c.name", &[]);
    assert_eq!(
        companies,
        vec![vec![Cell::text("Acme"), Cell::Null], vec![Cell::text("Beta"), Cell::text("c@x")]],
        "Acme was matched (unchanged), Beta created with its owner's new key"
    );
    let members =
        rows(&conn, "SELECT u.email, m.role FROM members m JOIN users u ON u.id = m.user_id WHERE m.ws_id = ?1 ORDER BY u.email", &[&new]);
    assert_eq!(
        members,
        vec![
            vec![Cell::text("a@x"), Cell::text("owner")],
            vec![Cell::text("b@x"), Cell::text("member")],
            vec![Cell::text("c@x"), Cell::text("member")],
            vec![Cell::text("d@x"), Cell::text("guest")],
        ]
    );
    let added = assert_only_added(&before, &snapshot(&tgt));
    assert_eq!((added["users"].len(), added["companies"].len(), added["members"].len()), (3, 1, 4));
    no_foreign_key_violations(&tgt);
}

// ---------------------------------------------------------------------------------------------
// 6. A whole-table sensitive group is never printed
// ---------------------------------------------------------------------------------------------

/// The example configuration with `api_tokens` as a whole table in the `secrets` group.
fn table_group_config() -> String {
    let text = example_config_text();
    let out = text.replace(r#"secrets = ["api_tokens.token"]"#, r#"secrets = ["api_tokens"]"#);
    assert_ne!(out, text, "test setup: the example configuration changed");
    out
}

fn tokens(db: &Path, sql: &str) -> Vec<String> {
    rows(&open(db), sql, &[]).into_iter().map(|r| r[0].as_str().to_string()).collect()
}

#[track_caller]
fn assert_not_shown(out: &Out, secrets: &[String], what: &str) {
    assert!(!secrets.is_empty(), "test setup: secrets to look for");
    for s in secrets {
        assert!(
            !out.stdout.contains(s.as_str()) && !out.stderr.contains(s.as_str()),
            "{what} shows the secret {s}:\nstdout:\n{}\nstderr:\n{}",
            out.stdout,
            out.stderr
        );
    }
}

#[test]
fn a_whole_table_sensitive_group_is_never_printed() {
    let w = Work::new();
    let db = example_source(&w);
    let source_tokens = tokens(&db, "SELECT token FROM api_tokens");
    assert!(source_tokens.len() >= 6, "test setup: tokens to look for");
    let regenerate = w.config("table-group.toml", &table_group_config());
    let plan_out = w.run(&["plan", "--db", &url(&db), "--config", &regenerate.display().to_string(), "--format", "json"]);
    plan_out.ok();
    assert_eq!(plan_table(&plan_out.json(), "api_tokens")["group"], "secrets");

    // Cloned into the same database, the tokens are regenerated: neither the old nor the new
    // values may be printed.
    let archive = w.path("org-1.orgport");
    w.export(&db, Some(&regenerate), None, &["1"], &["--with", "secrets"], &archive).ok();
    let (_, decoded) = archive_rows(&archive);
    assert_eq!(decoded["api_tokens"].len(), 2, "`--with secrets` carries the table");
    let out = w.import(&db, Some(&regenerate), &archive, &["--json"]);
    out.ok();
    let new: i64 = new_org(&out.json()).parse().unwrap();
    let new_tokens = tokens(&db, &format!("SELECT token FROM api_tokens WHERE workspace_id = {new}"));
    assert_eq!(new_tokens.len(), 2);
    for t in &new_tokens {
        assert!(!source_tokens.contains(t), "the clone's token {t} must be regenerated");
    }
    assert_not_shown(&out, &source_tokens, "import (regenerate)");
    assert_not_shown(&out, &new_tokens, "import (regenerate)");
    let renamed: Vec<serde_json::Value> =
        out.json()["renamed"].as_array().unwrap().iter().filter(|r| r["table"] == "api_tokens").cloned().collect();
    assert_eq!(renamed.len(), 2, "{}", out.stdout);
    for r in &renamed {
        assert!(r["from"].is_null() && r["to"].is_null(), "a regenerated secret is reported in clear: {r}");
    }
    // Text output too.
    let text = w.import(&db, Some(&regenerate), &archive, &[]);
    text.ok();
    assert_not_shown(&text, &source_tokens, "import (text)");
    let v = w.verify(&db, Some(&regenerate), &archive, &[&new.to_string()]);
    v.ok();
    assert_not_shown(&v, &source_tokens, "verify");

    // With the default policy (`fail`), the conflicts name the table and column, not the values.
    let fail = w.config("fail.toml", &table_group_config().replace("\"api_tokens.token\" = \"regenerate\"\n", ""));
    assert!(!std::fs::read_to_string(&fail).unwrap().contains("api_tokens.token"), "test setup");
    let archive = w.path("org-1-fail.orgport");
    w.export(&db, Some(&fail), None, &["1"], &["--with", "secrets"], &archive).ok();
    let before = bytes(&db);
    let all_tokens = tokens(&db, "SELECT token FROM api_tokens");
    for extra in [&[][..], &["--json"][..], &["--dry-run"][..]] {
        let out = w.import(&db, Some(&fail), &archive, extra);
        out.fails_with(&["api_tokens", "token"]);
        assert_not_shown(&out, &all_tokens, "a conflict error");
        assert_same_bytes(&db, &before);
    }
}

/// `verify` on a target where a sensitive value was changed reports the difference but neither
/// value, for a sensitive column and for any column of a sensitive table. (The token's
/// `regenerate` policy is dropped here: `verify` does not compare columns that may have been
/// regenerated.)
#[test]
fn verify_does_not_print_changed_sensitive_values() {
    let w = Work::new();
    let src = example_source(&w);
    let no_regenerate = |text: String| {
        let out = text.replace("\"api_tokens.token\" = \"regenerate\"\n", "");
        assert!(!out.contains("\"api_tokens.token\" =") && out != text, "test setup: {out}");
        out
    };
    let column_group = w.config("column-group.toml", &no_regenerate(example_config_text()));
    let table_group = w.config("table-group.toml", &no_regenerate(table_group_config()));
    let verify_json = |tgt: &Path, config: &Path, archive: &Path, org: i64| {
        w.run(&[
            "verify".to_string(),
            "--db".into(),
            url(tgt),
            "--config".into(),
            config.display().to_string(),
            "--in".into(),
            archive.display().to_string(),
            "--org".into(),
            org.to_string(),
            "--json".into(),
        ])
    };
    for (i, config) in [column_group, table_group].iter().enumerate() {
        let tgt = w.example(
            &format!("target-{i}.db"),
            &ExampleOptions { orgs: 2, first_org: 100, seed: 7, tasks_per_project: 3, ..ExampleOptions::default() },
        );
        let archive = w.path(&format!("org-1-{i}.orgport"));
        w.export(&src, Some(config), None, &["1"], &["--with", "secrets"], &archive).ok();
        let new: i64 = new_org(&w.import_json(&tgt, Some(config), &archive)).parse().unwrap();
        w.verify(&tgt, Some(config), &archive, &[&new.to_string()]).ok();
        let conn = open(&tgt);
        let (id, old) = {
            let r = rows(&conn, "SELECT id, token FROM api_tokens WHERE workspace_id = ?1 ORDER BY id LIMIT 1", &[&new]);
            (r[0][0].clone(), r[0][1].as_str().to_string())
        };
        assert!(
            tokens(&src, "SELECT token FROM api_tokens WHERE workspace_id = 1").contains(&old),
            "test setup: the token travelled as it was"
        );
        let changed = "tok_CHANGEDxCHANGEDxCHANGEDxCHANGEDx".to_string();
        conn.execute("UPDATE api_tokens SET token = ?1 WHERE id = ?2", (&changed, &id)).unwrap();
        let out = w.verify(&tgt, Some(config), &archive, &[&new.to_string()]);
        out.fails_with(&[]);
        assert!(out.stdout.contains("api_tokens") || out.stderr.contains("api_tokens"), "{}\n{}", out.stdout, out.stderr);
        assert_not_shown(&out, &[old.clone(), changed.clone()], "verify");
        let json = verify_json(&tgt, config, &archive, new);
        assert_eq!(json.code, 1, "{}\n{}", json.stdout, json.stderr);
        assert_not_shown(&json, &[old.clone(), changed], "verify --json");
        conn.execute("UPDATE api_tokens SET token = ?1 WHERE id = ?2", (&old, &id)).unwrap();
        w.verify(&tgt, Some(config), &archive, &[&new.to_string()]).ok();

        // In a sensitive table every column is sensitive: a changed expiry is not shown either.
        if i == 1 {
            let (id, old) = {
                let r = rows(&conn, "SELECT id, expires_at FROM api_tokens WHERE workspace_id = ?1 AND expires_at IS NOT NULL", &[&new]);
                (r[0][0].clone(), r[0][1].as_str().to_string())
            };
            let changed = "2999-01-02 03:04:05".to_string();
            conn.execute("UPDATE api_tokens SET expires_at = ?1 WHERE id = ?2", (&changed, &id)).unwrap();
            let out = w.verify(&tgt, Some(config), &archive, &[&new.to_string()]);
            out.fails_with(&[]);
            assert!(out.stdout.contains("api_tokens") || out.stderr.contains("api_tokens"), "{}\n{}", out.stdout, out.stderr);
            assert_not_shown(&out, &[old.clone(), changed.clone()], "verify");
            assert_not_shown(&verify_json(&tgt, config, &archive, new), &[old, changed], "verify --json");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Keys and references whose names look secret
// ---------------------------------------------------------------------------------------------

const TOKENS_SCHEMA: &str = "
CREATE TABLE ws (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE access_tokens (id INTEGER PRIMARY KEY, ws_id INTEGER NOT NULL REFERENCES ws(id), label TEXT NOT NULL, secret_token TEXT);
CREATE TABLE token_usages (id INTEGER PRIMARY KEY, ws_id INTEGER NOT NULL REFERENCES ws(id),
                           access_token_id INTEGER NOT NULL REFERENCES access_tokens(id), calls INTEGER NOT NULL);
CREATE TABLE api_key_scopes (api_key_id INTEGER NOT NULL REFERENCES access_tokens(id), scope TEXT NOT NULL, PRIMARY KEY (api_key_id, scope));
";

#[test]
fn keys_and_references_named_like_secrets_are_not_withheld() {
    let w = Work::new();
    let src = w.db(
        "src.db",
        &format!(
            "{TOKENS_SCHEMA}
             INSERT INTO ws VALUES (1, 'one'), (2, 'two');
             INSERT INTO access_tokens VALUES (1, 1, 'ci', 's3cr3t-one'), (2, 1, 'deploy', 's3cr3t-two'), (3, 2, 'other', 's3cr3t-three');
             INSERT INTO token_usages VALUES (1, 1, 2, 10), (2, 1, 1, 20), (3, 1, 2, 30), (4, 2, 3, 40);
             INSERT INTO api_key_scopes VALUES (1, 'read'), (2, 'write'), (2, 'read'), (3, 'read');"
        ),
    );
    let tgt = w.db(
        "tgt.db",
        &format!(
            "{TOKENS_SCHEMA}
             INSERT INTO ws VALUES (1, 'target');
             INSERT INTO access_tokens VALUES (1, 1, 'target', NULL), (2, 1, 'target 2', NULL);
             INSERT INTO token_usages VALUES (1, 1, 1, 5);
             INSERT INTO api_key_scopes VALUES (1, 'read');"
        ),
    );
    let out = plan(&w, &src, None, &["--format", "json"]);
    out.ok();
    let p = out.json();
    assert_eq!(sensitive_columns(&plan_table(&p, "access_tokens")), BTreeSet::from(["secret_token".to_string()]));
    assert_eq!(sensitive_columns(&plan_table(&p, "token_usages")), BTreeSet::new());
    assert_eq!(sensitive_columns(&plan_table(&p, "api_key_scopes")), BTreeSet::new());
    for x in p["warnings"].as_array().unwrap() {
        let m = x["message"].as_str().unwrap_or("");
        assert!(!m.contains("access_token_id") && !m.contains("api_key_id"), "a key is flagged as a secret: {x}");
    }

    let archive = w.path("one.orgport");
    w.export(&src, None, Some("ws"), &["1"], &[], &archive).ok();
    let m = w.manifest(&archive);
    for t in m["tables"].as_array().unwrap() {
        let withheld: BTreeSet<String> = t["withheld"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        let expected: BTreeSet<String> =
            if t["name"] == "access_tokens" { BTreeSet::from(["secret_token".to_string()]) } else { BTreeSet::new() };
        assert_eq!(withheld, expected, "table {}", t["name"]);
    }
    let before = snapshot(&tgt);
    let new: i64 = new_org(&w.import_json(&tgt, None, &archive)).parse().unwrap();
    w.verify(&tgt, None, &archive, &[&new.to_string()]).ok();
    let specs = vec![
        spec("ws", "SELECT * FROM ws WHERE id = ?1").fresh(&["id"]),
        spec("access_tokens", "SELECT * FROM access_tokens WHERE ws_id = ?1")
            .fresh(&["id"])
            .reference(&["ws_id"], "ws", &["id"])
            .ignore(&["secret_token"])
            .pair_by(&["label"]),
        spec("token_usages", "SELECT * FROM token_usages WHERE ws_id = ?1")
            .fresh(&["id"])
            .reference(&["ws_id"], "ws", &["id"])
            .reference(&["access_token_id"], "access_tokens", &["id"])
            .pair_by(&["calls"]),
        spec("api_key_scopes", "SELECT * FROM api_key_scopes WHERE api_key_id IN (SELECT id FROM access_tokens WHERE ws_id = ?1)")
            .reference(&["api_key_id"], "access_tokens", &["id"])
            .pair_by(&["api_key_id", "scope"]),
    ];
    let paired = assert_org_equal(&src, &Cell::Int(1), &tgt, &Cell::Int(new), &specs);
    assert_eq!((paired.pairs["token_usages"].len(), paired.pairs["api_key_scopes"].len()), (3, 3));
    for (_, t) in &paired.pairs["access_tokens"] {
        assert_eq!(t[paired.col("access_tokens", "secret_token")], Cell::Null, "the withheld secret_token becomes NULL");
    }
    let added = assert_only_added(&before, &snapshot(&tgt));
    assert_added_exactly(&added, &paired, &[]);
    no_foreign_key_violations(&tgt);

    // Naming a key or a reference under [sensitive] is refused by name.
    for column in ["token_usages.access_token_id", "api_key_scopes.api_key_id", "access_tokens.id"] {
        let config = w.config("bad.toml", &format!("root = \"ws\"\n[sensitive]\nsecrets = [\"{column}\"]\n"));
        plan(&w, &src, Some(&config), &[]).fails_with(&[column]);
        let archive = w.path("bad.orgport");
        w.export(&src, Some(&config), None, &["1"], &[], &archive).fails_with(&[column]);
        assert!(!archive.exists());
    }
}

// ---------------------------------------------------------------------------------------------
// 9. Identifiers whose upper case has another length
// ---------------------------------------------------------------------------------------------

const UNICODE_SCHEMA: &str = r#"
CREATE TABLE ws (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE t (id INTEGER PRIMARY KEY, "ıı" TEXT, w INTEGER REFERENCES ws(id));
CREATE TABLE v (id INTEGER PRIMARY KEY, "ıı" TEXT, wé REFERENCES ws(id));
CREATE TABLE "ŉﬀ" (id INTEGER PRIMARY KEY, "ﬀı" TEXT, t_id INTEGER NOT NULL REFERENCES t(id) DEFERRABLE INITIALLY DEFERRED,
                   w INTEGER NOT NULL REFERENCES ws(id));
"#;

#[test]
fn identifiers_whose_upper_case_changes_length_do_not_panic() {
    let w = Work::new();
    let src = w.db(
        "src.db",
        &format!(
            r#"{UNICODE_SCHEMA}
               INSERT INTO ws VALUES (1, 'one'), (2, 'two');
               INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 1), (3, 'c', 2);
               INSERT INTO "ŉﬀ" VALUES (1, 'x', 2, 1), (2, 'y', 3, 2);
               INSERT INTO v VALUES (1, 'p', 1), (2, 'q', 2), (3, 'r', 1);"#
        ),
    );
    for format in ["text", "json", "dot", "mermaid"] {
        let out = plan(&w, &src, None, &["--format", format]);
        assert!(!out.stderr.contains("panicked"), "plan --format {format} panicked:\n{}", out.stderr);
        out.ok();
    }
    let p = plan(&w, &src, None, &["--format", "json"]).json();
    assert_eq!(plan_table(&p, "t")["role"], "owned");
    assert_eq!(plan_table(&p, "ŉﬀ")["role"], "owned");
    assert_eq!(plan_table(&p, "v")["role"], "owned");

    // And the organisation moves.
    let tgt = w.db("tgt.db", &format!("{UNICODE_SCHEMA} INSERT INTO ws VALUES (1, 'target'); INSERT INTO t VALUES (1, 't', 1);"));
    let archive = w.path("one.orgport");
    w.export(&src, None, Some("ws"), &["1"], &[], &archive).ok();
    let new: i64 = new_org(&w.import_json(&tgt, None, &archive)).parse().unwrap();
    w.verify(&tgt, None, &archive, &[&new.to_string()]).ok();
    let specs = vec![
        spec("ws", "SELECT * FROM ws WHERE id = ?1").fresh(&["id"]),
        spec("t", "SELECT * FROM t WHERE w = ?1").fresh(&["id"]).reference(&["w"], "ws", &["id"]).pair_by(&["ıı"]),
        spec("ŉﬀ", r#"SELECT * FROM "ŉﬀ" WHERE w = ?1"#)
            .fresh(&["id"])
            .reference(&["t_id"], "t", &["id"])
            .reference(&["w"], "ws", &["id"])
            .pair_by(&["ﬀı"]),
        spec("v", r#"SELECT * FROM v WHERE "wé" = ?1"#).fresh(&["id"]).reference(&["wé"], "ws", &["id"]).pair_by(&["ıı"]),
    ];
    let paired = assert_org_equal(&src, &Cell::Int(1), &tgt, &Cell::Int(new), &specs);
    assert_eq!((paired.pairs["t"].len(), paired.pairs["ŉﬀ"].len(), paired.pairs["v"].len()), (2, 1, 2));
}

// ---------------------------------------------------------------------------------------------
// 10. A kept table without a primary key
// ---------------------------------------------------------------------------------------------

const COUNTRIES_SCHEMA: &str = "
CREATE TABLE ws (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE countries (code TEXT NOT NULL UNIQUE, name TEXT);
CREATE TABLE addresses (id INTEGER PRIMARY KEY, ws_id INTEGER NOT NULL REFERENCES ws(id),
                        country_code TEXT NOT NULL REFERENCES countries(code), city TEXT NOT NULL);
";

#[test]
fn a_kept_table_without_primary_key_is_found_by_its_unique_column() {
    let w = Work::new();
    let config = w.config("keep.toml", "root = \"ws\"\nkeep = [\"countries\"]\n");
    let src = w.db(
        "src.db",
        &format!(
            "{COUNTRIES_SCHEMA}
             INSERT INTO ws VALUES (1, 'one'), (2, 'two');
             INSERT INTO countries VALUES ('FR', 'France'), ('DE', 'Germany'), ('IT', 'Italy');
             INSERT INTO addresses VALUES (1, 1, 'FR', 'Paris'), (2, 1, 'DE', 'Berlin'), (3, 1, 'FR', 'Lyon'), (4, 2, 'IT', 'Rome');"
        ),
    );
    let out = plan(&w, &src, Some(&config), &["--format", "json"]);
    out.ok();
    let countries = plan_table(&out.json(), "countries");
    assert_eq!((countries["role"].clone(), countries["natural_key"].clone()), (serde_json::json!("keep"), serde_json::json!(["code"])));
    let archive = w.path("one.orgport");
    w.export(&src, Some(&config), None, &["1"], &[], &archive).ok();

    // The target has the rows (under other names): matched by code, left as they are.
    let tgt = w.db(
        "tgt.db",
        &format!(
            "{COUNTRIES_SCHEMA}
             INSERT INTO ws VALUES (1, 'target');
             INSERT INTO countries VALUES ('ES', 'España'), ('DE', 'Deutschland'), ('FR', 'Frankreich');
             INSERT INTO addresses VALUES (1, 1, 'ES', 'Madrid');"
        ),
    );
    let before = snapshot(&tgt);
    let report = w.import_json(&tgt, Some(&config), &archive);
    let new: i64 = new_org(&report).parse().unwrap();
    w.verify(&tgt, Some(&config), &archive, &[&new.to_string()]).ok();
    let added = assert_only_added(&before, &snapshot(&tgt));
    assert!(added["countries"].is_empty(), "kept rows are never created: {:?}", added["countries"]);
    let specs = vec![
        spec("ws", "SELECT * FROM ws WHERE id = ?1").fresh(&["id"]),
        spec("addresses", "SELECT * FROM addresses WHERE ws_id = ?1")
            .fresh(&["id"])
            .reference(&["ws_id"], "ws", &["id"])
            .pair_by(&["city"]),
    ];
    let paired = assert_org_equal(&src, &Cell::Int(1), &tgt, &Cell::Int(new), &specs);
    assert_added_exactly(&added, &paired, &[]);
    assert_eq!(
        rows(&open(&tgt), "SELECT city, country_code FROM addresses WHERE ws_id = ?1 ORDER BY city", &[&new]),
        vec![
            vec![Cell::text("Berlin"), Cell::text("DE")],
            vec![Cell::text("Lyon"), Cell::text("FR")],
            vec![Cell::text("Paris"), Cell::text("FR")],
        ]
    );
    no_foreign_key_violations(&tgt);

    // A target without France: refused before writing, naming the table and the code.
    let bad = w.db(
        "bad.db",
        &format!(
            "{COUNTRIES_SCHEMA} INSERT INTO ws VALUES (1, 'target'); INSERT INTO countries VALUES ('DE', 'Deutschland'), ('ES', 'España');"
        ),
    );
    let before = bytes(&bad);
    for extra in [&[][..], &["--dry-run"][..]] {
        let out = w.import(&bad, Some(&config), &archive, extra);
        out.fails_with(&["countries", "FR"]);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        assert_same_bytes(&bad, &before);
    }
}

// ---------------------------------------------------------------------------------------------
// 11. A NOT NULL forward reference to a suffixed unique key
// ---------------------------------------------------------------------------------------------

const MAIN_PROJECT_SCHEMA: &str = "
CREATE TABLE ws (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
                 main_project_code TEXT NOT NULL REFERENCES projects(code) DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE projects (id INTEGER PRIMARY KEY, ws_id INTEGER NOT NULL REFERENCES ws(id), code TEXT NOT NULL UNIQUE, title TEXT NOT NULL);
";

#[test]
fn a_not_null_forward_reference_follows_the_suffixed_code_of_its_own_project() {
    let w = Work::new();
    let config = w.config("suffix.toml", "root = \"ws\"\n[on_conflict]\n\"projects.code\" = \"suffix\"\n");
    let db = w.db(
        "db.db",
        &format!(
            "{MAIN_PROJECT_SCHEMA}
             BEGIN;
             INSERT INTO ws VALUES (1, 'one', 'beta'), (2, 'two', 'gamma');
             INSERT INTO projects VALUES (1, 1, 'alpha', 'Alpha'), (2, 1, 'beta', 'Beta'), (3, 2, 'gamma', 'Gamma');
             COMMIT;"
        ),
    );
    let archive = w.path("one.orgport");
    w.export(&db, Some(&config), None, &["1"], &[], &archive).ok();
    let original = snapshot(&db);
    let mut before = original.clone();
    for suffix in ["2", "3"] {
        let report = w.import_json(&db, Some(&config), &archive);
        let new: i64 = new_org(&report).parse().unwrap();
        w.verify(&db, Some(&config), &archive, &[&new.to_string()]).ok();
        let conn = open(&db);
        let main = rows(
            &conn,
            "SELECT w.main_project_code, p.ws_id, p.title FROM ws w LEFT JOIN projects p ON p.code = w.main_project_code WHERE w.id = ?1",
            &[&new],
        );
        assert_eq!(
            main,
            vec![vec![Cell::Text(format!("beta-{suffix}")), Cell::Int(new), Cell::text("Beta")]],
            "the new workspace's main project must be its own (suffixed) Beta"
        );
        assert_eq!(
            rows(&conn, "SELECT code FROM projects WHERE ws_id = ?1 ORDER BY code", &[&new]),
            vec![vec![Cell::Text(format!("alpha-{suffix}"))], vec![Cell::Text(format!("beta-{suffix}"))]]
        );
        let specs = vec![
            spec("ws", "SELECT * FROM ws WHERE id = ?1").fresh(&["id"]).reference(&["main_project_code"], "projects", &["code"]),
            spec("projects", "SELECT * FROM projects WHERE ws_id = ?1")
                .fresh(&["id"])
                .reference(&["ws_id"], "ws", &["id"])
                .ignore(&["code"])
                .pair_by(&["title"]),
        ];
        let paired = assert_org_equal(&db, &Cell::Int(1), &db, &Cell::Int(new), &specs);
        let after = snapshot(&db);
        let added = assert_only_added(&before, &after);
        assert_added_exactly(&added, &paired, &[]);
        before = after;
        no_foreign_key_violations(&db);
    }
    // The original workspaces are untouched.
    assert_only_added(&original, &before);
}

// ---------------------------------------------------------------------------------------------
// 12. Shared rows the import creates (found by filling Gisia's schema: its CI runners)
// ---------------------------------------------------------------------------------------------

/// Runners are shared and have no natural key, so an import creates them; their machines are
/// shared too, with a natural key that holds the runner. Verify used to leave created runners
/// unpaired (every build then differed "in its references") and to look machines up by the
/// source's runner key, finding the original machines.
#[test]
fn verify_pairs_the_shared_rows_an_import_created() {
    let w = Work::new();
    let db = w.db(
        "runners.db",
        "CREATE TABLE orgs (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE runners (id INTEGER PRIMARY KEY, description TEXT);
         CREATE TABLE runner_machines (id INTEGER PRIMARY KEY, runner_id INTEGER NOT NULL REFERENCES runners,
                                       system_xid TEXT NOT NULL, UNIQUE (runner_id, system_xid));
         CREATE TABLE builds (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES orgs,
                              runner_id INTEGER REFERENCES runners, machine_id INTEGER REFERENCES runner_machines);
         INSERT INTO orgs VALUES (1, 'acme');
         INSERT INTO runners VALUES (1, 'shared runner'), (2, 'other runner');
         INSERT INTO runner_machines VALUES (1, 1, 'xid-a'), (2, 2, 'xid-a');
         INSERT INTO builds VALUES (1, 1, 1, 1), (2, 1, 2, 2), (3, 1, 1, NULL);",
    );
    let config = w.config("runners.toml", "root = \"orgs\"\n");
    let archive = w.path("org.orgport");
    w.export(&db, Some(&config), None, &["1"], &[], &archive).ok();
    let report = w.import_json(&db, Some(&config), &archive);
    assert_eq!(report["tables"]["runners"]["created"], 2);
    assert_eq!(report["tables"]["runner_machines"]["created"], 2, "machines of created runners are created too");
    let org = new_org(&report);
    w.verify(&db, Some(&config), &archive, &[&org]).ok();

    // And verify still notices a build moved to another runner.
    let conn = open(&db);
    conn.execute("UPDATE builds SET runner_id = (SELECT runner_id FROM builds WHERE id = 2) WHERE org_id = ?1 AND id = (SELECT min(id) FROM builds WHERE org_id = ?1)", [&org])
        .unwrap();
    let out = w.verify(&db, Some(&config), &archive, &[&org]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("table `builds`: archive row 1 differs from its target row in its references"), "{}", out.stdout);
}

// ---------------------------------------------------------------------------------------------
// 13. Organisations alike in everything but their keys (found by exporting two generated Lago
//     organisations, one a copy of the other, in one archive)
// ---------------------------------------------------------------------------------------------

/// Verify paired the root's rows by content, which leaves out keys and suffixed values: alike
/// organisations could pair with one another's copies, and every row then paired by position
/// (integer keys) "differed in its references". The root's rows pair by the `--org` mapping.
#[test]
fn alike_organisations_pair_with_their_own_copies() {
    let w = Work::new();
    let mut sql = String::from(
        "CREATE TABLE orgs (id TEXT PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL);
         CREATE TABLE tasks (id INTEGER PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs, title TEXT NOT NULL);",
    );
    let orgs: Vec<String> = (1..=6).map(|i| format!("org-{i}")).collect();
    for (i, org) in orgs.iter().enumerate() {
        sql.push_str(&format!(
            "INSERT INTO orgs VALUES ('{org}', 'acme-{i}', 'Acme'); INSERT INTO tasks (org_id, title) VALUES ('{org}', 'plan');"
        ));
    }
    let db = w.db("alike.db", &sql);
    let config = w.config("alike.toml", "root = \"orgs\"\n[on_conflict]\n\"orgs.slug\" = \"suffix\"\n");
    let archive = w.path("alike.orgport");
    let keys: Vec<&str> = orgs.iter().map(String::as_str).collect();
    w.export(&db, Some(&config), None, &keys, &[], &archive).ok();
    let report = w.import_json(&db, Some(&config), &archive);
    let copies: Vec<String> =
        report["orgs"].as_array().expect("orgs").iter().map(|o| o["target"].as_str().expect("text key").to_string()).collect();
    let copies: Vec<&str> = copies.iter().map(String::as_str).collect();
    w.verify(&db, Some(&config), &archive, &copies).ok();
    // The mapping is what pairs them: the copies named in another order are not the archive's.
    let mut rotated = copies.clone();
    rotated.rotate_left(1);
    let out = w.verify(&db, Some(&config), &archive, &rotated);
    assert_eq!(out.code, 1, "{out:?}");
}

// ---------------------------------------------------------------------------------------------
// 14. Shared rows an import creates in an instance that lacks them (found by importing a
//     generated Flagsmith organisation into an empty instance)
// ---------------------------------------------------------------------------------------------

/// A created shared row kept its natural key only where that key was not its primary key: a
/// permission whose primary key is its code got a new code, which no later import (nor
/// verify) found. And a polymorphic reference named by a type row (a Django content type) was
/// tested against the target's type rows as they were before the import: where the import
/// created the type row, no row held the reference and its ids were copied unchanged.
#[test]
fn shared_rows_created_by_the_import_keep_what_identifies_them() {
    let w = Work::new();
    let schema = "CREATE TABLE orgs (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE permissions (code TEXT PRIMARY KEY, description TEXT NOT NULL);
         CREATE TABLE kinds (id INTEGER PRIMARY KEY, app TEXT NOT NULL, model TEXT NOT NULL, UNIQUE (app, model));
         CREATE TABLE features (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES orgs, name TEXT NOT NULL);
         CREATE TABLE grants (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES orgs, permission TEXT NOT NULL REFERENCES permissions);
         CREATE TABLE notes (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES orgs, kind_id INTEGER NOT NULL REFERENCES kinds,
                             object_id INTEGER NOT NULL, body TEXT NOT NULL);";
    let source = w.db(
        "source.db",
        &format!(
            "{schema}
             INSERT INTO orgs VALUES (1, 'acme');
             INSERT INTO permissions VALUES ('VIEW_PROJECT', 'may view');
             INSERT INTO kinds VALUES (7, 'features', 'feature'), (8, 'segments', 'segment');
             INSERT INTO features VALUES (40, 1, 'dark mode');
             INSERT INTO grants VALUES (1, 1, 'VIEW_PROJECT');
             INSERT INTO notes VALUES (1, 1, 7, 40, 'on a feature'), (2, 1, 8, 40, 'of another kind: kept as is');"
        ),
    );
    let config = w.config(
        "kinds.toml",
        "root = \"orgs\"\n[[reference]]\nfrom = \"notes.object_id\"\nto = \"features.id\"\nwhen = { kind_id = { app = \"features\", model = \"feature\" } }\n",
    );
    let archive = w.path("org.orgport");
    w.export(&source, Some(&config), None, &["1"], &[], &archive).ok();

    let target =
        w.db("target.db", &format!("{schema} INSERT INTO orgs VALUES (1, 'other'); INSERT INTO features VALUES (1, 1, 'other feature');"));
    let report = w.import_json(&target, Some(&config), &archive);
    assert_eq!(report["tables"]["permissions"]["created"], 1);
    assert_eq!(report["tables"]["kinds"]["created"], 2);
    let org = new_org(&report);
    w.verify(&target, Some(&config), &archive, &[&org]).ok();
    let conn = open(&target);
    assert_eq!(one(&conn, "SELECT permission FROM grants WHERE org_id = ?1", &[&org]), Cell::text("VIEW_PROJECT"));
    let noted = rows(
        &conn,
        "SELECT k.model, n.object_id = (SELECT id FROM features WHERE org_id = n.org_id) FROM notes n JOIN kinds k ON k.id = n.kind_id
         WHERE n.org_id = ?1 ORDER BY n.id",
        &[&org],
    );
    assert_eq!(noted, vec![vec![Cell::text("feature"), Cell::Int(1)], vec![Cell::text("segment"), Cell::Int(0)]]);

    // A second copy finds what the first created.
    let again = w.import_json(&target, Some(&config), &archive);
    assert_eq!((again["tables"]["permissions"]["matched"].as_i64(), again["tables"]["kinds"]["matched"].as_i64()), (Some(1), Some(2)));
    w.verify(&target, Some(&config), &archive, &[&new_org(&again)]).ok();
}
