//! `POST /api/orgs/import` (and `/import/json`): an archive in the request body (binary, or its
//! JSON form, converted to a binary one before anything else), imported as a new organisation.
//!
//! The body is streamed into a temporary file (the import reads its archive three times),
//! capped at `max_body`: beyond it, 413 and the file is gone before anything is imported. The
//! import runs as a job on a blocking thread; the request waits for its report, or with
//! `async=true` answers 202 with the job's id at once.

use std::io::{BufReader, BufWriter, Read, Write};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use orgport_core::archive::{crypt, json, FORMAT_VERSION};
use orgport_core::import::{import as core_import, FilesImport, ImportOptions};
use orgport_core::plan::Plan;
use orgport_engines::Access;
use serde::{Deserialize, Serialize};
use tempfile::NamedTempFile;
use tokio::io::AsyncWriteExt;
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::jobs::{CancelOnDrop, JobProgress, Slot, Timeout};
use crate::openapi::refusal;
use crate::App;

/// A body beyond the limit is still read (and dropped) up to this many bytes, so that the
/// client, still sending, reads the 413 rather than a reset connection.
const DRAIN: u64 = 64 << 20;

#[derive(Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct ImportQuery {
    /// Accept an archive of another format version that this orgport still reads.
    #[serde(default)]
    pub(crate) ignore_version: bool,
    /// Do everything but commit: the report of what would be created.
    #[serde(default)]
    pub(crate) dry_run: bool,
    /// Answer 202 with a job id at once instead of waiting for the report.
    #[serde(default, rename = "async")]
    pub(crate) run_async: bool,
    /// The configured store (`[files.NAME]`) that receives the archive's files, instead of the
    /// store of the same name as the archive's. The archive must then hold one set of files.
    #[serde(default)]
    pub(crate) storage_name: Option<String>,
}

/// Makes the binary archive an import reads, on the job's thread: the upload itself, or its
/// conversion from the JSON form (whose failures are the archive's: 422).
/// `202`: the import runs on as this job (`GET /api/jobs/{job}`, also the `Location` header).
#[derive(Serialize, ToSchema)]
pub(crate) struct JobStarted {
    job: String,
}

pub(crate) type Prepare = Box<dyn FnOnce() -> Result<NamedTempFile, ApiError> + Send>;

#[utoipa::path(post, path = "/api/orgs/import", tag = "orgs", params(ImportQuery),
    request_body(description = "The archive (`orgport export`'s binary form, encrypted or not), streamed", content(("application/octet-stream"))),
    responses(
        (status = 200, description = "The organisation was imported (or, with `dryRun`, would be): the import report", body = Object),
        (status = 202, description = "With `async=true`, or once the import outlives `--reply-within`: the job that imports it", body = JobStarted), refusal::BadRequest, refusal::Conflict, refusal::TooLarge, refusal::Unprocessable, refusal::Busy, refusal::Storage))]
pub(crate) async fn import(
    State(app): State<Arc<App>>,
    query: Result<Query<ImportQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    receive(app, query, headers, body, false).await
}

/// `POST /api/orgs/import/json`: the JSON form of an archive as the body.
#[utoipa::path(post, path = "/api/orgs/import/json", tag = "orgs", params(ImportQuery),
    request_body(description = "The archive in its JSON form (`orgport export --json`)", content((Object = "application/json"))),
    responses(
        (status = 200, description = "The organisation was imported (or, with `dryRun`, would be): the import report", body = Object),
        (status = 202, description = "With `async=true`, or once the import outlives `--reply-within`: the job that imports it", body = JobStarted), refusal::BadRequest, refusal::Conflict, refusal::TooLarge, refusal::Unprocessable, refusal::Busy, refusal::Storage))]
pub(crate) async fn import_json(
    State(app): State<Arc<App>>,
    query: Result<Query<ImportQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    receive(app, query, headers, body, true).await
}

