//! `GET /api/orgs/{id}/export`: the organisation's archive, streamed as the core writes it.
//!
//! The export runs on a blocking thread and writes into the response body through a bounded
//! channel (8 chunks of 64 KiB): no second copy on disk — the core already spools the rows until
//! the manifest is known, and writes nothing before — and memory that does not grow with the
//! archive. Since the first byte comes only once the rows are read, a failure before it (an
//! unknown organisation, a database error) still gets its own status; one after it (a file
//! that cannot be read) cuts the body short, which the client sees as an incomplete response
//! (and the archive's checksums would refuse). A client that goes away fails the export's next
//! write, and the export stops.

use std::collections::BTreeSet;
use std::io::{self, Seek, Write};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use orgport_core::archive::crypt::Sink;
use orgport_core::archive::json;
use orgport_core::export::{export as core_export, ExportOptions};
use orgport_core::files::{FilesExport, FilesMode};
use orgport_core::plan::Plan;
use orgport_core::progress::{Progress, Quiet};
use orgport_engines::Access;
use serde::Deserialize;
use tokio::sync::mpsc;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::openapi::refusal;
use crate::App;

const CHUNK: usize = 64 << 10;
const CHUNKS_IN_FLIGHT: usize = 8;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ExportQuery {
    /// Sensitive groups to include, comma-separated (`passwords,otp`); withheld otherwise.
    #[serde(default)]
    with: Option<String>,
}

type Chunk = io::Result<Bytes>;

#[utoipa::path(get, path = "/api/orgs/{id}/export", tag = "orgs", params(("id" = String, Path, description = "The organisation's key"), ExportQuery),
    responses((status = 200, description = "The organisation's archive, streamed (cut short if it fails once sent)", content_type = "application/octet-stream"), refusal::BadRequest, refusal::NotFound, refusal::Unprocessable, refusal::Busy, refusal::Storage))]
pub(crate) async fn export(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    respond(app, id, query, false).await
}

/// `GET /api/orgs/{id}/export/json`: the same archive in its JSON form.
#[utoipa::path(get, path = "/api/orgs/{id}/export/json", tag = "orgs", params(("id" = String, Path, description = "The organisation's key"), ExportQuery),
    responses((status = 200, description = "The organisation's archive in its JSON form, streamed", body = Object), refusal::BadRequest, refusal::NotFound, refusal::Unprocessable, refusal::Busy, refusal::Storage))]
pub(crate) async fn export_json(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    respond(app, id, query, true).await
}

async fn respond(
    app: Arc<App>,
    id: String,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
    json: bool,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let with: BTreeSet<String> =
        query.with.iter().flat_map(|w| w.split(',')).map(str::trim).filter(|g| !g.is_empty()).map(String::from).collect();
    sensitive_allowed(&app, &with, "with=")?;
    let slot = app.jobs.slot()?;
    let org = id.clone();
    let mut response = stream(move |out| {
        let _slot = slot;
        let options = ExportOptions { orgs: vec![org], with_groups: with, spool_dir: None, jobs: 1, files: None };
        run(&app, options, json, out, &Quiet)
    })
    .await?;
    let headers = response.headers_mut();
    let (kind, extension) = if json { ("application/json", "json") } else { ("application/octet-stream", "orgport") };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    let name: String = id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"org-{name}.{extension}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// Sensitive groups leave only encrypted, unless the server was started with
/// `--allow-plaintext-secrets`; `asked` names the request's parameter.
pub(crate) fn sensitive_allowed(app: &App, with: &BTreeSet<String>, asked: &str) -> Result<(), ApiError> {
    let encryption = &app.settings.encryption;
    if with.is_empty() || encryption.recipients.is_some() || encryption.allow_plaintext_secrets {
        return Ok(());
    }
    let groups = with.iter().cloned().collect::<Vec<_>>().join(",");
    Err(ApiError::bad_request(format!(
        "`{asked}` asks for sensitive values ({groups}), and this server's exports are not encrypted\nhint: start `orgport serve` with `--encrypt-to RECIPIENT`, or `--allow-plaintext-secrets`"
    )))
}

/// A response whose body `work` writes on a blocking thread. A failure before the first byte
/// is the response (its own status); after it, the body is cut short.
pub(crate) async fn stream(work: impl FnOnce(&mut ChannelWriter) -> Result<(), ApiError> + Send + 'static) -> Result<Response, ApiError> {
    let (tx, mut rx) = mpsc::channel::<Chunk>(CHUNKS_IN_FLIGHT);
    let work = tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter { tx: tx.clone(), buf: Vec::with_capacity(CHUNK) };
        let result = work(&mut out).and_then(|()| out.flush().map_err(|e| ApiError::internal(format!("sending the archive: {e}"))));
        if let Err(e) = &result {
            // The body stream ends with an error: the response is cut short, never complete.
            let _ = tx.blocking_send(Err(io::Error::other(e.message.clone())));
        }
        result
    });
    let first = match rx.recv().await {
        Some(Ok(bytes)) => bytes,
        // Nothing was sent: the export's own error, with its status.
        _ => {
            return Err(match work.await {
                Ok(Err(e)) => e,
                Ok(Ok(())) => ApiError::internal("the export wrote nothing"),
                Err(e) => ApiError::internal(format!("the export stopped: {e}")),
            })
        }
    };
    let rest = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|chunk| (chunk, rx)) });
    let body = futures_util::stream::StreamExt::chain(futures_util::stream::iter([Ok(first)]), rest);
    let mut response = Body::from_stream(body).into_response();
    *response.status_mut() = StatusCode::OK;
    Ok(response)
}

/// The export itself, on a blocking thread: the plan of the configured database, the files its
/// configuration declares embedded in the archive; `options.files` is filled in here. The JSON
/// form is converted from a binary archive in a temporary file.
pub(crate) fn run(app: &App, mut options: ExportOptions, json: bool, out: &mut dyn Write, progress: &dyn Progress) -> Result<(), ApiError> {
    let s = &app.settings;
    let mut engine = orgport_engines::open(&s.db, &s.schemas, Access::ReadOnly)?;
    let plan = Plan::build(engine.introspect()?, &s.config, s.root.as_deref(), engine.capabilities())?;
    options.files = (!plan.files.is_empty()).then_some(FilesExport { mode: FilesMode::Embed, open: s.open_store, jobs: s.file_jobs });
    // With `--encrypt-to`, either form leaves encrypted.
    let mut sink = Sink::new(&mut *out, s.encryption.recipients.as_ref())?;
    if !json {
        core_export(engine.as_mut(), &plan, &options, &mut sink, progress)?;
    } else {
        let temp = |e: io::Error| ApiError::internal(format!("cannot write a temporary file: {e}"));
        let mut binary = tempfile::tempfile().map_err(temp)?;
        {
            let mut file = io::BufWriter::with_capacity(CHUNK, &mut binary);
            core_export(engine.as_mut(), &plan, &options, &mut file, progress)?;
            file.flush().map_err(temp)?;
        }
        binary.seek(io::SeekFrom::Start(0)).map_err(temp)?;
        json::to_json(io::BufReader::with_capacity(CHUNK, binary), &mut sink)?;
    }
    sink.finish()?;
    Ok(())
}

/// Sends what is written in chunks; a closed channel (the client left) fails the write.
pub(crate) struct ChannelWriter {
    tx: mpsc::Sender<Chunk>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}
