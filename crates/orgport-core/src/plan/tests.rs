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
    let mut users =
        table("users", vec![col("id", Integer, false), col("email", Text, false), col("password_hash", Text, true)], &["id"], vec![]);
    users.unique_keys.push(UniqueKey { name: None, columns: vec!["email".into()], partial: false });
    Schema {
        tables: vec![
            table(
                "orgs",
                vec![col("id", Integer, false), col("main_project", Integer, true)],
                &["id"],
                vec![fk(&["main_project"], "projects", &["id"])],
            ),
            table(
                "projects",
                vec![col("id", Integer, false), col("org_id", Integer, false)],
                &["id"],
                vec![fk(&["org_id"], "orgs", &["id"])],
            ),
            table(
                "tasks",
                vec![
                    col("id", Integer, false),
                    col("project_id", Integer, false),
                    col("parent_id", Integer, true),
                    col("owner_id", Integer, true),
                ],
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
    assert!(warning.message.contains("`orgport plan --format toml` prints the inferred one"), "{}", warning.message);
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
fn an_inferred_reference_in_use_explains_a_tenant_column() {
    let plan = build("root = 'orgs'\ninfer_references = true").unwrap();
    assert_eq!(role(&plan, "audit"), Role::Owned);
    assert!(!plan.warnings.iter().any(|w| w.table == "audit"), "{:?}", plan.warnings);
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
    s.tables.push(table(
        "teams",
        vec![col("id", Integer, false), col("org_id", Integer, false)],
        &["id"],
        vec![fk(&["org_id"], "orgs", &["id"])],
    ));
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

#[test]
fn table_names_are_the_stem_pluralised_by_simple_english_rules_or_the_stem() {
    let names = |stem: &str| infer::table_names(stem);
    assert_eq!(names("project"), ["projects", "project"]);
    assert_eq!(names("merge_request"), ["merge_requests", "merge_request"]);
    assert_eq!(names("category"), ["categories", "category"]);
    assert_eq!(names("key"), ["keys", "key"], "a vowel before the y keeps it");
    assert_eq!(names("status"), ["statuses", "status"]);
    assert_eq!(names("box"), ["boxes", "box"]);
    assert_eq!(names("branch"), ["branches", "branch"]);
    assert_eq!(names("wish"), ["wishes", "wish"]);
}

/// accounts ← projects.account_id ← ci_builds.project_id ← ci_build_needs.build_id, none declared;
/// next to them every way a name can fail to be a reference.
fn inference_schema() -> Schema {
    use ValueKind::*;
    let mut billing_plans = table("plans", vec![col("id", Integer, false)], &["id"], vec![]);
    billing_plans.schema = Some("billing".into());
    let mut subscriptions = table(
        "subscriptions",
        vec![col("id", Integer, false), col("plan_id", Integer, false), col("account_id", Integer, false)],
        &["id"],
        vec![],
    );
    subscriptions.schema = Some("billing".into());
    let mut keyed_by_unique = table("categories", vec![col("id", Integer, false), col("project_id", Integer, true)], &[], vec![]);
    keyed_by_unique.unique_keys.push(UniqueKey { name: None, columns: vec!["id".into()], partial: false });
    Schema {
        tables: vec![
            table("accounts", vec![col("id", Integer, false)], &["id"], vec![]),
            table(
                "projects",
                vec![col("id", Integer, false), col("account_id", Integer, false), col("plan_id", Integer, true)],
                &["id"],
                vec![],
            ),
            keyed_by_unique,
            table("ci_builds", vec![col("id", Integer, false), col("project_id", Integer, false)], &["id"], vec![]),
            table("ci_build_needs", vec![col("id", Integer, false), col("build_id", Integer, false)], &["id"], vec![]),
            table(
                "tasks",
                vec![
                    col("id", Integer, false),
                    col("project_id", Integer, false),
                    col("category_id", Integer, true),
                    col("owner_id", Integer, true),
                    col("label_id", Integer, true),
                ],
                &["id"],
                vec![fk(&["project_id"], "projects", &["id"])],
            ),
            table("labels", vec![col("id", Integer, false)], &["id"], vec![]),
            table("label", vec![col("id", Integer, false)], &["id"], vec![]),
            table("notes", vec![col("id", Integer, false), col("project_id", Text, false)], &["id"], vec![]),
            table("logs", vec![col("id", Integer, false), col("project_id", Any, true)], &["id"], vec![]),
            table(
                "memberships",
                vec![col("account_id", Integer, false), col("user_id", Integer, false)],
                &["account_id", "user_id"],
                vec![],
            ),
            table("grants", vec![col("id", Integer, false), col("membership_id", Integer, false)], &["id"], vec![]),
            table("plans", vec![col("id", Integer, false)], &["id"], vec![]),
            billing_plans,
            subscriptions,
        ],
        namespaces: None,
    }
}

fn build_inferred(config: &str) -> Plan {
    Plan::build(inference_schema(), &Config::parse(config).unwrap(), None, Capabilities::default()).unwrap()
}

/// `table.column → table` of every inferred reference.
fn inferred(plan: &Plan) -> Vec<String> {
    plan.inference.references.iter().map(|r| format!("{}.{} → {}", plan.name(r.from), r.column, plan.name(r.to))).collect()
}

fn not_inferred<'a>(plan: &'a Plan, table: &str, column: &str) -> Option<&'a str> {
    plan.inference.not_inferred.iter().find(|n| plan.name(n.from) == table && n.column == column).map(|n| n.reason.as_str())
}

#[test]
fn references_are_inferred_from_names_and_key_types() {
    let plan = build_inferred("root = 'accounts'\n[[reference]]\nfrom = 'tasks.category_id'\nto = 'categories.id'");
    assert_eq!(
        inferred(&plan),
        [
            "projects.account_id → accounts",
            "projects.plan_id → plans",
            "categories.project_id → projects",
            "ci_builds.project_id → projects",
            "ci_build_needs.build_id → ci_builds",
            "memberships.account_id → accounts",
            "billing.subscriptions.plan_id → billing.plans",
            "billing.subscriptions.account_id → accounts",
        ],
        "a declared (tasks.project_id) or configured (tasks.category_id) reference is not inferred again; \
         a table's own schema comes first; `owner_id` names no table"
    );
    let evidence = |table: &str| plan.inference.references.iter().find(|r| plan.name(r.from) == table).unwrap().evidence.clone();
    assert_eq!(evidence("projects"), "column name `account_id` → table `accounts`, key `id`: Integer = Integer");
    assert_eq!(
        evidence("ci_build_needs"),
        "column name `build_id` → table `ci_builds` (with the `ci_` prefix of `ci_build_needs`), key `id`: Integer = Integer"
    );

    let reason = not_inferred(&plan, "notes", "project_id").expect("a text column is no reference to an integer key");
    assert!(reason.contains("types differ") && reason.contains("Text") && reason.contains("Integer"), "{reason}");
    let reason = not_inferred(&plan, "logs", "project_id").expect("a column without a declared type proves nothing");
    assert!(reason.contains("no declared type"), "{reason}");
    let reason = not_inferred(&plan, "tasks", "label_id").expect("`labels` and `label` both fit");
    assert!(reason.contains("ambiguous") && reason.contains("`labels`") && reason.contains("`label`"), "{reason}");
    let reason = not_inferred(&plan, "grants", "membership_id").expect("memberships has a composite key");
    assert!(reason.contains("`memberships`") && reason.contains("key `id`"), "{reason}");
    for (table, column) in [("tasks", "owner_id"), ("tasks", "project_id"), ("tasks", "category_id"), ("memberships", "user_id")] {
        assert_eq!(not_inferred(&plan, table, column), None, "{table}.{column}");
    }
    assert_eq!(plan.inference.not_inferred.len(), 4, "{:?}", plan.inference.not_inferred);
}

#[test]
fn inferred_references_shape_the_plan_only_when_configured() {
    let listed = build_inferred("root = 'accounts'");
    assert!(!listed.inference.used);
    assert_eq!(inferred(&listed).len(), 9, "the eight above and tasks.category_id");
    assert!(listed.edges.iter().all(|e| e.evidence.is_none()));
    for t in ["projects", "ci_builds", "ci_build_needs", "tasks"] {
        assert_eq!(role(&listed, t), Role::Unrelated, "{t}");
    }

    let used = build_inferred("root = 'accounts'\ninfer_references = true");
    assert!(used.inference.used);
    for (t, expected) in [
        ("projects", Role::Owned),
        ("categories", Role::Owned),
        ("ci_builds", Role::Owned),
        ("ci_build_needs", Role::Owned),
        ("tasks", Role::Owned),
        ("billing.subscriptions", Role::Owned),
        ("plans", Role::Referenced),
        ("notes", Role::Unrelated),
    ] {
        assert_eq!(role(&used, t), expected, "{t}");
    }
    let needs = &used.tables[used.schema.find("ci_build_needs").unwrap()];
    assert_eq!(needs.depth, Some(3));
    let edge = &used.edges[needs.ownership[0]];
    assert!(!edge.declared && edge.evidence.as_deref().is_some_and(|e| e.contains("`ci_builds`")), "{edge:?}");
    let text = used.render(Format::Text);
    assert!(text.contains("ci_build_needs  (build_id → id, inferred)"), "{text}");
    assert!(text.contains("inferred references (used"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&used.render(Format::Json)).unwrap();
    assert_eq!(json["inferred_references"]["used"], true);
    assert_eq!(json["inferred_references"]["references"].as_array().unwrap().len(), 9);
    assert_eq!(json["inferred_references"]["not_inferred"].as_array().unwrap().len(), 4);
}

/// What a plan decides, without where its references came from.
fn decisions(plan: &Plan) -> String {
    let edge = |e: usize| {
        let e = &plan.edges[e];
        format!(
            "{}({}) → {}({}) nullable={}",
            plan.name(e.from),
            e.from_columns.join(","),
            plan.name(e.to),
            e.to_columns.join(","),
            e.nullable
        )
    };
    let mut out = String::new();
    for (t, p) in plan.tables.iter().enumerate() {
        let paths: Vec<String> = p.ownership.iter().map(|&e| edge(e)).collect();
        let others: Vec<String> = p.other_paths.iter().map(|&e| edge(e)).collect();
        out += &format!("{} {:?} {:?} {paths:?} {others:?} {:?} {:?}\n", plan.name(t), p.role, p.depth, p.natural_key, p.keysets);
    }
    out += &format!("order {:?}\n", plan.order.iter().map(|&t| plan.name(t)).collect::<Vec<_>>());
    out += &format!("cross {:?}\n", plan.cross_tenant.iter().map(|&e| edge(e)).collect::<Vec<_>>());
    out += &format!("edges {:?}\n", (0..plan.edges.len()).map(edge).collect::<Vec<_>>());
    out += &format!("warnings {:?}\n", plan.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>());
    out
}

#[test]
fn the_toml_output_pasted_into_the_configuration_gives_the_inferred_plan() {
    let used = build_inferred("root = 'accounts'\ninfer_references = true");
    let toml = used.render(Format::Toml);
    assert_eq!(toml.matches("\n[[reference]]\n").count(), 9, "{toml}");
    assert!(toml.contains("# column name `build_id` → table `ci_builds`"), "{toml}");
    assert!(toml.contains("from = \"billing.subscriptions.plan_id\"\nto = \"billing.plans.id\""), "{toml}");
    assert!(toml.contains("# tasks.label_id: ambiguous"), "{toml}");

    let pasted = build_inferred(&format!("root = 'accounts'\n{toml}"));
    assert!(pasted.inference.references.is_empty(), "pasted references are configured, not inferred again");
    assert_eq!(decisions(&pasted), decisions(&used));
    assert_ne!(decisions(&build_inferred("root = 'accounts'")), decisions(&used), "inference changes this plan");
    assert_eq!(build_inferred("root = 'accounts'").render(Format::Toml), toml, "the same entries whether or not the plan uses them");
}