async fn receive(
    app: Arc<App>,
    query: Result<Query<ImportQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
    json: bool,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if let Some(name) = &query.storage_name {
        if !app.settings.config.files.contains_key(name) {
            return Err(ApiError::bad_request(format!("storageName `{name}`: the configuration declares no store `[files.{name}]`")));
        }
    }
    let slot = app.jobs.slot()?;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let upload = spool(body, declared, app.settings.max_body).await?;
    let prepare: Prepare = match json {
        false => Box::new(move || Ok(upload)),
        true => Box::new(move || {
            let file = upload.reopen().map_err(|e| ApiError::internal(format!("cannot open the upload: {e}")))?;
            from_json(file, None)
        }),
    };
    start(app, slot, prepare, query, None).await
}

/// The binary form of a JSON archive, in a temporary file: `input` is the archive, or an
/// object holding it in `field`.
pub(crate) fn from_json(input: impl Read, field: Option<&str>) -> Result<NamedTempFile, ApiError> {
    let temp = |e: std::io::Error| ApiError::internal(format!("cannot write a temporary file: {e}"));
    let mut binary = tempfile::Builder::new().prefix(".orgport-upload-").tempfile().map_err(temp)?;
    {
        let mut out = BufWriter::with_capacity(1 << 16, binary.as_file_mut());
        match field {
            None => json::from_json(input, &mut out, None)?,
            Some(field) => json::from_json_field(input, field, &mut out, None)?,
        };
        out.flush().map_err(temp)?;
    }
    Ok(binary)
}

/// Runs an import as a job: the report when it ends, or 202 and the job's id with `async`.
/// Past `timeout` the job is cancelled, the target left as it was, and the answer is 504.
pub(crate) async fn start(
    app: Arc<App>,
    slot: Slot,
    prepare: Prepare,
    query: ImportQuery,
    timeout: Option<Timeout>,
) -> Result<Response, ApiError> {
    let job = app.jobs.create("import");
    let running = job.clone();
    let run_async = query.run_async;
    let reply_within = app.settings.reply_within;
    let mut work = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        running.run(|progress| {
            let archive = prepare()?;
            run(&app, &archive, &query, progress)
        })
    });
    if run_async {
        return Ok(accepted(&job.id));
    }
    let timer = timeout.map(|t| t.arm(job.clone()));
    // A client that goes away cancels its import.
    let mut guard = CancelOnDrop(Some(job.clone()));
    // Without a timeout of its own, an import that outlives `reply_within` goes on as a job,
    // and the caller gets its id to follow it.
    let joined = match &timer {
        None => match tokio::time::timeout(reply_within, &mut work).await {
            Ok(joined) => joined,
            Err(_) => {
                guard.0 = None;
                return Ok(accepted(&job.id));
            }
        },
        Some(_) => work.await,
    };
    let result = joined.map_err(|e| ApiError::internal(format!("the import stopped: {e}")))?;
    guard.0 = None;
    let result = Timeout::judge(timer, result);
    result.map(|report| Json(report).into_response())
}

/// 202 and where to follow the job.
fn accepted(id: &str) -> Response {
    let mut response = (StatusCode::ACCEPTED, Json(JobStarted { job: id.to_string() })).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/jobs/{id}")) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// The body in a temporary file, or 413 (the file removed) when it is longer than `max`.
pub(crate) async fn spool(body: Body, declared: Option<u64>, max: u64) -> Result<NamedTempFile, ApiError> {
    let too_large =
        || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the archive is larger than the limit of {max} bytes (`--max-body`)"));
    let tmp = tempfile::Builder::new()
        .prefix(".orgport-upload-")
        .tempfile()
        .map_err(|e| ApiError::internal(format!("cannot make a temporary file: {e}")))?;
    let std_file = tmp.reopen().map_err(|e| ApiError::internal(format!("cannot open a temporary file: {e}")))?;
    let mut file = tokio::fs::File::from_std(std_file);
    let mut stream = body.into_data_stream();
    let mut total = 0u64;
    let mut over = declared.is_some_and(|n| n > max);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        total += chunk.len() as u64;
        if total > max {
            over = true;
        }
        if over {
            if total > DRAIN {
                break;
            }
            continue;
        }
        file.write_all(&chunk).await.map_err(|e| ApiError::internal(format!("cannot write a temporary file: {e}")))?;
    }
    if over {
        return Err(too_large());
    }
    file.flush().await.map_err(|e| ApiError::internal(format!("cannot write a temporary file: {e}")))?;
    Ok(tmp)
}

