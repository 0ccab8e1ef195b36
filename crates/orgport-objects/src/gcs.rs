//! Google Cloud Storage through its JSON API, over reqwest, with object_store's credentials.
//!
//! Not object_store's GCS store: it uploads through GCS's XML API, which emulators such as
//! fake-gcs-server do not serve. The JSON API is served by both GCS and the emulators, and what
//! an archive needs of it is three requests: a resumable upload in chunks, a download and the
//! object's metadata.

use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use object_store::gcp::{GcpCredentialProvider, GoogleCloudStorageBuilder};
use orgport_core::store::{ObjectStore, ObjectWriter};
use orgport_core::{Error, Result};
use reqwest::{header, Method, RequestBuilder, Response, StatusCode, Url};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use crate::blocking::{chain, runtime, BlockingReader};
use crate::PART;

pub(crate) struct GcsConfig {
    /// A service-account (or authorized-user) JSON file.
    pub(crate) credentials: Option<String>,
    /// `HOST:PORT` (or a URL) of an emulator: requests go there, without credentials.
    pub(crate) emulator: Option<String>,
}

pub(crate) struct Gcs {
    rt: Arc<Runtime>,
    api: Api,
}

/// What every request needs; cheap to clone into the tasks of an upload.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: Url,
    bucket: String,
    /// None for an emulator.
    auth: Option<GcpCredentialProvider>,
}

impl Gcs {
    pub(crate) fn open(bucket: &str, config: GcsConfig) -> std::result::Result<Gcs, String> {
        let rt = runtime().map_err(|e| format!("cannot start the I/O runtime: {e}"))?;
        let (base, auth) = match config.emulator {
            Some(host) => {
                let base = if host.contains("://") { host } else { format!("http://{host}") };
                (base, None)
            }
            None => {
                let mut builder = GoogleCloudStorageBuilder::new().with_bucket_name(bucket);
                if let Some(path) = config.credentials {
                    builder = builder.with_application_credentials(path);
                }
                // Without a file: gcloud's application default credentials, else the metadata server.
                let store = builder.build().map_err(|e| chain(&e))?;
                ("https://storage.googleapis.com".to_string(), Some(store.credentials().clone()))
            }
        };
        let base = Url::parse(&base).map_err(|e| format!("invalid `STORAGE_EMULATOR_HOST` `{base}`: {e}"))?;
        // A resumable upload answers 308 to each chunk: a status, not a redirect to follow.
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().map_err(|e| chain(&e))?;
        Ok(Gcs { rt, api: Api { http, base, bucket: bucket.to_string(), auth } })
    }
}

impl Api {
    fn location(&self, key: &str) -> String {
        format!("gs://{}/{key}", self.bucket)
    }

