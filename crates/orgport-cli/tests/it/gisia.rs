//! Gisia, a GitLab-like application (`../shared/realworld/gisia_structure.sql`): 81 tables and 18
//! foreign keys, ownership in `*_id` columns without constraints. `orgport plan` infers those
//! references from names and key types on a real PostgreSQL server (see [`crate::pg`]).
//!
//! Gisia has no `namespaces.organization_id`: `organizations` owns one table, so the tenant root
//! here is `namespaces`.

use std::path::Path;

use serde_json::Value;

use crate::pg::*;
use crate::util::*;

fn gisia_db(server: &str, name: &str) -> String {
    let url = fresh_db(server, name);
    let structure = realworld("gisia_structure.sql");
    psql(&url, &["-f", structure.to_str().expect("path")]);
    url
}

fn plan(work: &Work, db: &str, config: &Path, format: &str) -> Out {
    let out = work.run(&["plan", "--db", db, "--config", config.to_str().expect("path"), "--format", format]);
    out.ok();
    out
}

fn table<'a>(plan: &'a Value, name: &str) -> &'a Value {
    plan["tables"].as_array().expect("tables").iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("no table `{name}` in the plan"))
}

/// The plan's tables of one role, by name.
fn with_role(plan: &Value, role: &str) -> Vec<String> {
    plan["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .filter(|t| t["role"] == role)
        .map(|t| t["name"].as_str().expect("name").to_string())
        .collect()
}

#[test]
fn gisia_ownership_is_inferred_from_column_names_and_key_types() {
    let Some(server) = server() else { return };
    let work = Work::new();
    let db = gisia_db(&server, "gisia_infer");

    // The declared foreign keys alone: a namespace owns its notes, nothing else.
    let declared = work.config("declared.toml", "root = \"namespaces\"\n");
    let without = plan(&work, &db, &declared, "json").json();
    assert_eq!(with_role(&without, "owned"), ["notes"]);
    assert_eq!(table(&without, "projects")["role"], "unrelated");
    assert_eq!(without["inferred_references"]["used"], false);
    let listed = without["inferred_references"]["references"].as_array().expect("references").len();

    let inferring = work.config("inferring.toml", "root = \"namespaces\"\ninfer_references = true\n");
    let with = plan(&work, &db, &inferring, "json").json();
    assert_eq!(with["inferred_references"]["used"], true);
    let references = with["inferred_references"]["references"].as_array().expect("references");
    assert_eq!(references.len(), listed, "the same references are listed whether or not they are used");
    assert_eq!(references.len(), 105);
    assert_eq!(with_role(&with, "owned").len(), 55, "{:?}", with_role(&with, "owned"));
    for (child, column, parent) in [
        ("projects", "namespace_id", "namespaces"),
        ("work_items", "namespace_id", "namespaces"),
        ("members", "namespace_id", "namespaces"),
        ("boards", "namespace_id", "namespaces"),
        ("board_stages", "board_id", "boards"),
        ("work_item_assignees", "work_item_id", "work_items"),
        ("ci_pipelines", "project_id", "projects"),
        ("ci_builds", "project_id", "projects"),
        ("ci_build_needs", "build_id", "ci_builds"),
        ("merge_request_diffs", "project_id", "projects"),
        ("merge_request_diff_files", "merge_request_diff_id", "merge_request_diffs"),
        ("reviews", "project_id", "projects"),
    ] {
        let t = table(&with, child);
        assert_eq!(t["role"], "owned", "{child}");
        let path = &t["paths"][0];
        assert_eq!((path["from_columns"][0].as_str(), path["to"].as_str()), (Some(column), Some(parent)), "{child}: {path}");
        let evidence = path["evidence"].as_str().unwrap_or_else(|| panic!("{child}: no evidence in {path}"));
        assert!(evidence.starts_with(&format!("column name `{column}` → table `{parent}`")), "{child}: {evidence}");
        assert!(evidence.ends_with("key `id`: bigint = bigint"), "{child}: {evidence}");
    }
    // A merge request names its project `target_project_id`: only referenced, until declared.
    assert_eq!(table(&with, "merge_requests")["role"], "referenced");
    assert_eq!(table(&with, "users")["role"], "referenced");
    let not_inferred = &with["inferred_references"]["not_inferred"];
    assert_eq!(not_inferred.as_array().map(Vec::len), Some(1), "{not_inferred}");
    assert_eq!((not_inferred[0]["table"].as_str(), not_inferred[0]["column"].as_str()), (Some("activities"), Some("note_id")));

    let text = plan(&work, &db, &inferring, "text").stdout.clone();
    assert!(text.contains("\n    projects  (namespace_id → id, inferred)\n"), "{text}");
    assert!(
        text.contains(
            "  projects(namespace_id) → namespaces(id)  — column name `namespace_id` → table `namespaces`, key `id`: bigint = bigint\n"
        ),
        "{text}"
    );
    assert!(text.contains("column name `build_id` → table `ci_builds` (with the `ci_` prefix of `ci_build_needs`)"), "{text}");

    // The TOML output, pasted into a configuration, gives the same plan without inference.
    let toml = plan(&work, &db, &inferring, "toml").stdout.clone();
    assert_eq!(toml.matches("\n[[reference]]\n").count(), 105, "{toml}");
    assert!(toml.contains("# column name `namespace_id` → table `namespaces`, key `id`: bigint = bigint\n[[reference]]\nfrom = \"projects.namespace_id\"\nto = \"namespaces.id\"\n"), "{toml}");
    let pasted = work.config("pasted.toml", &format!("root = \"namespaces\"\n{toml}"));
    let from_pasted = plan(&work, &db, &pasted, "json").json();
    assert_eq!(
        from_pasted["inferred_references"]["references"].as_array().map(Vec::len),
        Some(0),
        "pasted references are not inferred again"
    );
    assert_ne!(plan_decisions(&without), plan_decisions(&with));
    assert_eq!(plan_decisions(&from_pasted), plan_decisions(&with));
}

#[test]
fn gisia_organizations_own_only_what_names_them() {
    let Some(server) = server() else { return };
    let work = Work::new();
    let db = gisia_db(&server, "gisia_orgs");
    let inferring = work.config("inferring.toml", "root = \"organizations\"\ninfer_references = true\n");
    let plan = plan(&work, &db, &inferring, "json").json();
    assert_eq!(with_role(&plan, "owned"), ["merge_request_diff_commit_users"]);
    assert_eq!(table(&plan, "namespaces")["role"], "unrelated", "Gisia's namespaces have no organization_id");
}

#[test]
fn the_gisia_example_configuration_completes_what_names_cannot_say() {
    let Some(server) = server() else { return };
    let work = Work::new();
    let db = gisia_db(&server, "gisia_example");
    let config = repo_root().join("examples/gisia/orgport.toml");
    let plan = plan(&work, &db, &config, "json").json();
    assert_eq!(with_role(&plan, "owned").len(), 57, "{:?}", with_role(&plan, "owned"));
    let merge_requests = table(&plan, "merge_requests");
    assert_eq!(merge_requests["role"], "owned");
    assert_eq!(merge_requests["paths"][0]["from_columns"][0], "target_project_id");
    let warnings: Vec<&str> = plan["warnings"].as_array().expect("warnings").iter().filter_map(|w| w["table"].as_str()).collect();
    assert_eq!(warnings, ["ci_runners"], "only the runners' missing natural key is left to warn about");
}