/// The import itself, on a blocking thread.
fn run(app: &App, archive: &NamedTempFile, query: &ImportQuery, progress: &JobProgress) -> Result<serde_json::Value, ApiError> {
    let s = &app.settings;
    // Decrypted on every pass when encrypted (age), with the server's identities.
    let open = || -> orgport_core::Result<Box<dyn Read>> {
        let file = archive.reopen().map_err(|e| orgport_core::Error::io("cannot open archive", archive.path(), e))?;
        crypt::decrypt(Box::new(BufReader::with_capacity(1 << 16, file)), s.encryption.identities.as_ref())
    };
    check_version(&mut open()?, query.ignore_version)?;
    let mut engine = orgport_engines::open(&s.db, &s.schemas, Access::ReadWrite)?;
    // The archive's root, where the configuration names none (as `orgport import`).
    let root = match s.config.root {
        Some(_) => None,
        None => Some(orgport_core::archive::read_manifest(&mut open()?)?.root_table),
    };
    let mut plan = Plan::build(engine.introspect()?, &s.config, root.as_deref(), engine.capabilities())?;
    if let Some(name) = &query.storage_name {
        receive_files_in(&mut plan, name, &orgport_core::archive::read_manifest(&mut open()?)?)?;
    }
    let files = FilesImport { open: s.open_store, jobs: s.file_jobs };
    let options = ImportOptions { dry_run: query.dry_run, files: Some(files) };
    let report = core_import(engine.as_mut(), &plan, &open, &options, progress)?;
    serde_json::to_value(&report).map_err(|e| ApiError::internal(format!("the report: {e}")))
}

/// `ignoreVersion`: the core reads every format version up to its own and refuses later ones;
/// the server also refuses earlier ones unless asked, reading the version from the header.
fn check_version(archive: &mut dyn Read, ignore: bool) -> Result<(), ApiError> {
    let mut header = [0u8; 12];
    let read = archive.read_exact(&mut header);
    if read.is_err() || &header[..8] != orgport_core::archive::MAGIC {
        // Not an archive: the core says so.
        return Ok(());
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version < FORMAT_VERSION && !ignore {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("archive format version {version} is older than this orgport's ({FORMAT_VERSION})\nhint: pass `ignoreVersion=true` to import it anyway"),
        ));
    }
    Ok(())
}

/// `storageName`: the archive's one set of files goes to the configured store `name`, with its
/// prefix; the target's store of the set's own name is not used.
fn receive_files_in(plan: &mut Plan, name: &str, manifest: &orgport_core::archive::Manifest) -> Result<(), ApiError> {
    let set = match manifest.files.as_slice() {
        [] => return Ok(()),
        [set] => set,
        sets => {
            let names: Vec<&str> = sets.iter().map(|s| s.name.as_str()).collect();
            return Err(ApiError::bad_request(format!(
                "storageName `{name}` names one store, and the archive holds {} sets of files ({}): import it without storageName, \
                 each set into the store of its name",
                sets.len(),
                names.join(", ")
            )));
        }
    };
    let mut target = plan
        .files
        .iter()
        .find(|s| s.name == name)
        .cloned()
        .ok_or_else(|| ApiError::bad_request(format!("storageName `{name}`: no store `[files.{name}]`")))?;
    target.name = set.name.clone();
    plan.files.retain(|s| s.name != set.name);
    plan.files.push(target);
    Ok(())
}
