//! Schema shapes: composite keys, a 10 000-deep self-reference, the root ↔ projects cycle, a
//! table without a primary key, cross-tenant references, and the plan in every format.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use orgport_core::value::Value;
use orgport_testkit::example::ExampleOptions;

use crate::util::*;

fn small_target(w: &Work) -> PathBuf {
    w.example("target.db", &ExampleOptions { orgs: 2, first_org: 100, seed: 7, tasks_per_project: 4, ..ExampleOptions::default() })
}

/// Exports `org` of `src` with the example configuration, imports it into `tgt`, verifies with
/// the CLI, and returns the new key and the field-by-field pairing.
fn move_org(w: &Work, src: &std::path::Path, tgt: &std::path::Path, org: i64, name: &str) -> (i64, Paired, Out, serde_json::Value) {
    let config = example_config();
    let archive = w.path(name);
    let export = w.export(src, Some(&config), None, &[&org.to_string()], &[], &archive);
    export.ok();
    let before = snapshot(tgt);
    let report = w.import_json(tgt, Some(&config), &archive);
    let new: i64 = new_org(&report).parse().unwrap();
    w.verify(tgt, Some(&config), &archive, &[&new.to_string()]).ok();
    let paired = assert_org_equal(src, &Cell::Int(org), tgt, &Cell::Int(new), &example_specs());
    let added = assert_only_added(&before, &snapshot(tgt));
    let created = report["tables"]["users"]["created"].as_u64().unwrap() as usize;
    assert_added_exactly(&added, &paired, &[("users", created)]);
    (new, paired, export, report)
}

#[test]
fn composite_keys_are_rewritten_consistently() {
    let w = Work::new();
    let src = w.example("source.db", &ExampleOptions { tasks_per_project: 12, ..ExampleOptions::default() });
    let tgt = small_target(&w);
    let (new, paired, _, _) = move_org(&w, &src, &tgt, 2, "org-2.orgport");
    assert!(paired.pairs["task_labels"].len() > 20, "test setup: task labels to move");
    let conn = open(&tgt);
    // Every task label points at a label of the task's own (new) project, in the new workspace.
    let bad = count(
        &conn,
        "SELECT count(*) FROM task_labels tl JOIN tasks t ON t.id = tl.task_id JOIN projects p ON p.id = t.project_id \
         WHERE p.workspace_id = ?1 AND (tl.project_id <> t.project_id OR NOT EXISTS \
           (SELECT 1 FROM labels l WHERE l.project_id = tl.project_id AND l.name = tl.label_name))",
        &[&new],
    );
    assert_eq!(bad, 0, "task labels of the new workspace point at labels of another project");
    let new_labels =
        count(&conn, "SELECT count(*) FROM labels WHERE project_id IN (SELECT id FROM projects WHERE workspace_id = ?1)", &[&new]);
    assert_eq!(new_labels as usize, paired.pairs["labels"].len());
    // The key parts that are not references (label names) are kept as they were.
    let name = paired.col("labels", "name");
    for (s, t) in &paired.pairs["labels"] {
        assert_eq!(s[name], t[name]);
    }
    let fk = rows(&conn, "PRAGMA foreign_key_check", &[]);
    assert!(fk.is_empty(), "foreign keys broken on the target: {fk:?}");
}

#[test]
fn a_self_reference_chain_10000_deep_round_trips_and_verifies() {
    let w = Work::new();
    let src = w.example(
        "deep.db",
        &ExampleOptions { orgs: 2, tasks_per_project: 3, projects_per_org: 2, chain_depth: 10_000, ..ExampleOptions::default() },
    );
    let tgt = w.example(
        "target.db",
        &ExampleOptions {
            orgs: 1,
            first_org: 7,
            seed: 7,
            tasks_per_project: 5,
            projects_per_org: 2,
            chain_depth: 50,
            ..ExampleOptions::default()
        },
    );
    let (new, paired, _, report) = move_org(&w, &src, &tgt, 1, "deep.orgport");
    assert!(paired.pairs["tasks"].len() >= 10_000);
    assert_eq!(report["tables"]["tasks"]["created"].as_u64().unwrap() as usize, paired.pairs["tasks"].len());
    // Walk the new chain from its head: 10 000 steps, in order, each the child of the one before.
    let conn = open(&tgt);
    let chain = rows(
        &conn,
        "WITH RECURSIVE chain(id, title, depth) AS ( \
           SELECT t.id, t.title, 1 FROM tasks t JOIN projects p ON p.id = t.project_id \
            WHERE p.workspace_id = ?1 AND t.title = 'Chain step 1' AND t.parent_id IS NULL \
           UNION ALL SELECT t.id, t.title, c.depth + 1 FROM tasks t JOIN chain c ON t.parent_id = c.id) \
         SELECT title, depth FROM chain ORDER BY depth",
        &[&new],
    );
    assert_eq!(chain.len(), 10_000, "the chain is broken on the target");
    for (i, row) in chain.iter().enumerate() {
        assert_eq!(row[0], Cell::Text(format!("Chain step {}", i + 1)), "step {}", i + 1);
    }
}

#[test]
fn the_root_project_cycle_points_at_the_new_default_project() {
    let w = Work::new();
    let src = w.example("source.db", &ExampleOptions { tasks_per_project: 4, ..ExampleOptions::default() });
    let tgt = small_target(&w);
    for org in [1, 3] {
        let (new, paired, _, _) = move_org(&w, &src, &tgt, org, &format!("org-{org}.orgport"));
        let conn_s = open(&src);
        let conn_t = open(&tgt);
        let default_s =
            one(&conn_s, "SELECT p.name FROM workspaces w JOIN projects p ON p.id = w.default_project_id WHERE w.id = ?1", &[&org]);
        let (owner, name) = {
            let r = rows(
                &conn_t,
                "SELECT p.workspace_id, p.name FROM workspaces w JOIN projects p ON p.id = w.default_project_id WHERE w.id = ?1",
                &[&new],
            );
            assert_eq!(r.len(), 1, "the new workspace has no default project");
            (r[0][0].clone(), r[0][1].clone())
        };
        assert_eq!(owner, Cell::Int(new), "the default project must be the new workspace's own");
        assert_eq!(name, default_s);
        // And it is not the source's project id reused by accident.
        let old_id = one(&conn_s, "SELECT default_project_id FROM workspaces WHERE id = ?1", &[&org]);
        let new_id = one(&conn_t, "SELECT default_project_id FROM workspaces WHERE id = ?1", &[&new]);
        assert_eq!(paired.target_of("projects", "id", &old_id).map(|r| r[0].clone()), Some(new_id));
    }
}

