//! Google Cloud Storage through its JSON API, over reqwest, with object_store's credentials.
//!
//! Not object_store's GCS store: it uploads through GCS's XML API, which emulators such as
//! fake-gcs-server do not serve. The JSON API is served by both GCS and the emulators, and what
//! orgport needs of it is a few requests: an upload (in one request, or resumable in chunks), a
//! download, the object's metadata, a listing, a delete and a rewrite (the server-side copy).

use std::any::Any;
use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use object_store::gcp::{GcpCredentialProvider, GoogleCloudStorageBuilder};
use orgport_core::store::{ObjectInfo, ObjectStore, ObjectWriter};
use orgport_core::{Error, Result};
use reqwest::{header, Method, RequestBuilder, Response, StatusCode, Url};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use crate::blocking::{chain, runtime, BlockingReader};
use crate::location::Root;
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
    root: Root,
    /// None for an emulator.
    auth: Option<GcpCredentialProvider>,
    /// The credentials file, if any: stores with the same `base` and file are one service.
    credentials: Option<String>,
}

impl Gcs {
    pub(crate) fn open(root: Root, config: GcsConfig) -> std::result::Result<Gcs, String> {
        let rt = runtime().map_err(|e| format!("cannot start the I/O runtime: {e}"))?;
        let (base, auth) = match config.emulator {
            Some(host) => {
                let base = if host.contains("://") { host } else { format!("http://{host}") };
                (base, None)
            }
            None => {
                let mut builder = GoogleCloudStorageBuilder::new().with_bucket_name(&root.bucket);
                if let Some(path) = &config.credentials {
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
        Ok(Gcs { rt, api: Api { http, base, root, auth, credentials: config.credentials } })
    }
}

impl Api {
    fn location(&self, key: &str) -> String {
        self.root.location(key)
    }

    /// `{base}/{segments…}`, each segment encoded as one (an object name's `/` too).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut().expect("an http(s) URL").pop_if_empty().extend(segments);
        url
    }

    /// `{base}/{prefix…}/b/BUCKET/o[/NAME]`, the object named by its key.
    fn object_url(&self, prefix: &[&str], key: Option<&str>) -> Url {
        let name = key.map(|key| self.root.name(key));
        let mut url = self.url(prefix);
        url.path_segments_mut().expect("an http(s) URL").extend(["b", &self.root.bucket, "o"]).extend(name);
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
        match self.request(Method::GET, self.url(&["storage", "v1", "b", &self.root.bucket])).await {
            Ok(request) => matches!(request.send().await, Ok(r) if r.status() == StatusCode::NOT_FOUND),
            Err(_) => false,
        }
    }

    /// Starts a resumable upload; its session URL.
    async fn start_session(&self, key: &str) -> std::result::Result<Url, String> {
        let mut url = self.object_url(&["upload", "storage", "v1"], None);
        url.query_pairs_mut().append_pair("uploadType", "resumable").append_pair("name", &self.root.name(key));
        let request = self.request(Method::POST, url).await?.header(header::CONTENT_TYPE, "application/json").body("{}");
        let response = self.send(request, &[]).await?;
        let session = response.headers().get(header::LOCATION).and_then(|l| l.to_str().ok()).map(str::to_string);
        let session = session.ok_or("the server started no upload session")?;
        Url::parse(&session).map_err(|e| format!("the server's upload session is no URL: {e}"))
    }

    /// Uploads a whole object in one request.
    async fn upload(&self, key: &str, bytes: Bytes) -> std::result::Result<(), String> {
        let mut url = self.object_url(&["upload", "storage", "v1"], None);
        url.query_pairs_mut().append_pair("uploadType", "media").append_pair("name", &self.root.name(key));
        let request = self.request(Method::POST, url).await?.header(header::CONTENT_TYPE, "application/octet-stream").body(bytes);
        self.send(request, &[]).await.map(drop)
    }

    /// The JSON a request answers.
    async fn json(&self, request: RequestBuilder) -> std::result::Result<serde_json::Value, String> {
        let body = self.send(request, &[]).await?.bytes().await.map_err(|e| chain(&e.without_url()))?;
        serde_json::from_slice(&body).map_err(|e| format!("unreadable answer: {e}"))
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
            let kept =
                response.headers().get(header::RANGE).and_then(|r| r.to_str().ok()).and_then(|r| r.rsplit('-').next()?.parse::<u64>().ok());
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

/// A size as the JSON API writes 64-bit numbers: a string.
fn size_of(object: &serde_json::Value) -> Option<u64> {
    object["size"].as_str()?.parse().ok()
}

/// Why GCS cannot hold an object under `key`, if it cannot, by its naming requirements: 1 to 1024
/// bytes (the base path included), no carriage return or line feed, not `.` or `..`, not under
/// `.well-known/acme-challenge/`. (Names object_store's paths refuse, such as `a//b`, are fine:
/// this store builds its URLs itself.)
fn check(root: &Root, key: &str) -> std::result::Result<(), String> {
    root.check(key)?;
    let name = root.name(key);
    if name.contains(['\r', '\n']) {
        return Err("it contains a carriage return or line feed, which GCS does not take".into());
    }
    if name == "." || name == ".." {
        return Err("GCS names no object `.` or `..`".into());
    }
    if name.starts_with(ACME) {
        return Err(format!("GCS reserves names starting with `{ACME}`"));
    }
    Ok(())
}

/// The prefix GCS keeps for domain validation.
const ACME: &str = ".well-known/acme-challenge/";

impl Gcs {
    fn failed(&self, action: &'static str, key: &str) -> impl Fn(String) -> Error {
        let location = self.api.location(key);
        move |reason| Error::Storage { action, location: location.clone(), reason }
    }
}

impl ObjectStore for Gcs {
    fn describe(&self) -> String {
        self.api.root.describe()
    }

    fn reader(&self, key: &str) -> Result<Box<dyn Read + Send>> {
        let api = &self.api;
        let location = api.location(key);
        let mut url = api.object_url(&["storage", "v1"], Some(key));
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
                    Err(e) => {
                        Some((Err(io::Error::other(Error::Storage { action: "read", location, reason: chain(&e.without_url()) })), None))
                    }
                }
            }
        })
        .boxed();
        Ok(Box::new(BlockingReader { rt: self.rt.clone(), stream, chunk: Bytes::new() }))
    }

    fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        self.check_key(key)?;
        Ok(Box::new(GcsWriter {
            rt: self.rt.clone(),
            api: self.api.clone(),
            key: key.to_string(),
            session: None,
            location: self.api.location(key),
            buffer: Vec::new(),
            sent: 0,
            in_flight: None,
        }))
    }

    fn check_key(&self, key: &str) -> Result<()> {
        check(&self.api.root, key).map_err(|reason| self.api.root.invalid("write", key, &reason))
    }

    fn size(&self, key: &str) -> Result<Option<u64>> {
        let api = &self.api;
        let url = api.object_url(&["storage", "v1"], Some(key));
        let size = self.rt.block_on(async {
            let response = api.send(api.request(Method::GET, url).await?, &[StatusCode::OK, StatusCode::NOT_FOUND]).await?;
            if response.status() == StatusCode::NOT_FOUND {
                // Not the bucket: that one is an error when the object is written.
                return Ok(None);
            }
            let body = response.bytes().await.map_err(|e| chain(&e.without_url()))?;
            let json: serde_json::Value = serde_json::from_slice(&body).map_err(|e| format!("unreadable metadata: {e}"))?;
            size_of(&json).map(Some).ok_or_else(|| "metadata without a size".to_string())
        });
        size.map_err(self.failed("read", key))
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let api = &self.api;
        let listed = self.rt.block_on(async {
            let mut found = Vec::new();
            let mut page: Option<String> = None;
            loop {
                let mut url = api.object_url(&["storage", "v1"], None);
                url.query_pairs_mut().append_pair("prefix", &api.root.name(prefix)).append_pair("fields", "items(name,size),nextPageToken");
                if let Some(token) = &page {
                    url.query_pairs_mut().append_pair("pageToken", token);
                }
                let json = api.json(api.request(Method::GET, url).await?).await?;
                for object in json["items"].as_array().into_iter().flatten() {
                    let (Some(name), Some(size)) = (object["name"].as_str(), size_of(object)) else {
                        return Err(format!("a listed object without a name or size: {object}"));
                    };
                    if let Some(key) = api.root.key(name) {
                        found.push(ObjectInfo { key: key.to_string(), size });
                    }
                }
                match json["nextPageToken"].as_str() {
                    Some(token) if !token.is_empty() => page = Some(token.to_string()),
                    _ => return Ok(found),
                }
            }
        });
        let mut found = listed.map_err(self.failed("list", prefix))?;
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let api = &self.api;
        let url = api.object_url(&["storage", "v1"], Some(key));
        let deleted = self.rt.block_on(async {
            let request = api.request(Method::DELETE, url).await?;
            let response = api.send(request, &[StatusCode::OK, StatusCode::NO_CONTENT, StatusCode::NOT_FOUND]).await?;
            match response.status() {
                StatusCode::NOT_FOUND if api.bucket_missing().await => Err("no such bucket".to_string()),
                _ => Ok(()),
            }
        });
        deleted.map_err(self.failed("delete", key))
    }

    fn copy_from(&self, source: &dyn ObjectStore, from: &str, to: &str) -> Result<bool> {
        let Some(source) = source.as_any().downcast_ref::<Gcs>() else { return Ok(false) };
        let (api, src) = (&self.api, &source.api);
        if (&api.base, &api.credentials) != (&src.base, &src.credentials) {
            return Ok(false);
        }
        let (from_name, to_name) = (src.root.name(from), api.root.name(to));
        let url = api.url(&["storage", "v1", "b", &src.root.bucket, "o", &from_name, "rewriteTo", "b", &api.root.bucket, "o", &to_name]);
        // A rewrite may take several calls (large objects, another location or storage class),
        // each going on from the token the last one answered.
        let copied = self.rt.block_on(async {
            let mut token: Option<String> = None;
            loop {
                let mut url = url.clone();
                if let Some(token) = &token {
                    url.query_pairs_mut().append_pair("rewriteToken", token);
                }
                let request = api.request(Method::POST, url).await?.header(header::CONTENT_TYPE, "application/json").body("{}");
                let json = api.json(request).await?;
                if json["done"].as_bool() == Some(true) {
                    return Ok(());
                }
                match json["rewriteToken"].as_str() {
                    Some(next) => token = Some(next.to_string()),
                    None => return Err("the server answered a rewrite neither done nor to go on".to_string()),
                }
            }
        });
        let location = format!("{}` to `{}", src.location(from), api.location(to));
        copied.map(|()| true).map_err(|reason| Error::Storage { action: "copy", location, reason })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An object smaller than a chunk goes in one request when finished. A larger one is a resumable
/// upload: chunks go out one after the other, the next filling while one is sent. The session is
/// finalized only by `finish` (the last chunk carries the total size); dropped before, it is
/// never finalized and no object appears.
struct GcsWriter {
    rt: Arc<Runtime>,
    api: Api,
    key: String,
    /// Started when a chunk is full and more comes.
    session: Option<Url>,
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
            let session = match &self.session {
                Some(session) => session.clone(),
                None => {
                    let started = self.rt.block_on(self.api.start_session(&self.key));
                    self.session.insert(started.map_err(|reason| io::Error::other(self.error(reason)))?).clone()
                }
            };
            let chunk = Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(PART)));
            let (api, offset) = (self.api.clone(), self.sent);
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
        let (api, offset) = (&self.api, self.sent);
        let finished = match &self.session {
            Some(session) => self.rt.block_on(api.upload_chunk(session, offset, chunk, Some(total))),
            None => self.rt.block_on(api.upload(&self.key, chunk)),
        };
        finished.map_err(|reason| self.error(reason))
    }
}

impl Drop for GcsWriter {
    fn drop(&mut self) {
        if let Some(task) = self.in_flight.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_naming_requirements() {
        let (bare, based) = (Root::new("gs", "b", ""), Root::new("gs", "b", "base"));
        for good in ["a", "a//b", "a/", "/a", "a/../b", "...", ".well-known/other", "ü/…", "a\tb"] {
            assert_eq!(check(&bare, good), Ok(()), "{good:?}");
        }
        // Under a base path, the name is no longer `.` or reserved.
        for good in [".", "..", ".well-known/acme-challenge/x"] {
            assert_eq!(check(&based, good), Ok(()), "{good:?}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("a\rb", "it contains a carriage return or line feed, which GCS does not take"),
            ("a\n", "it contains a carriage return or line feed, which GCS does not take"),
            (".", "GCS names no object `.` or `..`"),
            ("..", "GCS names no object `.` or `..`"),
            (".well-known/acme-challenge/token", "GCS reserves names starting with `.well-known/acme-challenge/`"),
        ] {
            assert_eq!(check(&bare, bad), Err(why.to_string()), "{bad:?}");
        }
        assert!(check(&based, &"k".repeat(1020)).unwrap_err().contains("with the base path `base/` it is 1025 bytes long"));
    }
}
