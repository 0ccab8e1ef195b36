//! ZITADEL's shape: `POST /admin/v1/export` and `POST /admin/v1/import`, with JSON bodies.
//!
//! Export: `{"org_ids": [...], "excluded_org_ids": [...], "with_passwords": bool, "with_otp":
//! bool, "timeout": "30s", "response_output": bool, "gcs_output": {"path", "bucket",
//! "serviceaccount_json"}}` — the organisations of `org_ids` (strings or numbers), or all of
//! them when it is empty, but `excluded_org_ids`, in one archive in its JSON form: the response
//! body with `response_output`, and/or the object `gs://bucket/path`. `with_passwords` and
//! `with_otp` include the sensitive groups `passwords` and `otp` of orgport.toml; a group the
//! configuration does not declare withholds nothing, so the flag is ignored.
//!
//! Import: `{"data_orgsv1": <the JSON export>}` or `{"data_orgsv1_gcs": {"path", "bucket",
//! "serviceaccount_json"}}`, and `"timeout"`: the archive converted to its binary form and
//! imported as `POST /api/orgs/import` does, every check included.
//!
//! `serviceaccount_json` is a base64-encoded service-account JSON: decoded, checked, written to
//! a private temporary file for the request's GCS client and removed after; never logged nor
//! shown. With `STORAGE_EMULATOR_HOST` set (an emulator, no credentials) it must still be
//! base64, and is not used; empty, the server's own GCS credentials are used.
//!
//! Past `timeout` (Go's duration syntax) the job is cancelled through the core's
//! `Progress::cancelled`: 504, the target as it was. Unknown fields, wrong types, bad JSON: 400
//! naming the field. Leniency: ZITADEL's documented GCS export example sends `\t"{ ... }` (a
//! stray quote before the object); a body whose first character other than a blank is `"`
//! directly followed by `{` is read without that quote, and the server logs a warning.

use std::collections::BTreeSet;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use orgport_core::export::ExportOptions;
use orgport_core::progress::Progress;
use orgport_core::store::ObjectStore;
use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, Visitor};
use serde::Deserialize;
use serde_json::json;
use tempfile::{NamedTempFile, TempPath};
use utoipa::openapi::{ObjectBuilder, OneOfBuilder, RefOr, Schema, Type};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::import::{self, ImportQuery, Prepare};
use crate::jobs::{CancelOnDrop, Timeout};
use crate::openapi::refusal;
use crate::App;

/// `POST /admin/v1/export`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportRequest {
    /// The organisations to export; empty: all of them.
    #[serde(default)]
    org_ids: Vec<OrgId>,
    /// Organisations left out.
    #[serde(default)]
    excluded_org_ids: Vec<OrgId>,
    /// Include the sensitive group `passwords` of orgport.toml.
    #[serde(default)]
    with_passwords: bool,
    /// Include the sensitive group `otp` of orgport.toml.
    #[serde(default)]
    with_otp: bool,
    /// Past it the export is cancelled (504): Go's duration syntax, such as `"30s"` or `"1m30s"`.
    timeout: Option<String>,
    /// The archive (JSON form) as the response body.
    #[serde(default)]
    response_output: bool,
    /// The archive (JSON form) also written to this GCS object.
    gcs_output: Option<GcsObject>,
}

/// `POST /admin/v1/import`'s body: one of `data_orgsv1` and `data_orgsv1_gcs`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportRequest {
    /// Past it the import is cancelled (504), the database as it was: Go's duration syntax.
    timeout: Option<String>,
    /// The export inline, as `POST /admin/v1/export` answers it. Only skipped here: the job
    /// converts it as it reads the body again, so it is never held whole.
    #[schema(value_type = Option<Object>)]
    data_orgsv1: Option<IgnoredAny>,
    /// The export in a GCS object.
    data_orgsv1_gcs: Option<GcsObject>,
}

/// An object in GCS and the credentials to reach it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GcsObject {
    path: String,
    bucket: String,
    /// Base64 of a service-account JSON: never logged, never in a message.
    serviceaccount_json: String,
}

/// An organisation's key: ZITADEL writes ids as strings of digits, orgport's keys may be
/// integers; either is taken, as text.
pub(crate) struct OrgId(String);

impl utoipa::PartialSchema for OrgId {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::String))
            .item(ObjectBuilder::new().schema_type(Type::Integer))
            .description(Some("An organisation's key, a string or an integer"))
            .into()
    }
}

impl ToSchema for OrgId {}

impl<'de> Deserialize<'de> for OrgId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<OrgId, D::Error> {
        struct Id;
        impl Visitor<'_> for Id {
            type Value = OrgId;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an organisation id, a string or an integer")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<OrgId, E> {
                Ok(OrgId(s.to_string()))
            }
            fn visit_i64<E: de::Error>(self, i: i64) -> Result<OrgId, E> {
                Ok(OrgId(i.to_string()))
            }
            fn visit_u64<E: de::Error>(self, u: u64) -> Result<OrgId, E> {
                Ok(OrgId(u.to_string()))
            }
        }
        d.deserialize_any(Id)
    }
}