#[test]
fn a_table_without_primary_key_keeps_its_duplicate_rows() {
    let w = Work::new();
    let src = w.example("source.db", &ExampleOptions { tasks_per_project: 3, ..ExampleOptions::default() });
    let tgt = small_target(&w);
    let (new, paired, _, _) = move_org(&w, &src, &tgt, 1, "org-1.orgport");
    assert_eq!(paired.pairs["event-log"].len(), 5);
    let conn = open(&tgt);
    let dupes = rows(
        &conn,
        "SELECT kind, payload, count(*) FROM \"event-log\" WHERE workspace_id = ?1 GROUP BY kind, payload HAVING count(*) > 1",
        &[&new],
    );
    assert_eq!(dupes, vec![vec![Cell::text("plan.changed"), Cell::text(r#"{"from":"free","to":"team"}"#), Cell::Int(2)]]);
    // NULL and '' stay apart.
    assert_eq!(count(&conn, "SELECT count(*) FROM \"event-log\" WHERE workspace_id = ?1 AND kind IS NULL", &[&new]), 1);
    assert_eq!(count(&conn, "SELECT count(*) FROM \"event-log\" WHERE workspace_id = ?1 AND kind = ''", &[&new]), 1);
}

#[test]
fn a_cross_tenant_reference_is_cut_reported_and_not_followed() {
    let w = Work::new();
    let src = w.example("source.db", &ExampleOptions { tasks_per_project: 3, ..ExampleOptions::default() });
    let tgt = small_target(&w);
    let conn_s = open(&src);
    let org1_cards: BTreeSet<i64> =
        rows(&conn_s, "SELECT id FROM gift_cards WHERE workspace_id = 1", &[]).iter().map(|r| r[0].as_i64()).collect();
    let crossing = count(
        &conn_s,
        "SELECT count(*) FROM redemptions r JOIN gift_cards g ON g.id = r.gift_card_id WHERE r.workspace_id = 2 AND g.workspace_id = 1",
        &[],
    );
    assert_eq!(crossing, 1, "test setup");

    let (new, paired, export, report) = move_org(&w, &src, &tgt, 2, "org-2.orgport");
    // Reported on stderr at export…
    assert!(
        export.stderr.contains("redemptions") && export.stderr.contains("gift_card_id") && export.stderr.contains("cut"),
        "the cut is not reported at export:\n{}",
        export.stderr
    );
    // …in the manifest…
    let archive = w.path("org-2.orgport");
    let m = w.manifest(&archive);
    let cut = m["cut"].as_array().unwrap();
    assert_eq!(cut.len(), 1, "{cut:?}");
    assert_eq!(cut[0]["table"], "redemptions");
    assert_eq!(cut[0]["columns"], serde_json::json!(["gift_card_id"]));
    assert_eq!(cut[0]["to"], "gift_cards");
    assert_eq!(cut[0]["action"], "cut");
    assert_eq!(cut[0]["rows"], 1);
    // …and in the import report.
    assert!(report["cut"].as_array().unwrap().iter().any(|c| c["table"] == "redemptions" && c["rows"] == 1), "{report}");

    // The archive holds none of org 1's gift cards, and the reference is NULL.
    let (manifest, decoded) = archive_rows(&archive);
    let gc = manifest.tables.iter().find(|t| t.name == "gift_cards").unwrap();
    let (id, ws) = (gc.column_index("id").unwrap(), gc.column_index("workspace_id").unwrap());
    assert_eq!(decoded["gift_cards"].len(), 3);
    for row in &decoded["gift_cards"] {
        assert_eq!(row[ws], Value::Int(2), "a gift card of another workspace travelled: {row:?}");
        if let Value::Int(i) = row[id] {
            assert!(!org1_cards.contains(&i));
        }
    }
    let rd = manifest.tables.iter().find(|t| t.name == "redemptions").unwrap();
    let (card, amount) = (rd.column_index("gift_card_id").unwrap(), rd.column_index("amount_cents").unwrap());
    let cross: Vec<&Vec<Value>> = decoded["redemptions"].iter().filter(|r| r[amount] == Value::Int(5000)).collect();
    assert_eq!(cross.len(), 1);
    assert_eq!(cross[0][card], Value::Null, "the cross-tenant reference must be cut in the archive");
    // On the target: cut (the comparison expected NULL exactly there) and no card of org 1 was
    // copied into the new workspace.
    assert_eq!(paired.cuts, vec!["redemptions.gift_card_id".to_string()]);
    let conn_t = open(&tgt);
    assert_eq!(count(&conn_t, "SELECT count(*) FROM gift_cards WHERE workspace_id = ?1", &[&new]), 3);
    assert_eq!(
        count(
            &conn_t,
            "SELECT count(*) FROM redemptions WHERE workspace_id = ?1 AND amount_cents = 5000 AND gift_card_id IS NULL",
            &[&new]
        ),
        1
    );
}

const LEFT_OUT_SCHEMA: &str = "
CREATE TABLE ws (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE cards (id INTEGER PRIMARY KEY, ws_id INTEGER NOT NULL REFERENCES ws(id), code TEXT NOT NULL);
CREATE TABLE uses (id INTEGER PRIMARY KEY, ws_id INTEGER NOT NULL REFERENCES ws(id), card_id INTEGER NOT NULL REFERENCES cards(id), amount INTEGER);
CREATE TABLE notes (id INTEGER PRIMARY KEY, ws_id INTEGER NOT NULL REFERENCES ws(id), use_id INTEGER REFERENCES uses(id), body TEXT);
";

#[test]
fn a_not_null_cross_tenant_reference_leaves_the_row_out_and_cuts_what_points_at_it() {
    let w = Work::new();
    let src = w.db(
        "src.db",
        &format!(
            "{LEFT_OUT_SCHEMA}
             INSERT INTO ws VALUES (1, 'one'), (2, 'two');
             INSERT INTO cards VALUES (1, 1, 'C1'), (2, 2, 'C2');
             INSERT INTO uses VALUES (10, 2, 2, 100), (11, 2, 1, 200);
             INSERT INTO notes VALUES (20, 2, 10, 'own use'), (21, 2, 11, 'use of a foreign card'), (22, 2, NULL, 'no use');"
        ),
    );
    let tgt = w.db("tgt.db", &format!("{LEFT_OUT_SCHEMA} INSERT INTO ws VALUES (1, 'target'); INSERT INTO cards VALUES (1, 1, 'T1');"));
    let archive = w.path("two.orgport");
    let out = w.export(&src, None, Some("ws"), &["2"], &[], &archive);
    out.ok();
    assert!(out.stderr.contains("uses") && out.stderr.contains("left out"), "{}", out.stderr);
    let m = w.manifest(&archive);
    let cut: Vec<(String, String, u64)> = m["cut"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["table"].as_str().unwrap().to_string(), c["action"].as_str().unwrap().to_string(), c["rows"].as_u64().unwrap()))
        .collect();
    assert!(cut.contains(&("uses".into(), "left out".into(), 1)), "{cut:?}");
    assert!(cut.contains(&("notes".into(), "cut".into(), 1)), "{cut:?}");
    let (_, decoded) = archive_rows(&archive);
    assert_eq!(decoded["uses"].len(), 1, "the row pointing at another workspace's card must be left out");

    let before = snapshot(&tgt);
    let report = w.import_json(&tgt, None, &archive);
    let new = new_org(&report);
    w.verify(&tgt, None, &archive, &[&new]).ok();
    let conn = open(&tgt);
    let notes = rows(
        &conn,
        "SELECT n.body, u.amount FROM notes n LEFT JOIN uses u ON u.id = n.use_id WHERE n.ws_id = ?1 ORDER BY n.body",
        &[&new.parse::<i64>().unwrap()],
    );
    assert_eq!(
        notes,
        vec![
            vec![Cell::text("no use"), Cell::Null],
            vec![Cell::text("own use"), Cell::Int(100)],
            vec![Cell::text("use of a foreign card"), Cell::Null],
        ]
    );
    let added = assert_only_added(&before, &snapshot(&tgt));
    assert_eq!(added["uses"].len(), 1);
    assert_eq!(added["cards"].len(), 1);
    assert!(rows(&conn, "PRAGMA foreign_key_check", &[]).is_empty());
}

// ---------------------------------------------------------------------------------------------
// plan
// ---------------------------------------------------------------------------------------------

fn example_db(w: &Work) -> PathBuf {
    w.example("source.db", &ExampleOptions { tasks_per_project: 2, ..ExampleOptions::default() })
}

fn plan(w: &Work, db: &std::path::Path, format: &str, extra: &[&str]) -> Out {
    let mut args = vec![
        "plan".to_string(),
        "--db".into(),
        url(db),
        "--config".into(),
        example_config().display().to_string(),
        "--format".into(),
        format.into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    w.run(&args)
}

fn expected_roles() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("workspaces", "root"),
        ("projects", "owned"),
        ("labels", "owned"),
        ("tasks", "owned"),
        ("task_labels", "owned"),
        ("attachments", "owned"),
        ("api_tokens", "owned"),
        ("gift_cards", "owned"),
        ("redemptions", "owned"),
        ("memberships", "owned"),
        ("event-log", "owned"),
        ("users", "referenced"),
        ("plans", "keep"),
        ("otp_devices", "dependent"),
        ("audit_events", "excluded"),
        ("search_cache", "unrelated"),
    ])
}

#[test]
fn plan_json_classifies_every_table() {
    let w = Work::new();
    let db = example_db(&w);
    let out = plan(&w, &db, "json", &[]);
    out.ok();
    let p = out.json();
    assert_eq!(p["root"], "workspaces");
    assert_eq!(p["root_key"], "id");
    let tables: BTreeMap<String, serde_json::Value> =
        p["tables"].as_array().unwrap().iter().map(|t| (t["name"].as_str().unwrap().to_string(), t.clone())).collect();
    let roles: BTreeMap<&str, &str> = tables.iter().map(|(n, t)| (n.as_str(), t["role"].as_str().unwrap())).collect();
    assert_eq!(roles, expected_roles());
    assert_eq!(tables["users"]["natural_key"], serde_json::json!(["email"]));
    assert_eq!(tables["plans"]["natural_key"], serde_json::json!(["id"]));
    assert_eq!(tables["tasks"]["self_reference"]["from_columns"], serde_json::json!(["parent_id"]));
    assert_eq!(tables["tasks"]["depth"], 2);
    // Two paths to the root; which decides ownership and which is checked is the plan's choice.
    let paths_of = |t: &str| -> BTreeSet<String> {
        ["paths", "other_paths"]
            .iter()
            .filter_map(|k| tables[t][*k].as_array())
            .flatten()
            .map(|e| e["to"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(!tables["task_labels"]["paths"].as_array().unwrap().is_empty());
    assert_eq!(paths_of("task_labels"), BTreeSet::from(["labels".to_string(), "tasks".to_string()]));
    assert_eq!(paths_of("tasks"), BTreeSet::from(["projects".to_string()]));
    assert_eq!(paths_of("projects"), BTreeSet::from(["workspaces".to_string()]));
    assert_eq!(tables["users"]["sensitive"], serde_json::json!({"otp_secret": "otp", "password_hash": "passwords"}));
    assert_eq!(tables["otp_devices"]["group"], "otp");
    assert_eq!(tables["workspaces"]["on_conflict"], serde_json::json!({"slug": "suffix"}));
    // The cycle and the cross-tenant reference.
    let cycles = p["cycles"].as_array().unwrap();
    assert_eq!(cycles.len(), 1);
    let cyc: BTreeSet<&str> = cycles[0]["tables"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(cyc, BTreeSet::from(["projects", "workspaces"]));
    let cross: Vec<(String, String)> = p["cross_tenant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["from"].as_str().unwrap().to_string(), e["from_columns"][0].as_str().unwrap().to_string()))
        .collect();
    assert!(cross.contains(&("redemptions".into(), "gift_card_id".into())), "{cross:?}");
    // The configured reference is there, marked undeclared.
    let refs = p["references"].as_array().unwrap();
    assert!(refs.iter().any(|e| e["from"] == "audit_events" && e["declared"] == false), "{refs:?}");
    // Parents before children.
    let order: Vec<&str> = p["order"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    let at = |t: &str| order.iter().position(|x| *x == t).unwrap_or_else(|| panic!("{t} not in order {order:?}"));
    for (parent, child) in [
        ("plans", "workspaces"),
        ("workspaces", "memberships"),
        ("users", "memberships"),
        ("projects", "tasks"),
        ("tasks", "attachments"),
        ("labels", "task_labels"),
        ("tasks", "task_labels"),
    ] {
        assert!(at(parent) < at(child), "{parent} must come before {child}: {order:?}");
    }
    assert!(!order.contains(&"audit_events") && !order.contains(&"search_cache"), "{order:?}");
    assert_eq!(p["warnings"], serde_json::json!([]));
}

/// The lines of a section of the text plan, from its header to the next blank line.
fn section<'a>(text: &'a str, header: &str) -> Vec<&'a str> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(header));
    assert!(lines.next().is_some(), "no section {header:?} in:\n{text}");
    lines.take_while(|l| !l.trim().is_empty()).collect()
}

#[test]
fn plan_text_shows_the_tree_and_every_section() {
    let w = Work::new();
    let db = example_db(&w);
    let out = plan(&w, &db, "text", &[]);
    out.ok();
    let text = &out.stdout;
    assert!(text.starts_with("root: workspaces (key `id`)"), "{text}");
    let owned = section(text, "owned");
    for t in [
        "workspaces",
        "projects",
        "labels",
        "tasks",
        "task_labels",
        "attachments",
        "api_tokens",
        "gift_cards",
        "redemptions",
        "memberships",
        "event-log",
    ] {
        assert!(owned.iter().any(|l| l.trim_start().starts_with(&format!("{t} ")) || l.trim() == t), "`{t}` not owned in:\n{text}");
    }
    let tasks = owned.iter().find(|l| l.trim_start().starts_with("tasks ")).unwrap();
    assert!(tasks.contains("self-reference (parent_id → id)"), "{tasks}");
    let depth = |l: &str| l.len() - l.trim_start().len();
    let projects = owned.iter().find(|l| l.trim_start().starts_with("projects ")).unwrap();
    assert!(depth(tasks) > depth(projects), "tasks must be indented under projects:\n{text}");
    assert_eq!(section(text, "referenced"), vec!["  users  [match on email]"]);
    assert_eq!(section(text, "kept"), vec!["  plans  [match on id]"]);
    assert_eq!(section(text, "dependent"), vec!["  otp_devices  [group `otp`]"]);
    assert_eq!(section(text, "excluded"), vec!["  audit_events"]);
    assert_eq!(section(text, "unrelated"), vec!["  search_cache"]);
    let sensitive = section(text, "sensitive");
    assert!(sensitive.iter().any(|l| l.contains("users.password_hash") && l.contains("passwords")), "{sensitive:?}");
    let cycles = section(text, "cycles");
    assert!(cycles.iter().any(|l| l.contains("projects") && l.contains("workspaces")), "{cycles:?}");
    let cross = section(text, "references that may cross tenants");
    assert!(cross.iter().any(|l| l.contains("redemptions(gift_card_id) → gift_cards")), "{cross:?}");
    assert!(!text.contains("warning"), "{text}");
}

#[test]
fn plan_dot_and_mermaid_carry_the_same_classification() {
    let w = Work::new();
    let db = example_db(&w);
    let json = plan(&w, &db, "json", &[]);
    json.ok();
    let p = json.json();
    let references = p["references"].as_array().unwrap().len();
    let expected: BTreeMap<String, String> = expected_roles().into_iter().map(|(t, r)| (t.to_string(), r.to_string())).collect();

    let dot = plan(&w, &db, "dot", &[]);
    dot.ok();
    let d = &dot.stdout;
    assert!(d.starts_with("digraph") && d.trim_end().ends_with('}'), "{d}");
    let mut dot_roles = BTreeMap::new();
    for line in d.lines().filter(|l| l.contains("[label=\"") && !l.contains("->")) {
        let label = line.split("label=\"").nth(1).unwrap().split('"').next().unwrap();
        let (name, role) = label.split_once("\\n").unwrap_or_else(|| panic!("label without role: {line}"));
        dot_roles.insert(name.to_string(), role.to_string());
    }
    assert_eq!(dot_roles, expected, "{d}");
    assert_eq!(d.lines().filter(|l| l.contains("->")).count(), references);
    assert!(
        d.lines().any(|l| l.contains("->") && l.contains("workspace_id") && l.contains("dashed")),
        "the configured reference is dashed:\n{d}"
    );
    assert!(d.lines().any(|l| l.contains("->") && l.contains("\"project_id\"") && l.contains("bold")), "ownership edges are bold:\n{d}");

    let mermaid = plan(&w, &db, "mermaid", &[]);
    mermaid.ok();
    let m = &mermaid.stdout;
    assert!(m.starts_with("flowchart"), "{m}");
    let mut mermaid_roles = BTreeMap::new();
    for line in m.lines().filter(|l| l.contains("[\"")) {
        let label = line.split("[\"").nth(1).unwrap().trim_end_matches("\"]");
        let (name, role) = label.rsplit_once(" (").unwrap();
        mermaid_roles.insert(name.to_string(), role.trim_end_matches(')').to_lowercase());
    }
    assert_eq!(mermaid_roles, expected, "{m}");
    assert_eq!(m.lines().filter(|l| l.contains("==>") || l.contains("-->") || l.contains("-.->")).count(), references);
    assert!(m.lines().any(|l| l.contains("-.->") && l.contains("workspace_id")), "{m}");
}

#[test]
fn plan_strict_fails_on_a_warning_and_passes_on_the_example() {
    let w = Work::new();
    let db = example_db(&w);
    for format in ["text", "json", "dot", "mermaid", "toml"] {
        plan(&w, &db, format, &["--strict"]).ok();
    }
    let bad = w.db(
        "warned.db",
        "CREATE TABLE workspaces (id INTEGER PRIMARY KEY, name TEXT);
         CREATE TABLE projects (id INTEGER PRIMARY KEY, workspace_id INTEGER NOT NULL REFERENCES workspaces(id));
         CREATE TABLE stray_logs (id INTEGER PRIMARY KEY, workspace_id INTEGER, message TEXT);",
    );
    let args = |strict: bool, format: &str| {
        let mut a =
            vec!["plan".to_string(), "--db".into(), url(&bad), "--root".into(), "workspaces".into(), "--format".into(), format.into()];
        if strict {
            a.push("--strict".into());
        }
        a
    };
    let lax = w.run(&args(false, "text"));
    lax.ok();
    assert!(lax.stdout.contains("warning") && lax.stdout.contains("stray_logs") && lax.stdout.contains("workspace_id"), "{}", lax.stdout);
    let lax_json = w.run(&args(false, "json"));
    lax_json.ok();
    let warnings = lax_json.json()["warnings"].clone();
    assert_eq!(warnings.as_array().unwrap().len(), 1, "{warnings}");
    assert_eq!(warnings[0]["table"], "stray_logs");
    w.run(&args(true, "text")).fails_with(&["--strict", "stray_logs", "workspace_id"]);
    w.run(&args(true, "json")).fails_with(&["stray_logs"]);
}

#[test]
fn plan_without_a_root_says_how_to_name_one() {
    let w = Work::new();
    let db = example_db(&w);
    w.run(&["plan", "--db", &url(&db)]).fails_with(&["root", "--root"]);
    w.run(&["plan", "--db", &url(&db), "--root", "nosuch"]).fails_with(&["nosuch"]);
}

/// Undeclared references by name: listed by `plan`, used with `infer_references = true`, and
/// printed by `--format toml` as `[[reference]]` entries that give the same plan once pasted.
#[test]
fn plan_infers_references_and_prints_them_as_toml() {
    let w = Work::new();
    let db = w.db(
        "undeclared.db",
        "CREATE TABLE workspaces (id INTEGER PRIMARY KEY, name TEXT);
         CREATE TABLE projects (id INTEGER PRIMARY KEY, workspace_id INTEGER NOT NULL, name TEXT);
         CREATE TABLE tasks (id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, owner_id INTEGER);
         CREATE TABLE notes (id INTEGER PRIMARY KEY, project_id TEXT);",
    );
    let run = |config: &str, format: &str| {
        let config = w.config("orgport.toml", config);
        let out = w.run(&["plan", "--db", &url(&db), "--config", &config.display().to_string(), "--format", format]);
        out.ok();
        out.stdout.clone()
    };
    let listed: serde_json::Value = serde_json::from_str(&run("root = 'workspaces'", "json")).unwrap();
    assert_eq!(listed["tables"][1]["role"], "unrelated", "{listed}");
    assert_eq!(listed["inferred_references"]["references"].as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed["inferred_references"]["not_inferred"][0]["table"], "notes");

    let inferring = "root = 'workspaces'\ninfer_references = true";
    let text = run(inferring, "text");
    assert!(text.contains("    projects  (workspace_id → id, inferred)\n      tasks  (project_id → id, inferred)\n"), "{text}");
    assert!(text.contains("column name `project_id` → table `projects`, key `id`: INTEGER = INTEGER"), "{text}");
    assert!(text.contains("notes(project_id)  — types differ: `project_id` is TEXT, `projects.id` is INTEGER"), "{text}");

    let toml = run(inferring, "toml");
    assert!(toml.contains("[[reference]]\nfrom = \"tasks.project_id\"\nto = \"projects.id\"\n"), "{toml}");
    let with = plan_decisions(&serde_json::from_str(&run(inferring, "json")).unwrap());
    let pasted = plan_decisions(&serde_json::from_str(&run(&format!("root = 'workspaces'\n{toml}"), "json")).unwrap());
    assert_eq!(with["tables"][2]["role"], "owned", "{with}");
    assert_eq!(pasted, with);
}

// ---------------------------------------------------------------------------------------------
// Keys and ownership at the edges
// ---------------------------------------------------------------------------------------------

const LONGER_PATH_SCHEMA: &str = "
CREATE TABLE ws (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE tasks (id INTEGER PRIMARY KEY, ws_id INTEGER NOT NULL REFERENCES ws(id), title TEXT);
CREATE TABLE comments (id INTEGER PRIMARY KEY, task_id INTEGER NOT NULL REFERENCES tasks(id), ws_id INTEGER REFERENCES ws(id), body TEXT);
";

/// A comment belongs to its task's workspace; its own (denormalised, nullable) `ws_id` may be
/// NULL. The row has a foreign-key path to the root through its task, so it is the workspace's.
#[test]
fn a_row_owned_only_through_a_longer_path_is_exported() {
    let w = Work::new();
    let src = w.db(
        "src.db",
        &format!(
            "{LONGER_PATH_SCHEMA}
             INSERT INTO ws VALUES (1, 'one'), (2, 'two');
             INSERT INTO tasks VALUES (1, 1, 'task of one'), (2, 2, 'task of two');
             INSERT INTO comments VALUES (1, 1, 1, 'with ws_id'), (2, 1, NULL, 'without ws_id'), (3, 2, 2, 'of two');"
        ),
    );
    let tgt = w.db("tgt.db", &format!("{LONGER_PATH_SCHEMA} INSERT INTO ws VALUES (1, 'target');"));
    let archive = w.path("one.orgport");
    w.export(&src, None, Some("ws"), &["1"], &[], &archive).ok();
    let report = w.import_json(&tgt, None, &archive);
    let new = new_org(&report);
    w.verify(&tgt, None, &archive, &[&new]).ok();
    let specs = vec![
        spec("ws", "SELECT * FROM ws WHERE id = ?1").fresh(&["id"]),
        spec("tasks", "SELECT * FROM tasks WHERE ws_id = ?1").fresh(&["id"]).reference(&["ws_id"], "ws", &["id"]).pair_by(&["title"]),
        spec("comments", "SELECT * FROM comments WHERE task_id IN (SELECT id FROM tasks WHERE ws_id = ?1)")
            .fresh(&["id"])
            .reference(&["task_id"], "tasks", &["id"])
            .reference(&["ws_id"], "ws", &["id"])
            .pair_by(&["body"]),
    ];
    let paired = assert_org_equal(&src, &Cell::Int(1), &tgt, &Cell::Int(new.parse().unwrap()), &specs);
    assert_eq!(paired.pairs["comments"].len(), 2);
}

/// The same schema with the path named in the configuration (`[path]`, README: "which
/// reference decides ownership where a table has several paths to the root"): `task_id` is one.
#[test]
fn the_path_setting_accepts_a_longer_path_to_the_root() {
    let w = Work::new();
    let src = w.db(
        "src.db",
        &format!(
            "{LONGER_PATH_SCHEMA}
             INSERT INTO ws VALUES (1, 'one'), (2, 'two');
             INSERT INTO tasks VALUES (1, 1, 'task of one'), (2, 2, 'task of two');
             INSERT INTO comments VALUES (1, 1, 1, 'with ws_id'), (2, 1, NULL, 'without ws_id'), (3, 2, 2, 'of two');"
        ),
    );
    let config = w.config("path.toml", "root = \"ws\"\n[path]\ncomments = \"task_id\"\n");
    let plan = w.run(&["plan", "--db", &url(&src), "--config", &config.display().to_string(), "--format", "json"]);
    plan.ok();
    let p = plan.json();
    let comments = p["tables"].as_array().unwrap().iter().find(|t| t["name"] == "comments").unwrap().clone();
    let paths: Vec<&serde_json::Value> = comments["paths"].as_array().unwrap().iter().collect();
    assert_eq!(paths.len(), 1, "{comments}");
    assert_eq!(paths[0]["from_columns"], serde_json::json!(["task_id"]));
    let archive = w.path("one.orgport");
    w.export(&src, Some(&config), None, &["1"], &[], &archive).ok();
    let (_, decoded) = archive_rows(&archive);
    assert_eq!(decoded["comments"].len(), 2, "both comments of workspace 1's task belong to it");
}

/// A UUID root key stored in upper case is found by its exact text, and the organisation moves.
#[test]
fn uuid_root_keys_stored_in_upper_case_are_found() {
    const SCHEMA: &str = "
        CREATE TABLE org (id UUID PRIMARY KEY, name TEXT NOT NULL);
        CREATE TABLE items (id UUID PRIMARY KEY NOT NULL, org_id UUID NOT NULL REFERENCES org(id), title TEXT);";
    let w = Work::new();
    let upper = "0F8FAD5B-D9CB-469F-A165-70867728950E";
    let src = w.db(
        "src.db",
        &format!(
            "{SCHEMA}
             INSERT INTO org VALUES ('{upper}', 'upper'), ('7c9e6679-7425-40de-944b-e07fc1f90ae7', 'lower');
             INSERT INTO items VALUES ('AAAAAAAA-D9CB-469F-A165-70867728950E', '{upper}', 'a'),
                                      ('cccccccc-d9cb-469f-a165-70867728950e', '7c9e6679-7425-40de-944b-e07fc1f90ae7', 'c');"
        ),
    );
    let tgt = w.db("tgt.db", SCHEMA);
    let archive = w.path("upper.orgport");
    w.export(&src, None, Some("org"), &[upper], &[], &archive).ok();
    let report = w.import_json(&tgt, None, &archive);
    let new = new_org(&report);
    w.verify(&tgt, None, &archive, &[&new]).ok();
    let specs = vec![
        spec("org", "SELECT * FROM org WHERE id = ?1").fresh(&["id"]),
        spec("items", "SELECT * FROM items WHERE org_id = ?1").fresh(&["id"]).reference(&["org_id"], "org", &["id"]).pair_by(&["title"]),
    ];
    let paired = assert_org_equal(&src, &Cell::text(upper), &tgt, &Cell::Text(new), &specs);
    assert_eq!(paired.pairs["items"].len(), 1);
}

const EXTREME_SCHEMA: &str = "
CREATE TABLE org (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE items (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES org(id), parent_id INTEGER REFERENCES items(id), title TEXT);
";

/// Keys at both ends of the 64-bit range in the source, and a target whose largest key is
/// i64::MAX: new keys must still be found (or the import refused cleanly), never a crash.
#[test]
fn integer_keys_at_the_extremes() {
    let w = Work::new();
    let max = i64::MAX;
    let min = i64::MIN;
    let src = w.db(
        "src.db",
        &format!(
            "{EXTREME_SCHEMA}
             INSERT INTO org VALUES ({max}, 'max');
             INSERT INTO items VALUES ({min}, {max}, NULL, 'min'), ({max}, {max}, {min}, 'max'), (0, {max}, {max}, 'zero');"
        ),
    );
    let specs = vec![
        spec("org", "SELECT * FROM org WHERE id = ?1").fresh(&["id"]),
        spec("items", "SELECT * FROM items WHERE org_id = ?1")
            .fresh(&["id"])
            .reference(&["org_id"], "org", &["id"])
            .reference(&["parent_id"], "items", &["id"])
            .pair_by(&["title"]),
    ];
    let archive = w.path("max.orgport");
    w.export(&src, None, Some("org"), &[&max.to_string()], &[], &archive).ok();

    // An ordinary target.
    let tgt = w.db("tgt.db", &format!("{EXTREME_SCHEMA} INSERT INTO org VALUES (1, 't'); INSERT INTO items VALUES (1, 1, NULL, 'x');"));
    let new = new_org(&w.import_json(&tgt, None, &archive));
    w.verify(&tgt, None, &archive, &[&new]).ok();
    assert_org_equal(&src, &Cell::Int(max), &tgt, &Cell::Int(new.parse().unwrap()), &specs);

    // A target that already uses the largest key.
    let full = w.db(
        "full.db",
        &format!("{EXTREME_SCHEMA} INSERT INTO org VALUES ({max}, 't'); INSERT INTO items VALUES ({max}, {max}, NULL, 'x');"),
    );
    let before = snapshot(&full);
    let before_bytes = bytes(&full);
    let out = w.import(&full, None, &archive, &["--json"]);
    assert!(out.code == 0 || out.code == 1, "import crashed (exit {}):\n{}", out.code, out.stderr);
    if out.code == 0 {
        let new = new_org(&out.json());
        w.verify(&full, None, &archive, &[&new]).ok();
        let paired = assert_org_equal(&src, &Cell::Int(max), &full, &Cell::Int(new.parse().unwrap()), &specs);
        let added = assert_only_added(&before, &snapshot(&full));
        assert_added_exactly(&added, &paired, &[]);
    } else {
        assert!(out.stderr.contains("org") || out.stderr.contains("items"), "{}", out.stderr);
        assert_same_bytes(&full, &before_bytes);
    }
}

const CODES_SCHEMA: &str = "
CREATE TABLE org (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE codes (code TEXT PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES org(id), note TEXT);
CREATE TABLE uses (id INTEGER PRIMARY KEY, code TEXT NOT NULL REFERENCES codes(code), org_id INTEGER NOT NULL REFERENCES org(id));
";

/// Short text primary keys get new values; those must be free on the target. The target holds
/// 255 of the 260 letter-digit codes, the source 5 such codes.
#[test]
fn text_primary_keys_get_new_keys_that_are_free_on_the_target() {
    let w = Work::new();
    let src_codes = ["a1", "b2", "c3", "d4", "e5"];
    let mut sql = format!("{CODES_SCHEMA} INSERT INTO org VALUES (1, 'src');");
    for (i, c) in src_codes.iter().enumerate() {
        sql.push_str(&format!("INSERT INTO codes VALUES ('{c}', 1, 'source {c}'); INSERT INTO uses VALUES ({i}, '{c}', 1);"));
    }
    let src = w.db("src.db", &sql);
    let mut sql = format!("{CODES_SCHEMA} INSERT INTO org VALUES (1, 'tgt');");
    let mut taken = 0;
    for l in 'a'..='z' {
        for d in '0'..='9' {
            if taken < 255 {
                sql.push_str(&format!("INSERT INTO codes VALUES ('{l}{d}', 1, 'target');"));
                taken += 1;
            }
        }
    }
    let tgt = w.db("tgt.db", &sql);
    let archive = w.path("codes.orgport");
    w.export(&src, None, Some("org"), &["1"], &[], &archive).ok();
    let before = snapshot(&tgt);
    let out = w.import(&tgt, None, &archive, &["--json"]);
    out.ok();
    let new = new_org(&out.json());
    w.verify(&tgt, None, &archive, &[&new]).ok();
    let specs = vec![
        spec("org", "SELECT * FROM org WHERE id = ?1").fresh(&["id"]),
        spec("codes", "SELECT * FROM codes WHERE org_id = ?1").fresh(&["code"]).reference(&["org_id"], "org", &["id"]).pair_by(&["note"]),
        spec("uses", "SELECT * FROM uses WHERE org_id = ?1")
            .fresh(&["id"])
            .reference(&["org_id"], "org", &["id"])
            .reference(&["code"], "codes", &["code"])
            .pair_by(&["code"]),
    ];
    let paired = assert_org_equal(&src, &Cell::Int(1), &tgt, &Cell::Int(new.parse().unwrap()), &specs);
    let added = assert_only_added(&before, &snapshot(&tgt));
    assert_added_exactly(&added, &paired, &[]);
}

const FOLDERS_SCHEMA: &str = "
CREATE TABLE ws (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE folders (id INTEGER PRIMARY KEY, ws_id INTEGER REFERENCES ws(id), parent_id INTEGER REFERENCES folders(id), name TEXT);
";

/// Rows with no path of their own (NULL `ws_id`) belong to their parent's workspace; a row of
/// another workspace under one of them has its parent cut.
#[test]
fn rows_without_a_path_inherit_ownership_from_their_parent() {
    let w = Work::new();
    let src = w.db(
        "src.db",
        &format!(
            "{FOLDERS_SCHEMA}
             INSERT INTO ws VALUES (1, 'a'), (2, 'b');
             INSERT INTO folders VALUES (1, 1, NULL, 'root a'), (2, NULL, 1, 'child a'), (3, NULL, 2, 'grandchild a'),
                                        (4, 2, NULL, 'root b'), (5, NULL, 4, 'child b'), (6, 2, 3, 'b under a');"
        ),
    );
    let tgt = w.db(
        "tgt.db",
        &format!(
            "{FOLDERS_SCHEMA} INSERT INTO ws VALUES (1, 't'); INSERT INTO folders VALUES (1, 1, NULL, 't root'), (2, NULL, 1, 't child');"
        ),
    );
    // The folders of a workspace: its own and, recursively, those under them without a workspace.
    let folders_of = "WITH RECURSIVE f(id) AS (SELECT id FROM folders WHERE ws_id = ?1 \
                      UNION SELECT x.id FROM folders x JOIN f ON x.parent_id = f.id WHERE x.ws_id IS NULL) \
                      SELECT * FROM folders WHERE id IN (SELECT id FROM f)";
    let specs = vec![
        spec("ws", "SELECT * FROM ws WHERE id = ?1").fresh(&["id"]),
        spec("folders", folders_of)
            .fresh(&["id"])
            .reference(&["ws_id"], "ws", &["id"])
            .reference(&["parent_id"], "folders", &["id"])
            .pair_by(&["name"]),
    ];
    let before = snapshot(&tgt);
    for (org, rows, cuts) in [(1i64, 3usize, 0usize), (2, 3, 1)] {
        let archive = w.path(&format!("ws-{org}.orgport"));
        w.export(&src, None, Some("ws"), &[&org.to_string()], &[], &archive).ok();
        let new = new_org(&w.import_json(&tgt, None, &archive));
        w.verify(&tgt, None, &archive, &[&new]).ok();
        let paired = assert_org_equal(&src, &Cell::Int(org), &tgt, &Cell::Int(new.parse().unwrap()), &specs);
        assert_eq!(paired.pairs["folders"].len(), rows, "workspace {org}");
        assert_eq!(paired.cuts.len(), cuts, "workspace {org}: {:?}", paired.cuts);
    }
    let added = assert_only_added(&before, &snapshot(&tgt));
    assert_eq!(added["folders"].len(), 6);
}

const AWKWARD_SCHEMA: &str = r#"
CREATE TABLE "Org Units" ("unit id" INTEGER PRIMARY KEY, "name" TEXT NOT NULL);
CREATE TABLE "we""ird.items" ("select" INTEGER PRIMARY KEY, "unit" INTEGER NOT NULL REFERENCES "Org Units"("unit id"), "from" TEXT, "a""b" BLOB);
CREATE TABLE "ünï 表" (id TEXT PRIMARY KEY NOT NULL, item INTEGER REFERENCES "we""ird.items"("select"), "ünï" TEXT);
"#;

/// Table and column names with spaces, quotes, dots, keywords and non-ASCII letters.
#[test]
fn awkward_identifiers_round_trip() {
    let w = Work::new();
    let src = w.db(
        "src.db",
        &format!(
            r#"{AWKWARD_SCHEMA}
            INSERT INTO "Org Units" VALUES (1, 'a'), (2, 'b');
            INSERT INTO "we""ird.items" VALUES (1, 1, 'x', x'00'), (2, 2, 'y', NULL), (3, 1, NULL, x'');
            INSERT INTO "ünï 表" VALUES ('k1', 1, 'v'), ('k2', 2, 'w'), ('k3', 3, 'z'), ('k4', NULL, 'orphan');"#
        ),
    );
    let tgt = w.db(
        "tgt.db",
        &format!(r#"{AWKWARD_SCHEMA} INSERT INTO "Org Units" VALUES (1, 't'); INSERT INTO "we""ird.items" VALUES (1, 1, 't', NULL);"#),
    );
    let archive = w.path("awkward.orgport");
    w.export(&src, None, Some("Org Units"), &["1"], &[], &archive).ok();
    let before = snapshot(&tgt);
    let report = w.import_json(&tgt, None, &archive);
    let new = new_org(&report);
    w.verify(&tgt, None, &archive, &[&new]).ok();
    let specs = vec![
        spec("Org Units", r#"SELECT * FROM "Org Units" WHERE "unit id" = ?1"#).fresh(&["unit id"]),
        spec("we\"ird.items", r#"SELECT * FROM "we""ird.items" WHERE "unit" = ?1"#)
            .fresh(&["select"])
            .reference(&["unit"], "Org Units", &["unit id"])
            .pair_by(&["from", "a\"b"]),
        spec("ünï 表", r#"SELECT * FROM "ünï 表" WHERE item IN (SELECT "select" FROM "we""ird.items" WHERE "unit" = ?1)"#)
            .fresh(&["id"])
            .reference(&["item"], "we\"ird.items", &["select"])
            .pair_by(&["ünï"]),
    ];
    let paired = assert_org_equal(&src, &Cell::Int(1), &tgt, &Cell::Int(new.parse().unwrap()), &specs);
    assert_eq!(paired.pairs["we\"ird.items"].len(), 2);
    assert_eq!(paired.pairs["ünï 表"].len(), 2);
    let added = assert_only_added(&before, &snapshot(&tgt));
    assert_added_exactly(&added, &paired, &[]);
}

/// `[path]` picks the reference that decides ownership; the other path is still checked, and the
/// round trip is the same either way. A column that is no path is refused by name.
#[test]
fn the_path_setting_picks_the_deciding_reference() {
    let w = Work::new();
    let src = w.example("source.db", &ExampleOptions { tasks_per_project: 6, ..ExampleOptions::default() });
    let tgt = small_target(&w);
    let config = w.config("path.toml", &format!("{}\n[path]\ntask_labels = \"task_id\"\n", example_config_text()));
    let plan = w.run(&["plan", "--db", &url(&src), "--config", &config.display().to_string(), "--format", "json"]);
    plan.ok();
    let p = plan.json();
    let tl = p["tables"].as_array().unwrap().iter().find(|t| t["name"] == "task_labels").unwrap().clone();
    let paths: Vec<String> = tl["paths"].as_array().unwrap().iter().map(|e| e["to"].as_str().unwrap().to_string()).collect();
    assert_eq!(paths, vec!["tasks".to_string()], "{tl}");
    let archive = w.path("org-2.orgport");
    w.export(&src, Some(&config), None, &["2"], &[], &archive).ok();
    let report = w.import_json(&tgt, Some(&config), &archive);
    let new: i64 = new_org(&report).parse().unwrap();
    w.verify(&tgt, Some(&config), &archive, &[&new.to_string()]).ok();
    let paired = assert_org_equal(&src, &Cell::Int(2), &tgt, &Cell::Int(new), &example_specs());
    assert!(!paired.pairs["task_labels"].is_empty());

    let bad = w.config("bad-path.toml", &format!("{}\n[path]\ntask_labels = \"label_name\"\n", example_config_text()));
    w.run(&["plan", "--db", &url(&src), "--config", &bad.display().to_string()]).fails_with(&["task_labels", "label_name"]);
}
