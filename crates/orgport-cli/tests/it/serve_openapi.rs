//! The OpenAPI document of `orgport serve`: served without a token at `GET /openapi.json` and
//! printed by `orgport openapi`, the same; OpenAPI 3.1, listing exactly the routes the server
//! answers, each with the statuses it answers (the harness checks every answer of every serve
//! test against the document) and the bearer scheme on every `/api` and `/admin` operation.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::serve::{setup, Serve, ROOT, USER};
use crate::util::*;

/// Every route the server answers: method, path as the document writes it, whether it needs a
/// superuser. Kept by hand: a route added to the router without its `#[utoipa::path]` fails here.
const ROUTES: [(&str, &str, bool); 15] = [
    ("GET", "/healthz", false),
    ("GET", "/openapi.json", false),
    ("GET", "/", false),
    ("GET", "/admin.js", false),
    ("GET", "/admin.css", false),
    ("GET", "/api/orgs", true),
    ("GET", "/api/jobs", true),
    ("GET", "/api/jobs/{id}", true),
    ("DELETE", "/api/jobs/{id}", true),
    ("GET", "/api/orgs/{id}/export", true),
    ("GET", "/api/orgs/{id}/export/json", true),
    ("POST", "/api/orgs/import", true),
    ("POST", "/api/orgs/import/json", true),
    ("POST", "/admin/v1/export", true),
    ("POST", "/admin/v1/import", true),
];

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

#[test]
fn the_openapi_document_lists_every_route_with_its_statuses_and_the_bearer_scheme() {
    let w = Work::new();
    let (src, tgt, archive) = setup(&w, 2);
    // The target receives the source's organisation 1; the source gives its JSON form.
    let serve = Serve::start(&w, &tgt, None, &[]);
    let source = Serve::start(&w, &src, None, &[]);
    let json_archive = source.get("/api/orgs/1/export/json").status(200).body.clone();

    let served = serve.call("GET", "/openapi.json", None, None);
    served.status(200);
    assert_eq!(served.headers["content-type"], "application/json");
    let doc = served.json();
    let printed = std::process::Command::new(assert_cmd::cargo::cargo_bin("orgport")).arg("openapi").output().expect("orgport openapi");
    assert!(printed.status.success(), "{}", String::from_utf8_lossy(&printed.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&printed.stdout).expect("JSON on stdout"), doc, "printed and served differ");
    let version = doc["openapi"].as_str().expect("an `openapi` version");
    assert!(version.starts_with("3.1."), "OpenAPI {version}");

    let listed: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| METHODS.iter().filter(|m| item.get(**m).is_some()).map(|m| (m.to_uppercase(), path.clone())))
        .collect();
    let expected: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p, _)| (m.to_string(), p.to_string())).collect();
    assert_eq!(listed, expected, "the document's routes");
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!((&scheme["type"], &scheme["scheme"]), (&json!("http"), &json!("bearer")), "{scheme}");
    assert_eq!(doc["components"]["schemas"]["ErrorBody"]["required"], json!(["error"]));

    // A job to show and cancel (finished: 409, documented).
    let job =
        serve.post("/api/orgs/import?dryRun=true&async=true", bytes(&archive)).status(202).json()["job"].as_str().unwrap().to_string();
    serve.wait_job(&job, |j| j["state"] == "done");
    let before = snapshot(&tgt);
    for (method, template, protected) in ROUTES {
        let operation = &doc["paths"][template][method.to_ascii_lowercase()];
        let responses = &operation["responses"];
        let what = format!("{method} {template}");
        let path = template.replace("{id}", if template.starts_with("/api/jobs/") { &job } else { "100" });
        let (path, body) = match template {
            "/api/orgs/import" => (path + "?dryRun=true", Some(bytes(&archive))),
            "/api/orgs/import/json" => (path + "?dryRun=true", Some(json_archive.clone())),
            "/admin/v1/export" => (path, Some(br#"{"org_ids": ["100"], "response_output": true}"#.to_vec())),
            // The only request that writes (the others are dry runs), so the last one.
            "/admin/v1/import" => {
                assert_eq!(snapshot(&tgt), before, "the dry runs changed the target");
                (path, Some([&br#"{"data_orgsv1": "#[..], &json_archive, b"}"].concat()))
            }
            _ => (path, None),
        };
        // The harness asserts that each answer's status is documented.
        let reply = serve.call(method, &path, Some(ROOT), body.clone());
        // The job has finished: cancelling it is a conflict.
        let expected = if method == "DELETE" { 409..410 } else { 200..300 };
        assert!(expected.contains(&reply.status), "{what}: {}", reply.status);
        if !protected {
            assert_eq!(operation.get("security"), None, "{what} needs no token");
            serve.call(method, &path, None, None).status(200);
            continue;
        }
        assert_eq!(operation["security"], json!([{"bearer": []}]), "{what}");
        for status in ["401", "403", "200"] {
            assert!(responses.get(status).is_some() || (status == "200" && method == "DELETE"), "{what}: no {status} in {responses}");
        }
        serve.call(method, &path, None, body.clone()).status(401);
        serve.call(method, &path, Some(USER), body).status(403);
    }
    assert_ne!(snapshot(&tgt), before, "`POST /admin/v1/import` imported nothing");
}

/// The document passes openapi-spec-validator (PyPI; on this project's machines with their
/// Python), which checks it against OpenAPI 3.1's schema and rules such as unique operation ids.
/// Without it the test says so and passes: CI does not install it.
#[test]
fn the_openapi_document_passes_a_validator() {
    let available = std::process::Command::new("python3").args(["-c", "import openapi_spec_validator"]).output();
    if !available.is_ok_and(|o| o.status.success()) {
        eprintln!("notice: skipped: no python3 with openapi-spec-validator (`pip install openapi-spec-validator`)");
        return;
    }
    let w = Work::new();
    let file = w.path("openapi.json");
    let printed = std::process::Command::new(assert_cmd::cargo::cargo_bin("orgport")).arg("openapi").output().expect("orgport openapi");
    std::fs::write(&file, &printed.stdout).expect("writing the document");
    let checked = std::process::Command::new("python3").args(["-m", "openapi_spec_validator"]).arg(&file).output().expect("python3");
    let said = format!("{}{}", String::from_utf8_lossy(&checked.stdout), String::from_utf8_lossy(&checked.stderr));
    assert!(checked.status.success() && said.contains("OK"), "{said}");
}