/// The request's JSON, read from its spooled body, or a 400 naming the field at fault.
fn parse<T: DeserializeOwned>(body: &Spooled) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_reader(body.reader()?);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match path.as_str() {
            "." | "" => ApiError::bad_request(format!("the request body is not valid: {inner}")),
            _ => ApiError::bad_request(format!("the request body is not valid: `{path}`: {inner}")),
        }
    })?;
    de.end().map_err(|e| ApiError::bad_request(format!("the request body is not valid: {e}")))?;
    Ok(value)
}

/// A request's body in a temporary file, read from its first character other than a blank,
/// without the stray quote of ZITADEL's documented example body `\t"{ ... }`.
struct Spooled {
    file: NamedTempFile,
    start: u64,
}

fn upload_error(e: std::io::Error) -> ApiError {
    ApiError::internal(format!("cannot read the upload: {e}"))
}

impl Spooled {
    fn new(file: NamedTempFile) -> Result<Spooled, ApiError> {
        let mut start = 0u64;
        let mut first = [0u8; 2];
        let mut bytes = BufReader::new(file.reopen().map_err(upload_error)?).bytes();
        while let Some(byte) = bytes.next().transpose().map_err(upload_error)? {
            if !byte.is_ascii_whitespace() {
                first = [byte, bytes.next().transpose().map_err(upload_error)?.unwrap_or(0)];
                break;
            }
            start += 1;
        }
        if first == *b"\"{" {
            eprintln!(
                "warning: the request body starts with a stray `\"` before `{{` (as ZITADEL's documented example does); read without it"
            );
            start += 1;
        }
        Ok(Spooled { file, start })
    }

    /// The body, from where the JSON starts.
    fn reader(&self) -> Result<BufReader<std::fs::File>, ApiError> {
        let mut file = self.file.reopen().map_err(upload_error)?;
        file.seek(SeekFrom::Start(self.start)).map_err(upload_error)?;
        Ok(BufReader::with_capacity(1 << 16, file))
    }
}

fn timeout(text: Option<&str>) -> Result<Option<Timeout>, ApiError> {
    text.map(|t| Timeout::parse(t).map_err(|e| ApiError::bad_request(format!("`timeout`: {e}")))).transpose()
}

/// The request's body, spooled to a temporary file, up to `max_body`: 413 beyond. It is read
/// from there as a stream, so its size costs disk, not memory.
async fn read_body(app: &App, headers: &HeaderMap, body: Body) -> Result<Spooled, ApiError> {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    Spooled::new(import::spool(body, declared, app.settings.max_body).await?)
}

/// `POST /admin/v1/export`.
#[utoipa::path(post, path = "/admin/v1/export", tag = "zitadel", operation_id = "zitadel_export", request_body = ExportRequest, responses(
    (status = 200, description = "With `response_output`: the archive in its JSON form (what `data_orgsv1` takes); else `{\"gcs_output\": \"gs://BUCKET/PATH\"}`", body = Object),
    refusal::BadRequest, refusal::NotFound, refusal::Conflict, refusal::TooLarge, refusal::Unprocessable, refusal::Busy, refusal::Storage, refusal::TimedOut))]