    /// `{base}/{prefix…}/b/BUCKET/o[/KEY]`, the key as one path segment.
    fn url(&self, prefix: &[&str], key: Option<&str>) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut().expect("an http(s) URL").pop_if_empty().extend(prefix).extend(["b", &self.bucket, "o"]).extend(key);
        url
    }

    async fn request(&self, method: Method, url: Url) -> std::result::Result<RequestBuilder, String> {
        let request = self.http.request(method, url);
        match &self.auth {
            Some(auth) => {
                let credential = auth.get_credential().await.map_err(|e| format!("cannot get an access token: {}", chain(&e)))?;
                Ok(request.bearer_auth(&credential.bearer))
            }
            None => Ok(request),
        }
    }

    /// Sends a request; a status other than `ok` is an error in words a user can act on.
    async fn send(&self, request: RequestBuilder, ok: &[StatusCode]) -> std::result::Result<Response, String> {
        let response = request.send().await.map_err(|e| chain(&e.without_url()))?;
        let status = response.status();
        if ok.contains(&status) || (ok.is_empty() && status.is_success()) {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        Err(match status {
            StatusCode::NOT_FOUND if self.bucket_missing().await => "no such bucket".into(),
            StatusCode::NOT_FOUND => "no such object".into(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                "access denied (check `GOOGLE_APPLICATION_CREDENTIALS` and the account's roles)".into()
            }
            _ => format!("the server answered {status}: {}", message(&body)),
        })
    }

    /// Whether the bucket is known not to exist: a 404 does not say which is missing (emulators
    /// answer a bare "Not Found" for both).
    async fn bucket_missing(&self) -> bool {
        let mut url = self.base.clone();
        url.path_segments_mut().expect("an http(s) URL").pop_if_empty().extend(["storage", "v1", "b", &self.bucket]);
        match self.request(Method::GET, url).await {
            Ok(request) => matches!(request.send().await, Ok(r) if r.status() == StatusCode::NOT_FOUND),
            Err(_) => false,
        }
    }

    async fn upload_chunk(&self, session: &Url, offset: u64, chunk: Bytes, total: Option<u64>) -> std::result::Result<(), String> {
        let end = offset + chunk.len() as u64;
        let range = match (chunk.is_empty(), total) {
            (true, Some(total)) => format!("bytes */{total}"),
            (_, Some(total)) => format!("bytes {offset}-{}/{total}", end - 1),
            (_, None) => format!("bytes {offset}-{}/*", end - 1),
        };
        let request = self.request(Method::PUT, session.clone()).await?.header(header::CONTENT_RANGE, range).body(chunk);
        let ok: &[StatusCode] = if total.is_some() { &[StatusCode::OK, StatusCode::CREATED] } else { &[StatusCode::PERMANENT_REDIRECT] };
        let response = self.send(request, ok).await?;
        if total.is_none() {
            // 308 says how much the server kept (`Range: bytes=0-N`); GCS may keep less than sent.
            let kept = response.headers().get(header::RANGE).and_then(|r| r.to_str().ok()).and_then(|r| r.rsplit('-').next()?.parse::<u64>().ok());
            if kept.map(|last| last + 1) != Some(end) {
                return Err(format!("the server kept {} of {end} bytes sent", kept.map_or(0, |last| last + 1)));
            }
        }
        Ok(())
    }
}

/// The `message` of a JSON API error, else the start of the body.
fn message(body: &str) -> String {
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    match json.as_ref().and_then(|j| j["error"]["message"].as_str()) {
        Some(m) => m.to_string(),
        None => body.chars().take(200).collect::<String>().replace('\n', " "),
    }
}

impl ObjectStore for Gcs {
    fn describe(&self) -> String {
        format!("gs://{}", self.api.bucket)
    }

    fn reader(&self, key: &str) -> Result<Box<dyn Read + Send>> {
        let api = &self.api;
        let location = api.location(key);
        let mut url = api.url(&["storage", "v1"], Some(key));
        url.query_pairs_mut().append_pair("alt", "media");
        let response = self
            .rt
            .block_on(async { api.send(api.request(Method::GET, url).await?, &[]).await })
            .map_err(|reason| Error::Storage { action: "read", location: location.clone(), reason })?;
        let stream = stream::unfold(Some(response), move |response| {
            let location = location.clone();
            async move {
                let mut response = response?;
                match response.chunk().await {
                    Ok(Some(chunk)) => Some((Ok(chunk), Some(response))),
                    Ok(None) => None,
                    Err(e) => Some((Err(io::Error::other(Error::Storage { action: "read", location, reason: chain(&e.without_url()) })), None)),
                }
            }
        })
        .boxed();
        Ok(Box::new(BlockingReader { rt: self.rt.clone(), stream, chunk: Bytes::new() }))
    }

    fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        let api = &self.api;
        let location = api.location(key);
        let mut url = api.url(&["upload", "storage", "v1"], None);
        url.query_pairs_mut().append_pair("uploadType", "resumable").append_pair("name", key);
        let session = self.rt.block_on(async {
            let request = api.request(Method::POST, url).await?.header(header::CONTENT_TYPE, "application/json").body("{}");
            let response = api.send(request, &[]).await?;
            let session = response.headers().get(header::LOCATION).and_then(|l| l.to_str().ok()).map(str::to_string);
            let session = session.ok_or("the server started no upload session")?;
            Url::parse(&session).map_err(|e| format!("the server's upload session is no URL: {e}"))
        });
        let session = session.map_err(|reason| Error::Storage { action: "write", location: location.clone(), reason })?;
        Ok(Box::new(GcsWriter {
            rt: self.rt.clone(),
            api: api.clone(),
            session,
            location,
            buffer: Vec::with_capacity(PART),
            sent: 0,
            in_flight: None,
        }))
    }

    fn size(&self, key: &str) -> Result<Option<u64>> {
        let api = &self.api;
        let url = api.url(&["storage", "v1"], Some(key));
        let size = self.rt.block_on(async {
            let response = api.send(api.request(Method::GET, url).await?, &[StatusCode::OK, StatusCode::NOT_FOUND]).await?;
            if response.status() == StatusCode::NOT_FOUND {
                // Not the bucket: that one is an error when the object is written.
                return Ok(None);
            }
            let body = response.bytes().await.map_err(|e| chain(&e.without_url()))?;
            let json: serde_json::Value = serde_json::from_slice(&body).map_err(|e| format!("unreadable metadata: {e}"))?;
            // The JSON API writes 64-bit numbers as strings.
            json["size"].as_str().and_then(|s| s.parse().ok()).map(Some).ok_or_else(|| "metadata without a size".to_string())
        });
        size.map_err(|reason| Error::Storage { action: "read", location: api.location(key), reason })
    }
}

/// A resumable upload: chunks go out one after the other, the next filling while one is sent.
/// The session is finalized only by `finish` (the last chunk carries the total size); dropped
/// before, it is never finalized and no object appears.
struct GcsWriter {
    rt: Arc<Runtime>,
    api: Api,
    session: Url,
    location: String,
    buffer: Vec<u8>,
    /// Bytes handed to chunks so far.
    sent: u64,
    in_flight: Option<JoinHandle<std::result::Result<(), String>>>,
}

impl GcsWriter {
    fn error(&self, reason: String) -> Error {
        Error::Storage { action: "write", location: self.location.clone(), reason }
    }

    /// Waits for the chunk being sent, if any.
    fn wait(&mut self) -> Result<()> {
        match self.in_flight.take() {
            Some(task) => match self.rt.block_on(task) {
                Ok(sent) => sent.map_err(|reason| self.error(reason)),
                Err(e) => Err(self.error(format!("the upload task failed: {e}"))),
            },
            None => Ok(()),
        }
    }
}

impl Write for GcsWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A full buffer goes out only once more data comes: the last chunk must carry the total.
        if self.buffer.len() == PART {
            self.wait().map_err(io::Error::other)?;
            let chunk = Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(PART)));
            let (api, session, offset) = (self.api.clone(), self.session.clone(), self.sent);
            self.sent += chunk.len() as u64;
            self.in_flight = Some(self.rt.spawn(async move { api.upload_chunk(&session, offset, chunk, None).await }));
        }
        let n = buf.len().min(PART - self.buffer.len());
        self.buffer.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Chunks are sent as they fill; the rest only by `finish`, which makes the object appear.
        Ok(())
    }
}

impl ObjectWriter for GcsWriter {
    fn finish(mut self: Box<Self>) -> Result<()> {
        self.wait()?;
        let chunk = Bytes::from(std::mem::take(&mut self.buffer));
        let total = self.sent + chunk.len() as u64;
        let (api, session, offset) = (self.api.clone(), self.session.clone(), self.sent);
        self.rt.block_on(async move { api.upload_chunk(&session, offset, chunk, Some(total)).await }).map_err(|reason| self.error(reason))
    }
}

impl Drop for GcsWriter {
    fn drop(&mut self) {
        if let Some(task) = self.in_flight.take() {
            task.abort();
        }
    }
}
