use super::*;
use crate::schema::{Column, ForeignKey, UniqueKey};

fn col(name: &str, kind: ValueKind, nullable: bool) -> Column {
    Column {
        name: name.into(),
        declared_type: format!("{kind:?}"),
        kind,
        nullable,
        default: None,
        generated: false,
        auto_increment: false,
        always_generated: false,
        takes_any_text: true,
    }
}

fn fk(cols: &[&str], table: &str, to: &[&str]) -> ForeignKey {
    ForeignKey {
        name: None,
        columns: cols.iter().map(|s| s.to_string()).collect(),
        referenced_table: table.into(),
        referenced_columns: to.iter().map(|s| s.to_string()).collect(),
        deferrable: false,
    }
}

fn table(name: &str, columns: Vec<Column>, pk: &[&str], fks: Vec<ForeignKey>) -> Table {
    Table {
        schema: None,
        name: name.into(),
        columns,
        primary_key: pk.iter().map(|s| s.to_string()).collect(),
        unique_keys: vec![],
        foreign_keys: fks,
        has_children: false,
    }
}

/// orgs ← projects ← tasks (self-reference), tasks → users (shared, unique email),
/// audit (no FK, `org_id`), lookup, orgs ↔ projects cycle.
fn schema() -> Schema {
    use ValueKind::*;
    let mut users = table(
        "users",
        vec![col("id", Integer, false), col("email", Text, false), col("password_hash", Text, true)],
        &["id"],
        vec![],
    );
    users.unique_keys.push(UniqueKey { name: None, columns: vec!["email".into()], partial: false });
    Schema {
        tables: vec![
            table("orgs", vec![col("id", Integer, false), col("main_project", Integer, true)], &["id"], vec![fk(&["main_project"], "projects", &["id"])]),
            table("projects", vec![col("id", Integer, false), col("org_id", Integer, false)], &["id"], vec![fk(&["org_id"], "orgs", &["id"])]),
            table(
                "tasks",
                vec![col("id", Integer, false), col("project_id", Integer, false), col("parent_id", Integer, true), col("owner_id", Integer, true)],
                &["id"],
                vec![fk(&["project_id"], "projects", &[]), fk(&["parent_id"], "tasks", &["id"]), fk(&["owner_id"], "users", &["id"])],
            ),
            users,
            table("audit", vec![col("id", Integer, false), col("org_id", Integer, false)], &["id"], vec![]),
            table("unrelated", vec![col("id", Integer, false)], &["id"], vec![]),
        ],
        namespaces: None,
    }
}

fn build(config: &str) -> Result<Plan> {
    Plan::build(schema(), &Config::parse(config)?, None, Capabilities::default())
}

fn role(plan: &Plan, name: &str) -> Role {
    plan.tables[plan.schema.find(name).unwrap()].role
}

#[test]
fn tables_are_classified_along_foreign_keys() {
    let plan = build("root = 'orgs'").unwrap();
    assert_eq!(role(&plan, "orgs"), Role::Root);
    assert_eq!(role(&plan, "projects"), Role::Owned);
    assert_eq!(role(&plan, "tasks"), Role::Owned);
    assert_eq!(role(&plan, "users"), Role::Referenced);
    assert_eq!(role(&plan, "audit"), Role::Unrelated);
    assert_eq!(role(&plan, "unrelated"), Role::Unrelated);
    let tasks = &plan.tables[plan.schema.find("tasks").unwrap()];
    assert_eq!(tasks.depth, Some(2));
    assert_eq!(tasks.ownership.len(), 1);
    assert_eq!(plan.edges[tasks.ownership[0]].to_columns, vec!["id"], "an FK without columns refers to the primary key");
    assert!(tasks.self_edge.is_some());
    assert_eq!(plan.tables[plan.schema.find("users").unwrap()].natural_key, Some(vec!["email".to_string()]));
}

#[test]
fn tenant_columns_without_a_reference_are_warned_about_and_strict_fails() {
    let plan = build("root = 'orgs'").unwrap();
    let warning = plan.warnings.iter().find(|w| w.table == "audit").expect("audit.org_id is suspicious");
    assert!(warning.message.contains("org_id"), "{}", warning.message);
    assert!(plan.warnings.iter().any(|w| w.table == "users" && w.message.contains("password_hash")));
    assert!(matches!(plan.check_strict(true), Err(Error::Strict(_))));
    assert!(plan.check_strict(false).is_ok());

    let clean = build(
        "root = 'orgs'\nexclude = ['audit']\n[sensitive]\npasswords = ['users.password_hash']\n\
         [[reference]]\nfrom = 'audit.org_id'\nto = 'orgs.id'",
    )
    .unwrap();
    assert!(clean.warnings.is_empty(), "{:?}", clean.warnings);
    assert_eq!(role(&clean, "audit"), Role::Excluded);
}

