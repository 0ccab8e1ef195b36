//! The OpenAPI 3.1 document of every endpoint, derived by utoipa from the handlers'
//! `#[utoipa::path]` attributes and the request and response types; served at
//! `GET /openapi.json` (no token: it holds no secret) and printed by `orgport openapi`.

use std::sync::LazyLock;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;

/// The name of the bearer scheme in `components.securitySchemes`.
const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(title = "orgport", description = "Export and import organisations over HTTP, for superusers (`orgport serve`)."),
    paths(
        healthz,
        openapi,
        crate::admin::index,
        crate::admin::script,
        crate::admin::style,
        crate::admin::orgs,
        crate::jobs::list,
        crate::jobs::show,
        crate::jobs::cancel,
        crate::export::export,
        crate::export::export_json,
        crate::import::import,
        crate::import::import_json,
        crate::zitadel::export,
        crate::zitadel::import,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Superusers)
)]
struct Api;

/// Every `/api` and `/admin` operation needs a superuser's bearer credential (the router's
/// `require_superuser` layer covers exactly those): the security requirement, and its 401 and
/// 403, added to each.
struct Superusers;

impl Modify for Superusers {
    fn modify(&self, doc: &mut Document) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "A token of the tokens file (`[[token]]`, kept as its SHA-256 hash), or a JWT as its `[jwt]` section \
                 configures (algorithms pinned; `iss`, `aud` and `exp` checked; superuser by a claim)",
            ))
            .build();
        doc.components.get_or_insert_with(Default::default).add_security_scheme(BEARER, SecurityScheme::Http(scheme));
        let error = |text: &str| {
            ResponseBuilder::new()
                .description(text)
                .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
                .build()
        };
        for (path, item) in doc.paths.paths.iter_mut() {
            if !(path.starts_with("/api/") || path.starts_with("/admin/")) {
                continue;
            }
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                operation.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
                let responses = &mut operation.responses.responses;
                responses.insert("401".into(), error("No valid bearer credential (`WWW-Authenticate: Bearer`)").into());
                responses.insert("403".into(), error("A valid credential, but not a superuser's").into());
            }
        }
    }
}

/// The refusals a handler lists in its `responses(...)`, one type each: the status, what it
/// means, and the `{"error": "..."}` body. Never built: the answers themselves are `ApiError`s.
pub(crate) mod refusal {
    use crate::error::ErrorBody;

    macro_rules! refusals {
        ($($name:ident = $status:tt, $description:literal;)*) => {$(
            #[derive(utoipa::IntoResponses)]
            #[response(status = $status, description = $description)]
            #[expect(dead_code, reason = "never built, only described")]
            pub(crate) struct $name(ErrorBody);
        )*};
    }

    refusals! {
        BadRequest = 400, "The request is not valid: the message names the parameter or field at fault";
        NotFound = 404, "No such organisation";
        Conflict = 409, "Values or objects of the target in the way, or the job was cancelled: nothing written";
        TooLarge = 413, "The body is larger than `--max-body`: nothing written";
        Unprocessable = 422, "The archive fails its checks (checksums, format version, encryption), or does not fit this database's configuration";
        Busy = 429, "As many jobs are running as `--max-jobs` allows";
        Storage = 502, "A store of the organisations' files, or GCS, failed";
        TimedOut = 504, "Past the request's `timeout`: cancelled, nothing written";
    }
}

static JSON: LazyLock<String> = LazyLock::new(|| Api::openapi().to_pretty_json().expect("the document serializes"));

/// The document, as pretty JSON.
pub fn document() -> &'static str {
    &JSON
}

/// `GET /healthz`.
#[utoipa::path(get, path = "/healthz", tag = "server", responses((status = 200, description = "The server is up: `{\"status\": \"ok\"}`", body = Object)))]
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", tag = "server", responses((status = 200, description = "This document", body = Object)))]
pub(crate) async fn openapi() -> Response {
    let mut response = document().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