pub(crate) async fn export(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let body = read_body(&app, &headers, body).await?;
    let request: ExportRequest = parse(&body)?;
    let timeout = timeout(request.timeout.as_deref())?;
    if !request.response_output && request.gcs_output.is_none() {
        return Err(ApiError::bad_request("nothing to do: ask for `response_output: true` and/or `gcs_output`"));
    }
    let gcs = request.gcs_output.as_ref().map(|g| Gcs::open(g, "gcs_output")).transpose()?;
    let sensitive = &app.settings.config.sensitive;
    let with: BTreeSet<String> = [("passwords", request.with_passwords), ("otp", request.with_otp)]
        .into_iter()
        .filter(|&(group, asked)| asked && sensitive.contains_key(group))
        .map(|(group, _)| group.to_string())
        .collect();
    crate::export::sensitive_allowed(&app, &with, "with_passwords/with_otp")?;
    let orgs: Vec<String> = request.org_ids.into_iter().map(|o| o.0).collect();
    let excluded: Vec<String> = request.excluded_org_ids.into_iter().map(|o| o.0).collect();
    let slot = app.jobs.slot()?;
    let temp = |e: std::io::Error| ApiError::internal(format!("cannot write a temporary file: {e}"));
    // The archive, removed once sent.
    let file = tempfile::Builder::new().prefix(".orgport-export-").tempfile().map_err(temp)?.into_temp_path();
    let path = file.to_path_buf();
    let job = app.jobs.create("export");
    let running = job.clone();
    let work = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        running.run(|progress| {
            export_json(&app, orgs, &excluded, with, &path, progress)?;
            let mut report = json!({});
            if let Some(gcs) = gcs {
                if progress.cancelled() {
                    return Err(orgport_core::Error::Cancelled.into());
                }
                let mut input = std::fs::File::open(&path).map_err(|e| ApiError::internal(format!("cannot read the export: {e}")))?;
                gcs.write(&mut input)?;
                report["gcs_output"] = json!(gcs.url());
            }
            Ok(report)
        })
    });
    let armed = timeout.map(|t| t.arm(job.clone()));
    let mut guard = CancelOnDrop(Some(job));
    let result = work.await.map_err(|e| ApiError::internal(format!("the export stopped: {e}")))?;
    guard.0 = None;
    let report = Timeout::judge(armed, result)?;
    if !request.response_output {
        return Ok(Json(report).into_response());
    }
    let mut response = crate::export::stream(move |out| {
        let input = std::fs::File::open(&file).map_err(|e| ApiError::internal(format!("cannot read the export: {e}")))?;
        std::io::copy(&mut BufReader::with_capacity(1 << 16, input), out)
            .map_err(|e| ApiError::internal(format!("sending the export: {e}")))?;
        drop(file);
        Ok(())
    })
    .await?;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// The organisations' archive in its JSON form, in a temporary file.
fn export_json(
    app: &App,
    orgs: Vec<String>,
    excluded: &[String],
    with: BTreeSet<String>,
    path: &Path,
    progress: &dyn Progress,
) -> Result<(), ApiError> {
    let orgs = match orgs.is_empty() {
        // All but the excluded ones, listed through the engine.
        true => {
            let s = &app.settings;
            let mut engine = orgport_engines::open(&s.db, &s.schemas, orgport_engines::Access::ReadOnly)?;
            let plan = orgport_core::plan::Plan::build(engine.introspect()?, &s.config, s.root.as_deref(), engine.capabilities())?;
            orgport_core::orgs::all_orgs_except(engine.as_mut(), &plan, excluded)?
        }
        false => orgs.into_iter().filter(|o| !excluded.contains(o)).collect(),
    };
    if orgs.is_empty() {
        return Err(ApiError::bad_request("`excluded_org_ids` leaves none of `org_ids` to export"));
    }
    let temp = |e: std::io::Error| ApiError::internal(format!("cannot write the export: {e}"));
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::fs::File::create(path).map_err(temp)?);
    let options = ExportOptions { orgs, with_groups: with, spool_dir: None, jobs: 1, files: None };
    crate::export::run(app, options, true, &mut out, progress)?;
    out.flush().map_err(temp)
}

/// `POST /admin/v1/import`.
#[utoipa::path(post, path = "/admin/v1/import", tag = "zitadel", operation_id = "zitadel_import", request_body = ImportRequest, responses(
    (status = 200, description = "The organisations were imported: the import report", body = Object),
    refusal::BadRequest, refusal::Conflict, refusal::TooLarge, refusal::Unprocessable, refusal::Busy, refusal::Storage, refusal::TimedOut))]
pub(crate) async fn import(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let body = read_body(&app, &headers, body).await?;
    let request: ImportRequest = parse(&body)?;
    let timeout = timeout(request.timeout.as_deref())?;
    let prepare: Prepare = match (request.data_orgsv1, request.data_orgsv1_gcs) {
        (Some(_), None) => Box::new(move || import::from_json(body.reader()?, Some("data_orgsv1"))),
        (None, Some(object)) => {
            let gcs = Gcs::open(&object, "data_orgsv1_gcs")?;
            Box::new(move || {
                let reader = gcs.store.reader(&gcs.path)?;
                import::from_json(reader, None)
            })
        }
        _ => return Err(ApiError::bad_request("give the export as one of `data_orgsv1` (inline) or `data_orgsv1_gcs`")),
    };
    let slot = app.jobs.slot()?;
    import::start(app, slot, prepare, ImportQuery::default(), timeout).await
}

/// A GCS object opened with the request's credentials.
struct Gcs {
    store: Box<dyn ObjectStore>,
    bucket: String,
    path: String,
    /// The decoded credentials, for the store's client; removed when the request ends.
    _credentials: Option<TempPath>,
}