#[test]
fn a_configured_reference_makes_a_table_owned() {
    let plan = build("root = 'orgs'\n[[reference]]\nfrom = 'audit.org_id'\nto = 'orgs.id'").unwrap();
    assert_eq!(role(&plan, "audit"), Role::Owned);
}

#[test]
fn cycles_and_cross_tenant_references_are_found() {
    let plan = build("root = 'orgs'").unwrap();
    assert_eq!(plan.cycles.len(), 1);
    assert_eq!(plan.cycles[0].tables, vec!["orgs", "projects"]);
    assert!(plan.cycles[0].broken_by.contains("main_project"), "{}", plan.cycles[0].broken_by);
    let crossing: Vec<(String, Vec<String>)> =
        plan.cross_tenant.iter().map(|&e| (plan.name(plan.edges[e].from), plan.edges[e].from_columns.clone())).collect();
    assert!(crossing.contains(&("orgs".into(), vec!["main_project".into()])));
    assert!(crossing.contains(&("tasks".into(), vec!["parent_id".into()])));
    let order: Vec<String> = plan.order.iter().map(|&t| plan.name(t)).collect();
    let pos = |n: &str| order.iter().position(|x| x == n).unwrap();
    assert!(pos("orgs") < pos("projects") && pos("projects") < pos("tasks") && pos("users") < pos("tasks"));
}

#[test]
fn configuration_errors_name_the_key_and_object() {
    let err = build("root = 'orgs'\nexclude = ['nope']").unwrap_err().to_string();
    assert!(err.contains("exclude") && err.contains("nope"), "{err}");
    let err = build("root = 'orgs'\n[on_conflict]\n'projects.slug' = 'suffix'").unwrap_err().to_string();
    assert!(err.contains("on_conflict") && err.contains("slug"), "{err}");
    let err = build("root = 'orgs'\n[on_conflict]\n'projects.id' = 'maybe'").unwrap_err().to_string();
    assert!(err.contains("maybe"), "{err}");
    let err = build("root = 'orgs'\nunknown_key = 1").unwrap_err().to_string();
    assert!(err.contains("unknown_key"), "{err}");
    let err = build("").unwrap_err().to_string();
    assert!(err.contains("--root"), "{err}");
}

#[test]
fn every_format_renders_every_table() {
    let plan = build("root = 'orgs'").unwrap();
    for format in [Format::Text, Format::Json, Format::Dot, Format::Mermaid] {
        let out = plan.render(format);
        for t in ["orgs", "projects", "tasks", "users", "audit"] {
            assert!(out.contains(t), "{format:?} lacks {t}:\n{out}");
        }
    }
    let json: serde_json::Value = serde_json::from_str(&plan.render(Format::Json)).unwrap();
    assert_eq!(json["root"], "orgs");
}

#[test]
fn one_mandatory_path_decides_ownership_and_the_others_are_checked() {
    use ValueKind::*;
    let mut s = schema();
    s.tables.push(table("teams", vec![col("id", Integer, false), col("org_id", Integer, false)], &["id"], vec![fk(&["org_id"], "orgs", &["id"])]));
    s.tables.push(table(
        "task_notes",
        vec![col("id", Integer, false), col("team_id", Integer, true), col("project_id", Integer, false)],
        &["id"],
        vec![fk(&["team_id"], "teams", &["id"]), fk(&["project_id"], "projects", &["id"])],
    ));
    let plan = Plan::build(s.clone(), &Config::parse("root = 'orgs'").unwrap(), None, Capabilities::default()).unwrap();
    let t = plan.schema.find("task_notes").unwrap();
    let cols = |e: usize| plan.edges[e].from_columns.clone();
    assert_eq!(plan.tables[t].depth, Some(2));
    assert_eq!(plan.tables[t].ownership.iter().map(|&e| cols(e)).collect::<Vec<_>>(), vec![vec!["project_id".to_string()]]);
    assert_eq!(plan.tables[t].other_paths.iter().map(|&e| cols(e)).collect::<Vec<_>>(), vec![vec!["team_id".to_string()]]);
    assert!(plan.cross_tenant.iter().any(|&e| plan.edges[e].from == t && cols(e) == ["team_id"]));

    let config = Config::parse("root = 'orgs'\n[path]\ntask_notes = 'team_id'").unwrap();
    let plan = Plan::build(s.clone(), &config, None, Capabilities::default()).unwrap();
    assert_eq!(plan.tables[t].ownership.iter().map(|&e| cols(e)).collect::<Vec<_>>(), vec![vec!["team_id".to_string()]]);
    let config = Config::parse("root = 'orgs'\n[path]\ntask_notes = 'nope'").unwrap();
    let err = Plan::build(s, &config, None, Capabilities::default()).unwrap_err().to_string();
    assert!(err.contains("path.task_notes") && err.contains("project_id"), "{err}");
}
