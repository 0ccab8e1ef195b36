//! The admin page (`GET /`): static HTML, CSS and JavaScript compiled into the binary, with no
//! external resource and no build step; it calls the API with the token the user enters, kept in
//! the tab's sessionStorage. And `GET /api/orgs`, the organisations it lists.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use orgport_core::orgs::OrgSize;
use orgport_core::plan::Plan;
use orgport_engines::Access;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::App;

/// Scripts and styles from this server only, no inline script, no frames, forms posted by script.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page's routes; none needs a token (the page holds no data until the API answers).
pub(crate) fn page() -> Router {
    Router::new().route("/", get(index)).route("/admin.js", get(script)).route("/admin.css", get(style))
}

#[utoipa::path(get, path = "/", tag = "admin page", responses((status = 200, description = "The admin page", content_type = "text/html")))]
pub(crate) async fn index() -> Response {
    asset("text/html; charset=utf-8", include_str!("admin/index.html"))
}

#[utoipa::path(get, path = "/admin.js", tag = "admin page", responses((status = 200, description = "The admin page's script", content_type = "text/javascript")))]
pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("admin/admin.js"))
}

#[utoipa::path(get, path = "/admin.css", tag = "admin page", responses((status = 200, description = "The admin page's styles", content_type = "text/css")))]
pub(crate) async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("admin/admin.css"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /api/orgs`: `{"orgs": [{"key", "rows"}]}`, every organisation of the database in key
/// order with the rows it owns, counted from one snapshot. Read-only, so it takes no job slot.
#[utoipa::path(get, path = "/api/orgs", tag = "orgs", responses(
    (status = 200, description = "Every organisation and the rows it owns", body = OrgList),
    (status = 422, description = "The configuration does not fit the database", body = ErrorBody)))]
pub(crate) async fn orgs(State(app): State<Arc<App>>) -> Result<Json<OrgList>, ApiError> {
    let sizes = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let s = &app.settings;
        let mut engine = orgport_engines::open(&s.db, &s.schemas, Access::ReadOnly)?;
        let plan = Plan::build(engine.introspect()?, &s.config, s.root.as_deref(), engine.capabilities())?;
        Ok(orgport_core::orgs::org_sizes(engine.as_mut(), &plan)?)
    })
    .await
    .map_err(|e| ApiError::internal(format!("listing the organisations stopped: {e}")))??;
    Ok(Json(OrgList { orgs: sizes }))
}

/// `GET /api/orgs`.
#[derive(Serialize, ToSchema)]
pub(crate) struct OrgList {
    /// In key order.
    #[schema(schema_with = org_sizes)]
    orgs: Vec<OrgSize>,
}

/// The schema of core's [`OrgSize`] (the core knows no OpenAPI).
fn org_sizes() -> utoipa::openapi::Array {
    use utoipa::openapi::{ArrayBuilder, ObjectBuilder, Type};
    let size = ObjectBuilder::new()
        .property("key", ObjectBuilder::new().schema_type(Type::String).description(Some("The root row's key, as `--org` takes it")))
        .property("rows", ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).description(Some("The rows it owns")))
        .required("key")
        .required("rows");
    ArrayBuilder::new().items(size).build()
}