impl Gcs {
    fn open(object: &GcsObject, field: &str) -> Result<Gcs, ApiError> {
        let bad = |what: &str| ApiError::bad_request(format!("`{field}`: {what}"));
        if object.bucket.is_empty() || object.bucket.contains('/') {
            return Err(bad("`bucket` must be a bucket's name"));
        }
        if object.path.is_empty() {
            return Err(bad("`path` is empty"));
        }
        let emulator = std::env::var("STORAGE_EMULATOR_HOST").ok().filter(|h| !h.is_empty());
        let credentials = match object.serviceaccount_json.trim() {
            "" => None,
            encoded => {
                let decoded =
                    STANDARD.decode(encoded).map_err(|_| bad("`serviceaccount_json` is not base64 (of a service-account JSON file)"))?;
                match &emulator {
                    // An emulator takes no credentials: decoded, and left unused.
                    Some(_) => None,
                    None => Some(credentials_file(&decoded).map_err(|e| bad(&e))?),
                }
            }
        };
        let path = credentials.as_ref().map(|p| p.display().to_string());
        let env = |name: &str| match name {
            "GOOGLE_APPLICATION_CREDENTIALS" if path.is_some() => path.clone(),
            "STORAGE_EMULATOR_HOST" => emulator.clone(),
            other => std::env::var(other).ok(),
        };
        let store = orgport_objects::open_store(&format!("gs://{}", object.bucket), env)
            .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
        Ok(Gcs { store, bucket: object.bucket.clone(), path: object.path.clone(), _credentials: credentials })
    }

    fn url(&self) -> String {
        format!("gs://{}/{}", self.bucket, self.path)
    }

    /// Writes the object; it appears only once complete.
    fn write(&self, input: &mut dyn Read) -> Result<(), ApiError> {
        let mut writer = self.store.writer(&self.path)?;
        std::io::copy(input, &mut writer).map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, format!("writing `{}`: {e}", self.url())))?;
        writer.finish()?;
        Ok(())
    }
}

/// The service-account JSON in a temporary file only this process's user can read.
fn credentials_file(decoded: &[u8]) -> Result<TempPath, String> {
    let account: serde_json::Value =
        serde_json::from_slice(decoded).map_err(|_| "`serviceaccount_json` is not a base64-encoded JSON document".to_string())?;
    if !account.is_object() || account.get("type").is_none() {
        return Err("`serviceaccount_json` is not a service-account JSON (an object with `type`)".into());
    }
    let mut file =
        tempfile::Builder::new().prefix(".orgport-gcs-").tempfile().map_err(|e| format!("cannot write a temporary file: {e}"))?;
    file.write_all(decoded).map_err(|e| format!("cannot write a temporary file: {e}"))?;
    Ok(file.into_temp_path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_account_is_checked_without_showing_it_and_kept_private() {
        let secret = r#"{"private_key": "-----BEGIN PRIVATE KEY-----very-secret"}"#;
        let err = credentials_file(secret.as_bytes()).unwrap_err();
        assert!(err.contains("`type`") && !err.contains("very-secret"), "{err}");
        let err = credentials_file(b"very-secret, not JSON").unwrap_err();
        assert!(!err.contains("very-secret"), "{err}");
        let account = br#"{"type": "service_account", "private_key": "very-secret"}"#;
        let path = credentials_file(account).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), account);
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
        assert_eq!(mode & 0o077, 0, "readable by others: {mode:o}");
        let gone = path.to_path_buf();
        drop(path);
        assert!(!gone.exists(), "the credentials outlived their request");
    }

    #[test]
    fn only_a_stray_quote_right_before_the_object_is_read_past() {
        let read = |body: &[u8]| {
            let mut file = NamedTempFile::new().unwrap();
            file.write_all(body).unwrap();
            let mut text = Vec::new();
            let spooled = Spooled::new(file).unwrap_or_else(|_| panic!("readable"));
            spooled.reader().unwrap_or_else(|_| panic!("readable")).read_to_end(&mut text).unwrap();
            text
        };
        assert_eq!(read(b"\t\"{\"a\": 1}"), b"{\"a\": 1}");
        assert_eq!(read(b" {\"a\": 1}"), b"{\"a\": 1}");
        assert_eq!(read(b"\" {\"a\": 1}"), b"\" {\"a\": 1}");
        assert_eq!(read(b"\"\"{}"), b"\"\"{}");
        assert_eq!(read(b"\""), b"\"");
        assert_eq!(read(b""), b"");
    }

    #[test]
    fn timeouts_are_gos_durations() {
        let secs = |t: &str| Timeout::parse(t).map(|t| t.0.as_secs_f64());
        assert_eq!(secs("30s"), Ok(30.0));
        assert_eq!(secs("10m"), Ok(600.0));
        assert_eq!(secs("1m30s"), Ok(90.0));
        assert_eq!(secs("1.5h"), Ok(5400.0));
        assert_eq!(secs("500ms"), Ok(0.5));
        for bad in ["", "30", "s", "10 m", "1d", "-1s", "0s"] {
            assert!(Timeout::parse(bad).is_err(), "{bad:?} was taken");
        }
    }
}
